import { randomUUID } from "node:crypto";
import type { Knex } from "knex";
import type { EventType, FaceEvent } from "../events.js";
import { holdCollection } from "./collection-row.js";
import { rowCount } from "./row-count.js";
import { subscribedEventsOf } from "./subscribed-events.js";

/**
 * Subscriptions one collection may hold. Each event is written and posted once per subscribed
 * webhook, so without a bound one key could make every recognition post thousands of times, to any
 * public address it names.
 */
export const MAX_WEBHOOKS_PER_COLLECTION = 100;

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
  /** The lease's token: outcomes are recorded only while the row still carries it. */
  leaseId: string;
  url: string;
  secret: string;
  eventId: string;
  eventType: string;
  payload: string;
  attempts: number;
}

/** Subscriptions and the transactional outbox of their deliveries. */
export interface WebhookStore {
  /** Stores a subscription; undefined (nothing written) when the collection holds MAX_WEBHOOKS_PER_COLLECTION already. */
  create(input: { collection: string; url: string; identifier: string; events: EventType[]; secret: string }): Promise<WebhookRecord | undefined>;
  list(collection: string, identifier: string): Promise<WebhookRecord[]>;
  /** Deletes the webhook `id` of `collection`; false when there is none there. */
  delete(collection: string, id: string): Promise<boolean>;
  /** Writes one delivery per matching subscription, inside the caller's transaction when given; returns how many. */
  enqueue(event: FaceEvent, trx?: Knex.Transaction): Promise<number>;
  /**
   * Leases up to `limit` due deliveries for `leaseMs`, at most `perWebhook` in flight per webhook
   * (counting other instances' leases), so one slow receiver cannot take every slot; other
   * dispatchers skip leased rows meanwhile.
   */
  claimDue(limit: number, leaseMs: number, perWebhook: number): Promise<DueDelivery[]>;
  /** Records the delivery; false (nothing written) when the lease was lost. */
  markDelivered(delivery: DueDelivery): Promise<boolean>;
  /**
   * Records a failed attempt: retried at `retryAt`, or given up when `retryAt` is undefined; false
   * (nothing written) when the lease was lost.
   */
  markFailed(delivery: DueDelivery, error: string, retryAt: Date | undefined): Promise<boolean>;
  /** Whether the delivery is still stored: it goes with its webhook, its collection and its person (DeleteUser). */
  exists(deliveryId: number): Promise<boolean>;
  /** Deletes every delivery about the person, delivered or not, inside the caller's transaction (DeleteUser). */
  erasePerson(collection: string, identifier: string, trx: Knex.Transaction): Promise<void>;
  /** Deletes delivered and given-up rows older than `days` days; returns how many. */
  purgeFinished(days: number): Promise<number>;
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
  /**
   * This process is the database's only writer (embedded PGlite): an event no webhook subscribes
   * to is skipped without a statement (subscribed-events.ts).
   */
  soleWriter?: boolean;
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

  const subscribed = subscribedEventsOf(knex);

