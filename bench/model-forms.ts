/**
 * What the forms the sessions load models in are worth, each model alone on this thread (median of
 * 100 runs after warm-up, random inputs of the model's shape): the recogniser and the liveness model
 * with their PRelus as published or rewritten (src/runtime/prelu-rewrite.ts), and the recogniser and
 * the detector on one thread or spread over two non-spinning ones (the "wide" runs the inference
 * pool no longer makes, src/runtime/onnx.ts). Alternates the forms in rounds, so a change of the
 * machine's speed during the run touches all of them alike.
 *
 *   npm run bench:model-forms
 */
import ort from "onnxruntime-node";
import { flushDenormalWeights } from "../src/runtime/denormal-weights.js";
import { loadModelBytes, loadModelForSession, type ModelName } from "../src/runtime/models.js";
import { percentile, printTable } from "./table.js";

const RUNS_PER_ROUND = 20;
const ROUNDS = 5;

interface Form {
  label: string;
  model: ModelName;
  session: ort.InferenceSession;
  input: ort.Tensor;
}

/** The model's bytes as published, only its denormal weights flushed (as the sessions had them before the PRelu rewrite). */
async function asPublished(model: ModelName): Promise<Uint8Array> {
  const bytes = await loadModelBytes(model);
  flushDenormalWeights(bytes);
  return bytes;
}

function session(bytes: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    ...(threads > 1 ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
  });
}

const floats = (dims: number[], scale: number) => new ort.Tensor("float32", Float32Array.from({ length: dims.reduce((a, b) => a * b) }, () => (Math.random() - 0.5) * scale), dims);
const bytes = (dims: number[]) => new ort.Tensor("uint8", Uint8Array.from({ length: dims.reduce((a, b) => a * b) }, () => Math.random() * 256), dims);
const face = floats([1, 3, 112, 112], 2);
const liveness = floats([1, 3, 80, 80], 255);
const quick = bytes([1, 256, 320, 3]);
const whole = bytes([1, 480, 640, 3]);

const forms: Form[] = [
  { label: "recogniser, PRelu as published", model: "feature", session: await session(await asPublished("feature"), 1), input: face },
  { label: "recogniser, PRelu rewritten (as loaded)", model: "feature", session: await session(await loadModelForSession("feature"), 1), input: face },
  { label: "recogniser as loaded, two threads", model: "feature", session: await session(await loadModelForSession("feature"), 2), input: face },
  { label: "liveness MiniFASNetV2, PRelu as published", model: "liveness_v2", session: await session(await asPublished("liveness_v2"), 1), input: liveness },
  { label: "liveness MiniFASNetV2, PRelu rewritten (as loaded)", model: "liveness_v2", session: await session(await loadModelForSession("liveness_v2"), 1), input: liveness },
  { label: "detector 320x256 (a call's quick read)", model: "detect", session: await session(await loadModelForSession("detect"), 1), input: quick },
  { label: "detector 320x256, two threads", model: "detect", session: await session(await loadModelForSession("detect"), 2), input: quick },
  { label: "detector 640x480 (a whole frame)", model: "detect", session: await session(await loadModelForSession("detect"), 1), input: whole },
  { label: "detector 640x480, two threads", model: "detect", session: await session(await loadModelForSession("detect"), 2), input: whole },
];

const ms = new Map<Form, number[]>(forms.map((f) => [f, []]));
const run = (f: Form) => f.session.run({ [f.session.inputNames[0]]: f.input });
for (const f of forms) for (let i = 0; i < 5; i++) await run(f);
for (let round = 0; round < ROUNDS; round++) {
  for (const f of forms) {
    for (let i = 0; i < RUNS_PER_ROUND; i++) {
      const start = performance.now();
      await run(f);
      ms.get(f)!.push(performance.now() - start);
    }
  }
}
printTable(`Models alone on this thread, ${ROUNDS * RUNS_PER_ROUND} runs each in ${ROUNDS} alternating rounds`, forms.map((f) => ({
  form: f.label,
  "p50 ms": percentile(ms.get(f)!, 50).toFixed(2),
  "p95 ms": percentile(ms.get(f)!, 95).toFixed(2),
})));
