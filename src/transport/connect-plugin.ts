import { setMaxListeners } from "node:events";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import * as protoConnect from "@connectrpc/connect/protocol-connect";
import * as protoGrpc from "@connectrpc/connect/protocol-grpc";
import * as protoGrpcWeb from "@connectrpc/connect/protocol-grpc-web";
import { validateReadWriteMaxBytes, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { binaryRequestOf, GRPC_WEB_TEXT, textResponseOf } from "./grpc-web-text.js";
import { binaryRequestOfJson, isConnectJsonWithPhotos, jsonResponseOf } from "./connect-json.js";
import { capLongDeadline } from "./long-deadlines.js";
import { reclassifyParseError } from "./parse-error-code.js";
import { countedChunks, type ReceiveBudget } from "./receive-budget.js";
import { clientOf } from "./client-address.js";
import { countedCompressions, countingDecompressed } from "./counted-decompression.js";

export interface ConnectPluginOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  contextValues: (request: FastifyRequest, reply: FastifyReply) => ContextValues;
  /** On close, streams still open after this long are aborted (long-lived Sync streams). */
  shutdownTimeoutMs: number;
  /** Bounds the bytes of request messages being received, across all requests. */
  receiveBudget: ReceiveBudget;
}

/** Bodies of messages that each carry a 5-byte prefix with their length (gRPC, gRPC-Web, Connect streams). */
const ENVELOPED = /^application\/(grpc|connect\+)/i;

/**
 * Serves Connect routes on fastify, as @connectrpc/connect-fastify does, with one correction:
 * connect-es answers a request body that is not valid protobuf with Internal ("parse binary: ..."),
 * a server fault; it is the client's, so it is answered InvalidArgument (HTTP 400 on Connect).
 */
