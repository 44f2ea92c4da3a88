/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's relay controls (clicksend-relay(1)): `relays` lists each configured
 * relay (target, paused and why, pending, dead, last attempt) and each relay that is no
 * longer configured but still has deliveries (orphaned); `pause`, `resume` and `drop`
 * change the store, where a running daemon sees them within a second or two.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "json.h"
#include "store-admin.h"
#include "store.h"
#include "xmalloc.h"

#define CLI_REASON_MAX 200

/* One line of `relays`. */
struct cli_relay_info {
	const char *name, *target, *status;
	char *paused_at, *reason, *last_at, *last_result;
	long long pending, dead;
	int paused, orphaned;
};

static char *
cli_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
cli_paused_row(const char *relay, const char *paused_at, const char *reason, void *arg)
{
	struct cli_relay_info *r = arg;

	if (strcmp(relay, r->name) != 0)
		return;
	r->paused_at = cli_dup(paused_at);
	r->reason = cli_dup(reason);
}

static int
cli_last_row(const struct store_admin_delivery *d, void *arg)
{
	struct cli_relay_info *r = arg;

	r->last_at = cli_dup(d->last_attempt_at);
	r->last_result = cli_dup(d->last_result);
	return 0;
}

static int
cli_relay_fill(struct cli *c, struct cli_relay_info *r)
{
	if (store_relay_counts(c->st, r->name, &r->pending, &r->dead, &r->paused) == -1 ||
	    (r->paused && store_paused_relays(c->st, cli_paused_row, r) == -1) ||
	    store_admin_relay_last(c->st, r->name, cli_last_row, r) == -1)
		return -1;
	r->status = r->orphaned ? "orphaned" : r->paused ? "paused" : "active";
	return 0;
}

static void
cli_relay_free(struct cli_relay_info *r)
{
	free(r->paused_at);
	free(r->reason);
	free(r->last_at);
	free(r->last_result);
}

static int
cli_relay_json(const struct cli_relay_info *r)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_string(g, "relay", r->name);
	json_gen_kv_string(g, "target", r->target);
	json_gen_kv_string(g, "status", r->status);
	json_gen_string(g, "paused");
	json_gen_bool(g, r->paused);
	json_gen_kv_string(g, "paused_at", r->paused_at);
	json_gen_kv_string(g, "pause_reason", r->reason);
	json_gen_kv_integer(g, "pending", r->pending);
	json_gen_kv_integer(g, "dead", r->dead);
	json_gen_kv_string(g, "last_attempt_at", r->last_at);
	json_gen_kv_string(g, "last_result", r->last_result);
	json_gen_map_close(g);
	return cli_json_line(g);
}

static void
cli_relay_row(struct cli_table *t, const struct cli_relay_info *r)
{
	char pending[24], dead[24], why[CLI_REASON_MAX + 40] = "";

	snprintf(pending, sizeof(pending), "%lld", r->pending);
	snprintf(dead, sizeof(dead), "%lld", r->dead);
	if (r->paused)
		snprintf(why, sizeof(why), "%s (%s)", r->reason ? r->reason : "",
		    r->paused_at ? r->paused_at : "?");
	cli_table_add(t,
	    (const char *[]){ r->name, r->status, pending, dead, r->last_at ? r->last_at : "-",
		r->last_result ? r->last_result : "-", why, r->target });
}

/* Prints one relay; -1 on a store error. */
static int
cli_relay_print(struct cli *c, struct cli_relay_info *r, struct cli_table *t, int json)
{
	int rc = cli_relay_fill(c, r);

	if (rc == 0) {
		if (json)
			rc = cli_relay_json(r) == 0 ? 0 : -1;
		else
			cli_relay_row(t, r);
	}
	cli_relay_free(r);
	return rc;
}

struct cli_orphans {
	struct cli *c;
	struct cli_table *t;
	int json, failed;
};

static int
cli_orphan_row(const struct store_admin_count *cnt, void *arg)
{
	struct cli_orphans *o = arg;
	struct cli_relay_info r = { .name = cnt->name, .target = "-", .orphaned = 1 };

	if (config_relay_find(o->c->cfg, cnt->name) != NULL)
		return 0;
	if (cli_relay_print(o->c, &r, o->t, o->json) == -1)
		o->failed = 1;
	return 0;
}

