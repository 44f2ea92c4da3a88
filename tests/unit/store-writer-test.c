/* SPDX-License-Identifier: ISC */
/* Unit tests for store-writer.c against a fake backend that records its transaction
 * calls: submissions made while a batch runs share the next COMMIT, completions arrive
 * on the loop in order, a failing item is rolled back alone (a retryable conflict runs
 * again), a failed commit fails the
 * whole batch and only a commit that wrote clears it, and drain waits for everything. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "store-writer.h"
#include "tap.h"

/* The fake backend: counters and a gate that holds the first item until opened. */
struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int gate_closed, in_gate;
	int begins, commits, rollbacks, savepoints, releases, sp_rollbacks;
	int fail_commit;
	int read_only; /* commits report that nothing was written */
	int conflicts; /* items fail with a retryable conflict this many times */
	int last_conflict;
	char log[512];
};

static int
fake_begin(void *h)
{
	((struct fake *)h)->begins++;
	return 0;
}
static int
fake_commit(void *h)
{
	struct fake *f = h;

	if (f->fail_commit)
		return -1;
	f->commits++;
	return 0;
}
static void
fake_rollback(void *h)
{
	((struct fake *)h)->rollbacks++;
}
static int
fake_savepoint(void *h)
{
	((struct fake *)h)->savepoints++;
	return 0;
}
static int
fake_release(void *h)
{
	((struct fake *)h)->releases++;
	return 0;
}
static void
fake_rollback_sp(void *h)
{
	((struct fake *)h)->sp_rollbacks++;
}
static const char *
fake_errmsg(void *h)
{
	return ((struct fake *)h)->fail_commit ? "disk I/O error" : "item refused";
}

static int
fake_retryable(void *h)
{
	return ((struct fake *)h)->last_conflict;
}

static int
fake_wrote(void *h)
{
	return !((struct fake *)h)->read_only;
}

static const struct store_writer_ops fake_ops = {
	.begin = fake_begin,
	.commit = fake_commit,
	.rollback = fake_rollback,
	.savepoint = fake_savepoint,
	.release = fake_release,
	.rollback_savepoint = fake_rollback_sp,
	.errmsg = fake_errmsg,
	.retryable = fake_retryable,
	.wrote = fake_wrote,
};

static struct fake F;

struct item {
	int id, fail, gate, result, done_calls;
	char err[64];
	int order; /* position among completions */
};
static int completions;

static void
fake_reset(void)
{
	memset(&F, 0, sizeof(F));
	pthread_mutex_init(&F.mu, NULL);
	pthread_cond_init(&F.cond, NULL);
	completions = 0;
}

static int
item_work(void *h, void *arg)
{
	struct fake *f = h;
	struct item *it = arg;
	size_t n = strlen(f->log);

	if (it->gate) {
		pthread_mutex_lock(&f->mu);
		f->in_gate = 1;
		pthread_cond_broadcast(&f->cond);
		while (f->gate_closed)
			pthread_cond_wait(&f->cond, &f->mu);
		pthread_mutex_unlock(&f->mu);
	}
	snprintf(f->log + n, sizeof(f->log) - n, "%d,", it->id);
	f->last_conflict = 0;
	if (f->conflicts > 0) {
		f->conflicts--;
		f->last_conflict = 1;
		return -1;
	}
	return it->fail ? -1 : 0;
}

static void
item_done(int result, const char *err, void *arg)
{
	struct item *it = arg;

	it->result = result;
	it->done_calls++;
	it->order = completions++;
	snprintf(it->err, sizeof(it->err), "%s", err != NULL ? err : "");
}

static void
gate_wait_entered(void)
{
	pthread_mutex_lock(&F.mu);
	while (!F.in_gate)
		pthread_cond_wait(&F.cond, &F.mu);
	pthread_mutex_unlock(&F.mu);
}

static void
gate_open(void)
{
	pthread_mutex_lock(&F.mu);
	F.gate_closed = 0;
	pthread_cond_broadcast(&F.cond);
	pthread_mutex_unlock(&F.mu);
}

