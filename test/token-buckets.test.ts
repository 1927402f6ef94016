import { afterEach, beforeEach, describe, it, mock } from "node:test";
import assert from "node:assert/strict";
import { createTokenBuckets } from "../src/transport/token-buckets.js";

describe("rate limit token buckets", () => {
  beforeEach(() => mock.timers.enable({ apis: ["Date"], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  it("tells a refused client the whole seconds until its next request is allowed", () => {
    const buckets = createTokenBuckets(1 / 60, 5, () => Date.now());
    assert.deepEqual(Array.from({ length: 6 }, () => buckets.take("a")), [0, 0, 0, 0, 0, 60]);
    mock.timers.tick(30_500);
    assert.equal(buckets.take("a"), 30);
    mock.timers.tick(29_500);
    assert.equal(buckets.take("a"), 0);
    assert.equal(buckets.take("b"), 0, "another client has its own bucket");
  });

  it("never gives a client its burst back by forgetting a bucket that has not refilled", () => {
    const buckets = createTokenBuckets(1 / 600, 3, () => Date.now());
    for (let i = 0; i < 3; i++) assert.equal(buckets.take("a"), 0);
    mock.timers.tick(61_000);
    // Many other clients, each with a bucket still refilling: the map is over its sweep size.
    for (let i = 0; i < 10_001; i++) buckets.take(`client-${i}`);
    mock.timers.tick(1_000);
    buckets.take("client-last");
    assert.equal(buckets.take("a"), 538, "a's bucket was kept: 62 s of 600 refilled");
  });

  it("counts time by a clock that the wall clock's steps do not move (an NTP correction of an hour back)", () => {
    mock.timers.setTime(Date.parse("2026-12-04T12:00:00Z"));
    const buckets = createTokenBuckets(100, 2);
    assert.deepEqual([buckets.take("a"), buckets.take("a")], [0, 0]);
    mock.timers.setTime(Date.parse("2026-12-04T11:00:00Z"));
    // Counted by the wall clock, the hour back was taken from the bucket: refused for an hour.
    assert.ok(buckets.take("a") <= 1, "refused for at most the second a token takes to refill");
  });

  it("does not walk every bucket on each request when many clients are refilling", () => {
    // One client cycling through addresses (the /64s of an IPv6 /48) keeps every bucket refilling.
    // The time of 5,000 requests beside 30,000 buckets against beside none: walking the map on each
    // request made it hundreds of times slower; a sweep at most once a second keeps it close.
    const timeOf = (buckets: ReturnType<typeof createTokenBuckets>, prefix: string, count: number) => {
      const start = performance.now();
      for (let i = 0; i < count; i++) buckets.take(`${prefix}-${i}`);
      return performance.now() - start;
    };
    const alone = timeOf(createTokenBuckets(0.001, 5), "new", 5_000);
    const crowded = createTokenBuckets(0.001, 5);
    timeOf(crowded, "old", 30_000);
    const beside = timeOf(crowded, "new", 5_000);
    assert.ok(beside < alone * 10 + 50, `5,000 requests took ${beside.toFixed(0)} ms beside 30,000 buckets, ${alone.toFixed(0)} ms beside none`);
  });
});
