/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for webhook.c, decode.c and json.c: the real ClickSend samples in
 * tests/data, form and JSON edge cases, column extraction, payloads and dedupe keys.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "json.h"
#include "webhook.h"
#include "tap.h"

#ifndef TESTS_DATA
#define TESTS_DATA "tests/data"
#endif

/* The whole of a file under tests/data. */
static char *
slurp(const char *rel, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s", TESTS_DATA, rel);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Decode a sample file into exactly one event of the given kind. */
static struct webhook_event *
decode_sample(const char *rel, enum webhook_kind_id kind, enum webhook_format format)
{
	struct webhook_event *evs;
	char err[256] = "", *buf;
	size_t len;
	int n;

	buf = slurp(rel, &len);
	n = decode_events(&webhook_kinds[kind], format, buf, len, &evs, err, sizeof err);
	free(buf);
	ck_assert_msg(n == 1, "%s: %d events: %s", rel, n, err);
	ck_assert_ptr_eq(evs[0].kind, &webhook_kinds[kind]);
	ck_assert_int_eq(evs[0].format, format);
	return evs;
}

/* Decode a literal string; returns the count (or -1) and leaves events in *out. */
static int
decode_str(enum webhook_kind_id kind, enum webhook_format format, const char *s,
    struct webhook_event **out, char *err, size_t errlen)
{
	return decode_events(&webhook_kinds[kind], format, s, strlen(s), out, err, errlen);
}

static struct webhook_event *
decode_one(enum webhook_kind_id kind, enum webhook_format format, const char *s)
{
	struct webhook_event *evs = NULL;
	char err[256] = "";
	int n;

	n = decode_str(kind, format, s, &evs, err, sizeof err);
	ck_assert_msg(n == 1, "%s: %d events: %s", s, n, err);
	return evs;
}

static void
assert_rejected(enum webhook_format format, const char *s, size_t len, const char *why)
{
	struct webhook_event *evs = (struct webhook_event *)1;
	char err[256] = "";

	ck_assert_int_eq(decode_events(&webhook_kinds[KIND_SMS_INBOUND], format, s, len, &evs,
	    err, sizeof err), -1);
	ck_assert_ptr_null(evs);
	ck_assert_msg(strstr(err, why) != NULL, "'%s': error '%s' lacks '%s'", s, err, why);
}

/* The same for a C string. */
static void
assert_rejected_str(enum webhook_format format, const char *s, const char *why)
{
	assert_rejected(format, s, strlen(s), why);
}

#define ck_assert_str_eq_or_null(a, b) do {				\
	if ((b) == NULL)						\
		ck_assert_ptr_null(a);					\
	else								\
		ck_assert_pstr_eq(a, b);				\
} while (0)

static void
assert_columns(const struct webhook_event *ev, const char *mid, const char *from,
    const char *to, const char *body, const char *code, const char *text, const char *custom)
{
	ck_assert_str_eq_or_null(ev->message_id, mid);
	ck_assert_str_eq_or_null(ev->from, from);
	ck_assert_str_eq_or_null(ev->to, to);
	ck_assert_str_eq_or_null(ev->body, body);
	ck_assert_str_eq_or_null(ev->status_code, code);
	ck_assert_str_eq_or_null(ev->status_text, text);
	ck_assert_str_eq_or_null(ev->custom_string, custom);
}

/* The payload parsed back, with one member read as text. */
static const char *
payload_text(struct json_doc *doc, const char *key)
{
	return json_as_string(json_get(json_doc_root(doc), key));
}

static struct json_doc *
payload_doc(const struct webhook_event *ev)
{
	struct json_doc *doc;
	char err[256] = "";

	ck_assert_ptr_nonnull(ev->payload);
	doc = json_doc_parse(ev->payload, strlen(ev->payload), err, sizeof err);
	ck_assert_msg(doc != NULL, "payload %s: %s", ev->payload, err);
	ck_assert(json_is_object(json_doc_root(doc)));
	return doc;
}

/* Every field of the event is in the payload with the same text. */
static void
assert_payload_roundtrip(const struct webhook_event *ev)
{
	struct json_doc *doc = payload_doc(ev);
	const struct json_node *n;
	const struct field *f;
	size_t i;

	for (i = 0; i < ev->fields.n; i++) {
		f = &ev->fields.v[i];
		n = json_get(json_doc_root(doc), f->name);
		ck_assert_msg(n != NULL, "field %s missing from payload", f->name);
		if (f->type == FIELD_NULL)
			ck_assert(json_is_null(n));
		else if (f->type != FIELD_JSON)
			ck_assert_str_eq(json_as_string(n), f->value);
	}
	json_doc_free(doc);
}

