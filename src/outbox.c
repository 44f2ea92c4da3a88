/* SPDX-License-Identifier: ISC */
/* The outbox scheduler. It asks for due deliveries of each relay (outbox-fetch.c), keeps at
 * most `concurrency` attempts in flight per relay, hands each to the URL or script
 * relay, and records the outcome on the row through the store writer. An attempt frees
 * its slot when it ends; its job stays, holding the outcome and keeping the row from
 * being started again, until the row update is committed. A failed record is kept and
 * tried again after a back-off, never the attempt, and its job takes the slot back until the
 * record lands (failing records do not let attempts pile up). Rows are the only state that survives: an
 * attempt cut short by a crash or shutdown leaves its row pending, so it is tried again
 * after the next start (at-least-once, same webhook-id). */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "outbox-internal.h"
#include "outbox.h"
#include "relay-ctl.h"
#include "relay.h"
#include "store-writer.h"
#include "store.h"
#include "xmalloc.h"

#define OUTBOX_TIMER_MAX_MS	   1500 /* past that, the daemon's 1 s tick is soon enough */
#define OUTBOX_RECORD_RETRY_MS	   1000 /* a failed record is tried again after 1, 2, 4 ... */
#define OUTBOX_RECORD_RETRY_MAX_MS 30000
#define OUTBOX_PAUSED_READ_MS	   1000 /* the relays table is read this often */

/* A config and the number of attempts started under it. */
struct outbox_gen {
	struct config *cfg;
	int jobs;
	TAILQ_ENTRY(outbox_gen) entry;
};

/* One attempt's outcome as it goes to the row. */
struct outbox_record {
	const char *state; /* static */
	char next[32], now[32], why[320];
	int changed; /* writer side: 1 the row was updated, 0 it changed meanwhile */
	int tries;
};

struct outbox_job {
	struct relay_job job;
	struct outbox *ob;
	struct outbox_gen *gen;
	struct store_delivery d;
	struct outbox_record rec; /* the outcome, until its row update committed */
	struct event *record_ev;  /* a failed record's retry */
	int recording;		  /* the attempt ended; its slot is free, the record pending */
	TAILQ_ENTRY(outbox_job) entry;
};

static void outbox_run_cb(evutil_socket_t, short, void *);
static void outbox_arm_at(struct outbox *, const char *due);

struct outbox *
outbox_new(struct event_base *base, struct store *st, struct store_writer *w, struct config *cfg)
{
	struct outbox *ob = xcalloc(1, sizeof(*ob));

	ob->base = base;
	ob->store = st;
	ob->writer = w;
	TAILQ_INIT(&ob->gens);
	TAILQ_INIT(&ob->jobs);
	TAILQ_INIT(&ob->readies);
	ob->http = relay_http_new(base);
	ob->exec = relay_exec_new(base);
	ob->ctl = relay_ctl_new();
	if ((ob->wake_ev = event_new(base, -1, 0, outbox_run_cb, ob)) == NULL ||
	    (ob->due_ev = evtimer_new(base, outbox_run_cb, ob)) == NULL ||
	    (ob->rate_ev = evtimer_new(base, outbox_run_cb, ob)) == NULL)
		fatalx("outbox: event_new failed");
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	outbox_set_config(ob, cfg);
	return ob;
}

static void
outbox_gen_release(struct outbox *ob, struct outbox_gen *g)
{
	if (g->jobs > 0 || g == TAILQ_FIRST(&ob->gens))
		return;
	TAILQ_REMOVE(&ob->gens, g, entry);
	config_free(g->cfg);
	free(g);
}

/* The relays with pending deliveries, read through the writer (so a shared store's
 * answer is the database's, not the loop's snapshot), then judged against the config. */
struct outbox_orphans {
	struct outbox *ob;
	char **relay;
	long long *n;
	size_t count, cap;
};

