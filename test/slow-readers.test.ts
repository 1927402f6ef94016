/**
 * An answer must be taken whole within FACE_REQUEST_TIMEOUT_MS of its being ready, as a request must
 * arrive within it: a client that stops reading (or reads a byte now and then) holds its answer in
 * the server's memory and its place among the open requests. A client answering pings kept both
 * for good.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetUserFaceRequestSchema } from "../gen/face/v1/face_pb.js";
import { grpcEnvelope } from "./support/raw-http2.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { face } from "./support/testdata.js";
import { until } from "./support/until.js";
import { openRequests } from "./support/gauges.js";

describe("a client that does not take its answer", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_REQUEST_TIMEOUT_MS: "1000" });
    // A reference photo of about 6 MB: more than the sockets (Linux lets a sender's buffer grow to 4 MB)
    // and HTTP/2 windows between the two hold.
    const photo = await sharp(face("face_recognition/obama.jpg")).resize(4200).jpeg({ quality: 100 }).toBuffer();
    assert.ok(photo.length > 5_000_000, `${photo.length} bytes`);
    await faceClient(server).register({ identifier: "large-photo", image: photo });
  });
  after(() => server.close());

  /** GetUserFace over gRPC, read as `read` says: the stream, and the bytes received so far. */
  function getUserFace(session: http2.ClientHttp2Session, read: (stream: http2.ClientHttp2Stream) => void): { stream: http2.ClientHttp2Stream; received: () => number } {
    const stream = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/GetUserFace", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    stream.end(grpcEnvelope(toBinary(GetUserFaceRequestSchema, create(GetUserFaceRequestSchema, { identifier: "large-photo" }))));
    let received = 0;
    stream.on("data", (chunk: Buffer) => (received += chunk.length));
    read(stream);
    return { stream, received: () => received };
  }

  for (const [reader, read] of [
    // Reads the first bytes, then nothing more: the client's window closes and the answer waits.
    ["stops reading", (stream: http2.ClientHttp2Stream) => stream.once("data", () => stream.pause())],
    // Takes a chunk every 200 ms (about 80 KB/s): the 6 MB answer would take over a minute.
    ["reads a chunk now and then", (stream: http2.ClientHttp2Stream) => stream.on("data", () => {
      stream.pause();
      setTimeout(() => stream.resume(), 200);
    })],
  ] as const) {
    it(`over gRPC, a client that ${reader} has its stream reset once the answer has waited longer than the limit`, async () => {
      const session = http2.connect(server.url);
      session.on("error", () => {});
      try {
        const { stream, received } = getUserFace(session, read);
        await until(() => received() > 0, "the answer's first bytes");
        await until(async () => (await openRequests()) === 0, "the answer given up and its place freed", 5_000);
        await until(() => stream.closed, "the stream closed");
        assert.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL);
        assert.ok(received() < 5_000_000, `${received()} bytes received`);
        const other = getUserFace(session, () => {});
        await until(() => other.stream.closed, "another call on the connection answered");
        assert.equal(other.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, "the connection's other calls go on");
        assert.ok(other.received() > 5_000_000);
      } finally {
        session.destroy();
      }
    });
  }

  it("over HTTP/1.1, a client that stops reading has its connection closed once the answer has waited longer than the limit", async () => {
    // A client with a small receive buffer that reads nothing (Python: Node cannot set SO_RCVBUF).
    const { port } = new URL(server.url);
    const client = spawn("/usr/bin/python3", ["-c", `
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", ${port}))
s.sendall(b"GET /api/v1/users/large-photo/face HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
time.sleep(60)
`], { stdio: "ignore" });
    try {
      await until(async () => (await openRequests()) === 1, "the request open");
      await until(async () => (await openRequests()) === 0, "the answer given up and its place freed", 5_000);
    } finally {
      client.kill();
    }
  });
});
