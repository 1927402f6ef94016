import http2 from "node:http2";
import { connect as connectTcp } from "node:net";

/** The headers of a gRPC Recognize call. */
export const RECOGNIZE = { ":method": "POST", ":path": "/face.v1.FaceService/Recognize", "content-type": "application/grpc", te: "trailers" };

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

/** Whether the server accepted the connection (sent its settings) or closed it as it arrived. */
export function accepted(session: http2.ClientHttp2Session): Promise<boolean> {
  return new Promise((resolve) => {
    session.once("remoteSettings", () => resolve(true));
    session.once("close", () => resolve(false));
  });
}

/** A Recognize with an empty message: its grpc-status (InvalidArgument once let in) and retry-after. */
export function emptyRecognize(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; retryAfter?: string; message: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ...RECOGNIZE, ...headers });
    let httpStatus: number | undefined;
    const settle = (h: http2.IncomingHttpHeaders) => {
      httpStatus ??= Number(h[":status"]);
      if (h["grpc-status"] === undefined) return;
      resolve({ status: Number(h["grpc-status"]), retryAfter: h["retry-after"] as string | undefined, message: decodeURIComponent(String(h["grpc-message"] ?? "")) });
    };
    stream.on("response", settle).on("trailers", settle).on("error", reject);
    stream.once("close", () => reject(new Error(`the stream closed without a gRPC status (HTTP status ${httpStatus}, reset code ${stream.rstCode})`)));
    stream.resume();
    stream.end(grpcEnvelope(new Uint8Array()));
  });
}
