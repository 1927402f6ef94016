import type { Knex } from "knex";
import pgvector from "pgvector";
import type { FaceOrigin } from "./face-search.js";
import { readFacePhoto, type StoredImages } from "./stored-images.js";

/** One stored face of a user as ExportUser gives it. */
export interface ExportPageFace {
  /** The face's row id: where the next page of faces starts. */
  id: number;
  embedding: number[];
  model: string;
  box: { x: number; y: number; width: number; height: number };
  score: number;
  sharpness: number;
  brightness: number;
  primary: boolean;
  origin: FaceOrigin;
  imageSha256: string;
  imageContentType: string;
  image: Uint8Array;
  createdAt: Date;
}

/** One page of what ExportUser returns from the identity store. */
export interface UserExportPage {
  /** The user's row id: a page token names it, so it cannot continue another user's export. */
  userId: string;
  createdAt: Date;
  negativeExamples: number;
  /** Faces after the requested one, oldest first, within the page's byte budget (at least one). */
  faces: ExportPageFace[];
  /** Where the next page of faces starts (the last face this page read); null when none follow. */
  nextAfterFaceId: number | null;
}

/**
 * Reads a user and the faces after `afterFaceId` (none when null) whose photos (and embeddings) fit
 * in `maxBytes`, at least one; undefined when the user does not exist. Photos are read only for the
 * faces of the page. A face deleted meanwhile (DeleteUser, an auto-added face pruned) is left out;
 * its user deleted meanwhile makes the whole page undefined.
 */
export async function readUserExportPage(knex: Knex, images: StoredImages, collection: string, identifier: string, afterFaceId: number | null, maxBytes: number): Promise<UserExportPage | undefined> {
  const user = await knex("users").where({ collection, identifier }).first("id", "created_at");
  if (user === undefined) return undefined;
  // The page is chosen from the sizes alone; only its own faces' rows (embeddings) are read whole.
  const sizes: { id: number | string; size: number | string }[] = afterFaceId === null ? [] : await knex("faces as f")
    .leftJoin("images as i", "i.sha256", "f.image_sha256")
    .where({ "f.user_id": user.id })
    .andWhere("f.id", ">", afterFaceId)
    .orderBy("f.id")
    .select("f.id", knex.raw("coalesce(i.byte_size, 0) + 4 * vector_dims(f.embedding) AS size"));
  let bytes = 0;
  let taken = 0;
  while (taken < sizes.length && (taken === 0 || bytes + Number(sizes[taken].size) <= maxBytes)) bytes += Number(sizes[taken++].size);
  const rows = taken === 0 ? [] : await knex("faces as f")
    .leftJoin("images as i", "i.sha256", "f.image_sha256")
    .whereIn("f.id", sizes.slice(0, taken).map((s) => s.id))
    .orderBy("f.id")
    .select("f.*", "i.content_type");
  const faces: ExportPageFace[] = [];
  for (const r of rows) {
    const image = r.image_sha256 ? await readFacePhoto(knex, images, r.image_sha256, Number(r.id)) : new Uint8Array();
    if (image === undefined) continue;
    faces.push({
      id: Number(r.id),
      embedding: pgvector.fromSql(r.embedding) as number[],
      model: r.model,
      box: { x: Number(r.box_x), y: Number(r.box_y), width: Number(r.box_width), height: Number(r.box_height) },
      score: Number(r.score),
      sharpness: Number(r.sharpness),
      brightness: Number(r.brightness),
      primary: Boolean(r.is_primary),
      origin: r.origin as FaceOrigin,
      // The photo's digest is kept also when the photo is not (FACE_STORE_IMAGES=false).
      imageSha256: r.image_sha256 ?? r.photo_sha256 ?? "",
      imageContentType: r.content_type ?? "",
      image,
      createdAt: new Date(r.created_at),
    });
  }
  const [{ n }] = await knex("negative_examples").where({ user_id: user.id }).count({ n: "*" });
  // Read after the faces: a user deleted while they were read has no export.
  const still = await knex("users").where({ id: user.id }).first("id");
  if (still === undefined) return undefined;
  return { userId: String(user.id), createdAt: new Date(user.created_at), negativeExamples: Number(n), faces, nextAfterFaceId: sizes.length > taken ? Number(sizes[taken - 1].id) : null };
}
