import { processMetrics } from "../../src/metrics.js";

/** face_open_requests of this process's servers: calls, streams and WebSockets open. */
export async function openRequests(): Promise<number> {
  return (await processMetrics().openRequests.get()).values[0]?.value ?? 0;
}
