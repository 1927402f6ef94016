import type { Knex } from "knex";

/** Where the database driver's own messages go, at the level it gave them. */
export type DriverLog = (level: "warn" | "error" | "debug", message: string) => void;

/**
 * knex's `log` option, handing its own messages (a connection it could not acquire, with the
 * stack; a deprecated call) to `driverLog`: without one, knex prints them with console.log, which
 * put lines that are not JSON amid the service's JSON log on stdout. No `driverLog` (the database
 * tools, tests, benchmarks): the first line of each warning and error on stderr, so stdout stays
 * theirs; the rest is a stack, and the error that stops a tool says the same again without one.
 */
export function knexLog(driverLog: DriverLog = firstLineOnStderr): Knex.Logger {
  const to = (level: "warn" | "error" | "debug") => (message: unknown) => driverLog(level, typeof message === "string" ? message : String(message));
  // knex calls `deprecate` with the sentence it made of (method, alternative), not with the two.
  return { warn: to("warn"), error: to("error"), debug: to("debug"), deprecate: to("warn") as unknown as Knex.Logger["deprecate"] };
}

function firstLineOnStderr(level: "warn" | "error" | "debug", message: string): void {
  if (level !== "debug") process.stderr.write(`${message.split("\n")[0]}\n`);
}
