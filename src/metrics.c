/* SPDX-License-Identifier: ISC */
/* Process-wide counters, gauges and the request-duration histogram, and their rendering
 * in the Prometheus text exposition format for GET /metrics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "xmalloc.h"

static const double metrics_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10 };
#define METRICS_NBUCKETS   (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))
#define METRICS_MAX_RELAYS 256

struct metrics_delivery {
	char *relay;
	unsigned long long done, retry, dead;
};

static struct {
	unsigned long long received[KIND_COUNT][FORMAT_COUNT];
	unsigned long long duplicate[KIND_COUNT];
	unsigned long long responses[600];
	unsigned long long hist[METRICS_NBUCKETS];
	unsigned long long hist_count;
	double hist_sum;
	struct metrics_delivery deliveries[METRICS_MAX_RELAYS];
	size_t ndeliveries;
	int provision_ok[KIND_COUNT];
	int selftest_ok[KIND_COUNT];
	int poll_ok[KIND_COUNT];
	unsigned long long poll_items[KIND_COUNT];
	int gauges_set;
} m;

static void
metrics_init_gauges(void)
{
	int k;

	if (m.gauges_set)
		return;
	for (k = 0; k < KIND_COUNT; k++)
		m.provision_ok[k] = m.selftest_ok[k] = m.poll_ok[k] = -1;
	m.gauges_set = 1;
}

void
metrics_reset(void)
{
	size_t i;

	for (i = 0; i < m.ndeliveries; i++)
		free(m.deliveries[i].relay);
	memset(&m, 0, sizeof(m));
}

void
metrics_event_received(enum webhook_kind_id k, enum webhook_format f)
{
	m.received[k][f]++;
}

void
metrics_event_duplicate(enum webhook_kind_id k)
{
	m.duplicate[k]++;
}

void
metrics_http_response(int code)
{
	if (code >= 100 && code < 600)
		m.responses[code]++;
}

void
metrics_request_duration(double s)
{
	size_t i;

	for (i = 0; i < METRICS_NBUCKETS; i++) {
		if (s <= metrics_buckets[i])
			m.hist[i]++;
	}
	m.hist_count++;
	m.hist_sum += s;
}

static struct metrics_delivery *
metrics_delivery_slot(const char *relay)
{
	size_t i;

	for (i = 0; i < m.ndeliveries; i++) {
		if (strcmp(m.deliveries[i].relay, relay) == 0)
			return &m.deliveries[i];
	}
	if (m.ndeliveries == METRICS_MAX_RELAYS)
		return NULL;
	m.deliveries[m.ndeliveries].relay = xstrdup(relay);
	return &m.deliveries[m.ndeliveries++];
}

void
metrics_delivery(const char *relay, const char *result)
{
	struct metrics_delivery *d = metrics_delivery_slot(relay);

	if (d == NULL)
		return;
	if (strcmp(result, "done") == 0)
		d->done++;
	else if (strcmp(result, "dead") == 0)
		d->dead++;
	else
		d->retry++;
}

void
metrics_set_provision_ok(enum webhook_kind_id k, int ok)
{
	metrics_init_gauges();
	m.provision_ok[k] = ok;
}

void
metrics_set_selftest_ok(enum webhook_kind_id k, int ok)
{
	metrics_init_gauges();
	m.selftest_ok[k] = ok;
}

void
metrics_poll_items(enum webhook_kind_id k, unsigned long long n)
{
	m.poll_items[k] += n;
}

void
metrics_set_poll_ok(enum webhook_kind_id k, int ok)
{
	metrics_init_gauges();
	m.poll_ok[k] = ok;
}

/* A growing text buffer for the exposition. */
struct metrics_out {
	char *buf;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len)
			break;
		o->cap = o->cap * 2 + (size_t)n + 1;
		o->buf = xreallocarray(o->buf, o->cap, 1);
	}
	o->len += (size_t)n;
}

static void
metrics_render_events(struct metrics_out *o)
{
	int k, f;

	metrics_printf(o,
	    "# HELP clicksend_relay_events_received_total Webhook events stored "
	    "or recognised as duplicates.\n"
	    "# TYPE clicksend_relay_events_received_total counter\n");
	for (k = 0; k < KIND_COUNT; k++)
		for (f = 0; f < FORMAT_COUNT; f++)
			metrics_printf(o,
			    "clicksend_relay_events_received_total{kind=\"%s\",format=\"%s\"} "
			    "%llu\n",
			    webhook_kinds[k].name, webhook_format_name((enum webhook_format)f),
			    m.received[k][f]);
	metrics_printf(o,
	    "# HELP clicksend_relay_events_duplicate_total Webhook events "
	    "recognised as ClickSend retries.\n"
	    "# TYPE clicksend_relay_events_duplicate_total counter\n");
	for (k = 0; k < KIND_COUNT; k++)
		metrics_printf(o, "clicksend_relay_events_duplicate_total{kind=\"%s\"} %llu\n",
		    webhook_kinds[k].name, m.duplicate[k]);
}

