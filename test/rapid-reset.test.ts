/**
 * HTTP/2 rapid reset (CVE-2023-44487): a client opening streams and resetting them at once, over
 * and over, reconnecting whenever it is closed. Before the limit on reset streams
 * (src/transport/stream-resets.ts), one such client left another address's Recognize calls 2
 * answers in 8 s, each taking seconds, where it had 240-480 unattacked (53 on 2026-12-05, a slow
 * day); nghttp2's own limit closed its connections but it reconnected.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { RecognizeRequestSchema } from "../gen/face/v1/face_pb.js";
import { COOL_OFF_MS, MAX_COOL_OFF_MS, nextCoolOff, RESET_STREAMS_BURST } from "../src/transport/stream-resets.js";
import { pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { accepted, connectFrom, emptyRecognize, FRAME, grpcEnvelope, writeInOnePacket } from "./support/raw-http2.js";
import { openAndReset, resetUntilClosed, startRapidReset } from "./support/rapid-reset.js";
import { startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { useTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";
import { FACES_DIR, singleFace640x480 } from "./support/testdata.js";

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** How long the other client calls Recognize, unattacked and then attacked. */
const SECONDS = 8;

/** What test/python/face_client.py's recognize_for prints. */
interface RecognizeRun {
  answered: number;
  failed: string[];
  p50_ms: number;
  max_ms: number;
}

describeUnless(pythonGrpcSkip, "a client resetting every stream it opens (HTTP/2 rapid reset), beside a client we did not write (Python grpcio)", () => {
  let service: ServiceProcess;
  before(async () => {
    service = await startServiceProcess({ FACE_DATA_DIR: mkdtempSync(join(tmpdir(), "face-rapid-reset-")), LOG_LEVEL: "warn" });
  });
  after(() => service?.stop());

  it("leaves another address's calls answered: its connections are closed (ENHANCE_YOUR_CALM) and refused for a while", async (t) => {
    const photo = `${FACES_DIR}/face_recognition/obama.jpg`;
    const target = new URL(service.url).host;
    // This machine's speed moves from day to day (30-60 answers a second one day, 5 another, when
    // this test failed with 23 answers attacked): the same client is measured unattacked first,
    // and its attacked answers are judged against that.
    const unattacked = await runPythonClient<RecognizeRun>(target, "recognize_for", [photo, String(SECONDS)]);
    const attack = startRapidReset(service.url, "127.0.0.2", grpcEnvelope(toBinary(RecognizeRequestSchema, create(RecognizeRequestSchema, { image: await singleFace640x480() }))));
    const served = await runPythonClient<RecognizeRun>(target, "recognize_for", [photo, String(SECONDS)]).catch(async (error: unknown) => {
      await attack.stop();
      throw error;
    });
    const attacked = await attack.stop();
    const seen = `unattacked ${JSON.stringify(unattacked)}; attacked ${JSON.stringify(served)}; attacker ${JSON.stringify(attacked)}`;
    t.diagnostic(seen);
    // Attacked before the limit (switched off by hand), the client had 2 answers in 8 s where it
    // had 53 unattacked (4%). With it, 38-75% of its unattacked answers (by hand, instrumented: each
    // time the attacker is let back, its resets up to the budget are set up as calls). A quarter
    // leaves room for that, not for the attack.
    assert.deepEqual(unattacked.failed, [], `no call failed unattacked: ${seen}`);
    assert.deepEqual(served.failed, [], `no call of the other client failed: ${seen}`);
    assert.ok(served.answered >= unattacked.answered / 4, `attacked, the other client had under a quarter of its unattacked answers: ${seen}`);
    assert.ok(attacked.calmedDown >= 1, `the attacker's connections were closed with ENHANCE_YOUR_CALM: ${seen}`);
    assert.ok(attacked.refused >= 1, `its new connections were closed as they arrived: ${seen}`);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.ok(Number(/^face_connections_dropped_total (\d+)/m.exec(metrics)?.[1]) >= attacked.calmedDown, "counted in face_connections_dropped_total");
  });
});

