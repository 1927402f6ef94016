import { setImmediate } from "node:timers/promises";
import type { Knex } from "knex";
import pgvector from "pgvector";
import type { FindNearest } from "../runtime/nearest.js";

/**
 * The embeddings of small collections held in memory, searched exactly (every face compared) by
 * onnxruntime instead of through the HNSW index: on PGlite, where the index scan runs in
 * WebAssembly on the service's main thread, that scan took 5.4-7.2 ms of a 10k-face search and an
 * exact one through onnxruntime 1.2 ms (docs/benchmarks.md). Exact, so it finds what the index misses.
 *
 * The database stays the truth: the caller checks every face it returns against the database
 * (still there, its user, negative examples) and has it compute the distance. So forgetting a face
 * late is harmless; a face added must be told here after its commit (`added`), or searches would
 * miss it. Only safe where this process is the only writer (PGlite): another process's additions
 * are never told.
 *
 * A collection is read when the service starts (holdAll) or on its first search, in the
 * background and in batches, so no call waits for it and none waits long behind it on the event
 * loop (10k faces: about 1 s of reading and parsing on PGlite); searches use the index until it is
 * held. Changes told while it is read are applied when the read ends: a face read and told twice
 * is held once.
 */
export interface MemoryGallery {
  /** Ids of the faces closest to `query`, closest first (at most k); undefined when the collection is not held (search the index). */
  nearest(collection: string, query: Float32Array, k: number): Promise<number[] | undefined>;
  /** Reads the collection now unless held or being read; whether it is held afterwards. */
  hold(collection: string): Promise<boolean>;
  /**
   * Reads the collections that fit, largest first (at start, so no search waits for its collection
   * after a restart); how many collections and faces are held afterwards. Largest first: the index
   * is slowest on large collections, while on a small one the planner sorts its few rows anyway.
   */
  holdAll(): Promise<{ collections: number; faces: number }>;
  /** How many faces of the collection are held; undefined when it is not held. */
  size(collection: string): number | undefined;
  /** A face committed to the collection. */
  added(collection: string, faceId: number, embedding: Float32Array): void;
  /** Faces deleted (or about to be). */
  removed(collection: string, faceIds: readonly number[]): void;
  /** The collection deleted (or about to be). */
  dropCollection(collection: string): void;
}

export interface MemoryGalleryOptions {
  /** Faces held across all collections; a collection that would exceed it is searched through the index. */
  maxFaces: number;
  findNearest: FindNearest;
}

/** One collection's faces: row r holds faceIds[r]'s unit-length embedding (zeros once removed). */
interface Held {
  /** Floats per embedding (the recogniser's, as stored). */
  dims: number;
  matrix: Float32Array;
  count: number;
  /** -1 for a removed row. */
  faceIds: Float64Array;
  rowOf: Map<number, number>;
  removedRows: number;
}

type Change = { faceId: number; embedding: Float32Array } | { removed: readonly number[] };

/** A read of a collection under way, and the changes told meanwhile. */
interface Reading {
  changes: Change[];
  done: Promise<boolean>;
}

/** Removed rows beyond this share of a collection's rows are compacted away. */
const MAX_REMOVED_SHARE = 0.25;
/** Faces read per statement; the event loop runs other work between statements. */
const READ_BATCH = 1000;

