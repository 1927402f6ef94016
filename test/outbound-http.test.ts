import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { after, before, describe, it } from "node:test";
import { FaceError } from "../src/errors.js";
import { sendOutbound } from "../src/service/outbound-http.js";

// The collector, without starting node with --expose-gc.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

describe("outbound HTTP deadline", () => {
  // A host that accepts and never answers.
  const silent = createServer(() => {});
  let url: URL;
  before(async () => {
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    url = new URL(`http://127.0.0.1:${(silent.address() as AddressInfo).port}/photo.jpg`);
  });
  after(() => {
    silent.closeAllConnections();
    silent.close();
  });

  it("fires although garbage is collected while waiting, with the call's own signal combined in", async () => {
    // AbortSignal.timeout inside AbortSignal.any is held only weakly: once collected, its timer is
    // cleared and the request waited forever (nodejs/node#57736). Seen as a hung test under load.
    const call = new AbortController();
    const request = sendOutbound({
      url, method: "GET", headers: {}, allowedHosts: [url.host], field: "image_url",
      timeLimit: { endsAt: Date.now() + 300, totalMs: 300 }, maxBodyBytes: 1024, signal: call.signal,
    });
    const outcome = request.then(() => "answered", (e: unknown) => e);
    for (let i = 0; i < 10; i++) {
      collectGarbage();
      await new Promise((r) => setTimeout(r, 20));
    }
    const result = await Promise.race([outcome, new Promise((r) => setTimeout(() => r("still waiting after 3 s"), 3000))]);
    assert.ok(result instanceof FaceError && /within 300 ms/.test(result.message), String(result));
  });
});
