/* SPDX-License-Identifier: ISC */
/* The outbox's reads of due deliveries: one fetch per relay at a time through the store
 * writer (a claim, in a shared store), and the rows it found kept in hand so that a slot
 * that frees starts the next row at once; in a shared store, a relay with a rate takes
 * its tokens with the claim and keeps nothing in hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <syslog.h>

#include "config.h"
#include "log.h"
#include "outbox-internal.h"
#include "outbox.h"
#include "relay-ctl.h"
#include "store-writer.h"
#include "store.h"
#include "xmalloc.h"

/*
 * Due deliveries of one relay in hand: the last fetch's rows not started yet. A slot that
 * frees takes the next row at once instead of waiting for a fetch, and a fetch for more
 * goes out while rows are still in hand, so under load the relay's slots stay busy though
 * each fetch waits its turn in the writer. Rows are kept a few seconds at most (a shared
 * store's claim outlives that by far) and dropped when the relay is paused or the config
 * changes.
 */
struct outbox_ready {
	char *relay;
	struct store_delivery *ds; /* rows started are zeroed (their strings moved to a job) */
	int n, next;		   /* rows, and the first not yet looked at */
	int started;		   /* rows started since the last fetch went out */
	int want;		   /* rows that fetch asked for beyond the free slots */
	int64_t at;		   /* monotonic ms of the fetch */
	int fetching;		   /* a fetch is with the writer */
	int again;		   /* a slot freed meanwhile: run once more after it */
	int failing;		   /* the last fetch failed (logged once until one works) */
	int64_t rate_at;	   /* shared rate: no token before this monotonic ms */
	TAILQ_ENTRY(outbox_ready) entry;
};

/* A read of one relay's due deliveries through the writer (a claim, in a shared store):
 * it runs after every record submitted before it, so a row whose outcome is being
 * recorded is either still held by its job or already updated. One per relay at a time. */
struct outbox_fetch {
	struct outbox_ready *rs;
	struct outbox *ob;
	char now[32];
	size_t limit;
	int64_t claim_ms;
	int rated;		/* store_due_rated: rate tokens taken with the claim */
	struct store_rate rate; /* its skip is held */
	int64_t *held;		/* the ids the relay's jobs held */
	struct store_delivery *ds;
	int n;
};

/* A relay whose rate every node of a shared store counts together (store_due_rated):
 * what it fetches it starts at once, so it keeps no rows in hand. */
static int
outbox_rated(const struct outbox *ob, const struct config_relay *rl)
{
	return rl->rate > 0 && store_shared(ob->store);
}

static void
outbox_ready_clear(struct outbox_ready *rs)
{
	store_deliveries_free(rs->ds, (size_t)rs->n);
	rs->ds = NULL;
	rs->n = rs->next = 0;
}

static struct outbox_ready *
outbox_ready_get(struct outbox *ob, const char *relay)
{
	struct outbox_ready *rs;

	TAILQ_FOREACH(rs, &ob->readies, entry) {
		if (strcmp(rs->relay, relay) == 0)
			return rs;
	}
	rs = xcalloc(1, sizeof(*rs));
	rs->relay = xstrdup(relay);
	rs->want = OUTBOX_PREFETCH;
	TAILQ_INSERT_TAIL(&ob->readies, rs, entry);
	return rs;
}

void
outbox_readies_clear(struct outbox *ob)
{
	struct outbox_ready *rs;

	TAILQ_FOREACH(rs, &ob->readies, entry)
		outbox_ready_clear(rs);
}

/* Free slots of a relay now: its concurrency less the attempts in flight, under its rate,
 * none while OUTBOX_RECORDING_MAX outcomes per slot wait for their record. all gets every
 * job of the relay (those still recording too). */
static int
outbox_free_slots(struct outbox *ob, const struct config_relay *rl, int *all)
{
	int attempting, free_slots;

	outbox_relay_jobs(ob, rl->name, &attempting, all);
	if ((free_slots = (int)rl->concurrency - attempting) <= 0)
		return 0;
	/* records that do not land (a store locked or full) hold up new attempts */
	if (*all - attempting >= (int)rl->concurrency * OUTBOX_RECORDING_MAX)
		return 0;
	return outbox_rate_slots(ob, rl, free_slots);
}

/* Starts rows in hand, up to free_slots; the slots still free. */
static int
outbox_ready_start(
    struct outbox *ob, const struct config_relay *rl, struct outbox_ready *rs, int free_slots)
{
	while (free_slots > 0 && rs->next < rs->n) {
		struct store_delivery *d = &rs->ds[rs->next++];
		relay_ctl_started(ob->ctl, rl, outbox_mono_ms());
		outbox_start(ob, rl, d);
		rs->started++;
		free_slots--;
	}
	return free_slots;
}

/* Writer thread. */
static int
outbox_fetch_work(void *handle, void *arg)
{
	struct outbox_fetch *f = arg;

	if (f->rated)
		f->n = store_due_rated(
		    handle, f->rs->relay, f->now, f->limit, f->claim_ms, &f->rate, &f->ds);
	else
		f->n = store_due(handle, f->rs->relay, f->now, f->limit, f->claim_ms, &f->ds);
	return f->n == -1 ? -1 : 0;
}

/*
 * The rows a job holds are dropped from what the fetch found: they are in flight or their
 * outcome is being recorded, and once it is, the copy in hand would be stale (a row in
 * hand is started later without another look at the store).
 */
static void
outbox_ready_drop_held(struct outbox *ob, struct outbox_ready *rs)
{
	int i, n = 0;

	for (i = 0; i < rs->n; i++) {
		if (outbox_claimed(ob, rs->ds[i].id))
			store_deliveries_free_one(&rs->ds[i]);
		else
			rs->ds[n++] = rs->ds[i];
	}
	rs->n = n;
}

