/** Untimed runs before the timed ones: sessions loaded, caches and JIT warm. */
const WARM_UP_RUNS = 5;
/**
 * And untimed for at least this long: a fresh process decodes the photo at twice its warm time
 * for its first ~100 runs (by hand, 2026-12-02: 6.35 ms p50 over runs 6-105, 3.2-3.5 after), which
 * made the floor of `npm run bench` look larger than the decoding a warm service does.
 */
const WARM_UP_MS = 2_000;

/**
 * Milliseconds of `runs` timed calls of `work`, after untimed ones (WARM_UP_RUNS, and WARM_UP_MS),
 * and the process's CPU milliseconds per timed call. Each call's input comes from `prepare`,
 * outside the timing (a fresh buffer where `work` transfers it to a worker).
 */
export async function timeRuns<T>(runs: number, prepare: () => T, work: (input: T) => Promise<unknown>): Promise<{ ms: number[]; cpuMsEach: number }> {
  const warmUntil = performance.now() + WARM_UP_MS;
  for (let i = 0; i < WARM_UP_RUNS || performance.now() < warmUntil; i++) await work(prepare());
  const ms: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const input = prepare();
    await timedInto(ms, () => work(input));
  }
  const used = process.cpuUsage(cpu);
  return { ms, cpuMsEach: (used.user + used.system) / 1000 / runs };
}

/** Runs `work`, adds its milliseconds to `into`, and returns its result. */
export async function timedInto<T>(into: number[], work: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const result = await work();
  into.push(performance.now() - start);
  return result;
}
