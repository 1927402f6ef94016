import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import sharp from "sharp";
import WebSocket from "ws";
import { runInCall } from "../src/call-signal.js";
import { createAdmission } from "../src/service/admission.js";
import { FaceError } from "../src/errors.js";
import { admissionCalls } from "./support/gauges.js";
import { stageRuns } from "./support/stage-runs.js";
import { until } from "./support/until.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer, useTestServer, type TestServer } from "./support/server.js";
import { grpcTransportFrom } from "./support/from-address.js";

const codeOf = (e: unknown) => ConnectError.from(e).code;

describe("work per request is bounded", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("detects in a 40-megapixel photo with a bounded number of detector scans", async () => {
    // A grey 7000x5700 PNG: 130 kB that used to cost 242 detector runs and seconds of CPU.
    const grey = await sharp({ create: { width: 7000, height: 5700, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer();
    assert.ok(grey.length < 200_000);
    const before = await stageRuns("detect_scan");
    const answer = await faceClient(server).detect({ image: new Uint8Array(grey) });
    assert.deepEqual([answer.imageWidth, answer.imageHeight, answer.faces.length], [7000, 5700, 0]);
    const scans = (await stageRuns("detect_scan")) - before;
    assert.ok(scans <= 50, `${scans} detector scans`);
  });

  it("answers boxes and landmarks in the photo's own pixels when it was shrunk to work on", async () => {
    const client = faceClient(server);
    const photo = face("face_recognition/obama.jpg");
    const { width } = await sharp(photo).metadata();
    const factor = 4500 / width!;
    // 4500x5623: its long side is over the 4096 pixels the engine works on.
    const large = new Uint8Array(await sharp(photo).resize({ width: 4500 }).jpeg({ quality: 95 }).toBuffer());
    const [small, big] = await Promise.all([client.detect({ image: photo }), client.detect({ image: large })]);
    assert.equal(big.imageWidth, 4500);
    const [a, b] = [small.faces[0], big.faces[0]];
    for (const key of ["x", "y", "width", "height"] as const) {
      assert.ok(Math.abs(b.box![key] - a.box![key] * factor) < a.box!.width * factor * 0.06, `${key}: ${b.box![key]} vs ${a.box![key] * factor}`);
    }
    assert.ok(Math.abs(b.landmarks[0].x - a.landmarks[0].x * factor) < a.box!.width * factor * 0.06);
    assert.equal((await client.register({ identifier: "obama-large", image: large })).created, true, "the quality gate sees the photo's own face size");
  });
});

describe("server-wide admission", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_MAX_IN_FLIGHT: "1", FACE_MAX_QUEUED: "1" });
  });
  after(() => server.close());

  it("answers every call of a burst: one runs, one waits, the rest are refused at once with a retry delay", async () => {
    const client = faceClient(server);
    const photo = face("face_recognition/obama.jpg");
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => client.detect({ image: photo })));
    const ok = outcomes.filter((o) => o.status === "fulfilled").length;
    const refused = outcomes.filter((o) => o.status === "rejected").map((o) => ConnectError.from((o as PromiseRejectedResult).reason));
    assert.ok(ok >= 2, `${ok} answered`);
    assert.ok(refused.length >= 1, "some were refused");
    for (const e of refused) {
      assert.equal(e.code, Code.Unavailable, e.message);
      assert.match(e.rawMessage, /at capacity/);
      assert.equal(e.metadata.get("retry-after"), "1");
    }
    assert.equal((await client.detect({ image: photo })).faces.length, 1, "served again once the burst is over");
  });

  it("answers REST with 503 and Retry-After when at capacity", async () => {
    const photo = face("face_recognition/obama.jpg");
    const post = () => fetch(`${server.url}/api/v1/detect`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image: Buffer.from(photo).toString("base64") }) });
    const answers = await Promise.all(Array.from({ length: 8 }, post));
    const refused = answers.filter((r) => r.status === 503);
    assert.ok(refused.length >= 1 && answers.some((r) => r.status === 200), answers.map((r) => r.status).join(","));
    assert.equal(refused[0].headers.get("retry-after"), "1");
  });

  it("lets a waiting call whose deadline passes leave the queue at once", async () => {
    const client = faceClient(server);
    const slow = new Uint8Array(await sharp(face("face_recognition/obama.jpg")).resize({ width: 4000 }).jpeg().toBuffer());
    const running = client.detect({ image: slow });
    await new Promise((r) => setTimeout(r, 20));
    const start = Date.now();
    await assert.rejects(client.detect({ image: slow }, { headers: { "grpc-timeout": "100m" } }), (e) => codeOf(e) === Code.DeadlineExceeded);
    assert.ok(Date.now() - start < 600, `left the queue after ${Date.now() - start} ms`);
    await running;
  });
});

