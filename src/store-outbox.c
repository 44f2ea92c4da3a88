/* SPDX-License-Identifier: ISC */
/* The store's queries for the outbox: due deliveries with their event, the record of
 * each attempt, and retention of old, fully delivered events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"
#include "store.h"
#include "xmalloc.h"

static char *
store_col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return xstrdup(t ? (const char *)t : "");
}

static void
store_delivery_read(sqlite3_stmt *s, struct store_delivery *d)
{
	d->id = sqlite3_column_int64(s, 0);
	d->event_id = sqlite3_column_int64(s, 1);
	d->attempts = sqlite3_column_int(s, 2);
	d->relay = store_col_dup(s, 3);
	d->kind = store_col_dup(s, 4);
	d->format = store_col_dup(s, 5);
	d->received_at = store_col_dup(s, 6);
	d->payload = store_col_dup(s, 7);
	d->next_attempt_at = store_col_dup(s, 8);
}

int
store_sqlite_due(struct store *st, const char *relay, const char *now, size_t limit,
    int64_t claim_ms, struct store_delivery **out)
{
	sqlite3_stmt *s = st->stmt[STMT_DUE];
	size_t n = 0;
	int rc;

	(void)claim_ms; /* one daemon per SQLite store: nothing to claim against */
	*out = xcalloc(limit ? limit : 1, sizeof(**out));
	store_bind_text(s, 1, relay);
	store_bind_text(s, 2, now);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)limit);
	while (n < limit && (rc = store_step_done(st, s)) == SQLITE_ROW)
		store_delivery_read(s, &(*out)[n++]);
	sqlite3_reset(s);
	if (rc == -1) {
		store_deliveries_free(*out, n);
		*out = NULL;
		return -1;
	}
	return (int)n;
}

int
store_sqlite_delivery_record(struct store *st, const struct store_delivery *d, const char *state,
    const char *next_at, const char *last_at, const char *result, const char *done_at)
{
	sqlite3_stmt *s = st->stmt[STMT_DELIVERY_RECORD];
	int rc;

	store_bind_text(s, 1, state);
	store_bind_text(s, 2, next_at);
	store_bind_text(s, 3, last_at);
	store_bind_text(s, 4, result);
	store_bind_text(s, 5, done_at);
	sqlite3_bind_int64(s, 6, d->id);
	store_bind_text(s, 7, d->next_attempt_at);
	rc = store_step_done(st, s);
	sqlite3_reset(s);
	if (rc == -1)
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return 0;
	if (strcmp(state, "pending") != 0 && store_sqlite_unblock_next(st, d->id) == -1)
		return -1;
	return 1;
}

/* After a delivery of an ordered relay ended (done or dead): the next pending one of its
 * conversation, if any, is due. Nothing for a row without an order key. */
int
store_sqlite_unblock_next(struct store *st, int64_t delivery_id)
{
	sqlite3_stmt *s = st->stmt[STMT_UNBLOCK_NEXT];
	int rc;

	sqlite3_bind_int64(s, 1, delivery_id);
	rc = store_step_done(st, s);
	sqlite3_reset(s);
	return rc == -1 ? -1 : 0;
}

int
store_sqlite_retention(struct store *st, const char *before, int limit)
{
	sqlite3_stmt *s = st->stmt[STMT_RETENTION];
	int rc;

	store_bind_text(s, 1, before);
	sqlite3_bind_int(s, 2, limit);
	rc = store_step_done(st, s);
	sqlite3_reset(s);
	return rc == -1 ? -1 : sqlite3_changes(st->db);
}

int
store_sqlite_pending_relays(
    struct store *st, void (*fn)(const char *, long long, void *), void *arg)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db,
		"SELECT relay, count(*) FROM deliveries WHERE "
		"state = 'pending' GROUP BY relay",
		-1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = store_step_done(st, s)) == SQLITE_ROW)
		fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1), arg);
	sqlite3_finalize(s);
	return rc == -1 ? -1 : 0;
}

int
store_sqlite_next_due(struct store *st, char buf[32])
{
	sqlite3_stmt *s = st->stmt[STMT_NEXT_DUE];
	const unsigned char *t;
	int rc, found = 0;

	if ((rc = store_step_done(st, s)) == SQLITE_ROW &&
	    (t = sqlite3_column_text(s, 0)) != NULL) {
		snprintf(buf, 32, "%s", (const char *)t);
		found = 1;
	}
	sqlite3_reset(s);
	return rc == -1 ? -1 : found;
}
