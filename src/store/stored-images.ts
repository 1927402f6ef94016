import type { Knex } from "knex";
import { holdRow } from "./held-row.js";

/** An original image to keep with a face. */
export interface StoredImage {
  sha256: string;
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
}

/**
 * Where the bytes of kept photos live, kept in step with the `images` rows: files under the data
 * directory (images-on-disk.ts) or a table of the database (images-in-database.ts). Either way
 * nothing a failed or killed registration leaves behind stays.
 */
export interface StoredImages {
  /** Runs `work`, the transaction that inserts the image's row with `insert`, with the bytes kept. */
  withImage<T>(image: StoredImage | undefined, work: () => Promise<T>): Promise<T>;
  /** Inserts the image's row inside `trx` when missing (the same photo is stored once) and holds it until `trx` ends (holdImageRow). */
  insert(trx: Knex.Transaction, image: StoredImage | undefined): Promise<void>;
  read(sha256: string): Promise<Uint8Array>;
  /** Called after the commit that deleted these images' rows (deleteOrphanImages). */
  removeDeleted(sha256s: readonly string[]): Promise<void>;
  /**
   * Removes bytes no row references that are older than `olderThanMs`: what a process killed
   * between writing a file and committing its row leaves behind. Returns how many it removed.
   */
  sweepOrphans(olderThanMs: number): Promise<number>;
}

/**
 * Makes sure the image's `images` row exists until `trx` ends and holds it (FOR KEY SHARE; its bytes
 * are stored by a StoredImages): a transaction deleting it as an orphan (deleteOrphanImages) waits
 * for `trx` and then sees the face `trx` added with it. Found but then deleted by such a
 * transaction that committed first, the row is inserted anew: until 2026-12-05 the face's insert
 * then failed on its foreign key (a Register of the photo of the user a DeleteUser was deleting).
 * Callers hold the user's row first, as DeleteUser does before it deletes photos.
 */
export function holdImageRow(trx: Knex.Transaction, image: StoredImage): Promise<void> {
  const row = { sha256: image.sha256, content_type: image.contentType, byte_size: image.bytes.length, width: image.width, height: image.height };
  // Inserted first: most photos a Register brings are new.
  return holdRow(trx, "images", { sha256: image.sha256 }, row, "share", "insert");
}

/** Deletes the image rows among `candidates` no face references any more; returns their hashes (files go after the commit). */
export async function deleteOrphanImages(trx: Knex.Transaction, imagesOfDeletedFaces: readonly (string | null)[]): Promise<string[]> {
  // Faces without a kept photo have none; several faces may share one.
  const candidates = [...new Set(imagesOfDeletedFaces.filter((sha): sha is string => sha !== null))];
  if (candidates.length === 0) return [];
  // Locked first (in one order, so two deletions cannot wait for each other), waiting for a
  // transaction adding a face with one of them (holdImageRow); the statement below, with a
  // snapshot of its own, then sees that face. A lone DELETE waited too, but then deleted the row
  // anyway (its snapshot did not show the face), and the foreign key refused it.
  const held: { sha256: string }[] = await trx("images").whereIn("sha256", candidates).orderBy("sha256").select("sha256").forUpdate();
  if (held.length === 0) return [];
  const rows: { sha256: string }[] = await trx("images")
    .whereIn("sha256", held.map((h) => h.sha256))
    .whereNotExists(trx("faces").whereRaw("faces.image_sha256 = images.sha256"))
    .delete()
    .returning("sha256");
  return rows.map((r) => r.sha256);
}

/**
 * The photo of the face `faceId`; undefined when the face was deleted (its photo with it) after its
 * row was read: a DeleteUser, or auto-healing pruning it, between the two reads.
 */
export async function readFacePhoto(knex: Knex, images: Pick<StoredImages, "read">, sha256: string, faceId: number): Promise<Uint8Array | undefined> {
  try {
    return await images.read(sha256);
  } catch (e) {
    if ((await knex("faces").where({ id: faceId }).first("id")) === undefined) return undefined;
    throw e;
  }
}
