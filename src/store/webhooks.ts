import { randomUUID } from "node:crypto";
import type { Knex } from "knex";

/** Event types a webhook can subscribe to. */
export const EVENT_TYPES = ["user.registered", "face.recognized", "profile.upgraded", "user.deleted", "face.unknown"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Something that happened, to be delivered to every matching subscription. */
export interface FaceEvent {
  type: EventType;
  collection: string;
  /** "" when the event is about no registered user (face.unknown). */
  identifier: string;
  /** Event-specific fields (distance, box, ...). */
  data: Record<string, unknown>;
}

export interface WebhookRecord {
  id: string;
  collection: string;
  url: string;
  identifier: string;
  events: EventType[];
  createdAt: Date;
}

/** A delivery leased by one dispatcher. */
export interface DueDelivery {
  id: number;
  url: string;
  secret: string;
  eventId: string;
  eventType: string;
  payload: string;
  attempts: number;
}

/** Subscriptions and the transactional outbox of their deliveries. */
export interface WebhookStore {
  create(input: { collection: string; url: string; identifier: string; events: EventType[]; secret: string }): Promise<WebhookRecord>;
  list(collection: string, identifier: string): Promise<WebhookRecord[]>;
  delete(id: string): Promise<boolean>;
  /** Writes one delivery per matching subscription, inside the caller's transaction when given; returns how many. */
  enqueue(event: FaceEvent, trx?: Knex.Transaction): Promise<number>;
  /** Leases up to `limit` due deliveries for `leaseMs`; other dispatchers skip them meanwhile. */
  claimDue(limit: number, leaseMs: number): Promise<DueDelivery[]>;
  markDelivered(id: number): Promise<void>;
  /** Records a failed attempt: retried at `retryAt`, or given up when `retryAt` is undefined. */
  markFailed(id: number, error: string, retryAt: Date | undefined): Promise<void>;
  /** Deliveries of the collection by status, for tests and operations. */
  countByStatus(collection: string): Promise<Record<string, number>>;
}

export interface WebhookStoreOptions {
  /**
   * Called once deliveries written by `enqueue` are committed (after the caller's transaction, or at
   * once without one), so they go out now rather than at the next poll. Not called when an event
   * matched no subscription: on PGlite the dispatcher's outbox query would run on the main thread.
   */
  deliveriesWritten?: () => void;
}

export function createWebhookStore(knex: Knex, options: WebhookStoreOptions = {}): WebhookStore {
  const toRecord = (r: Record<string, unknown>): WebhookRecord => ({
    id: String(r.id),
    collection: String(r.collection),
    url: String(r.url),
    identifier: (r.identifier as string | null) ?? "",
    events: r.events as EventType[],
    createdAt: new Date(r.created_at as string),
  });

  return {
    async create(input) {
      const id = randomUUID();
      await knex.transaction(async (trx) => {
        await trx("collections").insert({ name: input.collection }).onConflict("name").ignore();
        await trx("webhooks").insert({
          id,
          collection: input.collection,
          url: input.url,
          identifier: input.identifier === "" ? null : input.identifier,
          events: input.events,
          secret: input.secret,
        });
      });
      return toRecord(await knex("webhooks").where({ id }).first());
    },

    async list(collection, identifier) {
      const query = knex("webhooks").where({ collection }).orderBy("created_at");
      if (identifier !== "") query.andWhere({ identifier });
      return (await query).map(toRecord);
    },

    async delete(id) {
      return (await knex("webhooks").where({ id }).delete()) > 0;
    },

    async enqueue(event, trx) {
      const db = trx ?? knex;
      const eventId = randomUUID();
      const payload = JSON.stringify({
        id: eventId,
        type: event.type,
        time: new Date().toISOString(),
        collection: event.collection,
        identifier: event.identifier,
        ...event.data,
      });
      const result = await db.raw(
        `INSERT INTO webhook_deliveries (webhook_id, collection, identifier, event_id, event_type, payload)
         SELECT id, collection, ?, ?, ?, ? FROM webhooks
          WHERE collection = ? AND ? = ANY (events) AND (identifier IS NULL OR identifier = ?)`,
        [event.identifier || null, eventId, event.type, payload, event.collection, event.type, event.identifier],
      );
      const written = Number(result.rowCount ?? 0);
      if (written > 0 && options.deliveriesWritten) {
        if (trx === undefined) options.deliveriesWritten();
        // A rolled-back transaction wrote nothing: the rejection needs no handling here.
        else trx.executionPromise.then(options.deliveriesWritten, () => {});
      }
      return written;
    },

    async claimDue(limit, leaseMs) {
      const result = await knex.raw(
        `UPDATE webhook_deliveries d
            SET locked_until = now() + (? * interval '1 millisecond'), attempts = d.attempts + 1
           FROM webhooks w
          WHERE w.id = d.webhook_id
            AND d.id IN (SELECT id FROM webhook_deliveries
                          WHERE status = 'pending' AND next_attempt_at <= now()
                            AND (locked_until IS NULL OR locked_until < now())
                          ORDER BY id
                          LIMIT ?
                          FOR UPDATE SKIP LOCKED)
         RETURNING d.id, w.url, w.secret, d.event_id, d.event_type, d.payload, d.attempts`,
        [leaseMs, limit],
      );
      return (result.rows as Record<string, unknown>[]).map((r) => ({
        id: Number(r.id),
        url: String(r.url),
        secret: String(r.secret),
        eventId: String(r.event_id),
        eventType: String(r.event_type),
        payload: String(r.payload),
        attempts: Number(r.attempts),
      }));
    },

    async markDelivered(id) {
      await knex("webhook_deliveries").where({ id }).update({ status: "delivered", delivered_at: knex.fn.now(), locked_until: null, last_error: null });
    },

    async markFailed(id, error, retryAt) {
      await knex("webhook_deliveries")
        .where({ id })
        .update(retryAt ? { last_error: error, next_attempt_at: retryAt, locked_until: null } : { status: "failed", last_error: error, locked_until: null });
    },

    async countByStatus(collection) {
      const rows: { status: string; count: string | number }[] = await knex("webhook_deliveries").where({ collection }).groupBy("status").select("status").count({ count: "*" });
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.count)]));
    },
  };
}
