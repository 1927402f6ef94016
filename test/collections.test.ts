import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { FaceService } from "../gen/face/v1/face_pb.js";
import { createWebhookStore } from "../src/store/webhooks.js";
import { reasonOf } from "./support/reason.js";
import { face } from "./support/testdata.js";
import { writtenDetections } from "./support/detections.js";
import { faceClient, startTestServer, useTestServer, type TestServer } from "./support/server.js";

const OBAMA = face("face_recognition/obama.jpg");
const OBAMA_2 = face("face_recognition/obama2.jpg");

describe("collections", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  it("deleting a collection deletes its webhooks' pending deliveries too, and no other collection's", async () => {
    const store = createWebhookStore(server.database.knex);
    for (const collection of ["doomed", "kept"]) {
      await client.createCollection({ name: collection });
      // Straight into the store: a documentation address the dispatcher will never reach.
      await store.create({ collection, url: "http://192.0.2.1/hook", identifier: "", events: ["user.deleted"], secret: "s" });
      assert.equal(await store.enqueue({ type: "user.deleted", collection, identifier: "someone", data: {} }), 1);
    }
    await client.deleteCollection({ name: "doomed" });
    assert.deepEqual(await store.countByStatus("doomed"), {});
    assert.equal(Object.values(await store.countByStatus("kept")).reduce((a, b) => a + b, 0), 1);
  });

  it("never searches across collections", async () => {
    await client.register({ identifier: "obama", image: OBAMA, collection: "a" });
    const inA = await client.recognize({ image: OBAMA_2, collection: "a", topK: 5 });
    assert.equal(inA.identifier, "obama");
    for (const collection of ["b", ""]) {
      const elsewhere = await client.recognize({ image: OBAMA_2, collection, topK: 5 });
      assert.equal(elsewhere.matched, false, `collection ${collection || "default"}`);
      assert.deepEqual(elsewhere.candidates, []);
    }
    await assert.rejects(client.verify({ image: OBAMA_2, identifier: "obama", collection: "b" }), (e) => ConnectError.from(e).code === Code.NotFound);
    const rest = await fetch(`${server.url}/api/v1/users?collection=a`);
    assert.deepEqual(await rest.json(), ["obama"]);
    assert.deepEqual(await (await fetch(`${server.url}/api/v1/users`)).json(), []);
  });

  it("creates, lists and refuses duplicate or invalid collections", async () => {
    const created = await client.createCollection({ name: "site-1" });
    assert.equal(created.collection?.name, "site-1");
    await assert.rejects(client.createCollection({ name: "site-1" }), (e) => ConnectError.from(e).code === Code.AlreadyExists);
    await assert.rejects(client.createCollection({ name: "Not Valid!" }), (e) => ConnectError.from(e).code === Code.InvalidArgument);
    const listed = await client.listCollections({});
    const byName = Object.fromEntries(listed.collections.map((c) => [c.name, c.users]));
    assert.equal(byName.a, 1);
    assert.equal(byName["site-1"], 0);
    assert.ok("default" in byName);
  });

  it("deletes a collection with everything in it", async () => {
    await client.syncFrame({ image: OBAMA_2, collection: "a", frameId: "f1" });
    const deleted = await client.deleteCollection({ name: "a" });
    assert.equal(deleted.usersDeleted, 1);
    assert.equal(deleted.imagesDeleted, 1);
    assert.equal((await client.recognize({ image: OBAMA_2, collection: "a" })).matched, false);
    assert.equal((await server.database.knex("detections").where({ collection: "a" })).length, 0);
    assert.equal((await server.database.knex("faces").where({ collection: "a" })).length, 0);
    const rest = await fetch(`${server.url}/api/v1/collections/a`, { method: "DELETE" });
    assert.equal(rest.status, 404);
  });

  it("lists collections a page at a time, however many there are", async () => {
    // Any Register naming a new collection creates one: a list in one message grows without bound
    // (a gRPC client refuses a message over 4 MiB by default).
    const names = Array.from({ length: 1_234 }, (_, i) => `paged-${String(i).padStart(4, "0")}`);
    await server.database.knex.batchInsert("collections", names.map((name) => ({ name })), 500);
    const first = await client.listCollections({});
    assert.equal(first.collections.length, 100, "100 by default");
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.listCollections({ pageSize: 5_000, pageToken });
      assert.ok(page.collections.length <= 1_000, "at most 1,000 a page");
      seen.push(...page.collections.map((c) => c.name));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    assert.deepEqual(seen, [...seen].sort(), "in name order");
    assert.equal(new Set(seen).size, seen.length, "none twice");
    assert.deepEqual(seen.filter((n) => n.startsWith("paged-")), names);
    await assert.rejects(client.listCollections({ pageToken: "not-a-token!" }), (e) => ConnectError.from(e).code === Code.InvalidArgument);
    // Well-formed base64url of a key PostgreSQL text cannot hold (it answered Internal).
    for (const key of ["\0", "paged-\0"]) {
      await assert.rejects(client.listCollections({ pageToken: Buffer.from(key).toString("base64url") }), (e) => ConnectError.from(e).code === Code.InvalidArgument);
    }
    const rest = await (await fetch(`${server.url}/api/v1/collections?page_size=2&page_token=${first.nextPageToken}`)).json();
    assert.equal(rest.collections.length, 2);
    assert.equal(rest.collections[0].name, seen[100]);
    await server.database.knex("collections").whereIn("name", names).delete();
  });

  it("refuses to delete the default collection", async () => {
    await assert.rejects(client.deleteCollection({ name: "default" }), (e) => ConnectError.from(e).code === Code.FailedPrecondition);
    assert.ok((await client.listCollections({})).collections.some((c) => c.name === "default"));
  });
});

