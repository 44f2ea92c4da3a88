/* SPDX-License-Identifier: ISC */
/* The PostgreSQL store's write path, inside the writer's transaction: events (a duplicate
 * recognised across nodes by the unique dedupe_key) and their deliveries, claims of due
 * deliveries (FOR UPDATE SKIP LOCKED, with an expiry another node may take over), the
 * record of each attempt, relay controls, retention and provisioning state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-pg-internal.h"
#include "xmalloc.h"

static const char *pg_event_insert_sql =
    "INSERT INTO events (kind, format, received_at, remote_addr, message_id, from_number, "
    "to_number, body, status_code, status_text, custom_string, payload, dedupe_key) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";
static const char *pg_event_duplicate_sql =
    "UPDATE events SET duplicates = duplicates + 1 WHERE dedupe_key = $1 "
    "RETURNING id, " PG_TIME("received_at");
static const char *pg_delivery_insert_sql =
    "INSERT INTO deliveries (event_id, relay, state, attempts, next_attempt_at, order_key, "
    "blocked) VALUES ($1, $2, 'pending', 0, $3, $4, CASE WHEN $4::text IS NOT NULL AND "
    "EXISTS (SELECT 1 FROM deliveries WHERE relay = $2 AND order_key = $4 AND "
    "state = 'pending') THEN 1 ELSE 0 END) ON CONFLICT (event_id, relay) DO NOTHING";
/* Two nodes inserting into one conversation of an ordered relay at once: the second waits
 * for the first to commit. Taken before the event row, so event ids (taken at insert)
 * follow commit order within a conversation, and "an earlier delivery is pending" sees
 * every earlier one. */
static const char *pg_order_lock_sql = "SELECT pg_advisory_xact_lock(hashtext($1 || ' ' || $2))";

/* The conversation of an event: its sender (inbound) or message_id (receipts); NULL when
 * it has none, and such events never wait. */
static const char *
pg_order_key(const struct webhook_event *ev)
{
	const char *key = ev->kind->receipt ? ev->message_id : ev->from;

	return key != NULL && *key != '\0' ? key : NULL;
}

static int
pg_order_lock(struct store *st, const struct webhook_event *ev)
{
	const char *key = pg_order_key(ev);
	size_t i;

	for (i = 0; key != NULL && i < ev->nrelays; i++) {
		const char *p[2] = { ev->relays[i], key };

		if (ev->relay_ordered != NULL && ev->relay_ordered[i] &&
		    store_pg_run(st, pg_order_lock_sql, 1, 2, p) == -1)
			return -1;
	}
	return 0;
}

static int
pg_event_duplicate(struct store *st, struct webhook_event *ev)
{
	const char *p[1] = { ev->dedupe_key };
	struct store_pg_rows *r = store_pg_query(st, pg_event_duplicate_sql, 1, 1, p);

	if (r == NULL)
		return -1;
	if (store_pg_nrows(r) > 0) {
		ev->id = store_pg_num(r, 0, 0);
		snprintf(ev->received_at, sizeof(ev->received_at), "%s", store_pg_get(r, 0, 1));
	}
	ev->duplicate = 1;
	store_pg_rows_free(r);
	return 0;
}

static int
pg_deliveries_insert(struct store *st, const struct webhook_event *ev)
{
	const char *key = pg_order_key(ev);
	char id[24];
	size_t i;

	snprintf(id, sizeof(id), "%" PRId64, ev->id);
	for (i = 0; i < ev->nrelays; i++) {
		int ordered = ev->relay_ordered != NULL && ev->relay_ordered[i] && key != NULL;
		const char *p[4] = { id, ev->relays[i], ev->received_at, ordered ? key : NULL };

		if (store_pg_run(st, pg_delivery_insert_sql, 1, 4, p) == -1)
			return -1;
	}
	return 0;
}

int
store_pg_event_insert(struct store *st, struct webhook_event *ev)
{
	const char *p[13];
	struct store_pg_rows *r;
	int inserted;

	ev->duplicate = 0;
	if (ev->received_at[0] == '\0')
		store_time_text(ev->received_at, 0);
	p[0] = ev->kind->name, p[1] = webhook_format_name(ev->format), p[2] = ev->received_at;
	p[3] = ev->remote_addr[0] ? ev->remote_addr : NULL, p[4] = ev->message_id;
	p[5] = ev->from, p[6] = ev->to, p[7] = ev->body, p[8] = ev->status_code;
	p[9] = ev->status_text, p[10] = ev->custom_string, p[11] = ev->payload;
	p[12] = ev->dedupe_key;
	if (pg_order_lock(st, ev) == -1 ||
	    (r = store_pg_query(st, pg_event_insert_sql, 1, 13, p)) == NULL)
		return -1;
	if ((inserted = store_pg_nrows(r) > 0))
		ev->id = store_pg_num(r, 0, 0);
	store_pg_rows_free(r);
	if (!inserted)
		return pg_event_duplicate(st, ev);
	return pg_deliveries_insert(st, ev);
}

