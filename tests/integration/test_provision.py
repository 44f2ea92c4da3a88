#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Provisioning of ClickSend automation rules (clicksend-relayd(8), Provisioning) by the real
daemon and by `clicksend-relay provision`, against the fake ClickSend in fake_clicksend.py:
create / unchanged / drift repair, foreign rules untouched, pagination, lenient answers (both id
spellings, numbers as strings), a stalled API not blocking ingest, 401 not retried, 429 backed
off, test receipts end to end, and the API key kept out of logs, /healthz and the
process's command line (read from /proc, as ps would)."""

import base64
import os
import re
import signal
import subprocess
import sys
import time

_here = os.path.dirname(os.path.abspath(__file__))
for _p in (_here, os.environ.get("TESTS_LIB")):
    if _p and _p not in sys.path:
        sys.path.insert(0, _p)
from harness import (Tap, Daemon, DaemonError, run_relayd, sanitizer_report,  # noqa: E402
                     tests_data, time_ok)
from fake_clicksend import (FakeClickSend, KINDS, WEBHOOK_PATHS, TEST_PUSH_KINDS,  # noqa: E402
                            expected_rule, action_address)

USER = "csr-user"
KEY = "KEY-s3cr3t-XYZ"
KEY_B64 = base64.b64encode(("%s:%s" % (USER, KEY)).encode()).decode()
ALL_KINDS = ["sms.inbound", "sms.receipt", "fax.inbound", "fax.receipt", "voice.receipt",
             "email.receipt"]
PREFIX = "clicksend-relay"
BASE = "/clicksend"
FORM = "application/x-www-form-urlencoded"

tap = Tap(timeout=170)


# --------------------------------------------------------------------------- helpers

class PDaemon(Daemon):
    """A daemon whose [clicksend] section points at the fake; public_url follows the port
    the harness picked (also when it has to pick another one at start)."""

    def __init__(self, tap, fake, clicksend=None, **kw):
        self.fake = fake
        self.cs_over = dict(clicksend or {})
        super().__init__(tap, **kw)

    def public_url(self):
        return "http://127.0.0.1:%d%s" % (self.port, BASE)

    def config_text(self):
        cs = {"username": USER, "api_key": KEY, "api_url": self.fake.url,
              "public_url": self.public_url(), "provision": " ".join(ALL_KINDS),
              "webhook_type": "json", "rule_prefix": PREFIX}
        cs.update(self.cs_over)          # a None value drops the key
        self.sections["clicksend"] = cs
        return super().config_text()


def tool_path():
    p = os.environ.get("RELAY_TOOL")
    if p:
        return p
    for cand in (os.path.join(_here, "..", "..", "src", "clicksend-relay"),
                 "/tmp/build-lead/src/clicksend-relay"):
        if os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return "clicksend-relay"


def tool(conf, *args, timeout=30):
    cmd = [tool_path(), "-c", conf] + list(args)
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


def health(d):
    try:
        _, h = d.healthz()
        return h or {}
    except OSError as e:
        return {"error": str(e)}


def wait_health(d, pred, timeout=15.0, fake=None, since=0):
    """Polls /healthz every 0.2 s until pred(doc) is true; (true?, last doc). With fake, gives
    up early when the daemon has made no API call (since the mark) within 5 s."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        h = health(d)
        if pred(h):
            return True, h
        now = time.monotonic()
        if now >= deadline or not d.alive():
            return False, h
        if fake is not None and now - start > 5 and not fake.requests(since=since):
            h = dict(h, note="no API call within 5 s: gave up waiting")
            return False, h
        time.sleep(0.2)


def wait_prov(d, want="ok", timeout=15.0, fake=None, since=0):
    return wait_health(d, lambda h: h.get("provisioning") == want, timeout, fake, since)


def wait_lists(fake, kinds, since, timeout=10.0):
    """Waits (one deadline) until every kind's automation list was fetched since the mark."""
    deadline = time.monotonic() + timeout
    while True:
        got = {e["path"] for e in fake.requests(method="GET", since=since)}
        if all("/v3" + KINDS[k]["path"] in got for k in kinds) or time.monotonic() >= deadline:
            return
        time.sleep(0.1)


def metric(d, name, kind):
    body = d.get("/metrics").body
    m = re.search(r'^%s\{[^}]*kind="%s"[^}]*\}\s+(\S+)\s*$' % (re.escape(name), re.escape(kind)),
                  body, re.M)
    return float(m.group(1)) if m else None


