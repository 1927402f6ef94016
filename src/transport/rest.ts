import { getOption, type DescMethod, type Message } from "@bufbuild/protobuf";
import type { ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { Readable } from "node:stream";
import multipart from "@fastify/multipart";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { FaceService } from "../../gen/face/v1/face_pb.js";
import { http as httpRule } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { HttpBodySchema } from "../../gen/google/api/httpbody_pb.js";
import { whenClosed } from "./when-closed.js";
import { clientGone, httpError, isFastifyError, restAnswerOf, toConnectError } from "./errors.js";
import { fieldNamed } from "./rest-fields.js";
import { carriesBody } from "./request-body.js";
import { messageToJson } from "./proto-json.js";
import { MULTIPART_LIMITS, requestMessage, type RestRequestShape } from "./rest-request.js";
import { countedChunks, type ReceiveBudget } from "./receive-budget.js";
import { runInCall } from "../call-signal.js";
import { clientOf } from "./client-address.js";

/** One REST route read from a google.api.http annotation. */
export interface RestBinding extends RestRequestShape {
  method: DescMethod;
  verb: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Fastify path: `{identifier}` becomes `:identifier`. */
  path: string;
  /** A response field sent as the whole body, or "" for the whole response. */
  responseBody: string;
}

/** Reads the REST bindings of every unary method of FaceService from its annotations. */
export function restBindings(): RestBinding[] {
  const bindings: RestBinding[] = [];
  for (const method of FaceService.methods) {
    if (method.methodKind !== "unary") continue;
    const rule: HttpRule = getOption(method, httpRule);
    const { case: verb, value } = rule.pattern;
    if (verb === undefined || verb === "custom") continue;
    const template = value as string;
    const pathParams = [...template.matchAll(/\{([a-z_.]+)(=[^}]*)?\}/g)].map((m) => m[1]);
    bindings.push({
      method,
      verb: verb.toUpperCase() as RestBinding["verb"],
      path: template.replace(/\{([a-z_.]+)(=[^}]*)?\}/g, ":$1"),
      pathParams,
      body: rule.body,
      responseBody: rule.responseBody,
    });
  }
  return bindings;
}

export interface RestOptions {
  /** The same Connect routes the RPC endpoints serve; REST calls go through them in memory. */
  routes: (router: ConnectRouter) => void;
  maxImageBytes: number;
  /** Bounds the bytes of request bodies being received, across all requests. */
  receiveBudget: ReceiveBudget;
}

/**
 * Serves the google.api.http bindings as REST on the same handlers: path and query parameters,
 * JSON bodies (proto JSON), multipart/form-data (file parts are the image fields, other parts are
 * fields; a name the request does not have is refused wherever it is), `response_body`, and
 * google.api.HttpBody answered raw.
 * Errors are an HTTP status plus {"code", "message", "requestId"} (errors.ts, restErrorBody).
 */
