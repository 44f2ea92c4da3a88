#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The store writer seen from outside: a delivery
outcome that cannot be recorded is kept and recorded later, never re-run; /healthz says 503
when commits fail (file size limit standing in for a full disk), also with no traffic; a store locked by another
process makes webhooks wait, then 503, while /healthz keeps answering; kill -9 under load
with a relay loses nothing acknowledged; retention keeps up with a large backlog."""

import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Daemon, LOCALHOST, http_request, wait_for, sqlite_only  # noqa: E402

BASE = "/clicksend"
IN = BASE + "/sms/inbound"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

tap = Tap(timeout=240, name="writer")


# --------------------------------------------------------------------------- helpers

class Sink:
    """Loopback receiver answering 200 and counting webhook-ids and event ids."""

    def __init__(self, hold_first=0.0):
        self.lock = threading.Lock()
        self.ids = {}
        self.hold_first = hold_first    # seconds the first request is held before its 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                wid = self.headers.get("webhook-id") or ""
                with sink.lock:
                    first = not sink.ids
                    sink.ids[wid] = sink.ids.get(wid, 0) + 1
                if first and sink.hold_first:
                    time.sleep(sink.hold_first)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None      # a killed daemon resets connections
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def url(self):
        return "http://%s:%d/hook" % (LOCALHOST, self.port)


class LockHolder:
    """A sqlite3 shell holding the store's write lock (BEGIN IMMEDIATE) until release()."""

    def __init__(self, db):
        self.proc = subprocess.Popen(["sqlite3", db], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        tap.procs.append(self.proc)
        self.proc.stdin.write(b".timeout 5000\nBEGIN IMMEDIATE;\nSELECT 'locked-now';\n")
        self.proc.stdin.flush()
        got = b""
        deadline = time.monotonic() + 8
        while b"locked-now" not in got and time.monotonic() < deadline:
            rd, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if rd:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                got += chunk
        self.held = b"locked-now" in got
        self.why = got[:200]

    def release(self):
        try:
            self.proc.stdin.write(b"ROLLBACK;\n.quit\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def post(d, mid, body="x", timeout=15):
    try:
        return d.request("POST", IN, "message_id=%s&from=%%2B61400000001&body=%s" % (mid, body),
                         FORM, timeout=timeout).status
    except OSError:
        return None


def stored_ids(d, prefix):
    rows = d.sql("SELECT message_id FROM events WHERE message_id LIKE '%s%%'" % prefix)
    return set(r["message_id"] for r in rows)


# --------------------------------------------------------------------------- tests

@sqlite_only("a sqlite3 shell holds the SQLite write lock")
def test_outcome_not_repeated():
    """The store is locked when two scripts' attempts end, one done (exit 0) and one
    permanent (exit 3): each outcome is kept and recorded once the lock goes; each script
    ran exactly once."""
    tmp = tap.mkdtemp()
    marks = {r: os.path.join(tmp, "runs-" + r) for r in ("slow", "perm")}
    script = os.path.join(tmp, "slow-relay")
    with open(script, "w") as f:
        f.write("#!%s\nimport sys, time\nsys.stdin.read()\ntime.sleep(1.5)\n"
                "open(sys.argv[1], 'a').write('run\\n')\nsys.exit(int(sys.argv[2]))\n"
                % sys.executable)
    os.chmod(script, 0o755)
    d = Daemon(tap, name="outcome", sections={
        "relay:slow": {"exec": script, "args": marks["slow"] + " 0", "retry_schedule": "1s"},
        "relay:perm": {"exec": script, "args": marks["perm"] + " 3", "retry_schedule": "1s"}})

    def runs(relay):
        p = marks[relay]
        return open(p).read().count("run") if os.path.exists(p) else 0

    try:
        tap.check_eq(post(d, "oc-1"), 200, "outcome: the webhook is stored")
        holder = LockHolder(d.db)
        if not holder.held:
            tap.skip("outcome: recorded later, not repeated", "no lock: %r" % holder.why)
            holder.release()
            return
        time.sleep(6)           # the scripts end at ~1.5 s; their records fail for 4.5 s
        runs_locked = {r: runs(r) for r in marks}
        holder.release()
        q = "SELECT relay, state, attempts FROM deliveries ORDER BY relay"
        wait_for(lambda: all(r["state"] != "pending" for r in d.sql(q)), 40)
        rows = d.sql(q)
        tap.check_eq(runs_locked, {"slow": 1, "perm": 1},
                     "outcome: each script ran once while the store was locked")
        tap.check_eq({r: runs(r) for r in marks}, {"slow": 1, "perm": 1},
                     "outcome: neither script was run again after the lock went")
        tap.check_eq([(r["relay"], r["state"], r["attempts"]) for r in rows],
                     [("perm", "dead", 1), ("slow", "done", 1)],
                     "outcome: the kept outcomes were recorded: done and dead after 1 attempt")
        tap.ok("cannot record the outcome" in d.log(),
               "outcome: the failed record is logged", d.log()[-1500:])
    finally:
        d.close()


@sqlite_only("RLIMIT_FSIZE on the SQLite store file stands in for a full disk")
def test_disk_full():
    """Commits fail (RLIMIT_FSIZE at the store's size stands in for a full disk): webhooks
    503, /healthz 503, nothing refused is stored; lifting the limit brings both back."""
    d = Daemon(tap, name="diskfull")
    try:
        tap.check_eq(post(d, "df-0"), 200, "disk full: a webhook before the limit is stored")
        sizes = [os.path.getsize(p) for p in (d.db, d.db + "-wal") if os.path.exists(p)]
        limit = max(sizes) + 8192
        _, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
        big = "y" * 4000
        answers = {}
        for i in range(200):
            answers["df-%d" % (i + 1)] = post(d, "df-%d" % (i + 1), big)
            if answers["df-%d" % (i + 1)] == 503:
                break
        codes = set(answers.values())
        tap.ok(503 in codes and codes <= {200, 503},
               "disk full: webhooks get 503 once commits fail", repr(sorted(codes, key=str)))
        h = d.request("GET", "/healthz", timeout=5)
        tap.check_eq(h.status, 503, "disk full: /healthz answers 503", h.body[:300])
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        tap.check_eq(post(d, "df-after"), 200, "disk full: webhooks stored again after")
        got = stored_ids(d, "df-")
        acked = set(k for k, v in answers.items() if v == 200) | {"df-0", "df-after"}
        refused = set(k for k, v in answers.items() if v == 503)
        tap.ok(acked <= got, "disk full: every acknowledged webhook is stored",
               sorted(acked - got)[:10])
        tap.ok(not (refused & got), "disk full: no refused webhook is stored",
               sorted(refused & got)[:10])
        ok = wait_for(lambda: d.request("GET", "/healthz", timeout=5).status == 200, 15, 0.5)
        tap.ok(ok, "disk full: /healthz answers 200 again once commits work")
    finally:
        d.close()


@sqlite_only("RLIMIT_FSIZE on the SQLite store file stands in for a full disk")
def test_disk_full_idle():
    """The disk fills while no webhook comes: the writer's idle probe is a real write (not
    a read), so /healthz turns 503 by itself within a few seconds and stays 503, though
    reads still work, until there is room again; both turns are logged once."""
    d = Daemon(tap, name="diskidle")
    try:
        tap.check_eq(post(d, "di-0"), 200, "idle disk full: a webhook before the limit")
        tap.check_eq(d.request("GET", "/healthz", timeout=5).status, 200,
                     "idle disk full: /healthz answers 200 before the limit")
        # Room for the log lines (stderr is a small file) but not for one store page.
        limit = os.path.getsize(d.stderr_path) + 1024
        _, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
        last = {}

        def health(want):
            r = d.request("GET", "/healthz", timeout=5)
            last["r"] = (r.status, r.body[:300])
            return r.status == want

        tap.ok(wait_for(lambda: health(503), 15, 0.5),
               "idle disk full: /healthz answers 503 with no webhook sent", repr(last.get("r")))
        # The outbox reads the store every second and those reads succeed: they must not
        # count as proof that commits work.
        seen = set()
        for _ in range(25):
            seen.add(d.request("GET", "/healthz", timeout=5).status)
            time.sleep(0.2)
        tap.check_eq(seen, {503}, "idle disk full: /healthz stays 503 for 5 s of reads")
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        tap.ok(wait_for(lambda: health(200), 15, 0.5),
               "idle disk full: /healthz answers 200 again once there is room",
               repr(last.get("r")))
        log = d.log()
        tap.ok(log.count("store: commits fail:") == 1 and
               log.count("store: commits work again") == 1,
               "idle disk full: the failure and the recovery are logged once each", log[-1500:])
    finally:
        d.close()


@sqlite_only("a sqlite3 shell holds the SQLite write lock")
def test_locked_under_load():
    """Another process holds the write lock for 2 s under 4 posting threads: /healthz always
    answers within its 1 s client timeout, webhooks get 200 or 503 and every 200 is stored."""
    d = Daemon(tap, name="locked")
    try:
        tap.check_eq(post(d, "lk-warm"), 200, "locked: the store works before the lock")
        stop = threading.Event()
        answers = {}
        alock = threading.Lock()

        def poster(n):
            i = 0
            while not stop.is_set():
                mid = "lk-%d-%d" % (n, i)
                st = post(d, mid, timeout=20)
                with alock:
                    answers[mid] = st
                i += 1

        health = []

        def prober():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    st = http_request(d.port, "GET", "/healthz", timeout=1).status
                except OSError as e:
                    st = "no answer (%s)" % e
                health.append((st, time.monotonic() - t0))
                time.sleep(0.1)

        threads = [threading.Thread(target=poster, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=prober))
        for t in threads:
            t.start()
        time.sleep(0.5)
        holder = LockHolder(d.db)
        if holder.held:
            time.sleep(2)
        holder.release()
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(30)
        if not holder.held:
            tap.skip("locked: /healthz answers throughout", "no lock: %r" % holder.why)
            return
        bad = [h for h in health if not isinstance(h[0], int)]
        tap.ok(len(health) > 10 and not bad,
               "locked: /healthz answered every probe within 1 s while the store was locked",
               ["%d probes" % len(health)] + [repr(b) for b in bad[:5]])
        codes = set(answers.values())
        tap.ok(codes <= {200, 503}, "locked: webhooks got only 200 or 503",
               repr(sorted(codes, key=str)))
        got = stored_ids(d, "lk-")
        acked = set(k for k, v in answers.items() if v == 200)
        refused = set(k for k, v in answers.items() if v == 503)
        tap.ok(acked <= got, "locked: every 200 is stored", sorted(acked - got)[:10])
        tap.ok(not (refused & got), "locked: no 503 is stored", sorted(refused & got)[:10])
        tap.diag("locked: %d answers, %d refused" % (len(answers), len(refused)))
    finally:
        d.close()


def test_kill9_rounds():
    """kill -9 under concurrent load with a URL relay, three rounds: every acknowledged
    event stored, integrity_check ok; after the last restart every delivery done and
    received."""
    sink = Sink()
    d = Daemon(tap, name="kill9", sections={"relay:sink": {
        "url": sink.url(), "retry_schedule": "1s", "timeout": "5s"}})
    acked = set()
    try:
        for rnd in range(3):
            stop = threading.Event()
            alock = threading.Lock()

            def poster(n, rnd=rnd, stop=stop, alock=alock):
                i = 0
                while not stop.is_set() and i < 2000:
                    mid = "k9-%d-%d-%d" % (rnd, n, i)
                    if post(d, mid, timeout=5) == 200:
                        with alock:
                            acked.add(mid)
                    i += 1

            threads = [threading.Thread(target=poster, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            rc = d.stop(signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join(30)
            if not tap.sqlite_only("PRAGMA integrity_check",
                                   "kill -9 round %d: integrity_check" % (rnd + 1)):
                integ = d.sql_value("PRAGMA integrity_check")
                tap.check_eq(integ, "ok", "kill -9 round %d: integrity_check" % (rnd + 1))
            got = stored_ids(d, "k9-")
            tap.ok(rc == -signal.SIGKILL and acked <= got,
                   "kill -9 round %d: every acknowledged event is stored" % (rnd + 1),
                   ["%d acknowledged, %d stored" % (len(acked), len(got))]
                   + sorted(acked - got)[:10])
            d.start()
        tap.ok(len(acked) > 100, "kill -9: the load was real", "%d acknowledged" % len(acked))
        pending = wait_for(lambda: d.sql_value(
            "SELECT count(*) FROM deliveries WHERE state <> 'done'") == 0, 90, 0.5)
        counts = d.sql("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
        tap.ok(pending, "kill -9: after restart every delivery is done", repr(counts))
        n_ev = d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'k9-%'")
        n_dl = d.sql_value("SELECT count(*) FROM deliveries")
        tap.check_eq(n_dl, n_ev, "kill -9: one delivery per stored event")
        with sink.lock:
            received = len([k for k in sink.ids if k])
        tap.ok(received >= n_ev, "kill -9: the sink received every event at least once",
               "%d distinct webhook-ids for %d events" % (received, n_ev))
    finally:
        d.close()
        sink.server.shutdown()


def test_retention_catches_up():
    """5000 expired events are all deleted in one go, not 1000 a minute."""
    d = Daemon(tap, name="retention")
    try:
        d.stop()
        q = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
             "INSERT INTO events (kind, format, received_at, message_id, payload, dedupe_key) "
             "SELECT 'sms.inbound', 'post', '2020-01-01T00:00:00.000Z', 'old-' || i, '{}', "
             "'sms.inbound:old-' || i FROM n")
        d.sql(q, timeout=30)         # the same SQL on both backends
        tap.check_eq(d.sql_value("SELECT count(*) FROM events"), 5000,
                     "retention: 5000 old events preloaded")
        d.reconfigure(store={"retention": "1d"})
        d.start()
        gone = wait_for(lambda: d.sql_value(
            "SELECT count(*) FROM events WHERE message_id LIKE 'old-%'") == 0, 30, 0.5)
        left = d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'old-%'")
        tap.ok(gone, "retention: all 5000 expired events deleted within 30 s",
               "%d left" % left)
        tap.check_eq(post(d, "ret-new"), 200, "retention: new events still stored")
        tap.check_eq(d.sql_value("SELECT count(*) FROM events WHERE message_id = 'ret-new'"),
                     1, "retention: a fresh event is kept")
    finally:
        d.close()


@sqlite_only("RLIMIT_FSIZE on the SQLite store file stands in for a full disk")
def test_failed_record_keeps_slot():
    """While outcomes cannot be recorded (the disk full: reads still work, so due rows keep
    coming), attempts do not pile up: with concurrency 1, at most 16 outcomes wait for
    their record before no new attempt starts, and an attempt whose record failed takes its
    slot back. Once there is room, all 60 deliveries are done, each sent once."""
    sink = Sink(hold_first=2.0)
    d = Daemon(tap, name="recslot", sections={
        "relay:one": {"url": sink.url(), "concurrency": "1"}})
    try:
        codes = [post(d, "rs-%d" % i) for i in range(60)]
        tap.check_eq(codes, [200] * 60, "record slot: 60 webhooks stored")
        tap.ok(wait_for(lambda: len(sink.ids) >= 1, 10, 0.05),
               "record slot: the first attempt reached the sink (held there 2 s)", sink.ids)
        _, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (1, hard))
        time.sleep(8)           # the held attempt ends at ~2 s; records fail from then on
        during = len(sink.ids)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        tap.ok(during <= 18, "record slot: at most 16 outcomes (and the attempts in flight) "
               "wait for their record while the disk is full", "%d sent" % during)
        done = wait_for(lambda: d.sql_value(
            "SELECT count(*) FROM deliveries WHERE state = 'done'") == 60, 60, 0.2)
        tap.ok(done and len(sink.ids) == 60 and set(sink.ids.values()) == {1},
               "record slot: once there is room all 60 are done, each sent once",
               "%d sent, counts %r" % (len(sink.ids), set(sink.ids.values())))
    finally:
        d.close()

def wal_index(db):
    """mxFrame (WAL pages committed) and nBackfill (pages copied into the database) from
    the WAL-index header of DB's -shm file (native byte order, offsets 16 and 96)."""
    import struct
    with open(db + "-shm", "rb") as f:
        head = f.read(100)
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


@sqlite_only("the WAL and its checkpoints are SQLite's")
def test_checkpoint_thread():
    """The daemon's checkpoints run on a thread of their own: a WAL far below SQLite's
    1000-page autocheckpoint is copied into the database file within a few idle seconds
    (SQLite on its own would leave it until 1000 pages), and under a stream of writes the
    WAL keeps being copied and rewound, nothing lost."""
    d = Daemon(tap, name="ckpt")
    try:
        codes = [post(d, "ck-%d" % i) for i in range(20)]
        tap.ok(codes == [200] * 20, "checkpoint: 20 webhooks stored", repr(set(codes)))
        frames = wal_index(d.db)
        tap.ok(frames[0] > 0, "checkpoint: the WAL holds the commits", repr(frames))
        done = wait_for(lambda: wal_index(d.db)[1] == wal_index(d.db)[0], 8, 0.2)
        tap.ok(done, "checkpoint: an idle daemon copies its WAL into the database within a "
               "few seconds", "mxFrame, nBackfill: %r" % (wal_index(d.db),))
        errs = []

        def stream(t):
            for i in range(300):
                try:
                    if post(d, "ck-%d-%d" % (t, i)) != 200:
                        errs.append(i)
                except OSError as e:
                    errs.append(str(e))
        th = [threading.Thread(target=stream, args=(t,)) for t in range(4)]
        for t in th:
            t.start()
        for t in th:
            t.join(120)
        tap.ok(not errs, "checkpoint: 1200 more webhooks stored while checkpoints run",
               errs[:5])
        tap.check_eq(d.sql_value("SELECT count(*) FROM events"), 1220,
                     "checkpoint: every event is in the store")
        wal = os.path.getsize(d.db + "-wal")
        tap.ok(wal < 16000 * 4200, "checkpoint: the WAL stays bounded (%d bytes)" % wal)
        tap.check_eq(d.sql_value("PRAGMA integrity_check"), "ok",
                     "checkpoint: integrity_check ok")
    finally:
        d.close()


tap.run(test_outcome_not_repeated)
tap.run(test_disk_full)
tap.run(test_disk_full_idle)
tap.run(test_locked_under_load)
tap.run(test_kill9_rounds)
tap.run(test_retention_catches_up)
tap.run(test_checkpoint_thread)
tap.run(test_failed_record_keeps_slot)
tap.done()