describe("a client cancelling calls", () => {
  let server: TestServer;
  useTestServer((started) => void (server = started));

  it("counts no call that ends as calls do: twice the budget's calls on one connection are answered", async () => {
    const session = connectFrom(server.url, "127.0.0.6");
    for (let i = 0; i < RESET_STREAMS_BURST * 2; i += 50) {
      assert.deepEqual(new Set(await Promise.all(Array.from({ length: 50 }, async () => (await emptyRecognize(session)).status))), new Set([Code.InvalidArgument]));
    }
    assert.ok(!session.destroyed);
    session.close();
  });

  // A reset's code is the client's to choose: NO_ERROR, before the answer, is a reset all the same.
  for (const [code, address] of [[NGHTTP2_CANCEL, "127.0.0.3"], [NGHTTP2_NO_ERROR, "127.0.0.5"]] as const) {
    it(`keeps its connection within the budget of reset streams, and past it is closed and cooled off (resets with code ${code})`, async () => {
      const session = connectFrom(server.url, address);
      assert.ok(await accepted(session));
      let goaway: number | undefined;
      session.on("goaway", (sent) => (goaway = sent));
      const withinBudget = RESET_STREAMS_BURST * 0.75;
      for (let i = 0; i < withinBudget; i++) openAndReset(session, new Uint8Array(5), code);
      assert.equal((await emptyRecognize(session)).status, Code.InvalidArgument, `after ${withinBudget} cancelled calls, a call on the same connection is answered`);
      assert.equal(goaway, undefined);

      const reset = withinBudget + (await resetUntilClosed(session, RESET_STREAMS_BURST * 3, code));
      await until(() => session.destroyed, `the connection is closed once past the budget (${reset} streams reset)`, 5_000);
      assert.equal(goaway, NGHTTP2_ENHANCE_YOUR_CALM, `past the budget (${reset} streams reset) the connection is closed with ENHANCE_YOUR_CALM`);

      assert.equal(await accepted(connectFrom(server.url, address)), false, "a new connection from the address is closed as it arrives");
      const elsewhere = connectFrom(server.url, "127.0.0.4");
      assert.equal((await emptyRecognize(elsewhere)).status, Code.InvalidArgument, "another address is served");
      elsewhere.close();
      await new Promise((resolve) => setTimeout(resolve, COOL_OFF_MS + 500));
      const later = connectFrom(server.url, address);
      assert.equal((await emptyRecognize(later)).status, Code.InvalidArgument, "once cooled off, the address is served again");
      later.close();
    });
  }
});

/**
 * Let back after each 2 s cool-off, a rapid-reset client went over its budget again at once, and
 * each time the streams up to the budget were set up as calls (~0.5 s of the main thread on a slow
 * day, by hand): a sustained attack cost the service a quarter of its main thread.
 */
