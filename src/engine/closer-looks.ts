import { movedInside, type BoxPx } from "./geometry.js";

// Where, how large and how often the detector reads a region again around a face it has a box for.

/** A closer look: a square `context` times a face's width around it, read at `side`. */
export interface CloserLook {
  context: number;
  side: number;
  /** Moved to lie inside the image, where the model sees no grey beyond its edges. */
  insideImage?: boolean;
}

/**
 * Closer looks at an unsure face, in turn while each is sure of it: a square `context` times its
 * width around it, read at `side` (the face at 51 and 56 px of the model's input). The first is
 * the cheaper and rejects most unsure boxes that are not faces; alone it lets a hand of the clip
 * and a dress's pattern through (0.81 and 0.76 there, 0.70 and nothing at the second); the tight
 * portraits score 0.80 to 0.92 at each. A first look with more context (4x, the face at 40 px)
 * missed two of them. The last look shows the face largest: its box and landmarks are kept.
 */
export const ZOOM_LOOKS: readonly CloserLook[] = [{ context: 2.5, side: 128 }, { context: 4, side: 224 }];
/** At most this many unsure faces per image get a closer look, best first: each costs ZOOM_LOOKS' scans. */
export const MAX_ZOOMS = 4;
/**
 * Of those, at most this many faint ones (FAINT_SCORE in detect.ts), and only in an image with no
 * sure face. Looked at everywhere, faint boxes filled MAX_ZOOMS in every frame of the clip (1210
 * closer looks over its 300 frames against 472; one per frame, 740) and took a hand of it for a face
 * (frame_041, looks 0.82); one look made `bench:latency`'s single-face frame's detect stage ~1.9 ms
 * slower.
 */
export const MAX_FAINT_ZOOMS = 1;
/**
 * The looks' mean score that makes an unsure face a face: the tight portraits' means were 0.84 to
 * 0.92, the clip's hands' at most 0.75 (from a first-pass score of 0.1 or more).
 */
export const ZOOM_MIN_SCORE = 0.8;
/**
 * A face of the frame before, looked for again around its box (DetectOptions.near): as an unsure
 * face's first closer look, the face at 51 px of a 128 px input, where YuNet is sure of real faces;
 * a face that moved up to half its width keeps its centre inside the old box. The region is kept
 * inside the frame: a face at the frame's edge scored 0.82 in the whole-frame pass and 0.30 with
 * grey beyond the edge in its look (on the clip `video/frames30`, looks missing a face the
 * whole-frame pass found 46 -> 14; scratch, docs/benchmarks.md). Looks at other sizes (the face at
 * 51 to 64 px, 2.5 to 4 times its width around it) missed as many.
 */
export const NEAR_LOOK: CloserLook = { ...ZOOM_LOOKS[0], insideImage: true };
/**
 * At most this many faces are looked for near their boxes (DetectOptions.near): a look costs about
 * a tenth of a whole-frame pass (128x128 against 640x480 input), so a crowd is cheaper read whole.
 */
export const MAX_NEAR_LOOKS = 8;
/**
 * A small face's landmarks read again for alignment (REFINE_BELOW_INPUT_PX in detect.ts): the face
 * is 64 px of the model's input. Views showing the face at 51 to 107 px (128 to 320 px inputs, 2.5
 * to 4 times the face) measured alike within the set's noise; this is one of the cheapest.
 */
export const REFINE_LOOK: CloserLook = { context: 3, side: 192 };

/** The square region `look` reads around `box` in a width x height image. */
export function lookRegion(box: BoxPx, look: CloserLook, width: number, height: number): BoxPx {
  // By its width, as faces are measured here (YuNet's boxes are ~1.2 times taller than wide).
  const extent = box.width * look.context;
  const around = { x: box.x + box.width / 2 - extent / 2, y: box.y + box.height / 2 - extent / 2, width: extent, height: extent };
  return look.insideImage === true ? movedInside(around, width, height) : around;
}
