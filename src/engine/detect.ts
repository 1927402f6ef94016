import type { OnnxRuntime } from "../runtime/onnx.js";
import type { StageTimer } from "./stage-timer.js";
import type { BoxPx } from "./geometry.js";
import { MAX_FAINT_ZOOMS, MAX_NEAR_LOOKS, MAX_ZOOMS, NEAR_LOOK, REFINE_LOOK, ZOOM_LOOKS, ZOOM_MIN_SCORE, lookRegion, type CloserLook } from "./closer-looks.js";
import type { RgbImage } from "./image.js";
import type { FrameSpots } from "./rejected-spots.js";
import type { DetectOptions } from "./detect-options.js";
import { containsCentreOf, keptBestFirst, largestFirst } from "./suppression.js";
import { isSmallAndWhole, tiles } from "./tiles.js";
import { Turns, mapInTurns } from "./in-turns.js";
import type { RawDetection, YuNetBox } from "./yunet-outputs.js";
import { MIN_SCORE, WHOLE_FRAME, scanWithYuNet, type CombinedScan, type Scan } from "./yunet-scan.js";

export { clipBox, intersection, intersectionOverUnion, type BoxPx } from "./geometry.js";
export type { DetectOptions } from "./detect-options.js";

/** One detected face, in the image's pixels. */
export type Detection = RawDetection;

/** Finds faces in an image. */
export interface Detector {
  detect(image: RgbImage, options?: DetectOptions): Promise<Detection[]>;
  /**
   * A face's landmarks for aligning it: a small face's read again from a larger view of it, a
   * larger face's as found.
   */
  refineLandmarks(image: RgbImage, face: Detection): Promise<Detection["landmarks"]>;
}

/**
 * The whole-frame pass and the tiles read their region at this long side (closer looks and the quick
 * and enlarged reads below at their own): a 640x480 camera frame at its own size, a larger
 * photo shrunk (and tiled, below), a smaller one enlarged. Measured with `npm run bench:accuracy`:
 * enlarging small photos to 320 or 640 instead of reading them as they are took the photos shrunk so
 * the face is ~24 px from 54 to 74 of 74 found, TAR@FAR1e-3 from 0.680 to 0.839 (320) or 0.884 (640).
 */
const INPUT_SIDE = 640;
/**
 * A face YuNet reads at ~24 px of its input with nothing around it (a tight portrait shrunk into a
 * camera frame) often scores far under MIN_SCORE, down to 0.01; enlarged so it is ~50 px, the same
 * face scores 0.80 to 0.92. Small faces scoring at least UNSURE_SCORE are looked at again
 * (ZOOM_LOOKS). Measured on the 24 px camera rows of `npm run bench:accuracy` (tight portraits):
 * from 0.1, 64 of 74 found; from 0.01, 72. On the clip `video/frames30`, the group and the labelled
 * photos the closer looks added no face but a real, half-hidden one in the background of a
 * 3880x5184 photo.
 */
const UNSURE_SCORE = 0.01;
/**
 * A box the whole-frame pass scored under this is faint: the faint portraits scored 0.01 to 0.08,
 * then 0.81 to 0.91 in both closer looks; a cluttered frame has many faint boxes (MAX_FAINT_ZOOMS).
 */
const FAINT_SCORE = 0.1;
/**
 * A face read under this width (input pixels) has its landmarks read again for alignment
 * (REFINE_LOOK): at 24 to 36 px YuNet places them about an eighth of the eye distance off, which the
 * recogniser feels. Measured with `npm run bench:accuracy` (docs/benchmarks.md): at ~24 px in a
 * 640x480 frame the EER fell from 0.034 to 0.013 and TAR@FAR1e-2 rose from 0.924 to 0.987.
 */
const REFINE_BELOW_INPUT_PX = 64;
/** Beyond this shrink of the whole frame, faces under ~25 px are lost: the frame is also scanned in tiles. */
const TILE_WHEN_SHRUNK_BY = 2.5;
/**
 * Tiles scanned at once: with two inference workers (a core each on this 2-core machine) a call
 * running alone has both at work on its tiles, and a call's tiles never queue more than two runs
 * ahead of other calls' (each worker runs its queue in turn).
 */
const TILES_AT_ONCE = 2;
/**
 * The whole-frame pass alone finds most faces from 36 px of its input on and nearly all from 48 (in
 * 640x480 frames: 43/74 at 24 px, 67/74 at 36, 72/74 at 48; docs/benchmarks.md). Once it found a face
 * at least this wide (input pixels), a face only a closer look would find (the tiles, a larger
 * working copy, a zoom on an unsure face) has under (48/64)^2 = 0.56 of its area: it can neither
 * be the largest face nor the rival of similar size that makes a reference photo ambiguous (0.8 of
 * the area, reference-quality.ts).
 */
