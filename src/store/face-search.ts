import type { Knex } from "knex";
import { runPlanned } from "./planned-statement.js";
import { vectorParam } from "./vector-param.js";
import type { Database } from "./database.js";
import type { MemoryGallery } from "./memory-gallery.js";

/** Where a reference face came from (migrations/006_face_origin.sql). */
export type FaceOrigin = "registered" | "auto";

/** A registered user close to a query embedding. */
export interface SearchHit {
  identifier: string;
  distance: number;
  /** The user's primary reference face (what auto-healing compares), fetched by the same statement. */
  primary: PrimaryFace | undefined;
}

/** The primary reference face of a user, as auto-healing compares it. */
export interface PrimaryFace {
  faceId: number;
  userId: number;
  identifier: string;
  faceWidth: number;
  sharpness: number;
  imageSha256: string | null;
}

export interface DistanceOptions {
  /** Only the user's faces of this origin ("registered": not the auto-added ones). */
  origin?: FaceOrigin;
  /**
   * Whether the answer may come from the read replica (a moment behind the primary): yes for
   * Verify, no where a write follows that must see the user as it is now.
   */
  mayLag?: boolean;
}

/**
 * Candidates fetched per requested user: a user may hold several faces, and the search must still
 * return `limit` distinct users.
 */
const FACES_PER_USER_FETCHED = 4;

/** Users found among the `facesRead` faces nearest to a query. */
interface FacesSearched {
  hits: SearchHit[];
  facesRead: number;
}

/** A row of a search statement: a user, the distance to its nearest face, its primary face. */
type HitRow = Record<string, string | number | null>;

function hitOf(r: HitRow, distance: number): SearchHit {
  return {
    identifier: String(r.identifier),
    distance,
    primary:
      r.primary_id === null
        ? undefined
        : {
            faceId: Number(r.primary_id),
            userId: Number(r.user_id),
            identifier: String(r.identifier),
            faceWidth: Number(r.primary_width),
            sharpness: Number(r.primary_sharpness),
            imageSha256: r.primary_image === null ? null : String(r.primary_image),
          },
  };
}

/** The primary face's columns both search statements return for each user. */
const PRIMARY_COLUMNS = "u.id AS user_id, p.id AS primary_id, p.box_width AS primary_width, p.sharpness AS primary_sharpness, p.image_sha256 AS primary_image";

/**
 * The read side of the identity store that runs on every Recognize, Verify and Sync frame: nearest
 * users by cosine distance (in memory when the collection is held there, else pgvector HNSW), and
 * the distance to one user's faces.
 */
