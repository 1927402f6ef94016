import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { open, rm, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { SERVICE_COMMAND, startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { describeUnless } from "./support/suite.js";
import { face } from "./support/testdata.js";

/**
 * A file system that fills up, without touching the machine's: the service runs in a mount
 * namespace of its own (unshare, as an unprivileged user too) with its data directory on a small
 * tmpfs, which this process reaches through /proc/<pid>/root to fill and free.
 */
const unshareSkip: string | false = process.env.TEST_DATABASE_URL
  ? "embedded database only: the embedded pass runs it (the PostgreSQL server's disk is not this test's to fill)"
  : process.env.FACE_REQUIRE_UNSHARE || spawnSync("unshare", ["-rm", "true"]).status === 0
    ? false
    : "needs unshare (util-linux) and user namespaces (sysctl kernel.unprivileged_userns_clone=1); .ci/run sets FACE_REQUIRE_UNSHARE";

const ON_SMALL_TMPFS = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=120m tmpfs "$FACE_DATA_DIR" && exec "$@"', "sh"];

for (const storeImages of ["true", "false"]) {
  const where = storeImages === "true" ? "a photo's file" : "the database (photos not kept)";
  describeUnless(unshareSkip, `a full file system under the embedded database, met first by ${where}`, () => {
    let dataDir: string;
    let service: ServiceProcess;
    let filler: string;
    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "face-storage-full-"));
      service = await startServiceProcess({ DATABASE_URL: "", LOG_LEVEL: "warn", FACE_DATA_DIR: dataDir, FACE_STORE_IMAGES: storeImages }, { ...SERVICE_COMMAND, within: ON_SMALL_TMPFS });
      filler = `/proc/${service.child.pid}/root${dataDir}/filler`;
    });
    after(async () => {
      await service.stop();
      await rm(dataDir, { recursive: true, force: true });
    });

    const register = async (identifier: string) => {
      const form = new FormData();
      form.append("identifier", identifier);
      form.append("image", new Blob([Buffer.from(face("face_recognition/obama.jpg"))]), "obama.jpg");
      return fetch(`${service.url}/api/v1/register`, { method: "POST", body: form });
    };

    it("answers writes Unavailable with retry-after (REST 503, gRPC), logs why, goes on reading, and stores again once space is freed", async () => {
      assert.equal((await register("before")).status, 200);
      // Fill it: what is left after the last whole megabyte, then byte by byte to nothing.
      const file = await open(filler, "w");
      for (const size of [1 << 20, 4096, 1]) {
        for (;;) {
          try {
            await file.write(Buffer.alloc(size));
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
            break;
          }
        }
      }
      await file.close();
      // Pages the database had already allocated take a few rows before a write needs new space.
      let refused: Response | undefined;
      for (let i = 0; i < 100 && refused === undefined; i++) {
        const response = await register(`during-${i}`);
        if (response.status !== 200) refused = response;
      }
      assert.ok(refused !== undefined, "a write met the full file system");
      const body = await refused.json();
      assert.equal(refused.status, 503, JSON.stringify(body));
      assert.equal(refused.headers.get("retry-after"), "60");
      assert.equal(body.code, "unavailable");
      assert.match(body.message, /storage is full/);
      const grpc = createClient(FaceService, createGrpcTransport({ baseUrl: service.url }));
      await assert.rejects(grpc.register({ identifier: "over-grpc", image: face("face_recognition/obama2.jpg") }), (e) => ConnectError.from(e).code === Code.Unavailable && /storage is full/.test(ConnectError.from(e).rawMessage));
      assert.match(service.output(), /no space left on device|No space left on device/i, "the log says why");
      assert.equal((await grpc.recognize({ image: face("face_recognition/obama2.jpg") })).identifier, "before", "reads go on");
      await rm(filler);
      assert.equal((await register("after")).status, 200);
      const users = (await (await fetch(`${service.url}/api/v1/users?page_size=1000`)).json()) as string[];
      assert.ok(users.includes("before") && users.includes("after") && !users.includes("over-grpc"), JSON.stringify(users));
    });
  });
}
