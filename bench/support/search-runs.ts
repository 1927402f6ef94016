/** The runs behind bench/search.ts and the search rows of bench/service.ts. */
import type { Knex } from "knex";
import pgvector from "pgvector";
import { loadConfig } from "../../src/config.js";
import { openStoredImages } from "../../src/store/open-stored-images.js";
import { createIdentityStore } from "../../src/store/identities.js";
import { openDatabase } from "../../src/store/database.js";
import { openGallery, place, BENCH_DATA_DIR, type GalleryTarget } from "./galleries.js";
import { probeNear, sampleUsers } from "./gallery.js";
import { percentile } from "../table.js";

export const PROBES = Number(process.env.BENCH_SEARCH_PROBES ?? 100);
/**
 * How far a probe (another photo of an enrolled user) lies from the enrolled face, as cosine
 * distance. Typical: the mean over same-person pairs of the labelled photos (`npm run
 * bench:embeddings`: similarity 0.687, so distance 0.31). Hard: 1.6 standard deviations further,
 * the far end of those pairs.
 */
export const PROBE_DISTANCES = { typical: 0.31, hard: 0.5 } as const;
/** Gallery sizes to measure (BENCH_SEARCH_SIZES=10000,100000 leaves out the million, whose seed takes an hour). */
const SIZES = process.env.BENCH_SEARCH_SIZES?.split(",").map(Number);
const config = loadConfig();

export interface SearchTarget {
  target: GalleryTarget;
  sizes: number[];
  maintenanceWorkMem: string;
}

/** PGlite always; the PostgreSQL server of BENCH_DATABASE_URL when set. */
export function searchTargets(): SearchTarget[] {
  const targets: SearchTarget[] = [{ target: { kind: "pglite" }, sizes: [10_000, 100_000], maintenanceWorkMem: "1GB" }];
  if (process.env.BENCH_DATABASE_URL) {
    targets.push({ target: { kind: "postgres", serverUrl: process.env.BENCH_DATABASE_URL }, sizes: [10_000, 100_000, 1_000_000], maintenanceWorkMem: "4GB" });
  }
  return targets.map((t) => ({ ...t, sizes: t.sizes.filter((size) => SIZES === undefined || SIZES.includes(size)) }));
}

export type Row = Record<string, string | number>;

/** The ef_search column of a search measured in the memory gallery, which has none. */
export const EXACT_IN_MEMORY = "exact, in memory";

/** Whether a table or index of that name exists. */
export async function relationExists(knex: Knex, name: string): Promise<boolean> {
  return (await knex.raw("SELECT to_regclass(?) AS t", [name])).rows[0].t !== null;
}

/**
 * Reads `relations` into PostgreSQL's buffer cache: searches are measured warm, as a serving
 * database is (the exact scans that find each probe's answer push the indexes out).
 */
export async function prewarm(knex: Knex, ...relations: string[]): Promise<void> {
  await knex.raw("CREATE EXTENSION IF NOT EXISTS pg_prewarm");
  for (const relation of relations) await knex.raw("SELECT pg_prewarm(?)", [relation]);
}

/** The user of the exact nearest face: a sequential (or bitmap) scan, no approximate index. */
async function exactTop1(knex: Knex, table: string, collection: string, probe: Float32Array): Promise<string> {
  return knex.transaction(async (trx) => {
    await trx.raw("SET LOCAL enable_indexscan = off");
    const result = await trx.raw(
      `SELECT user_id FROM ${table} WHERE collection = ? ORDER BY embedding <=> ?::vector LIMIT 1`,
      [collection, pgvector.toSql(Array.from(probe))],
    );
    return String(result.rows[0].user_id);
  });
}

/**
 * Every user of the collection, identifier to id: a search's answer is compared with the exact one
 * by id, and for a hard probe the exact nearest user is often not the one the probe was made from.
 */
async function userIds(knex: Knex, collection: string): Promise<Map<string, string>> {
  const rows = await knex("users").where({ collection }).select("id", "identifier");
  return new Map(rows.map((r: { id: number; identifier: string }) => [r.identifier, String(r.id)]));
}

/**
 * Times `search` on every probe (after ten warm-up calls) and compares its top-1 user id with the
 * exact one: p50, p95 and recall@1 columns.
 */
export async function measure<P>(probes: P[], exact: string[], search: (probe: P, timed: boolean) => Promise<string | undefined>): Promise<Row> {
  for (const p of probes.slice(0, 10)) await search(p, false);
  const ms: number[] = [];
  let agree = 0;
  for (const [i, p] of probes.entries()) {
    const start = performance.now();
    const top = await search(p, true);
    ms.push(performance.now() - start);
    if (top === exact[i]) agree++;
  }
  return { "p50 ms": percentile(ms, 50).toFixed(2), "p95 ms": percentile(ms, 95).toFixed(2), "recall@1": (agree / probes.length).toFixed(3) };
}