def our_name(kind, prefix=PREFIX):
    return "%s %s" % (prefix, kind)


def rule_diff(rule, want):
    return ["%s: got %r, want %r" % (k, rule.get(k), v) for k, v in want.items()
            if rule.get(k) != v]


def foreign_snapshot(fake, kinds, prefix=PREFIX):
    return {k: [r for r in fake.rules(k) if r.get("rule_name") != our_name(k, prefix)]
            for k in kinds}


def summary(reqs):
    return ["%s %s%s -> %s" % (e["method"], e["path"],
                               ("?" + "&".join("%s=%s" % kv for kv in e["query"].items()))
                               if e["query"] else "", e["status"]) for e in reqs]


def prov_rows(d):
    return {r["kind"]: r for r in d.sql("SELECT * FROM provisioned_rules")}


def check_secret_free(d, what):
    """The API key (and the Basic credentials made of it) appear nowhere a user can see."""
    log = d.full_log()
    tap.ok(KEY not in log and KEY_B64 not in log, "%s: the API key is not in the log (-d)" % what,
           [l for l in log.splitlines() if KEY in l or KEY_B64 in l][:5])
    r = d.get("/healthz")
    tap.ok(KEY not in r.body, "%s: the API key is not in /healthz" % what, r.body)
    m = d.get("/metrics")
    tap.ok(KEY not in m.body, "%s: the API key is not in /metrics" % what)
    if d.alive():
        # what ps would show, read from /proc (a minimal system has no procps)
        cmdline, environ = proc_text(d.proc.pid, "cmdline"), proc_text(d.proc.pid, "environ")
        tap.ok("clicksend-relayd" in cmdline and KEY not in cmdline and KEY not in environ,
               "%s: the API key is not in the daemon's command line or environment" % what,
               [cmdline])


def proc_text(pid, name):
    """/proc/PID/NAME with its NUL separators as spaces ("" when unreadable)."""
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- tests