export async function connectPlugin(app: FastifyInstance, options: ConnectPluginOptions): Promise<void> {
  const shutdown = new AbortController();
  // connect-es links every open call's signal to this one: more than ten calls at once are normal,
  // not the listener leak Node would otherwise warn of in the log.
  setMaxListeners(0, shutdown.signal);
  app.addHook("preClose", (done) => {
    setTimeout(() => shutdown.abort(new ConnectError("the server is shutting down", Code.Unavailable)), options.shutdownTimeoutMs).unref();
    done();
  });
  const acceptCompression = options.acceptCompression ?? countedCompressions;
  const router = createConnectRouter({ ...options, acceptCompression, shutdownSignal: shutdown.signal });
  // Connect JSON answers written here (connect-json.ts) are compressed as the router would.
  const answerCompression = { offered: acceptCompression, minBytes: validateReadWriteMaxBytes(options.readMaxBytes, options.writeMaxBytes, options.compressMinBytes).compressMinBytes };
  options.routes(router);
  // Connect reads request bodies itself; fastify must not parse them (scoped to this plugin).
  app.addContentTypeParser(
    [protoConnect.contentTypeUnaryJson, protoConnect.contentTypeStreamJson, protoGrpcWeb.contentTypeProto, protoGrpcWeb.contentTypeJson, protoGrpc.contentTypeProto, protoGrpc.contentTypeJson],
    (_request, _payload, done) => done(null, undefined),
  );
  for (const regexp of [protoGrpc.contentTypeRegExp, protoGrpcWeb.contentTypeRegExp, protoConnect.contentTypeRegExp, GRPC_WEB_TEXT]) {
    app.addContentTypeParser(regexp, (_request, _payload, done) => done(null, undefined));
  }
  for (const handler of router.handlers) {
    app.all(handler.requestPath, async (request, reply) => {
      const client = clientOf(request);
      // Until the answer is sent: a stream's messages are decompressed as its answer is written.
      await countingDecompressed(options.receiveBudget.open(reply.raw, client), async () => {
        try {
          keepAuthorityParsable(request.raw.headers);
          const universal = universalRequestFromNodeRequest(request.raw, reply.raw, request.body as never, options.contextValues(request, reply));
          capLongDeadline(universal.header);
          // connect-es stops reading a message over the limit by ending its iterator, which destroys
          // the request by default: reading it this way keeps it, so the rest can be drained below.
          const contentType = String(request.headers["content-type"] ?? "");
          const text = GRPC_WEB_TEXT.test(contentType);
          const body =
            request.body === undefined
              ? countedChunks(request.raw.iterator({ destroyOnReturn: false }), options.receiveBudget.open(reply.raw, client), !text && ENVELOPED.test(contentType))
              : universal.body;
          const readMaxBytes = options.readMaxBytes ?? Infinity;
          let binary = text ? await binaryRequestOf({ ...universal, body }, readMaxBytes) : { ...universal, body };
          let fromJson = false;
          if (!text && isConnectJsonWithPhotos(handler.method, universal)) ({ request: binary, translated: fromJson } = await binaryRequestOfJson(handler.method, binary, readMaxBytes));
          const response = await handler(binary);
          // fastify keeps its headers (x-request-id, CORS) until reply.send, which is not used here.
          for (const [key, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(key, value);
          const corrected = await reclassifyParseError(response);
          const answer = text ? textResponseOf(corrected) : fromJson ? await jsonResponseOf(handler.method, corrected, universal.header.get("accept-encoding"), answerCompression) : corrected;
          await universalResponseToNodeResponse(handler.method.methodKind === "unary" ? afterRequestRead(answer, request.raw) : answer, reply.raw);
        } catch (e) {
          if (ConnectError.from(e).code !== Code.Aborted) request.log.error({ err: e, rpc: handler.method.name }, "rpc transport failed");
        }
      });
    });
  }
}

/** What stands in for a request's authority that is not a host: the service never reads it. */
const PLACEHOLDER_AUTHORITY = "authority.invalid";

/**
 * connect-es builds each request's URL from its authority (`:authority`, or `Host`), which the
 * service never reads. One that does not parse failed the call with an empty 200 answer and an
 * error in the log: Node's own HTTP/2 client (connect-es's, for one) sends an IPv6 literal without
 * its brackets (`::1:8080`), so no Node client could call the service at an IPv6 address. One
 * without any authority failed the same way.
 */
function keepAuthorityParsable(headers: Record<string, string | string[] | undefined>): void {
  for (const name of [":authority", "host"]) {
    const authority = headers[name];
    if (typeof authority === "string" && !URL.canParse(`http://${authority}`)) headers[name] = PLACEHOLDER_AUTHORITY;
  }
  // HTTP/1.0 has no Host (HAProxy's health checks send none), and an HTTP/2 request may have neither.
  if (headers[":authority"] === undefined && headers.host === undefined) headers.host = PLACEHOLDER_AUTHORITY;
}

/**
 * How much of a request that was refused before it was read (a message over the size limit) is
 * still read, and for how long, before the answer goes out.
 */
const UNREAD_DRAIN_MAX_BYTES = 256 * 1024 * 1024;
const UNREAD_DRAIN_MAX_MS = 10_000;

/**
 * Holds a unary answer until the request has been read to its end (discarding it), within bounds.
 * A client that sent a message over the limit still has it queued: Node's HTTP/2 client counts that
 * queue against its session memory (10 MB by default) and, while over it, resets every stream whose
 * answer headers arrive with ENHANCE_YOUR_CALM: the refused call and every later call of that
 * connection. Reading the rest lets the queue drain first, so the client gets ResourceExhausted and
 * keeps its connection; HTTP/1.1 clients likewise get the answer instead of a reset while writing.
 */
function afterRequestRead(response: UniversalServerResponse, request: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): UniversalServerResponse {
  const body = response.body;
  if (body === undefined) return response;
  return {
    ...response,
    body: (async function* () {
      const chunks = body[Symbol.asyncIterator]();
      let chunk = await chunks.next();
      await drainUnread(request);
      for (; chunk.done !== true; chunk = await chunks.next()) yield chunk.value;
    })(),
  };
}

function drainUnread(request: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (request.readableEnded || request.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let read = 0;
    const done = () => {
      clearTimeout(timer);
      request.off("data", onData).off("end", done).off("close", done).off("error", done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > UNREAD_DRAIN_MAX_BYTES) done();
    };
    const timer = setTimeout(done, UNREAD_DRAIN_MAX_MS);
    request.on("data", onData).once("end", done).once("close", done).once("error", done);
    request.resume();
  });
}
