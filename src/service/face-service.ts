import { createHash } from "node:crypto";
import type { Config } from "../config.js";
import { FaceError, type QualityReason } from "../errors.js";
import type { FaceAttributes } from "../engine/analyze.js";
import { CONTENT_TYPE_OF_FORMAT, type DecodedImage } from "../engine/decode.js";
import { cosineDistance } from "../engine/embed.js";
import type { FaceEngine, LocatedFace, StageTimer } from "../engine/pipeline.js";
import { processMetrics } from "../metrics.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import type { DetectionLog } from "../store/detections.js";
import type { FaceEvent } from "../store/webhooks.js";
import type { IdentityStore, SearchHit, StoredFace, StoredImage } from "../store/identities.js";
import type { Admission } from "./admission.js";
import { createFaceTracker, type FaceTracker, type Track } from "./tracker.js";
import { collectionOf, identifierOf, imageBytesOf, checkImageSize, thresholdOf, type ImageSource } from "./inputs.js";

/** A face as responses describe it. */
export interface FaceView {
  box: { x: number; y: number; width: number; height: number };
  landmarks: { x: number; y: number }[];
  score: number;
  quality: { sharpness: number; faceWidth: number; faceHeight: number; brightness: number };
}

export interface RegisterInput extends ImageSource {
  identifier: string;
  collection: string;
}

export interface RecognizeInput extends ImageSource {
  threshold?: number;
  topK: number;
  collection: string;
}

export interface VerifyInput extends ImageSource {
  identifier: string;
  image2: Uint8Array;
  collection: string;
  threshold?: number;
}

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

/** The use cases of face.v1.FaceService, on the engine and the identity store. */
export type FaceService = ReturnType<typeof createFaceService>;

export interface FaceServiceDeps {
  config: Config;
  engine: FaceEngine;
  identities: IdentityStore;
  detections: DetectionLog;
  /** Publishes an event in its own transaction (recognitions change no other row). */
  publish: (event: FaceEvent) => Promise<unknown>;
  stage: StageTimer;
  /** The server-wide bound on image work. */
  admission: Admission;
}

/** A second face at least this fraction of the largest one's area makes "the" face of a photo ambiguous. */
const AMBIGUOUS_SECOND_FACE = 0.8;
/** Mean grey level (0..255) below or above which a face is too dark or washed out to register. */
const MIN_BRIGHTNESS = 40;
const MAX_BRIGHTNESS = 235;
/**
 * Where the nose tip sits between the eyes (0 = left eye, 1 = right eye): outside this band the head
 * is turned too far for a reference photo.
 */
const FRONTAL_NOSE_BAND = [0.15, 0.85] as const;
/** A larger face must keep at least this fraction of the stored reference's sharpness to replace it. */
const UPGRADE_KEEPS_SHARPNESS = 0.8;
const MAX_CANDIDATES = 100;
/** Detection log entries an export carries (most recent first); retention bounds the rest. */
const MAX_EXPORTED_DETECTIONS = 10_000;
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

