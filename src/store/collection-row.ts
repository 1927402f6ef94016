import type { Knex } from "knex";

/** Tries before giving up: each one means a DeleteCollection of this very collection committed meanwhile. */
const MAX_TRIES = 10;

/**
 * Makes sure `collection` exists until `trx` ends, creating it when missing, and locks its row:
 * "share" lets other writers of the collection go side by side (Register), "exclusive" makes them
 * take turns (a count checked before an insert). Either lock makes a DeleteCollection wait for `trx`.
 * A DeleteCollection that committed while this waited for the row deleted it: the collection is
 * created again, as for a call arriving just after the delete (inserting into the deleted one
 * failed on its foreign key, an Internal error).
 */
export async function holdCollection(trx: Knex.Transaction, collection: string, lock: "share" | "exclusive"): Promise<void> {
  // The row is looked for first: it is almost always there, and then this is one statement.
  for (let tries = 1; ; tries++) {
    const row = trx("collections").where({ name: collection }).first("name");
    if ((await (lock === "share" ? row.forKeyShare() : row.forUpdate())) !== undefined) return;
    if (tries === MAX_TRIES) throw new Error(`collection ${collection} was deleted ${MAX_TRIES} times while a write waited for it`);
    await trx("collections").insert({ name: collection }).onConflict("name").ignore();
  }
}