describe("an address going over its budget again right after its cool-off", () => {
  let server: TestServer;
  useTestServer((started) => void (server = started));

  /** Resets streams from `address` until its connection is closed for them. */
  async function goOver(address: string): Promise<void> {
    const session = connectFrom(server.url, address);
    assert.ok(await accepted(session), `a connection from ${address} is taken`);
    const reset = await resetUntilClosed(session, RESET_STREAMS_BURST * 3);
    await until(() => session.destroyed, `closed past the budget (${reset} streams reset)`, 5_000);
  }
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const served = async (address: string) => {
    const session = connectFrom(server.url, address);
    const answered = (await accepted(session)) && (await emptyRecognize(session)).status === Code.InvalidArgument;
    session.close();
    return answered;
  };

  it("is kept out twice as long; one that stays within its budget for as long as it was kept out starts again at the first cool-off", async () => {
    const address = "127.0.0.14";
    await goOver(address);
    await pause(COOL_OFF_MS + 300);
    assert.ok(await served(address), "let back after the first cool-off");
    await goOver(address);
    await pause(COOL_OFF_MS + 300);
    assert.equal(await accepted(connectFrom(server.url, address)), false, "gone over again at once: still kept out after the first cool-off's time");
    await pause(COOL_OFF_MS);
    assert.ok(await served(address), "let back after twice the first cool-off");

    // Within its budget for as long as it was last kept out: the next cool-off is the first's again.
    await pause(2 * COOL_OFF_MS + 300);
    await goOver(address);
    await pause(COOL_OFF_MS + 300);
    assert.ok(await served(address), "after a quiet spell, gone over again: kept out for the first cool-off only");
  });

  it("doubles up to a limit, and is not lengthened by another of the address's connections going over meanwhile", () => {
    let coolOff = nextCoolOff(undefined, 0);
    assert.deepEqual(coolOff, { until: COOL_OFF_MS, lengthMs: COOL_OFF_MS });
    assert.equal(nextCoolOff(coolOff, COOL_OFF_MS / 2), coolOff, "going over while kept out");
    const lengths = [];
    for (let i = 0; i < 8; i++) {
      coolOff = nextCoolOff(coolOff, coolOff.until + 100);
      lengths.push(coolOff.lengthMs / COOL_OFF_MS);
    }
    assert.deepEqual(lengths, [2, 4, 8, 16, 32, 64, 128, 256].map((n) => Math.min(n * COOL_OFF_MS, MAX_COOL_OFF_MS) / COOL_OFF_MS));
    assert.deepEqual(nextCoolOff(coolOff, coolOff.until + coolOff.lengthMs), { until: coolOff.until + coolOff.lengthMs + COOL_OFF_MS, lengthMs: COOL_OFF_MS });
  });
});

/**
 * The server learns of a stream once the bytes read with its headers are handled: a 64 KB read of
 * a rapid-reset client holds hundreds of streams, reset by then. The connection that went over its
 * budget among them was closed only after all of them, each set up as a call (2-6 ms on a slow day).
 */
describe("streams reset in the read that opened them", () => {
  let server: TestServer;
  useTestServer((started) => void (server = started));

  it("close their connection as soon as they pass the budget: the calls behind them are refused unprocessed (REFUSED_STREAM)", async () => {
    const [reset, whole] = [RESET_STREAMS_BURST + 50, 20];
    const sent = writeInOnePacket(server.url, "127.0.0.12", reset, whole);
    await sent.closed;
    const wholeIds = Array.from({ length: whole }, (_, i) => 2 * (reset + i) + 1);
    const refused = sent.frames.filter((f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === NGHTTP2_REFUSED_STREAM).map((f) => f.streamId);
    const answered = sent.frames.filter((f) => f.type === FRAME.HEADERS).map((f) => f.streamId);
    assert.deepEqual({ refused, answered }, { refused: wholeIds, answered: [] });
    assert.ok(sent.frames.some((f) => f.type === FRAME.GOAWAY && f.payload.readUInt32BE(4) === NGHTTP2_ENHANCE_YOUR_CALM), "closed with ENHANCE_YOUR_CALM");
  });
});

/**
 * A proxy the service trusts (FACE_TRUSTED_PROXIES; deploy/haproxy.cfg speaks HTTP/2 to the
 * instances) passes on each of its clients' cancellations as a reset on its own few connections:
 * counted as one client, a busy proxy's cancellations closed its connection, every call on it
 * failing, and refused its new ones.
 */
describe("a trusted proxy passing on its clients' cancellations", () => {
  let server: TestServer;
  useTestServer((started) => void (server = started), { FACE_TRUSTED_PROXIES: "127.0.0.7" });

  it("keeps its connection however many streams it resets; another address is still limited", async () => {
    const proxy = connectFrom(server.url, "127.0.0.7");
    await resetUntilClosed(proxy, RESET_STREAMS_BURST * 3);
    assert.equal((await emptyRecognize(proxy)).status, Code.InvalidArgument, "the proxy's connection still answers");
    assert.ok(!proxy.destroyed);
    proxy.close();

    const direct = connectFrom(server.url, "127.0.0.8");
    const reset = await resetUntilClosed(direct, RESET_STREAMS_BURST * 3);
    await until(() => direct.destroyed, `a client not trusted is closed past the budget (${reset} streams reset)`, 5_000);
  });
});

