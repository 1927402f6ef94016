import { startTelemetry } from "./telemetry.js";
import { ConfigError, loadConfig } from "./config.js";
import { buildApp } from "./app.js";
import { createFaceEngine } from "./engine/pipeline.js";
import { createOnnxRuntime } from "./runtime/onnx.js";
import { openDatabase } from "./store/database.js";
import { exitCodeOf } from "./exit-codes.js";
import { blockedRange } from "./service/network-policy.js";
import { createLogger, startupStep } from "./logger.js";
import type { FastifyBaseLogger } from "fastify";

// Telemetry first: spans made while the app is built already have a provider.
const telemetry = startTelemetry();

let config;
try {
  config = loadConfig();
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

const logger = createLogger(config.logLevel);
const started = performance.now();
const runtime = createOnnxRuntime({ intraOpThreads: config.onnxIntraOpThreads, workers: config.onnxWorkers });
const engine = createFaceEngine({ runtime, limits: { maxPixels: config.maxImagePixels }, stage: telemetry.stage });
// The database (opened and migrated) and the models (loaded into every inference worker) are
// independent: they start together, and each says when it is ready.
const databaseOpened = startupStep(logger, "database opened and migrated", () => openDatabase({
  ...config,
  onReadReplicaUnavailable: (err) => logger.warn({ err }, "read replica not answering: searches go to the primary for a while"),
  driverLog: (level, message) => logger[level]({ source: "knex" }, message),
}), (db) => ({ database: db.kind }));
const modelsLoaded = startupStep(logger, "models loaded", () => engine.warmUp(), () => ({ workers: config.onnxWorkers }));
const [database] = await Promise.all([databaseOpened, modelsLoaded]).catch(async (e: unknown) => {
  // Exiting while the inference workers still load their models aborts the process (onnxruntime
  // throws from native code), hiding the reason: they finish first.
  const [opened] = await Promise.allSettled([databaseOpened, modelsLoaded]);
  return abandonStart(e, [...(opened.status === "fulfilled" ? [opened.value] : []), runtime]);
});
const app = await startupStep(logger, "routes built", () => buildApp({ config, engine, database, telemetry, logger: logger as FastifyBaseLogger })).catch((e: unknown) => abandonStart(e, [database, runtime]));
await startupStep(logger, "listening", () => app.listen({ port: config.port, host: config.host }), (address) => ({ address, startedInMs: Math.round(performance.now() - started) }))
  .catch((e: unknown) => abandonStart(e, [app, database, runtime]));
if (config.apiKeys.length === 0 && !isLoopback(config.host)) {
  logger.warn({ host: config.host }, "no FACE_API_KEYS: anyone who can reach this port may register, recognize, export and delete people; set FACE_API_KEYS, or HOST=127.0.0.1 to listen on this machine only");
}

/** Whether `host` (HOST) is reachable from this machine alone: the outbound policy's judgment of an address, so ::ffff:127.0.0.1 is too. */
function isLoopback(host: string): boolean {
  return host === "localhost" || blockedRange(host) === "loopback";
}

/**
 * A start-up step failed (startupStep logged which and why): closes what had opened, then exits
 * (exit-codes.ts). Until 2026-12-07 a database refusing connections or a port taken ended in an
 * uncaught exception: a stack trace on stderr and no line in the log.
 */
async function abandonStart(e: unknown, opened: { close(): Promise<unknown> }[]): Promise<never> {
  for (const part of opened) await part.close().catch(() => {});
  process.exit(exitCodeOf(e));
}

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, "shutting down: finishing in-flight requests");
  const forced = setTimeout(() => {
    app.log.error("in-flight requests did not finish in time; exiting");
    process.exit(1);
  }, config!.shutdownTimeoutMs + 5_000);
  forced.unref();
  try {
    await app.close();
    await database.close();
    await runtime.close();
    await telemetry.shutdown();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
// A parent that died without passing a signal on (a killed `npm start`, a shell wrapper) leaves the
// service orphaned: it stops too rather than hold the port.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void shutdown("parent exited");
}, 1_000).unref();
