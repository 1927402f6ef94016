import { FaceError } from "../errors.js";

/** Items of a list page when the request names no page_size, and the most it may ask for. */
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/** The page size a request asks for, defaulted and capped. */
function pageSizeOf(requested: number): number {
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

/** Page tokens are opaque to clients: the last key (identifier, collection name) of the page, base64url. */
function encodePageToken(lastKey: string): string {
  return Buffer.from(lastKey, "utf8").toString("base64url");
}

/**
 * The key a page token carries; "" for no token (the first page). No key holds NUL, which
 * PostgreSQL text cannot (a token carrying one made the query fail: Internal).
 */
function decodePageToken(token: string): string {
  if (token === "") return "";
  const value = Buffer.from(token, "base64url").toString("utf8");
  if (value === "" || value.includes("\0") || encodePageToken(value) !== token) throw new FaceError("invalid_argument", "page_token is not valid");
  return value;
}

/**
 * One page of keyed items, read with one more than the page holds (`readPlusOne`) so the token is
 * given only when another page follows.
 */
export async function pageOf<T>(pageSize: number, pageToken: string, keyOf: (item: T) => string, readPlusOne: (limit: number, after: string) => Promise<T[]>): Promise<{ items: T[]; nextPageToken: string }> {
  const size = pageSizeOf(pageSize);
  const read = await readPlusOne(size + 1, decodePageToken(pageToken));
  const items = read.slice(0, size);
  return { items, nextPageToken: read.length > size ? encodePageToken(keyOf(items[items.length - 1])) : "" };
}
