/* SPDX-License-Identifier: ISC */
/* The write path between HTTP and the store. Each request's decoded events become one
 * item of the store writer (one savepoint, so a bad request fails alone); the writer
 * commits whatever is queued in one transaction off the loop, and only then is the
 * request's callback told the outcome. So a 200 never leaves before COMMIT returned,
 * and a busy daemon groups its commits. Also the writer's health for /healthz. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "log.h"
#include "store-writer.h"
#include "store.h"
#include "xmalloc.h"

/* Past this wait for the writer the store counts as stuck (/healthz 503). */
#define INGEST_STUCK_MS 1000

struct ingest_req {
	struct ingest *in;
	struct webhook_event *evs;
	size_t n;
	size_t failed_at; /* writer side: the event whose insert failed */
	ingest_done_cb cb;
	void *arg;
};

struct ingest {
	struct store_writer *writer;
	size_t max_queue;
	void (*hook)(void *);
	void *hook_arg;
};

struct ingest *
ingest_new(struct store_writer *writer, size_t max_queue)
{
	struct ingest *in = xcalloc(1, sizeof(*in));

	in->writer = writer;
	in->max_queue = max_queue;
	return in;
}

void
ingest_free(struct ingest *in)
{
	free(in);
}

void
ingest_set_commit_hook(struct ingest *in, void (*hook)(void *), void *arg)
{
	in->hook = hook;
	in->hook_arg = arg;
}

/* Writer thread: one request's events, inside the item's savepoint. */
static int
ingest_work(void *handle, void *arg)
{
	struct ingest_req *r = arg;
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (store_event_insert(handle, &r->evs[i]) == -1) {
			r->failed_at = i;
			return -1;
		}
	}
	return 0;
}

/* Loop: the batch holding this request ended. */
static void
ingest_done(int result, const char *err, void *arg)
{
	struct ingest_req *r = arg;
	struct ingest *in = r->in;
	int added = 0;
	size_t i;

	if (result == STORE_WRITER_FAILED)
		log_warnx("store: insert of a %s event failed: %s", r->evs[r->failed_at].kind->name,
		    err);
	else if (result == STORE_WRITER_ABORTED)
		log_warnx("store: commit failed: %s", err);
	for (i = 0; result == STORE_WRITER_OK && i < r->n; i++)
		added |= !r->evs[i].duplicate && r->evs[i].nrelays > 0;
	r->cb(result == STORE_WRITER_OK ? 0 : -1, r->evs, r->n, r->arg);
	webhook_events_free(r->evs, r->n);
	free(r);
	if (added && in->hook != NULL)
		in->hook(in->hook_arg);
}

int
ingest_submit(struct ingest *in, struct webhook_event *evs, size_t n, ingest_done_cb cb, void *arg)
{
	struct ingest_req *r;

	if (in->max_queue > 0 && store_writer_queued(in->writer) >= in->max_queue) {
		webhook_events_free(evs, n);
		return -1;
	}
	r = xcalloc(1, sizeof(*r));
	r->in = in;
	r->evs = evs;
	r->n = n;
	r->cb = cb;
	r->arg = arg;
	store_writer_submit(in->writer, ingest_work, ingest_done, r);
	return 0;
}

int
ingest_health(struct ingest *in, char *err, size_t errlen)
{
	int64_t waiting;

	if (store_writer_health(in->writer, err, errlen, &waiting) == -1)
		return -1;
	if (waiting > INGEST_STUCK_MS) {
		snprintf(err, errlen, "store writer waiting for %lld ms", (long long)waiting);
		return -1;
	}
	return 0;
}

void
ingest_writer_totals(struct ingest *in, unsigned long long *batches, unsigned long long *items,
    unsigned long long *failed)
{
	struct store_writer_stats st;

	store_writer_get_stats(in->writer, &st);
	*batches = st.batches;
	*items = st.items;
	*failed = st.commits_failed;
}
