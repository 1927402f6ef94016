import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import sharp from "sharp";
import { face, FACES_DIR } from "./support/testdata.js";
import { pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";

describeUnless(pythonGrpcSkip, "a Python grpcio client generated from proto/", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("registers, recognizes the person and a stranger, and streams the clip through Sync in order with a bad frame answered", async () => {
    const seen = await runPythonClient<Record<string, unknown>>(new URL(server.url).host, "session", [FACES_DIR]);
    assert.deepEqual(seen, {
      registered: ["obama", true],
      known: [true, "obama"],
      stranger: [false, ""],
      bad_image: "INVALID_ARGUMENT",
      sync_order: true,
      sync_bad_frame: ["invalid_argument"],
      sync_identities: ["lin-manuel-miranda"],
    });
  });

  it("serves calls whose deadline is further off than a Node timer reaches (24.8 days), not ending them at once", async () => {
    const codes = await runPythonClient(new URL(server.url).host, "long_deadlines", [`${FACES_DIR}/face_recognition/obama.jpg`]);
    assert.deepEqual(codes, { "30 days": "OK", "a year": "OK" });
  });
});

/**
 * Refusals answered before any handler ran (no key, too many open requests) and streams beyond what
 * one connection may open, as grpcio sees them: it reads a status only from a trailers-only answer
 * (one HEADERS frame that ends the stream), and queues streams beyond the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS on its side without a word.
 */
describeUnless(pythonGrpcSkip, "what grpcio is told when the server refuses", () => {
  const photo = `${FACES_DIR}/face_recognition/obama.jpg`;

  /** `scenario` of face_client.py against a server started with `env`, closed after. */
  async function against<T>(env: Record<string, string>, scenario: string, args: string[] = []): Promise<T> {
    const server = await startTestServer(env);
    try {
      return await runPythonClient<T>(new URL(server.url).host, scenario, args);
    } finally {
      await server.close();
    }
  }

  it("answers 120 Sync streams on one channel (a gateway for 120 cameras)", async () => {
    assert.deepEqual(await against({}, "many_streams", [photo, "120"]), { answered: 120, failed: [], unanswered: 0, unary: "OK" });
  });

  it("refuses streams and calls beyond FACE_MAX_OPEN_REQUESTS with UNAVAILABLE and retry-after", async () => {
    assert.deepEqual(await against({ FACE_MAX_OPEN_REQUESTS: "20", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "20" }, "many_streams", [photo, "25"]), { answered: 20, failed: ["UNAVAILABLE 1"], unanswered: 0, unary: "UNAVAILABLE 1" });
  });

  it("refuses one client's streams and calls beyond its share (FACE_MAX_OPEN_REQUESTS_PER_CLIENT) with RESOURCE_EXHAUSTED and retry-after", async () => {
    assert.deepEqual(await against({ FACE_MAX_OPEN_REQUESTS: "20", FACE_MAX_OPEN_REQUESTS_PER_CLIENT: "10" }, "many_streams", [photo, "15"]), { answered: 10, failed: ["RESOURCE_EXHAUSTED 1"], unanswered: 0, unary: "RESOURCE_EXHAUSTED 1" });
  });

  it("refuses a call without the API key with UNAUTHENTICATED", async () => {
    assert.equal(await against({ FACE_API_KEYS: "python-client-key-0123" }, "without_key"), "UNAUTHENTICATED");
  });

  it("refuses calls beyond the rate limit with RESOURCE_EXHAUSTED and retry-after", async () => {
    // A burst of 5 at one request a minute: the sixth call in a row is over the limit.
    assert.deepEqual(await against({ FACE_RATE_LIMIT_PER_SECOND: "0.0167", FACE_RATE_LIMIT_BURST: "5" }, "rate_limited", ["8"]), ["OK", "RESOURCE_EXHAUSTED 60"]);
  });

  it("exports a user whose photos pass grpcio's default 4 MiB receive limit, a page at a time", async () => {
    const server = await startTestServer();
    try {
      // Three different photos of 2.2-2.8 MB: 7 MB in all, each under the limit by itself.
      const photos = await Promise.all([2400, 2600, 2800].map((width) => sharp(face("face_recognition/obama.jpg")).resize(width).jpeg({ quality: 98, chromaSubsampling: "4:4:4" }).toBuffer()));
      for (const image of photos) await faceClient(server).register({ identifier: "obama", image });
      const seen = await runPythonClient<{ status: string; pages: number; image_bytes?: number[] }>(new URL(server.url).host, "export_all", ["obama"]);
      assert.deepEqual(seen, { status: "OK", pages: 3, image_bytes: photos.map((p) => p.length).sort((a, b) => a - b), detections: 0 });
    } finally {
      await server.close();
    }
  });

  it("answers a method the service does not have with UNIMPLEMENTED, and the channel goes on", async () => {
    assert.deepEqual(await against({}, "unknown_method"), { nope: "UNIMPLEMENTED", list_users: 0 });
  });
});
