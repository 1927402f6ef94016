import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { FastifyRequest } from "fastify";
import { clientGone } from "./errors.js";

/**
 * Whether a request carries a body: one it announces (a content-length over 0, a
 * transfer-encoding) or, over HTTP/2, where a body needs neither, DATA frames after its headers.
 * Those are waited for until the first byte or the stream's end: an empty DATA frame ending the
 * stream is no body, and a stream closed before its end fails with clientGone. A body found is
 * left unread.
 */
export async function carriesBody(request: FastifyRequest): Promise<boolean> {
  if (Number(request.headers["content-length"] ?? 0) > 0 || request.headers["transfer-encoding"] !== undefined) return true;
  const body: IncomingMessage | Http2ServerRequest = request.raw;
  if (!isHttp2(body) || body.stream.endAfterHeaders) return false;
  // Reset while the access checks before this ran: its close, already past, will not come again.
  if (body.stream.closed || body.stream.destroyed) throw clientGone();
  return new Promise<boolean>((resolve, reject) => {
    const settle = (carries: boolean | Error) => {
      body.off("data", onData).off("end", onEnd).off("close", onClose);
      body.pause();
      if (carries instanceof Error) reject(carries);
      else resolve(carries);
    };
    const onData = (chunk: Buffer) => { if (chunk.length > 0) settle(true); };
    const onEnd = () => settle(false);
    // Closed before its end (reset by the client, or by FACE_REQUEST_TIMEOUT_MS): the request never
    // arrived whole, so it is not acted on (a DELETE held open was carried out once reset).
    const onClose = () => settle(clientGone());
    body.on("data", onData).on("end", onEnd).on("close", onClose);
  });
}

function isHttp2(request: IncomingMessage | Http2ServerRequest): request is Http2ServerRequest {
  return "stream" in request;
}
