import assert from "node:assert/strict";
import http2 from "node:http2";
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import WebSocket from "ws";
import { processMetrics } from "../src/metrics.js";
import { face } from "./support/testdata.js";
import { frameByFrame } from "./support/request-queue.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { until } from "./support/webhook-receiver.js";

/**
 * A TCP proxy whose connections can be frozen: from then on nothing passes either way and nothing is
 * closed, as when a client's network goes (a camera losing power, a NAT entry expiring).
 */
async function freezableProxy(target: string): Promise<{ url: string; freeze(): void; close(): void }> {
  const { hostname, port } = new URL(target);
  const sockets: Socket[] = [];
  let frozen = false;
  const server = createServer((client) => {
    const upstream = connectTcp(Number(port), hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      from.on("error", () => {});
      from.on("data", (data) => frozen || to.write(data));
      from.on("end", () => frozen || to.end());
      sockets.push(from);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    freeze: () => (frozen = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** A gRPC Sync stream whose client sends nothing more after its headers. */
function idleSync(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const stream = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/Sync", "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {});
  stream.resume();
  return stream;
}

const openRequests = async () => (await processMetrics().openRequests.get()).values[0]?.value ?? 0;

describe("a client that vanishes without closing its connection", () => {
  let server: TestServer;
  let proxy: Awaited<ReturnType<typeof freezableProxy>>;
  before(async () => {
    server = await startTestServer({ FACE_MAX_OPEN_REQUESTS: "20", FACE_PING_INTERVAL_MS: "500" });
  });
  after(() => server.close());
  /** The code an empty Recognize gets: InvalidArgument once let in, Unavailable while 20 requests are open. */
  const outcome = () => faceClient(server).recognize({ image: new Uint8Array() }).then(() => "answered", (e) => ConnectError.from(e).code);

  it("loses its HTTP/2 connection and Sync streams once it leaves the server's pings unanswered", async () => {
    proxy = await freezableProxy(server.url);
    try {
      const session = http2.connect(proxy.url).on("error", () => {});
      for (let i = 0; i < 20; i++) idleSync(session);
      await until(async () => (await openRequests()) === 20, "20 streams open");
      assert.equal(await outcome(), Code.Unavailable);
      proxy.freeze();
      await until(async () => (await outcome()) === Code.InvalidArgument, "the vanished client's streams closed", 5_000);
      session.destroy();
    } finally {
      proxy.close();
    }
  });

  it("loses its WebSockets likewise", async () => {
    proxy = await freezableProxy(server.url);
    try {
      const url = `${proxy.url.replace("http", "ws")}/ws/realtime`;
      const sockets = await Promise.all(
        Array.from({ length: 20 }, () => new Promise<WebSocket>((resolve, reject) => {
          const socket = new WebSocket(url).on("error", () => {});
          socket.once("open", () => resolve(socket)).once("close", reject);
        })),
      );
      await until(async () => (await openRequests()) === 20, "20 WebSockets open");
      assert.equal(await outcome(), Code.Unavailable);
      proxy.freeze();
      await until(async () => (await outcome()) === Code.InvalidArgument, "the vanished client's WebSockets closed", 5_000);
      for (const socket of sockets) socket.terminate();
    } finally {
      proxy.close();
    }
  });

  it("keeps an idle Sync stream and WebSocket whose client answers the pings", async () => {
    const photo = face("face_recognition/obama.jpg");
    const stream = frameByFrame(faceClient(server));
    assert.equal((await stream.frame({ frameId: "before-the-silence", image: photo })).frameId, "before-the-silence");
    const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
    await new Promise((resolve) => socket.once("open", resolve));
    // Six ping intervals of silence from the client's side.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal((await stream.frame({ frameId: "after-the-silence", image: photo })).frameId, "after-the-silence");
    stream.end();
    const answer = new Promise<string>((resolve) => socket.once("message", (data) => resolve(JSON.parse(String(data)).type)).once("close", (code) => resolve(`closed ${code}`)));
    assert.equal(socket.readyState, WebSocket.OPEN, "the WebSocket is still open");
    socket.send(photo);
    assert.equal(await answer, "results");
    socket.close();
  });
});
