import { Code } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { processMetrics } from "../metrics.js";
import { whenClosed } from "./when-closed.js";
import { deny, isOpenRequest } from "./access.js";
import { clientName, clientOf } from "./client-address.js";
import { CountsByKey } from "../counts-by-key.js";
import { retryLater } from "./errors.js";
import { throttledWarning } from "./throttled-warning.js";

/** A client refused for holding its share is logged at most this often (with how many since). */
const SHARE_LOG_INTERVAL_MS = 60_000;

export interface OpenRequestLimits {
  /** Requests open at once across all clients (FACE_MAX_OPEN_REQUESTS). */
  readonly maxOpen: number;
  /** Of those, how many one client may hold (FACE_MAX_OPEN_REQUESTS_PER_CLIENT). */
  readonly maxOpenPerClient: number;
}

/**
 * Refuses new requests (calls, streams, WebSocket upgrades) while `maxOpen` are open, with
 * Unavailable (HTTP 503) and `retry-after`, before their message is read. A request holds memory from
 * its first bytes, and admission bounds image work only once a message is whole: 20,000 gRPC calls
 * that never sent their message took 700 MB, on one connection (`test/open-requests.test.ts`).
 *
 * One client (its API key, or its address without keys: the rate limit's client, access.ts) may
 * hold `maxOpenPerClient` of them; beyond, its requests get ResourceExhausted (HTTP 429) and
 * `retry-after`, and the other clients' go on. A Sync stream or WebSocket stays open for as long
 * as its client answers pings, so without this one client's idle streams locked everyone out
 * (`test/client-shares.test.ts`).
 *
 * Probes and CORS preflights are always answered.
 */
export function registerOpenRequestLimit(app: FastifyInstance, limits: OpenRequestLimits): void {
  const { maxOpen, maxOpenPerClient } = limits;
  let open = 0;
  const openByClient = new CountsByKey();
  const gauge = processMetrics().openRequests;
  // The address tells an operator whether a proxy's address stands for all its clients
  // (FACE_TRUSTED_PROXIES); a key is never logged.
  const warnShareHeld = throttledWarning(SHARE_LOG_INTERVAL_MS, (refused: number, client: string) =>
    app.log.warn({ client: clientName(client), refused, maxOpenPerClient }, "a client holds its share of open requests (FACE_MAX_OPEN_REQUESTS_PER_CLIENT); its new requests are refused"),
  );
  app.addHook("onRequest", async (request, reply) => {
    if (isOpenRequest(request)) return;
    if (open >= maxOpen) {
      return deny(request, reply, retryLater(`the server has ${maxOpen} open requests, its limit; retry shortly`, Code.Unavailable));
    }
    const client = clientOf(request);
    if (openByClient.of(client) >= maxOpenPerClient) {
      warnShareHeld(client);
      return deny(request, reply, retryLater(`this client (${clientName(client)}) has ${maxOpenPerClient} open requests, its share of the server's (FACE_MAX_OPEN_REQUESTS_PER_CLIENT); retry once some end`, Code.ResourceExhausted));
    }
    open += 1;
    const release = openByClient.take(client);
    gauge.inc();
    // A WebSocket lives as long as its connection; any other request until its answer ends or breaks.
    const lifetime = request.headers.upgrade === undefined ? reply.raw : request.raw.socket;
    whenClosed(lifetime, () => {
      open -= 1;
      release();
      gauge.dec();
    });
  });
}
