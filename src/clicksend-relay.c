/* SPDX-License-Identifier: ISC */
/* clicksend-relay, the operator tool: lists events and deliveries, puts deliveries back
 * in the queue (retry, replay) and prints counts, on the store named by the config.
 * Changes are short IMMEDIATE transactions, so a running daemon is no obstacle. This file
 * holds main, the command table and `provision`; the helpers every command shares are in
 * cli.c, the commands themselves in cli-*.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "provision.h"
#include "store.h"
#include "version.h"

/* ------------------------------------------------------------------ provision */

/*
 * Reconciles the ClickSend rules once (see provision.c). The results are recorded in the
 * store when it exists and opens; the rules at ClickSend are what matters, so a store that
 * does not (yet) exist or is the daemon's and not writable here only costs the record.
 */
int
cli_provision(const struct config *cfg, int dry_run)
{
	struct store *st = NULL;
	struct stat sb;
	char *cause = NULL;
	int rc;

	if (!dry_run && cfg->provision != 0 &&
	    (cfg->store_url != NULL || stat(cfg->store_path, &sb) == 0) &&
	    (st = cli_store_open(cfg, &cause)) == NULL) {
		cli_warn("cannot open the store %s: results not recorded", cause);
		free(cause);
	}
	rc = provision_run_cli(cfg, st, dry_run);
	store_close(st);
	return rc;
}

static int
cli_provision_cmd(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, dry_run = 0;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		default:
			return cli_option_end(c, ch, argv);
		}
	}
	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if ((c->cfg = config_load(c->file)) == NULL)
		return EX_CONFIG;
	return cli_provision(c->cfg, dry_run);
}

/* ------------------------------------------------------------------ main */

static const struct cli_command cli_commands[] = {
	{ .name = "events",
	    .fn = cli_events,
	    .usage = "events [--kind K] [--since TIME] [--limit N] [--json]" },
	{ .name = "deliveries",
	    .fn = cli_deliveries,
	    .usage = "deliveries [--state S] [--relay R] [--limit N] [--json]" },
	{ .name = "retry",
	    .fn = cli_retry,
	    .usage = "retry DELIVERY_ID... [--relay R] | retry --all-dead [--relay R]" },
	{ .name = "replay", .fn = cli_replay, .usage = "replay EVENT_ID [--relay R]" },
	{ .name = "provision", .fn = cli_provision_cmd, .usage = "provision [--dry-run]" },
	{ .name = "stats", .fn = cli_stats, .usage = "stats" },
	{ .name = "relays", .fn = cli_relays, .usage = "relays [--json]" },
	{ .name = "pause", .fn = cli_pause, .usage = "pause RELAY [--reason TEXT]" },
	{ .name = "resume", .fn = cli_resume, .usage = "resume RELAY" },
	{ .name = "drop", .fn = cli_drop, .usage = "drop RELAY" },
	{ .name = "poll", .fn = cli_poll, .usage = "poll --once" },
	{ .name = NULL },
};

static void
cli_usage(FILE *f)
{
	const struct cli_command *cmd;

	fprintf(f,
	    "usage: clicksend-relay [-c FILE] [-V] [-h] COMMAND ...\n"
	    "  -c FILE  config file (default %s/clicksend-relay/clicksend-relay.conf)\n"
	    "commands:\n",
	    SYSCONFDIR);
	for (cmd = cli_commands; cmd->name != NULL; cmd++)
		fprintf(f, "  %s\n", cmd->usage);
}

static const struct cli_command *
cli_command_find(const char *name)
{
	const struct cli_command *cmd;

	for (cmd = cli_commands; cmd->name != NULL; cmd++) {
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	}
	return NULL;
}

/* Runs the command named at argv[0] with its own options after it. */
static int
cli_dispatch(struct cli *c, int argc, char **argv)
{
	if ((c->cmd = cli_command_find(argv[0])) == NULL) {
		cli_warn("unknown command %s", argv[0]);
		cli_usage(stderr);
		return EX_USAGE;
	}
	optind = 0; /* GNU getopt: start afresh on the command's own arguments */
	return c->cmd->fn(c, argc, argv);
}

int
main(int argc, char **argv)
{
	struct cli c = { .file = SYSCONFDIR "/clicksend-relay/clicksend-relay.conf" };
	int ch, rc;

	log_init(LOG_WARNING, 0);
	opterr = 0;
	while ((ch = getopt(argc, argv, "+:c:Vh")) != -1) {
		switch (ch) {
		case 'c':
			c.file = optarg;
			break;
		case 'V':
			printf("clicksend-relay %s\n", RELAY_VERSION);
			return EX_OK;
		case 'h':
			cli_usage(stdout);
			return EX_OK;
		case ':':
			cli_warn("option -%c needs a value", optopt);
			cli_usage(stderr);
			return EX_USAGE;
		default:
			cli_warn("unknown option %s", argv[optind - 1]);
			cli_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind == argc) {
		cli_usage(stderr);
		return EX_USAGE;
	}
	rc = cli_dispatch(&c, argc - optind, argv + optind);
	store_close(c.st);
	config_free(c.cfg);
	if (fflush(stdout) == EOF && rc == EX_OK) {
		cli_warn("stdout: %s", strerror(errno));
		rc = EX_SOFTWARE;
	}
	return rc;
}
