import type { Knex } from "knex";
import { vectorParam } from "./vector-param.js";
import type { MemoryGallery } from "./memory-gallery.js";

/** A face embedded by another model than the current one, as re-embedding needs it. */
export interface StaleFace {
  id: number;
  collection: string;
  model: string;
  imageSha256: string | null;
  box: { x: number; y: number; width: number; height: number };
}

/**
 * The faces whose embedding came from another model version (not comparable with the current
 * model's): counted at start, listed and replaced by `npm run reembed`.
 */
export function createStaleFaces(knex: Knex, memory?: MemoryGallery) {
  return {
    /** How many faces are not embedded by `model`. */
    async count(model: string): Promise<number> {
      const [{ n }] = await knex("faces").whereNot({ model }).count({ n: "*" });
      return Number(n);
    },

    /** Up to `limit` such faces with an id above `after`, in id order. */
    async batch(model: string, after: number, limit: number): Promise<StaleFace[]> {
      const rows: { id: number | string; collection: string; model: string; image_sha256: string | null; box_x: number; box_y: number; box_width: number; box_height: number }[] = await knex("faces")
        .whereNot({ model })
        .andWhere("id", ">", after)
        .orderBy("id")
        .limit(limit)
        .select("id", "collection", "model", "image_sha256", "box_x", "box_y", "box_width", "box_height");
      return rows.map((r) => ({
        id: Number(r.id),
        collection: r.collection,
        model: r.model,
        imageSha256: r.image_sha256,
        box: { x: Number(r.box_x), y: Number(r.box_y), width: Number(r.box_width), height: Number(r.box_height) },
      }));
    },

    /** Replaces the face's embedding, only if it still has the model it was listed with (a concurrent run may have done it). */
    async replace(face: StaleFace, embedding: Float32Array, model: string): Promise<void> {
      const updated = await knex("faces").where({ id: face.id, model: face.model }).update({ embedding: vectorParam(embedding), model });
      if (updated === 0) return;
      memory?.removed(face.collection, [face.id]);
      memory?.added(face.collection, face.id, embedding);
    },
  };
}
