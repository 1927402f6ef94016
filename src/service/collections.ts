import { FaceError } from "../errors.js";
import type { CollectionRecord, CollectionStore } from "../store/collections.js";
import { collectionOf } from "./inputs.js";

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
    async list() {
      return { collections: (await store.list()).map(view) };
    },
    async delete(input: { name: string }) {
      const name = nameOf(input.name);
      const deleted = await store.delete(name);
      if (deleted === undefined) throw new FaceError("not_found", `no collection ${name}`);
      return { name, usersDeleted: deleted.users, imagesDeleted: deleted.images };
    },
  };
}
