# SPDX-License-Identifier: ISC
"""The harness's PostgreSQL store backend (CSR_STORE=postgresql): one shared server per test
process, a fresh database per Daemon, and Daemon.sql() rows shaped like `sqlite3 -json`'s.

This file owns that switch; harness.py calls it and stays about daemons and TAP.

  backend()                   "postgresql" or "sqlite" (CSR_STORE, default sqlite)
  skip_reason()               None, or why CSR_STORE=postgresql cannot run here
  new_store(tap, name)        a fresh PgDatabase on the shared server (started lazily on first
                              use, stopped and removed at exit by tests/lib/pgserver.py)
  node_name(name)             name sanitised to [a-z0-9_.-], at most 63 bytes (as node)
  pg_json(db, query)          the rows of query as dicts, the same value types as sqlite3 -json

How the rows match the SQLite path (the choice, and why):
- A query that reads (SELECT / WITH / VALUES / TABLE) is wrapped as
  SELECT coalesce(json_agg(q), '[]') FROM (<query>) q and run with psql as the superuser; the
  one JSON text that comes back is decoded. json_agg keeps the column order and the types
  JSON has: integers as numbers, NULL as null, text as strings. Other statements (UPDATE,
  INSERT, DELETE, and WITH ... INSERT) run as they are and give [] like sqlite3 does.
- PostgreSQL booleans become 0/1, as SQLite has none (a comparison gives 1 or 0 there).
- timestamptz: json_agg renders it in ISO 8601 with the session's offset; the session runs
  with TimeZone UTC, so a time is YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00, and every value of
  exactly that shape is rewritten to the SQLite store's text, YYYY-MM-DDTHH:MM:SS.sssZ
  (milliseconds, truncated as SQLite's %f would). This needs no knowledge of which columns
  are times, so SELECT *, views and joins work unchanged; a text column would only be
  rewritten if it held exactly such a +00:00 string, which the daemon never writes (its own
  text times end in Z) and no test sends. to_char() in a wrapper would need the column types
  first (a second round trip per query), so we do not.
- SQLite's JSON functions the tests read payloads with have no portable spelling, so every
  database gets a schema csr_compat (owned by the superuser, outside the daemon's public
  schema, on the harness sessions' search_path only) with json_valid(text),
  json_type(text[, path]) and json_each(text) behaving as SQLite's for the values the tests
  store. Other SQLite-only SQL is rewritten portably in the tests themselves.
"""

import json
import os
import re
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
for _d in (os.path.join(HERE, "..", "lib"), os.environ.get("TESTS_LIB")):
    if _d and _d not in sys.path:
        sys.path.append(_d)

_server = None
_lock = threading.Lock()
_count = 0

_PG_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\+00(?::00)?$")
_READS = re.compile(r"^\s*(select|with|values|table)\b", re.I)
_WRITES = re.compile(r"\b(insert\s+into|update\s+\w+\s+set|delete\s+from)\b", re.I)

# SQLite's JSON functions for the harness's sessions (see the top of the file).
_COMPAT_SQL = r"""
CREATE SCHEMA csr_compat;
CREATE FUNCTION csr_compat.json_valid(t text) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF t IS NULL THEN RETURN NULL; END IF;
	PERFORM t::json;
	RETURN 1;
EXCEPTION WHEN others THEN
	RETURN 0;
END $$;
CREATE FUNCTION csr_compat.json_type(t text, p text DEFAULT '$') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE jsonb_typeof(v)
		WHEN 'number' THEN CASE WHEN v::text ~ '^-?[0-9]+$' THEN 'integer' ELSE 'real' END
		WHEN 'string' THEN 'text'
		WHEN 'boolean' THEN v::text
		ELSE jsonb_typeof(v) END
	FROM (SELECT jsonb_path_query_first(t::jsonb, p::jsonpath) AS v) s
$$;
CREATE FUNCTION csr_compat.json_each(t text) RETURNS TABLE (key text, value json)
LANGUAGE sql IMMUTABLE AS $$ SELECT * FROM json_each(t::json) $$;
"""
_SESSION = "SET TimeZone = 'UTC';\nSET search_path = public, csr_compat;\n"


class PgStoreError(Exception):
    pass


def backend():
    v = (os.environ.get("CSR_STORE") or "sqlite").strip().lower()
    return "postgresql" if v in ("postgresql", "postgres", "pg") else "sqlite"


def skip_reason():
    try:
        import pgserver
    except ImportError as e:
        return "tests/lib/pgserver.py not found (%s)" % e
    return pgserver.skip_reason()


def _shared_server(tap):
    """The process's one PgServer, started on first use."""
    global _server
    import pgserver
    with _lock:
        if _server is None:
            _server = pgserver.PgServer(tap=tap)
        if not _server.running():
            _server.start()
        return _server


def node_name(name):
    n = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-") or "node"
    return n[:63]


def new_store(tap, name):
    """A fresh database (its own role) for one daemon, with the csr_compat schema."""
    global _count
    server = _shared_server(tap)
    with _lock:
        _count += 1
        n = _count
    ident = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:30]
    db = server.new_database("t%d_%s" % (n, ident) if ident else "t%d" % n)
    server.psql(db, _COMPAT_SQL)
    return db


def _sqlite_shaped(v):
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, str):
        m = _PG_TIME.match(v)
        if m:
            return "%s.%sZ" % (m.group(1), ((m.group(2) or "") + "000")[:3])
    return v


def pg_json(db, query, timeout=10):
    """Rows of query in database db as dicts (see the top of the file)."""
    import pgserver
    q = query.strip().rstrip(";").strip()
    # WITH ... INSERT (a CTE feeding a write) runs as it is, like any other write
    reads = bool(_READS.match(q)) and not (q[:4].lower() == "with" and _WRITES.search(q))
    sql = _SESSION + ("SELECT coalesce(json_agg(q), '[]'::json) FROM (\n%s\n) q;\n" % q
                      if reads else q + ";\n")
    try:
        out = db.server.psql(db, sql, timeout=timeout)
    except pgserver.PgError as e:
        raise PgStoreError(str(e))
    if not reads or not out:
        return []
    rows = json.loads(out[-1][0])
    return [{k: _sqlite_shaped(v) for k, v in r.items()} for r in rows]
