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

/** The largest absolute difference between two equally long arrays of model outputs. */
export function largestDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let largest = 0;
  for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i] - b[i]));
  return largest;
}
