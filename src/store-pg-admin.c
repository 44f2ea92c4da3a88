/* SPDX-License-Identifier: ISC */
/* The operator tool's queries on the PostgreSQL store: the same listings, counts and
 * changes as store-admin.c, with times read back as the text the SQLite store keeps. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store-pg-internal.h"

#define PG_ADMIN_SQL_MAX 1024
#define PG_ADMIN_ARGS	 6

struct pg_admin_query {
	char sql[PG_ADMIN_SQL_MAX];
	size_t len;
	int nwhere, n;
	const char *p[PG_ADMIN_ARGS];
	char num[PG_ADMIN_ARGS][24];
};

static const char *pg_event_cols =
    "SELECT id, kind, format, " PG_TIME("received_at") ", remote_addr, message_id, "
						       "from_number, to_number, body, status_code, "
						       "status_text, custom_string, payload, "
						       "dedupe_key, duplicates FROM events";
static const char *pg_delivery_cols =
    "SELECT id, event_id, relay, state, attempts, " PG_TIME("next_attempt_at") ", " PG_TIME(
	"last_attempt_at") ", last_result, " PG_TIME("done_at") " FROM deliveries";

static void
pg_append(struct pg_admin_query *q, const char *s)
{
	int n = snprintf(q->sql + q->len, sizeof(q->sql) - q->len, "%s", s);

	if (n > 0 && (size_t)n < sizeof(q->sql) - q->len)
		q->len += (size_t)n;
}

/* Adds " WHERE col op $N" or " AND ..." with a text (or, when text is NULL, a number). */
static void
pg_where(struct pg_admin_query *q, const char *cond, const char *text, int64_t num)
{
	char clause[192];

	snprintf(
	    clause, sizeof(clause), "%s%s$%d", q->nwhere++ ? " AND " : " WHERE ", cond, q->n + 1);
	pg_append(q, clause);
	if (text == NULL) {
		snprintf(q->num[q->n], sizeof(q->num[q->n]), "%" PRId64, num);
		text = q->num[q->n];
	}
	q->p[q->n++] = text;
}

static void
pg_limit(struct pg_admin_query *q, const char *order, long long limit)
{
	char clause[32];

	pg_append(q, order);
	if (limit > 0) {
		snprintf(q->num[q->n], sizeof(q->num[q->n]), "%lld", limit);
		q->p[q->n] = q->num[q->n];
		q->n++;
		snprintf(clause, sizeof(clause), " LIMIT $%d", q->n);
		pg_append(q, clause);
	}
}

/* Hands each row to READ until it returns non-zero. */
static int
pg_rows(struct store *st, const char *sql, int n, const char *const *p,
    int (*read)(const struct store_pg_rows *, int, void *, void *), void *cb, void *arg)
{
	struct store_pg_rows *r = store_pg_query(st, sql, 0, n, p);
	int i, stop = 0;

	if (r == NULL)
		return -1;
	for (i = 0; stop == 0 && i < store_pg_nrows(r); i++)
		stop = read(r, i, cb, arg);
	store_pg_rows_free(r);
	return stop;
}

static int
pg_event_read(const struct store_pg_rows *r, int i, void *cb, void *arg)
{
	struct store_admin_event e = {
		.id = store_pg_num(r, i, 0),
		.kind = store_pg_get(r, i, 1),
		.format = store_pg_get(r, i, 2),
		.received_at = store_pg_get(r, i, 3),
		.remote_addr = store_pg_get(r, i, 4),
		.message_id = store_pg_get(r, i, 5),
		.from_number = store_pg_get(r, i, 6),
		.to_number = store_pg_get(r, i, 7),
		.body = store_pg_get(r, i, 8),
		.status_code = store_pg_get(r, i, 9),
		.status_text = store_pg_get(r, i, 10),
		.custom_string = store_pg_get(r, i, 11),
		.payload = store_pg_get(r, i, 12),
		.dedupe_key = store_pg_get(r, i, 13),
		.duplicates = store_pg_num(r, i, 14),
	};

	return ((store_admin_event_cb)cb)(&e, arg);
}

