import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import http2 from "node:http2";
import { connect as connectTcp } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FaceService, GetUserFaceRequestSchema, ListUsersResponseSchema, RegisterRequestSchema, RegisterResponseSchema } from "../gen/face/v1/face_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES } from "../src/transport/dual-protocol-server.js";
import { restBindings } from "../src/transport/rest.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { until } from "./support/until.js";

describe("one port serves every protocol", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_MAX_IMAGE_BYTES: "2048" });
  });
  after(() => server.close());

  const transports: Record<string, () => Transport> = {
    "gRPC over h2c": () => createGrpcTransport({ baseUrl: server.url }),
    "gRPC-Web over HTTP/1.1": () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    "Connect JSON over HTTP/1.1": () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    "Connect binary over HTTP/1.1": () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }),
    "Connect JSON over h2c": () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    it(`answers ListUsers and the errors of GetUserFace over ${name}`, async () => {
      const client = createClient(FaceService, transport());
      const users = await client.listUsers({});
      assert.deepEqual(users.identifiers, []);
      await assert.rejects(client.getUserFace({ identifier: "nobody" }), (e) => ConnectError.from(e).code === Code.NotFound);
    });
  }

  it("lets an h2c client send a photo's first MiB without waiting for the server (flow-control windows)", async () => {
    const session = http2.connect(server.url);
    try {
      await new Promise((resolve, reject) => session.once("remoteSettings", resolve).once("error", reject));
      assert.equal(session.remoteSettings.initialWindowSize, HTTP2_STREAM_WINDOW_BYTES, "each stream's window");
      // The connection's window grows by a WINDOW_UPDATE sent right after the settings.
      await until(() => (session.state.remoteWindowSize ?? 0) >= HTTP2_CONNECTION_WINDOW_BYTES, "the connection's window update", 5_000).catch(() => {});
      assert.equal(session.state.remoteWindowSize, HTTP2_CONNECTION_WINDOW_BYTES, "the connection's window");
      assert.ok(HTTP2_STREAM_WINDOW_BYTES >= 1 << 20 && HTTP2_CONNECTION_WINDOW_BYTES >= HTTP2_STREAM_WINDOW_BYTES);
    } finally {
      session.close();
    }
  });

  it("serves the standard gRPC health service", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const { status } = await health.check({ service: "" });
    assert.equal(status, HealthCheckResponse_ServingStatus.SERVING);
    await assert.rejects(health.check({ service: "nope.Service" }), (e) => ConnectError.from(e).code === Code.NotFound);
  });

  it("answers GET /health with an x-request-id, and echoes a client's request id", async () => {
    const res = await fetch(`${server.url}/health`, { headers: { "x-request-id": "abc-123" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-request-id"), "abc-123");
    assert.equal((await res.json()).status, "ok");
    const generated = await fetch(`${server.url}/api/v1/users`);
    assert.match(generated.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });

  it("returns GET /api/v1/users as a bare JSON array (response_body)", async () => {
    const res = await fetch(`${server.url}/api/v1/users`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), []);
  });

  it("reads every REST binding from the google.api.http annotations", () => {
    const routes = restBindings().map((b) => `${b.verb} ${b.path}`);
    for (const expected of [
      "POST /api/v1/register", "POST /api/v1/recognize", "POST /api/v1/verify", "POST /api/v1/detect",
      "POST /api/v1/extract-features", "POST /api/v1/analyze", "POST /api/v1/sync", "GET /api/v1/users",
      "GET /api/v1/users/:identifier/face", "DELETE /api/v1/users/:identifier", "POST /api/v1/webhooks",
      "GET /api/v1/webhooks", "DELETE /api/v1/webhooks/:id",
    ]) assert.ok(routes.includes(expected), `${expected} missing from ${routes.join(", ")}`);
  });

  it("answers REST errors as a status plus {code, message, request_id}", async () => {
    const notFound = await fetch(`${server.url}/api/v1/users/nobody/face`);
    assert.equal(notFound.status, 404);
    const body = await notFound.json();
    assert.equal(body.code, "not_found");
    assert.equal(body.requestId, notFound.headers.get("x-request-id"), "named like the success bodies (camelCase)");
    assert.equal(body.request_id, body.requestId, "and by the contract's first name");
    assert.match(body.message, /nobody/);

    const badJson = await fetch(`${server.url}/api/v1/recognize`, { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" });
    assert.equal(badJson.status, 400);
    assert.equal((await badJson.json()).code, "invalid_argument");

    const noRoute = await fetch(`${server.url}/api/v1/nothing-here`);
    assert.equal(noRoute.status, 404);
    assert.equal((await noRoute.json()).code, "not_found");

    const badNumber = await fetch(`${server.url}/api/v1/users?page_size=lots`);
    assert.equal(badNumber.status, 400);

    // Refused below the routes (Node's HTTP parser): the same body, not fastify's own
    // {"error","message":"Client Error","statusCode"}.
    for (const [name, request, status, code] of [
      ["a malformed request line", "NOT HTTP AT ALL\r\n\r\n", 400, "invalid_argument"],
      ["headers over 16 KB", `GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431, "resource_exhausted"],
    ] as const) {
      const answer = await rawHttp(server.url, request);
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), name);
      const parsed = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.equal(parsed.code, code, name);
      assert.ok(parsed.message && parsed.request_id && parsed.requestId === parsed.request_id, `${name}: ${JSON.stringify(parsed)}`);
      assert.match(answer, new RegExp(`\r\nx-request-id: ${parsed.request_id}\r\n`, "i"), name);
    }
  });

  it("refuses an image over the byte limit with 413 on REST multipart and ResourceExhausted on gRPC", async () => {
    const big = face("face_recognition/obama.jpg");
    const form = new FormData();
    form.append("identifier", "obama");
    form.append("image", new Blob([Buffer.from(big)], { type: "image/jpeg" }), "obama.jpg");
    const rest = await fetch(`${server.url}/api/v1/register`, { method: "POST", body: form });
    assert.equal(rest.status, 413);
    assert.equal((await rest.json()).code, "resource_exhausted");

    const client = faceClient(server);
    await assert.rejects(client.register({ identifier: "obama", image: big }), (e) => ConnectError.from(e).code === Code.ResourceExhausted);
  });

  it("lists no webhooks and refuses one aimed at loopback unless allowed", async () => {
    const list = await fetch(`${server.url}/api/v1/webhooks`);
    assert.deepEqual(await list.json(), { webhooks: [] });
    const create = await fetch(`${server.url}/api/v1/webhooks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: "http://127.0.0.1:9/hook" }),
    });
    assert.equal(create.status, 400);
    assert.match((await create.json()).message, /loopback/);
  });

  it("allows CORS from any origin by default and exposes the Connect headers", async () => {
    const res = await fetch(`${server.url}/face.v1.FaceService/ListUsers`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version" },
    });
    assert.ok(res.status === 204 || res.status === 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example");
    const get = await fetch(`${server.url}/api/v1/users`, { headers: { origin: "https://app.example" } });
    assert.match(get.headers.get("access-control-expose-headers") ?? "", /Grpc-Status/);
  });
});

describe("one value on every transport", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
    await faceClient(server).register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    await faceClient(server).register({ identifier: "biden", image: face("face_recognition/biden.jpg") });
  });
  after(() => server.close());

  it("pages GET /api/v1/users with a Link header, keeping the bare array body", async () => {
    const first = await fetch(`${server.url}/api/v1/users?page_size=1`);
    assert.deepEqual(await first.json(), ["biden"]);
    const link = first.headers.get("link") ?? "";
    const match = /^<([^>]+)>; rel="next"$/.exec(link);
    assert.ok(match, `Link: ${link}`);
    const second = await fetch(`${server.url}${match[1]}`);
    assert.deepEqual(await second.json(), ["obama"]);
    assert.equal(second.headers.get("link"), null, "no next page after the last");
  });

  it("answers a REST body it cannot read over HTTP/2 without a connection header", async () => {
    // fastify asks to close the connection after a body it could not read. HTTP/2 has no such
    // header (RFC 9113 8.2.2): Node dropped it with an UnsupportedWarning in the service's log.
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on("warning", onWarning);
    const session = http2.connect(server.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/api/v1/recognize", "content-type": "application/json" });
        stream.on("response", (headers) => resolve(Number(headers[":status"]))).on("error", reject);
        stream.resume();
        stream.end("{not json");
      });
      assert.equal(status, 400);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
      session.close();
    }
    assert.deepEqual(warnings.filter((w) => /connection header/.test(w)), []);
  });

  it("answers 405 with Allow for a wrong method on a known route, 415 for a body it cannot read", async () => {
    const put = await fetch(`${server.url}/api/v1/users`, { method: "PUT" });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "GET");
    const get = await fetch(`${server.url}/api/v1/register`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    const user = await fetch(`${server.url}/api/v1/users/obama`, { method: "POST" });
    assert.equal(user.status, 405);
    assert.equal(user.headers.get("allow"), "DELETE");
    // The right method with a trailing slash is not a wrong method (it answered 405 "use GET" to a GET).
    const slash = await fetch(`${server.url}/api/v1/users/obama/face/`);
    assert.equal(slash.status, 404);
    assert.match((await slash.json()).message, /without the trailing slash: \/api\/v1\/users\/obama\/face$/);
    // Every type REST does not read is named, whichever layer met it first (fastify answered a bare
    // "Unsupported Media Type" to types it has no parser for).
    for (const type of ["text/plain", "application/xml", "application/merge-patch+json", "application/x-www-form-urlencoded"]) {
      const refused = await fetch(`${server.url}/api/v1/recognize`, { method: "POST", headers: { "content-type": type }, body: "hello" });
      assert.equal(refused.status, 415, type);
      assert.match((await refused.json()).message, new RegExp(`content type ${type.replace(/[+/]/g, "\\$&")} is not supported; send application/json or multipart/form-data`), type);
    }
    // A compressed body is refused by name (it was read as JSON: "Body is not valid JSON").
    for (const headers of [{ "content-type": "application/json" }, { "content-type": "multipart/form-data; boundary=x" }]) {
      const gzipped = await fetch(`${server.url}/api/v1/recognize`, { method: "POST", headers: { ...headers, "content-encoding": "gzip" }, body: gzipSync("{}") });
      assert.equal(gzipped.status, 415, headers["content-type"]);
      assert.match((await gzipped.json()).message, /content-encoding gzip is not supported/);
    }
  });

  it("exposes X-Face-Reason, X-Request-Id and Retry-After to browsers", async () => {
    const res = await fetch(`${server.url}/api/v1/users`, { headers: { origin: "https://app.example" } });
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(/,\s*/);
    for (const name of ["x-face-reason", "x-request-id", "retry-after"]) assert.ok(exposed.includes(name), `${name} in ${exposed}`);
  });

  it("says which multipart limit a request went over", async () => {
    const form = new FormData();
    for (const name of ["image", "image2", "image3"]) form.append(name, new Blob([Buffer.from("x")]), `${name}.jpg`);
    const res = await fetch(`${server.url}/api/v1/verify`, { method: "POST", body: form });
    assert.equal(res.status, 413);
    assert.match((await res.json()).message, /at most 2 file parts/);
  });

  it("answers the same distance over gRPC, Connect JSON and REST", async () => {
    const image = face("face_recognition/obama2.jpg");
    const grpc = await faceClient(server).recognize({ image });
    const json = async (path: string) => {
      const res = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image: Buffer.from(image).toString("base64") }) });
      assert.equal(res.status, 200);
      return (await res.json()) as { distance: number; similarity: number; face: { box: { x: number } } };
    };
    const connect = await json("/face.v1.FaceService/Recognize");
    const rest = await json("/api/v1/recognize");
    assert.equal(connect.distance, rest.distance);
    assert.equal(connect.distance, grpc.distance, "the float32 value gRPC carries");
    assert.equal(connect.distance, Math.fround(connect.distance));
    assert.equal(connect.similarity, rest.similarity);
    assert.equal(connect.face.box.x, rest.face.box.x);
  });
});

