/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's deliveries: `deliveries` lists them, `retry` sets chosen or dead ones
 * back to pending, `replay` queues one event again (its rows back to pending, rows created
 * for relays that take it today). Changes are short IMMEDIATE transactions.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "json.h"
#include "route.h"
#include "store-admin.h"
#include "store.h"
#include "webhook.h"
#include "xmalloc.h"

static int
cli_delivery_json(const struct store_admin_delivery *d)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_integer(g, "id", d->id);
	json_gen_kv_integer(g, "event_id", d->event_id);
	json_gen_kv_string(g, "relay", d->relay);
	json_gen_kv_string(g, "state", d->state);
	json_gen_kv_integer(g, "attempts", d->attempts);
	json_gen_kv_string(g, "next_attempt_at", d->next_attempt_at);
	json_gen_kv_string(g, "last_attempt_at", d->last_attempt_at);
	json_gen_kv_string(g, "last_result", d->last_result);
	json_gen_kv_string(g, "done_at", d->done_at);
	json_gen_map_close(g);
	return cli_json_line(g);
}

static int
cli_delivery_row(const struct store_admin_delivery *d, void *arg)
{
	struct cli_list *l = arg;
	char id[24], event_id[24], attempts[24];

	if (cli_list_more(l))
		return 1;
	if (l->json)
		return cli_delivery_json(d);
	snprintf(id, sizeof(id), "%lld", (long long)d->id);
	snprintf(event_id, sizeof(event_id), "%lld", (long long)d->event_id);
	snprintf(attempts, sizeof(attempts), "%lld", d->attempts);
	cli_table_add(&l->table,
	    (const char *[]){ id, event_id, d->relay, d->state, attempts, d->next_attempt_at,
		d->last_attempt_at, d->last_result });
	return 0;
}

int
cli_deliveries(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "relay", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_admin_delivery_filter f = { .limit = LLONG_MAX }; /* all */
	struct cli_list l = { .table = { .ncols = 8,
				  .head = { "id", "event_id", "relay", "state", "attempts",
				      "next_attempt_at", "last_attempt_at", "last_result" },
				  .max = { [7] = CLI_RESULT_WIDTH } } };
	int ch, rc;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 's':
			if (strcmp(optarg, "pending") != 0 && strcmp(optarg, "done") != 0 &&
			    strcmp(optarg, "dead") != 0)
				return cli_bad_usage(c, "--state is pending, done or dead", optarg);
			f.state = optarg;
			break;
		case 'r':
			f.relay = optarg;
			break;
		case 'n':
			if ((f.limit = cli_number(optarg)) == -1)
				return cli_bad_usage(c, "--limit wants a positive number", optarg);
			break;
		case 'j':
			l.json = 1;
			break;
		default:
			return cli_option_end(c, ch, argv);
		}
	}
	if ((rc = cli_list_begin(c, argc, argv, &l, &f.limit)) != EX_OK)
		return rc;
	rc = store_admin_deliveries(c->st, &f, cli_delivery_row, &l);
	return cli_list_end(c, &l, rc, "deliveries");
}

/* ------------------------------------------------------------------ retry */

/* One delivery row copied out of the store. */
struct cli_delivery {
	int64_t id;
	char *relay, *state;
};

struct cli_deliveries {
	struct cli_delivery *v;
	size_t n;
};

static int
cli_delivery_collect(const struct store_admin_delivery *d, void *arg)
{
	struct cli_deliveries *ds = arg;

	ds->v = xreallocarray(ds->v, ds->n + 1, sizeof(*ds->v));
	ds->v[ds->n].id = d->id;
	ds->v[ds->n].relay = xstrdup(d->relay);
	ds->v[ds->n++].state = xstrdup(d->state);
	return 0;
}

static void
cli_deliveries_free(struct cli_deliveries *ds)
{
	size_t i;

	for (i = 0; i < ds->n; i++) {
		free(ds->v[i].relay);
		free(ds->v[i].state);
	}
	free(ds->v);
	ds->v = NULL;
	ds->n = 0;
}

/* The daemon only runs configured relays: a row of another relay would wait forever. */
static int
cli_relay_known(const struct cli *c, const struct cli_delivery *d)
{
	if (config_relay_find(c->cfg, d->relay) != NULL)
		return 1;
	cli_warn("delivery %lld: relay %s is not configured; left %s", (long long)d->id, d->relay,
	    d->state);
	return 0;
}

