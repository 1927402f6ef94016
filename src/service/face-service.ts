import { FaceError } from "../errors.js";
import type { FaceAttributes } from "../engine/analyze.js";
import type { DecodedImage } from "../engine/decode.js";
import { cosineDistance } from "../engine/embed.js";
import type { FoundFace, LocatedFace } from "../engine/pipeline.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import type { SearchHit } from "../store/identities.js";
import { createFaceWork, type FaceServiceDeps } from "./face-work.js";
import { upgradeEvents } from "./identity-events.js";
import { collectionOf, identifierOf, imageBytesOf, checkImageSize, thresholdOf, type ImageSource } from "./inputs.js";
import { qualityProblem, requireOneSubject, requireQuality } from "./reference-quality.js";
import { createSyncFrame, type SyncInput } from "./sync-frame.js";
import { createUserService, noSuchUser } from "./users.js";
export type { FaceServiceDeps, FaceView } from "./face-work.js";
export type { SyncInput, SyncFaceView } from "./sync-frame.js";

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

/** The use cases of face.v1.FaceService, on the engine and the identity store. */
export type FaceService = ReturnType<typeof createFaceService>;


/** A larger face must keep at least this fraction of the stored reference's sharpness to replace it. */
const UPGRADE_KEEPS_SHARPNESS = 0.8;
const MAX_CANDIDATES = 100;

