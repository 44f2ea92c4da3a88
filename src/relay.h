/* SPDX-License-Identifier: ISC */
/* One delivery attempt to a relay, by URL (relay-http.c) or by script (relay-exec.c).
 * The outbox decides when to attempt; these only deliver and report the outcome. */
#ifndef RELAY_H
#define RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

struct event_base;
struct config_relay;

enum relay_outcome {
	RELAY_DONE,  /* delivered */
	RELAY_RETRY, /* try again per retry_schedule */
	RELAY_DEAD   /* permanent failure: no more attempts */
};

struct relay_result {
	enum relay_outcome outcome;
	uint64_t retry_after_ms; /* at least this long before the next attempt; 0 none */
	char text[256];		 /* for deliveries.last_result, e.g. "HTTP 503" */
};

/* What one attempt needs; owned by the caller until the callback has run. */
struct relay_job {
	const struct config_relay *relay;
	int64_t delivery_id;
	int64_t event_id;
	char event_ref[32]; /* "evt_42": webhook-id, CLICKSEND_EVENT_ID */
	const char *kind;   /* "sms.inbound" */
	const char *format; /* "post" */
	const char *received_at;
	const char *document; /* the relay document, clicksend-relay.conf(5) */
	size_t doclen;
	const struct fields *fields; /* the payload's fields, for script environments */
	/* owned by relay_job_init */
	char *doc_buf;
	struct fields *field_list;
	size_t nfield_list;
};

/* A stored delivery as an attempt needs it; the strings stay the caller's. */
struct relay_row {
	int64_t delivery_id, event_id;
	const char *kind, *format, *received_at, *payload;
};

/* Fills JOB for one attempt of ROW to RELAY: the document and the payload's fields
 * (relay-job.c). 0, or -1 when the stored payload is not one JSON object. */
int relay_job_init(struct relay_job *, const struct config_relay *, const struct relay_row *);
void relay_job_clear(struct relay_job *);

typedef void (*relay_done_cb)(const struct relay_job *, const struct relay_result *, void *arg);

/* URL relays over libcurl multi on the daemon's loop. */
struct relay_http;
struct relay_http *relay_http_new(struct event_base *);
/* Starts one attempt; the callback runs later from the loop, exactly once. 0 or -1. */
int relay_http_attempt(struct relay_http *, const struct relay_job *, relay_done_cb, void *arg);
int relay_http_in_flight(const struct relay_http *);
/* Abandons every attempt in flight without calling back (shutdown). */
void relay_http_free(struct relay_http *);

/* Script relays as child processes watched by the loop. */
struct relay_exec;
struct relay_exec *relay_exec_new(struct event_base *);
int relay_exec_attempt(struct relay_exec *, const struct relay_job *, relay_done_cb, void *arg);
int relay_exec_in_flight(const struct relay_exec *);
/* SIGTERM then SIGKILL to every running script, reap them, no callbacks (shutdown). */
void relay_exec_free(struct relay_exec *);

/* Standard Webhooks signature "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" for a
 * "whsec_<base64>" secret; NULL when the secret does not decode. Caller frees. */
char *relay_sign(
    const char *secret, const char *msg_id, long long timestamp, const char *body, size_t bodylen);

#endif
