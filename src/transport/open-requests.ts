import { Code } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { processMetrics } from "../metrics.js";
import { deny, isOpenRequest } from "./access.js";
import { retryLater } from "./errors.js";

/**
 * Refuses new requests (calls, streams, WebSocket upgrades) while `maxOpen` are open, with
 * Unavailable (HTTP 503) and `retry-after`, before their message is read. A request holds memory from
 * its first bytes, and admission bounds image work only once a message is whole: 20,000 gRPC calls
 * that never sent their message took 700 MB, on one connection (`test/open-requests.test.ts`).
 * Probes and CORS preflights are always answered.
 */
export function registerOpenRequestLimit(app: FastifyInstance, maxOpen: number): void {
  let open = 0;
  const gauge = processMetrics().openRequests;
  app.addHook("onRequest", async (request, reply) => {
    if (isOpenRequest(request)) return;
    if (open >= maxOpen) {
      return deny(request, reply, retryLater(`the server has ${maxOpen} open requests, its limit; retry shortly`, Code.Unavailable));
    }
    open += 1;
    gauge.inc();
    // A WebSocket lives as long as its connection; any other request until its answer ends or breaks.
    const lifetime = request.headers.upgrade === undefined ? reply.raw : request.raw.socket;
    lifetime.once("close", () => {
      open -= 1;
      gauge.dec();
    });
  });
}
