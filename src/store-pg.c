/* SPDX-License-Identifier: ISC */
/*
 * The PostgreSQL store: the connection (libpq; this is the one file that includes it),
 * reconnection with back-off, the query interface its sibling store-pg-*.c files use,
 * transactions, the schema and its migrations, the advisory lock of the node that runs
 * provisioning, polling and retention, and the backend table.
 *
 * The password comes from the URL, PGPASSFILE (libpq reads it) or the systemd credential
 * "clicksend-store-password"; it is given to libpq as a parameter and scrubbed from every
 * error text, so it reaches no log line, /healthz or process argument.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store-backend.h"
#include "store-pg-internal.h"
#include "store-schema.h"
#include "xmalloc.h"

#define PG_PREPARED_MAX	      64
#define PG_BACKOFF_MIN_MS     250
#define PG_BACKOFF_MAX_MS     10000
#define PG_PASSWORD_MAX	      1024
#define PG_LEADER_LOCK	      "7596091650384150016" /* any constant: one lock per database */
#define PG_MIGRATE_LOCK	      "7596091650384150017"
#define PG_CREDENTIAL	      "clicksend-store-password"
#define PG_STATEMENT_EXTRA_MS 3000 /* a statement may take the busy timeout and this */

struct pg_conn {
	PGconn *pg;
	char *url;
	char *password; /* from the credential, or parsed from the URL to scrub errors */
	int pass_param; /* the credential's: given to libpq as the password parameter */
	int migrated;	/* the schema is checked (a daemon may start before the server) */
	const char *prepared[PG_PREPARED_MAX]; /* statement texts, by name "s<index>" */
	int nprepared;
	int leader;		      /* this session holds the advisory lock */
	int64_t retry_at, backoff_ms; /* monotonic ms: no connection attempt before */
	char down[256];		      /* why the last connection attempt failed */
	int statement_ms;	      /* 0: wait as long as the server takes */
	char sqlstate[6];	      /* of the last statement that failed */
};

struct store_pg_rows {
	PGresult *res;
};

static const struct store_backend store_pg_backend;

static int64_t
pg_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Replaces every copy of the password in s with "***" (in place; it only shrinks). */
static void
pg_scrub(char *s, const char *password)
{
	size_t n = password != NULL ? strlen(password) : 0;
	char *p;

	if (n == 0)
		return;
	while ((p = strstr(s, password)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + n, strlen(p + n) + 1);
	}
}

void
store_pg_error(struct store *st, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	n = strlen(st->err);
	while (n > 0 && (st->err[n - 1] == '\n' || st->err[n - 1] == ' '))
		st->err[--n] = '\0';
	for (char *p = st->err; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	}
	if (st->pg->conn != NULL)
		pg_scrub(st->err, st->pg->conn->password);
}

/* The systemd credential's first line, or NULL. */
static char *
pg_credential_password(void)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char *path, buf[PG_PASSWORD_MAX];
	size_t n;
	FILE *fp;

	if (dir == NULL || *dir == '\0')
		return NULL;
	xasprintf(&path, "%s/%s", dir, PG_CREDENTIAL);
	fp = fopen(path, "re");
	free(path);
	if (fp == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] != '\0' ? xstrdup(buf) : NULL;
}

int
store_pg_url_check(const char *url)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &err);

	/* libpq's message quotes the text it could not parse, password and all: dropped */
	PQfreemem(err);
	PQconninfoFree(opts);
	return opts != NULL ? 0 : -1;
}

/* The password written in the URL itself, to scrub it from libpq's messages. */
static char *
pg_url_password(const char *url)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL), *o;
	char *pw = NULL;

	for (o = opts; o != NULL && o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && *o->val != '\0')
			pw = xstrdup(o->val);
	}
	PQconninfoFree(opts);
	return pw;
}

static void
pg_disconnect(struct pg_conn *c)
{
	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	c->nprepared = 0;
	c->leader = 0;
}

/* Defaults first, so the URL's own settings win; the credential's password last. */
static int
pg_connect(struct store *st)
{
	struct pg_conn *c = st->pg->conn;
	const char *keys[10], *vals[10];
	char app[96];
	int n = 0;

	snprintf(app, sizeof(app), "clicksend-relayd %s", st->pg->node);
	keys[n] = "connect_timeout", vals[n++] = "3";
	/* a server that vanished (no RST) fails the statement in seconds, not minutes */
	keys[n] = "keepalives_idle", vals[n++] = "5";
	keys[n] = "keepalives_interval", vals[n++] = "2";
	keys[n] = "keepalives_count", vals[n++] = "3";
	keys[n] = "tcp_user_timeout", vals[n++] = "10000";
	keys[n] = "application_name", vals[n++] = app;
	keys[n] = "dbname", vals[n++] = c->url;
	if (c->pass_param)
		keys[n] = "password", vals[n++] = c->password;
	keys[n] = NULL, vals[n] = NULL;
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
		store_pg_error(st, "cannot connect to PostgreSQL: %s",
		    c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
		pg_disconnect(c);
		return -1;
	}
	return 0;
}

