import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import knexFactory, { type Knex } from "knex";
import { relationBytesIn, sharedBuffersMbFor } from "./embedded-buffers.js";

/** A knex handle on PostgreSQL with pgvector, embedded (PGlite) or a server. */
export interface Database {
  readonly knex: Knex;
  readonly kind: "pglite" | "postgres";
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** A PostgreSQL server; the embedded PGlite database in `dataDir` when undefined. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** hnsw.ef_search of every connection (pgvector's default when absent): candidates an HNSW scan keeps; more is slower and more exact. */
  hnswEfSearch?: number;
}

/**
 * Settings every connection gets once, when it opens: the similarity search is then a single
 * statement (no transaction with SET LOCAL around it), which on PGlite saves four statements of
 * ~0.4 ms each (measured by hand: 5.5 instead of 7.0 ms per search at 10k faces between requests).
 * Iterative scans keep filtered HNSW searches from returning too few rows when the collection is a
 * small part of the index, and let a search ask for more rows than ef_search.
 */
function sessionSettings(options: DatabaseOptions): string[] {
  const efSearch = options.hnswEfSearch === undefined ? [] : [`SET hnsw.ef_search = ${Math.trunc(options.hnswEfSearch)}`];
  return [...efSearch, "SET hnsw.iterative_scan = relaxed_order"];
}

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Opens the database and applies pending migrations. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const settings = sessionSettings(options);
  const database = options.databaseUrl ? openServer(options.databaseUrl, settings) : await openEmbedded(options.dataDir, settings);
  try {
    if (database.kind === "postgres") await migrateExclusively(database.knex);
    else await migrate(database.knex);
  } catch (e) {
    await database.close();
    throw e;
  }
  return database;
}

function openServer(url: string, settings: string[]): Database {
  const knex = knexFactory({
    client: "pg",
    connection: { connectionString: url, connectionTimeoutMillis: 5_000 },
    pool: {
      min: 0,
      max: 10,
      afterCreate(connection: { query(sql: string): Promise<unknown> }, done: (error: Error | null, connection: unknown) => void) {
        connection.query(settings.join("; ")).then(() => done(null, connection), (error: Error) => done(error, connection));
      },
    },
    // Fail fast when the server is down instead of queueing requests for a minute.
    acquireConnectionTimeout: 5_000,
  });
  return { knex, kind: "postgres", close: () => knex.destroy() };
}

async function openEmbedded(dataDir: string, settings: string[]): Promise<Database> {
  const [{ PGlite }, { vector }, { default: ClientPgLite }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-pgvector"),
    import("knex-pglite"),
  ]);
  const directory = join(dataDir, "pgdata");
  await mkdir(directory, { recursive: true });
  const sharedBuffersMb = sharedBuffersMbFor(await relationBytesIn(directory));
  const pglite = await PGlite.create({
    dataDir: directory,
    extensions: { vector },
    startParams: [...PGlite.defaultStartParams, "-c", `shared_buffers=${sharedBuffersMb}MB`],
  });
  // PGlite is one session: set once.
  for (const setting of settings) await pglite.exec(setting);
  const knex = knexFactory({
    client: ClientPgLite,
    dialect: "postgres",
    connection: () => ({ pglite }) as object,
  } as Knex.Config);
  // knex.destroy() closes the PGlite instance it was given.
  return { knex, kind: "pglite", close: () => knex.destroy() };
}

/** Key of the advisory lock replicas take to migrate one at a time (any constant; "face" in ASCII). */
const MIGRATION_LOCK_KEY = 0x66616365;

/**
 * Migrates while holding a session advisory lock, so replicas started together wait for the first
 * one instead of racing to create the same tables (knex's own lock table fails the losers instead
 * of making them wait). The lock lives on a connection of its own, held only for this.
 */
async function migrateExclusively(knex: Knex): Promise<void> {
  const connection = await knex.client.acquireConnection();
  try {
    await knex.raw("SELECT pg_advisory_lock(?)", [MIGRATION_LOCK_KEY]).connection(connection);
    try {
      await migrate(knex);
    } finally {
      await knex.raw("SELECT pg_advisory_unlock(?)", [MIGRATION_LOCK_KEY]).connection(connection);
    }
  } finally {
    await knex.client.releaseConnection(connection);
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
