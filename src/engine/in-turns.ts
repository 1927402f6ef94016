/**
 * `work` for each item, at most `atOnce` at a time, the results in the items' order: work enough
 * to keep a few inference workers busy for one call, without queueing all of it ahead of other
 * calls' runs (each worker takes runs first come, first served). After a failure nothing more starts.
 */
export async function mapInTurns<T, R>(items: readonly T[], atOnce: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    for (let i = next++; i < items.length && !failed; i = next++) {
      try {
        results[i] = await work(items[i]);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(atOnce, items.length) }, worker));
  return results;
}