/** Probes of one kind (PROBE_DISTANCES) with the exact top-1 user of each. */
export interface ProbeKind {
  kind: string;
  probes: { identifier: string; probe: Float32Array }[];
  exact: string[];
}

/**
 * PROBES enrolled users of `collection`, each moved to every distance of PROBE_DISTANCES, with the
 * exact answer for each probe from a scan of `table`.
 */
export async function probeKinds(knex: Knex, table: string, collection: string): Promise<ProbeKind[]> {
  const samples = await sampleUsers(knex, collection, PROBES);
  const kinds: ProbeKind[] = [];
  for (const [kind, distance] of Object.entries(PROBE_DISTANCES)) {
    const probes = samples.map((s) => ({ ...s, probe: probeNear(s.embedding, distance) }));
    const exact: string[] = [];
    for (const p of probes) exact.push(await exactTop1(knex, table, collection, p.probe));
    kinds.push({ kind: `${kind} (${distance})`, probes, exact });
  }
  return kinds;
}

/**
 * The service's search query on one gallery, for several ef_search values: one row per value and
 * probe kind (typical and hard second photos, see PROBE_DISTANCES).
 */
export async function gallerySearch(target: GalleryTarget, size: number, maintenanceWorkMem: string, efSearchValues: number[]): Promise<Row[]> {
  const collection = "default";
  const name = `gallery-${size}`;
  const database = await openGallery(target, name, size, [collection], maintenanceWorkMem);
  let kinds: ProbeKind[];
  let ids: Map<string, string>;
  try {
    kinds = await probeKinds(database.knex, "faces", collection);
    ids = await userIds(database.knex, collection);
    if (target.kind === "postgres") await prewarm(database.knex, "faces_embedding_hnsw", "faces");
  } finally {
    await database.close();
  }
  const rows: Row[] = [];
  // ef_search is a setting of the service's connections, so each value gets its own handle. On
  // PGlite, a gallery the service would hold in memory (FACE_EXACT_SEARCH_MAX_FACES) is measured
  // that way too: "exact, in memory" (store/memory-gallery.ts), with no ef_search.
  const ways: { efSearch: number; label: string | number; inMemory: boolean }[] = efSearchValues.map((efSearch) => ({ efSearch, label: efSearch === config.hnswEfSearch ? `${efSearch} (default)` : efSearch, inMemory: false }));
  if (target.kind === "pglite" && size <= config.exactSearchMaxFaces) ways.push({ efSearch: config.hnswEfSearch, label: EXACT_IN_MEMORY, inMemory: true });
  for (const { efSearch, label, inMemory } of ways) {
    const searching = await openDatabase({ ...place(target, name), hnswEfSearch: efSearch, exactSearchMaxFaces: inMemory ? size : 0 });
    try {
      const store = createIdentityStore(searching.knex, (await openStoredImages(searching, `${BENCH_DATA_DIR}/no-images`)).images, { negativeMaxDistance: config.negativeMaxDistance, runSearch: (work) => searching.runSearch(work), memory: searching.memory });
      // Measured once held: until then (about a second at 10k) searches go to the index.
      if (inMemory && !(await searching.memory!.hold(collection))) throw new Error(`the ${size}-face gallery was not read into memory`);
      for (const { kind, probes, exact } of kinds) {
        const columns = await measure(probes, exact, async (p) => {
          const [hit] = await store.search(collection, p.probe, 1);
          return hit === undefined ? undefined : ids.get(hit.identifier);
        });
        rows.push({ database: target.kind, faces: size, ef_search: label, "probes at distance": kind, ...columns });
      }
    } finally {
      await searching.close();
    }
  }
  return rows;
}

/**
 * The same top-4 query run six ways over 100k faces in 100 collections of 1k: it is what the
 * service asks before grouping faces by user.
 */