export async function registerRestRoutes(app: FastifyInstance, options: RestOptions): Promise<void> {
  const client = createClient(FaceService, createRouterTransport(options.routes)) as unknown as Record<
    string,
    (req: Message, opts: { headers: Record<string, string>; signal: AbortSignal }) => Promise<Message>
  >;

  const limits = { ...MULTIPART_LIMITS, fileSize: options.maxImageBytes };
  await app.register(multipart, { limits });

  app.setErrorHandler((error, request, reply) => {
    // fastify asks to close the connection after a body it could not read; HTTP/2 has no such
    // header (RFC 9113 8.2.2; Node dropped it with an UnsupportedWarning), and only the stream ends.
    if (request.raw.httpVersionMajor >= 2) reply.removeHeader("connection");
    // A ConnectError here is the receive budget's, raised while fastify read a JSON body.
    return sendError(reply, request, error instanceof ConnectError ? error : fastifyErrorToConnect(error as Error & { code?: string; statusCode?: number }, limits));
  });
  const bindings = restBindings();
  const routePatterns = bindings.map((b) => ({ verb: b.verb, pattern: pathPattern(b.path) }));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0];
    // A known path with another method is 405 with the methods it has (RFC 9110 15.5.6).
    const allowed = routePatterns.filter((r) => r.pattern.test(path)).map((r) => r.verb);
    // The patterns accept a trailing slash, which the routes do not: with the right method, the slash is what is wrong.
    if (allowed.includes(request.method as RestBinding["verb"])) {
      return sendError(reply, request, new ConnectError(`no route ${request.method} ${path}; without the trailing slash: ${path.replace(/\/+$/, "")}`, Code.NotFound));
    }
    if (allowed.length > 0) {
      reply.header("allow", [...new Set(allowed)].join(", "));
      return sendError(reply, request, httpError(405, Code.Unimplemented, `${request.method} is not allowed on ${path}; use ${allowed.join(" or ")}`));
    }
    return sendError(reply, request, new ConnectError(`no route ${request.method} ${path}`, Code.NotFound));
  });

  for (const binding of bindings) {
    app.route({
      method: binding.verb,
      url: binding.path,
      // Multipart bodies are read from the request itself (readMultipart counts them); JSON through this.
      preParsing: async (request, reply, payload) => {
        // Unread, a body on a route that takes none was as if not sent: DELETE /api/v1/users/bob
        // with {"collection": "staff"} deleted bob from the default collection.
        if (binding.body === "") {
          if (await carriesBody(request)) throw new ConnectError(takesNoBody(binding), Code.InvalidArgument);
          // Nothing for fastify to parse: with a content type (clients that send application/json
          // on every request) it parsed the empty body of a DELETE and refused it as empty JSON.
          delete request.headers["content-type"];
          return payload;
        }
        // Checked before fastify picks a body parser, which answered a bare "Unsupported Media Type"
        // to types it has none for.
        const contentType = request.headers["content-type"];
        if (contentType !== undefined && !ACCEPTED_BODY.test(contentType)) {
          throw httpError(415, Code.InvalidArgument, `content type ${contentType.split(";")[0].trim()} is not supported; send application/json or multipart/form-data`);
        }
        // REST reads bodies as sent; a compressed one was read as JSON and answered "not valid JSON".
        const coding = request.headers["content-encoding"]?.trim().toLowerCase();
        if (coding !== undefined && coding !== "" && coding !== "identity") {
          throw httpError(415, Code.InvalidArgument, `content-encoding ${coding} is not supported on REST routes; send the body uncompressed (gRPC and Connect take gzip)`);
        }
        if (request.isMultipart()) return payload;
        const counted = Readable.from(countedChunks(payload, options.receiveBudget.open(reply.raw, clientOf(request)), false), { objectMode: false });
        // fastify stops listening to a body over its size limit: an error after that must not go unheard.
        return counted.on("error", () => {});
      },
      handler: async (request, reply) => {
        const input = binding.method.input;
        let message: ReflectMessage;
        try {
          message = await requestMessage(binding, input, request, () => options.receiveBudget.open(reply.raw, clientOf(request)));
        } catch (e) {
          const error = isFastifyError(e) ? fastifyErrorToConnect(e, limits) : toConnectError(e);
          // The RPC interceptor logs the faults of a call; one in reading the request happens before it.
          if (error.code === Code.Internal) request.log.error({ err: e, route: binding.path }, "REST request could not be read");
          return sendError(reply, request, error);
        }
        const controller = new AbortController();
        whenClosed(reply.raw, () => {
          if (!reply.sent) controller.abort(clientGone());
        });
        try {
          const call = () => client[binding.method.localName](message.message, { headers: forwardedHeaders(request), signal: controller.signal });
          const response = await runInCall(controller.signal, call, clientOf(request));
          return sendResponse(reply, request, binding, response);
        } catch (e) {
          return sendError(reply, request, ConnectError.from(e));
        }
      },
    });
  }
}

