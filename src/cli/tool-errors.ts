import { ConnectError } from "@connectrpc/connect";
import { reasonOf } from "../error-reason.js";
import { exitCodeOf } from "../exit-codes.js";

/**
 * Runs a database tool (`npm run migrate`, `npm run reembed`) to its exit code. An error it cannot
 * go on from is said on stderr without a stack, with the service's exit codes (exit-codes.ts).
 * Until 2026-12-07 each ended in an uncaught exception's stack trace and source excerpt, exit 1.
 */
export async function runTool(work: () => Promise<number>): Promise<never> {
  try {
    process.exit(await work());
  } catch (e) {
    process.stderr.write(`${errorLine(e)}\n`);
    process.exit(exitCodeOf(e));
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
