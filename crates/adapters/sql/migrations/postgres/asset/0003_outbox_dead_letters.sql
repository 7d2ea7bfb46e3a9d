-- The relay sets aside, with the reason, an event it can never publish (unreadable, or refused by
-- the bus as invalid) and goes on with the others; sent events are deleted after a retention.
-- `event_key` was written and never read: the bus keys alerts by the event's user.
ALTER TABLE outbox DROP COLUMN event_key;
ALTER TABLE outbox ADD COLUMN dead_at BIGINT;
ALTER TABLE outbox ADD COLUMN dead_reason TEXT;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL;
