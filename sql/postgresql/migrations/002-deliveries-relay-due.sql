-- SPDX-License-Identifier: ISC
-- Schema version 2 (as sql/migrations/002): due deliveries indexed by relay, so one
-- relay's backlog does not slow the others.
CREATE INDEX IF NOT EXISTS deliveries_relay_due
	ON deliveries(relay, next_attempt_at, id) WHERE state = 'pending';