START_TEST(test_kinds_table)
{
	size_t i;

	for (i = 0; i < KIND_COUNT; i++) {
		ck_assert_int_eq(webhook_kinds[i].id, (int)i);
		ck_assert_ptr_eq(webhook_kind_by_name(webhook_kinds[i].name), &webhook_kinds[i]);
		ck_assert_ptr_eq(webhook_kind_by_path(webhook_kinds[i].path), &webhook_kinds[i]);
	}
	ck_assert_str_eq(webhook_kind_by_path("/sms/inbound")->name, "sms.inbound");
	ck_assert_str_eq(webhook_kind_by_path("/email/receipt")->name, "email.receipt");
	ck_assert_int_eq(webhook_kind_by_name("sms.inbound")->receipt, 0);
	ck_assert_int_eq(webhook_kind_by_name("fax.inbound")->receipt, 0);
	ck_assert_int_eq(webhook_kind_by_name("sms.receipt")->receipt, 1);
	ck_assert_int_eq(webhook_kind_by_name("voice.receipt")->receipt, 1);
	ck_assert_ptr_null(webhook_kind_by_name("mms.receipt"));
	ck_assert_ptr_null(webhook_kind_by_path("/sms/inbound/x"));
	ck_assert_ptr_null(webhook_kind_by_path(NULL));
	ck_assert_str_eq(webhook_format_name(FORMAT_GET), "get");
	ck_assert_str_eq(webhook_format_name(FORMAT_POST), "post");
	ck_assert_str_eq(webhook_format_name(FORMAT_JSON), "json");
	ck_assert_int_eq(webhook_format_parse("json"), FORMAT_JSON);
	ck_assert_int_eq(webhook_format_parse("POST"), FORMAT_POST);
	ck_assert_int_eq(webhook_format_parse("xml"), -1);
}
END_TEST

START_TEST(test_sample_sms_inbound_form)
{
	enum webhook_format fmts[] = { FORMAT_POST, FORMAT_GET };
	const char *files[] = { "webhooks/sms-inbound.form", "webhooks/sms-inbound.query" };
	struct webhook_event *ev;
	int i;

	for (i = 0; i < 2; i++) {
		ev = decode_sample(files[i], KIND_SMS_INBOUND, fmts[i]);
		assert_columns(ev, "C557B56E-83C0-4070-A74C-9BF05474B418", "+61468460249",
		    "+61411111111", "Hello there, can we move to 3pm?", NULL, NULL,
		    "booking-1187");
		ck_assert_str_eq(ev->dedupe_key,
		    "sms.inbound|C557B56E-83C0-4070-A74C-9BF05474B418");
		ck_assert_uint_eq(ev->fields.n, 16);
		ck_assert_str_eq(fields_get(&ev->fields, "original_body")->value,
		    "Your appointment is at 2pm.");
		ck_assert_int_eq(fields_get(&ev->fields, "timestamp")->type, FIELD_STRING);
		assert_payload_roundtrip(ev);
		webhook_events_free(ev, 1);
	}
}
END_TEST