static void
outbox_orphan_row(const char *relay, long long n, void *arg)
{
	struct outbox_orphans *o = arg;

	if (o->count == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->relay = xreallocarray(o->relay, o->cap, sizeof(*o->relay));
		o->n = xreallocarray(o->n, o->cap, sizeof(*o->n));
	}
	o->relay[o->count] = xstrdup(relay);
	o->n[o->count++] = n;
}

static int
outbox_orphans_work(void *handle, void *arg)
{
	return store_pending_relays(handle, outbox_orphan_row, arg);
}

static void
outbox_orphans_done(int result, const char *err, void *arg)
{
	struct outbox_orphans *o = arg;
	const struct config *cfg = TAILQ_FIRST(&o->ob->gens)->cfg;
	size_t i;

	if (result != STORE_WRITER_OK)
		log_warnx("outbox: cannot count pending deliveries: %s", err);
	for (i = 0; i < o->count; i++) {
		if (result == STORE_WRITER_OK && config_relay_find(cfg, o->relay[i]) == NULL)
			log_ctx(LOG_WARNING, 0, o->relay[i],
			    "%lld pending deliver%s for a relay that is not configured: they wait "
			    "until it is configured again",
			    o->n[i], o->n[i] == 1 ? "y" : "ies");
		free(o->relay[i]);
	}
	free(o->relay);
	free(o->n);
	free(o);
}

static void
outbox_report_orphans(struct outbox *ob)
{
	struct outbox_orphans *o = xcalloc(1, sizeof(*o));

	o->ob = ob;
	store_writer_submit(ob->writer, outbox_orphans_work, outbox_orphans_done, o);
}

/* A write about a relay (pause by pause_after, unorder), through the writer. */
struct outbox_relay_write {
	char *relay;
	int pause; /* 1 pause with reason, 0 unorder */
	char now[32], reason[96];
};

static int
outbox_relay_write_work(void *handle, void *arg)
{
	struct outbox_relay_write *w = arg;

	if (w->pause)
		return store_relay_set_paused(handle, w->relay, 1, w->now, w->reason);
	return store_relay_unorder(handle, w->relay) == -1 ? -1 : 0;
}

static void
outbox_relay_write_done(int result, const char *err, void *arg)
{
	struct outbox_relay_write *w = arg;

	if (result != STORE_WRITER_OK)
		log_ctx(LOG_ERR, 0, w->relay, "cannot record %s: %s",
		    w->pause ? "the pause" : "that the relay is no longer ordered", err);
	free(w->relay);
	free(w);
}

static void
outbox_relay_write(struct outbox *ob, const char *relay, int pause, const char *reason)
{
	struct outbox_relay_write *w = xcalloc(1, sizeof(*w));

	w->relay = xstrdup(relay);
	w->pause = pause;
	store_time_text(w->now, 0);
	if (reason != NULL)
		snprintf(w->reason, sizeof(w->reason), "%s", reason);
	store_writer_submit(ob->writer, outbox_relay_write_work, outbox_relay_write_done, w);
}

void
outbox_set_config(struct outbox *ob, struct config *cfg)
{
	struct outbox_gen *g = xcalloc(1, sizeof(*g)), *old = TAILQ_FIRST(&ob->gens);

	g->cfg = cfg;
	TAILQ_INSERT_HEAD(&ob->gens, g, entry);
	if (old != NULL)
		outbox_gen_release(ob, old);
	outbox_report_orphans(ob);
	outbox_readies_clear(ob); /* relays may have gone or changed */
	for (size_t i = 0; i < cfg->nrelays; i++) {
		if (!cfg->relays[i].ordered)
			outbox_relay_write(ob, cfg->relays[i].name, 0, NULL);
	}
	ob->paused_read_at = 0;
	outbox_wake(ob);
}

const struct config *
outbox_config(const struct outbox *ob)
{
	return TAILQ_FIRST(&ob->gens)->cfg;
}

void
outbox_wake(struct outbox *ob)
{
	if (!ob->stopping)
		event_active(ob->wake_ev, EV_TIMEOUT, 0);
}

