/* SPDX-License-Identifier: ISC */
/* Webhook kinds and formats, the decoded event, column extraction and dedupe keys. */
#ifndef WEBHOOK_H
#define WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "fields.h"

enum webhook_kind_id {
	KIND_SMS_INBOUND,
	KIND_SMS_RECEIPT,
	KIND_FAX_INBOUND,
	KIND_FAX_RECEIPT,
	KIND_VOICE_RECEIPT,
	KIND_EMAIL_RECEIPT,
	KIND_COUNT
};

enum webhook_format {
	FORMAT_GET,
	FORMAT_POST,
	FORMAT_JSON,
	FORMAT_POLL, /* fetched from the API (poll.c), never a webhook's */
	FORMAT_COUNT
};

/* Bounds on one request: fields per event and events (JSON objects) per request. */
#define WEBHOOK_MAX_FIELDS FIELDS_MAX
#define WEBHOOK_MAX_EVENTS FIELDS_MAX_OBJECTS

/* What a ClickSend automation rule matches on, beyond its name. */
#define MATCH_NUMBER 0x1 /* dedicated_number */
#define MATCH_SEARCH 0x2 /* message_search_type 0, message_search_term "" */
#define MATCH_TYPE   0x4 /* match_type 0 */

/* A kind's ClickSend automation endpoint (provisioning); rules_path NULL: none. */
struct webhook_rule {
	const char *rules_path; /* "/automations/sms/inbound" */
	const char *id_field;	/* the rule's id in a listed rule */
	const char *id_alias;	/* the spelling lists may use instead, or NULL */
	unsigned match;		/* MATCH_* */
	int webhook_type;	/* the rule takes webhook_type */
	const char *test_path;	/* test push endpoint, NULL when there is none */
};

/* One ClickSend list a polled kind is read from (clicksend-relayd(8), Polling). */
struct webhook_poll {
	const char *list; /* "/sms/receipts": GET, paginated, unread items */
	const char *read; /* "/sms/receipts-read": PUT; by_id: PUT read/{message_id} */
	int by_id;	  /* mark read per message_id, else by date_before */
};
#define WEBHOOK_POLL_LISTS 2

/* Everything about one kind: adding a kind is one enum value and one row of
 * webhook_kinds (webhook.c). */
struct webhook_kind {
	enum webhook_kind_id id;
	const char *name; /* "sms.inbound" */
	const char *path; /* "/sms/inbound", below base_path */
	int receipt;	  /* dedupe on message_id + status_code */
	struct webhook_rule rule;
	struct webhook_poll poll[WEBHOOK_POLL_LISTS]; /* list NULL: none (not pollable) */
};

extern const struct webhook_kind webhook_kinds[KIND_COUNT];

const struct webhook_kind *webhook_kind_by_name(const char *);
const struct webhook_kind *webhook_kind_by_path(const char *);
const char *webhook_format_name(enum webhook_format);
/* A webhook format (get, post, json; never poll): -1 when unknown. */
int webhook_format_parse(const char *);
/* Whether the kind has a poll list. */
int webhook_kind_pollable(const struct webhook_kind *);

struct webhook_event {
	const struct webhook_kind *kind;
	enum webhook_format format;
	char remote_addr[64];
	struct fields fields;
	/* extracted columns: point into fields, NULL when absent */
	const char *message_id, *from, *to, *body;
	const char *status_code, *status_text, *custom_string;
	char *payload;	  /* JSON object with every field */
	char *dedupe_key; /* NULL when there is no message_id */
	char **relays;	  /* relays to create deliveries for; each string and the
	                       array are owned (freed by webhook_event_free) */
	size_t nrelays;
	unsigned char *relay_ordered; /* per relay: ordered = yes (order_key set) */
	/* filled by the store */
	int64_t id;
	int duplicate;
	char received_at[32];
};

/*
 * Extract the columns (with legacy alias fallbacks), build payload and dedupe key.
 * Call again after changing fields: the columns point into them.
 */
void webhook_event_finish(struct webhook_event *);
void webhook_event_free(struct webhook_event *);
void webhook_events_free(struct webhook_event *, size_t);

#endif