const LARGEST_NEEDS_NO_TILES = 64;
/**
 * A call about the largest face first reads the image at this long side (a quarter of the pixels),
 * and answers from it when it shows a face at least QUICK_ENOUGH_PX wide in the whole-frame pass's
 * input pixels: 80 px of this input, where YuNet is sure and its landmarks serve as well (`npm run
 * bench:accuracy`, docs/benchmarks.md), and a rival of 0.8 its area (reference-quality.ts) is
 * still over 70 px.
 */
export const QUICK_SIDE = 320;
const QUICK_ENOUGH_PX = 160;
/**
 * A call about one face (largestOnly: Register, Recognize, Verify) whose image showed none to the
 * whole-frame pass and the closer looks reads it again at up to ENLARGE_AT_MOST times its size, at
 * most this long side, before it answers that there is no face: tight portraits shrunk into a camera
 * frame, whose faces have no head or hair around them, show there (`npm run bench:accuracy`,
 * 640x480 frames: at 36 px 71 -> 74 of 74 found, at 48 px 72 -> 74; at 1.5 times the size too). It
 * makes a faceless 640x480 frame's detection about three times as long (21 -> 67 ms, by hand), which
 * Detect and Sync, where frames without a face are common and no error, do not pay.
 */
const ENLARGED_SIDE = 1280;
const ENLARGE_AT_MOST = 2;
/**
 * What the enlarged read must score: the portraits it finds score 0.86 to 0.90 there, a hand of the
 * clip (frame_041 with its faces covered) 0.74, and one portrait at 24 px 0.75 (left unfound).
 */
const ENLARGED_MIN_SCORE = 0.8;
/**
 * A face that fills the whole image lacks the context the detector was trained with; when the plain
 * pass finds nothing, the image is placed in a canvas this many times its size and scanned again.
 */
const PAD_CANVAS_FACTOR = 2;

/**
 * YuNet (libfacedetection.train, Apache-2.0) with its dynamic input size: boxes and five landmarks,
 * decoded as OpenCV's FaceDetectorYN does. Each frame is read at 640 px on its long side, big frames
 * are also tiled, small faces it is unsure of are looked at again enlarged, and images with no face
 * found are padded and retried.
 */
