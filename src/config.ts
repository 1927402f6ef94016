import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parseApiKeys, type ApiKey } from "./api-keys.js";

/** Every setting of the service, read once from the environment at start. */
export interface Config {
  readonly port: number;
  readonly host: string;
  /** Embedded database and stored images live here. */
  readonly dataDir: string;
  /** A PostgreSQL server with pgvector; the embedded PGlite database when undefined. */
  readonly databaseUrl: string | undefined;
  /**
   * A streaming replica of DATABASE_URL's server: searches (Recognize, Verify, Sync) read from it,
   * everything else goes to DATABASE_URL. Undefined: everything goes to DATABASE_URL.
   */
  readonly databaseReadUrl: string | undefined;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Origins allowed by CORS; ["*"] allows any. */
  readonly corsOrigins: readonly string[];
  /** Largest accepted image, in bytes. */
  readonly maxImageBytes: number;
  /** Largest accepted image, in pixels (width x height): the decompression-bomb guard. */
  readonly maxImagePixels: number;
  /** Largest accepted request message, in bytes (room for two images in base64). */
  readonly maxMessageBytes: number;
  /** How long a SIGTERM waits for in-flight requests before closing connections. */
  readonly shutdownTimeoutMs: number;
  /** Threads each ONNX session may use inside one operator. */
  readonly onnxIntraOpThreads: number;
  /** Worker threads running inference off the event loop (0 = on it). */
  readonly onnxWorkers: number;
  /** Calls doing image work at once (decode, detection, inference, search); more wait. */
  readonly maxInFlight: number;
  /** Calls waiting for image work; beyond this they are refused at once (Unavailable, retry-after). */
  readonly maxQueued: number;
  /** Largest cosine distance that still counts as the same person. */
  readonly matchThreshold: number;
  /** Faces narrower than this (pixels in the original image) are refused for registration. */
  readonly minFaceSize: number;
  /** Faces with a lower Laplacian variance (aligned 112x112 grey face) are refused as blurry. */
  readonly minSharpness: number;
  /** Faces whose detection score is lower are refused for registration. */
  readonly minDetectionScore: number;
  /** Auto-healing: a clearly better capture of a matched user becomes its primary reference. */
  readonly autoUpgrade: boolean;
  /** Auto-healing: at most this many auto-added faces per user (the newest); registered faces are never removed. */
  readonly upgradeMaxFaces: number;
  /** Auto-healing: a match closer than this to the user's registered faces may add a reference. */
  readonly upgradeMaxDistance: number;
  /** Auto-healing: the new face must be at least this factor sharper ... */
  readonly upgradeSharpnessFactor: number;
  /** ... or at least this factor wider than the stored reference. */
  readonly upgradeSizeFactor: number;
  /** Keep original photos (GetUserFace); false keeps only embeddings. */
  readonly storeImages: boolean;
  /** Detection log rows older than this many days are deleted (0 keeps them forever). */
  readonly detectionRetentionDays: number;
  /** How long a frame's detection log entries wait for later frames' to share one statement. */
  readonly detectionLogFlushMs: number;
  /** CorrectMatch: a face this close to a "not them" example is never matched to that user. */
  readonly negativeMaxDistance: number;
  /** hnsw.ef_search for similarity queries (recall against speed). */
  readonly hnswEfSearch: number;
  /**
   * On PGlite, faces held in memory across collections for exact search (store/memory-gallery.ts);
   * a collection that does not fit is searched through the HNSW index. 0: always the index.
   */
  readonly exactSearchMaxFaces: number;
  /** `host` or `host:port` that image_url may reach even on private or loopback addresses. */
  readonly imageUrlAllowedHosts: readonly string[];
  /** Longest wait for an image_url download. */
  readonly imageUrlTimeoutMs: number;
  /** `host` or `host:port` that webhook URLs may target even on private or loopback addresses. */
  readonly webhookAllowedHosts: readonly string[];
  readonly webhookMaxAttempts: number;
  readonly webhookRetryBaseMs: number;
  readonly webhookTimeoutMs: number;
  readonly webhookPollMs: number;
  /** Delivered and given-up webhook deliveries older than this many days are deleted (0 keeps them). */
  readonly webhookRetentionDays: number;
  /** API keys (FACE_API_KEYS: `key` or `key:collection1|collection2`); none means no authentication. */
  readonly apiKeys: readonly ApiKey[];
  /**
   * Peers whose X-Forwarded-For names the client (load balancers): addresses, CIDR blocks, or
   * loopback / linklocal / uniquelocal. None: the client is the connection's peer.
   */
  readonly trustedProxies: readonly string[];
  /** Requests per second per key or client address; 0 turns rate limiting off. */
  readonly rateLimitPerSecond: number;
  readonly rateLimitBurst: number;
  /** Requests open at once (calls, streams, WebSockets) beyond which new ones are refused. */
  readonly maxOpenRequests: number;
  /** Of those, how many one client (its API key, or its address without keys) may hold. */
  readonly maxOpenRequestsPerClient: number;
  /** Connections open at once (at most half the open-file limit, transport/connection-limit.ts). */
  readonly maxConnections: number;
  /** Of those, how many one address may hold; 0: three quarters (transport/connection-limit.ts). */
  readonly maxConnectionsPerAddress: number;
  /** How long a request may take to arrive whole, and an answer to be taken; streams of messages (Sync) are not limited. */
  readonly requestTimeoutMs: number;
  /** How long an idle HTTP/1.1 connection is kept for its client's next request. */
  readonly keepAliveTimeoutMs: number;
  /** How often HTTP/2 connections and WebSockets are pinged; one silent until the next ping is closed (0: never). */
  readonly pingIntervalMs: number;
  /** Bytes of request messages being received at once, across requests (transport/receive-budget.ts). */
  readonly maxReceivingBytes: number;
  /** Of those, how many one client (its API key, or its address) may hold: three quarters, at least one message. */
  readonly maxReceivingBytesPerClient: number;
}

