import type { UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * gRPC-Web's text mode (application/grpc-web-text): the binary gRPC-Web body in base64, both ways.
 * It is the default of Google's grpc-web client; connect-es speaks only the binary mode, so a text
 * request is decoded into a binary one and the binary answer encoded back.
 */
export const GRPC_WEB_TEXT = /^application\/grpc-web-text(\+proto)?\s*(;|$)/i;

export const BINARY_CONTENT_TYPE = "application/grpc-web+proto";
export const TEXT_CONTENT_TYPE = "application/grpc-web-text+proto";

/**
 * The binary request a text one carries. Clients may send several padded base64 chunks in a row. A
 * body that fails while it is read (the receive budget) fails the binary body, so the call answers it.
 */
export async function binaryRequestOf(request: UniversalServerRequest, maxBytes: number): Promise<UniversalServerRequest> {
  const chunks: Buffer[] = [];
  let size = 0;
  let failure: unknown;
  try {
    for await (const chunk of request.body as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      // Base64 is 4/3 of the bytes it carries.
      if (size > (maxBytes * 4) / 3 + 4) break;
      chunks.push(Buffer.from(chunk));
    }
  } catch (e) {
    failure = e;
  }
  const text = Buffer.concat(chunks).toString("latin1").replace(/\s+/g, "");
  const decoded = Buffer.concat((text.match(/[A-Za-z0-9+/]+={0,2}/g) ?? []).map((part) => Buffer.from(part, "base64")));
  const header = new Headers(request.header);
  header.set("content-type", BINARY_CONTENT_TYPE);
  header.delete("content-length");
  const body = async function* () {
    if (failure !== undefined) throw failure;
    yield new Uint8Array(decoded);
  };
  return { ...request, header, body: body() };
}

/** The answer in text mode: one continuous base64 stream, flushed as the binary answer is written. */
export function textResponseOf(response: UniversalServerResponse): UniversalServerResponse {
  const header = new Headers(response.header);
  if (header.get("content-type")?.startsWith(BINARY_CONTENT_TYPE)) header.set("content-type", TEXT_CONTENT_TYPE);
  header.delete("content-length");
  const body = response.body;
  if (body === undefined) return { ...response, header };
  return {
    ...response,
    header,
    body: (async function* () {
      let carry = Buffer.alloc(0);
      for await (const chunk of body) {
        const bytes = Buffer.concat([carry, Buffer.from(chunk)]);
        // Whole 3-byte groups now, the rest with the next chunk: no padding inside the stream.
        const whole = bytes.length - (bytes.length % 3);
        carry = bytes.subarray(whole);
        if (whole > 0) yield new TextEncoder().encode(bytes.subarray(0, whole).toString("base64"));
      }
      if (carry.length > 0) yield new TextEncoder().encode(carry.toString("base64"));
    })(),
  };
}
