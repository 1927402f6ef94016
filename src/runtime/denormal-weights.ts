/**
 * Flushes a model's denormal float weights to zero, in place, before onnxruntime loads it.
 *
 * Why: a float under 2^-126 is handled in microcode on x86, about a hundred times slower than a
 * normal one, and onnxruntime's kernels multiply every weight on every run. The recogniser
 * `fr_feature.onnx` carries 8,938 such weights (its gender and age models thousands more), and on an
 * AVX-512 CPU its run took 66 ms instead of 18.5 (one thread, measured with onnxruntime-node 1.30;
 * docs/benchmarks.md). Zero differs from them by under 1.2e-38: the outputs are the same to within
 * float rounding (test/denormal-weights.test.ts). onnxruntime's own `session.set_denormal_as_zero` does not
 * reach the thread a single-threaded session runs on.
 *
 * The file is read as protobuf (onnx.proto): ModelProto.graph (7) -> GraphProto.initializer (5) ->
 * TensorProto with data_type (2) FLOAT (1) and its values in raw_data (9) or packed float_data (4).
 */
import { ONNX, WIRE_BYTES, fields, floatValuesOf, type FloatRun } from "./onnx-protobuf.js";

/** Flushes the denormal float weights of an ONNX model to zero in place; returns how many there were. */
export function flushDenormalWeights(model: Uint8Array): number {
  const view = new DataView(model.buffer, model.byteOffset, model.byteLength);
  let flushed = 0;
  for (const { offset, count } of floatInitializers(model)) {
    for (let i = 0, at = offset; i < count; i++, at += 4) {
      const bits = view.getUint32(at, true);
      // Exponent bits all zero, mantissa not: a denormal. Its sign is kept (a signed zero).
      if ((bits & 0x7f800000) === 0 && (bits & 0x007fffff) !== 0) {
        view.setUint32(at, bits & 0x80000000, true);
        flushed++;
      }
    }
  }
  return flushed;
}

/** Where the float values of every FLOAT initializer of the model's graph are. */
export function floatInitializers(model: Uint8Array): FloatRun[] {
  const runs: FloatRun[] = [];
  for (const graph of fields(model, 0, model.length)) {
    if (graph.number !== ONNX.model.graph || graph.wire !== WIRE_BYTES) continue;
    for (const tensor of fields(model, graph.start, graph.end)) {
      if (tensor.number !== ONNX.graph.initializer || tensor.wire !== WIRE_BYTES) continue;
      const floats = floatValuesOf(model, tensor.start, tensor.end);
      if (floats !== undefined) runs.push(...floats);
    }
  }
  return runs;
}
