import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { FaceError, type FaceErrorKind } from "../errors.js";
import { BINARY_CONTENT_TYPE, GRPC_WEB_TEXT, TEXT_CONTENT_TYPE } from "./grpc-web-text.js";

/** The `domain` of the google.rpc.ErrorInfo detail that carries a quality reason code. */
export const ERROR_DOMAIN = "face.v1.FaceService";

const CODE_OF_KIND: Record<FaceErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  deadline_exceeded: Code.DeadlineExceeded,
  canceled: Code.Canceled,
};

/** HTTP status for each code, as the Connect protocol maps them (https://connectrpc.com/docs/protocol#error-codes). */
const HTTP_STATUS_OF_CODE: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  // A request over a size limit; with a retry-after (a rate limit) it is 429, see httpStatusOf.
  [Code.ResourceExhausted]: 413,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** Error codes of PostgreSQL and of Node sockets that mean "the database is not reachable now". */
const DATABASE_DOWN = /^(08|57P0[1-3]|53300)|^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN)$/;

/** PostgreSQL's disk_full, and a file system out of space or over its quota (a stored photo). */
const STORAGE_FULL = /^(53100|ENOSPC|EDQUOT)$/;

/** How long a client is asked to wait when the server's storage is full: until someone frees space. */
const STORAGE_FULL_RETRY_SECONDS = 60;

/**
 * Turns anything thrown by a handler into a ConnectError whose message is safe to send: FaceErrors
 * keep their message, database outages and full storage become Unavailable, everything else
 * becomes Internal with a generic message (the cause is kept on the error for the log, never sent).
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof FaceError) {
    // A reason code travels three ways: a google.rpc.ErrorInfo detail (what gRPC clients of large
    // services read), the `x-face-reason` header/trailer and, for REST, the body's `reason`.
    const details: ConstructorParameters<typeof ConnectError>[3] = [];
    if (error.reason !== undefined) details.push({ desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: error.reason, domain: ERROR_DOMAIN }) });
    // A retry delay travels as google.rpc.RetryInfo (gRPC clients) and `retry-after` (HTTP, seconds).
    if (error.retryAfterMs !== undefined) {
      const seconds = Math.floor(error.retryAfterMs / 1000);
      details.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: { seconds: BigInt(seconds), nanos: (error.retryAfterMs % 1000) * 1e6 } }) });
    }
    const connectError = new ConnectError(error.message, CODE_OF_KIND[error.kind], undefined, details, error);
    if (error.reason !== undefined) connectError.metadata.set("x-face-reason", error.reason);
    if (error.retryAfterMs !== undefined) connectError.metadata.set("retry-after", String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
    return connectError;
  }
  if (isDatabaseUnavailable(error)) {
    return new ConnectError("the database is unavailable; try again shortly", Code.Unavailable, undefined, undefined, error);
  }
  if (causes(error).some((e) => STORAGE_FULL.test(String((e as { code?: unknown }).code)))) {
    // Unavailable, not ResourceExhausted: the client did nothing to cause it (REST would read
    // ResourceExhausted as 413, too large), reads go on, and writes will work once space is freed.
    const full = new ConnectError("the server's storage is full: nothing was stored; try again later", Code.Unavailable, undefined, undefined, error);
    full.metadata.set("retry-after", String(STORAGE_FULL_RETRY_SECONDS));
    return full;
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

/**
 * A failure the client cannot fix, which the operator should hear of: Internal, Unknown or
 * Unavailable, unless the service chose to answer so (a FaceError: a refusal at capacity, a shutdown).
 */
export function isServerFault(error: ConnectError): boolean {
  if (error.cause instanceof FaceError) return false;
  return error.code === Code.Internal || error.code === Code.Unknown || error.code === Code.Unavailable;
}

function isDatabaseUnavailable(error: unknown): boolean {
  return causes(error).some((e) => {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && DATABASE_DOWN.test(code)) return true;
    return /Connection terminated|connect ECONNREFUSED|Knex: Timeout acquiring a connection|Unable to acquire a connection|PGlite is clos/.test(e.message);
  });
}

