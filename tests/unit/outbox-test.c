/* SPDX-License-Identifier: ISC */
/* Unit tests for the outbox's retry arithmetic, the relay routing rules and the relay
 * controls (rate window, pause_after streak). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "outbox.h"
#include "relay-ctl.h"
#include "route.h"
#include "tap.h"

static const uint64_t schedule[] = { 5000, 30000, 120000 };

START_TEST(test_delay_follows_schedule)
{
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 1, 0, 0), 5000);
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 2, 0, 0), 30000);
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 3, 0, 0), 120000);
}
END_TEST

START_TEST(test_delay_exhausted)
{
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 4, 0, 0), 0);
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 0, 0, 0), 0);
}
END_TEST

START_TEST(test_delay_jitter_bounds)
{
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 1, 0, 200), 6000);
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 1, 0, -200), 4000);
}
END_TEST

START_TEST(test_delay_retry_after)
{
	/* Retry-After longer than the step wins, bounded by the longest step */
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 1, 60000, 0), 60000);
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 1, 3600000, 0), 120000);
	/* a shorter one does not shorten the step */
	ck_assert_uint_eq(outbox_retry_delay(schedule, 3, 2, 1000, 0), 30000);
}
END_TEST

static struct webhook_event
event_of(enum webhook_kind_id k, const char *from, const char *to, const char *body)
{
	struct webhook_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = &webhook_kinds[k];
	ev.from = from;
	ev.to = to;
	ev.body = body;
	return ev;
}

START_TEST(test_route_kinds_and_globs)
{
	struct config_relay r = { .name = (char *)"r", .kinds = 1u << KIND_SMS_INBOUND };
	struct webhook_event ev = event_of(KIND_SMS_INBOUND, "+61400111222", "+6111", "STOP now");

	ck_assert_int_eq(route_match(&r, &ev), 1);
	ev.kind = &webhook_kinds[KIND_SMS_RECEIPT];
	ck_assert_int_eq(route_match(&r, &ev), 0);
	ev.kind = &webhook_kinds[KIND_SMS_INBOUND];
	r.match_from = (char *)"+61400*";
	ck_assert_int_eq(route_match(&r, &ev), 1);
	r.match_from = (char *)"+44*";
	ck_assert_int_eq(route_match(&r, &ev), 0);
	r.match_from = NULL;
	r.match_body = (char *)"stop*";
	ck_assert_int_eq(route_match(&r, &ev), 1); /* case-insensitive */
	r.match_to = (char *)"+6111";
	ck_assert_int_eq(route_match(&r, &ev), 1);
}
END_TEST

START_TEST(test_route_missing_field_never_matches)
{
	struct config_relay r = { .name = (char *)"r", .kinds = ~0u, .match_body = (char *)"*" };
	struct webhook_event ev = event_of(KIND_SMS_RECEIPT, NULL, NULL, NULL);

	ck_assert_int_eq(route_match(&r, &ev), 0);
	r.match_body = NULL;
	ck_assert_int_eq(route_match(&r, &ev), 1);
}
END_TEST

START_TEST(test_route_event_lists_relays)
{
	struct config_relay rs[2] = {
		{ .name = (char *)"all", .kinds = ~0u },
		{ .name = (char *)"faxes", .kinds = 1u << KIND_FAX_INBOUND },
	};
	struct config cfg = { .relays = rs, .nrelays = 2 };
	struct webhook_event ev = event_of(KIND_FAX_INBOUND, "+1", "+2", NULL);

	route_event(&cfg, &ev);
	ck_assert_uint_eq(ev.nrelays, 2);
	ck_assert_str_eq(ev.relays[0], "all");
	ck_assert_str_eq(ev.relays[1], "faxes");
	webhook_event_free(&ev);
}
END_TEST

/* rate = 3/s: three starts fill the window; the fourth waits until the first leaves it. */
START_TEST(test_rate_window)
{
	struct config_relay rl = { .name = (char *)"r", .rate = 3, .rate_window_ms = 1000 };
	struct relay_ctl *c = relay_ctl_new();
	int64_t wait;
	int i;

	for (i = 0; i < 3; i++) {
		ck_assert_uint_eq(relay_ctl_allowance(c, &rl, 100 + i * 10, &wait), 3 - i);
		relay_ctl_started(c, &rl, 100 + i * 10);
	}
	ck_assert_uint_eq(relay_ctl_allowance(c, &rl, 500, &wait), 0);
	ck_assert_int_eq(wait, 601); /* the first start (100) leaves the window after 1100 */
	ck_assert_uint_eq(relay_ctl_allowance(c, &rl, 1100, &wait), 1);
	relay_ctl_free(c);
}
END_TEST

/* pause_after: three failures spanning it pause the relay; after a resume (the relays
 * table read without it) the old streak no longer counts: one more failure is not
 * enough, a new streak of pause_after is. */
START_TEST(test_pause_after_streak)
{
	struct config_relay rl = { .name = (char *)"f", .pause_after_ms = 2000 };
	struct relay_ctl *c = relay_ctl_new();
	char since[32] = "";

	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 0, "T0", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 1000, "T1", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 2500, "T2", since), 1);
	ck_assert_str_eq(since, "T0");
	ck_assert_int_eq(relay_ctl_paused(c, "f"), 1);
	relay_ctl_paused_clear(c);
	relay_ctl_paused_mark(c, "f"); /* still paused in the table */
	relay_ctl_paused_done(c);
	relay_ctl_paused_clear(c); /* resumed */
	relay_ctl_paused_done(c);
	ck_assert_int_eq(relay_ctl_paused(c, "f"), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 9000, "T9", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 10000, "T10", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 11000, "T11", since), 1);
	ck_assert_str_eq(since, "T9");
	/* a success ends a streak */
	relay_ctl_paused_clear(c);
	relay_ctl_paused_done(c);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 20000, "T20", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 1, 21000, "T21", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 30000, "T30", since), 0);
	ck_assert_int_eq(relay_ctl_outcome(c, &rl, 0, 31000, "T31", since), 0);
	relay_ctl_free(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("outbox");

	tcase_add_test(tc, test_delay_follows_schedule);
	tcase_add_test(tc, test_delay_exhausted);
	tcase_add_test(tc, test_delay_jitter_bounds);
	tcase_add_test(tc, test_delay_retry_after);
	tcase_add_test(tc, test_route_kinds_and_globs);
	tcase_add_test(tc, test_route_missing_field_never_matches);
	tcase_add_test(tc, test_route_event_lists_relays);
	tcase_add_test(tc, test_rate_window);
	tcase_add_test(tc, test_pause_after_streak);
	suite_add_tcase(s, tc);
	return tap_run(s);
}
