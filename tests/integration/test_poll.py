#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Polling (clicksend-relayd(8)) against the fake ClickSend's poll queues: every page of every
polled list stored as events of format poll (columns, payload, relays), marked read only
after COMMIT (by message_id for inbound SMS, date_before for receipts), an item arriving
between the fetch and the read mark kept, pushed-and-polled items deduplicated, a store that
cannot commit marking nothing, 401 stopping until a reload, 429/500/dropped connections and a
stalled API backed off without blocking webhooks, /healthz and /metrics, POLL rules and the
self-test through the poll queue, `clicksend-relay poll --once`, and the config errors."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_here = os.path.dirname(os.path.abspath(__file__))
for _p in (_here, os.environ.get("TESTS_LIB")):
    if _p and _p not in sys.path:
        sys.path.insert(0, _p)
from harness import (Tap, Daemon, run_relayd, sanitizer_report, tool_path,  # noqa: E402
                     wait_for, LOCALHOST, sqlite_only)
from fake_clicksend import FakeClickSend, action_address  # noqa: E402

USER = "csr-user"
KEY = "KEY-s3cr3t-XYZ"
POLLED = "sms.inbound sms.receipt voice.receipt fax.receipt"
LISTS = ("/sms/inbound", "/sms/receipts", "/mms/receipts", "/voice/receipts", "/fax/receipts")

tap = Tap(timeout=280)


