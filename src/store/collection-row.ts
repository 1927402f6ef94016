import type { Knex } from "knex";
import { holdRow } from "./held-row.js";

/**
 * Makes sure `collection` exists until `trx` ends, creating it when missing, and locks its row:
 * "share" lets other writers of the collection go side by side (Register), "exclusive" makes them
 * take turns (a count checked before an insert). Either lock makes a DeleteCollection wait for `trx`.
 * A DeleteCollection that committed while this waited for the row deleted it: the collection is
 * created again, as for a call arriving just after the delete (inserting into the deleted one
 * failed on its foreign key, an Internal error).
 */
export function holdCollection(trx: Knex.Transaction, collection: string, lock: "share" | "exclusive"): Promise<void> {
  // The row is looked for first: it is almost always there, and then this is one statement.
  return holdRow(trx, "collections", { name: collection }, { name: collection }, lock, "lock");
}
