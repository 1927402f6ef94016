/**
 * One client may hold only its share of the requests open at once (FACE_MAX_OPEN_REQUESTS_PER_CLIENT,
 * three quarters of FACE_MAX_OPEN_REQUESTS unless set), of the bytes of messages being received
 * (FACE_MAX_RECEIVING_BYTES_PER_CLIENT, likewise), and one address its share of the connections
 * (FACE_MAX_CONNECTIONS_PER_ADDRESS, three quarters of the server's). A Sync stream or WebSocket
 * stays open for as long as its client answers pings, and so does an idle HTTP/2 connection: before
 * the shares, one client's idle streams or connections (a camera gateway leaking them, or someone
 * hostile) held every place and every other client was refused.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import WebSocket from "ws";
import { processMetrics } from "../src/metrics.js";
import { haproxyAloneMissing, startHAProxy, type HAProxy } from "./support/haproxy.js";
import { connectFrom, emptyRecognize } from "./support/raw-http2.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";
import { openRequests } from "./support/gauges.js";
import { tcpFrom } from "./support/from-address.js";

/** An HTTP/2 connection to `url` from the local address `from`, kept in `sessions` to be closed after the test. */
function connectKept(url: string, from: string, sessions: http2.ClientHttp2Session[]): http2.ClientHttp2Session {
  const session = connectFrom(url, from);
  sessions.push(session);
  return session;
}

/** A Sync stream that sends no frame: it stays open, as a camera's does between frames. */
function idleSync(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders = {}): http2.ClientHttp2Stream {
  const stream = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/Sync", "content-type": "application/grpc", te: "trailers", ...headers }, { endStream: false });
  stream.on("error", () => {});
  stream.resume();
  return stream;
}

