import { createHash } from "node:crypto";
import { FaceError } from "../errors.js";
import { CONTENT_TYPE_OF_FORMAT, type DecodedImage } from "../engine/decode.js";
import type { FaceEngine, FoundFace, LocatedFace, StageTimer } from "../engine/pipeline.js";
import { showsLargestFace, type DetectOptions } from "../engine/detect.js";
import { processMetrics } from "../metrics.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import type { DetectionLog } from "../store/detections.js";
import { MAX_REGISTERED_FACES } from "../store/per-user-limits.js";
import type { IdentityStore, StoredFace, StoredImage } from "../store/identities.js";
import type { FaceEvent } from "../events.js";
import { maxFacesOf, type ImageInputLimits } from "./inputs.js";
import { registrationEvents } from "./identity-events.js";
import { noSuchUser } from "./users.js";
import type { QualityGates } from "./reference-quality.js";
import type { Admission } from "./admission.js";

/**
 * Long side a call about the largest face first decodes a big photo to: twice the detector's
 * whole-frame input, so a face it shows clearly (64 px of that input) is at least 128 px here, more
 * than the 112 px the recogniser reads.
 */
const FIRST_LOOK_SIDE = 1280;

/** A face as responses describe it. */
export interface FaceView {
  box: { x: number; y: number; width: number; height: number };
  landmarks: { x: number; y: number }[];
  score: number;
  quality: { sharpness: number; faceWidth: number; faceHeight: number; brightness: number };
}

/** The settings the face use cases read (config.ts parses them from the environment). */
export interface FaceServiceSettings extends QualityGates, ImageInputLimits {
  /** Largest cosine distance that matches. */
  matchThreshold: number;
  /** Keep the photos of registered faces (GetUserFace, re-embedding). */
  storeImages: boolean;
  autoUpgrade: boolean;
  upgradeMaxDistance: number;
  upgradeMaxFaces: number;
  upgradeSharpnessFactor: number;
  upgradeSizeFactor: number;
}

/** What the face use cases are built on. */
export interface FaceServiceDeps {
  config: FaceServiceSettings;
  engine: FaceEngine;
  identities: IdentityStore;
  detections: DetectionLog;
  /** Publishes an event in its own transaction (recognitions change no other row). */
  publish: (event: FaceEvent) => Promise<unknown>;
  stage: StageTimer;
  /** The server-wide bound on image work. */
  admission: Admission;
}

/** What every image use case does the same way: find faces, describe them, store them, publish. */
export type FaceWork = ReturnType<typeof createFaceWork>;

