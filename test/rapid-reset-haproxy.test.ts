/**
 * HTTP/2 rapid reset through HAProxy (deploy/haproxy.cfg, Debian's HAProxy), which passes each of
 * its clients' resets on to the instance over its own few HTTP/2 connections, its requests arriving
 * among other streams' resets. The service runs in its own process, so that a service that stops
 * answering fails the test instead of stopping it.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { haproxyAloneMissing, startHAProxy, type HAProxy } from "./support/haproxy.js";
import { connectFrom, emptyRecognize } from "./support/raw-http2.js";
import { startRapidReset } from "./support/rapid-reset.js";
import { startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { describeUnless } from "./support/suite.js";
import { within } from "./support/until.js";

/** face_connections_dropped_total, read within 10 s (a service that does not answer fails the test). */
async function connectionsDropped(service: ServiceProcess): Promise<number> {
  const metrics = await (await fetch(`${service.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  return Number(/^face_connections_dropped_total (\d+)/m.exec(metrics)?.[1]);
}

describeUnless(haproxyAloneMissing(), "a client resetting streams through HAProxy (deploy/haproxy.cfg), which the service does not trust", () => {
  let service: ServiceProcess;
  let proxy: HAProxy;
  before(async () => {
    service = await startServiceProcess({ FACE_DATA_DIR: mkdtempSync(join(tmpdir(), "face-reset-haproxy-")), LOG_LEVEL: "warn" });
    proxy = await startHAProxy([new URL(service.url).host]);
  });
  after(async () => {
    await proxy?.close();
    await service?.stop();
  });

  it("closes HAProxy's connection past the budget and goes on answering", async (t) => {
    const attack = startRapidReset(proxy.url, "127.0.0.2", new Uint8Array(5));
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const attacked = await attack.stop();
    t.diagnostic(`attacker ${JSON.stringify(attacked)}`);
    // Before, the service's process spun writing RST_STREAM frames into an ever larger buffer as
    // it closed HAProxy's connection, and answered nothing again.
    assert.ok((await connectionsDropped(service)) >= 1, `HAProxy's connection was closed past the budget (attacker: ${JSON.stringify(attacked)})`);
    const elsewhere = connectFrom(service.url, "127.0.0.4");
    assert.equal((await within(10_000, "a direct call", emptyRecognize(elsewhere))).status, Code.InvalidArgument);
    elsewhere.close();
  });
});
