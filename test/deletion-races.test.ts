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
import { statementsWaitingOnLocks } from "./support/lock-waits.js";

const codeOf = (e: unknown) => ConnectError.from(e).code;
/** Whether a statement of this test's database waits for a lock: the call under test, once it reached the locked table. */
const waitingOnALock = async (knex: Knex) => (await statementsWaitingOnLocks(knex)) > 0;

const outcome = (settled: PromiseSettledResult<unknown>) => (settled.status === "fulfilled" ? "answered" : `${Code[codeOf(settled.reason)]}: ${ConnectError.from(settled.reason).message}`);

/**
 * A DeleteUser or DeleteCollection committed at the worst moment of another call, made certain: a
 * transaction takes a lock (`hold`), so the call's statement on that table waits; the transaction
 * then deletes (`remove`) and commits, and the call goes on. PostgreSQL only: PGlite's one connection
 * cannot hold a lock beside another statement.
 */
describeUnless(process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL (a PostgreSQL server; .ci/run starts one)", "calls that meet a deletion halfway", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  let photos: Buffer[];
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    photos = await largePhotos(face("face_recognition/obama.jpg"));
  });

  async function deletedWhileWaiting<T>(hold: (trx: Knex.Transaction) => Promise<unknown>, remove: (trx: Knex.Transaction) => Promise<unknown>, call: () => Promise<T>): Promise<PromiseSettledResult<T>> {
    const knex = server.database.knex;
    const trx = await knex.transaction();
    try {
      await hold(trx);
      const calling = Promise.allSettled([call()]);
      await until(() => waitingOnALock(knex), "the call to wait on the lock");
      await remove(trx);
      await trx.commit();
      return (await calling)[0];
    } finally {
      if (!trx.isCompleted()) await trx.rollback();
    }
  }

  /**
   * Two calls that meet, made certain: a transaction takes `lock`, `first` waits on it, `second`
   * comes and waits (on it or on `first`), then the lock goes. Returns how each ended.
   */
  async function bothWaiting(lock: string, first: () => Promise<unknown>, second: () => Promise<unknown>): Promise<string[]> {
    const knex = server.database.knex;
    const trx = await knex.transaction();
    try {
      await trx.raw(lock);
      const calls = [Promise.allSettled([first()])];
      await until(async () => (await statementsWaitingOnLocks(knex)) === 1, "the first call to wait");
      calls.push(Promise.allSettled([second()]));
      await until(async () => (await statementsWaitingOnLocks(knex)) === 2, "the second call to wait");
      await trx.commit();
      return (await Promise.all(calls)).map(([settled]) => outcome(settled));
    } finally {
      if (!trx.isCompleted()) await trx.rollback();
    }
  }

  /** What DeleteUser removes of the user: faces, the user, its photos' rows (and bytes, on PostgreSQL). */
  const theUser = (identifier: string) => async (trx: Knex.Transaction) => {
    const user = await trx("users").where({ identifier }).first("id");
    const faces: { image_sha256: string }[] = await trx("faces").where({ user_id: user.id }).delete().returning("image_sha256");
    await trx("users").where({ id: user.id }).delete();
    const shas = faces.map((f) => f.image_sha256);
    await trx("image_bytes").whereIn("sha256", shas).delete();
    await trx("images").whereIn("sha256", shas).whereNotExists(trx("faces").whereRaw("faces.image_sha256 = images.sha256")).delete();
  };
  /** Between reading a face's row and reading its photo's bytes. */
  const photoBytes = (trx: Knex.Transaction) => trx.raw("LOCK TABLE image_bytes IN ACCESS EXCLUSIVE MODE");
  /** The collection's row held as DeleteCollection holds it. */
  const collectionRow = (name: string) => (trx: Knex.Transaction) => trx("collections").where({ name }).forUpdate().first("name");
  const theCollection = (name: string) => (trx: Knex.Transaction) => trx("collections").where({ name }).delete();

  it("ExportUser answers NotFound, not Internal", async () => {
    for (const image of photos.slice(0, 2)) await client.register({ identifier: "exported", image });
    assert.match(outcome(await deletedWhileWaiting(photoBytes, theUser("exported"), () => client.exportUser({ identifier: "exported" }))), /^NotFound/);
  });

  it("GetUserFace answers NotFound, not Internal", async () => {
    await client.register({ identifier: "shown", image: photos[2] });
    assert.match(outcome(await deletedWhileWaiting(photoBytes, theUser("shown"), () => client.getUserFace({ identifier: "shown" }))), /^NotFound/);
  });

  it("GetUserFace answers the new primary photo when the one it was reading was replaced", async () => {
    for (const image of photos.slice(3, 5)) await client.register({ identifier: "reshown", image });
    // What an upgrade with FACE_UPGRADE_MAX_FACES=1 does to the face GetUserFace chose: no longer
    // primary, then pruned with its photo; another face is primary instead.
    const primaryReplaced = async (trx: Knex.Transaction) => {
      const user = await trx("users").where({ identifier: "reshown" }).first("id");
      const [old] = await trx("faces").where({ user_id: user.id, is_primary: true }).delete().returning("image_sha256");
      await trx("faces").where({ user_id: user.id }).update({ is_primary: true });
      await trx("image_bytes").where({ sha256: old.image_sha256 }).delete();
      await trx("images").where({ sha256: old.image_sha256 }).delete();
    };
    const settled = await deletedWhileWaiting(photoBytes, primaryReplaced, () => client.getUserFace({ identifier: "reshown" }));
    assert.equal(outcome(settled), "answered");
    assert.ok(Buffer.from((settled as PromiseFulfilledResult<{ data: Uint8Array }>).value.data).equals(photos[4]), "the photo of the face now primary");
  });

  it("CorrectMatch 'it is them' answers NotFound and does not bring the deleted user back", async () => {
    await client.register({ identifier: "corrected", image: face("face_recognition/obama.jpg") });
    // Between finding the user and adding the photo to it: users is locked against writes, not reads.
    const usersWritten = (trx: Knex.Transaction) => trx.raw("LOCK TABLE users IN EXCLUSIVE MODE");
    const settled = await deletedWhileWaiting(usersWritten, theUser("corrected"), () => client.correctMatch({ identifier: "corrected", image: face("face_recognition/obama2.jpg"), isMatch: true }));
    assert.match(outcome(settled), /^NotFound/);
    assert.equal(await server.database.knex("users").where({ identifier: "corrected" }).first("id"), undefined, "erased stays erased");
  });

  it("Register of the photo of the user it deletes lands, the photo stored anew", async () => {
    const photo = face("face_recognition/biden.jpg");
    await client.register({ identifier: "registered-again", image: photo });
    // Between the Register's start and its user's row: users is locked against writes, not reads.
    const usersWritten = (trx: Knex.Transaction) => trx.raw("LOCK TABLE users IN EXCLUSIVE MODE");
    const settled = await deletedWhileWaiting(usersWritten, theUser("registered-again"), () => client.register({ identifier: "registered-again", image: photo }));
    assert.equal(outcome(settled), "answered");
    assert.ok(Buffer.from((await client.getUserFace({ identifier: "registered-again" })).data).equals(photo));
  });

  it("a DeleteUser leaving a photo without its faces waits for a Register adding a face with it, and keeps it", async () => {
    const photo = face("face_recognition/biden2.jpg");
    await client.register({ identifier: "first-with-photo", image: photo });
    // The Register waits to write the photo's bytes (the table is locked); the delete of the only
    // other face with the photo comes meanwhile.
    const outcomes = await bothWaiting(
      "LOCK TABLE image_bytes IN EXCLUSIVE MODE",
      () => client.register({ identifier: "second-with-photo", image: photo }),
      () => client.deleteUser({ identifier: "first-with-photo" }),
    );
    assert.deepEqual(outcomes, ["answered", "answered"]);
    assert.ok(Buffer.from((await client.getUserFace({ identifier: "second-with-photo" })).data).equals(photo));
  });

  it("DeleteUser and DeleteCollection of its collection both answer, one after the other", async () => {
    await client.register({ identifier: "last-one", image: face("face_recognition/john1.jpeg"), collection: "closing" });
    // The user's count then goes to a row of its own whichever connection deletes it: that row's
    // insert checks the collection's foreign key, the lock DeleteCollection holds.
    await server.database.knex("collection_user_counts").where({ collection: "closing" }).delete();
    // DeleteUser holds the user's row and waits to delete its faces; DeleteCollection comes meanwhile.
    const outcomes = await bothWaiting(
      "LOCK TABLE faces IN EXCLUSIVE MODE",
      () => client.deleteUser({ identifier: "last-one", collection: "closing" }),
      () => client.deleteCollection({ name: "closing" }),
    );
    assert.deepEqual(outcomes, ["answered", "answered"]);
  });

  it("Register lands in the collection created anew", async () => {
    await client.createCollection({ name: "doomed" });
    const settled = await deletedWhileWaiting(collectionRow("doomed"), theCollection("doomed"), () => client.register({ identifier: "newcomer", image: face("face_recognition/obama.jpg"), collection: "doomed" }));
    assert.equal(outcome(settled), "answered");
    assert.deepEqual((await client.listUsers({ collection: "doomed" })).identifiers, ["newcomer"]);
  });

  it("CreateWebhook lands in the collection created anew", async () => {
    await client.createCollection({ name: "doomed-hooks" });
    const settled = await deletedWhileWaiting(collectionRow("doomed-hooks"), theCollection("doomed-hooks"), () => client.createWebhook({ url: "http://8.8.8.8/hook", collection: "doomed-hooks" }));
    assert.equal(outcome(settled), "answered");
    assert.equal((await client.listWebhooks({ collection: "doomed-hooks" })).webhooks.length, 1);
  });

  it("Register whose event's webhook is deleted meanwhile lands, with no delivery to the deleted webhook", async () => {
    const { webhook } = await client.createWebhook({ url: "http://8.8.8.8/hook", collection: "hooked", events: ["user.registered"] });
    // The webhook's row held as a DeleteWebhook holds it, between the event's read of the webhooks and its delivery's insert.
    const webhookRow = (trx: Knex.Transaction) => trx("webhooks").where({ id: webhook!.id }).forUpdate().first("id");
    const theWebhook = (trx: Knex.Transaction) => trx("webhooks").where({ id: webhook!.id }).delete();
    const settled = await deletedWhileWaiting(webhookRow, theWebhook, () => client.register({ identifier: "announced", image: face("face_recognition/obama.jpg"), collection: "hooked" }));
    assert.equal(outcome(settled), "answered");
    assert.deepEqual((await client.listUsers({ collection: "hooked" })).identifiers, ["announced"]);
  });
});