/* Sets one delivery back to pending: 1 done so, 0 skipped, -1 store error, or 65. */
static int
cli_retry_one(struct cli *c, int64_t id, const char *now)
{
	struct store_admin_delivery_filter f = { .id = id };
	struct cli_deliveries ds = { NULL, 0 };
	int rc = 0;

	if (store_admin_deliveries(c->st, &f, cli_delivery_collect, &ds) == -1)
		return -1;
	if (ds.n == 0) {
		cli_warn("delivery %lld: no such delivery", (long long)id);
		rc = EX_DATAERR;
	} else if (strcmp(ds.v[0].state, "done") == 0)
		cli_warn("delivery %lld is done; skipped (replay its event to send it again)",
		    (long long)id);
	else if (cli_relay_known(c, &ds.v[0]))
		rc = store_admin_requeue(c->st, id, now);
	cli_deliveries_free(&ds);
	return rc;
}

/* Dead deliveries of relays no longer configured are left as they are, and counted. */
static int
cli_count_unknown_dead(const struct store_admin_count *cnt, void *arg)
{
	const struct cli *c = arg;

	if (cnt->n[2] > 0 && config_relay_find(c->cfg, cnt->name) == NULL)
		cli_warn("%lld dead deliveries of relay %s left alone: it is not configured",
		    cnt->n[2], cnt->name);
	return 0;
}

static int
cli_retry_dead(struct cli *c, const char *relay, const char *now)
{
	int total = 0, n;
	size_t i;

	if (relay != NULL)
		return store_admin_requeue_dead(c->st, relay, now);
	for (i = 0; i < c->cfg->nrelays; i++) {
		if ((n = store_admin_requeue_dead(c->st, c->cfg->relays[i].name, now)) == -1)
			return -1;
		total += n;
	}
	if (store_admin_relay_counts(c->st, cli_count_unknown_dead, c) == -1)
		return -1;
	return total;
}

static int
cli_retry_ids(struct cli *c, int argc, char **argv, const char *now, int *unknown)
{
	int total = 0, n, i;

	for (i = optind; i < argc; i++) {
		if ((n = cli_retry_one(c, cli_number(argv[i]), now)) == -1)
			return -1;
		if (n == EX_DATAERR)
			*unknown = 1;
		else
			total += n;
	}
	return total;
}

/* retry ID... --relay R: each delivery (an orphaned one, typically) moves to R, pending. */
static int
cli_move_ids(struct cli *c, int argc, char **argv, const char *relay, const char *now, int *unknown)
{
	int i, n, total = 0;

	for (i = optind; i < argc; i++) {
		if ((n = store_delivery_move(c->st, cli_number(argv[i]), relay, now)) == -1)
			return -1;
		if (n == 0) {
			cli_warn("delivery %s not moved to %s: unknown, done, or its event already "
				 "has a delivery for %s (replay the event instead)",
			    argv[i], relay, relay);
			*unknown = 1;
		}
		total += n;
	}
	return total;
}

int
cli_retry(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all-dead", no_argument, NULL, 'a' },
		{ "relay", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *relay = NULL;
	char now[32];
	int ch, i, rc, all_dead = 0, unknown = 0, n;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 'a':
			all_dead = 1;
			break;
		case 'r':
			relay = optarg;
			break;
		default:
			return cli_option_end(c, ch, argv);
		}
	}
	for (i = optind; i < argc; i++) {
		if (cli_number(argv[i]) == -1)
			return cli_bad_usage(c, "not a delivery id", argv[i]);
	}
	if (all_dead == (optind < argc))
		return cli_bad_usage(c, "name delivery ids or --all-dead", NULL);
	if ((rc = cli_open(c)) != EX_OK)
		return rc;
	if (relay != NULL && config_relay_find(c->cfg, relay) == NULL)
		return cli_bad_usage(c, "not a configured relay", relay);
	store_time_text(now, 0);
	if (store_begin(c->st) == -1)
		return cli_store_error(c, "retry");
	n = all_dead	  ? cli_retry_dead(c, relay, now) :
	    relay != NULL ? cli_move_ids(c, argc, argv, relay, now, &unknown) :
			    cli_retry_ids(c, argc, argv, now, &unknown);
	if (n == -1 || store_commit(c->st) == -1)
		return cli_store_error(c, "retry");
	printf("%d deliver%s set back to pending\n", n, n == 1 ? "y" : "ies");
	return unknown ? EX_DATAERR : EX_OK;
}

/* ------------------------------------------------------------------ replay */

/* What routing needs from a stored event, copied out of the row. */
struct cli_event {
	int found;
	char *kind, *from, *to, *body;
};

static char *
cli_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static int
cli_event_collect(const struct store_admin_event *e, void *arg)
{
	struct cli_event *ev = arg;

	ev->found = 1;
	ev->kind = cli_strdup(e->kind);
	ev->from = cli_strdup(e->from_number);
	ev->to = cli_strdup(e->to_number);
	ev->body = cli_strdup(e->body);
	return 0;
}

static void
cli_event_free(struct cli_event *ev)
{
	free(ev->kind);
	free(ev->from);
	free(ev->to);
	free(ev->body);
}

