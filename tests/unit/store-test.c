/* SPDX-License-Identifier: ISC */
/* Unit tests for the store: schema and migrations, event insert, duplicates, deliveries,
 * savepoints and health. The rows are read back with sqlite3 directly. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-internal.h" /* the prepared statements, for their query plans */
#include "store-schema.h"
#include "store.h"
#include "tap.h"
#include "webhook.h"
#include "xmalloc.h"

static char dir[64], path[128];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/store-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/events.db", dir);
}

static void
teardown(void)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* One integer from a query on a separate connection, as a person with sqlite3 would. */
static long long
query_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -1;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static char *
query_text(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char *v = NULL;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		v = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
event_init(struct webhook_event *ev, enum webhook_kind_id k, const char *msgid, const char *status,
    const char *dedupe)
{
	memset(ev, 0, sizeof(*ev));
	ev->kind = &webhook_kinds[k];
	ev->format = FORMAT_POST;
	snprintf(ev->remote_addr, sizeof(ev->remote_addr), "127.0.0.1");
	ev->message_id = msgid;
	ev->status_code = status;
	ev->body = "hello";
	ev->payload = (char *)"{\"message_id\":\"x\"}";
	ev->dedupe_key = (char *)dedupe;
}

static int
insert_one(struct store *st, struct webhook_event *ev)
{
	int rc;

	ck_assert_int_eq(store_begin(st), 0);
	rc = store_event_insert(st, ev);
	ck_assert_int_eq(store_commit(st), 0);
	return rc;
}

START_TEST(test_open_creates_schema)
{
	char *cause = NULL, *mode;
	struct store *st = store_open(path, 1, &cause);

	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(
	    query_int("PRAGMA user_version"), store_schema_steps[store_schema_nsteps - 1].version);
	mode = query_text("PRAGMA journal_mode");
	ck_assert_str_eq(mode, "wal");
	free(mode);
	ck_assert_int_eq(query_int("SELECT count(*) FROM sqlite_master WHERE name IN "
				   "('events','deliveries','provisioned_rules','inbound_sms',"
				   "'receipts','pending_deliveries','dead_deliveries')"),
	    7);
	store_close(st);
	/* a second open migrates nothing and keeps the version */
	st = store_open(path, 0, &cause);
	ck_assert_ptr_nonnull(st);
	store_close(st);
	ck_assert_int_eq(
	    query_int("PRAGMA user_version"), store_schema_steps[store_schema_nsteps - 1].version);
}
END_TEST

/* The outbox asks for one relay's due deliveries: the plan must walk that relay's pending
 * rows in order through deliveries_relay_due, never every pending row of every relay. */
START_TEST(test_due_uses_relay_index)
{
	char *cause = NULL, *sql;
	struct store *st = store_open(path, 1, &cause);
	sqlite3_stmt *s;
	int found = 0, sorts = 0;

	ck_assert_ptr_nonnull(st);
	xasprintf(&sql, "EXPLAIN QUERY PLAN %s", sqlite3_sql(st->stmt[STMT_DUE]));
	ck_assert_int_eq(sqlite3_prepare_v2(st->db, sql, -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *detail = (const char *)sqlite3_column_text(s, 3);

		found |= strstr(detail, "deliveries_relay_due") != NULL;
		sorts |= strstr(detail, "TEMP B-TREE") != NULL;
	}
	sqlite3_finalize(s);
	free(sql);
	ck_assert_msg(found, "the due query does not use deliveries_relay_due");
	ck_assert_msg(!sorts, "the due query sorts instead of reading the index in order");
	store_close(st);
}
END_TEST

/* An ordered relay's bookkeeping reads one conversation through deliveries_relay_key:
 * neither inserting behind an earlier delivery nor releasing the next one scans the
 * pending rows. */
START_TEST(test_order_uses_key_index)
{
	char *cause = NULL, *sql;
	struct store *st = store_open(path, 1, &cause);
	enum store_stmt which[] = { STMT_DELIVERY_INSERT, STMT_UNBLOCK_NEXT };
	size_t i;

	ck_assert_ptr_nonnull(st);
	for (i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
		sqlite3_stmt *s;
		int found = 0;

		xasprintf(&sql, "EXPLAIN QUERY PLAN %s", sqlite3_sql(st->stmt[which[i]]));
		ck_assert_int_eq(sqlite3_prepare_v2(st->db, sql, -1, &s, NULL), SQLITE_OK);
		while (sqlite3_step(s) == SQLITE_ROW)
			found |= strstr((const char *)sqlite3_column_text(s, 3),
				     "deliveries_relay_key") != NULL;
		sqlite3_finalize(s);
		ck_assert_msg(found, "%s does not use deliveries_relay_key", sql);
		free(sql);
	}
	store_close(st);
}
END_TEST

/* The outbox asks for the next due time after every attempt: behind an ordered relay's
 * backlog of blocked rows (due long ago, waiting for the head of their conversation) the
 * answer is the head's retry time, found without walking the blocked rows. */
START_TEST(test_next_due_skips_blocked_backlog)
{
	char *cause = NULL, due[32] = "";
	struct store *st = store_open(path, 1, &cause);
	sqlite3_stmt *s;
	int i, steps;

	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(store_exec(st, "BEGIN"), 0);
	for (i = 1; i <= 5000; i++) {
		char sql[320];

		snprintf(sql, sizeof(sql),
		    "INSERT INTO events (id, kind, format, received_at, payload) VALUES "
		    "(%d, 'sms.inbound', 'post', '2026-01-01T00:00:00.000Z', '{}'); "
		    "INSERT INTO deliveries (event_id, relay, next_attempt_at, order_key, blocked) "
		    "VALUES (%d, 'o', '%s', '+61400', %d)",
		    i, i, i == 1 ? "2026-01-02T00:00:00.000Z" : "2026-01-01T00:00:00.000Z", i > 1);
		ck_assert_int_eq(store_exec(st, sql), 0);
	}
	ck_assert_int_eq(store_exec(st, "COMMIT"), 0);
	ck_assert_int_eq(store_next_due(st, due), 1);
	ck_assert_str_eq(due, "2026-01-02T00:00:00.000Z");
	s = st->stmt[STMT_NEXT_DUE];
	steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
	ck_assert_msg(steps < 1000, "the next due time took %d steps over 4999 blocked rows", steps);
	store_close(st);
}
END_TEST

/* A store written by release 1 (schema version 1, tests/data/store/v1.db) opens, gets the
 * new index and keeps its rows. */
START_TEST(test_upgrade_from_v1)
{
	char *cause = NULL, cmd[512];
	struct store *st;

	snprintf(cmd, sizeof(cmd), "cp '%s/store/v1.db' '%s'", TESTS_DATA, path);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(query_int("PRAGMA user_version"), 1);
	st = store_open(path, 0, &cause);
	ck_assert_msg(st != NULL, "%s", cause ? cause : "?");
	store_close(st);
	ck_assert_int_eq(
	    query_int("PRAGMA user_version"), store_schema_steps[store_schema_nsteps - 1].version);
	ck_assert_int_eq(query_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
				   "name = 'deliveries_relay_due'"),
	    1);
	ck_assert_int_eq(query_int("SELECT count(*) FROM events"), 4);
	ck_assert_int_eq(query_int("SELECT count(*) FROM deliveries WHERE state = 'pending'"), 4);
	ck_assert_int_eq(query_int("SELECT count(*) FROM inbound_sms"), 3);
}
END_TEST

START_TEST(test_open_fails_with_cause)
{
	char *cause = NULL;
	struct store *st = store_open("/proc/nonexistent/dir/events.db", 1, &cause);

	ck_assert_ptr_null(st);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, "/proc/nonexistent/dir/events.db"));
	free(cause);
}
END_TEST