void
outbox_stop(struct outbox *ob)
{
	ob->stopping = 1;
}

int
outbox_in_flight(const struct outbox *ob)
{
	return ob->njobs;
}

uint64_t
outbox_retry_delay(
    const uint64_t *schedule, size_t n, int attempts, uint64_t retry_after_ms, long jitter_permille)
{
	uint64_t base, longest = 0, delay;
	size_t i;

	if (attempts < 1 || (size_t)attempts > n)
		return 0;
	for (i = 0; i < n; i++)
		longest = schedule[i] > longest ? schedule[i] : longest;
	base = schedule[attempts - 1];
	delay = (uint64_t)((long double)base * (1000 + jitter_permille) / 1000);
	if (retry_after_ms > delay)
		delay = retry_after_ms < longest ? retry_after_ms : longest;
	return delay > 0 ? delay : 1;
}

static void
outbox_job_free(struct outbox_job *j)
{
	relay_job_clear(&j->job);
	free(j->d.relay);
	free(j->d.kind);
	free(j->d.format);
	free(j->d.received_at);
	free(j->d.payload);
	free(j->d.next_attempt_at);
	if (j->record_ev != NULL)
		event_free(j->record_ev);
	free(j);
}

static void
outbox_job_end(struct outbox_job *j)
{
	struct outbox *ob = j->ob;

	TAILQ_REMOVE(&ob->jobs, j, entry);
	ob->njobs--;
	j->gen->jobs--;
	outbox_gen_release(ob, j->gen);
	outbox_job_free(j);
	outbox_wake(ob);
}

/* The row's new state after this attempt; fills next (empty when final). */
static const char *
outbox_next_state(const struct outbox_job *j, const struct relay_result *r, char next[32],
    char *why, size_t whylen)
{
	const struct config_relay *rl = j->job.relay;
	long jitter = (long)(random() % 401) - 200;
	uint64_t delay;

	next[0] = '\0';
	snprintf(why, whylen, "%s", r->text);
	if (r->outcome == RELAY_DONE)
		return "done";
	if (r->outcome == RELAY_DEAD)
		return "dead";
	delay = outbox_retry_delay(
	    rl->retry_ms, rl->nretry, j->d.attempts + 1, r->retry_after_ms, jitter);
	if (delay == 0) {
		snprintf(why, whylen, "%s; retry schedule exhausted", r->text);
		return "dead";
	}
	store_time_text(next, (int64_t)delay);
	return "retry";
}

/* Writer thread: the row update, inside the batch's transaction. */
static int
outbox_record_work(void *handle, void *arg)
{
	struct outbox_job *j = arg;
	struct outbox_record *rec = &j->rec;
	int retry = strcmp(rec->state, "retry") == 0;
	int rc = store_delivery_record(handle, &j->d, retry ? "pending" : rec->state,
	    retry ? rec->next : NULL, rec->now, rec->why,
	    strcmp(rec->state, "done") == 0 ? rec->now : NULL);

	rec->changed = rc;
	return rc == -1 ? -1 : 0;
}

static void outbox_record_done(int, const char *, void *);

static void
outbox_record_submit(struct outbox_job *j)
{
	store_writer_submit(j->ob->writer, outbox_record_work, outbox_record_done, j);
}

static void
outbox_record_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	outbox_record_submit(arg);
}

/* The record failed: the outcome stays with the job, which holds its slot again (see
 * outbox_relay_jobs), and goes again after a back-off. */
static void
outbox_record_later(struct outbox_job *j, const char *err)
{
	uint64_t ms = OUTBOX_RECORD_RETRY_MS << (j->rec.tries < 5 ? j->rec.tries : 5);
	struct timeval tv;

	if (ms > OUTBOX_RECORD_RETRY_MAX_MS)
		ms = OUTBOX_RECORD_RETRY_MAX_MS;
	j->rec.tries++;
	log_ctx(LOG_ERR, j->d.event_id, j->d.relay,
	    "delivery %lld: cannot record the outcome (%s): %s; trying again in %llu s, the "
	    "attempt is not repeated",
	    (long long)j->d.id, j->rec.state, err, (unsigned long long)ms / 1000);
	if (j->record_ev == NULL &&
	    (j->record_ev = evtimer_new(j->ob->base, outbox_record_retry_cb, j)) == NULL)
		fatalx("outbox: evtimer_new failed");
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(j->record_ev, &tv);
}

