/* SPDX-License-Identifier: ISC */
/* Unit tests for the VFS that gathers WAL writes (store-walbuf.c): what it writes reads
 * back, on its own connection and on another one with the default VFS, in transactions
 * far larger than its buffer and in ones rolled back; a COMMIT costs a few write system
 * calls, not two per page; and the daemon's writer connection uses it with synchronous =
 * FULL only. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"
#include "store.h"
#include "tap.h"

static char dir[64], path[128];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/walbuf-test-XXXXXX");
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

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		ck_abort_msg("%s: %s", sql, err != NULL ? err : "?");
}

static long long
query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	long long v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static const char *
query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *s;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

/* A connection through the gathering VFS, in WAL mode with synchronous = FULL, a small
 * page cache (so that big transactions spill frames and read them back) and a table
 * with a random-keyed index, as the events' message ids are. */
static sqlite3 *
open_walbuf(void)
{
	const char *vfs = store_walbuf_vfs();
	sqlite3 *db = NULL;

	ck_assert_ptr_nonnull(vfs);
	ck_assert_int_eq(sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs),
	    SQLITE_OK);
	exec_ok(db,
	    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	    "PRAGMA cache_size = 50; PRAGMA wal_autocheckpoint = 0;"
	    "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT, v BLOB);"
	    "CREATE INDEX IF NOT EXISTS t_k ON t(k)");
	return db;
}

static sqlite3 *
open_plain(void)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	return db;
}

/* Inserts N rows of 1000 random bytes with random keys. */
static void
insert_rows(sqlite3 *db, int n)
{
	char sql[200];

	snprintf(sql, sizeof(sql),
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d) "
	    "INSERT INTO t (k, v) SELECT hex(randomblob(16)), randomblob(1000) FROM c",
	    n);
	exec_ok(db, sql);
}

/* One transaction of some 8 MB, 64 times the buffer and 40 times the page cache: the
 * rows and the index read back whole on both connections, and the file is sound. */
START_TEST(big_transaction_reads_back)
{
	sqlite3 *w = open_walbuf(), *r;
	char ok[32];

	exec_ok(w, "BEGIN");
	insert_rows(w, 8000);
	ck_assert_int_eq(query_int(w, "SELECT count(*) FROM t"), 8000);
	ck_assert_int_eq(query_int(w, "SELECT count(*) FROM t INDEXED BY t_k WHERE k > ''"), 8000);
	exec_ok(w, "COMMIT");
	r = open_plain();
	ck_assert_int_eq(query_int(r, "SELECT count(*) FROM t"), 8000);
	ck_assert_int_eq(query_int(r, "SELECT sum(length(v)) FROM t"), 8000 * 1000);
	ck_assert_str_eq(query_text(r, "PRAGMA integrity_check", ok, sizeof(ok)), "ok");
	sqlite3_close(r);
	sqlite3_close(w);
}
END_TEST

/* Every COMMIT is seen at once by a reader on the default VFS; a rolled-back transaction
 * as big as the buffer leaves nothing, and the writes after it land. */
START_TEST(commits_seen_rollbacks_gone)
{
	sqlite3 *w = open_walbuf(), *r = open_plain();
	char ok[32];
	int i;

	for (i = 1; i <= 50; i++) {
		exec_ok(w, "BEGIN");
		insert_rows(w, 7);
		exec_ok(w, "COMMIT");
		ck_assert_int_eq(query_int(r, "SELECT count(*) FROM t"), i * 7);
	}
	exec_ok(w, "BEGIN");
	insert_rows(w, 500);
	exec_ok(w, "ROLLBACK");
	ck_assert_int_eq(query_int(w, "SELECT count(*) FROM t"), 350);
	exec_ok(w, "BEGIN");
	insert_rows(w, 3);
	exec_ok(w, "COMMIT");
	ck_assert_int_eq(query_int(r, "SELECT count(*) FROM t"), 353);
	exec_ok(w, "PRAGMA wal_checkpoint(TRUNCATE)");
	ck_assert_int_eq(query_int(r, "SELECT count(*) FROM t"), 353);
	ck_assert_str_eq(query_text(r, "PRAGMA integrity_check", ok, sizeof(ok)), "ok");
	sqlite3_close(r);
	sqlite3_close(w);
}
END_TEST

/* Write system calls of this process so far (Linux task I/O accounting), or -1. */
static long long
write_syscalls(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	long long n = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "syscw: %lld", &n) == 1)
			break;
	}
	fclose(f);
	return n;
}

static int
wal_frames_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db, (void)name;
	*(int *)arg = frames;
	return SQLITE_OK;
}

/* A COMMIT of some 80 pages (two writes each through SQLite's own VFS: 160 or more) takes
 * a handful of write system calls: the gathered frames, at 31 pages a write. */
START_TEST(commit_takes_few_writes)
{
	sqlite3 *w = open_walbuf();
	long long before, after;
	int frames = 0, first;

	if (write_syscalls() < 0) {
		sqlite3_close(w);
		return; /* no task I/O accounting in this kernel: nothing to count */
	}
	sqlite3_wal_hook(w, wal_frames_hook, &frames);
	exec_ok(w, "PRAGMA cache_size = 2000");
	exec_ok(w, "BEGIN");
	insert_rows(w, 300);
	exec_ok(w, "COMMIT");
	first = frames;
	exec_ok(w, "BEGIN");
	insert_rows(w, 300);
	before = write_syscalls();
	exec_ok(w, "COMMIT");
	after = write_syscalls();
	ck_assert_int_gt(frames - first, 60);
	ck_assert_int_le(after - before, 8);
	sqlite3_close(w);
}
END_TEST

static const char *
vfs_name(struct store *st)
{
	sqlite3_vfs *vfs = NULL;

	ck_assert_int_eq(
	    sqlite3_file_control(st->db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs), SQLITE_OK);
	ck_assert_ptr_nonnull(vfs);
	return vfs->zName;
}

/* The daemon's writer connection gathers with synchronous = FULL, and not with NORMAL
 * (SQLite does not sync the WAL at each COMMIT then); other connections never do. */
START_TEST(daemon_writer_uses_it_when_full)
{
	char *cause = NULL;
	struct store *st;

	st = store_open_daemon(path, 1, &cause);
	ck_assert_msg(st != NULL, "%s", cause != NULL ? cause : "?");
	ck_assert_str_eq(vfs_name(st), "clicksend-walbuf");
	store_close(st);
	st = store_open(path, 1, &cause);
	ck_assert_ptr_nonnull(st);
	ck_assert_str_ne(vfs_name(st), "clicksend-walbuf");
	store_close(st);
	st = store_open_daemon(path, 0, &cause);
	ck_assert_ptr_nonnull(st);
	ck_assert_str_ne(vfs_name(st), "clicksend-walbuf");
	store_close(st);
}
END_TEST

static Suite *
walbuf_suite(void)
{
	Suite *s = suite_create("store-walbuf");
	TCase *tc = tcase_create("walbuf");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, big_transaction_reads_back);
	tcase_add_test(tc, commits_seen_rollbacks_gone);
	tcase_add_test(tc, commit_takes_few_writes);
	tcase_add_test(tc, daemon_writer_uses_it_when_full);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(walbuf_suite());
}