export function createMemoryGallery(knex: Knex, options: MemoryGalleryOptions): MemoryGallery {
  const { maxFaces, findNearest } = options;
  const held = new Map<string, Held>();
  const reading = new Map<string, Reading>();
  /** Collections found too large for what was left of maxFaces: not read again until faces are removed. */
  const tooLarge = new Set<string>();

  /** `source` scaled to unit length into target[at, at + dims): a dot product is then a cosine similarity. */
  function unitInto(target: Float32Array, at: number, source: ArrayLike<number>, dims: number): void {
    let norm = 0;
    for (let i = 0; i < dims; i++) norm += source[i] * source[i];
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let i = 0; i < dims; i++) target[at + i] = source[i] * scale;
  }

  function emptyHeld(dims: number, capacity: number): Held {
    return { dims, matrix: new Float32Array(capacity * dims), count: 0, faceIds: new Float64Array(capacity), rowOf: new Map(), removedRows: 0 };
  }

  const liveRows = (gallery: Held) => gallery.count - gallery.removedRows;

  function heldFaces(): number {
    let n = 0;
    for (const gallery of held.values()) n += liveRows(gallery);
    return n;
  }

  /**
   * A copy with room for `capacity` rows, removed rows left out. A new object: a search that is
   * running keeps the arrays it started with, so its row numbers keep their meaning.
   */
  function copied(from: Held, capacity: number): Held {
    const { dims } = from;
    const to = emptyHeld(dims, capacity);
    for (let row = 0; row < from.count; row++) {
      if (from.faceIds[row] < 0) continue;
      to.matrix.set(from.matrix.subarray(row * dims, (row + 1) * dims), to.count * dims);
      to.faceIds[to.count] = from.faceIds[row];
      to.rowOf.set(from.faceIds[row], to.count++);
    }
    return to;
  }

  /** The gallery with the face in it: the same object, or a larger copy when it was full. */
  function appended(gallery: Held, faceId: number, embedding: ArrayLike<number>): Held {
    if (gallery.rowOf.has(faceId)) return gallery;
    const to = gallery.count === gallery.faceIds.length ? copied(gallery, 2 * liveRows(gallery) + 16) : gallery;
    unitInto(to.matrix, to.count * to.dims, embedding, to.dims);
    to.faceIds[to.count] = faceId;
    to.rowOf.set(faceId, to.count++);
    return to;
  }

  function apply(collection: string, change: Change): void {
    const gallery = held.get(collection);
    if (gallery === undefined) return;
    if ("removed" in change) {
      for (const faceId of change.removed) {
        const row = gallery.rowOf.get(faceId);
        if (row === undefined) continue;
        gallery.rowOf.delete(faceId);
        gallery.matrix.fill(0, row * gallery.dims, (row + 1) * gallery.dims);
        gallery.faceIds[row] = -1;
        gallery.removedRows++;
      }
      if (gallery.removedRows > MAX_REMOVED_SHARE * gallery.count) held.set(collection, copied(gallery, Math.max(16, liveRows(gallery))));
    } else if (heldFaces() >= maxFaces || change.embedding.length !== gallery.dims) {
      // Outgrown: searched through the index from now on rather than held in part.
      held.delete(collection);
      tooLarge.add(collection);
    } else {
      held.set(collection, appended(gallery, change.faceId, change.embedding));
    }
  }

  function tell(collection: string, change: Change): void {
    const under = reading.get(collection);
    if (under !== undefined) under.changes.push(change);
    else apply(collection, change);
  }

  async function read(collection: string, me: Reading): Promise<boolean> {
    const [{ n }] = await knex("faces").where({ collection }).count({ n: "*" });
    // An empty (or unknown) collection is not held: any name a client sends would take memory.
    if (Number(n) === 0) return false;
    let gallery: Held | undefined;
    for (let after = 0; ; ) {
      if (reading.get(collection) !== me) return false; // dropped meanwhile
      if ((gallery === undefined ? Number(n) : liveRows(gallery)) > maxFaces - heldFaces()) {
        tooLarge.add(collection);
        return false;
      }
      const rows: { id: number | string; embedding: string }[] = await knex("faces")
        .where({ collection })
        .andWhere("id", ">", after)
        .orderBy("id")
        .limit(READ_BATCH)
        .select("id", "embedding");
      if (rows.length === 0) break;
      for (const r of rows) {
        const embedding = pgvector.fromSql(r.embedding) as number[];
        gallery = appended(gallery ?? emptyHeld(embedding.length, Math.max(16, Number(n))), Number(r.id), embedding);
      }
      after = Number(rows[rows.length - 1].id);
      await setImmediate();
    }
    if (reading.get(collection) !== me || gallery === undefined) return false;
    // From here on changes are applied as told: left to the read's `finally`, a change told in the
    // microtasks before it ran would be queued for a replay already done.
    reading.delete(collection);
    held.set(collection, gallery);
    for (const change of me.changes) apply(collection, change);
    return held.has(collection);
  }

  function startReading(collection: string): Promise<boolean> {
    if (held.has(collection)) return Promise.resolve(true);
    if (maxFaces <= 0 || tooLarge.has(collection)) return Promise.resolve(false);
    const under = reading.get(collection);
    if (under !== undefined) return under.done;
    const me: Reading = { changes: [], done: Promise.resolve(false) };
    // A failed read (the database busy or gone) leaves the collection to the index until the next search.
    me.done = read(collection, me).catch(() => false).finally(() => {
      if (reading.get(collection) === me) reading.delete(collection);
    });
    reading.set(collection, me);
    return me.done;
  }

  return {
    async nearest(collection, query, k) {
      const gallery = held.get(collection);
      if (gallery === undefined) {
        void startReading(collection);
        return undefined;
      }
      const { dims } = gallery;
      if (query.length !== dims) return undefined;
      const unitQuery = new Float32Array(dims);
      unitInto(unitQuery, 0, query, dims);
      // What the search reads is fixed now: rows added later go past `count`, and compaction makes new arrays.
      const { matrix, count, faceIds } = gallery;
      const rows = await findNearest(matrix, count, unitQuery, Math.min(k + gallery.removedRows, count));
      const faces: number[] = [];
      for (let i = 0; i < rows.length && faces.length < k; i++) {
        if (faceIds[rows[i]] >= 0) faces.push(faceIds[rows[i]]); // -1: removed while the search ran
      }
      return faces;
    },

    hold: startReading,

    async holdAll() {
      const sizes: { collection: string; n: string | number }[] = await knex("faces").groupBy("collection").orderBy("n", "desc").select("collection").count({ n: "*" });
      for (const { collection, n } of sizes) {
        if (Number(n) <= maxFaces - heldFaces()) await startReading(collection);
      }
      return { collections: held.size, faces: heldFaces() };
    },

    size(collection) {
      const gallery = held.get(collection);
      return gallery === undefined ? undefined : liveRows(gallery);
    },

    added(collection, faceId, embedding) {
      tell(collection, { faceId, embedding });
    },

    removed(collection, faceIds) {
      tooLarge.clear(); // room may have been made
      tell(collection, { removed: faceIds });
    },

    dropCollection(collection) {
      tooLarge.clear();
      reading.delete(collection);
      held.delete(collection);
    },
  };
}
