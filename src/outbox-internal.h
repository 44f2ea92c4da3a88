/* SPDX-License-Identifier: ISC */
/* Shared between the outbox's files: outbox.c (attempts, outcomes, the relays table, timers)
 * and outbox-fetch.c (due deliveries through the writer, rows in hand). Nothing else
 * includes this. */
#ifndef OUTBOX_INTERNAL_H
#define OUTBOX_INTERNAL_H

#include <stdint.h>
#include <sys/queue.h>

#define OUTBOX_CLAIM_EXTRA_MS 30000 /* a claim lasts the relay's timeout and this */
#define OUTBOX_PREFETCH	      32    /* due rows fetched beyond the free slots, at least */
#define OUTBOX_PREFETCH_MAX   256   /* and at most */
#define OUTBOX_RECORDING_MAX  16    /* outcomes awaiting their record, per slot of a relay */
#define OUTBOX_READY_MAX_MS   5000  /* rows in hand are dropped after this */

struct config;
struct config_relay;
struct store_delivery;
struct outbox_gen;
struct outbox_job;
struct outbox_ready;

struct outbox {
	struct event_base *base;
	struct store *store; /* reads */
	struct store_writer *writer;
	struct relay_http *http;
	struct relay_exec *exec;
	struct event *wake_ev;
	struct event *due_ev;  /* the next retry falling due between ticks */
	struct event *rate_ev; /* a relay held back by its rate may start again */
	int64_t rate_at;       /* monotonic ms rate_ev fires at, when pending */
	struct relay_ctl *ctl;
	int64_t paused_read_at;	       /* monotonic ms; 0 never */
	int paused_reading;	       /* a read of the relays table is with the writer */
	int64_t due_at;		       /* monotonic ms due_ev fires at, when pending */
	TAILQ_HEAD(, outbox_gen) gens; /* first is the current config */
	TAILQ_HEAD(, outbox_job) jobs;
	TAILQ_HEAD(, outbox_ready) readies; /* per relay: due rows in hand */
	int njobs;
	int stopping;
};

/* outbox.c */
int64_t outbox_mono_ms(void);
/* The config attempts start under now. */
const struct config *outbox_config(const struct outbox *);
/* Starts an attempt of D (its strings move to the job; D is zeroed). */
void outbox_start(struct outbox *, const struct config_relay *, struct store_delivery *d);
/* Jobs of RELAY: attempts in flight, and all of them (with those still recording). */
void outbox_relay_jobs(const struct outbox *, const char *relay, int *attempting, int *all);
/* Whether a job holds that delivery: in flight, or its outcome not yet committed. */
int outbox_claimed(const struct outbox *, int64_t delivery_id);
/* The delivery ids RELAY's jobs hold (*ids freed by the caller); their count. */
size_t outbox_relay_held(const struct outbox *, const char *relay, int64_t **ids);
/* Slots left under the relay's rate; when none, a timer for when one frees. */
int outbox_rate_slots(struct outbox *, const struct config_relay *, int free_slots);
/* Runs the relays again in wait_ms (a sooner run already set stays). */
void outbox_rate_arm(struct outbox *, int64_t wait_ms);

/* outbox-fetch.c */
/* Starts due deliveries of one relay from the rows in hand; fetches more when few are left. */
void outbox_run_relay(struct outbox *, const struct config_relay *, const char *now);
/* Drops the rows in hand of every relay (a config change). */
void outbox_readies_clear(struct outbox *);
void outbox_readies_free(struct outbox *);

#endif
