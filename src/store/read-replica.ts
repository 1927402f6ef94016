import knexFactory, { type Knex } from "knex";
import { knexLog, type DriverLog } from "./driver-log.js";
import { inSearchTransaction } from "./search-transaction.js";

/** After the replica failed, searches go to the primary for this long before it is tried again. */
const RETRY_REPLICA_AFTER_MS = 5_000;

/** Searches routed to a streaming replica, and to the primary while the replica cannot answer. */
export interface ReadReplica {
  /** Runs `work` in a transaction on the replica; on `primary` when the replica is (or just went) away. */
  run<T>(work: (db: Knex) => Promise<T>, primary: (work: (db: Knex) => Promise<T>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Errors that say the replica cannot answer, rather than that the query is wrong: no connection
 * (refused, reset, timed out, name not found), a connection ended under the query, the server
 * shutting down or starting (57P01-57P03), a connection exception (class 08), and a query
 * cancelled by a recovery conflict (40001): replaying the primary's changes can cancel a standby's
 * query. A search only reads, so running it again on the primary is safe.
 */
function replicaUnavailable(error: unknown): boolean {
  const { code, name, message } = error as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === "string") {
    if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EPIPE"].includes(code)) return true;
    if (code.startsWith("08") || ["57P01", "57P02", "57P03", "40001"].includes(code)) return true;
  }
  if (name === "KnexTimeoutError") return true; // no pooled connection could be made in time
  return typeof message === "string" && /Connection terminated|Query read timeout|timeout expired/i.test(message);
}

/**
 * Opens a pool on the replica at `url`. Each search is a transaction starting with `settings`
 * (SET LOCAL, as on the primary). Short time limits: a search waiting on a replica that went away
 * is a search not yet sent to the primary. `onUnavailable` hears of each failure that moved
 * searches to the primary.
 */
export function openReadReplica(url: string, settings: readonly string[], onUnavailable: (error: Error) => void, driverLog?: DriverLog): ReadReplica {
  const knex = knexFactory({
    client: "pg",
    connection: { connectionString: url, connectionTimeoutMillis: 1_000, query_timeout: 10_000 } as Knex.PgConnectionConfig,
    pool: { min: 0, max: 10 },
    acquireConnectionTimeout: 2_000,
    log: knexLog(driverLog),
  });
  let avoidUntil = 0;

  return {
    async run(work, primary) {
      if (Date.now() < avoidUntil) return primary(work);
      try {
        return await inSearchTransaction(knex, settings, work);
      } catch (e) {
        if (!replicaUnavailable(e)) throw e;
        if (Date.now() >= avoidUntil) onUnavailable(e as Error);
        avoidUntil = Date.now() + RETRY_REPLICA_AFTER_MS;
        return primary(work);
      }
    },
    close: () => knex.destroy(),
  };
}
