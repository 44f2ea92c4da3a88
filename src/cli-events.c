/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's `events`: stored events, newest first, filtered by kind and time,
 * as a table or as JSON lines.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "store-admin.h"
#include "webhook.h"

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
	cli_table_add(&l->table,
	    (const char *[]){ id, e->received_at, e->kind, e->format, e->message_id, e->from_number,
		e->to_number, e->status_code, dups, e->body });
	return 0;
}

int
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
	if ((rc = cli_list_begin(c, argc, argv, &l, &f.limit)) != EX_OK)
		return rc;
	rc = store_admin_events(c->st, &f, cli_event_row, &l);
	return cli_list_end(c, &l, rc, "events");
}
