import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { clientName, rateLimitClient } from "../src/transport/client-address.js";
import { haproxyAloneMissing, startHAProxy, type HAProxy } from "./support/haproxy.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { grpcTransportFrom } from "./support/from-address.js";

/** A bucket of three requests, refilled so slowly that a test never sees it refill. */
const RATE_LIMIT = { FACE_RATE_LIMIT_PER_SECOND: "0.01", FACE_RATE_LIMIT_BURST: "3" };

/** GET /api/v1/users from the local address `from` (any 127.x.y.z is this machine's), with extra headers. */
function listUsersFrom(url: string, from: string, headers: Record<string, string> = {}): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname.replace(/^\[|\]$/g, ""), port, path: "/api/v1/users", localAddress: from, headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Four GETs in turn from `from`, the i-th with `headers(i)`: their statuses (a bucket of three, then refused). */
async function fourFrom(url: string, from: string, headers: (i: number) => Record<string, string> = () => ({})): Promise<number[]> {
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push(await listUsersFrom(url, from, headers(i)));
  return statuses;
}

/** The same over gRPC (HTTP/2), from `from`: "ok" or the error's code. */
async function grpcListUsersFrom(url: string, from: string): Promise<string | Code> {
  return createClient(FaceService, grpcTransportFrom(url, from)).listUsers({}).then(() => "ok", (e) => ConnectError.from(e).code);
}

describeUnless(haproxyAloneMissing(), "clients behind HAProxy (deploy/haproxy.cfg) are told apart by their own addresses", () => {
  let server: TestServer;
  let proxy: HAProxy;
  before(async () => {
    server = await startTestServer({ ...RATE_LIMIT, FACE_TRUSTED_PROXIES: "127.0.0.1" });
    proxy = await startHAProxy([new URL(server.url).host]);
  });
  after(async () => {
    await proxy?.close();
    await server?.close();
  });

  it("limits each client's rate by its own address over HTTP/1.1, not by the proxy's", async () => {
    assert.deepEqual(await fourFrom(proxy.url, "127.0.0.2"), [200, 200, 200, 429]);
    assert.equal(await listUsersFrom(proxy.url, "127.0.0.3"), 200, "another client behind the same proxy is not refused");
  });

  it("and over gRPC through the proxy's HTTP/2", async () => {
    const first = [];
    for (let i = 0; i < 4; i++) first.push(await grpcListUsersFrom(proxy.url, "127.0.0.4"));
    assert.deepEqual(first, ["ok", "ok", "ok", Code.ResourceExhausted]);
    assert.equal(await grpcListUsersFrom(proxy.url, "127.0.0.5"), "ok");
  });

  it("does not let a client behind the proxy pick its address with its own X-Forwarded-For", async () => {
    assert.deepEqual(await fourFrom(proxy.url, "127.0.0.6", (i) => ({ "x-forwarded-for": `198.51.100.${i + 1}` })), [200, 200, 200, 429]);
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy", async () => {
    assert.deepEqual(await fourFrom(server.url, "127.0.0.7", (i) => ({ "x-forwarded-for": `198.51.100.${i + 1}` })), [200, 200, 200, 429]);
  });
});

describe("client addresses of every family", () => {
  let server: TestServer;
  before(async () => {
    // Dual stack: IPv4 peers arrive as IPv4-mapped IPv6 addresses (::ffff:127.0.0.1).
    server = await startTestServer({ ...RATE_LIMIT, FACE_TRUSTED_PROXIES: "127.0.0.1", HOST: "::" });
  });
  after(() => server?.close());

  /** Four requests forwarded for `address` by the trusted proxy (this test, from 127.0.0.1). */
  const fourFor = (address: string) => fourFrom(server.url, "127.0.0.1", () => ({ "x-forwarded-for": address }));

  it("trusts a proxy's IPv4 address when it arrives IPv4-mapped, and limits the IPv4 client it forwards for", async () => {
    assert.deepEqual(await fourFor("203.0.113.7"), [200, 200, 200, 429]);
    assert.deepEqual(await fourFor("203.0.113.8"), [200, 200, 200, 429], "another IPv4 client has a bucket of its own");
  });

  it("counts an IPv4-mapped IPv6 address as its IPv4 address", async () => {
    assert.deepEqual(await fourFor("::ffff:203.0.113.9").then((s) => s.slice(0, 3)), [200, 200, 200]);
    assert.equal(await listUsersFrom(server.url, "127.0.0.1", { "x-forwarded-for": "203.0.113.9" }), 429);
  });

  it("counts an IPv6 client by its /64, which one host can fill with addresses of its own", async () => {
    for (const address of ["2001:db8:1:2::a", "2001:db8:1:2:0:0:0:b", "2001:DB8:1:2:ffff::1"]) {
      assert.equal(await listUsersFrom(server.url, "127.0.0.1", { "x-forwarded-for": address }), 200);
    }
    assert.equal(await listUsersFrom(server.url, "127.0.0.1", { "x-forwarded-for": "2001:db8:1:2::c" }), 429, "the same /64");
    assert.equal(await listUsersFrom(server.url, "127.0.0.1", { "x-forwarded-for": "2001:db8:1:3::a" }), 200, "the next /64");
  });

  it("ignores X-Forwarded-For from an IPv6 peer that is not a trusted proxy", async () => {
    const overIPv6 = `http://[::1]:${new URL(server.url).port}`;
    assert.deepEqual(await fourFrom(overIPv6, "::1", (i) => ({ "x-forwarded-for": `198.51.100.${i + 20}` })), [200, 200, 200, 429]);
  });

  it("keys every form of an address alike", () => {
    assert.equal(rateLimitClient("2001:db8:0001:0002:0000:0000:0000:000a"), rateLimitClient("2001:db8:1:2::b"));
    assert.notEqual(rateLimitClient("2001:db8:1:2::a"), rateLimitClient("2001:db8:1:3::a"));
    assert.equal(rateLimitClient("::ffff:198.51.100.1"), rateLimitClient("198.51.100.1"));
    assert.equal(rateLimitClient("::ffff:c633:6401"), rateLimitClient("198.51.100.1"));
    assert.equal(rateLimitClient("fe80::1%eth0"), rateLimitClient("fe80::2"));
    assert.notEqual(rateLimitClient("198.51.100.1"), rateLimitClient("198.51.100.2"));
    assert.equal(rateLimitClient("::1"), rateLimitClient("::2"), "the loopback's /64 too");
  });

  it("names a peer whose connection closed before its request was counted (no address left) for what it is", () => {
    // Node gives a destroyed socket no remote address; refusals and logs read "address undefined".
    assert.equal(clientName(rateLimitClient(undefined)), "a client whose connection had closed");
    assert.equal(clientName(rateLimitClient("198.51.100.1")), "address 198.51.100.1");
  });
});
