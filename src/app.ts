import { randomUUID } from "node:crypto";
import { cors as connectCors, type ConnectRouter } from "@connectrpc/connect";
import fastifyCors from "@fastify/cors";
import fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Config } from "./config.js";
import type { FaceEngine } from "./engine/pipeline.js";
import type { Database } from "./store/database.js";
import { openStoredImages } from "./store/open-stored-images.js";
import { createStaleFaces } from "./store/stale-faces.js";
import { EMBEDDING_MODEL } from "./runtime/models.js";
import { createIdentityStore } from "./store/identities.js";
import { createDetectionLog } from "./store/detections.js";
import { createWebhookStore } from "./store/webhooks.js";
import { createWebhookDispatcher } from "./service/webhook-dispatcher.js";
import { createWebhookService } from "./service/webhooks.js";
import { createCollectionService } from "./service/collections.js";
import { createCollectionStore } from "./store/collections.js";
import { createFaceService } from "./service/face-service.js";
import { createAdmission } from "./service/admission.js";
import type { Telemetry } from "./telemetry.js";
import { createLogger } from "./logger.js";
import { createFaceRoutes } from "./transport/connect.js";
import { callContextValues, moreWorkKey } from "./transport/call-context.js";
import { createDualProtocolServer } from "./transport/dual-protocol-server.js";
import { connectPlugin } from "./transport/connect-plugin.js";
import { createHealthRoutes } from "./transport/health.js";
import { createReflectionRoutes, SERVED_SERVICES } from "./transport/reflection.js";
import { registerRestRoutes } from "./transport/rest.js";
import { registerMetricsRoute } from "./transport/metrics.js";
import { processMetrics } from "./metrics.js";
import { registerRealtimeRoute, registerWebSocketSupport } from "./transport/realtime.js";
import { registerDemoRoute } from "./transport/demo.js";
import { createCollectionScopeInterceptor, registerAccessControl } from "./transport/access.js";
import { registerOpenRequestLimit } from "./transport/open-requests.js";
import { answerClientError, answerRouterError, MAX_PATH_PARAMETER_LENGTH } from "./transport/router-errors.js";
import { connectionLimit, connectionsPerAddress, reportDroppedConnections } from "./transport/connection-limit.js";
import { createReceiveBudget } from "./transport/receive-budget.js";
import { trustedProxyMatcher } from "./transport/client-address.js";

export interface AppDeps {
  config: Config;
  engine: FaceEngine;
  database: Database;
  telemetry: Telemetry;
  /** The process's logger (main.ts makes it first); one from the configuration when absent. */
  logger?: FastifyBaseLogger;
}

/**
 * An image file with no row after this long belongs to a registration that was interrupted (the
 * file is written before the row commits); younger ones may be another instance's in-flight write.
 */
const ORPHAN_IMAGE_AGE_MS = 10 * 60_000;

/** Request ids a client may choose (they end up in logs): short and printable. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Paths of the RPCs of the given kinds. */
const pathsOf = (...kinds: string[]) =>
  new Set(SERVED_SERVICES.flatMap((service) => service.methods.filter((m) => kinds.includes(m.methodKind)).map((m) => `/${service.typeName}/${m.name}`)));
/** RPCs that take a stream of messages (Sync, reflection): open as long as their client sends. */
const REQUEST_STREAM_PATHS = pathsOf("client_streaming", "bidi_streaming");
const isRequestStream = (path: string) => REQUEST_STREAM_PATHS.has(path);
/** RPCs that answer with a stream of messages (Sync, reflection, health's Watch): open as long as they answer. */
const ANSWER_STREAM_PATHS = pathsOf("server_streaming", "bidi_streaming");
const isAnswerStream = (path: string) => ANSWER_STREAM_PATHS.has(path);

