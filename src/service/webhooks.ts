import { randomBytes } from "node:crypto";
import { FaceError, invalidArgument } from "../errors.js";
import { EVENT_TYPES, type EventType } from "../events.js";
import { MAX_WEBHOOKS_PER_COLLECTION, type WebhookRecord, type WebhookStore } from "../store/webhooks.js";
import { collectionOf, identifierOf } from "./inputs.js";
import { resolvePublicAddress } from "./network-policy.js";

const MAX_URL_LENGTH = 2048;
/** HMAC-SHA256 hashes a key longer than its 64-byte block first, so a longer secret adds nothing but bytes stored. */
const MIN_SECRET_LENGTH = 16;
const MAX_SECRET_LENGTH = 256;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Webhook subscriptions as the API offers them. */
export function createWebhookService(store: WebhookStore, options: { allowedHosts: readonly string[] }) {
  const view = (w: WebhookRecord) => ({ ...w, createdAt: w.createdAt.toISOString() });
  return {
    /** Validates and stores a subscription; the secret (generated when not given) is returned only here. */
    async create(input: { url: string; identifier: string; events: string[]; secret: string; collection: string }) {
      const collection = collectionOf(input.collection);
      const identifier = input.identifier === "" ? "" : identifierOf(input.identifier);
      if (input.url === "" || input.url.length > MAX_URL_LENGTH) throw invalidArgument(`url is required (at most ${MAX_URL_LENGTH} characters)`);
      let url: URL;
      try {
        url = new URL(input.url);
      } catch {
        throw invalidArgument("url is not a valid URL");
      }
      await resolvePublicAddress(url, options.allowedHosts, "url");
      const unknown = input.events.filter((e) => !(EVENT_TYPES as readonly string[]).includes(e));
      if (unknown.length > 0) throw invalidArgument(`unknown event types ${unknown.join(", ")}; known: ${EVENT_TYPES.join(", ")}`);
      const events = (input.events.length === 0 ? [...EVENT_TYPES] : [...new Set(input.events)]) as EventType[];
      if (input.secret !== "" && (input.secret.length < MIN_SECRET_LENGTH || input.secret.length > MAX_SECRET_LENGTH)) {
        throw invalidArgument(`secret must be ${MIN_SECRET_LENGTH} to ${MAX_SECRET_LENGTH} characters`);
      }
      // PostgreSQL text cannot hold NUL; stored as given, such a secret made the insert fail.
      if (input.secret.includes("\0")) throw invalidArgument("secret must not hold NUL characters");
      const secret = input.secret || randomBytes(32).toString("hex");
      const webhook = await store.create({ collection, url: url.toString(), identifier, events, secret });
      if (webhook === undefined) throw new FaceError("failed_precondition", `collection ${collection} holds ${MAX_WEBHOOKS_PER_COLLECTION} webhooks, the most it may; delete one first`);
      return { webhook: view(webhook), secret };
    },
    async list(input: { identifier: string; collection: string }) {
      const identifier = input.identifier === "" ? "" : identifierOf(input.identifier);
      return { webhooks: (await store.list(collectionOf(input.collection), identifier)).map(view) };
    },
    async delete(input: { id: string; collection: string }) {
      const collection = collectionOf(input.collection);
      if (!UUID.test(input.id)) throw invalidArgument("id is not a webhook id");
      if (!(await store.delete(collection, input.id))) throw new FaceError("not_found", `no webhook ${input.id} in collection ${collection}`);
      return { id: input.id };
    },
  };
}
