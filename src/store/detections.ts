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
  record(collection: string, detections: readonly DetectionRecord[]): Promise<void>;
  /** Deletes entries older than `days` days; returns how many. */
  purgeOlderThan(days: number): Promise<number>;
  /** Deletes every entry about the person, inside the caller's transaction (DeleteUser). */
  erasePerson(collection: string, identifier: string, trx: Knex.Transaction): Promise<void>;
  /** Most recent first; only those of `identifier` when given. */
  recent(collection: string, limit: number, identifier?: string): Promise<(DetectionRecord & { createdAt: Date })[]>;
}

export function createDetectionLog(knex: Knex): DetectionLog {
  return {
    async record(collection, detections) {
      if (detections.length === 0) return;
      await knex("collections").insert({ name: collection }).onConflict("name").ignore();
      const rows = detections.map((d) => ({
        identifier: d.identifier === "" ? null : d.identifier,
        frame_id: d.frameId,
        track_id: d.trackId,
        box_x: d.box.x,
        box_y: d.box.y,
        box_width: d.box.width,
        box_height: d.box.height,
        confidence: d.confidence,
        distance: d.distance,
      }));
      // A person deleted while their frame was in flight is not logged after DeleteUser erased
      // their entries: DeleteUser locks the user's row (FOR UPDATE) before erasing, so this
      // statement either waits for it and then finds no user, or holds the row (FOR KEY SHARE)
      // until its entries are written, and DeleteUser erases them after. Strangers are always logged.
      await knex.raw(
        `INSERT INTO detections (collection, identifier, frame_id, track_id, box_x, box_y, box_width, box_height, confidence, distance)
         SELECT ?, d.identifier, d.frame_id, d.track_id, d.box_x, d.box_y, d.box_width, d.box_height, d.confidence, d.distance
           FROM json_to_recordset(?::json) AS d(identifier text, frame_id text, track_id integer, box_x real, box_y real,
                                                box_width real, box_height real, confidence real, distance real)
          WHERE d.identifier IS NULL
             OR EXISTS (SELECT 1 FROM users u WHERE u.collection = ? AND u.identifier = d.identifier FOR KEY SHARE)`,
        [collection, JSON.stringify(rows), collection],
      );
    },
    async purgeOlderThan(days) {
      return rowCount(await knex("detections").where("created_at", "<", knex.raw("now() - (? * interval '1 day')", [days])).delete());
    },
    async erasePerson(collection, identifier, trx) {
      await trx("detections").where({ collection, identifier }).delete();
    },
    async recent(collection, limit, identifier) {
      const rows = await knex("detections").where(identifier === undefined ? { collection } : { collection, identifier }).orderBy("id", "desc").limit(limit);
      return rows.map((r) => ({
        identifier: r.identifier ?? "",
        frameId: r.frame_id,
        trackId: Number(r.track_id),
        box: { x: Number(r.box_x), y: Number(r.box_y), width: Number(r.box_width), height: Number(r.box_height) },
        confidence: Number(r.confidence),
        distance: Number(r.distance),
        createdAt: new Date(r.created_at),
      }));
    },
  };
}
