import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A peer on loopback that answers every connection with `response`, one byte every `intervalMs`:
 * never idle long enough for an idle timeout, so only a total deadline ends it. It counts the
 * connections it got and how long each stayed open.
 */
export function createTrickler(response: string, intervalMs: number) {
  const sockets = new Set<Socket>();
  const openMs: number[] = [];
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    const opened = Date.now();
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < response.length) socket.write(response[sent++]);
    }, intervalMs);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      sockets.delete(socket);
      openMs.push(Date.now() - opened);
    });
  });
  return {
    get connections() {
      return connections;
    },
    /** How long each closed connection stayed open, in ms. */
    openMs,
    async listen(): Promise<number> {
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      return (server.address() as AddressInfo).port;
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** An HTTP answer whose body alone takes minutes to trickle out. */
export const SLOW_HTTP_ANSWER = `HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: 1000\r\n\r\n${"x".repeat(1000)}`;
