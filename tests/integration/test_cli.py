#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The operator tool clicksend-relay (clicksend-relay(1)) against a
store written by the real daemon: events, deliveries, retry, replay, stats, exit codes."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import (Tap, Daemon, sanitizer_report, render_config, free_port,  # noqa: E402
                     time_ok, sqlite_only)

BASE = "/clicksend"
FORM = "application/x-www-form-urlencoded"
EVENT_COLUMNS = ["id", "kind", "format", "received_at", "remote_addr", "message_id",
                 "from_number", "to_number", "body", "status_code", "status_text",
                 "custom_string", "payload", "dedupe_key", "duplicates"]
DELIVERY_COLUMNS = ["id", "event_id", "relay", "state", "attempts", "next_attempt_at",
                    "last_attempt_at", "last_result", "done_at"]

tap = Tap(timeout=150)
HERE = os.path.dirname(os.path.abspath(__file__))


def tool_path():
    p = os.environ.get("RELAY_TOOL")
    if p:
        return p
    for cand in (os.path.join(HERE, "..", "..", "src", "clicksend-relay"),
                 "/tmp/build-lead/src/clicksend-relay"):
        if os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return "clicksend-relay"


def tool(conf, *args, timeout=20):
    """Runs the tool; (rc, stdout, stderr). rc None when it had to be killed."""
    cmd = [tool_path()] + (["-c", conf] if conf else []) + list(args)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("utf-8", "replace"), "[killed after timeout]"
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    rep = sanitizer_report(err)
    if rep:
        tap.ok(False, "clicksend-relay %s: no sanitizer report" % " ".join(args), rep)
    return p.returncode, out, err


def show(rc, out, err):
    return ["exit %r" % rc, "stdout: %s" % out[-2000:], "stderr: %s" % err[-2000:]]


def wait_for(fn, timeout=5.0, step=0.1):
    """Polls fn until it returns something true (returned) or the time is up (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v or None
        time.sleep(step)


def table_rows(out):
    """The data lines of a table (the header is the first line), each split on blanks."""
    lines = [l for l in out.splitlines() if l.strip()]
    return [l.split() for l in lines[1:]]


def json_lines(out):
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def write_script(path, code_file, log_file):
    """An exec relay: reads its document, logs the event id, exits with CODE_FILE's number."""
    with open(path, "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\necho \"$CLICKSEND_EVENT_ID\" >> %s\n"
                "exit $(cat %s)\n" % (log_file, code_file))
    os.chmod(path, stat.S_IRWXU)


def set_code(path, code):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % code)
    os.replace(tmp, path)


class Setup:
    """A daemon with exec relay x (failing with exit 3 until told otherwise) and a store
    holding three inbound SMS and two receipts, every delivery dead."""

    def __init__(self):
        self.dir = tap.mkdtemp(prefix="csr-cli-")
        self.code = os.path.join(self.dir, "exit-code")
        self.ran = os.path.join(self.dir, "ran.log")
        self.script = os.path.join(self.dir, "relay.sh")
        set_code(self.code, 3)
        write_script(self.script, self.code, self.ran)
        self.d = Daemon(tap, tmpdir=self.dir, auto_close=False,
                        sections={"relay:x": {"exec": self.script}})
        self.conf = self.d.conf_path

    def post_form(self, path, fields):
        body = "&".join("%s=%s" % (k, v) for k, v in fields.items())
        r = self.d.post(BASE + path, body, FORM)
        if r.status != 200:
            raise AssertionError("POST %s answered %r" % (path, r))

    def fill(self):
        self.post_form("/sms/inbound", {"message_id": "cli-in-1", "from": "%2B61411111111",
                                        "to": "%2B61400000001", "body": "first+message"})
        self.post_form("/sms/inbound", {"message_id": "cli-in-2", "from": "%2B61422222222",
                                        "to": "%2B61400000001",
                                        "body": "x" * 100 + "%1B%5B31mEND"})
        self.receipts = [{"message_id": "cli-r-1", "status_code": "201",
                          "status": "Delivered", "timestamp": 1763883600, "flag": True},
                         {"message_id": "cli-r-2", "status_code": "301", "status": "Failed",
                          "nested": {"a": [1, None]}}]
        r = self.d.post_json(BASE + "/sms/receipt", self.receipts)
        if r.status != 200:
            raise AssertionError("JSON receipts answered %r" % r)
        self.post_form("/sms/inbound", {"message_id": "cli-in-3", "from": "%2B61433333333",
                                        "to": "%2B61400000002", "body": "third"})
        # ClickSend sends cli-in-1 again: a duplicate, counted on the stored row
        self.post_form("/sms/inbound", {"message_id": "cli-in-1", "from": "%2B61411111111",
                                        "to": "%2B61400000001", "body": "first+message"})

    def ids(self):
        rows = self.d.sql("SELECT id, message_id FROM events ORDER BY id")
        return {r["message_id"]: r["id"] for r in rows}

    def deliveries(self, where="1 = 1"):
        return self.d.sql("SELECT * FROM deliveries WHERE %s ORDER BY id" % where)

    def all_settled(self, state, where="1 = 1"):
        rows = self.deliveries(where)
        return rows and all(r["state"] == state for r in rows) and rows

    def run(self, *args):
        return tool(self.conf, *args)


