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
 * API key) is sure of: half, so the others always have the rest. A photo's decoding holds one of
 * libuv's four threads until it is done, and some photos cost seconds (a 36-megapixel AVIF of 1 KB
 * took 5 s): one address sending four of them at once held every slot and thread, and another
 * client's calls waited up to 7.7 s.
 */
function oneClientsShare(places: number): number {
  return Math.ceil(places / 2);
}

/**
 * The server-wide bound on image work (decode, detection, inference, search): at most `maxInFlight`
 * calls run, at most half of them from one client (oneClientsShare), first come first served among
 * those whose client may take a slot, and at most `maxQueued` wait. One client may fill the queue
 * while there is room; once it is full, another client's call takes the place of the newest call of
 * a client waiting with more than half of it (that call is refused: ResourceExhausted). Any other
 * call beyond the queue is refused at once (Unavailable); both with a retry delay, instead of
 * queueing without end while every answer gets slower and memory grows. A waiting call whose
 * client gives up leaves the queue.
 */
export interface Admission {
  run<T>(work: () => Promise<T>): Promise<T>;
}

interface Waiting {
  client: string | undefined;
  admit(): void;
  /** Refuses the call after all (out of the queue already): its place went to another client's. */
  refuse(error: FaceError): void;
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

  /** Takes `entry` out of the queue: admitted, its client gave up, or its place went to another client. */
  function leaveQueue(entry: Waiting): void {
    waiting.splice(waiting.indexOf(entry), 1);
    counted.dec({ state: "waiting" });
    if (entry.client !== undefined) waitingByClient.add(entry.client, -1);
  }

  /** The newest waiting call of a client that holds more than its share of the queue. */
  function newestOverQueueShare(): Waiting | undefined {
    for (let i = waiting.length - 1; i >= 0; i--) {
      const { client } = waiting[i];
      if (client !== undefined && waitingByClient.of(client) > waitingPerClient) return waiting[i];
    }
    return undefined;
  }

  function overQueueShare(client: string): FaceError {
    return new FaceError(
      "resource_exhausted",
      `this client had ${waitingByClient.of(client)} calls waiting for the server, over its share of the full queue; retry in ${RETRY_AFTER_MS / 1000} s`,
      { retryAfterMs: RETRY_AFTER_MS },
    );
  }

  async function waitForSlot(client: string | undefined): Promise<void> {
    const signal = callSignal();
    if (signal?.aborted) throw callEndedError(signal);
    if (mayTake(client)) {
      take(client);
      return;
    }
    if (waiting.length >= options.maxQueued) {
      // One client filling the queue while it was alone must not leave the next client's calls
      // refused: the newest waiting call of a client holding over half gives its place up.
      const underShare = client === undefined || waitingByClient.of(client) < waitingPerClient;
      const pushedOut = underShare ? newestOverQueueShare() : undefined;
      if (pushedOut === undefined) {
        throw new FaceError(
          "unavailable",
          `the server is at capacity (${inFlight} calls running, ${waiting.length} waiting); retry in ${RETRY_AFTER_MS / 1000} s`,
          { retryAfterMs: RETRY_AFTER_MS },
        );
      }
      const error = overQueueShare(pushedOut.client!);
      leaveQueue(pushedOut);
      pushedOut.refuse(error);
    }
    await new Promise<void>((resolve, reject) => {
      const entry: Waiting = {
        client,
        admit: () => {
          signal?.removeEventListener("abort", leave);
          resolve();
        },
        refuse: (error) => {
          signal?.removeEventListener("abort", leave);
          reject(error);
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
