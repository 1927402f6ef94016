import { AsyncLocalStorage } from "node:async_hooks";
import { FaceError } from "./errors.js";

/**
 * The signal of the call being served (its client's deadline or cancellation), carried through
 * every await of that call's work without being passed by hand: the stage timer, the inference
 * runtime, the admission queue and outbound requests look it up and stop work nobody waits for.
 * With it, who the call is from, for the admission's per-client share.
 */
const current = new AsyncLocalStorage<{ signal: AbortSignal; client?: string }>();

/**
 * Runs `work` as part of a call that ends when `signal` aborts. The signal's reason should be the
 * FaceError to answer with ("deadline_exceeded" or "canceled"). `client` names who the call is from
 * (an address or an API key; client-address.ts); without it, the call is its enclosing call's
 * client's: REST and WebSocket frames reach their handler through the in-process router, which
 * carries no context values, inside the runInCall that names their client.
 */
export function runInCall<T>(signal: AbortSignal, work: () => Promise<T>, client = callClient()): Promise<T> {
  return current.run({ signal, client }, work);
}

/** The signal of the current call; undefined outside one (start-up, background jobs). */
export function callSignal(): AbortSignal | undefined {
  return current.getStore()?.signal;
}

/** Who the current call is from; undefined outside one, or when its transport does not say. */
export function callClient(): string | undefined {
  return current.getStore()?.client;
}

/** Throws the call's end (a FaceError) when its client is no longer waiting for it. */
export function throwIfCallEnded(): void {
  const signal = callSignal();
  if (signal?.aborted) throw callEndedError(signal);
}

/** The error a call ended by `signal` answers with. */
export function callEndedError(signal: AbortSignal): FaceError {
  return signal.reason instanceof FaceError ? signal.reason : new FaceError("canceled", "the call was canceled");
}
