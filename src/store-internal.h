/* SPDX-License-Identifier: ISC */
/* Shared between the store's files (store.c, store-event.c, ...): the handle and the
 * prepared statements. Nothing outside store-*.c includes this. */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store-admin.h"
#include "store-provision.h"
#include "store.h"

struct store_backend;

enum store_stmt {
	STMT_EVENT_INSERT,
	STMT_EVENT_DUPLICATE,
	STMT_DELIVERY_INSERT,
	STMT_HEALTH,
	STMT_RELAY_COUNTS,
	STMT_DUE,
	STMT_DELIVERY_RECORD,
	STMT_RETENTION,
	STMT_NEXT_DUE,
	STMT_UNBLOCK_NEXT,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_PAUSED,
	STMT_PAUSE,
	STMT_COUNT
};

struct store_pg;
struct store_ckpt;

struct store {
	const struct store_backend *be;
	sqlite3 *db;
	char *path;
	int lock_fd; /* the daemon's lock on "<path>.lock", or -1 */
	sqlite3_stmt *stmt[STMT_COUNT];
	char err[256];
	int commit_wrote;	 /* SQLite: the last COMMIT wrote pages (store_sqlite_commit) */
	struct store_pg *pg;	 /* the PostgreSQL backend's state (store-pg*.c) */
	struct store_ckpt *ckpt; /* the daemon's checkpoint thread (store-checkpoint.c) */
};

int store_exec(struct store *, const char *sql);
/* The daemon's checkpoint thread on the writer's connection (NULL: the writer checkpoints
 * itself, as SQLite does by default); stopped before that connection closes. */
struct store_ckpt *store_ckpt_start(struct store *writer);
void store_ckpt_stop(struct store *writer, struct store_ckpt *);

/* store-walbuf.c: the VFS that gathers the WAL writes of a COMMIT (synchronous = FULL). */
const char *store_walbuf_vfs(void);
void store_bind_text(sqlite3_stmt *, int, const char *);
/* SQLITE_DONE or SQLITE_ROW, or -1 with st->err set (the statement is reset). */
int store_step_done(struct store *, sqlite3_stmt *);

/* The SQLite backend (store.c, store-event.c, store-outbox.c, store-relays.c,
 * store-admin.c, store-provision.c), reached through store_sqlite_backend. */
extern const struct store_backend store_sqlite_backend;
int store_sqlite_probe(struct store *st);
void store_sqlite_close(struct store *st);
void store_sqlite_set_busy_timeout(struct store *st, int ms);
const char *store_sqlite_errmsg(struct store *st);
int store_sqlite_begin(struct store *st);
int store_sqlite_commit(struct store *st);
void store_sqlite_rollback(struct store *st);
int store_sqlite_savepoint(struct store *st);
int store_sqlite_release(struct store *st);
void store_sqlite_rollback_savepoint(struct store *st);
int store_sqlite_event_insert(struct store *st, struct webhook_event *ev);
int store_sqlite_event_seen(struct store *st, const char *kind, const char *message_id);
int store_sqlite_health(
    struct store *st, long long *pending, long long *dead, char *err, size_t errlen);
int store_sqlite_relay_counts(
    struct store *st, const char *relay, long long *pending, long long *dead, int *paused);
int store_sqlite_due(struct store *st, const char *relay, const char *now, size_t limit,
    int64_t claim_ms, struct store_delivery **out);
int store_sqlite_pending_relays(
    struct store *st, void (*fn)(const char *, long long, void *), void *arg);
int store_sqlite_delivery_record(struct store *st, const struct store_delivery *d,
    const char *state, const char *next_at, const char *last_at, const char *result,
    const char *done_at);
int store_sqlite_unblock_next(struct store *st, int64_t delivery_id);
int store_sqlite_retention(struct store *st, const char *before, int limit);
int store_sqlite_next_due(struct store *st, char buf[32]);
int store_sqlite_paused_relays(struct store *st, store_paused_cb cb, void *arg);
int store_sqlite_relay_set_paused(
    struct store *st, const char *relay, int paused, const char *now, const char *reason);
int store_sqlite_relay_unorder(struct store *st, const char *relay);
int store_sqlite_relay_drop(
    struct store *st, const char *relay, const char *now, const char *reason);
int store_sqlite_delivery_move(
    struct store *st, int64_t delivery_id, const char *relay, const char *now);
int store_sqlite_admin_events(
    struct store *st, const struct store_admin_event_filter *f, store_admin_event_cb cb, void *arg);
int store_sqlite_admin_deliveries(struct store *st, const struct store_admin_delivery_filter *f,
    store_admin_delivery_cb cb, void *arg);
int store_sqlite_admin_kind_counts(struct store *st, store_admin_count_cb cb, void *arg);
int store_sqlite_admin_relay_counts(struct store *st, store_admin_count_cb cb, void *arg);
int store_sqlite_admin_rules(struct store *st, store_admin_rule_cb cb, void *arg);
int store_sqlite_admin_requeue(struct store *st, int64_t delivery_id, const char *now);
int store_sqlite_admin_requeue_dead(struct store *st, const char *relay, const char *now);
int store_sqlite_admin_delivery_create(
    struct store *st, int64_t event_id, const char *relay, const char *now);
int store_sqlite_admin_relay_last(
    struct store *st, const char *relay, store_admin_delivery_cb cb, void *arg);
int store_sqlite_provision_ok(struct store *st, const struct store_provision_rule *r);
int store_sqlite_provision_error(
    struct store *st, const char *kind, const char *rule_name, const char *error);

#endif
