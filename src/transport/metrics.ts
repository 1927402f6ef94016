import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { processMetrics } from "../metrics.js";
import { clientSideKey } from "./call-context.js";
import { callEndOf, codeName, toConnectError } from "./errors.js";

/** How long a finished stream's count waits for its HTTP exchange to close (to see a reset). */
const CLOSE_WAIT_MS = 2_000;

/**
 * Counts and times every RPC by method and outcome. Outermost interceptor, so it sees the code the
 * client sees; a stream is counted once, when it ends. A call whose client gave up (deadline,
 * cancellation, gone) is counted so even when its work happened to complete: the client never got
 * the answer.
 */
export function createMetricsInterceptor(): Interceptor {
  const metrics = processMetrics();
  const record = (rpc: string, start: number, error: unknown, req: { signal: AbortSignal; contextValues: ContextValues }) => {
    const ended = req.signal.aborted ? callEndOf(req.signal.reason) : undefined;
    const gone = req.contextValues.get(clientSideKey).gone?.aborted === true;
    const code = error !== undefined ? ConnectError.from(error).code : ended !== undefined ? toConnectError(ended).code : gone ? Code.Canceled : undefined;
    metrics.requests.inc({ rpc, code: code === undefined ? "ok" : codeName(code) });
    metrics.requestSeconds.observe({ rpc }, (performance.now() - start) / 1000);
  };
  return (next) => async (req) => {
    const rpc = req.method.name;
    const start = performance.now();
    let response;
    try {
      response = await next(req);
    } catch (e) {
      record(rpc, start, e, req);
      throw e;
    }
    if (!response.stream) {
      record(rpc, start, undefined, req);
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
          // A client that half-closes and then resets its stream ends the messages first: whether
          // it cancelled shows when the exchange closes.
          const closed = req.contextValues.get(clientSideKey).closed;
          void Promise.race([closed, new Promise((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]).then(() => record(rpc, start, failure, req));
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
