/* SPDX-License-Identifier: ISC */
/* Counters and the request-duration histogram, rendered as Prometheus text. */
#ifndef METRICS_H
#define METRICS_H

#include "webhook.h"

void metrics_event_received(enum webhook_kind_id, enum webhook_format);
void metrics_event_duplicate(enum webhook_kind_id);
void metrics_http_response(int code);
void metrics_request_duration(double seconds);
/* result: "done", "retry" or "dead" */
void metrics_delivery(const char *relay, const char *result);
/* per-kind gauges, -1 for unknown (not exported) */
void metrics_set_provision_ok(enum webhook_kind_id, int ok);
void metrics_set_selftest_ok(enum webhook_kind_id, int ok);
/* Polling: items fetched and committed (duplicates too), and whether the last fetch of the
 * kind went through (-1 unknown: not polled). */
void metrics_poll_items(enum webhook_kind_id, unsigned long long n);
void metrics_set_poll_ok(enum webhook_kind_id, int ok);

/* Gauges provided at render time. */
struct metrics_relay_gauge {
	const char *relay;
	long long pending, dead;
	int paused;
};
/* The store writer's totals: transactions committed or failed, and the items they held. */
struct metrics_store {
	unsigned long long batches, items, commits_failed;
};
/* Prometheus text; caller frees. */
char *metrics_render(
    const struct metrics_relay_gauge *, size_t n, const struct metrics_store *store);
void metrics_reset(void);

#endif
