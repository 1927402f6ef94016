/**
 * The number of rows an UPDATE or DELETE through knex touched. The drivers disagree: node-postgres
 * gives a number, knex-pglite gives a result object ({ rowCount, affectedRows }) for a DELETE, so a
 * `> 0` on it is always false.
 */
export function rowCount(result: unknown): number {
  if (typeof result === "number") return result;
  const r = result as { rowCount?: number | null; affectedRows?: number | null } | null | undefined;
  return Number(r?.rowCount ?? r?.affectedRows ?? 0);
}
