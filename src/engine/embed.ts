import type { OnnxRuntime } from "../runtime/onnx.js";
import { ALIGNED_SIZE } from "./align.js";
import { toPlanarTensor, type RgbImage } from "./image.js";

/** Length of an embedding. */
export const EMBEDDING_SIZE = 512;

/**
 * Embeds an aligned 112x112 face with fr_feature. Fed BGR, (x-127)/128: BGR scored better than the
 * package's own RGB on every labelled set here (DESIGN.md). Returns an L2-normalised vector, so
 * cosine distance is 1 - dot product.
 */
export async function embedFace(runtime: OnnxRuntime, aligned: RgbImage): Promise<Float32Array> {
  const data = toPlanarTensor(aligned, "bgr", [127, 127, 127], [128, 128, 128]);
  const out = await runtime.run("feature", { data, dims: [1, 3, ALIGNED_SIZE, ALIGNED_SIZE] });
  return l2Normalize(Float32Array.from(out.output.data as Float32Array));
}

/** Scales a vector to unit length (a zero vector stays zero). */
export function l2Normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const k = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= k;
  return v;
}

/** Cosine distance of two unit vectors (pgvector's <=>): 0 same direction, 2 opposite. */
export function cosineDistance(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  return 1 - dot;
}
