/**
 * Recognize of one portrait at camera and phone sizes, and of a big photo whose face is small in
 * it: the server's time, and how many times the call decoded the photo and ran the detector (a call
 * about the largest face first looks at a 1280 px copy; src/service/face-work.ts).
 *
 *   npm run bench:photo-sizes
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import sharp, { type Sharp } from "sharp";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "../test/support/testdata.js";
import { startServiceProcess } from "../test/support/service-process.js";
import { percentile, printTable } from "./table.js";

const RUNS = 8;
const portrait = face("face_recognition/obama.jpg");
const jpeg = async (image: Sharp) => new Uint8Array(await image.jpeg({ quality: 90 }).toBuffer());
const photos: [string, Uint8Array][] = [
  ["portrait in a 1920x1080 frame", await jpeg(sharp(portrait).resize({ width: 1920, height: 1080, fit: "contain", background: "#888" }))],
  ["portrait 3024 px wide", await jpeg(sharp(portrait).resize({ width: 3024 }))],
  ["portrait 4000 px wide", await jpeg(sharp(portrait).resize({ width: 4000 }))],
  ["compreface/001_A.jpg (4912x7360, face 8% of its width)", face("compreface/001_A.jpg")],
];

const dataDir = await mkdtemp(join(tmpdir(), "face-bench-sizes-"));
const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "warn" });
const rows: Record<string, string>[] = [];
try {
  const client = createClient(FaceService, createGrpcTransport({ baseUrl: service.url }));
  for (const [label, image] of photos) {
    const count = (reply: { flameGraph: { label: string }[] }, stage: string) => reply.flameGraph.filter((e) => e.label === stage).length;
    const first = await client.recognize({ image });
    const server: number[] = [];
    for (let i = 0; i < RUNS; i++) server.push((await client.recognize({ image })).serverProcessTimeMs);
    rows.push({ photo: label, "MB": (image.length / 1e6).toFixed(2), "server p50 ms": percentile(server, 50).toFixed(0), decodes: String(count(first, "decode")), "detector runs": String(count(first, "detect_scan")) });
  }
} finally {
  await service.stop();
  await rm(dataDir, { recursive: true, force: true });
}
printTable(`Recognize by photo size, ${RUNS} calls each (server time)`, rows);
