import { create } from "@bufbuild/protobuf";
import { type ConnectRouter, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { FastifyBaseLogger } from "fastify";
import {
  FaceService,
  FrameErrorSchema,
  SyncResponseSchema,
  type SyncRequest,
  type SyncResponse,
} from "../../gen/face/v1/face_pb.js";
import { HttpBodySchema } from "../../gen/google/api/httpbody_pb.js";
import type { FaceService as FaceUseCases } from "../service/face-service.js";
import type { createWebhookService } from "../service/webhooks.js";
import type { createCollectionService } from "../service/collections.js";
import { pipelineInOrder } from "./ordered-pipeline.js";
import type { FlameGraphEntry, Telemetry } from "../telemetry.js";
import { runInCall } from "../call-signal.js";
import { callEndOf, clientGone, frameErrorOf, isServerFault, toConnectError } from "./errors.js";
import { callClientKey, clientSideKey, moreWorkKey, requestIdKey } from "./call-context.js";
import { rateLimitExceeded } from "./access.js";
import { createMetricsInterceptor } from "./metrics.js";
import { createFloat32Interceptor } from "./float32.js";

/**
 * Frames of one Sync stream processed at once. A frame's work takes turns between the decoding
 * threads, an inference worker and the main thread (tracking, the database): with two in flight one
 * stream kept about 1.4 of the 2 cores busy. Three, on the clip sent as fast as answered
 * (a scratch script, five alternated pairs of three passes, 2026-12-03): 122.2 -> 134.4 frames/s on
 * average (the first three pairs 116.0 -> 134.3, the last two, in a calmer hour, 131.5 -> 134.7);
 * four 145.9 against three's 135.4 (two pairs), not taken: a frame of a stream the service cannot
 * keep up with waits behind the others in flight, and a camera wants its answers early.
 */
const FRAMES_IN_FLIGHT = 3;

export interface FaceRoutesDeps {
  service: FaceUseCases;
  /** Checks that run on every RPC after the error mapping (e.g. API-key collection scopes). */
  interceptors: Interceptor[];
  webhooks: ReturnType<typeof createWebhookService>;
  collections: ReturnType<typeof createCollectionService>;
  telemetry: Telemetry;
  logger: FastifyBaseLogger;
}

/** Converts flame-graph entries to their proto shape. */
function flameGraphField(entries: FlameGraphEntry[]) {
  return entries.map((e) => ({ label: e.label, durationMs: e.durationMs, parent: e.parent, startMs: e.startMs }));
}

/**
 * Maps every error to a ConnectError with a safe message, and logs the ones the client cannot fix
 * (Internal, Unknown, Unavailable) with their cause and the request id.
 */
export function createErrorInterceptor(logger: FastifyBaseLogger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      const error = toConnectError(e);
      if (isServerFault(error)) {
        logger.error({ err: error.cause ?? e, rpc: req.method.name, reqId: req.contextValues.get(requestIdKey) }, "rpc failed");
      }
      throw error;
    }
  };
}

/**
 * The signal of one call's work: it fires when the client's deadline passes, the client cancels or
 * goes away, or the server shuts down, with the FaceError to stop with; not when connect-es ends a
 * completed call. `release` takes its listeners off the signals it follows, which may outlive the
 * call: calls that bring no client side of their own (REST, WebSocket frames, through the
 * in-process router) share the context key's default signal, which kept every call's listener, and
 * with it the call (by hand: 10.6 KiB of heap a REST call, still there after a full collection).
 */
function workSignalOf(signal: AbortSignal, contextValues: ContextValues): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const end = () => {
    const ended = callEndOf(signal.reason);
    if (ended !== undefined) controller.abort(ended);
  };
  const gone = contextValues.get(clientSideKey).gone;
  const canceled = () => controller.abort(callEndOf(clientGone()));
  if (signal.aborted) end();
  else signal.addEventListener("abort", end, { once: true });
  if (gone?.aborted) canceled();
  else gone?.addEventListener("abort", canceled, { once: true });
  return {
    signal: controller.signal,
    release() {
      signal.removeEventListener("abort", end);
      gone?.removeEventListener("abort", canceled);
    },
  };
}

/** Runs a unary call's handler as a call that ends with its client (call-signal.ts). */
export function createCallSignalInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const work = workSignalOf(req.signal, req.contextValues);
    try {
      return await runInCall(work.signal, () => next(req), req.contextValues.get(callClientKey));
    } finally {
      work.release();
    }
  };
}