def test_create_unchanged_drift():
    """First start creates one rule per kind; a restart writes nothing; drift is repaired
    with a PUT on SIGHUP; foreign rules are never touched."""
    with FakeClickSend(USER, KEY) as fake:
        for k in ALL_KINDS:
            fake.add_foreign(k, 2)
            # near misses of our name: other rules as far as we are concerned
            fake.add_rule(k, rule_name=our_name(k) + " (old)", action="URL",
                          action_address="https://old.example.com/x")
            fake.add_rule(k, rule_name=our_name(k).upper(), action="URL",
                          action_address="https://old.example.com/y")
        fake.add_rule("sms.inbound", rule_name="forward to sales inbox",
                      dedicated_number="+61411111111", message_search_type=2,
                      message_search_term="quote", enabled="1", webhook_type=None)
        foreign = foreign_snapshot(fake, ALL_KINDS)

        d = PDaemon(tap, fake, name="prov-main")
        pub = d.public_url()
        ok, h = wait_prov(d, "ok", 20, fake)
        if not tap.ok(ok, "first start: /healthz provisioning becomes \"ok\"",
                      [repr(h)] + summary(fake.requests()) + [d.log()[-3000:]]):
            return

        writes = fake.writes()
        posts = sorted(e["path"] for e in writes if e["method"] == "POST")
        tap.check_eq(posts, sorted("/v3" + KINDS[k]["path"] for k in ALL_KINDS),
                     "first start: one POST (create) per kind at its automation endpoint",
                     summary(writes))
        tap.check_eq([e for e in writes if e["method"] != "POST"], [],
                     "first start: no PUT or DELETE")
        bad = [e["path"] + " " + e["content_type"] for e in writes
               if not e["content_type"].lower().startswith("application/json")
               or not isinstance(e["body"], dict)]
        tap.check_eq(bad, [], "rule bodies are JSON objects sent as application/json")
        tap.check_eq([e["status"] for e in writes if e["status"] != 200], [],
                     "the fake accepted every create (required fields present and valid)",
                     ["%s %s -> %s %s" % (e["method"], e["path"], e["status"], e["raw"])
                      for e in writes])
        badauth = [(e["path"], e["user"]) for e in fake.requests() if not e["auth_ok"]]
        tap.check_eq(badauth, [], "every API call carries the configured Basic credentials")

        ids = {}
        for k in ALL_KINDS:
            mine = fake.find_rules(k, our_name(k))
            if not tap.check_eq(len(mine), 1, "%s: exactly one rule named %r" % (k, our_name(k))):
                continue
            ids[k] = mine[0]["id"]
            want = expected_rule(k, pub, PREFIX, "json", "*")
            tap.check_eq(rule_diff(mine[0], want), [],
                         "%s: rule has action URL, action_address %s, enabled 1%s" % (
                             k, WEBHOOK_PATHS[k],
                             {"sms.inbound": ", webhook_type json, any message, all numbers",
                              "fax.inbound": ", all numbers"}.get(k, ", all receipts")))
        tap.check_eq(foreign_snapshot(fake, ALL_KINDS), foreign,
                     "foreign rules (other names, near-miss names) are untouched")

        rows = prov_rows(d)
        tap.check_eq(sorted(rows), sorted(ALL_KINDS), "provisioned_rules has one row per kind")
        for k in ALL_KINDS:
            r = rows.get(k)
            if not r:
                continue
            probs = []
            if r.get("rule_id") != ids.get(k):
                probs.append("rule_id %r, fake id %r" % (r.get("rule_id"), ids.get(k)))
            if r.get("rule_name") != our_name(k):
                probs.append("rule_name %r" % r.get("rule_name"))
            if r.get("action_address") != action_address(k, pub):
                probs.append("action_address %r" % r.get("action_address"))
            if k == "sms.inbound" and r.get("webhook_type") != "json":
                probs.append("webhook_type %r" % r.get("webhook_type"))
            if not time_ok(r.get("synced_at")):
                probs.append("synced_at %r" % r.get("synced_at"))
            if r.get("last_error") is not None:
                probs.append("last_error %r" % r.get("last_error"))
            tap.check_eq(probs, [], "%s: provisioned_rules row (rule_id, rule_name, "
                         "action_address, webhook_type, synced_at, last_error NULL)" % k, [repr(r)])
        gauges = {k: metric(d, "clicksend_relay_provision_ok", k) for k in ALL_KINDS}
        tap.check_eq(gauges, {k: 1.0 for k in ALL_KINDS},
                     "/metrics clicksend_relay_provision_ok{kind} is 1 for every kind")
        tap.ok(re.search(r"sms\.inbound.*\bcreated?\b", d.log(), re.I) is not None,
               "the provisioning result is logged per kind", d.log()[-2000:])
        check_secret_free(d, "after provisioning")

        # -- second start: nothing to do
        mark = fake.mark()
        d.restart()
        wait_lists(fake, ALL_KINDS, mark)
        ok, h = wait_prov(d, "ok", 15, fake, mark)
        time.sleep(0.5)
        reqs = fake.requests(since=mark)
        listed = sorted({e["path"] for e in reqs if e["method"] == "GET"})
        tap.ok(ok and all("/v3" + KINDS[k]["path"] in listed for k in ALL_KINDS),
               "second start: every kind is listed again and provisioning is \"ok\"",
               [repr(h)] + summary(reqs))
        tap.check_eq(summary(fake.writes(since=mark)), [],
                     "second start: no POST, PUT or DELETE (every rule unchanged)")
        tap.ok(re.search(r"unchanged|up to date|in sync", d.log(), re.I) is not None,
               "second start: the log says the rules are unchanged", d.log()[-2000:])

        # -- drift behind our back, repaired on SIGHUP
        fake.update_rule("sms.inbound", ids["sms.inbound"], webhook_type="post")
        fake.update_rule("sms.receipt", ids["sms.receipt"],
                         action_address="https://old.example.com/clicksend/sms/receipt")
        fake.update_rule("voice.receipt", ids["voice.receipt"], enabled=0)
        fake.update_rule("fax.inbound", ids["fax.inbound"], dedicated_number="+61400000000")
        drifted = ["sms.inbound", "sms.receipt", "voice.receipt", "fax.inbound"]
        mark = fake.mark()
        d.signal(signal.SIGHUP)
        puts = fake.wait_requests(len(drifted), 10, method="PUT", since=mark)
        ok, h = wait_prov(d, "ok", 10, fake, mark)
        writes = fake.writes(since=mark)
        tap.check_eq(sorted(e["method"] + " " + e["path"] for e in writes),
                     sorted("PUT /v3%s/%d" % (KINDS[k]["path"], ids[k]) for k in drifted),
                     "SIGHUP after drift (webhook_type, action_address, enabled, "
                     "dedicated_number): one PUT on each drifted rule's id, nothing else",
                     summary(fake.requests(since=mark)) + [d.log()[-2000:]])
        tap.check_eq([e["status"] for e in puts if e["status"] != 200], [],
                     "the fake accepted every PUT (full rule sent)",
                     ["%s -> %s %s" % (e["path"], e["status"], e["raw"]) for e in puts])
        for k in ALL_KINDS:
            mine = fake.find_rules(k, our_name(k))
            tap.ok(len(mine) == 1 and not rule_diff(mine[0],
                                                    expected_rule(k, pub, PREFIX, "json", "*")),
                   "%s: rule is as configured after the repair" % k,
                   [rule_diff(m, expected_rule(k, pub, PREFIX, "json", "*")) for m in mine])
        tap.ok(ok, "after the repair /healthz provisioning is \"ok\"", repr(h))
        tap.check_eq(foreign_snapshot(fake, ALL_KINDS), foreign,
                     "foreign rules are still untouched after the repair")
        check_secret_free(d, "after the repair")
        d.close()


