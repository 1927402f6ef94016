import type { TensorOutput } from "../runtime/onnx.js";
import type { BoxPx, PointPx } from "./geometry.js";

/** YuNet's strides; its input sides must be multiples of the largest. */
export const YUNET_STRIDES = [8, 16, 32] as const;

/** One face in the model's input pixels. */
export interface RawDetection {
  box: BoxPx;
  /** Left eye, right eye, nose tip, left and right mouth corners. */
  landmarks: PointPx[];
  /** Detector confidence, 0..1. */
  score: number;
}

/**
 * YuNet's outputs in input pixels, every cell scoring at least `minScore`: per stride and grid
 * cell, score = sqrt(cls x obj) (each clamped to 0..1), box centre offset and log size in strides,
 * landmarks as offsets in strides from the cell (as OpenCV's FaceDetectorYN decodes them).
 */
export function decodeYuNet(out: Record<string, TensorOutput>, inputW: number, inputH: number, minScore: number): RawDetection[] {
  const found: RawDetection[] = [];
  for (const stride of YUNET_STRIDES) {
    const cols = inputW / stride, rows = inputH / stride;
    const cls = out[`cls_${stride}`].data, obj = out[`obj_${stride}`].data;
    const bbox = out[`bbox_${stride}`].data, kps = out[`kps_${stride}`].data;
    for (let r = 0, i = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++, i++) {
        const score = Math.sqrt(clamp01(cls[i]) * clamp01(obj[i]));
        if (score < minScore) continue;
        const cx = (c + bbox[i * 4]) * stride, cy = (r + bbox[i * 4 + 1]) * stride;
        const w = Math.exp(bbox[i * 4 + 2]) * stride, h = Math.exp(bbox[i * 4 + 3]) * stride;
        const landmarks: PointPx[] = [];
        for (let k = 0; k < 5; k++) landmarks.push({ x: (c + kps[i * 10 + 2 * k]) * stride, y: (r + kps[i * 10 + 2 * k + 1]) * stride });
        found.push({ box: { x: cx - w / 2, y: cy - h / 2, width: w, height: h }, landmarks, score });
      }
    }
  }
  return found;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