static int pg_migrate(struct store *);

/* A live connection, reconnecting at most once per back-off step; the schema is applied
 * on the first connection of a daemon that started while the server was away. */
static int
pg_ready(struct store *st)
{
	struct pg_conn *c = st->pg->conn;
	int64_t now;

	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	if (c->pg != NULL)
		pg_disconnect(c);
	now = pg_mono_ms();
	if (now < c->retry_at) {
		store_pg_error(st, "%s", c->down[0] ? c->down : "PostgreSQL unreachable");
		return -1;
	}
	if (pg_connect(st) == 0 && (c->migrated || pg_migrate(st) == 0)) {
		if (c->backoff_ms > 0)
			log_info("store: reconnected to PostgreSQL");
		c->migrated = 1;
		c->backoff_ms = 0;
		c->retry_at = 0;
		return 0;
	}
	pg_disconnect(c);
	snprintf(c->down, sizeof(c->down), "%s", st->err);
	if (c->backoff_ms == 0)
		log_warnx("store: %s; reconnecting with back-off", st->err);
	c->backoff_ms = c->backoff_ms == 0 ? PG_BACKOFF_MIN_MS : c->backoff_ms * 2;
	if (c->backoff_ms > PG_BACKOFF_MAX_MS)
		c->backoff_ms = PG_BACKOFF_MAX_MS;
	c->retry_at = now + c->backoff_ms;
	return -1;
}

/*
 * The result of what was just sent, waiting at most statement_ms: a server that stopped
 * answering (hung, SIGSTOP, a partition the kernel has not noticed) fails the statement
 * instead of holding the writer, and the connection is dropped. Of a script's several
 * results the first error (or else the last result) is returned; NULL when there is none.
 */
static PGresult *
pg_wait(struct store *st)
{
	struct pg_conn *c = st->pg->conn;
	int64_t deadline = pg_mono_ms() + c->statement_ms;
	PGresult *keep = NULL, *r;

	for (;;) {
		while (PQisBusy(c->pg)) {
			struct pollfd pfd = { .fd = PQsocket(c->pg), .events = POLLIN };
			int64_t left = c->statement_ms > 0 ? deadline - pg_mono_ms() : -1;
			int n = left == -1 || left > 0 ? poll(&pfd, 1, (int)left) : 0;

			if (n == -1 && errno == EINTR)
				continue;
			if (n == 0) {
				store_pg_error(
				    st, "PostgreSQL did not answer within %d ms", c->statement_ms);
				PQclear(keep);
				pg_disconnect(c);
				return NULL;
			}
			if (n == -1 || !PQconsumeInput(c->pg))
				break; /* PQgetResult reports the broken connection */
		}
		if ((r = PQgetResult(c->pg)) == NULL)
			return keep;
		if (keep != NULL && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		PQclear(keep);
		keep = r;
		if (PQstatus(c->pg) == CONNECTION_BAD)
			return keep;
	}
}

/* The result of a query just sent (sent: what the PQsend* call returned); NULL with
 * st->err set when the send failed or nothing came back. */
static PGresult *
pg_result(struct store *st, int sent)
{
	struct pg_conn *c = st->pg->conn;
	PGresult *r;

	if (!sent) {
		store_pg_error(st, "%s", PQerrorMessage(c->pg));
		return NULL;
	}
	if ((r = pg_wait(st)) == NULL && c->pg != NULL && st->err[0] == '\0')
		store_pg_error(st, "%s", PQerrorMessage(c->pg));
	return r;
}

/* The prepared name of a static statement text, preparing it on first use. */
static const char *
pg_prepared(struct store *st, const char *sql, int n, char name[16])
{
	struct pg_conn *c = st->pg->conn;
	PGresult *r;
	int i;

	for (i = 0; i < c->nprepared; i++) {
		if (c->prepared[i] == sql) {
			snprintf(name, 16, "s%d", i);
			return name;
		}
	}
	if (c->nprepared == PG_PREPARED_MAX)
		return NULL;
	snprintf(name, 16, "s%d", c->nprepared);
	if ((r = pg_result(st, PQsendPrepare(c->pg, name, sql, n, NULL))) == NULL)
		return "";
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		store_pg_error(st, "%s", PQresultErrorMessage(r));
		PQclear(r);
		return "";
	}
	PQclear(r);
	c->prepared[c->nprepared++] = sql;
	return name;
}