/* The fetch's rows replace those in hand (it found them too, fresher); as many start as
 * slots are free now. */
static void
outbox_fetch_done(int result, const char *err, void *arg)
{
	struct outbox_fetch *f = arg;
	struct outbox *ob = f->ob;
	struct outbox_ready *rs = f->rs;
	const struct config_relay *rl;
	int all, rated = f->rated;

	rs->fetching = 0;
	free(f->held);
	if (result != STORE_WRITER_OK) {
		if (!rs->failing)
			log_ctx(LOG_ERR, 0, rs->relay,
			    "outbox: cannot read due deliveries: %s (trying again each second)",
			    err);
		rs->failing = 1;
		/* the read may have worked in a batch whose commit failed */
		if (f->n > 0)
			store_deliveries_free(f->ds, (size_t)f->n);
		free(f);
		return;
	}
	if (rated && f->rate.wait_ms > 0) {
		rs->rate_at = outbox_mono_ms() + f->rate.wait_ms;
		outbox_rate_arm(ob, f->rate.wait_ms);
	}
	if (rs->failing)
		log_ctx(LOG_INFO, 0, rs->relay, "outbox: due deliveries read again");
	rs->failing = 0;
	outbox_ready_clear(rs);
	rs->ds = f->ds;
	rs->n = f->n;
	rs->at = outbox_mono_ms();
	free(f);
	outbox_ready_drop_held(ob, rs);
	rl = config_relay_find(outbox_config(ob), rs->relay);
	if (ob->stopping || rl == NULL || relay_ctl_paused(ob->ctl, rl->name)) {
		outbox_ready_clear(rs);
		return;
	}
	(void)outbox_ready_start(ob, rl, rs, outbox_free_slots(ob, rl, &all));
	if (rated)
		outbox_ready_clear(rs); /* their tokens were for now: fetched again later */
	if (rs->again) {
		rs->again = 0;
		outbox_wake(ob);
	}
}

static void
outbox_fetch(struct outbox *ob, const struct config_relay *rl, struct outbox_ready *rs,
    const char *now, size_t limit)
{
	struct outbox_fetch *f = xcalloc(1, sizeof(*f));

	f->rs = rs;
	f->ob = ob;
	snprintf(f->now, sizeof(f->now), "%s", now);
	f->limit = limit;
	f->claim_ms = (int64_t)rl->timeout_ms + OUTBOX_CLAIM_EXTRA_MS;
	if ((f->rated = outbox_rated(ob, rl))) {
		f->rate.n = rl->rate;
		f->rate.window_ms = (int64_t)rl->rate_window_ms;
		f->rate.nskip = outbox_relay_held(ob, rl->name, &f->held);
		f->rate.skip = f->held;
	}
	rs->fetching = 1;
	store_writer_submit(ob->writer, outbox_fetch_work, outbox_fetch_done, f);
}

/* Rows to ask for beyond the free slots: twice what the relay started since the last fetch
 * went out, which is what one trip through the writer has to cover (long while the writer
 * commits big ingest batches), within [OUTBOX_PREFETCH, OUTBOX_PREFETCH_MAX]. */
static int
outbox_want(struct outbox_ready *rs)
{
	int want = rs->started * 2;

	if (want < OUTBOX_PREFETCH)
		want = OUTBOX_PREFETCH;
	if (want > OUTBOX_PREFETCH_MAX)
		want = OUTBOX_PREFETCH_MAX;
	rs->started = 0;
	rs->want = want;
	return want;
}

/* A relay of outbox_rated: rows claimed ahead would start later than their tokens, so it
 * asks for the free slots only, and not before the store said a token frees. */
static void
outbox_run_rated(struct outbox *ob, const struct config_relay *rl, struct outbox_ready *rs,
    const char *now, int free_slots)
{
	int64_t wait = rs->rate_at - outbox_mono_ms();

	if (free_slots <= 0)
		return;
	if (wait > 0) {
		outbox_rate_arm(ob, wait);
		return;
	}
	outbox_fetch(ob, rl, rs, now, (size_t)free_slots);
}

/* Starts due deliveries of one relay from the rows in hand, and fetches more when few are
 * left. The query returns the rows of the relay's jobs and those in hand first (they are
 * still pending and due), so it asks for that many more than it wants. */
void
outbox_run_relay(struct outbox *ob, const struct config_relay *rl, const char *now)
{
	struct outbox_ready *rs = outbox_ready_get(ob, rl->name);
	int all, free_slots, left;

	if (relay_ctl_paused(ob->ctl, rl->name)) {
		outbox_ready_clear(rs);
		return;
	}
	if (rs->n > 0 && outbox_mono_ms() - rs->at > OUTBOX_READY_MAX_MS)
		outbox_ready_clear(rs);
	free_slots = outbox_free_slots(ob, rl, &all);
	if (free_slots > 0)
		free_slots = outbox_ready_start(ob, rl, rs, free_slots);
	left = rs->n - rs->next;
	if (rs->fetching) {
		rs->again |= free_slots > 0;
		return;
	}
	if (outbox_rated(ob, rl)) {
		outbox_run_rated(ob, rl, rs, now, free_slots);
		return;
	}
	if (free_slots <= 0 && left >= rs->want / 2)
		return;
	outbox_fetch(ob, rl, rs, now, (size_t)(free_slots + all + left + outbox_want(rs)));
}

void
outbox_readies_free(struct outbox *ob)
{
	struct outbox_ready *rs;

	while ((rs = TAILQ_FIRST(&ob->readies)) != NULL) {
		TAILQ_REMOVE(&ob->readies, rs, entry);
		outbox_ready_clear(rs);
		free(rs->relay);
		free(rs);
	}
}
