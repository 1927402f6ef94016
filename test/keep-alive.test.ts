/**
 * Idle HTTP/1.1 connections are kept longer than the proxies in front of the service keep theirs
 * (AWS ALB and nginx's upstream keepalive: 60 s). Node closes them after 5 s by default, and a proxy
 * reusing a connection just as the service closes it answers its client 502. fastify's own default
 * (72 s) does not apply: the service makes its own server (transport/dual-protocol-server.ts).
 * Idle HTTP/2 connections (no stream open) are closed after the same time; before, they stayed for
 * as long as their clients answered pings.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect as connectTcp, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { accepted, connectFrom, emptyRecognize } from "./support/raw-http2.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until, within } from "./support/until.js";
import { face } from "./support/testdata.js";
import { requestsCounted } from "./support/request-counts.js";

/** A raw HTTP/1.1 connection to `url`, with what it has received so far and whether it closed. */
async function rawConnection(url: string): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
  const socket = connectTcp(Number(new URL(url).port), "127.0.0.1");
  let received = "";
  let closed = false;
  socket.on("data", (d) => (received += d));
  socket.on("error", () => {});
  socket.once("close", () => (closed = true));
  await new Promise((resolve) => socket.once("connect", resolve));
  return { socket, received: () => received, closed: () => closed };
}

/** Sends a health check on `connection` and waits up to 5 s for its answer's status line. */
async function healthCheck(connection: Awaited<ReturnType<typeof rawConnection>>): Promise<void> {
  const answers = connection.received().split("HTTP/1.1 200").length;
  connection.socket.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  for (let waited = 0; connection.received().split("HTTP/1.1 200").length === answers; waited += 10) {
    assert.ok(waited < 5_000 && !connection.closed(), `no answer on the connection: ${connection.received()}`);
    await sleep(10);
  }
}

describe("HTTP/1.1 keep-alive", () => {
  describe("by default", () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer();
    });
    after(() => server.close());

    it("tells clients it keeps an idle connection 75 s", async () => {
      const connection = await rawConnection(server.url);
      await healthCheck(connection);
      assert.match(connection.received(), /\r\nKeep-Alive: timeout=75\r\n/i);
      connection.socket.destroy();
    });

    // A client's FIN looks the same whether it only closed its sending side or went away; the
    // request is taken as abandoned (as nginx takes it, `proxy_ignore_client_abort off`), and its
    // call cancelled, not run for no one. README: "Deadlines and cancellation".
    it("takes a client that closes its sending side after its request as gone: its call is cancelled, no answer", async () => {
      const counted = async () => ({ canceled: await requestsCounted("Recognize", "canceled"), ok: await requestsCounted("Recognize", "ok") });
      const before = await counted();
      const connection = await rawConnection(server.url);
      const body = JSON.stringify({ image: Buffer.from(face("face_recognition/obama.jpg")).toString("base64") });
      connection.socket.end(`POST /api/v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await until(connection.closed, "the connection closed", 10_000);
      assert.equal(connection.received(), "");
      await until(async () => { const now = await counted(); return now.canceled + now.ok > before.canceled + before.ok; }, "the call counted", 10_000);
      assert.deepEqual(await counted(), { canceled: before.canceled + 1, ok: before.ok });
    });

    it("answers on a connection left idle past Node's own 5 s", async () => {
      const connection = await rawConnection(server.url);
      await healthCheck(connection);
      await sleep(6_500);
      assert.equal(connection.closed(), false, "the service closed the idle connection");
      await healthCheck(connection);
      connection.socket.destroy();
    });
  });

  it("ends a connection whose answer was in flight when the service began to stop, so stopping does not wait for its keep-alive", async () => {
    const server = await startTestServer();
    const connection = await rawConnection(server.url);
    const body = JSON.stringify({ identifier: "in-flight", image: Buffer.from(face("face_recognition/obama.jpg")).toString("base64") });
    connection.socket.write(`POST /api/v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await sleep(30);
    const stopped = await Promise.race([server.close().then(() => "stopped"), sleep(10_000).then(() => "still stopping after 10 s")]);
    assert.equal(stopped, "stopped");
    assert.match(connection.received(), /^HTTP\/1\.1 200/, "the answer in flight was sent");
    assert.match(connection.received(), /\r\nConnection: close\r\n/i);
    assert.equal(connection.closed(), true);
  });

  describe("with FACE_KEEPALIVE_TIMEOUT_MS", () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer({ FACE_KEEPALIVE_TIMEOUT_MS: "1000" });
    });
    after(() => server.close());

    it("closes a connection idle for longer", async () => {
      const connection = await rawConnection(server.url);
      await healthCheck(connection);
      assert.match(connection.received(), /\r\nKeep-Alive: timeout=1\r\n/i);
      await sleep(2_500);
      assert.equal(connection.closed(), true, "the idle connection was kept");
    });
  });
});

describe("idle HTTP/2 connections, with FACE_KEEPALIVE_TIMEOUT_MS", () => {
  const IDLE_MS = 1000;
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_KEEPALIVE_TIMEOUT_MS: String(IDLE_MS) });
  });
  after(() => server.close());

  /** Resolves with the GOAWAY's code once `session` is closed. */
  const goneAway = (session: http2.ClientHttp2Session) =>
    new Promise<number | undefined>((resolve) => {
      let code: number | undefined;
      session.on("goaway", (sent) => (code = sent));
      session.once("close", () => resolve(code));
    });

  it("closes a connection with no stream open for longer (GOAWAY NO_ERROR), whether or not it made a call", async () => {
    const silent = connectFrom(server.url, "127.0.0.2");
    const used = connectFrom(server.url, "127.0.0.2");
    assert.ok(await accepted(silent));
    assert.equal((await emptyRecognize(used)).status, Code.InvalidArgument);
    const began = Date.now();
    assert.deepEqual(await within(IDLE_MS * 3, "the idle connections' close", Promise.all([goneAway(silent), goneAway(used)])), [http2.constants.NGHTTP2_NO_ERROR, http2.constants.NGHTTP2_NO_ERROR]);
    assert.ok(Date.now() - began >= IDLE_MS * 0.9, "not before the idle time");
  });

  it("keeps a connection whose Sync stream stays open, however quiet, and closes it once the stream ends", async () => {
    const session = connectFrom(server.url, "127.0.0.3");
    const closed = goneAway(session);
    const sync = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/Sync", "content-type": "application/grpc", te: "trailers" }, { endStream: false });
    sync.on("error", () => {});
    sync.resume();
    await sleep(IDLE_MS * 2.5);
    assert.equal(session.closed || session.destroyed, false, "a connection with a stream open was closed");
    sync.close(http2.constants.NGHTTP2_CANCEL);
    assert.equal(await within(IDLE_MS * 3, "the connection's close once idle", closed), http2.constants.NGHTTP2_NO_ERROR);
  });

  it("answers every call of a connect-es client whose calls are apart by longer than the idle time", async () => {
    const client = faceClient(server);
    for (let i = 0; i < 3; i++) {
      if (i > 0) await sleep(IDLE_MS * 1.6);
      assert.deepEqual((await client.listUsers({})).identifiers, []);
    }
  });
});

describeUnless(pythonGrpcSkip, "idle HTTP/2 connections closed, to a client we did not write (Python grpcio)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_KEEPALIVE_TIMEOUT_MS: "1000" });
  });
  after(() => server?.close());

  it("answers every call of a channel whose calls are apart by longer than the idle time", async () => {
    assert.deepEqual(await runPythonClient<string[]>(new URL(server.url).host, "calls_apart", ["3", "1.6"]), ["OK", "OK", "OK"]);
  });
});
