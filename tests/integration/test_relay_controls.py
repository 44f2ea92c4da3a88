#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Relay controls (clicksend-relay(1)): pause and resume (in flight, across a
restart, unknown names), pause_after, rate measured from a sink's arrival times, ordered
delivery with retries and a 410, unkeyed events, and orphaned deliveries (relays, drop,
retry --relay)."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Daemon, LOCALHOST, daemon_env, tool_path, wait_for  # noqa: E402

IN = "/clicksend/sms/inbound"
RECEIPT = "/clicksend/sms/receipt"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
tap = Tap(timeout=240, name="relay-controls")


class Sink:
    """Records (time, path, document) per request; answers per path from a plan (list of
    (status, delay) used in order) or the path's default."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []
        self.plans = {}
        self.defaults = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                doc = json.loads(self.rfile.read(n) or b"{}")
                with sink.lock:
                    plan = sink.plans.get(self.path) or []
                    status, delay = plan.pop(0) if plan else sink.defaults.get(
                        self.path, (200, 0))
                if delay:
                    time.sleep(delay)
                with sink.lock:
                    sink.got.append((time.monotonic(), self.path, doc, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def url(self, path):
        return "http://%s:%d%s" % (LOCALHOST, self.port, path)

    def requests(self, path):
        with self.lock:
            return [g for g in self.got if g[1] == path]

    def close(self):
        self.server.shutdown()


def tool(d, *args):
    p = subprocess.run([tool_path(), "-c", d.conf_path] + list(args), capture_output=True,
                       text=True, timeout=30, env=daemon_env())
    return p.returncode, p.stdout, p.stderr


def post(d, mid, sender="+61400000001", body="hi"):
    return d.request("POST", IN, "message_id=%s&from=%s&body=%s" % (
        mid, sender.replace("+", "%2B"), body), FORM).status


def mids(reqs):
    return [r[2]["data"].get("message_id") for r in reqs]


def test_pause_resume():
    sink = Sink()
    sink.plans["/a"] = [(200, 1.5)]
    d = Daemon(tap, name="pause", sections={
        "relay:a": {"url": sink.url("/a"), "retry_schedule": "1s"},
        "relay:b": {"url": sink.url("/b")}})
    try:
        rc, out, err = tool(d, "pause", "nosuch")
        tap.ok(rc != 0 and "nosuch" in err, "pause of an unknown relay: an error naming it",
               [rc, err])
        tap.check_eq(d.sql_value("SELECT count(*) FROM relays"), 0,
                     "pause of an unknown relay writes nothing")
        tap.check_eq(post(d, "p-1"), 200, "an event is stored")
        tap.ok(wait_for(lambda: d.sql_value(
            "SELECT count(*) FROM deliveries WHERE relay = 'a' AND attempts = 0") == 1 and
            len(sink.requests("/a")) == 0, 2) is not None, "its attempt is in flight")
        time.sleep(0.3)
        rc, out, err = tool(d, "pause", "a", "--reason", "maintenance window")
        tap.check_eq(rc, 0, "pause a: exit 0", err)
        done = wait_for(lambda: d.sql_value(
            "SELECT state FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE relay = 'a' AND e.message_id = 'p-1'") == "done", 5)
        tap.ok(done, "the attempt in flight when paused finishes (done)")
        for i in (2, 3):
            post(d, "p-%d" % i)
        time.sleep(3)
        tap.check_eq(mids(sink.requests("/a")), ["p-1"],
                     "while paused, no new attempts for the paused relay")
        tap.check_eq(sorted(mids(sink.requests("/b"))), ["p-1", "p-2", "p-3"],
                     "the other relay is unaffected")
        tap.check_eq(d.sql_value("SELECT count(*) FROM deliveries WHERE relay = 'a' AND "
                                 "state = 'pending'"), 2, "the paused relay's deliveries "
                     "stay pending")
        m = d.request("GET", "/metrics").body
        tap.ok('clicksend_relay_relay_paused{relay="a"} 1' in m and
               'clicksend_relay_relay_paused{relay="b"} 0' in m,
               "/metrics relay_paused is 1 for a, 0 for b")
        h = json.loads(d.request("GET", "/healthz").body)
        tap.check_eq(h.get("paused"), ["a"], "/healthz lists the paused relay")
        rc, out, err = tool(d, "relays", "--json")
        rows = {r["relay"]: r for r in map(json.loads, out.splitlines())} if rc == 0 else {}
        tap.ok(rows.get("a", {}).get("paused") is True and
               rows["a"].get("pause_reason") == "maintenance window" and
               rows["a"].get("pending") == 2 and rows.get("b", {}).get("paused") is False,
               "relays --json: paused, why, pending", out)
        d.restart()
        time.sleep(3)
        tap.check_eq(mids(sink.requests("/a")), ["p-1"], "still paused after a restart")
        rc, out, err = tool(d, "resume", "a", "--reason", "x")
        tap.ok(rc == 64 and "--reason" in err, "resume takes no --reason: usage error naming it",
               [rc, err])
        t0 = time.monotonic()
        rc, out, err = tool(d, "resume", "a")
        tap.check_eq(rc, 0, "resume a: exit 0", err)
        got = wait_for(lambda: len(sink.requests("/a")) == 3, 10)
        dt = time.monotonic() - t0
        tap.ok(got and dt < 4, "after resume the waiting deliveries go within about 2 s",
               "%d received after %.1f s" % (len(sink.requests("/a")), dt))
        tap.check_eq(d.sql_value("SELECT paused FROM relays WHERE name = 'a'"), 0,
                     "the relays table says resumed")
    finally:
        d.close()
        sink.close()


def test_pause_after():
    sink = Sink()
    sink.defaults["/f"] = (500, 0)
    d = Daemon(tap, name="pauseafter", sections={"relay:f": {
        "url": sink.url("/f"), "retry_schedule": "1s 1s 1s 1s 1s 1s 1s 1s",
        "pause_after": "2s"}})
    try:
        post(d, "pa-1")
        paused = wait_for(lambda: d.sql_value(
            "SELECT paused FROM relays WHERE name = 'f'") == 1, 15)
        tap.ok(paused, "a relay failing every attempt for pause_after is paused")
        reason = d.sql_value("SELECT pause_reason FROM relays WHERE name = 'f'") or ""
        tap.ok(reason.startswith("auto: failing since "), "with reason auto: failing since",
               reason)
        n = len(sink.requests("/f"))
        tap.ok(n >= 3, "after at least three failed attempts", "%d attempts" % n)
        tap.ok("relay paused" in d.log(), "a warning is logged", d.log()[-800:])
        time.sleep(2.5)
        got = len(sink.requests("/f"))
        tap.check_eq(got, n, "no attempts while auto-paused")
        sink.defaults["/f"] = (200, 0)
        rc, out, err = tool(d, "resume", "f")
        done = wait_for(lambda: d.sql_value(
            "SELECT state FROM deliveries WHERE relay = 'f'") == "done", 10)
        tap.ok(rc == 0 and done, "resume lets it go again: delivered", err)
    finally:
        d.close()
        sink.close()


def test_rate():
    sink = Sink()
    d = Daemon(tap, name="rate", sections={
        "relay:slow": {"url": sink.url("/slow"), "rate": "5/s", "concurrency": "8"},
        "relay:fast": {"url": sink.url("/fast")}})
    try:
        for i in range(20):
            post(d, "r-%d" % i)
        tap.ok(wait_for(lambda: len(sink.requests("/fast")) == 20, 10),
               "the relay without a rate gets all 20 at once")
        tap.ok(wait_for(lambda: len(sink.requests("/slow")) == 20, 20),
               "the rate-limited relay gets all 20 in time")
        times = sorted(r[0] for r in sink.requests("/slow"))
        worst = max(sum(1 for u in times if t <= u < t + 2.0) for t in times)
        # the sink sees arrivals, not starts: an attempt's way to the sink may take a few
        # hundred ms on a loaded machine, so starts of three windows can meet in two seconds
        tap.ok(worst <= 15, "rate 5/s: arrivals in any two seconds stay below 3 windows' worth "
               "(all 20 at once without the rate)", "worst two-second window: %d" % worst)
        span = times[-1] - times[0]
        tap.ok(span >= 2.5, "rate 5/s: 20 deliveries take about 3 s or more",
               "%.2f s" % span)
    finally:
        d.close()
        sink.close()


def test_ordered():
    sink = Sink()
    # the first attempt for A1 fails twice (retries), A2 and A3 must wait for it;
    # B1 gets a 410 (dead), which releases B2; unkeyed events never wait
    d = Daemon(tap, name="ordered", sections={"relay:o": {
        "url": sink.url("/o"), "ordered": "yes", "retry_schedule": "1s 1s 1s",
        "concurrency": "4"}})
    plan_by_mid = {"A1": [500, 500, 200], "B1": [410]}
    try:
        # answers planned per message id, so the order of arrival does not matter
        counts = {}

        def status_for(doc):
            mid = doc["data"].get("message_id")
            seq = plan_by_mid.get(mid)
            i = counts.get(mid, 0)
            counts[mid] = i + 1
            return seq[i] if seq and i < len(seq) else 200
        handler = sink.server.RequestHandlerClass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            doc = json.loads(self.rfile.read(n) or b"{}")
            with sink.lock:
                st = status_for(doc)
                sink.got.append((time.monotonic(), self.path, doc, st))
            self.send_response(st)
            self.send_header("Content-Length", "0")
            self.end_headers()
        handler.do_POST = do_POST
        post(d, "A1", "+61400000011")
        post(d, "B1", "+61400000022")
        post(d, "A2", "+61400000011")
        post(d, "B2", "+61400000022")
        post(d, "A3", "+61400000011")
        st = d.request("POST", IN, "message_id=U1&body=nofrom", FORM).status
        st2 = d.request("POST", IN, "message_id=U2&body=nofrom", FORM).status
        tap.ok(st == 200 and st2 == 200, "two events without a sender are stored")
        done = wait_for(lambda: d.sql_value(
            "SELECT count(*) FROM deliveries WHERE state = 'pending'") == 0, 20)
        tap.ok(done, "every delivery ends")
        seq = [(r[2]["data"].get("message_id"), r[3], r[0]) for r in sink.requests("/o")]
        order = [m for m, s, t in seq]

        def first(m):
            return next(t for mm, s, t in seq if mm == m)

        def last_ok(m):
            return max(t for mm, s, t in seq if mm == m)
        tap.check_eq(order.count("A1"), 3, "A1 was retried twice before it went through")
        tap.ok(first("A2") > last_ok("A1") and first("A3") > last_ok("A2"),
               "A2 waits through A1's retries, A3 waits for A2 (event id order)", order)
        tap.ok(first("B2") > first("B1"), "B1's 410 (dead) releases B2", order)
        states = dict((r["message_id"], r["state"]) for r in d.sql(
            "SELECT e.message_id, d.state FROM deliveries d JOIN events e ON e.id = d.event_id"))
        tap.check_eq(states.get("B1"), "dead", "the 410 made B1 dead")
        tap.ok(first("B1") < last_ok("A1"), "another conversation does not wait for A",
               order)
        tap.ok(first("U1") < last_ok("A1") and first("U2") < last_ok("A1"),
               "events without a sender never wait", order)
    finally:
        d.close()
        sink.close()


def answer_by_mid(sink, plan_by_mid):
    """The sink answers each message id from its list in plan_by_mid in turn (then 200)."""
    counts = {}

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        doc = json.loads(self.rfile.read(n) or b"{}")
        mid = doc["data"].get("message_id")
        with sink.lock:
            i = counts.get(mid, 0)
            counts[mid] = i + 1
            seq = plan_by_mid.get(mid) or []
            st = seq[i] if i < len(seq) else 200
            sink.got.append((time.monotonic(), self.path, doc, st))
        self.send_response(st)
        self.send_header("Content-Length", "0")
        self.end_headers()
    sink.server.RequestHandlerClass.do_POST = do_POST


def test_ordered_retry_earlier():
    """retry of an earlier, dead delivery of a conversation: it goes first again, and the
    later one that had been released waits behind it (event id order, one at a time)."""
    sink = Sink()
    answer_by_mid(sink, {"K1": [410, 500, 200], "K2": [500, 200]})
    d = Daemon(tap, name="orderretry", sections={"relay:o": {
        "url": sink.url("/o"), "ordered": "yes", "retry_schedule": "2s 2s 2s",
        "concurrency": "4"}})
    try:
        for m in ("K1", "K2", "K3"):
            post(d, m, "+61400000044")
        q = ("SELECT d.%s FROM deliveries d JOIN events e ON e.id = d.event_id "
             "WHERE e.message_id = '%s'")
        wait_for(lambda: d.sql_value(q % ("attempts", "K2")) == 1, 10)
        k1 = d.sql_value(q % ("id", "K1"))
        rc, out, err = tool(d, "retry", str(k1))
        t_retry = time.monotonic()
        tap.ok(rc == 0 and d.sql_value(q % ("blocked", "K2")) == 1 and
               d.sql_value(q % ("blocked", "K1")) == 0,
               "retry of the dead K1: K1 goes, K2 (released by K1's death) waits again",
               [rc, err, d.sql("SELECT id, state, blocked, attempts FROM deliveries")])
        done = wait_for(lambda: d.sql_value(
            "SELECT count(*) FROM deliveries WHERE state = 'done'") == 3, 20)
        seq = [(r[2]["data"].get("message_id"), r[0]) for r in sink.requests("/o")]
        k1_ok = max(t for m, t in seq if m == "K1")
        k2_after = [t for m, t in seq if m == "K2" and t > t_retry]
        tap.ok(done and k2_after and min(k2_after) > k1_ok and
               min(t for m, t in seq if m == "K3") > max(k2_after),
               "K2 is attempted only after the retried K1 is done, then K3",
               [m for m, t in seq])
    finally:
        d.close()
        sink.close()


def test_unordered_again():
    """A relay that is no longer ordered lets its waiting deliveries go."""
    sink = Sink()
    sink.defaults["/u"] = (500, 0)
    d = Daemon(tap, name="unorder", sections={"relay:u": {
        "url": sink.url("/u"), "ordered": "yes", "retry_schedule": "1h"}})
    try:
        post(d, "W1", "+61400000033")
        post(d, "W2", "+61400000033")
        wait_for(lambda: len(sink.requests("/u")) >= 1, 5)
        time.sleep(1.5)
        blocked = d.sql_value("SELECT blocked FROM deliveries d JOIN events e ON "
                              "e.id = d.event_id WHERE e.message_id = 'W2'")
        tap.ok(blocked == 1 and mids(sink.requests("/u")) == ["W1"],
               "ordered: W2 waits while W1 is pending", [blocked, mids(sink.requests("/u"))])
        d.stop()
        d.sections["relay:u"]["ordered"] = "no"
        d.write_config()
        d.start()
        got = wait_for(lambda: "W2" in mids(sink.requests("/u")), 10)
        tap.ok(got, "after ordered = no the waiting delivery goes",
               mids(sink.requests("/u")))
    finally:
        d.close()
        sink.close()


def test_orphans():
    sink = Sink()
    d = Daemon(tap, name="orphans", sections={
        "relay:old": {"url": "http://127.0.0.1:9/gone", "retry_schedule": "1h"},
        "relay:new": {"url": sink.url("/new")}})
    try:
        for i in range(3):
            post(d, "o-%d" % i)
        wait_for(lambda: d.sql_value("SELECT count(*) FROM deliveries WHERE relay = 'old' "
                                     "AND attempts = 1") == 3, 10)
        d.stop()
        d.sections.pop("relay:old")
        d.write_config()
        d.start()
        rc, out, err = tool(d, "relays", "--json")
        rows = {r["relay"]: r for r in map(json.loads, out.splitlines())} if rc == 0 else {}
        tap.ok(rows.get("old", {}).get("status") == "orphaned" and
               rows["old"].get("pending") == 3, "relays lists the removed relay as orphaned",
               out)
        rc, out, err = tool(d, "pause", "old")
        tap.ok(rc != 0, "pause of a relay no longer configured is an error", err)
        ids = [r["id"] for r in d.sql("SELECT id FROM deliveries WHERE relay = 'old' "
                                      "ORDER BY id")]
        # o-0 already has a delivery for "new": moving it there is refused, kept as is
        rc, out, err = tool(d, "retry", str(ids[0]), "--relay", "new")
        tap.ok(rc != 0 and "not moved" in err,
               "retry --relay to a relay the event already has: refused with a message", err)
        extra = d.sql_value("SELECT id FROM events WHERE message_id = 'o-1'")
        d.sql("DELETE FROM deliveries WHERE relay = 'new' AND event_id = %d" % extra)
        rc, out, err = tool(d, "retry", str(ids[1]), "--relay", "new")
        tap.check_eq(rc, 0, "retry --relay moves an orphaned delivery", err)
        moved = wait_for(lambda: d.sql_value(
            "SELECT state FROM deliveries WHERE id = %d" % ids[1]) == "done", 10)
        tap.ok(moved and d.sql_value("SELECT relay FROM deliveries WHERE id = %d" % ids[1])
               == "new", "the moved delivery is delivered by the new relay")
        rc, out, err = tool(d, "drop", "new")
        tap.ok(rc != 0, "drop of a configured relay is refused", err)
        rc, out, err = tool(d, "drop", "old")
        rows = d.sql("SELECT state, last_result FROM deliveries WHERE relay = 'old'")
        tap.ok(rc == 0 and len(rows) == 2 and all(r["state"] == "dead" and
               "no longer configured" in (r["last_result"] or "") for r in rows),
               "drop marks the orphaned deliveries dead with a reason", [out, err, rows])
        tap.check_eq(d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'o-%'"),
                     3, "nothing is deleted")
    finally:
        d.close()
        sink.close()


tap.run(test_pause_resume)
tap.run(test_pause_after)
tap.run(test_rate)
tap.run(test_ordered)
tap.run(test_ordered_retry_earlier)
tap.run(test_unordered_again)
tap.run(test_orphans)
tap.done()
