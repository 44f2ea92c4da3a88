/* SPDX-License-Identifier: ISC */
/* clicksend-relay, the operator tool: lists events and deliveries, puts deliveries back
 * in the queue (retry, replay) and prints counts, on the store named by the config.
 * Changes are short IMMEDIATE transactions, so a running daemon is no obstacle. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "config.h"
#include "json.h"
#include "log.h"
#include "provision.h"
#include "route.h"
#include "store-admin.h"
#include "store.h"
#include "version.h"
#include "webhook.h"
#include "xmalloc.h"

#define EX_OK_		0
#define EX_USAGE_	64
#define EX_DATAERR_	65
#define EX_NOINPUT_	66
#define EX_UNAVAILABLE_ 69
#define EX_SOFTWARE_	70
#define EX_CONFIG_	78

#define CLI_DEFAULT_LIMIT 20
#define CLI_BODY_WIDTH	  40
#define CLI_RESULT_WIDTH  60
#define TABLE_MAX_COLS	  10

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
struct table {
	size_t ncols, nrows;
	const char *head[TABLE_MAX_COLS];
	size_t max[TABLE_MAX_COLS]; /* characters kept per cell, 0 for all */
	size_t width[TABLE_MAX_COLS];
	char **cells;
	size_t *cell_width;
};

int cli_provision(const struct config *, int dry_run);
static void cli_warn(const char *, ...) __attribute__((format(printf, 1, 2)));

/* "clicksend-relay: message" on stderr. */
static void
cli_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("clicksend-relay: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

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

/* ------------------------------------------------------------------ tables */

/* Bytes of the UTF-8 sequence at s, or 0 when it is not one (or is a C1 control). */
static size_t
cli_utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return (s[0] == 0xc2 && s[1] < 0xa0) ? 0 : n;
}

/*
 * A copy of S fit for a terminal cell: control characters (stored bodies come from
 * strangers) and bad UTF-8 become '?', line breaks and tabs a space, and at most MAX
 * characters are kept, "..." marking the cut. Its width in characters goes to *width.
 */
static char *
cli_cell(const char *s, size_t max, size_t *width)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "-");
	char *out = xmalloc(strlen((const char *)p) + 4), *o = out;
	size_t n, w = 0;

	for (; *p != '\0'; p += n, w++) {
		if (max > 0 && w == max) {
			memcpy(o, "...", 3);
			o += 3;
			w += 3;
			break;
		}
		n = cli_utf8_len(p);
		if (n > 1) {
			memcpy(o, p, n);
			o += n;
		} else if (n == 1 && *p >= 0x20 && *p != 0x7f)
			*o++ = (char)*p;
		else
			*o++ = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : '?';
		n = n ? n : 1;
	}
	*o = '\0';
	*width = w;
	return out;
}

static void
table_add(struct table *t, const char **row)
{
	size_t i, k;

	t->cells = xreallocarray(t->cells, (t->nrows + 1) * t->ncols, sizeof(*t->cells));
	t->cell_width =
	    xreallocarray(t->cell_width, (t->nrows + 1) * t->ncols, sizeof(*t->cell_width));
	for (i = 0; i < t->ncols; i++) {
		k = t->nrows * t->ncols + i;
		t->cells[k] = cli_cell(row[i], t->max[i], &t->cell_width[k]);
		if (t->cell_width[k] > t->width[i])
			t->width[i] = t->cell_width[k];
	}
	t->nrows++;
}

static void
table_line(const struct table *t, char *const *cells, const size_t *widths)
{
	size_t i;

	for (i = 0; i < t->ncols; i++) {
		fputs(cells[i], stdout);
		if (i + 1 == t->ncols)
			break;
		printf("%*s", (int)(t->width[i] - widths[i] + 2), "");
	}
	putchar('\n');
}

/* Prints the header and every row, and frees the rows. */
static void
table_print(struct table *t)
{
	size_t i, hw[TABLE_MAX_COLS];

	for (i = 0; i < t->ncols; i++) {
		hw[i] = strlen(t->head[i]);
		if (hw[i] > t->width[i])
			t->width[i] = hw[i];
	}
	table_line(t, (char *const *)t->head, hw);
	for (i = 0; i < t->nrows; i++)
		table_line(t, t->cells + i * t->ncols, t->cell_width + i * t->ncols);
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->cell_width);
	t->cells = NULL;
	t->cell_width = NULL;
	t->nrows = 0;
}