export function createFaceSearch(knex: Knex, negativeMaxDistance: number, runSearch: Database["runSearch"], memory?: MemoryGallery) {
  /** Users of the `faces` faces nearest through the index (fewer faces read: the collection has no more). */
  async function indexSearch(collection: string, embedding: Float32Array, faces: number, limit: number): Promise<FacesSearched> {
    const vector = vectorParam(embedding);
    // runSearch (database.ts): on the read replica if there is one, with hnsw.ef_search and
    // iterative scans in effect. Users with a negative example close to the query (CorrectMatch "not them") are left out
    // inside the index scan, before LIMIT: filtered after it, a user's many close faces could fill
    // the limit, be dropped, and leave out the right candidate. The iterative scan goes on until
    // the limit is filled with faces that pass. The query vector is sent once (q; as text, each
    // copy cost ~0.65 ms of parsing on PGlite, and bytes still cost a copy). A scalar subquery of it is a
    // constant to the planner, so the HNSW index still orders the scan (EXPLAIN: Order By
    // embedding <=> $1).
    const result = await runSearch((db) => db.raw(
      `WITH q AS (SELECT ?::vector AS v)
       SELECT u.identifier, min(n.distance) AS distance, count(*) AS faces, ${PRIMARY_COLUMNS}
         FROM (SELECT f.user_id, f.embedding <=> (SELECT v FROM q) AS distance
                 FROM faces f
                WHERE f.collection = ?
                  AND NOT EXISTS (SELECT 1 FROM negative_examples x
                                   WHERE x.user_id = f.user_id AND (x.embedding <=> (SELECT v FROM q)) <= ?)
                ORDER BY f.embedding <=> (SELECT v FROM q)
                LIMIT ?) n
         JOIN users u ON u.id = n.user_id
         LEFT JOIN faces p ON p.user_id = u.id AND p.is_primary
        GROUP BY u.id, p.id
        ORDER BY distance
        LIMIT ?`,
      [vector, collection, negativeMaxDistance, faces, limit],
    ));
    const rows = result.rows as HitRow[];
    // Fewer than `limit` users: every face read is among them.
    return { hits: rows.map((r) => hitOf(r, Number(r.distance))), facesRead: rows.reduce((sum, r) => sum + Number(r.faces), 0) };
  }

  /**
   * The users of faces the in-memory gallery found, as the database has them now: faces deleted
   * since are gone, users with a negative example close to the query are left out. Closest first,
   * by the distance pgvector computes, so an answer does not move in its last digits between a
   * search in memory and one through the index.
   */
  async function usersOf(collection: string, embedding: Float32Array, faceIds: readonly number[], limit: number): Promise<SearchHit[]> {
    // Planned once on PGlite (planned-statement.ts): planning it was most of its time.
    const rows = await runSearch((db) => runPlanned(
      db,
      `WITH q AS (SELECT ?::vector AS v)
       SELECT f.embedding <=> (SELECT v FROM q) AS distance, u.identifier, ${PRIMARY_COLUMNS}
         FROM faces f
         JOIN users u ON u.id = f.user_id
         LEFT JOIN faces p ON p.user_id = u.id AND p.is_primary
        WHERE f.id = ANY(?::bigint[]) AND f.collection = ?
          AND NOT EXISTS (SELECT 1 FROM negative_examples x
                           WHERE x.user_id = u.id AND (x.embedding <=> (SELECT v FROM q)) <= ?)
        ORDER BY distance`,
      [vectorParam(embedding), `{${faceIds.join(",")}}`, collection, negativeMaxDistance],
    ));
    const hits: SearchHit[] = [];
    const seen = new Set<number>();
    for (const row of rows as HitRow[]) {
      if (seen.has(Number(row.user_id))) continue;
      seen.add(Number(row.user_id));
      hits.push(hitOf(row, Number(row.distance)));
      if (hits.length === limit) break;
    }
    return hits;
  }

  /** The search in memory; undefined when the collection is not held there. */
  async function exactSearch(collection: string, embedding: Float32Array, faces: number, limit: number): Promise<FacesSearched | undefined> {
    const near = await memory!.nearest(collection, embedding, faces);
    if (near === undefined) return undefined;
    return { hits: near.length === 0 ? [] : await usersOf(collection, embedding, near, limit), facesRead: near.length };
  }

  return {
    async search(collection: string, embedding: Float32Array, limit: number): Promise<SearchHit[]> {
      // More faces are read until `limit` users pass the checks or the collection has no more: a
      // user may hold more of the nearest faces than FACES_PER_USER_FETCHED (until 2026-12-03 the
      // index search read them once, and a user with a dozen photos left top_k 3 one candidate).
      for (let faces = limit * FACES_PER_USER_FETCHED; ; faces *= 2) {
        const found = (memory === undefined ? undefined : await exactSearch(collection, embedding, faces, limit)) ?? (await indexSearch(collection, embedding, faces, limit));
        if (found.hits.length >= limit || found.facesRead < faces) return found.hits;
      }
    },

    async distanceToUser(collection: string, identifier: string, embedding: Float32Array, options: DistanceOptions = {}): Promise<number | undefined> {
      const { origin, mayLag = false } = options;
      const query = (db: Knex) => runPlanned(
        db,
        `SELECT u.id, min(f.embedding <=> ?::vector) AS distance
           FROM users u LEFT JOIN faces f ON f.user_id = u.id AND (?::text IS NULL OR f.origin = ?)
          WHERE u.collection = ? AND u.identifier = ?
          GROUP BY u.id`,
        [vectorParam(embedding), origin ?? null, origin ?? null, collection, identifier],
      );
      const rows = await (mayLag ? runSearch(query) : query(knex));
      const row = rows[0] as { distance: number | string | null } | undefined;
      return row === undefined || row.distance === null ? undefined : Number(row.distance);
    },
  };
}
