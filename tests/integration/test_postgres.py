#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The PostgreSQL store (clicksend-relay.conf(5), [store]) seen from outside: daemons with
`[store] url` and `node` against a real server (tests/lib/pgserver.py), each test with its
own database: the schema at start and by -t, webhooks in the events table, a ClickSend retry
landing on the other node, two and three nodes relaying to one sink, a node killed with
deliveries claimed, provisioning on one node only, PostgreSQL stopped under traffic, the
password kept secret, pause seen by every node, and the operator tool on the shared store.

Nothing here is skipped when the server binaries exist: a daemon that refuses `url` or
`node` fails these tests. Waits are bounded and timing is asserted only against the manuals'
own bounds, with slack."""

import json
import os
import re
import signal
import socket
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
from harness import (Tap, Daemon, DaemonError, LOCALHOST, TIME_RE, daemon_env,  # noqa: E402
                     render_config, run_relayd, sanitizer_report, tool_path, wait_for)
import pgserver  # noqa: E402

IN = "/clicksend/sms/inbound"
RECEIPT = "/clicksend/sms/receipt"
FORM = "application/x-www-form-urlencoded"
TABLES = ("events", "deliveries", "provisioned_rules", "relays")
VIEWS = ("inbound_sms", "receipts", "pending_deliveries", "dead_deliveries")
SCHEMA_VERSION = "4"       # sql/postgresql/schema.sql + migrations 002, 003, 004
tap = Tap(timeout=480, name="postgres")
PG = None                  # the one server of this file


# --------------------------------------------------------------------------- helpers

class Sink:
    """An HTTP relay target. Records every request (t, path, doc, headers with lower-case
    names). hold(path) makes the next request to path wait until release() (or 60 s);
    status[path] is the answer (default 200)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []
        self.status = {}
        self.holds = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    doc = json.loads(raw or b"{}")
                except ValueError:
                    doc = {"unparsed": raw.decode("utf-8", "replace")}
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                with sink.lock:
                    sink.got.append({"t": time.monotonic(), "path": self.path, "doc": doc,
                                     "headers": hdrs})
                    hold = sink.holds.pop(self.path, None)
                    status = sink.status.get(self.path, 200)
                if hold is not None:
                    hold.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None
        self.port = self.server.server_address[1]
        self._released = []
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def url(self, path):
        return "http://%s:%d%s" % (LOCALHOST, self.port, path)

    def hold(self, path):
        ev = threading.Event()
        with self.lock:
            self.holds[path] = ev
        self._released.append(ev)
        return ev

    def requests(self, path=None):
        with self.lock:
            return [dict(g) for g in self.got if path is None or g["path"] == path]

    def message_ids(self, path=None):
        return [g["doc"].get("data", {}).get("message_id") for g in self.requests(path)]

    def close(self):
        for ev in self._released:
            ev.set()
        self.server.shutdown()
        self.server.server_close()


def relay(sink, path, node, **over):
    """A [relay:NAME] section to sink+path whose requests name the node (X-Node)."""
    sec = {"url": sink.url(path), "header": "X-Node: %s" % node, "timeout": "5s",
           "retry_schedule": "1s 1s 2s 5s"}
    sec.update(over)
    return sec


class PgDaemon(Daemon):
    """A daemon whose store is the database db, as node `node` (store path dropped)."""

    def __init__(self, tap, db, node, uri=None, store=None, **kw):
        st = {"path": None, "url": uri or db.uri, "node": node}
        st.update(store or {})
        self.pgdb = db
        self.node = node
        kw.setdefault("name", "node-%s" % node)
        kw.setdefault("start_timeout", 20)
        super().__init__(tap, store=st, **kw)


def nodes(db, names, sink=None, path="/r", relay_over=None, sections=None, **kw):
    """One PgDaemon per name on db, each with relay r to sink+path when a sink is given."""
    out = []
    for n in names:
        secs = {k: dict(v) for k, v in (sections or {}).items()}
        if sink is not None:
            secs["relay:r"] = relay(sink, path, n, **(relay_over or {}))
        out.append(PgDaemon(tap, db, n, sections=secs, **kw))
    return out


def post(d, mid, body="hello", sender="+61400000001", path=IN, timeout=30, **extra):
    fields = {"message_id": mid, "from": sender, "to": "+61400000999", "body": body}
    fields.update(extra)
    return d.request("POST", path, urlencode(fields), {"Content-Type": FORM},
                     timeout=timeout)


def healthz(d, timeout=15):
    try:
        r = d.request("GET", "/healthz", timeout=timeout)
    except OSError as e:
        return None, {"error": str(e)}
    try:
        return r.status, json.loads(r.body)
    except ValueError:
        return r.status, {"unparsed": r.body}


