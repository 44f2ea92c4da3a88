/* SPDX-License-Identifier: ISC */
/* The store's public functions: each a call into the handle's backend (store-backend.h),
 * plus what does not depend on one (the writer's transaction primitives, freeing due
 * deliveries, opening the store a config names). */
#include <stdlib.h>
#include <string.h>

#include "store-backend.h"
#include "store-internal.h"
#include "store-writer.h"
#include "xmalloc.h"

int
store_probe(struct store *st)
{
	return st->be->probe(st);
}

void
store_close(struct store *st)
{
	if (st != NULL)
		st->be->close(st);
}

void
store_set_busy_timeout(struct store *st, int ms)
{
	st->be->set_busy_timeout(st, ms);
}

const char *
store_errmsg(struct store *st)
{
	return st->be->errmsg(st);
}

int
store_begin(struct store *st)
{
	return st->be->begin(st);
}

int
store_commit(struct store *st)
{
	return st->be->commit(st);
}

void
store_rollback(struct store *st)
{
	st->be->rollback(st);
}

int
store_savepoint(struct store *st)
{
	return st->be->savepoint(st);
}

int
store_release(struct store *st)
{
	return st->be->release(st);
}

void
store_rollback_savepoint(struct store *st)
{
	st->be->rollback_savepoint(st);
}

int
store_event_insert(struct store *st, struct webhook_event *ev)
{
	return st->be->event_insert(st, ev);
}

int
store_health(struct store *st, long long *pending, long long *dead, char *err, size_t errlen)
{
	return st->be->health(st, pending, dead, err, errlen);
}

int
store_relay_counts(
    struct store *st, const char *relay, long long *pending, long long *dead, int *paused)
{
	return st->be->relay_counts(st, relay, pending, dead, paused);
}

int
store_due(struct store *st, const char *relay, const char *now, size_t limit, int64_t claim_ms,
    struct store_delivery **out)
{
	return st->be->due(st, relay, now, limit, claim_ms, out);
}

int
store_due_rated(struct store *st, const char *relay, const char *now, size_t limit,
    int64_t claim_ms, struct store_rate *rate, struct store_delivery **out)
{
	rate->wait_ms = 0;
	if (st->be->due_rated == NULL)
		return st->be->due(st, relay, now, limit + rate->nskip, claim_ms, out);
	return st->be->due_rated(st, relay, now, limit, claim_ms, rate, out);
}

int
store_pending_relays(struct store *st, void (*fn)(const char *, long long, void *), void *arg)
{
	return st->be->pending_relays(st, fn, arg);
}

int
store_delivery_record(struct store *st, const struct store_delivery *d, const char *state,
    const char *next_at, const char *last_at, const char *result, const char *done_at)
{
	return st->be->delivery_record(st, d, state, next_at, last_at, result, done_at);
}

int
store_unblock_next(struct store *st, int64_t delivery_id)
{
	return st->be->unblock_next(st, delivery_id);
}

int
store_retention(struct store *st, const char *before, int limit)
{
	return st->be->retention(st, before, limit);
}

int
store_next_due(struct store *st, char buf[32])
{
	return st->be->next_due(st, buf);
}

int
store_paused_relays(struct store *st, store_paused_cb cb, void *arg)
{
	return st->be->paused_relays(st, cb, arg);
}

int
store_relay_set_paused(
    struct store *st, const char *relay, int paused, const char *now, const char *reason)
{
	return st->be->relay_set_paused(st, relay, paused, now, reason);
}

int
store_relay_unorder(struct store *st, const char *relay)
{
	return st->be->relay_unorder(st, relay);
}

int
store_relay_drop(struct store *st, const char *relay, const char *now, const char *reason)
{
	return st->be->relay_drop(st, relay, now, reason);
}

int
store_delivery_move(struct store *st, int64_t delivery_id, const char *relay, const char *now)
{
	return st->be->delivery_move(st, delivery_id, relay, now);
}

int
store_admin_events(
    struct store *st, const struct store_admin_event_filter *f, store_admin_event_cb cb, void *arg)
{
	return st->be->admin_events(st, f, cb, arg);
}

int
store_admin_deliveries(struct store *st, const struct store_admin_delivery_filter *f,
    store_admin_delivery_cb cb, void *arg)
{
	return st->be->admin_deliveries(st, f, cb, arg);
}

