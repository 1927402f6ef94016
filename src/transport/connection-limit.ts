import { readFileSync } from "node:fs";

/**
 * Connections the server keeps open at once: `configured`, and at most half the process's limit on
 * open files. Each connection is a file descriptor, and so is each of the embedded database's files
 * (about 200 at start, more as it grows), each photo being written and each outgoing call: out of
 * them, registrations fail. Connections beyond the limit are closed as they arrive.
 */
export function connectionLimit(configured: number, openFiles = openFileLimit()): number {
  return openFiles === undefined ? configured : Math.max(1, Math.min(configured, Math.floor(openFiles / 2)));
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
