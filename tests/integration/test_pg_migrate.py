#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""scripts/clicksend-relay-sqlite-to-pg, the move of a SQLite store into PostgreSQL: a store
written by the real daemon (done, dead, pending and paused deliveries, a duplicate, awkward
bodies) is copied into a database with the PostgreSQL schema, every row and value compared
with psql, ids kept and the sequences past them; it refuses a second copy and stores that do
not fit; and a node started on the copy carries on where the SQLite daemon stopped."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
HERE = os.path.dirname(os.path.abspath(__file__))
for _d in (os.path.join(HERE, "..", "lib"), HERE, os.environ.get("TESTS_LIB")):
    if _d:
        sys.path.insert(0, _d)
from harness import (Tap, Daemon, LOCALHOST, daemon_env, render_config,  # noqa: E402
                     run_relayd, sqlite_json, tests_data, tool_path, wait_for)
import pgserver  # noqa: E402

TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
MIGRATE = os.environ.get("MIGRATE_TOOL") or os.path.join(TOP, "scripts",
                                                         "clicksend-relay-sqlite-to-pg")
SQL_FILES = [os.path.join(TOP, "sql", "postgresql", f) for f in (
    "schema.sql", "migrations/002-deliveries-relay-due.sql",
    "migrations/003-relay-controls.sql", "migrations/004-relay-starts.sql")]
SCHEMA_VERSION = 4          # goes with SQLite's 3 (PostgreSQL 4 adds relay_starts only)
IN = "/clicksend/sms/inbound"
RECEIPT = "/clicksend/sms/receipt"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EVENTS = ("id", "kind", "format", "received_at", "remote_addr", "message_id", "from_number",
          "to_number", "body", "status_code", "status_text", "custom_string", "payload",
          "dedupe_key", "duplicates")
DELIVERIES = ("id", "event_id", "relay", "state", "attempts", "next_attempt_at",
              "last_attempt_at", "last_result", "done_at", "order_key", "blocked")
RULES = ("kind", "rule_id", "rule_name", "action_address", "webhook_type", "synced_at",
         "last_error")
RELAYS = ("name", "paused", "paused_at", "pause_reason")
TIMES = {"received_at", "next_attempt_at", "last_attempt_at", "done_at", "synced_at",
         "paused_at"}
AWKWARD = ["tab\there", "two\nlines\r\n", "back\\slash \\N \\.", "ünïcødé ✓ 😀", "quote ' \""]
tap = Tap(timeout=240, name="pg-migrate")
PG = None


