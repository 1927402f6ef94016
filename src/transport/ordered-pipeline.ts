/**
 * Runs `work` on up to `depth` items of `source` at once and yields the results in source order,
 * each as soon as it and every earlier one are done. `work` is called in source order (steps that
 * must happen in order chain on that, as a Sync session does). Reading stops while `depth` results
 * wait to be taken: a slow consumer holds back the source (back-pressure) instead of filling memory.
 * When `stop` fires, reading stops at once, though the source is waiting for its next item (a client
 * that keeps its stream open and sends nothing): the results begun are yielded, then the pipeline
 * fails with the signal's reason.
 */
export async function* pipelineInOrder<T, R>(source: AsyncIterable<T>, depth: number, work: (item: T) => Promise<R>, stop?: AbortSignal): AsyncGenerator<R> {
  const results: Promise<R>[] = [];
  let wakeConsumer: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  let ended = false;
  let stopped = false;
  let readError: { error: unknown } | undefined;

  const reader = (async () => {
    const items = source[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await nextUnlessStopped(items, stop);
        if (next.done === true) return;
        while (results.length >= depth && !stopped) await new Promise<void>((r) => (wakeReader = r));
        if (stopped) {
          await items.return?.();
          return;
        }
        results.push(work(next.value));
        wakeConsumer?.();
      }
    } catch (error) {
      // The source may still be waiting for an item: it is told to end, not waited for.
      items.return?.().catch(() => {});
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

/**
 * The source's next item, or a rejection with the signal's reason once it fires. Each read races a
 * promise of its own: raced against one promise that lived as long as the stream, every read left a
 * reaction on it that Promise.race never takes back (0.56 KiB an item, for as long as a camera's
 * Sync stream stays open).
 */
async function nextUnlessStopped<T>(items: AsyncIterator<T>, stop: AbortSignal | undefined): Promise<IteratorResult<T>> {
  if (stop === undefined) return items.next();
  const stopping = abortedBy(stop);
  try {
    return await Promise.race([items.next(), stopping.promise]);
  } finally {
    stopping.dispose();
  }
}

/** A promise that rejects with the signal's reason when it fires; dispose() stops listening. */
function abortedBy(signal: AbortSignal): { promise: Promise<never>; dispose(): void } {
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  promise.catch(() => {}); // rejects once, whether or not a read is waiting on it then
  return { promise, dispose: () => signal.removeEventListener("abort", onAbort) };
}
