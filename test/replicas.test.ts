import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import { freshDatabase } from "./support/test-databases.js";
import { frameByFrame } from "./support/request-queue.js";
import { startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { createReceiver } from "./support/webhook-receiver.js";
import { until } from "./support/until.js";
import { describeUnless } from "./support/suite.js";

/**
 * Scale-out as deployed: three service processes (npm start) on one PostgreSQL database, each with
 * a data directory of its own (as on three machines: photos live in the database), started at the
 * same moment (so they also race to migrate).
 */
describeUnless(process.env.TEST_DATABASE_URL ? false : "needs a PostgreSQL server (TEST_DATABASE_URL; .ci/run starts one)", "three replicas on one PostgreSQL", () => {
  const receiver = createReceiver(() => secret);
  let secret = "";
  let dataDirs: string[] = [];
  let replicas: ServiceProcess[] = [];
  let clients: Client<typeof FaceService>[] = [];

  before(async () => {
    const port = await receiver.listen();
    dataDirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), "face-replica-"))));
    const env = {
      DATABASE_URL: await freshDatabase(process.env.TEST_DATABASE_URL!),
      FACE_ONNX_WORKERS: "1",
      FACE_WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${port}`,
      FACE_WEBHOOK_RETRY_BASE_MS: "100",
      FACE_WEBHOOK_POLL_MS: "100",
      LOG_LEVEL: "warn",
    };
    const started = await Promise.allSettled([0, 1, 2].map((i) => startServiceProcess({ ...env, FACE_DATA_DIR: dataDirs[i] })));
    replicas = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    clients = replicas.map((r) => createClient(FaceService, createGrpcTransport({ baseUrl: r.url })));
    secret = (await clients[1].createWebhook({ url: `http://127.0.0.1:${port}/hook`, events: ["user.registered", "face.recognized"] })).secret;
  });
  after(async () => {
    for (const r of replicas) if (r.child.exitCode === null) r.child.kill("SIGKILL");
    await receiver.close();
    for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
  });

  it("recognizes through every replica a user registered through one, photo included", async () => {
    await clients[0].register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    for (const client of clients.slice(1)) {
      assert.equal((await client.recognize({ image: face("face_recognition/obama2.jpg") })).identifier, "obama");
    }
    const photo = await clients[2].getUserFace({ identifier: "obama" });
    assert.deepEqual(Buffer.from(photo.data), Buffer.from(face("face_recognition/obama.jpg")));
  });

  it("sends each webhook event once, whichever replica produced it", async () => {
    for (let i = 0; i < 6; i++) await clients[i % 3].recognize({ image: face("face_recognition/obama2.jpg") });
    await until(() => receiver.received.filter((r) => r.event.type === "face.recognized").length >= 8, "8 recognitions");
    await new Promise((r) => setTimeout(r, 1_000)); // time for a duplicate to arrive
    const ids = receiver.received.map((r) => r.event.id);
    assert.equal(new Set(ids).size, ids.length, "no event arrived twice");
    assert.equal(receiver.received.filter((r) => r.event.type === "user.registered").length, 1);
  });

  it("stops naming, on a stream through one replica, a user deleted through another", async () => {
    const image = face("face_recognition/biden.jpg");
    const collection = "stream-across-replicas";
    await clients[1].register({ identifier: "biden", image, collection });
    const stream = frameByFrame(clients[0]);
    const next = (frameId: string) => stream.frame({ image, frameId, collection });
    try {
      assert.equal((await next("1")).faces[0].identifier, "biden");
      assert.equal((await next("2")).faces[0].identifier, "biden");
      await clients[2].deleteUser({ identifier: "biden", collection });
      assert.equal((await next("3")).faces[0].identifier, "");
    } finally {
      stream.end();
    }
    assert.equal(await stream.done(), true);
  });

  it("loses no registration when a replica is killed mid-load", async () => {
    const photos = ["face_recognition/biden.jpg", "faceapijs/amy1.png", "faceapijs/howard1.png", "face_recognition/obama.jpg"].map((p) => face(p));
    const wanted = Array.from({ length: 30 }, (_, i) => `load-${i}`);
    const alive = new Set([0, 1, 2]);
    let sent = 0;
    let retried = 0;
    /** A load balancer's client: round-robin over live replicas; a failed call goes to the next one. */
    async function register(identifier: string, image: Uint8Array): Promise<void> {
      for (let attempt = 0; ; attempt++) {
        const live = [...alive];
        const replica = live[(sent++ + attempt) % live.length];
        try {
          await clients[replica].register({ identifier, image });
          return;
        } catch (e) {
          const code = ConnectError.from(e).code;
          // What a dying replica's connection looks like to a client (reset: Aborted; refused: Unavailable).
          const replicaGone = [Code.Unavailable, Code.Aborted, Code.Unknown, Code.Internal, Code.Canceled].includes(code);
          if (attempt >= 5 || !replicaGone) throw e;
          retried++;
        }
      }
    }
    const queue = [...wanted];
    let done = 0;
    const killer = (async () => {
      await until(() => done >= 6, "some registrations", 60_000);
      alive.delete(2);
      replicas[2].child.kill("SIGKILL");
    })();
    await Promise.all(Array.from({ length: 3 }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        await register(id, photos[done % photos.length]);
        done++;
      }
    }));
    await killer;
    assert.equal(replicas[2].child.signalCode, "SIGKILL");
    const listed = new Set<string>();
    let pageToken = "";
    do {
      const page = await clients[0].listUsers({ pageSize: 1000, pageToken });
      page.identifiers.forEach((i) => listed.add(i));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    assert.deepEqual(wanted.filter((w) => !listed.has(w)), [], `every registration is there (${retried} calls retried on another replica)`);
  });
});
