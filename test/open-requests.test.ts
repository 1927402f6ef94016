import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import http2 from "node:http2";
import { connect as connectTcp, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import WebSocket from "ws";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { maxStreamsPerConnection } from "../src/transport/dual-protocol-server.js";
import { face } from "./support/testdata.js";
import { resetInOnePacket } from "./support/raw-http2.js";
import { faceClient, startTestServer, useTestServer, type TestServer } from "./support/server.js";
import { SERVICE_COMMAND, startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { until } from "./support/until.js";
import { openRequests, sharedClientSideListeners } from "./support/gauges.js";

const codeOf = (e: unknown) => ConnectError.from(e).code;

/** A gRPC call (Recognize unless `method` says) whose message never comes: it holds its stream until the client resets it. */
function silentCall(session: http2.ClientHttp2Session, method = "Recognize"): http2.ClientHttp2Stream {
  const stream = session.request(
    { ":method": "POST", ":path": `/face.v1.FaceService/${method}`, "content-type": "application/grpc", te: "trailers" },
    { endStream: false },
  );
  stream.on("error", () => {});
  stream.resume();
  return stream;
}

/** The peer's first SETTINGS: call it on a session just opened, before its event loop turn ends. */
function remoteSettingsOf(session: http2.ClientHttp2Session): Promise<http2.Settings> {
  return new Promise((resolve) => session.once("remoteSettings", resolve));
}

/** Whether `emitter` (a stream, a socket) closes within `ms`. */
function closedWithin(emitter: NodeJS.EventEmitter, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    emitter.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * A REST Recognize over a raw HTTP/1.1 socket whose body starts with `start` and then trickles
 * `byte` every 100 ms: whether the server closed it within 5 s, and what it answered.
 */
async function trickledHttp1(url: string, contentType: string, start: string, byte: string): Promise<{ closed: boolean; answer: string }> {
  const socket = connectTcp(Number(new URL(url).port), "127.0.0.1");
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.write(`POST /api/v1/recognize HTTP/1.1\r\nHost: x\r\n${contentType}\r\nContent-Length: 100000\r\n\r\n${start}`);
  const timer = setInterval(() => socket.write(byte), 100);
  let answer = "";
  socket.on("data", (d) => (answer += d));
  const closed = await closedWithin(socket, 5_000);
  clearInterval(timer);
  socket.destroy();
  return { closed, answer };
}

/**
 * A test server started with `env`, and raw HTTP/2 connections to it (`connect`), all closed after
 * the suite.
 */
function serverWithConnections(env: Record<string, string>): { server: () => TestServer; connect: () => http2.ClientHttp2Session } {
  let server: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  before(async () => {
    server = await startTestServer(env);
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await server.close();
  });
  return {
    server: () => server,
    connect: () => {
      const session = http2.connect(server.url);
      session.on("error", () => {});
      sessions.push(session);
      return session;
    },
  };
}

/**
 * Each open request holds memory from its first bytes, before admission (which starts once the
 * message is whole) bounds anything: 20,000 calls that never sent their message grew the service
 * by 700 MB on one connection, and the connection was then dropped with every call on it.
 */
describe("requests open at once are bounded", () => {
  const suite = serverWithConnections({ FACE_MAX_OPEN_REQUESTS: "20", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "20" });
  const { connect } = suite;
  const recognizeEmpty = () => faceClient(suite.server()).recognize({ image: new Uint8Array() });
  /** The code an empty Recognize gets: InvalidArgument once it is let in. */
  const outcome = () => recognizeEmpty().then(() => "answered", codeOf);

  it("lets an HTTP/2 connection open one stream more than FACE_MAX_OPEN_REQUESTS, and at least 100", async () => {
    assert.equal((await remoteSettingsOf(connect())).maxConcurrentStreams, 100);
    // So a client never queues a stream on its side that the server would take (or refuse, with a code).
    assert.equal(maxStreamsPerConnection(256), 257);
  });

  it("refuses calls beyond FACE_MAX_OPEN_REQUESTS with Unavailable and a retry delay, and takes them again once some close", async () => {
    const session = connect();
    const held = Array.from({ length: 20 }, () => silentCall(session));
    await until(async () => (await outcome()) === Code.Unavailable, "calls refused", 10_000);
    const refused = await recognizeEmpty().then(() => undefined, (e) => ConnectError.from(e));
    assert.equal(refused?.code, Code.Unavailable);
    assert.match(refused!.rawMessage, /open requests/);
    const rest = await fetch(`${suite.server().url}/api/v1/recognize`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(rest.status, 503);
    assert.ok(Number(rest.headers.get("retry-after")) >= 1);
    assert.equal((await fetch(`${suite.server().url}/health`)).status, 200, "health is always answered");
    for (const stream of held.slice(0, 5)) stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(async () => (await outcome()) === Code.InvalidArgument, "calls let in again", 10_000);
    for (const stream of held.slice(5)) stream.close(http2.constants.NGHTTP2_CANCEL);
    // The server counts them closed when their resets arrive; the next test starts from none open.
    await new Promise((r) => setTimeout(r, 300));
  });

  it("frees the calls and Sync streams of a client that closes its connection without a word", async () => {
    const { port } = new URL(suite.server().url);
    const socket = connectTcp(Number(port), "127.0.0.1");
    const session = http2.connect(suite.server().url, { createConnection: () => socket }).on("error", () => {});
    for (let i = 0; i < 20; i++) silentCall(session, i % 2 === 0 ? "Sync" : "Recognize");
    await until(async () => (await outcome()) === Code.Unavailable, "calls refused", 10_000);
    // No GOAWAY, no stream resets: the client's side of the TCP connection just ends (FIN), as when
    // its process exits having read what it was sent.
    socket.end();
    await until(async () => (await outcome()) === Code.InvalidArgument, "calls let in again", 5_000);
    session.destroy();
  });

  it("counts a WebSocket while it is open, and not after it closed", async () => {
    const url = `${suite.server().url.replace("http", "ws")}/ws/realtime`;
    for (let i = 0; i < 30; i++) {
      const socket = new WebSocket(url);
      await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
      socket.close();
      await new Promise((resolve) => socket.once("close", resolve));
    }
    const sockets = await Promise.all(Array.from({ length: 20 }, () => new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.once("open", () => resolve(socket)).once("error", reject);
    })));
    await until(async () => (await outcome()) === Code.Unavailable, "calls refused", 10_000);
    for (const socket of sockets) socket.close();
    await until(async () => (await outcome()) === Code.InvalidArgument, "calls let in again", 10_000);
  });
});

describe("streams reset in the packet that opened them", () => {
  let server: TestServer;
  useTestServer((started) => void (server = started), { FACE_MAX_OPEN_REQUESTS: "64", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "64" });

  it("leave no open request behind, and other clients' calls are taken", async () => {
    // Before, each such stream was closed before the request's hooks listened for its close, and
    // held its place for good: these 100 filled the server's 64, and it refused every later call.
    const socket = await resetInOnePacket(server.url, "127.0.0.8", 100);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await faceClient(server).recognize({ image: new Uint8Array() }).then(() => "answered", codeOf), Code.InvalidArgument);
    assert.equal(await openRequests(), 0);
    socket.destroy();
  });
});

describe("many calls at once", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("log no warning of a leak: each open call listens for the server's shutdown", async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on("warning", onWarning);
    try {
      const client = faceClient(server);
      const photo = face("face_recognition/obama.jpg");
      await Promise.all(Array.from({ length: 16 }, () => client.detect({ image: photo }).catch(() => undefined)));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings.filter((w) => /MaxListeners/.test(w)), []);
  });

  it("keep no listener per open WebSocket on a signal that outlives them", async () => {
    // Each open WebSocket's Sync stream listened on one signal shared by every call that has no
    // HTTP exchange of its own, which never fires: the eleventh logged MaxListenersExceededWarning
    // ("Possible EventTarget memory leak detected").
    const url = `${server.url.replace("http", "ws")}/ws/realtime`;
    const sockets = await Promise.all(Array.from({ length: 16 }, () => new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.once("open", () => resolve(socket)).once("error", reject);
    })));
    try {
      // Every stream answers a frame: each is open on the server.
      await Promise.all(sockets.map((socket) => new Promise((resolve) => {
        socket.once("message", resolve);
        socket.send(JSON.stringify({ type: "frame", image: "" }));
      })));
      assert.equal(sharedClientSideListeners(), 0);
    } finally {
      for (const socket of sockets) socket.close();
    }
  });
});

