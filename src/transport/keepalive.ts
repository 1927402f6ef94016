import type { Http2Session } from "node:http2";
import type { WebSocket } from "ws";

/**
 * A client that vanishes (its power or network gone, a NAT entry expired) sends nothing more, not
 * even the end of its connection: the connection stays open on the server, and its Sync streams and
 * WebSockets, which have no time limit, each hold an open-request place for good. So each HTTP/2
 * connection and each WebSocket is pinged every `intervalMs`, and closed when it has not answered
 * the previous ping by the next (both protocols answer pings on their own, without the application).
 */
export function keepHttp2SessionAlive(session: Http2Session, intervalMs: number): void {
  const stop = pingUntilSilent(
    intervalMs,
    // ping() throws on a session destroyed but not yet closed.
    (answered) => session.destroyed || session.ping((error) => error === null && answered()),
    () => session.destroy(),
  );
  session.once("close", stop);
}

export function keepWebSocketAlive(socket: WebSocket, intervalMs: number): void {
  const stop = pingUntilSilent(
    intervalMs,
    (answered) => {
      socket.once("pong", answered);
      socket.ping();
    },
    () => socket.terminate(),
  );
  socket.once("close", stop);
}

/** Calls `ping` every `intervalMs` (0: never), and `close` when the previous one went unanswered; returns a stop. */
function pingUntilSilent(intervalMs: number, ping: (answered: () => void) => void, close: () => void): () => void {
  if (intervalMs === 0) return () => {};
  let answered = true;
  const timer = setInterval(() => {
    if (answered) {
      answered = false;
      ping(() => (answered = true));
      return;
    }
    // After an event loop stalled past the interval, timers run before the answer that arrived
    // meanwhile is read: judge once pending input has been handled.
    setImmediate(() => {
      if (answered) return;
      clearInterval(timer);
      close();
    });
  }, intervalMs).unref();
  return () => clearInterval(timer);
}