def test_pagination_and_lenient_answers():
    """Our rules sit behind more than 15 (and more than 100) foreign ones; the fake answers with
    sms_inbound_rule_id in lists, numbers as strings, enabled "1", webhook_type null on receipt
    rules. Found, not duplicated; only the drifted one is PUT; a restart writes nothing."""
    kinds = ["sms.inbound", "sms.receipt", "fax.inbound"]
    with FakeClickSend(USER, KEY) as fake:
        fake.set_options(alt_ids=True, numbers_as_strings=True, receipt_webhook_type_null=True)
        d = PDaemon(tap, fake, clicksend={"provision": " ".join(kinds)}, start=False,
                    name="prov-pages")
        pub = d.public_url()
        fake.add_foreign("sms.inbound", 105)
        ids = {"sms.inbound": fake.add_our_rule("sms.inbound", pub, enabled="1")}
        fake.add_foreign("sms.receipt", 101)
        ids["sms.receipt"] = fake.add_our_rule("sms.receipt", pub, enabled=0)      # drifted
        fake.add_foreign("fax.inbound", 120)
        ids["fax.inbound"] = fake.add_our_rule("fax.inbound", pub)
        foreign = foreign_snapshot(fake, kinds)
        try:
            d.start()
        except DaemonError as e:
            tap.ok(False, "daemon starts", str(e))
            return
        ok, h = wait_prov(d, "ok", 20, fake)
        if not tap.ok(ok, "provisioning becomes \"ok\"",
                      [repr(h)] + summary(fake.requests()) + [d.log()[-3000:]]):
            return
        reqs = fake.requests()
        writes = fake.writes()
        tap.check_eq(summary(writes), ["PUT /v3%s/%d -> 200" % (KINDS["sms.receipt"]["path"],
                                                               ids["sms.receipt"])],
                     "only the drifted sms.receipt rule (on page 2 even at limit 100) is written, "
                     "by id; "
                     "nothing is created", summary(reqs))
        for k in kinds:
            gets = [e for e in reqs
                    if e["method"] == "GET" and e["path"] == "/v3" + KINDS[k]["path"]]
            pages = sorted({int(e["query"].get("page", "1") or 1) for e in gets})
            limit = max([min(100, max(15, int(e["query"].get("limit", "15") or 15)))
                         for e in gets] or [15])
            last = (len(fake.rules(k)) + limit - 1) // limit
            tap.ok(last >= 2 and pages and max(pages) >= last,
                   "%s: the list is followed to its last page (%d with limit %d)"
                   % (k, last, limit),
                   summary(gets))
            tap.check_eq(len(fake.find_rules(k, our_name(k))), 1,
                         "%s: our rule is found, not duplicated" % k)
        rows = prov_rows(d)
        tap.check_eq({k: rows.get(k, {}).get("rule_id") for k in kinds}, ids,
                     "provisioned_rules.rule_id holds the ids read from string answers "
                     "(sms_inbound_rule_id and inbound_rule_id/receipt_rule_id)",
                     [repr(r) for r in rows.values()])
        tap.check_eq(foreign_snapshot(fake, kinds), foreign, "the 326 foreign rules are untouched")
        r = fake.rule("sms.receipt", ids["sms.receipt"])
        tap.check_eq(rule_diff(r, expected_rule("sms.receipt", pub)), [],
                     "sms.receipt rule repaired")

        mark = fake.mark()
        d.restart()
        wait_lists(fake, kinds, mark)
        ok, h = wait_prov(d, "ok", 15, fake, mark)
        time.sleep(0.5)
        tap.ok(ok and fake.writes(since=mark) == [],
               "restart against string answers (\"1\", \"0\", null webhook_type): no writes",
               [repr(h)] + summary(fake.requests(since=mark)))
        d.close()