int
store_pg_event_seen(struct store *st, const char *kind, const char *message_id)
{
	static const char *sql = "SELECT 1 FROM events WHERE kind = $1 AND message_id IN "
				 "($2, upper($2), lower($2)) LIMIT 1";
	const char *p[2] = { kind, message_id };
	struct store_pg_rows *r = store_pg_query(st, sql, 1, 2, p);
	int seen;

	if (r == NULL)
		return -1;
	seen = store_pg_nrows(r) > 0;
	store_pg_rows_free(r);
	return seen;
}

/* A real write that changes nothing anyone sees. */
int
store_pg_probe(struct store *st)
{
	return store_pg_run(st, "UPDATE store_schema SET version = version", 1, 0, NULL) == -1 ?
	    -1 :
	    0;
}

static const char *pg_due_sql = "WITH c AS (" PG_DUE_PICK("") ") " PG_DUE_CLAIM;

static char *
pg_dup(const struct store_pg_rows *r, int row, int col)
{
	const char *v = store_pg_get(r, row, col);

	return xstrdup(v != NULL ? v : "");
}

/* Oldest first, as SQLite hands them: RETURNING keeps no order. */
static int
pg_delivery_cmp(const void *a, const void *b)
{
	const struct store_delivery *x = a, *y = b;
	int c = strcmp(x->next_attempt_at, y->next_attempt_at);

	return c != 0 ? c : (x->id > y->id) - (x->id < y->id);
}

/* The rows of PG_DUE_CLAIM as deliveries, oldest first; their count. */
int
store_pg_deliveries(const struct store_pg_rows *r, struct store_delivery **out)
{
	int n = store_pg_nrows(r), i;

	*out = xcalloc(n > 0 ? (size_t)n : 1, sizeof(**out));
	for (i = 0; i < n; i++) {
		struct store_delivery *d = &(*out)[i];
		d->id = store_pg_num(r, i, 0);
		d->event_id = store_pg_num(r, i, 1);
		d->attempts = (int)store_pg_num(r, i, 2);
		d->relay = pg_dup(r, i, 3);
		d->kind = pg_dup(r, i, 4);
		d->format = pg_dup(r, i, 5);
		d->received_at = pg_dup(r, i, 6);
		d->payload = pg_dup(r, i, 7);
		d->next_attempt_at = pg_dup(r, i, 8);
	}
	qsort(*out, (size_t)n, sizeof(**out), pg_delivery_cmp);
	return n;
}

int
store_pg_due(struct store *st, const char *relay, const char *now, size_t limit, int64_t claim_ms,
    struct store_delivery **out)
{
	char lim[24], claim[24];
	const char *p[5] = { relay, now, lim, st->pg->node, claim };
	struct store_pg_rows *r;
	int n;

	snprintf(lim, sizeof(lim), "%zu", limit);
	snprintf(claim, sizeof(claim), "%" PRId64, claim_ms);
	*out = NULL;
	if ((r = store_pg_query(st, pg_due_sql, 1, 5, p)) == NULL)
		return -1;
	n = store_pg_deliveries(r, out);
	store_pg_rows_free(r);
	return n;
}

static const char *pg_record_sql =
    "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, "
    "last_attempt_at = $3, last_result = $4, done_at = $5, claimed_by = NULL, "
    "claim_until = NULL WHERE id = $6 AND state = 'pending' AND "
    "next_attempt_at IS NOT DISTINCT FROM $7::timestamptz";

int
store_pg_delivery_record(struct store *st, const struct store_delivery *d, const char *state,
    const char *next_at, const char *last_at, const char *result, const char *done_at)
{
	char id[24];
	const char *p[7] = { state, next_at, last_at, result, done_at, id, d->next_attempt_at };
	int n;

	snprintf(id, sizeof(id), "%" PRId64, d->id);
	if ((n = store_pg_run(st, pg_record_sql, 1, 7, p)) <= 0)
		return n;
	if (strcmp(state, "pending") != 0 && store_pg_unblock_next(st, d->id) == -1)
		return -1;
	return 1;
}

