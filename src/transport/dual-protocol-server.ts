import http from "node:http";
import http2 from "node:http2";
import type { Socket } from "node:net";
import { createAddressShare, type AddressShareDrop } from "./connection-limit.js";
import { closeHttp2SessionWhenIdle } from "./http2-idle.js";
import { keepHttp2SessionAlive } from "./keepalive.js";
import { createResetStreamsLimit, type ResetStreamsDrop } from "./stream-resets.js";
import { endIfAnswerNotTaken, endIfSlow } from "./time-limits.js";

type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A connection that sends nothing for this long is dropped (it holds a socket and a file descriptor). */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

/** How long a finished response waits for the client to end its side of the stream. */
const ABANDONED_REQUEST_GRACE_MS = 1_000;

/**
 * HTTP/2 flow-control windows for what clients send (bytes in flight before the server must
 * acknowledge). The protocol's default of 64 KB lets a client send 64 KB per round trip: a 2.5 MB
 * photo over a 40 ms round trip spent 2.5 s outside the server, 0.18 s with these (`npm run
 * bench:upload`). A stream may have 1 MiB in flight (~25 MB/s at 40 ms), a connection 4 MiB across
 * its streams, under the 10 MB a session may buffer (maxSessionMemory) before Node refuses it.
 */
export const HTTP2_STREAM_WINDOW_BYTES = 1 << 20;
export const HTTP2_CONNECTION_WINDOW_BYTES = 4 << 20;

/** The least number of concurrent streams RFC 9113 advises a server to allow a connection. */
const HTTP2_MIN_CONCURRENT_STREAMS = 100;

/** A request URL's path, without its query. */
const pathOf = (url = "") => url.split("?")[0];

/** The first bytes a client sends on a cleartext HTTP/2 connection with prior knowledge. */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** What the server allows each request and connection. */
export interface ConnectionLimits {
  /** How long a request may take to arrive whole (headers and body). */
  readonly requestTimeoutMs: number;
  /** How long an idle connection (HTTP/1.1, or HTTP/2 with no stream open) waits for its next request before it is closed. */
  readonly keepAliveTimeoutMs: number;
  /** Whether the RPC at `path` takes a stream of messages, which goes on as long as its client sends. */
  readonly streamsRequests: (path: string) => boolean;
  /** Whether the RPC at `path` answers with a stream of messages, which goes on as long as it answers. */
  readonly streamsAnswers: (path: string) => boolean;
  /** How often an HTTP/2 connection is pinged; one silent until the next ping is closed (0: never). */
  readonly pingIntervalMs: number;
  /** Requests open at once across connections (FACE_MAX_OPEN_REQUESTS; open-requests.ts refuses beyond). */
  readonly maxOpenRequests: number;
  /** Connections one address may hold (connection-limit.ts); beyond, they are closed as they arrive. */
  readonly maxConnectionsPerAddress: number;
  /** Whether a peer is a proxy the service trusts (FACE_TRUSTED_PROXIES), whose resets stream-resets.ts does not count. */
  readonly isTrustedProxy: (address: string) => boolean;
}

/**
 * The streams an HTTP/2 connection may have open at once: one more than may be open across all
 * connections. Clients queue streams beyond this on their side, silently and for as long as
 * streams stay open: with 100, a gateway's 120 Sync streams on one grpcio channel got 100 answered
 * and 20 never sent (a camera's stream stays open for days). With this, the stream that passes the
 * limit reaches the server and is refused with Unavailable and a retry delay.
 */
export function maxStreamsPerConnection(maxOpenRequests: number): number {
  return Math.max(HTTP2_MIN_CONCURRENT_STREAMS, maxOpenRequests + 1);
}

/**
 * Creates an HTTP/1.1 server whose connections are sniffed: a connection that starts with the HTTP/2
 * preface is handed to an h2c server, anything else stays HTTP/1.1. Both call the same handler, so
 * one port serves gRPC (HTTP/2 only) as well as curl, browsers, gRPC-Web and REST (mostly HTTP/1.1).
 *
 * A request must arrive whole within `limit.requestTimeoutMs`, or one trickling its bytes holds its
 * place forever: HTTP/1.1 answers 408 and closes the connection (Node's own check), HTTP/2 resets the
 * stream (CANCEL) and the connection's other streams go on. Request streams (Sync) are not limited.
 * An answer must be taken whole within the same time of its being ready (time-limits.ts).
 *
 * Fastify only sees the returned HTTP/1.1 server (listen, close); closing it also closes the h2c
 * sessions gracefully (GOAWAY, in-flight streams finish).
 */
