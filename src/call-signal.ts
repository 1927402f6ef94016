import { AsyncLocalStorage } from "node:async_hooks";
import { FaceError } from "./errors.js";

/**
 * The signal of the call being served (its client's deadline or cancellation), carried through
 * every await of that call's work without being passed by hand: the stage timer, the inference
 * runtime, the admission queue and outbound requests look it up and stop work nobody waits for.
 */
const current = new AsyncLocalStorage<AbortSignal>();

/**
 * Runs `work` as part of a call that ends when `signal` aborts. The signal's reason should be the
 * FaceError to answer with ("deadline_exceeded" or "canceled").
 */
export function runInCall<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  return current.run(signal, work);
}

/** The signal of the current call; undefined outside one (start-up, background jobs). */
export function callSignal(): AbortSignal | undefined {
  return current.getStore();
}

/** Throws the call's end (a FaceError) when its client is no longer waiting for it. */
export function throwIfCallEnded(): void {
  const signal = current.getStore();
  if (signal?.aborted) throw callEndedError(signal);
}

/** The error a call ended by `signal` answers with. */
export function callEndedError(signal: AbortSignal): FaceError {
  return signal.reason instanceof FaceError ? signal.reason : new FaceError("canceled", "the call was canceled");
}
