import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createDetectionLog, type DetectionLog } from "../src/store/detections.js";
import { createIdentityStore, type IdentityStore } from "../src/store/identities.js";
import { openStoredImages } from "../src/store/open-stored-images.js";
import { createCollectionStore } from "../src/store/collections.js";
import type { StoredImages } from "../src/store/stored-images.js";
import { EMBEDDING_SIZE } from "../src/engine/embed.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";
import { statementsWaitingOnLocks } from "./support/lock-waits.js";
import { randomUnit, storedFace } from "./support/vectors.js";

const seen = (identifier: string, frameId: string) => ({ identifier, frameId, trackId: 1, box: { x: 0, y: 0, width: 10, height: 10 }, confidence: 0.9, distance: 0.1 });

/** The detection log on the test database (PGlite, or the PostgreSQL server of TEST_DATABASE_URL). */
describe("detection log written in batches", () => {
  let server: TestServer;
  let log: DetectionLog;
  let store: IdentityStore;
  let images: StoredImages;
  let inserts = 0;
  before(async () => {
    server = await startTestServer();
    // Written only when a test asks (flush, recent, close): what a test does between its steps
    // cannot race a timer.
    log = createDetectionLog(server.database.knex, { flushAfterMs: 60_000 });
    ({ images } = await openStoredImages(server.database, server.dataDir));
    store = createIdentityStore(server.database.knex, images, {
      negativeMaxDistance: 0.1,
      runSearch: (work) => server.database.runSearch(work),
      personalData: [log],
    });
    server.database.knex.on("query", (q: { sql: string }) => { if (/INSERT INTO detections/i.test(q.sql)) inserts++; });
  });
  after(async () => {
    await log.close();
    await server.close();
  });

  it("writes the entries of frames arriving together in one statement, in their order", async () => {
    const collection = "batched";
    const before = inserts;
    for (let i = 0; i < 30; i++) log.record(collection, [seen("", String(i))]);
    const logged = await log.recent(collection, 100);
    assert.deepEqual(logged.map((d) => d.frameId), Array.from({ length: 30 }, (_, i) => String(29 - i)));
    assert.equal(inserts - before, 1, "one INSERT for 30 frames");
  });

  it("writes queued entries by itself, without a read asking for them", async () => {
    const collection = "unasked";
    const timed = createDetectionLog(server.database.knex, { flushAfterMs: 50 });
    timed.record(collection, [seen("", "alone")]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const rows = await server.database.knex("detections").where({ collection });
    await timed.close();
    assert.deepEqual(rows.map((r) => r.frame_id), ["alone"]);
  });

  it("does not log a queued sighting of a person deleted and registered again before it was written", async () => {
    const collection = "deleted-while-queued";
    const face = storedFace(Float32Array.from({ length: EMBEDDING_SIZE }, (_, i) => (i === 0 ? 1 : 0)));
    await store.addFace(collection, "leaving", face, undefined);
    log.record(collection, [seen("leaving", "before-deletion"), seen("", "stranger")]);
    assert.ok(await store.deleteUser(collection, "leaving"));
    await store.addFace(collection, "leaving", face, undefined);
    const logged = await log.recent(collection, 10);
    assert.deepEqual(logged.map((d) => d.frameId), ["stranger"], "the new user with the old name has no sighting");
  });

  it("does not bring back a collection deleted while its sightings were queued", async () => {
    const collection = "deleted-collection";
    const collections = createCollectionStore(server.database.knex, images, [log]);
    await collections.create(collection);
    log.record(collection, [seen("", "queued")]);
    assert.ok(await collections.delete(collection));
    await log.flush();
    assert.deepEqual(await server.database.knex("collections").where({ name: collection }), []);
    assert.deepEqual(await server.database.knex("detections").where({ collection }), []);
  });

  it("does not bring back a collection deleted while its sightings waited for an earlier write (the embedded database's one connection)", { skip: process.env.TEST_DATABASE_URL ? "PGlite's one connection orders the steps; 'detection log beside a DeleteCollection' orders them with locks on a server" : false }, async () => {
    const collection = "deleted-behind-a-write-embedded";
    const knex = server.database.knex;
    const collections = createCollectionStore(knex, images, [log]);
    await collections.create(collection);
    // While the one connection is held: an earlier batch's write asks for it, the collection's
    // sightings wait behind that write, and the delete asks for the connection before them.
    const holding = await knex.transaction();
    try {
      log.record("another-embedded", [seen("", "earlier")]);
      const earlier = log.flush();
      log.record(collection, [seen("", "before-delete")]);
      const behind = log.flush();
      const deleting = collections.delete(collection);
      await holding.commit();
      assert.ok(await deleting);
      await Promise.all([earlier, behind]);
    } finally {
      // Left open, the one connection would stall every later test.
      if (!holding.isCompleted()) await holding.rollback();
    }
    assert.deepEqual(await knex("collections").where({ name: collection }), [], "the collection is not brought back");
    assert.deepEqual(await knex("detections").where({ collection }), []);
  });

  it("writes a frame id PostgreSQL text cannot hold, and the frames queued beside it", async () => {
    const collection = "odd-frame-ids";
    log.record(collection, [seen("", "nul\0byte")]);
    log.record(collection, [seen("", "lone \ud800 surrogate")]);
    log.record(collection, [seen("", "plain")]);
    const logged = await log.recent(collection, 10);
    assert.deepEqual(logged.map((d) => d.frameId), ["plain", "lone \ufffd surrogate", "nul\ufffdbyte"]);
  });

  it("drops a batch the database refuses for its data, and writes the frames after it", async () => {
    const collection = "refused";
    const refusing = createDetectionLog(server.database.knex, { flushAfterMs: 60_000 });
    // NaN goes to JSON as null, which the NOT NULL column refuses (SQLSTATE 23502).
    refusing.record(collection, [{ ...seen("", "broken"), confidence: Number.NaN }]);
    await refusing.flush();
    refusing.record(collection, [seen("", "next")]);
    const logged = await refusing.recent(collection, 10);
    await refusing.close();
    assert.deepEqual(logged.map((d) => d.frameId), ["next"]);
  });

  it("writes what is queued when closed, and later entries at once", async () => {
    const collection = "closing";
    const closing = createDetectionLog(server.database.knex, { flushAfterMs: 60_000 });
    closing.record(collection, [seen("", "queued")]);
    await closing.close();
    assert.equal((await server.database.knex("detections").where({ collection })).length, 1);
    closing.record(collection, [seen("", "after close")]);
    await closing.flush();
    assert.equal((await server.database.knex("detections").where({ collection })).length, 2);
  });
});

/**
 * The log's write meeting a DeleteCollection halfway, made certain with locks a test transaction
 * holds. PostgreSQL only: PGlite's one connection cannot hold a lock beside another statement.
 */
describeUnless(process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL (a PostgreSQL server; .ci/run starts one)", "detection log beside a DeleteCollection", () => {
  let server: TestServer;
  let images: StoredImages;
  const writeErrors: unknown[] = [];
  let log: DetectionLog;
  before(async () => {
    server = await startTestServer();
    ({ images } = await openStoredImages(server.database, server.dataDir));
    log = createDetectionLog(server.database.knex, { flushAfterMs: 60_000, onWriteError: (error) => writeErrors.push(error) });
  });
  after(async () => {
    await log.close();
    await server.close();
  });
  /**
   * Runs `start` while a transaction holds `lock`, then lets the lock go and runs what `start`
   * returned; the lock goes also when a step fails (a lock left held would stall every later test).
   */
  async function whileLocked(lock: string, start: () => Promise<() => Promise<void>>): Promise<void> {
    const paused = await server.database.knex.transaction();
    try {
      await paused.raw(lock);
      const finish = await start();
      await paused.commit();
      await finish();
    } finally {
      if (!paused.isCompleted()) await paused.rollback();
    }
  }
  const exists = async (collection: string) => (await server.database.knex("collections").where({ name: collection })).length > 0;

  it("does not deadlock with a DeleteCollection that locked the collection first", async () => {
    const collection = "deleted-while-logging";
    const knex = server.database.knex;
    const store = createIdentityStore(knex, images, { negativeMaxDistance: 0.1, runSearch: (work) => server.database.runSearch(work), personalData: [log] });
    const collections = createCollectionStore(knex, images, [log]);
    await store.addFace(collection, "seen", storedFace(randomUnit(1)), undefined);
    writeErrors.length = 0;
    // The delete holds the collection's row and waits before removing its users (the lock on faces).
    await whileLocked("LOCK TABLE faces IN ACCESS EXCLUSIVE MODE", async () => {
      const deleting = collections.delete(collection);
      await until(async () => (await statementsWaitingOnLocks(knex)) === 1, "the delete to wait");
      // A frame of the collection, answered while the delete runs, logs the person it named.
      log.record(collection, [seen("seen", "during-delete")]);
      const writing = log.flush();
      await until(async () => (await statementsWaitingOnLocks(knex)) === 2, "the log's write to wait for the collection");
      return async () => {
        assert.ok(await deleting);
        await writing;
      };
    });
    assert.deepEqual(writeErrors.map((e) => (e as { code?: string }).code), [], "the write failed (40P01: a deadlock, each waiting for the other's lock)");
    await log.flush();
    assert.equal(await exists(collection), false, "the collection is not brought back");
    assert.deepEqual(await knex("detections").where({ collection }), []);
  });

  it("does not bring back a collection deleted while its sightings waited for an earlier write", async () => {
    const collection = "deleted-behind-a-write";
    const knex = server.database.knex;
    const collections = createCollectionStore(knex, images, [log]);
    await collections.create(collection);
    writeErrors.length = 0;
    // An earlier batch's write waits for the detections table; the collection's sightings, taken
    // from the queue, wait behind it while the collection is deleted.
    await whileLocked("LOCK TABLE detections IN ACCESS EXCLUSIVE MODE", async () => {
      log.record("another-collection", [seen("", "earlier")]);
      const earlier = log.flush();
      await until(async () => (await statementsWaitingOnLocks(knex)) === 1, "the earlier write to wait");
      log.record(collection, [seen("", "before-delete")]);
      const behind = log.flush();
      const deleting = collections.delete(collection);
      await until(async () => (await statementsWaitingOnLocks(knex)) === 2, "the delete to wait");
      return async () => {
        assert.ok(await deleting);
        await Promise.all([earlier, behind]);
      };
    });
    assert.deepEqual(writeErrors, []);
    assert.equal(await exists(collection), false, "the collection is not brought back");
    assert.deepEqual(await knex("detections").where({ collection }), []);
  });
});
