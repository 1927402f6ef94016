import type { Knex } from "knex";
import { vectorParam } from "./vector-param.js";
import type { Database } from "./database.js";
import { createFaceSearch, type DistanceOptions, type PrimaryFace, type SearchHit } from "./face-search.js";
import { ensureRoomForRegisteredFace, insertNegativeExample, UserFull } from "./per-user-limits.js";
import { deleteOrphanImages, readFacePhoto, type StoredImage, type StoredImages } from "./stored-images.js";
import type { FaceEvent } from "../events.js";
import type { MemoryGallery } from "./memory-gallery.js";
import type { UserRemovals } from "./user-removals.js";
import { readUserExportPage, type UserExportPage } from "./user-export.js";
import { holdCollection } from "./collection-row.js";

export type { StoredImage } from "./stored-images.js";
export type { DistanceOptions, FaceOrigin, PrimaryFace, SearchHit } from "./face-search.js";

/** Raised inside a face's transaction for an existing user that is no more, so that it rolls back (its image row too). */
class UserGone extends Error {}

/** What is stored about one reference face. */
export interface StoredFace {
  embedding: Float32Array;
  model: string;
  box: { x: number; y: number; width: number; height: number };
  score: number;
  sharpness: number;
  brightness: number;
  /** SHA-256 of the photo the face was read from, kept or not: the same photo is one reference of a user. */
  photoSha256: string;
}


/**
 * The events a change writes to the outbox inside its own transaction, decided by the caller from
 * the change's outcome (src/service/identity-events.ts), so they exist exactly when the change does.
 */
export type EventsOf<Outcome> = (outcome: Outcome) => readonly FaceEvent[];

/** Users, their face embeddings and their reference images, in PostgreSQL + pgvector (photos: StoredImages). */
export interface IdentityStore {
  /**
   * Adds a face to `identifier` (creating the user when new, unless `existingUser`); returns whether
   * the user was created, `full` (nothing written) when the user has MAX_REGISTERED_FACES registered
   * faces already, or `gone` (nothing written) when `existingUser` and there is no such user (a
   * DeleteUser may have committed since the caller found it). `image` undefined: the original is not
   * kept (FACE_STORE_IMAGES=false).
   */
  addFace(collection: string, identifier: string, face: StoredFace, image: StoredImage | undefined, events?: EventsOf<{ created: boolean }>, existingUser?: boolean): Promise<{ created: boolean; full?: true; gone?: true }>;
  /**
   * Nearest users (not faces) by cosine distance, closest first, leaving out users with a negative
   * example within `negativeMaxDistance` of the query.
   */
  search(collection: string, embedding: Float32Array, limit: number): Promise<SearchHit[]>;
  /** A page of everything stored about a user (readUserExportPage); undefined when unknown. */
  exportUser(collection: string, identifier: string, afterFaceId: number | null, maxBytes: number): Promise<UserExportPage | undefined>;
  /** Remembers that this face is not the user (its newest MAX_NEGATIVE_EXAMPLES); false when the user does not exist. */
  addNegativeExample(collection: string, identifier: string, embedding: Float32Array, model: string): Promise<boolean>;
  /**
   * Smallest distance between `embedding` and any face of the user (only its registered faces when
   * `options.origin` is "registered"); undefined when the user does not exist or has no such face.
   */
  distanceToUser(collection: string, identifier: string, embedding: Float32Array, options?: DistanceOptions): Promise<number | undefined>;
  /**
   * Auto-healing: adds `face` as the user's primary reference if the primary is still
   * `expected.faceId`, keeping every registered face and at most `maxAutoFaces` auto-added ones (the
   * newest); returns whether it did.
   */
  addUpgradedFace(expected: PrimaryFace, face: StoredFace, image: StoredImage | undefined, maxAutoFaces: number, events?: readonly FaceEvent[]): Promise<boolean>;
  listUsers(collection: string, limit: number, after: string): Promise<string[]>;
  /**
   * For one stream: a check of which of the people it follows (`identifiers`, all found by searches
   * or registered after its previous check) are users of the collection now, read from the primary,
   * never a replica.
   */
  stillUsersCheck(): StillUsers;
  /** Bytes and content type of the user's primary reference image. */
  primaryImage(collection: string, identifier: string): Promise<{ bytes: Uint8Array; contentType: string } | undefined>;
  /** Removes the user, its faces, and images no other face references; undefined when unknown. */
  deleteUser(collection: string, identifier: string, events?: EventsOf<{ faces: number }>): Promise<{ faces: number; images: number } | undefined>;
}

/** Those of `identifiers` that are users of `collection` now. */
export type StillUsers = (collection: string, identifiers: readonly string[]) => Promise<Set<string>>;

/** A store that holds data about a person and erases it when the person is deleted. */
export interface PersonalData {
  erasePerson(collection: string, identifier: string, trx: Knex.Transaction): Promise<void>;
}