START_TEST(test_insert_and_duplicate)
{
	char *cause = NULL, *at;
	struct store *st = store_open(path, 1, &cause);
	struct webhook_event a, b;

	event_init(&a, KIND_SMS_INBOUND, "M1", NULL, "sms.inbound|M1");
	ck_assert_int_eq(insert_one(st, &a), 0);
	ck_assert_int_eq(a.duplicate, 0);
	ck_assert_int_gt(a.id, 0);
	ck_assert_int_eq(strlen(a.received_at), 24);
	event_init(&b, KIND_SMS_INBOUND, "M1", NULL, "sms.inbound|M1");
	ck_assert_int_eq(insert_one(st, &b), 0);
	ck_assert_int_eq(b.duplicate, 1);
	ck_assert_int_eq(b.id, a.id);
	ck_assert_str_eq(b.received_at, a.received_at);
	ck_assert_int_eq(query_int("SELECT count(*) FROM events"), 1);
	ck_assert_int_eq(query_int("SELECT duplicates FROM events"), 1);
	at = query_text("SELECT received_at FROM events");
	ck_assert_str_eq(at, a.received_at);
	free(at);
	store_close(st);
}
END_TEST

START_TEST(test_no_dedupe_key_never_duplicate)
{
	char *cause = NULL;
	struct store *st = store_open(path, 1, &cause);
	struct webhook_event a;

	event_init(&a, KIND_FAX_INBOUND, NULL, NULL, NULL);
	ck_assert_int_eq(insert_one(st, &a), 0);
	event_init(&a, KIND_FAX_INBOUND, NULL, NULL, NULL);
	ck_assert_int_eq(insert_one(st, &a), 0);
	ck_assert_int_eq(a.duplicate, 0);
	ck_assert_int_eq(query_int("SELECT count(*) FROM events WHERE dedupe_key IS NULL"), 2);
	store_close(st);
}
END_TEST

