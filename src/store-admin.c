/* SPDX-License-Identifier: ISC */
/* The operator tool's SQL: filtered listings of events and deliveries, counts for
 * stats, and the changes behind retry and replay. Statements are prepared per call
 * (the tool runs one command) and rows are handed to the caller's callback. */
#include <stdio.h>
#include <string.h>

#include "store-admin.h"
#include "store-internal.h"
#include "store.h"

#define ADMIN_SQL_MAX	768
#define ADMIN_BINDS_MAX 6

/* A statement built from a fixed head and optional "AND ..." filters. */
struct admin_query {
	char sql[ADMIN_SQL_MAX];
	size_t len;
	int nwhere;
	const char *text[ADMIN_BINDS_MAX];
	int64_t num[ADMIN_BINDS_MAX];
	int is_num[ADMIN_BINDS_MAX];
	int nbinds;
};

static const char *admin_event_cols =
    "SELECT id, kind, format, received_at, remote_addr, message_id, from_number, "
    "to_number, body, status_code, status_text, custom_string, payload, dedupe_key, "
    "duplicates FROM events";

static const char *admin_delivery_cols =
    "SELECT id, event_id, relay, state, attempts, next_attempt_at, last_attempt_at, "
    "last_result, done_at FROM deliveries";

static void
admin_append(struct admin_query *q, const char *s)
{
	int n = snprintf(q->sql + q->len, sizeof(q->sql) - q->len, "%s", s);

	if (n > 0 && (size_t)n < sizeof(q->sql) - q->len)
		q->len += (size_t)n;
}

/* Adds " WHERE clause" or " AND clause" with one text (or number) parameter. */
static void
admin_where(struct admin_query *q, const char *clause, const char *text, int64_t num, int is_num)
{
	admin_append(q, q->nwhere++ ? " AND " : " WHERE ");
	admin_append(q, clause);
	q->text[q->nbinds] = text;
	q->num[q->nbinds] = num;
	q->is_num[q->nbinds++] = is_num;
}

static void
admin_limit(struct admin_query *q, const char *order, long long limit)
{
	admin_append(q, order);
	if (limit > 0) {
		admin_append(q, " LIMIT ?");
		q->num[q->nbinds] = limit;
		q->is_num[q->nbinds++] = 1;
	}
}

static sqlite3_stmt *
admin_prepare(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	st->err[0] = '\0';
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
		return NULL;
	}
	return s;
}

static sqlite3_stmt *
admin_query_prepare(struct store *st, const struct admin_query *q)
{
	sqlite3_stmt *s;
	int i;

	if ((s = admin_prepare(st, q->sql)) == NULL)
		return NULL;
	for (i = 0; i < q->nbinds; i++) {
		if (q->is_num[i])
			sqlite3_bind_int64(s, i + 1, q->num[i]);
		else
			store_bind_text(s, i + 1, q->text[i]);
	}
	return s;
}

static const char *
admin_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Steps through every row, calling READ with the row and the caller's callback. */
static int
admin_rows(struct store *st, sqlite3_stmt *s, int (*read)(sqlite3_stmt *, void *cb, void *arg),
    void *cb, void *arg)
{
	int rc, stop = 0;

	if (s == NULL)
		return -1;
	while (stop == 0 && (rc = store_step_done(st, s)) == SQLITE_ROW)
		stop = read(s, cb, arg);
	sqlite3_finalize(s);
	if (stop != 0)
		return stop;
	return rc == -1 ? -1 : 0;
}

static int
admin_event_read(sqlite3_stmt *s, void *cb, void *arg)
{
	struct store_admin_event e = {
		.id = sqlite3_column_int64(s, 0),
		.kind = admin_text(s, 1),
		.format = admin_text(s, 2),
		.received_at = admin_text(s, 3),
		.remote_addr = admin_text(s, 4),
		.message_id = admin_text(s, 5),
		.from_number = admin_text(s, 6),
		.to_number = admin_text(s, 7),
		.body = admin_text(s, 8),
		.status_code = admin_text(s, 9),
		.status_text = admin_text(s, 10),
		.custom_string = admin_text(s, 11),
		.payload = admin_text(s, 12),
		.dedupe_key = admin_text(s, 13),
		.duplicates = sqlite3_column_int64(s, 14),
	};

	return ((store_admin_event_cb)cb)(&e, arg);
}

