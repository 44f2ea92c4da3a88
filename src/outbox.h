/* SPDX-License-Identifier: ISC */
/* The outbox: which delivery is due, within each relay's concurrency, and what an
 * attempt's outcome does to its row (done, retry with backoff and jitter, dead). */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stdint.h>

struct event_base;
struct store;
struct store_writer;
struct config;
struct outbox;

/* Reads go to the store handle, every row update through the writer. The outbox owns
 * cfg from here on (configs are freed once no attempt uses them). */
struct outbox *outbox_new(struct event_base *, struct store *, struct store_writer *, struct config *);
/* A reloaded config: new attempts use it; the old one is freed when its attempts end. */
void outbox_set_config(struct outbox *, struct config *);
/* Look for due deliveries on the next loop turn (new rows, a freed slot, the tick). */
void outbox_wake(struct outbox *);
/* Start no new attempts; those in flight go on. */
void outbox_stop(struct outbox *);
int outbox_in_flight(const struct outbox *);
/* Abandons attempts still in flight: their rows stay pending for the next start. Drain
 * the writer first: a record still queued there points at its attempt. */
void outbox_free(struct outbox *);

/* The delay before the retry that follows ATTEMPTS failed attempts, jittered by
 * +/-20 %, at least retry_after_ms (bounded by the longest step); 0 when exhausted. */
uint64_t outbox_retry_delay(const uint64_t *schedule, size_t n, int attempts,
    uint64_t retry_after_ms, long jitter_permille);

#endif
