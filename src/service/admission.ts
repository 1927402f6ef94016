import { callClient, callEndedError, callSignal } from "../call-signal.js";
import { FaceError } from "../errors.js";
import { CountsByKey } from "../counts-by-key.js";
import { processMetrics } from "../metrics.js";

export interface AdmissionOptions {
  /** Calls doing image work at once; more wait in the queue. */
  maxInFlight: number;
  /** Calls waiting for a slot; beyond this a call is refused at once. */
  maxQueued: number;
}

/** What a refused call tells its client to wait before retrying. */
const RETRY_AFTER_MS = 1_000;

/**
 * How many of `places` (slots, or places in the queue) one client (an address, an IPv6 /64 or an
 * API key) may hold: half, so the others always have the rest. A photo's decoding holds one of libuv's four threads until it is done, and some
 * photos cost seconds (a 36-megapixel AVIF of 1 KB took 5 s): one address sending four of them at
 * once held every slot and thread, and another client's calls waited up to 7.7 s.
 */
function oneClientsShare(places: number): number {
  return Math.ceil(places / 2);
}

/**
 * The server-wide bound on image work (decode, detection, inference, search): at most `maxInFlight`
 * calls run and at most `maxQueued` wait, of each at most half from one client (oneClientsShare),
 * first come first served among those whose client may take a slot, and any call beyond that is
 * refused at once with a retry delay (Unavailable; ResourceExhausted past the client's share of the
 * queue), instead of queueing without end while every answer gets slower and memory grows. A
 * waiting call whose client gives up leaves the queue.
 */
export interface Admission {
  run<T>(work: () => Promise<T>): Promise<T>;
}

interface Waiting {
  client: string | undefined;
  admit(): void;
}

export function createAdmission(options: AdmissionOptions): Admission {
  const perClient = oneClientsShare(options.maxInFlight);
  const waitingPerClient = oneClientsShare(options.maxQueued);
  let inFlight = 0;
  const inFlightByClient = new CountsByKey();
  const waitingByClient = new CountsByKey();
  /** Calls waiting, first come first served; a call whose client gives up removes itself. */
  const waiting: Waiting[] = [];
  const mayTake = (client: string | undefined) => inFlight < options.maxInFlight && (client === undefined || inFlightByClient.of(client) < perClient);
  const counted = processMetrics().admissionCalls;
  const take = (client: string | undefined) => {
    inFlight++;
    counted.inc({ state: "running" });
    if (client !== undefined) inFlightByClient.add(client, 1);
  };

  function release(client: string | undefined): void {
    inFlight--;
    counted.dec({ state: "running" });
    if (client !== undefined) inFlightByClient.add(client, -1);
    const next = waiting.findIndex((w) => mayTake(w.client));
    if (next === -1) return;
    const chosen = waiting[next];
    leaveQueue(chosen);
    take(chosen.client);
    chosen.admit();
  }

  /** Takes `entry` out of the queue: admitted, or its client gave up. */
  function leaveQueue(entry: Waiting): void {
    waiting.splice(waiting.indexOf(entry), 1);
    counted.dec({ state: "waiting" });
    if (entry.client !== undefined) waitingByClient.add(entry.client, -1);
  }

  async function waitForSlot(client: string | undefined): Promise<void> {
    const signal = callSignal();
    if (signal?.aborted) throw callEndedError(signal);
    if (mayTake(client)) {
      take(client);
      return;
    }
    if (waiting.length >= options.maxQueued) {
      throw new FaceError(
        "unavailable",
        `the server is at capacity (${inFlight} calls running, ${waiting.length} waiting); retry in ${RETRY_AFTER_MS / 1000} s`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    }
    if (client !== undefined && waitingByClient.of(client) >= waitingPerClient) {
      // One client filling the queue left every other client's call that found the places taken refused.
      throw new FaceError(
        "resource_exhausted",
        `this client has ${waitingByClient.of(client)} calls waiting for the server, its share of the queue; retry in ${RETRY_AFTER_MS / 1000} s`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    }
    await new Promise<void>((resolve, reject) => {
      const entry: Waiting = {
        client,
        admit: () => {
          signal?.removeEventListener("abort", leave);
          resolve();
        },
      };
      const leave = () => {
        leaveQueue(entry);
        reject(callEndedError(signal!));
      };
      waiting.push(entry);
      counted.inc({ state: "waiting" });
      if (client !== undefined) waitingByClient.add(client, 1);
      signal?.addEventListener("abort", leave, { once: true });
    });
  }

  return {
    async run(work) {
      const client = callClient();
      await waitForSlot(client);
      try {
        return await work();
      } finally {
        release(client);
      }
    },
  };
}
