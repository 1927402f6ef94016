import type { FaceEvent } from "../events.js";
import { FaceError } from "../errors.js";
import type { FaceServiceDeps, FaceView, FaceWork } from "./face-work.js";
import { checkImageSize, collectionOf, frameIdOf, identifierOf } from "./inputs.js";
import { qualityProblem } from "./reference-quality.js";
import { createRejectedSpots, type RejectedSpots } from "../engine/rejected-spots.js";
import { createFaceTracker, type FaceTracker, type Track } from "./tracker.js";
import type { BoxPx } from "../engine/geometry.js";
import type { StillUsers } from "../store/identities.js";

export interface SyncInput {
  image: Uint8Array;
  identifier: string;
  maxFaces: number;
  collection: string;
  frameId: string;
}

export interface SyncFaceView {
  identifier: string;
  box: FaceView["box"];
  confidence: number;
  distance: number;
  registered: boolean;
  trackId: number;
}

/**
 * How much further than the match threshold a tracked face may be from the person its track already
 * names. On the labelled photos a stranger is within 0.75 of someone at about a 1e-2 rate (the FAR
 * 1e-2 point is 0.786), and only a stranger in the very box of a tracked face is compared this way.
 */
const TRACK_KEEP_MARGIN = 0.15;

/**
 * A stream reads the whole frame once in this many frames (and every frame where it follows no
 * face); in between its tracked faces are looked for near where they were (DetectOptions.near), a
 * fraction of a whole-frame pass, and a frame losing one of them is read whole. So a face entering
 * the view of a stream that already follows faces is found up to 4 frames late (133 ms at 30 fps).
 */
const WHOLE_FRAME_EVERY = 5;

/** What the frames of one Sync stream share. */
interface StreamMemory {
  tracker: FaceTracker;
  /** Which of the people the tracker names are still users (checked each frame; IdentityStore.stillUsersCheck). */
  stillUsers: StillUsers;
  /** Spots the detector's closer looks rejected in recent frames, not looked at again at once. */
  rejectedSpots?: RejectedSpots;
  /** Frames of the stream begun so far: which ones are read whole (WHOLE_FRAME_EVERY). */
  framesBegun?: number;
  /**
   * The collection and identifier (`registrationKey`) of each person a frame asking to register them
   * found registered, by that frame or already: the stream's later frames register no one under it.
   */
  identifiersSettled?: Set<string>;
}

const registrationKey = (collection: string, identifier: string) => JSON.stringify([collection, identifier]);

/** Where a frame's faces were found: the next frame of the same collection and max_faces looks near them. */
interface FacesSeen {
  collection: string;
  maxFaces: number;
  boxes: BoxPx[];
}

/**
 * How a frame of a stream waits for the one before. Its faces are looked for near the previous
 * frame's as soon as that frame's faces are found, while the previous frame still embeds and
 * searches; tracking waits until the previous frame is done.
 */
interface FrameOrder {
  /** Where the frame before found its faces (a frame that failed passes on what the one before it saw). */
  previousFaces: Promise<FacesSeen | undefined>;
  previousDone: Promise<void>;
  /** Tells the next frame where this frame's faces are. */
  seen(faces: FacesSeen): void;
}

const FIRST_FRAME: FrameOrder = { previousFaces: Promise.resolve(undefined), previousDone: Promise.resolve(), seen: () => {} };

