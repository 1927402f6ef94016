import http2 from "node:http2";
import type { Socket } from "node:net";
import { tcpFrom } from "./from-address.js";

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
 * An HTTP/2 connection to `url` from the local address `from` (tcpFrom). Its errors are ignored:
 * tests look at what it was sent (settings, GOAWAY, answers) and whether it closed.
 */
export function connectFrom(url: string, from: string): http2.ClientHttp2Session {
  const session = http2.connect(url, { createConnection: () => tcpFrom(url, from) });
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

const PING = 6;
const ACK = 0x1;

/** An HTTP/2 frame: its 9-byte header and `payload`. */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** A header as HPACK writes it without indexing or Huffman coding (names and values under 128 bytes). */
function literalHeader(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

/**
 * Writes, in one packet on a new connection from `from`, the connection preface and `count`
 * Recognize calls each reset (CANCEL) right after its headers and its message's first bytes (the
 * server reads each stream's reset in the same read as its headers), then a PING. Resolves with
 * the socket once the PING is answered: the server has read every frame before it.
 */
export async function resetInOnePacket(url: string, from: string, count: number): Promise<Socket> {
  const socket = tcpFrom(url, from);
  socket.on("error", () => {});
  let received = Buffer.alloc(0);
  const pingAnswered = new Promise<void>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (let at = 0; at + 9 <= received.length; at += 9 + received.readUIntBE(at, 3)) {
        if (received[at + 3] === PING && (received[at + 4] & ACK) !== 0) resolve();
      }
    });
    socket.once("close", () => reject(new Error("the connection closed before the PING was answered")));
  });
  await new Promise((resolve) => socket.once("connect", resolve));
  // :method POST and :scheme http are entries 3 and 6 of HPACK's static table.
  const headers = Buffer.concat([Buffer.from([0x80 | 3, 0x80 | 6]), ...Object.entries({ ":path": RECOGNIZE[":path"], ":authority": "localhost", "content-type": "application/grpc", te: "trailers" }).map(([n, v]) => literalHeader(n, v))]);
  const END_HEADERS = 0x4;
  const [DATA, HEADERS, RST_STREAM, SETTINGS] = [0, 1, 3, 4];
  const frames = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(SETTINGS, 0, 0, Buffer.alloc(0))];
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
  for (let i = 0, id = 1; i < count; i++, id += 2) frames.push(frame(HEADERS, END_HEADERS, id, headers), frame(DATA, 0, id, envelopePrefix(100)), frame(RST_STREAM, 0, id, cancel));
  frames.push(frame(PING, 0, 0, Buffer.alloc(8)));
  socket.write(Buffer.concat(frames));
  await pingAnswered;
  return socket;
}
