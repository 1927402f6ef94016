import { FaceError } from "../errors.js";
import type { DetectionLog } from "../store/detections.js";
import type { IdentityStore } from "../store/identities.js";
import { deletionEvents } from "./identity-events.js";
import { collectionOf, identifierOf } from "./inputs.js";
import { pageOf } from "./paging.js";
import { checkCursorUser, decodeExportCursor, encodeExportCursor, EXPORT_PAGE_BYTES, EXPORT_PAGE_DETECTIONS, FIRST_EXPORT_CURSOR } from "./export-pages.js";

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

    /**
     * Everything stored about one person (the data-subject export of privacy law), a page at a time
     * (export-pages.ts): the user's faces and detection log entries each go on from where the
     * previous page's token says.
     */
    async exportUser(input: { identifier: string; collection: string; pageToken: string }) {
      const identifier = identifierOf(input.identifier);
      const collection = collectionOf(input.collection);
      const first = input.pageToken === "";
      const cursor = first ? FIRST_EXPORT_CURSOR : decodeExportCursor(input.pageToken);
      const page = await identities.exportUser(collection, identifier, cursor.afterFaceId, EXPORT_PAGE_BYTES);
      if (page === undefined) throw noSuchUser(identifier, collection);
      if (!first) checkCursorUser(cursor, page.userId);
      const logged = cursor.beforeDetectionId === null ? [] : await detections.recent(collection, EXPORT_PAGE_DETECTIONS + 1, identifier, cursor.beforeDetectionId);
      const shown = logged.slice(0, EXPORT_PAGE_DETECTIONS);
      const next = { userId: page.userId, afterFaceId: page.nextAfterFaceId, beforeDetectionId: logged.length > shown.length ? shown[shown.length - 1].id : null };
      return {
        identifier,
        collection,
        createdAt: page.createdAt.toISOString(),
        faces: page.faces.map(({ id: _, origin, ...f }) => ({ ...f, autoAdded: origin === "auto", createdAt: f.createdAt.toISOString() })),
        detections: shown.map(({ id: _, ...d }) => ({ ...d, createdAt: d.createdAt.toISOString() })),
        negativeExamples: page.negativeExamples,
        nextPageToken: encodeExportCursor(next),
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
