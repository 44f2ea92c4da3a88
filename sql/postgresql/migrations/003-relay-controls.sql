-- SPDX-License-Identifier: ISC
-- Schema version 3 (as sql/migrations/003): relay controls and claims.
--   relays: a relay paused by the operator or by pause_after; every node reads it.
--   deliveries.claimed_by / claim_until: the node attempting a delivery and until when;
--     a claim that expired (its node died) may be taken by another node.
--   deliveries.order_key / blocked: ordered relays (one pending delivery per
--     conversation is due at a time).
CREATE TABLE IF NOT EXISTS relays (
	name         text PRIMARY KEY,
	paused       integer NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
	paused_at    timestamptz,
	pause_reason text
);
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claimed_by text;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claim_until timestamptz;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS order_key text;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS blocked integer NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS deliveries_relay_due;
CREATE INDEX deliveries_relay_due
	ON deliveries(relay, next_attempt_at, id) WHERE state = 'pending' AND blocked = 0;
CREATE INDEX deliveries_relay_key
	ON deliveries(relay, order_key, id) WHERE state = 'pending' AND order_key IS NOT NULL;
