#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Relays end to end over loopback (clicksend-relay.conf(5), RELAY DOCUMENT): the document
and headers an HTTP relay receives (Standard Webhooks signature checked independently),
delivery rows and filters, retries (5xx, 410, 429 Retry-After, timeout, dropped connection),
per-relay concurrency, script relays (stdin, clean environment, args, exit codes, timeout,
logging), outage plus restart, kill -9 in flight, graceful shutdown, /metrics and
/healthz."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import (Tap, Daemon, DaemonError, run_relayd, sql_quote, time_ok,  # noqa: E402
                     same_json, json_diff, sqlite_json, LOCALHOST)

BASE = "/clicksend"
CANARY = "SECRET_CANARY"

tap = Tap(timeout=170)

# A variable the daemon inherits (harness passes our environment on) and must not hand on
# to scripts.
os.environ[CANARY] = "canary-must-not-leak"


# --------------------------------------------------------------------------- helpers

def wait_for(pred, timeout, interval=0.1):
    """Poll pred() until it is truthy or timeout passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def relayd_version():
    rc, out, err = run_relayd(["-V"], timeout=5)
    m = re.search(r"(\d+\.\d+[^\s]*)", out + err)
    return m.group(1) if m else None


def post_event(d, kind_path, obj, fmt="json"):
    """Send obj in format fmt; (response, seconds it took, payload as it should be stored)."""
    t0 = time.monotonic()
    if fmt == "json":
        r = d.post_json(BASE + kind_path, obj)
        expected = obj
    else:
        pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in obj.items()]
        enc = urllib.parse.urlencode(pairs)
        expected = dict(pairs)
        if fmt == "get":
            r = d.get(BASE + kind_path + "?" + enc)
        else:
            r = d.post(BASE + kind_path, enc)
    return r, time.monotonic() - t0, expected


def event_row(d, message_id):
    rows = d.sql("SELECT * FROM events WHERE message_id = %s ORDER BY id" % sql_quote(message_id))
    return rows[0] if rows else None


def deliveries(d, where="1 = 1"):
    return d.sql("SELECT * FROM deliveries WHERE %s ORDER BY id" % where)


def by_relay(rows):
    return {r["relay"]: r for r in rows}


def wait_settled(d, where, timeout):
    """Wait until no delivery matching where is pending; the rows."""
    def settled():
        rows = deliveries(d, where)
        if rows and all(r["state"] != "pending" for r in rows):
            return rows
        return None
    rows = wait_for(settled, timeout)
    return rows if rows else deliveries(d, where)


def log_tail(d, n=2500):
    return "daemon log (tail):\n" + d.log()[-n:]


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        try:
            val = float(m.group(3))
        except ValueError:
            continue
        out[(m.group(1), frozenset(labels.items()))] = val
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())))


def metric_lines(text, name):
    return [l for l in text.splitlines() if l.startswith(name)]


def check_gauges(d, relays, what):
    """outbox_pending/outbox_dead per relay and /healthz pending/dead agree with the rows
    (polled briefly: gauges may be refreshed a little after the rows change)."""
    def compare():
        rows = deliveries(d)
        want = {}
        for rel in relays:
            want[rel] = (sum(1 for r in rows if r["relay"] == rel and r["state"] == "pending"),
                         sum(1 for r in rows if r["relay"] == rel and r["state"] == "dead"))
        text = d.get("/metrics").body
        ms = parse_metrics(text)
        got = {rel: (metric(ms, "clicksend_relay_outbox_pending", relay=rel),
                     metric(ms, "clicksend_relay_outbox_dead", relay=rel)) for rel in relays}
        _, hz = d.healthz()
        hz_want = (sum(1 for r in rows if r["state"] == "pending"),
                   sum(1 for r in rows if r["state"] == "dead"))
        hz_got = (hz or {}).get("pending"), (hz or {}).get("dead")
        good = all(got[rel] == (float(want[rel][0]), float(want[rel][1])) for rel in relays) \
            and hz_got == hz_want
        return good, ["rows (pending, dead) per relay: %r" % want,
                      "metrics (pending, dead) per relay: %r" % got,
                      "healthz (pending, dead): %r, rows: %r" % (hz_got, hz_want),
                      "\n".join(metric_lines(text, "clicksend_relay_outbox"))]
    res = wait_for(lambda: compare() if compare()[0] else None, 3, 0.2)
    if res is None:
        res = compare()
    tap.ok(res[0], "%s: outbox_pending/outbox_dead gauges and /healthz pending/dead match "
           "the rows" % what, res[1])


# --------------------------------------------------------------------------- sink

class Sink:
    """A loopback HTTP receiver that records every request. Per path: a plan (a list of
    actions used one per request, in order) and a default action once the plan is used up.
    An action: {"status": 200, "retry_after": N, "delay": seconds, "close": True}."""

    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.requests = []
        self.plans = {}
        self.defaults = {}
        self.inflight = {}
        self.max_inflight = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                sink._handle(self)
            do_GET = do_PUT = do_DELETE = do_POST

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://%s:%d%s" % (LOCALHOST, self.port, path)

    def plan(self, path, actions=None, default=None):
        with self.lock:
            self.plans[path] = list(actions or [])
            self.defaults[path] = dict(default or {"status": 200})

    def _handle(self, h):
        t0 = time.monotonic()
        try:
            n = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        body = h.rfile.read(n) if n > 0 else b""
        path = h.path
        with self.lock:
            plan = self.plans.get(path)
            if plan:
                action = plan.pop(0)
            else:
                action = self.defaults.get(path, {"status": 200})
            rec = {"t": t0, "wall": time.time(), "path": path, "method": h.command,
                   "headers": {k.lower(): v for k, v in h.headers.items()},
                   "header_all": {k.lower(): h.headers.get_all(k) for k in h.headers.keys()},
                   "body": body, "action": action, "t_end": None}
            self.requests.append(rec)
            self.inflight[path] = self.inflight.get(path, 0) + 1
            self.max_inflight[path] = max(self.max_inflight.get(path, 0), self.inflight[path])
        try:
            if action.get("delay"):
                time.sleep(action["delay"])
            if action.get("close"):
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            status = action.get("status", 200)
            out = b"ok\n"
            h.send_response(status)
            if action.get("retry_after") is not None:
                h.send_header("Retry-After", str(action["retry_after"]))
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
            h.wfile.flush()
        except OSError:
            pass
        finally:
            with self.lock:
                self.inflight[path] -= 1
                rec["t_end"] = time.monotonic()

    def got(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def wait_requests(self, path, n, timeout):
        return wait_for(lambda: len(self.got(path)) >= n, timeout, 0.05)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def standard_webhooks_sign(key, msg_id, timestamp, body):
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body,
                   hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def doc_problems(req_body, ev, payload_sent):
    """Every way an HTTP body / script stdin differs from the relay document."""
    p = []
    try:
        doc = json.loads(req_body)
    except ValueError as e:
        return ["body is not JSON (%s): %r" % (e, req_body[:300])]
    if not isinstance(doc, dict):
        return ["document is not a JSON object: %r" % (doc,)]
    want_keys = {"id", "type", "received_at", "format", "data"}
    if set(doc) != want_keys:
        p.append("document keys %r, want %r" % (sorted(doc), sorted(want_keys)))
    if doc.get("id") != "evt_%d" % ev["id"]:
        p.append("id %r, want %r" % (doc.get("id"), "evt_%d" % ev["id"]))
    if doc.get("type") != ev["kind"]:
        p.append("type %r, want %r" % (doc.get("type"), ev["kind"]))
    if doc.get("received_at") != ev["received_at"]:
        p.append("received_at %r, want the events row's %r" % (doc.get("received_at"),
                                                                 ev["received_at"]))
    if doc.get("format") != ev["format"]:
        p.append("format %r, want %r" % (doc.get("format"), ev["format"]))
    data = doc.get("data")
    diff = json_diff(data, payload_sent)
    if diff:
        p.append("data differs from the payload as sent:")
        p.extend("  " + x for x in diff)
    stored = json.loads(ev["payload"])
    if not same_json(data, stored):
        p.append("data differs from events.payload: %r" % json_diff(data, stored))
    return p


# --------------------------------------------------------------------------- tests

def test_document_and_filters():
    """The document, headers and signature; one delivery per matching relay, created with
    the event; filters; duplicates."""
    version = relayd_version()
    key = os.urandom(32)
    secret = "whsec_" + base64.b64encode(key).decode()
    sink = Sink()
    try:
        paths = {"all": "/all", "inbound": "/inbound", "multi": "/multi", "from6140": "/from",
                 "to6141": "/to", "stop": "/stop", "anybody": "/anybody", "anyfrom": "/anyfrom"}
        relays = {
            "relay:all": {"url": sink.url("/all"), "secret": secret,
                          "header": ["X-Api-Key: abc", "X-Second: two words"]},
            "relay:inbound": {"url": sink.url("/inbound"), "events": "sms.inbound"},
            "relay:multi": {"url": sink.url("/multi"), "events": "sms.inbound sms.receipt"},
            "relay:from6140": {"url": sink.url("/from"), "match_from": "+6140*"},
            "relay:to6141": {"url": sink.url("/to"), "match_to": "+6141*"},
            "relay:stop": {"url": sink.url("/stop"), "match_body": "*stop*"},
            "relay:anybody": {"url": sink.url("/anybody"), "match_body": "*"},
            "relay:anyfrom": {"url": sink.url("/anyfrom"), "match_from": "*"},
        }
        d = Daemon(tap, name="filters", sections=relays)
        events = [
            ("A", "/sms/inbound", "json",
             {"message_id": "rel-A", "from": "+61400111222", "to": "+61411999888",
              "body": "Please STOP now", "timestamp": 1722565411, "price": 0.0725,
              "custom_string": None, "flag": True, "nested": {"a": [1, "2", None]},
              "unicode": "h\u00e9llo \u2713 \U0001F600", "quote": "a\"b\\c\n"},
             {"all", "inbound", "multi", "from6140", "to6141", "stop", "anybody", "anyfrom"}),
            ("B", "/sms/receipt", "post",
             {"message_id": "rel-B", "to": "+61411000222", "status_code": "201",
              "status_text": "Success", "custom_string": "cs"},
             {"all", "multi", "to6141"}),
            ("C", "/sms/inbound", "get",
             {"message_id": "rel-C", "from": "+61299999999", "to": "+61299000000",
              "body": "hello there"},
             {"all", "inbound", "multi", "anybody", "anyfrom"}),
            ("D", "/fax/inbound", "json",
             {"message_id": "rel-D", "from": "+61400999000", "to": "+61399000000",
              "pages": 2},
             {"all", "from6140", "anyfrom"}),
            ("E", "/sms/inbound", "json",
             {"message_id": "rel-E", "from": "+61412000000", "to": "+61400000000",
              "body": "unsubscribe: Stopping"},
             {"all", "inbound", "multi", "stop", "anybody", "anyfrom"}),
        ]
        sent = {}
        for name, kpath, fmt, obj, want in events:
            r, _, expected = post_event(d, kpath, obj, fmt)
            rows = []
            ev = None
            if r.status == 200:
                ev = event_row(d, obj["message_id"])
                if ev:
                    rows = deliveries(d, "event_id = %d" % ev["id"])
            got = {x["relay"] for x in rows}
            tap.ok(r.status == 200 and got == want,
                   "event %s (%s %s): 200 and, right after it, one delivery row per matching "
                   "relay" % (name, kpath, fmt),
                   ["answer %r" % (r,), "relays with rows: %r" % sorted(got),
                    "want: %r" % sorted(want), "missing: %r" % sorted(want - got),
                    "unexpected: %r" % sorted(got - want)])
            bad = [x for x in rows if x["state"] not in ("pending", "done")
                   or not isinstance(x["attempts"], int)]
            tap.ok(rows and not bad, "event %s: fresh rows are pending (or already done) with "
                   "an integer attempts count" % name, [repr(x) for x in rows])
            sent[name] = (ev, expected, want)

        # duplicate: same message_id again
        n_del = d.sql_value("SELECT count(*) FROM deliveries")
        r, _, _ = post_event(d, "/sms/inbound", events[0][3], "json")
        n_del2 = d.sql_value("SELECT count(*) FROM deliveries")
        n_ev = d.sql_value("SELECT count(*) FROM events")
        tap.ok(r.status == 200 and n_del2 == n_del and n_ev == len(events),
               "a duplicate (same kind and message_id) is answered 200 and creates no delivery",
               ["answer %r" % (r,), "deliveries %r -> %r, events %r" % (n_del, n_del2, n_ev)])

        rows = wait_settled(d, "1 = 1", 10)
        bad = []
        for x in rows:
            if x["state"] != "done" or x["attempts"] != 1 or not time_ok(x["done_at"]) \
                    or not time_ok(x["last_attempt_at"]) or not x["last_result"]:
                bad.append(repr(x))
        tap.ok(rows and not bad, "every delivery ends done with attempts 1, done_at, "
               "last_attempt_at and last_result set", bad[:8] + [log_tail(d)])

        time.sleep(0.3)      # anything sent twice would show up now
        for rel, path in paths.items():
            want_ids = sorted("evt_%d" % sent[n][0]["id"] for n in sent
                              if sent[n][0] and rel in sent[n][2])
            got_ids = sorted(q["headers"].get("webhook-id", "?") for q in sink.got(path))
            tap.check_eq(got_ids, want_ids, "relay %s received exactly its events, once each "
                         "(webhook-id = evt_<events.id>)" % rel)

        by_id = {q["headers"].get("webhook-id"): q for q in sink.got("/all")}
        for name, (ev, expected, _) in sent.items():
            if not ev:
                continue
            q = by_id.get("evt_%d" % ev["id"])
            if not q:
                tap.ok(False, "event %s reached relay all" % name)
                continue
            tap.ok(not doc_problems(q["body"], ev, expected),
                   "event %s: the document is {id, type, received_at, format, data} with data "
                   "equal to the payload, every field and type kept" % name,
                   doc_problems(q["body"], ev, expected) + [q["body"][:600]])
            h = q["headers"]
            probs = []
            if q["method"] != "POST":
                probs.append("method %r, want POST" % q["method"])
            if not h.get("content-type", "").lower().startswith("application/json"):
                probs.append("Content-Type %r" % h.get("content-type"))
            if version and h.get("user-agent") != "clicksend-relay/%s" % version:
                probs.append("User-Agent %r, want %r" % (h.get("user-agent"),
                                                         "clicksend-relay/%s" % version))
            if h.get("webhook-id") != "evt_%d" % ev["id"]:
                probs.append("webhook-id %r" % h.get("webhook-id"))
            if q["header_all"].get("x-api-key") != ["abc"]:
                probs.append("X-Api-Key %r, want ['abc']" % q["header_all"].get("x-api-key"))
            if q["header_all"].get("x-second") != ["two words"]:
                probs.append("X-Second %r, want ['two words']" % q["header_all"].get("x-second"))
            tap.ok(not probs, "event %s: POST with Content-Type, User-Agent, webhook-id and "
                   "the configured header lines" % name, probs + [repr(h)])
            ts = h.get("webhook-timestamp", "")
            sig = h.get("webhook-signature", "")
            sprobs = []
            if not re.match(r"^\d+$", ts) or abs(int(ts) - time.time()) > 300:
                sprobs.append("webhook-timestamp %r is not current unix seconds" % ts)
            else:
                want_sig = standard_webhooks_sign(key, h.get("webhook-id", ""), ts, q["body"])
                sigs = sig.split()
                if "v1," + want_sig not in sigs:
                    sprobs.append("webhook-signature %r, want v1,%s" % (sig, want_sig))
            tap.ok(not sprobs, "event %s: webhook-signature is v1,<base64 HMAC-SHA256(key, "
                   "id.timestamp.body)>, verified independently" % name, sprobs)

        plain = sink.got("/inbound")
        leaked = [q["headers"] for q in plain if "webhook-signature" in q["headers"]
                  or "x-api-key" in q["headers"]]
        tap.ok(plain and not leaked, "a relay without secret/header sends no signature and "
               "no other relay's headers", [repr(x) for x in leaked[:2]])
        ok = all(q["headers"].get("webhook-id") for q in sink.got()) and \
            all(q["headers"].get("user-agent", "").startswith("clicksend-relay/")
                for q in sink.got())
        tap.ok(ok, "every relay request carries webhook-id and User-Agent")

        text = d.get("/metrics").body
        ms = parse_metrics(text)
        bad = []
        for rel in paths:
            n = sum(1 for x in rows if x["relay"] == rel and x["state"] == "done")
            got = metric(ms, "clicksend_relay_deliveries_total", relay=rel, result="done")
            if got != float(n):
                bad.append("relay %s: %r, rows done %d" % (rel, got, n))
        tap.ok(not bad, "clicksend_relay_deliveries_total{relay,result=\"done\"} equals the "
               "done rows of each relay", bad + metric_lines(text,
                                                             "clicksend_relay_deliveries_total"))
        check_gauges(d, list(paths), "filters")
        d.close()
    finally:
        sink.stop()


def test_retries():
    """5xx then success, schedule exhausted, 410, 429 Retry-After, timeout, dropped
    connection: one event fanned out to one relay per case."""
    sink = Sink()
    try:
        sink.plan("/flaky", [{"status": 500}, {"status": 500}], {"status": 200})
        sink.plan("/down", [], {"status": 500})
        sink.plan("/gone", [], {"status": 410})
        sink.plan("/busy", [{"status": 429, "retry_after": 3}], {"status": 200})
        sink.plan("/slow", [{"delay": 3}], {"status": 200})
        sink.plan("/closed", [{"close": True}], {"status": 200})
        sink.plan("/unavail", [{"status": 503, "retry_after": 2}], {"status": 200})
        relays = {
            "relay:flaky": {"url": sink.url("/flaky"), "retry_schedule": "1s 1s 1s"},
            "relay:down": {"url": sink.url("/down"), "retry_schedule": "1s 1s"},
            "relay:gone": {"url": sink.url("/gone"), "retry_schedule": "1s 1s"},
            "relay:busy": {"url": sink.url("/busy"), "retry_schedule": "1s 5s"},
            "relay:slow": {"url": sink.url("/slow"), "timeout": "1s",
                           "retry_schedule": "1s 1s"},
            "relay:closed": {"url": sink.url("/closed"), "retry_schedule": "1s 1s"},
            "relay:unavail": {"url": sink.url("/unavail"), "retry_schedule": "1s 4s"},
        }
        names = [k.split(":", 1)[1] for k in relays]
        d = Daemon(tap, name="retries", sections=relays)
        r, _, _ = post_event(d, "/sms/inbound", {"message_id": "retry-1", "from": "+61400000001",
                                                 "body": "retry me"})
        tap.check_eq(r.status, 200, "retries: event accepted")
        ev = event_row(d, "retry-1")
        eid = "evt_%d" % ev["id"] if ev else None
        # the timed-out attempt must be given up (and recorded) long before the sink's 3 s
        sink.wait_requests("/slow", 1, 5)
        first_slow = sink.got("/slow")[:1]
        gave_up = wait_for(lambda: [x for x in deliveries(d, "relay = 'slow'")
                                    if x["attempts"] >= 1], 5, 0.05)
        t_gave_up = (time.monotonic() - first_slow[0]["t"]) if first_slow else None
        slow_done_before = first_slow and first_slow[0]["t_end"] is not None
        tap.ok(gave_up and t_gave_up is not None and 0.8 <= t_gave_up <= 2.5
               and not slow_done_before,
               "timeout = 1s: the attempt is given up and recorded about 1 s after the "
               "request, while the sink is still sleeping (3 s)",
               ["recorded %r after %s s; sink already answered: %r"
                % (gave_up, t_gave_up, slow_done_before), log_tail(d)])
        rows = by_relay(wait_settled(d, "1 = 1", 20))
        log = log_tail(d, 4000)

        def reqs(path):
            return sink.got(path)

        def gaps(path):
            rs = reqs(path)
            return [round(b["t"] - a["t"], 2) for a, b in zip(rs, rs[1:])]

        def ids(path):
            return [q["headers"].get("webhook-id") for q in reqs(path)]

        x = rows.get("flaky", {})
        tap.ok(x.get("state") == "done" and x.get("attempts") == 3 and len(reqs("/flaky")) == 3,
               "500, 500, 200 with retry_schedule 1s 1s 1s: done after 3 attempts",
               [repr(x), "requests %d" % len(reqs("/flaky")), log])
        tap.ok(ids("/flaky") == [eid] * 3, "the same webhook-id on every attempt",
               "webhook-ids %r, want %r x3" % (ids("/flaky"), eid))
        g = gaps("/flaky")
        tap.ok(len(g) == 2 and all(0.7 <= v <= 4.0 for v in g),
               "retries of a 1s step come about 1 s apart (0.8-1.2 s with jitter)", "gaps %r" % g)

        x = rows.get("down", {})
        tap.ok(x.get("state") == "dead" and x.get("attempts") == 3 and len(reqs("/down")) == 3
               and x.get("last_result"),
               "always 500 with retry_schedule 1s 1s: dead after 3 attempts, last_result set",
               [repr(x), "requests %d" % len(reqs("/down")), log])

        x = rows.get("gone", {})
        tap.ok(x.get("state") == "dead" and x.get("attempts") == 1,
               "410 Gone: dead at once after 1 attempt", [repr(x), log])

        x = rows.get("busy", {})
        g = gaps("/busy")
        tap.ok(x.get("state") == "done" and x.get("attempts") == 2,
               "429 then 200: done after 2 attempts", [repr(x), log])
        tap.ok(len(g) == 1 and 2.4 <= g[0] <= 7.0,
               "429 with Retry-After: 3 (schedule 1s 5s): the retry waits about 3 s, not 1 s",
               "gap %r, want >= 2.4 s" % g)

        x = rows.get("unavail", {})
        g = gaps("/unavail")
        tap.ok(x.get("state") == "done" and x.get("attempts") == 2 and len(g) == 1
               and 1.6 <= g[0] <= 6.0,
               "503 with Retry-After: 2 (schedule 1s 4s): retried after about 2 s, then done",
               [repr(x), "gap %r" % g])

        x = rows.get("slow", {})
        rs = reqs("/slow")
        tap.ok(x.get("state") == "done" and x.get("attempts") == 2 and len(rs) == 2,
               "timeout = 1s against a sink that takes 3 s: the attempt times out and is "
               "retried, then done", [repr(x), "requests %d" % len(rs), log])
        g = gaps("/slow")
        tap.ok(len(g) == 1 and 1.5 <= g[0] <= 5.0,
               "the retry after a timeout follows the 1 s timeout plus the ~1 s step",
               "gap %r" % g)

        x = rows.get("closed", {})
        tap.ok(x.get("state") == "done" and x.get("attempts") == 2,
               "a connection closed without an answer is retried, then done", [repr(x), log])

        text = d.get("/metrics").body
        ms = parse_metrics(text)
        want = {("flaky", "done"): 1, ("busy", "done"): 1, ("slow", "done"): 1,
                ("closed", "done"): 1, ("down", "dead"): 1, ("gone", "dead"): 1,
                ("flaky", "retry"): 2}
        bad = ["%s/%s: %r, want %r" % (rel, res, metric(ms, "clicksend_relay_deliveries_total",
                                                        relay=rel, result=res), n)
               for (rel, res), n in want.items()
               if metric(ms, "clicksend_relay_deliveries_total", relay=rel, result=res) != n]
        tap.ok(not bad, "clicksend_relay_deliveries_total counts done, dead and retry outcomes "
               "per relay", bad + metric_lines(text, "clicksend_relay_deliveries_total"))
        check_gauges(d, names, "retries")
        d.close()
    finally:
        sink.stop()


def test_concurrency():
    """concurrency = 1 with a slow sink: one request in flight; a fast relay and ingest are
    not held up by it."""
    sink = Sink()
    try:
        sink.plan("/slow", [], {"status": 200, "delay": 0.8})
        sink.plan("/par", [], {"status": 200, "delay": 0.8})
        sink.plan("/fast", [], {"status": 200})
        relays = {
            "relay:slow": {"url": sink.url("/slow"), "concurrency": 1},
            "relay:par": {"url": sink.url("/par"), "concurrency": 3},
            "relay:fast": {"url": sink.url("/fast")},
        }
        d = Daemon(tap, name="concurrency", sections=relays)
        n = 4
        times = []
        statuses = []
        for i in range(n):
            r, dt, _ = post_event(d, "/sms/inbound", {"message_id": "conc-%d" % i,
                                                      "from": "+61400000000", "body": "x"})
            statuses.append(r.status)
            times.append(round(dt, 3))
            time.sleep(0.05)
        t_sent = time.monotonic()
        tap.ok(statuses == [200] * n and max(times) < 0.5,
               "webhooks answer 200 quickly while a slow relay is busy",
               "statuses %r, seconds %r" % (statuses, times))
        fast_done = wait_for(lambda: deliveries(d, "relay = 'fast' AND state = 'done'")
                             if len(deliveries(d, "relay = 'fast' AND state = 'done'")) == n
                             else None, 3, 0.05)
        t_fast = time.monotonic() - t_sent
        slow_pending = len(deliveries(d, "relay = 'slow' AND state = 'pending'"))
        tap.ok(fast_done and t_fast < 1.5,
               "a fast relay gets all %d deliveries done within 1.5 s while another relay's "
               "sink takes 0.8 s per request" % n,
               ["fast done after %.2f s: %r" % (t_fast, bool(fast_done)), log_tail(d)])
        tap.ok(slow_pending >= 1, "the slow relay still had pending rows then (it is serial)",
               "slow pending %d" % slow_pending)
        rows = wait_settled(d, "1 = 1", 12)
        tap.ok(rows and all(x["state"] == "done" for x in rows) and len(rows) == 3 * n,
               "all deliveries end done", [repr(x) for x in rows if x["state"] != "done"])
        tap.check_eq(sink.max_inflight.get("/slow"), 1,
                     "concurrency = 1: never more than one request in flight for that relay")
        rs = sink.got("/slow")
        overlap = [(round(a["t_end"] - b["t"], 3)) for a, b in zip(rs, rs[1:])
                   if a["t_end"] is not None and b["t"] < a["t_end"] - 0.01]
        tap.ok(len(rs) == n and not overlap, "the slow relay's requests never overlap",
               "%d requests, overlaps %r" % (len(rs), overlap))
        mp = sink.max_inflight.get("/par", 0)
        tap.ok(2 <= mp <= 3, "concurrency = 3: parallel attempts, at most 3 in flight",
               "max in flight %r" % mp)
        d.close()
    finally:
        sink.stop()


SCRIPT = r'''#!%(python)s
import json, os, sys, time
out = sys.argv[1]
raw = sys.stdin.buffer.read()
try:
    doc = json.loads(raw)
    eid = doc["id"]
    mode = doc["data"].get("body", "ok")
except Exception:
    doc, eid, mode = None, "unknown", "ok"
cnt = os.path.join(out, "count-" + eid)
try:
    n = int(open(cnt).read())
except Exception:
    n = 0
n += 1
open(cnt, "w").write(str(n))
# the environment as exec'd (os.environ may gain LC_CTYPE from Python's locale coercion)
try:
    env = dict(kv.split("=", 1) for kv in
               open("/proc/self/environ", "rb").read().decode("utf-8", "replace").split("\0")
               if "=" in kv)
except OSError:
    env = dict(os.environ)
rec = {"argv": sys.argv[1:], "env": env, "stdin": raw.decode("utf-8", "replace"), "n": n,
       "t": time.time(), "id": eid, "mode": mode}
with open(os.path.join(out, "calls.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
sys.stdout.write("SCRIPT-STDOUT-%%s-%%d\n" %% (eid, n))
sys.stdout.flush()
sys.stderr.write("SCRIPT-STDERR-%%s-%%d\n" %% (eid, n))
sys.stderr.flush()
if mode == "tempfail" and n < 3:
    sys.exit(75)
if mode == "perm":
    sys.exit(3)
if mode == "slow" and n == 1:
    time.sleep(20)
    open(os.path.join(out, "woke-" + eid), "w").write("survived the timeout")
sys.exit(0)
'''


def env_name(field):
    n = re.sub(r"[^A-Z0-9]", "_", field.upper()).lstrip("_")
    return "CLICKSEND_" + n


def test_scripts():
    tmp = tap.mkdtemp("csr-script-")
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    script = os.path.join(tmp, "relay-script.py")
    with open(script, "w") as f:
        f.write(SCRIPT % {"python": sys.executable})
    os.chmod(script, 0o755)
    args = [out, "one", "two", "$HOME", "*.txt", "--x=y", "'q'"]
    relays = {"relay:scripty": {"exec": script, "args": " ".join(args), "timeout": "1s",
                                "retry_schedule": "1s 1s 1s"}}
    d = Daemon(tap, name="scripts", sections=relays)
    payload = {"message_id": "scr-ok", "from": "+61400000001", "to": "+61411000002",
               "body": "ok", "weird.name-x": "w", "_lead": "l", "event_id": "spoof",
               "Event-Type": "spoof2", "custom_string": "c s"}
    cases = [("ok", payload),
             ("tempfail", {"message_id": "scr-temp", "from": "+61400000003", "body": "tempfail"}),
             ("perm", {"message_id": "scr-perm", "from": "+61400000004", "body": "perm"}),
             ("slow", {"message_id": "scr-slow", "from": "+61400000005", "body": "slow"})]
    evs = {}
    for mode, obj in cases:
        r, _, _ = post_event(d, "/sms/inbound", obj)
        evs[mode] = event_row(d, obj["message_id"])
        tap.ok(r.status == 200 and evs[mode], "script event %s accepted" % mode, repr(r))
    rows = wait_settled(d, "1 = 1", 25)
    by_ev = {x["event_id"]: x for x in rows}
    calls = []
    try:
        with open(os.path.join(out, "calls.jsonl")) as f:
            calls = [json.loads(l) for l in f if l.strip()]
    except OSError:
        pass
    log = log_tail(d, 4000)

    def row(mode):
        return by_ev.get(evs[mode]["id"], {}) if evs.get(mode) else {}

    def calls_of(mode):
        return [c for c in calls if evs.get(mode) and c["id"] == "evt_%d" % evs[mode]["id"]]

    x = row("ok")
    tap.ok(x.get("state") == "done" and x.get("attempts") == 1 and len(calls_of("ok")) == 1,
           "exit 0: done after 1 attempt", [repr(x), log])
    c = (calls_of("ok") or [None])[0]
    if c:
        tap.check_eq(c["argv"], args, "args are passed verbatim, no shell expansion")
        ev = evs["ok"]
        tap.ok(not doc_problems(c["stdin"].encode(), ev, payload),
               "stdin is the relay document", doc_problems(c["stdin"].encode(), ev,
                                                                    payload))
        env = c["env"]
        special = {"CLICKSEND_EVENT_ID", "CLICKSEND_EVENT_TYPE", "CLICKSEND_FORMAT",
                   "CLICKSEND_RECEIVED_AT"}
        want_keys = {"PATH"} | special | {env_name(k) for k in payload
                                          if env_name(k) not in special}
        tap.ok(set(env) == want_keys, "the environment is exactly PATH, the four CLICKSEND_ "
               "event variables and one CLICKSEND_<FIELD> per payload field",
               ["extra: %r" % sorted(set(env) - want_keys),
                "missing: %r" % sorted(want_keys - set(env)), repr(env)])
        tap.ok(CANARY not in env and "HOME" not in env and "USER" not in env,
               "nothing from the daemon's environment leaks (%s, HOME, USER)" % CANARY,
               repr(env))
        tap.check_eq(env.get("PATH"), "/usr/local/bin:/usr/bin:/bin", "PATH is the fixed one")
        want = {"CLICKSEND_EVENT_TYPE": "sms.inbound", "CLICKSEND_FORMAT": "json",
                "CLICKSEND_RECEIVED_AT": ev["received_at"], "CLICKSEND_MESSAGE_ID": "scr-ok",
                "CLICKSEND_FROM": "+61400000001", "CLICKSEND_TO": "+61411000002",
                "CLICKSEND_BODY": "ok", "CLICKSEND_WEIRD_NAME_X": "w", "CLICKSEND_LEAD": "l",
                "CLICKSEND_CUSTOM_STRING": "c s"}
        bad = ["%s=%r, want %r" % (k, env.get(k), v) for k, v in want.items() if env.get(k) != v]
        tap.ok(not bad, "CLICKSEND_* values: event type, format, received_at and the payload "
               "fields (names upper-cased, other characters to _, leading _ dropped)", bad)
        tap.check_in(env.get("CLICKSEND_EVENT_ID"), ("evt_%d" % ev["id"], str(ev["id"])),
                     "CLICKSEND_EVENT_ID is the event id; a payload field event_id does not "
                     "override it")
        m = re.search(r"^.*SCRIPT-STDOUT-evt_%d-1.*$" % ev["id"], d.log(), re.M)
        tap.ok(m and "scripty" in m.group(0), "the script's stdout is logged with the relay name",
               [m.group(0) if m else "no SCRIPT-STDOUT line in the log", log])
        m = re.search(r"^.*SCRIPT-STDERR-evt_%d-1.*$" % ev["id"], d.log(), re.M)
        tap.ok(m and "scripty" in m.group(0), "the script's stderr is logged with the relay name",
               m.group(0) if m else "no SCRIPT-STDERR line in the log")
    else:
        tap.ok(False, "the script ran for the ok event", log)

    x = row("tempfail")
    tap.ok(x.get("state") == "done" and x.get("attempts") == 3 and len(calls_of("tempfail")) == 3,
           "exit 75 twice then 0: retried, done after 3 attempts",
           [repr(x), "calls %d" % len(calls_of("tempfail")), log])
    x = row("perm")
    tap.ok(x.get("state") == "dead" and x.get("attempts") == 1 and len(calls_of("perm")) == 1,
           "exit 3: dead at once after 1 attempt", [repr(x), log])
    x = row("slow")
    cs = calls_of("slow")
    tap.ok(x.get("state") == "done" and x.get("attempts") == 2 and len(cs) == 2,
           "a script sleeping past timeout = 1s is stopped and retried, then done",
           [repr(x), "calls %d" % len(cs), log])
    if len(cs) >= 2:
        gap = cs[1]["t"] - cs[0]["t"]
        tap.ok(1.5 <= gap <= 8, "the retry follows the ~1 s timeout plus the ~1 s step",
               "gap %.2f s" % gap)
    time.sleep(0.2)
    tap.ok(not any(f.startswith("woke-") for f in os.listdir(out)),
           "the timed-out script was killed (it never woke up)", os.listdir(out))
    d.close()


def test_outage_restart():
    """Sink down, events still accepted, SIGTERM with rows pending, sink back on the same
    port, restart on the same DB: every delivery done, same webhook-ids."""
    sink = Sink()
    port = sink.port
    sink.plan("/hook", [], {"status": 503})
    sched = " ".join(["1s"] * 20)
    d = Daemon(tap, name="outage", sections={"relay:hook": {"url": sink.url("/hook"),
                                                            "retry_schedule": sched}})
    sink2 = None
    try:
        r, _, _ = post_event(d, "/sms/inbound", {"message_id": "out-0", "from": "+61400000000",
                                                 "body": "before"})
        tap.check_eq(r.status, 200, "outage: first event accepted")
        sink.wait_requests("/hook", 1, 5)
        first_ids = {q["headers"].get("webhook-id") for q in sink.got("/hook")}
        sink.stop()              # port closed: connection refused from now on
        statuses = []
        for i in range(1, 4):
            r, dt, _ = post_event(d, "/sms/inbound", {"message_id": "out-%d" % i,
                                                      "from": "+61400000000", "body": "down"})
            statuses.append((r.status, round(dt, 2)))
        tap.ok(all(s == 200 and t < 1 for s, t in statuses),
               "events arriving while the relay's sink is down are answered 200 at once",
               repr(statuses))
        evs = d.sql("SELECT id FROM events ORDER BY id")
        want_ids = {"evt_%d" % e["id"] for e in evs}
        tried = wait_for(lambda: all(x["attempts"] >= 1 for x in deliveries(d))
                         and len(deliveries(d)) == 4, 5)
        rows = deliveries(d)
        tap.ok(tried and all(x["state"] == "pending" for x in rows),
               "while the sink is down: attempts recorded, rows stay pending",
               [repr(x) for x in rows])
        check_gauges(d, ["hook"], "outage")
        rc = d.stop(signal.SIGTERM)
        tap.check_eq(rc, 0, "SIGTERM with pending deliveries: exit 0")
        rows = d.sql("SELECT * FROM deliveries ORDER BY id")
        tap.ok(len(rows) == 4 and all(x["state"] == "pending" for x in rows),
               "after the stop: all 4 rows still pending", [repr(x) for x in rows])
        try:
            sink2 = Sink(port)
        except OSError as e:
            tap.ok(False, "sink comes back on port %d" % port, str(e))
            return
        d.start()
        rows = wait_settled(d, "1 = 1", 12)
        tap.ok(len(rows) == 4 and all(x["state"] == "done" for x in rows),
               "after the restart, with the sink back: every delivery done",
               [repr(x) for x in rows] + [log_tail(d)])
        got_ids = sorted({q["headers"].get("webhook-id") for q in sink2.got("/hook")})
        tap.check_eq(got_ids, sorted(want_ids),
                     "the sink got every event after the restart, webhook-id = evt_<id>")
        tap.ok(first_ids and first_ids <= set(got_ids),
               "the webhook-id seen before the outage is the one sent after the restart",
               "before %r, after %r" % (first_ids, got_ids))
        d.close()
    finally:
        if sink2:
            sink2.stop()


def test_kill9_in_flight():
    """kill -9 while an attempt is in flight: after restart it is attempted again (at least
    once) and ends done."""
    sink = Sink()
    try:
        sink.plan("/hook", [{"delay": 4, "status": 200}], {"status": 200})
        d = Daemon(tap, name="kill9", sections={"relay:hook": {
            "url": sink.url("/hook"), "timeout": "10s", "retry_schedule": "1s 1s 1s"}})
        r, _, _ = post_event(d, "/sms/inbound", {"message_id": "k9", "from": "+61400000000",
                                                 "body": "crash"})
        tap.check_eq(r.status, 200, "kill -9: event accepted")
        inflight = sink.wait_requests("/hook", 1, 5)
        rc = d.stop(signal.SIGKILL)
        tap.ok(inflight and rc == -signal.SIGKILL, "the daemon was killed with an attempt in "
               "flight", "in flight %r, rc %r" % (inflight, rc))
        rows = d.sql("SELECT * FROM deliveries")
        tap.ok(len(rows) == 1 and rows[0]["state"] == "pending",
               "after kill -9 the row is still pending", repr(rows))
        d.start()
        rows = wait_settled(d, "1 = 1", 15)
        ids = [q["headers"].get("webhook-id") for q in sink.got("/hook")]
        tap.ok(len(rows) == 1 and rows[0]["state"] == "done",
               "after the restart the delivery is attempted again and ends done",
               [repr(rows), log_tail(d)])
        tap.ok(len(ids) >= 2 and len(set(ids)) == 1,
               "the repeat carries the same webhook-id (at-least-once)", repr(ids))
        d.close()
    finally:
        sink.stop()


def test_graceful_shutdown():
    sink = Sink()
    try:
        # finishes within shutdown_timeout
        sink.plan("/a", [{"delay": 2, "status": 200}], {"status": 200})
        d = Daemon(tap, name="graceful", server={"shutdown_timeout": "10s"},
                   sections={"relay:a": {"url": sink.url("/a"), "timeout": "30s"}})
        post_event(d, "/sms/inbound", {"message_id": "gs-1", "from": "+61400000000",
                                       "body": "x"})
        inflight = sink.wait_requests("/a", 1, 5)
        t0 = time.monotonic()
        try:
            rc = d.stop(signal.SIGTERM, timeout=15)
        except DaemonError as e:
            rc = "killed: %s" % e
        dt = time.monotonic() - t0
        rows = d.sql("SELECT * FROM deliveries")
        tap.ok(inflight and rc == 0 and 0.8 <= dt <= 9,
               "SIGTERM with a 2 s attempt in flight (shutdown_timeout 10s): waits for it, "
               "exit 0", "in flight %r, rc %r after %.2f s" % (inflight, rc, dt))
        tap.ok(len(rows) == 1 and rows[0]["state"] == "done",
               "the attempt in flight at SIGTERM completed and was recorded done",
               [repr(rows), d.log()[-2000:]])
        d.close()

        # cut short after shutdown_timeout
        sink.plan("/b", [{"delay": 5, "status": 200}], {"status": 200})
        d = Daemon(tap, name="impatient", server={"shutdown_timeout": "1s"},
                   sections={"relay:b": {"url": sink.url("/b"), "timeout": "30s"}})
        post_event(d, "/sms/inbound", {"message_id": "gs-2", "from": "+61400000000",
                                       "body": "x"})
        inflight = sink.wait_requests("/b", 1, 5)
        t0 = time.monotonic()
        try:
            rc = d.stop(signal.SIGTERM, timeout=10)
        except DaemonError as e:
            rc = "killed: %s" % e
        dt = time.monotonic() - t0
        rows = d.sql("SELECT * FROM deliveries")
        tap.ok(inflight and rc == 0 and dt <= 3.0,
               "SIGTERM with a 5 s attempt in flight (shutdown_timeout 1s): exit 0 within ~3 s",
               "in flight %r, rc %r after %.2f s" % (inflight, rc, dt))
        tap.ok(len(rows) == 1 and rows[0]["state"] == "pending",
               "the attempt cut short at shutdown leaves its row pending",
               [repr(rows), d.log()[-2000:]])
        d.close()
    finally:
        sink.stop()


def main():
    t0 = time.monotonic()
    for t in (test_document_and_filters, test_retries, test_concurrency, test_scripts,
              test_outage_restart, test_kill9_in_flight, test_graceful_shutdown):
        t1 = time.monotonic()
        tap.run(t)
        tap.diag("%s: %.1f s" % (t.__name__, time.monotonic() - t1))
    tap.diag("total %.1f s" % (time.monotonic() - t0))
    tap.done()


if __name__ == "__main__":
    main()
