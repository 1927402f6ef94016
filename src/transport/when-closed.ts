import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import type { Duplex } from "node:stream";

/** What a request's end is watched on: its answer (HTTP/1.1 or HTTP/2), or a WebSocket's socket. */
export type RequestLifetime = ServerResponse | Http2ServerResponse | Duplex;

/**
 * Calls `done` once, when `lifetime` has closed (the answer sent, or its client gone), and at once
 * when it already has. A 'close' listener added after the event is never called, and a request can
 * be closed before its hooks run: an HTTP/2 stream whose client reset it in the same packet as its
 * headers is. Each such stream held its open-request place for good, so that one packet of them
 * (100, against a limit of 64) refused every later request (test/open-requests.test.ts).
 */
export function whenClosed(lifetime: RequestLifetime, done: () => void): void {
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    done();
  };
  lifetime.once("close", once);
  if (hasClosed(lifetime)) once();
}

function hasClosed(lifetime: RequestLifetime): boolean {
  if ("stream" in lifetime) return lifetime.stream.destroyed;
  if ("req" in lifetime) return lifetime.destroyed || lifetime.req.socket.destroyed;
  return lifetime.destroyed;
}
