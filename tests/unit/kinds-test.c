/* SPDX-License-Identifier: ISC */
/* Every webhook kind walked through every table that names kinds: its row (name, path,
 * automation rule), lookups, decoding, metrics, provisioning paths and the config's
 * provision key, so that a kind added as one enum value and one row works everywhere. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "decode.h"
#include "metrics.h"
#include "provision.h"
#include "tap.h"
#include "webhook.h"

static char conf_path[64];

static struct config *
load_provision(const char *kind)
{
	char dir[] = "/tmp/kinds-test.XXXXXX";
	FILE *f;
	struct config *c;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(conf_path, sizeof(conf_path), "%s/t.conf", dir);
	ck_assert_ptr_nonnull(f = fopen(conf_path, "w"));
	fprintf(f,
	    "[server]\nlisten = 127.0.0.1:8080\n"
	    "[store]\npath = %s/events.db\n[clicksend]\npublic_url = https://hooks.example.com\n"
	    "provision = %s\n",
	    dir, kind);
	fclose(f);
	c = config_load(conf_path);
	unlink(conf_path);
	rmdir(dir);
	return c;
}

START_TEST(test_rows)
{
	int i, j;

	for (i = 0; i < KIND_COUNT; i++) {
		const struct webhook_kind *k = &webhook_kinds[i];

		ck_assert_int_eq(k->id, i);
		ck_assert_ptr_nonnull(k->name);
		ck_assert_ptr_nonnull(k->path);
		ck_assert_msg(k->path[0] == '/', "%s: path %s", k->name, k->path);
		ck_assert_ptr_eq(webhook_kind_by_name(k->name), k);
		ck_assert_ptr_eq(webhook_kind_by_path(k->path), k);
		ck_assert_int_eq(k->receipt, strstr(k->name, ".receipt") != NULL);
		for (j = 0; j < i; j++) {
			ck_assert_str_ne(webhook_kinds[j].name, k->name);
			ck_assert_str_ne(webhook_kinds[j].path, k->path);
		}
	}
}
END_TEST

/* A kind with an automation endpoint has all a rule needs; both lookups agree. */
START_TEST(test_rules)
{
	int i;

	for (i = 0; i < KIND_COUNT; i++) {
		const struct webhook_rule *r = &webhook_kinds[i].rule;

		ck_assert_ptr_eq(provision_rules_path((enum webhook_kind_id)i), r->rules_path);
		ck_assert_ptr_eq(provision_test_path((enum webhook_kind_id)i), r->test_path);
		if (r->rules_path == NULL) {
			ck_assert_ptr_null(r->test_path);
			continue;
		}
		ck_assert_msg(
		    strncmp(r->rules_path, "/automations/", 13) == 0, "%s", r->rules_path);
		ck_assert_ptr_nonnull(r->id_field);
		ck_assert_msg(
		    r->match != 0, "%s: a rule matches on something", webhook_kinds[i].name);
	}
}
END_TEST

/* A polled kind's lists: GET paths with a read path beside them; the four of
 * clicksend-relayd(8), Polling. */
START_TEST(test_poll_lists)
{
	int i, j, pollable = 0;

	for (i = 0; i < KIND_COUNT; i++) {
		const struct webhook_kind *k = &webhook_kinds[i];

		pollable += webhook_kind_pollable(k);
		for (j = 0; j < WEBHOOK_POLL_LISTS && k->poll[j].list != NULL; j++) {
			ck_assert_ptr_nonnull(k->poll[j].read);
			ck_assert_msg(strncmp(k->poll[j].read, k->poll[j].list,
					  strlen(k->poll[j].list)) == 0 &&
				strcmp(k->poll[j].read + strlen(k->poll[j].list), "-read") == 0,
			    "%s: read %s", k->name, k->poll[j].read);
			ck_assert_int_eq(k->poll[j].by_id, !k->receipt);
		}
	}
	ck_assert_int_eq(pollable, 4);
	ck_assert(webhook_kind_pollable(webhook_kind_by_name("sms.inbound")));
	ck_assert(webhook_kind_pollable(webhook_kind_by_name("fax.receipt")));
	ck_assert(!webhook_kind_pollable(webhook_kind_by_name("fax.inbound")));
	ck_assert(!webhook_kind_pollable(webhook_kind_by_name("email.receipt")));
	ck_assert_int_eq(webhook_format_parse("poll"), -1);
	ck_assert_str_eq(webhook_format_name(FORMAT_POLL), "poll");
}
END_TEST

/* provision = KIND loads for a kind with a rule and is a FILE:LINE error for one without. */
START_TEST(test_config_provision)
{
	int i;

	for (i = 0; i < KIND_COUNT; i++) {
		const struct webhook_kind *k = &webhook_kinds[i];
		struct config *c = load_provision(k->name);

		if (k->rule.rules_path != NULL) {
			ck_assert_msg(c != NULL, "provision = %s refused", k->name);
			ck_assert_uint_eq(c->provision, 1u << i);
			config_free(c);
		} else
			ck_assert_msg(c == NULL, "provision = %s (no rule) accepted", k->name);
	}
}
END_TEST

/* Each kind decodes in each format and is counted under its name in /metrics. */
START_TEST(test_decode_and_metrics)
{
	static const char *const docs[FORMAT_COUNT] = {
		[FORMAT_GET] = "message_id=m1&status_code=201",
		[FORMAT_POST] = "message_id=m1&status_code=201",
		[FORMAT_JSON] = "{\"message_id\":\"m1\",\"status_code\":\"201\"}",
	};
	char err[256], want[160], *doc;
	int i, f;

	metrics_reset();
	for (i = 0; i < KIND_COUNT; i++) {
		for (f = 0; f < FORMAT_POLL; f++) { /* poll is not a webhook's format */
			struct webhook_event *evs;
			int n = decode_events(&webhook_kinds[i], (enum webhook_format)f, docs[f],
			    strlen(docs[f]), &evs, err, sizeof(err));

			ck_assert_msg(n == 1, "%s %s: %s", webhook_kinds[i].name,
			    webhook_format_name((enum webhook_format)f), err);
			ck_assert_ptr_eq(evs[0].kind, &webhook_kinds[i]);
			ck_assert_str_eq(evs[0].message_id, "m1");
			ck_assert_ptr_nonnull(evs[0].dedupe_key);
			metrics_event_received(evs[0].kind->id, evs[0].format);
			webhook_events_free(evs, (size_t)n);
		}
	}
	doc = metrics_render(NULL, 0, NULL);
	for (i = 0; i < KIND_COUNT; i++) {
		snprintf(want, sizeof(want),
		    "clicksend_relay_events_received_total{kind=\"%s\",format=\"json\"} 1",
		    webhook_kinds[i].name);
		ck_assert_msg(strstr(doc, want) != NULL, "metrics lack %s", want);
	}
	free(doc);
}
END_TEST

static Suite *
kinds_suite(void)
{
	Suite *s = suite_create("kinds");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_rows);
	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_poll_lists);
	tcase_add_test(tc, test_config_provision);
	tcase_add_test(tc, test_decode_and_metrics);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(kinds_suite());
}
