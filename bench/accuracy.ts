/**
 * Accuracy of the engine over ../shared/faces/manifest.json: every genuine and impostor pair, at full
 * resolution, with every image shrunk so the face is about 24 px wide, and with the photo shrunk so the
 * face is 24, 36 or 48 px wide inside a 640x480 camera frame. Prints a table; the
 * default FACE_MATCH_THRESHOLD is chosen from it.
 *
 *   npm run bench:accuracy
 */
import sharp from "sharp";
import { cosineDistance } from "../src/engine/embed.js";
import { createFaceEngine } from "../src/engine/pipeline.js";
import { createOnnxRuntime } from "../src/runtime/onnx.js";
import { cameraFrame, face, manifest } from "../test/support/testdata.js";
import { printTable } from "./table.js";

/** Face width the "small faces" run shrinks every image to. */
const SMALL_FACE_PX = 24;
/** Face widths of the camera runs: the photo shrunk so the face is this wide, placed in a 640x480 frame. */
const CAMERA_FACE_PX = [24, 36, 48];

const engine = createFaceEngine({ runtime: createOnnxRuntime({ intraOpThreads: 1, workers: 2 }), limits: { maxPixels: 100_000_000 } });

interface Sample {
  identity: string;
  embedding: Float32Array | undefined;
}

/**
 * The largest face's embedding, found as Register, Recognize and Verify find it (largestOnly), and
 * its width and centre as Detect's whole-frame pass boxes it (what the shrunk copies are sized by,
 * the same however the call found it).
 */
async function embedPrimary(bytes: Uint8Array): Promise<{ embedding?: Float32Array; faceWidth?: number; faceCentre?: { x: number; y: number } }> {
  const image = await engine.decode(bytes);
  const faces = await engine.prepare(image, (await engine.find(image, 0, { largestOnly: true })).slice(0, 1));
  if (faces.length === 0) return {};
  const [embedding] = await engine.embed(faces);
  const [{ box }] = (await engine.find(image, 1)).concat(faces);
  return { embedding, faceWidth: box.width, faceCentre: { x: box.x + box.width / 2, y: box.y + box.height / 2 } };
}

/**
 * Receiver-operating figures from genuine and impostor distances. `totals` counts every pair,
 * those with a face not found included: such a pair is neither matched nor falsely accepted, so
 * `found.far1e3` is the TAR a caller sees over every pair ("found and matched").
 */
export function rocFigures(genuine: number[], impostor: number[], totals = { genuine: genuine.length, impostor: impostor.length }) {
  const imp = [...impostor].sort((a, b) => a - b);
  const gen = [...genuine].sort((a, b) => a - b);
  /** Fraction of `sorted` at or below t. */
  const below = (sorted: number[], t: number) => {
    let lo = 0, hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] <= t) lo = mid + 1; else hi = mid;
    }
    return lo / sorted.length;
  };
  // TAR at a FAR: the largest threshold whose impostor acceptance stays within the FAR.
  const tarAt = (far: number, impostorPairs = imp.length, genuinePairs = gen.length) => {
    const allowed = Math.floor(far * impostorPairs);
    const threshold = allowed === 0 ? imp[0] - 1e-9 : imp[Math.min(allowed, imp.length) - 1];
    return { tar: (below(gen, threshold) * gen.length) / genuinePairs, threshold };
  };
  // AUC: probability that a genuine pair is closer than an impostor pair.
  let wins = 0;
  for (const g of gen) wins += 1 - below(imp, g) + (below(imp, g) - below(imp, g - 1e-12)) / 2;
  const auc = wins / gen.length;
  // EER: where false rejects equal false accepts.
  let eer = 1, eerThreshold = 0;
  for (const t of [...gen, ...imp]) {
    const worst = Math.max(1 - below(gen, t), below(imp, t));
    if (worst < eer) {
      eer = worst;
      eerThreshold = t;
    }
  }
  return { auc, far1e2: tarAt(1e-2), far1e3: tarAt(1e-3), found: { far1e3: tarAt(1e-3, totals.impostor, totals.genuine) }, eer, eerThreshold, farAt: (t: number) => below(imp, t), tarAtThreshold: (t: number) => below(gen, t) };
}

/**
 * Genuine and impostor distances of the pairs `pairsOf` names; `totals` also counts the pairs with
 * a face not found (no distance).
 */
function distances(pairsOf: Iterable<[Sample, Sample]>) {
  const genuine: number[] = [];
  const impostor: number[] = [];
  const totals = { genuine: 0, impostor: 0 };
  for (const [a, b] of pairsOf) {
    const same = a.identity === b.identity;
    totals[same ? "genuine" : "impostor"]++;
    if (!a.embedding || !b.embedding) continue;
    (same ? genuine : impostor).push(cosineDistance(a.embedding, b.embedding));
  }
  return { genuine, impostor, totals };
}

/** Every two images of one set. */
function* pairs(samples: Sample[]): Generator<[Sample, Sample]> {
  for (let i = 0; i < samples.length; i++) for (let j = i + 1; j < samples.length; j++) yield [samples[i], samples[j]];
}

/**
 * Pairs as Recognize meets them: each probe (a small face) against every other photo's
 * full-resolution embedding (the reference registered from a good photo); a photo is never paired
 * with its own copy.
 */
