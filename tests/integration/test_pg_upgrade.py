#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The PostgreSQL schema's migrations: a database at schema version 1 (sql/postgresql/
schema.sql alone, as an early node left it) with events and deliveries in it is upgraded in
place by clicksend-relayd -t to the current version: rows kept, the new columns and indexes
there, a pending delivery delivered by a node afterwards, a second -t a no-op; a
database newer than the program is refused without a change; and a daemon started while
PostgreSQL is down runs (503, /healthz 503), then applies the schema and stores once the
server answers, without a restart."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
HERE = os.path.dirname(os.path.abspath(__file__))
for _d in (os.path.join(HERE, "..", "lib"), HERE, os.environ.get("TESTS_LIB")):
    if _d:
        sys.path.insert(0, _d)
from harness import Tap, Daemon, LOCALHOST, render_config, run_relayd, wait_for  # noqa: E402
import pgserver  # noqa: E402

TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
V1 = os.path.join(TOP, "sql", "postgresql", "schema.sql")
CURRENT = 4
tap = Tap(timeout=180, name="pg-upgrade")
PG = None


class Sink:
    """Answers 204 and keeps each request's webhook-id."""

    def __init__(self):
        self.ids, sink = [], self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"] or 0))
                sink.ids.append(self.headers.get("webhook-id"))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer((LOCALHOST, 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self):
        return "http://%s:%d/hook" % (LOCALHOST, self.server.server_address[1])


def psql_file(db, path):
    """Runs a schema file as the database's own role (as the daemon would)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = db.password
    p = subprocess.run([os.path.join(PG.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-d", db.uri_nopass, "-f", path], capture_output=True, text=True,
                       env=env, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise pgserver.PgError("%s: %s" % (path, p.stderr))


def as_role(db, sql):
    """One statement as the database's role, so the rows belong to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = db.password
    p = subprocess.run([os.path.join(PG.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-d", db.uri_nopass, "-c", sql], capture_output=True, text=True,
                       env=env, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise pgserver.PgError("%s: %s" % (sql, p.stderr))


def v1_database(name):
    """A version-1 database with two events: one delivered, one with a pending delivery."""
    db = PG.new_database(name)
    psql_file(db, V1)
    as_role(db, "INSERT INTO store_schema (version) VALUES (1)")
    as_role(db, "INSERT INTO events (id, kind, format, received_at, message_id, body, payload, "
                "dedupe_key) VALUES (7, 'sms.inbound', 'post', '2026-11-01T10:00:00.000Z', "
                "'old-1', 'first', '{\"message_id\":\"old-1\",\"body\":\"first\"}', "
                "'sms.inbound|old-1'), (8, 'sms.inbound', 'post', "
                "'2026-11-01T10:00:01.000Z', 'old-2', 'second', "
                "'{\"message_id\":\"old-2\",\"body\":\"second\"}', 'sms.inbound|old-2')")
    as_role(db, "SELECT setval(pg_get_serial_sequence('events', 'id'), 8)")
    as_role(db, "INSERT INTO deliveries (event_id, relay, state, attempts, next_attempt_at, "
                "done_at) VALUES (7, 'sink', 'done', 1, NULL, '2026-11-01T10:00:02.000Z'), "
                "(8, 'sink', 'pending', 0, '2026-11-01T10:00:01.000Z', NULL)")
    return db


def check_conf(db, dirn):
    conf = os.path.join(dirn, "t.conf")
    with open(conf, "w") as f:
        f.write(render_config({"server": {"listen": "127.0.0.1:1"},
                               "store": {"url": db.uri, "node": "up"}}))
    return conf


def test_upgrade(sink):
    db = v1_database("upgrade")
    conf = check_conf(db, tap.mkdtemp())
    rc, out, err = run_relayd(["-t", "-c", conf], timeout=60)
    tap.check_eq(rc, 0, "clicksend-relayd -t upgrades a version-1 database", err)
    tap.check_eq(db.value("SELECT max(version) FROM store_schema"), str(CURRENT),
                 "store_schema is at the current version")
    tap.ok("applied 002-deliveries-relay-due.sql" in err and
           "applied 003-relay-controls.sql" in err and
           "applied 004-relay-starts.sql" in err and "applied schema.sql" not in err,
           "only the missing migrations ran", err)
    cols = [r[0] for r in db.psql("SELECT column_name FROM information_schema.columns WHERE "
                                  "table_name = 'deliveries' ORDER BY column_name")]
    tap.ok(all(c in cols for c in ("claimed_by", "claim_until", "order_key", "blocked")),
           "deliveries has the columns of version 3", cols)
    idx = [r[0] for r in db.psql("SELECT indexname FROM pg_indexes WHERE tablename = "
                                 "'deliveries'")]
    tap.ok("deliveries_relay_due" in idx and "deliveries_relay_key" in idx,
           "the indexes of versions 2 and 3 exist", idx)
    tap.check_eq(db.value("SELECT count(*) FROM relays"), "0", "the relays table exists")
    tap.check_eq(db.value("SELECT count(*) FROM relay_starts"), "0",
                 "the relay_starts table of version 4 exists")
    rows = db.psql("SELECT id, message_id, body FROM events ORDER BY id")
    tap.check_eq([list(r) for r in rows], [["7", "old-1", "first"], ["8", "old-2", "second"]],
                 "the events are kept")
    tap.check_eq(db.value("SELECT string_agg(state || ':' || blocked, ',' ORDER BY id) "
                          "FROM deliveries"), "done:0,pending:0",
                 "the deliveries are kept, none blocked")
    rc, out, err = run_relayd(["-t", "-c", conf], timeout=60)
    tap.ok(rc == 0 and "applied" not in err, "a second -t changes nothing", err)
    d = Daemon(tap, name="upgraded", store={"path": None, "url": db.uri, "node": "up"},
               sections={"relay:sink": {"url": sink.url()}})
    ok = wait_for(lambda: "evt_8" in sink.ids, 10)
    tap.ok(ok and "evt_7" not in sink.ids,
           "a node on the upgraded database delivers the pending delivery (evt_8) and not "
           "the done one", sink.ids)
    r = d.request("POST", "/clicksend/sms/inbound", "message_id=old-1&body=again",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    tap.ok(r.status == 200 and db.value("SELECT duplicates FROM events WHERE id = 7") == "1",
           "a retry of an event stored before the upgrade is a duplicate")
    r = d.request("POST", "/clicksend/sms/inbound", "message_id=new-1&body=x",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    new = db.value("SELECT id FROM events WHERE message_id = 'new-1'")
    tap.ok(r.status == 200 and new is not None and int(new) > 8,
           "a new event gets an id past the old ones (%s)" % new)
    d.close()


def test_newer_refused():
    db = v1_database("newer")
    as_role(db, "UPDATE store_schema SET version = 99")
    conf = check_conf(db, tap.mkdtemp())
    rc, out, err = run_relayd(["-t", "-c", conf], timeout=60)
    tap.ok(rc != 0 and "newer than this program knows" in err,
           "a database at a newer schema version is refused (exit %d)" % rc, err)
    tap.check_eq(db.value("SELECT version FROM store_schema"), "99",
                 "and left as it was")
    tap.check_eq(db.value("SELECT count(*) FROM information_schema.tables WHERE "
                          "table_name = 'relays'"), "0", "no migration ran on it")


def test_start_without_server(sink):
    db = PG.new_database("later")
    PG.stop()
    try:
        conf = check_conf(db, tap.mkdtemp())
        rc, out, err = run_relayd(["-t", "-c", conf], timeout=60)
        tap.ok(rc == 69, "-t with PostgreSQL down: exit 69 (exit %d)" % rc, err)
        d = Daemon(tap, name="early", store={"path": None, "url": db.uri, "node": "early"},
                   sections={"relay:sink": {"url": sink.url()}})
        r, h = d.healthz()
        tap.ok(r.status == 503 and h and h.get("store") != "ok",
               "the daemon starts with PostgreSQL down; /healthz 503 with the reason", r.body)
        r = d.request("POST", "/clicksend/sms/inbound", "message_id=early-1&body=x",
                      {"Content-Type": "application/x-www-form-urlencoded"})
        tap.ok(r.status == 503 and r.header("Retry-After"),
               "a webhook meanwhile: 503 with Retry-After (%d)" % r.status)
    finally:
        PG.start()
    ok = wait_for(lambda: d.healthz()[0].status == 200, 20)
    tap.ok(ok, "once PostgreSQL answers, /healthz is 200 without a restart", d.log()[-1500:])
    tap.check_eq(db.value("SELECT max(version) FROM store_schema"), str(CURRENT),
                 "the schema was applied on the first connection")
    r = d.request("POST", "/clicksend/sms/inbound", "message_id=early-2&body=x",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    tap.ok(r.status == 200 and db.value("SELECT count(*) FROM events WHERE message_id = "
                                        "'early-2'") == "1", "and webhooks are stored")
    ok = wait_for(lambda: db.value("SELECT evt FROM (SELECT 'evt_' || id AS evt FROM events "
                                   "WHERE message_id = 'early-2') q") in sink.ids, 10)
    tap.ok(ok, "and relayed", sink.ids)
    d.close()


def main():
    global PG
    reason = pgserver.skip_reason()
    if reason:
        tap.skip("upgrade", reason)
        tap.skip("newer refused", reason)
        tap.skip("start without the server", reason)
        tap.done()
    PG = pgserver.PgServer(tap=tap)
    PG.start()
    sink = Sink()
    tap.run(test_upgrade, sink)
    tap.run(test_newer_refused)
    tap.run(test_start_without_server, sink)
    sink.server.shutdown()
    tap.done()


main()
