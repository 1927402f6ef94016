/**
 * How the model's embeddings are spread, which is what approximate search depends on: cosine
 * similarity of photos of different people (impostors) and of the same person (genuine) over the
 * labelled photos, and the dimension in which random directions would be spread the same way
 * (1 / sd² of impostor similarity). bench/support/gallery.ts builds its synthetic galleries from it.
 *
 *   npm run bench:embeddings
 */
import { cosineDistance, EMBEDDING_SIZE } from "../src/engine/embed.js";
import { createFaceEngine } from "../src/engine/pipeline.js";
import { createOnnxRuntime } from "../src/runtime/onnx.js";
import { face, manifest } from "../test/support/testdata.js";
import { probeNear, SYNTHETIC_DIMENSIONS } from "./support/gallery.js";
import { printTable } from "./table.js";

const runtime = createOnnxRuntime({ intraOpThreads: 1, workers: 2 });
const engine = createFaceEngine({ runtime, limits: { maxPixels: 40_000_000 } });
const embedded: { identity: string; embedding: Float32Array }[] = [];
for (const entry of manifest()) {
  const faces = await engine.locate(await engine.decode(face(entry.file)), 1);
  if (faces.length > 0) embedded.push({ identity: entry.identity, embedding: (await engine.embed(faces))[0] });
}
const impostor: number[] = [];
const genuine: number[] = [];
for (let i = 0; i < embedded.length; i++) {
  for (let j = i + 1; j < embedded.length; j++) {
    const similarity = 1 - cosineDistance(embedded[i].embedding, embedded[j].embedding);
    (embedded[i].identity === embedded[j].identity ? genuine : impostor).push(similarity);
  }
}
const stats = (values: number[]) => {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  return { pairs: values.length, "mean cosine similarity": mean.toFixed(3), sd: sd.toFixed(3), sdValue: sd };
};
const imp = stats(impostor);
const gen = stats(genuine);
printTable(`Embeddings of ${embedded.length} labelled photos`, [
  { pairs: "impostor", count: imp.pairs, "mean cosine similarity": imp["mean cosine similarity"], sd: imp.sd, "random directions with this sd: dimensions": (1 / imp.sdValue ** 2).toFixed(0) },
  { pairs: "genuine", count: gen.pairs, "mean cosine similarity": gen["mean cosine similarity"], sd: gen.sd, "random directions with this sd: dimensions": "" },
  { pairs: `isotropic random, ${EMBEDDING_SIZE}-d`, count: "", "mean cosine similarity": "0.000", sd: (1 / Math.sqrt(EMBEDDING_SIZE)).toFixed(3), "random directions with this sd: dimensions": String(EMBEDDING_SIZE) },
]);

// Binary quantisation (pgvector's binary_quantize keeps each coordinate's sign) estimates the angle
// between two faces by the share of signs that differ; 512 independent random hyperplanes would
// estimate it with an sd of about 0.02. The synthetic galleries hold their 123 dimensions in the first
// coordinates and zeros in the rest, so only 123 signs vary there: measured beside the real photos.
const signsDiffer = (a: Float32Array, b: Float32Array) => {
  let differ = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > 0 !== b[i] > 0) differ++;
  return differ / a.length;
};
const angleShare = (a: Float32Array, b: Float32Array) => Math.acos(Math.min(1, Math.max(-1, 1 - cosineDistance(a, b)))) / Math.PI;
function signRow(label: string, pairs: [Float32Array, Float32Array][]) {
  const share = stats(pairs.map(([a, b]) => signsDiffer(a, b)));
  const error = stats(pairs.map(([a, b]) => signsDiffer(a, b) - angleShare(a, b)));
  return { pairs: label, count: pairs.length, "share of signs differing": `${share["mean cosine similarity"]} ± ${share.sd}`, "minus angle / pi": `${error["mean cosine similarity"]} ± ${error.sd}` };
}
const pairsOf = (same: boolean) => embedded.flatMap((a, i) => embedded.slice(i + 1).filter((b) => (a.identity === b.identity) === same).map((b): [Float32Array, Float32Array] => [a.embedding, b.embedding]));
const synthetic = () => {
  const v = new Float32Array(EMBEDDING_SIZE).map((_, i) => (i < SYNTHETIC_DIMENSIONS ? Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()) : 0));
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};
const syntheticFaces = Array.from({ length: 200 }, synthetic);
printTable("Signs of the embeddings (binary quantisation) against their angle", [
  signRow("genuine, labelled photos", pairsOf(true)),
  signRow("impostor, labelled photos", pairsOf(false)),
  signRow("synthetic gallery: a face and its typical second photo", syntheticFaces.map((f) => [f, Float32Array.from(probeNear(f, 0.31))])),
  signRow("synthetic gallery: two faces", syntheticFaces.slice(1).map((f, i) => [syntheticFaces[i], f])),
]);
await runtime.close();
