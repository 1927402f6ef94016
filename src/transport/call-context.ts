import { constants, type ServerHttp2Stream } from "node:http2";
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { FastifyReply, FastifyRequest } from "fastify";
import { clientOf } from "./client-address.js";
import { whenClosed } from "./when-closed.js";

/** The request id of the HTTP request carrying an RPC (the same value as the x-request-id header). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** What the transport knows about the client's side of one call. */
export interface ClientSide {
  /**
   * Fires when the client cancels or goes away before its answer was sent. Calls with no HTTP
   * exchange of their own (REST, WebSocket frames, through the in-process router) have none: one
   * signal shared by them all, which never fired, took a listener from every such call while it was
   * open (sixteen WebSockets, sixteen listeners, and MaxListenersExceededWarning from the eleventh).
   */
  gone?: AbortSignal;
  /** Settles when the call's HTTP exchange is over (answered, reset or disconnected). */
  closed: Promise<void>;
}

/**
 * connect-es does not tell a cancelled call from a finished one: a cancelled stream just ends its
 * request messages, and the handler's own signal fires only once the handler is done. The HTTP
 * layer knows (an HTTP/2 reset code, an HTTP/1.1 connection closed before the answer).
 */
export const clientSideKey = createContextKey<ClientSide>({ closed: Promise.resolve() }, { description: "client side" });

/**
 * Who a call over HTTP is from (client-address.ts, clientOf): the admission's per-client share counts
 * by it. Calls through the in-process router have none; runInCall names their client instead.
 */
export const callClientKey = createContextKey<string | undefined>(undefined, { description: "call's client" });

/**
 * Takes a token for one more unit of a call's work (a frame of a Sync stream) from its client's rate
 * limit: 0, or the whole seconds until there is one. Calls through the in-process router take none
 * here: REST requests are single, and the WebSocket route takes its frames' tokens itself.
 */
export const moreWorkKey = createContextKey<() => number>(() => 0, { description: "more work from the call's client" });

/** The context values of one RPC, from the fastify request and reply carrying it. */
export function callContextValues(request: FastifyRequest, reply: FastifyReply): ContextValues {
  const gone = new AbortController();
  const stream = (request.raw as unknown as { stream?: ServerHttp2Stream }).stream;
  const closed = new Promise<void>((resolve) => {
    // A client's reset arrives as "aborted" while the answer is still being written; one that
    // half-closed first (as Node's client does) shows only in the reset code at close.
    stream?.once("aborted", () => gone.abort());
    whenClosed(reply.raw, () => {
      const reset = stream === undefined ? !reply.raw.writableFinished : stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR;
      if (reset) gone.abort();
      resolve();
    });
  });
  return createContextValues().set(callClientKey, clientOf(request)).set(requestIdKey, String(request.id)).set(clientSideKey, { gone: gone.signal, closed });
}
