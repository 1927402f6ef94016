import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { callsInFlight } from "../src/calls-in-flight.js";
import { createAdmission } from "../src/service/admission.js";
import { createOnnxRuntime } from "../src/runtime/onnx.js";
import { largestDifference, rgbFrame640x480 } from "./support/testdata.js";

const frame = async () => ({ data: await rgbFrame640x480("face_recognition/obama.jpg"), dims: [1, 480, 640, 3] });

describe("inference pool: every core for a call running alone, shared cores under load", () => {
  const runtime = createOnnxRuntime({ intraOpThreads: 1, workers: 2 });
  after(() => runtime.close());

  it("runs a lone call's model on every core and concurrent ones on their own threads, with the same outputs", async () => {
    const admission = createAdmission({ maxInFlight: 4, maxQueued: 4 });
    const before = runtime.runCounts();
    const alone = await admission.run(async () => runtime.run("detect", await frame()));
    assert.equal(runtime.runCounts().wide, before.wide + 1, "one call, idle pool: every core");
    // Both calls are inside admission before either runs its model, as two overlapping requests are.
    let entered = 0;
    let bothIn!: () => void;
    const together = await Promise.all([1, 2].map(() => admission.run(async () => {
      await new Promise<void>((resolve) => (++entered === 2 ? (bothIn(), resolve()) : (bothIn = resolve)));
      return runtime.run("detect", await frame());
    })));
    assert.equal(runtime.runCounts().wide, before.wide + 1, "two calls at once: no run takes every core");
    assert.equal(runtime.runCounts().shared, before.shared + 2);
    for (const other of together) {
      for (const name of Object.keys(alone)) {
        const largest = largestDifference(alone[name].data, other[name].data);
        assert.ok(largest < 1e-4, `${name}: outputs differ by up to ${largest}`);
      }
    }
  });

  it("counts a call in and out of admission, a failing one too", async () => {
    const admission = createAdmission({ maxInFlight: 2, maxQueued: 2 });
    const start = callsInFlight();
    await admission.run(async () => assert.equal(callsInFlight(), start + 1));
    await assert.rejects(admission.run(async () => { throw new Error("fails"); }));
    assert.equal(callsInFlight(), start);
  });
});
