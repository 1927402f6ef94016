import { ConnectError } from "@connectrpc/connect";
import { ConfigError } from "../config.js";
import { reasonOf } from "../error-reason.js";
import { DirectoryInUse } from "../store/directory-lock.js";

/**
 * The database tools' driver log: the first line of each of knex's warnings and errors on stderr.
 * The rest is a stack (a connection it could not acquire), and the error that stops the tool says
 * the same again without one.
 */
export const TOOL_DRIVER_LOG = {
  driverLog: (level: "warn" | "error" | "debug", message: string) => {
    if (level !== "debug") process.stderr.write(`${message.split("\n")[0]}\n`);
  },
};

/**
 * Runs a database tool (`npm run migrate`, `npm run reembed`) to its exit code. An error it cannot
 * go on from is said on stderr without a stack, as the service says it: exit 2 for what the
 * operator must settle first (invalid configuration, the data directory in use by a running
 * service), 1 for anything else (a database that refuses connections). Until 2026-12-07 each
 * ended in an uncaught exception's stack trace and source excerpt, exit 1.
 */
export async function runTool(work: () => Promise<number>): Promise<never> {
  try {
    process.exit(await work());
  } catch (e) {
    process.stderr.write(`${errorLine(e)}\n`);
    process.exit(e instanceof ConfigError || e instanceof DirectoryInUse ? 2 : 1);
  }
}

/**
 * What stopped a command, for stderr: a call's error reads "[unavailable] ..." (ConnectError's
 * message). One made of a network error without a message of its own (an AggregateError: a host
 * name whose addresses of both families all refused) read "[unavailable]" alone: its cause says why.
 */
export function errorLine(e: unknown): string {
  if (e instanceof ConnectError && e.rawMessage === "" && e.cause !== undefined) return `error: ${e.message} ${reasonOf(e.cause)}`;
  return `error: ${reasonOf(e)}`;
}
