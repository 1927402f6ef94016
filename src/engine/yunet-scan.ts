import type { OnnxRuntime } from "../runtime/onnx.js";
import { intersection, type BoxPx } from "./geometry.js";
import { BoxGrid } from "./box-grid.js";
import type { RgbImage } from "./image.js";
import { letterbox } from "./letterbox.js";
import { nonMaximumSuppression } from "./suppression.js";
import { YUNET_STRIDES, decodeYuNetBoxes, landmarksOf, type RawDetection, type YuNetBox } from "./yunet-outputs.js";

/**
 * OpenCV's FaceDetectorYN samples use 0.9. Measured here (`npm run bench:accuracy`, the group
 * photos): at 0.6 a 0.62 false face larger than the real one in a 4912x7360 photo became its
 * primary face; at 0.7 and 0.8 full resolution is perfect, and 0.7 keeps more faces of 36 px (59
 * of 74 against 55, measured before small photos were enlarged to 640). Hands and shadows in the
 * group photos scored 0.31 to 0.34; real faces of the labelled photos score 0.70 to 0.96.
 */
export const MIN_SCORE = 0.7;
/** Faces larger than this (input pixels) are found sure or not at all: nearly all from 48 px. */
const UNSURE_MAX_INPUT_PX = 48;
const INPUT_DIVISOR = YUNET_STRIDES[YUNET_STRIDES.length - 1];

/** What one scan found. */
export interface Scan {
  /** Faces scoring at least MIN_SCORE. */
  sure: RawDetection[];
  /** Small faces (UNSURE_MAX_INPUT_PX) scoring under MIN_SCORE: worth a closer look where no face is. */
  unsure: YuNetBox[];
  /**
   * Whether a box overlaps any box of this scan scoring at least MIN_SCORE (that a combined scan
   * keeps), suppressed or not: a face found there. Closer looks skip such boxes (with the sure boxes
   * kept alone, 6 % more closer looks ran on the clip video/frames30).
   */
  overlapsSure: (box: BoxPx) => boolean;
}

/** One of several scans a detection combines (a big photo's whole frame and its tiles). */
export interface CombinedScan {
  /** Whether a box this scan found is its to give (a tile's: a small face it shows whole). */
  keeps(box: BoxPx): boolean;
}

/** The whole frame of a combined detection: every box it finds is its to give. */
export const WHOLE_FRAME: CombinedScan = { keeps: () => true };

/**
 * Runs YuNet on a region of the image (it may extend past the edges), read at `side` on its long
 * side: the faces it is sure of, with landmarks, and the small ones it is unsure of, scoring at
 * least `minScore`. A `combined` scan gives the boxes it keeps, one box per face, as OpenCV's
 * FaceDetectorYN keeps per image: with all scans' boxes suppressed together after the last, a photo
 * of 4,900 small faces held the event loop 0.4-0.7 s, 0.2-0.3 s scan by scan (`npm run
 * bench:held-calls`). A scan on its own leaves suppression to the caller, which reads the faint
 * boxes only when it wants them (most frames do not).
 */
export async function scanWithYuNet(runtime: OnnxRuntime, image: RgbImage, { x, y, width: w, height: h }: BoxPx, side: number, minScore: number, combined?: CombinedScan): Promise<Scan> {
  const { width: inputW, height: inputH, shrink } = scanInputSize(w, h, side);
  const placed = await letterbox(image, x, y, w, h, inputW, inputH, shrink);
  // The model takes the bytes as they are (RGB, height x width x 3; models/catalogue.json): its
  // own first nodes make them planar floats, faster than a JavaScript loop over every pixel.
  // The input's buffer is handed to the inference worker (transferred): it is letterbox's own.
  const out = await runtime.run("detect", { data: placed.input.data, dims: [1, inputH, inputW, 3] });
  const sure: YuNetBox[] = [], unsure: YuNetBox[] = [];
  for (const found of decodeYuNetBoxes(out, inputW, inputH, minScore, placed)) {
    if (combined !== undefined && !combined.keeps(found.box)) continue;
    if (found.score >= MIN_SCORE) sure.push(found);
    else if (found.inputSide <= UNSURE_MAX_INPUT_PX) unsure.push(found);
  }
  const withLandmarks = (found: YuNetBox): RawDetection => ({ box: found.box, landmarks: landmarksOf(out, found, inputW, placed), score: found.score });
  if (combined === undefined) return { sure: sure.map(withLandmarks), unsure, overlapsSure: overlapTest(sure, false) };
  // Filed now, between the scans, rather than all at once after the last.
  return { sure: nonMaximumSuppression(sure).map(withLandmarks), unsure: nonMaximumSuppression(unsure), overlapsSure: overlapTest(sure, true) };
}

/**
 * Whether a box overlaps any of `boxes`, asking only those near it (a grid, filed at once or at the
 * first question): comparing each unsure box of a photo of thousands of small faces with every sure
 * one held the event loop for seconds.
 */
function overlapTest(boxes: readonly YuNetBox[], fileNow: boolean): (box: BoxPx) => boolean {
  let grid = fileNow ? BoxGrid.holding(boxes) : undefined;
  return (box) => (grid ??= BoxGrid.holding(boxes)).someNear(box, (s) => intersection(s.box, box) > 0);
}

/**
 * The model input a region of w x h is read into at `side` on its long side: its aspect kept,
 * rounded up to YuNet's largest stride, and the region's pixels per input pixel.
 */
export function scanInputSize(w: number, h: number, side: number): { width: number; height: number; shrink: number } {
  const shrink = Math.max(w, h) / side;
  return { width: roundUp(w / shrink), height: roundUp(h / shrink), shrink };
}

/** The next multiple of YuNet's largest stride. */
function roundUp(side: number): number {
  return Math.max(INPUT_DIVISOR, Math.ceil(Math.round(side) / INPUT_DIVISOR) * INPUT_DIVISOR);
}