def test_token_key_file_options():
    """token in action_address, api_key_file, webhook_type post, dedicated_number and
    rule_prefix from the config; a webhook to the provisioned URL is accepted."""
    kinds = ["sms.inbound", "fax.receipt"]
    token = "t0k-Abc_123"
    with FakeClickSend(USER, KEY) as fake:
        tmp = tap.mkdtemp()
        keyfile = os.path.join(tmp, "api-key")
        with open(keyfile, "w") as f:
            f.write(KEY + "\n")
        os.chmod(keyfile, 0o600)
        d = PDaemon(tap, fake, server={"token": token},
                    clicksend={"api_key": None, "api_key_file": keyfile,
                               "provision": " ".join(kinds), "webhook_type": "post",
                               "dedicated_number": "+61411111111", "rule_prefix": "relay-test"},
                    name="prov-token")
        pub = d.public_url()
        ok, h = wait_prov(d, "ok", 20, fake)
        if not tap.ok(ok, "api_key_file: provisioning becomes \"ok\"",
                      [repr(h)] + summary(fake.requests()) + [d.log()[-3000:]]):
            return
        tap.ok(fake.requests() and all(e["auth_ok"] for e in fake.requests()),
               "the key read from api_key_file (trailing newline dropped) authenticates",
               [(e["path"], e["user"], e["status"]) for e in fake.requests()])
        for k in kinds:
            mine = fake.find_rules(k, our_name(k, "relay-test"))
            want = expected_rule(k, pub, "relay-test", "post", "+61411111111", token)
            tap.ok(len(mine) == 1 and not rule_diff(mine[0], want),
                   "%s: rule %r with the token in action_address%s" % (
                       k, our_name(k, "relay-test"),
                       ", webhook_type post, dedicated_number +61411111111"
                       if k == "sms.inbound" else ""),
                   [rule_diff(m, want) for m in mine] or summary(fake.requests()))
        rows = prov_rows(d)
        tap.check_eq(rows.get("sms.inbound", {}).get("webhook_type"), "post",
                     "provisioned_rules.webhook_type is post")
        addr = action_address("sms.receipt", pub, token)
        with open(os.path.join(tests_data(), "webhooks", "fax-receipt.form")) as f:
            body = f.read().strip()
        path = action_address("fax.receipt", pub, token)[len("http://127.0.0.1:%d" % d.port):]
        r = d.post(path, body, FORM)
        tap.check_eq(r.status, 200, "a fax receipt POSTed to the provisioned URL is accepted",
                     [path, repr(r), addr])
        check_secret_free(d, "api_key_file")
        d.close()


def test_stalled_api_does_not_block_ingest():
    kinds = ["sms.inbound", "sms.receipt"]
    with FakeClickSend(USER, KEY) as fake:
        fake.stall(30)
        t0 = time.monotonic()
        d = PDaemon(tap, fake, clicksend={"provision": " ".join(kinds)}, name="prov-stall")
        seen = fake.wait_requests(1, 5)
        if not tap.ok(seen, "the daemon calls the API at start", d.log()[-2000:]):
            return
        with open(os.path.join(tests_data(), "webhooks", "sms-receipt.form")) as f:
            body = f.read().strip()
        t1 = time.monotonic()
        r = d.post(BASE + "/sms/receipt", body, FORM, timeout=5)
        t2 = time.monotonic()
        tap.ok(r.status == 200 and t2 - t1 < 1.0,
               "with the API stalled, a webhook is answered 200 within 1 s (%.2f s, %.2f s "
               "after spawn)" % (t2 - t1, t2 - t0), repr(r))
        t1 = time.monotonic()
        h = health(d)
        t2 = time.monotonic()
        tap.ok(h.get("provisioning") == "running" and t2 - t1 < 1.0,
               "/healthz answers at once with provisioning \"running\"", repr(h))
        n = d.sql_value("SELECT count(*) FROM events WHERE kind = 'sms.receipt'")
        tap.check_eq(n, 1, "the webhook event is stored while provisioning waits")
        t1 = time.monotonic()
        try:
            rc = d.stop(timeout=15)
        except DaemonError as e:
            rc = str(e)
        tap.ok(rc == 0, "SIGTERM during a stalled API call: exit 0 (%.1f s)"
               % (time.monotonic() - t1), [repr(rc), d.log()[-2000:]])
        fake.unstall()
        d.close()