/**
 * Builds the fastify app serving face.v1.FaceService as gRPC, gRPC-Web and Connect (HTTP/1.1 and
 * h2c on one port), REST from the google.api.http annotations, the gRPC health service and
 * GET /health. It does not listen: main.ts (or a test) decides where.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, engine, database, telemetry } = deps;
  const maxConnections = connectionLimit(config.maxConnections);
  const app = fastify({
    serverFactory: (handler) =>
      createDualProtocolServer(handler, {
        requestTimeoutMs: config.requestTimeoutMs,
        keepAliveTimeoutMs: config.keepAliveTimeoutMs,
        streamsRequests: isRequestStream,
        streamsAnswers: isAnswerStream,
        pingIntervalMs: config.pingIntervalMs,
        maxOpenRequests: config.maxOpenRequests,
        maxConnectionsPerAddress: connectionsPerAddress(config.maxConnectionsPerAddress, maxConnections),
        isTrustedProxy: trustedProxyMatcher(config.trustedProxies),
      }),
    loggerInstance: deps.logger ?? (createLogger(config.logLevel) as FastifyBaseLogger),
    bodyLimit: config.maxMessageBytes,
    // Whose X-Forwarded-For names the client (request.ip): the rate limit's buckets and the logs.
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    requestIdHeader: false,
    routerOptions: { maxParamLength: MAX_PATH_PARAMETER_LENGTH },
    frameworkErrors: answerRouterError,
    clientErrorHandler: answerClientError,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
    },
  });
  app.server.maxConnections = maxConnections;
  reportDroppedConnections(app.server, app.log);

  // The dispatcher is woken by the outbox itself whenever a committed change wrote deliveries.
  const webhookStore = createWebhookStore(database.knex, { deliveriesWritten: () => dispatcher.kick(), soleWriter: database.kind === "pglite" });
  const dispatcher = createWebhookDispatcher(
    webhookStore,
    {
      maxAttempts: config.webhookMaxAttempts,
      retryBaseMs: config.webhookRetryBaseMs,
      timeoutMs: config.webhookTimeoutMs,
      pollMs: config.webhookPollMs,
      allowedHosts: config.webhookAllowedHosts,
    },
    app.log,
  );
  const { images, moved } = await openStoredImages(database, config.dataDir);
  if (moved.moved > 0) app.log.info({ moved: moved.moved }, "moved photo files into the database");
  if (moved.missing > 0) app.log.warn({ missing: moved.missing }, "photos neither in the database nor in FACE_DATA_DIR/images: GetUserFace and reembed cannot read them");
  const detections = createDetectionLog(database.knex, {
    flushAfterMs: config.detectionLogFlushMs,
    onWriteError: (err, entries, kept) => {
      processMetrics().detectionLogUnwritten.inc({ outcome: kept ? "kept" : "dropped" }, entries);
      app.log.warn({ err, entries }, kept ? "detection log entries not written yet; kept for the next try" : "detection log entries refused by the database; dropped");
    },
  });
  const { memory } = database;
  const identities = createIdentityStore(database.knex, images, {
    negativeMaxDistance: config.negativeMaxDistance,
    runSearch: (work) => database.runSearch(work),
    outbox: webhookStore,
    personalData: [detections, webhookStore],
    memory,
    userRemovals: database.userRemovals,
  });
  const service = createFaceService({
    config,
    engine,
    identities,
    detections,
    publish: (event) => webhookStore.enqueue(event),
    stage: telemetry.stage,
    admission: createAdmission({ maxInFlight: config.maxInFlight, maxQueued: config.maxQueued }),
  });
  const webhooks = createWebhookService(webhookStore, { allowedHosts: config.webhookAllowedHosts });
  const collections = createCollectionService(createCollectionStore(database.knex, images, memory === undefined ? [detections] : [detections, memory], database.userRemovals));
  const faceRoutes = createFaceRoutes({ service, webhooks, collections, telemetry, logger: app.log, interceptors: [createCollectionScopeInterceptor(config.apiKeys)] });
  // Retention of the detection log and of finished webhook deliveries: purged at start and then hourly.
  let retentionTimer: NodeJS.Timeout | undefined;
  const purgeExpired = async () => {
    if (config.detectionRetentionDays > 0) {
      await detections.purgeOlderThan(config.detectionRetentionDays).catch((err) => app.log.warn({ err }, "detection log purge failed"));
    }
    if (config.webhookRetentionDays > 0) {
      await webhookStore.purgeFinished(config.webhookRetentionDays).catch((err) => app.log.warn({ err }, "webhook delivery purge failed"));
    }
  };
  app.addHook("onReady", async () => {
    dispatcher.start();
    await purgeExpired();
    retentionTimer = setInterval(purgeExpired, 3_600_000).unref();
    // Counting scans the faces table: done in the background so a large gallery does not delay start.
    createStaleFaces(database.knex).count(EMBEDDING_MODEL).then(
      (stale) => stale > 0 && app.log.warn({ faces: stale }, "faces embedded by another model version are not comparable: run `npm run reembed`"),
      (err) => app.log.debug({ err }, "could not count faces of other model versions"),
    );
    memory?.holdAll().then(
      (held) => app.log.info({ ...held, maxFaces: config.exactSearchMaxFaces }, "collections held in memory for exact search (the others are searched through the index)"),
      (err) => app.log.warn({ err }, "could not read collections into memory: they are searched through the index"),
    );
    const removed = await images.sweepOrphans(ORPHAN_IMAGE_AGE_MS);
    if (removed > 0) app.log.warn({ removed }, "removed image files left by interrupted registrations");
  });
  app.addHook("onClose", async () => {
    clearInterval(retentionTimer);
    await dispatcher.stop();
    await detections.close();
  });
  const ready = async () => {
    await database.knex.raw("SELECT 1");
    return true;
  };
  const routes = (router: ConnectRouter) => {
    faceRoutes(router);
    createHealthRoutes(ready)(router);
    createReflectionRoutes()(router);
  };

  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  await registerWebSocketSupport(app, config.maxMessageBytes, config.shutdownTimeoutMs, config.pingIntervalMs);
  await app.register(fastifyCors, {
    origin: config.corsOrigins.includes("*") ? true : [...config.corsOrigins],
    methods: [...new Set([...connectCors.allowedMethods, "GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"])],
    allowedHeaders: [...connectCors.allowedHeaders, "Authorization", "X-Api-Key", "X-Request-Id"],
    // What clients read from answers: the request id, a refusal's reason, a retry delay, the next page.
    exposedHeaders: [...connectCors.exposedHeaders, "X-Request-Id", "X-Face-Reason", "Retry-After", "Link"],
    maxAge: 7200,
  });
  // After CORS, so a browser can read a 401 or 429 too.
  const rateLimit = registerAccessControl(app, { apiKeys: config.apiKeys, rateLimitPerSecond: config.rateLimitPerSecond, rateLimitBurst: config.rateLimitBurst });
  registerOpenRequestLimit(app, { maxOpen: config.maxOpenRequests, maxOpenPerClient: config.maxOpenRequestsPerClient });

  app.get("/health", async (_request, reply) => {
    const up = await ready().catch(() => false);
    return reply.status(up ? 200 : 503).send({ status: up ? "ok" : "unavailable", database: database.kind });
  });

  registerMetricsRoute(app);
  const receiveBudget = createReceiveBudget(config.maxReceivingBytes, config.maxReceivingBytesPerClient);
  registerRealtimeRoute(app, routes, rateLimit, receiveBudget);
  registerDemoRoute(app);

  await app.register(connectPlugin, {
    routes,
    readMaxBytes: config.maxMessageBytes,
    contextValues: (request, reply) => callContextValues(request, reply).set(moreWorkKey, () => rateLimit.waitBeforeMore(request)),
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    receiveBudget,
  });

  await app.register(async (scope) => registerRestRoutes(scope, { routes: faceRoutes, maxImageBytes: config.maxImageBytes, receiveBudget }));

  return app;
}
