-- SPDX-License-Identifier: ISC
-- Schema version 2: the due deliveries of each relay in their own index, so the outbox's
-- "next due for this relay" query reads only that relay's pending rows in order, and one
-- relay's backlog does not slow the others.
CREATE INDEX IF NOT EXISTS deliveries_relay_due
	ON deliveries(relay, next_attempt_at, id) WHERE state = 'pending';
