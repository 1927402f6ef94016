import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, it } from "node:test";
import { openDatabase } from "../src/store/database.js";
import { pgbouncerMissing, startPgBouncer, type PgBouncer } from "./support/pgbouncer.js";
import { freshDatabase } from "./support/test-databases.js";
import { describeUnless } from "./support/suite.js";

/**
 * PgBouncer in transaction pooling mode, as deployments put it in front of PostgreSQL: each
 * transaction may run on another server connection, and nothing set on a connection stays.
 */
describeUnless(pgbouncerMissing(), "behind PgBouncer in transaction pooling mode", () => {
  let pooler: PgBouncer;
  let dataDir: string;
  before(async () => {
    // Every server connection is reset after every transaction (DISCARD ALL), as with
    // server_reset_query_always: a setting or lock made outside a transaction does not survive it.
    pooler = await startPgBouncer(process.env.TEST_DATABASE_URL!, { default_pool_size: 2, server_reset_query: "DISCARD ALL", server_reset_query_always: 1 });
    dataDir = await mkdtemp(join(tmpdir(), "face-pgbouncer-data-"));
  });
  after(async () => {
    await pooler?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("runs every search with its ef_search and iterative scans, however the pooler hands out connections", async () => {
    const name = new URL(await freshDatabase(process.env.TEST_DATABASE_URL!)).pathname.slice(1);
    const database = await openDatabase({ databaseUrl: pooler.url(name), dataDir, hnswEfSearch: 17 });
    try {
      const seen = await Promise.all(
        Array.from({ length: 20 }, () =>
          database.runSearch(async (db) => {
            const result = await db.raw("SELECT current_setting('hnsw.ef_search', true) AS ef_search, current_setting('hnsw.iterative_scan', true) AS iterative_scan");
            return result.rows[0] as { ef_search: string | null; iterative_scan: string | null };
          }),
        ),
      );
      for (const settings of seen) assert.deepEqual({ ...settings }, { ef_search: "17", iterative_scan: "relaxed_order" });
    } finally {
      await database.close();
    }
  });

  it("passes the search and webhook suites through the pooler", async () => {
    // The suites run as they do against the server, with every connection going through PgBouncer.
    const env: NodeJS.ProcessEnv = { ...process.env, TEST_DATABASE_URL: pooler.url(new URL(process.env.TEST_DATABASE_URL!).pathname.slice(1) || "postgres") };
    // Set by the test runner for its own child processes; a nested run must not see it.
    delete env.NODE_TEST_CONTEXT;
    const suites = ["test/identity-store.test.ts", "test/collections.test.ts", "test/webhooks.test.ts", "test/webhook-adversaries.test.ts"];
    const started = Date.now();
    const run = await promisify(execFile)(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=dot", ...suites], { env, maxBuffer: 16 * 1024 * 1024 }).then(
      () => ({ ok: true, output: "" }),
      (e: { stdout?: string; stderr?: string }) => ({ ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
    );
    assert.ok(run.ok, run.output.slice(-4000));
    assert.ok(Date.now() - started > 5_000, "the suites ran");
  });
});
