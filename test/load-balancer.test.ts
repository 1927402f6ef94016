import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it, test } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService, type SyncResponse } from "../gen/face/v1/face_pb.js";
import { haproxyMissing, startHAProxy, type HAProxy } from "./support/haproxy.js";
import { freshDatabase } from "./support/test-databases.js";
import { startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { describeUnless } from "./support/suite.js";
import { face, FACES_DIR } from "./support/testdata.js";
import { until } from "./support/until.js";

const OBAMA = face("face_recognition/obama.jpg");
const OBAMA_2 = face("face_recognition/obama2.jpg");
const CLIP = readdirSync(join(FACES_DIR, "video", "frames")).filter((f) => f.endsWith(".jpg")).sort().map((f) => face(`video/frames/${f}`));

/** What a call cut by a dying instance looks like to a client: reset (Aborted, Internal, Unknown) or refused (Unavailable). */
const instanceGone = (e: unknown) => [Code.Unavailable, Code.Aborted, Code.Unknown, Code.Internal, Code.Canceled].includes(ConnectError.from(e).code);

/**
 * deploy/haproxy.cfg with Debian's HAProxy in front of three `npm start` processes on one
 * PostgreSQL database (each with a data directory of its own), as docker-compose.yml deploys them.
 */
describeUnless(haproxyMissing(), "HAProxy in front of three instances", () => {
  let instances: ServiceProcess[] = [];
  let dataDirs: string[] = [];
  let proxy: HAProxy;
  let grpc: Client<typeof FaceService>;

  before(async () => {
    const env = { DATABASE_URL: await freshDatabase(process.env.TEST_DATABASE_URL!), FACE_ONNX_WORKERS: "1", LOG_LEVEL: "warn" };
    dataDirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), "face-lb-"))));
    instances = await Promise.all(dataDirs.map((dir) => startServiceProcess({ ...env, FACE_DATA_DIR: dir })));
    proxy = await startHAProxy(instances.map((i) => new URL(i.url).host));
    grpc = createClient(FaceService, createGrpcTransport({ baseUrl: proxy.url }));
    await grpc.register({ identifier: "obama", image: OBAMA });
    await grpc.register({ identifier: "lin-manuel-miranda", image: face("video/lin-manuel-miranda.png") });
  });
  after(async () => {
    await proxy?.close();
    for (const i of instances) if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill("SIGKILL");
    for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
  });

  it("spreads gRPC calls over every instance, and passes HTTP/1.1 clients (Connect JSON, REST) on the same port", async () => {
    for (let i = 0; i < 9; i++) assert.equal((await grpc.recognize({ image: OBAMA_2 })).identifier, "obama");
    for (const instance of instances) {
      const metrics = await (await fetch(`${instance.url}/metrics`)).text();
      const served = /face_requests_total\{rpc="Recognize",code="ok"\} (\d+)/.exec(metrics);
      assert.ok(served !== null && Number(served[1]) >= 2, `${instance.url} served ${served?.[1] ?? 0} of 9 Recognize calls`);
    }
    const connect = createClient(FaceService, createConnectTransport({ baseUrl: proxy.url, httpVersion: "1.1" }));
    assert.equal((await connect.recognize({ image: OBAMA_2 })).identifier, "obama");
    const form = new FormData();
    form.append("image", new Blob([Buffer.from(OBAMA_2)], { type: "image/jpeg" }), "obama2.jpg");
    const rest = await fetch(`${proxy.url}/api/v1/recognize`, { method: "POST", body: form });
    assert.equal(rest.status, 200);
    assert.equal((await rest.json()).identifier, "obama");
  });

  it("keeps a Sync stream going: when its instance dies the client opens a new stream and goes on", async () => {
    const answers: SyncResponse[] = [];
    let reconnects = 0;
    let killed: ServiceProcess | undefined;
    while (answers.length < CLIP.length) {
      const waiting: ((frame: Uint8Array | undefined) => void)[] = [];
      const next = () => new Promise<Uint8Array | undefined>((r) => waiting.push(r));
      const requests = (async function* () {
        for (let frame = await next(); frame !== undefined; frame = await next()) yield { image: frame, frameId: `f${answers.length}` };
      })();
      const responses = grpc.sync(requests)[Symbol.asyncIterator]();
      try {
        while (answers.length < CLIP.length) {
          // One frame at a time, as a camera sends them; the next after this one's answer.
          const sending = answers.length;
          setImmediate(() => waiting.shift()?.(CLIP[sending]));
          const { value, done } = await responses.next();
          assert.equal(done, false);
          assert.equal(value.frameId, `f${sending}`);
          answers.push(value);
          if (answers.length === 5 && killed === undefined) {
            // The instance carrying the stream is the one HAProxy counts a stream on.
            const carrying = (await proxy.servers()).findIndex((s) => s.current > 0);
            assert.ok(carrying >= 0, "HAProxy shows which instance carries the stream");
            killed = instances[carrying];
            killed.child.kill("SIGKILL");
          }
        }
        waiting.shift()?.(undefined);
        await responses.return?.();
      } catch (e) {
        if (!instanceGone(e) || reconnects >= 3) throw e;
        reconnects++;
      }
    }
    assert.ok(killed !== undefined);
    assert.equal(reconnects, 1, "one new stream after the instance died");
    assert.deepEqual(answers.map((a) => a.frameId), CLIP.map((_, i) => `f${i}`));
    const lin = answers.map((a, i) => (a.faces.some((f) => f.identifier === "lin-manuel-miranda") ? i : -1)).filter((i) => i >= 0);
    assert.ok(lin.some((i) => i > 5), `recognized again on the new stream (frames ${lin})`);
    await until(async () => (await proxy.servers()).filter((s) => s.status.startsWith("DOWN")).length === 1, "the health check takes the dead instance out", 10_000);
  });

  it("answers every unary call while an instance is killed mid-load (a cut call retried once), then routes around it", async () => {
    const alive = instances.filter((i) => i.child.exitCode === null && i.child.signalCode === null);
    assert.equal(alive.length, 2);
    let done = 0;
    let retried = 0;
    async function recognize(): Promise<void> {
      for (let attempt = 0; ; attempt++) {
        try {
          assert.equal((await grpc.recognize({ image: OBAMA_2 })).identifier, "obama");
          done++;
          return;
        } catch (e) {
          if (attempt >= 3 || !instanceGone(e)) throw e;
          retried++;
        }
      }
    }
    const killer = (async () => {
      await until(() => done >= 6, "some calls answered", 60_000);
      alive[1].child.kill("SIGKILL");
    })();
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 8; i++) await recognize();
    }));
    await killer;
    assert.equal(done, 32, `every call answered (${retried} retried by the client)`);
    await until(async () => (await proxy.servers()).filter((s) => s.status.startsWith("DOWN")).length === 2, "the health check takes the second dead instance out", 10_000);
    const retriedBefore = retried;
    for (let i = 0; i < 6; i++) await recognize();
    assert.equal(retried, retriedBefore, "once out of the rotation, no call reaches a dead instance");
  });
});

test("docker-compose.yml runs the instances deploy/haproxy.cfg sends calls to, and gives HAProxy that file", () => {
  const compose = readFileSync(new URL("../docker-compose.yml", import.meta.url), "utf8");
  const config = readFileSync(new URL("../deploy/haproxy.cfg", import.meta.url), "utf8");
  const instances = [...compose.matchAll(/^ {2}(face\d+): \*face$/gm)].map((m) => m[1]);
  const servers = [...config.matchAll(/^\s*server (\S+) (\S+):8080$/gm)].map((m) => [m[1], m[2]]);
  assert.equal(instances.length, 3);
  assert.deepEqual(servers.map(([, host]) => host), instances);
  assert.match(compose, /- \.\/deploy\/haproxy\.cfg:\/usr\/local\/etc\/haproxy\/haproxy\.cfg:ro/);
});