static void
metrics_render_http(struct metrics_out *o)
{
	size_t i;

	metrics_printf(o,
	    "# HELP clicksend_relay_http_responses_total HTTP answers by status.\n"
	    "# TYPE clicksend_relay_http_responses_total counter\n");
	for (i = 100; i < 600; i++) {
		if (m.responses[i] > 0)
			metrics_printf(o,
			    "clicksend_relay_http_responses_total{code=\"%zu\"} %llu\n", i,
			    m.responses[i]);
	}
	metrics_printf(o,
	    "# HELP clicksend_relay_request_duration_seconds Time from request "
	    "to answer.\n# TYPE clicksend_relay_request_duration_seconds histogram\n");
	for (i = 0; i < METRICS_NBUCKETS; i++)
		metrics_printf(o,
		    "clicksend_relay_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    metrics_buckets[i], m.hist[i]);
	metrics_printf(o,
	    "clicksend_relay_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "clicksend_relay_request_duration_seconds_sum %.6f\n"
	    "clicksend_relay_request_duration_seconds_count %llu\n",
	    m.hist_count, m.hist_sum, m.hist_count);
}

static void
metrics_render_relays(struct metrics_out *o, const struct metrics_relay_gauge *g, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		metrics_delivery_slot(g[i].relay); /* a series for every relay from the start */
	metrics_printf(o,
	    "# HELP clicksend_relay_deliveries_total Delivery attempts by outcome.\n"
	    "# TYPE clicksend_relay_deliveries_total counter\n");
	for (i = 0; i < m.ndeliveries; i++) {
		const struct metrics_delivery *d = &m.deliveries[i];
		metrics_printf(o,
		    "clicksend_relay_deliveries_total{relay=\"%s\",result=\"done\"} %llu\n"
		    "clicksend_relay_deliveries_total{relay=\"%s\",result=\"retry\"} %llu\n"
		    "clicksend_relay_deliveries_total{relay=\"%s\",result=\"dead\"} %llu\n",
		    d->relay, d->done, d->relay, d->retry, d->relay, d->dead);
	}
	metrics_printf(o,
	    "# HELP clicksend_relay_outbox_pending Deliveries waiting.\n"
	    "# TYPE clicksend_relay_outbox_pending gauge\n");
	for (i = 0; i < n; i++)
		metrics_printf(o, "clicksend_relay_outbox_pending{relay=\"%s\"} %lld\n", g[i].relay,
		    g[i].pending);
	metrics_printf(o,
	    "# HELP clicksend_relay_outbox_dead Deliveries given up.\n"
	    "# TYPE clicksend_relay_outbox_dead gauge\n");
	for (i = 0; i < n; i++)
		metrics_printf(
		    o, "clicksend_relay_outbox_dead{relay=\"%s\"} %lld\n", g[i].relay, g[i].dead);
	metrics_printf(o,
	    "# HELP clicksend_relay_relay_paused 1 while the relay is paused.\n"
	    "# TYPE clicksend_relay_relay_paused gauge\n");
	for (i = 0; i < n; i++)
		metrics_printf(o, "clicksend_relay_relay_paused{relay=\"%s\"} %d\n", g[i].relay,
		    g[i].paused != 0);
}

static void
metrics_render_kind_gauge(struct metrics_out *o, const char *name, const char *help, const int *v)
{
	int k;

	metrics_printf(o, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (k = 0; k < KIND_COUNT; k++) {
		if (v[k] >= 0)
			metrics_printf(
			    o, "%s{kind=\"%s\"} %d\n", name, webhook_kinds[k].name, v[k]);
	}
}

/* Items counted for every kind that is or was polled (its gauge set), from 0. */
static void
metrics_render_poll(struct metrics_out *o)
{
	int k;

	metrics_printf(o,
	    "# HELP clicksend_relay_poll_items_total Items fetched from the ClickSend API "
	    "and committed.\n# TYPE clicksend_relay_poll_items_total counter\n");
	for (k = 0; k < KIND_COUNT; k++) {
		if (m.poll_ok[k] >= 0 || m.poll_items[k] > 0)
			metrics_printf(o, "clicksend_relay_poll_items_total{kind=\"%s\"} %llu\n",
			    webhook_kinds[k].name, m.poll_items[k]);
	}
	metrics_render_kind_gauge(o, "clicksend_relay_poll_ok",
	    "1 when the kind's last poll of the ClickSend API succeeded.", m.poll_ok);
}

static void
metrics_render_store(struct metrics_out *o, const struct metrics_store *st)
{
	metrics_printf(o,
	    "# HELP clicksend_relay_store_batches_total Store writer transactions "
	    "(committed or failed).\n# TYPE clicksend_relay_store_batches_total counter\n"
	    "clicksend_relay_store_batches_total %llu\n"
	    "# HELP clicksend_relay_store_batch_items_total Writes the store writer's "
	    "transactions held (requests, outcomes, reads).\n"
	    "# TYPE clicksend_relay_store_batch_items_total counter\n"
	    "clicksend_relay_store_batch_items_total %llu\n"
	    "# HELP clicksend_relay_store_commit_failures_total Store writer transactions "
	    "that failed to begin or commit.\n"
	    "# TYPE clicksend_relay_store_commit_failures_total counter\n"
	    "clicksend_relay_store_commit_failures_total %llu\n",
	    st->batches, st->items, st->commits_failed);
}

char *
metrics_render(const struct metrics_relay_gauge *g, size_t n, const struct metrics_store *store)
{
	struct metrics_out o = { xmalloc(4096), 0, 4096 };

	metrics_init_gauges();
	o.buf[0] = '\0';
	metrics_render_events(&o);
	metrics_render_http(&o);
	metrics_render_relays(&o, g, n);
	metrics_render_kind_gauge(&o, "clicksend_relay_provision_ok",
	    "1 when the kind's ClickSend rule is in place.", m.provision_ok);
	metrics_render_kind_gauge(&o, "clicksend_relay_selftest_ok",
	    "1 when the kind's test receipt arrived.", m.selftest_ok);
	metrics_render_poll(&o);
	if (store != NULL)
		metrics_render_store(&o, store);
	return o.buf;
}
