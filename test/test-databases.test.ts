/**
 * The suite's own footprint on a PostgreSQL server: a test process drops the databases it created
 * when it exits, also when it exits with connections to them still open.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { test } from "node:test";
import pg from "pg";
import { describeUnless } from "./support/suite.js";

/** A test process in miniature: two fresh databases, a connection left open to one, then exit. */
const CHILD = `
import pg from "pg";
import { freshDatabase } from "./test/support/test-databases.ts";
const admin = process.env.TEST_DATABASE_URL;
const urls = [await freshDatabase(admin), await freshDatabase(admin)];
const open = new pg.Client({ connectionString: urls[1] });
await open.connect();
console.log(JSON.stringify(urls.map((u) => new URL(u).pathname.slice(1))));
process.exit(0);
`;

describeUnless(process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL (a PostgreSQL server; .ci/run starts one)", "the test suite's databases", () => {
  test("a test process drops the databases it created when it exits, with a connection still open to one", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", CHILD], { timeout: 60_000 });
    const names = JSON.parse(stdout) as string[];
    assert.equal(names.length, 2);
    const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query("SELECT datname FROM pg_database WHERE datname = ANY($1)", [names]);
      assert.deepEqual(rows, [], "no database of the exited process is left");
    } finally {
      await admin.end();
    }
  });
});