START_TEST(test_deliveries_with_event)
{
	char *cause = NULL, *relays[] = { "hook", "script" };
	struct store *st = store_open(path, 1, &cause);
	struct webhook_event a;
	long long pending = -1, dead = -1;
	int paused = -1;
	char err[128];

	event_init(&a, KIND_SMS_RECEIPT, "R1", "201", "sms.receipt|R1|201");
	a.relays = relays;
	a.nrelays = 2;
	ck_assert_int_eq(insert_one(st, &a), 0);
	ck_assert_int_eq(query_int("SELECT count(*) FROM deliveries WHERE state = 'pending' "
				   "AND attempts = 0 AND next_attempt_at IS NOT NULL"),
	    2);
	ck_assert_int_eq(store_health(st, &pending, &dead, err, sizeof(err)), 0);
	ck_assert_int_eq(pending, 2);
	ck_assert_int_eq(dead, 0);
	ck_assert_int_eq(store_relay_counts(st, "hook", &pending, &dead, &paused), 0);
	ck_assert_int_eq(pending, 1);
	ck_assert_int_eq(paused, 0);
	/* a duplicate adds no deliveries */
	event_init(&a, KIND_SMS_RECEIPT, "R1", "201", "sms.receipt|R1|201");
	a.relays = relays;
	a.nrelays = 2;
	ck_assert_int_eq(insert_one(st, &a), 0);
	ck_assert_int_eq(a.duplicate, 1);
	ck_assert_int_eq(query_int("SELECT count(*) FROM deliveries"), 2);
	store_close(st);
}
END_TEST

START_TEST(test_rollback_keeps_nothing)
{
	char *cause = NULL;
	struct store *st = store_open(path, 1, &cause);
	struct webhook_event a;

	event_init(&a, KIND_SMS_INBOUND, "X", NULL, "sms.inbound|X");
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_savepoint(st), 0);
	ck_assert_int_eq(store_event_insert(st, &a), 0);
	store_rollback_savepoint(st);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(query_int("SELECT count(*) FROM events"), 0);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_event_insert(st, &a), 0);
	store_rollback(st);
	ck_assert_int_eq(query_int("SELECT count(*) FROM events"), 0);
	store_close(st);
}
END_TEST

START_TEST(test_time_text_format)
{
	char buf[32];

	store_time_text(buf, 0);
	ck_assert_int_eq(strlen(buf), 24);
	ck_assert_int_eq(buf[4], '-');
	ck_assert_int_eq(buf[10], 'T');
	ck_assert_int_eq(buf[19], '.');
	ck_assert_int_eq(buf[23], 'Z');
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_creates_schema);
	tcase_add_test(tc, test_open_fails_with_cause);
	tcase_add_test(tc, test_due_uses_relay_index);
	tcase_add_test(tc, test_order_uses_key_index);
	tcase_add_test(tc, test_next_due_skips_blocked_backlog);
	tcase_add_test(tc, test_upgrade_from_v1);
	tcase_add_test(tc, test_insert_and_duplicate);
	tcase_add_test(tc, test_no_dedupe_key_never_duplicate);
	tcase_add_test(tc, test_deliveries_with_event);
	tcase_add_test(tc, test_rollback_keeps_nothing);
	tcase_add_test(tc, test_time_text_format);
	suite_add_tcase(s, tc);
	return tap_run(s);
}
