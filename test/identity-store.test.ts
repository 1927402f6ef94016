import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Knex } from "knex";
import { createDetectionLog } from "../src/store/detections.js";
import { createIdentityStore, type IdentityStore } from "../src/store/identities.js";
import { openStoredImages } from "../src/store/open-stored-images.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { MAX_NEGATIVE_EXAMPLES, MAX_REGISTERED_FACES } from "../src/store/per-user-limits.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { face } from "./support/testdata.js";
import { randomUnit, storedFace, vectorAt } from "./support/vectors.js";
import { describeUnless } from "./support/suite.js";
import { sha256Of } from "../src/service/face-work.js";


/** The identity store on the test database (PGlite, or the PostgreSQL server of TEST_DATABASE_URL). */
describe("identity store on synthetic embeddings", () => {
  let server: TestServer;
  let store: IdentityStore;
  before(async () => {
    server = await startTestServer();
    store = createIdentityStore(server.database.knex, (await openStoredImages(server.database, server.dataDir)).images, { negativeMaxDistance: 0.1, runSearch: (work) => server.database.runSearch(work) });
  });
  after(() => server.close());

  it("refuses a user's registered face beyond MAX_REGISTERED_FACES and writes nothing; Register answers FailedPrecondition", async () => {
    const collection = "full";
    for (let i = 0; i < MAX_REGISTERED_FACES; i++) assert.equal((await store.addFace(collection, "many", storedFace(randomUnit(i)), undefined)).full, undefined);
    const facesOf = async (identifier: string) => Number((await server.database.knex("faces").join("users", "users.id", "faces.user_id").where({ "users.collection": collection, identifier }).count({ n: "*" }))[0].n);
    assert.deepEqual(await store.addFace(collection, "many", storedFace(randomUnit(1000)), undefined), { created: false, full: true });
    assert.equal(await facesOf("many"), MAX_REGISTERED_FACES);
    assert.equal((await store.addFace(collection, "other", storedFace(randomUnit(1001)), undefined)).created, true, "another user is not limited");
    await assert.rejects(
      faceClient(server).register({ identifier: "many", collection, image: face("face_recognition/obama.jpg") }),
      (e) => ConnectError.from(e).code === Code.FailedPrecondition && /100 registered reference photos/.test(ConnectError.from(e).rawMessage),
    );
    assert.equal(await facesOf("many"), MAX_REGISTERED_FACES);
  });

  it("keeps a user's newest MAX_NEGATIVE_EXAMPLES negative examples", async () => {
    const collection = "corrected";
    await store.addFace(collection, "often-wrong", storedFace(vectorAt(0.05, 2)), undefined);
    const query = vectorAt(0, 1);
    assert.equal(await store.addNegativeExample(collection, "often-wrong", query, "test"), true);
    assert.equal((await store.search(collection, query, 1)).length, 0, "the negative example keeps the query from matching");
    for (let i = 0; i < MAX_NEGATIVE_EXAMPLES - 1; i++) await store.addNegativeExample(collection, "often-wrong", randomUnit(2000 + i), "test");
    assert.equal((await store.search(collection, query, 1)).length, 0, "the first is still among the newest");
    await store.addNegativeExample(collection, "often-wrong", randomUnit(3000), "test");
    assert.equal((await store.exportUser(collection, "often-wrong", 0, Infinity))!.negativeExamples, MAX_NEGATIVE_EXAMPLES);
    assert.equal((await store.search(collection, query, 1))[0]?.identifier, "often-wrong", "the oldest was dropped");
    assert.equal(await store.addNegativeExample(collection, "nobody", query, "test"), false);
  });

  it("leaves out a user's negative examples before the limit, so they cannot push the right user out", async () => {
    const collection = "negatives";
    // A look-alike with many faces closer to the query than the right person's one face.
    for (let i = 0; i < 12; i++) await store.addFace(collection, "look-alike", storedFace(vectorAt(0.05, 10 + i)), undefined);
    await store.addFace(collection, "right", storedFace(vectorAt(0.2, 100)), undefined);
    const query = vectorAt(0, 1);
    assert.equal((await store.search(collection, query, 1))[0].identifier, "look-alike");
    assert.equal(await store.addNegativeExample(collection, "look-alike", query, "test"), true);
    const hits = await store.search(collection, query, 1);
    assert.equal(hits.length, 1, "the right person is still found");
    assert.equal(hits[0].identifier, "right");
    assert.ok(Math.abs(hits[0].distance - 0.2) < 1e-4);
  });

  it("logs no detection of a person deleted while their frame was being logged", async () => {
    const collection = "deleted-in-flight";
    await store.addFace(collection, "leaving", storedFace(vectorAt(0, 1)), undefined);
    const log = createDetectionLog(server.database.knex, { flushAfterMs: 100 });
    const seen = (identifier: string) => ({ identifier, frameId: "f1", trackId: 1, box: { x: 0, y: 0, width: 10, height: 10 }, confidence: 0.9, distance: 0.1 });
    // DeleteUser's transaction, still open: it has locked and deleted the user and erased their log.
    const deleting = await server.database.knex.transaction();
    const user = await deleting("users").where({ collection, identifier: "leaving" }).first("id").forUpdate();
    await deleting("faces").where({ user_id: user.id }).delete();
    await deleting("users").where({ id: user.id }).delete();
    await log.erasePerson(collection, "leaving", deleting);
    // A frame recognized them a moment before; its log entry arrives now.
    log.record(collection, [seen("leaving"), seen("")]);
    const logging = log.flush();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await deleting.commit();
    await logging;
    const logged = await log.recent(collection, 10);
    assert.deepEqual(logged.map((d) => d.identifier), [""], "the stranger beside them is logged, the deleted person is not");
    log.record(collection, [seen("nobody-registered")]);
    assert.equal((await log.recent(collection, 10)).length, 1, "a name that is no user is not logged either");
  });

  it("orders the search by the HNSW index (the query vector sent once is still a constant to the planner)", async () => {
    let sql = "";
    let bindings: readonly Knex.RawBinding[] = [];
    const capture = (query: { sql: string; bindings?: readonly Knex.RawBinding[] }) => {
      if (/ORDER BY f\.embedding/.test(query.sql)) ({ sql, bindings = [] } = query);
    };
    // A search of the store as it runs, captured; then EXPLAINed with the other ways to read faces
    // (and sorting them) priced out, as on a gallery where the index is worth it: only an index
    // that can order by the query's distance is left.
    const runSearch = <T>(work: (db: Knex) => Promise<T>) => server.database.runSearch(async (db) => {
      db.client.on("query", capture);
      try {
        return await work(db);
      } finally {
        db.client.removeListener("query", capture);
      }
    });
    const capturing = createIdentityStore(server.database.knex, (await openStoredImages(server.database, server.dataDir)).images, { negativeMaxDistance: 0.1, runSearch });
    await capturing.search("negatives", vectorAt(0, 1), 1);
    assert.ok(sql !== "", "the search's statement was seen");
    const plan = (await server.database.knex.transaction(async (trx) => {
      for (const plan of ["seqscan", "bitmapscan", "sort"]) await trx.raw(`SET LOCAL enable_${plan} = off`);
      // The driver's $1..$n, in order, back to knex's placeholders.
      return trx.raw(`EXPLAIN ${sql.replace(/\$\d+/g, "?")}`, bindings);
    })) as { rows: Record<string, string>[] };
    const text = plan.rows.map((r) => Object.values(r)[0]).join("\n");
    assert.match(text, /Index Scan using faces_embedding_hnsw on faces f[\s\S]*Order By: \(embedding <=> /);
  });

  /** Users with no face, or not exactly one primary face: what a half-written registration leaves. */
  async function halfWritten(collection: string): Promise<string[]> {
    const result = await server.database.knex.raw(
      `SELECT u.identifier FROM users u LEFT JOIN faces f ON f.user_id = u.id
        WHERE u.collection = ? GROUP BY u.id HAVING count(f.id) = 0 OR count(*) FILTER (WHERE f.is_primary) <> 1`,
      [collection],
    );
    return (result.rows as { identifier: string }[]).map((r) => r.identifier);
  }

  it("turns concurrent first registrations of one identifier into one user with one primary face", async () => {
    const collection = "concurrent-register";
    const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => store.addFace(collection, "same", storedFace(vectorAt(0.1, 20 + i)), undefined)));
    assert.equal(outcomes.filter((o) => o.created).length, 1, "exactly one call created the user");
    assert.deepEqual(await store.listUsers(collection, 10, ""), ["same"]);
    assert.equal((await store.exportUser(collection, "same", 0, Infinity))!.faces.length, 8);
    assert.deepEqual(await halfWritten(collection), []);
  });

  it("settles Register racing DeleteUser without a failure or a half-written user", async () => {
    const collection = "register-delete";
    for (let round = 0; round < 40; round++) {
      const results = await Promise.allSettled([
        store.addFace(collection, "racer", storedFace(vectorAt(0.1, 30 + (round % 50))), undefined),
        store.deleteUser(collection, "racer"),
        store.addFace(collection, "racer", storedFace(vectorAt(0.2, 90 + (round % 50))), undefined),
        store.addNegativeExample(collection, "racer", vectorAt(0.3, 200), "test"),
      ]);
      for (const r of results) assert.equal(r.status, "fulfilled", r.status === "rejected" ? String(r.reason) : "");
      assert.deepEqual(await halfWritten(collection), [], `round ${round}`);
    }
  });
});

