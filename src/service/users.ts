import { FaceError } from "../errors.js";
import type { DetectionLog } from "../store/detections.js";
import type { IdentityStore } from "../store/identities.js";
import { deletionEvents } from "./identity-events.js";
import { collectionOf, identifierOf } from "./inputs.js";
import { pageOf } from "./paging.js";

/** Detection log entries an export carries (most recent first); retention bounds the rest. */
const MAX_EXPORTED_DETECTIONS = 10_000;

/** The NotFound of every use case that names a user. */
export function noSuchUser(identifier: string, collection: string): FaceError {
  return new FaceError("not_found", `no user ${JSON.stringify(identifier)} in collection ${collection}`);
}

/** Listing, reading, exporting and deleting registered users. */
export function createUserService(deps: { identities: IdentityStore; detections: DetectionLog; storeImages: boolean }) {
  const { identities, detections } = deps;
  return {
    async listUsers(input: { collection: string; pageSize: number; pageToken: string }) {
      const collection = collectionOf(input.collection);
      const { items, nextPageToken } = await pageOf(input.pageSize, input.pageToken, (identifier: string) => identifier, (limit, after) => identities.listUsers(collection, limit, after));
      return { identifiers: items, nextPageToken };
    },

    async getUserFace(input: { identifier: string; collection: string }) {
      if (!deps.storeImages) throw new FaceError("failed_precondition", "original images are not kept (FACE_STORE_IMAGES=false)");
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const found = await identities.primaryImage(collection, identifier);
      if (found === undefined) throw noSuchUser(identifier, collection);
      return found;
    },

    /** Everything stored about one person (the data-subject export of privacy law). */
    async exportUser(input: { identifier: string; collection: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const exported = await identities.exportUser(collection, identifier);
      if (exported === undefined) throw noSuchUser(identifier, collection);
      const logged = await detections.recent(collection, MAX_EXPORTED_DETECTIONS, identifier);
      return {
        identifier,
        collection,
        createdAt: exported.createdAt.toISOString(),
        faces: exported.faces.map(({ origin, ...f }) => ({ ...f, autoAdded: origin === "auto", createdAt: f.createdAt.toISOString() })),
        detections: logged.map((d) => ({ ...d, createdAt: d.createdAt.toISOString() })),
        negativeExamples: exported.negativeExamples,
      };
    },

    async deleteUser(input: { identifier: string; collection: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const deleted = await identities.deleteUser(collection, identifier, deletionEvents(collection, identifier));
      if (deleted === undefined) throw noSuchUser(identifier, collection);
      return { identifier, facesDeleted: deleted.faces, imagesDeleted: deleted.images };
    },
  };
}
