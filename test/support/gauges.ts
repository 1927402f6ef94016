import { getEventListeners } from "node:events";
import { processMetrics } from "../../src/metrics.js";
import { clientSideKey } from "../../src/transport/call-context.js";

/** face_open_requests of this process's servers: calls, streams and WebSockets open. */
export async function openRequests(): Promise<number> {
  return (await processMetrics().openRequests.get()).values[0]?.value ?? 0;
}

/** face_admission_calls of this process's servers: calls running image work, or waiting for it. */
export async function admissionCalls(): Promise<{ running: number; waiting: number }> {
  const { values } = await processMetrics().admissionCalls.get();
  const of = (state: string) => values.find((v) => v.labels.state === state)?.value ?? 0;
  return { running: of("running"), waiting: of("waiting") };
}

/**
 * Abort listeners on the client side that calls with no HTTP exchange of their own (REST, WebSocket
 * frames) share. It has no signal now; one it had took a listener from each such call while open.
 */
export function sharedClientSideListeners(): number {
  const shared = clientSideKey.defaultValue.gone;
  return shared === undefined ? 0 : getEventListeners(shared, "abort").length;
}
