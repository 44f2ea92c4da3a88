/* SPDX-License-Identifier: ISC */
/* Per-relay controls the outbox consults before starting attempts: paused (as the
 * relays table says), rate (attempts started in the last second or minute) and the
 * failure streak behind pause_after. Memory only; times are monotonic milliseconds. */
#ifndef RELAY_CTL_H
#define RELAY_CTL_H

#include <stdint.h>

struct config_relay;
struct relay_ctl;

struct relay_ctl *relay_ctl_new(void);
void relay_ctl_free(struct relay_ctl *);

/* The paused set, replaced whole: clear, then mark each paused relay, then done (a relay
 * no longer paused starts a new failure streak). */
void relay_ctl_paused_clear(struct relay_ctl *);
void relay_ctl_paused_mark(struct relay_ctl *, const char *relay);
void relay_ctl_paused_done(struct relay_ctl *);
int relay_ctl_paused(struct relay_ctl *, const char *relay);

/* How many attempts RELAY may start at NOW under its rate (UINT32_MAX without one); when
 * none, *wait_ms says how long until one may. */
unsigned relay_ctl_allowance(
    struct relay_ctl *, const struct config_relay *, int64_t now, int64_t *wait_ms);
void relay_ctl_started(struct relay_ctl *, const struct config_relay *, int64_t now);

/* An attempt's outcome (ok: delivered). 1 when the relay has now failed every attempt
 * for pause_after and at least three times: it is marked paused here, and *since (at
 * least 32 bytes) holds the time text the streak began; else 0. */
int relay_ctl_outcome(struct relay_ctl *, const struct config_relay *, int ok, int64_t now,
    const char *now_text, char *since);

#endif
