import { processMetrics } from "../../src/metrics.js";

/** How many times `stage` has run in this process (face_stage_duration_seconds_count). */
export async function stageRuns(stage: string): Promise<number> {
  const { values } = await processMetrics().stageSeconds.get();
  return values.find((v) => v.metricName === "face_stage_duration_seconds_count" && v.labels.stage === stage)?.value ?? 0;
}
