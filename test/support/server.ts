import { mkdtemp, rm } from "node:fs/promises";
import { after, before } from "node:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/app.js";
import { loadConfig, type Config } from "../../src/config.js";
import { createFaceEngine, type FaceEngine } from "../../src/engine/pipeline.js";
import { createOnnxRuntime } from "../../src/runtime/onnx.js";
import { openDatabase, type Database } from "../../src/store/database.js";
import { startTelemetry } from "../../src/telemetry.js";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../../gen/face/v1/face_pb.js";
import { freshDatabase } from "./test-databases.js";

let sharedEngine: FaceEngine | undefined;

/** One engine per test process: loading the models is the slow part of starting. */
export function testEngine(): FaceEngine {
  const telemetry = startTelemetry();
  sharedEngine ??= createFaceEngine({
    runtime: createOnnxRuntime({ intraOpThreads: 1, workers: 2 }),
    limits: { maxPixels: 40_000_000 },
    stage: telemetry.stage,
  });
  return sharedEngine;
}

/** A real service listening on a random loopback port, on a fresh data directory. */
export interface TestServer {
  app: FastifyInstance;
  config: Config;
  database: Database;
  /** http://127.0.0.1:port */
  url: string;
  dataDir: string;
  /** Stops the server; `keepData` leaves its data for a `reopen`. */
  close(keepData?: boolean): Promise<void>;
}

/**
 * Starts the service as main.ts does, on PGlite in a temporary directory, or on the PostgreSQL
 * server in TEST_DATABASE_URL (in a fresh database of its own).
 */
export async function startTestServer(env: Record<string, string> = {}, shareWith?: TestServer, reopen?: TestServer): Promise<TestServer> {
  // A second instance shares the first one's database and image directory, as replicas do; a
  // reopened one starts on the data a closed instance left behind, as a restart does.
  const previous = shareWith ?? reopen;
  // The database first: a server that cannot be reached leaves no directory behind.
  const databaseUrl = previous?.config.databaseUrl ?? (process.env.TEST_DATABASE_URL ? await freshDatabase(process.env.TEST_DATABASE_URL) : undefined);
  const dataDir = previous?.dataDir ?? (await mkdtemp(join(tmpdir(), "face-test-")));
  const config = loadConfig({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "warn", ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}), ...env });
  // PGlite is in-process and single-connection: a second instance uses the same handle.
  const database = shareWith && !databaseUrl ? shareWith.database : await openDatabase(config);
  const ownsDatabase = database !== shareWith?.database;
  const app = await buildApp({ config, engine: testEngine(), database, telemetry: startTelemetry() });
  // Loopback unless the test asks for another address (HOST "::": dual stack).
  await app.listen({ port: 0, host: env.HOST ?? "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return {
    app,
    config,
    database,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    async close(keepData = false) {
      await app.close();
      if (ownsDatabase) await database.close();
      if (!shareWith && !keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A migrated database with no service on it (nothing polls the outbox): PGlite in a temporary
 * directory, or a fresh database on the PostgreSQL server of TEST_DATABASE_URL.
 */
export async function openTestDatabase(): Promise<Database & { dataDir: string; dispose(): Promise<void> }> {
  const databaseUrl = process.env.TEST_DATABASE_URL ? await freshDatabase(process.env.TEST_DATABASE_URL) : undefined;
  const dataDir = await mkdtemp(join(tmpdir(), "face-db-"));
  const database = await openDatabase(loadConfig({ FACE_DATA_DIR: dataDir, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) }));
  return {
    ...database,
    dataDir,
    async dispose() {
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A gRPC (HTTP/2) client of FaceService on a test server. */
export function faceClient(server: TestServer): Client<typeof FaceService> {
  return createClient(FaceService, createGrpcTransport({ baseUrl: server.url }));
}

/**
 * Starts a server and a gRPC client before the tests of the enclosing describe block and stops the
 * server after them; `ready` receives both (and may register fixtures).
 */
export function useTestServer(ready: (server: TestServer, client: Client<typeof FaceService>) => void | Promise<void>, env: Record<string, string> = {}): void {
  let server: TestServer | undefined;
  before(async () => {
    server = await startTestServer(env);
    await ready(server, faceClient(server));
  });
  after(() => server?.close());
}
