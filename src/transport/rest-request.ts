import { create, ScalarType, type DescMessage, type JsonObject } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Multipart } from "@fastify/multipart";
import type { FastifyRequest } from "fastify";
import { isFastifyError } from "./errors.js";
import { fieldsOfRequest, setFromString } from "./rest-fields.js";
import { messageFromJson } from "./proto-json.js";
import type { ReceivingShare } from "./receive-budget.js";

type FieldOfRequest = ReturnType<typeof fieldsOfRequest>;

/** Parts a multipart request may have: the image (and image2 for Verify) and the other fields. */
export const MULTIPART_LIMITS = { files: 2, fields: 32, fieldSize: 64 * 1024, parts: 34 };

/** What a REST route takes from a request besides its query: the path's parameters and the body. */
export interface RestRequestShape {
  pathParams: string[];
  /** "*" (the whole request is the body), a field name, or "" (no body). */
  body: string;
}

/** The request's message from its path, query and body; `openShare` counts a multipart body against the receive budget. */
export async function requestMessage(route: RestRequestShape, schema: DescMessage, request: FastifyRequest, openShare: () => ReceivingShare): Promise<ReflectMessage> {
  let message = reflect(schema, create(schema));
  const fieldOf = fieldsOfRequest(schema);
  if (route.body === "*" && request.isMultipart()) {
    const share = openShare();
    try {
      await readMultipart(message, request, share, fieldOf);
    } finally {
      share.give();
    }
  } else if (route.body === "*" && request.body !== undefined && request.body !== null) {
    if (typeof request.body !== "object" || Array.isArray(request.body)) throw new ConnectError("request body must be a JSON object", Code.InvalidArgument);
    for (const key of Object.keys(request.body)) fieldOf(key, "body");
    message = messageOfJson(schema, request.body as JsonObject);
  }
  const query = request.query as Record<string, string | string[]>;
  for (const [key, value] of Object.entries(query)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      setFromString(message, fieldOf(key, "query"), v);
    }
  }
  const params = request.params as Record<string, string>;
  for (const name of route.pathParams) {
    setFromString(message, fieldOf(name, "path"), params[name]);
  }
  return message;
}

/** The message a JSON body holds, as protobuf JSON reads it (its photos decoded natively, proto-json.ts). */
function messageOfJson(schema: DescMessage, body: JsonObject): ReflectMessage {
  try {
    return messageFromJson(schema, body);
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw new ConnectError(`invalid request body: ${(e as Error).message}`, Code.InvalidArgument);
  }
}

/**
 * File parts fill bytes fields (a part named "file" is the image); other parts are fields. File bytes
 * count against the receive budget (`share`) as they arrive. A refused request's body is still read
 * to its end, and dropped, as toBuffer() does with a file over the size limit: a part left unread
 * broke the next request on the same connection (ECONNRESET).
 */
async function readMultipart(message: ReflectMessage, request: FastifyRequest, share: ReceivingShare, fieldOf: FieldOfRequest): Promise<void> {
  let parts: AsyncIterator<Multipart> | undefined;
  let part: Multipart | undefined;
  try {
    parts = request.parts()[Symbol.asyncIterator]();
    for (let next = await parts.next(); !next.done; next = await parts.next()) {
      part = next.value;
      await readPart(message, request, part, share, fieldOf);
    }
  } catch (e) {
    if (part?.type === "file") part.file.resume();
    if (parts !== undefined) await dropRest(parts);
    throw malformedBodyOrAsIs(e);
  }
}

/**
 * What reading a multipart body threw, as the answer: the service's own refusals (ConnectError) and
 * @fastify/multipart's limits (FST_ codes, mapped where REST maps fastify's errors) as they are; any
 * other error came from parsing the body (busboy: no boundary, a part cut off, a client gone
 * mid-upload) and is the client's, not a fault of the server (it answered 500).
 */
function malformedBodyOrAsIs(error: unknown): unknown {
  if (error instanceof ConnectError || !(error instanceof Error) || isFastifyError(error)) return error;
  return new ConnectError(`the multipart body could not be read: ${error.message}`, Code.InvalidArgument, undefined, undefined, error);
}

async function readPart(message: ReflectMessage, request: FastifyRequest, part: Multipart, share: ReceivingShare, fieldOf: FieldOfRequest): Promise<void> {
  if (part.type !== "file") {
    const field = fieldOf(part.fieldname, "body");
    // busboy cuts a text field at the limit without a word: a photo sent as base64 text arrived cut
    // and was answered as a corrupt JPEG.
    if (part.valueTruncated) throw new ConnectError(`multipart text field ${part.fieldname} is over ${MULTIPART_LIMITS.fieldSize} bytes: send a photo as a file part`, Code.ResourceExhausted);
    setFromString(message, field, String(part.value));
    return;
  }
  const field = fieldOf(part.fieldname === "file" ? "image" : part.fieldname, "body");
  if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.BYTES) {
    throw new ConnectError(`multipart file part ${JSON.stringify(part.fieldname)} is not an image field`, Code.InvalidArgument);
  }
  const chunks: Buffer[] = [];
  let refusal: unknown;
  for await (const chunk of part.file) {
    // The rest of a refused file is read and dropped (see readMultipart).
    if (refusal !== undefined) continue;
    try {
      share.take(chunk.length);
      chunks.push(chunk);
    } catch (e) {
      refusal = e;
      chunks.length = 0;
    }
  }
  if (refusal !== undefined) throw refusal;
  // What part.toBuffer() throws for a file over the size limit (busboy cut it short).
  if (part.file.truncated) throw new request.server.multipartErrors.RequestFileTooLargeError();
  message.set(field, new Uint8Array(Buffer.concat(chunks)));
}

/** Reads the parts after a refused one to the body's end, dropping them. */
async function dropRest(parts: AsyncIterator<Multipart>): Promise<void> {
  try {
    for (let next = await parts.next(); !next.done; next = await parts.next()) {
      if (next.value.type === "file") next.value.file.resume();
    }
  } catch {
    // The body broke off or went over a limit: the refusal already thrown is the answer.
  }
}
