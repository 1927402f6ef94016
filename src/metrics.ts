import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The process's Prometheus metrics, served at GET /metrics. One registry per process (like the
 * OpenTelemetry SDK): several apps in one process (tests) add to the same counters.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Finished RPCs, by method and code ("ok" or the Connect code name); REST calls count as their RPC. */
  readonly requests: Counter<"rpc" | "code">;
  readonly requestSeconds: Histogram<"rpc">;
  /** Pipeline stages (decode, detect, embed, similarity_search, ...), fed by the stage spans. */
  readonly stageSeconds: Histogram<"stage">;
  /** Faces found in the images of every RPC. */
  readonly facesDetected: Counter;
  /** Faces matched to a registered user, by RPC. */
  readonly matches: Counter<"rpc">;
  /** Webhook posts by outcome: delivered, failed (will retry), gave_up. */
  readonly webhookDeliveries: Counter<"outcome">;
  /** Detection log entries a write failed for, by what became of them: kept (tried again) or dropped. */
  readonly detectionLogUnwritten: Counter<"outcome">;
  /** Requests open (calls, streams, WebSockets), against FACE_MAX_OPEN_REQUESTS. */
  readonly openRequests: Gauge;
  /** Connections closed as they arrived (the server had its limit open, their address its share) or for their address's reset streams. */
  readonly connectionsDropped: Counter;
  /** Bytes of request messages being received, held against FACE_MAX_RECEIVING_BYTES. */
  readonly receivingBytes: Gauge;
  /** Calls in admission: running image work (FACE_MAX_IN_FLIGHT) or waiting for it (FACE_MAX_QUEUED). */
  readonly admissionCalls: Gauge<"state">;
}

/** Stage durations run from a fraction of a millisecond (landmarks) to a second (huge images). */
const STAGE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

let metrics: Metrics | undefined;

/** The metrics of this process, created on first use. */
export function processMetrics(): Metrics {
  if (metrics !== undefined) return metrics;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "face_" });
  metrics = {
    registry,
    requests: new Counter({ name: "face_requests_total", help: "RPCs answered, by method and code", labelNames: ["rpc", "code"], registers: [registry] }),
    requestSeconds: new Histogram({ name: "face_request_duration_seconds", help: "RPC duration (streams: whole stream)", labelNames: ["rpc"], buckets: [...STAGE_BUCKETS, 5, 10, 60], registers: [registry] }),
    stageSeconds: new Histogram({ name: "face_stage_duration_seconds", help: "Duration of each pipeline stage", labelNames: ["stage"], buckets: STAGE_BUCKETS, registers: [registry] }),
    facesDetected: new Counter({ name: "face_faces_detected_total", help: "Faces found in request images", registers: [registry] }),
    matches: new Counter({ name: "face_matches_total", help: "Faces matched to a registered user", labelNames: ["rpc"], registers: [registry] }),
    webhookDeliveries: new Counter({ name: "face_webhook_deliveries_total", help: "Webhook posts by outcome (delivered, failed, gave_up)", labelNames: ["outcome"], registers: [registry] }),
    detectionLogUnwritten: new Counter({ name: "face_detection_log_unwritten_total", help: "Detection log entries a write failed for: kept (tried again) or dropped (refused by the database)", labelNames: ["outcome"], registers: [registry] }),
    openRequests: new Gauge({ name: "face_open_requests", help: "Requests open: calls, streams and WebSockets (limit: FACE_MAX_OPEN_REQUESTS)", registers: [registry] }),
    connectionsDropped: new Counter({ name: "face_connections_dropped_total", help: "Connections closed as they arrived (the server had its limit open, FACE_MAX_CONNECTIONS, or their address its share, FACE_MAX_CONNECTIONS_PER_ADDRESS) or for their address's clients resetting too many HTTP/2 streams", registers: [registry] }),
    receivingBytes: new Gauge({ name: "face_receiving_bytes", help: "Bytes of request messages being received (limit: FACE_MAX_RECEIVING_BYTES)", registers: [registry] }),
    admissionCalls: new Gauge({ name: "face_admission_calls", help: "Calls running image work (state=running, limit: FACE_MAX_IN_FLIGHT) or waiting for it (state=waiting, limit: FACE_MAX_QUEUED)", labelNames: ["state"], registers: [registry] }),
  };
  return metrics;
}

/** Observes every finished stage span (the spans behind `flame_graph`) in the stage histogram. */
export class StageMetricsProcessor implements SpanProcessor {
  constructor(private readonly isStage: (span: ReadableSpan) => boolean) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (!this.isStage(span)) return;
    const [seconds, nanos] = span.duration;
    processMetrics().stageSeconds.observe({ stage: span.name }, seconds + nanos / 1e9);
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {}
}
