import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { runPlanned } from "../src/store/planned-statement.js";
import { vectorParam } from "../src/store/vector-param.js";
import { openTestDatabase } from "./support/server.js";

/**
 * runPlanned, the search's check statement planned once on PGlite, on the test database (PGlite,
 * or the PostgreSQL server of TEST_DATABASE_URL, where it runs as knex.raw).
 */
describe("statements planned once", () => {
  let database: Awaited<ReturnType<typeof openTestDatabase>>;
  const STATEMENT = `SELECT t.id, t.name, t.v <=> ?::vector AS distance, ?::text AS echoed
                       FROM planned_rows t WHERE t.id = ANY(?::bigint[]) AND t.score <= ? ORDER BY t.id`;
  const bindings = (ids: number[], maxScore: number, echoed: string | null = "e") => [vectorParam(new Float32Array([1, 0, 0])), echoed, `{${ids.join(",")}}`, maxScore];

  before(async () => {
    database = await openTestDatabase();
    await database.knex.raw("CREATE TABLE planned_rows (id bigint PRIMARY KEY, name text, v vector(3), score float8)");
    await database.knex.raw(`INSERT INTO planned_rows SELECT i, 'row ' || i, ARRAY[cos(i), sin(i), 0]::vector, i / 10.0 FROM generate_series(1, 200) i`);
  });
  after(() => database.dispose());

  it("answers as knex.raw does, to the last digit, with every parameter type and a null", async () => {
    for (const [ids, maxScore, echoed] of [[[1, 2, 3], 10, "e"], [[5, 150, 7, 199, 200], 15.5, null], [[], 1, "x"], [Array.from({ length: 120 }, (_, i) => i + 1), 100, "many"]] as const) {
      const args = bindings([...ids], maxScore, echoed);
      assert.deepEqual(await runPlanned(database.knex, STATEMENT, args), (await database.knex.raw(STATEMENT, args)).rows);
    }
  });

  it("is planned once on PGlite, and the generic plans it forces stay inside its own calls", async () => {
    for (let i = 0; i < 12; i++) await runPlanned(database.knex, STATEMENT, bindings([i + 1, i + 2], 5));
    assert.equal((await database.knex.raw("SHOW plan_cache_mode")).rows[0].plan_cache_mode, "auto");
    if (database.kind !== "pglite") return;
    const { rows } = await database.knex.raw("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%planned_rows%'");
    assert.equal(rows.length, 1, "prepared once, under one name");
    assert.equal(Number(rows[0].custom_plans), 0);
    assert.ok(Number(rows[0].generic_plans) >= 12, JSON.stringify(rows));
  });

  it("fails a call with a bad value clearly, and leaves nothing behind for the next", async () => {
    await assert.rejects(runPlanned(database.knex, STATEMENT, [vectorParam(new Float32Array([1, 0, 0])), "e", "{1,not-a-number}", 1]), /invalid input syntax/);
    assert.equal((await database.knex.raw("SHOW plan_cache_mode")).rows[0].plan_cache_mode, "auto");
    assert.equal((await runPlanned(database.knex, STATEMENT, bindings([4], 1))).length, 1);
    await database.knex.transaction(async (trx) => {
      await trx.raw("UPDATE planned_rows SET name = 'in a transaction' WHERE id = 4");
      assert.equal((await runPlanned(trx, STATEMENT, bindings([4], 1)))[0].name, "in a transaction", "inside a transaction it reads that transaction");
      throw new Error("roll back");
    }).catch(() => {});
    assert.equal((await runPlanned(database.knex, STATEMENT, bindings([4], 1)))[0].name, "row 4");
  });

  it("never reads inside another caller's open transaction: a row being deleted is there until the deletion commits", async () => {
    let deleted!: () => void;
    const deleting = database.knex.transaction(async (trx) => {
      await trx.raw("DELETE FROM planned_rows WHERE id = 9");
      await new Promise<void>((resolve) => (deleted = resolve));
      throw new Error("roll back");
    }).catch(() => {});
    while (deleted === undefined) await delay(5);
    const reading = runPlanned(database.knex, STATEMENT, bindings([9], 1));
    await delay(50);
    deleted();
    await deleting;
    assert.deepEqual((await reading).map((r) => r.name), ["row 9"], "the deletion was rolled back");
  });
});