class Sink:
    """A relay endpoint that answers 200 and counts documents by event id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []
        sink = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                doc = json.loads(self.rfile.read(n) or b"{}")
                with sink.lock:
                    sink.got.append(doc)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.url = "http://%s:%d/hook" % (LOCALHOST, self.server.server_address[1])

    def docs(self):
        with self.lock:
            return list(self.got)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def clicksend(fake, **over):
    cs = {"username": USER, "api_key": KEY, "api_url": fake.url, "poll": POLLED,
          "poll_interval": "5s"}
    cs.update(over)
    return cs


def start(fake, relay=None, **over):
    secs = {"clicksend": clicksend(fake, **over)}
    if relay:
        secs["relay:sink"] = {"url": relay, "retry_schedule": "1s"}
    return Daemon(tap, sections=secs)


def health(d):
    try:
        return d.healthz()[1] or {}
    except OSError as e:
        return {"error": str(e)}


def unread(fake, lists=LISTS):
    return sum(len(fake.poll_items(lst, unread=True)) for lst in lists)


def count(d, where="1 = 1"):
    return d.sql_value("SELECT count(*) FROM events WHERE %s" % where)


def metric(d, name, kind):
    body = d.get("/metrics").body
    m = re.search(r'^%s\{kind="%s"\} (\S+)$' % (re.escape(name), re.escape(kind)), body, re.M)
    return float(m.group(1)) if m else None


def tool(conf, *args, timeout=40):
    p = subprocess.run([tool_path(), "-c", conf] + list(args), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    rep = sanitizer_report(err)
    if rep:
        tap.ok(False, "clicksend-relay %s: no sanitizer report" % " ".join(args), rep)
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


# --------------------------------------------------------------------------- tests

def test_config_errors():
    d = Daemon(tap, start=False)
    cases = [({"poll": "sms.inbound fax.inbound"}, "poll", r"fax\.inbound cannot be polled"),
             ({"poll": "email.receipt"}, "poll", r"email\.receipt cannot be polled"),
             ({"poll": "sms.inbound", "poll_interval": "4s"}, "poll_interval",
              r"poll_interval: must be at least 5s")]
    for cs, key, msg in cases:
        d.reconfigure(sections={"clicksend": cs})
        lines = open(d.conf_path).read().split("\n")
        line = next(i + 1 for i, t in enumerate(lines) if t.startswith(key + " ="))
        rc, _, err = run_relayd(["-c", d.conf_path, "-t"])
        tap.check_eq(rc, 78, "config %r: exit 78" % cs, err)
        tap.ok(re.search(r"%s:%d: .*%s" % (re.escape(d.conf_path), line, msg), err),
               "config %r: FILE:LINE error on the %s line" % (cs, key), err)
    d.reconfigure(sections={"clicksend": {"poll": POLLED, "poll_interval": "5s",
                                          "provision": "sms.inbound"}})
    rc, _, err = run_relayd(["-c", d.conf_path, "-t"])
    tap.check_eq(rc, 0, "every pollable kind, 5s, and provisioning a polled kind without "
                 "public_url: valid", err)


def test_fetch_store_mark():
    sink = Sink()
    with FakeClickSend(USER, KEY) as fake:
        inbound = fake.add_poll_items("/sms/inbound", 130)          # two pages of 100
        sms = fake.add_poll_items("/sms/receipts", 3)
        mms = fake.add_poll_items("/mms/receipts", 2)
        voice = fake.add_poll_items("/voice/receipts", 2)
        fax = fake.add_poll_items("/fax/receipts", 2)
        total = 130 + 3 + 2 + 2 + 2
        d = start(fake, relay=sink.url)
        wait_for(lambda: count(d) >= total and unread(fake) == 0, 30, 0.3)
        tap.check_eq(count(d), total, "every item of every page of every list is one event")
        tap.check_eq(unread(fake), 0, "every list is marked read")
        tap.check_eq(count(d, "format = 'poll' AND remote_addr IS NULL"), total,
                     "events have format poll and a NULL remote_addr")
        got = {r["kind"]: r["n"] for r in d.sql(
            "SELECT kind, count(*) AS n FROM events GROUP BY kind")}
        tap.check_eq(got, {"sms.inbound": 130, "sms.receipt": 5, "voice.receipt": 2,
                           "fax.receipt": 2}, "kinds: MMS receipts are sms.receipt events")
        it = inbound[117]
        row = d.sql("SELECT * FROM events WHERE message_id = '%s'" % it["message_id"])[0]
        tap.check_eq((row["from_number"], row["to_number"], row["body"], row["kind"]),
                     (it["from"], it["to"], it["body"], "sms.inbound"), "columns as for a webhook")
        tap.check_eq(json.loads(row["payload"]), it, "payload: every field, types kept")
        tap.check_eq(row["dedupe_key"], "sms.inbound|" + it["message_id"], "dedupe key")
        r = d.sql("SELECT * FROM events WHERE message_id = '%s'" % mms[1]["message_id"])[0]
        tap.check_eq((r["status_code"], r["dedupe_key"]),
                     (str(mms[1]["status_code"]),
                      "sms.receipt|%s|%s" % (mms[1]["message_id"], mms[1]["status_code"])),
                     "receipt columns and dedupe key")
        pages = sorted(int(q["query"].get("page", 0))
                       for q in fake.requests("GET", path="/v3/sms/inbound"))
        tap.ok(1 in pages and 2 in pages, "inbound fetched page by page", repr(pages))
        ids = {q["path"].rsplit("/", 1)[1]
               for q in fake.requests("PUT", prefix="/v3/sms/inbound-read/")}
        tap.check_eq(ids, {i["message_id"] for i in inbound},
                     "inbound marked read per message_id, each one")
        tap.check_eq(fake.requests("PUT", path="/v3/sms/inbound-read"), [],
                     "inbound never marked read in bulk")
        for lst, items in (("/sms/receipts", sms), ("/mms/receipts", mms),
                           ("/voice/receipts", voice), ("/fax/receipts", fax)):
            marks = fake.requests("PUT", path="/v3%s-read" % lst)
            newest = max(i["timestamp"] for i in items)
            tap.ok(marks and all(isinstance((m["body"] or {}).get("date_before"), int) and
                                 m["body"]["date_before"] <= newest + 1 for m in marks),
                   "%s marked with a date_before of at most newest + 1 s" % lst,
                   repr([m["body"] for m in marks]) + " newest %d" % newest)
        wait_for(lambda: len(sink.docs()) >= total, 20, 0.2)
        docs = sink.docs()
        tap.check_eq(len(docs), total, "each polled event relayed once")
        tap.ok(all(x["format"] == "poll" for x in docs), "relay documents say format poll")
        h = health(d)
        tap.check_eq(h.get("poll"), "ok", "/healthz poll ok", repr(h))
        tap.check_eq(metric(d, "clicksend_relay_poll_items_total", "sms.inbound"), 130.0,
                     "poll_items_total{sms.inbound}")
        tap.check_eq(metric(d, "clicksend_relay_poll_items_total", "sms.receipt"), 5.0,
                     "poll_items_total{sms.receipt}: both lists")
        tap.check_eq(metric(d, "clicksend_relay_poll_ok", "fax.receipt"), 1.0, "poll_ok 1")
        tap.check_eq(metric(d, "clicksend_relay_poll_ok", "email.receipt"), None,
                     "no poll_ok for a kind not polled")
        d.close()
    sink.stop()


def test_arrival_between_fetch_and_mark():
    with FakeClickSend(USER, KEY) as fake:
        fake.add_poll_items("/sms/inbound", 2)
        fake.add_poll_items("/sms/receipts", 2)
        late_in = fake.arrive_on_read("/sms/inbound")
        late_rc = fake.arrive_on_read("/sms/receipts")
        d = start(fake, poll="sms.inbound sms.receipt")
        wait_for(lambda: count(d) >= 6 and unread(fake) == 0, 30, 0.3)
        tap.check_eq(count(d), 6, "items that arrived while the first fetch was being "
                     "marked read are fetched later, not lost",
                     repr(fake.poll_items("/sms/receipts")))
        tap.check_eq(unread(fake), 0, "and then marked read")
        tap.ok(late_in["timestamp"] and late_rc["timestamp"], "the late items did arrive")
        d.close()


def test_pushed_and_polled():
    sink = Sink()
    with FakeClickSend(USER, KEY) as fake:
        d = start(fake, relay=sink.url, poll="sms.inbound sms.receipt")
        pushed = fake.add_poll_item("/sms/inbound")
        fake.reset()                      # forget the queue: it was only a sample item
        r = d.post_json("/clicksend/sms/inbound", pushed)
        tap.check_eq(r.status, 200, "the item pushed first")
        fake.add_poll_item("/sms/inbound", **pushed)
        rec = fake.add_poll_item("/sms/receipts")
        wait_for(lambda: unread(fake) == 0 and count(d) >= 2, 20, 0.3)
        r2 = d.post("/clicksend/sms/receipt", urllib.parse.urlencode(
            [(k, str(v)) for k, v in rec.items() if v is not None]))
        tap.check_eq(r2.status, 200, "a receipt polled first, then pushed")
        rows = d.sql("SELECT format, duplicates FROM events ORDER BY id")
        tap.check_eq(rows, [{"format": "json", "duplicates": 1},
                            {"format": "poll", "duplicates": 1}],
                     "one event each, the second arrival counted as a duplicate")
        wait_for(lambda: len(sink.docs()) >= 2, 10, 0.2)
        time.sleep(1.5)
        tap.check_eq(sorted(x["type"] for x in sink.docs()), ["sms.inbound", "sms.receipt"],
                     "each relayed once")
        d.close()
    sink.stop()


@sqlite_only("a sqlite3 shell holds the store's write lock")
def test_uncommitted_never_marked():
    with FakeClickSend(USER, KEY) as fake:
        d = start(fake, poll="sms.inbound sms.receipt")
        wait_for(lambda: fake.requests("GET", path="/v3/sms/receipts"), 10, 0.2)
        lock = subprocess.Popen(["sqlite3", d.db], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tap.procs.append(lock)
        lock.stdin.write(b"BEGIN EXCLUSIVE;\nINSERT INTO relays(name, paused) "
                         b"VALUES ('lock-holder', 0);\n")
        lock.stdin.flush()
        time.sleep(0.5)
        mark = len(fake.requests())
        fake.add_poll_items("/sms/inbound", 3)
        fake.add_poll_items("/sms/receipts", 3)
        ok = d.wait_log(r"poll sms\.(inbound|receipt): store:", 20)
        tap.ok(ok, "the poller saw the store fail to commit", d.log()[-2000:])
        puts = [q for q in fake.requests("PUT", since=mark)]
        tap.check_eq(puts, [], "nothing marked read while nothing could be committed")
        tap.check_eq(unread(fake), 6, "the items stay unread at ClickSend")
        tap.ok(health(d).get("poll", "").startswith("error: "), "/healthz poll error",
               repr(health(d)))
        lock.stdin.write(b"ROLLBACK;\n.quit\n")
        lock.stdin.close()
        lock.wait(10)
        wait_for(lambda: unread(fake) == 0 and count(d) >= 6, 45, 0.3)
        tap.check_eq((count(d), unread(fake)), (6, 0),
                     "once the store commits again they are stored, then marked read")
        d.close()


def test_errors():
    with FakeClickSend(USER, KEY) as fake:
        fake.set_auth(USER, "another-key")
        d = start(fake, poll="sms.inbound voice.receipt")
        ok = d.wait_log(r"polling: .*credentials.*until a reload", 10)
        tap.ok(ok, "401 is logged", d.log()[-1500:])
        h = health(d)
        tap.ok(h.get("poll", "").startswith("error: "), "/healthz poll error after 401",
               repr(h))
        tap.ok(KEY not in json.dumps(h) and KEY not in d.log(), "the key is in no text")
        mark = len(fake.requests())
        time.sleep(11)
        tap.check_eq(len(fake.requests(since=mark)), 0, "401: no retry before a reload")
        tap.check_eq(len(re.findall(r"polling: .*credentials", d.log())), 1, "logged once")
        fake.set_auth(USER, KEY)
        fake.add_poll_items("/sms/inbound", 2)
        d.signal(signal.SIGHUP)
        wait_for(lambda: unread(fake) == 0 and count(d) == 2, 15, 0.2)
        tap.check_eq(count(d), 2, "a reload starts polling again")
        tap.check_eq(health(d).get("poll"), "ok", "/healthz poll ok again")

        for status in (429, 500, 0):
            fake.fail_next(status, path="/voice/receipts", method="GET")
            items = fake.add_poll_items("/voice/receipts", 1)
            mid = items[0]["message_id"]
            wait_for(lambda: count(d, "message_id = '%s'" % mid) == 1 and
                     unread(fake, ["/voice/receipts"]) == 0, 40, 0.3)
            tap.check_eq(count(d, "message_id = '%s'" % mid), 1,
                         "status %d on the list: backed off, then fetched" % status)
            tap.ok(re.search(r"poll voice\.receipt: .*trying again in \d+ s", d.log()),
                   "status %d: the backoff is logged" % status)
        fake.fail_next(500, path="/sms/inbound-read")
        it = fake.add_poll_item("/sms/inbound")
        wait_for(lambda: unread(fake, ["/sms/inbound"]) == 0, 40, 0.3)
        row = d.sql("SELECT duplicates FROM events WHERE message_id = '%s'" %
                    it["message_id"])
        tap.ok(len(row) == 1 and row[0]["duplicates"] >= 1 and
               unread(fake, ["/sms/inbound"]) == 0,
               "a failed read mark only repeats the item, as a duplicate", repr(row))

        fake.stall(20)
        since = len(fake.requests())
        held = wait_for(lambda: [q for q in fake.requests("GET", since=since)
                                 if q["status"] is None], 15, 0.2)
        r = d.post_json("/clicksend/sms/inbound", {"message_id": "PUSHED-WHILE-STALLED",
                                                   "from": "+61400000001", "body": "hi"})
        tap.check_eq(r.status, 200, "a webhook is answered while a poll call is held")
        tap.ok(held and all(q["status"] is None for q in fake.requests("GET", since=since)
                            if q["t"] == held[0]["t"]),
               "the poll call was still unanswered then: the API never blocks the loop")
        fake.unstall()
        d.close()


def test_provision_poll_rules():
    with FakeClickSend(USER, KEY) as fake:
        d = Daemon(tap, start=False)
        public = "http://127.0.0.1:%d/clicksend" % d.port
        cs = clicksend(fake, provision="sms.inbound sms.receipt", poll="sms.inbound",
                       public_url=public, test_receipts="yes")
        d.reconfigure(sections={"clicksend": cs})
        d.start()
        ok = wait_for(lambda: health(d).get("selftest") in ("passed",) or
                      health(d).get("selftest", "").startswith("failed"), 40, 0.3)
        rin = fake.find_rules("sms.inbound", "clicksend-relay sms.inbound")
        rrc = fake.find_rules("sms.receipt", "clicksend-relay sms.receipt")
        tap.ok(len(rin) == 1 and rin[0]["action"] == "POLL" and
               rin[0]["action_address"] == "poll", "a polled kind's rule is a POLL rule",
               repr(rin))
        tap.ok(len(rrc) == 1 and rrc[0]["action"] == "URL" and
               rrc[0]["action_address"] == action_address("sms.receipt", public),
               "a pushed kind's rule stays URL", repr(rrc))
        tests = [q["body"] for q in fake.requests("POST", path="/v3/sms/inbound")]
        tap.ok(tests and all(b.get("url") == "poll" for b in tests),
               "the polled kind's test push asks for the poll queue", repr(tests))
        tap.check_eq(health(d).get("selftest"), "passed",
                     "the self-test passes when the poller fetched the test item",
                     repr(health(d)) + d.log()[-1500:])
        tap.ok(ok, "the self-test finished")
        mark = len(fake.requests())
        d.stop()
        d.start()
        wait_for(lambda: health(d).get("provisioning") == "ok", 15, 0.2)
        writes = [q for q in fake.writes(since=mark)]
        tap.check_eq(writes, [], "restart: the POLL rule is left alone (idempotent)")
        cs.update(poll="", test_receipts="no")
        d.reconfigure(sections={"clicksend": cs})
        d.signal(signal.SIGHUP)
        wait_for(lambda: fake.find_rules("sms.inbound", "clicksend-relay sms.inbound")[0]
                 ["action"] == "URL", 15, 0.2)
        r = fake.find_rules("sms.inbound", "clicksend-relay sms.inbound")[0]
        tap.check_eq((r["action"], r["action_address"]),
                     ("URL", action_address("sms.inbound", public)),
                     "leaving poll makes it a URL rule again")
        tap.check_eq(health(d).get("poll"), "off", "/healthz poll off without polled kinds")
        d.close()


def test_poll_once():
    with FakeClickSend(USER, KEY) as fake:
        d = Daemon(tap, start=False, sections={"clicksend": clicksend(
            fake, poll="sms.inbound fax.receipt")})
        items = fake.add_poll_items("/sms/inbound", 3)
        fake.add_poll_items("/fax/receipts", 1)
        rc, out, err = tool(d.conf_path, "poll", "--once")
        tap.check_eq(rc, 0, "poll --once: exit 0", out + err)
        for it in items:
            tap.ok(re.search(r"^sms\.inbound event \d+ message_id %s$" % it["message_id"],
                             out, re.M), "poll --once prints the stored event", out)
        tap.ok(re.search(r"^sms\.inbound: 3 item\(s\) stored$", out, re.M) and
               re.search(r"^fax\.receipt: 1 item\(s\) stored$", out, re.M),
               "poll --once prints one line per kind", out)
        tap.check_eq(d.sql_value("SELECT count(*) FROM events WHERE format = 'poll'"), 4,
                     "poll --once stored the items")
        tap.check_eq(unread(fake, ["/sms/inbound"]), 0, "and marked them read")
        rc, out, _ = tool(d.conf_path, "poll", "--once")
        tap.ok(rc == 0 and "sms.inbound: 0 item(s) stored" in out, "nothing left", out)
        fake.set_auth(USER, "other")
        rc, out, err = tool(d.conf_path, "poll", "--once")
        tap.ok(rc == 69 and "error" in out and KEY not in out + err,
               "poll --once with bad credentials: 69", out + err)
        d.reconfigure(sections={"clicksend": clicksend(fake, poll="")})
        rc, out, err = tool(d.conf_path, "poll", "--once")
        tap.check_eq(rc, 78, "poll --once without polled kinds: 78", out + err)
        rc, out, err = tool(d.conf_path, "poll")
        tap.check_eq(rc, 64, "poll without --once: usage", out + err)


def test_truncated_list():
    """More receipts in one second than one fetch takes (50 pages of 100): those read are
    stored and marked, those past the last page stay unread at ClickSend."""
    with FakeClickSend(USER, KEY) as fake:
        d = Daemon(tap, start=False, sections={"clicksend": clicksend(fake, poll="sms.receipt")})
        t = int(time.time()) - 120
        fake.add_poll_items("/sms/receipts", 5030, timestamp=t)
        rc, out, err = tool(d.conf_path, "poll", "--once", timeout=120)
        stored = d.sql_value("SELECT count(*) FROM events WHERE kind = 'sms.receipt'")
        unread = {i["message_id"] for i in fake.poll_items("/sms/receipts", unread=True)}
        read = {i["message_id"] for i in fake.poll_items("/sms/receipts")} - unread
        ids = {r["message_id"] for r in d.sql(
            "SELECT message_id FROM events WHERE kind = 'sms.receipt'")}
        tap.ok(rc == 0 and stored == 5000, "a list of 5030: the 5000 read are stored",
               ["exit %s, stored %s" % (rc, stored), out[-300:], err[-300:]])
        tap.ok(read <= ids and len(unread) >= 30,
               "no receipt is marked read that was not stored; those past the last page "
               "stay unread", "%d read, %d of them not stored; %d unread" % (
                   len(read), len(read - ids), len(unread)))


for t in (test_config_errors, test_fetch_store_mark, test_arrival_between_fetch_and_mark,
          test_pushed_and_polled, test_uncommitted_never_marked, test_errors,
          test_provision_poll_rules, test_poll_once, test_truncated_list):
    tap.run(t)
tap.done()