/* Runs the loop until N completions arrived (bounded by a few seconds). */
static void
loop_until(struct event_base *base, int n)
{
	int i;

	for (i = 0; i < 5000 && completions < n; i++) {
		struct timeval tv = { 0, 1000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

START_TEST(batches_share_commit)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct store_writer_stats st;
	struct item items[11];
	int i;

	fake_reset();
	F.gate_closed = 1;
	memset(items, 0, sizeof(items));
	w = store_writer_new(base, &fake_ops, &F, 100);
	items[0].id = 0;
	items[0].gate = 1;
	store_writer_submit(w, item_work, item_done, &items[0]);
	gate_wait_entered(); /* the first batch is running and holds the writer */
	for (i = 1; i < 11; i++) {
		items[i].id = i;
		store_writer_submit(w, item_work, item_done, &items[i]);
	}
	ck_assert_int_eq(completions, 0);
	ck_assert_uint_eq(store_writer_queued(w), 11);
	gate_open();
	loop_until(base, 11);
	ck_assert_int_eq(completions, 11);
	for (i = 0; i < 11; i++) {
		ck_assert_int_eq(items[i].result, STORE_WRITER_OK);
		ck_assert_int_eq(items[i].done_calls, 1);
		ck_assert_int_eq(items[i].order, i);
	}
	ck_assert_int_eq(F.begins, 2);
	ck_assert_int_eq(F.commits, 2);
	ck_assert_int_eq(F.savepoints, 11);
	ck_assert_str_eq(F.log, "0,1,2,3,4,5,6,7,8,9,10,");
	store_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.batches, 2);
	ck_assert_uint_eq(st.largest_batch, 10);
	ck_assert_uint_eq(store_writer_queued(w), 0);
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

START_TEST(max_batch_bounds_a_batch)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct store_writer_stats st;
	struct item items[8];
	int i;

	fake_reset();
	F.gate_closed = 1;
	memset(items, 0, sizeof(items));
	w = store_writer_new(base, &fake_ops, &F, 3);
	items[0].gate = 1;
	store_writer_submit(w, item_work, item_done, &items[0]);
	gate_wait_entered();
	for (i = 1; i < 8; i++)
		store_writer_submit(w, item_work, item_done, &items[i]);
	gate_open();
	loop_until(base, 8);
	store_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.items, 8);
	ck_assert_uint_eq(st.largest_batch, 3);
	ck_assert_uint_eq(st.batches, 4); /* 1 + 3 + 3 + 1 */
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

START_TEST(failing_item_alone)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct item items[3];

	fake_reset();
	F.gate_closed = 1;
	memset(items, 0, sizeof(items));
	w = store_writer_new(base, &fake_ops, &F, 100);
	items[0].gate = 1;
	store_writer_submit(w, item_work, item_done, &items[0]);
	gate_wait_entered();
	items[1].fail = 1;
	store_writer_submit(w, item_work, item_done, &items[1]);
	store_writer_submit(w, item_work, item_done, &items[2]);
	gate_open();
	loop_until(base, 3);
	ck_assert_int_eq(items[0].result, STORE_WRITER_OK);
	ck_assert_int_eq(items[1].result, STORE_WRITER_FAILED);
	ck_assert_str_eq(items[1].err, "item refused");
	ck_assert_int_eq(items[2].result, STORE_WRITER_OK);
	ck_assert_int_eq(F.sp_rollbacks, 1);
	ck_assert_int_eq(F.commits, 2);
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

/* A conflict that may pass (a deadlock with another node) is rolled back to the item's
 * savepoint and run again, at most three runs in all; then the item fails alone. */
START_TEST(conflict_runs_again)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct item items[2];

	fake_reset();
	memset(items, 0, sizeof(items));
	items[0].id = 1;
	items[1].id = 2;
	w = store_writer_new(base, &fake_ops, &F, 100);
	F.conflicts = 2;
	store_writer_submit(w, item_work, item_done, &items[0]);
	loop_until(base, 1);
	ck_assert_int_eq(items[0].result, STORE_WRITER_OK);
	ck_assert_str_eq(F.log, "1,1,1,");
	ck_assert_int_eq(F.sp_rollbacks, 2);
	F.conflicts = 5;
	store_writer_submit(w, item_work, item_done, &items[1]);
	loop_until(base, 2);
	ck_assert_int_eq(items[1].result, STORE_WRITER_FAILED);
	ck_assert_str_eq(F.log, "1,1,1,2,2,2,");
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

START_TEST(failed_commit_fails_batch)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct item items[4];
	int i;

	fake_reset();
	F.fail_commit = 1;
	memset(items, 0, sizeof(items));
	w = store_writer_new(base, &fake_ops, &F, 100);
	for (i = 0; i < 4; i++)
		store_writer_submit(w, item_work, item_done, &items[i]);
	loop_until(base, 4);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(items[i].result, STORE_WRITER_ABORTED);
		ck_assert_str_eq(items[i].err, "disk I/O error");
	}
	ck_assert_int_ge(F.rollbacks, 1);
	ck_assert_int_eq(F.commits, 0);
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

/* Health: a failed commit makes the writer unhealthy; a batch that only read and
 * committed leaves it so (it proves nothing about writes); a write that commits clears it. */
START_TEST(read_only_commit_keeps_failure)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct item items[3];
	char err[128];
	int64_t waiting;

	fake_reset();
	memset(items, 0, sizeof(items));
	w = store_writer_new(base, &fake_ops, &F, 100);
	ck_assert_int_eq(store_writer_health(w, err, sizeof(err), &waiting), 0);
	F.fail_commit = 1;
	store_writer_submit(w, item_work, item_done, &items[0]);
	loop_until(base, 1);
	ck_assert_int_eq(store_writer_health(w, err, sizeof(err), &waiting), -1);
	ck_assert_str_eq(err, "disk I/O error");
	F.fail_commit = 0;
	F.read_only = 1;
	store_writer_submit(w, item_work, item_done, &items[1]);
	loop_until(base, 2);
	ck_assert_int_eq(items[1].result, STORE_WRITER_OK);
	ck_assert_int_eq(store_writer_health(w, err, sizeof(err), &waiting), -1);
	F.read_only = 0;
	store_writer_submit(w, item_work, item_done, &items[2]);
	loop_until(base, 3);
	ck_assert_int_eq(store_writer_health(w, err, sizeof(err), &waiting), 0);
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

START_TEST(drain_runs_completions)
{
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct item items[5];
	int i;

	fake_reset();
	memset(items, 0, sizeof(items));
	w = store_writer_new(base, &fake_ops, &F, 100);
	for (i = 0; i < 5; i++)
		store_writer_submit(w, item_work, item_done, &items[i]);
	store_writer_drain(w); /* no loop turn: drain itself completes them */
	ck_assert_int_eq(completions, 5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(items[i].done_calls, 1);
	store_writer_free(w);
	event_base_free(base);
}
END_TEST

static Suite *
store_writer_suite(void)
{
	Suite *s = suite_create("store-writer");
	TCase *tc = tcase_create("writer");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, batches_share_commit);
	tcase_add_test(tc, max_batch_bounds_a_batch);
	tcase_add_test(tc, failing_item_alone);
	tcase_add_test(tc, conflict_runs_again);
	tcase_add_test(tc, failed_commit_fails_batch);
	tcase_add_test(tc, read_only_commit_keeps_failure);
	tcase_add_test(tc, drain_runs_completions);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(store_writer_suite());
}