/** Thrown when the environment holds invalid settings; lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/** Named ranges FACE_TRUSTED_PROXIES takes besides addresses (fastify's trustProxy knows them). */
const ADDRESS_RANGE_NAMES = ["loopback", "linklocal", "uniquelocal"];

/** An IP address, a CIDR block of either family, or a named range. */
function isAddressRange(entry: string): boolean {
  if (ADDRESS_RANGE_NAMES.includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  // fastify's trustProxy takes blocks of 1 to 32 (or 128) bits; "trust every peer" is not offered.
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= (family === 4 ? 32 : 128));
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const MIB = 1024 * 1024;

/**
 * Reads and validates every setting. Throws a ConfigError listing all invalid variables, so an
 * operator fixes them in one go rather than one restart at a time.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];

  function integer(name: string, fallback: number, min: number, max: number): number {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  function decimal(name: string, fallback: number, min: number, max: number): number {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)} must be a number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  function boolean(name: string, fallback: boolean): boolean {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === "") return fallback;
    if (["true", "1", "yes"].includes(raw)) return true;
    if (["false", "0", "no"].includes(raw)) return false;
    problems.push(`${name}=${JSON.stringify(env[name])} must be true or false`);
    return fallback;
  }

  const list = (raw: string | undefined): string[] =>
    (raw ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");

  const trustedProxies = list(env.FACE_TRUSTED_PROXIES);
  for (const entry of trustedProxies) {
    if (!isAddressRange(entry)) {
      problems.push(`FACE_TRUSTED_PROXIES entry ${JSON.stringify(entry)} must be an IP address, a CIDR block (10.0.0.0/8, fd00::/8) or one of ${ADDRESS_RANGE_NAMES.join(", ")}`);
    }
  }

  const logLevelRaw = env.LOG_LEVEL?.trim() || "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevelRaw)) {
    problems.push(`LOG_LEVEL=${JSON.stringify(logLevelRaw)} must be one of ${LOG_LEVELS.join(", ")}`);
  }

  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push("DATABASE_URL must start with postgres:// or postgresql://");
  }

  const databaseReadUrl = env.DATABASE_READ_URL?.trim() || undefined;
  if (databaseReadUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseReadUrl)) {
    problems.push("DATABASE_READ_URL must start with postgres:// or postgresql://");
  }
  if (databaseReadUrl !== undefined && databaseUrl === undefined) {
    problems.push("DATABASE_READ_URL needs DATABASE_URL (the primary that takes the writes)");
  }

  const corsOrigins = list(env.CORS_ORIGINS ?? "*");
  for (const origin of corsOrigins) {
    if (origin !== "*" && !/^https?:\/\/[^/]+$/.test(origin)) {
      problems.push(`CORS_ORIGINS entry ${JSON.stringify(origin)} must be * or an origin like https://example.com`);
    }
  }

  const maxImageBytes = integer("FACE_MAX_IMAGE_BYTES", 10 * MIB, 1024, 100 * MIB);
  // Two images (Verify) in base64 (4/3) plus room for the other fields.
  const maxMessageBytes = Math.ceil(maxImageBytes * 2 * (4 / 3)) + 64 * 1024;
  // Each open request holds memory before admission can bound it (its message arrives first): about
  // 36 KB waiting, up to the message limit as it arrives (FACE_MAX_RECEIVING_BYTES bounds the sum).
  // 256 is far more calls and cameras than the image work of a machine takes at once
  // (FACE_MAX_IN_FLIGHT + FACE_MAX_QUEUED).
  const maxOpenRequests = integer("FACE_MAX_OPEN_REQUESTS", 256, 1, 100_000);
  // About 19 messages of the largest size at once (38 photos of 10 MB in base64), more than the
  // image work admission lets in (FACE_MAX_IN_FLIGHT + FACE_MAX_QUEUED); at least one message.
  const maxReceivingBytes = integer("FACE_MAX_RECEIVING_BYTES", Math.max(512 * MIB, maxMessageBytes), maxMessageBytes, 1024 * 1024 * MIB);
  const config: Config = {
    port: integer("PORT", 8080, 0, 65535),
    host: env.HOST?.trim() || "0.0.0.0",
    dataDir: resolve(env.FACE_DATA_DIR?.trim() || "./data"),
    databaseUrl,
    databaseReadUrl,
    logLevel: logLevelRaw as Config["logLevel"],
    corsOrigins: corsOrigins.length > 0 ? corsOrigins : ["*"],
    maxImageBytes,
    maxImagePixels: integer("FACE_MAX_IMAGE_PIXELS", 40_000_000, 10_000, 500_000_000),
    maxMessageBytes,
    shutdownTimeoutMs: integer("FACE_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    // One single-threaded session per core: concurrent requests use every core without the
    // threads of one run fighting those of another (see bench/latency).
    onnxIntraOpThreads: integer("FACE_ONNX_THREADS", 1, 1, 256),
    onnxWorkers: integer("FACE_ONNX_WORKERS", Math.max(1, availableParallelism()), 0, 64),
    // Three calls per core keep the inference workers fed while others decode, search or wait on
    // the database; a queue of six per core bounds the wait of the rest. Measured with
    // `npm run bench:overload` (32 clients, 2 cores): 6/12 served 45/s at p50 421 ms, 4/8 35.8/s at
    // 348 ms, 8/8 43.0/s at 412 ms, no limit 47.7/s at 677 ms (p99 944).
    maxInFlight: integer("FACE_MAX_IN_FLIGHT", 3 * availableParallelism(), 1, 1024),
    maxQueued: integer("FACE_MAX_QUEUED", 6 * availableParallelism(), 0, 100_000),
    matchThreshold: decimal("FACE_MATCH_THRESHOLD", 0.6, 0, 2),
    minFaceSize: integer("FACE_MIN_FACE_SIZE", 40, 8, 10_000),
    minSharpness: decimal("FACE_MIN_SHARPNESS", 15, 0, 1e6),
    // YuNet scored every real face of the 74 labelled photos 0.70 to 0.96 (the tight 150x150
    // portraits 0.70-0.75, the rest from 0.85): the default keeps every face the detector reports
    // (its own threshold is 0.7); raise it to refuse weak detections as references.
    minDetectionScore: decimal("FACE_MIN_DETECTION_SCORE", 0.7, 0, 1),
    autoUpgrade: boolean("FACE_AUTO_UPGRADE", true),
    upgradeMaxFaces: integer("FACE_UPGRADE_MAX_FACES", 3, 1, 100),
    upgradeMaxDistance: decimal("FACE_UPGRADE_MAX_DISTANCE", 0.4, 0, 2),
    upgradeSharpnessFactor: decimal("FACE_UPGRADE_SHARPNESS_FACTOR", 1.5, 1, 100),
    upgradeSizeFactor: decimal("FACE_UPGRADE_SIZE_FACTOR", 1.5, 1, 100),
    // Catches most photos of the same stranger (genuine pairs: bench/accuracy) while two different
    // people are closer than this far less often than FAR 1e-3 (0.725), so a user's own photos stay matched.
    storeImages: boolean("FACE_STORE_IMAGES", true),
    detectionRetentionDays: integer("FACE_DETECTION_RETENTION_DAYS", 30, 0, 36_500),
    detectionLogFlushMs: integer("FACE_DETECTION_LOG_FLUSH_MS", 100, 0, 10_000),
    negativeMaxDistance: decimal("FACE_NEGATIVE_MAX_DISTANCE", 0.5, 0, 2),
    hnswEfSearch: integer("FACE_HNSW_EF_SEARCH", 64, 1, 1000),
    // 20k faces: 40 MB, an exact search of about 2.6 ms on the main thread (by hand: 1.2 ms at 10k, 3.3 at 25k).
    exactSearchMaxFaces: integer("FACE_EXACT_SEARCH_MAX_FACES", 20_000, 0, 1_000_000),
    imageUrlAllowedHosts: list(env.FACE_IMAGE_URL_ALLOWED_HOSTS),
    imageUrlTimeoutMs: integer("FACE_IMAGE_URL_TIMEOUT_MS", 10_000, 100, 120_000),
    webhookAllowedHosts: list(env.FACE_WEBHOOK_ALLOWED_HOSTS),
    webhookMaxAttempts: integer("FACE_WEBHOOK_MAX_ATTEMPTS", 10, 1, 100),
    webhookRetryBaseMs: integer("FACE_WEBHOOK_RETRY_BASE_MS", 2_000, 10, 3_600_000),
    webhookTimeoutMs: integer("FACE_WEBHOOK_TIMEOUT_MS", 5_000, 100, 60_000),
    webhookPollMs: integer("FACE_WEBHOOK_POLL_MS", 1_000, 10, 60_000),
    webhookRetentionDays: integer("FACE_WEBHOOK_RETENTION_DAYS", 7, 0, 36_500),
    apiKeys: parseApiKeys(env.FACE_API_KEYS),
    trustedProxies,
    rateLimitPerSecond: decimal("FACE_RATE_LIMIT_PER_SECOND", 0, 0, 100_000),
    rateLimitBurst: integer("FACE_RATE_LIMIT_BURST", 50, 1, 100_000),
    maxOpenRequests,
    // A quarter stays for the other clients: Sync streams and WebSockets stay open for as long as
    // their client answers pings, so one client could otherwise hold every place for good.
    maxOpenRequestsPerClient: integer("FACE_MAX_OPEN_REQUESTS_PER_CLIENT", Math.ceil(maxOpenRequests * 0.75), 1, 100_000),
    maxConnections: integer("FACE_MAX_CONNECTIONS", 10_000, 1, 1_000_000),
    maxConnectionsPerAddress: integer("FACE_MAX_CONNECTIONS_PER_ADDRESS", 0, 0, 1_000_000),
    // Node's own default for HTTP/1.1: a 10 MB photo at 1 Mbit/s takes 80 s.
    requestTimeoutMs: integer("FACE_REQUEST_TIMEOUT_MS", 300_000, 1_000, 3_600_000),
    // Longer than the idle timeouts of the proxies that keep HTTP/1.1 connections to their backends
    // (AWS ALB and nginx's upstream keepalive: 60 s): a proxy must never reuse a connection the
    // service is closing at that instant, which the proxy answers 502. Node's own default is 5 s.
    keepAliveTimeoutMs: integer("FACE_KEEPALIVE_TIMEOUT_MS", 75_000, 1_000, 3_600_000),
    // A vanished client's Sync stream or WebSocket is closed after one to two of these.
    pingIntervalMs: integer("FACE_PING_INTERVAL_MS", 60_000, 0, 3_600_000),
    maxReceivingBytes,
    maxReceivingBytesPerClient: integer("FACE_MAX_RECEIVING_BYTES_PER_CLIENT", Math.max(maxMessageBytes, Math.ceil(maxReceivingBytes * 0.75)), maxMessageBytes, 1024 * 1024 * MIB),
  };

  for (const key of config.apiKeys) {
    if (key.key.length < 16) problems.push("FACE_API_KEYS entries must be at least 16 characters long");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
