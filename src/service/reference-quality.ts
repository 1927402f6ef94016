import { FaceError, type QualityReason } from "../errors.js";
import type { FoundFace, LocatedFace } from "../engine/pipeline.js";

/** The configured gates a reference photo must pass. */
export interface QualityGates {
  minDetectionScore: number;
  minFaceSize: number;
  minSharpness: number;
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

/** Why a face may not be used as asked: a reason code and a message for the caller. */
type QualityProblem = { reason: QualityReason; message: string };

/** Why a face is not good enough to be a reference photo, or undefined when it is. */
export function qualityProblem(face: LocatedFace, others: readonly FoundFace[], gates: QualityGates): QualityProblem | undefined {
  const q = face.quality;
  const ambiguous = ambiguityProblem(face, others);
  if (ambiguous) return ambiguous;
  if (face.score < gates.minDetectionScore) {
    return { reason: "LOW_CONFIDENCE", message: `face detection confidence ${face.score.toFixed(2)} is below ${gates.minDetectionScore}` };
  }
  if (Math.min(q.faceWidth, q.faceHeight) < gates.minFaceSize) {
    return { reason: "SMALL_FACE", message: `face is ${q.faceWidth}x${q.faceHeight} px; at least ${gates.minFaceSize} px are needed` };
  }
  if (q.sharpness < gates.minSharpness) {
    return { reason: "LOW_SHARPNESS", message: `face is too blurry (sharpness ${q.sharpness.toFixed(1)}, at least ${gates.minSharpness} needed)` };
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

/** Why `face`, the photo's largest, may not be the one the caller means: another about as large. */
function ambiguityProblem(face: LocatedFace, others: readonly FoundFace[]): QualityProblem | undefined {
  const area = face.box.width * face.box.height;
  if (!others.some((o) => o.box.width * o.box.height >= area * AMBIGUOUS_SECOND_FACE)) return undefined;
  return { reason: "MULTIPLE_FACES", message: "several faces of similar size: send a photo of one person" };
}

function requireNoProblem(problem: QualityProblem | undefined): void {
  if (problem) throw new FaceError("failed_precondition", problem.message, { reason: problem.reason });
}

/** Throws FailedPrecondition with the reason when the face is not fit to be a reference. */
export function requireQuality(face: LocatedFace, others: readonly FoundFace[], gates: QualityGates): void {
  requireNoProblem(qualityProblem(face, others, gates));
}

/**
 * Throws FailedPrecondition (MULTIPLE_FACES) when another face of the photo is about as large as
 * `face`: what is said of "the" face (CorrectMatch's "not them") could be said of the wrong one.
 */
export function requireOneSubject(face: LocatedFace, others: readonly FoundFace[]): void {
  requireNoProblem(ambiguityProblem(face, others));
}
