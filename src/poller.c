/* SPDX-License-Identifier: ISC */
/*
 * Polling (clicksend-relayd(8), Polling). Per kind, one fetch at a time: each of its lists
 * in turn is read page by page (GET, unread items), its items go to the store writer as one
 * ingest item, and only after that COMMIT are they marked read: by message_id, or with a
 * date_before no later than the newest committed item (poller-items.c). Then the kind's
 * timer waits poll_interval. Failures and the /healthz text are in poller-status.c. All of
 * it on the daemon's event_base, through the ClickSend client: ingest never waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clicksend.h"
#include "config.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "poller-internal.h"
#include "xmalloc.h"

static void poller_list_begin(struct poller_kind *);
static void poller_list_next(struct poller_kind *);
static void poller_mark_more(struct poller_kind *);

static const struct webhook_poll *
poller_def(const struct poller_kind *k)
{
	return &k->kind->poll[k->list];
}

static void
poller_ids_free(struct poller_kind *k)
{
	size_t i;

	for (i = 0; i < k->nids; i++)
		free(k->ids[i]);
	free(k->ids);
	k->ids = NULL;
	k->nids = k->next_id = 0;
}

/* Abandons whatever the kind has in flight: calls, the timer, its batch (orphaned). */
void
poller_kind_stop(struct poller_kind *k)
{
	size_t i;

	clicksend_cancel(k->call);
	k->call = NULL;
	for (i = 0; i < POLLER_MARK_PARALLEL; i++) {
		clicksend_cancel(k->marks[i].call);
		k->marks[i].call = NULL;
	}
	k->marks_busy = 0;
	if (k->batch != NULL)
		k->batch->k = NULL; /* its commit comes back to nobody: not marked read */
	k->batch = NULL;
	poller_ids_free(k);
	if (k->timer != NULL)
		evtimer_del(k->timer);
	k->state = PS_OFF;
}

void
poller_schedule(struct poller_kind *k, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	k->state = PS_WAIT;
	evtimer_add(k->timer, &tv);
}

/* ------------------------------------------------------------------ marking read */

/* One read mark was answered; 404 means ClickSend has no such unread item: fine. */
static void
poller_marked(struct clicksend_answer *ans, void *arg)
{
	struct poller_mark *m = arg;
	struct poller_kind *k = m->k;

	m->call = NULL;
	k->marks_busy--;
	if (ans->cls == CLICKSEND_AUTH) {
		poller_kind_failed(k, "mark read", ans);
		return;
	}
	if (ans->cls != CLICKSEND_OK && ans->cls != CLICKSEND_NOT_FOUND && k->mark_error[0] == '\0')
		snprintf(k->mark_error, sizeof(k->mark_error), "%s", ans->error);
	poller_mark_more(k);
}

/* Keeps up to POLLER_MARK_PARALLEL marks in flight; when all are answered, the next list. */
static void
poller_mark_more(struct poller_kind *k)
{
	struct clicksend_answer ans;
	struct poller_mark *m;
	char *path;
	size_t i;

	for (i = 0; i < POLLER_MARK_PARALLEL && k->next_id < k->nids; i++) {
		m = &k->marks[i];
		if (m->call != NULL)
			continue;
		path = poller_read_path(poller_def(k), k->ids[k->next_id++]);
		m->k = k;
		m->call = clicksend_request(k->p->cs, CURL_REQ_PUT, path, NULL, poller_marked, m);
		k->marks_busy++;
		free(path);
	}
	if (k->marks_busy > 0)
		return;
	poller_ids_free(k);
	if (k->mark_error[0] == '\0') {
		poller_list_next(k);
		return;
	}
	memset(&ans, 0, sizeof(ans));
	ans.cls = CLICKSEND_TRANSIENT;
	snprintf(ans.error, sizeof(ans.error), "%s", k->mark_error);
	poller_kind_failed(k, "mark read", &ans);
}

/* Receipts: one PUT with date_before; nothing when no committed item has a timestamp. */
static void
poller_mark_date(
    struct poller_kind *k, const struct webhook_event *evs, size_t n, long long at, int truncated)
{
	long long before = poller_date_before(evs, n, at, truncated);
	char *body;

	if (before < 0) {
		log_warnx("poll %s: no item of %s has a timestamp: left unread", k->kind->name,
		    poller_def(k)->list);
		poller_list_next(k);
		return;
	}
	body = poller_read_body(before);
	k->marks[0].k = k;
	k->marks[0].call = clicksend_request(
	    k->p->cs, CURL_REQ_PUT, poller_def(k)->read, body, poller_marked, &k->marks[0]);
	k->marks_busy = 1;
	free(body);
}

