import { createHmac } from "node:crypto";
import { processMetrics } from "../metrics.js";
import type { DueDelivery, WebhookStore } from "../store/webhooks.js";
import { sendOutbound } from "./outbound-http.js";

export interface DispatcherOptions {
  /** Attempts before a delivery is given up (and its last error kept). */
  maxAttempts: number;
  /** First retry delay; each later one doubles, with full jitter, up to an hour. */
  retryBaseMs: number;
  /** A post not done within this (connecting, sending, the whole answer) counts as a failure. */
  timeoutMs: number;
  /** How often the outbox is polled when nothing kicks the dispatcher. */
  pollMs: number;
  allowedHosts: readonly string[];
}

const MAX_RETRY_DELAY_MS = 3_600_000;
/** Posts in flight at once per instance; each goes on alone, so a slow one holds up no other. */
const MAX_IN_FLIGHT = 16;
/** Posts in flight at once per webhook (over all instances): one slow receiver takes at most these slots. */
const MAX_IN_FLIGHT_PER_WEBHOOK = 4;
/** A receiver's answer body is not used; reading more of it than this is pointless. */
const MAX_ANSWER_BYTES = 64 * 1024;

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

/** Where the dispatcher reports what went wrong: pino's (and so fastify's) logger fits. */
export interface WarningLogger {
  warn(fields: object, message: string): void;
}

export function createWebhookDispatcher(store: WebhookStore, options: DispatcherOptions, logger: WarningLogger): WebhookDispatcher {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  const inFlight = new Set<Promise<void>>();
  /** Due deliveries were left unclaimed for want of a free slot: a finishing post claims them. */
  let slotWanted = false;
  // The lease outlasts a post's total deadline by a wide margin, so no other instance claims a row
  // while its post may still be going on; recording the outcome checks the lease besides.
  const leaseMs = options.timeoutMs * 2 + 5_000;
  const deliveries = processMetrics().webhookDeliveries;

  async function post(delivery: DueDelivery): Promise<void> {
    const body = delivery.payload;
    const response = await sendOutbound({
      url: new URL(delivery.url),
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "face-service-webhooks",
        "x-face-event-id": delivery.eventId,
        "x-face-event-type": delivery.eventType,
        "x-face-signature": signatureHeader(delivery.secret, body, Math.floor(Date.now() / 1000)),
      },
      body,
      allowedHosts: options.allowedHosts,
      field: "webhook url",
      timeLimit: { endsAt: Date.now() + options.timeoutMs, totalMs: options.timeoutMs },
      maxBodyBytes: MAX_ANSWER_BYTES,
    });
    if (response.status < 200 || response.status >= 300) throw new Error(`receiver answered HTTP ${response.status}`);
  }

  async function deliver(delivery: DueDelivery): Promise<void> {
    let recorded: boolean;
    try {
      await post(delivery);
      recorded = await store.markDelivered(delivery);
      if (recorded) deliveries.inc({ outcome: "delivered" });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const giveUp = delivery.attempts >= options.maxAttempts;
      const ceiling = Math.min(MAX_RETRY_DELAY_MS, options.retryBaseMs * 2 ** (delivery.attempts - 1));
      const retryAt = giveUp ? undefined : new Date(Date.now() + ceiling / 2 + Math.random() * (ceiling / 2));
      recorded = await store.markFailed(delivery, message, retryAt);
      if (recorded) {
        deliveries.inc({ outcome: giveUp ? "gave_up" : "failed" });
        logger.warn({ delivery: delivery.id, event: delivery.eventId, attempt: delivery.attempts, giveUp, err: message }, "webhook delivery failed");
      }
    }
    // A delivery deleted meanwhile (with its webhook, collection or person) has no outcome to record.
    if (!recorded && (await store.exists(delivery.id))) logger.warn({ delivery: delivery.id, event: delivery.eventId }, "webhook delivery lease lost before its outcome was recorded");
  }

  /** Claims as many due deliveries as there are free slots and starts each on its own. */
  async function fill(): Promise<void> {
    do {
      again = false;
      const free = MAX_IN_FLIGHT - inFlight.size;
      if (free <= 0) {
        slotWanted = true;
        return;
      }
      const due = await store.claimDue(free, leaseMs, MAX_IN_FLIGHT_PER_WEBHOOK);
      for (const delivery of due) {
        const done: Promise<void> = deliver(delivery)
          .catch((e) => logger.warn({ err: e, delivery: delivery.id }, "webhook outcome not recorded; the lease expires and it is retried"))
          .finally(() => {
            inFlight.delete(done);
            // Only when work waits for a slot: otherwise the next kick or poll finds it, and a
            // claim query per finished post is not spent for nothing.
            if (slotWanted) {
              slotWanted = false;
              run();
            }
          });
        inFlight.add(done);
      }
      if (due.length === free) again = true;
    } while (again && !stopped);
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = fill()
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
      await Promise.allSettled([...inFlight]);
    },
  };
}
