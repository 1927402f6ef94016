/**
 * Runs `work` on up to `depth` items of `source` at once and yields the results in source order,
 * each as soon as it and every earlier one are done. `work` is called in source order (steps that
 * must happen in order chain on that, as a Sync session does). Reading stops while `depth` results
 * wait to be taken: a slow consumer holds back the source (back-pressure) instead of filling memory.
 */
export async function* pipelineInOrder<T, R>(source: AsyncIterable<T>, depth: number, work: (item: T) => Promise<R>): AsyncGenerator<R> {
  const results: Promise<R>[] = [];
  let wakeConsumer: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  let ended = false;
  let stopped = false;
  let readError: { error: unknown } | undefined;

  const reader = (async () => {
    try {
      for await (const item of source) {
        while (results.length >= depth && !stopped) await new Promise<void>((r) => (wakeReader = r));
        if (stopped) break;
        results.push(work(item));
        wakeConsumer?.();
      }
    } catch (error) {
      readError = { error };
    } finally {
      ended = true;
      wakeConsumer?.();
    }
  })();

  try {
    for (;;) {
      if (results.length > 0) {
        const result = await results[0];
        results.shift();
        wakeReader?.();
        yield result;
      } else if (ended) {
        break;
      } else {
        await new Promise<void>((r) => (wakeConsumer = r));
      }
    }
    if (readError) throw readError.error;
  } finally {
    stopped = true;
    wakeReader?.();
    // Results still running are awaited so no work outlives the stream unobserved.
    await Promise.allSettled(results);
    void reader;
  }
}
