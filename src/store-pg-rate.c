/* SPDX-License-Identifier: ISC */
/*
 * A relay's rate (clicksend-relay.conf(5), rate) shared by every node of a PostgreSQL
 * store: each attempt start is a row of relay_starts, and a node claims due rows of a rated
 * relay only with tokens it takes there, in the writer's transaction, under a
 * transaction-level advisory lock per relay, so nodes take tokens one after another and
 * each sees the others' starts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "store-pg-internal.h"
#include "xmalloc.h"

/*
 * The lock is in the two-int4 key space of advisory locks, which never meets the bigint
 * one (the leader and migration locks, the ordered conversations' hashtext keys): the
 * constant is the class, hashtext(relay) the object.
 */
#define PG_RATE_LOCK_CLASS "1916037937"
/*
 * A token lasts the interval and this: the start is stamped before the writer's batch
 * commits, and the attempt begins once the loop hears of the commit, a few milliseconds
 * on. Two starts counted PG_RATE_GUARD_MS apart more than the interval begin more than
 * the interval apart while that delay stays under the guard.
 */
#define PG_RATE_GUARD_MS 200

static const char *pg_rate_lock_sql =
    "SELECT pg_advisory_xact_lock(" PG_RATE_LOCK_CLASS ", hashtext($1))";
/* Drops the relay's starts older than $2 ms; counts the others and says in how many ms
 * the oldest of them leaves the window. */
static const char *pg_rate_used_sql =
    "WITH t AS (SELECT clock_timestamp() - $2::bigint * interval '1 millisecond' AS since), "
    "d AS (DELETE FROM relay_starts s USING t WHERE s.relay = $1 AND s.started_at < t.since) "
    "SELECT count(s.started_at), coalesce(ceil(extract(epoch FROM min(s.started_at) - "
    "t.since) * 1000)::bigint, 0) FROM t LEFT JOIN relay_starts s ON s.relay = $1 AND "
    "s.started_at >= t.since GROUP BY t.since";
/* The claim of store_pg_due less the rows in $6, and one start for each row claimed. */
#define PG_RATE_PICK PG_DUE_PICK(" AND NOT (id = ANY ($6::bigint[]))")
#define PG_RATE_START \
	"INSERT INTO relay_starts (relay, started_at) SELECT $1, clock_timestamp() FROM u"
static const char *pg_rate_claim_sql =
    "WITH c AS (" PG_RATE_PICK "), u AS (" PG_DUE_CLAIM "), s AS (" PG_RATE_START ") "
    "SELECT * FROM u";

/* Starts of RELAY within the last window_ms, and ms until the oldest of them leaves it. */
static int
pg_rate_used(
    struct store *st, const char *relay, int64_t window_ms, long long *used, long long *oldest_ms)
{
	char win[24];
	const char *p[2] = { relay, win };
	struct store_pg_rows *r;

	snprintf(win, sizeof(win), "%" PRId64, window_ms);
	if ((r = store_pg_query(st, pg_rate_used_sql, 1, 2, p)) == NULL)
		return -1;
	*used = store_pg_num(r, 0, 0);
	*oldest_ms = store_pg_num(r, 0, 1);
	store_pg_rows_free(r);
	return 0;
}

/* The ids as a PostgreSQL array literal: "{1,2,3}". */
static char *
pg_rate_skip(const struct store_rate *rate)
{
	char *s = xmalloc(rate->nskip * 21 + 3), *p = s;
	size_t i;

	*p++ = '{';
	for (i = 0; i < rate->nskip; i++)
		p += sprintf(p, "%s%" PRId64, i > 0 ? "," : "", rate->skip[i]);
	*p++ = '}';
	*p = '\0';
	return s;
}

static int
pg_rate_claim(struct store *st, const char *relay, const char *now, size_t grant, int64_t claim_ms,
    const struct store_rate *rate, struct store_delivery **out)
{
	char lim[24], claim[24], *skip = pg_rate_skip(rate);
	const char *p[6] = { relay, now, lim, st->pg->node, claim, skip };
	struct store_pg_rows *r;
	int n;

	snprintf(lim, sizeof(lim), "%zu", grant);
	snprintf(claim, sizeof(claim), "%" PRId64, claim_ms);
	r = store_pg_query(st, pg_rate_claim_sql, 1, 6, p);
	free(skip);
	if (r == NULL)
		return -1;
	n = store_pg_deliveries(r, out);
	store_pg_rows_free(r);
	return n;
}

/* Tokens free: rate->n less the starts in the window, up to limit; at most that many rows
 * claimed. When that took every free token and fewer than limit, rate->wait_ms says when
 * the next frees. */
int
store_pg_due_rated(struct store *st, const char *relay, const char *now, size_t limit,
    int64_t claim_ms, struct store_rate *rate, struct store_delivery **out)
{
	int64_t window = rate->window_ms + PG_RATE_GUARD_MS;
	const char *p[1] = { relay };
	long long used, oldest_ms;
	size_t grant;
	int n;

	*out = NULL;
	if (store_pg_run(st, pg_rate_lock_sql, 1, 1, p) == -1 ||
	    pg_rate_used(st, relay, window, &used, &oldest_ms) == -1)
		return -1;
	grant = used >= (long long)rate->n ? 0 : (size_t)((long long)rate->n - used);
	if (grant < limit)
		rate->wait_ms = used > 0 ? (oldest_ms > 0 ? oldest_ms : 1) : window;
	else
		grant = limit;
	if (grant == 0) {
		*out = xcalloc(1, sizeof(**out));
		return 0;
	}
	if ((n = pg_rate_claim(st, relay, now, grant, claim_ms, rate, out)) >= 0 &&
	    (size_t)n < grant)
		rate->wait_ms = 0; /* tokens are left: nothing more is due */
	return n;
}
