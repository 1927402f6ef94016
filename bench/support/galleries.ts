/**
 * Seeded benchmark databases, kept between runs: building an HNSW index over 100k rows takes minutes
 * on PGlite, over 1M rows a quarter of an hour on PostgreSQL. PGlite galleries live in
 * bench/.data/, server galleries in databases named face_bench_<size> next to BENCH_DATABASE_URL's.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import knexFactory from "knex";
import { openDatabase, type Database } from "../../src/store/database.js";
import { seedSyntheticUsers, SYNTHETIC_DIMENSIONS, withIndexRebuiltAfter } from "./gallery.js";

export const BENCH_DATA_DIR = fileURLToPath(new URL("../.data", import.meta.url));

export interface GalleryTarget {
  kind: "pglite" | "postgres";
  /** Server URL of some database on the server; galleries get their own databases beside it. */
  serverUrl?: string;
}

/**
 * The data directory of a PGlite gallery (what FACE_DATA_DIR would be). The name records how the
 * embeddings were made, so a change of recipe seeds afresh.
 */
export function pgliteGalleryDir(name: string): string {
  return join(BENCH_DATA_DIR, `pglite-${name}-d${SYNTHETIC_DIMENSIONS}`);
}

/** A database name or directory for one gallery layout. */
export function place(target: GalleryTarget, name: string): { databaseUrl: string | undefined; dataDir: string } {
  if (target.kind === "pglite") return { databaseUrl: undefined, dataDir: pgliteGalleryDir(name) };
  const url = new URL(target.serverUrl!);
  url.pathname = `/face_bench_${`${name}-d${SYNTHETIC_DIMENSIONS}`.replace(/[^a-z0-9]/g, "_")}`;
  return { databaseUrl: url.toString(), dataDir: join(BENCH_DATA_DIR, "unused") };
}

async function ensureServerDatabase(serverUrl: string, databaseUrl: string): Promise<void> {
  const admin = knexFactory({ client: "pg", connection: serverUrl, pool: { min: 0, max: 1 } });
  try {
    const name = new URL(databaseUrl).pathname.slice(1);
    const exists = await admin.raw("SELECT 1 FROM pg_database WHERE datname = ?", [name]);
    if (exists.rows.length === 0) await admin.raw(`CREATE DATABASE ${name}`);
  } finally {
    await admin.destroy();
  }
}

/**
 * Opens (seeding it first when needed) a database holding `size` synthetic users spread evenly over
 * the given collections. Seeding is logged to stderr with its duration.
 */
export async function openGallery(target: GalleryTarget, name: string, size: number, collections: string[], maintenanceWorkMem: string): Promise<Database> {
  const where = place(target, name);
  if (where.databaseUrl !== undefined) await ensureServerDatabase(target.serverUrl!, where.databaseUrl);
  const database = await openDatabase(where);
  const [{ n }] = (await database.knex.raw("SELECT count(*)::int AS n FROM faces WHERE model = 'synthetic'")).rows;
  if (n === size) return database;
  const start = performance.now();
  process.stderr.write(`seeding ${size} synthetic faces in ${collections.length} collection(s) on ${target.kind} (${name})... `);
  await database.knex.raw("TRUNCATE users, faces CASCADE");
  await withIndexRebuiltAfter(database.knex, maintenanceWorkMem, async () => {
    const perCollection = Math.ceil(size / collections.length);
    for (const [i, collection] of collections.entries()) {
      await seedSyntheticUsers(database.knex, collection, Math.min(perCollection, size - i * perCollection), i * perCollection);
    }
  });
  await database.knex.raw("VACUUM ANALYZE faces");
  await database.knex.raw("VACUUM ANALYZE users");
  process.stderr.write(`${((performance.now() - start) / 1000).toFixed(0)} s\n`);
  return database;
}
