import { Code } from "@connectrpc/connect";
import type { FastifyReply, FastifyRequest } from "fastify";
import { deny } from "./access.js";
import { httpError } from "./errors.js";

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
