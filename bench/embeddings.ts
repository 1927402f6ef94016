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
await runtime.close();