describe("corrections", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    await client.register({ identifier: "obama", image: OBAMA });
  });

  it("never matches a face to a user again after CorrectMatch said it is not them; their own photos still match", async () => {
    const stranger = face("face_recognition/biden.jpg");
    // A loose threshold makes the stranger match, as a bad match would in production.
    const before = await client.recognize({ image: stranger, threshold: 1.5 });
    assert.equal(before.identifier, "obama");
    await client.correctMatch({ image: stranger, identifier: "obama", isMatch: false });
    const after = await client.recognize({ image: stranger, threshold: 1.5, topK: 5 });
    assert.notEqual(after.identifier, "obama");
    assert.ok(!after.candidates.some((c) => c.identifier === "obama"));
    assert.equal((await client.recognize({ image: OBAMA_2 })).identifier, "obama");
    assert.equal((await client.recognize({ image: face("face_recognition/obama3.jpg") })).identifier, "obama");
  });

  it("refuses 'not them' for a photo of two faces of similar size, and stores nothing: it could be said of the user's own face", async () => {
    // Obama and Biden, faces differing in area by under 1 %: "the" face is a coin toss.
    const both = face("multi/obama_and_biden.jpg");
    const stored = async () => (await server.database.knex("negative_examples")).length;
    const before = await stored();
    await assert.rejects(client.correctMatch({ image: both, identifier: "obama", isMatch: false }), (e) => reasonOf(e) === "MULTIPLE_FACES");
    assert.equal(await stored(), before);
    // "It is them" refuses it too (its quality gate; the README says both do).
    const faces = (await server.database.knex("faces")).length;
    await assert.rejects(client.correctMatch({ image: both, identifier: "obama", isMatch: true }), (e) => reasonOf(e) === "MULTIPLE_FACES");
    assert.equal((await server.database.knex("faces")).length, faces);
    assert.equal((await client.recognize({ image: OBAMA_2 })).identifier, "obama");
  });

  it("adds a quality-checked reference photo when CorrectMatch says it is them", async () => {
    await client.correctMatch({ image: OBAMA_2, identifier: "obama", isMatch: true });
    assert.equal((await server.database.knex("faces")).length, 2);
    const blurred = await (await import("sharp")).default(OBAMA_2).blur(12).jpeg().toBuffer();
    await assert.rejects(client.correctMatch({ image: new Uint8Array(blurred), identifier: "obama", isMatch: true }), (e) => reasonOf(e) === "LOW_SHARPNESS");
    await assert.rejects(client.correctMatch({ image: OBAMA_2, identifier: "nobody", isMatch: false }), (e) => ConnectError.from(e).code === Code.NotFound);
    await assert.rejects(client.correctMatch({ image: OBAMA_2, identifier: "nobody", isMatch: true }), (e) => ConnectError.from(e).code === Code.NotFound);
    assert.equal(await server.database.knex("users").where({ identifier: "nobody" }).first("id"), undefined, "'it is them' creates no user");
  });
});

