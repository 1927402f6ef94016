import { rm } from "node:fs/promises";
import type { Knex } from "knex";
import type { ImageFiles } from "./image-files.js";
import { holdImageRow, type StoredImages } from "./stored-images.js";

/**
 * Photos as files (the embedded default): a file is written before its row commits and removed
 * after the last row pointing at it is deleted.
 */
export function createImagesOnDisk(knex: Knex, files: ImageFiles): StoredImages {
  /** Requests of this process writing each image right now, so a failing one never removes a file another is committing. */
  const writers = new Map<string, number>();
  /** Files being removed after the commit that deleted their rows; a writer of the same image waits for it. */
  const removals = new Map<string, Promise<void>>();

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

  return {
    async withImage(image, work) {
      if (image === undefined) return work();
      // Counted before anything is awaited: a removal that starts later leaves this file alone.
      writers.set(image.sha256, (writers.get(image.sha256) ?? 0) + 1);
      let existedBefore = true; // until known: a failure before then removes nothing
      try {
        await removals.get(image.sha256);
        existedBefore = await files.exists(image.sha256);
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
    },

    async insert(trx, image) {
      if (image !== undefined) await holdImageRow(trx, image);
    },

    read: (sha256) => files.read(sha256),

    async removeDeleted(sha256s) {
      // A request writing the same photo now is inserting its row anew (holdImageRow) after this
      // deletion committed: its file stays. Until 2026-12-05 it was removed, and the face it added
      // had no photo.
      await Promise.all(
        sha256s.filter((sha) => !writers.has(sha)).map((sha) => {
          const removal = files.remove(sha).finally(() => removals.delete(sha));
          removals.set(sha, removal.catch(() => undefined)); // a writer waits for it, not for its outcome
          return removal;
        }),
      );
    },

    async sweepOrphans(olderThanMs) {
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
    },
  };
}