int
cli_relays(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_table t = { .ncols = 8,
		.head = { "relay", "status", "pending", "dead", "last_attempt", "last_result",
		    "paused", "target" },
		.max = { [5] = CLI_RESULT_WIDTH, [6] = CLI_RESULT_WIDTH } };
	struct cli_orphans o = { .c = c, .t = &t };
	int ch, rc;
	size_t i;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		if (ch != 'j')
			return cli_option_end(c, ch, argv);
		o.json = 1;
	}
	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if ((rc = cli_open(c)) != EX_OK)
		return rc;
	for (i = 0; i < c->cfg->nrelays; i++) {
		const struct config_relay *rl = &c->cfg->relays[i];
		struct cli_relay_info r = { .name = rl->name,
			.target = rl->url ? rl->url : rl->exec };

		if (cli_relay_print(c, &r, &t, o.json) == -1)
			return cli_store_error(c, "relays");
	}
	if (store_admin_relay_counts(c->st, cli_orphan_row, &o) == -1 || o.failed)
		return cli_store_error(c, "relays");
	if (!o.json)
		cli_table_print(&t);
	return EX_OK;
}

/* RELAY must be configured (pause, resume) or must not be (drop); nothing is written
 * otherwise. An exit status, EX_OK when it may go on. */
static int
cli_relay_arg(struct cli *c, int argc, char **argv, int configured, const char **relay)
{
	int rc;

	if (optind + 1 != argc)
		return cli_bad_usage(c, "name one relay", optind < argc ? argv[optind + 1] : NULL);
	*relay = argv[optind];
	if ((rc = cli_open(c)) != EX_OK)
		return rc;
	if (configured && config_relay_find(c->cfg, *relay) == NULL) {
		cli_warn("%s: %s is not a configured relay", c->cmd->name, *relay);
		return EX_DATAERR;
	}
	if (!configured && config_relay_find(c->cfg, *relay) != NULL) {
		cli_warn(
		    "%s: %s is still configured; remove its section first", c->cmd->name, *relay);
		return EX_DATAERR;
	}
	return EX_OK;
}

static int
cli_set_paused(struct cli *c, int argc, char **argv, int paused)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *relay, *reason = "paused by the operator";
	char now[32];
	int ch, rc;

	/* resume takes no --reason: its table starts past it, so getopt names it unknown */
	while ((ch = cli_getopt(argc, argv, paused ? opts : opts + 1)) != -1) {
		if (ch != 'r')
			return cli_option_end(c, ch, argv);
		if (strlen(optarg) > CLI_REASON_MAX)
			return cli_bad_usage(c, "--reason is too long", NULL);
		reason = optarg;
	}
	if ((rc = cli_relay_arg(c, argc, argv, 1, &relay)) != EX_OK)
		return rc;
	store_time_text(now, 0);
	if (store_begin(c->st) == -1 || store_relay_set_paused(c->st, relay, paused, now, reason) ||
	    store_commit(c->st) == -1)
		return cli_store_error(c, c->cmd->name);
	printf("%s %s\n", relay, paused ? "paused" : "resumed");
	return EX_OK;
}

int
cli_pause(struct cli *c, int argc, char **argv)
{
	return cli_set_paused(c, argc, argv, 1);
}

int
cli_resume(struct cli *c, int argc, char **argv)
{
	return cli_set_paused(c, argc, argv, 0);
}

int
cli_drop(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *relay;
	char now[32], reason[CONFIG_RELAY_NAME_MAX + 64];
	int ch, rc, n;

	while ((ch = cli_getopt(argc, argv, opts)) != -1)
		return cli_option_end(c, ch, argv);
	if ((rc = cli_relay_arg(c, argc, argv, 0, &relay)) != EX_OK)
		return rc;
	store_time_text(now, 0);
	snprintf(reason, sizeof(reason), "dropped: relay %s is no longer configured", relay);
	if (store_begin(c->st) == -1 || (n = store_relay_drop(c->st, relay, now, reason)) == -1 ||
	    store_commit(c->st) == -1)
		return cli_store_error(c, "drop");
	printf("%d deliver%s of %s marked dead\n", n, n == 1 ? "y" : "ies", relay);
	return EX_OK;
}
