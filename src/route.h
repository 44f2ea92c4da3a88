/* SPDX-License-Identifier: ISC */
/* Which relays an event goes to: kinds and match_from / match_to / match_body globs. */
#ifndef ROUTE_H
#define ROUTE_H

#include "config.h"
#include "webhook.h"

/* 1 when the relay takes this event. */
int route_match(const struct config_relay *, const struct webhook_event *);
/* Sets ev->relays (names, owned by the event) to every matching relay of cfg. */
void route_event(const struct config *, struct webhook_event *);

#endif