describe("gRPC-Web text mode (Google's grpc-web client default)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  /** One gRPC-Web call in text mode: the framed message in base64, the framed answer decoded from base64. */
  async function textCall(method: string, message: Uint8Array) {
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    Buffer.from(message).copy(frame, 5);
    const res = await fetch(`${server.url}/face.v1.FaceService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", accept: "application/grpc-web-text", "x-grpc-web": "1" },
      body: frame.toString("base64"),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/grpc-web-text/);
    const bytes = Buffer.from(await res.text(), "base64");
    const frames: { trailer: boolean; data: Buffer }[] = [];
    for (let i = 0; i < bytes.length; ) {
      const length = bytes.readUInt32BE(i + 1);
      frames.push({ trailer: (bytes[i] & 0x80) !== 0, data: bytes.subarray(i + 5, i + 5 + length) });
      i += 5 + length;
    }
    const trailer = frames.find((f) => f.trailer)?.data.toString("latin1") ?? res.headers.get("grpc-status") ?? "";
    return { messages: frames.filter((f) => !f.trailer).map((f) => f.data), trailer: String(trailer) };
  }

  it("answers a text-mode call in text mode, for a small and a photo-sized request", async () => {
    const register = await textCall("Register", toBinary(RegisterRequestSchema, create(RegisterRequestSchema, { identifier: "obama", image: face("face_recognition/obama.jpg") })));
    assert.match(register.trailer, /grpc-status:\s*0/);
    assert.equal(fromBinary(RegisterResponseSchema, register.messages[0]).identifier, "obama");
    const list = await textCall("ListUsers", new Uint8Array());
    assert.deepEqual(fromBinary(ListUsersResponseSchema, list.messages[0]).identifiers, ["obama"]);
    const missing = await textCall("GetUserFace", toBinary(GetUserFaceRequestSchema, create(GetUserFaceRequestSchema, { identifier: "nobody" })));
    assert.match(missing.trailer, /grpc-status:\s*5/);
  });
});

/** Sends `request` as raw bytes on a new TCP connection and returns all the server answers before it closes. */
function rawHttp(url: string, request: string): Promise<string> {
  const socket = connectTcp(Number(new URL(url).port), "127.0.0.1");
  let answer = "";
  socket.on("data", (d) => (answer += d));
  socket.on("error", () => {});
  socket.write(request);
  return new Promise((resolve) => socket.on("close", () => resolve(answer)));
}
