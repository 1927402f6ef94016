import { intersectionOverUnion, type BoxPx } from "./geometry.js";

/**
 * A stream's memory of the spots where the detector's closer looks found no face (a hand, a
 * microphone the whole-frame pass was unsure of), so the next frames do not pay for the same looks
 * again. A spot is looked at again after RECHECK_AFTER_FRAMES frames: a small face that was not
 * yet clear enough gets its chance a sixth of a second later at 30 frames per second.
 */
export interface RejectedSpots {
  /** Starts a frame: what the spots are as that frame sees them. */
  nextFrame(): FrameSpots;
}

/** The rejected spots as one frame sees them; rejections it adds count from that frame on. */
export interface FrameSpots {
  /** Whether closer looks at `box` were turned down in one of the RECHECK_AFTER_FRAMES frames before. */
  recentlyRejected(box: BoxPx): boolean;
  /** Remembers that closer looks at `box` found no face in this frame. */
  reject(box: BoxPx): void;
  /**
   * Whether this frame may look at faint boxes (detect.ts, FAINT_SCORE): one frame in
   * RECHECK_AFTER_FRAMES. A cluttered frame has many, each new to the memory: allowed in every frame
   * (and beside faces, as first built), the clip's closer looks went from 175 to 449.
   */
  readonly looksAtFaint: boolean;
}

/**
 * Frames a rejected spot is skipped for; the same interval as an unknown tracked face's search
 * (tracker.ts).
 */
const RECHECK_AFTER_FRAMES = 5;
/**
 * Boxes of consecutive frames overlapping at least this much (IoU) are the same spot: the clip's
 * hands at 30 frames per second overlap their previous frame's box by more.
 */
const SAME_SPOT_IOU = 0.5;
/** Spots remembered at most (the newest): a frame has at most a handful of closer looks. */
const MAX_SPOTS = 32;

export function createRejectedSpots(): RejectedSpots {
  let frames = 0;
  let spots: { box: BoxPx; frame: number }[] = [];
  return {
    nextFrame() {
      const frame = ++frames;
      // A stream's frames overlap: a frame may reject a spot after a later frame started.
      const fresh = (s: { frame: number }) => frame - s.frame < RECHECK_AFTER_FRAMES;
      spots = spots.filter(fresh);
      return {
        looksAtFaint: frame % RECHECK_AFTER_FRAMES === 1,
        recentlyRejected: (box) => spots.some((s) => fresh(s) && intersectionOverUnion(s.box, box) >= SAME_SPOT_IOU),
        reject(box) {
          spots = spots.filter((s) => intersectionOverUnion(s.box, box) < SAME_SPOT_IOU);
          spots.push({ box, frame });
          if (spots.length > MAX_SPOTS) spots = spots.slice(-MAX_SPOTS);
        },
      };
    },
  };
}