/* ------------------------------------------------------------------ shared helpers */

static int
cli_command_usage(const struct cli *c, FILE *f)
{
	fprintf(f, "usage: clicksend-relay [-c FILE] %s\n", c->cmd->usage);
	return f == stdout ? EX_OK_ : EX_USAGE_;
}

/* getopt_long over long options and -h, with our own messages. */
static int
cli_getopt(int argc, char **argv, const struct option *opts)
{
	opterr = 0;
	return getopt_long(argc, argv, ":h", opts, NULL);
}

/* The answer to -h and to a bad option: 0 after help, 64 after a message. */
static int
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

static int
cli_bad_usage(const struct cli *c, const char *what, const char *arg)
{
	cli_warn("%s: %s%s%s", c->cmd->name, what, arg ? ": " : "", arg ? arg : "");
	return cli_command_usage(c, stderr);
}

/* A positive decimal integer (an id or a limit); -1 when S is not one. */
static long long
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

/*
 * --since: a UTC time in the store's format or a leading part of it (at least the year).
 * A space for the T and a final Z after a shorter form are accepted. Text comparison
 * with received_at then does the rest. 0 with the normalised form in out, or -1.
 */
static int
cli_since(const char *s, char out[32])
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t len = strlen(s), i;

	if (len < 4 || len >= sizeof(pattern))
		return -1;
	memcpy(out, s, len + 1);
	if (len > 10 && out[10] == ' ')
		out[10] = 'T';
	if (len < sizeof(pattern) - 1 && len > 4 && out[len - 1] == 'Z')
		out[--len] = '\0';
	for (i = 0; i < len; i++) {
		if (pattern[i] == 'd' ? (out[i] < '0' || out[i] > '9') : out[i] != pattern[i])
			return -1;
	}
	return 0;
}

/* Loads the config, then opens the store; an exit status on failure. */
static int
cli_open(struct cli *c)
{
	struct stat sb;
	char *cause = NULL;

	if ((c->cfg = config_load(c->file)) == NULL)
		return EX_CONFIG_;
	/* store_open would create a missing store: the tool only works on an existing one. */
	if (stat(c->cfg->store_path, &sb) == -1) {
		cli_warn("cannot open the store %s: %s", c->cfg->store_path, strerror(errno));
		return EX_NOINPUT_;
	}
	if ((c->st = store_open(c->cfg->store_path, c->cfg->synchronous_full, &cause)) == NULL) {
		cli_warn("cannot open the store %s", cause);
		free(cause);
		return EX_NOINPUT_;
	}
	return EX_OK_;
}

static int
cli_store_error(struct cli *c, const char *what)
{
	cli_warn("%s: %s", what, store_errmsg(c->st));
	store_rollback(c->st);
	return EX_SOFTWARE_;
}

/* Prints a finished JSON document as one line; 0, or EX_SOFTWARE_ when it failed. */
static int
cli_json_line(struct json_gen *g)
{
	size_t len;
	char *out;

	if ((out = json_gen_finish(g, &len)) == NULL)
		return EX_SOFTWARE_;
	fwrite(out, 1, len, stdout);
	putchar('\n');
	free(out);
	return 0;
}

/* ------------------------------------------------------------------ events */

struct cli_list {
	struct table table;
	int json;
	long long limit, rows;
	int more;
};