def test_bad_credentials():
    kinds = ["sms.inbound", "sms.receipt"]
    with FakeClickSend(USER, "the-right-key") as fake:
        d = PDaemon(tap, fake, clicksend={"provision": " ".join(kinds)}, name="prov-401",
                    debug=False)
        ok, h = wait_health(d, lambda h: str(h.get("provisioning", "")).startswith("error"), 15,
                            fake)
        prov = str(h.get("provisioning", ""))
        if not tap.ok(ok and re.search(r"401|unauthori[sz]ed", prov, re.I) is not None,
                      "wrong key: /healthz provisioning is \"error: ...\" naming 401/unauthorized",
                      [repr(h)] + summary(fake.requests())):
            return
        tap.ok(KEY not in prov and "the-right-key" not in prov,
               "the error text does not carry the key", prov)
        n = len(fake.requests())
        time.sleep(4)
        later = fake.requests(since=n)
        tap.check_eq(summary(later), [], "401 is not retried (no API call in the next 4 s)")
        lines = [l for l in d.log().splitlines() if re.search(r"401|unauthori[sz]ed", l, re.I)
                 and " started, store " not in l]     # the start line names the node
        tap.check_eq(len(lines), 1, "the 401 is logged once (at info level and above)", lines)
        tap.ok(lines and all(KEY not in l for l in lines), "that log line has no key", lines)
        g = {k: metric(d, "clicksend_relay_provision_ok", k) for k in kinds}
        tap.check_eq(g, {k: 0.0 for k in kinds}, "clicksend_relay_provision_ok{kind} is 0")
        tap.ok(d.alive(), "the daemon keeps running (ingest unaffected)")
        # a reload is the retry
        fake.set_auth(USER, KEY)
        d.signal(signal.SIGHUP)
        ok, h = wait_prov(d, "ok", 15, fake, n)
        tap.ok(ok, "after SIGHUP with working credentials provisioning is \"ok\"",
               [repr(h)] + summary(fake.requests(since=n)))
        check_secret_free(d, "401")
        d.close()


def test_429_backoff():
    with FakeClickSend(USER, KEY) as fake:
        fake.fail_next(429, 2, path="/automations")
        t0 = time.monotonic()
        d = PDaemon(tap, fake, clicksend={"provision": "sms.receipt"}, name="prov-429")
        ok, h = wait_prov(d, "ok", 45, fake)
        took = time.monotonic() - t0
        reqs = fake.requests(prefix="/v3/automations/")
        times = [e["t"] for e in reqs]
        gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
        diag = ["took %.1f s; attempts %s; gaps %s" % (took, summary(reqs), gaps),
                repr(h), d.log()[-2000:]]
        if not tap.ok(ok, "429 twice: provisioning eventually \"ok\" (within 45 s%s)"
                      % ("" if ok or not reqs else "; backoff too slow for the test budget?"),
                      diag):
            return
        st = [e["status"] for e in reqs]
        tap.ok(st[:2] == [429, 429] and 200 in st[2:],
               "the API saw two 429 answers, then a successful call", diag)
        tap.ok(len(gaps) >= 2 and min(gaps[:2]) >= 0.5,
               "the daemon waited before each retry (>= 0.5 s)", diag)
        tap.check_eq(len(fake.find_rules("sms.receipt", our_name("sms.receipt"))), 1,
                     "exactly one rule created after the retries")
        d.close()