describe("one client's open requests leave room for the others", () => {
  let server: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  before(async () => {
    // Six places for one client (three quarters of eight); every address of this machine reaches it.
    server = await startTestServer({ FACE_MAX_OPEN_REQUESTS: "8", HOST: "::" });
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await server.close();
  });
  const from = (address: string) => connectKept(server.url, address, sessions);

  it("refuses a client's requests beyond its share with ResourceExhausted, and lets other addresses of both families in", async () => {
    const holder = from("127.0.0.2");
    const held = Array.from({ length: 6 }, () => idleSync(holder));
    try {
      await until(async () => (await openRequests()) === 6, "six streams open");
      const refused = await emptyRecognize(holder);
      assert.equal(refused.status, Code.ResourceExhausted);
      assert.equal(refused.retryAfter, "1");
      assert.match(refused.message, /address 127\.0\.0\.2.*FACE_MAX_OPEN_REQUESTS_PER_CLIENT/);
      assert.equal((await emptyRecognize(from("127.0.0.2"))).status, Code.ResourceExhausted, "a new connection from the same address is the same client");
      const rest = await new Promise<number>((resolve) => {
        const stream = holder.request({ ":method": "POST", ":path": "/api/v1/recognize", "content-type": "application/json" });
        stream.on("response", (h) => resolve(Number(h[":status"]))).on("error", () => resolve(0));
        stream.resume();
        stream.end("{}");
      });
      assert.equal(rest, 429);
      assert.equal((await emptyRecognize(from("127.0.0.3"))).status, Code.InvalidArgument, "another IPv4 client is let in");
      assert.equal((await emptyRecognize(from("::1"))).status, Code.InvalidArgument, "an IPv6 client is let in");
      held[0].close(http2.constants.NGHTTP2_CANCEL);
      await until(async () => (await emptyRecognize(holder)).status === Code.InvalidArgument, "the client let in again once one of its streams ended", 5_000);
    } finally {
      for (const stream of held) stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    await until(async () => (await openRequests()) === 0, "none open");
  });

  it("still refuses everyone with Unavailable once several clients hold every place", async () => {
    const held = [...Array.from({ length: 6 }, () => idleSync(from("127.0.0.2"))), ...Array.from({ length: 2 }, () => idleSync(from("::1")))];
    await until(async () => (await openRequests()) === 8, "eight streams open");
    assert.equal((await emptyRecognize(from("127.0.0.3"))).status, Code.Unavailable);
    for (const stream of held) stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(async () => (await openRequests()) === 0, "none open");
  });

  it("counts a client's WebSockets in its share", async () => {
    const url = `${server.url.replace("http", "ws")}/ws/realtime`;
    const open = (localAddress: string) => new Promise<WebSocket | number>((resolve, reject) => {
      const socket = new WebSocket(url, { localAddress });
      socket.once("open", () => resolve(socket)).once("unexpected-response", (_req, res) => resolve(res.statusCode!)).once("error", reject);
    });
    const sockets = [];
    for (let i = 0; i < 6; i++) sockets.push(await open("127.0.0.4"));
    assert.equal(await open("127.0.0.4"), 429);
    const other = await open("127.0.0.5");
    assert.ok(other instanceof WebSocket, "another client's WebSocket is let in");
    for (const socket of [...sockets, other]) (socket as WebSocket).close();
    await until(async () => (await openRequests()) === 0, "none open");
  });
});

describe("with API keys, a client is its key", () => {
  let server: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  const keys = ["per-client-key-a-0123", "per-client-key-b-0123"];
  before(async () => {
    server = await startTestServer({ FACE_MAX_OPEN_REQUESTS: "8", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "3", FACE_API_KEYS: keys.join(",") });
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await server.close();
  });

  it("gives two keys from one address a share each, and names neither key in the refusal", async () => {
    const session = connectKept(server.url, "127.0.0.1", sessions);
    const [a, b] = keys.map((key) => ({ "x-api-key": key }));
    const held = Array.from({ length: 3 }, () => idleSync(session, a));
    await until(async () => (await openRequests()) === 3, "three streams open");
    const refused = await emptyRecognize(session, a);
    assert.equal(refused.status, Code.ResourceExhausted);
    assert.doesNotMatch(refused.message, /per-client-key/);
    assert.equal((await emptyRecognize(session, b)).status, Code.InvalidArgument);
    for (const stream of held) stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(async () => (await openRequests()) === 0, "none open");
  });
});

describeUnless(haproxyAloneMissing(), "clients behind HAProxy (deploy/haproxy.cfg) each have their own share", () => {
  let server: TestServer;
  let proxy: HAProxy;
  const sessions: http2.ClientHttp2Session[] = [];
  before(async () => {
    server = await startTestServer({ FACE_MAX_OPEN_REQUESTS: "8", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "3", FACE_TRUSTED_PROXIES: "127.0.0.1" });
    proxy = await startHAProxy([new URL(server.url).host]);
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await proxy?.close();
    await server?.close();
  });

  it("refuses the client that holds its share, not the others behind the same proxy", async () => {
    const holder = connectKept(proxy.url, "127.0.0.6", sessions);
    const held = Array.from({ length: 3 }, () => idleSync(holder));
    await until(async () => (await openRequests()) === 3, "three streams open");
    assert.equal((await emptyRecognize(holder)).status, Code.ResourceExhausted);
    assert.equal((await emptyRecognize(connectKept(proxy.url, "127.0.0.7", sessions))).status, Code.InvalidArgument);
    for (const stream of held) stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(async () => (await openRequests()) === 0, "none open");
  });
});

describe("one address's connections leave room for the others", () => {
  let server: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  const sockets: Socket[] = [];
  before(async () => {
    // Six connections for one address (three quarters of eight).
    server = await startTestServer({ FACE_MAX_CONNECTIONS: "8", HOST: "::" });
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    await server.close();
  });
  const dropped = async () => (await processMetrics().connectionsDropped.get()).values[0]?.value ?? 0;
  const connectionsOpen = () => new Promise<number>((resolve, reject) => server.app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));

  /** Connections from `from` that send nothing, and how many of them the service has closed. */
  async function silentConnections(from: string, count: number): Promise<() => number> {
    let closed = 0;
    for (let i = 0; i < count; i++) {
      const socket = tcpFrom(server.url, from);
      socket.on("error", () => {}).once("close", () => (closed += 1));
      sockets.push(socket);
      await new Promise((resolve) => socket.once("connect", resolve).once("close", resolve));
    }
    return () => closed;
  }

  it("closes an address's connections beyond its share as they arrive, and takes other addresses' of both families", async () => {
    const before = await dropped();
    const closedOfFlood = await silentConnections("127.0.0.2", 8);
    await until(() => closedOfFlood() === 2, "two of the flood's connections closed");
    assert.equal(await dropped(), before + 2, "counted in face_connections_dropped_total");
    assert.equal((await emptyRecognize(connectKept(server.url, "127.0.0.3", sessions))).status, Code.InvalidArgument, "another IPv4 address is served");
    assert.equal((await emptyRecognize(connectKept(server.url, "::1", sessions))).status, Code.InvalidArgument, "an IPv6 address is served");
    for (const socket of sockets.splice(0)) socket.destroy();
    await until(async () => (await connectionsOpen()) === 2, "the flood's connections closed on the server's side");
    assert.equal((await emptyRecognize(connectKept(server.url, "127.0.0.2", sessions))).status, Code.InvalidArgument, "the address is served again once its connections closed");
  });

  it("counts idle HTTP/2 connections, which answer pings and stay, in the share", async () => {
    for (const session of sessions.splice(0)) session.destroy();
    await until(async () => (await connectionsOpen()) === 0, "the last test's connections closed");
    const idle = Array.from({ length: 6 }, () => connectKept(server.url, "127.0.0.4", sessions));
    await Promise.all(idle.map((session) => new Promise((resolve) => session.once("remoteSettings", resolve))));
    const seventh = connectKept(server.url, "127.0.0.4", sessions);
    assert.equal(await new Promise((resolve) => seventh.once("remoteSettings", () => resolve("served")).once("close", () => resolve("closed"))), "closed");
    assert.equal((await emptyRecognize(connectKept(server.url, "127.0.0.5", sessions))).status, Code.InvalidArgument);
  });
});

