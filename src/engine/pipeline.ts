import type { OnnxRuntime } from "../runtime/onnx.js";
import { alignFace } from "./align.js";
import { untimed, type StageTimer } from "./stage-timer.js";
import { scaleBox, type PointPx } from "./geometry.js";
import { analyzeFace, type FaceAttributes } from "./analyze.js";
import { decodeImage, type DecodedImage, type DecodeLimits } from "./decode.js";
import { clipBox, createYuNetDetector, type BoxPx, type DetectOptions, type Detector } from "./detect.js";
import { embedFace } from "./embed.js";
import { mapGivingWay } from "./in-turns.js";
import type { RgbImage } from "./image.js";
import { measureQuality, type FaceQuality } from "./quality.js";

export type { StageTimer } from "./stage-timer.js";

/** A face the detector found: where it is, not yet aligned. */
export interface FoundFace {
  /** In original-image pixels, clipped to the image. */
  box: BoxPx;
  /** Left eye, right eye, nose tip, left and right mouth corners. */
  landmarks: PointPx[];
  score: number;
}

/** A found face aligned and measured, ready to be embedded. */
export interface LocatedFace extends FoundFace {
  quality: FaceQuality;
  /** The face warped onto the 112x112 ArcFace template. */
  aligned: RgbImage;
}

/** From image bytes to faces, embeddings and attributes. Pure: no transport, no storage. */
export interface FaceEngine {
  /** The working copy, at most `maxSide` (default MAX_WORKING_SIDE) on its long side. */
  decode(bytes: Uint8Array, maxSide?: number): Promise<DecodedImage>;
  /**
   * Every face, largest first, at most `maxFaces` (0 = all), with landmarks, alignment and quality;
   * boxes and landmarks in the photo's own pixels.
   */
  locate(image: DecodedImage, maxFaces: number): Promise<LocatedFace[]>;
  /**
   * locate in two steps, for callers that embed only some of the faces (a stream's tracked faces):
   * `find` runs the detector, `prepare` aligns and measures the faces it is given.
   */
  find(image: DecodedImage, maxFaces: number, options?: DetectOptions): Promise<FoundFace[]>;
  prepare(image: DecodedImage, faces: readonly FoundFace[]): Promise<LocatedFace[]>;
  /** One L2-normalised 512-d embedding per face, in order. */
  embed(faces: readonly LocatedFace[]): Promise<Float32Array[]>;
  analyze(image: DecodedImage, faces: readonly LocatedFace[]): Promise<FaceAttributes[]>;
  /** Loads every model the hot path needs, so the first request is not slow. */
  warmUp(): Promise<void>;
}

/**
 * At most this many faces of one image (the largest) have their landmarks read again for alignment
 * (Detector.refineLandmarks, a scan of its own each): a crowd of tiny faces sent to Detect costs
 * at most this many more scans.
 */
const MAX_REFINED_FACES = 32;

export interface FaceEngineOptions {
  runtime: OnnxRuntime;
  limits: DecodeLimits;
  stage?: StageTimer;
  detector?: Detector;
}

/** Builds the engine on an ONNX runtime; stages are reported through `stage`. */
export function createFaceEngine(options: FaceEngineOptions): FaceEngine {
  const { runtime, limits } = options;
  const stage = options.stage ?? untimed;
  const detector = options.detector ?? createYuNetDetector(runtime, stage);

  async function find(image: DecodedImage, maxFaces: number, options?: DetectOptions): Promise<FoundFace[]> {
    // Found on the working copy; asked and answered in the photo's own pixels.
    const s = image.scale;
    const near = s === 1 ? options?.near : options?.near?.map((b) => scaleBox(b, 1 / s));
    let detections = await stage("detect", () => detector.detect(image, { ...options, near }));
    if (maxFaces > 0) detections = detections.slice(0, maxFaces);
    return detections.map((d) => ({
      box: scaleBox(clipBox(d.box, image.width, image.height), s),
      landmarks: s === 1 ? d.landmarks : d.landmarks.map((p) => ({ x: p.x * s, y: p.y * s })),
      score: d.score,
    }));
  }

  async function prepare(image: DecodedImage, faces: readonly FoundFace[]): Promise<LocatedFace[]> {
    if (faces.length === 0) return [];
    // Boxes and landmarks come in the photo's pixels; the engine works on the working copy's.
    const s = image.scale;
    const toWorking = (p: PointPx) => (s === 1 ? p : { x: p.x / s, y: p.y / s });
    const landmarks = await stage("landmarks", () => Promise.all(faces.map((f, i) =>
      i < MAX_REFINED_FACES ? detector.refineLandmarks(image, { ...f, box: scaleBox(f.box, 1 / s), landmarks: f.landmarks.map(toWorking) }) : f.landmarks.map(toWorking),
    )));
    const aligned = await stage("align", () => mapGivingWay(landmarks, (l) => alignFace(image, l)));
    return stage("quality", () => mapGivingWay(faces, (f, i) => ({
      ...f,
      landmarks: s === 1 ? landmarks[i] : landmarks[i].map((p) => ({ x: p.x * s, y: p.y * s })),
      aligned: aligned[i],
      quality: measureQuality(aligned[i], f.box),
    })));
  }

  return {
    decode(bytes, maxSide) {
      return stage("decode", () => decodeImage(bytes, limits, maxSide));
    },

    async locate(image, maxFaces) {
      return prepare(image, await find(image, maxFaces));
    },

    find,
    prepare,

    async embed(faces) {
      if (faces.length === 0) return [];
      return stage("embed", () => Promise.all(faces.map((f) => embedFace(runtime, f.aligned))));
    },

    analyze(image, faces) {
      return stage("analyze", () => Promise.all(faces.map((f) => analyzeFace(runtime, image, scaleBox(f.box, 1 / image.scale)))));
    },

    async warmUp() {
      await runtime.warmUp(["detect", "feature"]);
    },
  };
}
