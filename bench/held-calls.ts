/**
 * Big hostile photos (random noise, crowds of thousands of small faces): how long a Detect of each
 * takes, and how long the same service keeps other calls waiting meanwhile. While one client sends
 * Detect, another sends ListUsers one after another; the longest ListUsers is the time the service's
 * event loop was held (the title gives a ListUsers' p50 with nothing else running, for comparison).
 *
 *   npm run bench:held-calls
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "../test/support/testdata.js";
import { startServiceProcess } from "../test/support/service-process.js";
import { crowdPhoto, noisePhoto } from "../test/support/photos.js";
import { percentile, printTable } from "./table.js";

const RUNS = 5;
const dataDir = await mkdtemp(join(tmpdir(), "face-bench-held-"));
const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "warn" });
const rows: Record<string, string>[] = [];
let aloneP50 = NaN;
try {
  // Separate connections, so a ListUsers never waits behind a Detect's bytes on the wire.
  const detecting = createClient(FaceService, createGrpcTransport({ baseUrl: service.url }));
  const listing = createClient(FaceService, createGrpcTransport({ baseUrl: service.url }));
  const portrait = face("face_recognition/obama.jpg");
  const box = (await detecting.detect({ image: portrait })).faces[0].box!;
  const alone: number[] = [];
  for (let i = 0; i < 50; i++) {
    const started = performance.now();
    await listing.listUsers({});
    alone.push(performance.now() - started);
  }
  aloneP50 = percentile(alone, 50);
  const photos: [string, Uint8Array][] = [
    ["noise 4000x3000", await noisePhoto(4000, 3000)],
    ["3,600 faces of 48 px (2880x2880)", await crowdPhoto(portrait, box, 60, 48, 45)],
    ["4,900 faces of 48 px (3360x3360)", await crowdPhoto(portrait, box, 70, 48, 45)],
  ];
  for (const [label, image] of photos) {
    await detecting.detect({ image });
    const detectMs: number[] = [], waits: number[] = [];
    let faces = 0;
    for (let i = 0; i < RUNS; i++) {
      let done = false;
      const lister = (async () => {
        while (!done) {
          const started = performance.now();
          await listing.listUsers({});
          waits.push(performance.now() - started);
        }
      })();
      const started = performance.now();
      faces = (await detecting.detect({ image })).faces.length;
      detectMs.push(performance.now() - started);
      done = true;
      await lister;
    }
    rows.push({
      photo: label, MB: (image.length / 1e6).toFixed(2), faces: String(faces),
      "Detect p50 ms": percentile(detectMs, 50).toFixed(0),
      "ListUsers p50 / longest ms": `${percentile(waits, 50).toFixed(1)} / ${Math.max(...waits).toFixed(0)}`,
    });
  }
} finally {
  await service.stop();
  await rm(dataDir, { recursive: true, force: true });
}
printTable(`Detect of big hostile photos, ${RUNS} calls each, and a ListUsers sent meanwhile, one after another (alone: p50 ${aloneP50.toFixed(1)} ms)`, rows);
