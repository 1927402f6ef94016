import { readFileSync } from "node:fs";
import type { Server } from "node:net";
import type { FastifyBaseLogger } from "fastify";
import { processMetrics } from "../metrics.js";

/** A flood of refused connections is logged at most this often (with how many since the last line). */
const DROP_LOG_INTERVAL_MS = 60_000;

/**
 * Connections the server keeps open at once: `configured`, and at most half the process's limit on
 * open files. Each connection is a file descriptor, and so is each of the embedded database's files
 * (about 200 at start, more as it grows), each photo being written and each outgoing call: out of
 * them, registrations fail. Connections beyond the limit are closed as they arrive.
 */
export function connectionLimit(configured: number, openFiles = openFileLimit()): number {
  return openFiles === undefined ? configured : Math.max(1, Math.min(configured, Math.floor(openFiles / 2)));
}

/**
 * Counts the connections `server` closes as they arrive for being over its limit (Node's 'drop'
 * event, otherwise silent) in `face_connections_dropped_total`, and logs them: the first at once,
 * then at most once a minute with the number since the last line.
 */
export function reportDroppedConnections(server: Server, log: FastifyBaseLogger): void {
  let unlogged = 0;
  let loggedAt = -Infinity;
  server.on("drop", () => {
    processMetrics().connectionsDropped.inc();
    unlogged += 1;
    if (Date.now() - loggedAt < DROP_LOG_INTERVAL_MS) return;
    log.warn({ dropped: unlogged, maxConnections: server.maxConnections }, "connections closed as they arrived: the server has its limit of connections open (FACE_MAX_CONNECTIONS, open-file limit)");
    unlogged = 0;
    loggedAt = Date.now();
  });
}

/** The process's soft limit on open files (Linux), or undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}
