import { area, clipBox, intersection, intersectionOverUnion, type BoxPx } from "./geometry.js";
import { BoxGrid } from "./box-grid.js";

/** Boxes overlapping more than this (intersection over union) are the same face. */
const NMS_IOU = 0.3;
/**
 * A box mostly inside a higher-scoring one (intersection over the smaller box) is a partial view of
 * the same face, as tiles produce where they cut a face.
 */
const NMS_CONTAINED = 0.6;

/** Keeps the best-scoring box of each face. */
export function nonMaximumSuppression<D extends { score: number; box: BoxPx }>(detections: readonly D[]): D[] {
  return [...keptBestFirst(detections)];
}

/**
 * The boxes nonMaximumSuppression keeps, best first, one at a time: a caller wanting the best few
 * stops early. A box is compared only with the kept boxes near it (a grid of cells about a box's
 * size): a photo of noise gives a big photo's scans some 24,000 faint boxes, and comparing each with
 * every kept one held the event loop for seconds.
 */
export function* keptBestFirst<D extends { score: number; box: BoxPx }>(detections: readonly D[]): Generator<D> {
  const sorted = [...detections].sort((a, b) => b.score - a.score);
  const kept = BoxGrid.sizedFor<D>(detections);
  for (const d of sorted) {
    if (kept.someNear(d.box, (k) => sameFace(k.box, d.box))) continue;
    kept.add(d);
    yield d;
  }
}

/** Whether two boxes are one face: overlapping much, or one mostly inside the other. */
function sameFace(a: BoxPx, b: BoxPx): boolean {
  const smaller = Math.min(area(a), area(b));
  return intersectionOverUnion(a, b) > NMS_IOU || intersection(a, b) / smaller > NMS_CONTAINED;
}

/** One box per face, largest first by the part inside the image (which is what callers see). */
export function largestFirst<D extends { score: number; box: BoxPx }>(faces: readonly D[], width: number, height: number): D[] {
  return nonMaximumSuppression(faces)
    .filter((d) => area(clipBox(d.box, width, height)) >= 1)
    .sort((a, b) => area(clipBox(b.box, width, height)) - area(clipBox(a.box, width, height)));
}

/** Whether the centre of `inner` lies inside `outer`. */
export function containsCentreOf(outer: BoxPx, inner: BoxPx): boolean {
  const cx = inner.x + inner.width / 2, cy = inner.y + inner.height / 2;
  return cx >= outer.x && cx <= outer.x + outer.width && cy >= outer.y && cy <= outer.y + outer.height;
}