describe("WebSocket frames draw from the rate limit", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_RATE_LIMIT_PER_SECOND: "0.5", FACE_RATE_LIMIT_BURST: "3" });
  });
  after(() => server.close());

  it("answers frames beyond the client's rate with resource_exhausted and keeps the socket", async () => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
    const photo = face("face_recognition/obama.jpg");
    const answers: { type: string; code?: string; message?: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => {
        for (let i = 0; i < 5; i++) ws.send(photo);
      });
      ws.on("message", (data) => {
        answers.push(JSON.parse(String(data)));
        if (answers.length === 5) resolve();
      });
      ws.on("error", reject);
    });
    ws.close();
    // The upgrade took one token of three: two frames pass, three are refused.
    assert.deepEqual(answers.map((a) => a.type === "results" ? "ok" : a.code), ["ok", "ok", "resource_exhausted", "resource_exhausted", "resource_exhausted"]);
    assert.equal(answers[2].message, "rate limit exceeded; retry in 2 s", "at 0.5 a second the next token is 2 s away");
  });
});

describe("frames of a Sync stream draw from the rate limit, whatever its protocol", () => {
  const transports = {
    gRPC: (baseUrl: string) => createGrpcTransport({ baseUrl }),
    Connect: (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "2" }),
    "gRPC-Web": (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
  };
  for (const [protocol, transport] of Object.entries(transports)) {
    it(`answers frames beyond the client's rate with resource_exhausted and keeps the stream (${protocol})`, async () => {
      // A server each: the limit counts the client's address, the same loopback for every protocol.
      const server = await startTestServer({ FACE_RATE_LIMIT_PER_SECOND: "0.5", FACE_RATE_LIMIT_BURST: "3" });
      try {
        const photo = face("face_recognition/obama.jpg");
        const requests = (async function* () {
          for (let i = 0; i < 5; i++) yield { image: photo, frameId: String(i) };
        })();
        const answers: string[] = [];
        for await (const answer of createClient(FaceService, transport(server.url)).sync(requests)) answers.push(answer.error?.code ?? "ok");
        // The stream took one token of three when it opened: two frames pass, three are refused.
        assert.deepEqual(answers, ["ok", "ok", "resource_exhausted", "resource_exhausted", "resource_exhausted"]);
      } finally {
        await server.close();
      }
    });
  }
});

/**
 * A flat AVIF of 9 megapixels: a kilobyte that takes a second or more to decode (libvips cannot
 * shrink AVIF while decoding it), so the calls sending it hold their admission places meanwhile.
 */
const slowAvif = new Uint8Array(await sharp({ create: { width: 3000, height: 3000, channels: 3, background: "#808080" } }).avif({ effort: 0 }).toBuffer());

