import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { request as httpRequest } from "node:http";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import WebSocket from "ws";
import { RecognizeRequestSchema } from "../gen/face/v1/face_pb.js";
import { processMetrics } from "../src/metrics.js";
import { countedChunks, createReceiveBudget } from "../src/transport/receive-budget.js";
import { face } from "./support/testdata.js";
import { pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { envelopePrefix } from "./support/raw-http2.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";

const MIB = 1024 * 1024;
/**
 * The budget under test, all of it for one client (its share is test/client-shares.test.ts's), and
 * images of at most 1 MiB (so the budget may be this small).
 */
const ENV = { FACE_MAX_RECEIVING_BYTES: String(4 * MIB), FACE_MAX_RECEIVING_BYTES_PER_CLIENT: String(4 * MIB), FACE_MAX_IMAGE_BYTES: String(MIB) };
/** What one upload sends: four of them fit in the budget, a fifth passes it. */
const PART = 900 * 1024;

/** An upload of PART bytes of a message, held open (`complete` false) or sent whole. */
interface Upload {
  /** How the server answered: "<HTTP status or grpc-status> <retry-after>", a WebSocket's close code or "message <code>". */
  answer: Promise<string>;
  close(): void;
}

type Uploader = (server: TestServer, complete: boolean) => Upload;

const receivingBytes = async () => (await processMetrics().receivingBytes.get()).values[0]?.value ?? 0;

/** A gRPC Recognize call on a connection of its own (`headers` added to the call's), and its answer: "<grpc-status> <retry-after>", or "closed". */
function grpcRecognize(server: TestServer, headers: http2.OutgoingHttpHeaders = {}): { session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream; answer: Promise<string> } {
  const session = http2.connect(server.url).on("error", () => {});
  const stream = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/Recognize", "content-type": "application/grpc", te: "trailers", ...headers });
  stream.on("error", () => {});
  const answer = new Promise<string>((resolve) => {
    let retryAfter: unknown;
    stream.on("response", (headers) => {
      retryAfter = headers["retry-after"];
      if (headers["grpc-status"] !== undefined) resolve(`${headers["grpc-status"]} ${retryAfter}`);
    });
    stream.on("trailers", (trailers) => resolve(`${trailers["grpc-status"]} ${trailers["retry-after"] ?? retryAfter}`));
    stream.on("close", () => resolve("closed"));
  });
  stream.resume();
  return { session, stream, answer };
}

/** A gRPC Recognize call, on a connection of its own, whose message is PART bytes (all of them, or all but the last KiB held back). */
function grpcUpload(server: TestServer, complete: boolean): Upload {
  const { session, stream, answer } = grpcRecognize(server);
  stream.write(envelopePrefix(complete ? PART : PART + 1024));
  stream.write(Buffer.alloc(PART, 0x41));
  if (complete) {
    stream.end();
    void answer.then(() => session.close());
  }
  return { answer, close: () => session.destroy() };
}

/** An HTTP/1.1 POST of `head`, PART bytes and `tail`; held open before the tail unless `complete`. */
function httpUpload(path: string, contentType: string, head: string, tail: string): Uploader {
  return (server, complete) => {
    const request = httpRequest(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": contentType, "content-length": String(head.length + PART + tail.length) },
    });
    const answer = new Promise<string>((resolve) => {
      request.on("response", async (response) => {
        const chunks: Buffer[] = [];
        for await (const chunk of response) chunks.push(chunk);
        const { headers } = response;
        if (!String(headers["content-type"]).startsWith("application/grpc-web")) return resolve(`${response.statusCode} ${headers["retry-after"]}`);
        // gRPC-Web: the status is in the headers or in the trailer frame that ends the body (in base64 in text mode).
        const body = Buffer.concat(chunks);
        const trailer = (String(headers["content-type"]).includes("text") ? Buffer.from(body.toString(), "base64") : body).toString("latin1");
        const field = (name: string) => headers[name] ?? new RegExp(`${name}:\\s*(\\S+)`).exec(trailer)?.[1];
        resolve(`${field("grpc-status")} ${field("retry-after")}`);
      });
      request.on("error", () => resolve("closed"));
    });
    request.write(head);
    request.write(Buffer.alloc(PART, 0x41));
    if (complete) request.end(tail);
    return { answer, close: () => request.destroy() };
  };
}

