-- Webhook subscriptions and their transactional outbox: an event's delivery rows are written in the
-- same transaction as the change that caused it, so a committed change always has its events.
CREATE TABLE webhooks (
  id          uuid PRIMARY KEY,
  collection  text NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
  url         text NOT NULL,
  identifier  text,
  events      text[] NOT NULL,
  secret      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhooks_collection ON webhooks (collection);

-- One row per (event, subscribed webhook). A dispatcher leases due rows (locked_until) with
-- FOR UPDATE SKIP LOCKED, so several instances never post the same row at the same time.
CREATE TABLE webhook_deliveries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  collection       text NOT NULL,
  identifier       text,
  event_id         uuid NOT NULL,
  event_type       text NOT NULL,
  payload          text NOT NULL,
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  locked_until     timestamptz,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
