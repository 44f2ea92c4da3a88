/* SPDX-License-Identifier: ISC */
/* The provisioned_rules queries: one upsert per kind after each provisioning result.
 * Statements are prepared per call: a handful of rows per start or reload. */
#include <stdio.h>

#include "store-internal.h"
#include "store-provision.h"
#include "store.h"

/* Prepares SQL, binds nothing; NULL with st->err set. */
static sqlite3_stmt *
store_provision_prepare(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	st->err[0] = '\0';
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* Steps a bound statement once and finalizes it. 0 or -1. */
static int
store_provision_run(struct store *st, sqlite3_stmt *s)
{
	int rc = store_step_done(st, s);

	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_sqlite_provision_ok(struct store *st, const struct store_provision_rule *r)
{
	static const char *sql =
	    "INSERT INTO provisioned_rules (kind, rule_id, rule_name, action_address, "
	    "webhook_type, synced_at, last_error) VALUES (?, ?, ?, ?, ?, ?, NULL) "
	    "ON CONFLICT (kind) DO UPDATE SET rule_id = excluded.rule_id, "
	    "rule_name = excluded.rule_name, action_address = excluded.action_address, "
	    "webhook_type = excluded.webhook_type, synced_at = excluded.synced_at, "
	    "last_error = NULL";
	sqlite3_stmt *s;
	char now[32];

	if ((s = store_provision_prepare(st, sql)) == NULL)
		return -1;
	store_time_text(now, 0);
	store_bind_text(s, 1, r->kind);
	if (r->rule_id >= 0)
		sqlite3_bind_int64(s, 2, r->rule_id);
	else
		sqlite3_bind_null(s, 2);
	store_bind_text(s, 3, r->rule_name);
	store_bind_text(s, 4, r->action_address);
	store_bind_text(s, 5, r->webhook_type);
	store_bind_text(s, 6, now);
	return store_provision_run(st, s);
}

int
store_sqlite_provision_error(struct store *st, const char *kind, const char *rule_name, const char *error)
{
	static const char *sql =
	    "INSERT INTO provisioned_rules (kind, rule_name, synced_at, last_error) "
	    "VALUES (?, ?, ?, ?) ON CONFLICT (kind) DO UPDATE SET "
	    "synced_at = excluded.synced_at, last_error = excluded.last_error, "
	    "rule_name = coalesce(rule_name, excluded.rule_name)";
	sqlite3_stmt *s;
	char now[32];

	if ((s = store_provision_prepare(st, sql)) == NULL)
		return -1;
	store_time_text(now, 0);
	store_bind_text(s, 1, kind);
	store_bind_text(s, 2, rule_name);
	store_bind_text(s, 3, now);
	store_bind_text(s, 4, error);
	return store_provision_run(st, s);
}
