import type { Knex } from "knex";

/**
 * Runs `work` in a transaction that first makes `localSettings` (SET LOCAL statements) in one round
 * trip: a simple query may hold several statements.
 */
export function inSearchTransaction<T>(knex: Knex, localSettings: readonly string[], work: (db: Knex) => Promise<T>): Promise<T> {
  return knex.transaction(async (trx) => {
    await trx.raw(localSettings.join("; "));
    return work(trx);
  });
}
