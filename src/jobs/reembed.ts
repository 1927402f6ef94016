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
import pgvector from "pgvector";
import { createProgress } from "../cli/progress.js";
import { loadConfig } from "../config.js";
import { intersectionOverUnion, type BoxPx } from "../engine/detect.js";
import { createFaceEngine, type FaceEngine } from "../engine/pipeline.js";
import { createOnnxRuntime } from "../runtime/onnx.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import { openDatabase } from "../store/database.js";
import { createImageFiles, type ImageFiles } from "../store/image-files.js";

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
export async function countStaleFaces(knex: Knex, model = EMBEDDING_MODEL): Promise<number> {
  const [{ n }] = await knex("faces").whereNot({ model }).count({ n: "*" });
  return Number(n);
}

export async function reembedFaces(knex: Knex, files: ImageFiles, engine: FaceEngine, onFace?: (detail: string) => void, model = EMBEDDING_MODEL): Promise<ReembedSummary> {
  const summary: ReembedSummary = { reembedded: 0, withoutPhoto: 0, notFound: 0 };
  for (let after = 0; ; ) {
    const rows: { id: number; model: string; image_sha256: string | null; box_x: number; box_y: number; box_width: number; box_height: number }[] = await knex("faces")
      .whereNot({ model })
      .andWhere("id", ">", after)
      .orderBy("id")
      .limit(BATCH)
      .select("id", "model", "image_sha256", "box_x", "box_y", "box_width", "box_height");
    if (rows.length === 0) return summary;
    for (const row of rows) {
      after = Number(row.id);
      if (row.image_sha256 === null) {
        summary.withoutPhoto++;
        onFace?.(`face ${row.id}: no photo stored`);
        continue;
      }
      const image = await engine.decode(await files.read(row.image_sha256));
      const stored: BoxPx = { x: Number(row.box_x), y: Number(row.box_y), width: Number(row.box_width), height: Number(row.box_height) };
      const best = (await engine.locate(image, 0)).map((face) => ({ face, overlap: intersectionOverUnion(face.box, stored) })).sort((a, b) => b.overlap - a.overlap)[0];
      if (best === undefined || best.overlap < MIN_OVERLAP) {
        summary.notFound++;
        onFace?.(`face ${row.id}: no face at the stored box`);
        continue;
      }
      const [embedding] = await engine.embed([best.face]);
      await knex("faces").where({ id: row.id, model: row.model }).update({ embedding: pgvector.toSql(Array.from(embedding)), model });
      summary.reembedded++;
      onFace?.(`face ${row.id}: re-embedded`);
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