# --------------------------------------------------------------------------- usage, config

@sqlite_only("usage errors against its own SQLite config: the SQLite run covers them")
def test_usage():
    tmp = tap.mkdtemp(prefix="csr-cli-")
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write(render_config({"server": {"listen": "127.0.0.1:%d" % free_port()},
                               "store": {"path": os.path.join(tmp, "events.db")},
                               "relay:x": {"exec": "/bin/true"}}))
    rc, out, err = tool(None, "-V")
    tap.ok(rc == 0 and re.search(r"\d+\.\d+", out), "-V prints the version and exits 0",
           show(rc, out, err))
    rc, out, err = tool(None, "-h")
    tap.ok(rc == 0 and "events" in out and "retry" in out, "-h prints usage on stdout, 0",
           show(rc, out, err))
    rc, out, err = tool(conf, "events", "--help")
    tap.ok(rc == 0 and "--since" in out, "events --help prints its usage, 0", show(rc, out, err))
    bad = [([], "no command"),
           (["nosuchcommand"], "an unknown command"),
           (["-Z", "events"], "an unknown global option"),
           (["events", "--bogus"], "an unknown option"),
           (["events", "--limit"], "--limit without its value"),
           (["events", "--limit", "ten"], "a malformed --limit"),
           (["events", "--limit", "0"], "--limit 0"),
           (["events", "--kind", "sms.nope"], "an unknown --kind"),
           (["events", "--since", "yesterday"], "a malformed --since"),
           (["events", "--since", "2026-13x"], "a --since that is not a time prefix"),
           (["events", "extra"], "an unexpected operand"),
           (["deliveries", "--state", "stuck"], "an unknown --state"),
           (["retry"], "retry without ids"),
           (["retry", "abc"], "retry with a malformed id"),
           (["retry", "-5"], "retry with a negative id"),
           (["retry", "1", "--all-dead"], "retry with ids and --all-dead"),
           (["retry", "1", "--relay"], "retry --relay without a relay name"),
           (["replay"], "replay without an event id"),
           (["replay", "1", "2"], "replay with two ids"),
           (["replay", "one"], "replay with a malformed id"),
           (["provision", "--bogus"], "provision with an unknown option"),
           (["stats", "now"], "stats with an operand")]
    for args, what in bad:
        rc, out, err = tool(conf, *args)
        tap.ok(rc == 64 and err.startswith("clicksend-relay: ") or (rc == 64 and args == []
                                                                    and "usage" in err),
               "%s: exit 64 with a message on stderr" % what, show(rc, out, err))
    tap.ok(not os.path.exists(os.path.join(tmp, "events.db")),
           "usage errors do not create the store")