describe("one client's share of the admission", () => {
  let server: TestServer;
  useTestServer((s) => void (server = s), { FACE_MAX_IN_FLIGHT: "4", FACE_MAX_QUEUED: "8" });

  /** At least four calls of the slow photo at once from 127.0.0.2 over `protocol`: one promise for each answer. */
  const slowCalls: Record<string, () => Promise<unknown>[]> = {
    gRPC: () => {
      const client = createClient(FaceService, grpcTransportFrom(server.url, "127.0.0.2"));
      return Array.from({ length: 4 }, () => client.detect({ image: slowAvif }));
    },
    REST: () => Array.from({ length: 4 }, () => new Promise((resolve, reject) => {
      const body = JSON.stringify({ image: Buffer.from(slowAvif).toString("base64") });
      const req = httpRequest(`${server.url}/api/v1/detect`, { method: "POST", localAddress: "127.0.0.2", headers: { "content-type": "application/json" } }, (res) => res.resume().on("end", resolve));
      req.on("error", reject).end(body);
    })),
    // A Sync stream has at most three frames in work at once: two of them.
    WebSocket: () => [0, 1].flatMap(() => {
      const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`, { localAddress: "127.0.0.2" });
      const resolvers: (() => void)[] = [];
      const answered = Array.from({ length: 3 }, () => new Promise<void>((resolve, reject) => {
        resolvers.push(resolve);
        socket.once("error", reject);
      }));
      socket.on("message", () => {
        resolvers.shift()?.();
        if (resolvers.length === 0) socket.close();
      });
      socket.once("open", () => answered.forEach(() => socket.send(slowAvif)));
      return answered;
    }),
  };

  for (const [protocol, sendSlowCalls] of Object.entries(slowCalls)) {
    it(`leaves the other clients slots while one client's slow photos run (${protocol})`, async () => {
      // Before, four of them from one address held all four slots, and another client's call waited
      // for one of them to finish (over REST and WebSocket, whose calls went unnamed, even after).
      let slowAnswered = 0;
      const slowOnes = sendSlowCalls().map((answered) => answered.finally(() => slowAnswered++));
      // The client's share (two of the four slots) runs, the rest of its calls wait.
      await until(async () => JSON.stringify(await admissionCalls()) === JSON.stringify({ running: 2, waiting: slowOnes.length - 2 }), "the slow photos admitted");
      const answer = await faceClient(server).detect({ image: face("face_recognition/obama.jpg") });
      assert.equal(answer.faces.length, 1);
      assert.equal(slowAnswered, 0, "the other client's call was answered while the slow photos still ran");
      await Promise.all(slowOnes);
    });
  }
});

describe("a full admission queue, over gRPC from two addresses", () => {
  let server: TestServer;
  useTestServer((s) => void (server = s), { FACE_MAX_IN_FLIGHT: "2", FACE_MAX_QUEUED: "4" });

  it("is filled by a client alone, and gives another client's call the newest place of the one holding over half", async () => {
    const stop = new AbortController();
    const codes: (Code | "served")[] = [];
    const send = (from: string) =>
      createClient(FaceService, grpcTransportFrom(server.url, from)).detect({ image: slowAvif }, { signal: stop.signal }).then(() => "served" as const, codeOf).then((code) => void codes.push(code));
    try {
      // One running (its share of two), four waiting: the whole queue; before 2026-12-05 two of the
      // four were refused though nobody else waited.
      const alone = Array.from({ length: 6 }, () => send("127.0.0.2"));
      await until(async () => JSON.stringify(await admissionCalls()) === JSON.stringify({ running: 1, waiting: 4 }), "one running, four waiting");
      await until(() => codes.length === 1, "the sixth call refused");
      assert.deepEqual(codes, [Code.Unavailable]);
      const other = [send("127.0.0.3")];
      await until(async () => (await admissionCalls()).running === 2, "the other client's call running");
      other.push(send("127.0.0.3"));
      await until(() => codes.length === 2, "a place of the first client given to the other's call");
      assert.deepEqual(codes, [Code.Unavailable, Code.ResourceExhausted]);
      assert.deepEqual(await admissionCalls(), { running: 2, waiting: 4 });
      stop.abort();
      await Promise.all([...alone, ...other]);
    } finally {
      stop.abort();
    }
    await until(async () => JSON.stringify(await admissionCalls()) === JSON.stringify({ running: 0, waiting: 0 }), "every call over");
  });
});

