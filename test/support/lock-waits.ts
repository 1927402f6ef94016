import type { Knex } from "knex";

/** How many statements of this test's database wait for a lock (PostgreSQL: a test holding one sees the calls it holds up). */
export async function statementsWaitingOnLocks(knex: Knex): Promise<number> {
  return (await knex.raw("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0].n;
}