@sqlite_only("missing store files and files that are not SQLite databases")
def test_config_and_store_errors():
    tmp = tap.mkdtemp(prefix="csr-cli-")
    db = os.path.join(tmp, "events.db")
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:1\n[store]\npath = %s\nno_such_key = 1\n" % db)
    rc, out, err = tool(conf, "events")
    tap.ok(rc == 78 and ("%s:5:" % conf) in err, "a bad config: exit 78 with FILE:LINE",
           show(rc, out, err))
    with open(conf, "w") as f:
        f.write("[store]\npath = %s\n[relay:r]\nexec = relative/path\n" % db)
    rc, out, err = tool(conf, "stats")
    tap.ok(rc == 78 and ("%s:4:" % conf) in err, "a bad relay section: exit 78 with FILE:LINE",
           show(rc, out, err))
    rc, out, err = tool(os.path.join(tmp, "missing.conf"), "events")
    tap.ok(rc == 78 and "missing.conf" in err, "a missing config file: exit 78",
           show(rc, out, err))
    good = os.path.join(tmp, "good.conf")
    with open(good, "w") as f:
        f.write("[store]\npath = %s\n" % db)
    for cmd in (["events"], ["deliveries"], ["retry", "1"], ["replay", "1"], ["stats"]):
        rc, out, err = tool(good, *cmd)
        tap.ok(rc == 66 and err.startswith("clicksend-relay: "),
               "%s on a store that does not exist: exit 66" % cmd[0], show(rc, out, err))
    tap.ok(not os.path.exists(db), "the tool does not create a missing store")
    with open(db, "w") as f:
        f.write("this is not an SQLite database, it is long enough to tell " * 20)
    rc, out, err = tool(good, "events")
    tap.ok(rc == 66, "a file that is not a store: exit 66", show(rc, out, err))


# --------------------------------------------------------------------------- listings

def test_listings(s):
    ids = s.ids()
    tap.check_eq(sorted(ids), ["cli-in-1", "cli-in-2", "cli-in-3", "cli-r-1", "cli-r-2"],
                 "the daemon stored five events")

    rc, out, err = s.run("events")
    rows = table_rows(out)
    got = [int(r[0]) for r in rows]
    tap.ok(rc == 0 and got == sorted(ids.values(), reverse=True),
           "events: every event, newest first", show(rc, out, err))
    head = out.splitlines()[0].split() if out else []
    tap.check_eq(head, ["id", "received_at", "kind", "format", "message_id", "from_number",
                        "to_number", "status_code", "duplicates", "body"],
                 "events: the table's columns")
    line = [l for l in out.splitlines() if "cli-in-2" in l]
    tap.ok(line and "\x1b" not in line[0] and "x" * 100 not in line[0] and "..." in line[0],
           "events: a long body is cut and control characters are not printed", line)
    line1 = [r for r in rows if "cli-in-1" in r]
    tap.ok(line1 and line1[0][8] == "1", "events: the duplicate is counted", line1)

    rc, out, err = s.run("events", "--kind", "sms.receipt")
    rows = table_rows(out)
    tap.ok(rc == 0 and len(rows) == 2 and all(r[2] == "sms.receipt" for r in rows),
           "events --kind sms.receipt: only the two receipts", show(rc, out, err))

    rc, out, err = s.run("events", "--limit", "2")
    rows = table_rows(out)
    want = sorted(ids.values(), reverse=True)[:2]
    tap.ok(rc == 0 and [int(r[0]) for r in rows] == want,
           "events --limit 2: the two newest", show(rc, out, err))

    rc, out, err = s.run("events", "--limit", "2", "--kind", "sms.inbound", "--json")
    objs = json_lines(out)
    tap.ok(rc == 0 and [o["message_id"] for o in objs] == ["cli-in-3", "cli-in-2"],
           "filters combine: --kind, --limit and --json", show(rc, out, err))


def test_since(s):
    ids = s.ids()
    old = ids["cli-in-1"]
    s.d.sql("UPDATE events SET received_at = '2020-01-02T03:04:05.678Z' WHERE id = %d" % old)
    today = s.d.sql_value("SELECT received_at FROM events WHERE id = %d" % ids["cli-in-3"])
    cases = [(today[:10], False, "a day"),
             (today[:16], None, "a day and minute"),
             ("2021", False, "a year"),
             ("2020-01-02T03:04", True, "a minute"),
             ("2020-01-02T03:04:05.678Z", True, "a whole time, equal"),
             ("2020-01-02T03:04:05.679Z", False, "a whole time, 1 ms later"),
             ("2020-01-02 03:04:05Z", True, "a space for the T and a final Z")]
    for since, has_old, what in cases:
        rc, out, err = s.run("events", "--since", since, "--json", "--limit", "100")
        try:
            objs = json_lines(out)
        except ValueError:
            objs = None
        ok = rc == 0 and objs is not None and all(o["received_at"] >= since[:10] for o in objs)
        if has_old is not None:
            ok = ok and (any(o["id"] == old for o in objs) == has_old)
        if has_old is False:
            ok = ok and len(objs) >= 1
        tap.ok(ok, "events --since %s (%s)" % (since, what), show(rc, out, err))
    rc, out, err = s.run("events", "--since", "2099", "--json")
    tap.ok(rc == 0 and out.strip() == "", "events --since in the future: nothing",
           show(rc, out, err))


