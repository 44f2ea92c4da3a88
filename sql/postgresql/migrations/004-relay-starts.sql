-- SPDX-License-Identifier: ISC
-- PostgreSQL schema version 4 (no SQLite counterpart: one daemon per SQLite store).
--   relay_starts: when attempts of a relay with `rate` began, on any node; a node takes
--     rate tokens from it under a per-relay advisory lock, so the limit holds across
--     nodes. Rows older than the relay's interval are deleted as tokens are taken.
CREATE TABLE IF NOT EXISTS relay_starts (
	relay      text NOT NULL,
	started_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_starts_relay ON relay_starts(relay, started_at);
