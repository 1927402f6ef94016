/**
 * Per-stage latency of the engine on a 640x480 single-face JPEG (median and p95 of 50 runs, after
 * warm-up), the models alone, and the event-loop delay while 4 pipelines run at once.
 *
 *   npm run bench:latency
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import sharp from "sharp";
import type { StageTimer } from "../src/engine/pipeline.js";
import { createFaceEngine } from "../src/engine/pipeline.js";
import { createOnnxRuntime } from "../src/runtime/onnx.js";
import type { ModelName } from "../src/runtime/models.js";
import { loadConfig } from "../src/config.js";
import { singleFace640x480 } from "../test/support/testdata.js";
import { timeRuns } from "./support/timing.js";
import { percentile, printTable } from "./table.js";

const RUNS = 50;
const config = loadConfig();
const timings = new Map<string, number[]>();
let recording = false;
const stage: StageTimer = async (label, work) => {
  const start = performance.now();
  try {
    return await work();
  } finally {
    if (recording) timings.set(label, [...(timings.get(label) ?? []), performance.now() - start]);
  }
};
const runtime = createOnnxRuntime({ intraOpThreads: config.onnxIntraOpThreads, workers: config.onnxWorkers });
const engine = createFaceEngine({ runtime, limits: { maxPixels: config.maxImagePixels }, stage });

async function once(bytes: Uint8Array): Promise<void> {
  const image = await engine.decode(bytes);
  await engine.embed(await engine.locate(image, 0));
}

const jpeg = await singleFace640x480();
for (let i = 0; i < 5; i++) await once(jpeg);
recording = true;
const totals: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const start = performance.now();
  await once(jpeg);
  totals.push(performance.now() - start);
}
recording = false;
const rows = [...timings].map(([label, values]) => ({ stage: label, "p50 ms": percentile(values, 50).toFixed(2), "p95 ms": percentile(values, 95).toFixed(2) }));
rows.push({ stage: "total", "p50 ms": percentile(totals, 50).toFixed(2), "p95 ms": percentile(totals, 95).toFixed(2) });
printTable(`Engine latency, 640x480 single-face JPEG, ${RUNS} runs, FACE_ONNX_THREADS=${config.onnxIntraOpThreads}`, rows);

// The models alone, through the same worker pool (random inputs of each model's shape): how much of
// each stage is the model and how much the work around it.
// The detector takes image bytes (height x width x RGB), the recogniser float planes.
const modelInputs: [ModelName, number[], "uint8" | "float32"][] = [["detect", [1, 480, 640, 3], "uint8"], ["feature", [1, 3, 112, 112], "float32"]];
const modelRows = [];
for (const [model, dims, type] of modelInputs) {
  const size = dims.reduce((a, b) => a * b);
  const input = () => ({ data: type === "uint8" ? Uint8Array.from({ length: size }, () => Math.random() * 256) : Float32Array.from({ length: size }, () => Math.random() - 0.5), dims });
  const { ms } = await timeRuns(RUNS, input, (data) => runtime.run(model, data));
  modelRows.push({ model, "p50 ms": percentile(ms, 50).toFixed(2), "p95 ms": percentile(ms, 95).toFixed(2) });
}
printTable(`Models alone on the inference workers, ${RUNS} runs`, modelRows);

// Decoding alone, the service's own decode (decode.ts) of JPEGs that cost libjpeg very different
// amounts: most of a 640x480 decode is libvips' work around the pixels (its threads handing strips
// to each other, the output buffer), not the JPEG; a flat grey frame of the same size costs almost
// as much, and shrinking on load to half the side does not save it. CPU is the process's, all threads.
const grey640x480 = await sharp({ create: { width: 640, height: 480, channels: 3, background: "#808080" } }).jpeg({ quality: 90 }).toBuffer();
const grey8x8 = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).jpeg({ quality: 90 }).toBuffer();
const decodes: [string, Uint8Array, number | undefined][] = [
  [`the photo, 640x480 (${jpeg.length} bytes)`, jpeg, undefined],
  ["the photo read at 320x240 (libjpeg shrinks it while decoding)", jpeg, 320],
  [`a flat grey 640x480 JPEG (${grey640x480.length} bytes)`, grey640x480, undefined],
  [`a flat grey 8x8 JPEG (${grey8x8.length} bytes)`, grey8x8, undefined],
];
const decodeRows = [];
for (const [label, bytes, side] of decodes) {
  const { ms, cpuMsEach } = await timeRuns(RUNS * 2, () => bytes, (b) => engine.decode(b, side));
  decodeRows.push({ image: label, "p50 ms": percentile(ms, 50).toFixed(2), "p10 ms": percentile(ms, 10).toFixed(2), "CPU ms each": cpuMsEach.toFixed(2) });
}
printTable(`Decoding alone (sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}), ${RUNS * 2} runs each`, decodeRows);

const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
const start = performance.now();
await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < 25; i++) await once(jpeg); }));
delay.disable();
printTable("Event-loop delay while 4 pipelines run concurrently (100 images)", [{
  "images/s": (100 / ((performance.now() - start) / 1000)).toFixed(1),
  "delay p50 ms": (delay.percentile(50) / 1e6).toFixed(2),
  "delay p99 ms": (delay.percentile(99) / 1e6).toFixed(2),
  "delay max ms": (delay.max / 1e6).toFixed(2),
}]);
