/**
 * Re-embedding after a model upgrade: every face whose `model` is not the current EMBEDDING_MODEL
 * is embedded again from its stored photo (the face whose box overlaps the stored box most) and
 * updated in place. Safe to run while the service serves (row by row, each update only if the row
 * still has the old model) and to interrupt and run again.
 *
 *   npm run reembed            (same DATABASE_URL / FACE_DATA_DIR as the service)
 */
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import type { Knex } from "knex";
import { createProgress } from "../cli/progress.js";
import { loadConfig } from "../config.js";
import { intersectionOverUnion } from "../engine/geometry.js";
import { createFaceEngine, type FaceEngine } from "../engine/pipeline.js";
import { createOnnxRuntime } from "../runtime/onnx.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import { openDatabase } from "../store/database.js";
import { createImageFiles, type ImageFiles } from "../store/image-files.js";
import { createStaleFaces } from "../store/stale-faces.js";

export interface ReembedSummary {
  reembedded: number;
  /** Faces stored without a photo (FACE_STORE_IMAGES=false): register them again. */
  withoutPhoto: number;
  /** Faces whose photo no longer shows a face where the stored box is. */
  notFound: number;
}

const BATCH = 100;
/** Least overlap (intersection over union) between the stored box and a detected one. */
const MIN_OVERLAP = 0.3;

/** Faces of models other than `model` waiting for re-embedding. */
export function countStaleFaces(knex: Knex, model = EMBEDDING_MODEL): Promise<number> {
  return createStaleFaces(knex).count(model);
}

export async function reembedFaces(knex: Knex, files: ImageFiles, engine: FaceEngine, onFace?: (detail: string) => void, model = EMBEDDING_MODEL): Promise<ReembedSummary> {
  const summary: ReembedSummary = { reembedded: 0, withoutPhoto: 0, notFound: 0 };
  const stale = createStaleFaces(knex);
  for (let after = 0; ; ) {
    const faces = await stale.batch(model, after, BATCH);
    if (faces.length === 0) return summary;
    for (const stored of faces) {
      after = stored.id;
      if (stored.imageSha256 === null) {
        summary.withoutPhoto++;
        onFace?.(`face ${stored.id}: no photo stored`);
        continue;
      }
      const image = await engine.decode(await files.read(stored.imageSha256));
      const best = (await engine.locate(image, 0)).map((face) => ({ face, overlap: intersectionOverUnion(face.box, stored.box) })).sort((a, b) => b.overlap - a.overlap)[0];
      if (best === undefined || best.overlap < MIN_OVERLAP) {
        summary.notFound++;
        onFace?.(`face ${stored.id}: no face at the stored box`);
        continue;
      }
      const [embedding] = await engine.embed([best.face]);
      await stale.replace(stored, embedding, model);
      summary.reembedded++;
      onFace?.(`face ${stored.id}: re-embedded`);
    }
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase(config);
  const runtime = createOnnxRuntime({ intraOpThreads: config.onnxIntraOpThreads, workers: config.onnxWorkers });
  try {
    const engine = createFaceEngine({ runtime, limits: { maxPixels: config.maxImagePixels } });
    const progress = createProgress(await countStaleFaces(database.knex));
    const summary = await reembedFaces(database.knex, createImageFiles(join(config.dataDir, "images")), engine, (detail) => progress.step(detail));
    progress.done();
    process.stdout.write(`${summary.reembedded} re-embedded with ${EMBEDDING_MODEL}, ${summary.withoutPhoto} without a photo, ${summary.notFound} with no face at the stored box\n`);
    if (summary.withoutPhoto + summary.notFound > 0) process.exitCode = 1;
  } finally {
    await runtime.close();
    await database.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
