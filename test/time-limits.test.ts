/**
 * The time an HTTP/2 request has to arrive whole (endIfSlow), on a real HTTP/2 server and client: a
 * GET arrives whole with its headers, so the time its answer takes is not its request's. Waiting
 * for the end of its body, which nothing reads, cut every GET that took longer than the limit.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { endIfSlow } from "../src/transport/time-limits.js";

const LIMIT_MS = 200;

/** What the client saw of one request: the answer's body, or the code its stream was reset with. */
function call(session: http2.ClientHttp2Session, method: "GET" | "POST"): Promise<{ body?: string; rstCode?: number }> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": method, ":path": "/" }, { endStream: method === "GET" });
    let body = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (body += chunk));
    stream.on("error", () => {});
    stream.on("close", () => resolve(stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? { body } : { rstCode: stream.rstCode }));
    // A POST whose body never ends: the request that the limit is for.
    if (method === "POST") stream.write("part of a body");
  });
}

describe("an HTTP/2 request's time to arrive whole", () => {
  let server: http2.Http2Server;
  let session: http2.ClientHttp2Session;
  before(async () => {
    server = http2.createServer((req, res) => {
      // Nothing reads the body, as nothing reads a GET's (empty) one in the service.
      endIfSlow(req, LIMIT_MS);
      // The answer takes three times the limit to be ready (a slow model, a slow database).
      setTimeout(() => res.end("answered"), LIMIT_MS * 3).unref();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it("does not cut a GET whose answer takes longer than the limit", async () => {
    assert.deepEqual(await call(session, "GET"), { body: "answered" });
  });

  it("resets a request whose body has not arrived within the limit", async () => {
    assert.deepEqual(await call(session, "POST"), { rstCode: http2.constants.NGHTTP2_CANCEL });
  });
});
