/* SPDX-License-Identifier: ISC */
/*
 * The store writer: the one asynchronous seam through which every store write goes. The
 * event loop submits work items; a writer thread runs queued items in batches, one
 * transaction per batch, and hands each item's result back to the loop. The writer
 * knows nothing about SQL: a backend (SQLite today, PostgreSQL next) plugs in through
 * struct store_writer_ops, and each work item calls that backend's store functions.
 *
 * The life of one batch:
 *   1. The loop calls store_writer_submit(): the item joins the queue, the writer thread
 *      is signalled and the call returns at once. Nothing is answered yet.
 *   2. The writer thread wakes, takes every queued item (up to max_batch), and calls
 *      ops->begin. Each item's work() runs inside its own savepoint, so one failing item
 *      (an insert that breaks a constraint) is rolled back alone.
 *   3. ops->commit makes the batch durable (the fsync and any WAL checkpoint happen here,
 *      on the writer thread). If begin or commit fails (store locked by another process
 *      past the backend's busy bound, disk full) every item of the batch fails.
 *   4. The finished batch goes onto the completion list and the loop is woken through an
 *      eventfd; on the loop, each item's done() runs in submission order with its result.
 *      Only then may a webhook be answered 200 or a delivery be treated as recorded.
 * While a batch runs, new submissions queue up and form the next batch: under load, many
 * requests share one COMMIT; when idle, a batch holds a single item.
 *
 * Threads: work() runs on the writer thread and may touch only its own argument and the
 * backend handle; done() runs on the loop thread. The loop never waits on the writer
 * except in store_writer_drain() (shutdown, the operator tool).
 */
#ifndef STORE_WRITER_H
#define STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store_writer;

/* A backend's transaction primitives on its write handle; each returns 0 or -1. */
struct store_writer_ops {
	int (*begin)(void *handle);
	int (*commit)(void *handle);
	void (*rollback)(void *handle);
	int (*savepoint)(void *handle);
	int (*release)(void *handle);
	void (*rollback_savepoint)(void *handle);
	const char *(*errmsg)(void *handle);
	/* Optional: 1 when the last failure may pass if the item runs again (PostgreSQL's
	 * deadlock with another node, a serialization failure); the item is then rolled back
	 * to its savepoint and run again, at most three times in all. */
	int (*retryable)(void *handle);
	/* Optional: 1 when the commit just made wrote to the store, 0 when the batch only
	 * read. A read-only commit proves nothing about writes, so it leaves a failed writer
	 * failed. Without it, every commit counts as a write. */
	int (*wrote)(void *handle);
};

/* Results handed to done(). */
#define STORE_WRITER_OK	     0	  /* committed */
#define STORE_WRITER_FAILED  (-1) /* this item failed; its savepoint was rolled back */
#define STORE_WRITER_ABORTED (-2) /* the batch's begin or commit failed: nothing stored */

/* Writer thread, inside the batch's transaction: 0, or -1 to roll this item back. */
typedef int (*store_work_fn)(void *handle, void *arg);
/* Loop thread, after the batch ended; err is the backend's reason when result < 0. */
typedef void (*store_done_fn)(int result, const char *err, void *arg);

struct store_writer_stats {
	uint64_t batches, items, commits_failed, largest_batch;
};

struct store_writer *store_writer_new(
    struct event_base *, const struct store_writer_ops *, void *handle, size_t max_batch);
/* Queues one item; done runs later on the loop, never from inside this call. */
void store_writer_submit(struct store_writer *, store_work_fn, store_done_fn, void *arg);
/* Blocks until everything submitted so far has committed, then runs the completions. */
void store_writer_drain(struct store_writer *);
/* Items submitted whose done() has not run yet. */
size_t store_writer_queued(const struct store_writer *);
/* The writer's health: -1 with the reason in err when the last batch failed to begin or
 * commit (0 once a batch that writes commits again; reads alone do not clear it);
 * waiting_ms is how long the oldest item not yet finished has waited (0 when idle).
 * Never waits for the writer. */
int store_writer_health(struct store_writer *, char *err, size_t errlen, int64_t *waiting_ms);
void store_writer_get_stats(const struct store_writer *, struct store_writer_stats *);
/* Drains, stops the thread and frees; the handle stays the caller's. */
void store_writer_free(struct store_writer *);

#endif
