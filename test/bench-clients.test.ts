import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { separateClients, throughput } from "../bench/support/clients.js";
import { singleFace640x480 } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";

// The benchmarks' "N clients" rows must measure N clients. Room for 16 calls at once (4 doing image
// work, 12 waiting), of which one client may run only half: 16 callers sharing one address had
// calls refused, which stopped `npm run bench` at its 16-client row.
describe("the benchmarks' separate clients", () => {
  let server: TestServer;
  useTestServer((s) => void (server = s), { FACE_MAX_IN_FLIGHT: "4", FACE_MAX_QUEUED: "12" });

  it("16 of them calling at once are 16 clients to the service: every call is served", async () => {
    const photo = await singleFace640x480();
    const served = new Set<number>();
    await throughput(separateClients(server.url, 16), 0.5, async (client, c) => {
      await client.recognize({ image: photo });
      served.add(c);
    });
    assert.equal(served.size, 16);
  });
});
