import { createHmac } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { FastifyBaseLogger } from "fastify";
import { processMetrics } from "../metrics.js";
import type { DueDelivery, WebhookStore } from "../store/webhooks.js";
import { pinnedLookup, resolvePublicAddress } from "./network-policy.js";

export interface DispatcherOptions {
  /** Attempts before a delivery is given up (and its last error kept). */
  maxAttempts: number;
  /** First retry delay; each later one doubles, with full jitter, up to an hour. */
  retryBaseMs: number;
  /** A receiver answering slower than this counts as a failure. */
  timeoutMs: number;
  /** How often the outbox is polled when nothing kicks the dispatcher. */
  pollMs: number;
  allowedHosts: readonly string[];
}

const MAX_RETRY_DELAY_MS = 3_600_000;
const BATCH = 16;

/** Delivers the outbox: posts each event signed with its webhook's secret, retries, gives up. */
export interface WebhookDispatcher {
  start(): void;
  /** Looks at the outbox now (after a commit that wrote events). */
  kick(): void;
  stop(): Promise<void>;
}

/**
 * The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`.
 * Receivers recompute it and reject old timestamps, which stops replays.
 */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}

export function createWebhookDispatcher(store: WebhookStore, options: DispatcherOptions, logger: FastifyBaseLogger): WebhookDispatcher {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  // A lease longer than a post can take: another instance may retry only after it expires.
  const leaseMs = options.timeoutMs * 2 + 5_000;
  const deliveries = processMetrics().webhookDeliveries;

  async function post(delivery: DueDelivery): Promise<void> {
    const url = new URL(delivery.url);
    const pinned = await resolvePublicAddress(url, options.allowedHosts, "webhook url");
    const client = url.protocol === "https:" ? https : http;
    const body = delivery.payload;
    await new Promise<void>((resolve, reject) => {
      const request = client.request(url, {
        method: "POST",
        timeout: options.timeoutMs,
        lookup: pinnedLookup(pinned),
        headers: {
          "content-type": "application/json",
          "user-agent": "face-service-webhooks",
          "x-face-event-id": delivery.eventId,
          "x-face-event-type": delivery.eventType,
          "x-face-signature": signatureHeader(delivery.secret, body, Math.floor(Date.now() / 1000)),
        },
      }, (response) => {
        response.resume();
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else reject(new Error(`receiver answered HTTP ${status}`));
      });
      request.on("timeout", () => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
      request.on("error", reject);
      request.end(body);
    });
  }

  async function deliver(delivery: DueDelivery): Promise<void> {
    try {
      await post(delivery);
      await store.markDelivered(delivery.id);
      deliveries.inc({ outcome: "delivered" });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const giveUp = delivery.attempts >= options.maxAttempts;
      const ceiling = Math.min(MAX_RETRY_DELAY_MS, options.retryBaseMs * 2 ** (delivery.attempts - 1));
      const retryAt = giveUp ? undefined : new Date(Date.now() + ceiling / 2 + Math.random() * (ceiling / 2));
      await store.markFailed(delivery.id, message, retryAt);
      deliveries.inc({ outcome: giveUp ? "gave_up" : "failed" });
      logger.warn({ delivery: delivery.id, event: delivery.eventId, attempt: delivery.attempts, giveUp, err: message }, "webhook delivery failed");
    }
  }

  async function drain(): Promise<void> {
    do {
      again = false;
      const due = await store.claimDue(BATCH, leaseMs);
      await Promise.all(due.map(deliver));
      if (due.length === BATCH) again = true;
    } while (again && !stopped);
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = drain()
      .catch((e) => logger.warn({ err: e }, "webhook outbox not reachable; retrying"))
      .finally(() => {
        running = undefined;
        schedule(again ? 0 : options.pollMs);
      });
  }

  function schedule(ms: number): void {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, ms);
    timer.unref();
  }

  return {
    start() {
      stopped = false;
      schedule(0);
    },
    kick() {
      if (!stopped) run();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