int
store_pg_admin_events(
    struct store *st, const struct store_admin_event_filter *f, store_admin_event_cb cb, void *arg)
{
	struct pg_admin_query q = { .len = 0 };

	pg_append(&q, pg_event_cols);
	if (f->id > 0)
		pg_where(&q, "id = ", NULL, f->id);
	if (f->kind != NULL)
		pg_where(&q, "kind = ", f->kind, 0);
	if (f->since != NULL)
		pg_where(&q, PG_TIME("received_at") " >= ", f->since, 0); /* a prefix, as text */
	pg_limit(&q, " ORDER BY id DESC", f->limit);
	return pg_rows(st, q.sql, q.n, q.p, pg_event_read, (void *)cb, arg);
}

static int
pg_delivery_read(const struct store_pg_rows *r, int i, void *cb, void *arg)
{
	struct store_admin_delivery d = {
		.id = store_pg_num(r, i, 0),
		.event_id = store_pg_num(r, i, 1),
		.relay = store_pg_get(r, i, 2),
		.state = store_pg_get(r, i, 3),
		.attempts = store_pg_num(r, i, 4),
		.next_attempt_at = store_pg_get(r, i, 5),
		.last_attempt_at = store_pg_get(r, i, 6),
		.last_result = store_pg_get(r, i, 7),
		.done_at = store_pg_get(r, i, 8),
	};

	return ((store_admin_delivery_cb)cb)(&d, arg);
}

int
store_pg_admin_deliveries(struct store *st, const struct store_admin_delivery_filter *f,
    store_admin_delivery_cb cb, void *arg)
{
	struct pg_admin_query q = { .len = 0 };

	pg_append(&q, pg_delivery_cols);
	if (f->id > 0)
		pg_where(&q, "id = ", NULL, f->id);
	if (f->event_id > 0)
		pg_where(&q, "event_id = ", NULL, f->event_id);
	if (f->relay != NULL)
		pg_where(&q, "relay = ", f->relay, 0);
	if (f->state != NULL)
		pg_where(&q, "state = ", f->state, 0);
	pg_limit(&q, f->oldest_first ? " ORDER BY event_id, id" : " ORDER BY id DESC", f->limit);
	return pg_rows(st, q.sql, q.n, q.p, pg_delivery_read, (void *)cb, arg);
}

static int
pg_count_read(const struct store_pg_rows *r, int i, void *cb, void *arg)
{
	struct store_admin_count c = {
		.name = store_pg_get(r, i, 0),
		.n = { store_pg_num(r, i, 1), store_pg_num(r, i, 2), store_pg_num(r, i, 3) },
	};

	return ((store_admin_count_cb)cb)(&c, arg);
}

int
store_pg_admin_kind_counts(struct store *st, store_admin_count_cb cb, void *arg)
{
	static const char *sql = "SELECT kind, count(*), coalesce(sum(duplicates), 0), 0 "
				 "FROM events GROUP BY kind ORDER BY kind";

	return pg_rows(st, sql, 0, NULL, pg_count_read, (void *)cb, arg);
}

int
store_pg_admin_relay_counts(struct store *st, store_admin_count_cb cb, void *arg)
{
	static const char *sql = "SELECT relay, count(*) FILTER (WHERE state = 'pending'), "
				 "count(*) FILTER (WHERE state = 'done'), "
				 "count(*) FILTER (WHERE state = 'dead') "
				 "FROM deliveries GROUP BY relay ORDER BY relay";

	return pg_rows(st, sql, 0, NULL, pg_count_read, (void *)cb, arg);
}

static int
pg_rule_read(const struct store_pg_rows *r, int i, void *cb, void *arg)
{
	struct store_admin_rule rule = {
		.kind = store_pg_get(r, i, 0),
		.rule_id = store_pg_get(r, i, 1) == NULL ? -1 : store_pg_num(r, i, 1),
		.rule_name = store_pg_get(r, i, 2),
		.action_address = store_pg_get(r, i, 3),
		.webhook_type = store_pg_get(r, i, 4),
		.synced_at = store_pg_get(r, i, 5),
		.last_error = store_pg_get(r, i, 6),
	};

	return ((store_admin_rule_cb)cb)(&rule, arg);
}

