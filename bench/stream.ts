/**
 * Streaming throughput: the 300 frames of ../shared/faces/video/frames30 over one bidirectional gRPC
 * Sync stream to a real server (PGlite, the two people of the clip registered), and over two
 * concurrent streams. Frames are sent as fast as the server answers. Then the detector's time per
 * frame of one stream sent one frame at a time (so no other frame's work overlaps its spans), how
 * many whole-frame scans and closer looks at unsure faces it made, the time and scans spent
 * reading small faces' landmarks again and aligning faces, how many reported faces were named and
 * in how many frames a face was searched.
 *
 *   npm run bench:stream
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { face, FACES_DIR } from "../test/support/testdata.js";
import { faceClient, startTestServer } from "../test/support/server.js";
import { percentile, printTable } from "./table.js";

const clip = readdirSync(join(FACES_DIR, "video/frames30")).sort().map((f) => face(`video/frames30/${f}`));
const server = await startTestServer();
const client = faceClient(server);
await client.register({ identifier: "lin-manuel-miranda", image: face("video/lin-manuel-miranda.png") });
await client.register({ identifier: "alex-lacamoire", image: face("video/alex-lacamoire.png") });

async function stream(): Promise<number[]> {
  const serverMs: number[] = [];
  for await (const r of client.sync((async function* () { for (const [i, image] of clip.entries()) yield { image, frameId: String(i) }; })())) {
    if (r.error) throw new Error(r.error.message);
    serverMs.push(r.serverProcessTimeMs);
  }
  return serverMs;
}

await stream(); // warm-up
const rows = [];
for (const streams of [1, 2]) {
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: streams }, stream));
  const seconds = (performance.now() - start) / 1000;
  const all = results.flat();
  rows.push({
    streams,
    frames: all.length,
    "frames/s": (all.length / seconds).toFixed(1),
    "server ms/frame p50": percentile(all, 50).toFixed(1),
    "server ms/frame p95": percentile(all, 95).toFixed(1),
  });
}
printTable("Sync over gRPC, video/frames30 (300 frames, 640x360)", rows);

/** One stream, each frame sent when the previous one is answered: the detect span per frame and what it read. */
async function oneFrameAtATime() {
  let answered = () => {};
  const requests = (async function* () {
    for (const [i, image] of clip.entries()) {
      const next = new Promise<void>((resolve) => (answered = resolve));
      yield { image, frameId: String(i) };
      await next;
    }
  })();
  const detectMs: number[] = [];
  let landmarksMs = 0, alignMs = 0;
  const reads: Record<string, number> = {};
  let faces = 0, named = 0, searches = 0;
  for await (const r of client.sync(requests)) {
    if (r.error) throw new Error(r.error.message);
    for (const e of r.flameGraph) {
      if (e.label === "detect") detectMs.push(e.durationMs);
      else if (e.label === "landmarks") landmarksMs += e.durationMs;
      else if (e.label === "align") alignMs += e.durationMs;
      else if (e.label.startsWith("detect_") || e.label === "landmarks_scan") reads[e.label] = (reads[e.label] ?? 0) + 1;
    }
    faces += r.faces.length;
    named += r.faces.filter((f) => f.identifier !== "").length;
    searches += r.flameGraph.filter((e) => e.label === "similarity_search").length;
    answered();
  }
  return { detectMs, landmarksMs, alignMs, reads, faces, named, searches };
}
await oneFrameAtATime(); // warm-up
const { detectMs, landmarksMs, alignMs, reads, faces, named, searches } = await oneFrameAtATime();
printTable("The detector per frame of one Sync stream, one frame at a time (video/frames30)", [{
  "detect ms/frame mean": (detectMs.reduce((a, b) => a + b, 0) / detectMs.length).toFixed(2),
  "p50": percentile(detectMs, 50).toFixed(2),
  "p95": percentile(detectMs, 95).toFixed(2),
  "whole-frame reads": reads.detect_scan ?? 0,
  "closer looks": reads.detect_zoom ?? 0,
  "landmarks read again": reads.landmarks_scan ?? 0,
  "landmarks ms/frame": (landmarksMs / detectMs.length).toFixed(2),
  "align ms/frame": (alignMs / detectMs.length).toFixed(2),
  "faces reported": faces,
  "of them named": named,
  "frames with a search": searches,
}]);
await server.close();
