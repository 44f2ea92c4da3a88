/* SPDX-License-Identifier: ISC */
/*
 * Polling (clicksend-relayd(8), Polling): for each kind in [clicksend] poll, every
 * poll_interval, every page of ClickSend's unread items becomes events of format "poll"
 * through the write path of the webhooks (ingest), and only items committed are then marked
 * read. Runs on the
 * daemon's event_base over the ClickSend client; the operator tool's `poll --once` runs the
 * same code to completion on a loop of its own.
 */
#ifndef POLLER_H
#define POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

struct config;
struct event_base;
struct ingest;
struct json_node;
struct store;

#define POLLER_BACKOFF_MAX_MS 3600000
#define POLLER_MARK_PARALLEL  4 /* read marks in flight per kind */

struct poller;

/* What the poller asks of its owner, all optional; ARG is passed to each. */
struct poller_hooks {
	/* before storing: fill ev->relays with the relays this event goes to */
	void (*route)(void *arg, struct webhook_event *);
	/* after the COMMIT, for each event (duplicates too): self-test, the tool's output */
	void (*event_stored)(void *arg, const struct webhook_event *);
	void *arg;
};

/* Does nothing until poller_start. Events go through INGEST (see ingest.h). */
struct poller *poller_new(struct event_base *, struct ingest *, const struct poller_hooks *);
/*
 * (Re)start with CFG, copying what it needs: abandons the fetches in flight (items already
 * committed but not marked read come again, as duplicates), loads the API key and fetches
 * every kind in cfg->poll at once and then every poll_interval. Logs why when it is off.
 */
void poller_start(struct poller *, const struct config *);
/*
 * The switch for a daemon that may poll only while it holds the store-wide lock: off
 * abandons fetches in flight and stops the timers, on starts fetching again at once.
 * A new poller is on. poller_start keeps the switch as it is.
 */
void poller_set_active(struct poller *, int on);
int poller_active(const struct poller *);
/* For /healthz "poll": "off", "ok" or "error: ...". */
const char *poller_status(struct poller *);
void poller_free(struct poller *);

/*
 * The operator tool's `poll --once`: one fetch of every polled kind on an event_base of its
 * own, stored in ST and marked read, no retries. HOOKS.event_stored sees each stored
 * event. 0 when every kind went through, 69 when one failed, 78 when polling cannot run
 * with CFG (no kinds, no credentials); WHY says why.
 */
int poller_run_once(
    const struct config *, struct store *, const struct poller_hooks *, char *why, size_t whylen);

/* ----- the pure parts (poller-items.c), for tests ----- */

/*
 * The ROWS of list DEF as events of KIND with format poll (payload, columns, dedupe key as
 * for a webhook). Skipped, and counted in *skipped: rows that are not objects, and rows of
 * a list marked read by id that have no message_id (they could never be marked read).
 * The number of events in *out (caller frees with webhook_events_free; NULL for none).
 */
size_t poller_events(const struct webhook_kind *, const struct webhook_poll *def,
    const struct json_node *const *rows, size_t nrows, struct webhook_event **out, size_t *skipped);
/* An item's "timestamp" (unix seconds, number or string, a fraction dropped): 0 or -1. */
int poller_item_time(const struct webhook_event *, long long *t);
/*
 * The date_before for a receipts list after EVS committed: the newest item timestamp plus
 * one second (ClickSend marks items strictly before it), but never past FETCHED_AT, the
 * clock when the fetch began, so that an item arriving in the same second as the newest
 * is left unread. TRUNCATED (the list was longer than one fetch takes): the newest item's
 * own second, so unread items of that second past the last page read stay unread (they
 * come again, as duplicates at worst). -1 when no item has a timestamp: nothing may be
 * marked.
 */
long long poller_date_before(
    const struct webhook_event *evs, size_t n, long long fetched_at, int truncated);
/* "/sms/inbound-read/<message_id percent-encoded>". Caller frees. */
char *poller_read_path(const struct webhook_poll *, const char *message_id);
/* {"date_before": N}. Caller frees. */
char *poller_read_body(long long date_before);
/* The wait after ATTEMPT failed fetches (0 first): INTERVAL doubling, up to 1 h, R in
 * [0, 1) spreading it by +/-20% (never past 1 h). */
uint64_t poller_backoff_ms(uint64_t interval_ms, unsigned attempt, double r);

#endif