class Sink:
    """Records (path, headers, document); answers status[path] (default 200)."""

    def __init__(self):
        self.got, self.status, self.lock = [], {}, threading.Lock()
        sink = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)))
                with sink.lock:
                    sink.got.append((self.path, {k.lower(): v for k, v in
                                                 self.headers.items()}, doc))
                self.send_response(sink.status.get(self.path, 200))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer((LOCALHOST, 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://%s:%d%s" % (LOCALHOST, self.server.server_address[1], path)

    def requests(self, path):
        with self.lock:
            return [g for g in self.got if g[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def migrate(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    e.update(env or {})
    p = subprocess.run([MIGRATE] + list(args), capture_output=True, text=True, timeout=120,
                       env=e, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def show(rc, out, err):
    return ["exit %r" % rc, "stdout: %s" % out[-1500:], "stderr: %s" % err[-1500:]]


def apply_schema(db):
    """The PostgreSQL schema applied by the database's own role, as the daemon would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = db.password
    for f in SQL_FILES:
        p = subprocess.run([os.path.join(PG.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                            "-d", db.uri_nopass, "-f", f], capture_output=True, text=True,
                           env=env, timeout=60, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise pgserver.PgError("%s: %s" % (f, p.stderr))
    db.psql("INSERT INTO store_schema (version) VALUES (%d); ALTER TABLE store_schema "
            "OWNER TO %s" % (SCHEMA_VERSION, db.role))


def pg_select(db, table, columns):
    """Rows of table with times as SQLite's UTC text, for comparison."""
    exprs = []
    for c in columns:
        if c in TIMES:
            exprs.append("to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                         % c)
        else:
            exprs.append("%s::text" % c)
    # ORDER BY the table's own first column, not its text rendering
    return db.psql("SELECT %s FROM %s ORDER BY %s.%s" % (", ".join(exprs), table, table,
                                                        columns[0]))


def sqlite_select(path, table, columns):
    rows = sqlite_json(path, "SELECT %s FROM %s ORDER BY 1" % (", ".join(columns), table))
    return [tuple(None if r[c] is None else str(r[c]) for c in columns) for r in rows]


def make_store(sink):
    """A SQLite store written by the daemon: done, dead (410), pending (paused relay)
    deliveries, a duplicate, a receipt, JSON fields and awkward bodies; stopped after."""
    d = Daemon(tap, name="sqlite-src", sections={
        "relay:r": {"url": sink.url("/r")},
        "relay:gone": {"url": sink.url("/gone")},
        "relay:p": {"url": sink.url("/p"), "events": "sms.inbound"}})
    sink.status["/gone"] = 410
    env = daemon_env()
    subprocess.run([tool_path(), "-c", d.conf_path, "pause", "p", "--reason", "moving"],
                   capture_output=True, timeout=30, env=env, check=True)
    time.sleep(3)      # a running daemon sees a pause "within a second or two" (clicksend-relay(1))
    for i, body in enumerate(AWKWARD):
        r = d.request("POST", IN, urlencode({"message_id": "m-%d" % i, "from": "+6140000000%d"
                                             % i, "body": body}), FORM)
        assert r.status == 200, r
    d.request("POST", IN, urlencode({"message_id": "m-0", "body": AWKWARD[0]}), FORM)
    d.request("POST", IN, json.dumps({"message_id": "m-json", "n": 1.5, "flag": True,
                                      "nothing": None, "body": "json"}),
              {"Content-Type": "application/json"})
    d.request("POST", RECEIPT, urlencode({"message_id": "m-1", "status_code": "201",
                                          "status": "Delivered", "customstring": "c-1"}), FORM)
    d.request("POST", IN, urlencode({"body": "no message id"}), FORM)
    want = 2 * 8   # r and gone for each of the 8 events; p's stay pending
    ok = wait_for(lambda: d.sql_value("SELECT count(*) FROM deliveries WHERE state <> "
                                      "'pending'") == want, 15)
    d.sql("INSERT INTO provisioned_rules VALUES ('sms.inbound', 42, 'clicksend-relay "
          "sms.inbound', 'https://hooks.example.com/clicksend/sms/inbound', 'json', "
          "'2026-11-23T07:40:00.123Z', NULL), ('sms.receipt', 43, 'clicksend-relay "
          "sms.receipt', 'https://hooks.example.com/clicksend/sms/receipt', NULL, "
          "'2026-11-23T07:41:00.000Z', 'HTTP 500')")
    d.close()
    return d, ok


def test_copy(sink):
    d, settled = make_store(sink)
    tap.ok(settled, "the SQLite store has done and dead deliveries (and pending ones)")
    src = d.db
    db = PG.new_database("migrate")
    apply_schema(db)
    # a provisioned rule already in PostgreSQL is kept
    db.psql("INSERT INTO provisioned_rules (kind, rule_id, rule_name) VALUES "
            "('sms.receipt', 99, 'kept')")
    rc, out, err = migrate("--dry-run", src, db.uri)
    tap.ok(rc == 0 and "8 events" in out and db.value("SELECT count(*) FROM events") == "0",
           "--dry-run: counts printed, nothing written", show(rc, out, err))
    rc, out, err = migrate(src, db.uri)
    tap.check_eq(rc, 0, "the copy succeeds", show(rc, out, err))
    for table, cols in (("events", EVENTS), ("deliveries", DELIVERIES)):
        got, want = pg_select(db, table, cols), sqlite_select(src, table, cols)
        tap.check_eq(len(got), len(want), "%s: %d rows copied" % (table, len(want)))
        diff = [(w, g) for w, g in zip(want, got) if w != g]
        tap.ok(not diff and len(got) == len(want), "%s: every value, ids and times included, "
               "as in SQLite" % table, diff[:3])
    tap.check_eq(db.psql("SELECT body FROM events WHERE message_id LIKE 'm-_' AND "
                         "kind = 'sms.inbound' ORDER BY id"),
                 [(b,) for b in AWKWARD], "awkward bodies (tab, newlines, backslashes, "
                 "unicode, quotes) unchanged")
    tap.check_eq(db.value("SELECT duplicates FROM events WHERE message_id = 'm-0' AND "
                          "kind = 'sms.inbound'"), "1", "the duplicate count is kept")
    tap.check_eq(db.value("SELECT payload::jsonb ->> 'n' FROM events WHERE "
                          "message_id = 'm-json'"), "1.5", "payload is still JSON")
    tap.check_eq(db.psql("SELECT count(*) FROM deliveries WHERE claimed_by IS NOT NULL OR "
                         "claim_until IS NOT NULL"), [("0",)], "no claim is copied")
    rules = pg_select(db, "provisioned_rules", RULES)
    srules = sqlite_select(src, "provisioned_rules", RULES)
    tap.ok(srules[0] in rules and ("sms.receipt", "99", "kept", None, None, None, None) in rules
           and len(rules) == 2, "provisioned_rules copied; a row already in PostgreSQL kept",
           rules)
    tap.check_eq(pg_select(db, "relays", RELAYS), sqlite_select(src, "relays", RELAYS),
                 "relays (the paused one and its reason) copied")
    tap.check_eq(db.value("SELECT data_type FROM information_schema.columns WHERE "
                          "table_name = 'events' AND column_name = 'received_at'"),
                 "timestamp with time zone", "received_at is timestamptz")
    top_e = int(db.value("SELECT max(id) FROM events"))
    top_d = int(db.value("SELECT max(id) FROM deliveries"))
    tap.check_eq((int(db.value("SELECT nextval(pg_get_serial_sequence('events', 'id'))")),
                  int(db.value("SELECT nextval(pg_get_serial_sequence('deliveries', 'id'))"))),
                 (top_e + 1, top_d + 1), "the identity sequences continue past the copied ids")
    n = db.value("SELECT count(*) FROM events")
    rc, out, err = migrate(src, db.uri)
    tap.ok(rc == 65 and "not empty" in err and db.value("SELECT count(*) FROM events") == n,
           "a second copy is refused (events not empty), nothing written", show(rc, out, err))
    return src


def test_refusals(src):
    rc, out, err = migrate()
    tap.ok(rc == 64 and "usage:" in err, "no arguments: usage, exit 64", show(rc, out, err))
    rc, out, err = migrate("--help")
    tap.ok(rc == 0 and "usage:" in out, "--help: usage, exit 0", show(rc, out, err))
    db = PG.new_database("refuse")
    rc, out, err = migrate(src, db.uri)
    tap.ok(rc == 65 and "clicksend-relayd -t" in err,
           "a database without the schema: exit 65, says to run clicksend-relayd -t",
           show(rc, out, err))
    rc, out, err = migrate("/nonexistent/events.db", db.uri)
    tap.ok(rc == 66, "a missing SQLite file: exit 66", show(rc, out, err))
    apply_schema(db)
    old = os.path.join(tests_data(), "store", "v1.db")
    rc, out, err = migrate(old, db.uri)
    tap.ok(rc == 65 and "clicksend-relayd -t" in err,
           "a SQLite store of an older schema: exit 65, says to migrate it first",
           show(rc, out, err))
    port = pgserver._free_port()
    rc, out, err = migrate(src, "postgresql://%s:%s@127.0.0.1:%d/%s" % (
        db.role, db.password, port, db.name))
    tap.ok(rc == 69 and db.password not in out + err,
           "PostgreSQL unreachable: exit 69, the password not printed", show(rc, out, err))
    passfile = db.write_passfile(os.path.join(tap.mkdtemp(), "pgpass"))
    rc, out, err = migrate(src, db.uri_nopass, env={"PGPASSFILE": passfile})
    tap.ok(rc == 0 and db.value("SELECT count(*) FROM events") == "8",
           "a password-less URL with PGPASSFILE works", show(rc, out, err))


def test_node_carries_on(src, sink):
    """The real path: clicksend-relayd -t creates the schema, the copy, then a node on it."""
    db = PG.new_database("carry_on")
    dirn = tap.mkdtemp()
    conf = os.path.join(dirn, "t.conf")
    with open(conf, "w") as f:
        f.write(render_config({"server": {"listen": "127.0.0.1:1"},
                               "store": {"url": db.uri, "node": "a"}}))
    rc, out, err = run_relayd(["-t", "-c", conf], timeout=30)
    if not tap.check_eq(rc, 0, "clicksend-relayd -t creates the PostgreSQL schema", err):
        return
    rc, out, err = migrate(src, db.uri)
    tap.check_eq(rc, 0, "the copy into the daemon's schema succeeds", show(rc, out, err))
    pending = dict(db.psql("SELECT e.message_id, e.id FROM deliveries d JOIN events e ON "
                           "e.id = d.event_id WHERE d.relay = 'p' AND d.state = 'pending'"))
    top = int(db.value("SELECT max(id) FROM events"))
    del sink.got[:]
    d = Daemon(tap, name="pg-node", store={"path": None, "url": db.uri, "node": "a"},
               sections={"relay:r": {"url": sink.url("/r")},
                         "relay:gone": {"url": sink.url("/gone")},
                         "relay:p": {"url": sink.url("/p"), "events": "sms.inbound"}})
    p = subprocess.run([tool_path(), "-c", d.conf_path, "relays", "--json"],
                       capture_output=True, text=True, timeout=30, env=daemon_env())
    rows = {}
    for line in p.stdout.splitlines():
        try:
            o = json.loads(line)
            rows[o.get("relay")] = o
        except ValueError:
            pass
    tap.ok(rows.get("p", {}).get("paused") is True, "relay p is still paused on the node",
           p.stdout + p.stderr)
    subprocess.run([tool_path(), "-c", d.conf_path, "resume", "p"], capture_output=True,
                   timeout=30, env=daemon_env())
    ok = wait_for(lambda: len(sink.requests("/p")) >= len(pending), 10)
    got = sorted(g[1].get("webhook-id") for g in sink.requests("/p"))
    tap.ok(ok and got == sorted("evt_%s" % i for i in pending.values()),
           "resumed on the node, the copied pending deliveries go out with their old "
           "webhook-id", [got, pending])
    r = d.request("POST", IN, urlencode({"message_id": "after-move", "body": "x"}), FORM)
    new = db.value("SELECT id FROM events WHERE message_id = 'after-move'")
    tap.ok(r.status == 200 and new and int(new) > top,
           "a new event gets an id past the copied ones (%s > %d)" % (new, top))
    r = d.request("POST", IN, urlencode({"message_id": "m-2", "body": AWKWARD[2]}), FORM)
    tap.ok(r.status == 200 and db.value("SELECT duplicates FROM events WHERE "
                                        "message_id = 'm-2'") == "1",
           "ClickSend's retry of a copied event is a duplicate")
    d.close()


def main():
    global PG
    names = ("copy", "refusals", "node carries on")
    reason = pgserver.skip_reason()
    if reason:
        for n in names:
            tap.skip(n, reason)
        tap.done()
    PG = pgserver.PgServer(tap=tap, timezone="America/St_Johns")
    PG.start()
    sink = Sink()
    src = tap.run(test_copy, sink)
    if src:
        tap.run(test_refusals, src)
        tap.run(test_node_carries_on, src, sink)
    sink.close()
    tap.done()


main()
