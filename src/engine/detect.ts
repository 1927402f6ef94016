import type { OnnxRuntime, TensorOutput } from "../runtime/onnx.js";
import type { StageTimer } from "./stage-timer.js";
import { area, clipBox, intersection, intersectionOverUnion, type BoxPx, type PointPx } from "./geometry.js";
import type { RgbImage } from "./image.js";
import { letterbox } from "./letterbox.js";

export { clipBox, intersection, intersectionOverUnion, type BoxPx } from "./geometry.js";

/** One detected face. */
export interface Detection {
  box: BoxPx;
  /** Left eye, right eye, nose tip, left and right mouth corners, as they appear in the image. */
  landmarks: PointPx[];
  /** Detector confidence, 0..1. */
  score: number;
}

/** What a caller needs found. */
export interface DetectOptions {
  /**
   * Only the largest face matters, and any face near its size (Register, Recognize, Verify): the
   * tiles of a big photo are skipped once the whole-frame pass found a face so large that nothing
   * the tiles could add comes near it.
   */
  largestOnly?: boolean;
}

/** Finds faces in an image. */
export interface Detector {
  detect(image: RgbImage, options?: DetectOptions): Promise<Detection[]>;
}

/**
 * Every scan reads its region at this long side: a 640x480 camera frame at its own size, a larger
 * photo shrunk (and tiled, below), a smaller one enlarged. Measured with `npm run bench:accuracy`:
 * enlarging small photos to 320 or 640 instead of reading them as they are took the photos shrunk so
 * the face is ~24 px from 54 to 74 of 74 found, TAR@FAR1e-3 from 0.680 to 0.839 (320) or 0.884 (640).
 */
const INPUT_SIDE = 640;
/** YuNet's strides; its input sides must be multiples of the largest. */
const STRIDES = [8, 16, 32] as const;
const INPUT_DIVISOR = 32;
/**
 * OpenCV's FaceDetectorYN samples use 0.9. Measured here (`npm run bench:accuracy`, the group
 * photos): at 0.6 a 0.62 false face larger than the real one in a 4912x7360 photo became its
 * primary face; at 0.7 and 0.8 full resolution is perfect, and 0.7 keeps more faces of 36 px (59
 * of 74 against 55, measured before small photos were enlarged to 640). Hands and shadows in the
 * group photos scored 0.31 to 0.34; real faces of the labelled photos score 0.70 to 0.96.
 */
const MIN_SCORE = 0.7;
/** Boxes overlapping more than this (intersection over union) are the same face. */
const NMS_IOU = 0.3;
/**
 * A box mostly inside a higher-scoring one (intersection over the smaller box) is a partial view of
 * the same face, as tiles produce where they cut a face.
 */
const NMS_CONTAINED = 0.6;
/** Beyond this shrink of the whole frame, faces under ~25 px are lost: the frame is also scanned in tiles. */
const TILE_WHEN_SHRUNK_BY = 2.5;
/** Each tile covers this many original pixels, i.e. it is shrunk by 2 into a 640x480 input. */
const TILE_WIDTH = 1280;
const TILE_HEIGHT = 960;
/** Tiles overlap by this fraction so a face on a tile edge is whole in a neighbouring tile. */
const TILE_OVERLAP = 0.25;
/** At most this many tiles per image: beyond it tiles grow (each is shrunk more) rather than their number. */
const MAX_TILES = 24;
/** How much tiles grow at each step until they are few enough. */
const TILE_GROWTH = 1.25;
/**
 * The whole-frame pass finds most faces from 36 px of its input on and nearly all from 48 (in 640x480
 * frames: 43/74 at 24 px, 67/74 at 36, 72/74 at 48; README, Accuracy). Once it found a face at
 * least this wide (input pixels), a face only a closer look would find (the tiles, a larger working
 * copy) has under (48/64)^2 = 0.56 of its area: it can neither be the largest face nor the rival
 * of similar size that makes a reference photo ambiguous (0.8 of the area, reference-quality.ts).
 */