/** The same POST over HTTP/2 (h2c, a connection of its own), as REST clients that speak it send it. */
function http2Upload(path: string, contentType: string, head: string, tail: string): Uploader {
  return (server, complete) => {
    const session = http2.connect(server.url).on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, "content-length": String(head.length + PART + tail.length) });
    stream.on("error", () => {});
    const answer = new Promise<string>((resolve) => {
      stream.on("response", (headers) => resolve(`${headers[":status"]} ${headers["retry-after"]}`));
      stream.on("close", () => resolve("closed"));
    });
    stream.resume();
    stream.write(head);
    stream.write(Buffer.alloc(PART, 0x41));
    if (complete) {
      stream.end(tail);
      void answer.then(() => session.close());
    }
    return { answer, close: () => session.destroy() };
  };
}

/** A WebSocket frame of PART bytes: its first fragment only, or the whole frame. */
function webSocketUpload(server: TestServer, complete: boolean): Upload {
  const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
  socket.on("error", () => {});
  const answer = new Promise<string>((resolve) => {
    socket.on("close", (code) => resolve(String(code)));
    socket.on("message", (data) => resolve(`message ${JSON.parse(String(data)).code}`));
  });
  socket.on("open", () => socket.send(Buffer.alloc(PART, 0x41), { binary: true, fin: complete }));
  return { answer, close: () => socket.terminate() };
}

const BOUNDARY = "budget-test";

/** gRPC-Web text: the prefix of one message of zero bytes, which PART "A"s and the "AAAA" after them carry in base64. */
const textPrefix = () => {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(((PART + 4) * 3) / 4, 1);
  return prefix.toString("base64");
};
const REST_JSON = ["/api/v1/recognize", "application/json", '{"image":"', '"}'] as const;
const REST_MULTIPART = [
  "/api/v1/recognize",
  `multipart/form-data; boundary=${BOUNDARY}`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
  `\r\n--${BOUNDARY}--\r\n`,
] as const;
/** Each way to upload; how it is refused, and how it is answered when read (its bytes are no image). */
const UPLOADS: { name: string; upload: Uploader; refused: string; read: string }[] = [
  { name: "gRPC", upload: grpcUpload, refused: "14 1", read: "3 undefined" },
  { name: "Connect JSON over HTTP/1.1", upload: httpUpload("/face.v1.FaceService/Recognize", "application/json", '{"image":"', '"}'), refused: "503 1", read: "400 undefined" },
  { name: "gRPC-Web text", upload: httpUpload("/face.v1.FaceService/Recognize", "application/grpc-web-text", textPrefix(), "AAAA"), refused: "14 1", read: "3 undefined" },
  { name: "REST JSON", upload: httpUpload(...REST_JSON), refused: "503 1", read: "400 undefined" },
  { name: "REST multipart", upload: httpUpload(...REST_MULTIPART), refused: "503 1", read: "400 undefined" },
  { name: "REST JSON over HTTP/2", upload: http2Upload(...REST_JSON), refused: "503 1", read: "400 undefined" },
  { name: "REST multipart over HTTP/2", upload: http2Upload(...REST_MULTIPART), refused: "503 1", read: "400 undefined" },
  { name: "WebSocket", upload: webSocketUpload, refused: "1013", read: "message invalid_argument" },
];

