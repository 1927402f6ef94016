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
 * The field a REST request names (in its path, its query or its body), noting where each one-value
 * field was given. Refuses a name the request does not have, listing those it has: a misspelt field
 * was dropped without a word (`collecton=staff` registered the person into the default collection).
 * Refuses a one-value field given a second time: read as one of them, a Register given two
 * identifiers registered the person under the last. Repeated fields (a webhook's events) may be given
 * any number of times.
 */
export function fieldsOfRequest(schema: DescMessage): (name: string, where: string) => DescField {
  const given = new Map<string, string>();
  return (name, where) => {
    const field = fieldNamed(schema, name);
    if (field === undefined) throw new ConnectError(`unknown field ${name}; this request's fields are ${schema.fields.map((f) => f.name).join(", ")}`, Code.InvalidArgument);
    if (field.fieldKind === "list") return field;
    const before = given.get(field.name);
    if (before !== undefined) throw new ConnectError(`field ${field.name} is given 2 times (${before}, ${where}); it takes one value`, Code.InvalidArgument);
    given.set(field.name, where);
    return field;
  };
}

/** Sets a field from its text form (path, query or multipart). */
export function setFromString(message: ReflectMessage, field: DescField, text: string): void {
  try {
    if (field.fieldKind === "scalar") {
      message.set(field, scalarFromString(field, field.scalar, text));
    } else if (field.fieldKind === "list" && field.listKind === "scalar") {
      const list = message.get(field);
      for (const item of text.split(",")) list.add(scalarFromString(field, field.scalar, item.trim()));
    } else {
      throw new ConnectError(`field ${field.name} cannot be given as text`, Code.InvalidArgument);
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
