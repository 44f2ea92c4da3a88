/* SPDX-License-Identifier: ISC */
/* Shared between the PostgreSQL backend's files: the connection state (store-pg.c, the one
 * file that includes libpq-fe.h), a small query interface over it, and the snapshot the
 * daemon's loop reads instead of the network. Nothing outside store-pg*.c includes this. */
#ifndef STORE_PG_INTERNAL_H
#define STORE_PG_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store-internal.h"

/* Time columns are timestamptz; the daemon reads and writes the text form the SQLite
 * store keeps (YYYY-MM-DDTHH:MM:SS.sssZ). */
#define PG_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * Due deliveries of a relay ($1) at $2, at most $3, claimed for node $4 for $5 ms: rows
 * another node claims are skipped. PG_DUE_PICK(extra) selects them (extra: more
 * conditions), PG_DUE_CLAIM claims what the CTE c picked and returns each with its event.
 */
#define PG_DUE_PICK(extra)                                                                  \
	"SELECT id FROM deliveries WHERE relay = $1 AND state = 'pending' AND blocked = 0 " \
	"AND next_attempt_at <= $2 AND (claim_until IS NULL OR claim_until < $2 OR "        \
	"claimed_by = $4)" extra " ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"
#define PG_DUE_CLAIM                                                                    \
	"UPDATE deliveries d SET claimed_by = $4, claim_until = $2::timestamptz + "     \
	"$5::bigint * interval '1 millisecond' FROM c, events e WHERE d.id = c.id AND " \
	"e.id = d.event_id RETURNING d.id, d.event_id, d.attempts, d.relay, e.kind, "   \
	"e.format, " PG_TIME("e.received_at") " AS received_at, e.payload, " PG_TIME(   \
	    "d.next_attempt_at") " AS next_attempt_at"

struct pg_conn;
struct store_pg_rows;

/* What the loop's handle answers without I/O, as the last refresh found it. */
struct store_pg_relay_count {
	char *name;
	long long pending, dead;
};
struct store_pg_paused {
	char *name, *paused_at, *reason;
};
struct store_pg_snapshot {
	int ok;	       /* 0 before the first refresh or after a failed one */
	char err[256]; /* why, when not ok */
	long long pending, dead;
	struct store_pg_relay_count *relays;
	size_t nrelays;
	struct store_pg_paused *paused;
	size_t npaused;
	char next_due[32]; /* "" when nothing is pending */
};

struct store_pg {
	struct pg_conn *conn; /* NULL in a view */
	char *node;
	int view;		 /* the loop's handle: snapshot reads only */
	struct store_pg *shared; /* a view's writer state (the snapshot's owner) */
	pthread_mutex_t mu;	 /* guards snap */
	struct store_pg_snapshot snap;
};

/* Runs one statement with n text parameters (NULL is SQL NULL). Statements given as
 * static strings with prepare = 1 are prepared once per connection. The result, or NULL
 * with st->err set (the connection is marked for reconnection when it broke). */
struct store_pg_rows *store_pg_query(
    struct store *, const char *sql, int prepare, int n, const char *const *params);
/* The same for a statement whose rows are not needed: rows changed, or -1. */
int store_pg_run(struct store *, const char *sql, int prepare, int n, const char *const *params);
int store_pg_nrows(const struct store_pg_rows *);
/* A value as text; NULL for SQL NULL. */
const char *store_pg_get(const struct store_pg_rows *, int row, int col);
long long store_pg_num(const struct store_pg_rows *, int row, int col);
int store_pg_changed(const struct store_pg_rows *);
void store_pg_rows_free(struct store_pg_rows *);

/* Sets st->err to a formatted reason. */
void store_pg_error(struct store *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* store-pg-write.c, store-pg-admin.c: the backend's members (store-backend.h). */
int store_pg_event_insert(struct store *, struct webhook_event *);
int store_pg_event_seen(struct store *, const char *kind, const char *message_id);
int store_pg_probe(struct store *);
int store_pg_due(struct store *, const char *relay, const char *now, size_t limit, int64_t claim_ms,
    struct store_delivery **out);
/* The rows of PG_DUE_CLAIM as deliveries, oldest first (*out freed by the caller). */
int store_pg_deliveries(const struct store_pg_rows *, struct store_delivery **out);
/* store-pg-rate.c */
int store_pg_due_rated(struct store *, const char *relay, const char *now, size_t limit,
    int64_t claim_ms, struct store_rate *, struct store_delivery **out);
int store_pg_delivery_record(struct store *, const struct store_delivery *, const char *state,
    const char *next_at, const char *last_at, const char *result, const char *done_at);
int store_pg_unblock_next(struct store *, int64_t delivery_id);
int store_pg_relay_set_paused(
    struct store *, const char *relay, int paused, const char *now, const char *reason);
int store_pg_relay_unorder(struct store *, const char *relay);
int store_pg_relay_drop(struct store *, const char *relay, const char *now, const char *reason);
int store_pg_delivery_move(struct store *, int64_t, const char *relay, const char *now);
int store_pg_retention(struct store *, const char *before, int limit);
int store_pg_provision_ok(struct store *, const struct store_provision_rule *);
int store_pg_provision_error(
    struct store *, const char *kind, const char *rule_name, const char *error);
/* store-pg-snapshot.c: the reads the loop makes, from the snapshot in a view and from the
 * database otherwise (the operator tool); refresh fills the snapshot. */
int store_pg_health(struct store *, long long *pending, long long *dead, char *err, size_t);
int store_pg_relay_counts(struct store *, const char *, long long *, long long *, int *);
int store_pg_paused_relays(struct store *, store_paused_cb, void *);
int store_pg_pending_relays(struct store *, void (*)(const char *, long long, void *), void *);
int store_pg_next_due(struct store *, char buf[32]);
int store_pg_refresh(struct store *);
void store_pg_snapshot_clear(struct store_pg_snapshot *);

int store_pg_admin_events(
    struct store *, const struct store_admin_event_filter *, store_admin_event_cb, void *);
int store_pg_admin_deliveries(
    struct store *, const struct store_admin_delivery_filter *, store_admin_delivery_cb, void *);
int store_pg_admin_kind_counts(struct store *, store_admin_count_cb, void *);
int store_pg_admin_relay_counts(struct store *, store_admin_count_cb, void *);
int store_pg_admin_rules(struct store *, store_admin_rule_cb, void *);
int store_pg_admin_requeue(struct store *, int64_t, const char *now);
int store_pg_admin_requeue_dead(struct store *, const char *relay, const char *now);
int store_pg_admin_delivery_create(struct store *, int64_t, const char *relay, const char *now);
int store_pg_admin_relay_last(struct store *, const char *, store_admin_delivery_cb, void *);

#endif
