/**
 * Just enough protobuf to read and rewrite parts of an ONNX model (onnx.proto) without a schema:
 * the fields of a message as spans of the model's bytes, and the encoding of new fields.
 */

export const WIRE_VARINT = 0, WIRE_64 = 1, WIRE_BYTES = 2, WIRE_32 = 5;

/** Field numbers of onnx.proto used here. */
export const ONNX = {
  model: { graph: 7 },
  graph: { node: 1, initializer: 5 },
  node: { input: 1, output: 2, name: 3, opType: 4, domain: 7 },
  tensor: { dataType: 2, floatData: 4, name: 8, rawData: 9 },
  /** TensorProto.DataType FLOAT. */
  FLOAT: 1,
} as const;

/** One protobuf field: its number, wire type, its span in the bytes (key included) and its payload's span (or a varint's value). */
export interface Field {
  number: number;
  wire: number;
  /** Where the field's key starts: bytes[keyStart, end) is the whole field, to copy as it is. */
  keyStart: number;
  start: number;
  end: number;
  value: number;
}

/** The fields of the message in bytes[start, end). */
export function* fields(bytes: Uint8Array, start: number, end: number): Generator<Field> {
  let at = start;
  const varint = (): number => {
    let value = 0, scale = 1, byte: number;
    do {
      if (at >= end) throw new Error("ONNX model: a protobuf varint runs past its message");
      byte = bytes[at++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return value;
  };
  while (at < end) {
    const keyStart = at;
    const key = varint();
    const wire = key % 8, number = Math.floor(key / 8);
    if (wire === WIRE_VARINT) {
      const value = varint();
      yield { number, wire, keyStart, start: at, end: at, value };
      continue;
    }
    const length = wire === WIRE_BYTES ? varint() : wire === WIRE_64 ? 8 : wire === WIRE_32 ? 4 : -1;
    if (length < 0 || at + length > end) throw new Error(`ONNX model: protobuf field ${number} (wire type ${wire}) is malformed`);
    yield { number, wire, keyStart, start: at, end: at + length, value: 0 };
    at += length;
  }
}

/** A run of little-endian float32 values inside the model's bytes. */
export interface FloatRun {
  offset: number;
  count: number;
}

/** Where a TensorProto's values are, when it holds FLOAT data (raw_data or float_data). */
export function floatValuesOf(model: Uint8Array, start: number, end: number): FloatRun[] | undefined {
  let dataType = 0;
  const values: FloatRun[] = [];
  for (const f of fields(model, start, end)) {
    if (f.number === ONNX.tensor.dataType && f.wire === WIRE_VARINT) dataType = f.value;
    else if ((f.number === ONNX.tensor.rawData || f.number === ONNX.tensor.floatData) && f.wire === WIRE_BYTES) values.push({ offset: f.start, count: (f.end - f.start) >> 2 });
    else if (f.number === ONNX.tensor.floatData && f.wire === WIRE_32) values.push({ offset: f.start, count: 1 });
  }
  return dataType === ONNX.FLOAT ? values : undefined;
}

/** The UTF-8 text of a bytes field (a name, an op type). */
export function textOf(bytes: Uint8Array, field: Field): string {
  return new TextDecoder().decode(bytes.subarray(field.start, field.end));
}

function varintBytes(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}

/** A varint field (an integer or an enum). */
export function varintField(number: number, value: number): Uint8Array {
  return Uint8Array.from([...varintBytes(number * 8 + WIRE_VARINT), ...varintBytes(value)]);
}

/** A length-delimited field (a string, bytes or an embedded message). */
export function bytesField(number: number, payload: Uint8Array | string): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  return concat([Uint8Array.from([...varintBytes(number * 8 + WIRE_BYTES), ...varintBytes(data.length)]), data]);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
