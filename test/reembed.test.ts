import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import pgvector from "pgvector";
import { countStaleFaces, reembedFaces } from "../src/jobs/reembed.js";
import { EMBEDDING_MODEL } from "../src/runtime/models.js";
import { openStoredImages } from "../src/store/open-stored-images.js";
import { face } from "./support/testdata.js";
import { testEngine, useTestServer, type TestServer } from "./support/server.js";
import { freshDatabase } from "./support/test-databases.js";
import type { Client } from "@connectrpc/connect";
import type { FaceService } from "../gen/face/v1/face_pb.js";

describe("re-embedding after a model upgrade (npm run reembed)", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    await c.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    await c.register({ identifier: "biden", image: face("face_recognition/biden.jpg") });
  });

  it("re-embeds faces of an older model from their photos, after which they match again", async () => {
    const knex = server.database.knex;
    // What an older model left behind: other vectors, another model name.
    const noise = Array.from({ length: 512 }, (_, i) => Math.sin(i * 7.3));
    await knex("faces").update({ model: "old-model@0", embedding: pgvector.toSql(noise) });
    assert.equal(await countStaleFaces(knex), 2);
    assert.equal((await client.recognize({ image: face("face_recognition/obama2.jpg") })).matched, false, "old vectors do not match");

    const seen: string[] = [];
    const summary = await reembedFaces(server.database, (await openStoredImages(server.database, server.dataDir)).images, testEngine(), (d) => seen.push(d));
    assert.deepEqual(summary, { reembedded: 2, withoutPhoto: 0, notFound: 0 });
    assert.equal(seen.length, 2);
    assert.equal(await countStaleFaces(knex), 0);
    assert.deepEqual([...new Set((await knex("faces").select("model")).map((r: { model: string }) => r.model))], [EMBEDDING_MODEL]);
    const answer = await client.recognize({ image: face("face_recognition/obama2.jpg") });
    assert.equal(answer.identifier, "obama");
    assert.ok(answer.distance < 0.5);
    assert.deepEqual(await reembedFaces(server.database, (await openStoredImages(server.database, server.dataDir)).images, testEngine()), { reembedded: 0, withoutPhoto: 0, notFound: 0 }, "a second run has nothing to do");
  });

  it("goes on past a face deleted while it runs (DeleteUser between listing the face and reading its photo)", async () => {
    const knex = server.database.knex;
    await client.register({ identifier: "amy", image: face("faceapijs/amy1.png") });
    await client.register({ identifier: "lin", image: face("video/lin-manuel-miranda.png") });
    await knex("faces").update({ model: "old-model@0" });
    const stored = (await openStoredImages(server.database, server.dataDir)).images;
    let deleted = false;
    // The first photo read: the service deletes its user just before (a real DeleteUser), so the read meets no photo.
    const deletingFirst = {
      async read(sha256: string) {
        if (!deleted) {
          deleted = true;
          const [owner] = await knex("faces as f").join("users as u", "u.id", "f.user_id").where({ "f.image_sha256": sha256 }).select("u.identifier");
          await client.deleteUser({ identifier: owner.identifier });
        }
        return stored.read(sha256);
      },
    };
    const seen: string[] = [];
    const summary = await reembedFaces(server.database, deletingFirst, testEngine(), (d) => seen.push(d));
    assert.deepEqual(summary, { reembedded: 3, withoutPhoto: 0, notFound: 0 });
    assert.match(seen[0], /^face \d+: deleted meanwhile$/);
    assert.equal(await countStaleFaces(knex), 0);
  });

  it("runs as a command (npm run reembed) and says what it did", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "face-reembed-"));
    try {
      const env = { ...process.env, FACE_DATA_DIR: dataDir, DATABASE_URL: process.env.TEST_DATABASE_URL ? await freshDatabase(process.env.TEST_DATABASE_URL) : "" };
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/reembed.ts"], { env });
      assert.match(stdout, /^0 re-embedded with \S+, 0 without a photo, 0 with no face at the stored box$/m);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
