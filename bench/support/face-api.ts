/**
 * @vladmandic/face-api, the library a Node.js user would otherwise pick, on TensorFlow.js's WASM
 * backend: detect (SSD MobileNet v1), 68 landmarks, 128-d descriptor, the same work as our
 * Recognize minus the database. Images are decoded with sharp, as ours are.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import sharp from "sharp";

const require = createRequire(import.meta.url);

export interface FaceApi {
  /** Every face of an encoded image with its descriptor; resolves to the number of faces. */
  describeAll(image: Uint8Array): Promise<number>;
  version: string;
}

export async function loadFaceApi(): Promise<FaceApi> {
  const tf = require("@tensorflow/tfjs");
  const wasm = require("@tensorflow/tfjs-backend-wasm");
  const faceapi = require("@vladmandic/face-api/dist/face-api.node-wasm.js");
  wasm.setWasmPaths(`${join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm")), "")}/`);
  await tf.setBackend("wasm");
  await tf.ready();
  const models = join(dirname(require.resolve("@vladmandic/face-api/package.json")), "model");
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(models);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(models);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(models);
  const options = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 });
  return {
    version: `face-api ${faceapi.version}, tfjs ${tf.version_core} (${tf.getBackend()})`,
    async describeAll(image) {
      const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const tensor = tf.tensor3d(data, [info.height, info.width, 3], "int32");
      try {
        const faces = await faceapi.detectAllFaces(tensor, options).withFaceLandmarks().withFaceDescriptors();
        return faces.length;
      } finally {
        tf.dispose(tensor);
      }
    },
  };
}
