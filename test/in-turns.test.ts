import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mapInTurns } from "../src/engine/in-turns.js";

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
