import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SyncRequestSchema } from "../gen/face/v1/face_pb.js";
import { face, FACES_DIR } from "./support/testdata.js";
import { pythonGrpcSkip, runPythonClient } from "./support/python-grpc.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";

/** Well over the default limit (FACE_MAX_IMAGE_BYTES 10 MiB: a message of at most ~28 MB). */
const HUGE = 40 * 1024 * 1024;

/** A Sync request stream the test feeds frame by frame; `end()` closes it. */
function frameQueue() {
  type Frame = MessageInitShape<typeof SyncRequestSchema>;
  const queued: (Frame | undefined)[] = [];
  let wake: (() => void) | undefined;
  return {
    send(frame: Frame | undefined) {
      queued.push(frame);
      wake?.();
    },
    frames: (async function* () {
      for (;;) {
        while (queued.length === 0) await new Promise<void>((r) => (wake = r));
        const frame = queued.shift();
        if (frame === undefined) return;
        yield frame;
      }
    })(),
  };
}

describe("one oversized message refuses that call only", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("answers ResourceExhausted to a 40 MB Register over gRPC while the client's Sync stream and later calls go on (Node's HTTP/2 client)", async () => {
    const client = faceClient(server);
    const queue = frameQueue();
    const answers = client.sync(queue.frames)[Symbol.asyncIterator]();
    const photo = face("face_recognition/obama.jpg");
    queue.send({ image: photo, frameId: "1" });
    assert.equal((await answers.next()).value?.frameId, "1");
    await assert.rejects(client.register({ identifier: "huge", image: new Uint8Array(HUGE) }), (e) => {
      assert.equal(ConnectError.from(e).code, Code.ResourceExhausted, String(e));
      return true;
    });
    queue.send({ image: photo, frameId: "2" });
    const second = (await answers.next()).value;
    assert.equal(second?.frameId, "2");
    assert.equal(second?.faces.length, 1);
    queue.send(undefined);
    assert.equal((await answers.next()).done, true);
    assert.deepEqual((await client.listUsers({})).identifiers, [], "a new call on the same connection succeeds");
  });

  it("answers resource_exhausted to a 40 MB Connect request over HTTP/1.1 instead of resetting the connection", async () => {
    const response = await fetch(`${server.url}/face.v1.FaceService/Register`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: new Uint8Array(HUGE),
    });
    assert.equal(response.status, 429, "the Connect protocol's status for resource_exhausted");
    assert.equal((await response.json()).code, "resource_exhausted");
  });
});

describeUnless(pythonGrpcSkip, "one oversized message refuses that call only (Python grpcio)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("answers RESOURCE_EXHAUSTED to a 40 MB Register while the channel's Sync stream and later calls go on", async () => {
    const seen = await runPythonClient<Record<string, unknown>>(server.url.replace("http://", ""), "oversized", [`${FACES_DIR}/face_recognition/obama.jpg`]);
    assert.deepEqual(seen, { frame1: "1", register: "RESOURCE_EXHAUSTED", frame2: "2", frame2_faces: 1, stream_rest: 0, list_users: [] });
  });
});