  return {
    async create(input) {
      const id = randomUUID();
      subscribed.adding(input.collection, input.events);
      const room = await knex.transaction(async (trx) => {
        // The collection's row lock makes concurrent creations count one after another.
        await holdCollection(trx, input.collection, "exclusive");
        const [{ n }] = await trx("webhooks").where({ collection: input.collection }).count({ n: "*" });
        if (Number(n) >= MAX_WEBHOOKS_PER_COLLECTION) return false;
        await trx("webhooks").insert({
          id,
          collection: input.collection,
          url: input.url,
          identifier: input.identifier === "" ? null : input.identifier,
          events: input.events,
          secret: input.secret,
        });
        return true;
      });
      if (!room) return undefined;
      return toRecord(await knex("webhooks").where({ id }).first());
    },

    async list(collection, identifier) {
      const query = knex("webhooks").where({ collection }).orderBy("created_at");
      if (identifier !== "") query.andWhere({ identifier });
      return (await query).map(toRecord);
    },

    async delete(collection, id) {
      return rowCount(await knex("webhooks").where({ id, collection }).delete()) > 0;
    },

    async enqueue(event, trx) {
      const db = trx ?? knex;
      if (options.soleWriter && !(await subscribed.mayHave(db, event.collection, event.type))) return 0;
      const eventId = randomUUID();
      const payload = JSON.stringify({
        id: eventId,
        type: event.type,
        time: new Date().toISOString(),
        collection: event.collection,
        identifier: event.identifier,
        ...event.data,
      });
      // The webhooks are locked as they are read: a DeleteWebhook (or DeleteCollection) committing
      // meanwhile then drops its webhook from the read, where the deliveries' foreign key, checked
      // after the read, failed the whole call (Internal) on a PostgreSQL server.
      const result = await db.raw(
        `INSERT INTO webhook_deliveries (webhook_id, collection, identifier, event_id, event_type, payload)
         SELECT id, collection, ?, ?, ?, ? FROM webhooks
          WHERE collection = ? AND ? = ANY (events) AND (identifier IS NULL OR identifier = ?)
          FOR KEY SHARE`,
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

    async claimDue(limit, leaseMs, perWebhook) {
      // Candidates: due rows, ranked within their webhook after the ones already in flight, then
      // locked (FOR UPDATE cannot sit beside a window function, hence two steps).
      const result = await knex.raw(
        `WITH in_flight AS (
           SELECT webhook_id, count(*) AS n FROM webhook_deliveries
            WHERE status = 'pending' AND locked_until >= now() GROUP BY webhook_id
         ), ranked AS (
           SELECT d.id, row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.id) + coalesce(f.n, 0) AS slot
             FROM webhook_deliveries d LEFT JOIN in_flight f ON f.webhook_id = d.webhook_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= now()
              AND (d.locked_until IS NULL OR d.locked_until < now())
         )
         UPDATE webhook_deliveries d
            SET locked_until = now() + (? * interval '1 millisecond'), attempts = d.attempts + 1, lease_id = gen_random_uuid()
           FROM webhooks w
          WHERE w.id = d.webhook_id
            AND d.id IN (SELECT id FROM webhook_deliveries
                          WHERE id IN (SELECT id FROM ranked WHERE slot <= ?)
                            AND status = 'pending' AND (locked_until IS NULL OR locked_until < now())
                          ORDER BY id
                          LIMIT ?
                          FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.lease_id, w.url, w.secret, d.event_id, d.event_type, d.payload, d.attempts`,
        [leaseMs, perWebhook, limit],
      );
      return (result.rows as Record<string, unknown>[]).map((r) => ({
        id: Number(r.id),
        leaseId: String(r.lease_id),
        url: String(r.url),
        secret: String(r.secret),
        eventId: String(r.event_id),
        eventType: String(r.event_type),
        payload: String(r.payload),
        attempts: Number(r.attempts),
      }));
    },

    async markDelivered(delivery) {
      const updated = await knex("webhook_deliveries")
        .where({ id: delivery.id, lease_id: delivery.leaseId, status: "pending" })
        .update({ status: "delivered", delivered_at: knex.fn.now(), locked_until: null, lease_id: null, last_error: null });
      return rowCount(updated) > 0;
    },

    async markFailed(delivery, error, retryAt) {
      const updated = await knex("webhook_deliveries")
        .where({ id: delivery.id, lease_id: delivery.leaseId, status: "pending" })
        .update(
          retryAt
            ? { last_error: error, next_attempt_at: retryAt, locked_until: null, lease_id: null }
            : { status: "failed", last_error: error, locked_until: null, lease_id: null },
        );
      return rowCount(updated) > 0;
    },

    async exists(deliveryId) {
      return (await knex("webhook_deliveries").where({ id: deliveryId }).first("id")) !== undefined;
    },

    async erasePerson(collection, identifier, trx) {
      await trx("webhook_deliveries").where({ collection, identifier }).delete();
    },

    async purgeFinished(days) {
      return rowCount(
        await knex("webhook_deliveries")
          .whereNot({ status: "pending" })
          .andWhere("created_at", "<", knex.raw("now() - (? * interval '1 day')", [days]))
          .delete(),
      );
    },

    async countByStatus(collection) {
      const rows: { status: string; count: string | number }[] = await knex("webhook_deliveries").where({ collection }).groupBy("status").select("status").count({ count: "*" });
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.count)]));
    },
  };
}
