import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mapGivingWay, mapInTurns } from "../src/engine/in-turns.js";

describe("mapInTurns (a big photo's tiles)", () => {
  it("runs at most so many at once and answers in the items' order", async () => {
    let running = 0, most = 0;
    const delays = [30, 5, 20, 1, 10, 2, 15];
    const results = await mapInTurns(delays, 2, async (delay) => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, delay));
      running--;
      return delay * 2;
    });
    assert.equal(most, 2);
    assert.deepEqual(results, delays.map((d) => d * 2));
    assert.deepEqual(await mapInTurns([], 2, async () => 1), []);
  });

  it("fails with the first failure, starting nothing more after it", async () => {
    const started: number[] = [];
    await assert.rejects(mapInTurns([1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n);
      if (n === 2) throw new Error("no");
      await new Promise((resolve) => setTimeout(resolve, 20));
      return n;
    }), /no/);
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.deepEqual(started, [1, 2], "the first item's turn, still running at the failure, starts no other");
  });
});

describe("mapGivingWay (a crowd's faces aligned on the event loop)", () => {
  /** Holds the event loop for `ms`, as aligning a face does. */
  function busyFor(ms: number): void {
    const until = performance.now() + ms;
    while (performance.now() < until);
  }

  it("lets waiting work run between items once a turn is over, and answers in the items' order", async () => {
    const ranAt: number[] = [];
    let itemsDone = 0;
    setImmediate(() => ranAt.push(itemsDone));
    setTimeout(() => ranAt.push(itemsDone), 0);
    const results = await mapGivingWay([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (n) => {
      busyFor(3);
      itemsDone++;
      return n * 2;
    });
    assert.deepEqual(results, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    assert.equal(ranAt.length, 2, "both waiting callbacks ran before the map ended");
    assert.ok(ranAt.every((done) => done < 10), `they ran after items ${ranAt.join(", ")} of 10`);
  });

  it("keeps short work in one turn", async () => {
    let ran = false;
    setImmediate(() => { ran = true; });
    assert.deepEqual(await mapGivingWay([1, 2, 3], (n, i) => n + i), [1, 3, 5]);
    assert.equal(ran, false, "three quick items gave no way");
  });
});
