import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import type { TestServer } from "./support/server.js";
import { until } from "./support/until.js";

/**
 * Every string inside a protobuf message, found by walking the wire format: an OTLP export request
 * holds span names and attribute values as length-delimited UTF-8 fields, nested a few levels deep.
 */
function protobufStrings(bytes: Uint8Array, out: string[] = []): string[] {
  let i = 0;
  const varint = () => {
    let value = 0, shift = 0, b: number;
    do {
      if (i >= bytes.length) throw new Error("truncated varint");
      b = bytes[i++];
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return value;
  };
  while (i < bytes.length) {
    const key = varint();
    const wire = key & 7;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const length = varint();
      const payload = bytes.subarray(i, i + length);
      if (payload.length !== length) throw new Error("truncated field");
      i += length;
      const text = Buffer.from(payload).toString("utf8");
      if (/^[\x20-\x7e]+$/.test(text)) out.push(text);
      try {
        protobufStrings(payload, out);
      } catch {
        // not a nested message: a string or bytes field
      }
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

describe("OpenTelemetry", () => {
  let receiver: Server;
  const exports: { path: string; contentType: string; strings: string[] }[] = [];
  let server: TestServer;

  before(async () => {
    // A real OTLP/HTTP receiver: it decodes each export request's protobuf body.
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        exports.push({ path: req.url ?? "", contentType: String(req.headers["content-type"]), strings: protobufStrings(new Uint8Array(Buffer.concat(chunks))) });
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    process.env.OTEL_BSP_SCHEDULE_DELAY = "100";
    // Imported only now: telemetry starts with the first server and reads the endpoint then.
    const { startTestServer } = await import("./support/server.js");
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
    receiver.close();
  });

  it("exports the RPC span and every stage span to an OTLP backend", async () => {
    const client = createClient(FaceService, createGrpcTransport({ baseUrl: server.url }));
    const response = await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    const labels = response.flameGraph.map((e) => e.label);
    for (const stage of ["decode", "detect", "align", "quality", "embed", "store"]) assert.ok(labels.includes(stage), `${stage} in ${labels}`);
    const scans = response.flameGraph.filter((e) => e.label === "detect_scan");
    assert.ok(scans.length >= 1 && scans.every((e) => e.parent === "detect"), "nested stages keep their parent");
    const sum = response.flameGraph.filter((e) => e.parent === "").reduce((s, e) => s + e.durationMs, 0);
    assert.ok(sum <= response.serverProcessTimeMs);

    const names = () => new Set(exports.flatMap((e) => e.strings));
    await until(() => names().has("FaceService/Register"), "the Register span exported", 10_000);
    assert.equal(exports[0].path, "/v1/traces");
    assert.equal(exports[0].contentType, "application/x-protobuf");
    for (const name of ["FaceService/Register", "decode", "detect", "embed", "store", "face-service"]) assert.ok(names().has(name), `${name} exported`);
  });
});

describe("flame graphs", () => {
  let server: TestServer;
  before(async () => {
    const { startTestServer } = await import("./support/server.js");
    server = await startTestServer();
  });
  after(() => server.close());

  it("start no stage before the request and never add up to more than the request took", async () => {
    const client = createClient(FaceService, createGrpcTransport({ baseUrl: server.url }));
    await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    for (let i = 0; i < 30; i++) {
      const answer = await client.recognize({ image: face("face_recognition/obama2.jpg") });
      const total = answer.serverProcessTimeMs;
      const topLevel = answer.flameGraph.filter((e) => e.parent === "");
      assert.ok(topLevel.length >= 5, "decode, detect, ... are reported");
      for (const e of answer.flameGraph) {
        assert.ok(e.startMs >= 0, `${e.label} starts at ${e.startMs} ms`);
        assert.ok(e.startMs + e.durationMs <= total, `${e.label} ends at ${e.startMs + e.durationMs} ms, after the total ${total} ms`);
      }
      const sum = topLevel.reduce((s, e) => s + e.durationMs, 0);
      assert.ok(sum <= total, `top-level stages ${sum} ms > total ${total} ms`);
    }
  });
});

describe("stage metrics", () => {
  it("do not time a stage a cancelled call never ran", async () => {
    const { startTelemetry } = await import("../src/telemetry.js");
    const { runInCall } = await import("../src/call-signal.js");
    const { stageRuns } = await import("./support/stage-runs.js");
    const { stage } = startTelemetry();
    const cancelled = new AbortController();
    cancelled.abort();
    const runsBefore = await stageRuns("decode");
    let ran = false;
    await assert.rejects(runInCall(cancelled.signal, () => stage("decode", async () => void (ran = true))), { kind: "canceled" });
    assert.equal(ran, false);
    // Before, the stage's span was opened first and closed on the refusal: face_stage_duration_seconds
    // counted a run of about 0 ms for every stage a cancelled call skipped.
    assert.equal(await stageRuns("decode"), runsBefore);
  });
});
