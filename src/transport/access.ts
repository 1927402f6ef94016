import { createHash, timingSafeEqual } from "node:crypto";
import type { ServerHttp2Stream } from "node:http2";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Code } from "@connectrpc/connect";
import { clientOf, rateLimitClient } from "./client-address.js";
import { refusalOf, retryLater } from "./errors.js";
import { createTokenBuckets } from "./token-buckets.js";
import type { ApiKey } from "../api-keys.js";
import { ConnectError, type Interceptor } from "@connectrpc/connect";

export interface AccessOptions {
  apiKeys: readonly ApiKey[];
  /** Requests per second per key (or per client address without keys); 0 turns limiting off. */
  rateLimitPerSecond: number;
  /** Requests a client may make at once above the steady rate. */
  rateLimitBurst: number;
}

/** The rate limit of requests that carry more work after they were admitted. */
export interface RateLimit {
  /**
   * Takes one more token for a unit of work inside an admitted request (a frame of a Sync stream or
   * a WebSocket) from the request's client: 0, or the whole seconds until it will have one.
   */
  waitBeforeMore(request: FastifyRequest): number;
}

/** The refusal of a request, or of a frame of a stream, beyond its client's rate limit. */
export function rateLimitExceeded(waitSeconds: number): ConnectError {
  return retryLater(`rate limit exceeded; retry in ${waitSeconds} s`, Code.ResourceExhausted, waitSeconds);
}

/** The WebSocket route, whose clients may present their key in the query. */
export const REALTIME_PATH = "/ws/realtime";
/** The query parameter /ws/realtime also takes the API key in (presentedKey). */
export const KEY_QUERY_PARAMETER = "api_key";

/** Paths anyone may call: load balancers and orchestrators probe them without credentials. */
const OPEN_PATHS = /^\/health$|^\/metrics$|^\/demo$|^\/grpc\.health\.v1\.Health\//;

