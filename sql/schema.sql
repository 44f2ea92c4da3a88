-- SPDX-License-Identifier: ISC
-- clicksend-relay event store, schema version 1 (PRAGMA user_version = 1).
-- Table and column names are a contract with people and scripts using sqlite3.
-- Times are UTC text 'YYYY-MM-DDTHH:MM:SS.sssZ' so they sort as text.

CREATE TABLE IF NOT EXISTS events (
	id            INTEGER PRIMARY KEY,
	kind          TEXT NOT NULL,
	format        TEXT NOT NULL,
	received_at   TEXT NOT NULL,
	remote_addr   TEXT,
	message_id    TEXT,
	from_number   TEXT,
	to_number     TEXT,
	body          TEXT,
	status_code   TEXT,
	status_text   TEXT,
	custom_string TEXT,
	payload       TEXT NOT NULL,         -- JSON object, every field as received
	dedupe_key    TEXT UNIQUE,           -- NULL when there is no message_id
	duplicates    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_kind_id ON events(kind, id);
CREATE INDEX IF NOT EXISTS events_message_id ON events(message_id);
CREATE INDEX IF NOT EXISTS events_received_at ON events(received_at);

CREATE TABLE IF NOT EXISTS deliveries (
	id              INTEGER PRIMARY KEY,
	event_id        INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
	relay           TEXT NOT NULL,
	state           TEXT NOT NULL DEFAULT 'pending'
	                CHECK (state IN ('pending', 'done', 'dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT,
	last_attempt_at TEXT,
	last_result     TEXT,
	done_at         TEXT,
	UNIQUE (event_id, relay)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_relay_state ON deliveries(relay, state);

CREATE TABLE IF NOT EXISTS provisioned_rules (
	kind           TEXT PRIMARY KEY,
	rule_id        INTEGER,
	rule_name      TEXT,
	action_address TEXT,
	webhook_type   TEXT,
	synced_at      TEXT,
	last_error     TEXT
);

CREATE VIEW IF NOT EXISTS inbound_sms AS
	SELECT id, received_at, message_id, from_number, to_number, body, custom_string,
	       duplicates, payload
	FROM events WHERE kind = 'sms.inbound';

CREATE VIEW IF NOT EXISTS receipts AS
	SELECT id, kind, received_at, message_id, status_code, status_text,
	       json_extract(payload, '$.status') AS status,
	       json_extract(payload, '$.error_code') AS error_code,
	       json_extract(payload, '$.error_text') AS error_text,
	       custom_string, duplicates, payload
	FROM events WHERE kind LIKE '%.receipt';

CREATE VIEW IF NOT EXISTS pending_deliveries AS
	SELECT d.id, d.event_id, e.kind, d.relay, d.attempts, d.next_attempt_at,
	       d.last_attempt_at, d.last_result
	FROM deliveries d JOIN events e ON e.id = d.event_id
	WHERE d.state = 'pending';

CREATE VIEW IF NOT EXISTS dead_deliveries AS
	SELECT d.id, d.event_id, e.kind, e.message_id, d.relay, d.attempts,
	       d.last_attempt_at, d.last_result
	FROM deliveries d JOIN events e ON e.id = d.event_id
	WHERE d.state = 'dead';