/**
 * A DeleteUser that leaves a photo without faces, and a Register of the same photo, one right after
 * the other on the embedded database's one connection: the delete commits, then removes the photo's
 * file, which the Register wrote again before its transaction. (On a PostgreSQL server the photo is
 * a row; deletion-races.test.ts orders the same two with locks.)
 */
describeUnless(process.env.TEST_DATABASE_URL ? "photos are files only with the embedded database (run without TEST_DATABASE_URL)" : false, "a photo registered again while the delete of its last user commits", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("keeps the photo's file for the face that now references it", async () => {
    const knex = server.database.knex;
    const { images } = await openStoredImages(server.database, server.dataDir);
    const bytes = face("face_recognition/biden.jpg");
    const photo = { sha256: sha256Of(bytes), bytes, contentType: "image/jpeg", width: 100, height: 100 };
    let queued!: () => void;
    const registerQueued = new Promise<void>((resolve) => (queued = resolve));
    // The Register's transaction is asked for once its file is written (withImage runs it then).
    const signalling = { ...images, withImage: <T>(image: typeof photo | undefined, work: () => Promise<T>) => images.withImage(image, () => (queued(), work())) };
    const store = createIdentityStore(knex, signalling, { negativeMaxDistance: 0.1, runSearch: (work) => server.database.runSearch(work) });
    const collection = "photo-again";
    await store.addFace(collection, "leaving", storedFace(randomUnit(1)), photo);
    const holding = await knex.transaction(); // the one connection: both wait for it, in turn
    const deleting = store.deleteUser(collection, "leaving");
    const registering = store.addFace(collection, "arriving", storedFace(randomUnit(2)), photo);
    await registerQueued;
    await holding.commit();
    assert.deepEqual(await deleting, { faces: 1, images: 1 });
    assert.equal((await registering).created, true);
    assert.ok(Buffer.from(await images.read(photo.sha256)).equals(bytes), "the photo of arriving's face");
  });
});
