import assert from "node:assert/strict";
import { describe, it } from "node:test";
import ort from "onnxruntime-node";
import { ONNX, WIRE_BYTES, fields, textOf } from "../src/runtime/onnx-protobuf.js";
import { rewritePRelu } from "../src/runtime/prelu-rewrite.js";
import { loadModelBytes, loadModelForSession, type ModelName } from "../src/runtime/models.js";
import { cropMap, toPlanarTensor, warpAffine } from "../src/engine/image.js";
import { face, largestDifference } from "./support/testdata.js";
import { testEngine } from "./support/server.js";

/** How many nodes of each operator type the model's graph has. */
function opCounts(model: Uint8Array): Map<string, number> {
  const counts = new Map<string, number>();
  for (const graph of fields(model, 0, model.length)) {
    if (graph.number !== ONNX.model.graph) continue;
    for (const node of fields(model, graph.start, graph.end)) {
      if (node.number !== ONNX.graph.node || node.wire !== WIRE_BYTES) continue;
      for (const f of fields(model, node.start, node.end)) {
        if (f.number === ONNX.node.opType) counts.set(textOf(model, f), (counts.get(textOf(model, f)) ?? 0) + 1);
      }
    }
  }
  return counts;
}

async function outputOf(model: Uint8Array, data: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  try {
    const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", data, dims) });
    return outputs[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

describe("PRelu rewritten as Mul, Relu, Mul, Add", () => {
  it("hands onnxruntime the recogniser and the liveness pair without a PRelu", async () => {
    for (const name of ["feature", "liveness_v2", "liveness_v1se"] as const) {
      const before = opCounts(await loadModelBytes(name));
      const after = opCounts(await loadModelForSession(name));
      assert.equal(before.get("PRelu"), 33, name);
      assert.equal(after.get("PRelu"), undefined, `${name}: PRelu reaches the session`);
      assert.equal(after.get("Relu") ?? 0, (before.get("Relu") ?? 0) + 33, name);
      assert.equal(after.get("Conv"), before.get("Conv"), name);
    }
  });

  it("leaves a model without PRelu as it is", async () => {
    const detector = await loadModelBytes("detect");
    const { model, rewritten } = rewritePRelu(detector);
    assert.equal(rewritten, 0);
    assert.equal(model, detector);
  });

  it("gives the recogniser's embedding of a real face to within float rounding", async () => {
    const engine = testEngine();
    const image = await engine.decode(face("face_recognition/obama.jpg"));
    const [located] = await engine.locate(image, 1);
    const input = toPlanarTensor(located.aligned, "bgr", [127, 127, 127], [128, 128, 128]);
    const original = await loadModelBytes("feature");
    const [before, after] = await Promise.all([original, rewritePRelu(original).model].map((m) => outputOf(m, input.slice(), [1, 3, 112, 112])));
    assert.equal(before.length, 512);
    const scale = Math.max(...before.map(Math.abs));
    const largest = largestDifference(before, after) / scale;
    assert.ok(largest < 1e-5, `outputs differ by up to ${largest} of their largest component`);
  });

  it("gives the liveness models' scores on a real face to within float rounding", async () => {
    const engine = testEngine();
    const image = await engine.decode(face("face_recognition/obama.jpg"));
    const [{ box }] = await engine.locate(image, 1);
    const crop = warpAffine(image, cropMap(box.x, box.y, box.width, box.height, 80, 80), 80, 80, 1);
    const input = toPlanarTensor(crop, "bgr", [0, 0, 0], [1, 1, 1]);
    for (const name of ["liveness_v2", "liveness_v1se"] as ModelName[]) {
      const original = await loadModelBytes(name);
      const [before, after] = await Promise.all([original, rewritePRelu(original).model].map((m) => outputOf(m, input.slice(), [1, 3, 80, 80])));
      assert.equal(before.length, 3, name);
      const largest = largestDifference(before, after) / Math.max(...before.map(Math.abs));
      assert.ok(largest < 1e-5, `${name}: outputs differ by up to ${largest} of their largest component`);
    }
  });
});
