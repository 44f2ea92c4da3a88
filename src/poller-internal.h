/* SPDX-License-Identifier: ISC */
/*
 * Shared by the polling files: poller.c (fetch, store, mark, timers, life cycle),
 * poller-status.c (the /healthz text and the failure paths) and poller-cli.c (the
 * operator tool's run). Nothing outside poller*.c includes this.
 */
#ifndef POLLER_INTERNAL_H
#define POLLER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "poller.h"

struct clicksend;
struct clicksend_answer;
struct clicksend_call;
struct config;
struct event;

enum poller_state {
	PS_OFF,	  /* not polled, or stopped (switch off, 401/403) */
	PS_WAIT,  /* the timer runs: the next fetch, or a retry after a failure */
	PS_LIST,  /* a list's pages are being fetched */
	PS_STORE, /* its items are with the store writer */
	PS_MARK,  /* the committed items are being marked read */
	PS_DONE	  /* --once: this kind's one fetch is over */
};

struct poller_kind;

/* One list's items with the store writer; outlives a reset (then k is NULL). */
struct poller_batch {
	struct poller_kind *k;
	long long fetched_at;
};

struct poller_mark {
	struct poller_kind *k;
	struct clicksend_call *call;
};

struct poller_kind {
	struct poller *p;
	const struct webhook_kind *kind;
	enum poller_state state;
	size_t list; /* index into kind->poll in this fetch */
	struct clicksend_call *call;
	struct event *timer;
	struct poller_batch *batch;
	long long fetched_at; /* unix time when this list's first page was asked for */
	int more;	      /* a list was longer than one fetch takes: go again at once */
	/* read marks: message ids (by id) or one date_before request */
	char **ids;
	size_t nids, next_id;
	struct poller_mark marks[POLLER_MARK_PARALLEL];
	int marks_busy;
	char mark_error[512];
	unsigned attempts;	   /* failed fetches in a row */
	unsigned long long stored; /* items committed in this fetch */
	int ok;			   /* -1 not yet, 0 the last fetch failed, 1 it went through */
	char error[640];
};

struct poller {
	struct event_base *base;
	struct ingest *ingest;
	struct poller_hooks hooks;
	struct clicksend *cs; /* NULL: not configured */
	struct poller_kind kinds[KIND_COUNT];
	unsigned mask; /* kinds polled */
	uint64_t interval_ms;
	int active, once;
	char fatal[512]; /* why polling cannot run at all (credentials, 401/403), or "" */
	char status[1024];
	unsigned seed;
};

/* poller.c */
/* Sets up with CFG: 0 ready, 1 off (no kinds), -1 cannot run (WHY, also the status). */
int poller_configure(struct poller *, const struct config *, char *why, size_t whylen);
/* Every polled kind fetches now (from the loop, never inside this call). */
void poller_begin_all(struct poller *);
void poller_kind_stop(struct poller_kind *);
void poller_schedule(struct poller_kind *, uint64_t ms);

/* poller-status.c */
void poller_status_text(struct poller *);
/* A step of K's fetch failed: 401/403 stop polling until reload, the rest back off. */
void poller_kind_failed(struct poller_kind *, const char *step, const struct clicksend_answer *);
/* The fetch of K went through. */
void poller_kind_ok(struct poller_kind *);
/* --once: the loop stops when every kind is done. */
void poller_once_check(struct poller *);

#endif