static void
pg_keep_sqlstate(struct pg_conn *c, const PGresult *r)
{
	const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", code != NULL ? code : "");
}

/* 40P01 deadlock_detected, 40001 serialization_failure: another node's transaction won. */
static int
pg_retryable(struct store *st)
{
	struct pg_conn *c = st->pg->conn;

	return c != NULL && c->pg != NULL &&
	    (strcmp(c->sqlstate, "40P01") == 0 || strcmp(c->sqlstate, "40001") == 0);
}

struct store_pg_rows *
store_pg_query(struct store *st, const char *sql, int prepare, int n, const char *const *params)
{
	struct pg_conn *c = st->pg->conn;
	struct store_pg_rows *rows;
	const char *name = NULL;
	char buf[16];
	PGresult *r;
	ExecStatusType s;

	if (c == NULL || c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
		store_pg_error(st, "not connected to PostgreSQL");
		return NULL;
	}
	if (prepare && (name = pg_prepared(st, sql, n, buf)) != NULL && *name == '\0')
		return NULL;
	st->err[0] = '\0';
	c->sqlstate[0] = '\0';
	r = pg_result(st,
	    name != NULL ? PQsendQueryPrepared(c->pg, name, n, params, NULL, NULL, 0) :
			   PQsendQueryParams(c->pg, sql, n, NULL, params, NULL, NULL, 0));
	if (r == NULL)
		return NULL;
	s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		pg_keep_sqlstate(c, r);
		store_pg_error(st, "%s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	rows = xcalloc(1, sizeof(*rows));
	rows->res = r;
	return rows;
}

int
store_pg_run(struct store *st, const char *sql, int prepare, int n, const char *const *params)
{
	struct store_pg_rows *r = store_pg_query(st, sql, prepare, n, params);
	int changed;

	if (r == NULL)
		return -1;
	changed = store_pg_changed(r);
	store_pg_rows_free(r);
	return changed;
}

int
store_pg_nrows(const struct store_pg_rows *r)
{
	return PQntuples(r->res);
}

const char *
store_pg_get(const struct store_pg_rows *r, int row, int col)
{
	return PQgetisnull(r->res, row, col) ? NULL : PQgetvalue(r->res, row, col);
}

long long
store_pg_num(const struct store_pg_rows *r, int row, int col)
{
	const char *v = store_pg_get(r, row, col);

	return v != NULL ? strtoll(v, NULL, 10) : 0;
}

int
store_pg_changed(const struct store_pg_rows *r)
{
	const char *t = PQcmdTuples(r->res);

	return *t != '\0' ? atoi(t) : PQntuples(r->res);
}

void
store_pg_rows_free(struct store_pg_rows *r)
{
	if (r == NULL)
		return;
	PQclear(r->res);
	free(r);
}

/* --- Transactions. --- */

static int
pg_begin(struct store *st)
{
	st->err[0] = '\0';
	if (st->pg->conn == NULL) {
		store_pg_error(st, "the loop's view of the store cannot write");
		return -1;
	}
	if (pg_ready(st) == -1)
		return -1;
	return store_pg_run(st, "BEGIN", 1, 0, NULL) == -1 ? -1 : 0;
}

/* A COMMIT of a transaction that failed answers "ROLLBACK": that is no commit. */
static int
pg_commit(struct store *st)
{
	struct store_pg_rows *r = store_pg_query(st, "COMMIT", 1, 0, NULL);
	int ok = r != NULL && strcmp(PQcmdStatus(r->res), "COMMIT") == 0;

	if (r != NULL && !ok)
		store_pg_error(st, "the transaction was rolled back (COMMIT answered %s)",
		    PQcmdStatus(r->res));
	store_pg_rows_free(r);
	return ok ? 0 : -1;
}

static void
pg_rollback(struct store *st)
{
	struct pg_conn *c = st->pg->conn;

	if (c != NULL && c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		PQclear(pg_result(st, PQsendQuery(c->pg, "ROLLBACK")));
}

static int
pg_savepoint(struct store *st)
{
	return store_pg_run(st, "SAVEPOINT request", 1, 0, NULL) == -1 ? -1 : 0;
}

static int
pg_release(struct store *st)
{
	return store_pg_run(st, "RELEASE request", 1, 0, NULL) == -1 ? -1 : 0;
}

static void
pg_rollback_savepoint(struct store *st)
{
	struct pg_conn *c = st->pg->conn;

	if (c != NULL && c->pg != NULL)
		PQclear(pg_result(st, PQsendQuery(c->pg, "ROLLBACK TO request; RELEASE request")));
}

static const char *
pg_errmsg(struct store *st)
{
	return st->err[0] != '\0' ? st->err : "PostgreSQL error";
}

/* Rows are claimed with SKIP LOCKED, so nothing waits on another node's lock; what can
 * hang is the server itself. The daemon's handles (which set a busy timeout) bound each
 * statement; the operator tool waits as long as its query takes. */
static void
pg_set_busy_timeout(struct store *st, int ms)
{
	if (st->pg->conn != NULL)
		st->pg->conn->statement_ms = ms > 0 ? ms + PG_STATEMENT_EXTRA_MS : 0;
}

/* --- The node that runs provisioning, polling and retention. --- */

static int
pg_leader(struct store *st)
{
	struct pg_conn *c = st->pg->conn;
	struct store_pg_rows *r;
	const char *v;

	if (c == NULL || pg_ready(st) == -1)
		return -1;
	if (c->leader)
		return 1;
	if ((r = store_pg_query(
		 st, "SELECT pg_try_advisory_lock(" PG_LEADER_LOCK ")", 1, 0, NULL)) == NULL)
		return -1;
	v = store_pg_get(r, 0, 0);
	c->leader = v != NULL && strcmp(v, "t") == 0;
	store_pg_rows_free(r);
	return c->leader;
}

/* --- Schema. --- */

static int
pg_schema_version(struct store *st)
{
	struct store_pg_rows *r;
	const char *v;
	int ver;

	if ((r = store_pg_query(
		 st, "SELECT to_regclass('store_schema') IS NOT NULL", 0, 0, NULL)) == NULL)
		return -1;
	v = store_pg_get(r, 0, 0);
	ver = v != NULL && strcmp(v, "t") == 0;
	store_pg_rows_free(r);
	if (ver == 0)
		return 0;
	if ((r = store_pg_query(
		 st, "SELECT coalesce(max(version), 0) FROM store_schema", 0, 0, NULL)) == NULL)
		return -1;
	ver = (int)store_pg_num(r, 0, 0);
	store_pg_rows_free(r);
	return ver;
}

static int
pg_exec_script(struct store *st, const char *sql)
{
	PGresult *r = pg_result(st, PQsendQuery(st->pg->conn->pg, sql));
	int ok = r != NULL &&
	    (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);

	if (r != NULL && !ok)
		store_pg_error(st, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

static int
pg_apply_steps(struct store *st, int cur)
{
	char ver[16];
	const char *p[1] = { ver };
	size_t i;

	for (i = 0; i < store_pg_schema_nsteps; i++) {
		const struct store_schema_step *step = &store_pg_schema_steps[i];
		if (step->version <= cur)
			continue;
		if (pg_exec_script(st, step->sql) == -1) {
			log_warnx("store: migration %s failed: %s", step->name, st->err);
			return -1;
		}
		snprintf(ver, sizeof(ver), "%d", step->version);
		if (store_pg_run(st, "DELETE FROM store_schema", 0, 0, NULL) == -1 ||
		    store_pg_run(st, "INSERT INTO store_schema (version) VALUES ($1)", 0, 1, p) ==
			-1)
			return -1;
		log_info(
		    "store: applied %s (PostgreSQL schema version %d)", step->name, step->version);
	}
	return 0;
}

/* All steps in one transaction, under a lock so nodes starting together migrate once. */
static int
pg_migrate(struct store *st)
{
	int last = store_pg_schema_steps[store_pg_schema_nsteps - 1].version, cur;

	if (store_pg_run(st, "BEGIN", 0, 0, NULL) == -1)
		return -1;
	if (store_pg_run(st, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", 0, 0, NULL) ==
		-1 ||
	    (cur = pg_schema_version(st)) < 0)
		goto fail;
	if (cur > last) {
		store_pg_error(
		    st, "schema version %d is newer than this program knows (%d)", cur, last);
		goto fail;
	}
	if (pg_apply_steps(st, cur) == -1 || store_pg_run(st, "COMMIT", 0, 0, NULL) == -1)
		goto fail;
	return 0;
fail:
	pg_rollback(st);
	return -1;
}

/* --- Opening and closing. --- */

static struct store *
pg_store_new(const char *node)
{
	struct store *st = xcalloc(1, sizeof(*st));

	st->be = &store_pg_backend;
	st->lock_fd = -1;
	st->pg = xcalloc(1, sizeof(*st->pg));
	st->pg->node = xstrdup(node != NULL && *node != '\0' ? node : "node");
	pthread_mutex_init(&st->pg->mu, NULL);
	return st;
}

struct store *
store_pg_open(const char *url, const char *node, int lazy, char **cause)
{
	struct store *st = pg_store_new(node);
	struct pg_conn *c = xcalloc(1, sizeof(*c));

	st->pg->conn = c;
	c->url = xstrdup(url);
	if ((c->password = pg_url_password(url)) == NULL &&
	    (c->password = pg_credential_password()) != NULL)
		c->pass_param = 1;
	st->path = xstrdup("postgresql");
	if (pg_connect(st) == -1 && lazy) {
		log_warnx("store: %s; starting anyway: webhooks get 503 until it answers", st->err);
		snprintf(c->down, sizeof(c->down), "%s", st->err);
		c->backoff_ms = PG_BACKOFF_MIN_MS;
		c->retry_at = pg_mono_ms() + c->backoff_ms;
		return st;
	}
	if (c->pg == NULL) {
		xasprintf(cause, "%s", st->err);
		store_close(st);
		errno = ECONNREFUSED;
		return NULL;
	}
	if (pg_migrate(st) == -1) {
		xasprintf(cause, "PostgreSQL: %s", st->err);
		store_close(st);
		errno = 0;
		return NULL;
	}
	c->migrated = 1;
	return st;
}

/* The loop's handle: the writer's snapshot, never a connection of its own. */
static struct store *
pg_open_reader(struct store *writer, char **cause)
{
	struct store *st = pg_store_new(writer->pg->node);

	(void)cause;
	st->pg->view = 1;
	st->pg->shared = writer->pg;
	st->path = xstrdup("postgresql");
	return st;
}

static void
pg_close(struct store *st)
{
	struct pg_conn *c = st->pg->conn;

	if (c != NULL) {
		pg_disconnect(c);
		free(c->url);
		if (c->password != NULL)
			explicit_bzero(c->password, strlen(c->password));
		free(c->password);
		free(c);
	}
	store_pg_snapshot_clear(&st->pg->snap);
	pthread_mutex_destroy(&st->pg->mu);
	free(st->pg->node);
	free(st->pg);
	free(st->path);
	free(st);
}

static const struct store_backend store_pg_backend = {
	.name = "postgresql",
	.close = pg_close,
	.open_reader = pg_open_reader,
	.set_busy_timeout = pg_set_busy_timeout,
	.errmsg = pg_errmsg,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.savepoint = pg_savepoint,
	.release = pg_release,
	.rollback_savepoint = pg_rollback_savepoint,
	.event_insert = store_pg_event_insert,
	.event_seen = store_pg_event_seen,
	.health = store_pg_health,
	.probe = store_pg_probe,
	.relay_counts = store_pg_relay_counts,
	.due = store_pg_due,
	.due_rated = store_pg_due_rated,
	.delivery_record = store_pg_delivery_record,
	.unblock_next = store_pg_unblock_next,
	.paused_relays = store_pg_paused_relays,
	.relay_set_paused = store_pg_relay_set_paused,
	.relay_unorder = store_pg_relay_unorder,
	.relay_drop = store_pg_relay_drop,
	.delivery_move = store_pg_delivery_move,
	.pending_relays = store_pg_pending_relays,
	.retention = store_pg_retention,
	.next_due = store_pg_next_due,
	.provision_ok = store_pg_provision_ok,
	.provision_error = store_pg_provision_error,
	.admin_events = store_pg_admin_events,
	.admin_deliveries = store_pg_admin_deliveries,
	.admin_kind_counts = store_pg_admin_kind_counts,
	.admin_relay_counts = store_pg_admin_relay_counts,
	.admin_rules = store_pg_admin_rules,
	.admin_requeue = store_pg_admin_requeue,
	.admin_requeue_dead = store_pg_admin_requeue_dead,
	.admin_delivery_create = store_pg_admin_delivery_create,
	.admin_relay_last = store_pg_admin_relay_last,
	.retryable = pg_retryable,
	.refresh = store_pg_refresh,
	.leader = pg_leader,
};
