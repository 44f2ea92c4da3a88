/* SPDX-License-Identifier: ISC */
/* The write path: each request's events are one store writer item; the request is
 * answered after the batch holding it committed. */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include "webhook.h"

struct store_writer;
struct ingest;

/* result: 0 committed (events have id/duplicate set), -1 the store failed. */
typedef void (*ingest_done_cb)(int result, struct webhook_event *, size_t n, void *arg);

/* max_queue: past that many unfinished writer items a submission is refused (0: none). */
struct ingest *ingest_new(struct store_writer *, size_t max_queue);
void ingest_free(struct ingest *);
/* Takes ownership of evs. cb runs later from the loop, never from inside submit. -1
 * (evs freed, cb never runs) when the writer is too far behind: answer 503. */
int ingest_submit(struct ingest *, struct webhook_event *evs, size_t n, ingest_done_cb, void *arg);
/* Called after each successful commit that added deliveries (outbox wake-up). */
void ingest_set_commit_hook(struct ingest *, void (*hook)(void *), void *arg);
/* 0 when the store commits, else -1 with the reason: the last commit failed (disk full,
 * locked by another process) or the writer has been waiting too long. Never waits. */
int ingest_health(struct ingest *, char *err, size_t errlen);
/* The writer's totals so far (transactions, the items they held, failed commits). */
void ingest_writer_totals(struct ingest *, unsigned long long *batches,
    unsigned long long *items, unsigned long long *failed);

#endif
