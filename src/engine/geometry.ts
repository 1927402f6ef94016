// Boxes and points in pixels, and the arithmetic on them every stage shares. Nothing here imports
// another engine module, so the stages can all take from it without importing each other.

/** A face box in pixels of the original image. */
export interface BoxPx {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A point in pixels of the original image. */
export interface PointPx {
  x: number;
  y: number;
}

/** Pixels a box covers. */
export function area(b: BoxPx): number {
  return b.width * b.height;
}

/** Shared area over combined area: 1 for the same box, 0 for boxes apart. */
export function intersectionOverUnion(a: BoxPx, b: BoxPx): number {
  const inter = intersection(a, b);
  return inter / (area(a) + area(b) - inter);
}

/** Area shared by two boxes. */
export function intersection(a: BoxPx, b: BoxPx): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/** The part of a box inside a width x height image. */
export function clipBox(box: BoxPx, width: number, height: number): BoxPx {
  const x1 = Math.max(0, box.x);
  const y1 = Math.max(0, box.y);
  const x2 = Math.min(width, box.x + box.width);
  const y2 = Math.min(height, box.y + box.height);
  return { x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1) };
}

/** A box scaled about the origin (working-copy pixels to the photo's, or back). */
export function scaleBox(box: BoxPx, s: number): BoxPx {
  return s === 1 ? box : { x: box.x * s, y: box.y * s, width: box.width * s, height: box.height * s };
}

/**
 * A box moved, not resized, to lie inside a width x height image along each axis it fits on
 * (centred on an axis it is longer than).
 */
export function movedInside(box: BoxPx, width: number, height: number): BoxPx {
  const along = (start: number, length: number, limit: number) => (length >= limit ? (limit - length) / 2 : Math.min(Math.max(start, 0), limit - length));
  return { x: along(box.x, box.width, width), y: along(box.y, box.height, height), width: box.width, height: box.height };
}
