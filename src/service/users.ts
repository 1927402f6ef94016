import { FaceError } from "../errors.js";
import type { DetectionLog } from "../store/detections.js";
import type { IdentityStore } from "../store/identities.js";
import { deletionEvents } from "./identity-events.js";
import { collectionOf, identifierOf } from "./inputs.js";

/** Detection log entries an export carries (most recent first); retention bounds the rest. */
const MAX_EXPORTED_DETECTIONS = 10_000;
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

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
      const pageSize = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
      const after = input.pageToken === "" ? "" : decodePageToken(input.pageToken);
      const identifiers = await identities.listUsers(collection, pageSize + 1, after);
      const page = identifiers.slice(0, pageSize);
      const more = identifiers.length > pageSize;
      return { identifiers: page, nextPageToken: more ? encodePageToken(page[page.length - 1]) : "" };
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

/** Page tokens are opaque to clients: the last identifier of the page, base64url. */
function encodePageToken(lastIdentifier: string): string {
  return Buffer.from(lastIdentifier, "utf8").toString("base64url");
}

function decodePageToken(token: string): string {
  const value = Buffer.from(token, "base64url").toString("utf8");
  if (value === "" || encodePageToken(value) !== token) throw new FaceError("invalid_argument", "page_token is not valid");
  return value;
}
