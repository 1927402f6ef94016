import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, it } from "node:test";
import { FACES_DIR } from "./support/testdata.js";
import { generatePythonStubs, pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";

describeUnless(pythonGrpcSkip, "a Python grpcio client generated from proto/", () => {
  let server: TestServer;
  let stubs: string;
  before(async () => {
    server = await startTestServer();
    stubs = await generatePythonStubs();
  });
  after(async () => {
    await server.close();
    await rm(stubs, { recursive: true, force: true });
  });

  it("registers, recognizes the person and a stranger, and streams the clip through Sync in order with a bad frame answered", async () => {
    const seen = await runPythonClient<Record<string, unknown>>(stubs, new URL(server.url).host, "session", [FACES_DIR]);
    assert.deepEqual(seen, {
      registered: ["obama", true],
      known: [true, "obama"],
      stranger: [false, ""],
      bad_image: "INVALID_ARGUMENT",
      sync_order: true,
      sync_bad_frame: ["invalid_argument"],
      sync_identities: ["lin-manuel-miranda"],
    });
  });
});