def tool(d, *args, timeout=30, env=None):
    """The operator tool with d's config; (rc, stdout, stderr)."""
    e = daemon_env()
    e.update(d.env)
    e.update(env or {})
    try:
        p = subprocess.run([tool_path(), "-c", d.conf_path] + list(args), capture_output=True,
                           text=True, timeout=timeout, env=e, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "", "[killed after %d s]" % timeout
    rep = sanitizer_report(p.stderr)
    if rep:
        tap.ok(False, "clicksend-relay %s: no sanitizer report" % " ".join(args), rep)
    return p.returncode, p.stdout, p.stderr


def show(rc, out, err):
    return ["exit %r" % rc, "stdout: %s" % out[-1500:], "stderr: %s" % err[-1500:]]


def logs(*ds):
    return ["--- %s:\n%s" % (d.name, d.full_log()[-2500:]) for d in ds]


def count(db, where="true", table="events"):
    return int(db.value("SELECT count(*) FROM %s WHERE %s" % (table, where)) or 0)


def event_ids(db, where="true"):
    return {mid: int(i) for i, mid in db.psql(
        "SELECT id, message_id FROM events WHERE %s" % where)}


def write_conf(path, sections):
    with open(path, "w") as f:
        f.write(render_config(sections))
    return path


def new_db(name):
    return PG.new_database(name)


# --------------------------------------------------------------------------- schema, -t

def test_schema_t():
    db = new_db("schema_t")
    d = PgDaemon(tap, db, "a", start=False)
    rc, out, err = run_relayd(["-t", "-c", d.conf_path], timeout=30)
    tap.check_eq(rc, 0, "-t with [store] url: exit 0", err[-2000:])
    tables = {r[0] for r in db.psql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    tap.ok(set(TABLES + VIEWS) <= tables, "-t creates the tables and views of section 5",
           sorted(tables))
    tap.check_eq(db.psql("SELECT version FROM store_schema"), [(SCHEMA_VERSION,)],
                 "-t records schema version %s once" % SCHEMA_VERSION)
    cols = dict(db.psql("SELECT table_name || '.' || column_name, data_type FROM "
                        "information_schema.columns WHERE table_schema = 'public' AND "
                        "table_name IN ('events', 'deliveries', 'provisioned_rules', "
                        "'relays')"))
    times = ("events.received_at", "deliveries.next_attempt_at", "deliveries.last_attempt_at",
             "deliveries.done_at", "deliveries.claim_until", "provisioned_rules.synced_at",
             "relays.paused_at")
    tap.ok(all(cols.get(c) == "timestamp with time zone" for c in times),
           "time columns are timestamptz", ["%s: %s" % (c, cols.get(c)) for c in times])
    tap.ok("deliveries.claimed_by" in cols, "deliveries has claimed_by and claim_until")
    owner = db.value("SELECT tableowner FROM pg_tables WHERE tablename = 'events'")
    tap.check_eq(owner, db.role, "the tables belong to the daemon's own role")
    rc, out, err = run_relayd(["-t", "-c", d.conf_path], timeout=30)
    tap.ok(rc == 0 and db.psql("SELECT version FROM store_schema") == [(SCHEMA_VERSION,)],
           "-t again: exit 0, the schema left as it is", err[-2000:])

    bad = write_conf(os.path.join(d.dir, "badpass.conf"), {
        "server": {"listen": "127.0.0.1:1"},
        "store": {"url": db.uri.replace(db.password, "wrong" + db.password[5:]),
                  "node": "a"}})
    rc, out, err = run_relayd(["-t", "-c", bad], timeout=60)
    tap.ok(rc not in (0, None), "-t with a wrong password: non-zero exit", [rc, err[-1500:]])
    tap.ok(db.password[5:] not in out + err, "... and the URL's password is not printed",
           err[-1500:])
    free = pgserver._free_port()
    down = write_conf(os.path.join(d.dir, "down.conf"), {
        "server": {"listen": "127.0.0.1:1"},
        "store": {"url": "postgresql://%s:%s@127.0.0.1:%d/%s" % (
            db.role, db.password, free, db.name), "node": "a"}})
    t0 = time.monotonic()
    rc, out, err = run_relayd(["-t", "-c", down], timeout=60)
    tap.ok(rc not in (0, None), "-t when nothing listens at the URL: non-zero exit "
           "(%.1f s)" % (time.monotonic() - t0), [rc, err[-1500:]])
    tap.ok(db.password not in out + err, "... and the password is not printed", err[-1500:])
    both = write_conf(os.path.join(d.dir, "both.conf"), {
        "server": {"listen": "127.0.0.1:1"},
        "store": {"path": os.path.join(d.dir, "x.db"), "url": db.uri, "node": "a"}})
    rc, out, err = run_relayd(["-t", "-c", both], timeout=30)
    tap.ok(rc == 78 and re.search(r"both\.conf:\d+:", err), "path together with url: "
           "exit 78 with FILE:LINE", [rc, err[-1500:]])
    badnode = write_conf(os.path.join(d.dir, "node.conf"), {
        "server": {"listen": "127.0.0.1:1"}, "store": {"url": db.uri, "node": "Node A"}})
    rc, out, err = run_relayd(["-t", "-c", badnode], timeout=30)
    tap.ok(rc == 78 and re.search(r"node\.conf:\d+:", err),
           "a node name outside [a-z0-9_.-]+: exit 78 with FILE:LINE", [rc, err[-1500:]])


def test_schema_at_start():
    db = new_db("schema_start")
    d = PgDaemon(tap, db, "a")
    tap.ok(d.alive(), "the daemon starts on an empty database")
    tap.check_eq(db.psql("SELECT version FROM store_schema"), [(SCHEMA_VERSION,)],
                 "it applies the schema at start")
    n = count(db, "table_schema = 'public'", "information_schema.tables")
    d.restart()
    tap.ok(d.alive() and count(db, "table_schema = 'public'",
                               "information_schema.tables") == n,
           "a restart leaves the schema as it is")
    d.close()


# --------------------------------------------------------------------------- ingest

def test_ingest():
    db = new_db("ingest")
    sink = Sink()
    try:
        (d,) = nodes(db, ["a"], sink)
        r = post(d, "in-1", body="hello there")
        tap.check_eq(r.status, 200, "a form webhook is answered 200", r.body)
        r = d.request("POST", IN, json.dumps([{"message_id": "in-2", "from": "+61400000002",
                                                "body": "json one", "extra": 7},
                                               {"message_id": "in-3", "body": "json two"}]),
                      {"Content-Type": "application/json"})
        tap.check_eq(r.status, 200, "a JSON batch of two is answered 200", r.body)
        r = post(d, "rc-1", path=RECEIPT, status_code="201", status="Delivered")
        tap.check_eq(r.status, 200, "a receipt is answered 200", r.body)
        rows = db.psql("SELECT message_id, kind, format, from_number, body, remote_addr, "
                       "payload, abs(extract(epoch FROM now() - received_at)) < 300 "
                       "FROM events ORDER BY id")
        tap.check_eq([r[:6] if r[1] == "sms.inbound" else r[:3] + r[5:6] for r in rows], [
            ("in-1", "sms.inbound", "post", "+61400000001", "hello there", "127.0.0.1"),
            ("in-2", "sms.inbound", "json", "+61400000002", "json one", "127.0.0.1"),
            ("in-3", "sms.inbound", "json", None, "json two", "127.0.0.1"),
            ("rc-1", "sms.receipt", "post", "127.0.0.1")],
            "the events are in the events table with their columns")
        tap.ok(all(r[7] == "t" for r in rows), "received_at is a timestamptz close to now()",
               [r[7] for r in rows])
        try:
            payload = json.loads(rows[1][6])
        except (ValueError, IndexError):
            payload = None
        tap.ok(payload and payload.get("extra") == 7 and payload.get("body") == "json one",
               "payload keeps every field as received (a JSON number stays a number)",
               rows[1][6] if len(rows) > 1 else rows)
        tap.check_eq(db.value("SELECT status_code FROM receipts WHERE message_id = 'rc-1'"),
                     "201", "the receipts view works on PostgreSQL")
        tap.check_eq(count(db, "relay = 'r'", "deliveries"), 4,
                     "a delivery row for every event and matching relay")
        ok = wait_for(lambda: sorted(sink.message_ids("/r")) == ["in-1", "in-2", "in-3",
                                                                 "rc-1"], 10)
        tap.ok(ok, "the relay receives the four events", sink.message_ids("/r"))
        ids = event_ids(db)
        bad = [g for g in sink.requests("/r") if g["headers"].get("webhook-id") !=
               "evt_%d" % ids.get(g["doc"].get("data", {}).get("message_id"), -1) or
               g["doc"].get("id") != g["headers"].get("webhook-id")]
        tap.ok(not bad, "webhook-id and the document id are evt_<events.id>", bad[:2])
        tap.ok(wait_for(lambda: count(db, "state = 'done'", "deliveries") == 4, 5),
               "the deliveries are done", db.psql("SELECT id, state, attempts, last_result "
                                                  "FROM deliveries"))
        st, h = healthz(d)
        tap.ok(st == 200 and h.get("store") == "ok" and h.get("node") == "a",
               '/healthz: 200, "store":"ok", "node":"a"', [st, h])
        host = socket.gethostname()
        dflt = PgDaemon(tap, db, None, store={"node": None})
        st, h = healthz(dflt)
        want = host if re.match(r"^[a-z0-9_.-]+$", host) else h.get("node")
        tap.ok(st == 200 and h.get("node") and h.get("node") == want,
               "without node, /healthz names the host (%s)" % host, h)
    finally:
        sink.close()


# --------------------------------------------------------------------------- nodes

def test_cross_node_duplicate():
    db = new_db("dupes")
    sink = Sink()
    try:
        a, b = nodes(db, ["a", "b"], sink)
        tap.check_eq(post(a, "dup-1", body="first").status, 200, "node a takes dup-1")
        tap.check_eq(post(b, "dup-1", body="first").status, 200,
                     "ClickSend's retry of dup-1 on node b: 200")
        rows = db.psql("SELECT id, duplicates FROM events WHERE message_id = 'dup-1'")
        tap.check_eq([r[1] for r in rows], ["1"], "one event row, duplicates 1")
        tap.check_eq(count(db, "relay = 'r'", "deliveries"), 1, "one delivery row")
        wait_for(lambda: sink.message_ids("/r"), 5)
        time.sleep(2.5)
        tap.check_eq(sink.message_ids("/r"), ["dup-1"], "the relay gets it once")
        m = b.request("GET", "/metrics").body
        tap.ok(re.search(r'clicksend_relay_events_duplicate_total\{kind="sms\.inbound"\} 1\b',
                         m), "node b counts the duplicate in /metrics",
               [l for l in m.splitlines() if "duplicate" in l])
        # receipts: same message_id, another status_code is a new event
        for d, code in ((a, "201"), (b, "201"), (b, "301"), (a, "301")):
            tap.check_eq(post(d, "dup-r", path=RECEIPT, status_code=code).status, 200,
                         "receipt dup-r status %s on node %s: 200" % (code, d.node))
        tap.check_eq(db.psql("SELECT status_code, duplicates FROM events WHERE "
                             "message_id = 'dup-r' ORDER BY status_code"),
                     [("201", "1"), ("301", "1")],
                     "receipts: one row per status_code, each retried once across nodes")
        # the same message_id arriving on both nodes at once
        results = {}

        def send(d, key):
            results[key] = post(d, "dup-race", body="race").status
        ts = [threading.Thread(target=send, args=(d, i)) for i, d in enumerate((a, b, a, b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(40)
        tap.ok(sorted(results.values()) == [200] * 4 and
               db.psql("SELECT duplicates FROM events WHERE message_id = 'dup-race'") ==
               [("3",)], "four copies at once on two nodes: all 200, one row, duplicates 3",
               [results, db.psql("SELECT id, duplicates FROM events WHERE "
                                 "message_id = 'dup-race'")])
    finally:
        sink.close()


def check_many_nodes(names, per_node):
    db = new_db("nodes_%d" % len(names))
    sink = Sink()
    try:
        ds = nodes(db, names, sink)
        answers = {}
        lock = threading.Lock()

        def sender(d):
            for i in range(per_node):
                mid = "%s-%d" % (d.node, i)
                try:
                    st = post(d, mid, body="n%d" % i).status
                except OSError as e:
                    st = str(e)
                with lock:
                    answers[mid] = st
        ts = [threading.Thread(target=sender, args=(d,)) for d in ds]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        total = len(names) * per_node
        acked = sorted(m for m, st in answers.items() if st == 200)
        tap.check_eq(len(acked), total, "%d nodes: every webhook answered 200" % len(names),
                     [(m, s) for m, s in answers.items() if s != 200][:5])
        ids = event_ids(db)
        tap.ok(sorted(ids) == acked and len(set(ids.values())) == len(ids),
               "%d nodes: every event stored once, ids unique" % len(names),
               ["%d rows" % len(ids)])
        want = {"evt_%d" % i for i in ids.values()}

        def got():
            return {g["headers"].get("webhook-id") for g in sink.requests("/r")}
        wait_for(lambda: want <= got(), 30)
        tap.ok(want <= got(), "%d nodes: every event delivered at least once" % len(names),
               ["missing: %r" % sorted(want - got())[:10]])
        reqs = sink.requests("/r")
        wrong = [g for g in reqs if g["headers"].get("webhook-id") != "evt_%d" % ids.get(
            g["doc"].get("data", {}).get("message_id"), -1)]
        tap.ok(not wrong, "%d nodes: webhook-id is the stored event's id" % len(names),
               [(g["headers"].get("webhook-id"), g["doc"].get("data")) for g in wrong[:3]])
        repeats = len(reqs) - len(got())
        tap.diag("%d nodes: %d requests for %d events (%d repeats); by node: %r" % (
            len(names), len(reqs), len(want), repeats,
            {n: sum(1 for g in reqs if g["headers"].get("x-node") == n) for n in names}))
        tap.ok(wait_for(lambda: count(db, "state <> 'done'", "deliveries") == 0, 10),
               "%d nodes: every delivery done" % len(names),
               db.psql("SELECT id, state, attempts, claimed_by, last_result FROM deliveries "
                       "WHERE state <> 'done' LIMIT 5"))
        # a delivery committed on one node is attempted within a second (slack: 5 s)
        before = len(sink.requests("/r"))
        t0 = time.monotonic()
        tap.check_eq(post(ds[-1], "late-1").status, 200, "one more event on the last node")
        wait_for(lambda: len(sink.requests("/r")) > before, 10, step=0.02)
        late = [g for g in sink.requests("/r")[before:] if
                g["doc"].get("data", {}).get("message_id") == "late-1"]
        dt = (late[0]["t"] - t0) if late else None
        tap.ok(dt is not None and dt < 5, "%d nodes: a new event is attempted promptly "
               "(%s s; documented: within a second)" % (len(names),
                                                  "%.2f" % dt if dt is not None else "never"))
    finally:
        sink.close()


def test_two_nodes():
    check_many_nodes(["a", "b"], 25)


def test_three_nodes():
    check_many_nodes(["a", "b", "c"], 20)


def test_retries_across_nodes():
    """A failing relay on two nodes: every retry is one attempt by one node (claims), the
    attempts counter matches the requests, and the schedule ends in dead."""
    db = new_db("retries")
    sink = Sink()
    try:
        sink.status["/r"] = 500
        ds = nodes(db, ["a", "b"], sink, relay_over={"retry_schedule": "1s 1s 1s"})
        for i in range(6):
            tap.check_eq(post(ds[i % 2], "rt-%d" % i).status, 200, "rt-%d stored" % i)
        ok = wait_for(lambda: count(db, "state = 'dead'", "deliveries") == 6, 40, step=0.25)
        tap.ok(ok, "after the schedule (4 attempts) every delivery is dead",
               db.psql("SELECT id, state, attempts, claimed_by FROM deliveries"))
        time.sleep(1.5)
        per = {}
        for g in sink.requests("/r"):
            per[g["headers"].get("webhook-id")] = per.get(g["headers"].get("webhook-id"), 0) + 1
        att = {"evt_%s" % i: int(n) for i, n in db.psql(
            "SELECT event_id, attempts FROM deliveries")}
        tap.check_eq(per, att, "the sink saw exactly as many requests per event as the "
                     "attempts counted (no attempt made twice by two nodes)")
        tap.ok(att and all(n == 4 for n in att.values()), "4 attempts each (1 + 3 retries)",
               att)
        nodes_seen = {g["headers"].get("x-node") for g in sink.requests("/r")}
        tap.diag("attempts made by nodes %s" % sorted(n for n in nodes_seen if n))
    finally:
        sink.close()


def test_kill_takeover():
    """A node dies (SIGKILL) in the middle of an attempt: its claim expires after the relay
    timeout + 30 s and another node attempts the delivery, with the same webhook-id."""
    db = new_db("takeover")
    sink = Sink()
    try:
        release = sink.hold("/r")
        ds = nodes(db, ["a", "b"], sink, relay_over={"timeout": "1s"})
        by = {d.node: d for d in ds}
        tap.check_eq(post(ds[0], "kill-1").status, 200, "an event is stored")
        first = wait_for(lambda: sink.requests("/r"), 10)
        tap.ok(first, "a node attempts it (the sink holds the answer)")
        if not first:
            return
        holder = first[0]["headers"].get("x-node")
        wid = first[0]["headers"].get("webhook-id")
        if not tap.ok(holder in by, "the attempt names its node (X-Node: %s)" % holder):
            return
        # kill at once: with timeout 1s the attempt would otherwise time out and be retried
        t0 = time.monotonic()
        by[holder].stop(signal.SIGKILL)
        release.set()
        claim = db.psql("SELECT claimed_by, extract(epoch FROM claim_until - now()) "
                        "FROM deliveries")
        tap.ok(len(claim) == 1 and claim[0][0] == holder and
               20 <= float(claim[0][1] or 0) <= 40,
               "the delivery is claimed by %s until about timeout + 30 s from now" % holder,
               claim)
        other = [d for d in ds if d.node != holder][0]
        again = wait_for(lambda: [g for g in sink.requests("/r")
                                  if g["headers"].get("x-node") == other.node], 75, step=0.2)
        dt = time.monotonic() - t0
        tap.ok(again, "node %s attempts the dead node's delivery after its claim expired "
               "(%.1f s after the kill; claim: 31 s)" % (other.node, dt),
               db.psql("SELECT id, state, attempts, claimed_by, claim_until, now() "
                       "FROM deliveries") + logs(other))
        if again:
            tap.check_eq(again[0]["headers"].get("webhook-id"), wid,
                         "the same webhook-id as the first attempt")
            if dt < 15:
                tap.diag("taken over %.1f s after the kill, before the claim expired: the "
                         "node must have learnt another way that %s died" % (dt, holder))
        tap.ok(wait_for(lambda: db.value("SELECT state FROM deliveries") == "done", 10),
               "the delivery ends done", db.psql("SELECT * FROM deliveries"))
        tap.check_eq(post(other, "kill-2").status, 200, "the surviving node keeps taking "
                     "webhooks")
    finally:
        sink.close()


def test_kill_under_traffic():
    """A node killed with -9 while webhooks stream in: everything it acknowledged is in the
    shared store, and the other node carries on (and relays it)."""
    db = new_db("kill_ingest")
    sink = Sink()
    try:
        a, b = nodes(db, ["a", "b"], sink)
        acked, stop = [], threading.Event()

        def traffic():
            i = 0
            while not stop.is_set():
                mid = "ki-%d" % i
                i += 1
                try:
                    if post(a, mid, timeout=10).status == 200:
                        acked.append(mid)
                except OSError:
                    time.sleep(0.05)
        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        wait_for(lambda: len(acked) >= 20, 20)
        a.stop(signal.SIGKILL)
        stop.set()
        t.join(30)
        tap.ok(len(acked) >= 20, "node a acknowledged %d webhooks before the kill" % len(acked))
        stored = set(event_ids(db))
        tap.ok(all(m in stored for m in acked), "every acknowledged webhook is stored",
               [m for m in acked if m not in stored][:10])
        tap.check_eq(post(b, "ki-after").status, 200, "node b keeps taking webhooks")
        want = set(acked) | {"ki-after"}
        ok = wait_for(lambda: want <= set(sink.message_ids("/r")), 60, step=0.25)
        tap.ok(ok, "node b relays them all, the dead node's claims included",
               sorted(want - set(sink.message_ids("/r")))[:10])
    finally:
        sink.close()


# --------------------------------------------------------------------------- provisioning

def test_provisioning_standby():
    from fake_clicksend import FakeClickSend
    db = new_db("provision")
    kinds = "sms.inbound sms.receipt"
    with FakeClickSend("csr-user", "KEY-pg-1") as fake:
        cs = {"username": "csr-user", "api_key": "KEY-pg-1", "api_url": fake.url,
              "public_url": "https://hooks.example.com/clicksend", "provision": kinds}
        ds = [PgDaemon(tap, db, n, sections={"clicksend": dict(cs)}) for n in ("a", "b")]

        def states():
            return [healthz(d)[1].get("provisioning") for d in ds]
        ok = wait_for(lambda: sorted(states()) == ["ok", "standby"], 20)
        tap.ok(ok, 'two nodes: one provisions ("ok"), the other says "standby"', states())
        tap.check_eq([healthz(d)[1].get("node") for d in ds], ["a", "b"],
                     '/healthz names each node ("node")')
        for k in kinds.split():
            tap.check_eq(len(fake.find_rules(k, "clicksend-relay %s" % k)), 1,
                         "one rule for %s, created once" % k)
        tap.check_eq(count(db, "rule_id IS NOT NULL", "provisioned_rules"), 2,
                     "provisioned_rules in the shared store")
        writes = len(fake.writes())
        if not ok:
            return
        leader = ds[states().index("ok")]
        standby = [d for d in ds if d is not leader][0]
        tap.check_eq(leader.stop(), 0, "the provisioning node stops")
        took = wait_for(lambda: healthz(standby)[1].get("provisioning") == "ok", 30)
        tap.ok(took, "the standby node takes provisioning over",
               [healthz(standby)[1]] + logs(standby))
        tap.check_eq(len(fake.writes()), writes, "rules already in place are left alone")


# --------------------------------------------------------------------------- faults

def test_pg_outage():
    db = new_db("outage")
    sink = Sink()
    try:
        a, b = nodes(db, ["a", "b"], sink)
        for i in range(5):
            post(a if i % 2 else b, "pre-%d" % i)
        acked, failed, bad503 = [], [], []
        stop = threading.Event()

        def traffic(d):
            i = 0
            while not stop.is_set():
                mid = "tr-%s-%d" % (d.node, i)
                i += 1
                try:
                    r = post(d, mid, timeout=40)
                except OSError as e:
                    failed.append((mid, str(e)))
                    time.sleep(0.2)
                    continue
                if r.status == 200:
                    acked.append(mid)
                else:
                    failed.append((mid, r.status))
                    ra = r.header("retry-after")
                    if r.status != 503 or not ra or not ra.strip().isdigit():
                        bad503.append((mid, r.status, r.headers))
                time.sleep(0.05)
        ts = [threading.Thread(target=traffic, args=(d,), daemon=True) for d in (a, b)]
        for t in ts:
            t.start()
        time.sleep(1)
        pids = (a.proc.pid, b.proc.pid)
        PG.stop("fast")
        t_down = time.monotonic()
        down = wait_for(lambda: all(healthz(d)[0] == 503 for d in (a, b)), 20)
        tap.ok(down, "PostgreSQL stopped: /healthz 503 on both nodes",
               [healthz(a), healthz(b)])
        r = post(a, "during-1", timeout=40)
        tap.ok(r.status == 503 and (r.header("retry-after") or "").strip().isdigit(),
               "a webhook while PostgreSQL is down: 503 with Retry-After", repr(r))
        time.sleep(max(0, 5 - (time.monotonic() - t_down)))
        PG.start()
        t_up = time.monotonic()
        up = wait_for(lambda: all(healthz(d)[0] == 200 for d in (a, b)), 60, step=0.25)
        tap.ok(up, "PostgreSQL back: both nodes healthy again by themselves (%.1f s)"
               % (time.monotonic() - t_up), [healthz(a), healthz(b)] + logs(a, b))
        n0 = len(acked)
        wait_for(lambda: len(acked) > n0 + 4, 30)
        stop.set()
        for t in ts:
            t.join(60)
        tap.ok(len(acked) > n0 + 4, "webhooks are acknowledged again after the outage")
        tap.ok((a.proc.pid, b.proc.pid) == pids and a.alive() and b.alive(),
               "no node restarted or exited")
        tap.ok(any(st == 503 for _, st in failed), "some traffic saw 503 during the outage",
               failed[:5])
        tap.ok(not bad503, "every refusal was a 503 with a numeric Retry-After", bad503[:3])
        stored = set(event_ids(db))
        lost = [m for m in acked if m not in stored]
        tap.ok(not lost, "every one of the %d acknowledged webhooks is stored" % len(acked),
               lost[:10])
        want = {m for m in acked} | {"pre-%d" % i for i in range(5)}
        wait_for(lambda: want <= set(sink.message_ids("/r")), 40)
        tap.ok(want <= set(sink.message_ids("/r")), "and delivered",
               sorted(want - set(sink.message_ids("/r")))[:10])
        # a crash-like stop (no shutdown) of the server, shorter
        PG.stop("immediate")
        wait_for(lambda: healthz(a)[0] == 503, 20)
        PG.start()
        tap.ok(wait_for(lambda: post(a, "after-crash").status == 200, 60, step=0.5),
               "after an immediate (crash) stop of PostgreSQL the node recovers too",
               logs(a))
    finally:
        if not PG.running():
            PG.start()
        sink.close()


def test_password_secret():
    """Five nodes, each given its password another way: in the URL, PGPASSFILE, the systemd
    credential, an URL with percent-encoded special characters and a key=value string."""
    db = new_db("secret")
    db2 = PG.new_database("secret_odd", password="p@ss/w:rd%%x'q\\%s" % os.urandom(4).hex())
    sink = Sink()
    try:
        tmp = tap.mkdtemp()
        passfile = db.write_passfile(os.path.join(tmp, "pgpass"))
        creds = os.path.join(tmp, "creds")
        os.mkdir(creds)
        with open(os.path.join(creds, "clicksend-store-password"), "w") as f:
            f.write(db.password + "\n")
        a = PgDaemon(tap, db, "a", sections={"relay:r": relay(sink, "/r", "a")})
        b = PgDaemon(tap, db, "b", uri=db.uri_nopass, env={"PGPASSFILE": passfile},
                     sections={"relay:r": relay(sink, "/r", "b")})
        c = PgDaemon(tap, db, "c", uri=db.uri_nopass, env={"CREDENTIALS_DIRECTORY": creds},
                     sections={"relay:r": relay(sink, "/r", "c")})
        d = PgDaemon(tap, db2, "d", sections={"relay:r": relay(sink, "/r2", "d")})
        e = PgDaemon(tap, db2, "e", uri=db2.conninfo,
                     sections={"relay:r": relay(sink, "/r2", "e")})
        ds = (a, b, c, d, e)
        tap.check_eq([post(x, "pw-%s" % x.node).status for x in ds], [200] * 5,
                     "nodes with the password in the URL, PGPASSFILE, the credential, an "
                     "encoded URL and key=value take webhooks")
        tap.check_eq((count(db, "message_id LIKE 'pw-_'"), count(db2, "message_id LIKE "
                                                                   "'pw-_'")), (3, 2),
                     "all stored")
        a, b = ds[0], ds[1]
        # connection errors and reconnection are where a URL gets logged
        PG.stop("fast")
        wait_for(lambda: all(healthz(x)[0] == 503 for x in ds), 20)
        bodies = []
        for x in ds:
            post(x, "pw-down")
            bodies += [x.request("GET", "/healthz").body, x.request("GET", "/metrics").body]
        down = {x.node: tool(x, "stats") for x in (a, d, e)}
        tap.ok(all(r[0] not in (0, None) for r in down.values()),
               "the tool with PostgreSQL down: non-zero exit",
               {k: show(*v) for k, v in down.items()})
        PG.start()
        wait_for(lambda: all(healthz(x)[0] == 200 for x in ds), 60, step=0.25)
        for x in ds:
            bodies += [x.request("GET", "/healthz").body, x.request("GET", "/metrics").body]
            bodies += list(tool(x, "stats")[1:])
        places = {"log of %s" % x.node: x.full_log() for x in ds}
        places["/healthz, /metrics and the tool"] = "\n".join(
            bodies + [o + r for _, o, r in down.values()])
        for x in ds:
            try:
                with open("/proc/%d/cmdline" % x.proc.pid, "rb") as f:
                    places["cmdline of %s" % x.node] = f.read().decode("utf-8", "replace")
            except OSError as err:
                places["cmdline of %s" % x.node] = "unreadable: %s" % err
        secrets = {db.password, db2.password, db2.uri.split(":")[2].split("@")[0],
                   db2.password.replace("\\", "\\\\").replace("'", "\\'")}
        leaks = ["%s in %s" % (pw, k) for k, v in places.items() for pw in secrets if pw in v]
        tap.ok(not leaks, "the password (plain, percent-encoded or quoted) is in no log, "
               "/healthz, /metrics, tool output or process arguments", leaks)
        tap.ok(all(x.full_log() for x in ds), "(the nodes did log something)")
        tap.check_eq([post(x, "pw2-%s" % x.node).status for x in ds], [200] * 5,
                     "every node reconnected with its own credentials")
    finally:
        if not PG.running():
            PG.start()
        sink.close()


# --------------------------------------------------------------------------- controls

def test_pause_every_node():
    db = new_db("pause")
    sink = Sink()
    try:
        ds = nodes(db, ["a", "b", "c"], sink)
        rc, out, err = tool(ds[0], "pause", "nosuch")
        tap.ok(rc not in (0, None) and "nosuch" in err and count(db, "true", "relays") == 0,
               "pause of an unknown relay: an error naming it, nothing written",
               show(rc, out, err))
        rc, out, err = tool(ds[0], "pause", "r", "--reason", "shared maintenance")
        tap.check_eq(rc, 0, "pause r against the shared store: exit 0", err)
        tap.check_eq(db.psql("SELECT paused, pause_reason FROM relays WHERE name = 'r'"),
                     [("1", "shared maintenance")], "the relays table says paused")

        def paused_everywhere():
            return all('clicksend_relay_relay_paused{relay="r"} 1' in
                       d.request("GET", "/metrics").body for d in ds)
        tap.ok(wait_for(paused_everywhere, 6), "every node reports relay r paused "
               "(/metrics) within a few seconds")
        time.sleep(3)      # the outbox may take "a second or two" (clicksend-relay(1))
        for i, d in enumerate(ds):
            tap.check_eq(post(d, "pz-%d" % i).status, 200, "node %s stores pz-%d" % (d.node, i))
        time.sleep(3)
        tap.check_eq(sink.message_ids("/r"), [], "no node attempts the paused relay")
        tap.check_eq(count(db, "state = 'pending'", "deliveries"), 3,
                     "its deliveries stay pending")
        rc, out, err = tool(ds[1], "resume", "r")
        tap.check_eq(rc, 0, "resume r (through another node's config): exit 0", err)
        ok = wait_for(lambda: sorted(sink.message_ids("/r")) == ["pz-0", "pz-1", "pz-2"], 8)
        tap.ok(ok, "after resume every node's pending deliveries run (documented: within 2 s)",
               sink.message_ids("/r"))
    finally:
        sink.close()


def window_max(times, width):
    """The most of times (sorted) in any interval [t, t + width)."""
    return max(sum(1 for u in times if t <= u < t + width) for t in times)


def test_rate_shared():
    """rate = 5/s on two nodes of one store: the nodes take their starts from one budget
    (clicksend-relay.conf(5), rate), so together they start 5 a second, not 5 each."""
    db = new_db("rate")
    sink = Sink()
    try:
        ds = nodes(db, ["a", "b"], sink, relay_over={"rate": "5/s", "concurrency": "8"})
        answers = []

        def sender(d):
            answers.extend(post(d, "%s-%d" % (d.node, i)).status for i in range(20))
        ts = [threading.Thread(target=sender, args=(d,)) for d in ds]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        tap.check_eq(answers.count(200), 40, "40 events stored, 20 through each node")
        done = wait_for(lambda: count(db, "state = 'done'", "deliveries") == 40, 40)
        reqs = sink.requests("/r")
        tap.ok(done and len({g["doc"]["data"]["message_id"] for g in reqs}) == 40,
               "every delivery of the rated relay is done in time", "%d requests" % len(reqs))
        times = sorted(g["t"] for g in reqs)
        worst1, worst2 = window_max(times, 1.0), window_max(times, 2.0)
        by_node = {n: sum(1 for g in reqs if g["headers"].get("x-node") == n) for n in "ab"}
        tap.diag("rate 5/s on 2 nodes: worst 1 s %d, worst 2 s %d, span %.2f s, by node %r" % (
            worst1, worst2, times[-1] - times[0], by_node))
        # the sink sees arrivals, not starts (test_relay_controls.py test_rate): starts
        # of two windows may meet in one second, and of three in two; each node counting
        # alone starts 10 in a second and 20 in two
        tap.ok(worst1 <= 8 and worst2 <= 12, "arrivals in any second stay near 5, in any "
               "two seconds near 10 (each node alone: 10 and 20)",
               "worst one-second window %d, two-second %d" % (worst1, worst2))
        span = times[-1] - times[0]
        tap.ok(span >= 6.0, "40 deliveries at 5/s take about 8 s or more, whichever node "
               "starts them (each node alone: about 4 s)", "%.2f s" % span)
        tap.ok(all(by_node.values()), "both nodes delivered", by_node)
        rows = int(db.value("SELECT count(*) FROM relay_starts WHERE relay = 'r'"))
        tap.ok(rows <= 5, "relay_starts keeps only the starts of the last window", rows)
    finally:
        sink.close()


def test_tool_shared():
    db = new_db("tool")
    sink = Sink()
    try:
        sink.status["/r"] = 410
        a, b = nodes(db, ["a", "b"], sink)
        for d, mid in ((a, "t-1"), (b, "t-2"), (a, "t-3"), (b, "t-4")):
            post(d, mid)
        ok = wait_for(lambda: count(db, "state = 'dead'", "deliveries") == 4, 10)
        tap.ok(ok, "four deliveries end dead (410)")
        ids = event_ids(db)
        rc, out, err = tool(a, "events", "--json")
        try:
            evs = [json.loads(l) for l in out.splitlines() if l.strip()]
        except ValueError:
            evs = []
        tap.ok(rc == 0 and sorted(e.get("message_id") for e in evs) ==
               ["t-1", "t-2", "t-3", "t-4"], "events --json: the events of both nodes",
               show(rc, out, err))
        tap.ok(evs and all(e.get("id") == ids.get(e.get("message_id")) for e in evs),
               "events --json: the ids of the shared store")
        tap.ok(evs and all(TIME_RE.match(str(e.get("received_at"))) for e in evs),
               "events --json: received_at as UTC text YYYY-MM-DDTHH:MM:SS.sssZ",
               [e.get("received_at") for e in evs])
        rc, out, err = tool(b, "events", "--limit", "2", "--json")
        n = len([l for l in out.splitlines() if l.strip()])
        tap.ok(rc == 0 and n == 2, "events --limit 2 through node b's config", show(rc, out, err))
        rc, out, err = tool(b, "deliveries", "--state", "dead")
        rows = [l.split() for l in out.splitlines()[1:] if l.strip()]
        tap.ok(rc == 0 and len(rows) == 4, "deliveries --state dead: four rows",
               show(rc, out, err))
        rc, out, err = tool(a, "stats")
        words = [l.split() for l in out.splitlines()]
        tap.ok(rc == 0 and ["sms.inbound", "4", "0"] in words and ["r", "0", "0", "4"] in words,
               "stats: the shared events and deliveries", show(rc, out, err))
        sink.status["/r"] = 200
        did = db.value("SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id "
                       "WHERE e.message_id = 't-2'")
        rc, out, err = tool(a, "retry", did)
        tap.check_eq(rc, 0, "retry of one dead delivery: exit 0", show(rc, out, err))
        ok = wait_for(lambda: sink.message_ids("/r").count("t-2") == 2 and
                      db.value("SELECT state FROM deliveries WHERE id = %s" % did) == "done", 8)
        tap.ok(ok, "a node attempts the retried delivery within seconds", sink.message_ids("/r"))
        rc, out, err = tool(b, "retry", "--all-dead")
        ok = wait_for(lambda: count(db, "state = 'done'", "deliveries") == 4, 8)
        tap.ok(rc == 0 and ok, "retry --all-dead: every delivery done", show(rc, out, err))
        before = sink.message_ids("/r").count("t-1")
        rc, out, err = tool(a, "replay", str(ids["t-1"]))
        ok = wait_for(lambda: sink.message_ids("/r").count("t-1") == before + 1, 8)
        tap.ok(rc == 0 and ok, "replay of an event: delivered again", show(rc, out, err))
    finally:
        sink.close()


# --------------------------------------------------------------------------- main

TESTS = (test_schema_t, test_schema_at_start, test_ingest, test_cross_node_duplicate,
         test_two_nodes, test_three_nodes, test_retries_across_nodes, test_kill_takeover,
         test_kill_under_traffic, test_provisioning_standby,
         test_pg_outage, test_password_secret, test_pause_every_node, test_rate_shared,
         test_tool_shared)


def main():
    global PG
    reason = pgserver.skip_reason()
    if reason:
        for t in TESTS:
            tap.skip(t.__name__, reason)
        tap.done()
    # a server timezone far from UTC: nothing may depend on the server's own setting
    PG = pgserver.PgServer(tap=tap, timezone="Pacific/Chatham")
    try:
        PG.start()
    except pgserver.PgError as e:
        tap.ok(False, "the test PostgreSQL server starts", str(e))
        tap.done()
    only = set(sys.argv[1:])
    for t in TESTS:
        if not only or t.__name__ in only:
            tap.run(t)
    tap.done()


main()
