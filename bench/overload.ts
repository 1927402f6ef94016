/**
 * Overload: many more clients than cores, against the service as `npm start` runs it (its own
 * process, PGlite), with and without admission control. Every call must be answered (served or shed
 * at once with a retry-after), latency of served calls must stay bounded and memory flat.
 *
 *   npm run bench:overload          (BENCH_CLIENTS=32 BENCH_SECONDS=15 by default)
 *
 * Each client (its own connection and loopback address) sends Recognize of a 640x480 single-face
 * JPEG back to back; a shed call waits its retry-after (1 s) before the next, as a well-behaved
 * client does.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { retryAfterSeconds } from "../src/cli/retry-after.js";
import { face, singleFace640x480 } from "../test/support/testdata.js";
import { startServiceProcess } from "../test/support/service-process.js";
import { separateClients } from "./support/clients.js";
import { percentile, printTable } from "./table.js";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const photo = await singleFace640x480();

async function run(label: string, env: Record<string, string>) {
  const dataDir = await mkdtemp(join(tmpdir(), "face-overload-"));
  const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "warn", ...env });
  try {
    const setup = createClient(FaceService, createGrpcTransport({ baseUrl: service.url }));
    await setup.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    const served: number[] = [];
    let shed = 0;
    let failed = 0;
    const end = Date.now() + SECONDS * 1000;
    await Promise.all(
      separateClients(service.url, CLIENTS).map(async (client) => {
        while (Date.now() < end) {
          const start = performance.now();
          try {
            await client.recognize({ image: photo });
            served.push(performance.now() - start);
          } catch (e) {
            // Shed: told to come back (Unavailable, or ResourceExhausted past its client's share), with when.
            const retryAfter = retryAfterSeconds(e);
            if (retryAfter !== undefined) {
              shed++;
              await new Promise((r) => setTimeout(r, retryAfter * 1000));
            } else failed++;
          }
        }
      }),
    );
    return {
      setting: label,
      "served/s": (served.length / SECONDS).toFixed(1),
      "p50 ms": percentile(served, 50).toFixed(0),
      "p99 ms": percentile(served, 99).toFixed(0),
      "max ms": Math.max(...served).toFixed(0),
      shed,
      failed,
      "peak RSS MiB": service.peakRssMiB().toFixed(0),
    };
  } finally {
    await service.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const tried = (process.env.BENCH_OVERLOAD_LIMITS ?? "").split(",").filter((x) => x !== "").map((x) => x.split("/"));
const rows = [
  await run("admission (defaults)", {}),
  ...(await (async () => {
    const extra = [];
    for (const [inFlight, queued] of tried) extra.push(await run(`in flight ${inFlight}, queued ${queued}`, { FACE_MAX_IN_FLIGHT: inFlight, FACE_MAX_QUEUED: queued }));
    return extra;
  })()),
  // As good as no limit: every call queues.
  await run("no admission limit", { FACE_MAX_IN_FLIGHT: "1024", FACE_MAX_QUEUED: "100000" }),
];
printTable(`${CLIENTS} clients sending Recognize back to back for ${SECONDS} s each`, rows);
