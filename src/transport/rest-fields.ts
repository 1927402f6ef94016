import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { isFieldError, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeBase64 } from "../base64.js";

// REST path, query and multipart values are strings: how they become the fields of a request message.

/** A field of `schema` by its proto name or its JSON name. */
export function fieldNamed(schema: DescMessage, name: string): DescField | undefined {
  return schema.fields.find((f) => f.name === name || f.jsonName === name);
}

/** A bytes field's base64 (base64.ts: Buffer.from alone would skip what is not base64 and decode the rest as the photo). */
export function bytesOfBase64(field: DescField, text: string): Uint8Array {
  try {
    return decodeBase64(text);
  } catch {
    throw new ConnectError(`field ${field.name}: not valid base64`, Code.InvalidArgument);
  }
}

/**
 * Notes where each one-value field of a request was given (the path, the query, the body) and
 * refuses one given a second time: read as one of them, a Register given two identifiers registered
 * the person under the last. Repeated fields (a webhook's events) may be given any number of times.
 */
export function givenOnce(schema: DescMessage): (name: string, where: string) => void {
  const given = new Map<string, string>();
  return (name, where) => {
    const field = fieldNamed(schema, name);
    if (field === undefined || field.fieldKind === "list") return;
    const before = given.get(field.name);
    if (before !== undefined) throw new ConnectError(`field ${field.name} is given 2 times (${before}, ${where}); it takes one value`, Code.InvalidArgument);
    given.set(field.name, where);
  };
}

/**
 * Sets a field from its text form (path, query or multipart). Unknown query parameters are ignored,
 * as proto JSON ignores unknown fields; unknown path parameters cannot happen.
 */
export function setFromString(message: ReflectMessage, name: string, text: string, strict: boolean): void {
  const field = fieldNamed(message.desc, name);
  if (field === undefined) {
    if (strict) throw new ConnectError(`unknown field ${name}`, Code.InvalidArgument);
    return;
  }
  try {
    if (field.fieldKind === "scalar") {
      message.set(field, scalarFromString(field, field.scalar, text));
    } else if (field.fieldKind === "list" && field.listKind === "scalar") {
      const list = message.get(field);
      for (const item of text.split(",")) list.add(scalarFromString(field, field.scalar, item.trim()));
    } else {
      throw new ConnectError(`field ${name} cannot be given as text`, Code.InvalidArgument);
    }
  } catch (e) {
    // The message checks each value against its field's type (a uint32 over 2^32 - 1, a float past
    // float32's range), as JSON's reader does; uncaught, its refusal answered 500.
    if (isFieldError(e)) throw new ConnectError(`field ${field.name}: ${e.message}`, Code.InvalidArgument);
    throw e;
  }
}

function scalarFromString(field: DescField, scalar: ScalarType, text: string): string | number | boolean | Uint8Array | bigint {
  const bad = () => new ConnectError(`field ${field.name}: ${JSON.stringify(text.slice(0, 40))} is not a valid value`, Code.InvalidArgument);
  switch (scalar) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BOOL:
      if (text === "true" || text === "1") return true;
      if (text === "false" || text === "0" || text === "") return false;
      throw bad();
    case ScalarType.BYTES:
      return bytesOfBase64(field, text);
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n)) throw bad();
      return n;
    }
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      if (!/^-?\d+$/.test(text)) throw bad();
      return BigInt(text);
    default:
      // Its range is the message's to check (setFromString).
      if (!/^-?\d+$/.test(text)) throw bad();
      return Number(text);
  }
}
