import { throwIfCallEnded } from "./call-signal.js";
import { SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, type ReadableSpan, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { StageTimer } from "./engine/pipeline.js";
import { StageMetricsProcessor } from "./metrics.js";

/** One stage of a request, as the `flame_graph` field reports it. */
export interface FlameGraphEntry {
  label: string;
  durationMs: number;
  /** Label of the enclosing stage; "" at the top level. */
  parent: string;
  startMs: number;
}

/** Attribute that marks a span as a pipeline stage (what the flame graph shows). */
const STAGE_ATTRIBUTE = "face.stage";
/**
 * Where a stage started and ended on the monotonic clock (performance.now(), ms). Span start
 * times are derived from Date.now() per span (millisecond steps, each with its own offset), so two
 * spans' start times disagree by up to a millisecond: a flame graph from them showed stages starting
 * before their request, and top-level stages adding up to more than the request took.
 */
const STAGE_START = "face.stage.start_ms";
const STAGE_END = "face.stage.end_ms";

/** A request's spans are dropped if nobody collects them within this time (e.g. a crashed handler). */
const UNCOLLECTED_TTL_MS = 60_000;

/**
 * A span processor that keeps the finished stage spans of the traces someone asked for, so a
 * request can answer with its own flame graph. Only traces opened with `watch` are kept.
 */
export class FlameGraphCollector implements SpanProcessor {
  private readonly traces = new Map<string, { spans: ReadableSpan[]; since: number }>();

  /** Starts keeping the stage spans of a trace. */
  watch(traceId: string): void {
    this.traces.set(traceId, { spans: [], since: Date.now() });
    if (this.traces.size > 1000) this.evictStale();
  }

  /**
   * Stops watching a trace and returns its stages, in start order, relative to `rootStart` (a
   * performance.now() reading taken before the request's work began).
   */
  collect(traceId: string, rootStart: number): FlameGraphEntry[] {
    const bucket = this.traces.get(traceId);
    this.traces.delete(traceId);
    if (bucket === undefined) return [];
    const labels = new Map(bucket.spans.map((s) => [s.spanContext().spanId, s.name]));
    return bucket.spans
      .map((s) => {
        const start = Number(s.attributes[STAGE_START]);
        return {
          label: s.name,
          durationMs: Number(s.attributes[STAGE_END]) - start,
          parent: labels.get(s.parentSpanContext?.spanId ?? "") ?? "",
          startMs: start - rootStart,
        };
      })
      .sort((a, b) => a.startMs - b.startMs);
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (span.attributes[STAGE_ATTRIBUTE] !== true) return;
    this.traces.get(span.spanContext().traceId)?.spans.push(span);
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    this.traces.clear();
  }

  private evictStale(): void {
    const oldest = Date.now() - UNCOLLECTED_TTL_MS;
    for (const [id, bucket] of this.traces) if (bucket.since < oldest) this.traces.delete(id);
  }
}

/** The tracing of the process: stage spans, flame graphs, stage metrics and (optionally) OTLP export. */
export interface Telemetry {
  readonly collector: FlameGraphCollector;
  /** Times an engine or store stage as a child span of the current one. */
  readonly stage: StageTimer;
  /** Runs `work` in a new root-level span for one RPC and returns its result and flame graph. */
  traceRequest<T>(name: string, work: (span: Span) => Promise<T>): Promise<{ result: T; flameGraph: FlameGraphEntry[]; totalMs: number }>;
  shutdown(): Promise<void>;
}

let started: Telemetry | undefined;

/**
 * Starts the OpenTelemetry NodeSDK once per process (before the app is built, so every span has a
 * provider and a context manager). Spans go to the flame-graph collector and, when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set, to an OTLP/HTTP backend.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (started !== undefined) return started;
  const collector = new FlameGraphCollector();
  const spanProcessors: SpanProcessor[] = [collector, new StageMetricsProcessor((span) => span.attributes[STAGE_ATTRIBUTE] === true)];
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  }
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || "face-service",
    spanProcessors,
    // No auto-instrumentation: the spans that matter are the RPCs and the stages, made here.
    instrumentations: [],
  });
  sdk.start();
  const tracer = trace.getTracer("face-service");

  const stage: StageTimer = async (label, work) => {
    // Every stage is a point where the work of a call its client gave up on stops, before its span:
    // a stage that did not run is not timed (it counted as a run of about 0 ms).
    throwIfCallEnded();
    return tracer.startActiveSpan(label, { attributes: { [STAGE_ATTRIBUTE]: true, [STAGE_START]: performance.now() } }, async (span) => {
      try {
        return await work();
      } catch (e) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
        throw e;
      } finally {
        span.setAttribute(STAGE_END, performance.now());
        span.end();
      }
    });
  };

  started = {
    collector,
    stage,
    traceRequest(name, work) {
      return tracer.startActiveSpan(name, { root: true }, async (span) => {
        const traceId = span.spanContext().traceId;
        // One clock for the total and every stage (see STAGE_START).
        const start = performance.now();
        collector.watch(traceId);
        try {
          const result = await work(span);
          const totalMs = performance.now() - start;
          return { result, flameGraph: collector.collect(traceId, start), totalMs };
        } catch (e) {
          collector.collect(traceId, start);
          span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
          throw e;
        } finally {
          span.end();
        }
      });
    },
    async shutdown() {
      // An unreachable OTLP backend must not hold the process at exit.
      await Promise.race([sdk.shutdown(), new Promise((r) => setTimeout(r, 3_000).unref())]);
    },
  };
  return started;
}