/** SyncFrame and each frame of a Sync stream. */
export function createSyncFrame(deps: Pick<FaceServiceDeps, "config" | "engine" | "identities" | "detections" | "stage">, work: FaceWork) {
  const { config, engine, identities, detections, stage } = deps;
  const { foundFacesOf, addRegisteredFace, publishAll, metrics } = work;
  const limits = config;

  /**
   * Identifies every face of one frame; registers the largest unknown face when `identifier` is
   * given and names no one in view (nor anyone the stream registered before), and no other unknown
   * face is about as large. With a stream's memory, faces identified in the previous frame keep
   * their identity without a new embedding and search, and spots rejected as no face in recent
   * frames get no new closer look; `order` orders the tracking of frames processed concurrently.
   */
  async function syncFrame(input: SyncInput, memory: StreamMemory = { tracker: createFaceTracker(), stillUsers: identities.stillUsersCheck() }, order: FrameOrder = FIRST_FRAME): Promise<{ faces: SyncFaceView[] }> {
    const { tracker, rejectedSpots, stillUsers } = memory;
    const collection = collectionOf(input.collection);
    const registerAs = input.identifier === "" ? undefined : identifierOf(input.identifier);
    const frameId = frameIdOf(input.frameId);
    const bytes = checkImageSize(input.image, limits.maxImageBytes);
    if (bytes.length === 0) throw new FaceError("invalid_argument", "image is required");
    // Decoding overlaps with the previous frame, and so does a whole-frame read; looking near the
    // faces followed waits until the previous frame has found its faces, so it follows the frame
    // just before (and answers alike however the frames' work interleaves), and overlaps with that
    // frame's embedding and search. Tracking must follow frame order.
    const previousDone = order.previousDone;
    const readWhole = memory.framesBegun === undefined || memory.framesBegun++ % WHOLE_FRAME_EVERY === 0;
    const detectOptions = readWhole ? { rejectedSpots } : async () => {
      const seen = await order.previousFaces;
      return { rejectedSpots, near: seen?.collection === collection && seen.maxFaces === input.maxFaces ? seen.boxes : undefined };
    };
    // Whether the people the stream follows are still users, asked while this frame is detected: a
    // track names its person without a search for up to 15 frames or half a second (tracker.ts), and
    // must not name someone deleted (DeleteUser, DeleteCollection, on any instance) before the frame arrived.
    const present = previousDone.then(() => stillUsers(collection, tracker.names(collection)));
    present.catch(() => {}); // awaited below; a failed detection must not leave it unhandled
    // A frame registering someone looks one face past max_faces: a second face about as large as the
    // largest makes "the" face ambiguous even when the answer leaves it out.
    const { image, faces, beyond } = await foundFacesOf(bytes, input.maxFaces, detectOptions, registerAs === undefined ? 0 : 1);
    order.seen({ collection, maxFaces: input.maxFaces, boxes: faces.map((f) => f.box) });
    await previousDone;
    const assigned = tracker.assign(collection, faces.map((f) => f.box));
    const users = await present;
    const gone = new Set<string>();
    for (const a of assigned) {
      if (a.track.identifier === "" || users.has(a.track.identifier)) continue;
      gone.add(a.track.identifier);
      a.needsSearch = true;
    }
    // Only the faces to search are aligned and embedded: a steady tracked face needs neither.
    const toSearch = faces.filter((_, i) => assigned[i].needsSearch);
    const prepared = await engine.prepare(image, toSearch);
    const embeddings = await engine.embed(prepared);
    const hits = embeddings.length === 0 ? [] : await stage("similarity_search", () => Promise.all(embeddings.map((e) => identities.search(collection, e, 1))));
    const tracks: Track[] = assigned.map(({ track, needsSearch }, i) => {
      if (!needsSearch) return track;
      // A search on a lagging read replica may still find someone the primary just said is gone.
      const found = hits[toSearch.indexOf(faces[i])][0];
      const best = found !== undefined && gone.has(found.identifier) ? undefined : found;
      // Hysteresis: a track already identified keeps its identity while the face stays within a
      // looser distance of that same person (a face turning away for a frame), so its label does
      // not flicker; a new identity still needs the match threshold.
      const keeps = best !== undefined && best.identifier === track.identifier && best.distance <= config.matchThreshold + TRACK_KEEP_MARGIN;
      const known = best !== undefined && (best.distance <= config.matchThreshold || keeps);
      if (known) metrics.matches.inc({ rpc: "Sync" });
      return { ...track, identifier: known ? best.identifier : "", distance: best?.distance ?? 2, framesSinceSearch: 0 };
    });
    const registered = new Set<number>();
    // An identifier names one person. While a face of the frame is that person, any unknown face is
    // someone else; and once a stream has seen them registered (by one of its frames or already),
    // its later frames sent with the same identifier show whoever comes into view after them, or
    // them again after a DeleteUser that a registration would undo. Either way a stranger would be
    // registered under their name and then recognized as them.
    const key = registerAs === undefined ? "" : registrationKey(collection, registerAs);
    if (registerAs !== undefined && tracks.some((t) => t.identifier === registerAs)) memory.identifiersSettled?.add(key);
    else if (registerAs !== undefined && !memory.identifiersSettled?.has(key)) {
      const unknown = tracks.findIndex((t) => t.identifier === "");
      // A face searched in this frame is prepared and embedded already; a tracked one is not.
      const searched = unknown < 0 ? -1 : toSearch.indexOf(faces[unknown]);
      const candidate = unknown < 0 ? undefined : (prepared[searched] ?? (await engine.prepare(image, [faces[unknown]]))[0]);
      // Another unknown face of about its size could as well be the person: Register refuses such a photo.
      const otherUnknown = faces.filter((_, i) => i !== unknown && tracks[i].identifier === "").concat(beyond);
      if (candidate !== undefined && qualityProblem(candidate, otherUnknown, config) === undefined) {
        const embedding = embeddings[searched] ?? (await engine.embed([candidate]))[0];
        await addRegisteredFace(collection, registerAs, candidate, embedding, bytes, image);
        tracks[unknown] = { ...tracks[unknown], identifier: registerAs, distance: 0, framesSinceSearch: 0 };
        registered.add(unknown);
        memory.identifiersSettled?.add(key);
      }
    }
    // A stream reports a face when its track starts and when its identity changes, not every frame.
    const reported = tracks.filter((t, i) => assigned[i].isNew || t.identifier !== assigned[i].track.identifier);
    await publishAll(
      reported.map((t): FaceEvent => ({
        type: t.identifier ? "face.recognized" : "face.unknown",
        collection,
        identifier: t.identifier,
        data: { distance: t.distance, box: t.box, frame_id: frameId, track_id: t.id },
      })),
    );
    tracker.commit(collection, tracks);
    const result = tracks.map((t, i) => ({
      identifier: t.identifier,
      box: faces[i].box,
      confidence: faces[i].score,
      distance: t.distance,
      registered: registered.has(i),
      trackId: t.id,
    }));
    detections.record(collection, result.map((r) => ({ ...r, frameId })));
    return { faces: result };
  }

  /**
   * One Sync stream: its frames share a tracker and the rejected spots, and are tracked in the
   * order they are handed in although their decoding and detection may overlap. `run` wraps each
   * frame's work (the server's admission limit).
   */
  function openSyncSession(run: <T>(work: () => Promise<T>) => Promise<T>) {
    const memory: StreamMemory = { tracker: createFaceTracker(), stillUsers: identities.stillUsersCheck(), rejectedSpots: createRejectedSpots(), framesBegun: 0, identifiersSettled: new Set() };
    let { previousFaces, previousDone } = FIRST_FRAME;
    return {
      frame(input: SyncInput): Promise<{ faces: SyncFaceView[] }> {
        let seen!: (faces: FacesSeen | undefined) => void;
        const faces = new Promise<FacesSeen | undefined>((resolve) => (seen = resolve));
        const order: FrameOrder = { previousFaces, previousDone, seen };
        const result = run(() => syncFrame(input, memory, order));
        // Done when this frame and every frame before it are: a frame refused before it waited for
        // the one before (a bad field, an empty image) must not let the next be tracked ahead of it.
        const done = result.then(() => undefined, () => undefined);
        previousDone = previousDone.then(() => done);
        // A frame that failed (or was refused) before finding its faces passes on what the one before
        // saw; one that found them has told already, and a promise settles once.
        void previousDone.then(() => order.previousFaces).then(seen);
        previousFaces = faces;
        return result;
      },
    };
  }

  return { syncFrame, openSyncSession };
}