/**
 * Every connection is a file descriptor, and the photos, the database and outgoing calls need theirs:
 * a client opening connections until none is left must not take the service down.
 */
describe("connections at once are bounded by the process's file descriptors", () => {
  let service: ServiceProcess;
  let dataDir: string;
  const sockets: Socket[] = [];
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "face-open-files-"));
    // From one address: the address share (connection-limit.ts) is set out of the way of the limit.
    service = await startServiceProcess({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "warn", FACE_MAX_CONNECTIONS_PER_ADDRESS: "1000" }, { ...SERVICE_COMMAND, openFiles: 512 });
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await service.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("closes connections over half its open-file limit, registers meanwhile, and takes new ones once they go", async () => {
    // A gRPC connection made before the flood, as a backend service keeps one.
    const client = createClient(FaceService, createGrpcTransport({ baseUrl: service.url }));
    await client.listUsers({});
    const { port } = new URL(service.url);
    let closedByService = 0;
    for (let i = 0; i < 700; i++) {
      const socket = connectTcp(Number(port), "127.0.0.1");
      socket.on("error", () => {});
      socket.once("close", () => (closedByService += 1));
      sockets.push(socket);
      await new Promise((resolve) => socket.once("connect", resolve).once("close", resolve));
    }
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(service.child.exitCode, null, `the service exited:\n${service.output().slice(-2000)}`);
    assert.ok(closedByService >= 700 - 512 / 2, `${closedByService} of 700 connections closed by the service`);
    const during = await client.register({ identifier: "during-the-flood", image: face("face_recognition/obama.jpg") });
    assert.equal(during.created, true);
    for (const socket of sockets) socket.destroy();
    // A new connection is taken at once, not when the flood's half-closed sockets time out.
    const body = JSON.stringify({ identifier: "after-the-flood", image: Buffer.from(face("face_recognition/biden.jpg")).toString("base64") });
    const afterwards = await new Promise<{ status?: number; text: string }>((resolve, reject) => {
      const request = httpRequest(`${service.url}/api/v1/register`, { method: "POST", agent: false, headers: { "content-type": "application/json" } }, (response) => {
        let text = "";
        response.on("data", (d) => (text += d)).on("end", () => resolve({ status: response.statusCode, text }));
      });
      request.on("error", reject).end(body);
    });
    assert.equal(afterwards.status, 200, afterwards.text);
    // The connections closed on arrival are counted and logged, once for the whole flood.
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    const dropped = Number(/^face_connections_dropped_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(dropped >= 700 - 512 / 2, `face_connections_dropped_total ${dropped}`);
    assert.equal(service.output().match(/connections closed as they arrived/g)?.length, 1, service.output().slice(-2000));
  });
});