export async function collectionStrategies(target: GalleryTarget, maintenanceWorkMem: string): Promise<Row[]> {
  const collections = Array.from({ length: 100 }, (_, i) => `site-${i}`);
  const database = await openGallery(target, "collections-100x1000", 100_000, collections, maintenanceWorkMem);
  const knex = database.knex;
  try {
    await preparePartitionsAndPartialIndexes(knex, collections, maintenanceWorkMem);
    const probes = await Promise.all(
      Array.from({ length: PROBES }, async (_, i) => {
        const collection = collections[(i * 37) % collections.length];
        const [sample] = await sampleUsers(knex, collection, 1);
        return { collection, probe: probeNear(sample.embedding, PROBE_DISTANCES.hard) };
      }),
    );
    const exact: string[] = [];
    for (const p of probes) exact.push(await exactTop1(knex, "faces", p.collection, p.probe));

    const query = (table: string) => `SELECT user_id FROM ${table} WHERE collection = ? ORDER BY embedding <=> ?::vector LIMIT 4`;
    // At 1k rows per collection the planner prefers the B-tree on `collection` and a sort (an exact
    // scan) to the HNSW index; enable_sort = off makes it take the HNSW index, to measure that too.
    const ef = `SET LOCAL hnsw.ef_search = ${config.hnswEfSearch}`;
    const strategies: { name: string; settings: string[]; table: string }[] = [
      { name: "as planned: the service's settings, planner's choice", table: "faces", settings: [ef, "SET LOCAL hnsw.iterative_scan = relaxed_order"] },
      { name: "one HNSW index, filtered, iterative scan", table: "faces", settings: [ef, "SET LOCAL hnsw.iterative_scan = relaxed_order", "SET LOCAL enable_sort = off"] },
      { name: "one HNSW index, filtered, no iterative scan", table: "faces", settings: [ef, "SET LOCAL hnsw.iterative_scan = off", "SET LOCAL enable_sort = off"] },
      { name: "partial HNSW index per collection", table: "faces_by_partial_index", settings: [ef] },
      { name: "list partition per collection (HNSW each)", table: "faces_partitioned", settings: [ef] },
      { name: "exact: B-tree on collection, then sort", table: "faces", settings: ["SET LOCAL enable_indexscan = off"] },
    ];
    const rows: Row[] = [];
    for (const strategy of strategies) {
      const run = (collection: string, probe: Float32Array) =>
        knex.transaction(async (trx) => {
          for (const setting of strategy.settings) await trx.raw(setting);
          return (await trx.raw(query(strategy.table), [collection, pgvector.toSql(Array.from(probe))])).rows as { user_id: number }[];
        });
      let short = 0;
      const columns = await measure(probes, exact, async (p, timed) => {
        const result = await run(p.collection, p.probe);
        if (timed && result.length < 4) short++;
        return result.length > 0 ? String(result[0].user_id) : undefined;
      });
      const plan = await planOf(knex, strategy.settings, query(strategy.table), probes[0]);
      rows.push({ database: target.kind, strategy: strategy.name, plan, ...columns, "fewer than 4 rows": short });
    }
    return rows;
  } finally {
    await database.close();
  }
}

/** The index the planner used for a query ("seq scan" when none), from EXPLAIN. */
async function planOf(knex: Knex, settings: string[], sql: string, probe: { collection: string; probe: Float32Array }): Promise<string> {
  return knex.transaction(async (trx) => {
    for (const setting of settings) await trx.raw(setting);
    const explained = await trx.raw(`EXPLAIN ${sql}`, [probe.collection, pgvector.toSql(Array.from(probe.probe))]);
    const text = (explained.rows as Record<string, string>[]).map((r) => Object.values(r)[0]).join("\n");
    const index = /Index Scan using (\S+)/.exec(text)?.[1] ?? (/Bitmap Index Scan on (\S+)/.exec(text) ? `bitmap ${/Bitmap Index Scan on (\S+)/.exec(text)![1]}` : "seq scan");
    return index.replace(/^faces_partial_\d+$/, "faces_partial_<n>").replace(/^faces_partition_\d+_embedding_idx$/, "faces_partition_<n>_embedding_idx") + (/Sort/.test(text) ? " + sort" : "");
  });
}

/** Copies of the faces table laid out the two alternative ways, made once per gallery. */
async function preparePartitionsAndPartialIndexes(knex: Knex, collections: string[], maintenanceWorkMem: string): Promise<void> {
  await knex.raw(`SET maintenance_work_mem = '${maintenanceWorkMem}'`);
  if (!(await relationExists(knex, "faces_by_partial_index"))) {
    await knex.raw("CREATE TABLE faces_by_partial_index AS SELECT id, user_id, collection, embedding FROM faces");
    await knex.raw("CREATE INDEX ON faces_by_partial_index (collection)");
    for (const [i, collection] of collections.entries()) {
      await knex.raw(`CREATE INDEX faces_partial_${i} ON faces_by_partial_index USING hnsw (embedding vector_cosine_ops) WHERE collection = '${collection}'`);
    }
    await knex.raw("ANALYZE faces_by_partial_index");
  }
  if (!(await relationExists(knex, "faces_partitioned"))) {
    await knex.raw("CREATE TABLE faces_partitioned (id bigint, user_id bigint, collection text NOT NULL, embedding vector(512)) PARTITION BY LIST (collection)");
    for (const [i, collection] of collections.entries()) {
      await knex.raw(`CREATE TABLE faces_partition_${i} PARTITION OF faces_partitioned FOR VALUES IN ('${collection}')`);
    }
    await knex.raw("INSERT INTO faces_partitioned SELECT id, user_id, collection, embedding FROM faces");
    await knex.raw("CREATE INDEX ON faces_partitioned USING hnsw (embedding vector_cosine_ops)");
    await knex.raw("ANALYZE faces_partitioned");
  }
  await knex.raw("RESET maintenance_work_mem");
}