const LARGEST_NEEDS_NO_TILES = 64;
/** Faces larger than this fraction of a tile are left to the whole-frame pass. */
const TILE_MAX_FACE = 0.4;
/**
 * A face that fills the whole image lacks the context the detector was trained with; when the plain
 * pass finds nothing, the image is placed in a canvas this many times its size and scanned again.
 */
const PAD_CANVAS_FACTOR = 2;

/**
 * YuNet (libfacedetection.train, Apache-2.0) with its dynamic input size: boxes and five landmarks,
 * decoded as OpenCV's FaceDetectorYN does. Each frame is read at 640 px on its long side, big frames
 * are also tiled, and images with no face found are padded and retried.
 */
export function createYuNetDetector(runtime: OnnxRuntime, stage: StageTimer): Detector {
  /** Runs the model on the region (x, y, w, h) of the image (it may extend past the edges); one nested stage per scan. */
  function scanRegion(image: RgbImage, x: number, y: number, w: number, h: number): Promise<Detection[]> {
    return stage("detect_scan", () => scan(image, x, y, w, h));
  }

  async function scan(image: RgbImage, x: number, y: number, w: number, h: number): Promise<Detection[]> {
    const shrink = Math.max(w, h) / INPUT_SIDE;
    const inputW = roundUp(w / shrink), inputH = roundUp(h / shrink);
    const { input, scaleX, scaleY, originX, originY } = await letterbox(image, x, y, w, h, inputW, inputH, shrink);
    // The model takes the bytes as they are (RGB, height x width x 3; models/catalogue.json): its
    // own first nodes make them planar floats, faster than a JavaScript loop over every pixel.
    // The input's buffer is handed to the inference worker (transferred): it is letterbox's own.
    const out = await runtime.run("detect", { data: input.data, dims: [1, inputH, inputW, 3] });
    return decodeYuNet(out, inputW, inputH).map((d) => ({
      score: d.score,
      box: { x: d.box.x * scaleX + originX, y: d.box.y * scaleY + originY, width: d.box.width * scaleX, height: d.box.height * scaleY },
      landmarks: d.landmarks.map((p) => ({ x: p.x * scaleX + originX, y: p.y * scaleY + originY })),
    }));
  }

  return {
    async detect(image, options = {}) {
      const { width, height } = image;
      let candidates = await scanRegion(image, 0, 0, width, height);
      const bigFrame = Math.max(width, height) / INPUT_SIDE > TILE_WHEN_SHRUNK_BY;
      if (bigFrame && !(options.largestOnly && showsLargestFace(candidates.map((d) => d.box), width, height))) {
        for (const tile of tiles(width, height)) {
          const found = await scanRegion(image, tile.x, tile.y, tile.width, tile.height);
          candidates = candidates.concat(found.filter((d) => isSmallAndWhole(d.box, tile, width, height)));
        }
      }
      if (candidates.length === 0) {
        const canvasW = width * PAD_CANVAS_FACTOR;
        const canvasH = height * PAD_CANVAS_FACTOR;
        candidates = await scanRegion(image, (width - canvasW) / 2, (height - canvasH) / 2, canvasW, canvasH);
      }
      return nonMaximumSuppression(candidates)
        .filter((d) => area(clipBox(d.box, width, height)) >= 1)
        // Largest first by the part inside the image, which is what callers see.
        .sort((a, b) => area(clipBox(b.box, width, height)) - area(clipBox(a.box, width, height)));
    },
  };
}

/**
 * Whether the whole-frame pass, which reads any image at INPUT_SIDE, found a face large enough
 * (LARGEST_NEEDS_NO_TILES) that nothing a closer look could find (tiles, a larger working copy)
 * would be larger or near its size. Boxes in the same pixels as width and height.
 */