/**
 * A request must arrive whole within FACE_REQUEST_TIMEOUT_MS, over HTTP/2 as Node already holds
 * HTTP/1.1 to it, or one that trickles its bytes holds its place (and its open-request slot) forever.
 * Streams whose requests go on by design (Sync, reflection) are not cut.
 */
describe("a request must arrive within its time", () => {
  const suite = serverWithConnections({ FACE_REQUEST_TIMEOUT_MS: "1000" });
  const { connect } = suite;

  /** Sends a gRPC message prefix announcing `length` bytes, then one byte every 100 ms until the stream ends. */
  function trickle(stream: http2.ClientHttp2Stream, length: number): void {
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(length, 1);
    stream.write(prefix);
    const timer = setInterval(() => (stream.closed || stream.destroyed ? clearInterval(timer) : stream.write(Buffer.from([0]))), 100);
    stream.once("close", () => clearInterval(timer));
  }

  it("ends an HTTP/2 call whose message trickles in past the limit, and the connection's other calls go on", async () => {
    const session = connect();
    const slow = silentCall(session);
    trickle(slow, 100_000);
    const started = Date.now();
    assert.equal(await closedWithin(slow, 5_000), true, "the trickling call was not ended");
    assert.ok(Date.now() - started >= 900, "ended before its time");
    assert.equal(session.closed || session.destroyed, false);
    await assert.rejects(faceClient(suite.server()).recognize({ image: new Uint8Array() }), (e) => codeOf(e) === Code.InvalidArgument);
  });

  it("ends an HTTP/2 DELETE held open without a body past the limit, deleting nothing", async () => {
    // A route that takes no body waits over HTTP/2 for the stream's end or its first DATA byte
    // (request-body.ts); a client sending neither holds it as a body that never arrives would.
    const client = faceClient(suite.server());
    await client.register({ identifier: "held-open", image: face("face_recognition/obama.jpg") });
    const held = connect().request({ ":method": "DELETE", ":path": "/api/v1/users/held-open" }, { endStream: false });
    held.on("error", () => {});
    held.resume();
    const started = Date.now();
    assert.equal(await closedWithin(held, 5_000), true, "the held-open DELETE was not ended");
    assert.ok(Date.now() - started >= 900, "ended before its time");
    assert.ok((await client.listUsers({})).identifiers.includes("held-open"), "the user was deleted");
  });

  it("ends an HTTP/1.1 request whose body trickles in past the limit", async () => {
    const { closed, answer } = await trickledHttp1(suite.server().url, "Content-Type: application/json", "{", " ");
    assert.equal(closed, true, "the trickling request was not ended");
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.match(answer, /"code":"deadline_exceeded"/, "the service's error body, not fastify's own");
  });

  it("ends a form refused at its first field whose rest trickles in past the limit", async () => {
    // A refused form is read to its end before it is answered (so the connection's next request is
    // served); a client trickling that end must not hold its request open for longer than the limit.
    const head = '--x\r\nContent-Disposition: form-data; name="top_k"\r\n\r\nmany\r\n--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n';
    const { closed, answer } = await trickledHttp1(suite.server().url, "Content-Type: multipart/form-data; boundary=x", head, "a");
    assert.equal(closed, true, "the trickling form was not ended");
    assert.match(answer, /^HTTP\/1\.1 408/);
  });

  it("does not end a Sync stream that waits longer than the limit for its next frame", async () => {
    const stream = connect().request(
      { ":method": "POST", ":path": "/face.v1.FaceService/Sync", "content-type": "application/grpc", te: "trailers" },
      { endStream: false },
    );
    stream.on("error", () => {});
    stream.resume();
    assert.equal(await closedWithin(stream, 2_500), false, "the idle Sync stream was ended");
    stream.close(http2.constants.NGHTTP2_CANCEL);
  });

  it("does not end a WebSocket open longer than the limit", async () => {
    const socket = new WebSocket(`${suite.server().url.replace("http", "ws")}/ws/realtime`);
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("open", resolve));
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(socket.readyState, WebSocket.OPEN);
    const answer = new Promise<string>((resolve) => socket.once("message", (data) => resolve(String(data))));
    socket.send(face("face_recognition/obama.jpg"));
    assert.match(await answer, /"type":\s*"results"/);
    socket.close();
  });
});
