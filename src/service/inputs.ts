import { FaceError, invalidArgument } from "../errors.js";
import { fetchImageUrl, type ImageUrlPolicy } from "./image-url.js";

/** Collections hold users that must never be matched across (customers, sites). */
export const DEFAULT_COLLECTION = "default";

const COLLECTION_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/**
 * Letters and digits of any script, each with the combining marks written on it (Devanagari's vowel
 * signs, Thai's tone marks, an accent typed separately), plus a few separators; no control
 * characters, no slashes (REST paths).
 */
const IDENTIFIER_PATTERN = /^(?:[\p{L}\p{N}]\p{M}*|[_.@+:\- ])+$/u;
const MAX_IDENTIFIER_LENGTH = 128;

/** Validates `collection`, defaulting an empty one to "default". */
export function collectionOf(value: string): string {
  if (value === "") return DEFAULT_COLLECTION;
  if (!COLLECTION_PATTERN.test(value)) {
    throw invalidArgument("collection must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit");
  }
  return value;
}

/**
 * Validates a user identifier, in Unicode's composed form (NFC): "José" typed with a separate accent
 * (as macOS spells file names) and with the composed é is one user. Migration 010 composed the
 * identifiers stored before.
 */
export function identifierOf(sent: string, field = "identifier"): string {
  const value = sent.normalize("NFC");
  if (value === "") throw invalidArgument(`${field} is required`);
  if (value.length > MAX_IDENTIFIER_LENGTH) throw invalidArgument(`${field} is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  if (!IDENTIFIER_PATTERN.test(value) || value.trim() !== value) {
    throw invalidArgument(`${field} may hold letters and digits (with their accents and marks), spaces inside, and _ . @ + : - only`);
  }
  return value;
}

/**
 * Faces one image is read for, the largest: each costs an alignment, an embedding, a search and a
 * detection log entry (Analyze: its estimates, about 40 ms). Unbounded, a 3.5 MB photo of 900 faces
 * kept both cores busy for 36 s of one Analyze.
 */
const MAX_FACES_PER_IMAGE = 100;

/** Validates a request's max_faces: 0 means as many as MAX_FACES_PER_IMAGE. */
export function maxFacesOf(value: number): number {
  if (value > MAX_FACES_PER_IMAGE) throw invalidArgument(`max_faces is at most ${MAX_FACES_PER_IMAGE} (0: the ${MAX_FACES_PER_IMAGE} largest faces)`);
  return value === 0 ? MAX_FACES_PER_IMAGE : value;
}

/**
 * A frame's id is echoed and written with each of its sightings (the detection log, webhook
 * events), so its length is bounded: unbounded, a client's megabyte of frame_id was stored once per
 * face of the frame.
 */
const MAX_FRAME_ID_LENGTH = 128;

/** Validates a Sync frame's optional frame_id. */
export function frameIdOf(value: string): string {
  if (value.length > MAX_FRAME_ID_LENGTH) throw invalidArgument(`frame_id is longer than ${MAX_FRAME_ID_LENGTH} characters`);
  return value;
}

/** An image field pair as requests carry it: bytes or a URL, exactly one. */
export interface ImageSource {
  image: Uint8Array;
  imageUrl: string;
}

export interface ImageInputLimits extends ImageUrlPolicy {
  maxImageBytes: number;
}

/** Returns the image bytes of a request, fetching `image_url` when that is what it carries. */
export async function imageBytesOf(source: ImageSource, limits: ImageInputLimits, field = "image"): Promise<Uint8Array> {
  const hasBytes = source.image.length > 0;
  const hasUrl = source.imageUrl !== "";
  if (hasBytes && hasUrl) throw invalidArgument(`send either ${field} or image_url, not both`);
  if (!hasBytes && !hasUrl) throw invalidArgument(`${field} is required (raw bytes, base64 in JSON, or image_url)`);
  const bytes = hasBytes ? source.image : await fetchImageUrl(source.imageUrl, limits);
  return checkImageSize(bytes, limits.maxImageBytes, field);
}

/** Refuses images over the byte limit with ResourceExhausted (HTTP 413). */
export function checkImageSize(bytes: Uint8Array, maxImageBytes: number, field = "image"): Uint8Array {
  if (bytes.length > maxImageBytes) {
    throw new FaceError("resource_exhausted", `${field} is ${bytes.length} bytes, more than the limit of ${maxImageBytes} bytes`);
  }
  return bytes;
}

/** Validates an optional threshold (cosine distance, 0..2). */
export function thresholdOf(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || value > 2) throw invalidArgument("threshold is a cosine distance from 0 to 2");
  return value;
}
