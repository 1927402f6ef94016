import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import knexFactory, { type Knex } from "knex";
import type { PGlite } from "@electric-sql/pglite";
import { lockDirectory } from "./directory-lock.js";
import { knexLog, type DriverLog } from "./driver-log.js";
import { relationBytesIn, sharedBuffersMbFor } from "./embedded-buffers.js";
import { openReadReplica } from "./read-replica.js";
import { ownerOnlyDirectory } from "./owner-only.js";
import { inSearchTransaction } from "./search-transaction.js";
import { createMemoryGallery, type MemoryGallery } from "./memory-gallery.js";
import { createUserRemovals, type UserRemovals } from "./user-removals.js";
import { createFindNearest } from "../runtime/nearest.js";

/** A knex handle on PostgreSQL with pgvector, embedded (PGlite) or a server. */
export interface Database {
  readonly knex: Knex;
  readonly kind: "pglite" | "postgres";
  /**
   * Runs a search (read only; it may see the data a moment behind) with hnsw.ef_search and
   * iterative scans in effect: on the read replica when there is one (DATABASE_READ_URL), on the
   * primary while the replica cannot answer. On a server the settings are made for the search's
   * transaction (SET LOCAL): behind a connection pooler in transaction mode (PgBouncer) each
   * transaction gets any server connection, so a setting made once per connection is lost (or left
   * behind for another client) as soon as the pooler moves on. PGlite is one session of its own:
   * set once when it opens.
   */
  runSearch<T>(work: (db: Knex) => Promise<T>): Promise<T>;
  /**
   * Small collections' faces held in memory for exact search (memory-gallery.ts): on PGlite only,
   * where this handle is the only writer, so every store writing faces through it can tell the
   * gallery (another process's new faces would never be told).
   */
  readonly memory: MemoryGallery | undefined;
  /**
   * Removals of users committed through this handle: on PGlite only, where it is the only writer,
   * so an unchanged count proves no user has gone (user-removals.ts). Every store removing users
   * through it must count them.
   */
  readonly userRemovals: UserRemovals | undefined;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** A PostgreSQL server; the embedded PGlite database in `dataDir` when undefined. */
  databaseUrl: string | undefined;
  /** A streaming replica of `databaseUrl`'s server that searches read from (runSearch). */
  databaseReadUrl?: string;
  /** Told when the read replica could not answer and searches went to the primary. */
  onReadReplicaUnavailable?: (error: Error) => void;
  /** The driver's own messages (knex's); their first lines on stderr when absent. */
  driverLog?: DriverLog;
  dataDir: string;
  /** hnsw.ef_search of every connection (pgvector's default when absent): candidates an HNSW scan keeps; more is slower and more exact. */
  hnswEfSearch?: number;
  /** PGlite: faces the memory gallery may hold (0 or absent: no gallery; the service passes FACE_EXACT_SEARCH_MAX_FACES). */
  exactSearchMaxFaces?: number;
}

/**
 * The similarity search's settings, as SET statements (`local`: for the current transaction only).
 * Iterative scans keep filtered HNSW searches from returning too few rows when the collection is a
 * small part of the index, and let a search ask for more rows than ef_search.
 */
function searchSettings(options: DatabaseOptions, local: boolean): string[] {
  const set = local ? "SET LOCAL" : "SET";
  const efSearch = options.hnswEfSearch === undefined ? [] : [`${set} hnsw.ef_search = ${Math.trunc(options.hnswEfSearch)}`];
  return [...efSearch, `${set} hnsw.iterative_scan = relaxed_order`];
}

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Opens the database and applies pending migrations. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const database = options.databaseUrl
    ? openServer(options, searchSettings(options, true))
    : await openEmbedded(options.dataDir, searchSettings(options, false), options.exactSearchMaxFaces ?? 0, options.driverLog);
  try {
    if (database.kind === "postgres") await migrateExclusively(database.knex);
    else await migrate(database.knex);
  } catch (e) {
    await database.close();
    throw e;
  }
  return database;
}

function openServer(options: DatabaseOptions, localSettings: string[]): Database {
  const knex = knexFactory({
    client: "pg",
    connection: { connectionString: options.databaseUrl, connectionTimeoutMillis: 5_000 },
    pool: { min: 0, max: 10 },
    // Fail fast when the server is down instead of queueing requests for a minute.
    acquireConnectionTimeout: 5_000,
    log: knexLog(options.driverLog),
  });
  const onPrimary = <T>(work: (db: Knex) => Promise<T>) => inSearchTransaction(knex, localSettings, work);
  const replica = options.databaseReadUrl === undefined
    ? undefined
    : openReadReplica(options.databaseReadUrl, localSettings, options.onReadReplicaUnavailable ?? (() => {}), options.driverLog);
  return {
    knex,
    kind: "postgres",
    memory: undefined,
    userRemovals: undefined,
    runSearch: (work) => (replica === undefined ? onPrimary(work) : replica.run(work, onPrimary)),
    async close() {
      await replica?.close();
      await knex.destroy();
    },
  };
}

