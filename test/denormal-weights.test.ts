import assert from "node:assert/strict";
import { describe, it } from "node:test";
import ort from "onnxruntime-node";
import { floatInitializers, flushDenormalWeights } from "../src/runtime/denormal-weights.js";
import { loadModelBytes, loadModelForSession, type ModelName } from "../src/runtime/models.js";
import { toPlanarTensor } from "../src/engine/image.js";
import { face, largestDifference } from "./support/testdata.js";
import { testEngine } from "./support/server.js";

/** Float initializer values of a model, and how many of them are denormal. */
function floatWeights(model: Uint8Array): { total: number; denormal: number } {
  const view = new DataView(model.buffer, model.byteOffset, model.byteLength);
  let total = 0, denormal = 0;
  for (const { offset, count } of floatInitializers(model)) {
    for (let i = 0; i < count; i++) {
      const value = view.getFloat32(offset + 4 * i, true);
      total++;
      if (value !== 0 && Math.abs(value) < 2 ** -126) denormal++;
    }
  }
  return { total, denormal };
}

describe("denormal weights", () => {
  it("reads every float weight of the models, as the onnx package counts them", async () => {
    // Counted with Debian's python3-onnx (numpy_helper over graph.initializer, data_type FLOAT).
    const expected: [ModelName, number, number][] = [["feature", 1_190_336, 8_938], ["gender", 44_487, 13_331], ["age", 45_255, 3_308], ["detect", 53_112, 0]];
    for (const [name, total, denormal] of expected) {
      assert.deepEqual(floatWeights(await loadModelBytes(name)), { total, denormal }, name);
    }
  });

  it("hands onnxruntime models without denormal weights", async () => {
    for (const name of ["feature", "gender", "age", "expression"] as const) {
      const { total, denormal } = floatWeights(await loadModelForSession(name));
      assert.ok(total > 40_000, name);
      assert.equal(denormal, 0, `${name}: ${denormal} denormal weights reach the session`);
    }
  });

  it("leaves the recogniser's embedding as it was, on a real face", async () => {
    const engine = testEngine();
    const image = await engine.decode(face("face_recognition/obama.jpg"));
    const [located] = await engine.locate(image, 1);
    const input = { input: new ort.Tensor("float32", toPlanarTensor(located.aligned, "bgr", [127, 127, 127], [128, 128, 128]), [1, 3, 112, 112]) };
    const original = await loadModelBytes("feature");
    const flushed = Uint8Array.from(original);
    assert.equal(flushDenormalWeights(flushed), 8_938);
    const [before, after] = await Promise.all([original, flushed].map(async (bytes) => {
      const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      const outputs = await session.run({ [session.inputNames[0]]: input.input });
      return outputs[session.outputNames[0]].data as Float32Array;
    }));
    assert.equal(before.length, 512);
    const largest = largestDifference(before, after);
    assert.ok(largest < 1e-5, `outputs differ by up to ${largest}`);
  });

  it("refuses a truncated model with a clear error", async () => {
    const bytes = (await loadModelBytes("detect")).subarray(0, 5000);
    assert.throws(() => flushDenormalWeights(Uint8Array.from(bytes)), /ONNX model: protobuf/);
  });
});