describe("one client's messages being received leave room for the others'", () => {
  let server: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  before(async () => {
    // Messages of up to 2.9 MB (images of 1 MiB, in base64, twice); 8 MiB being received at once, 6 MiB of them from one client.
    server = await startTestServer({ FACE_MAX_IMAGE_BYTES: String(2 ** 20), FACE_MAX_RECEIVING_BYTES: String(8 * 2 ** 20), HOST: "::" });
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await server.close();
  });
  const receiving = async () => (await processMetrics().receivingBytes.get()).values[0]?.value ?? 0;

  /** A Recognize whose message announces `length` bytes and sends `sent` of them: its status, or "no answer" within 3 s. */
  function partialRecognize(session: http2.ClientHttp2Session, length: number, sent: number): { stream: http2.ClientHttp2Stream; status: Promise<number | "no answer"> } {
    const stream = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/Recognize", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    stream.resume();
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(length, 1);
    stream.write(Buffer.concat([prefix, Buffer.alloc(sent)]));
    if (sent === length) stream.end();
    const status = new Promise<number | "no answer">((resolve) => {
      const settle = (h: http2.IncomingHttpHeaders) => h["grpc-status"] !== undefined && resolve(Number(h["grpc-status"]));
      stream.on("response", settle).on("trailers", settle).once("close", () => resolve("no answer"));
      setTimeout(() => resolve("no answer"), 3_000);
    });
    return { stream, status };
  }

  it("refuses a client's message past its share with ResourceExhausted, and takes another client's", async () => {
    const holder = connectKept(server.url, "127.0.0.2", sessions);
    const held = Array.from({ length: 3 }, () => partialRecognize(holder, 2_500_000, 2_000_000));
    try {
      await until(async () => (await receiving()) >= 6_000_000, "6 MB being received from one client");
      assert.equal(await partialRecognize(holder, 1_000_000, 1_000_000).status, Code.ResourceExhausted);
      assert.equal(await partialRecognize(connectKept(server.url, "::1", sessions), 1_500_000, 1_500_000).status, Code.InvalidArgument, "another client's message is read (and found not to be a Recognize)");
    } finally {
      for (const { stream } of held) stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    await until(async () => (await receiving()) === 0, "nothing being received");
  });
});
