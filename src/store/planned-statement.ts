import type { Knex } from "knex";
import type { PGlite } from "@electric-sql/pglite";

type Row = Record<string, unknown>;

/**
 * A parameter as PGlite's serializers take it: text, a number, bytes (pgvector's binary form) or
 * null. An array goes as its PostgreSQL literal (`{1,2}`): knex converts a JavaScript array, this
 * path would not.
 */
export type PlannedBinding = string | number | Buffer | null;

/** A statement prepared on one PGlite instance: its name and its parameters' type OIDs. */
interface Prepared {
  name: string;
  paramTypes: number[];
}

const preparedOn = new WeakMap<PGlite, Map<string, Prepared>>();

/** PGlite's protocol writer and result parser, loaded with PGlite (never on a server). */
type PgliteModule = typeof import("@electric-sql/pglite");
let pgliteModule: Promise<PgliteModule> | undefined;

/**
 * Makes the next statements of the batch use their generic plan. Local to the batch's implicit
 * transaction, which its Sync ends (also when a statement fails), so nothing else is planned so.
 */
const GENERIC_PLANS = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)";

/**
 * Runs a read-only statement that runs on every search (`?` placeholders, as knex.raw). On PGlite
 * it is prepared once under a name and then planned once: PostgreSQL plans an unnamed statement at
 * every execution (0.65 ms of the check statement's 1.1 ms on PGlite, EXPLAIN ANALYZE) and, for a
 * named one, keeps planning afresh while a custom plan looks cheaper than the generic one (it
 * does for `id = ANY($n)`, whose generic plan assumes a longer array). Bind and execute then go to
 * PGlite as one batch, where its query() makes six round trips. In a transaction, and on a
 * server (where a transaction-mode pooler would lose named statements), it runs as knex.raw.
 */
export async function runPlanned(db: Knex, sql: string, bindings: readonly PlannedBinding[]): Promise<Row[]> {
  // knex-pglite keeps its one PGlite instance on its client.
  const pglite = (db.client as { pglite?: PGlite }).pglite;
  if (pglite === undefined || db.isTransaction === true) return (await db.raw(sql, bindings)).rows as Row[];
  // The pool's one connection: statements through knex (transactions included) wait meanwhile.
  const connection: unknown = await db.client.acquireConnection();
  try {
    const module = await (pgliteModule ??= import("@electric-sql/pglite"));
    const { parse, protocol } = module;
    return await pglite._runExclusiveQuery(async () => {
      // knex numbers the placeholders as it would for PostgreSQL ($1, $2, ...).
      const statement = await preparedStatement(pglite, module, sql, () => db.raw(sql, bindings).toSQL().toNative().sql);
      const generic = await preparedStatement(pglite, module, GENERIC_PLANS, () => GENERIC_PLANS);
      const values = bindings.map((value, i) => {
        if (value === null) return null;
        const serialize = pglite.serializers[statement.paramTypes[i]];
        return (serialize ? serialize(value) : String(value)) as string | Uint8Array;
      });
      const { messages } = await pglite.execProtocol(Buffer.concat([
        ...execution(protocol, generic.name, []),
        ...execution(protocol, statement.name, values),
        protocol.serialize.sync(),
      ]), { syncToFs: false });
      const results = parse.parseResults(messages, pglite.parsers);
      return results[results.length - 1].rows as Row[];
    });
  } finally {
    await db.client.releaseConnection(connection);
  }
}

function execution({ serialize }: PgliteModule["protocol"], statement: string, values: (string | Uint8Array | null)[]): Uint8Array[] {
  return [
    serialize.bind({ statement, values }),
    serialize.describe({ type: "P" }),
    serialize.execute({}),
  ];
}

/** The statement `sql` prepared on `pglite` (once, as `text`: its placeholders numbered). */
async function preparedStatement(pglite: PGlite, { parse, protocol }: PgliteModule, sql: string, text: () => string): Promise<Prepared> {
  let statements = preparedOn.get(pglite);
  if (statements === undefined) preparedOn.set(pglite, (statements = new Map()));
  const known = statements.get(sql);
  if (known !== undefined) return known;
  const name = `face_planned_${statements.size + 1}`;
  const { messages } = await pglite.execProtocol(Buffer.concat([
    protocol.serialize.parse({ name, text: text() }),
    protocol.serialize.describe({ type: "S", name }),
    protocol.serialize.sync(),
  ]), { syncToFs: false });
  const prepared = { name, paramTypes: parse.parseDescribeStatementResults(messages) };
  statements.set(sql, prepared);
  return prepared;
}