function* pairsAgainstReferences(references: Sample[], probes: Sample[]): Generator<[Sample, Sample]> {
  for (const [i, probe] of probes.entries()) for (const [j, reference] of references.entries()) if (i !== j) yield [probe, reference];
}

const entries = manifest();
const full: Sample[] = [];
const small: Sample[] = [];
const camera: Sample[][] = CAMERA_FACE_PX.map(() => []);
for (const entry of entries) {
  const bytes = face(entry.file);
  const { embedding, faceWidth, faceCentre } = await embedPrimary(bytes);
  full.push({ identity: entry.identity, embedding });
  if (faceWidth === undefined || faceCentre === undefined) {
    small.push({ identity: entry.identity, embedding: undefined });
    for (const samples of camera) samples.push({ identity: entry.identity, embedding: undefined });
    continue;
  }
  for (const [i, px] of CAMERA_FACE_PX.entries()) {
    const frame = await cameraFrame(bytes, Math.min(1, px / faceWidth), faceCentre);
    camera[i].push({ identity: entry.identity, embedding: (await embedPrimary(frame)).embedding });
  }
  const meta = await sharp(bytes).rotate().metadata();
  const scale = Math.min(1, SMALL_FACE_PX / faceWidth);
  const width = Math.max(8, Math.round((meta.autoOrient?.width ?? meta.width ?? 1) * scale));
  const shrunk = await sharp(bytes).rotate().resize({ width }).png().toBuffer();
  small.push({ identity: entry.identity, embedding: (await embedPrimary(new Uint8Array(shrunk))).embedding });
}

const defaultThreshold = Number(process.env.FACE_MATCH_THRESHOLD ?? 0.6);
const rows = [];
type PairedSet = [name: string, samples: Sample[], pairs: Iterable<[Sample, Sample]>];
const sets: PairedSet[] = [
  ["full resolution", full, pairs(full)],
  [`face ~${SMALL_FACE_PX} px`, small, pairs(small)],
  ...CAMERA_FACE_PX.map((px, i): PairedSet => [`~${px} px face in a 640x480 frame`, camera[i], pairs(camera[i])]),
  ...CAMERA_FACE_PX.map((px, i): PairedSet => [`~${px} px face in a 640x480 frame against full-resolution references`, camera[i], pairsAgainstReferences(full, camera[i])]),
];
for (const [name, samples, pairsOf] of sets) {
  const { genuine, impostor, totals } = distances(pairsOf);
  const r = rocFigures(genuine, impostor, totals);
  rows.push({
    set: name,
    images: samples.length,
    detected: `${samples.filter((s) => s.embedding).length}/${samples.length}`,
    "genuine/impostor pairs": `${genuine.length}/${impostor.length}`,
    "ROC AUC": r.auc.toFixed(4),
    "TAR@FAR1e-2": `${r.far1e2.tar.toFixed(3)} (d<=${r.far1e2.threshold.toFixed(3)})`,
    "TAR@FAR1e-3": `${r.far1e3.tar.toFixed(3)} (d<=${r.far1e3.threshold.toFixed(3)})`,
    "found and matched @FAR1e-3": `${r.found.far1e3.tar.toFixed(3)} (d<=${r.found.far1e3.threshold.toFixed(3)})`,
    EER: `${r.eer.toFixed(3)} (d=${r.eerThreshold.toFixed(3)})`,
    [`at d<=${defaultThreshold}: TAR / FAR`]: `${r.tarAtThreshold(defaultThreshold).toFixed(3)} / ${r.farAt(defaultThreshold).toFixed(4)}`,
  });
}
printTable("Accuracy over ../shared/faces (cosine distance; lower is closer)", rows);

/**
 * Identification as Register/Recognize use it: the first photo of each person is registered, every
 * other photo is recognized. "top-1" counts probes matched to the right person within the threshold;
 * "strangers matched" counts probes matched to anyone when their own person is left out of the
 * gallery (an unregistered visitor).
 */
function identification(samples: Sample[], threshold: number) {
  const gallery = new Map<string, Float32Array>();
  const probes: Sample[] = [];
  for (const s of samples) {
    if (!s.embedding) continue;
    if (gallery.has(s.identity)) probes.push(s);
    else gallery.set(s.identity, s.embedding);
  }
  let correct = 0, strangersMatched = 0;
  for (const p of probes) {
    const ranked = [...gallery].map(([id, e]) => ({ id, d: cosineDistance(p.embedding!, e) })).sort((a, b) => a.d - b.d);
    if (ranked[0].id === p.identity && ranked[0].d <= threshold) correct++;
    const nearestOther = ranked.find((r) => r.id !== p.identity)!;
    if (nearestOther.d <= threshold) strangersMatched++;
  }
  return { probes: probes.length, top1: correct / probes.length, strangersMatched };
}

const idRows = [];
for (const threshold of [0.5, 0.55, 0.6, 0.65, 0.7]) {
  const f = identification(full, threshold);
  const sm = identification(small, threshold);
  idRows.push({
    threshold,
    "full: top-1": f.top1.toFixed(3),
    "full: strangers matched": `${f.strangersMatched}/${f.probes}`,
    "24 px: top-1": sm.top1.toFixed(3),
    "24 px: strangers matched": `${sm.strangersMatched}/${sm.probes}`,
  });
}
printTable("Identification: first photo of each person registered, the others recognized", idRows);
