import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import WebSocket from "ws";
import { face, FACES_DIR } from "./support/testdata.js";
import { pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { describeUnless } from "./support/suite.js";
import { faceClient, startTestServer } from "./support/server.js";
import { requestQueue } from "./support/request-queue.js";
import { within } from "./support/until.js";

/** FACE_SHUTDOWN_TIMEOUT_MS of these servers: how long a closing server lets open streams go on. */
const GRACE_MS = 300;
/** Far longer than the grace: a stream still open by then was never ended. */
const NEVER_MS = 10_000;

describe("a camera stream left open while the server shuts down", () => {
  const image = face("face_recognition/obama.jpg");

  it("gRPC Sync: ends with UNAVAILABLE after the grace period, and the server closes", async () => {
    const server = await startTestServer({ FACE_SHUTDOWN_TIMEOUT_MS: String(GRACE_MS) });
    const queue = requestQueue();
    try {
      const answers = faceClient(server).sync(queue.iterable)[Symbol.asyncIterator]();
      queue.send({ image, frameId: "1" });
      assert.equal((await answers.next()).done, false);
      // The camera keeps the stream open and sends nothing more (between frames, or stalled).
      const started = performance.now();
      const closed = server.close();
      const ended = await within(NEVER_MS, "the stream's end", answers.next().then(() => undefined, (e: unknown) => e));
      assert.ok(ended instanceof ConnectError, `the stream ended with an error, not quietly: ${String(ended)}`);
      assert.equal(ended.code, Code.Unavailable, ended.message);
      assert.match(ended.message, /shutting down/);
      assert.ok(performance.now() - started >= GRACE_MS * 0.9, "not before the grace period");
      await within(NEVER_MS, "the server's close", closed);
    } finally {
      queue.end();
    }
  });

  it("WebSocket /ws/realtime: is closed with 1001 (going away) after the grace period, and the server closes", async () => {
    const server = await startTestServer({ FACE_SHUTDOWN_TIMEOUT_MS: String(GRACE_MS) });
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => ws.send(image));
        ws.once("message", () => resolve());
        ws.once("error", reject);
      });
      const closedByServer = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
      const started = performance.now();
      const closed = server.close();
      assert.equal(await within(NEVER_MS, "the socket's close", closedByServer), 1001);
      assert.ok(performance.now() - started >= GRACE_MS * 0.9, "not before the grace period");
      await within(NEVER_MS, "the server's close", closed);
    } finally {
      ws.terminate();
    }
  });
});

describeUnless(pythonGrpcSkip, "a Python grpcio client's Sync stream left open while the server shuts down", () => {

  it("ends with UNAVAILABLE, the server shutting down", async () => {
    const server = await startTestServer({ FACE_SHUTDOWN_TIMEOUT_MS: String(GRACE_MS) });
    const ready = join(server.dataDir, "python-stream-open");
    const seen = runPythonClient<Record<string, unknown>>(new URL(server.url).host, "open_during_shutdown", [join(FACES_DIR, "face_recognition/obama.jpg"), ready]);
    try {
      await within(60_000, "the first answer", (async () => {
        while (!existsSync(ready)) await new Promise((r) => setTimeout(r, 20));
      })());
    } finally {
      await within(NEVER_MS, "the server's close", server.close());
    }
    assert.deepEqual(await seen, { frame1: "1", status: "UNAVAILABLE", details: "the server is shutting down" });
  });
});
