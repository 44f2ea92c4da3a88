/* SPDX-License-Identifier: ISC */
/* The event store: opening it (SQLite file or PostgreSQL URL), transactions, the write
 * path's queries. One interface over both backends (store-backend.h); SQLite is
 * store.c and its store-*.c siblings, PostgreSQL store-pg*.c. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>
#include "webhook.h"

struct store;
struct store_writer_ops;

/* The store writer's transaction primitives; the handle is a struct store * opened for
 * writing and used only by the writer thread (store-writer.h). */
extern const struct store_writer_ops store_write_ops;

/* Where the store is: a PostgreSQL URL (libpq URI or key=value string) when url is set,
 * else the SQLite file at path. node names this daemon in a shared store. */
struct store_target {
	const char *path, *url, *node;
	int synchronous_full;
};
/* Opens (creating and migrating) the store the target names; daemon: the SQLite store
 * takes its one-daemon lock (store_open_daemon), and a PostgreSQL server that cannot be
 * reached yet is connected to later (store_pg_open lazy). NULL with a reason in cause. */
struct store *store_open_for(const struct store_target *, int daemon, char **cause);
/* The PostgreSQL store: connects, applies or migrates the schema. The cause never holds
 * the password. lazy (the daemon): a server that cannot be reached yet is not an error;
 * the handle connects (and migrates) later, with back-off, and fails writes until then. */
struct store *store_pg_open(const char *url, const char *node, int lazy, char **cause);
/* The daemon loop's handle beside the writer's (which the writer thread owns): a second
 * SQLite connection for reads, or for PostgreSQL a view answering from the snapshot that
 * store_refresh keeps, so the loop never waits on the network. */
struct store *store_open_reader(struct store *writer, char **cause);
/* 1 when nodes share the store (PostgreSQL): the daemon refreshes the loop's snapshot
 * and runs provisioning, polling and retention only while it is the leader. */
int store_shared(const struct store *);
/* 0 when libpq can parse the connection string, else -1 (no reason: libpq's would quote
 * the string, password included). */
int store_pg_url_check(const char *url);

/* Open (creating and migrating) the SQLite store. NULL with a reason in cause on failure. */
struct store *store_open(const char *path, int synchronous_full, char **cause);
/* The same for the daemon, which first takes the store's lock ("<path>.lock"): one daemon
 * per store. When another process holds it: NULL, errno EBUSY and a cause naming the
 * store, the holder's pid and the lock file. Other failures leave errno 0. */
struct store *store_open_daemon(const char *path, int synchronous_full, char **cause);
void store_close(struct store *);
const char *store_path(const struct store *);
/* How long a statement waits for another process's lock (default 5 s; the daemon's loop
 * uses a short wait and answers 503 rather than stall). */
void store_set_busy_timeout(struct store *, int ms);

/* Transactions: the caller groups any number of inserts between begin and commit. */
int store_begin(struct store *);
int store_commit(struct store *);
void store_rollback(struct store *);
/* Savepoints let one request's events fail without failing its neighbours. */
int store_savepoint(struct store *);
int store_release(struct store *);
void store_rollback_savepoint(struct store *);

/*
 * Insert one event (inside a transaction) and its delivery rows (ev->relays).
 * A duplicate (same dedupe_key) bumps the stored row's duplicates count and sets
 * ev->duplicate, ev->id to the stored row. Returns 0, or -1 on a store error.
 */
int store_event_insert(struct store *, struct webhook_event *);

/* Whether an event of KIND with that message_id is stored (any node's, in a shared
 * store): 1, 0, or -1. */
int store_event_seen(struct store *, const char *kind, const char *message_id);

/* 1 when the last failure was a conflict with another node's transaction that may pass
 * when the work runs again (PostgreSQL deadlock or serialization failure). */
int store_retryable(struct store *);

/* The last error text of the store connection. */
const char *store_errmsg(struct store *);

/* Health: 0 and counts when the store answers, -1 with a reason otherwise. Reads only. */
int store_health(struct store *, long long *pending, long long *dead, char *err, size_t errlen);

/* A real write that changes nothing visible, for the writer's health probe. 0 or -1. */
int store_probe(struct store *);

/* Pending and dead deliveries of one relay. 0 or -1. */
/* A relay's pending and dead deliveries, and whether it is paused. */
int store_relay_counts(
    struct store *, const char *relay, long long *pending, long long *dead, int *paused);

