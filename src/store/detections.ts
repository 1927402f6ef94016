import type { Knex } from "knex";
import { rowCount } from "./row-count.js";

/** One face seen in one frame. */
export interface DetectionRecord {
  identifier: string;
  frameId: string;
  trackId: number;
  box: { x: number; y: number; width: number; height: number };
  confidence: number;
  distance: number;
}

/** The detection log: every face SyncFrame and Sync saw. */
export interface DetectionLog {
  /**
   * Queues a frame's faces; they are written with the other frames of the next `flushAfterMs` in
   * one statement (or at once when MAX_BATCH_ROWS are waiting), so a frame does not wait for it.
   */
  record(collection: string, detections: readonly DetectionRecord[]): void;
  /** Writes what is queued now; resolves when it is written (or was kept for the next try). */
  flush(): Promise<void>;
  /** Deletes entries older than `days` days; returns how many. */
  purgeOlderThan(days: number): Promise<number>;
  /** Deletes every entry about the person, inside the caller's transaction (DeleteUser), those not written yet included. */
  erasePerson(collection: string, identifier: string, trx: Knex.Transaction): Promise<void>;
  /** Forgets the collection's entries not written yet (DeleteCollection: writing them would create it again). */
  dropCollection(collection: string): void;
  /**
   * Most recent first (queued entries written first); only those of `identifier` when given, and
   * only those older than the entry `beforeId` when given (the next page of an export).
   */
  recent(collection: string, limit: number, identifier?: string, beforeId?: number): Promise<(DetectionRecord & { id: number; createdAt: Date })[]>;
  /** Writes what is queued; later frames are written one statement each. */
  close(): Promise<void>;
}

export interface DetectionLogOptions {
  /** Told when queued entries could not be written: kept to be tried again, or dropped when the database refused their data. */
  onWriteError?: (error: unknown, entries: number, kept: boolean) => void;
  /**
   * How long an entry may wait for others to share its statement (FACE_DETECTION_LOG_FLUSH_MS).
   * Each write costs a statement whatever it holds: on PGlite, which runs on the service's main
   * thread, one frame's entries took 1.46 ms of it, three frames' together 0.58 ms a frame and ten
   * frames' 0.19 (`npm run bench:detection-log`). At 100 ms, a Sync stream at 30 frames/s writes
   * three frames a statement.
   */
  flushAfterMs: number;
}

const MAX_BATCH_ROWS = 500;
/** Entries kept while the database cannot take them (it is down); the oldest go beyond this. */
const MAX_QUEUED_ROWS = 50_000;
/** After a failed write the next try waits this long (the database is likely down a while). */
const RETRY_AFTER_MS = 1_000;

interface QueuedRow {
  collection: string;
  identifier: string | null;
  frame_id: string;
  track_id: number;
  box_x: number;
  box_y: number;
  box_width: number;
  box_height: number;
  confidence: number;
  distance: number;
}

/** Entries taken from the queue for one write: a deletion still forgets its own while they wait or are written. */
interface Batch {
  rows: QueuedRow[];
}