export function createDualProtocolServer(handler: RequestHandler, limit: ConnectionLimits): http.Server {
  const { requestTimeoutMs } = limit;
  // Node keeps an HTTP/1.1 connection whose answer was in flight when close() was called for its
  // whole keep-alive time, and close() waits for it: so once closing, each answer not yet begun
  // says `Connection: close`, and a connection whose answer had begun ends when it is sent.
  let closing = false;
  const answering = new Set<http.ServerResponse>();
  const endAfterAnswer = (res: http.ServerResponse) => {
    if (!res.headersSent) res.setHeader("connection", "close");
    else res.once("finish", () => res.req.socket.end());
  };
  // Node checks HTTP/1.1 requests' time every 30 s by default: a tenth of the limit keeps it close.
  const h1 = http.createServer({ requestTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.min(30_000, Math.ceil(requestTimeoutMs / 10)), keepAliveTimeout: limit.keepAliveTimeoutMs }, (req, res) => {
    if (closing) endAfterAnswer(res);
    if (!limit.streamsAnswers(pathOf(req.url))) endIfAnswerNotTaken(res, requestTimeoutMs, () => res.req.socket.destroy());
    answering.add(res);
    res.once("close", () => answering.delete(res));
    handler(req, res);
  });
  const resetStreams = createResetStreamsLimit(limit.isTrustedProxy);
  const h2 = http2.createServer({ settings: { initialWindowSize: HTTP2_STREAM_WINDOW_BYTES, maxConcurrentStreams: maxStreamsPerConnection(limit.maxOpenRequests) } }, (req, res) => {
    // A stream reset in the read that opened it is over when its turn comes: no session, no one to
    // answer. On a connection closing for its resets, a stream is refused unprocessed, as RFC 9113
    // 8.7 lets a server say, instead of set up as a call (stream-resets.ts).
    if (req.stream.destroyed) return;
    if (resetStreams.closes(req.stream.session!)) return req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    if (!limit.streamsRequests(pathOf(req.url))) endIfSlow(req, requestTimeoutMs);
    if (!limit.streamsAnswers(pathOf(req.url))) endIfAnswerNotTaken(res, requestTimeoutMs, () => req.stream.destroyed || req.stream.close(http2.constants.NGHTTP2_CANCEL));
    // A response sent before the request was fully read (e.g. "message too large") leaves some
    // clients holding their half of the stream open forever. RFC 9113 8.1 lets the server then end
    // it with RST_STREAM NO_ERROR; the delay lets the response's last frames leave first.
    req.stream.once("finish", () => {
      if (req.readableEnded) return;
      setTimeout(() => {
        // close() sends the RST_STREAM; destroy() drops the unread request data, so the session
        // no longer counts the stream and can end.
        if (req.stream.destroyed) return;
        req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
        req.stream.destroy();
      }, ABANDONED_REQUEST_GRACE_MS).unref();
    });
    handler(req as unknown as http.IncomingMessage, res as unknown as http.ServerResponse);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    resetStreams.watch(session, (drop) => h1.emit("drop", drop));
    session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW_BYTES);
    keepHttp2SessionAlive(session, limit.pingIntervalMs);
    closeHttp2SessionWhenIdle(session, limit.keepAliveTimeoutMs);
    session.once("close", () => sessions.delete(session));
  });

  // Connections that have not sent their first bytes yet belong to neither server: closing must
  // drop them itself, or close() would wait for a silent client forever.
  const undecided = new Set<Socket>();
  const handOverToHttp1 = h1.listeners("connection") as ((socket: Socket) => void)[];
  h1.removeAllListeners("connection");
  const takeAddressPlace = createAddressShare(limit.maxConnectionsPerAddress);
  h1.on("connection", (socket: Socket) => {
    // Why the connection is closed as it arrives, if it is (reportDroppedConnections reads it).
    const refusal: Omit<ResetStreamsDrop, "remoteAddress"> | Omit<AddressShareDrop, "remoteAddress"> | undefined = resetStreams.refuses(socket.remoteAddress)
      ? { resetStreams: true }
      : takeAddressPlace(socket) ? undefined : { overAddressShare: true };
    if (refusal !== undefined) {
      socket.destroy();
      h1.emit("drop", { remoteAddress: socket.remoteAddress, ...refusal });
      return;
    }
    undecided.add(socket);
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
    sniff(socket, (isHttp2) => {
      undecided.delete(socket);
      socket.setTimeout(0);
      if (isHttp2) {
        // HTTP/2 has no use for a half-closed connection: a client that ends its side has gone. The
        // socket came from the HTTP/1.1 server, which keeps it half open, and the session does not
        // notice, so without this its streams (a Sync stream, an open-request slot) stayed forever.
        socket.once("end", () => socket.destroy());
        h2.emit("connection", socket);
      } else for (const listener of handOverToHttp1) listener.call(h1, socket);
    });
    socket.once("close", () => undecided.delete(socket));
  });

  // Closing stops accepting and lets h2c sessions finish their in-flight streams (GOAWAY).
  const close = h1.close.bind(h1);
  h1.close = ((callback?: (err?: Error) => void) => {
    closing = true;
    for (const res of answering) endAfterAnswer(res);
    for (const socket of undecided) socket.destroy();
    for (const session of sessions) session.close();
    return close(callback);
  }) as typeof h1.close;
  // fastify's forceCloseConnections calls this on the HTTP/1.1 server; h2c sessions need it too.
  const closeAllConnections = h1.closeAllConnections.bind(h1);
  h1.closeAllConnections = () => {
    closeAllConnections();
    for (const session of sessions) session.destroy();
  };
  return h1;
}

/**
 * Reads just enough of a new connection to tell HTTP/2 prior knowledge from HTTP/1.x, then puts the
 * bytes back so the chosen server parses the connection from its first byte.
 */
function sniff(socket: Socket, decide: (isHttp2: boolean) => void): void {
  let received = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    const compared = Math.min(received.length, HTTP2_PREFACE.length);
    const samePrefix = received.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
    if (samePrefix && received.length < HTTP2_PREFACE.length) return; // need more bytes
    socket.off("data", onData);
    socket.off("close", onClose);
    socket.off("end", onEnd);
    socket.pause();
    socket.unshift(received);
    decide(samePrefix);
    // The HTTP/2 session takes over the socket's handle and drains what was put back; the
    // HTTP/1.1 parser listens for 'data' on a socket this function paused.
    if (!samePrefix) socket.resume();
  };
  const onClose = () => socket.off("data", onData);
  // A client that closes its side before a first request leaves nothing to answer. Both servers
  // let sockets stay half open, so this one would hold its file descriptor until the timeout.
  const onEnd = () => socket.destroy();
  socket.on("data", onData);
  socket.once("close", onClose);
  socket.once("end", onEnd);
}
