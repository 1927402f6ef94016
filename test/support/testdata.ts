import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import sharp from "sharp";

/**
 * The shared labelled photos (../shared/faces beside the project, or FACE_TESTDATA_DIR). They are
 * data, never copied into the repository.
 */
export const FACES_DIR = resolve(process.env.FACE_TESTDATA_DIR ?? join(import.meta.dirname, "../../../shared/faces"));

if (!existsSync(join(FACES_DIR, "manifest.json"))) {
  throw new Error(
    `test photos not found in ${FACES_DIR}: put the shared data beside the project (../shared/faces) or set FACE_TESTDATA_DIR`,
  );
}

/** Bytes of a test photo, by its path under the faces directory. */
export function face(path: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FACES_DIR, path)));
}

export interface ManifestEntry {
  file: string;
  identity: string;
}

/** Every labelled photo of manifest.json. */
export function manifest(): ManifestEntry[] {
  return JSON.parse(readFileSync(join(FACES_DIR, "manifest.json"), "utf8")).images;
}

/** A test photo stretched to a 640x480 camera frame: its RGB bytes, height x width x 3. */
export async function rgbFrame640x480(path: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(face(path)).resize(640, 480, { fit: "fill" }).removeAlpha().raw().toBuffer());
}

const FRAME_WIDTH = 640;
const FRAME_HEIGHT = 480;

/**
 * The photo shrunk by `scale` and placed in a grey 640x480 frame (JPEG, as a camera sends it) with
 * the face at the frame's centre; what does not fit is cut off.
 */
export async function cameraFrame(bytes: Uint8Array, scale: number, centre: { x: number; y: number }): Promise<Uint8Array> {
  const meta = await sharp(bytes).rotate().metadata();
  const width = Math.max(1, Math.round((meta.autoOrient?.width ?? meta.width ?? 1) * scale));
  const height = Math.max(1, Math.round((meta.autoOrient?.height ?? meta.height ?? 1) * scale));
  const shrunk = await sharp(bytes).rotate().resize({ width, height }).png().toBuffer();
  // Crop the shrunk photo to the part that falls inside the frame.
  const left = Math.round(FRAME_WIDTH / 2 - centre.x * scale);
  const top = Math.round(FRAME_HEIGHT / 2 - centre.y * scale);
  const cropX = Math.max(0, -left), cropY = Math.max(0, -top);
  const cropW = Math.min(width - cropX, FRAME_WIDTH - Math.max(0, left));
  const cropH = Math.min(height - cropY, FRAME_HEIGHT - Math.max(0, top));
  const part = await sharp(shrunk).extract({ left: cropX, top: cropY, width: cropW, height: cropH }).png().toBuffer();
  const frame = await sharp({ create: { width: FRAME_WIDTH, height: FRAME_HEIGHT, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .composite([{ input: part, left: Math.max(0, left), top: Math.max(0, top) }])
    .jpeg({ quality: 90 })
    .toBuffer();
  return new Uint8Array(frame);
}

/** The test portrait fitted into 640x480, as a camera would send it. */
export async function singleFace640x480(): Promise<Uint8Array> {
  return new Uint8Array(await sharp(face("face_recognition/obama.jpg")).resize(640, 480, { fit: "cover", position: "top" }).jpeg({ quality: 90 }).toBuffer());
}

/** The largest absolute difference between two equally long arrays of model outputs. */
export function largestDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let largest = 0;
  for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i] - b[i]));
  return largest;
}

/** A JPEG of `image` with each box painted over, a little wider, in dark grey. */
export async function covered(image: Uint8Array, boxes: readonly { x: number; y: number; width: number; height: number }[]): Promise<Uint8Array> {
  const patches = await Promise.all(boxes.map(async (b) => ({
    input: await sharp({ create: { width: Math.ceil(b.width * 1.4), height: Math.ceil(b.height * 1.4), channels: 3, background: "#303030" } }).png().toBuffer(),
    left: Math.max(0, Math.round(b.x - b.width * 0.2)),
    top: Math.max(0, Math.round(b.y - b.height * 0.2)),
  })));
  return new Uint8Array(await sharp(image).composite(patches).jpeg({ quality: 90 }).toBuffer());
}
