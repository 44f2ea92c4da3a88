/* SPDX-License-Identifier: ISC */
/*
 * The PostgreSQL store's reads for the daemon's loop: delivery counts, paused relays and
 * the next due time. The loop must never wait on the network, so its handle (a view, see
 * store_open_reader) answers from a snapshot that store_refresh fills on the writer
 * thread about once a second; the operator tool's handle queries the database directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-pg-internal.h"
#include "xmalloc.h"

static const char *pg_counts_sql =
    "SELECT relay, count(*) FILTER (WHERE state = 'pending'), "
    "count(*) FILTER (WHERE state = 'dead') FROM deliveries "
    "WHERE state IN ('pending', 'dead') GROUP BY relay ORDER BY relay";
static const char *pg_paused_sql =
    "SELECT name, " PG_TIME("paused_at") ", pause_reason FROM relays WHERE paused = 1 "
					 "ORDER BY name";
static const char *pg_next_due_sql =
    "SELECT " PG_TIME("min(next_attempt_at)") " FROM deliveries WHERE state = 'pending' AND "
					      "blocked = 0";

void
store_pg_snapshot_clear(struct store_pg_snapshot *s)
{
	size_t i;

	for (i = 0; i < s->nrelays; i++)
		free(s->relays[i].name);
	for (i = 0; i < s->npaused; i++) {
		free(s->paused[i].name);
		free(s->paused[i].paused_at);
		free(s->paused[i].reason);
	}
	free(s->relays);
	free(s->paused);
	memset(s, 0, sizeof(*s));
}

static char *
pg_dup_or_null(const struct store_pg_rows *r, int row, int col)
{
	const char *v = store_pg_get(r, row, col);

	return v != NULL ? xstrdup(v) : NULL;
}

static int
pg_snapshot_counts(struct store *st, struct store_pg_snapshot *s)
{
	struct store_pg_rows *r = store_pg_query(st, pg_counts_sql, 1, 0, NULL);
	int i, n;

	if (r == NULL)
		return -1;
	n = store_pg_nrows(r);
	s->relays = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*s->relays));
	for (i = 0; i < n; i++) {
		struct store_pg_relay_count *c = &s->relays[s->nrelays++];
		c->name = xstrdup(store_pg_get(r, i, 0));
		c->pending = store_pg_num(r, i, 1);
		c->dead = store_pg_num(r, i, 2);
		s->pending += c->pending;
		s->dead += c->dead;
	}
	store_pg_rows_free(r);
	return 0;
}

static int
pg_snapshot_paused(struct store *st, struct store_pg_snapshot *s)
{
	struct store_pg_rows *r = store_pg_query(st, pg_paused_sql, 1, 0, NULL);
	int i, n;

	if (r == NULL)
		return -1;
	n = store_pg_nrows(r);
	s->paused = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*s->paused));
	for (i = 0; i < n; i++) {
		struct store_pg_paused *p = &s->paused[s->npaused++];
		p->name = xstrdup(store_pg_get(r, i, 0));
		p->paused_at = pg_dup_or_null(r, i, 1);
		p->reason = pg_dup_or_null(r, i, 2);
	}
	store_pg_rows_free(r);
	return 0;
}

static int
pg_snapshot_next_due(struct store *st, struct store_pg_snapshot *s)
{
	struct store_pg_rows *r = store_pg_query(st, pg_next_due_sql, 1, 0, NULL);
	const char *v;

	if (r == NULL)
		return -1;
	v = store_pg_nrows(r) > 0 ? store_pg_get(r, 0, 0) : NULL;
	snprintf(s->next_due, sizeof(s->next_due), "%s", v != NULL ? v : "");
	store_pg_rows_free(r);
	return 0;
}

/* Reads the database into a fresh snapshot (inside the writer's transaction). */
static int
pg_snapshot_read(struct store *st, struct store_pg_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	if (pg_snapshot_counts(st, s) == -1 || pg_snapshot_paused(st, s) == -1 ||
	    pg_snapshot_next_due(st, s) == -1) {
		store_pg_snapshot_clear(s);
		return -1;
	}
	s->ok = 1;
	return 0;
}