describe("privacy", () => {
  it("keeps no original photo with FACE_STORE_IMAGES=false, and still recognizes", async () => {
    const server = await startTestServer({ FACE_STORE_IMAGES: "false" });
    try {
      const client = faceClient(server);
      await client.register({ identifier: "obama", image: OBAMA });
      assert.equal((await client.recognize({ image: OBAMA_2 })).identifier, "obama");
      await assert.rejects(client.getUserFace({ identifier: "obama" }), (e) => ConnectError.from(e).code === Code.FailedPrecondition);
      assert.equal((await server.database.knex("images")).length, 0);
      if (server.database.kind === "postgres") assert.equal((await server.database.knex("image_bytes")).length, 0);
      assert.deepEqual(await readdir(join(server.dataDir, "images")).catch(() => []), []);
    } finally {
      await server.close();
    }
  });

  it("keeps a photo registered again with FACE_STORE_IMAGES=false as one reference, and keeps it once photos are kept", async () => {
    const server = await startTestServer({ FACE_STORE_IMAGES: "false" });
    let reopened: TestServer | undefined;
    try {
      const client = faceClient(server);
      await client.register({ identifier: "retried", image: OBAMA });
      // A client retrying a Register whose answer it lost: 100 retries filled the user's reference
      // photos, each one more copy of the same face.
      for (let i = 0; i < 3; i++) assert.equal((await client.register({ identifier: "retried", image: OBAMA })).created, false);
      const [only] = (await client.exportUser({ identifier: "retried" })).faces;
      assert.deepEqual([only.imageSha256, only.image.length], [createHash("sha256").update(OBAMA).digest("hex"), 0], "the photo's digest is stored about the user, and exported");
      // Retries that overlap (a client that gave up on the first too soon) are one reference too.
      await Promise.all([0, 1, 2].map(() => client.register({ identifier: "overlapping", image: OBAMA })));
      assert.equal((await client.exportUser({ identifier: "overlapping" })).faces.length, 1);
      await client.register({ identifier: "retried", image: OBAMA_2 });
      assert.equal((await client.exportUser({ identifier: "retried" })).faces.length, 2, "another photo is another reference");
      // Photos kept from now on: the same photo registered again is kept with its face.
      await server.close(true);
      reopened = await startTestServer({}, undefined, server);
      const keeping = faceClient(reopened);
      await keeping.register({ identifier: "retried", image: OBAMA });
      const exported = await keeping.exportUser({ identifier: "retried" });
      assert.equal(exported.faces.length, 2);
      assert.deepEqual(Buffer.from(exported.faces[0].image), Buffer.from(OBAMA));
      assert.deepEqual(Buffer.from((await keeping.getUserFace({ identifier: "retried" })).data), Buffer.from(OBAMA), "the primary reference's photo");
    } finally {
      await (reopened ?? server).close();
    }
  });

  it("exports everything stored about a user", async () => {
    const server = await startTestServer();
    try {
      const client = faceClient(server);
      await client.register({ identifier: "obama", image: OBAMA });
      await client.syncFrame({ image: OBAMA_2, frameId: "seen" });
      await client.correctMatch({ image: face("face_recognition/biden.jpg"), identifier: "obama", isMatch: false });
      const exported = await client.exportUser({ identifier: "obama" });
      assert.equal(exported.faces.length, 1);
      assert.equal(exported.faces[0].embedding.length, 512);
      assert.equal(exported.faces[0].primary, true);
      assert.deepEqual(Buffer.from(exported.faces[0].image), Buffer.from(OBAMA));
      assert.equal(exported.faces[0].imageContentType, "image/jpeg");
      assert.deepEqual(exported.detections.map((d) => d.frameId), ["seen"]);
      assert.equal(exported.negativeExamples, 1);
      const rest = await fetch(`${server.url}/api/v1/users/obama/export`);
      assert.equal(rest.status, 200);
      assert.equal((await rest.json()).faces.length, 1);
      assert.equal((await fetch(`${server.url}/api/v1/users/nobody/export`)).status, 404);
    } finally {
      await server.close();
    }
  });

  it("deletes a user's detection log with the user", async () => {
    const server = await startTestServer();
    try {
      const client = faceClient(server);
      await client.register({ identifier: "obama", image: OBAMA });
      await client.syncFrame({ image: OBAMA_2, frameId: "seen" });
      assert.equal((await writtenDetections(server.database.knex, { identifier: "obama" }, 1)).length, 1);
      await client.deleteUser({ identifier: "obama" });
      assert.equal((await server.database.knex("detections").where({ identifier: "obama" })).length, 0);
    } finally {
      await server.close();
    }
  });

  it("purges detection log entries older than the retention period at start", async () => {
    const first = await startTestServer();
    await faceClient(first).syncFrame({ image: OBAMA_2, frameId: "old" });
    await writtenDetections(first.database.knex, { frame_id: "old" }, 1);
    await first.database.knex("detections").update({ created_at: first.database.knex.raw("now() - interval '40 days'") });
    await faceClient(first).syncFrame({ image: OBAMA_2, frameId: "new" });
    await first.close(true);
    const restarted = await startTestServer({ FACE_DETECTION_RETENTION_DAYS: "30" }, undefined, first);
    try {
      const left = await restarted.database.knex("detections").select("frame_id");
      assert.deepEqual(left.map((r) => r.frame_id), ["new"]);
    } finally {
      await restarted.close();
    }
  });
});