def test_events_json(s):
    rc, out, err = s.run("events", "--json", "--limit", "100")
    try:
        objs = json_lines(out)
    except ValueError as e:
        tap.ok(False, "events --json: one JSON object per line", show(rc, out, err) + [str(e)])
        return
    tap.ok(rc == 0 and len(objs) == 5, "events --json: one JSON object per line",
           show(rc, out, err))
    tap.ok(all(list(o.keys()) == EVENT_COLUMNS or set(o) == set(EVENT_COLUMNS) for o in objs),
           "events --json: every column as a key", [sorted(o) for o in objs[:1]])
    tap.ok(all(isinstance(o["id"], int) and isinstance(o["duplicates"], int) for o in objs),
           "events --json: id and duplicates are numbers")
    tap.ok(all(isinstance(o["payload"], dict) for o in objs),
           "events --json: payload is a nested object")
    by = {o["message_id"]: o for o in objs}
    for want in s.receipts:
        got = by.get(want["message_id"], {}).get("payload")
        tap.check_eq(got, want, "events --json: payload of %s as received, types kept"
                     % want["message_id"])
    o = by.get("cli-in-2", {})
    tap.ok(o.get("body", "").endswith("\x1b[31mEND") and len(o["body"]) == 108,
           "events --json: the body is whole, escapes and all", repr(o.get("body")))
    tap.ok(by.get("cli-in-1", {}).get("duplicates") == 1 and
           by.get("cli-in-3", {}).get("status_code", 0) is None and
           by.get("cli-in-3", {}).get("from_number") == "+61433333333" and
           time_ok(by.get("cli-in-3", {}).get("received_at")),
           "events --json: columns carry their values, NULL as null",
           json.dumps(by.get("cli-in-3")))


def test_deliveries(s):
    rc, out, err = s.run("deliveries", "--state", "dead")
    rows = table_rows(out)
    tap.ok(rc == 0 and len(rows) == 5 and all(r[2] == "x" and r[3] == "dead" for r in rows),
           "deliveries --state dead: the five failed deliveries", show(rc, out, err))
    ids = [int(r[0]) for r in rows]
    tap.ok(ids == sorted(ids, reverse=True), "deliveries: newest first", ids)
    rc, out, err = s.run("deliveries", "--relay", "x", "--json", "--limit", "3")
    try:
        objs = json_lines(out)
    except ValueError:
        objs = []
    tap.ok(rc == 0 and len(objs) == 3 and all(set(o) == set(DELIVERY_COLUMNS) for o in objs),
           "deliveries --json: one object per line with the deliveries columns",
           show(rc, out, err))
    tap.ok(all(o["state"] == "dead" and o["attempts"] == 1 and o["relay"] == "x" and
               "3" in (o["last_result"] or "") for o in objs),
           "deliveries --json: state, attempts and last result of the failed attempt",
           json.dumps(objs[:1]))
    rc, out, err = s.run("deliveries", "--relay", "nosuch")
    tap.ok(rc == 0 and table_rows(out) == [], "deliveries --relay nosuch: no rows, exit 0",
           show(rc, out, err))
    rc, out, err = s.run("deliveries", "--state", "pending")
    tap.ok(rc == 0 and table_rows(out) == [], "deliveries --state pending: none",
           show(rc, out, err))


# --------------------------------------------------------------------------- changes