START_TEST(test_sample_sms_inbound_json)
{
	struct webhook_event *ev;
	struct json_doc *doc;

	ev = decode_sample("webhooks/sms-inbound.json", KIND_SMS_INBOUND, FORMAT_JSON);
	assert_columns(ev, "1F12D781-99C1-6D94-96FE-F5A311C8997D", "+61429912603", "+61477485926",
	    "trigger reply", NULL, NULL, "");
	ck_assert_str_eq(ev->dedupe_key, "sms.inbound|1F12D781-99C1-6D94-96FE-F5A311C8997D");
	ck_assert_int_eq(fields_get(&ev->fields, "user_id")->type, FIELD_NUMBER);
	ck_assert_str_eq(fields_get(&ev->fields, "user_id")->value, "304497");
	doc = payload_doc(ev);
	ck_assert_str_eq(payload_text(doc, "timestamp"), "1775012927");
	ck_assert_str_eq(payload_text(doc, "custom_string"), "");
	json_doc_free(doc);
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_sample_receipts)
{
	struct webhook_event *ev;

	ev = decode_sample("webhooks/sms-receipt.form", KIND_SMS_RECEIPT, FORMAT_POST);
	assert_columns(ev, "493FFB41-9733-4641-985F-BD79A067B58F", NULL, NULL, NULL, "201",
	    "Success: Message received on handset.", "booking-1187");
	ck_assert_str_eq(ev->dedupe_key, "sms.receipt|493FFB41-9733-4641-985F-BD79A067B58F|201");
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);

	ev = decode_sample("webhooks/sms-receipt.json", KIND_SMS_RECEIPT, FORMAT_JSON);
	assert_columns(ev, "2336751A-BBBE-4887-9D7C-CB7558F00208", NULL, NULL, NULL, "201",
	    "Success: Message received on handset.", "custom_string");
	ck_assert_int_eq(fields_get(&ev->fields, "status_code")->type, FIELD_NUMBER);
	ck_assert_str_eq(ev->dedupe_key, "sms.receipt|2336751A-BBBE-4887-9D7C-CB7558F00208|201");
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);

	ev = decode_sample("webhooks/fax-receipt.form", KIND_FAX_RECEIPT, FORMAT_POST);
	assert_columns(ev, "6D1A1C1E-2B1F-4C55-8E52-3C8F3C1D9A10", NULL, NULL, NULL, "Completed",
	    "", "invoice-77");
	ck_assert_str_eq(ev->dedupe_key,
	    "fax.receipt|6D1A1C1E-2B1F-4C55-8E52-3C8F3C1D9A10|Completed");
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_sample_voice_email)
{
	struct webhook_event *ev;
	struct json_doc *doc;

	ev = decode_sample("webhooks/voice-receipt.json", KIND_VOICE_RECEIPT, FORMAT_JSON);
	assert_columns(ev, "CEA5E06A-F4BF-4EC6-8315-B25087352DFA", NULL, NULL, NULL, "201",
	    "Success: Message received on handset.", NULL);
	ck_assert_int_eq(fields_get(&ev->fields, "custom_string")->type, FIELD_NULL);
	ck_assert_str_eq(ev->dedupe_key,
	    "voice.receipt|CEA5E06A-F4BF-4EC6-8315-B25087352DFA|201");
	doc = payload_doc(ev);
	ck_assert(json_is_null(json_get(json_doc_root(doc), "error_code")));
	ck_assert_str_eq(payload_text(doc, "digits"), "2");
	json_doc_free(doc);
	webhook_events_free(ev, 1);

	ev = decode_sample("webhooks/email-receipt.json", KIND_EMAIL_RECEIPT, FORMAT_JSON);
	assert_columns(ev, "73A80623-CFC3-4E7F-856A-880B289242D7@clicksend.com", NULL,
	    "john_doe@user.com", NULL, NULL, NULL, NULL);
	ck_assert_str_eq(ev->dedupe_key,
	    "email.receipt|73A80623-CFC3-4E7F-856A-880B289242D7@clicksend.com|");
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_legacy_aliases)
{
	struct webhook_event *ev;

	/* main fields missing: every alias is used */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST,
	    "message=hi&sms=%2B6111&originalsenderid=%2B6122&customstring=cs&messageid=M1");
	assert_columns(ev, "M1", "+6111", "+6122", "hi", NULL, NULL, "cs");
	ck_assert_str_eq(ev->dedupe_key, "sms.inbound|M1");
	webhook_events_free(ev, 1);

	/* main fields empty: aliases still win; main present: it wins */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_GET,
	    "body=&message=hi&from=%2B61&sms=%2B99&to=&originalsenderid=%2B6122");
	assert_columns(ev, NULL, "+61", "+6122", "hi", NULL, NULL, NULL);
	ck_assert_ptr_null(ev->dedupe_key);
	webhook_events_free(ev, 1);

	/* all empty: the empty main value is kept */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST, "body=&message=&custom_string=");
	assert_columns(ev, NULL, NULL, NULL, "", NULL, NULL, "");
	webhook_events_free(ev, 1);

	/* JSON null main field falls back too */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_JSON,
	    "{\"body\":null,\"message\":\"m\",\"to\":null,\"from\":null,\"sms\":\"\"}");
	assert_columns(ev, NULL, NULL, NULL, "m", NULL, NULL, NULL);
	webhook_events_free(ev, 1);

	/* email only stands in for "to" on email receipts */
	ev = decode_one(KIND_SMS_RECEIPT, FORMAT_POST, "email=a%40b.c&message_id=X");
	ck_assert_ptr_null(ev->to);
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_EMAIL_RECEIPT, FORMAT_POST, "to=&email=a%40b.c&message_id=X");
	ck_assert_str_eq(ev->to, "a@b.c");
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_form_escapes)
{
	struct webhook_event *ev;
	const struct field *f;

	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST,
	    "body=a%2Bb+c%26d%3De%2B&from=%2b61&caf%C3%A9=%E2%82%AC+%F0%9F%98%80");
	ck_assert_str_eq(ev->body, "a+b c&d=e+");
	ck_assert_str_eq(ev->from, "+61");
	f = fields_get(&ev->fields, "caf\xc3\xa9");
	ck_assert_ptr_nonnull(f);
	ck_assert_str_eq(f->value, "\xe2\x82\xac \xf0\x9f\x98\x80");
	ck_assert_uint_eq(f->len, 8);
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_form_structure)
{
	struct webhook_event *ev;
	struct fields fs = { 0 };
	char err[128];

	/* empty pairs skipped, bare key, split at the first '=', '=' in a value */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST, "&a=1&&flag&b=x=y&=v&");
	ck_assert_uint_eq(ev->fields.n, 4);
	ck_assert_str_eq(fields_get(&ev->fields, "a")->value, "1");
	ck_assert_str_eq(fields_get(&ev->fields, "flag")->value, "");
	ck_assert_uint_eq(fields_get(&ev->fields, "flag")->len, 0);
	ck_assert_str_eq(fields_get(&ev->fields, "b")->value, "x=y");
	ck_assert_str_eq(fields_get(&ev->fields, "")->value, "v");
	webhook_events_free(ev, 1);

	/* a repeated name is refused, nothing is kept (the same value twice too) */
	ck_assert_int_eq(decode_form("a=1&b=2&a=3", 11, &fs, err, sizeof err), -1);
	ck_assert_str_eq(err, "field 3: name repeats an earlier field");
	ck_assert_uint_eq(fs.n, 0);
	ck_assert_ptr_null(fs.v);
	assert_rejected(FORMAT_GET, "message_id=a&message_id=a", 25,
	    "field 2: name repeats an earlier field");
	/* "a" and "a%00" are not the same name, but the second holds a NUL */
	assert_rejected(FORMAT_POST, "a=1&a%00=2", 10, "field 2: name holds a NUL byte");
	/* names that differ only in percent-encoding are the same name */
	assert_rejected(FORMAT_POST, "ab=1&a%62=2", 11, "field 2: name repeats");
}
END_TEST

