import type { OnnxRuntime } from "../runtime/onnx.js";
import type { StageTimer } from "./stage-timer.js";
import { area, clipBox, intersection, intersectionOverUnion, type BoxPx } from "./geometry.js";

export { clipBox, intersection, intersectionOverUnion, type BoxPx } from "./geometry.js";
import { toPlanarTensor, type RgbImage } from "./image.js";
import { letterbox } from "./letterbox.js";


/** One detected face. */
export interface Detection {
  box: BoxPx;
  /** Detector confidence, 0..1. */
  score: number;
}

/** Finds faces in an image; the interface a second detector (e.g. YuNet) would implement too. */
export interface Detector {
  detect(image: RgbImage): Promise<Detection[]>;
}

const INPUT_WIDTH = 320;
const INPUT_HEIGHT = 240;
/**
 * The package uses 0.65; on the group photos here arms and hands scored up to 0.81 while every real
 * face scored 0.90 or more.
 */
const MIN_SCORE = 0.85;
/** Boxes overlapping more than this (intersection over union) are the same face. */
const NMS_IOU = 0.4;
/**
 * A box mostly inside a higher-scoring one (intersection over the smaller box) is a partial view of
 * the same face, as tiles produce where they cut a face.
 */
const NMS_CONTAINED = 0.6;
/**
 * The model's smallest anchor is 10 px of its 320x240 input, so a frame shrunk more than this factor
 * loses faces smaller than 10 x factor pixels: beyond it, the frame is also scanned in tiles.
 */
const TILE_WHEN_SHRUNK_BY = 2.5;
/** Each tile covers this many original pixels, i.e. it is shrunk by 2 into the model input. */
const TILE_WIDTH = 640;
const TILE_HEIGHT = 480;
/** Tiles overlap by this fraction so a face on a tile edge is whole in a neighbouring tile. */
const TILE_OVERLAP = 0.25;
/**
 * At most this many tiles per image: beyond it tiles grow (each is shrunk more into the model
 * input, so the smallest face found grows too) rather than their number. A 4096x3335 working copy
 * takes 36 tiles of 1000x750 (faces from ~31 px) instead of 81; a 4K frame keeps its 48 of 640x480.
 */
const MAX_TILES = 48;
/** How much tiles grow at each step until they are few enough. */
const TILE_GROWTH = 1.25;
/** Faces larger than this fraction of a tile are left to the whole-frame pass. */
const TILE_MAX_FACE = 0.4;
/**
 * A face that fills the whole image lacks the context the detector was trained with; when the plain
 * pass finds nothing, the image is placed in a canvas this many times its size and scanned again.
 */
const PAD_CANVAS_FACTOR = 2;

/**
 * The Ultra-Light-Fast-Generic-Face-Detector (RFB-320) of the faceplugin package. Its outputs are
 * already decoded: per anchor, face probability and a normalised corner box. Frames are letterboxed
 * (aspect kept), big frames are also tiled, and images with no face found are padded and retried.
 */
export function createUltraLightDetector(runtime: OnnxRuntime, stage: StageTimer): Detector {
  /** Runs the model on the region (x, y, w, h) of the image (it may extend past the edges); one nested stage per scan. */
  function scanRegion(image: RgbImage, x: number, y: number, w: number, h: number): Promise<Detection[]> {
    return stage("detect_scan", () => scan(image, x, y, w, h));
  }

  async function scan(image: RgbImage, x: number, y: number, w: number, h: number): Promise<Detection[]> {
    const { input, scaleX, scaleY, originX, originY } = await letterbox(image, x, y, w, h, INPUT_WIDTH, INPUT_HEIGHT);
    const data = toPlanarTensor(input, "rgb", [127, 127, 127], [128, 128, 128]);
    const out = await runtime.run("detect", { data, dims: [1, 3, INPUT_HEIGHT, INPUT_WIDTH] });
    const scores = out.scores.data as Float32Array;
    const boxes = out.boxes.data as Float32Array;
    const found: Detection[] = [];
    for (let i = 0; i < scores.length / 2; i++) {
      const score = scores[i * 2 + 1];
      if (score < MIN_SCORE) continue;
      const x1 = boxes[i * 4] * INPUT_WIDTH * scaleX + originX;
      const y1 = boxes[i * 4 + 1] * INPUT_HEIGHT * scaleY + originY;
      const x2 = boxes[i * 4 + 2] * INPUT_WIDTH * scaleX + originX;
      const y2 = boxes[i * 4 + 3] * INPUT_HEIGHT * scaleY + originY;
      if (x2 <= x1 || y2 <= y1) continue;
      found.push({ box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, score });
    }
    return found;
  }

  return {
    async detect(image) {
      const { width, height } = image;
      let candidates = await scanRegion(image, 0, 0, width, height);
      const shrink = Math.max(width / INPUT_WIDTH, height / INPUT_HEIGHT);
      if (shrink > TILE_WHEN_SHRUNK_BY) {
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
        .map((d) => ({ ...d, box: squareAround(d.box) }))
        .filter((d) => area(clipBox(d.box, width, height)) >= 1)
        // Largest first by the part inside the image, which is what callers see.
        .sort((a, b) => area(clipBox(b.box, width, height)) - area(clipBox(a.box, width, height)));
    },
  };
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

/**
 * The package turns each box into a square of the box's height around its centre: the landmark model
 * was trained on such crops. The square may extend past the image; see clipBox.
 */
function squareAround(box: BoxPx): BoxPx {
  const side = box.height;
  return { x: box.x + box.width / 2 - side / 2, y: box.y, width: side, height: side };
}
