import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { FastifyRequest } from "fastify";

/**
 * Whether a request carries a body: one it announces (a content-length over 0, a
 * transfer-encoding) or, over HTTP/2, where a body needs neither, DATA frames after its headers.
 * Those are waited for until the first byte or the stream's end: an empty DATA frame ending the
 * stream is no body. A body found is left unread.
 */
export async function carriesBody(request: FastifyRequest): Promise<boolean> {
  if (Number(request.headers["content-length"] ?? 0) > 0 || request.headers["transfer-encoding"] !== undefined) return true;
  const body: IncomingMessage | Http2ServerRequest = request.raw;
  if (!isHttp2(body) || body.stream.endAfterHeaders) return false;
  return new Promise<boolean>((resolve) => {
    const settle = (carries: boolean) => {
      body.off("data", onData).off("end", onEnd).off("close", onEnd);
      body.pause();
      resolve(carries);
    };
    const onData = (chunk: Buffer) => { if (chunk.length > 0) settle(true); };
    const onEnd = () => settle(false);
    body.on("data", onData).on("end", onEnd).on("close", onEnd);
  });
}

function isHttp2(request: IncomingMessage | Http2ServerRequest): request is Http2ServerRequest {
  return "stream" in request;
}