/* The committed items: count them, tell the owner, then mark them read. */
static void
poller_committed(struct poller_kind *k, struct webhook_event *evs, size_t n, long long at)
{
	struct poller *p = k->p;
	int truncated = k->more;
	size_t i;

	for (i = 0; i < n; i++) {
		metrics_event_received(evs[i].kind->id, FORMAT_POLL);
		if (evs[i].duplicate)
			metrics_event_duplicate(evs[i].kind->id);
		if (p->hooks.event_stored != NULL)
			p->hooks.event_stored(p->hooks.arg, &evs[i]);
		log_ctx(evs[i].duplicate ? LOG_INFO : LOG_DEBUG, evs[i].id, NULL,
		    "%s poll event from %s%s", evs[i].kind->name, poller_def(k)->list,
		    evs[i].duplicate ? " (duplicate)" : "");
	}
	metrics_poll_items(k->kind->id, n);
	for (i = 0; k->more && i < n && evs[i].duplicate; i++)
		;
	if (k->more && i == n)
		k->more = 0; /* a long list of one second, all seen: at the next interval */
	k->stored += n;
	k->state = PS_MARK;
	k->mark_error[0] = '\0';
	if (!poller_def(k)->by_id) {
		poller_mark_date(k, evs, n, at, truncated);
		return;
	}
	k->ids = xcalloc(n, sizeof(*k->ids));
	for (i = 0; i < n; i++)
		k->ids[k->nids++] = xstrdup(evs[i].message_id);
	poller_mark_more(k);
}

/* ------------------------------------------------------------------ fetching */

/* The writer is done with a list's items (ingest_done_cb). */
static void
poller_stored(int result, struct webhook_event *evs, size_t n, void *arg)
{
	struct poller_batch *b = arg;
	struct poller_kind *k = b->k;
	struct clicksend_answer ans;
	long long at = b->fetched_at;

	free(b);
	if (k == NULL)
		return; /* abandoned by a reload or the switch: come again as duplicates */
	k->batch = NULL;
	if (result == 0) {
		poller_committed(k, evs, n, at);
		return;
	}
	memset(&ans, 0, sizeof(ans));
	ans.cls = CLICKSEND_TRANSIENT;
	snprintf(ans.error, sizeof(ans.error), "the store did not commit");
	poller_kind_failed(k, "store", &ans);
}

/* Hands the items to the store writer, routed as webhooks are. */
static void
poller_store(struct poller_kind *k, struct webhook_event *evs, size_t n)
{
	struct poller *p = k->p;
	struct clicksend_answer ans;
	size_t i;

	for (i = 0; i < n && p->hooks.route != NULL; i++)
		p->hooks.route(p->hooks.arg, &evs[i]);
	k->batch = xcalloc(1, sizeof(*k->batch));
	k->batch->k = k;
	k->batch->fetched_at = k->fetched_at;
	k->state = PS_STORE;
	if (ingest_submit(p->ingest, evs, n, poller_stored, k->batch) == 0)
		return;
	free(k->batch);
	k->batch = NULL;
	memset(&ans, 0, sizeof(ans));
	ans.cls = CLICKSEND_TRANSIENT;
	snprintf(ans.error, sizeof(ans.error), "the store writer is too far behind");
	poller_kind_failed(k, "store", &ans);
}

/* Every page of a list was read (or a page failed). */
static void
poller_listed(struct clicksend_list *l, void *arg)
{
	struct poller_kind *k = arg;
	struct webhook_event *evs;
	size_t n, skipped;

	k->call = NULL;
	if (l->answer.cls != CLICKSEND_OK) {
		/* past CLICKSEND_MAX_PAGES: take what was read, then go on at once */
		if (l->answer.cls != CLICKSEND_INVALID || l->pages < CLICKSEND_MAX_PAGES) {
			poller_kind_failed(k, poller_def(k)->list, &l->answer);
			return;
		}
		k->more = 1;
	}
	n = poller_events(k->kind, poller_def(k), l->rows, l->nrows, &evs, &skipped);
	if (skipped > 0)
		log_warnx("poll %s: %zu item(s) of %s skipped: not an object or no message_id",
		    k->kind->name, skipped, poller_def(k)->list);
	if (n == 0) {
		poller_list_next(k);
		return;
	}
	poller_store(k, evs, n);
}

