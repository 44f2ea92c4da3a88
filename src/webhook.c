/* SPDX-License-Identifier: ISC */
/*
 * Webhook kinds and formats (const tables), and what webhook_event_finish derives from an
 * event's fields (fields.c): columns with legacy alias fallbacks, the JSON payload and the
 * dedupe key.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "webhook.h"
#include "xmalloc.h"

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* Adding a kind is one row here and one enum value in webhook.h: the name, the path
 * below base_path, dedupe, the ClickSend automation rule (its /automations endpoint) and
 * the lists it is polled from. */
const struct webhook_kind webhook_kinds[KIND_COUNT] = {
	[KIND_SMS_INBOUND] = { .id = KIND_SMS_INBOUND,
	    .name = "sms.inbound",
	    .path = "/sms/inbound",
	    .receipt = 0,
	    .rule = { .rules_path = "/automations/sms/inbound",
		.id_field = "inbound_rule_id",
		.id_alias = "sms_inbound_rule_id",
		.match = MATCH_NUMBER | MATCH_SEARCH,
		.webhook_type = 1,
		.test_path = "/sms/inbound" },
	    .poll = { { .list = "/sms/inbound", .read = "/sms/inbound-read", .by_id = 1 } } },
	[KIND_SMS_RECEIPT] = { .id = KIND_SMS_RECEIPT,
	    .name = "sms.receipt",
	    .path = "/sms/receipt",
	    .receipt = 1,
	    .rule = { .rules_path = "/automations/sms/receipts",
		.id_field = "receipt_rule_id",
		.match = MATCH_TYPE,
		.test_path = "/sms/receipts" },
	    /* MMS receipts are SMS receipts with message_type "mms" (clicksend-relayd(8), ENDPOINTS) */
	    .poll = { { .list = "/sms/receipts", .read = "/sms/receipts-read" },
		{ .list = "/mms/receipts", .read = "/mms/receipts-read" } } },
	[KIND_FAX_INBOUND] = { .id = KIND_FAX_INBOUND,
	    .name = "fax.inbound",
	    .path = "/fax/inbound",
	    .receipt = 0,
	    .rule = { .rules_path = "/automations/fax/inbound",
		.id_field = "inbound_rule_id",
		.match = MATCH_NUMBER } },
	[KIND_FAX_RECEIPT] = { .id = KIND_FAX_RECEIPT,
	    .name = "fax.receipt",
	    .path = "/fax/receipt",
	    .receipt = 1,
	    .rule = { .rules_path = "/automations/fax/receipts",
		.id_field = "receipt_rule_id",
		.match = MATCH_TYPE,
		.test_path = "/fax/receipts" },
	    .poll = { { .list = "/fax/receipts", .read = "/fax/receipts-read" } } },
	[KIND_VOICE_RECEIPT] = { .id = KIND_VOICE_RECEIPT,
	    .name = "voice.receipt",
	    .path = "/voice/receipt",
	    .receipt = 1,
	    .rule = { .rules_path = "/automations/voice/receipts",
		.id_field = "receipt_rule_id",
		.match = MATCH_TYPE,
		.test_path = "/voice/receipts" },
	    .poll = { { .list = "/voice/receipts", .read = "/voice/receipts-read" } } },
	[KIND_EMAIL_RECEIPT] = { .id = KIND_EMAIL_RECEIPT,
	    .name = "email.receipt",
	    .path = "/email/receipt",
	    .receipt = 1,
	    .rule = { .rules_path = "/automations/email/receipts",
		.id_field = "receipt_rule_id",
		.match = MATCH_TYPE,
		.test_path = "/email/receipts" } },
};

static const char *const webhook_format_names[FORMAT_COUNT] = {
	[FORMAT_GET] = "get",
	[FORMAT_POST] = "post",
	[FORMAT_JSON] = "json",
	[FORMAT_POLL] = "poll",
};

/*
 * Where each column comes from: the main field first, then ClickSend's legacy aliases.
 * An alias is used only when the fields before it are missing, null or empty.
 */
struct webhook_column {
	size_t offset;			 /* of the const char * in struct webhook_event */
	const char *fields[3];		 /* main field, then aliases; NULL-terminated */
	enum webhook_kind_id alias_kind; /* kind_alias applies to this kind only */
	const char *kind_alias;		 /* a last fallback for that kind, or NULL */
};