static void
outbox_record_done(int result, const char *err, void *arg)
{
	struct outbox_job *j = arg;

	if (result != STORE_WRITER_OK) {
		outbox_record_later(j, err);
		return;
	}
	if (j->rec.tries > 0)
		log_ctx(LOG_INFO, j->d.event_id, j->d.relay, "delivery %lld: outcome recorded",
		    (long long)j->d.id);
	if (j->rec.changed == 0)
		log_ctx(LOG_INFO, j->d.event_id, j->d.relay,
		    "delivery %lld was retried or replayed during the attempt; it goes again",
		    (long long)j->d.id);
	else if (strcmp(j->rec.state, "retry") == 0)
		outbox_arm_at(j->ob, j->rec.next);
	outbox_job_end(j);
}

int64_t
outbox_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pause_after: a relay whose attempts have all failed that long is paused. */
static void
outbox_streak(struct outbox_job *j, int ok, const char *now_text)
{
	const struct config_relay *rl = j->job.relay;
	char since[32], reason[96];

	if (!relay_ctl_outcome(j->ob->ctl, rl, ok, outbox_mono_ms(), now_text, since))
		return;
	snprintf(reason, sizeof(reason), "auto: failing since %s", since);
	log_ctx(LOG_WARNING, 0, rl->name,
	    "every attempt has failed since %s: relay paused (clicksend-relay resume %s)", since,
	    rl->name);
	outbox_relay_write(j->ob, rl->name, 1, reason);
}

/* Logs the attempt and hands its outcome to the writer; the job ends once committed. */
static void
outbox_record(struct outbox_job *j, const struct relay_result *r)
{
	struct outbox_record *rec = &j->rec;
	int retry;

	rec->state = outbox_next_state(j, r, rec->next, rec->why, sizeof(rec->why));
	retry = strcmp(rec->state, "retry") == 0;
	store_time_text(rec->now, 0);
	metrics_delivery(j->d.relay, rec->state);
	log_ctx(retry || strcmp(rec->state, "dead") == 0 ? LOG_WARNING : LOG_INFO, j->d.event_id,
	    j->d.relay, "delivery %lld attempt %d: %s -> %s%s%s", (long long)j->d.id,
	    j->d.attempts + 1, rec->why, rec->state, retry ? " at " : "", retry ? rec->next : "");
	outbox_streak(j, strcmp(rec->state, "done") == 0, rec->now);
	j->recording = 1;
	outbox_record_submit(j);
	outbox_wake(j->ob); /* the slot is free */
}

static void
outbox_done_cb(const struct relay_job *job, const struct relay_result *r, void *arg)
{
	outbox_record(arg, r);
}

static int
outbox_prepare(struct outbox_job *j, const struct config_relay *rl)
{
	const struct relay_row row = { .delivery_id = j->d.id,
		.event_id = j->d.event_id,
		.kind = j->d.kind,
		.format = j->d.format,
		.received_at = j->d.received_at,
		.payload = j->d.payload };

	return relay_job_init(&j->job, rl, &row);
}

