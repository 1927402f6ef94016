import { FaceError } from "../errors.js";
import type { CollectionRecord, CollectionStore } from "../store/collections.js";
import { collectionOf, DEFAULT_COLLECTION } from "./inputs.js";
import { pageOf } from "./paging.js";

/** Collections as the API offers them. */
export function createCollectionService(store: CollectionStore) {
  const view = (c: CollectionRecord) => ({ name: c.name, createdAt: c.createdAt.toISOString(), users: c.users });
  const nameOf = (name: string) => {
    if (name === "") throw new FaceError("invalid_argument", "name is required");
    return collectionOf(name);
  };
  return {
    async create(input: { name: string }) {
      const name = nameOf(input.name);
      const created = await store.create(name);
      if (created === undefined) throw new FaceError("already_exists", `collection ${name} already exists`);
      return { collection: view(created) };
    },
    async list(input: { pageSize: number; pageToken: string }) {
      const { items, nextPageToken } = await pageOf(input.pageSize, input.pageToken, (c: CollectionRecord) => c.name, (limit, after) => store.list(limit, after));
      return { collections: items.map(view), nextPageToken };
    },
    async delete(input: { name: string }) {
      const name = nameOf(input.name);
      // Every request without a collection lands in it: it is always there (empty it by deleting its users).
      if (name === DEFAULT_COLLECTION) throw new FaceError("failed_precondition", `the ${DEFAULT_COLLECTION} collection cannot be deleted; delete its users instead`);
      const deleted = await store.delete(name);
      if (deleted === undefined) throw new FaceError("not_found", `no collection ${name}`);
      return { name, usersDeleted: deleted.users, imagesDeleted: deleted.images };
    },
  };
}
