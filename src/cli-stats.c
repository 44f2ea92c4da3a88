/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's `stats`: events and duplicates per kind, deliveries per relay and
 * state, the oldest pending delivery, and the provisioning results recorded in the store.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "store-admin.h"

static int
cli_count_row(const struct store_admin_count *cnt, void *arg)
{
	struct cli_table *t = arg;
	char n[3][24];
	size_t i;

	for (i = 0; i < 3; i++)
		snprintf(n[i], sizeof(n[i]), "%lld", cnt->n[i]);
	cli_table_add(t, (const char *[]){ cnt->name, n[0], n[1], n[2] });
	return 0;
}

static int
cli_oldest_row(const struct store_admin_delivery *d, void *arg)
{
	(void)arg;
	printf("oldest pending: delivery %lld (event %lld, relay %s), %lld attempt%s, "
	       "next attempt %s\n",
	    (long long)d->id, (long long)d->event_id, d->relay, d->attempts,
	    d->attempts == 1 ? "" : "s", d->next_attempt_at ? d->next_attempt_at : "-");
	return 1;
}

static int
cli_rule_row(const struct store_admin_rule *r, void *arg)
{
	struct cli_table *t = arg;
	char id[24] = "-";

	if (r->rule_id >= 0)
		snprintf(id, sizeof(id), "%lld", r->rule_id);
	cli_table_add(t,
	    (const char *[]){ r->kind, id, r->rule_name, r->synced_at,
		r->last_error != NULL ? r->last_error : "ok" });
	return 0;
}

static int
cli_stats_print(struct cli *c)
{
	/* cli_count_row passes three counts; a kind has two, so its table has 3 columns */
	struct cli_table kinds = { .ncols = 3, .head = { "kind", "events", "duplicates" } };
	struct cli_table relays = { .ncols = 4, .head = { "relay", "pending", "done", "dead" } };
	struct cli_table rules = { .ncols = 5,
		.head = { "kind", "rule_id", "rule_name", "synced_at", "last_error" },
		.max = { [4] = CLI_RESULT_WIDTH } };
	struct store_admin_delivery_filter oldest = {
		.state = "pending", .oldest_first = 1, .limit = 1
	};
	int rc;

	if (store_admin_kind_counts(c->st, cli_count_row, &kinds) == -1 ||
	    store_admin_relay_counts(c->st, cli_count_row, &relays) == -1)
		return -1;
	cli_table_print(&kinds);
	putchar('\n');
	cli_table_print(&relays);
	if ((rc = store_admin_deliveries(c->st, &oldest, cli_oldest_row, NULL)) == -1)
		return -1;
	if (rc == 0)
		printf("oldest pending: none\n");
	if (store_admin_rules(c->st, cli_rule_row, &rules) == -1)
		return -1;
	putchar('\n');
	if (rules.nrows == 0)
		printf("provisioning: nothing recorded\n");
	else
		cli_table_print(&rules);
	return 0;
}

int
cli_stats(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, rc;

	while ((ch = cli_getopt(argc, argv, opts)) != -1)
		return cli_option_end(c, ch, argv);
	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if ((rc = cli_open(c)) != EX_OK)
		return rc;
	if (cli_stats_print(c) == -1)
		return cli_store_error(c, "stats");
	return EX_OK;
}