START_TEST(test_form_nul_bytes)
{
	static const char raw[] = "body=ok&from=x\0y";
	struct fields fs = { 0 };
	char err[128];

	/* a NUL in a name or value is refused (percent-encoded or raw), so no column, dedupe
	 * key or field name can be cut short at it */
	assert_rejected(FORMAT_POST, "message_id=dup%00x", 18, "field 1: value holds a NUL byte");
	assert_rejected(FORMAT_GET, "body=x&message_id=%00", 21, "field 2: value holds a NUL byte");
	assert_rejected(FORMAT_POST, "body=a&k%00x=v", 14, "field 2: name holds a NUL byte");
	assert_rejected(FORMAT_POST, raw, sizeof raw - 1, "field 2: value holds a NUL byte");
	ck_assert_int_eq(decode_form("%00", 3, &fs, err, sizeof err), -1);
	ck_assert_str_eq(err, "field 1: name holds a NUL byte");
	ck_assert_uint_eq(fs.n, 0);
}
END_TEST

START_TEST(test_form_invalid_utf8)
{
	struct webhook_event *ev;

	/* refused rather than replaced by U+FFFD, which would make "x%FE" and "x%FF" one key */
	assert_rejected(FORMAT_POST, "body=a%FFb", 10, "field 1: value is not valid UTF-8");
	assert_rejected(FORMAT_POST, "a=1&x%FE=1&x%FF=2", 17, "field 2: name is not valid UTF-8");
	assert_rejected(FORMAT_GET, "body=%C0%80", 11, "not valid UTF-8");	   /* overlong */
	assert_rejected(FORMAT_GET, "body=%ED%A0%80", 14, "not valid UTF-8"); /* surrogate */
	assert_rejected(FORMAT_GET, "body=%E2%82", 11, "not valid UTF-8");	   /* truncated */
	assert_rejected(FORMAT_POST, "body=caf\xe9", 9, "field 1: value is not valid UTF-8");
	/* well-formed UTF-8, raw or percent-encoded, passes as is */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST, "body=caf\xc3\xa9+%F4%8F%BF%BF");
	ck_assert_str_eq(ev->body, "caf\xc3\xa9 \xf4\x8f\xbf\xbf");
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_form_rejected)
{
	char many[WEBHOOK_MAX_FIELDS * 8 + 16];
	size_t i, o = 0;

	assert_rejected(FORMAT_POST, "body=%zz", 8, "percent");
	assert_rejected(FORMAT_POST, "body=%4", 7, "percent");
	assert_rejected(FORMAT_POST, "body=ok&x=%", 11, "percent");
	assert_rejected(FORMAT_GET, "%g1=v", 5, "percent");
	assert_rejected(FORMAT_POST, "", 0, "empty body");
	assert_rejected(FORMAT_GET, NULL, 0, "empty body");
	assert_rejected(FORMAT_POST, "&&&", 3, "no fields");
	for (i = 0; i <= WEBHOOK_MAX_FIELDS; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "f%zu=1&", i);
	assert_rejected(FORMAT_POST, many, o, "too many fields");
}
END_TEST

START_TEST(test_json_array)
{
	struct webhook_event *evs;
	char err[128];
	int n;

	n = decode_str(KIND_SMS_RECEIPT, FORMAT_JSON,
	    "[{\"message_id\":\"A\",\"status_code\":200},"
	    " {\"message_id\":\"A\",\"status_code\":\"201\"},\n"
	    " {\"messageid\":\"B\"}, {}]", &evs, err, sizeof err);
	ck_assert_msg(n == 4, "%d: %s", n, err);
	ck_assert_str_eq(evs[0].dedupe_key, "sms.receipt|A|200");
	ck_assert_str_eq(evs[1].dedupe_key, "sms.receipt|A|201");
	ck_assert_str_eq(evs[2].dedupe_key, "sms.receipt|B|");
	ck_assert_ptr_null(evs[3].dedupe_key);
	ck_assert_str_eq(evs[3].payload, "{}");
	for (n = 0; n < 4; n++) {
		ck_assert_ptr_eq(evs[n].kind, &webhook_kinds[KIND_SMS_RECEIPT]);
		ck_assert_int_eq(evs[n].format, FORMAT_JSON);
	}
	webhook_events_free(evs, 4);
}
END_TEST

