import { clone, fromJson, ScalarType, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type JsonWriteOptions, type Message } from "@bufbuild/protobuf";
import { reflect, type ReflectList, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { bytesOfBase64, fieldNamed } from "./rest-fields.js";

/**
 * Protobuf JSON with its bytes fields (photos) in base64 written and read natively. protobuf-es
 * does base64 in JavaScript on the main thread: writing an export page of 2 MB of photos as JSON
 * held the event loop 300-500 ms (every other call and stream of the service waited), Buffer takes
 * about 1 ms a megabyte; reading a 2 MB photo took 18 ms.
 */

/** The message as protobuf-es's toJson writes it, its bytes fields encoded by Buffer. */
export function messageToJson(schema: DescMessage, message: Message, options?: Partial<JsonWriteOptions>): JsonValue {
  if (!holdsBytes(schema)) return toJson(schema, message, options);
  // A copy without its bytes goes through toJson; the bytes are written into its JSON afterwards.
  const stripped = clone(schema, message);
  const writeBytes = takeBytes(reflect(schema, stripped), options?.useProtoFieldName === true);
  const json = toJson(schema, stripped, options);
  writeBytes(json as JsonObject);
  return json;
}

/**
 * The message a JSON object holds, read as protobuf-es's fromJson reads it (unknown fields ignored),
 * its top-level bytes fields decoded natively. Throws what fromJson throws, or InvalidArgument naming
 * a bytes field that is not base64.
 */
export function messageFromJson(schema: DescMessage, body: JsonObject): ReflectMessage {
  const photos = new Map<DescField, Uint8Array>();
  const rest: JsonObject = {};
  for (const [key, value] of Object.entries(body)) {
    const field = fieldNamed(schema, key);
    if (field !== undefined && isBytes(field) && typeof value === "string") photos.set(field, bytesOfBase64(field, value));
    else rest[key] = value;
  }
  const message = reflect(schema, fromJson(schema, rest, { ignoreUnknownFields: true }));
  for (const [field, bytes] of photos) message.set(field, bytes);
  return message;
}

const isBytes = (field: DescField) => field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES;
const isBytesList = (field: DescField) => field.fieldKind === "list" && field.listKind === "scalar" && field.scalar === ScalarType.BYTES;
const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

/**
 * Empties the bytes fields of `message` and its messages, and returns what writes them into the
 * message's JSON. Well-known types (google.protobuf.BytesValue, Any) and maps are left to toJson:
 * their JSON is not an object of their fields.
 */
function takeBytes(message: ReflectMessage, protoNames: boolean): (json: JsonObject) => void {
  const writers: ((json: JsonObject) => void)[] = [];
  for (const field of message.fields) {
    const key = protoNames ? field.name : field.jsonName;
    if (isBytes(field) && message.isSet(field)) {
      const bytes = message.get(field) as Uint8Array;
      message.set(field, new Uint8Array(0));
      writers.push((json) => (json[key] = base64(bytes)));
    } else if (isBytesList(field) && message.isSet(field)) {
      const list = [...(message.get(field) as ReflectList<Uint8Array>)];
      message.clear(field);
      writers.push((json) => (json[key] = list.map(base64)));
    } else if (field.fieldKind === "message" && holdsBytes(field.message) && message.isSet(field)) {
      const inner = takeBytes(message.get(field) as ReflectMessage, protoNames);
      writers.push((json) => inner(json[key] as JsonObject));
    } else if (field.fieldKind === "list" && field.listKind === "message" && holdsBytes(field.message) && message.isSet(field)) {
      const inner = [...(message.get(field) as ReflectList<ReflectMessage>)].map((m) => takeBytes(m, protoNames));
      writers.push((json) => inner.forEach((write, i) => write((json[key] as JsonObject[])[i])));
    }
  }
  return (json) => writers.forEach((write) => write(json));
}

const bytesHeld = new WeakMap<DescMessage, boolean>();

/** Whether messages of this type hold bytes fields of their own or in their (non well-known) messages. */
export function holdsBytes(schema: DescMessage): boolean {
  let holds = bytesHeld.get(schema);
  if (holds === undefined) bytesHeld.set(schema, (holds = reachesBytes(schema, new Set())));
  return holds;
}

function reachesBytes(schema: DescMessage, visited: Set<DescMessage>): boolean {
  // A message type met again (a recursive type) adds no field not already being looked at.
  if (schema.typeName.startsWith("google.protobuf.") || visited.has(schema)) return false;
  visited.add(schema);
  return schema.fields.some((f) => isBytes(f) || isBytesList(f) || ((f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) && reachesBytes(f.message, visited)));
}
