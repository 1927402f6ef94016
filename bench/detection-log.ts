/**
 * What writing the detection log costs per frame on PGlite (which runs on the service's main
 * thread): each frame's two entries in statements of their own, as before batching, and ten frames
 * to a statement, as the 100 ms batches of a 30 frames/s stream hold about three (src/store/detections.ts).
 *
 *   npm run bench:detection-log
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../src/store/database.js";
import { createDetectionLog } from "../src/store/detections.js";
import { printTable } from "./table.js";

const FRAMES = 300;
const dataDir = await mkdtemp(join(tmpdir(), "face-bench-log-"));
const database = await openDatabase({ databaseUrl: undefined, dataDir });
// Written only when flushed: each round decides how many frames share a statement.
const log = createDetectionLog(database.knex, { flushAfterMs: 3_600_000 });
const entry = (frame: number) => ({ identifier: "", frameId: String(frame), trackId: 1, box: { x: 10, y: 20, width: 60, height: 70 }, confidence: 0.9, distance: 2 });

/** Main-thread milliseconds per frame, writing every `framesPerStatement` frames. */
async function msPerFrame(framesPerStatement: number): Promise<number> {
  const start = performance.now();
  for (let frame = 0; frame < FRAMES; frame++) {
    log.record("default", [entry(frame), entry(frame)]);
    if ((frame + 1) % framesPerStatement === 0) await log.flush();
  }
  await log.flush();
  return (performance.now() - start) / FRAMES;
}

try {
  await msPerFrame(1); // warm-up
  const rows = [];
  for (const framesPerStatement of [1, 3, 10]) rows.push({ "frames per statement": framesPerStatement, "ms per frame": (await msPerFrame(framesPerStatement)).toFixed(3) });
  printTable(`Detection log on PGlite, ${FRAMES} frames of two faces`, rows);
} finally {
  await log.close();
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
}
