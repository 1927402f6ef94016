import assert from "node:assert/strict";
import type { Knex } from "knex";
import { it } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { FaceService } from "../gen/face/v1/face_pb.js";
import { largePhotos } from "./support/photos.js";
import { face } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";

const codeOf = (e: unknown) => ConnectError.from(e).code;
/** Whether a statement of this test's database waits for a lock: the call under test, once it reached the locked table. */
async function waitingOnALock(knex: Knex): Promise<boolean> {
  return (await knex.raw("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0].n > 0;
}

const outcome = (settled: PromiseSettledResult<unknown>) => (settled.status === "fulfilled" ? "answered" : `${Code[codeOf(settled.reason)]}: ${ConnectError.from(settled.reason).message}`);

/**
 * A DeleteUser committed at the worst moment of another call, made certain: a transaction takes
 * `lock`, so the call's statement on that table waits; the transaction then deletes the user (faces,
 * photos) as DeleteUser does and commits, and the call goes on. PostgreSQL only: PGlite's one
 * connection cannot hold a lock beside another statement.
 */
describeUnless(process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL (a PostgreSQL server; .ci/run starts one)", "calls that meet their user deleted halfway", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  let photos: Buffer[];
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    photos = await largePhotos(face("face_recognition/obama.jpg"));
  });

  async function deletedDuring<T>(identifier: string, lock: { table: string; mode: string }, call: () => Promise<T>): Promise<PromiseSettledResult<T>> {
    const knex = server.database.knex;
    const trx = await knex.transaction();
    try {
      await trx.raw(`LOCK TABLE ${lock.table} IN ${lock.mode} MODE`);
      const calling = Promise.allSettled([call()]);
      await until(() => waitingOnALock(knex), `the call to wait on ${lock.table}`);
      const user = await trx("users").where({ identifier }).first("id");
      const faces: { image_sha256: string }[] = await trx("faces").where({ user_id: user.id }).delete().returning("image_sha256");
      await trx("users").where({ id: user.id }).delete();
      const shas = faces.map((f) => f.image_sha256);
      if (lock.table === "image_bytes") await trx("image_bytes").whereIn("sha256", shas).delete();
      await trx("images").whereIn("sha256", shas).whereNotExists(knex("faces").whereRaw("faces.image_sha256 = images.sha256")).delete();
      await trx.commit();
      return (await calling)[0];
    } finally {
      if (!trx.isCompleted()) await trx.rollback();
    }
  }

  /** Between reading a face's row and reading its photo's bytes. */
  const photoBytes = { table: "image_bytes", mode: "ACCESS EXCLUSIVE" };

  it("ExportUser answers NotFound, not Internal", async () => {
    for (const image of photos.slice(0, 2)) await client.register({ identifier: "exported", image });
    assert.match(outcome(await deletedDuring("exported", photoBytes, () => client.exportUser({ identifier: "exported" }))), /^NotFound/);
  });

  it("GetUserFace answers NotFound, not Internal", async () => {
    await client.register({ identifier: "shown", image: photos[2] });
    assert.match(outcome(await deletedDuring("shown", photoBytes, () => client.getUserFace({ identifier: "shown" }))), /^NotFound/);
  });

  it("CorrectMatch 'it is them' answers NotFound and does not bring the deleted user back", async () => {
    await client.register({ identifier: "corrected", image: face("face_recognition/obama.jpg") });
    // Between finding the user and adding the photo to it: users is locked against writes, not reads.
    const usersWritten = { table: "users", mode: "EXCLUSIVE" };
    const settled = await deletedDuring("corrected", usersWritten, () => client.correctMatch({ identifier: "corrected", image: face("face_recognition/obama2.jpg"), isMatch: true }));
    assert.match(outcome(settled), /^NotFound/);
    assert.equal(await server.database.knex("users").where({ identifier: "corrected" }).first("id"), undefined, "erased stays erased");
  });
});

describeUnless(process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL (a PostgreSQL server; .ci/run starts one)", "calls that meet their collection deleted halfway", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  /** Runs `call` while a transaction holds the collection's row as DeleteCollection does, then deletes the collection and commits. */
  async function collectionDeletedDuring<T>(name: string, call: () => Promise<T>): Promise<PromiseSettledResult<T>> {
    const knex = server.database.knex;
    const trx = await knex.transaction();
    try {
      await trx("collections").where({ name }).forUpdate().first("name");
      const calling = Promise.allSettled([call()]);
      await until(() => waitingOnALock(knex), "the call to wait on the collection");
      await trx("collections").where({ name }).delete();
      await trx.commit();
      return (await calling)[0];
    } finally {
      if (!trx.isCompleted()) await trx.rollback();
    }
  }

  it("Register lands in the collection created anew", async () => {
    await client.createCollection({ name: "doomed" });
    const settled = await collectionDeletedDuring("doomed", () => client.register({ identifier: "newcomer", image: face("face_recognition/obama.jpg"), collection: "doomed" }));
    assert.equal(outcome(settled), "answered");
    assert.deepEqual((await client.listUsers({ collection: "doomed" })).identifiers, ["newcomer"]);
  });

  it("CreateWebhook lands in the collection created anew", async () => {
    await client.createCollection({ name: "doomed-hooks" });
    const settled = await collectionDeletedDuring("doomed-hooks", () => client.createWebhook({ url: "http://8.8.8.8/hook", collection: "doomed-hooks" }));
    assert.equal(outcome(settled), "answered");
    assert.equal((await client.listWebhooks({ collection: "doomed-hooks" })).webhooks.length, 1);
  });
});
