import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { codeName, codeOfUnhandled, httpStatusOf } from "./errors.js";

/**
 * Rewrites the code of an error connect-es answered on its own (a request message it could not
 * parse is reported as Internal) to the code errors.ts gives it, wherever the protocol carries it.
 */
export async function reclassifyParseError(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const remap = (fields: Headers) => {
    const status = fields.get("grpc-status");
    if (status === null) return;
    const code = codeOfUnhandled(Number(status) as Code, decodeURIComponent(fields.get("grpc-message") ?? ""));
    if (code !== Number(status)) fields.set("grpc-status", String(code));
  };
  // gRPC and gRPC-Web trailers-only answers carry the status in the headers.
  const header = response.header;
  if (header !== undefined) remap(header);
  // gRPC answers with a body end with trailers, filled in as the body is written.
  if (response.trailer !== undefined && response.body !== undefined) {
    const trailer = response.trailer;
    const body = response.body;
    return {
      ...response,
      body: (async function* () {
        yield* body;
        remap(trailer);
      })(),
    };
  }
  // gRPC-Web answers end with their trailers as the body's last frame, one chunk of its own.
  if (header?.get("content-type")?.startsWith("application/grpc-web") && response.body !== undefined) {
    const body = response.body;
    return {
      ...response,
      body: (async function* () {
        for await (const chunk of body) {
          if (chunk[0] !== trailerFlag) {
            yield chunk;
            continue;
          }
          const trailer = trailerParse(chunk.subarray(5));
          remap(trailer);
          yield encodeEnvelope(trailerFlag, trailerSerialize(trailer));
        }
      })(),
    };
  }
  // Connect unary errors: HTTP status plus a small JSON body.
  if (response.status >= 500 && header?.get("content-type")?.startsWith("application/json") && response.body !== undefined) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.body) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    try {
      const error = JSON.parse(text) as { code?: string; message?: string };
      const code = error.code === "internal" ? codeOfUnhandled(Code.Internal, error.message ?? "") : undefined;
      if (code !== undefined && code !== Code.Internal) {
        const replaced = new ConnectError(error.message ?? "", code);
        const body = new TextEncoder().encode(JSON.stringify({ code: codeName(code), message: error.message }));
        header.set("content-length", String(body.length));
        return { ...response, status: httpStatusOf(replaced), body: (async function* () { yield body; })() };
      }
    } catch {
      // not JSON after all: pass it on unchanged
    }
    const original = new TextEncoder().encode(text);
    return { ...response, body: (async function* () { yield original; })() };
  }
  return response;
}
