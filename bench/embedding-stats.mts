import { createFaceEngine } from "../src/engine/pipeline.js";
import { createOnnxRuntime } from "../src/runtime/onnx.js";
import { face, manifest } from "../test/support/testdata.js";
const engine = createFaceEngine({ runtime: createOnnxRuntime({ intraOpThreads: 1, workers: 2 }), limits: { maxPixels: 40e6 }, stage: (_l, w) => w() });
const rows: { id: string; e: Float32Array }[] = [];
for (const m of manifest()) {
  const img = await engine.decode(face(m.file));
  const faces = await engine.locate(img, 1);
  if (faces.length === 0) continue;
  const [e] = await engine.embed(faces);
  rows.push({ id: m.identity, e });
}
const imp: number[] = [], gen: number[] = [];
for (let i = 0; i < rows.length; i++) for (let j = i + 1; j < rows.length; j++) {
  let d = 0; for (let k = 0; k < 512; k++) d += rows[i].e[k] * rows[j].e[k];
  (rows[i].id === rows[j].id ? gen : imp).push(d);
}
const stat = (a: number[]) => { const m = a.reduce((x, y) => x + y) / a.length; const sd = Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / a.length); return { n: a.length, mean: m.toFixed(3), sd: sd.toFixed(3) }; };
console.log("impostor cos sim", stat(imp), "genuine", stat(gen));
// mean vector norm (shared component)
const mean = new Float32Array(512); for (const r of rows) for (let k = 0; k < 512; k++) mean[k] += r.e[k] / rows.length;
console.log("norm of mean embedding", Math.hypot(...mean).toFixed(3));
// participation ratio of covariance eigenvalues ~ effective dimension: (sum λ)^2 / sum λ^2 via Gram matrix
const n = rows.length; const G: number[][] = [];
for (let i = 0; i < n; i++) { G.push([]); for (let j = 0; j < n; j++) { let d = 0; for (let k = 0; k < 512; k++) d += (rows[i].e[k] - mean[k]) * (rows[j].e[k] - mean[k]); G[i].push(d); } }
let tr = 0, tr2 = 0; for (let i = 0; i < n; i++) { tr += G[i][i]; for (let j = 0; j < n; j++) tr2 += G[i][j] ** 2; }
console.log("participation ratio (effective dimension, capped by n)", (tr * tr / tr2).toFixed(1), "n", n);
process.exit(0);