export function createFaceWork(deps: Pick<FaceServiceDeps, "config" | "engine" | "identities" | "publish" | "stage">) {
  const { config, engine, identities, publish, stage } = deps;
  const metrics = processMetrics();

  async function publishAll(events: FaceEvent[]): Promise<void> {
    if (events.length === 0) return;
    await stage("publish", () => Promise.all(events.map(publish)));
  }

  function view(face: LocatedFace): FaceView {
    return { box: face.box, landmarks: face.landmarks, score: face.score, quality: face.quality };
  }

  /**
   * Decodes and finds faces, largest first, at most a request's `maxFaces` (maxFacesOf), not yet
   * aligned (engine.prepare does that for those a caller embeds); `beyond` holds up to `lookPast`
   * more, the next largest, found but left out of the answer.
   */
  async function foundFacesOf(bytes: Uint8Array, maxFaces: number, options?: DetectOptions | (() => Promise<DetectOptions>), lookPast = 0): Promise<{ image: DecodedImage; faces: FoundFace[]; beyond: FoundFace[] }> {
    const limit = maxFacesOf(maxFaces);
    const image = await engine.decode(bytes);
    const found = await engine.find(image, limit + lookPast, typeof options === "function" ? await options() : options);
    const faces = found.slice(0, limit);
    metrics.facesDetected.inc(faces.length);
    return { image, faces, beyond: found.slice(limit) };
  }

  /** Decodes, finds, aligns and measures faces, largest first. */
  async function facesOf(bytes: Uint8Array, maxFaces: number): Promise<{ image: DecodedImage; faces: LocatedFace[] }> {
    const { image, faces } = await foundFacesOf(bytes, maxFaces);
    return { image, faces: await engine.prepare(image, faces) };
  }

  /**
   * The one face a register/recognize/verify call is about: the largest, aligned and measured. The
   * others are only looked at for their size (a second face of similar size makes the photo
   * ambiguous). A big photo is first decoded small (libvips shrinks JPEGs while decoding): the
   * whole-frame pass reads 640 px of any photo, so when it shows the largest face clearly the full
   * working copy would add nothing; otherwise the photo is decoded in full for the tiles.
   */
  async function primaryFaceOf(bytes: Uint8Array): Promise<{ image: DecodedImage; face: LocatedFace; others: FoundFace[] }> {
    const look = async (maxSide: number | undefined, options: DetectOptions) => {
      const decoded = await engine.decode(bytes, maxSide);
      return { image: decoded, faces: await engine.find(decoded, 0, options) };
    };
    let { image, faces } = await look(FIRST_LOOK_SIDE, { largestOnly: true });
    if (image.scale > 1 && !showsLargestFace(faces.map((f) => f.box), image.originalWidth, image.originalHeight)) {
      ({ image, faces } = await look(undefined, { largestOnly: true, quickReadDone: true }));
    }
    metrics.facesDetected.inc(faces.length);
    if (faces.length === 0) throw new FaceError("failed_precondition", "no face found in the image", { reason: "NO_FACE" });
    const [face] = await engine.prepare(image, faces.slice(0, 1));
    return { image, face, others: faces.slice(1) };
  }

  /** A face read from `bytes`, and the photo to keep with it (undefined when FACE_STORE_IMAGES=false). */
  function storedFace(face: LocatedFace, embedding: Float32Array, bytes: Uint8Array, image: DecodedImage): { stored: StoredFace; img: StoredImage | undefined } {
    const photoSha256 = sha256Of(bytes);
    const stored = { embedding, model: EMBEDDING_MODEL, box: face.box, score: face.score, sharpness: face.quality.sharpness, brightness: face.quality.brightness, photoSha256 };
    return { stored, img: storedImage(bytes, image, photoSha256) };
  }

  /** The original to keep with a face, named by its SHA-256; undefined when FACE_STORE_IMAGES=false. */
  function storedImage(bytes: Uint8Array, image: DecodedImage, sha256: string): StoredImage | undefined {
    if (!config.storeImages) return undefined;
    return {
      sha256,
      bytes,
      contentType: CONTENT_TYPE_OF_FORMAT[image.format] ?? "application/octet-stream",
      width: image.originalWidth,
      height: image.originalHeight,
    };
  }

  /**
   * Adds a registered face (and its photo) to `identifier`, creating the user when new (NotFound
   * instead with `existingUser`), with its user.registered event in the same transaction. Returns
   * whether the user was created, and the photo's SHA-256. The same photo registered again for the
   * user adds nothing.
   */
  async function addRegisteredFace(collection: string, identifier: string, face: LocatedFace, embedding: Float32Array, bytes: Uint8Array, image: DecodedImage, existingUser = false) {
    const { stored, img } = storedFace(face, embedding, bytes, image);
    const { created, full, gone } = await stage("store", () => identities.addFace(collection, identifier, stored, img, registrationEvents(collection, identifier, stored), existingUser));
    if (gone) throw noSuchUser(identifier, collection);
    if (full) throw new FaceError("failed_precondition", `${identifier} has ${MAX_REGISTERED_FACES} registered reference photos, the most a user may have; delete the user to register it again`);
    return { created, photoSha256: stored.photoSha256 };
  }

  return { publishAll, view, foundFacesOf, facesOf, primaryFaceOf, storedFace, addRegisteredFace, metrics };
}

export function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