/* Whether relay R takes the stored event under today's configuration. */
static int
cli_event_matches(const struct cli_event *ev, const struct config_relay *r)
{
	struct webhook_event we = { .kind = webhook_kind_by_name(ev->kind) };

	if (we.kind == NULL)
		return 0;
	we.from = ev->from;
	we.to = ev->to;
	we.body = ev->body;
	return route_match(r, &we);
}

/* Counts of one replay: rows set back, rows created. */
struct cli_replay {
	int requeued, created;
};

/* The event's existing rows (of RELAY, or all) back to pending. */
static int
cli_replay_existing(struct cli *c, const struct cli_deliveries *ds, const char *relay,
    const char *now, struct cli_replay *r)
{
	size_t i;
	int n;

	for (i = 0; i < ds->n; i++) {
		if (relay != NULL && strcmp(ds->v[i].relay, relay) != 0)
			continue;
		if (!cli_relay_known(c, &ds->v[i]))
			continue;
		if ((n = store_admin_requeue(c->st, ds->v[i].id, now)) == -1)
			return -1;
		r->requeued += n;
	}
	return 0;
}

static int
cli_has_delivery(const struct cli_deliveries *ds, const char *relay)
{
	size_t i;

	for (i = 0; i < ds->n; i++) {
		if (strcmp(ds->v[i].relay, relay) == 0)
			return 1;
	}
	return 0;
}

/* Rows for configured relays (RELAY, or all) that take the event today and have none. */
static int
cli_replay_new(struct cli *c, int64_t id, const struct cli_event *ev,
    const struct cli_deliveries *ds, const char *relay, const char *now, struct cli_replay *r)
{
	const struct config_relay *cr;
	size_t i;
	int n;

	for (i = 0; i < c->cfg->nrelays; i++) {
		cr = &c->cfg->relays[i];
		if ((relay != NULL && strcmp(cr->name, relay) != 0) ||
		    cli_has_delivery(ds, cr->name) || !cli_event_matches(ev, cr))
			continue;
		if ((n = store_admin_delivery_create(c->st, id, cr->name, now)) == -1)
			return -1;
		r->created += n;
	}
	return 0;
}

/* Inside the transaction: 0, -1 on a store error, or 65 when there is nothing to do. */
static int
cli_replay_event(struct cli *c, int64_t id, const char *relay, struct cli_replay *r)
{
	struct store_admin_event_filter ef = { .id = id };
	struct store_admin_delivery_filter df = { .event_id = id };
	struct cli_event ev = { 0 };
	struct cli_deliveries ds = { NULL, 0 };
	char now[32];
	int rc = -1;

	store_time_text(now, 0);
	if (store_admin_events(c->st, &ef, cli_event_collect, &ev) == -1 ||
	    store_admin_deliveries(c->st, &df, cli_delivery_collect, &ds) == -1)
		goto out;
	rc = 0;
	if (!ev.found) {
		cli_warn("event %lld: no such event", (long long)id);
		rc = EX_DATAERR;
	} else if (cli_replay_existing(c, &ds, relay, now, r) == -1 ||
	    cli_replay_new(c, id, &ev, &ds, relay, now, r) == -1)
		rc = -1;
	else if (relay != NULL && !cli_has_delivery(&ds, relay) && r->created == 0) {
		cli_warn("event %lld: relay %s does not take it", (long long)id, relay);
		rc = EX_DATAERR;
	}
out:
	cli_event_free(&ev);
	cli_deliveries_free(&ds);
	return rc;
}

int
cli_replay(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "relay", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_replay r = { 0, 0 };
	const char *relay = NULL;
	long long id;
	int ch, rc;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 'r':
			relay = optarg;
			break;
		default:
			return cli_option_end(c, ch, argv);
		}
	}
	if (optind + 1 != argc)
		return cli_bad_usage(c, "name one event id", NULL);
	if ((id = cli_number(argv[optind])) == -1)
		return cli_bad_usage(c, "not an event id", argv[optind]);
	if ((rc = cli_open(c)) != EX_OK)
		return rc;
	if (relay != NULL && config_relay_find(c->cfg, relay) == NULL)
		return cli_bad_usage(c, "not a configured relay", relay);
	if (store_begin(c->st) == -1)
		return cli_store_error(c, "replay");
	if ((rc = cli_replay_event(c, id, relay, &r)) != 0) {
		if (rc == -1)
			return cli_store_error(c, "replay");
		store_rollback(c->st);
		return rc;
	}
	if (store_commit(c->st) == -1)
		return cli_store_error(c, "replay");
	printf("event %lld: %d deliver%s set back to pending, %d created\n", id, r.requeued,
	    r.requeued == 1 ? "y" : "ies", r.created);
	return EX_OK;
}
