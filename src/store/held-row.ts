import type { Knex } from "knex";

/** Tries before giving up: each one means a deletion of this very row committed meanwhile. */
const MAX_TRIES = 10;

/**
 * Makes sure the row `key` of `table` exists until `trx` ends, inserting `row` when it is missing,
 * and holds it: "share" (FOR KEY SHARE) lets other writers go side by side, "exclusive" (FOR UPDATE)
 * makes them take turns; either makes a transaction deleting the row wait for `trx`. A row found
 * but deleted by a transaction that committed while this waited for it is inserted anew. A row this
 * transaction inserted is its own until it commits. `tryFirst` is the step likelier to succeed:
 * "lock" for a row that is almost always there, "insert" for one that is usually new.
 */
export async function holdRow(
  trx: Knex.Transaction,
  table: string,
  key: Record<string, string>,
  row: Record<string, unknown>,
  lock: "share" | "exclusive",
  tryFirst: "lock" | "insert",
): Promise<void> {
  const keyColumns = Object.keys(key);
  for (let tries = 1; ; tries++) {
    if (tries > 1 || tryFirst === "insert") {
      const inserted = await trx(table).insert(row).onConflict(keyColumns).ignore().returning(keyColumns);
      if (inserted.length > 0) return;
    }
    const found = trx(table).where(key).first(keyColumns);
    if ((await (lock === "share" ? found.forKeyShare() : found.forUpdate())) !== undefined) return;
    if (tries === MAX_TRIES) throw new Error(`${table} row ${JSON.stringify(key)} was deleted ${MAX_TRIES} times while a write waited for it`);
  }
}
