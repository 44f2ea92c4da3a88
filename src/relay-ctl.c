/* SPDX-License-Identifier: ISC */
/* Per-relay controls for the outbox: the paused set read from the store, a sliding
 * window of attempt start times for `rate`, and the failure streak for `pause_after`
 * (clicksend-relay.conf(5)). One record per relay name, made when first asked about. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "config.h"
#include "relay-ctl.h"
#include "xmalloc.h"

#define RELAY_CTL_MIN_FAILS 3 /* pause_after needs at least this many failed attempts */

struct relay_ctl_one {
	char *name;
	int paused, was_paused; /* was_paused: before the read that is replacing the set */
	int64_t *starts; /* ring of the last `rate` start times */
	unsigned cap, n, head;
	unsigned fails;
	int64_t fail_since;
	char fail_since_text[32];
	TAILQ_ENTRY(relay_ctl_one) entry;
};

struct relay_ctl {
	TAILQ_HEAD(, relay_ctl_one) all;
};

struct relay_ctl *
relay_ctl_new(void)
{
	struct relay_ctl *c = xcalloc(1, sizeof(*c));

	TAILQ_INIT(&c->all);
	return c;
}

void
relay_ctl_free(struct relay_ctl *c)
{
	struct relay_ctl_one *o;

	if (c == NULL)
		return;
	while ((o = TAILQ_FIRST(&c->all)) != NULL) {
		TAILQ_REMOVE(&c->all, o, entry);
		free(o->name);
		free(o->starts);
		free(o);
	}
	free(c);
}

static struct relay_ctl_one *
relay_ctl_get(struct relay_ctl *c, const char *relay)
{
	struct relay_ctl_one *o;

	TAILQ_FOREACH(o, &c->all, entry) {
		if (strcmp(o->name, relay) == 0)
			return o;
	}
	o = xcalloc(1, sizeof(*o));
	o->name = xstrdup(relay);
	TAILQ_INSERT_TAIL(&c->all, o, entry);
	return o;
}

void
relay_ctl_paused_clear(struct relay_ctl *c)
{
	struct relay_ctl_one *o;

	TAILQ_FOREACH(o, &c->all, entry) {
		o->was_paused = o->paused;
		o->paused = 0;
	}
}

/* A resumed relay starts a new failure streak: the failures before its pause (and the
 * time it spent paused) do not count towards pause_after again. */
void
relay_ctl_paused_done(struct relay_ctl *c)
{
	struct relay_ctl_one *o;

	TAILQ_FOREACH(o, &c->all, entry) {
		if (o->was_paused && !o->paused)
			o->fails = 0;
		o->was_paused = 0;
	}
}

void
relay_ctl_paused_mark(struct relay_ctl *c, const char *relay)
{
	relay_ctl_get(c, relay)->paused = 1;
}

int
relay_ctl_paused(struct relay_ctl *c, const char *relay)
{
	return relay_ctl_get(c, relay)->paused;
}

/* The ring sized for RL's rate; a changed rate (reload) starts a new window. */
static void
relay_ctl_ring(struct relay_ctl_one *o, const struct config_relay *rl)
{
	if (o->cap == rl->rate)
		return;
	free(o->starts);
	o->starts = rl->rate ? xcalloc(rl->rate, sizeof(*o->starts)) : NULL;
	o->cap = rl->rate;
	o->n = o->head = 0;
}

unsigned
relay_ctl_allowance(
    struct relay_ctl *c, const struct config_relay *rl, int64_t now, int64_t *wait_ms)
{
	struct relay_ctl_one *o = relay_ctl_get(c, rl->name);
	int64_t window = (int64_t)rl->rate_window_ms;

	*wait_ms = 0;
	if (rl->rate == 0)
		return UINT32_MAX;
	relay_ctl_ring(o, rl);
	/* forget the starts that left the window, oldest first */
	while (o->n > 0 && o->starts[(o->head + o->cap - o->n) % o->cap] <= now - window)
		o->n--;
	if (o->n < o->cap)
		return o->cap - o->n;
	*wait_ms = o->starts[(o->head + o->cap - o->n) % o->cap] + window - now + 1;
	return 0;
}

void
relay_ctl_started(struct relay_ctl *c, const struct config_relay *rl, int64_t now)
{
	struct relay_ctl_one *o = relay_ctl_get(c, rl->name);

	if (rl->rate == 0)
		return;
	relay_ctl_ring(o, rl);
	o->starts[o->head] = now;
	o->head = (o->head + 1) % o->cap;
	if (o->n < o->cap)
		o->n++;
}

int
relay_ctl_outcome(struct relay_ctl *c, const struct config_relay *rl, int ok, int64_t now,
    const char *now_text, char *since)
{
	struct relay_ctl_one *o = relay_ctl_get(c, rl->name);

	if (ok) {
		o->fails = 0;
		return 0;
	}
	if (o->fails++ == 0) {
		o->fail_since = now;
		snprintf(o->fail_since_text, sizeof(o->fail_since_text), "%s", now_text);
	}
	if (rl->pause_after_ms == 0 || o->paused || o->fails < RELAY_CTL_MIN_FAILS ||
	    now - o->fail_since < (int64_t)rl->pause_after_ms)
		return 0;
	o->paused = 1;
	snprintf(since, 32, "%s", o->fail_since_text);
	return 1;
}
