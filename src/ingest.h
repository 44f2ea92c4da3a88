/* SPDX-License-Identifier: ISC */
/* The write path: requests queue their events; one transaction commits every queued
 * request on the next loop turn, and each request is answered after that commit. */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include "webhook.h"

struct event_base;
struct store;
struct ingest;

/* result: 0 committed (events have id/duplicate set), -1 the store failed. */
typedef void (*ingest_done_cb)(int result, struct webhook_event *, size_t n, void *arg);

struct ingest *ingest_new(struct event_base *, struct store *);
void ingest_free(struct ingest *);
/* Takes ownership of evs. cb runs later from the loop, never from inside submit. */
void ingest_submit(struct ingest *, struct webhook_event *evs, size_t n, ingest_done_cb, void *arg);
/* Commit whatever is queued now (shutdown). */
void ingest_flush(struct ingest *);
/* Called after each successful commit that added deliveries (outbox wake-up). */
void ingest_set_commit_hook(struct ingest *, void (*hook)(void *), void *arg);

#endif