/** Registers face.v1.FaceService on a Connect router: transport shapes in, use cases, transport shapes out. */
export function createFaceRoutes(deps: FaceRoutesDeps): (router: ConnectRouter) => void {
  const { service, telemetry } = deps;

  /** Runs one RPC in its own trace and returns the result with its flame graph and total time. */
  async function timed<T extends object>(name: string, work: () => Promise<T>) {
    const { result, flameGraph, totalMs } = await telemetry.traceRequest(`FaceService/${name}`, work);
    return { ...result, flameGraph: flameGraphField(flameGraph), serverProcessTimeMs: totalMs };
  }

  async function syncOne(request: SyncRequest, session: ReturnType<FaceUseCases["openSyncSession"]>, signal: AbortSignal, context: HandlerContext): Promise<SyncResponse> {
    try {
      // Each frame is a call's worth of work: it draws from the client's rate limit like a call
      // (the stream itself took one token when it opened).
      const wait = context.values.get(moreWorkKey)();
      if (wait > 0) throw rateLimitExceeded(wait);
      const response = await runInCall(signal, () => timed("Sync", () => session.frame(request)), context.values.get(callClientKey));
      return create(SyncResponseSchema, { ...response, frameId: request.frameId });
    } catch (e) {
      // A bad frame is answered with its error; the stream goes on.
      const error = toConnectError(e);
      if (isServerFault(error)) deps.logger.error({ err: error.cause ?? e }, "sync frame failed");
      return create(SyncResponseSchema, {
        frameId: request.frameId,
        error: create(FrameErrorSchema, frameErrorOf(error)),
      });
    }
  }

  return (router) => {
    router.service(
      FaceService,
      {
        register: (req) => timed("Register", () => service.register(req)),
        recognize: (req) => timed("Recognize", () => service.recognize(req)),
        verify: (req) => service.verify(req),
        detect: (req) => timed("Detect", () => service.detect(req)),
        extractFeatures: (req) => timed("ExtractFeatures", () => service.extractFeatures(req)),
        analyze: (req) => timed("Analyze", () => service.analyze(req)),
        syncFrame: async (req) => {
          const response = await timed("SyncFrame", () => service.syncFrame(req));
          return { ...response, frameId: req.frameId };
        },
        async *sync(requests: AsyncIterable<SyncRequest>, context: HandlerContext) {
          // FRAMES_IN_FLIGHT frames at a time, answered in order; reading waits while answers wait
          // to be taken, so a slow client holds back the stream, not memory.
          const session = service.openSyncSession();
          const work = workSignalOf(context.signal, context.values);
          try {
            // The call's signal also fires when the server shuts down: a camera keeping its stream open
            // (and sending nothing) is then told UNAVAILABLE instead of holding the shutdown forever.
            for await (const response of pipelineInOrder(requests, FRAMES_IN_FLIGHT, (request) => syncOne(request, session, work.signal, context), context.signal)) {
              if (context.signal.aborted) throw context.signal.reason;
              yield response;
            }
          } finally {
            work.release();
          }
        },
        listUsers: (req) => service.listUsers(req),
        getUserFace: async (req) => {
          const { bytes, contentType } = await service.getUserFace(req);
          return create(HttpBodySchema, { contentType, data: bytes });
        },
        deleteUser: (req) => service.deleteUser(req),
        exportUser: async (req) => {
          const exported = await service.exportUser(req);
          // The first page carries the person's webhook subscriptions (a collection holds at most 100).
          const { webhooks } = req.pageToken === "" ? await deps.webhooks.list({ identifier: exported.identifier, collection: exported.collection }) : { webhooks: [] };
          return { ...exported, webhooks };
        },
        createWebhook: (req) => deps.webhooks.create(req),
        listWebhooks: (req) => deps.webhooks.list(req),
        deleteWebhook: (req) => deps.webhooks.delete(req),
        correctMatch: (req) => service.correctMatch(req),
        createCollection: (req) => deps.collections.create(req),
        listCollections: (req) => deps.collections.list(req),
        deleteCollection: (req) => deps.collections.delete(req),
      },
      { interceptors: [createMetricsInterceptor(), createErrorInterceptor(deps.logger), createFloat32Interceptor(), createCallSignalInterceptor(), ...deps.interceptors] },
    );
  };
}