static int
cli_event_json(const struct store_admin_event *e)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_integer(g, "id", e->id);
	json_gen_kv_string(g, "kind", e->kind);
	json_gen_kv_string(g, "format", e->format);
	json_gen_kv_string(g, "received_at", e->received_at);
	json_gen_kv_string(g, "remote_addr", e->remote_addr);
	json_gen_kv_string(g, "message_id", e->message_id);
	json_gen_kv_string(g, "from_number", e->from_number);
	json_gen_kv_string(g, "to_number", e->to_number);
	json_gen_kv_string(g, "body", e->body);
	json_gen_kv_string(g, "status_code", e->status_code);
	json_gen_kv_string(g, "status_text", e->status_text);
	json_gen_kv_string(g, "custom_string", e->custom_string);
	json_gen_string(g, "payload");
	if (json_gen_raw(g, e->payload) == -1)
		json_gen_string(g, e->payload); /* not an object after all: as text */
	json_gen_kv_string(g, "dedupe_key", e->dedupe_key);
	json_gen_kv_integer(g, "duplicates", e->duplicates);
	json_gen_map_close(g);
	return cli_json_line(g);
}

/* Counts rows against the limit: 1 when this one is past it (there are more). */
static int
cli_list_more(struct cli_list *l)
{
	if (l->limit > 0 && ++l->rows > l->limit) {
		l->more = 1;
		return 1;
	}
	return 0;
}

static int
cli_event_row(const struct store_admin_event *e, void *arg)
{
	struct cli_list *l = arg;
	char id[24], dups[24];

	if (cli_list_more(l))
		return 1;
	if (l->json)
		return cli_event_json(e);
	snprintf(id, sizeof(id), "%lld", (long long)e->id);
	snprintf(dups, sizeof(dups), "%lld", e->duplicates);
	table_add(&l->table,
	    (const char *[]){ id, e->received_at, e->kind, e->format, e->message_id, e->from_number,
		e->to_number, e->status_code, dups, e->body });
	return 0;
}

/* The end of a listing: the table, a note when the limit cut it, the exit status. */
static int
cli_list_end(struct cli *c, struct cli_list *l, int rc, const char *what)
{
	if (rc == -1)
		return cli_store_error(c, what);
	if (rc > 1)
		return rc;
	if (!l->json) {
		table_print(&l->table);
		if (l->more)
			cli_warn("more %s than shown; use --limit", what);
	}
	return EX_OK_;
}

static int
cli_events(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_admin_event_filter f = { .limit = CLI_DEFAULT_LIMIT };
	struct cli_list l = { .table = { .ncols = 10,
				  .head = { "id", "received_at", "kind", "format", "message_id",
				      "from_number", "to_number", "status_code", "duplicates",
				      "body" },
				  .max = { [9] = CLI_BODY_WIDTH } } };
	char since[32];
	int ch, rc;

	while ((ch = cli_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 'k':
			if (webhook_kind_by_name(optarg) == NULL)
				return cli_bad_usage(c, "unknown kind", optarg);
			f.kind = optarg;
			break;
		case 's':
			if (cli_since(optarg, since) == -1)
				return cli_bad_usage(c,
				    "--since is not a UTC time or its start, e.g. "
				    "2026-11-23T07:40:00.000Z or 2026-11-23",
				    optarg);
			f.since = since;
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
	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if ((rc = cli_open(c)) != EX_OK_)
		return rc;
	l.limit = f.limit; /* one more row tells whether the limit cut the list */
	f.limit += f.limit < LLONG_MAX;
	rc = store_admin_events(c->st, &f, cli_event_row, &l);
	return cli_list_end(c, &l, rc, "events");
}

/* ------------------------------------------------------------------ deliveries */

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
	table_add(&l->table,
	    (const char *[]){ id, event_id, d->relay, d->state, attempts, d->next_attempt_at,
		d->last_attempt_at, d->last_result });
	return 0;
}

static int
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
	struct store_admin_delivery_filter f = { .limit = CLI_DEFAULT_LIMIT };
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
	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if ((rc = cli_open(c)) != EX_OK_)
		return rc;
	l.limit = f.limit;
	f.limit += f.limit < LLONG_MAX;
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
		rc = EX_DATAERR_;
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
		if (n == EX_DATAERR_)
			*unknown = 1;
		else
			total += n;
	}
	return total;
}

