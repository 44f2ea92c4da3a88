/* SPDX-License-Identifier: ISC */
/* The store writer thread: a queue of work items from the loop, one transaction per
 * batch on the writer thread, and completions handed back to the loop through an
 * eventfd. The batch life and the thread rules are described in store-writer.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "store-writer.h"
#include "xmalloc.h"

#define WRITER_ITEM_TRIES 3 /* runs of one item that failed on a retryable conflict */

struct writer_item {
	store_work_fn work;
	store_done_fn done;
	void *arg;
	int result;
	char *err;
	int64_t submitted_ms; /* monotonic */
	TAILQ_ENTRY(writer_item) entry;
};
TAILQ_HEAD(writer_list, writer_item);

struct store_writer {
	const struct store_writer_ops *ops;
	void *handle;
	size_t max_batch;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work_cond; /* the queue gained an item, or stop */
	pthread_cond_t idle_cond; /* a batch finished */
	struct writer_list queue; /* submitted, not yet taken by the thread */
	struct writer_list done;  /* finished, done() not yet run */
	int running;		  /* the thread holds a batch */
	int64_t running_since_ms; /* submission time of the running batch's first item */
	int last_failed;	  /* the last batch's begin or commit failed (reads aside) */
	char last_err[256];
	int logged_failed; /* loop side: the failure state last logged (set under mu) */
	int stop;
	struct store_writer_stats stats;
	size_t outstanding; /* loop side: submitted and not yet completed */
	int efd;
	struct event *ev;
};

static int64_t
writer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The failure text of the backend now, or a fixed one. */
static char *
writer_err(struct store_writer *w)
{
	const char *e = w->ops->errmsg(w->handle);

	return xstrdup(e != NULL && *e != '\0' ? e : "store error");
}

static void
writer_fail_all(struct writer_list *batch, int result, const char *err)
{
	struct writer_item *it;

	TAILQ_FOREACH(it, batch, entry) {
		it->result = result;
		free(it->err);
		it->err = xstrdup(err);
	}
}

/* One item inside its own savepoint. An item that failed on a conflict the backend
 * says may pass when run again (another node's transaction in a deadlock with this one)
 * is rolled back to its savepoint and run again, up to WRITER_ITEM_TRIES times. */
static void
writer_run_item(struct store_writer *w, struct writer_item *it)
{
	int tries = 0;

again:
	if (w->ops->savepoint(w->handle) == -1) {
		it->result = STORE_WRITER_FAILED;
		it->err = writer_err(w);
		return;
	}
	if (it->work(w->handle, it->arg) == -1) {
		if (++tries < WRITER_ITEM_TRIES && w->ops->retryable != NULL &&
		    w->ops->retryable(w->handle)) {
			w->ops->rollback_savepoint(w->handle);
			goto again;
		}
		it->result = STORE_WRITER_FAILED;
		it->err = writer_err(w);
		w->ops->rollback_savepoint(w->handle);
		return;
	}
	if (w->ops->release(w->handle) == -1) {
		it->result = STORE_WRITER_FAILED;
		it->err = writer_err(w);
		w->ops->rollback_savepoint(w->handle);
		return;
	}
	it->result = STORE_WRITER_OK;
}

/* Runs one batch as one transaction: -1 when begin or commit failed, 1 when it committed
 * a write, 0 when it committed having only read. */
static int
writer_run_batch(struct store_writer *w, struct writer_list *batch)
{
	struct writer_item *it;
	char *err;

	if (w->ops->begin(w->handle) == -1) {
		err = writer_err(w);
		writer_fail_all(batch, STORE_WRITER_ABORTED, err);
		free(err);
		return -1;
	}
	TAILQ_FOREACH(it, batch, entry)
		writer_run_item(w, it);
	if (w->ops->commit(w->handle) == -1) {
		err = writer_err(w);
		w->ops->rollback(w->handle);
		writer_fail_all(batch, STORE_WRITER_ABORTED, err);
		free(err);
		return -1;
	}
	return w->ops->wrote == NULL || w->ops->wrote(w->handle) ? 1 : 0;
}

/* Takes up to max_batch items off the queue; called with the lock held. */
static size_t
writer_take(struct store_writer *w, struct writer_list *batch)
{
	struct writer_item *it;
	size_t n = 0;

	while (n < w->max_batch && (it = TAILQ_FIRST(&w->queue)) != NULL) {
		TAILQ_REMOVE(&w->queue, it, entry);
		TAILQ_INSERT_TAIL(batch, it, entry);
		n++;
	}
	return n;
}

