/* SPDX-License-Identifier: ISC */
/* The SQLite event store: opening and migrating the schema, the daemon's lock on it, the
 * prepared statements of the write path, transactions and health. The only file that
 * includes sqlite3.h along with its sibling store-*.c files. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store-backend.h"
#include "store-internal.h"
#include "store-schema.h"
#include "store.h"
#include "xmalloc.h"

static const char *store_sql[STMT_COUNT] = {
	[STMT_EVENT_INSERT] = "INSERT INTO events (kind, format, received_at, remote_addr, "
			      "message_id, from_number, to_number, body, status_code, status_text, "
			      "custom_string, payload, dedupe_key) "
			      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
			      "ON CONFLICT (dedupe_key) DO NOTHING",
	[STMT_EVENT_DUPLICATE] = "UPDATE events SET duplicates = duplicates + 1 "
				 "WHERE dedupe_key = ? RETURNING id, received_at",
	[STMT_DELIVERY_INSERT] =
	    "INSERT OR IGNORE INTO deliveries "
	    "(event_id, relay, state, attempts, next_attempt_at, order_key, "
	    "blocked) VALUES (?1, ?2, 'pending', 0, ?3, ?4, ?4 IS NOT NULL AND "
	    "EXISTS (SELECT 1 FROM deliveries WHERE relay = ?2 AND "
	    "order_key = ?4 AND state = 'pending'))",
	[STMT_HEALTH] = "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'), "
			"(SELECT count(*) FROM deliveries WHERE state = 'dead')",
	[STMT_RELAY_COUNTS] = "SELECT (SELECT count(*) FROM deliveries WHERE relay = ?1 AND "
			      "state = 'pending'), (SELECT count(*) FROM deliveries WHERE "
			      "relay = ?1 AND state = 'dead'), "
			      "(SELECT paused FROM relays WHERE name = ?1)",
	[STMT_DUE] = "SELECT d.id, d.event_id, d.attempts, d.relay, e.kind, e.format, "
		     "e.received_at, e.payload, d.next_attempt_at FROM deliveries d JOIN events e "
		     "ON e.id = d.event_id "
		     "WHERE d.relay = ? AND d.state = 'pending' AND d.blocked = 0 AND "
		     "d.next_attempt_at <= ? "
		     "ORDER BY d.next_attempt_at, d.id LIMIT ?",
	[STMT_DELIVERY_RECORD] = "UPDATE deliveries SET state = ?, attempts = attempts + 1, "
				 "next_attempt_at = ?, last_attempt_at = ?, last_result = ?, "
				 "done_at = ? WHERE id = ? AND state = 'pending' AND "
				 "next_attempt_at IS ?",
	/* relay by relay through deliveries_relay_due (a seek each, named: without ANALYZE
	 * the planner takes deliveries_due and walks every blocked row of an ordered backlog) */
	[STMT_NEXT_DUE] = "WITH RECURSIVE r(relay) AS (SELECT min(relay) FROM deliveries "
			  "INDEXED BY deliveries_relay_due WHERE state = 'pending' AND blocked = 0 "
			  "UNION ALL SELECT (SELECT min(relay) FROM deliveries INDEXED BY "
			  "deliveries_relay_due WHERE state = 'pending' AND blocked = 0 AND "
			  "relay > r.relay) FROM r WHERE r.relay IS NOT NULL) "
			  "SELECT min((SELECT min(next_attempt_at) FROM deliveries INDEXED BY "
			  "deliveries_relay_due WHERE relay = r.relay AND state = 'pending' AND "
			  "blocked = 0)) FROM r WHERE r.relay IS NOT NULL",
	[STMT_UNBLOCK_NEXT] = "UPDATE deliveries SET blocked = 0 WHERE id = (SELECT min(p.id) "
			      "FROM deliveries p JOIN deliveries d ON p.relay = d.relay AND "
			      "p.order_key = d.order_key WHERE d.id = ?1 AND p.state = 'pending')",
	[STMT_SAVEPOINT] = "SAVEPOINT request",
	[STMT_RELEASE] = "RELEASE request",
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_PAUSED] = "SELECT name, paused_at, pause_reason FROM relays WHERE paused = 1 "
			"ORDER BY name",
	[STMT_PAUSE] = "INSERT INTO relays (name, paused, paused_at, pause_reason) "
		       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET "
		       "paused = excluded.paused, paused_at = excluded.paused_at, "
		       "pause_reason = excluded.pause_reason",
	[STMT_RETENTION] = "DELETE FROM events WHERE id IN (SELECT e.id FROM events e "
			   "WHERE e.received_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d "
			   "WHERE d.event_id = e.id AND d.state <> 'done') LIMIT ?)",
};

