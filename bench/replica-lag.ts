/**
 * How soon a commit on the primary is visible on a streaming replica: a local primary and hot
 * standby (test/support/replicated-postgres.ts, as the read-replica test makes them), 200 inserts
 * of a 512-dimension row, each followed by reading it on the standby until it is there.
 *
 *   npm run bench:replica-lag      (needs PostgreSQL 15 with pgvector: .ci/postgres-with-pgvector.sh)
 */
import { startReplicatedPostgres } from "../test/support/replicated-postgres.js";
import pg from "pg";
import { percentile } from "./table.js";
const p = await startReplicatedPostgres();
try {
  const primary = new pg.Client({ connectionString: p.primaryUrl }); await primary.connect();
  const replica = new pg.Client({ connectionString: p.replicaUrl }); await replica.connect();
  await primary.query("CREATE TABLE t (id int primary key, v vector(512))");
  await p.caughtUp();
  const lags: number[] = [];
  const vec = "[" + Array.from({ length: 512 }, () => Math.random().toFixed(4)).join(",") + "]";
  for (let i = 0; i < 200; i++) {
    await primary.query("INSERT INTO t VALUES ($1, $2)", [i, vec]);
    const start = performance.now();
    for (;;) { const r = await replica.query("SELECT 1 FROM t WHERE id = $1", [i]); if (r.rowCount) break; }
    lags.push(performance.now() - start);
  }
  console.log("visible on the replica after commit: p50", percentile(lags, 50).toFixed(2), "ms p99", percentile(lags, 99).toFixed(2), "max", Math.max(...lags).toFixed(2));
  await primary.end(); await replica.end();
} finally { p.close(); }