int
store_pg_admin_rules(struct store *st, store_admin_rule_cb cb, void *arg)
{
	static const char *sql =
	    "SELECT kind, rule_id, rule_name, action_address, "
	    "webhook_type, " PG_TIME("synced_at") ", last_error FROM "
						  "provisioned_rules ORDER BY kind";

	return pg_rows(st, sql, 0, NULL, pg_rule_read, (void *)cb, arg);
}

/* Runs one change with a time, an optional text and a row id; rows changed or -1. */
static int
pg_change(struct store *st, const char *sql, const char *now, const char *text, int64_t id)
{
	char num[24];
	const char *p[3] = { now, num, text };

	snprintf(num, sizeof(num), "%" PRId64, id);
	return store_pg_run(st, sql, 0, text != NULL ? 3 : 2, p);
}

/* An ordered relay's conversation after rows of it went back to pending: only its
 * earliest pending row may go, the others wait behind it (event id order). A later row
 * that was the one going waits again; one in flight finishes. */
#define PG_REORDER                                                                           \
	"UPDATE deliveries SET blocked = CASE WHEN id = (SELECT min(p.id) FROM deliveries p "  \
	"WHERE p.relay = deliveries.relay AND p.order_key = deliveries.order_key AND "         \
	"p.state = 'pending') THEN 0 ELSE 1 END WHERE state = 'pending' AND "

int
store_pg_admin_requeue(struct store *st, int64_t delivery_id, const char *now)
{
	static const char *sql =
	    "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, attempts = 0, "
	    "done_at = NULL, claimed_by = NULL, claim_until = NULL WHERE id = $2";
	static const char *reorder = PG_REORDER
	    "relay = (SELECT relay FROM deliveries WHERE id = $1) AND "
	    "order_key = (SELECT order_key FROM deliveries WHERE id = $1)";
	char num[24];
	const char *p[1] = { num };
	int n = pg_change(st, sql, now, NULL, delivery_id);

	snprintf(num, sizeof(num), "%" PRId64, delivery_id);
	if (n > 0 && store_pg_run(st, reorder, 0, 1, p) == -1)
		return -1;
	return n;
}

int
store_pg_admin_requeue_dead(struct store *st, const char *relay, const char *now)
{
	static const char *sql =
	    "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, attempts = 0, "
	    "done_at = NULL, claimed_by = NULL, claim_until = NULL WHERE state = 'dead' AND "
	    "relay = $2";
	static const char *reorder = PG_REORDER "relay = $1 AND order_key IS NOT NULL";
	const char *p[2] = { now, relay };
	int n = store_pg_run(st, sql, 0, 2, p);

	if (n > 0 && store_pg_run(st, reorder, 0, 1, p + 1) == -1)
		return -1;
	return n;
}

int
store_pg_admin_delivery_create(
    struct store *st, int64_t event_id, const char *relay, const char *now)
{
	static const char *sql = "INSERT INTO deliveries (event_id, relay, state, attempts, "
				 "next_attempt_at) VALUES ($2, $3, 'pending', 0, $1) "
				 "ON CONFLICT (event_id, relay) DO NOTHING";

	return pg_change(st, sql, now, relay, event_id);
}

int
store_pg_admin_relay_last(
    struct store *st, const char *relay, store_admin_delivery_cb cb, void *arg)
{
	struct pg_admin_query q = { .len = 0 };

	pg_append(&q, pg_delivery_cols);
	pg_where(&q, "relay = ", relay, 0);
	pg_append(&q, " AND last_attempt_at IS NOT NULL");
	pg_limit(&q, " ORDER BY last_attempt_at DESC", 1);
	return pg_rows(st, q.sql, q.n, q.p, pg_delivery_read, (void *)cb, arg);
}
