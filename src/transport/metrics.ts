import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { processMetrics } from "../metrics.js";
import { codeName } from "./errors.js";

/**
 * Counts and times every RPC by method and outcome. Outermost interceptor, so it sees the code the
 * client sees; a stream is counted once, when it ends.
 */
export function createMetricsInterceptor(): Interceptor {
  const metrics = processMetrics();
  const record = (rpc: string, start: number, error: unknown) => {
    const code = error === undefined ? "ok" : codeName(ConnectError.from(error).code);
    metrics.requests.inc({ rpc, code });
    metrics.requestSeconds.observe({ rpc }, (performance.now() - start) / 1000);
  };
  return (next) => async (req) => {
    const rpc = req.method.name;
    const start = performance.now();
    let response;
    try {
      response = await next(req);
    } catch (e) {
      record(rpc, start, e);
      throw e;
    }
    if (!response.stream) {
      record(rpc, start, undefined);
      return response;
    }
    const messages = response.message;
    return {
      ...response,
      message: (async function* () {
        let failure: unknown;
        try {
          yield* messages;
        } catch (e) {
          failure = e;
          throw e;
        } finally {
          record(rpc, start, failure);
        }
      })(),
    };
  };
}

/** GET /metrics in the Prometheus text format. */
export function registerMetricsRoute(app: FastifyInstance): void {
  const { registry } = processMetrics();
  app.get("/metrics", async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}
