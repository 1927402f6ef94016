import { randomUUID } from "node:crypto";
import { maxHeaderSize, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { Code } from "@connectrpc/connect";
import type { FastifyReply, FastifyRequest } from "fastify";
import { deny } from "./access.js";
import { httpError, restAnswerOf } from "./errors.js";

/**
 * The longest path parameter the router takes. Path parameters are identifiers (up to 128
 * characters), collection names and webhook ids, which the handlers check with clear messages; the
 * router's default of 100 answered a valid identifier of 101 to 128 characters with a 414 of its own.
 */
export const MAX_PATH_PARAMETER_LENGTH = 1024;

/**
 * Answers a request the router refused before any route or hook ran (a path parameter over
 * MAX_PATH_PARAMETER_LENGTH, a percent-encoding that does not decode to UTF-8) like every other
 * error: in the client's protocol, with the service's error body and request id.
 */
export function answerRouterError(error: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const refusal =
    error.code === "FST_ERR_MAX_PARAM_LENGTH"
      ? httpError(414, Code.InvalidArgument, `a path parameter is longer than ${MAX_PATH_PARAMETER_LENGTH} characters`)
      : httpError(400, Code.InvalidArgument, "the path is not valid: its percent-encoding does not decode to UTF-8");
  // The onRequest hook that names the request id on every answer has not run.
  reply.header("x-request-id", request.id);
  return deny(request, reply, refusal);
}

/**
 * Answers an HTTP/1.1 request Node's parser refused before fastify saw it (a malformed request,
 * headers over Node's limit, 16 KiB unless --max-http-header-size says otherwise, a body that did not
 * arrive within FACE_REQUEST_TIMEOUT_MS) with the service's error body and a request id, as fastify's
 * clientErrorHandler; its default answered a shape of its own ({"error", "message": "Client Error",
 * "statusCode"}). The connection is closed after it.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // A connection reset has nobody left to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const refusal =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? httpError(408, Code.DeadlineExceeded, "the request did not arrive whole in time (FACE_REQUEST_TIMEOUT_MS)")
      : error.code === "HPE_HEADER_OVERFLOW"
        ? httpError(431, Code.ResourceExhausted, `the request's headers are larger than ${maxHeaderSize / 1024} KiB`)
        : httpError(400, Code.InvalidArgument, `the request is not valid HTTP/1.1 (${error.code ?? error.message})`);
  const requestId = randomUUID();
  const { status, headers, body } = restAnswerOf(refusal, requestId);
  const text = JSON.stringify(body);
  const head = Object.entries({ ...headers, "x-request-id": requestId, "content-length": String(Buffer.byteLength(text)), connection: "close" }).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n${head}\r\n${text}`);
  socket.destroy();
}
