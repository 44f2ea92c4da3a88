/* SPDX-License-Identifier: ISC */
/* What every command of the operator tool shares: its options and usage messages, numbers
 * on the command line, and opening the config and the store. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "store.h"

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
	if (c->cfg->store_url == NULL && stat(c->cfg->store_path, &sb) == -1) {
		cli_warn("cannot open the store %s: %s", c->cfg->store_path, strerror(errno));
		return EX_NOINPUT;
	}
	if ((c->st = cli_store_open(c->cfg, &cause)) == NULL) {
		cli_warn("cannot open the store %s", cause);
		free(cause);
		return EX_NOINPUT;
	}
	return EX_OK;
}

struct store *
cli_store_open(const struct config *cfg, char **cause)
{
	const struct store_target t = { .path = cfg->store_path,
		.url = cfg->store_url,
		.node = cfg->node,
		.synchronous_full = cfg->synchronous_full };

	return store_open_for(&t, 0, cause);
}

int
cli_store_error(struct cli *c, const char *what)
{
	cli_warn("%s: %s", what, store_errmsg(c->st));
	store_rollback(c->st);
	return EX_SOFTWARE;
}