/** `error` and its causes, five deep at most. */
function causes(error: unknown): Error[] {
  const chain: Error[] = [];
  for (let e: unknown = error; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  return chain;
}

/**
 * What a call's signal is aborted with when its client went away before its answer. Not a plain
 * abort: connect-es aborts a finished call's signal too, so the work of a call takes only a
 * ConnectError for its end (callEndOf). REST calls and WebSocket frames were aborted plainly until
 * 2026-12-05: a REST call ran on for no one, counted ok, and a frame in flight to its search.
 */
export function clientGone(): ConnectError {
  return new ConnectError("the client went away before its answer", Code.Canceled);
}

/**
 * Why a call's signal fired, as the FaceError its work stops with: the client's deadline
 * (grpc-timeout, connect-timeout-ms), its cancellation, or the server shutting down. Undefined for
 * the abort connect-es signals once a call has completed (its reason is no ConnectError).
 */
export function callEndOf(reason: unknown): FaceError | undefined {
  if (!(reason instanceof ConnectError)) return undefined;
  if (reason.code === Code.DeadlineExceeded) return new FaceError("deadline_exceeded", "the client's deadline passed before the call was done");
  if (reason.code === Code.Unavailable) return new FaceError("unavailable", "the server is shutting down");
  return new FaceError("canceled", "the client canceled the call");
}

/**
 * The one JSON body of a REST error. Field names follow the REST success bodies (proto JSON,
 * camelCase: `requestId`); `request_id` stays beside it, the name the first contract gave it, so
 * clients written against that keep working.
 */
export function restErrorBody(error: ConnectError, requestId: string): Record<string, string> {
  const body: Record<string, string> = { code: codeName(error.code), message: error.rawMessage, requestId, request_id: requestId };
  const reason = error.metadata.get("x-face-reason");
  if (reason !== null) body.reason = reason;
  return body;
}

/** Statuses only HTTP tells apart, by error (see httpError). */
const HTTP_ONLY_STATUS = new WeakMap<ConnectError, number>();

/** An error of fastify or one of its plugins (body too large, bad JSON, a multipart limit): its code starts with FST_. */
export function isFastifyError(e: unknown): e is Error & { code: string; statusCode?: number } {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === "string" && code.startsWith("FST_");
}

/**
 * An error whose HTTP status no code names (405 method not allowed, 415 unsupported content type,
 * or what fastify itself answered): `code` on RPC protocols, `status` on REST.
 */
export function httpError(status: number, code: Code, message: string): ConnectError {
  const error = new ConnectError(message, code);
  HTTP_ONLY_STATUS.set(error, status);
  return error;
}

/**
 * A refusal the client may retry after `seconds`: `retry-after` travels as a header or trailer on
 * every protocol (Unavailable is HTTP 503; ResourceExhausted with it 429, see httpStatusOf).
 */
export function retryLater(message: string, code: Code.Unavailable | Code.ResourceExhausted, seconds = 1): ConnectError {
  const error = new ConnectError(message, code);
  error.metadata.set("retry-after", String(seconds));
  return error;
}

/**
 * The HTTP status REST answers with for a ConnectError. ResourceExhausted is 429 when the client is
 * told when to come back (a rate limit: retry-after), 413 when its request is too large.
 */
export function httpStatusOf(error: ConnectError): number {
  const explicit = HTTP_ONLY_STATUS.get(error);
  if (explicit !== undefined) return explicit;
  if (error.code === Code.ResourceExhausted && error.metadata.get("retry-after") !== null) return 429;
  return HTTP_STATUS_OF_CODE[error.code] ?? 500;
}

/** An HTTP answer: status, headers and (for REST) a JSON body. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body?: Record<string, string>;
}

/**
 * The answer to a request refused before any handler ran (no API key, rate limit), in the protocol
 * its content type names: gRPC and gRPC-Web get a trailers-only response (HTTP 200, the status in
 * the headers); Connect and REST an HTTP status with the REST error body.
 */
export function refusalOf(contentType: string, error: ConnectError, requestId: string): HttpAnswer {
  if (!contentType.startsWith("application/grpc")) return restAnswerOf(error, requestId);
  return {
    status: 200,
    headers: {
      ...retryAfterOf(error),
      "content-type": GRPC_WEB_TEXT.test(contentType) ? TEXT_CONTENT_TYPE : contentType.startsWith("application/grpc-web") ? BINARY_CONTENT_TYPE : "application/grpc",
      "grpc-status": String(error.code),
      "grpc-message": encodeURIComponent(error.rawMessage),
    },
  };
}

/** A REST error answer: the HTTP status, retry-after when there is one, the one JSON error body. */
export function restAnswerOf(error: ConnectError, requestId: string): HttpAnswer {
  return { status: httpStatusOf(error), headers: { ...retryAfterOf(error), "content-type": "application/json" }, body: restErrorBody(error, requestId) };
}

function retryAfterOf(error: ConnectError): Record<string, string> {
  const retryAfter = error.metadata.get("retry-after");
  return retryAfter === null ? {} : { "retry-after": retryAfter };
}

/**
 * How one failed frame of a stream is answered in-band while the stream goes on (Sync's FrameError,
 * /ws/realtime's error frame): the code's snake_case name and the message.
 */
export function frameErrorOf(error: ConnectError): { code: string; message: string } {
  return { code: codeName(error.code), message: error.rawMessage };
}

/**
 * connect-es reports a request message it could not parse ("parse binary: ...") as Internal; it is
 * the client's bad input. The code such a failure is answered with.
 */
export function codeOfUnhandled(code: Code, message: string): Code {
  return code === Code.Internal && /^parse binary/.test(message) ? Code.InvalidArgument : code;
}

/** The snake_case name of a code, as the Connect protocol spells it on the wire ("invalid_argument"). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
