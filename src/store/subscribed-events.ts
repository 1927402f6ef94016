import type { Knex } from "knex";

/**
 * The (collection, event type) pairs some webhook of the database may subscribe to, kept in the
 * process: where the process is the database's only writer (embedded PGlite), an event nobody
 * subscribed to then costs no statement. Every Recognize and Sync frame publishes an event, and on
 * PGlite the outbox's INSERT ... SELECT ran on the event loop (about 1.2 ms) even with no webhook.
 *
 * A pair is added before the webhook's row is written and never removed (a deleted webhook only
 * costs the statement again), so no event that a committed webhook subscribes to is skipped. With
 * a server database other instances create webhooks this process never hears of: there every
 * event is written by the statement, which finds its subscribers itself.
 */
export interface SubscribedEvents {
  /**
   * False only when no webhook of the database has ever subscribed `collection` to `type`. `db`
   * reads the webhooks the first time: the caller's transaction when it holds one (PGlite has a
   * single connection, which the transaction holds).
   */
  mayHave(db: Knex, collection: string, type: string): Promise<boolean>;
  /** Called before a webhook subscribing `collection` to `types` is written (no I/O). */
  adding(collection: string, types: readonly string[]): void;
}

/** One registry per database handle: every webhook store of the process on it shares what it knows. */
const registries = new WeakMap<Knex, SubscribedEvents>();

export function subscribedEventsOf(knex: Knex): SubscribedEvents {
  let registry = registries.get(knex);
  if (registry === undefined) {
    registry = createRegistry();
    registries.set(knex, registry);
  }
  return registry;
}

function createRegistry(): SubscribedEvents {
  const key = (collection: string, type: string) => `${collection}\u0000${type}`;
  let known: Promise<Set<string>> | undefined;
  // Pairs of the webhooks this process creates, recorded before their rows exist: a read of the
  // table running meanwhile may miss those rows, this set does not.
  const added = new Set<string>();
  // The table is read once, on first use. (The transactions that publish events never write
  // webhooks, so a first read inside one sees the committed subscriptions.)
  const pairs = (db: Knex) => {
    if (known === undefined) {
      const reading = db("webhooks")
        .select("collection", "events")
        .then((rows: { collection: string; events: string[] }[]) => new Set(rows.flatMap((r) => r.events.map((type) => key(r.collection, type)))));
      known = reading;
      // A failed read is tried again next time instead of being remembered.
      reading.catch(() => {
        if (known === reading) known = undefined;
      });
    }
    return known;
  };
  return {
    async mayHave(db, collection, type) {
      const pair = key(collection, type);
      return added.has(pair) || (await pairs(db)).has(pair);
    },
    adding(collection, types) {
      for (const type of types) added.add(key(collection, type));
    },
  };
}