def test_selftest():
    with FakeClickSend(USER, KEY) as fake:
        d = PDaemon(tap, fake, clicksend={"test_receipts": "yes"}, name="prov-selftest")
        pub = d.public_url()
        ok, h = wait_health(d, lambda h: h.get("selftest") == "passed", 25, fake)
        if not tap.ok(ok, "test_receipts = yes: /healthz selftest becomes \"passed\"",
                      [repr(h)] + summary(fake.requests()) + [repr(p) for p in fake.pushes()]
                      + [d.log()[-3000:]]):
            return
        tap.check_eq(h.get("provisioning"), "ok", "provisioning is \"ok\"")
        tests = [e for e in fake.requests(method="POST")
                 if not e["path"].startswith("/v3/automations/")]
        want_paths = {"sms.inbound": "/v3/sms/inbound", "sms.receipt": "/v3/sms/receipts",
                      "voice.receipt": "/v3/voice/receipts", "fax.receipt": "/v3/fax/receipts",
                      "email.receipt": "/v3/email/receipts"}
        tap.check_eq(sorted(e["path"] for e in tests), sorted(want_paths.values()),
                     "one test push request per kind with a test endpoint (none for fax.inbound)",
                     summary(tests))
        for k, p in sorted(want_paths.items()):
            e = [x for x in tests if x["path"] == p]
            body = e[0]["body"] if e else None
            want = {"url": action_address(k, pub)}
            if k == "sms.inbound":
                want["webhook_type"] = "json"
            got = {kk: (body or {}).get(kk) for kk in want} if isinstance(body, dict) else body
            tap.check_eq(got, want, "%s: test push asks for our URL%s" % (
                k, " and webhook_type json" if k == "sms.inbound" else ""))
        pushes = fake.pushes()
        tap.check_eq(sorted((p["kind"], p["status"]) for p in pushes),
                     sorted((k, 200) for k in want_paths),
                     "the fake pushed every test item to the daemon and got 200",
                     [repr(p) for p in pushes])
        stored = {}
        for p in pushes:
            rows = d.sql("SELECT kind, format FROM events WHERE message_id = '%s'"
                         % p["item"]["message_id"])
            stored[p["kind"]] = rows[0]["kind"] if rows else None
        tap.check_eq(stored, {p["kind"]: p["kind"] for p in pushes},
                     "each test item is stored as an event of its kind")
        st = {k: metric(d, "clicksend_relay_selftest_ok", k) for k in TEST_PUSH_KINDS}
        tap.check_eq(st, {k: 1.0 for k in TEST_PUSH_KINDS},
                     "/metrics clicksend_relay_selftest_ok{kind} is 1 for the five kinds")
        pv = {k: metric(d, "clicksend_relay_provision_ok", k) for k in ALL_KINDS}
        tap.check_eq(pv, {k: 1.0 for k in ALL_KINDS},
                     "/metrics clicksend_relay_provision_ok{kind} is 1 for all six kinds")
        tap.ok(re.search(r"self.?test|test (receipt|push)", d.log(), re.I) is not None,
               "the self-test result is logged", d.log()[-2000:])
        check_secret_free(d, "selftest")
        d.close()

    # test items that reuse a message_id arrive as duplicates after the first run: a reload
    # must still see them and pass
    with FakeClickSend(USER, KEY) as fake:
        fake.set_options(fixed_test_ids=True)
        d = PDaemon(tap, fake, clicksend={"test_receipts": "yes", "provision": "sms.receipt"},
                    name="prov-selftest-dup")
        ok, h = wait_health(d, lambda h: h.get("selftest") == "passed", 20, fake)
        tap.ok(ok, "fixed test ids: the first self-test passes", repr(h))
        d.signal(signal.SIGHUP)
        fake.wait_pushes(2, 10)
        ok, h = wait_health(d, lambda h: h.get("selftest") == "passed" and
                            len(fake.pushes()) >= 2, 20, fake)
        dups = d.sql_value("SELECT duplicates FROM events WHERE kind = 'sms.receipt'")
        tap.ok(ok and dups == 1, "after SIGHUP the repeated test item (a duplicate) still "
               "passes the self-test", [repr(h), "duplicates %r" % dups, d.log()[-1500:]])
        d.close()

    # a push that never arrives: "waiting" (the 60 s verdict is too slow for this file)
    with FakeClickSend(USER, KEY) as fake:
        fake.set_options(push_enabled=False)
        d = PDaemon(tap, fake, clicksend={"test_receipts": "yes", "provision": "sms.receipt"},
                    name="prov-selftest-wait")
        ok, h = wait_prov(d, "ok", 15, fake)
        if not tap.ok(ok, "push-less fake: provisioning \"ok\"", repr(h)):
            return
        fake.wait_requests(1, 5, method="POST", path="/v3/sms/receipts")
        time.sleep(0.5)
        h = health(d)
        tap.check_eq(h.get("selftest"), "waiting",
                     "test receipt requested but not arrived: selftest \"waiting\"",
                     summary(fake.requests()))
        d.close()