START_TEST(test_json_rejected)
{
	static const char *bad[][2] = {
		{ "[]", "empty array" },
		{ " [ ] ", "empty array" },
		{ "[{\"a\":1}, 2]", "element 1 is not an object" },
		{ "[{\"a\":1}, [{}]]", "not an object" },
		{ "\"text\"", "not an object" },
		{ "42", "not an object" },
		{ "null", "not an object" },
		{ "{\"a\":", "invalid JSON" },
		{ "{\"a\":1", "invalid JSON" },
		{ "[{\"a\":1}", "invalid JSON" },
		{ "{'a':1}", "invalid JSON" },
		{ "{\"a\":1}}", "invalid JSON" },
		{ "{\"a\":1} {\"b\":2}", "invalid JSON" },
		{ "{\"a\":01}", "invalid JSON" },
		{ "{\"a\":\"\xff\"}", "invalid JSON" },
		{ "{\"a\":1 /* c */}", "invalid JSON" },
		{ "a=1&b=2", "invalid JSON" },
		{ "   ", "invalid JSON" },
	};
	char deep[200];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_rejected(FORMAT_JSON, bad[i][0], strlen(bad[i][0]), bad[i][1]);
	assert_rejected(FORMAT_JSON, "", 0, "empty body");
	assert_rejected(FORMAT_JSON, "{\"a\":1}\0", 8, "invalid JSON");
	/* nesting beyond JSON_MAX_DEPTH */
	memset(deep, 0, sizeof deep);
	strcpy(deep, "{\"a\":");
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		strcat(deep, "[");
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	assert_rejected(FORMAT_JSON, deep, strlen(deep), "nesting too deep");
}
END_TEST

START_TEST(test_json_too_many_events)
{
	size_t cap = (WEBHOOK_MAX_EVENTS + 1) * 3 + 2, i, o = 0;
	char *buf = malloc(cap + 1);

	buf[o++] = '[';
	for (i = 0; i <= WEBHOOK_MAX_EVENTS; i++)
		o += (size_t)snprintf(buf + o, cap + 1 - o, "%s{}", i ? "," : "");
	buf[o++] = ']';
	assert_rejected(FORMAT_JSON, buf, o, "too many events");
	free(buf);
}
END_TEST