static void
writer_wake_loop(struct store_writer *w)
{
	uint64_t one = 1;

	while (write(w->efd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

static void *
writer_thread(void *arg)
{
	struct store_writer *w = arg;
	struct writer_list batch;
	size_t n;
	int rc;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && TAILQ_EMPTY(&w->queue))
			pthread_cond_wait(&w->work_cond, &w->mu);
		if (TAILQ_EMPTY(&w->queue))
			break;
		TAILQ_INIT(&batch);
		w->running_since_ms = TAILQ_FIRST(&w->queue)->submitted_ms;
		n = writer_take(w, &batch);
		w->running = 1;
		pthread_mutex_unlock(&w->mu);
		rc = writer_run_batch(w, &batch);
		pthread_mutex_lock(&w->mu);
		if (rc == -1)
			snprintf(w->last_err, sizeof(w->last_err), "%s", TAILQ_FIRST(&batch)->err);
		if (rc != 0)
			w->last_failed = rc == -1;
		TAILQ_CONCAT(&w->done, &batch, entry);
		w->running = 0;
		w->stats.batches++;
		w->stats.items += n;
		w->stats.commits_failed += rc == -1;
		if (n > w->stats.largest_batch)
			w->stats.largest_batch = n;
		pthread_cond_broadcast(&w->idle_cond);
		writer_wake_loop(w);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Loop side: runs done() for every finished item, in submission order, after one log
 * line when commits have started failing or work again. */
static void
writer_complete(struct store_writer *w)
{
	struct writer_list done;
	struct writer_item *it;
	char err[sizeof(w->last_err)];
	int turned;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&w->mu);
	TAILQ_CONCAT(&done, &w->done, entry);
	if ((turned = w->last_failed != w->logged_failed)) {
		w->logged_failed = w->last_failed;
		memcpy(err, w->last_err, sizeof(err));
	}
	pthread_mutex_unlock(&w->mu);
	if (turned && w->logged_failed)
		log_warnx("store: commits fail: %s", err);
	else if (turned)
		log_notice("store: commits work again");
	while ((it = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, it, entry);
		w->outstanding--;
		if (it->done != NULL)
			it->done(it->result, it->err, it->arg);
		free(it->err);
		free(it);
	}
}

static void
writer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN && errno != EINTR)
		log_warn("store writer: eventfd read");
	writer_complete(arg);
}

struct store_writer *
store_writer_new(
    struct event_base *base, const struct store_writer_ops *ops, void *handle, size_t max_batch)
{
	struct store_writer *w = xcalloc(1, sizeof(*w));

	w->ops = ops;
	w->handle = handle;
	w->max_batch = max_batch > 0 ? max_batch : 1;
	TAILQ_INIT(&w->queue);
	TAILQ_INIT(&w->done);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work_cond, NULL);
	pthread_cond_init(&w->idle_cond, NULL);
	if ((w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("store writer: eventfd");
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, writer_event_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) == -1)
		fatalx("store writer: cannot watch the eventfd");
	if ((errno = pthread_create(&w->thread, NULL, writer_thread, w)) != 0)
		fatal("store writer: pthread_create");
	return w;
}

void
store_writer_submit(struct store_writer *w, store_work_fn work, store_done_fn done, void *arg)
{
	struct writer_item *it = xcalloc(1, sizeof(*it));

	it->work = work;
	it->done = done;
	it->arg = arg;
	it->submitted_ms = writer_now_ms();
	w->outstanding++;
	pthread_mutex_lock(&w->mu);
	TAILQ_INSERT_TAIL(&w->queue, it, entry);
	pthread_cond_signal(&w->work_cond);
	pthread_mutex_unlock(&w->mu);
}

void
store_writer_drain(struct store_writer *w)
{
	while (w->outstanding > 0) {
		pthread_mutex_lock(&w->mu);
		while (!TAILQ_EMPTY(&w->queue) || w->running)
			pthread_cond_wait(&w->idle_cond, &w->mu);
		pthread_mutex_unlock(&w->mu);
		writer_complete(w);
	}
}

size_t
store_writer_queued(const struct store_writer *w)
{
	return w->outstanding;
}

int
store_writer_health(struct store_writer *w, char *err, size_t errlen, int64_t *waiting_ms)
{
	int64_t since = -1;
	int failed;

	pthread_mutex_lock(&w->mu);
	if (w->running)
		since = w->running_since_ms;
	else if (!TAILQ_EMPTY(&w->queue))
		since = TAILQ_FIRST(&w->queue)->submitted_ms;
	if ((failed = w->last_failed))
		snprintf(err, errlen, "%s", w->last_err);
	pthread_mutex_unlock(&w->mu);
	*waiting_ms = since < 0 ? 0 : writer_now_ms() - since;
	return failed ? -1 : 0;
}

void
store_writer_get_stats(const struct store_writer *w, struct store_writer_stats *out)
{
	pthread_mutex_lock((pthread_mutex_t *)&w->mu);
	*out = w->stats;
	pthread_mutex_unlock((pthread_mutex_t *)&w->mu);
}

void
store_writer_free(struct store_writer *w)
{
	if (w == NULL)
		return;
	store_writer_drain(w);
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->work_cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	event_free(w->ev);
	close(w->efd);
	pthread_cond_destroy(&w->work_cond);
	pthread_cond_destroy(&w->idle_cond);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
