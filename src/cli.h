/* SPDX-License-Identifier: ISC */
/*
 * Shared by the operator tool's files: clicksend-relay.c (main, the command table,
 * provision), cli.c (options, usage, opening the config and store), cli-print.c (tables,
 * JSON lines, listings, messages), cli-events.c, cli-deliveries.c (deliveries, retry,
 * replay), cli-stats.c, cli-relays.c and cli-poll.c. Linked only into clicksend-relay,
 * never into the daemon's library.
 */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <sysexits.h>

struct config;
struct json_gen;
struct option;
struct store;

#define CLI_DEFAULT_LIMIT  20
#define CLI_BODY_WIDTH	   40
#define CLI_RESULT_WIDTH   60
#define CLI_TABLE_MAX_COLS 10

struct cli_command;

struct cli {
	const char *file;
	const struct cli_command *cmd;
	struct config *cfg;
	struct store *st;
};

struct cli_command {
	const char *name;
	int (*fn)(struct cli *, int, char **);
	const char *usage;
};

/* A text table: cells are cleaned copies, columns padded to their widest cell. */
struct cli_table {
	size_t ncols, nrows;
	const char *head[CLI_TABLE_MAX_COLS];
	size_t max[CLI_TABLE_MAX_COLS]; /* characters kept per cell, 0 for all */
	size_t width[CLI_TABLE_MAX_COLS];
	char **cells;
	size_t *cell_width;
};

struct cli_list {
	struct cli_table table;
	int json;
	long long limit, rows;
	int more;
};

/* clicksend-relay.c */
int cli_provision(const struct config *, int dry_run);

/* cli.c */
int cli_getopt(int argc, char **argv, const struct option *);
int cli_option_end(const struct cli *, int ch, char **argv);
int cli_bad_usage(const struct cli *, const char *what, const char *arg);
long long cli_number(const char *);
int cli_open(struct cli *);
/* The store the config names (SQLite file or PostgreSQL), created or migrated if needed. */
struct store *cli_store_open(const struct config *, char **cause);
int cli_store_error(struct cli *, const char *what);

/* cli-print.c */
void cli_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void cli_table_add(struct cli_table *, const char **row);
void cli_table_print(struct cli_table *);
int cli_json_line(struct json_gen *);
int cli_list_more(struct cli_list *);
/* After a listing's options: no stray argument, the store open, and *LIMIT asking for one
 * row more than shown (that row tells whether the limit cut the list). EX_OK or an exit. */
int cli_list_begin(struct cli *, int argc, char **argv, struct cli_list *, long long *limit);
int cli_list_end(struct cli *, struct cli_list *, int rc, const char *what);

/* The commands: cli-events.c, cli-deliveries.c, cli-stats.c */
int cli_events(struct cli *, int, char **);
int cli_deliveries(struct cli *, int, char **);
int cli_retry(struct cli *, int, char **);
int cli_replay(struct cli *, int, char **);
int cli_stats(struct cli *, int, char **);
/* cli-relays.c */
int cli_relays(struct cli *, int, char **);
int cli_pause(struct cli *, int, char **);
int cli_resume(struct cli *, int, char **);
int cli_drop(struct cli *, int, char **);
/* cli-poll.c */
int cli_poll(struct cli *, int, char **);

#endif
