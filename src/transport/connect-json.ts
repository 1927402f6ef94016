import { fromBinary, toBinary, type DescMethod, type JsonObject } from "@bufbuild/protobuf";
import { compressionNegotiate, type Compression, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { holdsBytes, messageFromJson, messageToJson } from "./proto-json.js";

/**
 * Connect's unary JSON (application/json, connect-web's default) for calls that carry photos, read
 * and written here instead of by connect-es: its JSON codec does base64 in JavaScript on the main
 * thread, which held the event loop 300-500 ms for an export page of 2 MB of photos and about 15 ms
 * a megabyte of photo uploaded. The request is handed to connect-es as binary (application/proto) and
 * its binary answer written back as JSON (proto-json.ts, base64 by Buffer), as grpc-web-text.ts
 * does for gRPC-Web's text mode. Compressed requests, and requests whose body is not a message,
 * are left to connect-es as they came, so its refusals stay as they were.
 */
const UNARY_JSON = /^application\/json\s*(;\s*charset=utf-8\s*)?$/i;
const PROTO = "application/proto";

/** Whether connect-es's JSON would spend base64 in JavaScript on this call. */
export function isConnectJsonWithPhotos(method: DescMethod, request: UniversalServerRequest): boolean {
  const encoding = request.header.get("content-encoding");
  return (
    method.methodKind === "unary" &&
    request.method === "POST" &&
    UNARY_JSON.test(request.header.get("content-type") ?? "") &&
    (encoding === null || encoding === "identity") &&
    (holdsBytes(method.input) || holdsBytes(method.output))
  );
}

/**
 * The request as binary, or as it came (its body replayed) when its JSON is over `maxBytes` or is
 * not a message of `method.input`.
 */
export async function binaryRequestOfJson(method: DescMethod, request: UniversalServerRequest, maxBytes: number): Promise<{ request: UniversalServerRequest; translated: boolean }> {
  const source = (request.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  let failure: unknown;
  try {
    for (let next = await source.next(); !(ended = next.done === true); next = await source.next()) {
      chunks.push(next.value);
      size += next.value.length;
      if (size > maxBytes) break;
    }
  } catch (e) {
    // A body that fails while it is read (the client gone, the receive budget) fails the call's body.
    failure = e;
  }
  const binary = ended && failure === undefined ? binaryOf(method, Buffer.concat(chunks)) : undefined;
  if (binary === undefined) {
    const replay = async function* () {
      yield* chunks;
      if (failure !== undefined) throw failure;
      if (!ended) for (let rest = await source.next(); rest.done !== true; rest = await source.next()) yield rest.value;
    };
    return { request: { ...request, body: replay() }, translated: false };
  }
  const header = new Headers(request.header);
  header.set("content-type", PROTO);
  header.delete("content-length");
  // The JSON answer is compressed once, by jsonResponseOf; connect-es's binary one need not be.
  header.delete("accept-encoding");
  return { request: { ...request, header, body: (async function* () { yield binary; })() }, translated: true };
}

/** The binary form of a JSON body that is a message of the method's input, or undefined. */
function binaryOf(method: DescMethod, body: Buffer): Uint8Array | undefined {
  try {
    const json: unknown = JSON.parse(body.toString("utf8"));
    if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
    return toBinary(method.input, messageFromJson(method.input, json as JsonObject).message);
  } catch {
    return undefined; // not a message: connect-es answers it in its own words
  }
}

/** How the router compresses answers: what it offers, and the smallest answer worth compressing. */
export interface AnswerCompression {
  offered: Compression[];
  minBytes: number;
}

/**
 * A binary answer written as Connect JSON, compressed as connect-es compresses an answer (the first of
 * the client's accept-encoding it offers, from `minBytes`); an error (already JSON) as it is.
 */
export async function jsonResponseOf(method: DescMethod, response: UniversalServerResponse, acceptEncoding: string | null, { offered, minBytes }: AnswerCompression): Promise<UniversalServerResponse> {
  if (response.header?.get("content-type") !== PROTO || response.body === undefined) return response;
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body) chunks.push(chunk);
  const json = new TextEncoder().encode(JSON.stringify(messageToJson(method.output, fromBinary(method.output, Buffer.concat(chunks)))));
  const compression = json.byteLength >= minBytes ? compressionNegotiate(offered, null, acceptEncoding, "accept-encoding").response : null;
  const header = new Headers(response.header);
  header.set("content-type", "application/json");
  header.delete("content-length");
  if (compression !== null) header.set("content-encoding", compression.name);
  const body = compression === null ? json : await compression.compress(json);
  return { ...response, header, body: (async function* () { yield body; })() };
}