export interface IdentityStoreOptions {
  /** A query this close to a user's negative example is never matched to that user. */
  negativeMaxDistance: number;
  /** How the database runs a similarity search with its settings (Database.runSearch). */
  runSearch: Database["runSearch"];
  /** Receives the events the caller gives each change, inside the change's own transaction (the webhook outbox). */
  outbox?: { enqueue(event: FaceEvent, trx: Knex.Transaction): Promise<unknown> };
  /**
   * The other stores holding data about a person (detection log, webhook deliveries): each erases
   * its own rows inside DeleteUser's transaction, so a deletion is complete or not done at all.
   */
  personalData?: readonly PersonalData[];
  /** Small collections' faces held in memory for exact search (memory-gallery.ts), told of every committed change. */
  memory?: MemoryGallery;
  /** Counts each committed DeleteUser where this process is the only writer (Database.userRemovals). */
  userRemovals?: UserRemovals;
}

/** Creates the store on a knex handle and the place its photos live. */
export function createIdentityStore(knex: Knex, images: StoredImages, options: IdentityStoreOptions): IdentityStore {
  async function publish(events: readonly FaceEvent[], trx: Knex.Transaction): Promise<void> {
    for (const event of events) await options.outbox?.enqueue(event, trx);
  }

  function faceColumns(face: StoredFace) {
    return {
      embedding: vectorParam(face.embedding),
      model: face.model,
      box_x: face.box.x,
      box_y: face.box.y,
      box_width: face.box.width,
      box_height: face.box.height,
      score: face.score,
      sharpness: face.sharpness,
      brightness: face.brightness,
      photo_sha256: face.photoSha256,
    };
  }

  return {
    async addFace(collection, identifier, face, image, events = () => [], existingUser = false) {
      const outcome = await images.withImage(image, () =>
        knex.transaction(async (trx) => {
          await holdCollection(trx, collection, "share");
          // One statement creates the user or locks the existing row: PostgreSQL retries it when a
          // concurrent DeleteUser removed the conflicting row, so there is always a user row to add
          // the face to (a separate SELECT after "insert or ignore" found none and failed), and a
          // DeleteUser arriving now waits for this commit and then deletes the face too.
          // xmax is 0 only on a row this statement inserted. A face for an existing user only locks
          // its row: were it gone, creating it again would undo a DeleteUser (an erasure).
          const upserted = existingUser
            ? await trx.raw("SELECT id, false AS created FROM users WHERE collection = ? AND identifier = ? FOR UPDATE", [collection, identifier])
            : await trx.raw(
                `INSERT INTO users (collection, identifier) VALUES (?, ?)
                 ON CONFLICT (collection, identifier) DO UPDATE SET updated_at = now()
                 RETURNING id, (xmax = 0) AS created`,
                [collection, identifier],
              );
          if (upserted.rows.length === 0) throw new UserGone();
          const { id: userId, created } = upserted.rows[0] as { id: number | string; created: boolean };
          // After the user's row: a DeleteUser holds it before it deletes the photos it leaves unused.
          await images.insert(trx, image);
          // The same photo twice for one user is one reference, not two (image_sha256: a face stored
          // before migration 012 that kept its photo).
          const same = await trx("faces")
            .where({ user_id: userId })
            .andWhere((q) => q.where({ photo_sha256: face.photoSha256 }).orWhere({ image_sha256: face.photoSha256 }))
            .first("id");
          let faceId: number | undefined;
          if (same === undefined) {
            await ensureRoomForRegisteredFace(trx, userId);
            const [inserted] = await trx("faces").insert({ ...faceColumns(face), user_id: userId, collection, image_sha256: image?.sha256 ?? null, is_primary: created, origin: "registered" }).returning("id");
            faceId = Number(inserted.id);
          } else {
            // A photo kept now is kept with the face it was registered as while photos were not.
            await trx("faces").where({ id: same.id }).update({ origin: "registered", ...(image === undefined ? {} : { image_sha256: image.sha256 }) });
          }
          await publish(events({ created }), trx);
          return { created, faceId };
        }),
      ).catch((e) => {
        if (e instanceof UserFull) return "full" as const;
        if (e instanceof UserGone) return "gone" as const;
        throw e;
      });
      if (outcome === "full") return { created: false, full: true };
      if (outcome === "gone") return { created: false, gone: true };
      if (outcome.faceId !== undefined) options.memory?.added(collection, outcome.faceId, face.embedding);
      return { created: outcome.created };
    },

    ...createFaceSearch(knex, options.negativeMaxDistance, options.runSearch, options.memory),

    exportUser: (collection, identifier, afterFaceId, maxBytes) => readUserExportPage(knex, images, collection, identifier, afterFaceId, maxBytes),

    addNegativeExample: (collection, identifier, embedding, model) => insertNegativeExample(knex, collection, identifier, embedding, model),

    async addUpgradedFace(expected, face, image, maxAutoFaces, events = []) {
      let orphans: string[] = [];
      const replaced = await images.withImage(image, () =>
        knex.transaction(async (trx) => {
          // Locking the user serializes upgrades (and a DeleteUser) of one person.
          const user = await trx("users").where({ id: expected.userId }).first("collection").forUpdate();
          if (user === undefined) return false; // deleted concurrently
          await images.insert(trx, image);
          const demoted = await trx("faces").where({ id: expected.faceId, is_primary: true }).update({ is_primary: false }).returning("id");
          if (demoted.length === 0) return false; // upgraded concurrently
          const [inserted] = await trx("faces").insert({ ...faceColumns(face), user_id: expected.userId, collection: user.collection, image_sha256: image?.sha256 ?? null, is_primary: true, origin: "auto" }).returning("id");
          // The oldest auto-added faces beyond the cap go; registered faces never do.
          const pruned: { id: number | string; image_sha256: string | null }[] = await trx("faces")
            .where({ user_id: expected.userId, origin: "auto", is_primary: false })
            .whereNotIn("id", trx("faces").where({ user_id: expected.userId, origin: "auto" }).orderBy("id", "desc").limit(maxAutoFaces).select("id"))
            .delete()
            .returning(["id", "image_sha256"]);
          await trx("users").where({ id: expected.userId }).update({ updated_at: trx.fn.now() });
          await publish(events, trx);
          orphans = await deleteOrphanImages(trx, pruned.map((f) => f.image_sha256));
          return { collection: String(user.collection), faceId: Number(inserted.id), pruned: pruned.map((f) => Number(f.id)) };
        }),
      );
      if (replaced === false) return false;
      options.memory?.removed(replaced.collection, replaced.pruned);
      options.memory?.added(replaced.collection, replaced.faceId, face.embedding);
      await images.removeDeleted(orphans);
      return true;
    },

    async listUsers(collection, limit, after) {
      const rows: { identifier: string }[] = await knex("users")
        .where({ collection })
        .andWhere("identifier", ">", after)
        .orderBy("identifier")
        .limit(limit)
        .select("identifier");
      return rows.map((r) => r.identifier);
    },

    stillUsersCheck() {
      const removals = options.userRemovals;
      let removalsWhenAsked: number | undefined;
      return async (collection, identifiers) => {
        // Where the count is kept and unchanged since the last check, no user has gone since then,
        // and every identifier was found (or registered) after it. Read before asking: a removal
        // committed while the query runs makes the next check ask again.
        const removalsNow = removals?.count;
        if (identifiers.length === 0 || (removalsNow !== undefined && removalsNow === removalsWhenAsked)) {
          removalsWhenAsked = removalsNow;
          return new Set(identifiers);
        }
        const rows: { identifier: string }[] = await knex("users").where({ collection }).whereIn("identifier", identifiers).select("identifier");
        removalsWhenAsked = removalsNow;
        return new Set(rows.map((r) => r.identifier));
      };
    },

    async primaryImage(collection, identifier) {
      // A DeleteUser (or an upgrade replacing the primary) committed between reading the row and
      // reading the bytes took the photo away: the row is read again, and is gone or another.
      for (;;) {
        const row = await knex("faces as f")
          .join("users as u", "u.id", "f.user_id")
          .join("images as i", "i.sha256", "f.image_sha256")
          .where({ "u.collection": collection, "u.identifier": identifier })
          .orderBy([{ column: "f.is_primary", order: "desc" }, { column: "f.id", order: "asc" }])
          .first("f.id", "i.sha256", "i.content_type");
        if (row === undefined) return undefined;
        const bytes = await readFacePhoto(knex, images, row.sha256, Number(row.id));
        if (bytes !== undefined) return { bytes, contentType: row.content_type };
      }
    },

    async deleteUser(collection, identifier, events = () => []) {
      const outcome = await knex.transaction(async (trx) => {
        // The collection's row before the user's, in the order DeleteCollection and Register take
        // them: removing the user counts it (migration 009), and a count row of its own checks the
        // collection's foreign key. Taken last that way, it deadlocked with a DeleteCollection
        // holding the collection and waiting for the user.
        if ((await trx("collections").where({ name: collection }).first("name").forKeyShare()) === undefined) return undefined;
        const user = await trx("users").where({ collection, identifier }).first("id").forUpdate();
        if (user === undefined) return undefined;
        const faces: { id: number | string; image_sha256: string | null }[] = await trx("faces").where({ user_id: user.id }).delete().returning(["id", "image_sha256"]);
        await trx("users").where({ id: user.id }).delete();
        const orphans = await deleteOrphanImages(trx, faces.map((f) => f.image_sha256));
        // Deleting is complete: what other stores hold about the person goes too (before the
        // user.deleted event itself is written).
        for (const store of options.personalData ?? []) await store.erasePerson(collection, identifier, trx);
        await publish(events({ faces: faces.length }), trx);
        return { faces: faces.length, faceIds: faces.map((f) => Number(f.id)), orphans };
      });
      if (outcome === undefined) return undefined;
      options.userRemovals?.committed();
      options.memory?.removed(collection, outcome.faceIds);
      // Files go after the commit: a rollback must not lose an image a row still points to.
      await images.removeDeleted(outcome.orphans);
      return { faces: outcome.faces, images: outcome.orphans.length };
    },
  };
}