int
store_pg_refresh(struct store *st)
{
	struct store_pg_snapshot fresh, old;
	int rc = pg_snapshot_read(st, &fresh);

	if (rc == -1)
		snprintf(fresh.err, sizeof(fresh.err), "%s", st->err);
	pthread_mutex_lock(&st->pg->mu);
	old = st->pg->snap;
	if (rc == 0) {
		st->pg->snap = fresh;
	} else {
		st->pg->snap.ok = 0; /* the counts stay as last read; the reason is new */
		snprintf(st->pg->snap.err, sizeof(st->pg->snap.err), "%s", fresh.err);
		memset(&old, 0, sizeof(old));
	}
	pthread_mutex_unlock(&st->pg->mu);
	store_pg_snapshot_clear(&old);
	return rc;
}

/*
 * A snapshot for the call: a view copies the shared one under its lock; a direct handle
 * (the operator tool) reads the database. The caller clears it.
 */
static int
pg_snapshot_get(struct store *st, struct store_pg_snapshot *out)
{
	struct store_pg *sh = st->pg->shared;
	size_t i;

	if (!st->pg->view)
		return pg_snapshot_read(st, out);
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&sh->mu);
	*out = sh->snap;
	out->relays = xcalloc(out->nrelays + 1, sizeof(*out->relays));
	out->paused = xcalloc(out->npaused + 1, sizeof(*out->paused));
	for (i = 0; i < out->nrelays; i++) {
		out->relays[i] = sh->snap.relays[i];
		out->relays[i].name = xstrdup(sh->snap.relays[i].name);
	}
	for (i = 0; i < out->npaused; i++) {
		const struct store_pg_paused *p = &sh->snap.paused[i];
		out->paused[i].name = xstrdup(p->name);
		out->paused[i].paused_at = p->paused_at ? xstrdup(p->paused_at) : NULL;
		out->paused[i].reason = p->reason ? xstrdup(p->reason) : NULL;
	}
	pthread_mutex_unlock(&sh->mu);
	if (!out->ok) {
		snprintf(st->err, sizeof(st->err), "%s",
		    out->err[0] ? out->err : "PostgreSQL: not read yet");
		store_pg_snapshot_clear(out);
		return -1;
	}
	return 0;
}

int
store_pg_health(struct store *st, long long *pending, long long *dead, char *err, size_t errlen)
{
	struct store_pg_snapshot s;

	if (pg_snapshot_get(st, &s) == -1) {
		snprintf(err, errlen, "%s", st->err);
		return -1;
	}
	*pending = s.pending;
	*dead = s.dead;
	store_pg_snapshot_clear(&s);
	return 0;
}

int
store_pg_relay_counts(
    struct store *st, const char *relay, long long *pending, long long *dead, int *paused)
{
	struct store_pg_snapshot s;
	size_t i;

	if (pg_snapshot_get(st, &s) == -1)
		return -1;
	*pending = *dead = 0;
	*paused = 0;
	for (i = 0; i < s.nrelays; i++) {
		if (strcmp(s.relays[i].name, relay) == 0)
			*pending = s.relays[i].pending, *dead = s.relays[i].dead;
	}
	for (i = 0; i < s.npaused; i++)
		*paused |= strcmp(s.paused[i].name, relay) == 0;
	store_pg_snapshot_clear(&s);
	return 0;
}

int
store_pg_paused_relays(struct store *st, store_paused_cb cb, void *arg)
{
	struct store_pg_snapshot s;
	size_t i;

	if (pg_snapshot_get(st, &s) == -1)
		return -1;
	for (i = 0; i < s.npaused; i++)
		cb(s.paused[i].name, s.paused[i].paused_at, s.paused[i].reason, arg);
	store_pg_snapshot_clear(&s);
	return 0;
}

int
store_pg_pending_relays(struct store *st, void (*fn)(const char *, long long, void *), void *arg)
{
	struct store_pg_snapshot s;
	size_t i;

	if (pg_snapshot_get(st, &s) == -1)
		return -1;
	for (i = 0; i < s.nrelays; i++) {
		if (s.relays[i].pending > 0)
			fn(s.relays[i].name, s.relays[i].pending, arg);
	}
	store_pg_snapshot_clear(&s);
	return 0;
}

int
store_pg_next_due(struct store *st, char buf[32])
{
	struct store_pg_snapshot s;
	int found;

	if (pg_snapshot_get(st, &s) == -1)
		return -1;
	found = s.next_due[0] != '\0';
	if (found)
		snprintf(buf, 32, "%s", s.next_due);
	store_pg_snapshot_clear(&s);
	return found;
}
