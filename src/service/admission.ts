import { callEndedError, callSignal } from "../call-signal.js";
import { FaceError } from "../errors.js";

export interface AdmissionOptions {
  /** Calls doing image work at once; more wait in the queue. */
  maxInFlight: number;
  /** Calls waiting for a slot; beyond this a call is refused at once. */
  maxQueued: number;
}

/** What a refused call tells its client to wait before retrying. */
const RETRY_AFTER_MS = 1_000;

/**
 * The server-wide bound on image work (decode, detection, inference, search): at most `maxInFlight`
 * calls run, at most `maxQueued` wait, first come first served, and any call beyond that is refused
 * at once with Unavailable and a retry delay, instead of queueing without end while every answer
 * gets slower and memory grows. A waiting call whose client gives up leaves the queue.
 */
export interface Admission {
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Calls running and waiting now. */
  readonly load: { inFlight: number; queued: number };
}

export function createAdmission(options: AdmissionOptions): Admission {
  let inFlight = 0;
  const waiting: { admit: () => void; signal: AbortSignal | undefined }[] = [];

  function release(): void {
    inFlight--;
    while (waiting.length > 0 && inFlight < options.maxInFlight) {
      const next = waiting.shift()!;
      if (next.signal?.aborted) continue; // its client is gone; it already left with an error
      inFlight++;
      next.admit();
    }
  }

  async function waitForSlot(): Promise<void> {
    const signal = callSignal();
    if (signal?.aborted) throw callEndedError(signal);
    if (inFlight < options.maxInFlight) {
      inFlight++;
      return;
    }
    if (waiting.length >= options.maxQueued) {
      throw new FaceError(
        "unavailable",
        `the server is at capacity (${inFlight} calls running, ${waiting.length} waiting); retry in ${RETRY_AFTER_MS / 1000} s`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    }
    await new Promise<void>((resolve, reject) => {
      const entry = { admit: resolve, signal };
      waiting.push(entry);
      signal?.addEventListener(
        "abort",
        () => {
          const index = waiting.indexOf(entry);
          if (index >= 0) waiting.splice(index, 1);
          reject(callEndedError(signal));
        },
        { once: true },
      );
    });
  }

  return {
    async run(work) {
      await waitForSlot();
      try {
        return await work();
      } finally {
        release();
      }
    },
    get load() {
      return { inFlight, queued: waiting.length };
    },
  };
}
