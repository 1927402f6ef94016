import { processMetrics } from "../../src/metrics.js";

/** Calls of `rpc` answered with `code` so far in this process, as face_requests_total counts them. */
export async function requestsCounted(rpc: string, code: string): Promise<number> {
  const { values } = await processMetrics().requests.get();
  return values.find((v) => v.labels.rpc === rpc && v.labels.code === code)?.value ?? 0;
}