export function createFaceService(deps: FaceServiceDeps) {
  const { config, engine, identities, detections, publish, stage, admission } = deps;

  async function publishAll(events: FaceEvent[]): Promise<void> {
    if (events.length === 0) return;
    await stage("publish", () => Promise.all(events.map(publish)));
  }
  const limits = config;
  const metrics = processMetrics();

  function view(face: LocatedFace): FaceView {
    return { box: face.box, landmarks: face.landmarks, score: face.score, quality: face.quality };
  }

  /** Decodes and finds faces, largest first. */
  async function facesOf(bytes: Uint8Array, maxFaces: number): Promise<{ image: DecodedImage; faces: LocatedFace[] }> {
    const image = await engine.decode(bytes);
    const faces = await engine.locate(image, maxFaces);
    metrics.facesDetected.inc(faces.length);
    return { image, faces };
  }

  /** The one face a register/recognize/verify call is about: the largest. */
  async function primaryFaceOf(bytes: Uint8Array): Promise<{ image: DecodedImage; face: LocatedFace; others: LocatedFace[] }> {
    const { image, faces } = await facesOf(bytes, 0);
    if (faces.length === 0) throw new FaceError("failed_precondition", "no face found in the image", { reason: "NO_FACE" });
    return { image, face: faces[0], others: faces.slice(1) };
  }

  /** Why a face is not good enough to be a reference photo, or undefined when it is. */
  function qualityProblem(face: LocatedFace, others: LocatedFace[]): { reason: QualityReason; message: string } | undefined {
    const q = face.quality;
    const area = face.box.width * face.box.height;
    if (others.some((o) => o.box.width * o.box.height >= area * AMBIGUOUS_SECOND_FACE)) {
      return { reason: "MULTIPLE_FACES", message: "several faces of similar size: send a photo of one person" };
    }
    if (face.score < config.minDetectionScore) {
      return { reason: "LOW_CONFIDENCE", message: `face detection confidence ${face.score.toFixed(2)} is below ${config.minDetectionScore}` };
    }
    if (Math.min(q.faceWidth, q.faceHeight) < config.minFaceSize) {
      return { reason: "SMALL_FACE", message: `face is ${q.faceWidth}x${q.faceHeight} px; at least ${config.minFaceSize} px are needed` };
    }
    if (q.sharpness < config.minSharpness) {
      return { reason: "LOW_SHARPNESS", message: `face is too blurry (sharpness ${q.sharpness.toFixed(1)}, at least ${config.minSharpness} needed)` };
    }
    if (q.brightness < MIN_BRIGHTNESS || q.brightness > MAX_BRIGHTNESS) {
      return { reason: "LOW_BRIGHTNESS", message: `face is too dark or too bright (mean level ${q.brightness.toFixed(0)})` };
    }
    const [leftEye, rightEye, nose] = face.landmarks;
    const position = (nose.x - leftEye.x) / (rightEye.x - leftEye.x || 1e-6);
    if (!(position >= FRONTAL_NOSE_BAND[0] && position <= FRONTAL_NOSE_BAND[1])) {
      return { reason: "EXTREME_POSE", message: "head is turned too far; look at the camera" };
    }
    return undefined;
  }

  function requireQuality(face: LocatedFace, others: LocatedFace[]): void {
    const problem = qualityProblem(face, others);
    if (problem) throw new FaceError("failed_precondition", problem.message, { reason: problem.reason });
  }

  function storedFace(face: LocatedFace, embedding: Float32Array): StoredFace {
    return { embedding, model: EMBEDDING_MODEL, box: face.box, score: face.score, sharpness: face.quality.sharpness, brightness: face.quality.brightness };
  }

  /** The original to keep with a face, or undefined when FACE_STORE_IMAGES=false. */
  function storedImage(bytes: Uint8Array, image: DecodedImage): StoredImage | undefined {
    if (!config.storeImages) return undefined;
    return {
      sha256: sha256Of(bytes),
      bytes,
      contentType: CONTENT_TYPE_OF_FORMAT[image.format] ?? "application/octet-stream",
      width: image.originalWidth,
      height: image.originalHeight,
    };
  }

  async function searchBest(collection: string, embedding: Float32Array, limit: number) {
    return stage("similarity_search", () => identities.search(collection, embedding, limit));
  }

  /**
   * Auto-healing: when the new face is a strong match and clearly sharper or larger than the primary
   * reference, it is added and becomes the primary. Strength is measured against the faces the user
   * registered, never against earlier auto-added ones, so a chain of upgrades cannot drift to
   * someone else. Returns whether it did.
   */
  async function maybeUpgrade(collection: string, hit: SearchHit, face: LocatedFace, others: LocatedFace[], embedding: Float32Array, bytes: Uint8Array, image: DecodedImage): Promise<boolean> {
    const current = hit.primary;
    if (!config.autoUpgrade || current === undefined || hit.distance > config.upgradeMaxDistance || qualityProblem(face, others) !== undefined) return false;
    const sharper = face.quality.sharpness >= current.sharpness * config.upgradeSharpnessFactor;
    const larger = face.quality.faceWidth >= current.faceWidth * config.upgradeSizeFactor;
    // Larger but blurrier (an upscaled photo) is not better; sharper but tiny is not either.
    const better = (sharper && face.quality.faceWidth >= current.faceWidth) || (larger && face.quality.sharpness >= current.sharpness * UPGRADE_KEEPS_SHARPNESS);
    if (!better) return false;
    const img = storedImage(bytes, image);
    if (img !== undefined && img.sha256 === current.imageSha256) return false;
    const toRegistered = await stage("similarity_search", () => identities.distanceToUser(collection, current.identifier, embedding, "registered"));
    if (toRegistered === undefined || toRegistered > config.upgradeMaxDistance) return false;
    return stage("store", () => identities.addUpgradedFace(current, storedFace(face, embedding), img, config.upgradeMaxFaces));
  }

  const useCases = {
    async register(input: RegisterInput) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const bytes = await imageBytesOf(input, limits);
      const { image, face, others } = await primaryFaceOf(bytes);
      requireQuality(face, others);
      const [embedding] = await engine.embed([face]);
      const img = storedImage(bytes, image);
      const { created } = await stage("store", () => identities.addFace(collection, identifier, storedFace(face, embedding), img));
      return { identifier, collection, face: view(face), imageSha256: img?.sha256 ?? sha256Of(bytes), created };
    },

    async recognize(input: RecognizeInput) {
      const collection = collectionOf(input.collection);
      const threshold = thresholdOf(input.threshold, config.matchThreshold);
      const topK = Math.min(input.topK, MAX_CANDIDATES);
      const bytes = await imageBytesOf(input, limits);
      const { image, face, others } = await primaryFaceOf(bytes);
      const [embedding] = await engine.embed([face]);
      const hits = await searchBest(collection, embedding, Math.max(1, topK));
      const best = hits[0];
      const matched = best !== undefined && best.distance <= threshold;
      if (matched) metrics.matches.inc({ rpc: "Recognize" });
      const profileUpgraded = matched ? await maybeUpgrade(collection, best, face, others, embedding, bytes, image) : false;
      await publishAll([
        matched
          ? { type: "face.recognized", collection, identifier: best.identifier, data: { distance: best.distance, box: face.box, profile_upgraded: profileUpgraded } }
          : { type: "face.unknown", collection, identifier: "", data: { distance: best?.distance ?? 2, box: face.box } },
      ]);
      return {
        matched,
        identifier: matched ? best.identifier : "",
        distance: best?.distance ?? 2,
        similarity: best ? 1 - best.distance : -1,
        profileUpgraded,
        face: view(face),
        candidates: hits.slice(0, topK).map((h) => ({ identifier: h.identifier, distance: h.distance, similarity: 1 - h.distance })),
        threshold,
      };
    },

    async verify(input: VerifyInput) {
      const collection = collectionOf(input.collection);
      const threshold = thresholdOf(input.threshold, config.matchThreshold);
      const hasIdentifier = input.identifier !== "";
      const hasSecondImage = input.image2.length > 0;
      if (hasIdentifier === hasSecondImage) throw new FaceError("invalid_argument", "send either identifier or image2 to compare with");
      const bytes = await imageBytesOf(input, limits);
      const { face } = await primaryFaceOf(bytes);
      const [embedding] = await engine.embed([face]);
      let distance: number;
      if (hasIdentifier) {
        const identifier = identifierOf(input.identifier);
        const found = await stage("similarity_search", () => identities.distanceToUser(collection, identifier, embedding));
        if (found === undefined) throw new FaceError("not_found", `no user ${JSON.stringify(identifier)} in collection ${collection}`);
        distance = found;
      } else {
        const second = await primaryFaceOf(checkImageSize(input.image2, limits.maxImageBytes, "image2"));
        const [other] = await engine.embed([second.face]);
        distance = cosineDistance(embedding, other);
      }
      return { verified: distance <= threshold, distance, similarity: 1 - distance, threshold };
    },

    async detect(input: ImageSource & { maxFaces: number }) {
      const bytes = await imageBytesOf(input, limits);
      const { image, faces } = await facesOf(bytes, input.maxFaces);
      return { faces: faces.map(view), imageWidth: image.originalWidth, imageHeight: image.originalHeight };
    },

    async extractFeatures(input: ImageSource & { maxFaces: number }) {
      const bytes = await imageBytesOf(input, limits);
      const { faces } = await facesOf(bytes, input.maxFaces);
      const embeddings = await engine.embed(faces);
      return { faces: faces.map((f, i) => ({ face: view(f), embedding: Array.from(embeddings[i]), model: EMBEDDING_MODEL })) };
    },

    async analyze(input: ImageSource & { maxFaces: number }) {
      const bytes = await imageBytesOf(input, limits);
      const { image, faces } = await facesOf(bytes, input.maxFaces);
      const attributes: FaceAttributes[] = await engine.analyze(image, faces);
      return { faces: faces.map((f, i) => ({ face: view(f), ...attributes[i] })) };
    },

    /**
     * Identifies every face of one frame; registers the largest unknown face when `identifier` is
     * given. With a tracker (one per stream), faces identified in the previous frame keep their
     * identity without a new embedding and search; `previousFrameDone` orders the tracking of frames
     * processed concurrently.
     */
    async syncFrame(input: SyncInput, tracker: FaceTracker = createFaceTracker(), previousFrameDone: Promise<void> = Promise.resolve()): Promise<{ faces: SyncFaceView[] }> {
      const collection = collectionOf(input.collection);
      const registerAs = input.identifier === "" ? undefined : identifierOf(input.identifier);
      const bytes = checkImageSize(input.image, limits.maxImageBytes);
      if (bytes.length === 0) throw new FaceError("invalid_argument", "image is required");
      const { image, faces } = await facesOf(bytes, input.maxFaces);
      // Decoding and detection overlap with the previous frame; tracking must follow frame order.
      await previousFrameDone;
      const assigned = tracker.assign(collection, faces.map((f) => f.box));
      const toSearch = faces.filter((_, i) => assigned[i].needsSearch);
      const embeddings = await engine.embed(toSearch);
      const hits = await stage("similarity_search", () => Promise.all(embeddings.map((e) => identities.search(collection, e, 1))));
      const tracks: Track[] = assigned.map(({ track, needsSearch }, i) => {
        if (!needsSearch) return track;
        const best = hits[toSearch.indexOf(faces[i])][0];
        const known = best !== undefined && best.distance <= config.matchThreshold;
        if (known) metrics.matches.inc({ rpc: "Sync" });
        return { ...track, identifier: known ? best.identifier : "", distance: best?.distance ?? 2, framesSinceSearch: 0 };
      });
      const registered = new Set<number>();
      if (registerAs !== undefined) {
        const unknown = tracks.findIndex((t) => t.identifier === "");
        if (unknown >= 0 && qualityProblem(faces[unknown], []) === undefined) {
          const embedding = embeddings[toSearch.indexOf(faces[unknown])] ?? (await engine.embed([faces[unknown]]))[0];
          await stage("store", () => identities.addFace(collection, registerAs, storedFace(faces[unknown], embedding), storedImage(bytes, image)));
          tracks[unknown] = { ...tracks[unknown], identifier: registerAs, distance: 0, framesSinceSearch: 0 };
          registered.add(unknown);
        }
      }
      // A stream reports a face when its track starts and when its identity changes, not every frame.
      const reported = tracks.filter((t, i) => assigned[i].isNew || t.identifier !== assigned[i].track.identifier);
      await publishAll(
        reported.map((t): FaceEvent => ({
          type: t.identifier ? "face.recognized" : "face.unknown",
          collection,
          identifier: t.identifier,
          data: { distance: t.distance, box: t.box, frame_id: input.frameId, track_id: t.id },
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
      await stage("log", () =>
        detections.record(collection, result.map((r) => ({ ...r, frameId: input.frameId }))),
      );
      return { faces: result };
    },

    /** "Not them" remembers the face as a negative example; "it is them" adds it as a reference photo. */
    async correctMatch(input: ImageSource & { identifier: string; isMatch: boolean; collection: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const bytes = await imageBytesOf(input, limits);
      const { image, face, others } = await primaryFaceOf(bytes);
      if (input.isMatch) requireQuality(face, others);
      const [embedding] = await engine.embed([face]);
      const known = input.isMatch
        ? await identities.distanceToUser(collection, identifier, embedding).then((d) => d !== undefined)
        : await identities.addNegativeExample(collection, identifier, embedding, EMBEDDING_MODEL);
      if (!known) throw new FaceError("not_found", `no user ${JSON.stringify(identifier)} in collection ${collection}`);
      if (input.isMatch) await stage("store", () => identities.addFace(collection, identifier, storedFace(face, embedding), storedImage(bytes, image)));
      return { identifier, isMatch: input.isMatch };
    },

    async listUsers(input: { collection: string; pageSize: number; pageToken: string }) {
      const collection = collectionOf(input.collection);
      const pageSize = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
      const after = input.pageToken === "" ? "" : decodePageToken(input.pageToken);
      const identifiers = await identities.listUsers(collection, pageSize + 1, after);
      const page = identifiers.slice(0, pageSize);
      const more = identifiers.length > pageSize;
      return { identifiers: page, nextPageToken: more ? encodePageToken(page[page.length - 1]) : "" };
    },

    async getUserFace(input: { identifier: string; collection: string }) {
      if (!config.storeImages) throw new FaceError("failed_precondition", "original images are not kept (FACE_STORE_IMAGES=false)");
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const found = await identities.primaryImage(collection, identifier);
      if (found === undefined) throw new FaceError("not_found", `no user ${JSON.stringify(identifier)} in collection ${collection}`);
      return found;
    },

    /** Everything stored about one person (the data-subject export of privacy law). */
    async exportUser(input: { identifier: string; collection: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const exported = await identities.exportUser(collection, identifier);
      if (exported === undefined) throw new FaceError("not_found", `no user ${JSON.stringify(identifier)} in collection ${collection}`);
      const logged = await detections.recent(collection, MAX_EXPORTED_DETECTIONS, identifier);
      return {
        identifier,
        collection,
        createdAt: exported.createdAt.toISOString(),
        faces: exported.faces.map(({ origin, ...f }) => ({ ...f, autoAdded: origin === "auto", createdAt: f.createdAt.toISOString() })),
        detections: logged.map((d) => ({ ...d, createdAt: d.createdAt.toISOString() })),
        negativeExamples: exported.negativeExamples,
      };
    },

    async deleteUser(input: { identifier: string; collection: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const deleted = await identities.deleteUser(collection, identifier);
      if (deleted === undefined) throw new FaceError("not_found", `no user ${JSON.stringify(identifier)} in collection ${collection}`);
      return { identifier, facesDeleted: deleted.faces, imagesDeleted: deleted.images };
    },
  };

  /**
   * Runs an image use case under the server-wide admission limit, once its image is in hand: a
   * slow image_url host holds no slot of the image work.
   */
  function admitted<I extends ImageSource, A extends unknown[], R>(useCase: (input: I, ...rest: A) => Promise<R>) {
    return async (input: I, ...rest: A): Promise<R> => {
      const image = await imageBytesOf(input, limits);
      return admission.run(() => useCase({ ...input, image, imageUrl: "" }, ...rest));
    };
  }

  return {
    ...useCases,
    register: admitted(useCases.register),
    recognize: admitted(useCases.recognize),
    verify: admitted(useCases.verify),
    detect: admitted(useCases.detect),
    extractFeatures: admitted(useCases.extractFeatures),
    analyze: admitted(useCases.analyze),
    correctMatch: admitted(useCases.correctMatch),
    syncFrame: (...args: Parameters<typeof useCases.syncFrame>) => admission.run(() => useCases.syncFrame(...args)),
  };
}

function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Page tokens are opaque to clients: the last identifier of the page, base64url. */
function encodePageToken(lastIdentifier: string): string {
  return Buffer.from(lastIdentifier, "utf8").toString("base64url");
}

function decodePageToken(token: string): string {
  const value = Buffer.from(token, "base64url").toString("utf8");
  if (value === "" || encodePageToken(value) !== token) throw new FaceError("invalid_argument", "page_token is not valid");
  return value;
}
