-- A dispatcher's lease on a delivery carries a token: recording the outcome (delivered, failed) only
-- counts while the token is still the row's, so a dispatcher whose lease ran out and was taken over
-- by another instance can neither mark the row nor make the other post it twice.
ALTER TABLE webhook_deliveries ADD COLUMN lease_id uuid;
-- Delivered and given-up rows are purged after FACE_WEBHOOK_RETENTION_DAYS.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at) WHERE status <> 'pending';
