-- SPDX-License-Identifier: ISC
-- Schema version 3: relay controls and claims.
--   relays: a relay paused by the operator (clicksend-relay pause) or by pause_after.
--   deliveries.claimed_by / claim_until: the node attempting a delivery, and until when
--     (a shared PostgreSQL store; a single SQLite daemon leaves them NULL).
--   deliveries.order_key / blocked: for a relay with ordered = yes, the conversation
--     (sender of an inbound event, message_id of a receipt) and whether an earlier pending
--     delivery of it is still ahead; only unblocked rows are due.
CREATE TABLE IF NOT EXISTS relays (
	name         TEXT PRIMARY KEY,
	paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
	paused_at    TEXT,
	pause_reason TEXT
);
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claim_until TEXT;
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
ALTER TABLE deliveries ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS deliveries_relay_due;
CREATE INDEX deliveries_relay_due
	ON deliveries(relay, next_attempt_at, id) WHERE state = 'pending' AND blocked = 0;
CREATE INDEX deliveries_relay_key
	ON deliveries(relay, order_key, id) WHERE state = 'pending' AND order_key IS NOT NULL;
