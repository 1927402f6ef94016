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
}

export function createAdmission(options: AdmissionOptions): Admission {
  let inFlight = 0;
  /** Calls waiting, first come first served; a call whose client gives up removes itself. */
  const waiting: (() => void)[] = [];

  function release(): void {
    inFlight--;
    const next = waiting.shift();
    if (next !== undefined) {
      inFlight++;
      next();
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
      const leave = () => {
        waiting.splice(waiting.indexOf(admit), 1);
        reject(callEndedError(signal!));
      };
      const admit = () => {
        signal?.removeEventListener("abort", leave);
        resolve();
      };
      waiting.push(admit);
      signal?.addEventListener("abort", leave, { once: true });
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
  };
}