def test_retry(s):
    ids = s.ids()
    d1 = s.deliveries("event_id = %d" % ids["cli-in-1"])[0]
    set_code(s.code, 0)
    rc, out, err = s.run("retry", str(d1["id"]))
    tap.ok(rc == 0 and re.search(r"\b1\b", out), "retry ID: exit 0, one set back",
           show(rc, out, err))
    row = wait_for(lambda: s.all_settled("done", "id = %d" % d1["id"]), timeout=3.5)
    tap.ok(row, "retry ID: the running daemon delivers it within ~3 s",
           [repr(s.deliveries("id = %d" % d1["id"])), s.d.log()[-1500:]])
    if row:
        tap.ok(row[0]["attempts"] == 1 and row[0]["done_at"],
               "retry ID: attempts start again from 0 (one more attempt), done_at set",
               repr(row))

    rc, out, err = s.run("retry", str(d1["id"]))
    row = s.deliveries("id = %d" % d1["id"])[0]
    tap.ok(rc == 0 and str(d1["id"]) in err and row["state"] == "done",
           "retry of a done delivery: reported and skipped", show(rc, out, err) + [repr(row)])

    d2 = s.deliveries("event_id = %d" % ids["cli-in-2"])[0]
    set_code(s.code, 3)
    rc, out, err = s.run("retry", "999999", str(d2["id"]))
    tap.ok(rc == 65 and "999999" in err, "retry of an unknown id: exit 65 naming it",
           show(rc, out, err))
    row = wait_for(lambda: (lambda r: r if r["last_attempt_at"] != d2["last_attempt_at"]
                            and r["state"] == "dead" else None)(
        s.deliveries("id = %d" % d2["id"])[0]), timeout=3.5)
    tap.ok(row and row["state"] == "dead",
           "... and the known id next to it was retried anyway (and failed again)",
           repr(s.deliveries("id = %d" % d2["id"])))


def test_retry_all_dead(s):
    set_code(s.code, 0)
    dead = s.deliveries("state = 'dead'")
    rc, out, err = s.run("retry", "--all-dead", "--relay", "nosuch")
    tap.ok(rc == 64, "retry --all-dead --relay with an unknown relay: exit 64",
           show(rc, out, err))
    rc, out, err = s.run("retry", "--all-dead", "--relay", "x")
    tap.ok(rc == 0 and re.search(r"\b%d\b" % len(dead), out) and len(dead) >= 4,
           "retry --all-dead --relay x: every dead one set back, counted",
           show(rc, out, err) + ["dead before: %d" % len(dead)])
    rows = wait_for(lambda: s.all_settled("done"), timeout=4)
    tap.ok(rows, "retry --all-dead: the daemon delivers them all",
           [repr(s.deliveries()), s.d.log()[-1500:]])
    rc, out, err = s.run("retry", "--all-dead")
    tap.ok(rc == 0 and re.search(r"\b0\b", out), "retry --all-dead with none dead: 0 set back",
           show(rc, out, err))


def test_replay(s):
    ids = s.ids()
    ev = ids["cli-in-3"]
    receipt = ids["cli-r-1"]
    before = s.deliveries("event_id = %d" % ev)
    tap.ok(len(before) == 1 and before[0]["state"] == "done", "replay: the event is delivered",
           repr(before))
    # a relay added after the event arrived, taking inbound SMS only
    s.d.reconfigure(sections={"relay:y": {"exec": s.script, "events": "sms.inbound"}})
    s.d.signal(signal.SIGHUP)
    s.d.wait_log(r"reload: .* loaded", timeout=3)
    time.sleep(0.3)
    mark = os.path.getsize(s.ran) if os.path.exists(s.ran) else 0
    rc, out, err = s.run("replay", str(ev))
    tap.ok(rc == 0 and re.search(r"\b1\b.*\b1\b", out),
           "replay ID: one set back, one created", show(rc, out, err))
    rows = wait_for(lambda: (lambda r: r if len(r) == 2 and all(
        x["state"] == "done" for x in r) else None)(s.deliveries("event_id = %d" % ev)),
        timeout=4)
    tap.ok(rows and sorted(r["relay"] for r in rows) == ["x", "y"],
           "replay: a row for the new relay y, and both delivered again",
           [repr(s.deliveries("event_id = %d" % ev)), s.d.log()[-1500:]])
    with open(s.ran) as f:
        f.seek(mark)
        runs = f.read().split()
    tap.ok(runs.count("evt_%d" % ev) == 2, "replay: the relays really ran again for the event",
           runs)
    if rows:
        x = [r for r in rows if r["relay"] == "x"][0]
        tap.ok(x["attempts"] == 1,
               "replay: the schedule starts again (attempts from 0, one attempt)", repr(x))

    rc, out, err = s.run("replay", str(receipt), "--relay", "y")
    tap.ok(rc == 65 and s.deliveries("event_id = %d AND relay = 'y'" % receipt) == [],
           "replay --relay of a relay that does not take the event: 65, nothing created",
           show(rc, out, err))
    rc, out, err = s.run("replay", str(receipt), "--relay", "nosuch")
    tap.check_eq(rc, 64, "replay --relay with a relay not configured: exit 64",
                 show(rc, out, err))
    rc, out, err = s.run("replay", "999999")
    tap.ok(rc == 65 and "999999" in err, "replay of an unknown event: exit 65",
           show(rc, out, err))
    rc, out, err = s.run("replay", str(receipt), "--relay", "x")
    row = s.deliveries("event_id = %d" % receipt)
    tap.ok(rc == 0 and len(row) == 1 and row[0]["relay"] == "x",
           "replay --relay x: only that relay's row", show(rc, out, err) + [repr(row)])
    wait_for(lambda: s.all_settled("done", "event_id = %d" % receipt), timeout=4)


