/* SPDX-License-Identifier: ISC */
/* The store's side of relay controls (clicksend-relay.conf(5), pause_after, ordered;
 * clicksend-relay(1), pause, resume, drop): the relays table of paused relays, ordered
 * relays' blocked rows, and moving or dropping the deliveries of a relay no longer
 * configured. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store-internal.h"
#include "store.h"

int
store_sqlite_paused_relays(struct store *st, store_paused_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[STMT_PAUSED];
	int rc;

	while ((rc = store_step_done(st, s)) == SQLITE_ROW) {
		cb((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
		    (const char *)sqlite3_column_text(s, 2), arg);
	}
	sqlite3_reset(s);
	return rc == -1 ? -1 : 0;
}

int
store_sqlite_relay_set_paused(
    struct store *st, const char *relay, int paused, const char *now, const char *reason)
{
	sqlite3_stmt *s = st->stmt[STMT_PAUSE];
	int rc;

	store_bind_text(s, 1, relay);
	sqlite3_bind_int(s, 2, paused != 0);
	store_bind_text(s, 3, paused ? now : NULL);
	store_bind_text(s, 4, paused ? reason : NULL);
	rc = store_step_done(st, s);
	sqlite3_reset(s);
	return rc == -1 ? -1 : 0;
}

/* Runs one statement with up to three text parameters (NULL: skipped) and an integer;
 * the number of rows changed, or -1. */
static int
store_relays_change(
    struct store *st, const char *sql, const char *t1, const char *t2, const char *t3, int64_t n)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
		return -1;
	}
	store_bind_text(s, 1, t1);
	store_bind_text(s, 2, t2);
	store_bind_text(s, 3, t3);
	sqlite3_bind_int64(s, 4, n);
	rc = store_step_done(st, s);
	sqlite3_finalize(s);
	return rc == -1 ? -1 : sqlite3_changes(st->db);
}

int
store_sqlite_relay_unorder(struct store *st, const char *relay)
{
	return store_relays_change(st,
	    "UPDATE deliveries SET blocked = 0, order_key = NULL WHERE relay = ?1 AND "
	    "state = 'pending' AND order_key IS NOT NULL",
	    relay, NULL, NULL, 0);
}

int
store_sqlite_relay_drop(struct store *st, const char *relay, const char *now, const char *reason)
{
	return store_relays_change(st,
	    "UPDATE deliveries SET state = 'dead', last_result = ?3, done_at = NULL, "
	    "last_attempt_at = coalesce(last_attempt_at, ?2), blocked = 0 "
	    "WHERE relay = ?1 AND state = 'pending'",
	    relay, now, reason, 0);
}

int
store_sqlite_delivery_move(struct store *st, int64_t delivery_id, const char *relay, const char *now)
{
	return store_relays_change(st,
	    "UPDATE deliveries SET relay = ?1, state = 'pending', attempts = 0, "
	    "next_attempt_at = ?2, done_at = NULL, blocked = 0, order_key = NULL, "
	    "claimed_by = NULL, claim_until = NULL WHERE id = ?4 AND state <> 'done' AND "
	    "NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.relay = ?1 AND o.event_id = "
	    "(SELECT event_id FROM deliveries WHERE id = ?4))",
	    relay, now, NULL, delivery_id);
}