static void
poller_list_begin(struct poller_kind *k)
{
	k->state = PS_LIST;
	k->fetched_at = (long long)time(NULL);
	k->call = clicksend_list(k->p->cs, poller_def(k)->list, poller_listed, k);
}

static void
poller_list_next(struct poller_kind *k)
{
	if (++k->list < WEBHOOK_POLL_LISTS && poller_def(k)->list != NULL) {
		poller_list_begin(k);
		return;
	}
	poller_kind_ok(k);
}

/* The kind's timer: a fetch is due. */
static void
poller_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct poller_kind *k = arg;

	(void)fd;
	(void)what;
	k->list = 0;
	k->stored = 0;
	k->more = 0;
	poller_list_begin(k);
}

/* ------------------------------------------------------------------ life cycle */

struct poller *
poller_new(struct event_base *base, struct ingest *in, const struct poller_hooks *hooks)
{
	struct poller *p = xcalloc(1, sizeof(*p));
	size_t i;

	p->base = base;
	p->ingest = in;
	if (hooks != NULL)
		p->hooks = *hooks;
	p->active = 1;
	p->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	for (i = 0; i < KIND_COUNT; i++) {
		p->kinds[i].p = p;
		p->kinds[i].kind = &webhook_kinds[i];
		p->kinds[i].ok = -1;
		p->kinds[i].timer = evtimer_new(base, poller_timer_cb, &p->kinds[i]);
	}
	poller_status_text(p);
	return p;
}

/* Stops every kind and forgets the configuration; the gauges go back to unknown. */
static void
poller_reset(struct poller *p)
{
	size_t i;

	for (i = 0; i < KIND_COUNT; i++) {
		poller_kind_stop(&p->kinds[i]);
		p->kinds[i].ok = -1;
		p->kinds[i].attempts = 0;
		p->kinds[i].error[0] = '\0';
		if (p->mask & (1u << i))
			metrics_set_poll_ok((enum webhook_kind_id)i, -1);
	}
	clicksend_free(p->cs);
	p->cs = NULL;
	p->mask = 0;
	p->fatal[0] = '\0';
}

void
poller_begin_all(struct poller *p)
{
	size_t i;

	for (i = 0; i < KIND_COUNT; i++) {
		if (p->mask & (1u << i))
			poller_schedule(&p->kinds[i], 0);
	}
}

int
poller_configure(struct poller *p, const struct config *cfg, char *why, size_t whylen)
{
	char *key = NULL;
	size_t i;

	poller_reset(p);
	if ((p->mask = cfg->poll & ((1u << KIND_COUNT) - 1)) == 0)
		return 1;
	for (i = 0; i < KIND_COUNT; i++) {
		if (p->mask & (1u << i))
			metrics_set_poll_ok((enum webhook_kind_id)i, 0);
	}
	p->interval_ms = cfg->poll_interval_ms;
	if (cfg->username == NULL || *cfg->username == '\0')
		snprintf(why, whylen, "username is not set");
	else if (clicksend_load_key(cfg, &key, why, whylen) != 0)
		key = NULL;
	if (key == NULL) {
		snprintf(p->fatal, sizeof(p->fatal), "%s", why);
		return -1;
	}
	p->cs = clicksend_new(p->base, cfg->api_url, cfg->username, key);
	explicit_bzero(key, strlen(key));
	free(key);
	return 0;
}

void
poller_start(struct poller *p, const struct config *cfg)
{
	char why[512];
	int rc = poller_configure(p, cfg, why, sizeof(why));

	if (rc == -1)
		log_error("polling: cannot run: %s", why);
	else if (rc == 0 && p->active)
		poller_begin_all(p);
	else if (rc == 0)
		log_info("polling: on standby (switched off)");
	poller_status_text(p);
}

void
poller_set_active(struct poller *p, int on)
{
	size_t i;

	on = on != 0;
	if (p == NULL || p->active == on)
		return;
	p->active = on;
	for (i = 0; !on && i < KIND_COUNT; i++)
		poller_kind_stop(&p->kinds[i]);
	if (on && p->cs != NULL && p->fatal[0] == '\0')
		poller_begin_all(p);
	poller_status_text(p);
}

int
poller_active(const struct poller *p)
{
	return p != NULL && p->active;
}

const char *
poller_status(struct poller *p)
{
	return p != NULL ? p->status : "off";
}

void
poller_free(struct poller *p)
{
	size_t i;

	if (p == NULL)
		return;
	poller_reset(p);
	for (i = 0; i < KIND_COUNT; i++)
		event_free(p->kinds[i].timer);
	free(p);
}