def test_tool_provision():
    kinds = ["sms.inbound", "sms.receipt", "fax.receipt"]
    with FakeClickSend(USER, KEY) as fake:
        d = PDaemon(tap, fake, clicksend={"provision": " ".join(kinds)}, start=False,
                    name="prov-tool")
        pub = d.public_url()
        rc, _, err = run_relayd(["-c", d.conf_path, "-t"])
        tap.check_eq(rc, 0, "clicksend-relayd -t creates the store", err[-1500:])
        fake.add_foreign("sms.inbound", 3)
        ids = {"sms.inbound": fake.add_our_rule(
            "sms.inbound", pub, action_address="https://old.example.com/clicksend/sms/inbound")}
        fake.add_foreign("sms.receipt", 3)
        ids["sms.receipt"] = fake.add_our_rule("sms.receipt", pub)
        fake.add_foreign("fax.receipt", 3)
        before = {k: fake.rules(k) for k in kinds}
        plan = {"sms.inbound": "update", "sms.receipt": "unchanged", "fax.receipt": "create"}

        def parse_plan(out):
            got = {}
            for k in kinds:
                for line in out.splitlines():
                    if re.search(r"(^|[^\w.])%s([^\w.]|$)" % re.escape(k), line):
                        m = re.search(r"\b(create|update|unchanged)\b", line, re.I)
                        if m:
                            got[k] = m.group(1).lower()
                            break
            return got

        rc, out, err = tool(d.conf_path, "provision", "--dry-run")
        tap.ok(rc == 0, "provision --dry-run exits 0", show(rc, out, err))
        if not tap.check_eq(parse_plan(out), plan,
                            "--dry-run prints create / update / unchanged per kind",
                            show(rc, out, err)):
            return
        tap.check_eq(summary(fake.all_writes()), [], "--dry-run makes no POST, PUT or DELETE")
        tap.check_eq({k: fake.rules(k) for k in kinds}, before, "--dry-run changes no rule")
        tap.ok(KEY not in out + err and KEY_B64 not in out + err,
               "--dry-run output has no API key")

        mark = fake.mark()
        rc, out, err = tool(d.conf_path, "provision")
        tap.ok(rc == 0, "provision exits 0", show(rc, out, err))
        writes = fake.writes(since=mark)
        tap.check_eq(sorted(e["method"] + " " + e["path"] + " -> %s" % e["status"]
                            for e in writes),
                     sorted(["POST /v3%s -> 200" % KINDS["fax.receipt"]["path"],
                             "PUT /v3%s/%d -> 200" % (KINDS["sms.inbound"]["path"],
                                                      ids["sms.inbound"])]),
                     "provision creates the missing rule and updates the drifted one, only",
                     show(rc, out, err))
        for k in kinds:
            mine = fake.find_rules(k, our_name(k))
            want = expected_rule(k, pub)
            tap.ok(len(mine) == 1 and not rule_diff(mine[0], want),
                   "%s: rule as configured after provision" % k,
                   [rule_diff(m, want) for m in mine])
        tap.ok(KEY not in out + err, "provision output has no API key")
        try:
            rows = {r["kind"]: r for r in
                    d.sql("SELECT kind, rule_id, last_error FROM provisioned_rules")}
        except DaemonError as e:
            rows = {"error": str(e)}
        tap.check_eq(sorted(rows), sorted(kinds), "provision records provisioned_rules rows",
                     [repr(r) for r in rows.values()])

        mark = fake.mark()
        rc, out, err = tool(d.conf_path, "provision", "--dry-run")
        tap.check_eq(parse_plan(out), {k: "unchanged" for k in kinds},
                     "--dry-run afterwards: every kind unchanged", show(rc, out, err))
        tap.check_eq(summary(fake.all_writes(since=mark)), [], "and no write")

        # the tool with a wrong key: nonzero exit, a clear message, no key in it
        fake.set_auth(USER, "another-key")
        rc, out, err = tool(d.conf_path, "provision", "--dry-run")
        tap.ok(rc not in (0, None) and re.search(r"401|unauthori[sz]ed|credential", out + err, re.I)
               and KEY not in out + err,
               "provision with a rejected key: nonzero exit naming 401/unauthorized",
               show(rc, out, err))


def main():
    for t in (test_create_unchanged_drift, test_pagination_and_lenient_answers,
              test_token_key_file_options, test_stalled_api_does_not_block_ingest,
              test_bad_credentials, test_429_backoff, test_selftest, test_tool_provision):
        tap.run(t)
    tap.done()


if __name__ == "__main__":
    main()