static const struct webhook_column webhook_columns[] = {
	{ .offset = offsetof(struct webhook_event, body), .fields = { "body", "message" } },
	{ .offset = offsetof(struct webhook_event, from), .fields = { "from", "sms" } },
	{ .offset = offsetof(struct webhook_event, to),
	    .fields = { "to", "originalsenderid" },
	    .alias_kind = KIND_EMAIL_RECEIPT,
	    .kind_alias = "email" },
	{ .offset = offsetof(struct webhook_event, custom_string),
	    .fields = { "custom_string", "customstring" } },
	{ .offset = offsetof(struct webhook_event, message_id),
	    .fields = { "message_id", "messageid" } },
	{ .offset = offsetof(struct webhook_event, status_code), .fields = { "status_code" } },
	{ .offset = offsetof(struct webhook_event, status_text), .fields = { "status_text" } },
};

const struct webhook_kind *
webhook_kind_by_name(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < nitems(webhook_kinds); i++) {
		if (strcmp(webhook_kinds[i].name, name) == 0)
			return &webhook_kinds[i];
	}
	return NULL;
}

const struct webhook_kind *
webhook_kind_by_path(const char *path)
{
	size_t i;

	for (i = 0; path != NULL && i < nitems(webhook_kinds); i++) {
		if (strcmp(webhook_kinds[i].path, path) == 0)
			return &webhook_kinds[i];
	}
	return NULL;
}

const char *
webhook_format_name(enum webhook_format format)
{
	if ((unsigned int)format >= FORMAT_COUNT)
		return "unknown";
	return webhook_format_names[format];
}

int
webhook_format_parse(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < FORMAT_POLL; i++) {
		if (strcasecmp(webhook_format_names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

int
webhook_kind_pollable(const struct webhook_kind *k)
{
	return k != NULL && k->poll[0].list != NULL;
}

static int
webhook_field_filled(const struct field *f)
{
	return f != NULL && f->value != NULL && f->len > 0;
}

/* A column's text: the first filled field of its list, else the main field as is. */
static const char *
webhook_column_value(const struct webhook_event *ev, const struct webhook_column *c)
{
	const struct field *f;
	size_t i;

	for (i = 0; i < nitems(c->fields) && c->fields[i] != NULL; i++) {
		f = fields_get(&ev->fields, c->fields[i]);
		if (webhook_field_filled(f))
			return f->value;
	}
	if (c->kind_alias != NULL && ev->kind != NULL && ev->kind->id == c->alias_kind) {
		f = fields_get(&ev->fields, c->kind_alias);
		if (webhook_field_filled(f))
			return f->value;
	}
	f = fields_get(&ev->fields, c->fields[0]);
	return f != NULL ? f->value : NULL;
}

/* V with '\\' and '|' escaped by a '\\', so that keys made of parts stay unambiguous. */
static char *
webhook_key_part(const char *v)
{
	char *out = xmalloc(strlen(v) * 2 + 1), *p = out;

	for (; *v != '\0'; v++) {
		if (*v == '|' || *v == '\\')
			*p++ = '\\';
		*p++ = *v;
	}
	*p = '\0';
	return out;
}

/*
 * "kind|message_id" for inbound kinds, "kind|message_id|status_code" for receipts, the
 * values escaped (webhook_key_part) so that "a|b" + "c" and "a" + "b|c" differ.
 */
static char *
webhook_dedupe_key(const struct webhook_event *ev)
{
	char *key, *mid, *sc;

	if (ev->kind == NULL || ev->message_id == NULL || ev->message_id[0] == '\0')
		return NULL;
	mid = webhook_key_part(ev->message_id);
	if (ev->kind->receipt) {
		sc = webhook_key_part(ev->status_code != NULL ? ev->status_code : "");
		xasprintf(&key, "%s|%s|%s", ev->kind->name, mid, sc);
		free(sc);
	} else
		xasprintf(&key, "%s|%s", ev->kind->name, mid);
	free(mid);
	return key;
}

void
webhook_event_finish(struct webhook_event *ev)
{
	const struct webhook_column *c;
	size_t i;

	for (i = 0; i < nitems(webhook_columns); i++) {
		c = &webhook_columns[i];
		*(const char **)((char *)ev + c->offset) = webhook_column_value(ev, c);
	}
	free(ev->payload);
	ev->payload = json_fields_object(&ev->fields);
	free(ev->dedupe_key);
	ev->dedupe_key = webhook_dedupe_key(ev);
}

void
webhook_event_free(struct webhook_event *ev)
{
	size_t i;

	if (ev == NULL)
		return;
	fields_free(&ev->fields);
	free(ev->payload);
	free(ev->dedupe_key);
	for (i = 0; i < ev->nrelays; i++)
		free(ev->relays[i]);
	free(ev->relays);
	free(ev->relay_ordered);
	memset(ev, 0, sizeof *ev);
}

void
webhook_events_free(struct webhook_event *evs, size_t n)
{
	size_t i;

	if (evs == NULL)
		return;
	for (i = 0; i < n; i++)
		webhook_event_free(&evs[i]);
	free(evs);
}