/* A delivery with what an attempt needs from its event. */
struct store_delivery {
	int64_t id, event_id;
	int attempts;
	char *relay, *kind, *format, *received_at, *payload;
	char *next_attempt_at; /* as read: the row is recorded only if still so */
};

/* Pending deliveries of RELAY due at NOW (time text), oldest first. In a shared store the
 * rows are claimed for this node for claim_ms (rows another node claims are skipped);
 * SQLite ignores it. Count or -1. */
int store_due(struct store *, const char *relay, const char *now, size_t limit, int64_t claim_ms,
    struct store_delivery **out);
/* A relay's rate in store_due_rated: at most n attempts started in any window_ms. */
struct store_rate {
	unsigned n;
	int64_t window_ms;
	const int64_t *skip; /* rows this node's jobs hold: not claimed again */
	size_t nskip;
	int64_t wait_ms; /* out: > 0 when every free token was taken, fewer than limit:
			  * no token frees before that many ms */
};
/*
 * store_due for a relay with a rate, the limit shared by every node of a shared store:
 * takes up to limit tokens of the rate and claims at most that many rows, which the caller
 * starts at once (each counts as started now, on every node). A store of one daemon
 * (SQLite) takes no tokens: it returns what store_due does (the daemon's own limiter
 * holds) and the rows in skip among them. Count or -1.
 */
int store_due_rated(struct store *, const char *relay, const char *now, size_t limit,
    int64_t claim_ms, struct store_rate *rate, struct store_delivery **out);
void store_deliveries_free(struct store_delivery *, size_t n);
/* Frees one delivery's strings (not the delivery itself) and zeroes it. */
void store_deliveries_free_one(struct store_delivery *);
/*
 * Records one attempt of D: attempts + 1 and the new state; NULL texts are stored as
 * NULL. Only while the row is as the attempt found it (pending, same next_attempt_at):
 * an operator's retry or replay meanwhile wins. 1 recorded, 0 row changed meanwhile, -1.
 */
/* After a delivery ended (done or dead), the next of its conversation is due. 0 or -1. */
int store_unblock_next(struct store *, int64_t delivery_id);

/* Relay controls (store-relays.c). */
typedef void (*store_paused_cb)(
    const char *relay, const char *paused_at, const char *reason, void *arg);
/* Every paused relay, by name. 0 or -1. */
int store_paused_relays(struct store *, store_paused_cb, void *arg);
/* Pauses (with when and why) or resumes a relay; 0 or -1. */
int store_relay_set_paused(
    struct store *, const char *relay, int paused, const char *now, const char *reason);
/* A relay no longer ordered: its waiting deliveries are all free to go. Rows or -1. */
int store_relay_unorder(struct store *, const char *relay);
/* Marks a relay's pending deliveries dead with REASON. Rows or -1. */
int store_relay_drop(struct store *, const char *relay, const char *now, const char *reason);
/* Moves a delivery (not done) to RELAY, pending and due NOW; 0 when the event already has
 * a delivery for RELAY or the row is done or gone, 1 moved, -1. */
int store_delivery_move(struct store *, int64_t delivery_id, const char *relay, const char *now);

int store_delivery_record(struct store *, const struct store_delivery *d, const char *state,
    const char *next_at, const char *last_at, const char *result, const char *done_at);
/* Calls FN for every relay name with pending deliveries, with their count. 0 or -1. */
int store_pending_relays(
    struct store *, void (*fn)(const char *relay, long long n, void *), void *arg);

/* Deletes up to LIMIT events received before BEFORE whose deliveries are all done.
 * Returns the number deleted or -1. */
int store_retention(struct store *, const char *before, int limit);

/* Writer thread: brings what the loop's handle answers without I/O (health, counts,
 * paused relays, next due) up to date; a no-op for SQLite, whose loop reads are local.
 * 0 or -1. */
int store_refresh(struct store *);
/* Writer thread: 1 when this node may run provisioning, polling and retention (always,
 * for SQLite; the holder of an advisory lock, for PostgreSQL), 0 standby, -1 error. */
int store_leader(struct store *);

/* "YYYY-MM-DDTHH:MM:SS.sssZ" for now + offset_ms, in UTC. */
void store_time_text(char buf[32], int64_t offset_ms);
/* Milliseconds from now until the time text T (negative when past); 0 on a bad text. */
int64_t store_time_until(const char *t);
/* The earliest next_attempt_at of a pending delivery into buf: 1, 0 when none, -1. */
int store_next_due(struct store *, char buf[32]);

#endif
