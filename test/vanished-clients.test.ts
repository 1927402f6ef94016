import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import http2 from "node:http2";
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import WebSocket from "ws";
import { keepHttp2SessionAlive } from "../src/transport/keepalive.js";
import { face } from "./support/testdata.js";
import { frameByFrame } from "./support/request-queue.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { until } from "./support/until.js";
import { openRequests } from "./support/gauges.js";

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


describe("a client that vanishes without closing its connection", () => {
  let server: TestServer;
  let proxy: Awaited<ReturnType<typeof freezableProxy>>;
  before(async () => {
    server = await startTestServer({ FACE_MAX_OPEN_REQUESTS: "20", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "20", FACE_PING_INTERVAL_MS: "500" });
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

/** An h2c server whose sessions are kept alive by the service's keepalive, every `intervalMs`. */
async function keptAliveServer(intervalMs: number, onSession: (session: http2.ServerHttp2Session) => void = () => {}) {
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on("session", (session) => {
    session.on("error", () => {});
    keepHttp2SessionAlive(session, intervalMs);
    sessions.push(session);
    onSession(session);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, sessions, port: (server.address() as AddressInfo).port };
}

describe("the keepalive's pings", () => {
  it("do not throw on a session destroyed whose close waits for a write that cannot finish", async () => {
    // The peer's side stops taking bytes (a vanished client whose buffers are full): a destroyed
    // session then closes only once its pending write ends, and ping() throws meanwhile.
    let stalled = false;
    const clientEnd: Duplex = new Duplex({ read() {}, write(chunk, _encoding, done) { serverEnd.push(chunk); done(); } });
    const serverEnd: Duplex = new Duplex({ read() {}, write(chunk, _encoding, done) { if (!stalled) { clientEnd.push(chunk); done(); } } });
    const { server, sessions } = await keptAliveServer(20);
    const uncaught: Error[] = [];
    const record = (error: Error) => uncaught.push(error);
    process.on("uncaughtException", record);
    try {
      server.emit("connection", serverEnd);
      const client = http2.connect("http://peer", { createConnection: () => clientEnd }).on("error", () => {});
      await once(client, "connect");
      stalled = true;
      const [session] = sessions;
      session.ping(() => {});
      session.destroy();
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(session.destroyed && !session.closed, "the session's close is still pending");
      assert.deepEqual(uncaught.map((e) => e.message), []);
    } finally {
      process.off("uncaughtException", record);
      server.close();
    }
  });

  it("keep a session whose answer came while the event loop was stalled past the interval", async () => {
    const { server, sessions, port } = await keptAliveServer(100, () => {
      // Due with the keepalive's timer and run just after it: the stall begins once the ping is
      // written (immediates), and outlasts the next interval while the answer arrives unread.
      let fired = 0;
      const stall = setInterval(() => {
        if (++fired === 4) clearInterval(stall);
        setImmediate(() => {
          const end = Date.now() + 150;
          while (Date.now() < end);
        });
      }, 100);
    });
    // The client in a process of its own, so it answers while this one's event loop is stalled.
    const client = spawn(process.execPath, ["-e", `require("node:http2").connect("http://127.0.0.1:${port}"); setTimeout(() => {}, 10000)`]);
    try {
      await until(async () => sessions.length === 1, "the client connected");
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(sessions[0].destroyed, false, "the session is kept");
    } finally {
      client.kill();
      server.close();
    }
  });
});
