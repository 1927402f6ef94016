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

/** HTTP/2 frame types (RFC 9113 6), and the flag a PING's answer carries. */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
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

/** An HTTP/2 frame as the server sent it. */
export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/**
 * Writes, in one packet on a new connection from `from`, the connection preface, `reset`
 * Recognize calls each reset (CANCEL) right after its headers and its message's first bytes (the
 * server reads each stream's reset in the same read as its headers), then `whole` Recognize calls
 * with an empty message, then a PING. `frames` fills with what the server sends; `pingAnswered`
 * resolves once the PING is answered (the server has read every frame before it) and rejects if
 * the connection closes first; `closed` resolves when it closes.
 */
export function writeInOnePacket(url: string, from: string, reset: number, whole = 0) {
  const socket = tcpFrom(url, from);
  socket.on("error", () => {});
  const frames: ReceivedFrame[] = [];
  let received = Buffer.alloc(0);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const pingAnswered = new Promise<void>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 9 && received.length >= 9 + received.readUIntBE(0, 3)) {
        const length = received.readUIntBE(0, 3);
        const frame = { type: received[3], flags: received[4], streamId: received.readUInt32BE(5) & 0x7fffffff, payload: received.subarray(9, 9 + length) };
        frames.push(frame);
        received = received.subarray(9 + length);
        if (frame.type === FRAME.PING && (frame.flags & ACK) !== 0) resolve();
      }
    });
    void closed.then(() => reject(new Error("the connection closed before the PING was answered")));
  });
  pingAnswered.catch(() => {});
  socket.once("connect", () => {
    // :method POST and :scheme http are entries 3 and 6 of HPACK's static table.
    const headers = Buffer.concat([Buffer.from([0x80 | 3, 0x80 | 6]), ...Object.entries({ ":path": RECOGNIZE[":path"], ":authority": "localhost", "content-type": "application/grpc", te: "trailers" }).map(([n, v]) => literalHeader(n, v))]);
    const [END_STREAM, END_HEADERS] = [0x1, 0x4];
    const written = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))];
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
    let id = 1;
    for (let i = 0; i < reset; i++, id += 2) written.push(frame(FRAME.HEADERS, END_HEADERS, id, headers), frame(FRAME.DATA, 0, id, envelopePrefix(100)), frame(FRAME.RST_STREAM, 0, id, cancel));
    for (let i = 0; i < whole; i++, id += 2) written.push(frame(FRAME.HEADERS, END_HEADERS, id, headers), frame(FRAME.DATA, END_STREAM, id, envelopePrefix(0)));
    written.push(frame(FRAME.PING, 0, 0, Buffer.alloc(8)));
    socket.write(Buffer.concat(written));
  });
  return { socket, frames, pingAnswered, closed };
}

/** `count` calls reset in one packet (writeInOnePacket); resolves with the socket once the server has read them. */
export async function resetInOnePacket(url: string, from: string, count: number): Promise<Socket> {
  const sent = writeInOnePacket(url, from, count);
  await sent.pingAnswered;
  return sent.socket;
}
