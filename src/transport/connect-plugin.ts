import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import * as protoConnect from "@connectrpc/connect/protocol-connect";
import * as protoGrpc from "@connectrpc/connect/protocol-grpc";
import * as protoGrpcWeb from "@connectrpc/connect/protocol-grpc-web";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

export interface ConnectPluginOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  contextValues: (request: FastifyRequest, reply: FastifyReply) => ContextValues;
  /** On close, streams still open after this long are aborted (long-lived Sync streams). */
  shutdownTimeoutMs: number;
}

/**
 * Serves Connect routes on fastify, as @connectrpc/connect-fastify does, with one correction:
 * connect-es answers a request body that is not valid protobuf with Internal ("parse binary: ..."),
 * a server fault; it is the client's, so it is answered InvalidArgument (HTTP 400 on Connect).
 */
export async function connectPlugin(app: FastifyInstance, options: ConnectPluginOptions): Promise<void> {
  const shutdown = new AbortController();
  app.addHook("preClose", (done) => {
    setTimeout(() => shutdown.abort(new ConnectError("the server is shutting down", Code.Unavailable)), options.shutdownTimeoutMs).unref();
    done();
  });
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options, shutdownSignal: shutdown.signal });
  options.routes(router);
  // Connect reads request bodies itself; fastify must not parse them (scoped to this plugin).
  app.addContentTypeParser(
    [protoConnect.contentTypeUnaryJson, protoConnect.contentTypeStreamJson, protoGrpcWeb.contentTypeProto, protoGrpcWeb.contentTypeJson, protoGrpc.contentTypeProto, protoGrpc.contentTypeJson],
    (_request, _payload, done) => done(null, undefined),
  );
  for (const regexp of [protoGrpc.contentTypeRegExp, protoGrpcWeb.contentTypeRegExp, protoConnect.contentTypeRegExp]) {
    app.addContentTypeParser(regexp, (_request, _payload, done) => done(null, undefined));
  }
  for (const handler of router.handlers) {
    app.all(handler.requestPath, async (request, reply) => {
      try {
        const response = await handler(universalRequestFromNodeRequest(request.raw, reply.raw, request.body as never, options.contextValues(request, reply)));
        // fastify keeps its headers (x-request-id, CORS) until reply.send, which is not used here.
        for (const [key, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(key, value);
        await universalResponseToNodeResponse(await reclassifyParseError(response), reply.raw);
      } catch (e) {
        if (ConnectError.from(e).code !== Code.Aborted) request.log.error({ err: e, rpc: handler.method.name }, "rpc transport failed");
      }
    });
  }
}

const PARSE_FAILURE = /^parse binary/;

async function reclassifyParseError(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  // gRPC and gRPC-Web trailers-only answers carry the status in the headers.
  const header = response.header;
  if (header?.get("grpc-status") === String(Code.Internal) && PARSE_FAILURE.test(decodeURIComponent(header.get("grpc-message") ?? ""))) {
    header.set("grpc-status", String(Code.InvalidArgument));
  }
  // gRPC answers with a body end with trailers, filled in as the body is written.
  if (response.trailer !== undefined && response.body !== undefined) {
    const trailer = response.trailer;
    const body = response.body;
    return {
      ...response,
      body: (async function* () {
        yield* body;
        if (trailer.get("grpc-status") === String(Code.Internal) && PARSE_FAILURE.test(decodeURIComponent(trailer.get("grpc-message") ?? ""))) {
          trailer.set("grpc-status", String(Code.InvalidArgument));
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
      if (error.code === "internal" && PARSE_FAILURE.test(error.message ?? "")) {
        const body = new TextEncoder().encode(JSON.stringify({ code: "invalid_argument", message: error.message }));
        header.set("content-length", String(body.length));
        return { ...response, status: 400, body: (async function* () { yield body; })() };
      }
    } catch {
      // not JSON after all: pass it on unchanged
    }
    const original = new TextEncoder().encode(text);
    return { ...response, body: (async function* () { yield original; })() };
  }
  return response;
}
