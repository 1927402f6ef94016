import type { Knex } from "knex";

/** Where the database driver's own messages go, at the level it gave them. */
export type DriverLog = (level: "warn" | "error" | "debug", message: string) => void;

/**
 * knex's `log` option, handing its own messages (a connection it could not acquire, with the
 * stack; a deprecated call) to `driverLog`: without one, knex prints them with console.log, which
 * put lines that are not JSON amid the service's JSON log on stdout. No `driverLog` (the tests and
 * benchmarks): stderr, so what they print on stdout stays theirs.
 */
export function knexLog(driverLog: DriverLog = (_level, message) => process.stderr.write(`${message}\n`)): Knex.Logger {
  const to = (level: "warn" | "error" | "debug") => (message: unknown) => driverLog(level, typeof message === "string" ? message : String(message));
  // knex calls `deprecate` with the sentence it made of (method, alternative), not with the two.
  return { warn: to("warn"), error: to("error"), debug: to("debug"), deprecate: to("warn") as unknown as Knex.Logger["deprecate"] };
}
