import type { TensorOutput } from "../runtime/onnx.js";
import type { BoxPx, PointPx } from "./geometry.js";

/** YuNet's strides; its input sides must be multiples of the largest. */
export const YUNET_STRIDES = [8, 16, 32] as const;

/** One face found, in the image's pixels. */
export interface RawDetection {
  box: BoxPx;
  /** Left eye, right eye, nose tip, left and right mouth corners. */
  landmarks: PointPx[];
  /** Detector confidence, 0..1. */
  score: number;
}

/** Where a model input lies in the image: image x = input x * scaleX + originX, and y alike. */
export interface InputPlacement {
  scaleX: number;
  scaleY: number;
  originX: number;
  originY: number;
}

/**
 * A box YuNet found, in image pixels, without its landmarks: a scan of a crowd or of noise finds
 * thousands of boxes, most of them suppressed or never needed, and five points made for each were
 * garbage for the event loop to collect. `landmarksOf` reads them for the boxes kept.
 */
export interface YuNetBox {
  box: BoxPx;
  score: number;
  /** The box's longer side in the model's input pixels. */
  inputSide: number;
  /** The stride and the index of the grid cell (row by row) that found it. */
  stride: number;
  cell: number;
}

/**
 * YuNet's boxes in image pixels, every cell scoring at least `minScore`: per stride and grid cell,
 * score = sqrt(cls x obj) (each clamped to 0..1), box centre offset and log size in strides (as
 * OpenCV's FaceDetectorYN decodes them).
 */
export function decodeYuNetBoxes(out: Record<string, TensorOutput>, inputW: number, inputH: number, minScore: number, at: InputPlacement): YuNetBox[] {
  const found: YuNetBox[] = [];
  for (const stride of YUNET_STRIDES) {
    const cols = inputW / stride, rows = inputH / stride;
    const cls = out[`cls_${stride}`].data, obj = out[`obj_${stride}`].data, bbox = out[`bbox_${stride}`].data;
    for (let row = 0, cell = 0; row < rows; row++) {
      for (let col = 0; col < cols; col++, cell++) {
        const score = Math.sqrt(clamp01(cls[cell]) * clamp01(obj[cell]));
        if (score < minScore) continue;
        const cx = (col + bbox[cell * 4]) * stride, cy = (row + bbox[cell * 4 + 1]) * stride;
        const w = Math.exp(bbox[cell * 4 + 2]) * stride, h = Math.exp(bbox[cell * 4 + 3]) * stride;
        const box = { x: (cx - w / 2) * at.scaleX + at.originX, y: (cy - h / 2) * at.scaleY + at.originY, width: w * at.scaleX, height: h * at.scaleY };
        found.push({ box, score, inputSide: Math.max(w, h), stride, cell });
      }
    }
  }
  return found;
}

/** A box's five landmarks in image pixels (`inputW` the model input's width): offsets in strides from its cell. */
export function landmarksOf(out: Record<string, TensorOutput>, found: YuNetBox, inputW: number, at: InputPlacement): PointPx[] {
  const { stride, cell } = found;
  const cols = inputW / stride, col = cell % cols, row = Math.floor(cell / cols);
  const kps = out[`kps_${stride}`].data;
  const points: PointPx[] = [];
  for (let k = 0, i = cell * 10; k < 5; k++, i += 2) {
    points.push({ x: (col + kps[i]) * stride * at.scaleX + at.originX, y: (row + kps[i + 1]) * stride * at.scaleY + at.originY });
  }
  return points;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