void
outbox_start(struct outbox *ob, const struct config_relay *rl, struct store_delivery *d)
{
	struct outbox_job *j = xcalloc(1, sizeof(*j));
	struct relay_result fail = { .outcome = RELAY_DEAD };
	int rc;

	j->ob = ob;
	j->d = *d;
	memset(d, 0, sizeof(*d));
	j->gen = TAILQ_FIRST(&ob->gens);
	j->gen->jobs++;
	TAILQ_INSERT_TAIL(&ob->jobs, j, entry);
	ob->njobs++;
	if (outbox_prepare(j, rl) == -1) {
		snprintf(fail.text, sizeof(fail.text), "stored payload is not a JSON object");
		outbox_done_cb(&j->job, &fail, j);
		return;
	}
	rc = rl->url != NULL ? relay_http_attempt(ob->http, &j->job, outbox_done_cb, j) :
			       relay_exec_attempt(ob->exec, &j->job, outbox_done_cb, j);
	if (rc == -1) {
		fail.outcome = RELAY_RETRY;
		snprintf(fail.text, sizeof(fail.text), "attempt could not start");
		outbox_done_cb(&j->job, &fail, j);
	}
}

/* Jobs of RELAY: those holding a slot (attempts in flight, and ended attempts whose record
 * failed and waits to go again), and all of them (with those whose outcome is still being
 * recorded). */
void
outbox_relay_jobs(const struct outbox *ob, const char *relay, int *attempting, int *all)
{
	const struct outbox_job *j;

	*attempting = *all = 0;
	TAILQ_FOREACH(j, &ob->jobs, entry) {
		if (strcmp(j->d.relay, relay) == 0) {
			(*all)++;
			/* a record that failed keeps the slot until it lands */
			*attempting += !j->recording || j->rec.tries > 0;
		}
	}
}

/* Whether a job holds that delivery: in flight, or its outcome not yet committed. */
int
outbox_claimed(const struct outbox *ob, int64_t delivery_id)
{
	const struct outbox_job *j;

	TAILQ_FOREACH(j, &ob->jobs, entry) {
		if (j->d.id == delivery_id)
			return 1;
	}
	return 0;
}

/* The delivery ids RELAY's jobs hold (*ids freed by the caller); their count. */
size_t
outbox_relay_held(const struct outbox *ob, const char *relay, int64_t **ids)
{
	const struct outbox_job *j;
	size_t n = 0;

	*ids = xreallocarray(NULL, (size_t)ob->njobs + 1, sizeof(**ids));
	TAILQ_FOREACH(j, &ob->jobs, entry) {
		if (strcmp(j->d.relay, relay) == 0)
			(*ids)[n++] = j->d.id;
	}
	return n;
}

/* Runs the relays again in wait_ms, when a relay held back by its rate may start; the
 * timer already set for sooner stays. */
void
outbox_rate_arm(struct outbox *ob, int64_t wait_ms)
{
	struct timeval tv = { (time_t)(wait_ms / 1000), (suseconds_t)(wait_ms % 1000) * 1000 };
	int64_t at = outbox_mono_ms() + wait_ms;

	if (evtimer_pending(ob->rate_ev, NULL) && ob->rate_at <= at)
		return;
	ob->rate_at = at;
	evtimer_add(ob->rate_ev, &tv);
}

/* Slots left under the relay's rate; when none, a timer for when one frees. */
int
outbox_rate_slots(struct outbox *ob, const struct config_relay *rl, int free_slots)
{
	int64_t wait = 0;
	unsigned n = relay_ctl_allowance(ob->ctl, rl, outbox_mono_ms(), &wait);

	if (n == 0) {
		outbox_rate_arm(ob, wait);
		return 0;
	}
	return n < (unsigned)free_slots ? (int)n : free_slots;
}

/* The relays table, read through the writer: it runs after every pause or resume the
 * daemon itself submitted before it (pause_after), and a shared store answers from the
 * database, not the loop's snapshot. */
struct outbox_paused_read {
	struct outbox *ob;
	char **relay;
	size_t n, cap;
};

static void
outbox_paused_row(const char *relay, const char *paused_at, const char *reason, void *arg)
{
	struct outbox_paused_read *r = arg;

	(void)paused_at, (void)reason;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->relay = xreallocarray(r->relay, r->cap, sizeof(*r->relay));
	}
	r->relay[r->n++] = xstrdup(relay);
}

static int
outbox_paused_work(void *handle, void *arg)
{
	return store_paused_relays(handle, outbox_paused_row, arg);
}

