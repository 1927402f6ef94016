import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { createTrickler, SLOW_HTTP_ANSWER } from "./support/trickler.js";

/**
 * An image host on loopback: serves a photo, redirects, sends too much, or never answers.
 * `/pause-then-redirect` waits 300 ms and then redirects to `slowTarget.url`.
 */
function imageHost(slowTarget: { url: string }): { server: Server; port: () => number } {
  const photo = face("face_recognition/obama2.jpg");
  const server = createServer((req, res) => {
    if (req.url === "/photo.jpg") res.writeHead(200, { "content-type": "image/jpeg" }).end(photo);
    else if (req.url === "/redirect-inside") res.writeHead(302, { location: "/photo.jpg" }).end();
    else if (req.url === "/redirect-to-metadata") res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end();
    else if (req.url === "/pause-then-redirect") setTimeout(() => res.writeHead(302, { location: slowTarget.url }).end(), 300);
    else if (req.url === "/redirect-loop") res.writeHead(302, { location: "/redirect-loop" }).end();
    else if (req.url === "/huge") {
      res.writeHead(200, { "content-type": "image/jpeg" });
      const chunk = Buffer.alloc(64 * 1024, 0xff);
      const write = () => { while (res.write(chunk)); };
      res.on("drain", write);
      write();
      res.on("close", () => res.removeAllListeners("drain"));
    } else if (req.url === "/slow") {
      // never answers
    } else res.writeHead(404).end();
  });
  return { server, port: () => (server.address() as AddressInfo).port };
}

describe("image_url", () => {
  const slowTarget = { url: "" };
  const host = imageHost(slowTarget);
  // Headers and body one byte every 300 ms: never idle for long, never done.
  const trickler = createTrickler(SLOW_HTTP_ANSWER, 300);
  let service: TestServer;
  let base = "";
  let trickling = "";
  before(async () => {
    await new Promise<void>((r) => host.server.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${host.port()}`;
    const tricklerPort = await trickler.listen();
    trickling = `http://127.0.0.1:${tricklerPort}/photo.jpg`;
    slowTarget.url = trickling;
    service = await startTestServer({
      FACE_IMAGE_URL_ALLOWED_HOSTS: `127.0.0.1:${host.port()},127.0.0.1:${tricklerPort}`,
      FACE_IMAGE_URL_TIMEOUT_MS: "1000",
      FACE_MAX_IMAGE_BYTES: String(1024 * 1024),
    });
    await faceClient(service).register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
  });
  after(async () => {
    await service.close();
    host.server.closeAllConnections();
    host.server.close();
    await trickler.close();
  });

  it("ends a download that trickles at the total deadline (connect, headers and body)", async () => {
    const start = Date.now();
    await assert.rejects(faceClient(service).recognize({ imageUrl: trickling }), (e) => code(e) === Code.InvalidArgument && /within 1000 ms/.test(String(e)));
    const took = Date.now() - start;
    assert.ok(took >= 900 && took < 2_500, `answered after ${took} ms with a 1000 ms limit`);
  });

  it("holds one deadline for a chain of redirects and names the whole limit when it ends", async () => {
    const start = Date.now();
    await assert.rejects(faceClient(service).recognize({ imageUrl: `${base}/pause-then-redirect` }), (e) => code(e) === Code.InvalidArgument && /within 1000 ms/.test(String(e)));
    const took = Date.now() - start;
    assert.ok(took >= 900 && took < 2_500, `answered after ${took} ms with a 1000 ms limit for the whole chain`);
  });

  const code = (e: unknown) => ConnectError.from(e).code;

  it("fetches an allowed URL, following a redirect that stays allowed", async () => {
    const client = faceClient(service);
    assert.equal((await client.recognize({ imageUrl: `${base}/photo.jpg` })).identifier, "obama");
    assert.equal((await client.recognize({ imageUrl: `${base}/redirect-inside` })).identifier, "obama");
  });

  it("re-checks every redirect, and bounds size, time and hops", async () => {
    const client = faceClient(service);
    await assert.rejects(client.recognize({ imageUrl: `${base}/redirect-to-metadata` }), (e) => code(e) === Code.InvalidArgument);
    await assert.rejects(client.recognize({ imageUrl: `${base}/redirect-loop` }), (e) => code(e) === Code.InvalidArgument && /redirected/.test(String(e)));
    await assert.rejects(client.recognize({ imageUrl: `${base}/huge` }), (e) => code(e) === Code.ResourceExhausted);
    await assert.rejects(client.recognize({ imageUrl: `${base}/slow` }), (e) => code(e) === Code.InvalidArgument && /within/.test(String(e)));
    await assert.rejects(client.recognize({ imageUrl: `${base}/missing` }), (e) => code(e) === Code.InvalidArgument && /404/.test(String(e)));
    await assert.rejects(client.recognize({ imageUrl: `http://127.0.0.1:1/photo.jpg` }), (e) => code(e) === Code.InvalidArgument, "another port is not allowed");
  });

  it("counts a data: URI's photo by its bytes, after percent-decoding, and names a % that encodes nothing", async () => {
    const client = faceClient(service);
    const limit = service.config.maxImageBytes;
    const photo = face("face_recognition/obama3.jpg");
    const everyCharacterEncoded = (bytes: Uint8Array) => [...Buffer.from(bytes).toString("base64")].map((c) => `%${c.charCodeAt(0).toString(16)}`).join("");
    const encoded = everyCharacterEncoded(photo);
    assert.ok(photo.length < limit && (encoded.length * 3) / 4 > limit, "a photo within the limit whose encoding is not");
    assert.equal((await client.recognize({ imageUrl: `data:image/jpeg;base64,${encoded}` })).identifier, "obama");

    const overLimit = Buffer.concat([photo, photo]).toString("base64");
    for (const data of [overLimit, encodeURIComponent(overLimit)]) {
      await assert.rejects(client.recognize({ imageUrl: `data:image/jpeg;base64,${data}` }), (e) => code(e) === Code.ResourceExhausted && /limit of/.test(String(e)));
    }
    await assert.rejects(client.recognize({ imageUrl: `data:image/jpeg;base64,%ZZ${encoded}` }), (e) => code(e) === Code.InvalidArgument && /% that is not percent-encoding/.test(String(e)));
  });
});
