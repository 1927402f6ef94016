import { setImmediate } from "node:timers/promises";

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

/** How long work on the event loop runs before it lets other calls' work run (Turns). */
const TURN_MS = 8;

/**
 * A long loop's turns on the event loop: `due()` once TURN_MS have passed since the turn began, and
 * `giveWay()` lets what waits (other calls' requests and answers) run before the loop goes on. Over
 * a photo of 4,900 small faces, the closer looks' choice of boxes and the alignment of its faces
 * each held every other call for about 80 ms (a CPU profile of the service answering such Detects);
 * a camera frame's loops end within a turn and never wait.
 */
export class Turns {
  private began = performance.now();

  due(): boolean {
    return performance.now() - this.began >= TURN_MS;
  }

  async giveWay(): Promise<void> {
    await setImmediate();
    this.began = performance.now();
  }
}

/** `work` for each item in order, on the event loop, giving way (Turns) whenever a turn is over. */
export async function mapGivingWay<T, R>(items: readonly T[], work: (item: T, index: number) => R): Promise<R[]> {
  const turns = new Turns();
  const results: R[] = [];
  for (let i = 0; i < items.length; i++) {
    if (turns.due()) await turns.giveWay();
    results.push(work(items[i], i));
  }
  return results;
}