START_TEST(test_json_numbers_as_written)
{
	struct webhook_event *ev;
	struct json_doc *doc;

	ev = decode_one(KIND_SMS_RECEIPT, FORMAT_JSON,
	    "{\"a\":1e3,\"b\":12345678901234567890,\"c\":-0.50,\"status_code\":201,"
	    "\"message_id\":12,\"t\":true,\"f\":false,\"e\":1E+2}");
	ck_assert_str_eq(fields_get(&ev->fields, "a")->value, "1e3");
	ck_assert_str_eq(fields_get(&ev->fields, "b")->value, "12345678901234567890");
	ck_assert_str_eq(fields_get(&ev->fields, "c")->value, "-0.50");
	ck_assert_int_eq(fields_get(&ev->fields, "t")->type, FIELD_BOOL);
	ck_assert_str_eq(fields_get(&ev->fields, "t")->value, "true");
	ck_assert_str_eq(fields_get(&ev->fields, "f")->value, "false");
	ck_assert_str_eq(ev->status_code, "201");
	ck_assert_str_eq(ev->dedupe_key, "sms.receipt|12|201");
	ck_assert_str_eq(ev->payload,
	    "{\"a\":1e3,\"b\":12345678901234567890,\"c\":-0.50,\"status_code\":201,"
	    "\"message_id\":12,\"t\":true,\"f\":false,\"e\":1E+2}");
	doc = payload_doc(ev);
	ck_assert_str_eq(payload_text(doc, "b"), "12345678901234567890");
	json_doc_free(doc);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_json_null_nested_kept)
{
	struct webhook_event *ev;
	const struct field *f;
	struct json_doc *doc;
	const struct json_node *n;
	long long v;

	ev = decode_one(KIND_FAX_INBOUND, FORMAT_JSON,
	    "{\"message_id\":\"F1\", \"n\": null,"
	    " \"obj\": {\"x\": [1, \"two\", null, {\"y\": 2.5}]},"
	    " \"arr\": [], \"body\": \"line1\\nline2 \\u00e9 \\ud83d\\ude00 \\\"q\\\"\"}");
	f = fields_get(&ev->fields, "n");
	ck_assert_int_eq(f->type, FIELD_NULL);
	ck_assert_ptr_null(f->value);
	f = fields_get(&ev->fields, "obj");
	ck_assert_int_eq(f->type, FIELD_JSON);
	ck_assert_str_eq(f->value, "{\"x\":[1,\"two\",null,{\"y\":2.5}]}");
	ck_assert_str_eq(fields_get(&ev->fields, "arr")->value, "[]");
	ck_assert_str_eq(ev->body, "line1\nline2 \xc3\xa9 \xf0\x9f\x98\x80 \"q\"");
	ck_assert_str_eq(ev->dedupe_key, "fax.inbound|F1");

	doc = payload_doc(ev);
	ck_assert(json_is_null(json_get(json_doc_root(doc), "n")));
	n = json_get(json_get(json_doc_root(doc), "obj"), "x");
	ck_assert_uint_eq(json_array_len(n), 4);
	ck_assert_str_eq(json_as_string(json_array_at(n, 1)), "two");
	ck_assert(json_is_null(json_array_at(n, 2)));
	ck_assert_int_eq(json_as_int(json_array_at(n, 0), &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_str_eq(json_as_string(json_get(json_array_at(n, 3), "y")), "2.5");
	ck_assert(json_is_array(json_get(json_doc_root(doc), "arr")));
	ck_assert_str_eq(payload_text(doc, "body"), ev->body);
	json_doc_free(doc);
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_json_nul_in_string)
{
	struct webhook_event *ev;

	/* \u0000 anywhere (a key, a value, nested) is refused */
	assert_rejected_str(FORMAT_JSON, "{\"message_id\":\"dup\\u0000x\"}",
	    "JSON string at byte 18 holds \\u0000 (a NUL character)");
	assert_rejected_str(FORMAT_JSON, "{\"k\\u0000x\":\"v\"}", "byte 3 holds \\u0000");
	assert_rejected_str(FORMAT_JSON, "[{\"a\":1},{\"o\":{\"k\":[\"\\u0000\"]}}]", "\\u0000");
	/* an escaped backslash before "u0000" is just text */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_JSON, "{\"body\":\"a\\\\u0000b\"}");
	ck_assert_str_eq(ev->body, "a\\u0000b");
	ck_assert_uint_eq(fields_get(&ev->fields, "body")->len, 8);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_json_surrogates_exact)
{
	static const char *bad[][2] = {
		{ "{\"\\ud800\":1,\"\\ud801\":2}", "byte 2 holds an unpaired high surrogate" },
		{ "{\"a\":\"\\udc00\"}", "byte 6 holds an unpaired low surrogate" },
		{ "{\"a\":\"\\ud800\\u0041\"}", "unpaired high surrogate" },
		{ "{\"a\":\"x\\ud83d\"}", "unpaired high surrogate" },
		{ "{\"a\":\"\\ud83d\\ude00\\ude00\"}", "unpaired low surrogate" },
		{ "{\"a\":\"\\uDBFF\\n\"}", "unpaired high surrogate" },
	};
	struct webhook_event *ev;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_rejected_str(FORMAT_JSON, bad[i][0], bad[i][1]);
	/* pairs, in either case, are decoded exactly */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_JSON,
	    "{\"\\uD83D\\uDE00\":\"\\udbff\\udfff\",\"\\u00e9\":\"\\uffff\"}");
	ck_assert_str_eq(fields_get(&ev->fields, "\xf0\x9f\x98\x80")->value, "\xf4\x8f\xbf\xbf");
	ck_assert_str_eq(fields_get(&ev->fields, "\xc3\xa9")->value, "\xef\xbf\xbf");
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

/* Raw bytes yajl lets through (it checks only the shape of a sequence) are refused too. */
START_TEST(test_json_raw_utf8_exact)
{
	static const char *bad[][2] = {
		{ "{\"a\":\"\xc0\x80\"}", "JSON string at byte 6 is not valid UTF-8" }, /* overlong */
		{ "{\"a\":\"x\xed\xa0\x80\"}", "byte 7 is not valid UTF-8" },	     /* surrogate */
		{ "{\"\xf4\x90\x80\x80\":1}", "byte 2 is not valid UTF-8" }, /* past U+10FFFF */
		{ "{\"t\":-7,\"\xf4\x96\x92\x95ts\":6}", "not valid UTF-8" }, /* found by json-fuzz */
		{ "[{\"a\":1},{\"o\":[\"\xe0\x80\xaf\"]}]", "not valid UTF-8" }, /* nested */
	};
	struct webhook_event *ev;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_rejected_str(FORMAT_JSON, bad[i][0], bad[i][1]);
	/* the largest code point and one just below the surrogates pass as they are */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_JSON, "{\"\xf4\x8f\xbf\xbf\":\"\xed\x9f\xbf\"}");
	ck_assert_str_eq(fields_get(&ev->fields, "\xf4\x8f\xbf\xbf")->value, "\xed\x9f\xbf");
	assert_payload_roundtrip(ev);
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_json_repeated_keys)
{
	struct webhook_event *ev;

	assert_rejected_str(FORMAT_JSON, "{\"message_id\":\"a\",\"b\":1,\"message_id\":\"b\"}",
	    "JSON object 1: key 3 repeats an earlier key");
	assert_rejected_str(FORMAT_JSON, "[{\"a\":1},{\"a\":1,\"a\":1}]",
	    "JSON object 2: key 2 repeats an earlier key");
	/* an escape spelling the same name is the same name */
	assert_rejected_str(FORMAT_JSON, "{\"ab\":1,\"a\\u0062\":2}", "key 2 repeats");
	/* nested objects are kept as JSON text, as sent */
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_JSON, "{\"o\":{\"x\":1,\"x\":2},\"p\":{\"x\":3}}");
	ck_assert_str_eq(fields_get(&ev->fields, "o")->value, "{\"x\":1,\"x\":2}");
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_charset)
{
	static const char *ok[] = { NULL, "application/json", "application/json; charset=utf-8",
		"application/x-www-form-urlencoded;charset=UTF-8",
		"application/json; charset=\"utf-8\"", "application/json ; CHARSET = utf8",
		"application/json; foo=bar; charset=us-ascii", "application/json; charsets=latin1" };
	static const char *bad[] = { "application/json; charset=iso-8859-1",
		"application/x-www-form-urlencoded; charset=windows-1252",
		"application/json; charset=\"latin1\"", "application/json; charset=",
		"application/json; charset=utf-8; charset=utf-16", "application/json; charset=utf-8x" };
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
		ck_assert_msg(decode_charset_ok(ok[i]) == 1, "%s refused", ok[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(decode_charset_ok(bad[i]) == 0, "%s accepted", bad[i]);
}
END_TEST

START_TEST(test_dedupe_keys)
{
	struct webhook_event *ev;

	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST, "message_id=M&status_code=201");
	ck_assert_str_eq(ev->dedupe_key, "sms.inbound|M");
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_SMS_RECEIPT, FORMAT_POST, "message_id=M&status_code=201");
	ck_assert_str_eq(ev->dedupe_key, "sms.receipt|M|201");
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_VOICE_RECEIPT, FORMAT_POST, "message_id=M");
	ck_assert_str_eq(ev->dedupe_key, "voice.receipt|M|");
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_SMS_RECEIPT, FORMAT_POST, "message_id=&status_code=201");
	ck_assert_ptr_null(ev->dedupe_key);
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_JSON, "{\"message_id\":null,\"body\":\"x\"}");
	ck_assert_ptr_null(ev->dedupe_key);
	ck_assert_ptr_null(ev->message_id);
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_SMS_INBOUND, FORMAT_GET, "body=x");
	ck_assert_ptr_null(ev->dedupe_key);
	webhook_events_free(ev, 1);
	/* '|' in a value cannot make two different receipts share a key */
	ev = decode_one(KIND_SMS_RECEIPT, FORMAT_POST, "message_id=a%7Cb&status_code=c");
	ck_assert_str_eq(ev->dedupe_key, "sms.receipt|a\\|b|c");
	webhook_events_free(ev, 1);
	ev = decode_one(KIND_SMS_RECEIPT, FORMAT_POST, "message_id=a&status_code=b%7Cc");
	ck_assert_str_eq(ev->dedupe_key, "sms.receipt|a|b\\|c");
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_event_finish_again)
{
	struct webhook_event *ev;
	char **relays;

	ev = decode_one(KIND_SMS_INBOUND, FORMAT_POST, "message=old");
	fields_add(&ev->fields, "body", 4, "new", 3, FIELD_STRING);
	fields_add(&ev->fields, "message_id", 10, "Z", 1, FIELD_STRING);
	webhook_event_finish(ev);
	ck_assert_str_eq(ev->body, "new");
	ck_assert_str_eq(ev->dedupe_key, "sms.inbound|Z");
	ck_assert_str_eq(ev->payload,
	    "{\"message\":\"old\",\"body\":\"new\",\"message_id\":\"Z\"}");
	relays = malloc(2 * sizeof *relays);
	relays[0] = strdup("one");
	relays[1] = strdup("two");
	ev->relays = relays;
	ev->nrelays = 2;
	webhook_events_free(ev, 1);
}
END_TEST

