import { startTelemetry } from "./telemetry.js";
import { ConfigError, loadConfig } from "./config.js";
import { buildApp } from "./app.js";
import { createFaceEngine } from "./engine/pipeline.js";
import { createOnnxRuntime } from "./runtime/onnx.js";
import { openDatabase } from "./store/database.js";

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

const runtime = createOnnxRuntime({ intraOpThreads: config.onnxIntraOpThreads, workers: config.onnxWorkers });
const engine = createFaceEngine({ runtime, limits: { maxPixels: config.maxImagePixels }, stage: telemetry.stage });
const [database] = await Promise.all([openDatabase(config), engine.warmUp()]);
const app = await buildApp({ config, engine, database, telemetry });
await app.listen({ port: config.port, host: config.host });

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