void
store_time_text(char buf[32], int64_t offset_ms)
{
	struct timespec ts;
	struct tm tm;
	int64_t ms;
	size_t n;
	time_t t;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + offset_ms;
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

int64_t
store_time_until(const char *t)
{
	struct timespec ts;
	struct tm tm = { 0 };
	unsigned ms = 0;
	const char *rest;

	if ((rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return 0;
	if (sscanf(rest, ".%3uZ", &ms) != 1)
		ms = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)timegm(&tm) - ts.tv_sec) * 1000 + ms - ts.tv_nsec / 1000000;
}

int
store_exec(struct store *st, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		snprintf(st->err, sizeof(st->err), "%s", err ? err : sqlite3_errmsg(st->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int
store_user_version(struct store *st)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* The store writer's probe, inside its transaction: rewriting the schema version changes
 * nothing anyone sees but is a real page write, so the commit shows a read-only file, a
 * full disk or another process's lock. */
int
store_sqlite_probe(struct store *st)
{
	char sql[64];
	int v;

	if ((v = store_user_version(st)) < 0) {
		snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
		return -1;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	return store_exec(st, sql);
}

/* Each step runs in its own transaction together with the user_version bump. */
static int
store_migrate(struct store *st)
{
	char sql[64];
	size_t i;
	int cur;

	if ((cur = store_user_version(st)) < 0)
		return -1;
	if (store_schema_nsteps > 0 && cur > store_schema_steps[store_schema_nsteps - 1].version) {
		snprintf(st->err, sizeof(st->err),
		    "schema version %d is newer than this program knows (%d)", cur,
		    store_schema_steps[store_schema_nsteps - 1].version);
		return -1;
	}
	for (i = 0; i < store_schema_nsteps; i++) {
		const struct store_schema_step *step = &store_schema_steps[i];
		if (step->version <= cur)
			continue;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", step->version);
		if (store_exec(st, "BEGIN IMMEDIATE") == -1)
			return -1;
		if (store_exec(st, step->sql) == -1 || store_exec(st, sql) == -1) {
			log_warnx("store: migration %s failed: %s", step->name, st->err);
			store_exec(st, "ROLLBACK");
			return -1;
		}
		if (store_exec(st, "COMMIT") == -1)
			return -1;
		log_info("store: applied %s (schema version %d)", step->name, step->version);
		cur = step->version;
	}
	return 0;
}

static int
store_pragmas(struct store *st, int synchronous_full)
{
	sqlite3_busy_timeout(st->db, 5000);
	if (store_exec(st, "PRAGMA journal_mode = WAL") == -1 ||
	    store_exec(st, "PRAGMA foreign_keys = ON") == -1)
		return -1;
	return store_exec(
	    st, synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

static int
store_prepare(struct store *st)
{
	int i;

	for (i = 0; i < STMT_COUNT; i++) {
		if (store_sql[i] == NULL)
			continue;
		if (sqlite3_prepare_v3(st->db, store_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
			&st->stmt[i], NULL) != SQLITE_OK) {
			snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
			return -1;
		}
	}
	return 0;
}

/* The state directory normally exists (systemd StateDirectory=); create one level. */
static void
store_make_parent(const char *path)
{
	char *copy = xstrdup(path), *dir = dirname(copy);

	if (mkdir(dir, 0750) == -1 && errno != EEXIST)
		log_debug("store: mkdir %s: %s", dir, strerror(errno));
	free(copy);
}

/* The pid a running daemon wrote into its lock file, or 0 when unknown. */
static long
store_lock_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/*
 * One daemon per store: an open file description lock on "<path>.lock", held until the
 * store closes (or the process dies). A separate file, because SQLite closes and reopens
 * the database file's descriptors, and a lock on it would interfere with its own. The
 * file (beside the store's real path) keeps the holder's pid for the message of the next one; it is never removed.
 * 0, -1 on an error, -2 when another process holds the lock.
 */
static int
store_lock(struct store *st, char **cause)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char *lock, pid[32], *real = realpath(st->path, NULL);
	long holder;
	int busy = 0;

	/* a symbolic link to the store shares the lock of the file it names */
	xasprintf(&lock, "%s.lock", real != NULL ? real : st->path);
	free(real);
	if ((st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		xasprintf(
		    cause, "%s: cannot open the lock file %s: %s", st->path, lock, strerror(errno));
	} else if (fcntl(st->lock_fd, F_OFD_SETLK, &fl) == -1) {
		if ((holder = store_lock_holder(st->lock_fd)) > 0)
			snprintf(pid, sizeof(pid), "pid %ld, ", holder);
		else
			pid[0] = '\0';
		xasprintf(cause, "%s: in use by another clicksend-relayd (%slock file %s)",
		    st->path, pid, lock);
		busy = 1;
	} else {
		snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(st->lock_fd, 0) == -1 ||
		    pwrite(st->lock_fd, pid, strlen(pid), 0) == -1)
			log_debug("store: %s: %s", lock, strerror(errno));
		free(lock);
		return 0;
	}
	free(lock);
	return busy ? -2 : -1;
}

/* LOCK: the daemon's writer connection, which takes the store's lock and, with
 * synchronous = FULL, writes the WAL through the gathering VFS (store-walbuf.c). */
static struct store *
store_open_with(const char *path, int synchronous_full, int lock, char **cause)
{
	struct store *st = xcalloc(1, sizeof(*st));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, rc;
	const char *vfs;

	st->be = &store_sqlite_backend;
	st->path = xstrdup(path);
	st->lock_fd = -1;
	store_make_parent(path);
	if (lock && (rc = store_lock(st, cause)) < 0) {
		store_sqlite_close(st);
		errno = rc == -2 ? EBUSY : 0;
		return NULL;
	}
	vfs = lock && synchronous_full ? store_walbuf_vfs() : NULL;
	if (sqlite3_open_v2(path, &st->db, flags, vfs) != SQLITE_OK) {
		xasprintf(cause, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
		store_sqlite_close(st);
		errno = 0;
		return NULL;
	}
	sqlite3_extended_result_codes(st->db, 1);
	if (store_pragmas(st, synchronous_full) == -1 || store_migrate(st) == -1 ||
	    store_prepare(st) == -1) {
		xasprintf(cause, "%s: %s", path, st->err[0] ? st->err : sqlite3_errmsg(st->db));
		store_sqlite_close(st);
		errno = 0;
		return NULL;
	}
	return st;
}

struct store *
store_open(const char *path, int synchronous_full, char **cause)
{
	return store_open_with(path, synchronous_full, 0, cause);
}

/* The daemon's writer connection: the store's lock, and checkpoints on a thread. */
struct store *
store_open_daemon(const char *path, int synchronous_full, char **cause)
{
	struct store *st = store_open_with(path, synchronous_full, 1, cause);

	if (st != NULL)
		st->ckpt = store_ckpt_start(st);
	return st;
}

/* The daemon loop's own connection beside the writer's. */
static struct store *
store_sqlite_open_reader(struct store *writer, char **cause)
{
	return store_open(writer->path, 1, cause);
}

void
store_sqlite_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	store_ckpt_stop(st, st->ckpt);
	for (i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL)
		sqlite3_close_v2(st->db);
	if (st->lock_fd != -1)
		close(st->lock_fd);
	free(st->path);
	free(st);
}

void
store_sqlite_set_busy_timeout(struct store *st, int ms)
{
	sqlite3_busy_timeout(st->db, ms);
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

const char *
store_sqlite_errmsg(struct store *st)
{
	return st->err[0] ? st->err : sqlite3_errmsg(st->db);
}

/* A prepared statement that returns no rows, run once: the writer's per-item savepoints
 * and per-batch BEGIN and COMMIT are not parsed again each time. */
static int
store_run(struct store *st, enum store_stmt which)
{
	sqlite3_stmt *s = st->stmt[which];
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

int
store_sqlite_begin(struct store *st)
{
	st->err[0] = '\0';
	return store_run(st, STMT_BEGIN);
}

/* Pages this connection has written so far (to the WAL or the database file). */
static int
store_pages_written(struct store *st)
{
	int cur = 0, hi = 0;

	sqlite3_db_status(st->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 0);
	return cur;
}

/* Notes whether the COMMIT wrote anything: BEGIN IMMEDIATE makes every batch a write
 * transaction, so only the page count tells a batch that read from one that wrote. */
int
store_sqlite_commit(struct store *st)
{
	int before = store_pages_written(st);

	st->commit_wrote = 0;
	if (store_run(st, STMT_COMMIT) == -1) {
		/* A failed COMMIT may leave the transaction open: end it. */
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	st->commit_wrote = store_pages_written(st) != before;
	return 0;
}

static int
store_sqlite_wrote(struct store *st)
{
	return st->commit_wrote;
}

void
store_sqlite_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int
store_sqlite_savepoint(struct store *st)
{
	return store_run(st, STMT_SAVEPOINT);
}

int
store_sqlite_release(struct store *st)
{
	return store_run(st, STMT_RELEASE);
}

void
store_sqlite_rollback_savepoint(struct store *st)
{
	sqlite3_exec(st->db, "ROLLBACK TO request; RELEASE request", NULL, NULL, NULL);
}

/* Binds text or NULL; SQLITE_TRANSIENT is not needed as the event outlives the step. */
void
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

int
store_step_done(struct store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		return -1;
	}
	return rc;
}

const struct store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open_reader = store_sqlite_open_reader,
	.close = store_sqlite_close,
	.set_busy_timeout = store_sqlite_set_busy_timeout,
	.errmsg = store_sqlite_errmsg,
	.begin = store_sqlite_begin,
	.commit = store_sqlite_commit,
	.wrote = store_sqlite_wrote,
	.rollback = store_sqlite_rollback,
	.savepoint = store_sqlite_savepoint,
	.release = store_sqlite_release,
	.rollback_savepoint = store_sqlite_rollback_savepoint,
	.event_insert = store_sqlite_event_insert,
	.event_seen = store_sqlite_event_seen,
	.health = store_sqlite_health,
	.probe = store_sqlite_probe,
	.relay_counts = store_sqlite_relay_counts,
	.due = store_sqlite_due,
	.delivery_record = store_sqlite_delivery_record,
	.unblock_next = store_sqlite_unblock_next,
	.paused_relays = store_sqlite_paused_relays,
	.relay_set_paused = store_sqlite_relay_set_paused,
	.relay_unorder = store_sqlite_relay_unorder,
	.relay_drop = store_sqlite_relay_drop,
	.delivery_move = store_sqlite_delivery_move,
	.pending_relays = store_sqlite_pending_relays,
	.retention = store_sqlite_retention,
	.next_due = store_sqlite_next_due,
	.provision_ok = store_sqlite_provision_ok,
	.provision_error = store_sqlite_provision_error,
	.admin_events = store_sqlite_admin_events,
	.admin_deliveries = store_sqlite_admin_deliveries,
	.admin_kind_counts = store_sqlite_admin_kind_counts,
	.admin_relay_counts = store_sqlite_admin_relay_counts,
	.admin_rules = store_sqlite_admin_rules,
	.admin_requeue = store_sqlite_admin_requeue,
	.admin_requeue_dead = store_sqlite_admin_requeue_dead,
	.admin_delivery_create = store_sqlite_admin_delivery_create,
	.admin_relay_last = store_sqlite_admin_relay_last,
};
