/**
 * Every similarity search runs with its settings: in PGlite's single session, and on each pooled
 * connection to a server (TEST_DATABASE_URL), where they are set per transaction (test/pgbouncer
 * covers a pooler in front).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openDatabase } from "../src/store/database.js";
import { vectorParam } from "../src/store/vector-param.js";
import { freshDatabase } from "./support/test-databases.js";

test("a search runs with hnsw.ef_search and iterative scans, on every connection", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "face-db-test-"));
  const databaseUrl = process.env.TEST_DATABASE_URL ? await freshDatabase(process.env.TEST_DATABASE_URL) : undefined;
  const database = await openDatabase({ databaseUrl, dataDir, hnswEfSearch: 77 });
  try {
    // Concurrent queries that hold their connection a moment: a server pool opens one connection each.
    const sleep = database.kind === "postgres" ? ", pg_sleep(0.2)" : "";
    const sessions = await Promise.all(
      Array.from({ length: 3 }, () =>
        database.runSearch((db) => db.raw(`SELECT pg_backend_pid() AS pid, current_setting('hnsw.ef_search') AS ef, current_setting('hnsw.iterative_scan') AS scan${sleep}`)),
      ),
    );
    const rows = sessions.map((s) => s.rows[0] as { pid: number; ef: string; scan: string });
    if (database.kind === "postgres") assert.equal(new Set(rows.map((r) => r.pid)).size, 3, "three pooled connections");
    for (const row of rows) assert.deepEqual([row.ef, row.scan], ["77", "relaxed_order"]);
  } finally {
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("embeddings travel in pgvector's binary form and arrive exactly, beside vectors sent as text", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "face-db-test-"));
  const databaseUrl = process.env.TEST_DATABASE_URL ? await freshDatabase(process.env.TEST_DATABASE_URL) : undefined;
  const database = await openDatabase({ databaseUrl, dataDir });
  try {
    // Values no short decimal text holds exactly, the extremes of float4 and a negative zero.
    const embedding = new Float32Array(512).map((_, i) => Math.fround(Math.sin(i + 0.1) / 3));
    const extremes = embedding.slice();
    extremes.set([3.4028234663852886e38, -1.1754943508222875e-38, -0], 0);
    const { rows } = await database.knex.raw("SELECT ?::vector::text AS sent, vector_dims(?::vector) AS dims, ?::vector <=> ?::vector AS distance", [
      vectorParam(extremes),
      vectorParam(extremes),
      vectorParam(embedding),
      `[${Array.from(embedding).join(",")}]`,
    ]);
    const row = rows[0] as { sent: string; dims: number; distance: number | string };
    assert.deepEqual(Float32Array.from(JSON.parse(row.sent) as number[]), extremes);
    assert.equal(Number(row.dims), 512);
    assert.equal(Number(row.distance), 0, "the text form of the same vector is the same vector");
  } finally {
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
