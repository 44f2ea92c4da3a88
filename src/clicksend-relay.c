/* SPDX-License-Identifier: ISC */
/* clicksend-relay, the operator tool: lists events and deliveries, puts deliveries back
 * in the queue (retry, replay) and prints counts, on the store named by the config.
 * Changes are short IMMEDIATE transactions, so a running daemon is no obstacle. This file
 * holds main, the command table, the options every command shares, opening the config and
 * store, and `provision`; the commands themselves are in cli-*.c. */
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

/* ------------------------------------------------------------------ shared helpers */

static int
cli_command_usage(const struct cli *c, FILE *f)
{
	fprintf(f, "usage: clicksend-relay [-c FILE] %s\n", c->cmd->usage);
	return f == stdout ? EX_OK : EX_USAGE;
}

/* getopt_long over long options and -h, with our own messages. */
int
cli_getopt(int argc, char **argv, const struct option *opts)
{
	opterr = 0;
	return getopt_long(argc, argv, ":h", opts, NULL);
}

/* The answer to -h and to a bad option: 0 after help, 64 after a message. */
int
cli_option_end(const struct cli *c, int ch, char **argv)
{
	const char *arg = argv[optind - 1];

	if (ch == 'h')
		return cli_command_usage(c, stdout);
	if (ch == ':')
		cli_warn("%s: option %s needs a value", c->cmd->name, arg);
	else if (strncmp(arg, "--", 2) == 0)
		cli_warn("%s: unknown option or bad use of %s", c->cmd->name, arg);
	else
		cli_warn("%s: unknown option -%c", c->cmd->name, optopt);
	return cli_command_usage(c, stderr);
}

int
cli_bad_usage(const struct cli *c, const char *what, const char *arg)
{
	cli_warn("%s: %s%s%s", c->cmd->name, what, arg ? ": " : "", arg ? arg : "");
	return cli_command_usage(c, stderr);
}

/* A positive decimal integer (an id or a limit); -1 when S is not one. */
long long
cli_number(const char *s)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	return v;
}

/* Loads the config, then opens the store; an exit status on failure. */
int
cli_open(struct cli *c)
{
	struct stat sb;
	char *cause = NULL;

	if ((c->cfg = config_load(c->file)) == NULL)
		return EX_CONFIG;
	/* store_open would create a missing store: the tool only works on an existing one. */
	if (stat(c->cfg->store_path, &sb) == -1) {
		cli_warn("cannot open the store %s: %s", c->cfg->store_path, strerror(errno));
		return EX_NOINPUT;
	}
	if ((c->st = store_open(c->cfg->store_path, c->cfg->synchronous_full, &cause)) == NULL) {
		cli_warn("cannot open the store %s", cause);
		free(cause);
		return EX_NOINPUT;
	}
	return EX_OK;
}

int
cli_store_error(struct cli *c, const char *what)
{
	cli_warn("%s: %s", what, store_errmsg(c->st));
	store_rollback(c->st);
	return EX_SOFTWARE;
}

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

	if (!dry_run && cfg->provision != 0 && stat(cfg->store_path, &sb) == 0 &&
	    (st = store_open(cfg->store_path, cfg->synchronous_full, &cause)) == NULL) {
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
	    .usage = "retry DELIVERY_ID... | retry --all-dead [--relay R]" },
	{ .name = "replay", .fn = cli_replay, .usage = "replay EVENT_ID [--relay R]" },
	{ .name = "provision", .fn = cli_provision_cmd, .usage = "provision [--dry-run]" },
	{ .name = "stats", .fn = cli_stats, .usage = "stats" },
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
