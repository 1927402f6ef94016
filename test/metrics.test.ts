import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { face, FACES_DIR } from "./support/testdata.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { createReceiver } from "./support/webhook-receiver.js";
import { until } from "./support/until.js";

const parsePrometheus: (text: string) => MetricFamily[] = createRequire(import.meta.url)("parse-prometheus-text-format");

interface MetricFamily {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }[];
}

/**
 * Scrapes /metrics and parses it with a Prometheus text-format parser (which throws on a malformed
 * exposition). The parser folds the series of a labelled histogram into one, so the raw text is
 * kept for those.
 */
async function scrape(server: TestServer): Promise<Map<string, MetricFamily> & { text: string }> {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  return Object.assign(new Map(parsePrometheus(text).map((f) => [f.name, f])), { text });
}

/** The value of a counter with exactly these labels (0 when absent). */
function counter(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const sample = families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return Number(sample?.value ?? 0);
}

describe("GET /metrics", () => {
  const receiver = createReceiver(() => "");
  let server: TestServer;

  before(async () => {
    const port = await receiver.listen();
    server = await startTestServer({ FACE_WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${port}`, FACE_WEBHOOK_RETRY_BASE_MS: "100", FACE_WEBHOOK_POLL_MS: "100", FACE_API_KEYS: "metrics-test-key-0123" });
    await faceClient(server).createWebhook({ url: `http://127.0.0.1:${port}/hook`, events: ["face.recognized"] }, { headers: { "x-api-key": "metrics-test-key-0123" } });
  });
  after(async () => {
    await receiver.close();
    await server?.close();
  });

  it("counts RPCs by method and code, stages, faces, matches and webhook deliveries, without an API key", async () => {
    const client = faceClient(server);
    const auth = { headers: { "x-api-key": "metrics-test-key-0123" } };
    const before = await scrape(server);
    await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg") }, auth);
    await client.recognize({ image: face("face_recognition/obama2.jpg") }, auth);
    await client.recognize({ image: face("multi/two_people.jpg") }, auth).catch(() => undefined);
    await client.recognize({ image: new TextEncoder().encode("not an image") }, auth).catch(() => undefined);
    const frames = readdirSync(join(FACES_DIR, "video/frames")).sort().slice(0, 3);
    for await (const _ of client.sync((async function* () { for (const f of frames) yield { image: face(`video/frames/${f}`) }; })(), auth));
    await until(() => receiver.received.length > 0, "the face.recognized delivery");
    receiver.setUp(false);
    await client.recognize({ image: face("face_recognition/obama2.jpg") }, auth);
    let after = await scrape(server);
    await until(async () => counter((after = await scrape(server)), "face_webhook_deliveries_total", { outcome: "failed" }) > 0, "a failed delivery");

    const delta = (name: string, labels?: Record<string, string>) => counter(after, name, labels) - counter(before, name, labels);
    assert.equal(delta("face_requests_total", { rpc: "Register", code: "ok" }), 1);
    assert.ok(delta("face_requests_total", { rpc: "Recognize", code: "ok" }) >= 2);
    assert.equal(delta("face_requests_total", { rpc: "Recognize", code: "invalid_argument" }), 1);
    assert.equal(delta("face_requests_total", { rpc: "Sync", code: "ok" }), 1, "a stream counts once");
    assert.ok(delta("face_faces_detected_total") >= 6, "register, recognize x3, and the frames' faces");
    assert.equal(delta("face_matches_total", { rpc: "Recognize" }), 2);
    assert.equal(delta("face_webhook_deliveries_total", { outcome: "delivered" }), 1);
    assert.ok(delta("face_webhook_deliveries_total", { outcome: "failed" }) >= 1);

    assert.equal(after.get("face_stage_duration_seconds")?.type, "HISTOGRAM");
    const stageCount = (stage: string) => Number(new RegExp(`^face_stage_duration_seconds_count\\{stage="${stage}"\\} (\\d+)$`, "m").exec(after.text)?.[1] ?? 0);
    for (const stage of ["decode", "detect", "align", "embed", "similarity_search"]) assert.ok(stageCount(stage) > 0, `${stage} is timed`);
    assert.ok(after.has("face_process_resident_memory_bytes"), "process metrics too");
  });
});