static int
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
	if (relay != NULL && !all_dead)
		return cli_bad_usage(c, "--relay goes with --all-dead", NULL);
	if ((rc = cli_open(c)) != EX_OK_)
		return rc;
	if (relay != NULL && config_relay_find(c->cfg, relay) == NULL)
		return cli_bad_usage(c, "not a configured relay", relay);
	store_time_text(now, 0);
	if (store_begin(c->st) == -1)
		return cli_store_error(c, "retry");
	n = all_dead ? cli_retry_dead(c, relay, now) : cli_retry_ids(c, argc, argv, now, &unknown);
	if (n == -1 || store_commit(c->st) == -1)
		return cli_store_error(c, "retry");
	printf("%d deliver%s set back to pending\n", n, n == 1 ? "y" : "ies");
	return unknown ? EX_DATAERR_ : EX_OK_;
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
		rc = EX_DATAERR_;
	} else if (cli_replay_existing(c, &ds, relay, now, r) == -1 ||
	    cli_replay_new(c, id, &ev, &ds, relay, now, r) == -1)
		rc = -1;
	else if (relay != NULL && !cli_has_delivery(&ds, relay) && r->created == 0) {
		cli_warn("event %lld: relay %s does not take it", (long long)id, relay);
		rc = EX_DATAERR_;
	}
out:
	cli_event_free(&ev);
	cli_deliveries_free(&ds);
	return rc;
}

static int
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
	if ((rc = cli_open(c)) != EX_OK_)
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
	return EX_OK_;
}

/* ------------------------------------------------------------------ provision */

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
		return EX_CONFIG_;
	return cli_provision(c->cfg, dry_run);
}

/* ------------------------------------------------------------------ stats */

static int
cli_count_row(const struct store_admin_count *cnt, void *arg)
{
	struct table *t = arg;
	char n[3][24];
	size_t i;

	for (i = 0; i < 3; i++)
		snprintf(n[i], sizeof(n[i]), "%lld", cnt->n[i]);
	table_add(t, (const char *[]){ cnt->name, n[0], n[1], n[2] });
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
	struct table *t = arg;
	char id[24] = "-";

	if (r->rule_id >= 0)
		snprintf(id, sizeof(id), "%lld", r->rule_id);
	table_add(t,
	    (const char *[]){ r->kind, id, r->rule_name, r->synced_at,
		r->last_error != NULL ? r->last_error : "ok" });
	return 0;
}

static int
cli_stats_print(struct cli *c)
{
	/* cli_count_row passes three counts; a kind has two, so its table has 3 columns */
	struct table kinds = { .ncols = 3, .head = { "kind", "events", "duplicates" } };
	struct table relays = { .ncols = 4, .head = { "relay", "pending", "done", "dead" } };
	struct table rules = { .ncols = 5,
		.head = { "kind", "rule_id", "rule_name", "synced_at", "last_error" },
		.max = { [4] = CLI_RESULT_WIDTH } };
	struct store_admin_delivery_filter oldest = {
		.state = "pending", .oldest_first = 1, .limit = 1
	};
	int rc;

	if (store_admin_kind_counts(c->st, cli_count_row, &kinds) == -1 ||
	    store_admin_relay_counts(c->st, cli_count_row, &relays) == -1)
		return -1;
	table_print(&kinds);
	putchar('\n');
	table_print(&relays);
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
		table_print(&rules);
	return 0;
}

static int
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
	if ((rc = cli_open(c)) != EX_OK_)
		return rc;
	if (cli_stats_print(c) == -1)
		return cli_store_error(c, "stats");
	return EX_OK_;
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
		return EX_USAGE_;
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
			return EX_OK_;
		case 'h':
			cli_usage(stdout);
			return EX_OK_;
		case ':':
			cli_warn("option -%c needs a value", optopt);
			cli_usage(stderr);
			return EX_USAGE_;
		default:
			cli_warn("unknown option %s", argv[optind - 1]);
			cli_usage(stderr);
			return EX_USAGE_;
		}
	}
	if (optind == argc) {
		cli_usage(stderr);
		return EX_USAGE_;
	}
	rc = cli_dispatch(&c, argc - optind, argv + optind);
	store_close(c.st);
	config_free(c.cfg);
	if (fflush(stdout) == EOF && rc == EX_OK_) {
		cli_warn("stdout: %s", strerror(errno));
		rc = EX_SOFTWARE_;
	}
	return rc;
}
