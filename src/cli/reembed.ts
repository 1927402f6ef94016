/**
 * `npm run reembed`: after a model upgrade, embeds every face of another model again from its
 * stored photo (src/jobs/reembed.ts), with a progress bar. Same DATABASE_URL / FACE_DATA_DIR as the
 * service; exits 1 when some faces could not be re-embedded.
 */
import { loadConfig } from "../config.js";
import { createFaceEngine } from "../engine/pipeline.js";
import { countStaleFaces, reembedFaces } from "../jobs/reembed.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import { createOnnxRuntime } from "../runtime/onnx.js";
import { openDatabase } from "../store/database.js";
import { openStoredImages } from "../store/open-stored-images.js";
import { createProgress } from "./progress.js";
import { runTool } from "./tool-errors.js";

await runTool(async () => {
  const config = loadConfig();
  const database = await openDatabase(config);
  const runtime = createOnnxRuntime({ intraOpThreads: config.onnxIntraOpThreads, workers: config.onnxWorkers });
  try {
    const engine = createFaceEngine({ runtime, limits: { maxPixels: config.maxImagePixels } });
    const progress = createProgress(await countStaleFaces(database.knex));
    const summary = await reembedFaces(database, (await openStoredImages(database, config.dataDir)).images, engine, (detail) => progress.step(detail));
    progress.done();
    process.stdout.write(`${summary.reembedded} re-embedded with ${EMBEDDING_MODEL}, ${summary.withoutPhoto} without a photo, ${summary.notFound} with no face at the stored box\n`);
    return summary.withoutPhoto + summary.notFound > 0 ? 1 : 0;
  } finally {
    await runtime.close();
    await database.close();
  }
});
