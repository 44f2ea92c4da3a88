/* SPDX-License-Identifier: ISC */
/*
 * The pure parts of polling: API rows as events of format poll, the date_before that marks
 * only committed receipts read, the read-mark requests and the backoff. No I/O here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "poller.h"
#include "xmalloc.h"

/* One row as an event; -1 when it is not an object or cannot be kept. */
static int
poller_event(const struct webhook_kind *kind, const struct json_node *row, struct webhook_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (json_node_fields(row, &ev->fields) == -1) {
		fields_free(&ev->fields);
		return -1;
	}
	ev->kind = kind;
	ev->format = FORMAT_POLL;
	webhook_event_finish(ev);
	return 0;
}

size_t
poller_events(const struct webhook_kind *kind, const struct webhook_poll *def,
    const struct json_node *const *rows, size_t nrows, struct webhook_event **out, size_t *skipped)
{
	struct webhook_event *evs = nrows > 0 ? xcalloc(nrows, sizeof(*evs)) : NULL;
	size_t i, n = 0;

	*skipped = 0;
	for (i = 0; i < nrows; i++) {
		if (poller_event(kind, rows[i], &evs[n]) == -1) {
			(*skipped)++;
			continue;
		}
		if (def->by_id && (evs[n].message_id == NULL || *evs[n].message_id == '\0')) {
			webhook_event_free(&evs[n]);
			(*skipped)++;
			continue;
		}
		n++;
	}
	if (n == 0) {
		free(evs);
		evs = NULL;
	}
	*out = evs;
	return n;
}

int
poller_item_time(const struct webhook_event *ev, long long *t)
{
	const struct field *f = fields_get(&ev->fields, "timestamp");
	char *end;

	if (f == NULL || f->value == NULL || (f->type != FIELD_NUMBER && f->type != FIELD_STRING))
		return -1;
	errno = 0;
	*t = strtoll(f->value, &end, 10);
	if (errno != 0 || end == f->value || (*end != '\0' && *end != '.') || *t <= 0)
		return -1;
	return 0;
}

long long
poller_date_before(const struct webhook_event *evs, size_t n, long long fetched_at, int truncated)
{
	long long newest = -1, t;
	size_t i;

	for (i = 0; i < n; i++) {
		if (poller_item_time(&evs[i], &t) == 0 && t > newest)
			newest = t;
	}
	if (newest < 0)
		return -1;
	if (truncated)
		newest--; /* unread items of the newest second may lie past what was read */
	return newest + 1 < fetched_at ? newest + 1 : fetched_at;
}

char *
poller_read_path(const struct webhook_poll *def, const char *message_id)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(def->read), i;
	char *out = xmalloc(len + 1 + strlen(message_id) * 3 + 1), *p;

	memcpy(out, def->read, len);
	p = out + len;
	*p++ = '/';
	for (i = 0; message_id[i] != '\0'; i++) {
		unsigned char c = (unsigned char)message_id[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c) != NULL)
			*p++ = (char)c;
		else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

char *
poller_read_body(long long date_before)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_integer(g, "date_before", date_before);
	json_gen_map_close(g);
	return json_gen_finish(g, NULL);
}

uint64_t
poller_backoff_ms(uint64_t interval_ms, unsigned attempt, double r)
{
	uint64_t ms = interval_ms;

	while (attempt-- > 0 && ms < POLLER_BACKOFF_MAX_MS)
		ms *= 2;
	ms = (uint64_t)((double)ms * (0.8 + 0.4 * r));
	return ms > POLLER_BACKOFF_MAX_MS ? POLLER_BACKOFF_MAX_MS : ms;
}