int
store_sqlite_admin_events(
    struct store *st, const struct store_admin_event_filter *f, store_admin_event_cb cb, void *arg)
{
	struct admin_query q = { .len = 0 };

	admin_append(&q, admin_event_cols);
	if (f->id > 0)
		admin_where(&q, "id = ?", NULL, f->id, 1);
	if (f->kind != NULL)
		admin_where(&q, "kind = ?", f->kind, 0, 0);
	if (f->since != NULL)
		admin_where(&q, "received_at >= ?", f->since, 0, 0);
	admin_limit(&q, " ORDER BY id DESC", f->limit);
	return admin_rows(st, admin_query_prepare(st, &q), admin_event_read, (void *)cb, arg);
}

static int
admin_delivery_read(sqlite3_stmt *s, void *cb, void *arg)
{
	struct store_admin_delivery d = {
		.id = sqlite3_column_int64(s, 0),
		.event_id = sqlite3_column_int64(s, 1),
		.relay = admin_text(s, 2),
		.state = admin_text(s, 3),
		.attempts = sqlite3_column_int64(s, 4),
		.next_attempt_at = admin_text(s, 5),
		.last_attempt_at = admin_text(s, 6),
		.last_result = admin_text(s, 7),
		.done_at = admin_text(s, 8),
	};

	return ((store_admin_delivery_cb)cb)(&d, arg);
}

int
store_sqlite_admin_deliveries(struct store *st, const struct store_admin_delivery_filter *f,
    store_admin_delivery_cb cb, void *arg)
{
	struct admin_query q = { .len = 0 };

	admin_append(&q, admin_delivery_cols);
	if (f->id > 0)
		admin_where(&q, "id = ?", NULL, f->id, 1);
	if (f->event_id > 0)
		admin_where(&q, "event_id = ?", NULL, f->event_id, 1);
	if (f->relay != NULL)
		admin_where(&q, "relay = ?", f->relay, 0, 0);
	if (f->state != NULL)
		admin_where(&q, "state = ?", f->state, 0, 0);
	admin_limit(&q, f->oldest_first ? " ORDER BY event_id, id" : " ORDER BY id DESC", f->limit);
	return admin_rows(st, admin_query_prepare(st, &q), admin_delivery_read, (void *)cb, arg);
}

static int
admin_count_read(sqlite3_stmt *s, void *cb, void *arg)
{
	struct store_admin_count c = {
		.name = admin_text(s, 0),
		.n = { sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2),
		    sqlite3_column_int64(s, 3) },
	};

	return ((store_admin_count_cb)cb)(&c, arg);
}

int
store_sqlite_admin_kind_counts(struct store *st, store_admin_count_cb cb, void *arg)
{
	static const char *sql = "SELECT kind, count(*), total(duplicates), 0 FROM events "
				 "GROUP BY kind ORDER BY kind";

	return admin_rows(st, admin_prepare(st, sql), admin_count_read, (void *)cb, arg);
}

int
store_sqlite_admin_relay_counts(struct store *st, store_admin_count_cb cb, void *arg)
{
	static const char *sql = "SELECT relay, total(state = 'pending'), "
				 "total(state = 'done'), total(state = 'dead') "
				 "FROM deliveries GROUP BY relay ORDER BY relay";

	return admin_rows(st, admin_prepare(st, sql), admin_count_read, (void *)cb, arg);
}

