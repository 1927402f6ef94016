import type { Affine, RgbImage } from "./image.js";
import { warpAffine } from "./image.js";
import { warpAffineCubic } from "./warp-cubic.js";
import type { PointPx } from "./geometry.js";

/** Side of the aligned face the embedding model reads. */
export const ALIGNED_SIZE = 112;

/** The ArcFace 112x112 template: left eye, right eye, nose tip, left and right mouth corners. */
export const ARCFACE_TEMPLATE: readonly PointPx[] = [
  { x: 38.2946, y: 51.6963 },
  { x: 73.5318, y: 51.5014 },
  { x: 56.0252, y: 71.7366 },
  { x: 41.5493, y: 92.3655 },
  { x: 70.7299, y: 92.2041 },
];

/**
 * Least-squares similarity transform (rotation, uniform scale, translation; Umeyama without
 * reflection) taking `from` onto `to`. Returns [a, b, tx, ty] for x' = a*x - b*y + tx, y' = b*x + a*y + ty.
 */
export function similarityTransform(from: readonly PointPx[], to: readonly PointPx[]): [number, number, number, number] {
  const n = from.length;
  let fx = 0, fy = 0, tx = 0, ty = 0;
  for (let i = 0; i < n; i++) {
    fx += from[i].x; fy += from[i].y; tx += to[i].x; ty += to[i].y;
  }
  fx /= n; fy /= n; tx /= n; ty /= n;
  let dot = 0, cross = 0, norm = 0;
  for (let i = 0; i < n; i++) {
    const sx = from[i].x - fx, sy = from[i].y - fy;
    const dx = to[i].x - tx, dy = to[i].y - ty;
    dot += sx * dx + sy * dy;
    cross += sx * dy - sy * dx;
    norm += sx * sx + sy * sy;
  }
  if (norm === 0) throw new Error("degenerate landmarks");
  const a = dot / norm;
  const b = cross / norm;
  return [a, b, tx - (a * fx - b * fy), ty - (b * fx + a * fy)];
}

/**
 * The map from the aligned face's pixels to the image's (what the warps want) for a face whose five
 * landmarks are `points`, and whether it enlarges the face.
 */
export function alignmentMap(points: readonly PointPx[]): { map: Affine; enlarges: boolean } {
  const [a, b, tx, ty] = similarityTransform(points, ARCFACE_TEMPLATE);
  // Output -> source: the inverse of [[a, -b], [b, a]] is [[a, b], [-b, a]] / (a² + b²).
  const k = 1 / (a * a + b * b);
  return { map: [a * k, b * k, -(a * tx + b * ty) * k, -b * k, a * k, (b * tx - a * ty) * k], enlarges: Math.hypot(a, b) > 1 };
}

/** Warps the face whose five landmarks are `points` onto the 112x112 ArcFace template. */
export function alignFace(image: RgbImage, points: readonly PointPx[]): RgbImage {
  const { map, enlarges } = alignmentMap(points);
  // A face smaller than the template is enlarged with bicubic taps (docs/benchmarks.md: at ~24 px
  // TAR@FAR1e-3 0.884 -> 0.911 on the shrunk photos); a larger one is averaged down by warpAffine.
  return enlarges ? warpAffineCubic(image, map, ALIGNED_SIZE, ALIGNED_SIZE) : warpAffine(image, map, ALIGNED_SIZE, ALIGNED_SIZE);
}
