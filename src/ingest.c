/* SPDX-License-Identifier: ISC */
/* The write path between HTTP and the store. Requests queue their decoded events and
 * return; on the next loop turn one transaction commits every queued request (each in
 * its own savepoint) and only then is each request's callback told the outcome. So a
 * 200 can never leave before COMMIT returned, and a busy daemon groups its commits. */
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "xmalloc.h"

struct ingest_req {
	struct webhook_event *evs;
	size_t n;
	int result;
	ingest_done_cb cb;
	void *arg;
	TAILQ_ENTRY(ingest_req) entry;
};
TAILQ_HEAD(ingest_queue, ingest_req);

struct ingest {
	struct store *store;
	struct event *commit_ev;
	struct ingest_queue queue;
	void (*hook)(void *);
	void *hook_arg;
};

static void ingest_commit_cb(evutil_socket_t, short, void *);

struct ingest *
ingest_new(struct event_base *base, struct store *store)
{
	struct ingest *in = xcalloc(1, sizeof(*in));

	in->store = store;
	TAILQ_INIT(&in->queue);
	in->commit_ev = event_new(base, -1, 0, ingest_commit_cb, in);
	if (in->commit_ev == NULL)
		fatalx("ingest: event_new failed");
	return in;
}

void
ingest_free(struct ingest *in)
{
	if (in == NULL)
		return;
	ingest_flush(in);
	event_free(in->commit_ev);
	free(in);
}

void
ingest_set_commit_hook(struct ingest *in, void (*hook)(void *), void *arg)
{
	in->hook = hook;
	in->hook_arg = arg;
}

void
ingest_submit(struct ingest *in, struct webhook_event *evs, size_t n, ingest_done_cb cb, void *arg)
{
	struct ingest_req *r = xcalloc(1, sizeof(*r));

	r->evs = evs;
	r->n = n;
	r->cb = cb;
	r->arg = arg;
	TAILQ_INSERT_TAIL(&in->queue, r, entry);
	if (!event_pending(in->commit_ev, EV_TIMEOUT, NULL))
		event_active(in->commit_ev, EV_TIMEOUT, 0);
}

/* One request's events inside a savepoint, so a bad one fails alone. */
static int
ingest_store_req(struct ingest *in, struct ingest_req *r)
{
	size_t i;

	if (store_savepoint(in->store) == -1)
		return -1;
	for (i = 0; i < r->n; i++) {
		if (store_event_insert(in->store, &r->evs[i]) == -1) {
			log_warnx("store: insert failed: %s", store_errmsg(in->store));
			store_rollback_savepoint(in->store);
			return -1;
		}
	}
	return store_release(in->store);
}

/* Runs the transaction over the whole queue; returns 1 when deliveries were added. */
static int
ingest_transaction(struct ingest *in, struct ingest_queue *q)
{
	struct ingest_req *r;
	int ok = store_begin(in->store) == 0, added = 0;

	if (!ok)
		log_warnx("store: begin failed: %s", store_errmsg(in->store));
	TAILQ_FOREACH(r, q, entry)
		r->result = ok ? ingest_store_req(in, r) : -1;
	if (ok && store_commit(in->store) == -1) {
		log_warnx("store: commit failed: %s", store_errmsg(in->store));
		TAILQ_FOREACH(r, q, entry)
			r->result = -1;
	}
	TAILQ_FOREACH(r, q, entry) {
		for (size_t i = 0; r->result == 0 && i < r->n; i++)
			added |= !r->evs[i].duplicate && r->evs[i].nrelays > 0;
	}
	return added;
}

static void
ingest_run(struct ingest *in)
{
	struct ingest_queue q;
	struct ingest_req *r;
	int added;

	if (TAILQ_EMPTY(&in->queue))
		return;
	TAILQ_INIT(&q);
	TAILQ_CONCAT(&q, &in->queue, entry);
	added = ingest_transaction(in, &q);
	while ((r = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, r, entry);
		r->cb(r->result, r->evs, r->n, r->arg);
		webhook_events_free(r->evs, r->n);
		free(r);
	}
	if (added && in->hook != NULL)
		in->hook(in->hook_arg);
}

static void
ingest_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	ingest_run(arg);
}

void
ingest_flush(struct ingest *in)
{
	ingest_run(in);
}
