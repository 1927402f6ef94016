import http2 from "node:http2";
import { connect as connectTcp } from "node:net";

/** The 5-byte prefix of a gRPC message of `length` bytes, compressed or not. */
export function envelopePrefix(length: number, compressed = false): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed ? 1 : 0;
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

/** A gRPC message as it goes on the wire: `message` behind its prefix. */
export function grpcEnvelope(message: Uint8Array): Buffer {
  return Buffer.concat([envelopePrefix(message.length), message]);
}

/**
 * An HTTP/2 connection to `url` from the local address `from` (any 127.x.y.z, or ::1, is this
 * machine), so that the service sees another client address. Its errors are ignored: tests look
 * at what it was sent (settings, GOAWAY, answers) and whether it closed.
 */
export function connectFrom(url: string, from: string): http2.ClientHttp2Session {
  const { hostname, port } = new URL(url);
  const host = from.includes(":") ? "::1" : hostname;
  const session = http2.connect(url, { createConnection: () => connectTcp({ host, port: Number(port), localAddress: from }) });
  session.on("error", () => {});
  return session;
}
