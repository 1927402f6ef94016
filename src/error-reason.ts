/**
 * What went wrong, in one line, for a log message or a tool's stderr. A connection to a host name
 * with addresses of both families, all refusing, fails with an AggregateError whose own message is
 * empty (Node's autoSelectFamily; pg's `localhost` where it is ::1 and 127.0.0.1): its errors say it.
 */
export function reasonOf(e: unknown): string {
  if (e instanceof AggregateError && e.message === "") return e.errors.map(reasonOf).join("; ");
  return e instanceof Error ? e.message : String(e);
}
