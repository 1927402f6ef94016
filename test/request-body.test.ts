import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyRequest } from "fastify";
import { carriesBody } from "../src/transport/request-body.js";

/** What carriesBody answers for the first request to a plain HTTP/2 server, asked once `ready` says so. */
async function answerFor(send: (client: http2.ClientHttp2Session) => void, ready: (request: http2.Http2ServerRequest) => Promise<unknown>): Promise<string> {
  const server = http2.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on("error", () => {});
  try {
    const [request] = (await Promise.all([once(server, "request"), send(client)]))[0] as [http2.Http2ServerRequest];
    await ready(request);
    const asked = carriesBody({ headers: request.headers, raw: request } as unknown as FastifyRequest)
      .then((carries) => `carries ${carries}`, (e) => `fails ${Code[ConnectError.from(e).code]}`);
    return await Promise.race([asked, new Promise<string>((resolve) => setTimeout(() => resolve("no answer in 2 s"), 2_000))]);
  } finally {
    client.destroy();
    server.close();
  }
}

describe("carriesBody over HTTP/2 (a route that takes no body)", () => {
  it("fails with Canceled for a stream the client reset before it was asked", async () => {
    // Access checks run before it (async onRequest hooks): a client may reset in between, and the
    // stream's close, already past, must not leave the request waiting for ever.
    const answer = await answerFor(
      (client) => { const held = client.request({ ":method": "DELETE", ":path": "/x" }, { endStream: false }); held.on("error", () => {}); held.on("ready", () => held.close(http2.constants.NGHTTP2_CANCEL)); },
      (request) => (request.stream.closed ? Promise.resolve() : once(request.stream, "close")),
    );
    assert.equal(answer, "fails Canceled");
  });

  it("answers no body for a stream that ended with its headers, and a body for a DATA byte", async () => {
    assert.equal(await answerFor((client) => { client.request({ ":method": "DELETE", ":path": "/x" }).on("error", () => {}); }, async () => {}), "carries false");
    assert.equal(await answerFor((client) => { client.request({ ":method": "DELETE", ":path": "/x" }, { endStream: false }).on("error", () => {}).end("{}"); }, async () => {}), "carries true");
  });
});
