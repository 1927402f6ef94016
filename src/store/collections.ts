import type { Knex } from "knex";
import { deleteOrphanImages, type StoredImages } from "./stored-images.js";
import type { UserRemovals } from "./user-removals.js";

export interface CollectionRecord {
  name: string;
  createdAt: Date;
  users: number;
}

/** Galleries: every user, face, detection and webhook row belongs to one. */
export interface CollectionStore {
  /** Creates the collection; undefined when it already existed. */
  create(name: string): Promise<CollectionRecord | undefined>;
  /** At most `limit` collections named after `after` ("": from the first), in name order. */
  list(limit: number, after: string): Promise<CollectionRecord[]>;
  /**
   * Deletes the collection and, by cascade, its users, faces, detections, webhooks and pending
   * deliveries; then the images no remaining face references. Undefined when it does not exist.
   */
  delete(name: string): Promise<{ users: number; images: number } | undefined>;
}

/** A store that keeps rows of a collection in memory (the detection log's queue, the in-memory gallery). */
export interface QueuedRows {
  /** Forgets the collection's rows held in memory, so they cannot bring it back. */
  dropCollection(name: string): void;
}

/**
 * `userRemovals` counts each committed deletion (its users go with it) where this process is the
 * only writer (Database.userRemovals).
 */
export function createCollectionStore(knex: Knex, images: StoredImages, queues: readonly QueuedRows[] = [], userRemovals?: UserRemovals): CollectionStore {
  return {
    async create(name) {
      const inserted: { name: string; created_at: string }[] = await knex("collections").insert({ name }).onConflict("name").ignore().returning(["name", "created_at"]);
      return inserted.length === 0 ? undefined : { name, createdAt: new Date(inserted[0].created_at), users: 0 };
    },
    async list(limit, after) {
      // Counts kept by triggers on users, spread over a few rows per collection (migration 009): no user row is read here.
      const rows: { name: string; created_at: string; user_count: string | number | null }[] = await knex("collections as c")
        .leftJoin("collection_user_counts as n", "n.collection", "c.name")
        .where("c.name", ">", after)
        .groupBy("c.name", "c.created_at")
        .orderBy("c.name")
        .limit(limit)
        .select("c.name", "c.created_at")
        .sum({ user_count: "n.user_count" });
      return rows.map((r) => ({ name: r.name, createdAt: new Date(r.created_at), users: Number(r.user_count ?? 0) }));
    },
    async delete(name) {
      const outcome = await knex.transaction(async (trx) => {
        if ((await trx("collections").where({ name }).first("name").forUpdate()) === undefined) return undefined;
        for (const queue of queues) queue.dropCollection(name);
        const images: { image_sha256: string }[] = await trx("faces").where({ collection: name }).whereNotNull("image_sha256").distinct("image_sha256");
        const users = Number((await trx("users").where({ collection: name }).count({ n: "*" }))[0].n);
        // Cascades to users, faces, detections and webhooks, and from webhooks to their deliveries.
        await trx("collections").where({ name }).delete();
        return { users, orphans: await deleteOrphanImages(trx, images.map((i) => i.image_sha256)) };
      });
      if (outcome === undefined) return undefined;
      userRemovals?.committed();
      await images.removeDeleted(outcome.orphans);
      return { users: outcome.users, images: outcome.orphans.length };
    },
  };
}
