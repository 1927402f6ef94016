import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pipelineInOrder } from "../src/transport/ordered-pipeline.js";

setFlagsFromString("--expose-gc");
/** A full garbage collection, for heap measurements (the flag above makes `gc` exist in new contexts). */
const collectGarbage = runInNewContext("gc") as () => void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("pipelineInOrder", () => {
  it("yields in source order though later items finish first, calling work in source order", async () => {
    const started: number[] = [];
    const out: number[] = [];
    let running = 0;
    let maxRunning = 0;
    const source = (async function* () { for (let i = 0; i < 10; i++) yield i; })();
    for await (const r of pipelineInOrder(source, 3, async (i) => {
      started.push(i);
      maxRunning = Math.max(maxRunning, ++running);
      await sleep(i % 2 ? 1 : 15); // odd items finish before even ones
      running--;
      return i * 10;
    })) out.push(r);
    assert.deepEqual(out, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(maxRunning > 1 && maxRunning <= 3, `ran ${maxRunning} at once`);
  });

  it("stops reading while results wait to be taken (back-pressure)", async () => {
    let read = 0;
    const source = (async function* () { for (let i = 0; i < 100; i++) { read++; yield i; } })();
    const it = pipelineInOrder(source, 2, async (i) => i)[Symbol.asyncIterator]();
    await it.next();
    await sleep(20);
    assert.ok(read <= 4, `read ${read} items with 1 taken`);
    await it.return(undefined);
  });

  it("answers each item before the source ends (a client waiting for each answer)", async () => {
    let release!: () => void;
    const source = (async function* () {
      yield 1;
      await new Promise<void>((r) => (release = r));
      yield 2;
    })();
    const it = pipelineInOrder(source, 2, async (i) => i)[Symbol.asyncIterator]();
    assert.deepEqual(await it.next(), { value: 1, done: false });
    release();
    assert.deepEqual(await it.next(), { value: 2, done: false });
    assert.equal((await it.next()).done, true);
  });

  it("stops a source that waits for its next item forever when told, yielding what was begun first", async () => {
    const source = (async function* () {
      yield 1;
      yield 2;
      await new Promise(() => {}); // a client that keeps the stream open and sends nothing
    })();
    const stop = new AbortController();
    const out: number[] = [];
    const done = (async () => {
      for await (const r of pipelineInOrder(source, 2, async (i) => { await sleep(20); return i; }, stop.signal)) out.push(r);
    })();
    await sleep(5);
    stop.abort(new Error("shutting down"));
    await assert.rejects(done, /shutting down/);
    assert.deepEqual(out, [1, 2]);
  });

  it("keeps nothing per item while its stream lasts, stop signal and all (a camera's Sync stream lives for days)", async () => {
    const ITEMS = 20_000;
    const stop = new AbortController();
    const source = (async function* () {
      for (let i = 0; ; i++) {
        await new Promise((r) => setImmediate(r));
        yield i;
      }
    })();
    const heapMiB = () => {
      collectGarbage();
      collectGarbage();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    let taken = 0;
    let before = 0;
    for await (const _ of pipelineInOrder(source, 3, async (i) => ({ i }), stop.signal)) {
      taken += 1;
      if (taken === 1_000) before = heapMiB();
      if (taken === 1_000 + ITEMS) break;
    }
    // Racing every read against one promise that lives as long as the stream kept about 0.56 KiB an item: 11 MiB here.
    const keptKiB = ((heapMiB() - before) * 1024) / ITEMS;
    assert.ok(keptKiB < 0.1, `${keptKiB.toFixed(3)} KiB kept an item`);
  });
});