export function createFaceService(deps: FaceServiceDeps) {
  const { config, engine, identities, detections, stage, admission } = deps;

  const work = createFaceWork(deps);
  const { syncFrame, openSyncSession } = createSyncFrame(deps, work);
  const { publishAll, view, facesOf, primaryFaceOf, storedFace, addRegisteredFace, metrics } = work;

  async function searchBest(collection: string, embedding: Float32Array, limit: number) {
    return stage("similarity_search", () => identities.search(collection, embedding, limit));
  }

  /**
   * Auto-healing: when the new face is a strong match and clearly sharper or larger than the primary
   * reference, it is added and becomes the primary. Strength is measured against the faces the user
   * registered, never against earlier auto-added ones, so a chain of upgrades cannot drift to
   * someone else. Returns whether it did.
   */
  async function maybeUpgrade(collection: string, hit: SearchHit, face: LocatedFace, others: FoundFace[], embedding: Float32Array, bytes: Uint8Array, image: DecodedImage): Promise<boolean> {
    const current = hit.primary;
    if (!config.autoUpgrade || current === undefined || hit.distance > config.upgradeMaxDistance || qualityProblem(face, others, config) !== undefined) return false;
    const sharper = face.quality.sharpness >= current.sharpness * config.upgradeSharpnessFactor;
    const larger = face.quality.faceWidth >= current.faceWidth * config.upgradeSizeFactor;
    // Larger but blurrier (an upscaled photo) is not better; sharper but tiny is not either.
    const better = (sharper && face.quality.faceWidth >= current.faceWidth) || (larger && face.quality.sharpness >= current.sharpness * UPGRADE_KEEPS_SHARPNESS);
    if (!better) return false;
    const { stored, img } = storedFace(face, embedding, bytes, image);
    if (stored.photoSha256 === current.imageSha256) return false;
    const toRegistered = await stage("similarity_search", () => identities.distanceToUser(collection, current.identifier, embedding, { origin: "registered" }));
    if (toRegistered === undefined || toRegistered > config.upgradeMaxDistance) return false;
    return stage("store", () => identities.addUpgradedFace(current, stored, img, config.upgradeMaxFaces, upgradeEvents(collection, current.identifier, stored)));
  }

  // Each image use case runs through `admitted` below, which has fetched its image already
  // (image_url included): `input.image` holds the bytes.
  const useCases = {
    async register(input: RegisterInput) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const bytes = input.image;
      const { image, face, others } = await primaryFaceOf(bytes);
      requireQuality(face, others, config);
      const [embedding] = await engine.embed([face]);
      const { created, photoSha256 } = await addRegisteredFace(collection, identifier, face, embedding, bytes, image);
      return { identifier, collection, face: view(face), imageSha256: photoSha256, created };
    },

    async recognize(input: RecognizeInput) {
      const collection = collectionOf(input.collection);
      const threshold = thresholdOf(input.threshold, config.matchThreshold);
      const topK = Math.min(input.topK, MAX_CANDIDATES);
      const bytes = input.image;
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
      const bytes = input.image;
      // Which face a 1:1 answer is about must be clear, in each image, as for a reference photo.
      const { face, others } = await primaryFaceOf(bytes);
      requireOneSubject(face, others);
      const [embedding] = await engine.embed([face]);
      let distance: number;
      if (hasIdentifier) {
        const identifier = identifierOf(input.identifier);
        const found = await stage("similarity_search", () => identities.distanceToUser(collection, identifier, embedding, { mayLag: true }));
        if (found === undefined) throw noSuchUser(identifier, collection);
        distance = found;
      } else {
        const second = await primaryFaceOf(checkImageSize(input.image2, config.maxImageBytes, "image2"));
        requireOneSubject(second.face, second.others);
        const [other] = await engine.embed([second.face]);
        distance = cosineDistance(embedding, other);
      }
      return { verified: distance <= threshold, distance, similarity: 1 - distance, threshold };
    },

    async detect(input: ImageSource & { maxFaces: number }) {
      const bytes = input.image;
      const { image, faces } = await facesOf(bytes, input.maxFaces);
      return { faces: faces.map(view), imageWidth: image.originalWidth, imageHeight: image.originalHeight };
    },

    async extractFeatures(input: ImageSource & { maxFaces: number }) {
      const bytes = input.image;
      const { faces } = await facesOf(bytes, input.maxFaces);
      const embeddings = await engine.embed(faces);
      return { faces: faces.map((f, i) => ({ face: view(f), embedding: Array.from(embeddings[i]), model: EMBEDDING_MODEL })) };
    },

    async analyze(input: ImageSource & { maxFaces: number }) {
      const bytes = input.image;
      const { image, faces } = await facesOf(bytes, input.maxFaces);
      const attributes: FaceAttributes[] = await engine.analyze(image, faces);
      return { faces: faces.map((f, i) => ({ face: view(f), ...attributes[i] })) };
    },

    /** "Not them" remembers the face as a negative example; "it is them" adds it as a reference photo. */
    async correctMatch(input: ImageSource & { identifier: string; isMatch: boolean; collection: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const bytes = input.image;
      const { image, face, others } = await primaryFaceOf(bytes);
      // "Not them" is said of faces a camera caught, blurred or turned as they may be: no quality
      // gate, but it must be clear which face is meant. Stored against the wrong one of two (the
      // user's own face beside a stranger's), it would keep the user's later photos within
      // FACE_NEGATIVE_MAX_DISTANCE of it from naming them.
      if (input.isMatch) requireQuality(face, others, config);
      else requireOneSubject(face, others);
      const [embedding] = await engine.embed([face]);
      // Both write to an existing user only, checked inside the write (NotFound otherwise): a check
      // before it could pass just before a DeleteUser, and the write bring the user back.
      if (input.isMatch) await addRegisteredFace(collection, identifier, face, embedding, bytes, image, true);
      else if (!(await identities.addNegativeExample(collection, identifier, embedding, EMBEDDING_MODEL))) throw noSuchUser(identifier, collection);
      return { identifier, isMatch: input.isMatch };
    },
  };

  /**
   * Runs an image use case under the server-wide admission limit, once its image is in hand: a
   * slow image_url host holds no slot of the image work.
   */
  function admitted<I extends ImageSource, A extends unknown[], R>(useCase: (input: I, ...rest: A) => Promise<R>) {
    return async (input: I, ...rest: A): Promise<R> => {
      const image = await imageBytesOf(input, config);
      return admission.run(() => useCase({ ...input, image, imageUrl: "" }, ...rest));
    };
  }

  return {
    ...createUserService({ identities, detections, storeImages: config.storeImages }),
    register: admitted(useCases.register),
    recognize: admitted(useCases.recognize),
    verify: admitted(useCases.verify),
    detect: admitted(useCases.detect),
    extractFeatures: admitted(useCases.extractFeatures),
    analyze: admitted(useCases.analyze),
    correctMatch: admitted(useCases.correctMatch),
    /** One camera frame on its own (SyncFrame). */
    syncFrame: (input: SyncInput) => admission.run(() => syncFrame(input)),
    /** A Sync stream: its frames tracked in order (see openSyncSession). */
    openSyncSession: () => openSyncSession((work) => admission.run(work)),
  };
}
