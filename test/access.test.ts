import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";

const KEY = "test-key-0123456789abcdef";

describe("API keys", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_API_KEYS: `${KEY},second-key-0123456789:site1|site2` });
  });
  after(() => server.close());

  it("refuses every protocol without a valid key, with Unauthenticated / 401", async () => {
    for (const transport of [
      createGrpcTransport({ baseUrl: server.url }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ]) {
      const client = createClient(FaceService, transport);
      await assert.rejects(client.listUsers({}), (e) => ConnectError.from(e).code === Code.Unauthenticated);
      await assert.rejects(client.listUsers({}, { headers: { authorization: "Bearer wrong-key-0123456789" } }), (e) => ConnectError.from(e).code === Code.Unauthenticated);
    }
    const rest = await fetch(`${server.url}/api/v1/users`);
    assert.equal(rest.status, 401);
    assert.equal((await rest.json()).code, "unauthenticated");
  });

  it("accepts a key as Bearer token or x-api-key on every protocol", async () => {
    const grpc = faceClient(server);
    assert.deepEqual((await grpc.listUsers({}, { headers: { authorization: `Bearer ${KEY}` } })).identifiers, []);
    const connect = createClient(FaceService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    assert.deepEqual((await connect.listUsers({ collection: "site1" }, { headers: { "x-api-key": "second-key-0123456789" } })).identifiers, []);
    const rest = await fetch(`${server.url}/api/v1/users`, { headers: { "x-api-key": KEY } });
    assert.equal(rest.status, 200);
  });

  it("keeps a key bound to collections inside them (PermissionDenied / 403 elsewhere)", async () => {
    const scoped = { "x-api-key": "second-key-0123456789" };
    const grpc = faceClient(server);
    assert.deepEqual((await grpc.listUsers({ collection: "site1" }, { headers: scoped })).identifiers, []);
    await assert.rejects(grpc.listUsers({ collection: "site3" }, { headers: scoped }), (e) => ConnectError.from(e).code === Code.PermissionDenied);
    await assert.rejects(grpc.listUsers({}, { headers: scoped }), (e) => ConnectError.from(e).code === Code.PermissionDenied, "default is not site1|site2");
    const rest = await fetch(`${server.url}/api/v1/users?collection=other`, { headers: scoped });
    assert.equal(rest.status, 403);
    assert.equal((await fetch(`${server.url}/api/v1/users?collection=site2`, { headers: scoped })).status, 200);
    assert.equal((await grpc.listUsers({ collection: "anything" }, { headers: { "x-api-key": KEY } })).identifiers.length, 0, "an unbound key may use any collection");
    const stream = grpc.sync((async function* () { yield { image: new Uint8Array([1]), collection: "site9" }; })(), { headers: scoped });
    await assert.rejects((async () => { for await (const _ of stream); })(), (e) => ConnectError.from(e).code === Code.PermissionDenied, "streams are checked per frame");
  });

  it("leaves health open", async () => {
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    assert.equal((await health.check({})).status, 1);
  });
});

describe("rate limiting", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ FACE_RATE_LIMIT_PER_SECOND: "1", FACE_RATE_LIMIT_BURST: "3" });
  });
  after(() => server.close());

  it("answers 429 / ResourceExhausted beyond the burst, per client", async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${server.url}/api/v1/users`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    const client = faceClient(server);
    await assert.rejects(client.listUsers({}), (e) => ConnectError.from(e).code === Code.ResourceExhausted);
    assert.equal((await fetch(`${server.url}/health`)).status, 200, "health is never limited");
  });
});
