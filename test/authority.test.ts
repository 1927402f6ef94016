import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import http2 from "node:http2";
import { connect as connectTcp } from "node:net";
import { describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { useTestServer, type TestServer } from "./support/server.js";

/** The service's URL at the IPv6 loopback address (it listens on both families). */
const ipv6Url = (server: TestServer) => server.url.replace("127.0.0.1", "[::1]");

describe("a request whose authority is no host is served (the service never reads it)", () => {
  let server: TestServer;
  useTestServer((started) => void (server = started), { HOST: "::" });

  // Node's HTTP/2 client sends an IPv6 literal without its brackets (`::1:PORT`) as the authority.
  it("connect-es's gRPC and Connect clients at an IPv6 address", async () => {
    for (const transport of [createGrpcTransport({ baseUrl: ipv6Url(server) }), createConnectTransport({ baseUrl: ipv6Url(server), httpVersion: "2" })]) {
      const answer = await createClient(FaceService, transport).listUsers({});
      assert.deepEqual(answer.identifiers, []);
    }
  });

  for (const authority of ["::1:8080", "a:b:c", "[::1]:8080", "example.com:70000"]) {
    it(`gRPC with :authority ${authority}`, async () => {
      const session = http2.connect(server.url);
      try {
        const stream = session.request({ ":method": "POST", ":path": "/face.v1.FaceService/ListUsers", ":authority": authority, "content-type": "application/grpc", te: "trailers" });
        const seen = await new Promise<{ contentType: unknown; status: unknown }>((resolve, reject) => {
          let contentType: unknown;
          stream.on("response", (headers) => (contentType = headers["content-type"]));
          stream.on("trailers", (trailers) => resolve({ contentType, status: trailers["grpc-status"] }));
          stream.on("close", () => resolve({ contentType, status: undefined }));
          stream.on("error", reject);
          stream.resume();
          stream.end(Buffer.alloc(5));
        });
        assert.deepEqual(seen, { contentType: "application/grpc+proto", status: "0" });
      } finally {
        session.close();
      }
    });
  }

  it("Connect JSON over HTTP/1.1 with a Host that is no host", async () => {
    const response = await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      const call = httpRequest(`${server.url}/face.v1.FaceService/ListUsers`, { method: "POST", headers: { host: "::1:8080", "content-type": "application/json" } }, async (answer) => {
        let body = "";
        for await (const chunk of answer) body += chunk;
        resolve({ status: answer.statusCode, body });
      });
      call.on("error", reject);
      call.end("{}");
    });
    assert.deepEqual(response, { status: 200, body: "{}" });
  });

  // HTTP/1.0 has no Host header (HAProxy's `option httpchk` sends such requests by default).
  it("Connect JSON over HTTP/1.0 without a Host", async () => {
    const { hostname, port } = new URL(server.url);
    const socket = connectTcp({ host: hostname, port: Number(port) });
    // Written, not ended: Node's HTTP server drops a request whose client half-closes before the answer.
    socket.write("POST /face.v1.FaceService/ListUsers HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
    let answer = "";
    for await (const chunk of socket) answer += chunk;
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(answer.slice(answer.indexOf("\r\n\r\n") + 4), "{}");
  });
});
