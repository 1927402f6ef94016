/**
 * An IPv6 client is counted by its /64 (src/transport/client-address.ts): one host is given the
 * block and can connect from any of its 2^64 addresses. Each limit on a client address is checked
 * here with real peers: connections from addresses of IPv6's documentation prefix put on the
 * loopback interface, two in one /64 and one in another. The limits read the address at
 * different places (the socket for connections and reset streams, the request for the rate limit).
 */
import assert from "node:assert/strict";
import type http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { RESET_STREAMS_BURST } from "../src/transport/stream-resets.js";
import { ANOTHER_64, ONE_64, addLoopbackIpv6, loopbackIpv6Missing } from "./support/loopback-ipv6.js";
import { accepted, connectFrom, emptyRecognize } from "./support/raw-http2.js";
import { resetUntilClosed } from "./support/rapid-reset.js";
import { useTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";

const [first, second] = ONE_64;

describeUnless(loopbackIpv6Missing(), "an IPv6 client's addresses in one /64 count as one client", () => {
  let removeAddresses = () => {};
  const sessions: http2.ClientHttp2Session[] = [];
  /** An HTTP/2 connection from `from`, closed after the suite. */
  const connect = (url: string, from: string) => {
    const session = connectFrom(url, from);
    sessions.push(session);
    return session;
  };
  before(() => void (removeAddresses = addLoopbackIpv6([...ONE_64, ANOTHER_64])));
  after(() => {
    for (const session of sessions) session.destroy();
    removeAddresses();
  });

  describe("for the connections one address may hold", () => {
    let server: TestServer;
    // Six connections for one address (three quarters of eight).
    useTestServer((started) => void (server = started), { FACE_MAX_CONNECTIONS: "8", HOST: "::" });

    it("closes the seventh connection from the /64 as it arrives, and takes another /64's", async () => {
      const held = [...Array.from({ length: 3 }, () => connect(server.url, first)), ...Array.from({ length: 3 }, () => connect(server.url, second))];
      assert.deepEqual(await Promise.all(held.map(accepted)), Array(6).fill(true));
      assert.equal(await accepted(connect(server.url, second)), false, `a seventh from ${second}, in the same /64 as ${first}, is closed`);
      assert.equal((await emptyRecognize(connect(server.url, ANOTHER_64))).status, Code.InvalidArgument, `${ANOTHER_64}, in another /64, is served`);
    });
  });

  describe("for the streams one address may reset", () => {
    let server: TestServer;
    useTestServer((started) => void (server = started), { HOST: "::" });

    it("closes the connection of one address past the budget, then refuses the other address of its /64 and serves another /64", async () => {
      const attacker = connect(server.url, first);
      const reset = await resetUntilClosed(attacker, RESET_STREAMS_BURST * 3);
      await until(() => attacker.destroyed, `the connection from ${first} is closed past the budget (${reset} streams reset)`, 5_000);
      assert.equal(await accepted(connect(server.url, second)), false, `a connection from ${second}, in the same /64, is closed as it arrives`);
      assert.equal((await emptyRecognize(connect(server.url, ANOTHER_64))).status, Code.InvalidArgument, `${ANOTHER_64}, in another /64, is served`);
    });
  });

  describe("for the rate of requests", () => {
    let server: TestServer;
    // A bucket of three requests, refilled so slowly that the test never sees it refill.
    useTestServer((started) => void (server = started), { FACE_RATE_LIMIT_PER_SECOND: "0.01", FACE_RATE_LIMIT_BURST: "3", HOST: "::" });

    it("draws the requests of both addresses from one bucket, and another /64's from its own", async () => {
      const statuses = [];
      for (const from of [first, second, first, second]) statuses.push((await emptyRecognize(connect(server.url, from))).status);
      assert.deepEqual(statuses, [Code.InvalidArgument, Code.InvalidArgument, Code.InvalidArgument, Code.ResourceExhausted]);
      assert.equal((await emptyRecognize(connect(server.url, ANOTHER_64))).status, Code.InvalidArgument);
    });
  });
});
