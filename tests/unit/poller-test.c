/* SPDX-License-Identifier: ISC */
/* The pure parts of polling (poller-items.c): API rows as events of format poll, the
 * date_before bound, read-mark paths and bodies, and the backoff. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "clicksend.h"
#include "json.h"
#include "poller.h"
#include "tap.h"
#include "webhook.h"

static struct json_doc *
parse(const char *text)
{
	char err[128];
	struct json_doc *doc = json_doc_parse(text, strlen(text), err, sizeof(err));

	ck_assert_msg(doc != NULL, "%s", err);
	return doc;
}

/* ROWS of DOC's root array as events of KIND's first list. */
static size_t
events_of(const char *kind, const char *text, struct webhook_event **evs, size_t *skipped)
{
	const struct webhook_kind *k = webhook_kind_by_name(kind);
	struct json_doc *doc = parse(text);
	const struct json_node *root = json_doc_root(doc), *rows[8];
	size_t i, n = json_array_len(root);

	for (i = 0; i < n && i < 8; i++)
		rows[i] = json_array_at(root, i);
	n = poller_events(k, &k->poll[0], rows, i, evs, skipped);
	json_doc_free(doc);
	return n;
}

START_TEST(test_events)
{
	struct webhook_event *evs;
	size_t skipped, n;

	n = events_of("sms.inbound",
	    "[{\"message_id\":\"A1\",\"from\":\"+61400\",\"body\":\"hi\",\"timestamp\":1700000000,"
	    "\"user_id\":null},\"not an object\",{\"body\":\"no id\"},{\"message_id\":\"A2\","
	    "\"message\":\"legacy\",\"nested\":{\"a\":[1,2]}}]",
	    &evs, &skipped);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(skipped, 2); /* a string, and an inbound item without message_id */
	ck_assert_int_eq(evs[0].format, FORMAT_POLL);
	ck_assert_str_eq(evs[0].kind->name, "sms.inbound");
	ck_assert_str_eq(evs[0].from, "+61400");
	ck_assert_str_eq(evs[0].dedupe_key, "sms.inbound|A1");
	ck_assert_str_eq(evs[0].payload,
	    "{\"message_id\":\"A1\",\"from\":\"+61400\",\"body\":"
	    "\"hi\",\"timestamp\":1700000000,\"user_id\":null}");
	ck_assert_str_eq(evs[0].remote_addr, "");
	ck_assert_str_eq(evs[1].body, "legacy"); /* alias fallback as for webhooks */
	ck_assert_ptr_nonnull(strstr(evs[1].payload, "\"nested\":{\"a\":[1,2]}"));
	webhook_events_free(evs, n);

	/* receipts are marked by date: an item without message_id is still an event */
	n = events_of("sms.receipt", "[{\"status_code\":201,\"timestamp\":\"5\"}]", &evs, &skipped);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(skipped, 0);
	ck_assert_ptr_null(evs[0].dedupe_key);
	webhook_events_free(evs, n);

	n = events_of("sms.receipt", "[1, null]", &evs, &skipped);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(evs);
	ck_assert_uint_eq(skipped, 2);
}
END_TEST

/* The shapes of a list answer's "data": a page object, an array, [], true or null list
 * rows or nothing; anything else (a string, a number) is unreadable, not an empty list. */