async function openEmbedded(dataDir: string, settings: string[], exactSearchMaxFaces: number, driverLog: DriverLog | undefined): Promise<Database> {
  const [{ PGlite }, { vector }, { default: ClientPgLite }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-pgvector"),
    import("knex-pglite"),
  ]);
  const directory = join(dataDir, "pgdata");
  await ownerOnlyDirectory(directory);
  const lock = await lockDirectory(`${directory}.lock`, `The embedded database in ${directory}`);
  const sharedBuffersMb = sharedBuffersMbFor(await relationBytesIn(directory));
  const pglite = await PGlite.create({
    dataDir: directory,
    extensions: { vector },
    startParams: [...PGlite.defaultStartParams, "-c", `shared_buffers=${sharedBuffersMb}MB`],
  }).catch(async (e: unknown) => {
    await lock.release();
    throw e;
  });
  // PGlite is one session: set once.
  for (const setting of settings) await pglite.exec(setting);
  await passVectorBytesThrough(pglite);
  const knex = knexFactory({
    client: ClientPgLite,
    dialect: "postgres",
    connection: () => ({ pglite }) as object,
    log: knexLog(driverLog),
  } as Knex.Config);
  // knex.destroy() closes the PGlite instance it was given.
  const memory = exactSearchMaxFaces > 0 ? createMemoryGallery(knex, { maxFaces: exactSearchMaxFaces, findNearest: createFindNearest() }) : undefined;
  const close = async () => {
    await knex.destroy();
    await lock.release();
  };
  return { knex, kind: "pglite", runSearch: (work) => work(knex), memory, userRemovals: createUserRemovals(), close };
}

/**
 * PGlite sends a parameter in binary format only when its type's serializer returns bytes (and
 * turns anything else into text): the vector type's serializer passes values through, so the
 * embeddings of vector-param.ts arrive as bytes and pgvector's text still as text. The type's OID
 * exists once the extension does (migration 001 creates it too).
 */
async function passVectorBytesThrough(pglite: PGlite): Promise<void> {
  await pglite.exec("CREATE EXTENSION IF NOT EXISTS vector");
  const { rows } = await pglite.query<{ oid: number }>("SELECT 'vector'::regtype::oid AS oid");
  // Typed as returning text; PGlite's protocol writer sends returned bytes as a binary parameter.
  pglite.serializers[rows[0].oid] = (value: unknown) => value as string;
}

/** Key of the advisory lock replicas take to migrate one at a time (any constant; "face" in ASCII). */
const MIGRATION_LOCK_KEY = 0x66616365;

/**
 * Migrates while holding an advisory lock, so replicas started together wait for the first one
 * instead of racing to create the same tables (knex's own lock table fails the losers instead of
 * making them wait). The lock belongs to a transaction kept open on a connection of its own for
 * the duration: a session lock would be taken and released on whatever server connections a
 * transaction-mode pooler (PgBouncer) happened to give those two statements, or be wiped by its
 * reset query, while an open transaction keeps its server connection.
 */
async function migrateExclusively(knex: Knex): Promise<void> {
  const lock = await knex.transaction();
  try {
    await lock.raw("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK_KEY]);
    await migrate(knex);
  } finally {
    await lock.commit();
  }
}

/**
 * Plain SQL migrations from migrations/*.sql, applied in file-name order, each once, each in a
 * transaction (knex's own bookkeeping table records them).
 */
export async function migrate(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource: sqlMigrationSource() })) as [number, string[]];
  return applied;
}

function sqlMigrationSource(): Knex.MigrationSource<string> {
  return {
    async getMigrations() {
      return (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort();
    },
    getMigrationName: (file) => file,
    async getMigration(file) {
      const sql = await readFile(join(MIGRATIONS_DIR, file), "utf8");
      // PGlite runs one statement per query; these files hold no semicolons inside statements.
      const statements = sql
        .replace(/^\s*--.*$/gm, "")
        .split(/;\s*$/m)
        .map((s) => s.trim())
        .filter((s) => s !== "");
      return {
        async up(knex: Knex) {
          for (const statement of statements) await knex.raw(statement);
        },
        async down() {
          throw new Error("migrations are forward-only; restore a backup to go back");
        },
      };
    },
  };
}