/** A CORS preflight or a probe: answered to anyone, at once, whatever the limits. */
export function isOpenRequest(request: FastifyRequest): boolean {
  return request.method === "OPTIONS" || OPEN_PATHS.test(request.url.split("?")[0]);
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * API-key authentication and rate limiting in front of every protocol and route but health. Keys
 * come as `authorization: Bearer <key>` or `x-api-key`, and are compared in constant time (digests
 * of equal length, every key compared). Errors are answered in the caller's protocol.
 */
export function registerAccessControl(app: FastifyInstance, options: AccessOptions): RateLimit {
  const keys = options.apiKeys.map((k) => ({ ...k, digest: digest(k.key) }));
  const buckets = createTokenBuckets(options.rateLimitPerSecond, options.rateLimitBurst);

  function findKey(presented: string): (typeof keys)[number] | undefined {
    const d = digest(presented);
    let found: (typeof keys)[number] | undefined;
    for (const k of keys) if (timingSafeEqual(d, k.digest) && found === undefined) found = k;
    return found;
  }

  app.addHook("onRequest", async (request, reply) => {
    if (isOpenRequest(request)) return;
    let client: string;
    if (keys.length > 0) {
      const presented = presentedKey(request);
      const key = presented === undefined ? undefined : findKey(presented);
      if (key === undefined) {
        return deny(request, reply, new ConnectError("missing or invalid API key (authorization: Bearer <key> or x-api-key)", Code.Unauthenticated));
      }
      request.apiKey = key;
      client = `key:${key.key}`;
    } else {
      // request.ip is the client's address, also behind a trusted proxy (FACE_TRUSTED_PROXIES).
      client = rateLimitClient(request.ip);
    }
    request.rateLimitClient = client;
    const wait = buckets.take(client);
    if (wait > 0) return deny(request, reply, rateLimitExceeded(wait));
  });

  return {
    waitBeforeMore(request) {
      return buckets.take(clientOf(request));
    },
  };
}

declare module "fastify" {
  interface FastifyRequest {
    /** The API key the request authenticated with, when keys are configured. */
    apiKey?: ApiKey;
    /** Whose token bucket the request drew from (its key, or its address without keys). */
    rateLimitClient?: string;
  }
}

/**
 * The API key of a request. Browsers cannot set headers on a WebSocket, so /ws/realtime also takes
 * it as the `api_key` query parameter (and only there: URLs end up in logs).
 */
export function presentedKey(request: FastifyRequest): string | undefined {
  const fromHeaders = keyFromHeaders((name) => {
    const value = request.headers[name];
    return typeof value === "string" ? value : undefined;
  });
  if (fromHeaders !== undefined || request.routeOptions.url !== REALTIME_PATH) return fromHeaders;
  const fromQuery = (request.query as Record<string, unknown> | undefined)?.[KEY_QUERY_PARAMETER];
  return typeof fromQuery === "string" && fromQuery !== "" ? fromQuery : undefined;
}

/** The API key a request presents, from `authorization: Bearer` or `x-api-key`. */
function keyFromHeaders(get: (name: string) => string | undefined): string | undefined {
  const auth = get("authorization");
  if (auth !== undefined && /^Bearer /i.test(auth)) return auth.slice(7).trim();
  const header = get("x-api-key");
  return header !== undefined && header !== "" ? header : undefined;
}

/**
 * Keys bound to collections (`key:a|b`) may only name those collections: an RPC whose request has
 * a `collection` field outside the key's list gets PermissionDenied. Authentication itself happened
 * in the onRequest hook; this runs where the request message is parsed.
 */
export function createCollectionScopeInterceptor(apiKeys: readonly ApiKey[]): Interceptor {
  const scoped = apiKeys.filter((k) => k.collections !== undefined).map((k) => ({ ...k, digest: digest(k.key) }));
  return (next) => async (req) => {
    if (scoped.length === 0) return next(req);
    const presented = keyFromHeaders((name) => req.header.get(name) ?? undefined);
    if (presented === undefined) return next(req);
    const d = digest(presented);
    const key = scoped.find((k) => timingSafeEqual(d, k.digest));
    if (key === undefined) return next(req);
    const check = (message: { collection?: unknown }) => {
      if (typeof message.collection !== "string") return;
      const collection = message.collection === "" ? "default" : message.collection;
      if (!key.collections!.includes(collection)) {
        throw new ConnectError(`this API key may not use collection ${JSON.stringify(collection)}`, Code.PermissionDenied);
      }
    };
    if (!req.stream) {
      // Collection management names its collection `name`; listing every collection is not for scoped keys.
      if (req.method.name === "ListCollections") throw new ConnectError("this API key may not list collections", Code.PermissionDenied);
      const message = req.message as { collection?: unknown; name?: unknown };
      check(req.method.name.endsWith("Collection") ? { collection: message.name } : message);
      return next(req);
    }
    // A stream is checked message by message: each frame names its collection.
    const messages = req.message;
    return next({
      ...req,
      message: (async function* () {
        for await (const m of messages) {
          check(m as { collection?: unknown });
          yield m;
        }
      })(),
    });
  };
}

/** Answers an error before any handler ran, in the protocol the client speaks (errors.ts). */
export function deny(request: FastifyRequest, reply: FastifyReply, error: ConnectError): FastifyReply {
  const answer = refusalOf(String(request.headers["content-type"] ?? ""), error, String(request.id));
  const stream = (request.raw as unknown as { stream?: ServerHttp2Stream }).stream;
  if (answer.body === undefined && stream !== undefined) {
    // A gRPC answer with no message: gRPC clients read its status only from a trailers-only
    // response, one HEADERS frame that ends the stream. Sent by fastify, the headers and the end of
    // the stream came in two frames, and grpcio reported UNKNOWN (or INTERNAL) for every refusal.
    reply.hijack();
    const set = Object.entries(reply.getHeaders()).map(([name, value]) => [name, typeof value === "number" ? String(value) : value]);
    stream.respond({ ...Object.fromEntries(set), ...answer.headers, ":status": answer.status }, { endStream: true });
    return reply;
  }
  return reply.status(answer.status).headers(answer.headers).send(answer.body);
}