def test_stats(s):
    set_code(s.code, 3)
    s.post_form("/sms/inbound", {"message_id": "cli-in-4", "body": "stats"})
    wait_for(lambda: len(s.d.sql("SELECT 1 FROM deliveries d JOIN events e ON "
                                 "e.id = d.event_id WHERE e.message_id = 'cli-in-4' AND "
                                 "d.state = 'dead'")) == 2, timeout=4)
    counts = {(r["relay"], r["state"]): r["n"] for r in s.d.sql(
        "SELECT relay, state, count(*) AS n FROM deliveries GROUP BY relay, state")}
    kinds = {r["kind"]: (r["n"], r["d"]) for r in s.d.sql(
        "SELECT kind, count(*) AS n, sum(duplicates) AS d FROM events GROUP BY kind")}
    rc, out, err = s.run("stats")
    words = [l.split() for l in out.splitlines()]
    tap.ok(rc == 0, "stats: exit 0", show(rc, out, err))
    for kind, (n, dups) in kinds.items():
        tap.ok([kind, str(n), str(dups)] in words,
               "stats: %s has %d events, %d duplicates" % (kind, n, dups), out)
    for relay in ("x", "y"):
        want = [relay] + [str(counts.get((relay, st), 0)) for st in ("pending", "done", "dead")]
        tap.ok(want in words, "stats: relay %s pending, done, dead" % relay,
               [out, "want %r" % want])
    tap.ok(re.search(r"oldest pending", out), "stats: the oldest pending delivery", out)
    # pending rows for a relay the daemon does not know stay pending: the oldest shows up
    s.d.sql("INSERT INTO deliveries (event_id, relay, state, attempts, next_attempt_at) "
            "SELECT id, 'gone', 'pending', 0, received_at FROM events WHERE "
            "message_id = 'cli-r-2'")
    rid = s.d.sql_value("SELECT id FROM deliveries WHERE relay = 'gone'")
    rc, out, err = s.run("stats")
    tap.ok(rc == 0 and re.search(r"oldest pending.*\b%d\b.*gone" % rid, out),
           "stats: the oldest pending delivery names its id and relay", show(rc, out, err))
    rc, out, err = s.run("retry", str(rid))
    row = s.deliveries("id = %d" % rid)
    tap.ok(rc == 0 and "gone" in err and row[0]["state"] == "pending",
           "retry of a delivery to a relay no longer configured: reported, left alone",
           show(rc, out, err))


def test_with_daemon():
    s = Setup()
    try:
        s.fill()
        settled = wait_for(lambda: len(s.deliveries()) == 5 and s.all_settled("dead"),
                           timeout=6)
        if not tap.ok(settled, "setup: every delivery to the failing exec relay is dead",
                      [repr(s.deliveries()), s.d.log()[-2000:]]):
            tap.diag("the relay engine does not run exec relays yet: later tests will fail")
        for fn in (test_listings, test_since, test_events_json, test_deliveries, test_retry,
                   test_retry_all_dead, test_replay, test_stats):
            tap.run(fn, s)
    finally:
        s.d.close()


def main():
    tap.run(test_usage)
    tap.run(test_config_and_store_errors)
    tap.run(test_with_daemon)
    tap.done()


if __name__ == "__main__":
    main()