describe("the bytes of messages being received are bounded across requests", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(ENV);
  });
  after(() => server.close());

  for (const { name, upload, refused, read } of UPLOADS) {
    it(`${name}: the upload that would pass the budget is refused with a retry delay; the others go on, and their bytes are given back`, async () => {
      let answered = 0;
      const held = await holdUploads(server, upload, () => answered++);
      try {
        assert.equal(await upload(server, true).answer, refused);
        await until(async () => (await receivingBytes()) <= 4 * (PART + 1024), "the refused upload's bytes given back");
        // Another call still gets in beside the held uploads.
        const photo = await faceClient(server)
          .recognize({ image: face("face_recognition/obama.jpg") })
          .then(() => "answered", (e) => Code[ConnectError.from(e).code]);
        assert.notEqual(photo, Code[Code.Unavailable]);
        assert.equal(answered, 0, "the held uploads were not refused");
      } finally {
        for (const h of held) h.close();
      }
      await until(async () => (await receivingBytes()) === 0, "the held bytes given back");
      // Alone, the same upload is read (on HTTP/1.1, on a connection kept from the uploads before).
      assert.equal(await upload(server, true).answer, read);
    });
  }

  it("a Sync stream sends more than the budget, one frame at a time", async () => {
    const frames = async function* () {
      for (let i = 0; i < 8; i++) yield { frameId: String(i), image: new Uint8Array(PART).fill(0x41) };
    };
    const codes: string[] = [];
    for await (const response of faceClient(server).sync(frames())) codes.push(response.error?.code ?? "ok");
    assert.equal(codes.length, 8);
    assert.ok(!codes.includes("unavailable"), codes.join(", "));
    await until(async () => (await receivingBytes()) === 0, "the stream's bytes given back");
  });

  it("a WebSocket sends more than the budget, one frame at a time", async () => {
    const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
    await new Promise((resolve) => socket.once("open", resolve));
    const codes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const answer = new Promise<string>((resolve) => {
        socket.once("message", (data) => resolve(JSON.parse(String(data)).code));
        socket.once("close", (code) => resolve(`closed ${code}`));
      });
      socket.send(Buffer.alloc(PART, 0x41));
      codes.push(await answer);
    }
    assert.equal(socket.readyState, WebSocket.OPEN);
    assert.ok(!codes.includes("unavailable"), codes.join(", "));
    socket.close();
    await until(async () => (await receivingBytes()) === 0, "the socket's bytes given back");
  });
});

/** Compressed messages that are small on the wire and PART bytes once decompressed. */
const COMPRESSED_CALLS: { name: string; call: (server: TestServer) => Promise<string>; refused: string; read: string }[] = [
  { name: "gRPC, gzip", call: (server) => compressedGrpcCall(server, "gzip", gzipSync), refused: "14 1", read: "3 undefined" },
  { name: "gRPC, brotli", call: (server) => compressedGrpcCall(server, "br", brotliCompressSync), refused: "14 1", read: "3 undefined" },
  { name: "Connect JSON, gzip", call: compressedConnectCall, refused: "503 1", read: "400 undefined" },
];

/** A gRPC Recognize call whose message, an image of PART - 5 zero bytes, is sent compressed with `encoding`. */
function compressedGrpcCall(server: TestServer, encoding: string, compress: (bytes: Uint8Array) => Buffer): Promise<string> {
  return grpcCompressedMessage(server, encoding, compress(toBinary(RecognizeRequestSchema, create(RecognizeRequestSchema, { image: new Uint8Array(PART - 5) }))));
}

/** A gRPC Recognize call whose one message is `compressed`, flagged as compressed with `encoding`. */
function grpcCompressedMessage(server: TestServer, encoding: string, compressed: Uint8Array): Promise<string> {
  const { session, stream, answer } = grpcRecognize(server, { "grpc-encoding": encoding });
  stream.end(Buffer.concat([envelopePrefix(compressed.length, true), compressed]));
  return answer.finally(() => session.close());
}

/** A Connect JSON Recognize call of PART bytes, its body sent gzip-compressed. */
async function compressedConnectCall(server: TestServer): Promise<string> {
  const response = await fetch(`${server.url}/face.v1.FaceService/Recognize`, {
    method: "POST",
    headers: { "content-type": "application/json", "content-encoding": "gzip" },
    body: gzipSync(`{"image":"${"A".repeat(PART - 12)}"}`),
  });
  await response.arrayBuffer();
  return `${response.status} ${response.headers.get("retry-after") ?? undefined}`;
}

describe("a compressed message counts in the receive budget as its decompressed bytes", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(ENV);
  });
  after(() => server.close());

  for (const { name, call, refused, read } of COMPRESSED_CALLS) {
    it(`${name}: refused with a retry delay when its decompressed bytes would pass the budget; read when they fit`, async () => {
      const held = await holdUploads(server, grpcUpload, () => {});
      try {
        assert.equal(await call(server), refused);
      } finally {
        for (const h of held) h.close();
      }
      await until(async () => (await receivingBytes()) === 0, "the held bytes given back");
      assert.equal(await call(server), read);
      assert.equal(await receivingBytes(), 0);
    });
  }

  it("a message over the size limit once decompressed gets ResourceExhausted; bytes that are not gzip, InvalidArgument", async () => {
    assert.equal(await grpcCompressedMessage(server, "gzip", gzipSync(Buffer.alloc(4 * MIB))), "8 undefined");
    assert.equal(await grpcCompressedMessage(server, "gzip", Buffer.from("not gzip at all")), "3 undefined");
    assert.equal(await receivingBytes(), 0);
  });
});