int
store_pg_unblock_next(struct store *st, int64_t delivery_id)
{
	static const char *sql =
	    "UPDATE deliveries SET blocked = 0 WHERE id = (SELECT min(p.id) FROM deliveries p "
	    "JOIN deliveries d ON p.relay = d.relay AND p.order_key = d.order_key "
	    "WHERE d.id = $1 AND p.state = 'pending')";
	char id[24];
	const char *p[1] = { id };

	snprintf(id, sizeof(id), "%" PRId64, delivery_id);
	return store_pg_run(st, sql, 1, 1, p) == -1 ? -1 : 0;
}

int
store_pg_relay_set_paused(
    struct store *st, const char *relay, int paused, const char *now, const char *reason)
{
	static const char *sql =
	    "INSERT INTO relays (name, paused, paused_at, pause_reason) VALUES ($1, $2, $3, $4) "
	    "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
	    "paused_at = excluded.paused_at, pause_reason = excluded.pause_reason";
	const char *p[4] = { relay, paused ? "1" : "0", paused ? now : NULL,
		paused ? reason : NULL };

	return store_pg_run(st, sql, 1, 4, p) == -1 ? -1 : 0;
}

int
store_pg_relay_unorder(struct store *st, const char *relay)
{
	static const char *sql =
	    "UPDATE deliveries SET blocked = 0, order_key = NULL WHERE relay = $1 AND "
	    "state = 'pending' AND order_key IS NOT NULL";
	const char *p[1] = { relay };

	return store_pg_run(st, sql, 1, 1, p);
}

int
store_pg_relay_drop(struct store *st, const char *relay, const char *now, const char *reason)
{
	static const char *sql =
	    "UPDATE deliveries SET state = 'dead', last_result = $3, done_at = NULL, "
	    "last_attempt_at = coalesce(last_attempt_at, $2), blocked = 0, claimed_by = NULL, "
	    "claim_until = NULL WHERE relay = $1 AND state = 'pending'";
	const char *p[3] = { relay, now, reason };

	return store_pg_run(st, sql, 1, 3, p);
}

int
store_pg_delivery_move(struct store *st, int64_t delivery_id, const char *relay, const char *now)
{
	static const char *sql =
	    "UPDATE deliveries SET relay = $1, state = 'pending', attempts = 0, "
	    "next_attempt_at = $2, done_at = NULL, blocked = 0, order_key = NULL, "
	    "claimed_by = NULL, claim_until = NULL WHERE id = $3 AND state <> 'done' AND "
	    "NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.relay = $1 AND o.event_id = "
	    "(SELECT event_id FROM deliveries WHERE id = $3))";
	char id[24];
	const char *p[3] = { relay, now, id };

	snprintf(id, sizeof(id), "%" PRId64, delivery_id);
	return store_pg_run(st, sql, 1, 3, p);
}

int
store_pg_retention(struct store *st, const char *before, int limit)
{
	static const char *sql =
	    "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.received_at < $1 "
	    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND "
	    "d.state <> 'done') LIMIT $2)";
	char lim[16];
	const char *p[2] = { before, lim };

	snprintf(lim, sizeof(lim), "%d", limit);
	return store_pg_run(st, sql, 1, 2, p);
}

int
store_pg_provision_ok(struct store *st, const struct store_provision_rule *r)
{
	static const char *sql =
	    "INSERT INTO provisioned_rules (kind, rule_id, rule_name, action_address, "
	    "webhook_type, synced_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, NULL) "
	    "ON CONFLICT (kind) DO UPDATE SET rule_id = excluded.rule_id, "
	    "rule_name = excluded.rule_name, action_address = excluded.action_address, "
	    "webhook_type = excluded.webhook_type, synced_at = excluded.synced_at, "
	    "last_error = NULL";
	char id[24], now[32];
	const char *p[6] = { r->kind, r->rule_id >= 0 ? id : NULL, r->rule_name, r->action_address,
		r->webhook_type, now };

	snprintf(id, sizeof(id), "%lld", r->rule_id);
	store_time_text(now, 0);
	return store_pg_run(st, sql, 1, 6, p) == -1 ? -1 : 0;
}

int
store_pg_provision_error(
    struct store *st, const char *kind, const char *rule_name, const char *error)
{
	static const char *sql =
	    "INSERT INTO provisioned_rules AS r (kind, rule_name, synced_at, last_error) "
	    "VALUES ($1, $2, $3, $4) ON CONFLICT (kind) DO UPDATE SET "
	    "synced_at = excluded.synced_at, last_error = excluded.last_error, "
	    "rule_name = coalesce(r.rule_name, excluded.rule_name)";
	char now[32];
	const char *p[4] = { kind, rule_name, now, error };

	store_time_text(now, 0);
	return store_pg_run(st, sql, 1, 4, p) == -1 ? -1 : 0;
}
