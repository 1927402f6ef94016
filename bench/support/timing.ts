/** Untimed runs before the timed ones: sessions loaded, caches and JIT warm. */
export const WARM_UP_RUNS = 5;

/**
 * Milliseconds of `runs` timed calls of `work`, after a few untimed ones. Each call's input comes
 * from `prepare`, outside the timing (a fresh buffer where `work` transfers it to a worker).
 */
export async function timeRuns<T>(runs: number, prepare: () => T, work: (input: T) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < WARM_UP_RUNS; i++) await work(prepare());
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const input = prepare();
    const start = performance.now();
    await work(input);
    ms.push(performance.now() - start);
  }
  return ms;
}
