import type { Knex } from "knex";
import type { ImageFiles } from "./image-files.js";
import { holdImageRow, type StoredImages } from "./stored-images.js";

/**
 * Photos in the database (image_bytes), written in the transaction that references them: instances
 * on different machines share them without a shared volume, a rolled-back registration leaves
 * nothing, and deleting an image's row deletes its bytes (ON DELETE CASCADE).
 */
export function createImagesInDatabase(knex: Knex): StoredImages {
  return {
    withImage: (_image, work) => work(),

    async insert(trx, image) {
      if (image === undefined) return;
      await holdImageRow(trx, image);
      // Also when the images row existed: one left by the file store before its bytes were moved in.
      await trx("image_bytes").insert({ sha256: image.sha256, bytes: Buffer.from(image.bytes) }).onConflict("sha256").ignore();
    },

    async read(sha256) {
      const row: { bytes: Uint8Array } | undefined = await knex("image_bytes").where({ sha256 }).first("bytes");
      if (row === undefined) throw new Error(`the bytes of image ${sha256} are not in the database`);
      // node-postgres gives a Buffer, PGlite a Uint8Array.
      return new Uint8Array(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength);
    },

    removeDeleted: async () => {},
    sweepOrphans: async () => 0,
  };
}

export interface MovedImages {
  moved: number;
  /** Rows whose file was not there (removed by hand, or moved by another instance meanwhile). */
  missing: number;
}

const MOVE_BATCH = 100;

/**
 * Moves the photos an earlier version kept as files under FACE_DATA_DIR/images into image_bytes,
 * then removes those files; nothing when there are no files. Idempotent and safe with several
 * instances starting at once (each insert ignores bytes already there; a file already gone is
 * skipped) and beside instances of that version (a photo whose row they delete meanwhile is left
 * out, its file removed).
 */
export async function moveImageFilesIntoDatabase(knex: Knex, files: ImageFiles): Promise<MovedImages> {
  const outcome: MovedImages = { moved: 0, missing: 0 };
  // Every start runs this: with no file left to move (the usual case once moved, and always on a
  // fresh install) it does not scan the images table for rows without bytes.
  if ((await files.list()).length === 0) return outcome;
  for (let after = ""; ; ) {
    const rows: { sha256: string }[] = await knex("images as i")
      .leftJoin("image_bytes as b", "b.sha256", "i.sha256")
      .whereNull("b.sha256")
      .andWhere("i.sha256", ">", after)
      .orderBy("i.sha256")
      .limit(MOVE_BATCH)
      .select("i.sha256");
    if (rows.length === 0) return outcome;
    const moved: string[] = [];
    const deleted: string[] = [];
    for (const { sha256 } of rows) {
      after = sha256;
      const bytes = await files.read(sha256).catch(() => undefined);
      if (bytes === undefined) {
        outcome.missing++;
        continue;
      }
      (await movedIn(knex, sha256, bytes) ? moved : deleted).push(sha256);
    }
    // Each move above committed on its own: the files can go, and so can those of deleted rows.
    await Promise.all([...moved, ...deleted].map((sha) => files.remove(sha)));
    outcome.moved += moved.length;
  }
}

/**
 * Inserts the photo's bytes while holding its row (FOR KEY SHARE); false when the row is gone. A
 * deletion of the photo's user committing meanwhile (an instance of the earlier version still
 * running) is waited for and then seen: until 2026-12-06 the insert alone failed on its foreign key,
 * and with it the instance's start.
 */
async function movedIn(knex: Knex, sha256: string, bytes: Uint8Array): Promise<boolean> {
  return knex.transaction(async (trx) => {
    if ((await trx("images").where({ sha256 }).first("sha256").forKeyShare()) === undefined) return false;
    await trx("image_bytes").insert({ sha256, bytes: Buffer.from(bytes) }).onConflict("sha256").ignore();
    return true;
  });
}
