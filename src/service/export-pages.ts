import { invalidArgument } from "../errors.js";

/**
 * Photos (and embeddings) one ExportUser page carries, at least one face: with the page's
 * detection log entries it stays under the 4 MiB a gRPC client receives by default (grpcio, grpc-go,
 * grpc-java), unless one photo alone is larger. A user's 100 photos at the image limit were one
 * message of 1 GB.
 */
export const EXPORT_PAGE_BYTES = 2 * 1024 * 1024;
/** Detection log entries one page carries: 1000 of the longest (128-character frame ids) are about 0.5 MB. */
export const EXPORT_PAGE_DETECTIONS = 1000;

/**
 * Where the next page of a user's export starts: after the face `afterFaceId` and before the
 * detection log entry `beforeDetectionId`; null for a part already given whole. It names the user's
 * row, so it cannot continue the export of another user, nor of one deleted and registered again.
 */
export interface ExportCursor {
  userId: string;
  afterFaceId: number | null;
  beforeDetectionId: number | null;
}

/** The first page's cursor: every face, the newest detection first (any user). */
export const FIRST_EXPORT_CURSOR: ExportCursor = { userId: "", afterFaceId: 0, beforeDetectionId: Number.MAX_SAFE_INTEGER };

/** "" when nothing follows; otherwise an opaque token (base64url of "user.face.detection", "-" for a part given whole). */
export function encodeExportCursor(cursor: ExportCursor): string {
  if (cursor.afterFaceId === null && cursor.beforeDetectionId === null) return "";
  const part = (n: number | null) => (n === null ? "-" : String(n));
  return Buffer.from(`${cursor.userId}.${part(cursor.afterFaceId)}.${part(cursor.beforeDetectionId)}`).toString("base64url");
}

/** The cursor a page token carries; InvalidArgument when it is not one this service gave. */
export function decodeExportCursor(token: string): ExportCursor {
  const match = /^(\d+)\.(\d+|-)\.(\d+|-)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  const number = (part: string) => (part === "-" ? null : Number(part));
  const cursor = match === null ? undefined : { userId: match[1], afterFaceId: number(match[2]), beforeDetectionId: number(match[3]) };
  if (cursor === undefined || encodeExportCursor(cursor) !== token) throw invalidArgument("page_token is not valid");
  return cursor;
}

/** Refuses a cursor of another user's export: another user's, or one deleted and registered again since. */
export function checkCursorUser(cursor: ExportCursor, userId: string): void {
  if (cursor.userId !== userId) throw invalidArgument("page_token belongs to another user's export (or to a user deleted since)");
}