export function createYuNetDetector(runtime: OnnxRuntime, stage: StageTimer): Detector {
  /**
   * Runs the model on a region of the image (it may extend past the edges), read at `side` on its
   * long side: faces it is sure of, and small ones it is unsure of, scoring at least `minScore`
   * (MIN_SCORE: none); a `combined` scan only the boxes it keeps, one per face (scanWithYuNet).
   * One nested stage per scan.
   */
  function scanRegion(label: string, image: RgbImage, region: BoxPx, side = INPUT_SIDE, minScore = UNSURE_SCORE, combined?: CombinedScan): Promise<Scan> {
    return stage(label, () => scanWithYuNet(runtime, image, region, side, minScore, combined));
  }

  /**
   * The best sure reading of the face in `box` (its centre inside the box) in a closer look around
   * it. Only sure faces count: a closer look gets no closer look of its own.
   */
  async function readCloser(image: RgbImage, box: BoxPx, look: CloserLook, label: string): Promise<Detection | undefined> {
    const { sure } = await scanRegion(label, image, lookRegion(box, look, image.width, image.height), look.side, MIN_SCORE);
    return sure.filter((d) => containsCentreOf(box, d.box)).sort((a, b) => b.score - a.score)[0];
  }

  /**
   * Looks again, enlarged, at the small faces the scans were unsure of (at most MAX_ZOOMS, best
   * first, none in a sure area of a scan): a face is kept where closer looks at two scales agree on it.
   */
  async function confirm(image: RgbImage, scans: readonly Scan[], rejectedSpots?: FrameSpots): Promise<Detection[]> {
    // Faint boxes only where no face was found sure, so a frame showing a face pays nothing for
    // them, not even their suppression (a clip frame has ~110 of them beside ~8 unsure ones).
    const faintAllowed = scans.every((scan) => scan.sure.length === 0) && rejectedSpots?.looksAtFaint !== false;
    const unsure = scans.flatMap((scan) => scan.unsure);
    // Best first, so the faint come last and only take what the cap leaves.
    const candidates: YuNetBox[] = [];
    let faint = 0;
    // A crowd's scans leave thousands of unsure boxes, nearly all on a face found: read in turns.
    const turns = new Turns();
    for (const u of keptBestFirst(faintAllowed ? unsure : unsure.filter((u) => u.score >= FAINT_SCORE))) {
      if (turns.due()) await turns.giveWay();
      if (candidates.length === MAX_ZOOMS || (u.score < FAINT_SCORE && faint === MAX_FAINT_ZOOMS)) break;
      if (scans.some((scan) => scan.overlapsSure(u.box)) || rejectedSpots?.recentlyRejected(u.box) === true) continue;
      candidates.push(u);
      if (u.score < FAINT_SCORE) faint++;
    }
    const confirmed = await Promise.all(candidates.map(async (u) => {
      // Most unsure boxes that are not faces are rejected by the first look; the next runs only
      // where the one before was sure.
      const looks: Detection[] = [];
      for (const look of ZOOM_LOOKS) {
        const best = await readCloser(image, u.box, look, "detect_zoom");
        if (best === undefined) return [];
        looks.push(best);
      }
      const meanScore = looks.reduce((sum, d) => sum + d.score, 0) / looks.length;
      return meanScore >= ZOOM_MIN_SCORE ? [{ ...looks[looks.length - 1], score: meanScore }] : [];
    }));
    candidates.forEach((u, i) => { if (confirmed[i].length === 0) rejectedSpots?.reject(u.box); });
    return confirmed.flat();
  }

  return {
    async refineLandmarks(image, face) {
      if (face.box.width * wholeFrameInputPxPerPx(image.width, image.height) >= REFINE_BELOW_INPUT_PX) return face.landmarks;
      const closer = await readCloser(image, face.box, REFINE_LOOK, "landmarks_scan");
      // A view that no longer sees the face sure keeps the landmarks it was found with.
      return closer?.landmarks ?? face.landmarks;
    },

    async detect(image, options = {}) {
      const rejectedSpots = options.rejectedSpots?.nextFrame();
      const { width, height } = image;
      if (options.near !== undefined && options.near.length > 0 && options.near.length <= MAX_NEAR_LOOKS) {
        const again = await Promise.all(options.near.map((box) => readCloser(image, box, NEAR_LOOK, "detect_near")));
        if (again.every((d) => d !== undefined)) return largestFirst(again as Detection[], width, height);
      }
      const whole = { x: 0, y: 0, width, height };
      if (options.largestOnly === true && options.quickReadDone !== true) {
        const { sure } = await scanRegion("detect_quick", image, whole, QUICK_SIDE, MIN_SCORE);
        if (showsFaceOf(sure.map((d) => d.box), width, height, QUICK_ENOUGH_PX)) return largestFirst(sure, width, height);
      }
      const bigFrame = Math.max(width, height) / INPUT_SIDE > TILE_WHEN_SHRUNK_BY;
      // A big frame's scans are combined: each keeps one box per face as it ends (scanWithYuNet).
      const scans = [await scanRegion("detect_scan", image, whole, INPUT_SIDE, UNSURE_SCORE, bigFrame ? WHOLE_FRAME : undefined)];
      let { sure } = scans[0];
      // Whatever a closer look (tiles, zooms) could add is then too small to matter.
      const largestShown = options.largestOnly === true && showsLargestFace(sure.map((d) => d.box), width, height);
      if (bigFrame && !largestShown) {
        const regions = tiles(width, height);
        scans.push(...await mapInTurns(regions, TILES_AT_ONCE, (tile) =>
          scanRegion("detect_scan", image, tile, INPUT_SIDE, UNSURE_SCORE, { keeps: (box) => isSmallAndWhole(box, tile, width, height) })));
        sure = scans.flatMap((scan) => scan.sure);
      }
      if (!largestShown) sure = sure.concat(await confirm(image, scans, rejectedSpots));
      const enlargedSide = Math.min(ENLARGED_SIDE, ENLARGE_AT_MOST * Math.max(width, height));
      if (sure.length === 0 && options.largestOnly === true && !bigFrame && enlargedSide > INPUT_SIDE) {
        sure = (await scanRegion("detect_enlarged", image, whole, enlargedSide, MIN_SCORE)).sure.filter((d) => d.score >= ENLARGED_MIN_SCORE);
      }
      if (sure.length === 0) {
        const canvasW = width * PAD_CANVAS_FACTOR;
        const canvasH = height * PAD_CANVAS_FACTOR;
        ({ sure } = await scanRegion("detect_scan", image, { x: (width - canvasW) / 2, y: (height - canvasH) / 2, width: canvasW, height: canvasH }, INPUT_SIDE, MIN_SCORE));
      }
      return largestFirst(sure, width, height);
    },
  };
}

/**
 * Whether the whole-frame pass, which reads any image at INPUT_SIDE, found a face large enough
 * (LARGEST_NEEDS_NO_TILES) that nothing a closer look could find (tiles, a larger working copy)
 * would be larger or near its size. Boxes in the same pixels as width and height.
 */
export function showsLargestFace(boxes: readonly BoxPx[], width: number, height: number): boolean {
  return showsFaceOf(boxes, width, height, LARGEST_NEEDS_NO_TILES);
}

/** Whether a box is at least `inputPx` wide and high in the whole-frame pass's input pixels. */
function showsFaceOf(boxes: readonly BoxPx[], width: number, height: number, inputPx: number): boolean {
  const inputPxPerPx = wholeFrameInputPxPerPx(width, height);
  return boxes.some((b) => Math.min(b.width, b.height) * inputPxPerPx >= inputPx);
}

/** Input pixels per image pixel of the whole-frame pass, which reads any image at INPUT_SIDE. */
function wholeFrameInputPxPerPx(width: number, height: number): number {
  return INPUT_SIDE / Math.max(width, height);
}

