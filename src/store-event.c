/* SPDX-License-Identifier: ISC */
/* The store's write path for webhooks: one event row (or a duplicate count) and its
 * delivery rows, inside the caller's transaction; plus the health counts and the
 * writer's probe. */
#include <stdio.h>
#include <string.h>

#include "store-internal.h"
#include "store.h"

static void
store_event_bind(sqlite3_stmt *s, const struct webhook_event *ev)
{
	store_bind_text(s, 1, ev->kind->name);
	store_bind_text(s, 2, webhook_format_name(ev->format));
	store_bind_text(s, 3, ev->received_at);
	store_bind_text(s, 4, ev->remote_addr[0] ? ev->remote_addr : NULL);
	store_bind_text(s, 5, ev->message_id);
	store_bind_text(s, 6, ev->from);
	store_bind_text(s, 7, ev->to);
	store_bind_text(s, 8, ev->body);
	store_bind_text(s, 9, ev->status_code);
	store_bind_text(s, 10, ev->status_text);
	store_bind_text(s, 11, ev->custom_string);
	store_bind_text(s, 12, ev->payload);
	store_bind_text(s, 13, ev->dedupe_key);
}

/* The stored row wins: its id and received_at are handed back. */
static int
store_event_duplicate(struct store *st, struct webhook_event *ev)
{
	sqlite3_stmt *s = st->stmt[STMT_EVENT_DUPLICATE];
	int rc;

	store_bind_text(s, 1, ev->dedupe_key);
	if ((rc = store_step_done(st, s)) == -1)
		return -1;
	if (rc == SQLITE_ROW) {
		ev->id = sqlite3_column_int64(s, 0);
		snprintf(ev->received_at, sizeof(ev->received_at), "%s",
		    (const char *)sqlite3_column_text(s, 1));
	}
	ev->duplicate = 1;
	sqlite3_reset(s);
	return 0;
}

static int
store_deliveries_insert(struct store *st, const struct webhook_event *ev)
{
	sqlite3_stmt *s = st->stmt[STMT_DELIVERY_INSERT];
	const char *key = ev->kind->receipt ? ev->message_id : ev->from;
	size_t i;

	if (key != NULL && *key == '\0')
		key = NULL; /* no conversation: never waits */
	for (i = 0; i < ev->nrelays; i++) {
		int ordered = ev->relay_ordered != NULL && ev->relay_ordered[i];

		sqlite3_bind_int64(s, 1, ev->id);
		store_bind_text(s, 2, ev->relays[i]);
		store_bind_text(s, 3, ev->received_at);
		store_bind_text(s, 4, ordered ? key : NULL);
		if (store_step_done(st, s) == -1)
			return -1;
		sqlite3_reset(s);
	}
	return 0;
}

int
store_sqlite_event_insert(struct store *st, struct webhook_event *ev)
{
	sqlite3_stmt *s = st->stmt[STMT_EVENT_INSERT];

	ev->duplicate = 0;
	if (ev->received_at[0] == '\0')
		store_time_text(ev->received_at, 0);
	store_event_bind(s, ev);
	if (store_step_done(st, s) == -1)
		return -1;
	sqlite3_reset(s);
	if (sqlite3_changes(st->db) == 0)
		return store_event_duplicate(st, ev);
	ev->id = sqlite3_last_insert_rowid(st->db);
	return store_deliveries_insert(st, ev);
}

/* Reads only (the loop's handle): whether commits work is the store writer's to tell. */
int
store_sqlite_health(struct store *st, long long *pending, long long *dead, char *err, size_t errlen)
{
	sqlite3_stmt *s = st->stmt[STMT_HEALTH];

	if (store_step_done(st, s) != SQLITE_ROW) {
		snprintf(err, errlen, "%s", st->err);
		return -1;
	}
	*pending = sqlite3_column_int64(s, 0);
	*dead = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	return 0;
}

int
store_sqlite_relay_counts(
    struct store *st, const char *relay, long long *pending, long long *dead, int *paused)
{
	sqlite3_stmt *s = st->stmt[STMT_RELAY_COUNTS];

	store_bind_text(s, 1, relay);
	if (store_step_done(st, s) != SQLITE_ROW)
		return -1;
	*pending = sqlite3_column_int64(s, 0);
	*dead = sqlite3_column_int64(s, 1);
	*paused = sqlite3_column_int(s, 2);
	sqlite3_reset(s);
	return 0;
}
