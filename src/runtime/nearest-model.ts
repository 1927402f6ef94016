/**
 * The ONNX graph of an exact nearest-neighbour search, built here rather than shipped as a file:
 *
 *   similarities = Gemm(query [1, D], gallery [N, D], transB=1)      (one row of dot products)
 *   values, indices = TopK(similarities, k)                          (largest first)
 *
 * With unit-length rows a dot product is one minus the cosine distance. onnxruntime's Gemm reads
 * the gallery once per query with vector instructions, which a JavaScript loop cannot match.
 */
import { bytesField, concat, varintField } from "./onnx-protobuf.js";

/** TensorProto.DataType values used here. */
const FLOAT = 1, INT64 = 7;
/** AttributeProto.AttributeType INT. */
const ATTRIBUTE_INT = 2;

/** A ValueInfoProto: a named tensor of `elementType` whose dimensions are numbers or symbolic names. */
function tensorInfo(name: string, elementType: number, dims: readonly (number | string)[]): Uint8Array {
  const shape = concat(dims.map((d) => bytesField(1, typeof d === "number" ? varintField(1, d) : bytesField(2, d))));
  const tensorType = concat([varintField(1, elementType), bytesField(2, shape)]);
  return concat([bytesField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

function node(opType: string, inputs: readonly string[], outputs: readonly string[], intAttributes: Record<string, number> = {}): Uint8Array {
  return concat([
    ...inputs.map((i) => bytesField(1, i)),
    ...outputs.map((o) => bytesField(2, o)),
    bytesField(3, opType),
    bytesField(4, opType),
    ...Object.entries(intAttributes).map(([name, value]) => bytesField(5, concat([bytesField(1, name), varintField(3, value), varintField(20, ATTRIBUTE_INT)]))),
  ]);
}

/** Input and output names of the model (TopK's values, the similarities, are an output nobody reads). */
export const NEAREST = { query: "query", gallery: "gallery", k: "k", similarities: "similarities", rows: "rows" } as const;

/** The model's bytes, for `dims`-dimensional rows; the gallery's row count and k are given per run. */
export function nearestNeighbourModel(dims: number): Uint8Array {
  const graph = concat([
    bytesField(1, node("Gemm", [NEAREST.query, NEAREST.gallery], ["dot"], { transB: 1 })),
    bytesField(1, node("TopK", ["dot", NEAREST.k], [NEAREST.similarities, NEAREST.rows], { axis: 1, largest: 1, sorted: 1 })),
    bytesField(2, "nearest"),
    bytesField(11, tensorInfo(NEAREST.query, FLOAT, [1, dims])),
    bytesField(11, tensorInfo(NEAREST.gallery, FLOAT, ["n", dims])),
    bytesField(11, tensorInfo(NEAREST.k, INT64, [1])),
    bytesField(12, tensorInfo(NEAREST.similarities, FLOAT, [1, "k"])),
    bytesField(12, tensorInfo(NEAREST.rows, INT64, [1, "k"])),
  ]);
  return concat([
    varintField(1, 8), // ir_version
    bytesField(8, concat([bytesField(1, ""), varintField(2, 13)])), // opset_import: the default domain, opset 13
    bytesField(7, graph),
  ]);
}
