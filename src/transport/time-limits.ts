import http2 from "node:http2";

/**
 * Resets an HTTP/2 request's stream if it has not arrived whole within `timeoutMs`. A request whose
 * headers ended the stream (a GET) has arrived whole with them: nothing reads its empty body, so
 * waiting for its end cut every such request `timeoutMs` after it began, answered or not.
 */
export function endIfSlow(req: http2.Http2ServerRequest, timeoutMs: number): void {
  if (req.stream.endAfterHeaders) return;
  const timer = setTimeout(() => {
    if (!req.stream.destroyed) req.stream.close(http2.constants.NGHTTP2_CANCEL);
  }, timeoutMs).unref();
  const arrived = () => clearTimeout(timer);
  req.once("end", arrived);
  req.stream.once("close", arrived);
}

/**
 * Calls `abort` if an answer (not a stream of them) is not taken whole by its client within
 * `timeoutMs` of its first bytes being handed over (its first `write()` or its `end()`): a unary
 * answer is written at once, so from there it only waits for the client. A client that stops
 * reading, or reads a little now and then while it answers pings, otherwise held the answer in
 * memory, and its request's open place, for good (test/slow-readers.test.ts).
 */
export function endIfAnswerNotTaken(res: AnswerWriter, timeoutMs: number, abort: () => void): void {
  const methods = { write: res.write, end: res.end };
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    const timer = setTimeout(abort, timeoutMs).unref();
    res.once("close", () => clearTimeout(timer));
  };
  for (const name of ["write", "end"] as const) {
    res[name] = function (this: unknown, ...args: never[]) {
      start();
      return methods[name].apply(this, args);
    } as AnswerWriter[typeof name];
  }
}

/** What endIfAnswerNotTaken needs of an HTTP/1.1 or HTTP/2 response. */
interface AnswerWriter {
  write: (...args: never[]) => unknown;
  end: (...args: never[]) => unknown;
  once(event: "close", listener: () => void): unknown;
}