int
store_admin_kind_counts(struct store *st, store_admin_count_cb cb, void *arg)
{
	return st->be->admin_kind_counts(st, cb, arg);
}

int
store_admin_relay_counts(struct store *st, store_admin_count_cb cb, void *arg)
{
	return st->be->admin_relay_counts(st, cb, arg);
}

int
store_admin_rules(struct store *st, store_admin_rule_cb cb, void *arg)
{
	return st->be->admin_rules(st, cb, arg);
}

int
store_admin_requeue(struct store *st, int64_t delivery_id, const char *now)
{
	return st->be->admin_requeue(st, delivery_id, now);
}

int
store_admin_requeue_dead(struct store *st, const char *relay, const char *now)
{
	return st->be->admin_requeue_dead(st, relay, now);
}

int
store_admin_delivery_create(struct store *st, int64_t event_id, const char *relay, const char *now)
{
	return st->be->admin_delivery_create(st, event_id, relay, now);
}

int
store_admin_relay_last(struct store *st, const char *relay, store_admin_delivery_cb cb, void *arg)
{
	return st->be->admin_relay_last(st, relay, cb, arg);
}

int
store_provision_ok(struct store *st, const struct store_provision_rule *r)
{
	return st->be->provision_ok(st, r);
}

int
store_provision_error(struct store *st, const char *kind, const char *rule_name, const char *error)
{
	return st->be->provision_error(st, kind, rule_name, error);
}

void
store_deliveries_free_one(struct store_delivery *d)
{
	free(d->relay);
	free(d->kind);
	free(d->format);
	free(d->received_at);
	free(d->payload);
	free(d->next_attempt_at);
	memset(d, 0, sizeof(*d));
}

void
store_deliveries_free(struct store_delivery *d, size_t n)
{
	size_t i;

	for (i = 0; d != NULL && i < n; i++)
		store_deliveries_free_one(&d[i]);
	free(d);
}

int
store_event_seen(struct store *st, const char *kind, const char *message_id)
{
	return st->be->event_seen(st, kind, message_id);
}

int
store_retryable(struct store *st)
{
	return st->be->retryable != NULL && st->be->retryable(st);
}

int
store_refresh(struct store *st)
{
	return st->be->refresh != NULL ? st->be->refresh(st) : 0;
}

int
store_leader(struct store *st)
{
	return st->be->leader != NULL ? st->be->leader(st) : 1;
}

int
store_shared(const struct store *st)
{
	return st->be->leader != NULL;
}

struct store *
store_open_for(const struct store_target *t, int daemon, char **cause)
{
	if (t->url != NULL && t->url[0] != '\0')
		return store_pg_open(t->url, t->node, daemon, cause);
	return daemon ? store_open_daemon(t->path, t->synchronous_full, cause) :
			store_open(t->path, t->synchronous_full, cause);
}

struct store *
store_open_reader(struct store *writer, char **cause)
{
	return writer->be->open_reader(writer, cause);
}

/* The store writer's view of a write handle (store-writer.h). */
static int
store_op_begin(void *h)
{
	return store_begin(h);
}

static int
store_op_commit(void *h)
{
	return store_commit(h);
}

static void
store_op_rollback(void *h)
{
	store_rollback(h);
}

static int
store_op_savepoint(void *h)
{
	return store_savepoint(h);
}

static int
store_op_release(void *h)
{
	return store_release(h);
}

static void
store_op_rollback_savepoint(void *h)
{
	store_rollback_savepoint(h);
}

static const char *
store_op_errmsg(void *h)
{
	return store_errmsg(h);
}

static int
store_op_retryable(void *h)
{
	return store_retryable(h);
}

static int
store_op_wrote(void *h)
{
	struct store *st = h;

	return st->be->wrote != NULL ? st->be->wrote(st) : 1;
}

const struct store_writer_ops store_write_ops = {
	.begin = store_op_begin,
	.commit = store_op_commit,
	.rollback = store_op_rollback,
	.savepoint = store_op_savepoint,
	.release = store_op_release,
	.rollback_savepoint = store_op_rollback_savepoint,
	.errmsg = store_op_errmsg,
	.retryable = store_op_retryable,
	.wrote = store_op_wrote,
};