export function createDetectionLog(knex: Knex, options: DetectionLogOptions): DetectionLog {
  const { flushAfterMs } = options;
  let queued: QueuedRow[] = [];
  /** Batches not written yet: waiting for an earlier write, or being written. */
  const unwritten = new Set<Batch>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // One write at a time, in the order frames were queued.
  let writing: Promise<void> = Promise.resolve();

  async function write(batch: Batch): Promise<void> {
    if (batch.rows.length === 0) return;
    // A stranger seen in a collection no one registered into yet creates it (a named person has
    // one); a collection deleted since its frames were seen is not created again: the deletion
    // forgot its entries in this batch before the statement was sent (`forget`).
    //
    // The collections are locked before the people, in the order Register and DeleteCollection
    // take them: the foreign key's check at the statement's end took the collection last, and
    // deadlocked with a DeleteCollection holding it and waiting for a person the statement held.
    // `held` is read by a condition that names no column of `d`, which PostgreSQL evaluates once
    // before reading any row (a one-time filter). A DeleteCollection of one of the collections
    // then has committed (its entries are skipped) or waits for this statement and deletes what it
    // wrote. `d` is read once: parsing the JSON for each use cost more than the lock.
    //
    // A person deleted while their frame was in flight is not logged after DeleteUser erased
    // their entries: DeleteUser locks the user's row (FOR UPDATE) before erasing, so this
    // statement either waits for it and then finds no user, or holds the row (FOR KEY SHARE)
    // until its entries are written, and DeleteUser erases them after. Strangers are always logged.
    const rows = JSON.stringify(batch.rows);
    await knex.raw(
      `WITH d AS MATERIALIZED (
         SELECT * FROM json_to_recordset(:rows::json) AS d(collection text, identifier text, frame_id text, track_id integer, box_x real,
                                                          box_y real, box_width real, box_height real, confidence real, distance real)
       ), created AS (
         INSERT INTO collections (name) SELECT DISTINCT collection FROM d WHERE identifier IS NULL
         ON CONFLICT (name) DO NOTHING
         RETURNING name
       ), held AS MATERIALIZED (
         SELECT name FROM collections WHERE name IN (SELECT collection FROM d) ORDER BY name FOR KEY SHARE
       )
       INSERT INTO detections (collection, identifier, frame_id, track_id, box_x, box_y, box_width, box_height, confidence, distance)
       SELECT d.collection, d.identifier, d.frame_id, d.track_id, d.box_x, d.box_y, d.box_width, d.box_height, d.confidence, d.distance
         FROM d
        WHERE (SELECT count(*) FROM held) >= 0
          AND (d.collection IN (SELECT name FROM held) OR d.collection IN (SELECT name FROM created))
          AND (d.identifier IS NULL
               OR EXISTS (SELECT 1 FROM users u WHERE u.collection = d.collection AND u.identifier = d.identifier FOR KEY SHARE))`,
      { rows },
    );
  }

  /** Forgets the entries a deletion removes, queued or in a batch not written yet. */
  function forget(kept: (row: QueuedRow) => boolean): void {
    queued = queued.filter(kept);
    for (const batch of unwritten) batch.rows = batch.rows.filter(kept);
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (queued.length === 0) return writing;
    const batch: Batch = { rows: queued };
    queued = [];
    unwritten.add(batch);
    writing = writing
      .then(() => write(batch))
      .catch((error) => {
        // The database refused the data itself: trying again would fail the same way, and hold back
        // every entry queued after it. Otherwise (it is unreachable, busy) the batch is kept for the
        // next try, in order before what was queued meanwhile.
        const refused = refusedData(error);
        if (!refused) queued = batch.rows.concat(queued).slice(-MAX_QUEUED_ROWS);
        options.onWriteError?.(error, batch.rows.length, !refused);
        schedule(RETRY_AFTER_MS);
      })
      .finally(() => unwritten.delete(batch));
    return writing;
  }

  function schedule(delayMs = flushAfterMs): void {
    if (timer === undefined && queued.length > 0) timer = setTimeout(() => void flush(), delayMs).unref();
  }

  return {
    record(collection, detections) {
      for (const d of detections) {
        queued.push({
          collection,
          identifier: d.identifier === "" ? null : d.identifier,
          frame_id: storableText(d.frameId),
          track_id: d.trackId,
          box_x: d.box.x,
          box_y: d.box.y,
          box_width: d.box.width,
          box_height: d.box.height,
          confidence: d.confidence,
          distance: d.distance,
        });
      }
      if (closed || queued.length >= MAX_BATCH_ROWS) void flush();
      else schedule();
    },
    flush,
    async purgeOlderThan(days) {
      return rowCount(await knex("detections").where("created_at", "<", knex.raw("now() - (? * interval '1 day')", [days])).delete());
    },
    async erasePerson(collection, identifier, trx) {
      forget((r) => r.collection !== collection || r.identifier !== identifier);
      await trx("detections").where({ collection, identifier }).delete();
    },
    dropCollection(collection) {
      forget((r) => r.collection !== collection);
    },
    async recent(collection, limit, identifier, beforeId) {
      await flush();
      const query = knex("detections").where(identifier === undefined ? { collection } : { collection, identifier });
      if (beforeId !== undefined) query.andWhere("id", "<", beforeId);
      const rows = await query.orderBy("id", "desc").limit(limit);
      return rows.map((r) => ({
        id: Number(r.id),
        identifier: r.identifier ?? "",
        frameId: r.frame_id,
        trackId: Number(r.track_id),
        box: { x: Number(r.box_x), y: Number(r.box_y), width: Number(r.box_width), height: Number(r.box_height) },
        confidence: Number(r.confidence),
        distance: Number(r.distance),
        createdAt: new Date(r.created_at),
      }));
    },
    async close() {
      closed = true;
      await flush();
    },
  };
}

/**
 * The client's frame id as PostgreSQL text can hold it: NUL and unpaired surrogates become U+FFFD.
 * A value the database refuses would fail its whole batch, and with it every frame queued beside it.
 */
function storableText(value: string): string {
  return value.replace(/\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** Whether PostgreSQL refused a statement for its data (SQLSTATE classes 22 and 23), not for being unreachable. */
function refusedData(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^2[23][0-9A-Z]{3}$/.test(code);
}