START_TEST(test_page_shapes)
{
	static const struct {
		const char *text;
		int rc;
		size_t rows;
	} cases[] = {
		{ "{\"data\":{\"data\":[{\"a\":1},{\"a\":2}],\"current_page\":1,"
		  "\"last_page\":1}}",
		    0, 2 },
		{ "{\"data\":[{\"a\":1}]}", 0, 1 },
		{ "{\"data\":[]}", 0, 0 },
		{ "{\"data\":true}", 0, 0 },
		{ "{\"data\":null}", 0, 0 },
		{ "{\"data\":{\"data\":null}}", 0, 0 },
		{ "{\"data\":\"hello\"}", -1, 0 },
		{ "{\"data\":5}", -1, 0 },
		{ "{\"data\":{\"data\":\"hello\"}}", -1, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_doc *doc = parse(cases[i].text);
		const struct json_node *rows;
		long long cur, last;
		int rc = clicksend_page(json_get(json_doc_root(doc), "data"), &rows, &cur, &last);

		ck_assert_msg(rc == cases[i].rc, "%s: %d", cases[i].text, rc);
		ck_assert_msg(rc == -1 || json_array_len(rows) == cases[i].rows, "%s: %zu rows",
		    cases[i].text, json_array_len(rows));
		json_doc_free(doc);
	}
}
END_TEST

START_TEST(test_date_before)
{
	struct webhook_event *evs;
	size_t skipped, n;
	long long t;

	n = events_of("sms.receipt",
	    "[{\"message_id\":\"a\",\"timestamp\":1000},{\"message_id\":\"b\",\"timestamp\":"
	    "\"1010\"},{\"message_id\":\"c\",\"timestamp\":1005.7},{\"message_id\":\"d\","
	    "\"timestamp\":\"soon\"},{\"message_id\":\"e\"}]",
	    &evs, &skipped);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(poller_item_time(&evs[2], &t), 0);
	ck_assert_int_eq(t, 1005);
	ck_assert_int_eq(poller_item_time(&evs[3], &t), -1);
	ck_assert_int_eq(poller_item_time(&evs[4], &t), -1);
	/* newest + 1, unless the fetch began earlier than that */
	ck_assert_int_eq(poller_date_before(evs, n, 2000, 0), 1011);
	ck_assert_int_eq(poller_date_before(evs, n, 2000, 1), 1010); /* truncated */
	ck_assert_int_eq(poller_date_before(evs, n, 1010, 0), 1010);
	ck_assert_int_eq(poller_date_before(evs, 1, 2000, 0), 1001);
	ck_assert_int_eq(poller_date_before(evs + 3, 2, 2000, 0), -1); /* no timestamps: none */
	ck_assert_int_eq(poller_date_before(evs, 0, 2000, 0), -1);
	webhook_events_free(evs, n);
}
END_TEST

START_TEST(test_read_requests)
{
	const struct webhook_kind *k = webhook_kind_by_name("sms.inbound");
	char *s;

	s = poller_read_path(&k->poll[0], "4F1C-ab.9_~");
	ck_assert_str_eq(s, "/sms/inbound-read/4F1C-ab.9_~");
	free(s);
	s = poller_read_path(&k->poll[0], "a/b c?\xc3\xa9");
	ck_assert_str_eq(s, "/sms/inbound-read/a%2Fb%20c%3F%C3%A9");
	free(s);
	s = poller_read_body(1700000001);
	ck_assert_str_eq(s, "{\"date_before\":1700000001}");
	free(s);
}
END_TEST

START_TEST(test_backoff)
{
	ck_assert_uint_eq(poller_backoff_ms(30000, 0, 0.5), 30000);
	ck_assert_uint_eq(poller_backoff_ms(30000, 1, 0.5), 60000);
	ck_assert_uint_eq(poller_backoff_ms(30000, 0, 0.0), 24000);
	ck_assert_uint_le(poller_backoff_ms(30000, 0, 0.999), 36000);
	ck_assert_uint_eq(poller_backoff_ms(30000, 40, 0.999), POLLER_BACKOFF_MAX_MS);
	ck_assert_uint_ge(poller_backoff_ms(30000, 40, 0.0), POLLER_BACKOFF_MAX_MS * 8 / 10);
	ck_assert_uint_eq(poller_backoff_ms(5000, 1000, 0.5), POLLER_BACKOFF_MAX_MS);
}
END_TEST

static Suite *
poller_suite(void)
{
	Suite *s = suite_create("poller");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_page_shapes);
	tcase_add_test(tc, test_date_before);
	tcase_add_test(tc, test_read_requests);
	tcase_add_test(tc, test_backoff);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(poller_suite());
}
