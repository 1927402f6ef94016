import type { BoxPx } from "./geometry.js";
import type { RawDetection } from "./yunet-outputs.js";

/** What one scan found, in the image's pixels. */
export interface Scan {
  /** Faces scoring at least the detector's MIN_SCORE. */
  sure: RawDetection[];
  /** Small faces scoring UNSURE_SCORE to MIN_SCORE: worth a closer look. */
  unsure: RawDetection[];
}

/**
 * The scans of a whole photo (or of a canvas around it) that one read of it made, for a later read
 * of another copy of the same photo. A scan of the whole photo at a given input side reads about
 * the same pixels whichever copy it is made from, as long as both copies are at least that side
 * (the detector shrinks either to it), so a call about the largest face that reads a big photo
 * first small (1280 px), then in full, makes each such scan once: the full copy adds only its tiles
 * and closer looks. Only about: the copies are shrunk from different sizes, so boxes differ by a
 * few per cent, and of two faces that close in size the one answered may change (the two of
 * multi/obama_and_biden.jpg, 183 and 179 px wide). Results are kept in fractions of the photo's
 * width and height.
 */
export class WholePhotoScans {
  private readonly scans = new Map<string, Scan>();

  /** The scan `key` (what was read, at which side) of an earlier copy, in this copy's pixels. */
  find(key: string, width: number, height: number): Scan | undefined {
    const kept = this.scans.get(key);
    return kept === undefined ? undefined : scaled(kept, width, height);
  }

  /** Keeps a scan of a copy of `width` x `height`. */
  keep(key: string, scan: Scan, width: number, height: number): void {
    this.scans.set(key, scaled(scan, 1 / width, 1 / height));
  }
}

function scaled(scan: Scan, sx: number, sy: number): Scan {
  const each = (d: RawDetection): RawDetection => ({
    score: d.score,
    box: scaledBox(d.box, sx, sy),
    landmarks: d.landmarks.map((p) => ({ x: p.x * sx, y: p.y * sy })),
  });
  return { sure: scan.sure.map(each), unsure: scan.unsure.map(each) };
}

function scaledBox(b: BoxPx, sx: number, sy: number): BoxPx {
  return { x: b.x * sx, y: b.y * sy, width: b.width * sx, height: b.height * sy };
}
