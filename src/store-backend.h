/* SPDX-License-Identifier: ISC */
/*
 * The seam between the store's public functions (store.h, store-admin.h,
 * store-provision.h) and a backend: SQLite (store.c and its store-*.c siblings) or
 * PostgreSQL (store-pg*.c). Every public function is a call through st->be; a backend
 * fills every member except those marked optional. Nothing outside store-*.c includes
 * this.
 *
 * Threads: the daemon gives each handle to one thread. The writer thread's handle
 * (store-writer.h) runs the transactions; the loop's handle answers health, counts and
 * paused relays, which a backend whose reads may wait on the network (PostgreSQL)
 * answers from a snapshot that refresh() updates on the writer thread.
 */
#ifndef STORE_BACKEND_H
#define STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "store-admin.h"
#include "store-provision.h"
#include "store.h"

struct store_backend {
	const char *name; /* "sqlite", "postgresql" */
	void (*close)(struct store *);
	/* The daemon loop's handle beside a writer handle: SQLite opens a second connection,
	 * PostgreSQL a view of the writer's snapshot. NULL with a reason in cause. */
	struct store *(*open_reader)(struct store *writer, char **cause);
	void (*set_busy_timeout)(struct store *, int ms);
	const char *(*errmsg)(struct store *);

	int (*begin)(struct store *);
	int (*commit)(struct store *);
	/* Optional (absent: every commit writes): 1 when the last commit wrote pages. */
	int (*wrote)(struct store *);
	void (*rollback)(struct store *);
	int (*savepoint)(struct store *);
	int (*release)(struct store *);
	void (*rollback_savepoint)(struct store *);

	int (*event_insert)(struct store *, struct webhook_event *);
	int (*event_seen)(struct store *, const char *kind, const char *message_id);
	int (*health)(struct store *, long long *pending, long long *dead, char *err, size_t);
	int (*probe)(struct store *);
	int (*relay_counts)(struct store *, const char *, long long *, long long *, int *);
	int (*due)(struct store *, const char *relay, const char *now, size_t limit,
	    int64_t claim_ms, struct store_delivery **out);
	/* Optional (absent: due, the rate left to the daemon). store_due_rated. */
	int (*due_rated)(struct store *, const char *relay, const char *now, size_t limit,
	    int64_t claim_ms, struct store_rate *, struct store_delivery **out);
	int (*delivery_record)(struct store *, const struct store_delivery *, const char *state,
	    const char *next_at, const char *last_at, const char *result, const char *done_at);
	int (*unblock_next)(struct store *, int64_t delivery_id);
	int (*paused_relays)(struct store *, store_paused_cb, void *);
	int (*relay_set_paused)(
	    struct store *, const char *, int, const char *now, const char *reason);
	int (*relay_unorder)(struct store *, const char *relay);
	int (*relay_drop)(struct store *, const char *, const char *now, const char *reason);
	int (*delivery_move)(struct store *, int64_t, const char *relay, const char *now);
	int (*pending_relays)(struct store *, void (*)(const char *, long long, void *), void *);
	int (*retention)(struct store *, const char *before, int limit);
	int (*next_due)(struct store *, char buf[32]);

	int (*provision_ok)(struct store *, const struct store_provision_rule *);
	int (*provision_error)(struct store *, const char *, const char *, const char *);

	int (*admin_events)(
	    struct store *, const struct store_admin_event_filter *, store_admin_event_cb, void *);
	int (*admin_deliveries)(struct store *, const struct store_admin_delivery_filter *,
	    store_admin_delivery_cb, void *);
	int (*admin_kind_counts)(struct store *, store_admin_count_cb, void *);
	int (*admin_relay_counts)(struct store *, store_admin_count_cb, void *);
	int (*admin_rules)(struct store *, store_admin_rule_cb, void *);
	int (*admin_requeue)(struct store *, int64_t, const char *now);
	int (*admin_requeue_dead)(struct store *, const char *relay, const char *now);
	int (*admin_delivery_create)(struct store *, int64_t, const char *relay, const char *now);
	int (*admin_relay_last)(struct store *, const char *, store_admin_delivery_cb, void *);

	/* Optional: the last failure may pass when run again (store_retryable). */
	int (*retryable)(struct store *);
	/* Optional. Writer thread: brings the loop's snapshot up to date. 0 or -1. */
	int (*refresh)(struct store *);
	/* Optional (absent: always 1). Writer thread: takes or keeps the store-wide lock
	 * of the node that runs provisioning, polling and retention; 1 held, 0 another
	 * node holds it, -1 error. */
	int (*leader)(struct store *);
};

#endif
