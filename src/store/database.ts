import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import knexFactory, { type Knex } from "knex";

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
}

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Opens the database and applies pending migrations. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const database = options.databaseUrl ? openServer(options.databaseUrl) : await openEmbedded(options.dataDir);
  try {
    if (database.kind === "postgres") await migrateExclusively(database.knex);
    else await migrate(database.knex);
  } catch (e) {
    await database.close();
    throw e;
  }
  return database;
}

function openServer(url: string): Database {
  const knex = knexFactory({
    client: "pg",
    connection: { connectionString: url, connectionTimeoutMillis: 5_000 },
    pool: { min: 0, max: 10 },
    // Fail fast when the server is down instead of queueing requests for a minute.
    acquireConnectionTimeout: 5_000,
  });
  return { knex, kind: "postgres", close: () => knex.destroy() };
}

async function openEmbedded(dataDir: string): Promise<Database> {
  const [{ PGlite }, { vector }, { default: ClientPgLite }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-pgvector"),
    import("knex-pglite"),
  ]);
  const directory = join(dataDir, "pgdata");
  await mkdir(directory, { recursive: true });
  const pglite = await PGlite.create({ dataDir: directory, extensions: { vector } });
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