describe("admission", () => {
  it("runs at most half its slots for one client, first come first served among the others", async () => {
    const admission = createAdmission({ maxInFlight: 4, maxQueued: 8 });
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const call = (client: string, name: string) =>
      runInCall(new AbortController().signal, () => admission.run(() => new Promise<void>((resolve) => {
        started.push(name);
        finish.set(name, resolve);
      })), client);
    const calls = [call("a", "a1"), call("a", "a2"), call("a", "a3"), call("b", "b1"), call("a", "a4"), call("c", "c1")];
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started, ["a1", "a2", "b1", "c1"], "a's third call waits though slots were free");
    finish.get("b1")!();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started.slice(4), [], "b's slot is not a's: a holds its share");
    finish.get("a1")!();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started.slice(4), ["a3"]);
    for (const name of ["a2", "c1", "a3"]) finish.get(name)!();
    await new Promise((resolve) => setImmediate(resolve));
    finish.get("a4")!();
    await Promise.all(calls);
    assert.deepEqual(started, ["a1", "a2", "b1", "c1", "a3", "a4"]);
  });

  it("counts its running and waiting calls in face_admission_calls, a call that gives up leaving the count", async () => {
    const before = await admissionCalls();
    const admission = createAdmission({ maxInFlight: 1, maxQueued: 2 });
    const finish: (() => void)[] = [];
    const givingUp = new AbortController();
    const call = (signal = new AbortController().signal) => runInCall(signal, () => admission.run(() => new Promise<void>((resolve) => finish.push(resolve))), undefined);
    const calls = [call(), call(), call(givingUp.signal).catch(() => "gave up")];
    const counted = async () => {
      const now = await admissionCalls();
      return { running: now.running - before.running, waiting: now.waiting - before.waiting };
    };
    assert.deepEqual(await counted(), { running: 1, waiting: 2 });
    givingUp.abort();
    assert.deepEqual(await counted(), { running: 1, waiting: 1 });
    finish.shift()!();
    await until(async () => finish.length === 1, "the waiting call started");
    assert.deepEqual(await counted(), { running: 1, waiting: 0 });
    finish.shift()!();
    assert.deepEqual(await Promise.all(calls), [undefined, undefined, "gave up"]);
    assert.deepEqual(await counted(), { running: 0, waiting: 0 });
  });

  it("lets one client fill its queue while there is room, and gives another client's call the newest place of a client holding over half", async () => {
    const admission = createAdmission({ maxInFlight: 2, maxQueued: 4 });
    const finish: (() => void)[] = [];
    const outcomes = new Map<string, string>();
    const refusals = new Map<string, FaceError>();
    const call = (client: string, name: string) =>
      runInCall(new AbortController().signal, () => admission.run(() => new Promise<void>((resolve) => finish.push(resolve))), client).then(
        () => void outcomes.set(name, "served"),
        (e: FaceError) => {
          outcomes.set(name, e.kind);
          refusals.set(name, e);
        },
      );
    const settled = () => new Promise((resolve) => setImmediate(resolve));
    const calls = [call("a", "a1"), call("b", "b1")];
    // Alone in the queue, a may fill it: before, its third and fourth waiting calls were refused at once.
    calls.push(call("a", "a2"), call("a", "a3"), call("a", "a4"), call("a", "a5"));
    await settled();
    assert.deepEqual([...outcomes], []);
    calls.push(call("a", "a6"));
    await settled();
    assert.deepEqual([...outcomes], [["a6", "unavailable"]], "past a full queue that no other client waits in, a's call is refused");
    // b's calls take the newest places of a, who holds over half of the queue, until each holds half.
    calls.push(call("b", "b2"), call("b", "b3"), call("c", "c1"));
    await settled();
    assert.deepEqual(Object.fromEntries(outcomes), { a6: "unavailable", a5: "resource_exhausted", a4: "resource_exhausted", c1: "unavailable" });
    for (const name of ["a5", "a4"]) {
      assert.equal(refusals.get(name)!.retryAfterMs, 1_000);
      assert.match(refusals.get(name)!.message, /over its share of the full queue/);
    }
    while (finish.length > 0) {
      finish.shift()!();
      await settled();
    }
    await Promise.all(calls);
    assert.deepEqual(["a1", "b1", "a2", "a3", "b2", "b3"].map((name) => outcomes.get(name)), Array(6).fill("served"));
  });
});
