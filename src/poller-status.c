/* SPDX-License-Identifier: ISC */
/*
 * How a poll fetch ends: it went through (the next one after poll_interval), 401/403 (logged
 * once, polling stops until a reload), anything else (backoff up to 1 h); the gauges, and
 * the /healthz "poll" text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clicksend.h"
#include "log.h"
#include "metrics.h"
#include "poller-internal.h"

static double
poller_random(struct poller *p)
{
	return rand_r(&p->seed) / ((double)RAND_MAX + 1);
}

void
poller_once_check(struct poller *p)
{
	size_t i;

	if (!p->once)
		return;
	for (i = 0; i < KIND_COUNT; i++) {
		if ((p->mask & (1u << i)) && p->kinds[i].state != PS_DONE &&
		    p->kinds[i].state != PS_OFF)
			return;
	}
	event_base_loopbreak(p->base);
}

/* "off", "ok", or "error: kind: reason; kind: reason". */
void
poller_status_text(struct poller *p)
{
	const struct poller_kind *k;
	size_t i, n;
	int failed = 0;

	if (p->fatal[0] != '\0') {
		snprintf(p->status, sizeof(p->status), "error: %s", p->fatal);
		return;
	}
	if (p->mask == 0 || p->cs == NULL || !p->active) {
		snprintf(p->status, sizeof(p->status), "off");
		return;
	}
	snprintf(p->status, sizeof(p->status), "error: ");
	for (i = 0; i < KIND_COUNT; i++) {
		k = &p->kinds[i];
		if (!(p->mask & (1u << i)) || k->ok != 0)
			continue;
		n = strlen(p->status);
		snprintf(p->status + n, sizeof(p->status) - n, "%s%s: %s", failed++ ? "; " : "",
		    k->kind->name, k->error);
	}
	if (!failed)
		snprintf(p->status, sizeof(p->status), "ok");
}

/* 401/403: the credentials are wrong for every kind; no retry until a reload. */
static void
poller_auth_failed(struct poller *p, const char *error)
{
	size_t i;

	log_error("polling: %s; polling stops until a reload", error);
	snprintf(p->fatal, sizeof(p->fatal), "%s", error);
	for (i = 0; i < KIND_COUNT; i++) {
		if (!(p->mask & (1u << i)))
			continue;
		poller_kind_stop(&p->kinds[i]);
		p->kinds[i].ok = 0;
		metrics_set_poll_ok((enum webhook_kind_id)i, 0);
		if (p->once)
			p->kinds[i].state = PS_DONE;
	}
	poller_status_text(p);
	poller_once_check(p);
}

void
poller_kind_failed(struct poller_kind *k, const char *step, const struct clicksend_answer *ans)
{
	struct poller *p = k->p;
	uint64_t ms;

	if (ans->cls == CLICKSEND_AUTH) {
		poller_auth_failed(p, ans->error);
		return;
	}
	poller_kind_stop(k);
	snprintf(k->error, sizeof(k->error), "%s: %s", step, ans->error);
	k->ok = 0;
	metrics_set_poll_ok(k->kind->id, 0);
	if (p->once) {
		k->state = PS_DONE;
		log_warnx("poll %s: %s", k->kind->name, k->error);
	} else {
		ms = poller_backoff_ms(p->interval_ms, k->attempts++, poller_random(p));
		log_warnx("poll %s: %s; trying again in %llu s", k->kind->name, k->error,
		    (unsigned long long)(ms + 999) / 1000);
		poller_schedule(k, ms);
	}
	poller_status_text(p);
	poller_once_check(p);
}

void
poller_kind_ok(struct poller_kind *k)
{
	struct poller *p = k->p;

	if (k->ok != 1 || k->stored > 0)
		log_info("poll %s: %llu item(s) stored%s", k->kind->name, k->stored,
		    k->ok == 0 ? " (polling works again)" : "");
	k->ok = 1;
	k->attempts = 0;
	k->error[0] = '\0';
	metrics_set_poll_ok(k->kind->id, 1);
	if (p->once)
		k->state = PS_DONE;
	else
		poller_schedule(k, k->more ? 0 : p->interval_ms);
	poller_status_text(p);
	poller_once_check(p);
}