/** Four uploads of PART bytes, held open once the server has counted them; `onAnswer` if one is answered. */
async function holdUploads(server: TestServer, upload: Uploader, onAnswer: () => void): Promise<Upload[]> {
  const held: Upload[] = [];
  for (let i = 1; i <= 4; i++) {
    const next = upload(server, false);
    void next.answer.then(onAnswer);
    held.push(next);
    await until(async () => (await receivingBytes()) >= i * PART, `${i} uploads' bytes counted`);
  }
  return held;
}

describeUnless(pythonGrpcSkip, "the receive budget to a client we did not write (Python grpcio)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(ENV);
  });
  after(() => server.close());

  it("refuses a Register that would pass the budget with UNAVAILABLE and a retry delay, and the channel's next call is answered", async () => {
    const held = await holdUploads(server, grpcUpload, () => {});
    try {
      const seen = await runPythonClient<Record<string, unknown>>(server.url.replace("http://", ""), "over_budget", [String(PART)]);
      assert.deepEqual(seen, { register: "UNAVAILABLE", retry_after: "1", list_users: [] });
    } finally {
      for (const h of held) h.close();
    }
  });

  it("refuses a gzip-compressed Register whose decompressed bytes would pass the budget the same way", async () => {
    const held = await holdUploads(server, grpcUpload, () => {});
    try {
      const seen = await runPythonClient<Record<string, unknown>>(server.url.replace("http://", ""), "over_budget", [String(PART), "gzip"]);
      assert.deepEqual(seen, { register: "UNAVAILABLE", retry_after: "1", list_users: [] });
    } finally {
      for (const h of held) h.close();
    }
  });
});

describe("counting a body as it is read", () => {
  /** Envelopes of random sizes (some empty) in random chunks: after each chunk, what is held is what follows the last whole message. */
  it("an enveloped body holds only the message arriving, however its chunks fall", async () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let round = 0; round < 50; round++) {
      const messages = Array.from({ length: 1 + rand(6) }, () => Buffer.alloc(rand(3) === 0 ? 0 : rand(40_000), 1));
      const body = Buffer.concat(messages.flatMap((m) => [Buffer.from([0, ...new Uint8Array(new Uint32Array([m.length]).buffer).reverse()]), m]));
      const ends = messages.reduce<number[]>((at, m) => [...at, (at.at(-1) ?? 0) + 5 + m.length], []);
      const chunks: Buffer[] = [];
      for (let at = 0; at < body.length; ) {
        const size = 1 + rand(rand(2) === 0 ? 7 : 20_000);
        chunks.push(body.subarray(at, at + size));
        at += size;
      }
      const share = createReceiveBudget(1 << 30, 1 << 30).open(new PassThrough(), "ip:127.0.0.1");
      let read = 0;
      for await (const chunk of countedChunks((async function* () { yield* chunks; })(), share, true)) {
        read += chunk.length;
        const lastEnd = ends.filter((end) => end <= read).at(-1) ?? 0;
        assert.equal(share.held, read - lastEnd, `round ${round}, ${read} of ${body.length} bytes read`);
      }
      assert.equal(share.held, 0);
    }
  });

  it("a chunk that is a slice of a larger buffer comes out in memory of its own, whatever Buffer's pool size", async () => {
    const buffer = Buffer.alloc(64 * 1024);
    const share = createReceiveBudget(1 << 30, 1 << 30).open(new PassThrough(), "ip:127.0.0.1");
    // Node 24's pool is 64 KiB (Node 20's 8 KiB): a copy by Buffer.from of a 16 KB slice was a slice
    // of a pool slab there, holding it as the original slice held its buffer.
    const poolSize = Buffer.poolSize;
    Buffer.poolSize = 64 * 1024;
    try {
      for await (const chunk of countedChunks((async function* () { yield buffer.subarray(100, 16_484); yield buffer; })(), share, false)) {
        assert.equal(chunk.buffer.byteLength, chunk.byteLength);
      }
    } finally {
      Buffer.poolSize = poolSize;
    }
  });
});
