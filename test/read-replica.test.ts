import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { FaceService } from "../gen/face/v1/face_pb.js";
import { replicationMissing, startReplicatedPostgres, type ReplicatedPostgres } from "./support/replicated-postgres.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { face } from "./support/testdata.js";
import { until } from "./support/until.js";
import { frameByFrame } from "./support/request-queue.js";

const OBAMA = face("face_recognition/obama.jpg");
const OBAMA_2 = face("face_recognition/obama2.jpg");
const BIDEN = face("face_recognition/biden.jpg");
const AMY = face("faceapijs/amy1.png");

/**
 * A real hot standby (pg_basebackup, streaming). Pausing its replay makes the lag visible: a search
 * that does not see a user the primary has proves the search ran on the replica.
 */
describeUnless(replicationMissing(), "searches on a read replica (DATABASE_READ_URL)", () => {
  let postgres: ReplicatedPostgres;
  let server: TestServer;
  let client: Client<typeof FaceService>;
  before(async () => {
    postgres = await startReplicatedPostgres();
    server = await startTestServer({ DATABASE_URL: postgres.primaryUrl, DATABASE_READ_URL: postgres.replicaUrl });
    client = faceClient(server);
  });
  after(async () => {
    await server?.close();
    postgres?.close();
  });

  it("writes to the primary and searches (Recognize, Verify, SyncFrame) on the replica, which may lag", async () => {
    await client.register({ identifier: "obama", image: OBAMA });
    await postgres.caughtUp();
    assert.equal((await client.recognize({ image: OBAMA_2 })).identifier, "obama");

    await postgres.pauseReplay();
    // A hot standby refuses writes: this one went to the primary.
    assert.equal((await client.register({ identifier: "biden", image: BIDEN })).created, true);
    assert.equal((await client.recognize({ image: BIDEN })).matched, false, "the paused replica has not seen biden yet");
    await assert.rejects(client.verify({ image: BIDEN, identifier: "biden" }), (e) => ConnectError.from(e).code === Code.NotFound);
    const frame = await client.syncFrame({ image: BIDEN, frameId: "lagging" });
    assert.equal(frame.faces.length, 1);
    assert.equal(frame.faces[0].identifier, "", "SyncFrame searched the replica too");

    await postgres.resumeReplay();
    await postgres.caughtUp();
    assert.equal((await client.recognize({ image: BIDEN })).identifier, "biden");
    assert.equal((await client.verify({ image: BIDEN, identifier: "biden" })).verified, true);
  });

  it("never names on a stream, from a lagging replica, someone the primary says is deleted", async () => {
    await client.register({ identifier: "obama-streamed", image: OBAMA, collection: "replica-stream" });
    await postgres.caughtUp();
    const stream = frameByFrame(client);
    const next = (frameId: string) => stream.frame({ image: OBAMA, frameId, collection: "replica-stream" });
    try {
      assert.equal((await next("1")).faces[0].identifier, "obama-streamed");
      await postgres.pauseReplay();
      await client.deleteUser({ identifier: "obama-streamed", collection: "replica-stream" });
      // The stream asks the primary who is still a user, then searches the face again on the
      // replica, which has not seen the deletion; the next frame follows the face, now unnamed.
      for (const frameId of ["2", "3"]) assert.equal((await next(frameId)).faces[0].identifier, "", `frame ${frameId}`);
    } finally {
      stream.end();
      await postgres.resumeReplay();
    }
    assert.equal(await stream.done(), true);
  });

  it("searches on the primary while the replica is down, and on the replica again once it is back", async () => {
    postgres.stopReplica();
    for (let i = 0; i < 5; i++) assert.equal((await client.recognize({ image: OBAMA_2 })).identifier, "obama");
    assert.equal((await client.verify({ image: BIDEN, identifier: "biden" })).verified, true);

    postgres.startReplica();
    await postgres.caughtUp();
    await postgres.pauseReplay();
    await client.register({ identifier: "amy", image: AMY });
    assert.equal((await client.recognize({ image: AMY })).identifier, "amy", "the primary, still standing in, has amy");
    // The replica is tried again a few seconds after it failed: then its lag shows.
    await until(async () => !(await client.recognize({ image: AMY })).matched, "searches back on the replica", 20_000);
    await postgres.resumeReplay();
  });
});
