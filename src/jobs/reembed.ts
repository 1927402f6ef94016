/**
 * Re-embedding after a model upgrade: every face whose `model` is not the current EMBEDDING_MODEL
 * is embedded again from its stored photo (the face whose box overlaps the stored box most) and
 * updated in place. Safe to run while the service serves (row by row, each update only if the row
 * still has the old model) and to interrupt and run again. `npm run reembed` (src/cli/reembed.ts)
 * runs it.
 */
import type { Knex } from "knex";
import { intersectionOverUnion } from "../engine/geometry.js";
import type { FaceEngine } from "../engine/pipeline.js";
import { EMBEDDING_MODEL } from "../runtime/models.js";
import { readFacePhoto, type StoredImages } from "../store/stored-images.js";
import type { Database } from "../store/database.js";
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

/** `database`'s memory gallery, when it has one, is told of every embedding replaced. */
export async function reembedFaces(database: Pick<Database, "knex" | "memory">, images: Pick<StoredImages, "read">, engine: FaceEngine, onFace?: (detail: string) => void, model = EMBEDDING_MODEL): Promise<ReembedSummary> {
  const summary: ReembedSummary = { reembedded: 0, withoutPhoto: 0, notFound: 0 };
  const stale = createStaleFaces(database.knex, database.memory);
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
      // A face deleted after its batch was listed took its photo with it: nothing left to do.
      const bytes = await readFacePhoto(database.knex, images, stored.imageSha256, stored.id);
      if (bytes === undefined) {
        onFace?.(`face ${stored.id}: deleted meanwhile`);
        continue;
      }
      const image = await engine.decode(bytes);
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
