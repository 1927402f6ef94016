import { intersectionOverUnion, type BoxPx } from "../engine/geometry.js";

/** What a track knows about its face. */
export interface Track {
  id: number;
  box: BoxPx;
  identifier: string;
  distance: number;
  /** Frames since the identity was last confirmed by a search (0: searched in this frame). */
  framesSinceSearch: number;
}

/** Boxes of consecutive frames overlapping at least this much (IoU) are the same face. */
const SAME_FACE_IOU = 0.4;
/**
 * Below this overlap the track goes on but its face is searched again at once: a steady face at 30
 * frames per second overlaps its previous box by 0.8 or more, while a jump (a cut to someone else
 * standing where the known face was, an unknown face turning to the camera and growing) does not.
 */
const STEADY_IOU = 0.7;
/**
 * A known face is searched again after this many frames even while tracked, so a track that jumped
 * to another person (crossing paths) is corrected within a second at 30 frames per second.
 */
const RECHECK_KNOWN_EVERY_FRAMES = 15;
/**
 * An unknown tracked face is searched again this often: the person may have turned to the camera or
 * been registered meanwhile (a box that jumped is searched at once). A third of a second at 30 frames
 * per second. Searched every 5 frames, the clip's strangers were most of a stream's searches; every
 * 10, a stream of the clip answered the same faces and names with 55 searches instead of 72, at
 * 143-158 frames/s against 122-140 (docs/benchmarks.md).
 */
const RECHECK_UNKNOWN_EVERY_FRAMES = 10;
/**
 * The same rechecks in time, whichever comes first: the frame counts above are half a second and a
 * third of one at 30 frames per second, but a camera sending two frames a second would otherwise
 * keep a name unconfirmed for 7.5 s, and name a stranger registered meanwhile up to 5 s late.
 */
const RECHECK_KNOWN_EVERY_MS = 500;
const RECHECK_UNKNOWN_EVERY_MS = 333;

/**
 * Follows faces across the frames of one stream by box overlap: a face already identified in the
 * previous frame keeps its identity and track id without a new embedding and search.
 *
 * An identity holds only within the collection it was found in: a frame of another collection
 * continues no track (its gallery may not hold that person at all), so it starts afresh.
 */
export interface FaceTracker {
  /** For each box of the new frame of `collection`: its track (continuing or new) and whether it must be searched. */
  assign(collection: string, boxes: readonly BoxPx[]): { track: Track; needsSearch: boolean; isNew: boolean }[];
  /** Replaces the tracks with this frame's faces, found in `collection`. */
  commit(collection: string, tracks: readonly Track[]): void;
  /** The identifiers the tracks a next frame of `collection` would continue name (none for another collection). */
  names(collection: string): string[];
}

/** `clock`: milliseconds, read as each frame is assigned and committed. */
export function createFaceTracker(clock: () => number = () => performance.now()): FaceTracker {
  let previous: Track[] = [];
  let previousCollection = "";
  let nextId = 1;
  /**
   * When each track's face was last searched (by track id): when the frame that searched it was
   * committed, its answer known. Counted from when that frame was assigned, a search slower than the
   * recheck time (a loaded server: 400 ms a frame) made every unknown face of every next frame due
   * again, the load adding searches.
   */
  let searchedAt = new Map<number, number>();
  return {
    assign(collection, boxes) {
      const frameTime = clock();
      const candidates = collection === previousCollection ? previous : [];
      const taken = new Set<number>();
      return boxes.map((box) => {
        let best: Track | undefined;
        let bestIou = SAME_FACE_IOU;
        for (const t of candidates) {
          if (taken.has(t.id)) continue;
          const iou = intersectionOverUnion(t.box, box);
          if (iou >= bestIou) {
            best = t;
            bestIou = iou;
          }
        }
        if (best === undefined) {
          return { track: { id: nextId++, box, identifier: "", distance: 2, framesSinceSearch: 0 }, needsSearch: true, isNew: true };
        }
        taken.add(best.id);
        const track = { ...best, box, framesSinceSearch: best.framesSinceSearch + 1 };
        const [everyFrames, everyMs] = track.identifier === "" ? [RECHECK_UNKNOWN_EVERY_FRAMES, RECHECK_UNKNOWN_EVERY_MS] : [RECHECK_KNOWN_EVERY_FRAMES, RECHECK_KNOWN_EVERY_MS];
        const due = track.framesSinceSearch >= everyFrames || frameTime - (searchedAt.get(track.id) ?? -Infinity) >= everyMs;
        return { track, needsSearch: bestIou < STEADY_IOU || due, isNew: false };
      });
    },
    commit(collection, tracks) {
      const committedAt = clock();
      searchedAt = new Map(tracks.map((t) => [t.id, t.framesSinceSearch === 0 ? committedAt : (searchedAt.get(t.id) ?? committedAt)]));
      previous = [...tracks];
      previousCollection = collection;
    },
    names(collection) {
      return collection === previousCollection ? [...new Set(previous.map((t) => t.identifier).filter((id) => id !== ""))] : [];
    },
  };
}