START_TEST(test_json_quote_and_gen)
{
	struct json_gen *g;
	char *s;
	size_t len;

	s = json_quote("a\"b\\c\n\x01/\0z", 10);
	ck_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\u0001/\\u0000z\"");
	free(s);
	s = json_quote("\xed\xa0\x80x\xf5", 5);
	ck_assert_str_eq(s, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx\xef\xbf\xbd\"");
	free(s);

	g = json_gen_new();
	json_gen_map_open(g);
	json_gen_kv_string(g, "id", "evt_42");
	json_gen_kv_string(g, "none", NULL);
	json_gen_kv_integer(g, "n", -7);
	json_gen_string(g, "raw");
	ck_assert_int_eq(json_gen_raw(g, "{\"x\":[1e3,true]}"), 0);
	ck_assert_int_eq(json_gen_raw(g, "{bad"), -1);
	json_gen_string(g, "num");
	json_gen_number_raw(g, "not-a-number");
	json_gen_string(g, "list");
	json_gen_array_open(g);
	json_gen_bool(g, 1);
	json_gen_null(g);
	json_gen_number_raw(g, "-1.5e-3");
	json_gen_array_close(g);
	json_gen_map_close(g);
	s = json_gen_finish(g, &len);
	ck_assert_str_eq(s, "{\"id\":\"evt_42\",\"none\":null,\"n\":-7,\"raw\":{\"x\":[1e3,true]},"
	    "\"num\":\"not-a-number\",\"list\":[true,null,-1.5e-3]}");
	ck_assert_uint_eq(len, strlen(s));
	free(s);

	/* an unfinished document or a misused generator is refused, not returned */
	g = json_gen_new();
	json_gen_map_open(g);
	ck_assert_ptr_null(json_gen_finish(g, NULL));
	g = json_gen_new();
	json_gen_map_open(g);
	json_gen_integer(g, 1); /* a key must be a string */
	json_gen_map_close(g);
	ck_assert_ptr_null(json_gen_finish(g, NULL));
	/* abandoning a generator */
	g = json_gen_new();
	json_gen_array_open(g);
	json_gen_free(g);
	json_gen_free(NULL);
}
END_TEST

