import { readFileSync } from "node:fs";
import type { Server, Socket } from "node:net";
import type { FastifyBaseLogger } from "fastify";
import { processMetrics } from "../metrics.js";
import { rateLimitClient } from "./client-address.js";
import { CountsByKey } from "../counts-by-key.js";
import type { ResetStreamsDrop } from "./stream-resets.js";
import { throttledWarning } from "./throttled-warning.js";

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
 * Of the server's connections, how many one address may hold: `configured`, or three quarters of
 * them when 0. A quarter stays for everyone else: connections cost their client nothing to keep
 * (HTTP/2 ones answer pings), so one client opening them until the limit shut every other out.
 */
export function connectionsPerAddress(configured: number, limit: number): number {
  return configured > 0 ? configured : Math.max(1, Math.ceil(limit * 0.75));
}

/** What the server's 'drop' event carries for a connection closed for its address's share. */
export interface AddressShareDrop {
  readonly remoteAddress?: string;
  readonly overAddressShare: true;
}

/**
 * Takes a place for a new connection from its address (an IPv6 one's /64, as rate limits count),
 * given back when it closes; false, taking nothing, when the address holds `perAddress` already.
 */
export function createAddressShare(perAddress: number): (socket: Socket) => boolean {
  const open = new CountsByKey();
  return (socket) => {
    if (socket.remoteAddress === undefined) return true;
    const address = rateLimitClient(socket.remoteAddress);
    if (open.of(address) >= perAddress) return false;
    socket.once("close", open.take(address));
    return true;
  };
}

/**
 * Counts the connections `server` closes as they arrive, for being over its limit (Node's 'drop'
 * event, otherwise silent) or over their address's share (an AddressShareDrop), and those it closes
 * for their address's reset streams (a ResetStreamsDrop), in
 * `face_connections_dropped_total`, and logs them: the first at once, then at most once a minute
 * with the number since the last line.
 */
export function reportDroppedConnections(server: Server, log: FastifyBaseLogger): void {
  const overLimit = throttledWarning(DROP_LOG_INTERVAL_MS, (dropped: number) =>
    log.warn({ dropped, maxConnections: server.maxConnections }, "connections closed as they arrived: the server has its limit of connections open (FACE_MAX_CONNECTIONS, open-file limit)"),
  );
  const overShare = throttledWarning(DROP_LOG_INTERVAL_MS, (dropped: number, address?: string) =>
    log.warn({ dropped, address }, "connections closed as they arrived: their address holds its share of the server's connections (FACE_MAX_CONNECTIONS_PER_ADDRESS)"),
  );
  const overResetStreams = throttledWarning(DROP_LOG_INTERVAL_MS, (dropped: number, address?: string) =>
    log.warn({ dropped, address }, "connections closed: their address's clients reset too many HTTP/2 streams (rapid reset); its new connections are refused for a few seconds"),
  );
  server.on("drop", (data?: Partial<AddressShareDrop & ResetStreamsDrop>) => {
    processMetrics().connectionsDropped.inc();
    if (data?.overAddressShare) overShare(data.remoteAddress);
    else if (data?.resetStreams) overResetStreams(data.remoteAddress);
    else overLimit();
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
