/* SPDX-License-Identifier: ISC */
/*
 * `clicksend-relay poll --once`: one fetch of every polled kind (clicksend-relayd(8),
 * Polling) with the daemon's poller (poller-cli.c), stored in the store and routed to today's
 * relays, one line per stored event and then one per kind.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "config.h"
#include "poller.h"
#include "route.h"
#include "store.h"

static void
cli_poll_route(void *arg, struct webhook_event *ev)
{
	route_event(arg, ev);
}

/* "sms.inbound event 42 message_id ABC (duplicate)". */
static void
cli_poll_stored(void *arg, const struct webhook_event *ev)
{
	(void)arg;
	printf("%s event %lld message_id %s%s\n", ev->kind->name, (long long)ev->id,
	    ev->message_id != NULL ? ev->message_id : "-", ev->duplicate ? " (duplicate)" : "");
}

/* The store is opened (created when missing) like the daemon's, beside a running daemon:
 * the SQLite file or the shared PostgreSQL store the config names. */
static int
cli_poll_once(struct cli *c)
{
	struct poller_hooks hooks = { cli_poll_route, cli_poll_stored, c->cfg };
	char why[512], *cause = NULL;
	int rc;

	if ((c->st = cli_store_open(c->cfg, &cause)) == NULL) {
		cli_warn("cannot open the store %s", cause);
		free(cause);
		return EX_CANTCREAT;
	}
	if ((rc = poller_run_once(c->cfg, c->st, &hooks, why, sizeof(why))) == EX_CONFIG ||
	    rc == EX_SOFTWARE)
		cli_warn("poll: %s", why);
	return rc;
}

int
cli_poll(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, once = 0;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 'o':
			once = 1;
			break;
		default:
			return cli_option_end(c, ch, argv);
		}
	}
	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if (!once)
		return cli_bad_usage(c, "--once is required (the daemon does the polling)", NULL);
	if ((c->cfg = config_load(c->file)) == NULL)
		return EX_CONFIG;
	return cli_poll_once(c);
}
