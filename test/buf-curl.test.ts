import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import { startTestServer, type TestServer } from "./support/server.js";

/** The buf CLI of the devDependency, calling through server reflection: a client we did not write. */
const BUF = join(import.meta.dirname, "..", "node_modules", ".bin", "buf");
const b64 = (path: string) => Buffer.from(face(path)).toString("base64");

/**
 * One call of every RPC, in an order where each finds what it needs, and what its answer must hold.
 * A new RPC without an entry here fails the test.
 */
function calls(collection: string): { method: string; body: object | object[]; expect: (answer: string) => void }[] {
  const obama = b64("face_recognition/obama.jpg");
  const obama2 = b64("face_recognition/obama2.jpg");
  const json = (answer: string) => JSON.parse(answer);
  let webhookId = "";
  return [
    { method: "CreateCollection", body: { name: collection }, expect: (a) => assert.equal(json(a).collection.name, collection) },
    { method: "Register", body: { identifier: "obama", image: obama, collection }, expect: (a) => assert.equal(json(a).created, true) },
    { method: "Recognize", body: { image: obama2, collection }, expect: (a) => assert.equal(json(a).identifier, "obama") },
    { method: "Verify", body: { image: obama2, identifier: "obama", collection }, expect: (a) => assert.equal(json(a).verified, true) },
    { method: "Detect", body: { image: obama2 }, expect: (a) => assert.equal(json(a).faces.length, 1) },
    { method: "ExtractFeatures", body: { image: obama2 }, expect: (a) => assert.equal(json(a).faces[0].embedding.length, 512) },
    { method: "Analyze", body: { image: obama2 }, expect: (a) => assert.equal(json(a).faces.length, 1) },
    { method: "SyncFrame", body: { image: obama2, frameId: "f1", collection }, expect: (a) => assert.equal(json(a).faces[0].identifier, "obama") },
    { method: "Sync", body: [{ image: obama2, frameId: "s1", collection }, { image: obama, frameId: "s2", collection }], expect: (a) => assert.match(a, /"frameId": "s1"[\s\S]*"frameId": "s2"/) },
    { method: "CorrectMatch", body: { image: obama2, identifier: "obama", isMatch: true, collection }, expect: (a) => assert.equal(json(a).identifier, "obama") },
    { method: "ListUsers", body: { collection }, expect: (a) => assert.deepEqual(json(a).identifiers, ["obama"]) },
    { method: "GetUserFace", body: { identifier: "obama", collection }, expect: (a) => assert.equal(json(a).contentType, "image/jpeg") },
    { method: "ExportUser", body: { identifier: "obama", collection }, expect: (a) => assert.ok(json(a).faces.length >= 2) },
    { method: "CreateWebhook", body: { url: "http://8.8.8.8/hook", collection }, expect: (a) => (webhookId = json(a).webhook.id) },
    { method: "ListWebhooks", body: { collection }, expect: (a) => assert.equal(json(a).webhooks.length, 1) },
    { method: "DeleteWebhook", body: { get id() { return webhookId; }, collection }, expect: (a) => assert.equal(json(a).id, webhookId) },
    { method: "DeleteUser", body: { identifier: "obama", collection }, expect: (a) => assert.equal(json(a).identifier, "obama") },
    { method: "ListCollections", body: {}, expect: (a) => assert.ok(json(a).collections.some((c: { name: string }) => c.name === collection)) },
    { method: "DeleteCollection", body: { name: collection }, expect: (a) => assert.equal(json(a).name, collection) },
  ];
}

describe("buf curl calls every RPC", () => {
  let server: TestServer;
  let work: string;
  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(join(tmpdir(), "face-buf-curl-"));
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it("has a call for every method of FaceService", () => {
    assert.deepEqual(calls("x").map((c) => c.method).sort(), FaceService.methods.map((m) => m.name).sort());
  });

  for (const protocol of ["grpc", "grpcweb", "connect"]) {
    it(`over ${protocol}`, async () => {
      for (const call of calls(`buf-${protocol}`)) {
        // gRPC-Web has no client streaming, so no bidirectional Sync.
        if (protocol === "grpcweb" && call.method === "Sync") continue;
        const file = join(work, `${protocol}-${call.method}.json`);
        const bodies = Array.isArray(call.body) ? call.body : [call.body];
        await writeFile(file, bodies.map((b) => JSON.stringify(b)).join("\n"));
        const http = protocol === "grpcweb" ? [] : ["--http2-prior-knowledge"];
        const { stdout } = await promisify(execFile)(BUF, ["curl", ...http, "--protocol", protocol, "-d", `@${file}`, `${server.url}/face.v1.FaceService/${call.method}`], { maxBuffer: 64 * 1024 * 1024 }).catch((e) => {
          throw new Error(`buf curl ${protocol} ${call.method} failed: ${e.stderr}`);
        });
        call.expect(stdout);
      }
    });
  }
});
