/**
 * The closed set of failures the engine, store and services report. Only src/transport/errors.ts
 * turns them into protocol codes, so the inner layers never import a transport library.
 */
export type FaceErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "unauthenticated"
  | "permission_denied"
  /** The client's deadline passed before the call was done. */
  | "deadline_exceeded"
  /** The client went away or cancelled the call. */
  | "canceled";

/**
 * Why a face was refused, modelled on the reasons large face services report, so a client can tell
 * its user what to fix.
 */
export type QualityReason =
  | "NO_FACE"
  | "MULTIPLE_FACES"
  | "SMALL_FACE"
  | "LOW_SHARPNESS"
  | "LOW_BRIGHTNESS"
  | "EXTREME_POSE"
  | "LOW_CONFIDENCE";

/** A failure with a kind the client can act on and a message safe to show it. */
export class FaceError extends Error {
  constructor(
    readonly kind: FaceErrorKind,
    message: string,
    options?: { cause?: unknown; reason?: QualityReason; retryAfterMs?: number },
  ) {
    super(message, { cause: options?.cause });
    this.name = "FaceError";
    this.reason = options?.reason;
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** Set when a face was refused for its quality. */
  readonly reason: QualityReason | undefined;
  /** Set when the call may succeed if retried after this long (the server was at capacity). */
  readonly retryAfterMs: number | undefined;
}

/** Shorthand for the most common failure: a bad field in the request. */
export function invalidArgument(message: string): FaceError {
  return new FaceError("invalid_argument", message);
}
