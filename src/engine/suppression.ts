import { area, intersection, intersectionOverUnion, type BoxPx } from "./geometry.js";

/** Boxes overlapping more than this (intersection over union) are the same face. */
const NMS_IOU = 0.3;
/**
 * A box mostly inside a higher-scoring one (intersection over the smaller box) is a partial view of
 * the same face, as tiles produce where they cut a face.
 */
const NMS_CONTAINED = 0.6;

/** Keeps the best-scoring box of each face. */
export function nonMaximumSuppression<D extends { score: number; box: BoxPx }>(detections: readonly D[]): D[] {
  const sorted = [...detections].sort((a, b) => b.score - a.score);
  const kept: D[] = [];
  for (const d of sorted) {
    const duplicate = kept.some((k) => {
      const smaller = Math.min(area(k.box), area(d.box));
      return intersectionOverUnion(k.box, d.box) > NMS_IOU || intersection(k.box, d.box) / smaller > NMS_CONTAINED;
    });
    if (!duplicate) kept.push(d);
  }
  return kept;
}

/** Whether the centre of `inner` lies inside `outer`. */
export function containsCentreOf(outer: BoxPx, inner: BoxPx): boolean {
  const cx = inner.x + inner.width / 2, cy = inner.y + inner.height / 2;
  return cx >= outer.x && cx <= outer.x + outer.width && cy >= outer.y && cy <= outer.y + outer.height;
}
