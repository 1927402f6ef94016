import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createFindNearest } from "../src/runtime/nearest.js";
import { createCollectionStore } from "../src/store/collections.js";
import { createIdentityStore, type IdentityStore, type SearchHit } from "../src/store/identities.js";
import { createMemoryGallery, type MemoryGallery } from "../src/store/memory-gallery.js";
import { openStoredImages } from "../src/store/open-stored-images.js";
import { createStaleFaces } from "../src/store/stale-faces.js";
import type { StoredImages } from "../src/store/stored-images.js";
import type { Client } from "@connectrpc/connect";
import type { FaceService } from "../gen/face/v1/face_pb.js";
import { openTestDatabase, startTestServer, useTestServer, type TestServer } from "./support/server.js";
import { face } from "./support/testdata.js";
import { near, randomUnit, storedFace, vectorAt } from "./support/vectors.js";

const names = (hits: SearchHit[]) => hits.map((h) => h.identifier);

/**
 * The exact search in memory against the HNSW index search on the same rows, on the test database
 * (PGlite, or the PostgreSQL server of TEST_DATABASE_URL: the service holds a gallery only on
 * PGlite, but the statements it checks faces with must read both drivers' rows).
 */
describe("in-memory gallery", () => {
  let database: Awaited<ReturnType<typeof openTestDatabase>>;
  let images: StoredImages;
  let memory: MemoryGallery;
  let exact: IdentityStore;
  let indexed: IdentityStore;
  before(async () => {
    database = await openTestDatabase();
    images = (await openStoredImages(database, database.dataDir)).images;
    memory = createMemoryGallery(database.knex, { maxFaces: 1000, findNearest: createFindNearest() });
    const options = { negativeMaxDistance: 0.1, runSearch: database.runSearch };
    exact = createIdentityStore(database.knex, images, { ...options, memory });
    indexed = createIdentityStore(database.knex, images, options);
  });
  after(() => database.dispose());

  it("finds exactly the nearest users with their primary faces, as the index does on a small gallery", async () => {
    const collection = "agree";
    for (let user = 0; user < 60; user++) {
      const face = randomUnit(user + 1);
      await exact.addFace(collection, `u${user}`, storedFace(face), undefined);
      if (user % 3 === 0) await exact.addFace(collection, `u${user}`, storedFace(near(face, 1000 + user, 0.3)), undefined);
    }
    assert.equal(await memory.hold(collection), true);
    for (let probe = 0; probe < 20; probe++) {
      const query = near(randomUnit(probe * 3 + 1), 5000 + probe, 0.4);
      const [fromMemory, fromIndex] = [await exact.search(collection, query, 5), await indexed.search(collection, query, 5)];
      assert.deepEqual(names(fromMemory), names(fromIndex), `probe ${probe}`);
      for (const [i, hit] of fromMemory.entries()) {
        assert.ok(Math.abs(hit.distance - fromIndex[i].distance) < 1e-5, `distance ${hit.distance} vs ${fromIndex[i].distance}`);
        assert.deepEqual(hit.primary, fromIndex[i].primary);
      }
    }
    assert.equal(memory.size(collection), 80, "the answers above came from memory");
  });

  it("sees a face the moment its registration returns, and forgets deleted users and pruned faces", async () => {
    const collection = "changes";
    await exact.addFace(collection, "first", storedFace(vectorAt(0.3, 1)), undefined);
    assert.equal(await memory.hold(collection), true);
    assert.deepEqual(names(await exact.search(collection, vectorAt(0, 2), 1)), ["first"]);
    assert.equal(memory.size(collection), 1);

    await exact.addFace(collection, "second", storedFace(vectorAt(0.05, 2)), undefined);
    assert.deepEqual(names(await exact.search(collection, vectorAt(0, 2), 2)), ["second", "first"]);

    const [hit] = await exact.search(collection, vectorAt(0, 3), 1);
    assert.equal(await exact.addUpgradedFace(hit.primary!, storedFace(vectorAt(0.01, 3)), undefined, 0), true);
    assert.equal(memory.size(collection), 3, "the upgrade's face is held beside the registered ones");
    const upgraded = await exact.search(collection, vectorAt(0, 3), 1);
    assert.equal(upgraded[0].identifier, "second");
    assert.ok(upgraded[0].distance < 0.02, "the new primary face is what matched");

    await exact.deleteUser(collection, "second");
    assert.deepEqual(names(await exact.search(collection, vectorAt(0, 2), 2)), ["first"]);
    assert.equal(memory.size(collection), 1);
  });

  it("leaves out a user's negative examples and still fills the limit from further faces", async () => {
    const collection = "negatives";
    // A look-alike with more faces close to the query than one round of candidates holds.
    for (let i = 0; i < 12; i++) await exact.addFace(collection, "look-alike", storedFace(vectorAt(0.05, 10 + i)), undefined);
    await exact.addFace(collection, "right", storedFace(vectorAt(0.2, 100)), undefined);
    assert.equal(await memory.hold(collection), true);
    const query = vectorAt(0, 1);
    assert.deepEqual(names(await exact.search(collection, query, 1)), ["look-alike"]);
    assert.equal(await exact.addNegativeExample(collection, "look-alike", query, "test"), true);
    const hits = await exact.search(collection, query, 1);
    assert.deepEqual(names(hits), ["right"]);
    assert.ok(Math.abs(hits[0].distance - 0.2) < 1e-4);
    assert.equal(memory.size(collection), 13);
  });

  it("applies what it is told while a collection is read, once per face", async () => {
    const collection = "read-while-changed";
    await indexed.addFace(collection, "leaving", storedFace(vectorAt(0.2, 1)), undefined);
    await indexed.addFace(collection, "staying", storedFace(vectorAt(0.3, 1)), undefined);
    const ids: { id: string | number }[] = await database.knex("faces").where({ collection }).select("id");
    const [leaving, staying] = ids.map((r) => Number(r.id)).sort((a, b) => a - b);
    const reading = memory.hold(collection);
    // Told while the read is under way: a registration that committed meanwhile (a face the read
    // also finds, and one it does not), and a deletion.
    memory.added(collection, staying, vectorAt(0.3, 1));
    memory.added(collection, 999_999, vectorAt(0.01, 1));
    memory.removed(collection, [leaving]);
    assert.equal(await reading, true);
    assert.equal(memory.size(collection), 2);
    assert.deepEqual(await memory.nearest(collection, vectorAt(0, 1), 5), [999_999, staying]);
  });

  it("searches a collection that does not fit through the index, with the same answer", async () => {
    const small = createMemoryGallery(database.knex, { maxFaces: 10, findNearest: createFindNearest() });
    const store = createIdentityStore(database.knex, images, { negativeMaxDistance: 0.1, runSearch: database.runSearch, memory: small });
    const collection = "too-large";
    for (let user = 0; user < 12; user++) await store.addFace(collection, `u${user}`, storedFace(randomUnit(700 + user)), undefined);
    const query = near(randomUnit(705), 1, 0.3);
    assert.equal(await small.hold(collection), false);
    assert.deepEqual(names(await store.search(collection, query, 3)), names(await indexed.search(collection, query, 3)));
    assert.equal(small.size(collection), undefined);
    assert.equal(names(await store.search(collection, query, 1))[0], "u5");
    // Registered while held, a collection that outgrows the budget is let go, not left half held.
    const growing = "grows";
    for (let user = 0; user < 8; user++) await store.addFace(growing, `g${user}`, storedFace(randomUnit(800 + user)), undefined);
    assert.equal(await small.hold(growing), true);
    assert.equal(small.size(growing), 8);
    for (let user = 8; user < 12; user++) await store.addFace(growing, `g${user}`, storedFace(randomUnit(800 + user)), undefined);
    assert.equal(small.size(growing), undefined);
    assert.equal(names(await store.search(growing, randomUnit(811), 1))[0], "g11");
  });

  it("follows an embedding replaced by re-embedding", async () => {
    const collection = "reembedded";
    for (let user = 0; user < 20; user++) await exact.addFace(collection, `r${user}`, storedFace(randomUnit(600 + user)), undefined);
    assert.equal(await memory.hold(collection), true);
    // Opposite to r7's face as registered: before the replacement, the farthest face of all.
    const query = randomUnit(607).map((x) => -x);
    const stale = createStaleFaces(database.knex, memory);
    const { id } = await database.knex("faces as f").join("users as u", "u.id", "f.user_id").where({ "u.collection": collection, "u.identifier": "r7" }).first("f.id");
    const [moved] = await stale.batch("the next model", Number(id) - 1, 1);
    await stale.replace(moved, near(query, 2, 0.1), "the next model");
    const [hit] = await exact.search(collection, query, 1);
    assert.equal(hit.identifier, "r7");
    assert.deepEqual(await exact.search(collection, query, 1), await indexed.search(collection, query, 1));
  });

  it("reads the collections that fit at start, largest first", async () => {
    const started = createMemoryGallery(database.knex, { maxFaces: 100, findNearest: createFindNearest() });
    assert.deepEqual(await started.holdAll(), { collections: 2, faces: 100 });
    assert.equal(started.size("agree"), 80);
    assert.equal(started.size("reembedded"), 20, "the next largest that still fits");
    assert.equal(started.size("negatives"), undefined, "13 faces did not fit beside them");
    const roomy = createMemoryGallery(database.knex, { maxFaces: 10_000, findNearest: createFindNearest() });
    await roomy.holdAll();
    assert.equal(roomy.size("agree"), 80);
  });

  it("forgets a deleted collection, and a new one of the same name starts empty", async () => {
    const collections = createCollectionStore(database.knex, images, [memory]);
    const collection = "dropped";
    await exact.addFace(collection, "old", storedFace(vectorAt(0.1, 1)), undefined);
    assert.equal(await memory.hold(collection), true);
    assert.deepEqual(names(await exact.search(collection, vectorAt(0, 1), 1)), ["old"]);
    await collections.delete(collection);
    assert.deepEqual(await exact.search(collection, vectorAt(0, 1), 1), []);
    await exact.addFace(collection, "new", storedFace(vectorAt(0.4, 1)), undefined);
    assert.deepEqual(names(await exact.search(collection, vectorAt(0, 1), 5)), ["new"]);
  });

  it("answers searches overlapping deletions, and no later search finds a deleted user", async () => {
    const collection = "deleted-while-searched";
    for (let user = 0; user < 30; user++) await exact.addFace(collection, `d${user}`, storedFace(randomUnit(900 + user)), undefined);
    assert.equal(await memory.hold(collection), true);
    const overlapping: Promise<unknown>[] = [];
    for (let user = 0; user < 30; user++) {
      overlapping.push(exact.search(collection, randomUnit(900 + user), 3));
      if (user % 2 === 0) overlapping.push(exact.deleteUser(collection, `d${user}`));
    }
    await Promise.all(overlapping);
    for (let user = 0; user < 30; user++) {
      const [hit] = await exact.search(collection, randomUnit(900 + user), 1);
      assert.equal(hit.identifier === `d${user}`, user % 2 === 1, `d${user}`);
    }
    assert.equal(memory.size(collection), 15);
  });
});

/** The service as it runs: on PGlite it holds the default collection and sees what it registers. */
describe("the service's gallery in memory", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  it("holds a collection on the embedded database, not on a server, and finds a person registered after", async () => {
    await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    const memory = server.database.memory;
    if (server.database.kind === "postgres") {
      assert.equal(memory, undefined, "other replicas write to a server: nothing is held");
      return;
    }
    assert.equal(await memory!.hold("default"), true);
    await client.register({ identifier: "biden", image: face("face_recognition/biden.jpg") });
    assert.equal(memory!.size("default"), 2, "the registration was told");
    const answer = await client.recognize({ image: face("face_recognition/biden2.jpg") });
    assert.equal(answer.identifier, "biden");
    await client.deleteUser({ identifier: "biden" });
    assert.equal(memory!.size("default"), 1);
    assert.equal((await client.recognize({ image: face("face_recognition/biden2.jpg") })).matched, false);
  });

  it("holds nothing with FACE_EXACT_SEARCH_MAX_FACES=0", async () => {
    const off = await startTestServer({ FACE_EXACT_SEARCH_MAX_FACES: "0" });
    try {
      assert.equal(off.database.memory, undefined);
    } finally {
      await off.close();
    }
  });
});