/* The paused set is replaced only by a read that worked; a failed one keeps the last. */
static void
outbox_paused_done(int result, const char *err, void *arg)
{
	struct outbox_paused_read *r = arg;
	struct outbox *ob = r->ob;
	size_t i;

	ob->paused_reading = 0;
	if (result != STORE_WRITER_OK)
		log_warnx("outbox: cannot read paused relays: %s", err);
	else
		relay_ctl_paused_clear(ob->ctl);
	for (i = 0; i < r->n; i++) {
		if (result == STORE_WRITER_OK)
			relay_ctl_paused_mark(ob->ctl, r->relay[i]);
		free(r->relay[i]);
	}
	free(r->relay);
	free(r);
	if (result == STORE_WRITER_OK) {
		relay_ctl_paused_done(ob->ctl);
		outbox_wake(ob); /* a resumed relay may start */
	}
}

/* The relays table, at most once a second: pause and resume by the operator tool. */
static void
outbox_read_paused(struct outbox *ob)
{
	int64_t now = outbox_mono_ms();
	struct outbox_paused_read *r;

	if (ob->paused_reading ||
	    (ob->paused_read_at != 0 && now - ob->paused_read_at < OUTBOX_PAUSED_READ_MS))
		return;
	ob->paused_read_at = now;
	ob->paused_reading = 1;
	r = xcalloc(1, sizeof(*r));
	r->ob = ob;
	store_writer_submit(ob->writer, outbox_paused_work, outbox_paused_done, r);
}

/*
 * The periodic tick wakes the outbox every second; a retry due sooner than that gets a
 * timer of its own, so retry_schedule steps are kept to the millisecond. Rows already
 * due are woken by the end of an attempt (a freed slot) or the tick.
 */
static void
outbox_arm_at(struct outbox *ob, const char *due)
{
	struct timeval tv = { 0, 0 };
	int64_t ms = store_time_until(due), at;

	if (ms <= 0 || ms >= OUTBOX_TIMER_MAX_MS)
		return;
	at = outbox_mono_ms() + ms + 1;
	if (evtimer_pending(ob->due_ev, NULL) && ob->due_at <= at)
		return; /* an earlier wake is already set */
	ob->due_at = at;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000 + 1000;
	evtimer_add(ob->due_ev, &tv);
}

/* The earliest due row as the loop's handle knows it (a shared store's snapshot may be a
 * second old: retries this daemon recorded arm their own wake, outbox_record_done). */
static void
outbox_arm_due(struct outbox *ob)
{
	char due[32];

	if (store_next_due(ob->store, due) == 1)
		outbox_arm_at(ob, due);
}

static void
outbox_run_cb(evutil_socket_t fd, short what, void *arg)
{
	struct outbox *ob = arg;
	const struct config *cfg = TAILQ_FIRST(&ob->gens)->cfg;
	char now[32];
	size_t i;

	if (ob->stopping)
		return;
	store_time_text(now, 0);
	outbox_read_paused(ob);
	for (i = 0; i < cfg->nrelays; i++)
		outbox_run_relay(ob, &cfg->relays[i], now);
	outbox_arm_due(ob);
}

void
outbox_free(struct outbox *ob)
{
	struct outbox_job *j;
	struct outbox_gen *g;

	if (ob == NULL)
		return;
	relay_http_free(ob->http);
	relay_exec_free(ob->exec);
	while ((j = TAILQ_FIRST(&ob->jobs)) != NULL) {
		TAILQ_REMOVE(&ob->jobs, j, entry);
		outbox_job_free(j);
	}
	while ((g = TAILQ_FIRST(&ob->gens)) != NULL) {
		TAILQ_REMOVE(&ob->gens, g, entry);
		config_free(g->cfg);
		free(g);
	}
	outbox_readies_free(ob);
	event_free(ob->wake_ev);
	event_free(ob->due_ev);
	event_free(ob->rate_ev);
	relay_ctl_free(ob->ctl);
	free(ob);
}
