/**
 * Rewrites every PRelu of an ONNX model as Mul, Relu, Mul, Add before onnxruntime loads it:
 *
 *   PRelu(x, s) = s*x + (1-s)*Relu(x)     (x > 0: s*x + (1-s)*x = x; otherwise s*x)
 *
 * Why: onnxruntime's CPU PRelu with a per-channel slope ([C,1,1]) is slow (about 2.7 ns per element
 * on a 128x56x56 map, where a Mul takes a fraction of that) and is not part of its blocked NCHWc
 * layout, so every PRelu also reorders its input out of that layout and back. The recogniser's 33
 * PRelus took 7.1 of its 11.5 ms (onnxruntime's profiler, one thread); rewritten, the model runs in
 * about half the time (`npm run bench:model-forms`) with outputs equal to within float rounding
 * (test/prelu-rewrite.test.ts).
 * The model file and its sha256 stay as published.
 *
 * Only a PRelu of the default domain whose slope is a FLOAT initializer is rewritten; any other is
 * left as it is.
 */
import { ONNX, WIRE_BYTES, bytesField, concat, fields, floatValuesOf, textOf, type Field } from "./onnx-protobuf.js";

/** The model with its PRelus rewritten (a new array), and how many were. */
export function rewritePRelu(model: Uint8Array): { model: Uint8Array; rewritten: number } {
  const parts: Uint8Array[] = [];
  let rewritten = 0;
  for (const f of fields(model, 0, model.length)) {
    if (f.number !== ONNX.model.graph || f.wire !== WIRE_BYTES) {
      parts.push(model.subarray(f.keyStart, f.end));
      continue;
    }
    const graph = rewriteGraph(model, f);
    rewritten += graph.rewritten;
    parts.push(bytesField(ONNX.model.graph, graph.bytes));
  }
  return { model: rewritten === 0 ? model : concat(parts), rewritten };
}

interface NodeFields {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
}

function rewriteGraph(model: Uint8Array, graph: Field): { bytes: Uint8Array; rewritten: number } {
  const initializers = new Map<string, Field>();
  for (const f of fields(model, graph.start, graph.end)) {
    if (f.number === ONNX.graph.initializer && f.wire === WIRE_BYTES) initializers.set(tensorName(model, f), f);
  }
  const parts: Uint8Array[] = [];
  const oneMinus = new Map<string, Uint8Array>();
  let rewritten = 0;
  for (const f of fields(model, graph.start, graph.end)) {
    const node = f.number === ONNX.graph.node && f.wire === WIRE_BYTES ? nodeFields(model, f) : undefined;
    const slopeTensor = node?.opType === "PRelu" && node.domain === "" && node.inputs.length === 2 ? initializers.get(node.inputs[1]) : undefined;
    const slope = slopeTensor === undefined ? undefined : floatsOf(model, slopeTensor);
    if (node === undefined || slopeTensor === undefined || slope === undefined) {
      parts.push(model.subarray(f.keyStart, f.end));
      continue;
    }
    const [x, s] = node.inputs;
    const [y] = node.outputs;
    const oneMinusName = `${s}::one_minus`;
    if (!oneMinus.has(s)) oneMinus.set(s, tensorLike(model, slopeTensor, oneMinusName, slope.map((v) => 1 - v)));
    const base = node.name === "" ? y : node.name;
    parts.push(
      nodeField(`${base}::slope_x`, "Mul", [x, s], `${y}::slope_x`),
      nodeField(`${base}::relu`, "Relu", [x], `${y}::relu`),
      nodeField(`${base}::relu_scaled`, "Mul", [`${y}::relu`, oneMinusName], `${y}::relu_scaled`),
      nodeField(`${base}::sum`, "Add", [`${y}::slope_x`, `${y}::relu_scaled`], y),
    );
    rewritten++;
  }
  for (const tensor of oneMinus.values()) parts.push(bytesField(ONNX.graph.initializer, tensor));
  return { bytes: concat(parts), rewritten };
}

function tensorName(model: Uint8Array, tensor: Field): string {
  for (const f of fields(model, tensor.start, tensor.end)) if (f.number === ONNX.tensor.name && f.wire === WIRE_BYTES) return textOf(model, f);
  return "";
}

function nodeFields(model: Uint8Array, node: Field): NodeFields {
  const result: NodeFields = { opType: "", domain: "", name: "", inputs: [], outputs: [] };
  for (const f of fields(model, node.start, node.end)) {
    if (f.wire !== WIRE_BYTES) continue;
    if (f.number === ONNX.node.opType) result.opType = textOf(model, f);
    // "ai.onnx" is the default domain's other name.
    else if (f.number === ONNX.node.domain) result.domain = textOf(model, f).replace(/^ai\.onnx$/, "");
    else if (f.number === ONNX.node.name) result.name = textOf(model, f);
    else if (f.number === ONNX.node.input) result.inputs.push(textOf(model, f));
    else if (f.number === ONNX.node.output) result.outputs.push(textOf(model, f));
  }
  return result;
}

/** A FLOAT tensor's values, or undefined when it holds another type. */
function floatsOf(model: Uint8Array, tensor: Field): Float32Array | undefined {
  const runs = floatValuesOf(model, tensor.start, tensor.end);
  if (runs === undefined) return undefined;
  const view = new DataView(model.buffer, model.byteOffset, model.byteLength);
  const values = new Float32Array(runs.reduce((n, r) => n + r.count, 0));
  let next = 0;
  for (const { offset, count } of runs) for (let i = 0; i < count; i++) values[next++] = view.getFloat32(offset + 4 * i, true);
  return values;
}

/** A FLOAT initializer with the dims of `like`, another name and these values (as raw_data). */
function tensorLike(model: Uint8Array, like: Field, name: string, values: Float32Array): Uint8Array {
  const replaced = new Set<number>([ONNX.tensor.name, ONNX.tensor.rawData, ONNX.tensor.floatData]);
  const kept = [...fields(model, like.start, like.end)].filter((f) => !replaced.has(f.number)).map((f) => model.subarray(f.keyStart, f.end));
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return concat([...kept, bytesField(ONNX.tensor.name, name), bytesField(ONNX.tensor.rawData, raw)]);
}

function nodeField(name: string, opType: string, inputs: string[], output: string): Uint8Array {
  return bytesField(ONNX.graph.node, concat([
    ...inputs.map((i) => bytesField(ONNX.node.input, i)),
    bytesField(ONNX.node.output, output),
    bytesField(ONNX.node.name, name),
    bytesField(ONNX.node.opType, opType),
  ]));
}