/** Headers the RPC handlers read (request id, credentials for collection scopes). */
export function forwardedHeaders(request: FastifyRequest): Record<string, string> {
  const headers: Record<string, string> = { "x-request-id": String(request.id) };
  for (const name of ["authorization", "x-api-key"]) {
    const value = request.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return headers;
}

function sendResponse(reply: FastifyReply, request: FastifyRequest, binding: RestBinding, response: Message): FastifyReply {
  const output = binding.method.output;
  if (output.typeName === HttpBodySchema.typeName) {
    const body = response as unknown as { contentType: string; data: Uint8Array };
    // A client's uploaded bytes, served on the demo page's origin: a browser must not sniff them
    // into another type or run them as a page (a file that is both a JPEG and HTML).
    reply.header("x-content-type-options", "nosniff").header("content-security-policy", "default-src 'none'; sandbox");
    return reply.type(body.contentType || "application/octet-stream").send(Buffer.from(body.data));
  }
  const json = messageToJson(output, response, { alwaysEmitImplicit: true }) as Record<string, unknown>;
  if (binding.responseBody !== "") {
    // A body that is one field (GET /api/v1/users: the identifiers array) has no room for the next
    // page token: it travels as a Link header (RFC 8288), the same URL with page_token set.
    const token = (response as { nextPageToken?: unknown }).nextPageToken;
    if (typeof token === "string" && token !== "") {
      const next = new URL(request.url, "http://host");
      next.searchParams.set("page_token", token);
      reply.header("link", `<${next.pathname}${next.search}>; rel="next"`);
    }
    const field = fieldNamed(output, binding.responseBody);
    return reply.send(field ? json[field.jsonName] : json);
  }
  return reply.send(json);
}

/** The refusal of a body on a route that takes none, saying where its fields go. */
function takesNoBody(binding: RestBinding): string {
  const inQuery = binding.method.input.fields.map((f) => f.name).filter((name) => !binding.pathParams.includes(name));
  const route = `${binding.verb} ${binding.path.replace(/:([a-z_.]+)/g, "{$1}")}`;
  return inQuery.length === 0 ? `${route} takes no body` : `${route} takes no body; give ${inQuery.join(", ")} in the query (?${inQuery[0]}=...)`;
}

/** Bodies REST reads: proto JSON and multipart/form-data. */
const ACCEPTED_BODY = /^\s*(application\/json|multipart\/form-data)\s*(;|$)/i;

/** A fastify path (`/api/v1/users/:identifier/face`) as a pattern matching request paths. */
function pathPattern(path: string): RegExp {
  const escaped = path.split(/(:[a-z_.]+)/).map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${escaped.join("")}/?$`);
}

/** The one JSON shape of every REST error (errors.ts). */
export function sendError(reply: FastifyReply, request: FastifyRequest, error: ConnectError): FastifyReply {
  const answer = restAnswerOf(error, String(request.id));
  return reply.status(answer.status).headers(answer.headers).send(answer.body);
}

/** What a multipart limit error of @fastify/multipart (its own messages say "reach files limit") means. */
function multipartLimitMessage(code: string | undefined, limits: typeof MULTIPART_LIMITS & { fileSize: number }): string | undefined {
  switch (code) {
    case "FST_FILES_LIMIT":
      return `at most ${limits.files} file parts per request (image, and image2 for Verify)`;
    case "FST_PARTS_LIMIT":
      return `at most ${limits.parts} parts per multipart request`;
    case "FST_FIELDS_LIMIT":
      return `at most ${limits.fields} non-file fields per multipart request`;
    case "FST_REQ_FILE_TOO_LARGE":
      return `a file part is more than the limit of ${limits.fileSize} bytes`;
    default:
      return undefined;
  }
}

/** Fastify's own errors (body too large, bad JSON, wrong content type) in the service's terms. */
function fastifyErrorToConnect(error: { code?: string; statusCode?: number; message: string }, limits: typeof MULTIPART_LIMITS & { fileSize: number }): ConnectError {
  const status = error.statusCode ?? 500;
  let code = Code.Internal;
  if (status === 413 || multipartLimitMessage(error.code, limits) !== undefined) code = Code.ResourceExhausted;
  else if (status === 415 || status === 400) code = Code.InvalidArgument;
  else if (status === 404) code = Code.NotFound;
  else if (status === 429) code = Code.ResourceExhausted;
  if (status >= 500) return new ConnectError("internal error", code);
  // What fastify answered stays the HTTP status (a multipart limit is 413 whatever fastify said).
  return httpError(code === Code.ResourceExhausted && status !== 429 ? 413 : status, code, multipartLimitMessage(error.code, limits) ?? error.message);
}
