import type { BoxPx } from "./geometry.js";
import type { RejectedSpots } from "./rejected-spots.js";

/** What a caller needs found. */
export interface DetectOptions {
  /**
   * Only the largest face matters, and any face near its size (Register, Recognize, Verify): the
   * tiles of a big photo are skipped once the whole-frame pass found a face so large that nothing
   * the tiles could add comes near it.
   */
  largestOnly?: boolean;
  /**
   * With largestOnly: the image was already read at QUICK_SIDE (a smaller copy of it: the same
   * pixels there) and showed no face large enough to answer from, so that read is not made again.
   */
  quickReadDone?: boolean;
  /**
   * A stream's memory of spots closer looks rejected: they are skipped for a few frames, and this
   * frame's rejections are added.
   */
  rejectedSpots?: RejectedSpots;
  /**
   * Faces expected near these boxes (a stream's faces of the frame before, in the image's pixels):
   * each is looked for in a closer look around its box (NEAR_LOOK) instead of a whole-frame pass.
   * Only where every one is found again is that the answer: a face new to the frame is then not
   * found; otherwise, and for more than MAX_NEAR_LOOKS boxes, the frame gets the whole-frame pass.
   */
  near?: readonly BoxPx[];
}