export function showsLargestFace(boxes: readonly BoxPx[], width: number, height: number): boolean {
  const inputPxPerPx = INPUT_SIDE / Math.max(width, height);
  return boxes.some((b) => Math.min(b.width, b.height) * inputPxPerPx >= LARGEST_NEEDS_NO_TILES);
}

/** The next multiple of YuNet's largest stride. */
function roundUp(side: number): number {
  return Math.max(INPUT_DIVISOR, Math.ceil(Math.round(side) / INPUT_DIVISOR) * INPUT_DIVISOR);
}

/**
 * YuNet's outputs in input pixels: per stride and grid cell, score = sqrt(cls x obj) (each clamped
 * to 0..1), box centre offset and log size in strides, landmarks as offsets in strides from the cell.
 */
function decodeYuNet(out: Record<string, TensorOutput>, inputW: number, inputH: number): Detection[] {
  const found: Detection[] = [];
  for (const stride of STRIDES) {
    const cols = inputW / stride, rows = inputH / stride;
    const cls = out[`cls_${stride}`].data, obj = out[`obj_${stride}`].data;
    const bbox = out[`bbox_${stride}`].data, kps = out[`kps_${stride}`].data;
    for (let r = 0, i = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++, i++) {
        const score = Math.sqrt(clamp01(cls[i]) * clamp01(obj[i]));
        if (score < MIN_SCORE) continue;
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

/** Overlapping tiles of TILE_WIDTH x TILE_HEIGHT (or larger, to stay within MAX_TILES) covering the frame. */
export function tiles(width: number, height: number): BoxPx[] {
  const starts = (size: number, tile: number): number[] => {
    if (size <= tile) return [0];
    const stride = tile * (1 - TILE_OVERLAP);
    const count = Math.ceil((size - tile) / stride) + 1;
    const step = (size - tile) / (count - 1);
    return Array.from({ length: count }, (_, i) => Math.round(i * step));
  };
  let tileWidth = TILE_WIDTH;
  let tileHeight = TILE_HEIGHT;
  while (starts(width, tileWidth).length * starts(height, tileHeight).length > MAX_TILES) {
    tileWidth = Math.round(tileWidth * TILE_GROWTH);
    tileHeight = Math.round(tileHeight * TILE_GROWTH);
  }
  const result: BoxPx[] = [];
  for (const y of starts(height, tileHeight)) {
    for (const x of starts(width, tileWidth)) {
      result.push({ x, y, width: Math.min(tileWidth, width), height: Math.min(tileHeight, height) });
    }
  }
  return result;
}

/**
 * Tiles are there for small faces only: a large face is the whole-frame pass's job, and a face that
 * touches a tile edge inside the image may be cut in half by it.
 */
function isSmallAndWhole(box: BoxPx, tile: BoxPx, width: number, height: number): boolean {
  if (Math.max(box.width, box.height) > Math.min(tile.width, tile.height) * TILE_MAX_FACE) return false;
  const margin = 2;
  const cutLeft = tile.x > 0 && box.x < tile.x + margin;
  const cutTop = tile.y > 0 && box.y < tile.y + margin;
  const cutRight = tile.x + tile.width < width && box.x + box.width > tile.x + tile.width - margin;
  const cutBottom = tile.y + tile.height < height && box.y + box.height > tile.y + tile.height - margin;
  return !(cutLeft || cutTop || cutRight || cutBottom);
}

/** Keeps the best-scoring box of each face. */
export function nonMaximumSuppression(detections: Detection[]): Detection[] {
  const sorted = [...detections].sort((a, b) => b.score - a.score);
  const kept: Detection[] = [];
  for (const d of sorted) {
    const duplicate = kept.some((k) => {
      const smaller = Math.min(area(k.box), area(d.box));
      return intersectionOverUnion(k.box, d.box) > NMS_IOU || intersection(k.box, d.box) / smaller > NMS_CONTAINED;
    });
    if (!duplicate) kept.push(d);
  }
  return kept;
}
