import { connect as connectTcp, type Socket } from "node:net";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Transport } from "@connectrpc/connect";

/**
 * A TCP connection to `url`'s port from the local address `from` (any 127.x.y.z, or ::1, is this
 * machine), so that the service sees another client address.
 */
export function tcpFrom(url: string, from: string): Socket {
  const { hostname, port } = new URL(url);
  const host = from.includes(":") ? "::1" : hostname.replace(/^\[|\]$/g, "");
  return connectTcp({ host, port: Number(port), localAddress: from });
}

/** A gRPC transport whose connection comes from the local address `from` (see tcpFrom). */
export function grpcTransportFrom(url: string, from: string): Transport {
  return createGrpcTransport({ baseUrl: url, nodeOptions: { createConnection: () => tcpFrom(url, from) } });
}

/**
 * The loopback address of the n-th of several separate clients (n from 0): 127.0.0.2, 127.0.0.3, ...
 * The service shares its places among client addresses (README, admission), so callers meant to be
 * separate must not share one.
 */
export function clientAddress(n: number): string {
  if (n < 0 || n > 252) throw new RangeError(`no loopback address for client ${n}`);
  return `127.0.0.${n + 2}`;
}