START_TEST(test_json_doc_api_samples)
{
	const struct json_node *data, *rules, *r;
	struct json_doc *doc;
	char err[128], *buf;
	long long v;
	size_t len;

	buf = slurp("api/list-sms-inbound-rules.json", &len);
	doc = json_doc_parse(buf, len, err, sizeof err);
	free(buf);
	ck_assert_msg(doc != NULL, "%s", err);
	data = json_get(json_doc_root(doc), "data");
	ck_assert_int_eq(json_as_int(json_get(json_doc_root(doc), "http_code"), &v), 0);
	ck_assert_int_eq(v, 200);
	ck_assert_int_eq(json_as_int(json_get(data, "last_page"), &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert(json_is_null(json_get(data, "next_page_url")));
	rules = json_get(data, "data");
	ck_assert_uint_eq(json_array_len(rules), 2);
	r = json_array_at(rules, 1);
	ck_assert_int_eq(json_as_int(json_get(r, "enabled"), &v), 0); /* "1" */
	ck_assert_int_eq(v, 1);
	ck_assert_str_eq(json_as_string(json_get(r, "inbound_rule_id")), "11");
	ck_assert_str_eq(json_as_string(json_get(r, "rule_name")), "forward to sales inbox");
	ck_assert(json_is_null(json_get(r, "webhook_type")));
	ck_assert_ptr_null(json_as_string(json_get(r, "webhook_type")));
	ck_assert_ptr_null(json_array_at(rules, 2));
	ck_assert_ptr_null(json_get(rules, "x"));
	ck_assert_ptr_null(json_get(NULL, "x"));
	json_doc_free(doc);

	buf = slurp("api/error-401.json", &len);
	doc = json_doc_parse(buf, len, err, sizeof err);
	free(buf);
	ck_assert_ptr_nonnull(doc);
	ck_assert(json_is_null(json_get(json_doc_root(doc), "data")));
	ck_assert_str_eq(json_as_string(json_get(json_doc_root(doc), "response_code")),
	    "UNAUTHORIZED");
	json_doc_free(doc);
}
END_TEST

START_TEST(test_json_as_int_lenient)
{
	static const struct { const char *json; int ok; long long v; } cases[] = {
		{ "[7]", 0, 7 }, { "[\"12\"]", 0, 12 }, { "[\" 3 \"]", 0, 3 },
		{ "[true]", 0, 1 }, { "[false]", 0, 0 }, { "[-4]", 0, -4 },
		{ "[3.0]", 0, 3 }, { "[1e3]", 0, 1000 }, { "[\"x\"]", -1, 0 },
		{ "[\"\"]", -1, 0 }, { "[1.5]", -1, 0 }, { "[null]", -1, 0 },
		{ "[{}]", -1, 0 }, { "[12345678901234567890]", -1, 0 },
		{ "[\"12abc\"]", -1, 0 }, { "[\"0x10\"]", -1, 0 },
	};
	struct json_doc *doc;
	long long v;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		doc = json_doc_parse(cases[i].json, strlen(cases[i].json), NULL, 0);
		ck_assert_ptr_nonnull(doc);
		v = -99;
		ck_assert_msg(json_as_int(json_array_at(json_doc_root(doc), 0), &v) == cases[i].ok,
		    "%s", cases[i].json);
		if (cases[i].ok == 0)
			ck_assert_int_eq(v, cases[i].v);
		json_doc_free(doc);
	}
	ck_assert_int_eq(json_as_int(NULL, &v), -1);
	ck_assert_ptr_null(json_doc_parse("", 0, NULL, 0));
	ck_assert_ptr_null(json_doc_root(NULL));
}
END_TEST

static Suite *
decode_suite(void)
{
	Suite *s = suite_create("decode");
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, test_kinds_table);
	tcase_add_test(tc, test_sample_sms_inbound_form);
	tcase_add_test(tc, test_sample_sms_inbound_json);
	tcase_add_test(tc, test_sample_receipts);
	tcase_add_test(tc, test_sample_voice_email);
	tcase_add_test(tc, test_legacy_aliases);
	tcase_add_test(tc, test_form_escapes);
	tcase_add_test(tc, test_form_structure);
	tcase_add_test(tc, test_form_nul_bytes);
	tcase_add_test(tc, test_form_invalid_utf8);
	tcase_add_test(tc, test_form_rejected);
	tcase_add_test(tc, test_json_array);
	tcase_add_test(tc, test_json_rejected);
	tcase_add_test(tc, test_json_too_many_events);
	tcase_add_test(tc, test_json_numbers_as_written);
	tcase_add_test(tc, test_json_null_nested_kept);
	tcase_add_test(tc, test_json_nul_in_string);
	tcase_add_test(tc, test_json_surrogates_exact);
	tcase_add_test(tc, test_json_raw_utf8_exact);
	tcase_add_test(tc, test_json_repeated_keys);
	tcase_add_test(tc, test_charset);
	tcase_add_test(tc, test_dedupe_keys);
	tcase_add_test(tc, test_event_finish_again);
	tcase_add_test(tc, test_json_quote_and_gen);
	tcase_add_test(tc, test_json_doc_api_samples);
	tcase_add_test(tc, test_json_as_int_lenient);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(decode_suite());
}
