import assert from "node:assert/strict";
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { processMetrics } from "../src/metrics.js";
import { writtenDetections } from "./support/detections.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";

/** Detection log entries whose write failed and that were kept for the next try, in this process. */
async function unwrittenKept(): Promise<number> {
  return (await processMetrics().detectionLogUnwritten.get()).values.find((v) => v.labels.outcome === "kept")?.value ?? 0;
}

/** A TCP proxy in front of PostgreSQL that the test can cut and restore, as a network outage would. */
async function databaseProxy(target: URL) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const up = async () => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server!.listen(port, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  };
  await up();
  return {
    url: () => Object.assign(new URL(target.toString()), { host: `127.0.0.1:${port}` }).toString(),
    async down() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server!.close(r));
    },
    up,
  };
}

describeUnless(process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL (a PostgreSQL server; .ci/run starts one)", "a database that goes away", () => {
  it("answers Unavailable while it is down and recovers by itself when it is back", async () => {
    // A fresh database on the server, reached through the proxy.
    const direct = await startTestServer();
    const databaseUrl = new URL(direct.config.databaseUrl!);
    await direct.close();
    const proxy = await databaseProxy(databaseUrl);
    // Detection log entries wait 2 s to be written, so the outage below surely begins before.
    const server = await startTestServer({ DATABASE_URL: proxy.url(), FACE_DETECTION_LOG_FLUSH_MS: "2000" });
    const client = faceClient(server);
    try {
      await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
      await proxy.down();
      await assert.rejects(client.recognize({ image: face("face_recognition/obama2.jpg") }), (e) => ConnectError.from(e).code === Code.Unavailable);
      await assert.rejects(client.register({ identifier: "biden", image: face("face_recognition/biden.jpg") }), (e) => ConnectError.from(e).code === Code.Unavailable);
      assert.equal((await fetch(`${server.url}/health`)).status, 503);
      await proxy.up();
      const recognized = () => client.recognize({ image: face("face_recognition/obama2.jpg") }).then((r) => r.identifier === "obama", () => false);
      await until(recognized, "obama recognized once the database is back");
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      // A frame's log entries are written a moment after its answer: an outage in between keeps them
      // queued, and they are written once the database is back. The outage lasts until the write
      // has failed (the metric says so), so the test cannot pass by writing before the cut.
      const keptBefore = await unwrittenKept();
      await client.syncFrame({ image: face("face_recognition/obama2.jpg"), frameId: "before the outage" });
      await proxy.down();
      const failedDeadline = Date.now() + 10_000;
      while ((await unwrittenKept()) === keptBefore && Date.now() < failedDeadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await unwrittenKept(), keptBefore + 1, "the frame's one entry failed to be written during the outage and was kept");
      await proxy.up();
      const logged = await writtenDetections(server.database.knex, { frame_id: "before the outage" }, 1, 10_000);
      assert.deepEqual(logged.map((d) => d.identifier), ["obama"]);
    } finally {
      await server.close();
      await proxy.down().catch(() => undefined);
    }
  });
});