static int
admin_rule_read(sqlite3_stmt *s, void *cb, void *arg)
{
	struct store_admin_rule r = {
		.kind = admin_text(s, 0),
		.rule_id =
		    sqlite3_column_type(s, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 1),
		.rule_name = admin_text(s, 2),
		.action_address = admin_text(s, 3),
		.webhook_type = admin_text(s, 4),
		.synced_at = admin_text(s, 5),
		.last_error = admin_text(s, 6),
	};

	return ((store_admin_rule_cb)cb)(&r, arg);
}

int
store_sqlite_admin_rules(struct store *st, store_admin_rule_cb cb, void *arg)
{
	static const char *sql = "SELECT kind, rule_id, rule_name, action_address, "
				 "webhook_type, synced_at, last_error FROM provisioned_rules "
				 "ORDER BY kind";

	return admin_rows(st, admin_prepare(st, sql), admin_rule_read, (void *)cb, arg);
}

/* Runs one change: ?1 and ?2 text, ?3 an id (unused ones are ignored by SQLite).
 * The number of rows changed or -1. */
static int
admin_change(struct store *st, const char *sql, const char *t1, const char *t2, int64_t id)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = admin_prepare(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, t1);
	store_bind_text(s, 2, t2);
	if (id != 0)
		sqlite3_bind_int64(s, 3, id);
	rc = store_step_done(st, s);
	sqlite3_finalize(s);
	return rc == -1 ? -1 : sqlite3_changes(st->db);
}

/* An ordered relay's conversation after rows of it went back to pending: only its
 * earliest pending row may go, the others wait behind it (event id order). A later row
 * that was the one going waits again; one in flight finishes. */
#define ADMIN_REORDER                                                                        \
	"UPDATE deliveries SET blocked = (id <> (SELECT min(p.id) FROM deliveries p WHERE "  \
	"p.relay = deliveries.relay AND p.order_key = deliveries.order_key AND "             \
	"p.state = 'pending')) WHERE state = 'pending' AND "

int
store_sqlite_admin_requeue(struct store *st, int64_t delivery_id, const char *now)
{
	static const char *sql = "UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, "
				 "attempts = 0, done_at = NULL WHERE id = ?3";
	static const char *reorder = ADMIN_REORDER
	    "relay = (SELECT relay FROM deliveries WHERE id = ?3) AND "
	    "order_key = (SELECT order_key FROM deliveries WHERE id = ?3)";
	int n = admin_change(st, sql, now, NULL, delivery_id);

	if (n > 0 && admin_change(st, reorder, NULL, NULL, delivery_id) == -1)
		return -1;
	return n;
}

int
store_sqlite_admin_requeue_dead(struct store *st, const char *relay, const char *now)
{
	static const char *sql = "UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, "
				 "attempts = 0, done_at = NULL WHERE state = 'dead' AND relay = ?2";
	static const char *reorder = ADMIN_REORDER "relay = ?2 AND order_key IS NOT NULL";
	int n = admin_change(st, sql, now, relay, 0);

	if (n > 0 && admin_change(st, reorder, NULL, relay, 0) == -1)
		return -1;
	return n;
}

int
store_sqlite_admin_delivery_create(struct store *st, int64_t event_id, const char *relay, const char *now)
{
	static const char *sql = "INSERT OR IGNORE INTO deliveries (event_id, relay, state, "
				 "attempts, next_attempt_at) VALUES (?3, ?2, 'pending', 0, ?1)";

	return admin_change(st, sql, now, relay, event_id);
}

int
store_sqlite_admin_relay_last(struct store *st, const char *relay, store_admin_delivery_cb cb, void *arg)
{
	struct admin_query q = { .len = 0 };

	admin_append(&q, admin_delivery_cols);
	admin_where(&q, "relay = ?", relay, 0, 0);
	admin_where(&q, "last_attempt_at > ?", "", 0, 0); /* every time text sorts after "" */
	admin_limit(&q, " ORDER BY last_attempt_at DESC", 1);
	return admin_rows(st, admin_query_prepare(st, &q), admin_delivery_read, (void *)cb, arg);
}
