import { rm } from "node:fs/promises";
import type { Knex } from "knex";
import type { ImageFiles } from "./image-files.js";

/** An original image to keep with a face. */
export interface StoredImage {
  sha256: string;
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
}

/**
 * Original images kept in step with their rows: files are written before the row commits and
 * removed after the last row pointing at them is deleted, and nothing a failed or killed
 * registration leaves behind stays.
 */
export function createStoredImages(knex: Knex, files: ImageFiles) {
  /** Requests of this process writing each image right now, so a failing one never removes a file another is committing. */
  const writers = new Map<string, number>();

  /** Writes the image file first (idempotent), then runs `work`; a failed `work` leaves no orphan file. */
  async function withImageFile<T>(image: StoredImage | undefined, work: () => Promise<T>): Promise<T> {
    if (image === undefined) return work();
    const existedBefore = await files.exists(image.sha256);
    writers.set(image.sha256, (writers.get(image.sha256) ?? 0) + 1);
    try {
      await files.put(image.sha256, image.bytes);
      return await work();
    } catch (e) {
      const alone = writers.get(image.sha256) === 1;
      if (!existedBefore && alone && !(await isReferenced(image.sha256))) await files.remove(image.sha256).catch(() => undefined);
      throw e;
    } finally {
      const left = (writers.get(image.sha256) ?? 1) - 1;
      if (left === 0) writers.delete(image.sha256);
      else writers.set(image.sha256, left);
    }
  }

  /**
   * Whether a committed row points at the image. When the database cannot say (it is down), the
   * failed transaction cannot have committed a row, and the file did not exist before it: not referenced.
   */
  async function isReferenced(sha256: string): Promise<boolean> {
    try {
      return (await knex("images").where({ sha256 }).first("sha256")) !== undefined;
    } catch {
      return false;
    }
  }

  async function insertImage(trx: Knex.Transaction, image: StoredImage | undefined): Promise<void> {
    if (image === undefined) return;
    await trx("images")
      .insert({ sha256: image.sha256, content_type: image.contentType, byte_size: image.bytes.length, width: image.width, height: image.height })
      .onConflict("sha256")
      .ignore();
  }

  async function sweepOrphans(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    const old = (await files.list()).filter((f) => f.modified.getTime() < cutoff);
    let removed = 0;
    for (let i = 0; i < old.length; i += 500) {
      const batch = old.slice(i, i + 500);
      const hashes = batch.map((f) => f.name).filter((n) => /^[0-9a-f]{64}$/.test(n));
      const known = new Set((await knex("images").whereIn("sha256", hashes).select("sha256")).map((r: { sha256: string }) => r.sha256));
      for (const f of batch) {
        if (known.has(f.name)) continue;
        await rm(f.path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  return { withImageFile, insertImage, sweepOrphans };
}

/** Deletes the image rows among `candidates` no face references any more; returns their hashes (files go after the commit). */
export async function deleteOrphanImages(trx: Knex.Transaction, imagesOfDeletedFaces: readonly (string | null)[]): Promise<string[]> {
  // Faces without a kept photo have none; several faces may share one.
  const candidates = [...new Set(imagesOfDeletedFaces.filter((sha): sha is string => sha !== null))];
  if (candidates.length === 0) return [];
  const rows: { sha256: string }[] = await trx("images")
    .whereIn("sha256", candidates)
    .whereNotExists(trx("faces").whereRaw("faces.image_sha256 = images.sha256"))
    .delete()
    .returning("sha256");
  return rows.map((r) => r.sha256);
}
