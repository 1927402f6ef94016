import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Knex } from "knex";
import { createCollectionStore, type CollectionStore } from "../src/store/collections.js";
import { migrate } from "../src/store/database.js";
import { createIdentityStore, type IdentityStore } from "../src/store/identities.js";
import { openStoredImages } from "../src/store/open-stored-images.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { storedFace, vectorAt } from "./support/vectors.js";

/** Each collection's number of users, as ListCollections reports it, on both databases. */
describe("collection user counts", () => {
  let server: TestServer;
  let store: IdentityStore;
  let collections: CollectionStore;
  before(async () => {
    server = await startTestServer();
    const { images } = await openStoredImages(server.database, server.dataDir);
    store = createIdentityStore(server.database.knex, images, { negativeMaxDistance: 0.1, runSearch: (work) => server.database.runSearch(work) });
    collections = createCollectionStore(server.database.knex, images);
  });
  after(() => server.close());

  const listed = async (name: string) => (await collections.list(1_000, "")).find((c) => c.name === name)?.users;
  const counted = async (name: string) => Number((await server.database.knex("users").where({ collection: name }).count({ n: "*" }))[0].n);
  let face = 0;
  const add = (collection: string, identifier: string) => store.addFace(collection, identifier, storedFace(vectorAt(0.1, 10 + (face++ % 200))), undefined);

  it("lists collections without reading their users", async () => {
    await add("listed", "someone");
    const statements: string[] = [];
    const record = (query: { sql: string }) => statements.push(query.sql);
    server.database.knex.on("query", record);
    try {
      assert.equal(await listed("listed"), 1);
    } finally {
      server.database.knex.off("query", record);
    }
    assert.ok(statements.length > 0);
    for (const sql of statements) assert.doesNotMatch(sql, /"users"/, sql);
  });

  it("counts new users only: not a second face, not a user registered twice", async () => {
    await collections.create("faces");
    assert.equal(await listed("faces"), 0);
    await add("faces", "ann");
    await add("faces", "ann");
    await add("faces", "bob");
    assert.equal(await listed("faces"), 2);
    assert.ok(await store.deleteUser("faces", "ann"));
    assert.equal(await store.deleteUser("faces", "ann"), undefined);
    assert.equal(await listed("faces"), 1);
    assert.equal(await listed("default"), await counted("default"), "another collection's count is untouched");
  });

  it("keeps the count under concurrent registrations and deletions of the same users", async () => {
    const collection = "busy";
    for (let round = 0; round < 10; round++) {
      const results = await Promise.allSettled([
        ...Array.from({ length: 6 }, (_, i) => add(collection, `person-${i}`)),
        ...Array.from({ length: 3 }, (_, i) => store.deleteUser(collection, `person-${2 * i}`)),
        add(collection, "person-1"),
      ]);
      for (const r of results) assert.equal(r.status, "fulfilled", r.status === "rejected" ? String(r.reason) : "");
      assert.equal(await listed(collection), await counted(collection), `round ${round}`);
    }
  });

  it("lets registrations in one collection commit side by side", { skip: process.env.TEST_DATABASE_URL ? false : "needs a PostgreSQL server (TEST_DATABASE_URL; .ci/run starts one): PGlite has one connection" }, async () => {
    const { knex } = server.database;
    await collections.create("side-by-side");
    const shardOf = async (trx: Knex.Transaction) => Number((await trx.raw("SELECT pg_backend_pid() % 16 AS shard")).rows[0].shard);
    const open: Knex.Transaction[] = [];
    try {
      // A user added and not yet committed, as a registration holds it until its commit.
      const first = await knex.transaction();
      open.push(first);
      await first.raw("INSERT INTO users (collection, identifier) VALUES ('side-by-side', 'first')");
      // Another server process, whose counts row is another one (server process ids are not chosen:
      // connections are opened until one differs).
      let second = await knex.transaction();
      open.push(second);
      while ((await shardOf(second)) === (await shardOf(first))) open.push((second = await knex.transaction()));
      await second.raw("SET LOCAL lock_timeout = '2s'");
      await second.raw("INSERT INTO users (collection, identifier) VALUES ('side-by-side', 'second')");
      await second.commit();
      await first.commit();
    } finally {
      for (const trx of open) if (!trx.isCompleted()) await trx.rollback();
    }
    assert.equal(await listed("side-by-side"), 2);
  });

  it("reports the users a deleted collection had, and lists it no more", async () => {
    for (const identifier of ["a", "b", "c"]) await add("doomed", identifier);
    assert.deepEqual(await collections.delete("doomed"), { users: 3, images: 0 });
    assert.equal(await listed("doomed"), undefined);
    await add("doomed", "again");
    assert.equal(await listed("doomed"), 1, "recreated by a registration, it counts from zero");
  });

  it("refuses to move a user to another collection (the counts would go wrong)", async () => {
    await add("stays", "put");
    await assert.rejects(server.database.knex("users").where({ collection: "stays" }).update({ collection: "default" }), /cannot move/);
    assert.equal(await listed("stays"), 1);
  });

  it("counts the users already there when the migration runs", async () => {
    const { knex } = server.database;
    // The database as it was before migration 009, with users in it.
    await knex.raw("DROP TRIGGER users_counted_on_insert ON users");
    await knex.raw("DROP TRIGGER users_counted_on_delete ON users");
    await knex.raw("DROP TRIGGER users_stay_in_their_collection ON users");
    await knex.raw("DROP FUNCTION count_added_users, count_removed_users, refuse_collection_change");
    await knex.raw("DROP TABLE collection_user_counts");
    await knex("knex_migrations").where({ name: "009_collection_user_counts.sql" }).delete();
    for (const identifier of ["x", "y"]) await knex.raw("INSERT INTO users (collection, identifier) VALUES ('default', ?)", [identifier]);
    assert.deepEqual(await migrate(knex), ["009_collection_user_counts.sql"]);
    for (const { name } of await knex("collections").select("name")) assert.equal(await listed(name), await counted(name), name);
    assert.ok((await listed("default"))! >= 2);
  });
});
