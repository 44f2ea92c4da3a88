/* SPDX-License-Identifier: ISC */
/* The operator tool's queries on the store: listing events and deliveries, putting
 * deliveries back in the queue (retry, replay) and counts for stats. Rows are handed to
 * a callback one at a time; their strings are valid only during the call. */
#ifndef STORE_ADMIN_H
#define STORE_ADMIN_H

#include <stdint.h>

struct store;

/* One events row; NULL columns are NULL pointers. */
struct store_admin_event {
	int64_t id;
	const char *kind, *format, *received_at, *remote_addr, *message_id;
	const char *from_number, *to_number, *body, *status_code, *status_text;
	const char *custom_string, *payload, *dedupe_key;
	long long duplicates;
};

/* Unset members (NULL, 0) do not filter. Newest first; limit 0 means no limit. */
struct store_admin_event_filter {
	int64_t id;
	const char *kind;
	const char *since; /* received_at >= since (text comparison) */
	long long limit;
};

/* One deliveries row. */
struct store_admin_delivery {
	int64_t id, event_id;
	const char *relay, *state, *next_attempt_at, *last_attempt_at, *last_result, *done_at;
	long long attempts;
};

struct store_admin_delivery_filter {
	int64_t id, event_id;
	const char *relay, *state;
	int oldest_first; /* default newest first */
	long long limit;
};

/* A name with up to three counts (kind: events, duplicates; relay: pending, done, dead). */
struct store_admin_count {
	const char *name;
	long long n[3];
};

/* One provisioned_rules row; rule_id is -1 when NULL. */
struct store_admin_rule {
	const char *kind, *rule_name, *action_address, *webhook_type, *synced_at, *last_error;
	long long rule_id;
};

/* A callback returns 0 to go on, anything else to stop (that value is returned). */
typedef int (*store_admin_event_cb)(const struct store_admin_event *, void *);
typedef int (*store_admin_delivery_cb)(const struct store_admin_delivery *, void *);
typedef int (*store_admin_count_cb)(const struct store_admin_count *, void *);
typedef int (*store_admin_rule_cb)(const struct store_admin_rule *, void *);

/* Each returns 0, the callback's non-zero value, or -1 (store_errmsg has the reason). */
int store_admin_events(
    struct store *, const struct store_admin_event_filter *, store_admin_event_cb, void *);
int store_admin_deliveries(
    struct store *, const struct store_admin_delivery_filter *, store_admin_delivery_cb, void *);
/* Events and duplicates per kind; pending, done and dead deliveries per relay. */
int store_admin_kind_counts(struct store *, store_admin_count_cb, void *);
int store_admin_relay_counts(struct store *, store_admin_count_cb, void *);
int store_admin_rules(struct store *, store_admin_rule_cb, void *);

/*
 * The changes, for the caller's transaction (store_begin / store_commit).
 * requeue: state pending, due at NOW, done_at NULL; attempts and last_result kept.
 * Returns 1 when the row was changed, 0 when there is no such row, -1 on error.
 */
int store_admin_requeue(struct store *, int64_t delivery_id, const char *now);
/* Every dead delivery of RELAY back to pending, due at NOW. The count or -1. */
int store_admin_requeue_dead(struct store *, const char *relay, const char *now);
/* A new pending delivery of the event to RELAY, due at NOW. 1 created, 0 existed, -1. */
int store_admin_delivery_create(
    struct store *, int64_t event_id, const char *relay, const char *now);

/* The delivery of RELAY attempted last, if any. */
int store_admin_relay_last(struct store *, const char *relay, store_admin_delivery_cb, void *);

#endif
