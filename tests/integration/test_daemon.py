#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Command line, config errors, exit statuses, signals, /healthz, /metrics and store
failure of clicksend-relayd (clicksend-relayd(8), clicksend-relay.conf(5))."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import (Tap, Daemon, run_relayd, render_config, free_port, plain_short,  # noqa: E402
                     sanitizer_report, sql_quote, sqlite_only)

BASE = "/clicksend"
IN = BASE + "/sms/inbound"
FORM = "application/x-www-form-urlencoded"

tap = Tap(timeout=90)


def sanitizer_check(what, err):
    rep = sanitizer_report(err)
    if rep:
        tap.ok(False, "%s: no sanitizer report on stderr" % what, rep)


def relayd(args, what, timeout=10):
    rc, out, err = run_relayd(args, timeout=timeout)
    sanitizer_check(what, err)
    return rc, out, err


def write_conf(tmp, text, name="relay.conf"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def good_sections(tmp):
    return {"server": {"listen": "127.0.0.1:%d" % free_port(), "base_path": "/clicksend"},
            "store": {"path": os.path.join(tmp, "events.db")}}


def names_line(err, conf, line):
    """stderr names FILE:LINE: (the path as given, or at least its file name)."""
    return ("%s:%d:" % (conf, line)) in err or \
        re.search(r"(^|[\s/])%s:%d:" % (re.escape(os.path.basename(conf)), line), err, re.M)


# --------------------------------------------------------------------------- command line

@sqlite_only("its own SQLite config, not the default store: the SQLite run covers it")
def test_command_line():
    rc, out, err = relayd(["-V"], "-V", timeout=5)
    tap.ok(rc == 0 and re.search(r"\d+\.\d+", out + err), "-V prints a version and exits 0",
           ["exit %r" % rc, "stdout %r" % out[:300], "stderr %r" % err[:300]])
    tap.ok(re.search(r"\d+\.\d+", out), "-V prints the version on stdout",
           "stdout %r" % out[:300])
    rc, out, err = relayd(["-h"], "-h", timeout=5)
    tap.ok(rc == 0 and ("-c" in out + err), "-h prints usage and exits 0",
           ["exit %r" % rc, "stdout %r" % out[:500], "stderr %r" % err[:500]])
    for args, what in ((["-Z"], "an unknown option -Z"),
                       (["--no-such-option"], "an unknown long option"),
                       (["-c"], "-c without its argument"),
                       (["-t", "extra-operand"], "an unexpected operand")):
        rc, out, err = relayd(args, what, timeout=5)
        tap.ok(rc == 64 and err.strip() != "", "%s exits 64 with a message on stderr" % what,
               ["exit %r" % rc, "stderr %r" % err[:500]])


# --------------------------------------------------------------------------- config errors

@sqlite_only("its own SQLite config, not the default store: the SQLite run covers it")
def test_config_errors():
    tmp = tap.mkdtemp()
    db = os.path.join(tmp, "events.db")
    port = free_port()
    head = "[server]\nlisten = 127.0.0.1:%d\n" % port      # lines 1-2

    def check(text, line, what, also_run=True):
        conf = write_conf(tmp, text)
        rc, out, err = relayd(["-c", conf, "-t"], what)
        cond = rc == 78 and (names_line(err, conf, line) if line else
                             re.search(re.escape(conf) + r":\d+:|" +
                                       re.escape(os.path.basename(conf)) + r":\d+:", err))
        tap.ok(cond, "%s: -t exits 78 and stderr names %s:%s:" % (what, "FILE",
                                                                  line or "LINE"),
               ["exit %r" % rc, "stderr %r" % err[-800:], "config:", text])
        if also_run:
            rc, out, err = relayd(["-c", conf], what + " (run)", timeout=10)
            tap.ok(rc == 78, "%s: starting the daemon exits 78 too" % what,
                   ["exit %r" % rc, "stderr %r" % err[-800:]])

    check(head + "bogus_key = 1\n[store]\npath = %s\n" % db, 3, "an unknown key in [server]")
    check(head + "[store]\npath = %s\n[bogus]\nx = 1\n" % db, 5, "an unknown section")
    check(head + "[store]\npath = %s\nsynchronous = sometimes\n" % db, 5,
          "synchronous = sometimes", also_run=False)
    for key, val in (("max_body_size", "12q"), ("request_timeout", "soon"),
                     ("shutdown_timeout", "-5"), ("allow_from", "10.0.0.0/33"),
                     ("trusted_proxies", "not-an-ip"), ("listen", "127.0.0.1:99999")):
        text = "[server]\nbase_path = /clicksend\n%s = %s\n[store]\npath = %s\n" % (key, val, db)
        if key != "listen":
            text = "[server]\nlisten = 127.0.0.1:%d\n%s = %s\n[store]\npath = %s\n" % (
                port, key, val, db)
        check(text, 3, "%s = %s" % (key, val), also_run=False)
    check(head + "[store]\npath = %s\n[log]\nlevel = loud\n" % db, 6, "level = loud",
          also_run=False)
    check(head + "[store]\npath = %s\n[clicksend]\nwebhook_type = xml\n" % db, 6,
          "webhook_type = xml", also_run=False)
    check(head + "[store]\npath = %s\n[clicksend]\nprovision = sms.bogus\n" % db, 6,
          "provision = sms.bogus", also_run=False)
    check(head + "[store]\npath = %s\n[relay:Bad Name]\nurl = http://127.0.0.1:9/\n" % db, 5,
          "a relay name outside [a-z0-9_-]", also_run=False)
    check(head + "[store]\npath = %s\n[relay:r1]\nurl = http://127.0.0.1:9/\n"
          "exec = /bin/true\n" % db, None, "a relay with both url and exec", also_run=False)
    check(head + "[store]\npath = %s\n[relay:r2]\nevents = *\n" % db, None,
          "a relay with neither url nor exec", also_run=False)
    check(head + "[store]\npath = %s\n[relay:r3]\nexec = bin/true\n" % db, 6,
          "a relay exec that is not absolute", also_run=False)
    check(head + "[store]\npath = %s\n[relay:r4]\nurl = http://127.0.0.1:9/\n"
          "events = sms.nope\n" % db, 7, "a relay with an unknown event kind", also_run=False)

    # several errors: all of them reported in one run
    text = (head + "bogus_one = 1\n"                      # 3
            "max_body_size = huge\n"                      # 4
            "[store]\n"                                   # 5
            "path = %s\n"                                 # 6
            "bogus_two = 2\n"                             # 7
            "[log]\n"                                     # 8
            "level = loud\n" % db)                        # 9
    conf = write_conf(tmp, text)
    rc, out, err = relayd(["-c", conf, "-t"], "several errors")
    missing = [n for n in (3, 4, 7, 9) if not names_line(err, conf, n)]
    tap.ok(rc == 78 and not missing, "several config errors are all reported (lines 3 4 7 9)",
           ["exit %r" % rc, "not reported: %r" % missing, "stderr %r" % err[-1500:]])

    missing_conf = os.path.join(tmp, "no", "such.conf")
    rc, out, err = relayd(["-c", missing_conf, "-t"], "missing config")
    tap.ok(rc == 78 and missing_conf in err, "a missing config file exits 78 naming the file",
           ["exit %r" % rc, "stderr %r" % err[-800:]])
    rc, out, err = relayd(["-c", missing_conf], "missing config (run)")
    tap.ok(rc == 78 and missing_conf in err, "a missing config file exits 78 when starting too",
           ["exit %r" % rc, "stderr %r" % err[-800:]])


@sqlite_only("its own SQLite config, not the default store: the SQLite run covers it")
def test_config_cannot_work():
    """Values that parse but could never work: -t exits 78 and names each one
    with FILE:LINE, before the store is touched; start-up refuses them the same way."""
    from harness import tests_data
    conf = os.path.join(tests_data(), "conf", "bad-checks.conf")
    rc, out, err = relayd(["-t", "-c", conf], "bad-checks.conf")
    want = ((3, 'listen: invalid IPv4 address: "999.1.1.1:80"'),
            (3, 'listen: host names are not accepted'),
            (4, "max_body_size: must be at most 64m"),
            (8, "public_url: must not have a query string or fragment"),
            (9, "api_url: invalid URL: Bad IPv6 address"),
            (11, "url: invalid URL: No host part in the URL"),
            (12, "retry_schedule: step 2 is 0"),
            (13, "match_from: invalid glob: unterminated '['"),
            (17, 'exec: cannot run "/nonexistent/relay-script": No such file or directory'),
            (19, 'exec: cannot run "/": not a regular file'),
            (21, 'exec: cannot run "/etc/passwd": not executable'))
    missing = ["%s:%d: %s" % (conf, n, m) for n, m in want
               if "%s:%d: %s" % (conf, n, m) not in err]
    tap.ok(rc == 78 and not missing, "-t -c bad-checks.conf: exit 78, every error as FILE:LINE",
           ["exit %r" % rc, "missing %r" % missing, "stderr %r" % err[-3000:]])
    tap.ok(not os.path.exists("/tmp/clicksend-relay-bad-checks"),
           "-t with a bad config creates no store")

    # a script that is not executable yet: refused, then accepted once it is
    tmp = tap.mkdtemp()
    script = os.path.join(tmp, "relay.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o644)
    conf = write_conf(tmp, "[server]\nlisten = 127.0.0.1:%d\n[store]\npath = %s\n"
                      "[relay:script]\nexec = %s\n" % (free_port(), os.path.join(tmp, "e.db"),
                                                       script))
    rc, out, err = relayd(["-c", conf], "exec not executable (run)")
    tap.ok(rc == 78 and '%s:6: exec: cannot run "%s": not executable' % (conf, script) in err,
           "starting with an exec that is not executable exits 78 with FILE:LINE",
           ["exit %r" % rc, "stderr %r" % err[-800:]])
    os.chmod(script, 0o755)
    rc, out, err = relayd(["-t", "-c", conf], "exec executable")
    tap.ok(rc == 0, "the same config passes -t once the script is executable",
           ["exit %r" % rc, "stderr %r" % err[-800:]])

    # one address twice: the second bind would fail, or unlink the first one's unix socket
    sock = os.path.join(tmp, "http.sock")
    conf = write_conf(tmp, "[server]\nlisten = unix:%s 127.0.0.1:%d unix:%s\n[store]\n"
                      "path = %s\n" % (sock, free_port(), sock, os.path.join(tmp, "e.db")))
    rc, out, err = relayd(["-t", "-c", conf], "listen twice")
    tap.ok(rc == 78 and '%s:2: listen: "unix:%s" is given twice' % (conf, sock) in err,
           "-t with the same listen address twice exits 78 with FILE:LINE",
           ["exit %r" % rc, "stderr %r" % err[-800:]])


@sqlite_only("its own SQLite config, not the default store: the SQLite run covers it")
def test_valid_configs():
    """Valid spellings are accepted: -t exits 0 (clicksend-relay.conf(5))."""
    tmp = tap.mkdtemp()
    db = os.path.join(tmp, "events.db")
    text = """; every key, valid values that are not the defaults
[server]
listen = 127.0.0.1:%d [::1]:%d unix:%s
base_path = /hooks/clicksend
token = Abc123-secret
trusted_proxies = 127.0.0.1 ::1 10.0.0.0/8 fd00::/8
allow_from = 127.0.0.0/8 ::1/128
max_body_size = 1m
request_timeout = 30
shutdown_timeout = 5m

[store]
path = %s
synchronous = normal
retention = 2h

[clicksend]
username =
api_key =
api_url = https://rest.clicksend.com/v3
public_url = https://hooks.example.com/clicksend
provision =
webhook_type = post
dedicated_number = *
rule_prefix = clicksend-relay
test_receipts = no

[log]
level = warning

[relay:crm_1]
url = http://127.0.0.1:9/hook
events = sms.inbound sms.receipt
match_from = +614*
match_to = +61411111111
match_body = *stop*
secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
header = Authorization: Bearer abc
header = X-Source: relay
timeout = 15s
concurrency = 2
retry_schedule = 1s 30s 5m 2h

[relay:script-2]
exec = /bin/cat
args = -u
events = *
timeout = 1m
concurrency = 1
retry_schedule = 10s
""" % (free_port(), free_port(), os.path.join(tmp, "http.sock"), db)
    conf = write_conf(tmp, text)
    rc, out, err = relayd(["-c", conf, "-t"], "valid config")
    tap.ok(rc == 0 and os.path.exists(db),
           "a config using every key (durations 30 / 15s / 5m / 2h, sizes 1m, v6 and unix "
           "listeners, two relays) passes -t", ["exit %r" % rc, "stderr %r" % err[-1500:]])

    example = os.path.join(os.environ.get("TESTS_DATA") or
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"),
                           "..", "..", "etc", "clicksend-relay.conf")
    if not os.path.exists(example):
        tap.skip("the example config passes -t", "no %s" % example)
        return
    with open(example) as f:
        lines = f.read().splitlines()
    section, out_lines = None, []
    db2 = os.path.join(tmp, "example.db")
    for line in lines:
        m = re.match(r"\s*\[([^\]]+)\]", line)
        if m:
            section = m.group(1)
        if section == "store" and re.match(r"\s*path\s*=", line):
            line = "path = %s" % db2
        out_lines.append(line)
    conf = write_conf(tmp, "\n".join(out_lines) + "\n", "example.conf")
    rc, out, err = relayd(["-c", conf, "-t"], "example config")
    tap.ok(rc == 0, "the example config etc/clicksend-relay.conf passes -t (store path "
           "redirected)", ["exit %r" % rc, "stderr %r" % err[-1500:]])


@sqlite_only("store paths and store files that are not SQLite databases")
def test_store_errors():
    tmp = tap.mkdtemp()
    blocker = os.path.join(tmp, "regular-file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    secs = good_sections(tmp)
    secs["store"]["path"] = os.path.join(blocker, "sub", "events.db")
    conf = write_conf(tmp, render_config(secs))
    rc, out, err = relayd(["-c", conf, "-t"], "store under a file")
    tap.ok(rc == 73, "-t with a store path under a regular file exits 73",
           ["exit %r" % rc, "stderr %r" % err[-800:]])
    tap.ok(err.count("store ") == 1 and blocker in err,
           "-t says why the store failed once, naming the path", err[-800:])
    rc, out, err = relayd(["-c", conf], "store under a file (run)", timeout=10)
    tap.ok(rc == 73, "starting with a store path under a regular file exits 73",
           ["exit %r" % rc, "stderr %r" % err[-800:]])

    # a store file that is not a database
    secs = good_sections(tmp)
    junk = os.path.join(tmp, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"this is not an SQLite database at all\n" * 200)
    secs["store"]["path"] = junk
    conf = write_conf(tmp, render_config(secs), "junk.conf")
    rc, out, err = relayd(["-c", conf, "-t"], "junk store")
    tap.ok(rc not in (0, None) and rc != 78, "-t on a store file that is not a database fails "
           "(not 0, not a config error)", ["exit %r" % rc, "stderr %r" % err[-800:]])


@sqlite_only("its own SQLite config, not the default store: the SQLite run covers it")
def test_listen_busy():
    tmp = tap.mkdtemp()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        secs = good_sections(tmp)
        secs["server"]["listen"] = "127.0.0.1:%d" % s.getsockname()[1]
        conf = write_conf(tmp, render_config(secs))
        rc, out, err = relayd(["-c", conf], "listen busy", timeout=10)
        tap.ok(rc in (69, 70), "a listen address in use exits 69/70 (other failure)",
               ["exit %r" % rc, "stderr %r" % err[-800:]])
    finally:
        s.close()


@sqlite_only("one daemon per SQLite store (its lock file); nodes share a PostgreSQL store")
def test_second_instance():
    """One daemon per store: a second one on the same store exits with a clear message and
    leaves the first one's unix socket and listener alone."""
    d = Daemon(tap, start=False, name="first")
    sock = os.path.join(d.dir, "relay.sock")
    d.reconfigure(server={"listen": "127.0.0.1:%d unix:%s" % (d.port, sock)})
    d.start()
    try:
        secs = {"server": {"listen": "127.0.0.1:%d unix:%s" % (free_port(), sock),
                           "base_path": "/clicksend"},
                "store": {"path": d.db}}
        conf = write_conf(d.dir, render_config(secs), name="second.conf")
        rc, out, err = relayd(["-c", conf], "second instance", timeout=10)
        tap.check_eq(rc, 69, "a second daemon on the same store exits 69", err[-800:])
        tap.ok(re.search(r"in use by another clicksend-relayd \(pid %d" % d.proc.pid, err),
               "its message names the store and the first daemon's pid", err[-800:])
        tap.ok(os.path.exists(sock), "the first daemon's unix socket is still there")
        r = d.request("POST", IN, "message_id=second-1&body=x", {"Content-Type": FORM})
        tap.check_eq(r.status, 200, "the first daemon still serves")
        rc, out, err = relayd(["-c", conf, "-t"], "second -t", timeout=10)
        tap.check_eq(rc, 0, "-t on a store in use still checks it (exit 0)", err[-800:])
        link = os.path.join(d.dir, "link.db")
        os.symlink(d.db, link)
        secs["store"] = {"path": link}
        conf = write_conf(d.dir, render_config(secs), name="link.conf")
        rc, out, err = relayd(["-c", conf], "store through a symbolic link", timeout=10)
        tap.ok(rc == 69 and "in use by another clicksend-relayd" in err,
               "a second daemon on the same store through a symbolic link exits 69 too",
               ["exit %r" % rc, err[-800:]])
        secs["store"] = {"path": os.path.join(d.dir, "other.db")}
        conf = write_conf(d.dir, render_config(secs), name="other-store.conf")
        rc, out, err = relayd(["-c", conf], "other store, same unix socket", timeout=10)
        tap.ok(rc == 69 and "another process is listening" in err,
               "a daemon on another store exits 69 rather than take a live unix socket",
               ["exit %r" % rc, err[-800:]])
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(sock)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = s.recv(64)
        except OSError as e:
            got = repr(e).encode()
        finally:
            s.close()
        tap.ok(got.startswith(b"HTTP/1.1 200"),
               "the first daemon still answers on its unix socket", got)
    finally:
        d.close()
    d2 = Daemon(tap, tmpdir=d.dir, store={"path": d.db}, name="after-first")
    try:
        tap.check_eq(d2.get("/healthz").status, 200,
                     "once the first daemon is gone, the next one takes the store")
    finally:
        d2.close()


# --------------------------------------------------------------------------- signals

def test_signals():
    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
        d = Daemon(tap, name=name.lower())
        try:
            r = d.request("POST", IN, "message_id=sig-%s&body=x" % name, {"Content-Type": FORM})
            t0 = time.monotonic()
            rc = d.stop(sig, timeout=15)
            tap.ok(rc == 0, "%s: exit status 0" % name,
                   ["exit %r after %.2f s" % (rc, time.monotonic() - t0), d.log()[-1500:]])
            refused = False
            try:
                socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
            except OSError:
                refused = True
            tap.ok(refused, "%s: the listener is gone after exit" % name)
            n = d.sql_value("SELECT count(*) FROM events WHERE message_id = 'sig-%s'" % name)
            tap.ok(r.status == 200 and n == 1, "%s: the event acknowledged before it is stored"
                   % name, ["answer %r, rows %r" % (r, n)])
        finally:
            d.close()


def test_sigterm_in_flight():
    """SIGTERM: stop accepting, but finish the request in flight (clicksend-relayd(8), SIGNALS)."""
    d = Daemon(tap, name="inflight")
    s = None
    try:
        body = b"message_id=inflight-1&body=finish+me+please"
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (IN, FORM, len(body)))
        s = d.connect(timeout=10)
        s.sendall(head.encode() + body[:12])
        time.sleep(0.3)
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = None
        if d.alive():
            try:
                socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
                refused = False
            except OSError:
                refused = True
        s.sendall(body[12:])
        ans = b""
        s.settimeout(10)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                ans += chunk
        except OSError as e:
            ans += ("[%s]" % e).encode()
        rc = d.wait(15)
        n = d.sql_value("SELECT count(*) FROM events WHERE message_id = 'inflight-1'")
        tap.ok(ans.startswith(b"HTTP/1.1 200") and n == 1,
               "SIGTERM while a request is half received: that request is finished (200, stored)",
               ["answer %r, rows %r" % (ans[:200], n), d.log()[-1500:]])
        tap.ok(refused is not False, "SIGTERM: new connections are no longer accepted meanwhile",
               "a new connection was accepted after SIGTERM")
        tap.check_eq(rc, 0, "SIGTERM with a request in flight: exit 0", d.log()[-1500:])
    finally:
        if s:
            s.close()
        d.close()


def test_sighup():
    d = Daemon(tap, name="sighup")
    try:
        d.reconfigure(sections={"log": {"level": "notice"}})
        d.signal(signal.SIGHUP)
        time.sleep(0.3)
        r = d.request("POST", IN, "message_id=hup-1&body=x", {"Content-Type": FORM})
        tap.ok(d.alive() and r.status == 200, "SIGHUP with a good config: still serving",
               ["answer %r" % (r,), d.log()[-1500:]])
        d.reconfigure(extra="[server]\nno_such_key = 1\n")
        off = len(d.log())
        d.signal(signal.SIGHUP)
        m = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = re.search(r"relay\.conf:\d+:", d.log()[off:])
            if m or not d.alive():
                break
            time.sleep(0.05)
        tap.ok(d.alive() and m, "SIGHUP with a bad config: logged with FILE:LINE:, old config "
               "kept, still running", d.log()[-1500:])
        r = d.request("POST", IN, "message_id=hup-2&body=x", {"Content-Type": FORM})
        tap.check_eq(r.status, 200, "after a rejected reload webhooks are still accepted")
        old_port = d.port
        new_port = free_port()
        d.reconfigure(extra="")
        text = open(d.conf_path).read().replace("127.0.0.1:%d" % old_port,
                                                "127.0.0.1:%d" % new_port)
        d.reconfigure(text=text)
        off = len(d.log())
        d.signal(signal.SIGHUP)
        m = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = re.search(r"(?i)listen.*restart|restart.*listen", d.log()[off:])
            if m or not d.alive():
                break
            time.sleep(0.05)
        r = d.get("/healthz")
        tap.ok(d.alive() and r.status == 200 and m,
               "SIGHUP with a changed listen address: logged as needing a restart, still "
               "served on the old address", ["answer %r" % (r,), d.log()[off:][-1500:]])
        rc = d.stop()
        tap.check_eq(rc, 0, "SIGTERM after reloads: exit 0", d.log()[-1500:])
    finally:
        d.close()


# --------------------------------------------------------------------------- healthz, metrics

def parse_metrics(text):
    """{(name, frozenset(labels.items())): value}, plus a list of unparsable lines."""
    samples, bad = {}, []
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$')
    label_re = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            bad.append(line)
            continue
        labels = {}
        if m.group(2):
            pos = 0
            lt = m.group(2)
            while pos < len(lt):
                lm = label_re.match(lt, pos)
                if not lm:
                    bad.append(line)
                    break
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        try:
            v = float(m.group(3))
        except ValueError:
            bad.append(line)
            continue
        samples[(m.group(1), frozenset(labels.items()))] = v
    return samples, bad


def metric(samples, name, **labels):
    want = set(labels.items())
    for (n, ls), v in samples.items():
        if n == name and want <= set(ls):
            return v
    return None


def test_healthz_metrics():
    d = Daemon(tap, name="health")
    try:
        r = d.get("/healthz")
        try:
            h = json.loads(r.body)
        except ValueError:
            h = None
        tap.ok(r.status == 200 and isinstance(h, dict), "/healthz: 200 with a JSON object",
               repr(r))
        ct = r.header("content-type", "")
        tap.ok(ct.startswith("application/json"), "/healthz: Content-Type application/json",
               "got %r" % ct)
        h = h or {}
        tap.check_eq(h.get("store"), "ok", "/healthz: store is \"ok\"")
        tap.ok(h.get("pending") == 0 and h.get("dead") == 0 and
               type(h.get("pending")) is int and type(h.get("dead")) is int,
               "/healthz: pending and dead are numbers (0)", repr(h))
        tap.check_eq(h.get("provisioning"), "off", "/healthz: provisioning is \"off\"")
        tap.check_eq(h.get("selftest"), "off", "/healthz: selftest is \"off\"")

        r1 = d.request("POST", IN, "message_id=met-1&body=metrics", {"Content-Type": FORM})
        r2 = d.request("POST", IN, "message_id=met-1&body=metrics", {"Content-Type": FORM})
        r3 = d.request("POST", BASE + "/sms/receipt", json.dumps({"message_id": "met-r",
                                                                  "status_code": 201}),
                       {"Content-Type": "application/json"})
        r4 = d.request("GET", BASE + "/nope")
        tap.ok([r1.status, r2.status, r3.status, r4.status] == [200, 200, 200, 404],
               "traffic for the metrics: 200 200 200 404",
               repr([r1.status, r2.status, r3.status, r4.status]))
        r = d.get("/metrics")
        tap.check_eq(r.status, 200, "/metrics: 200")
        ct = r.header("content-type", "")
        tap.ok(ct.startswith("text/plain"), "/metrics: Content-Type text/plain", "got %r" % ct)
        samples, bad = parse_metrics(r.body)
        tap.ok(not bad and samples, "/metrics: every line is Prometheus text", bad[:10])
        tap.ok("# TYPE clicksend_relay_events_received_total counter" in r.body,
               "/metrics: TYPE line for clicksend_relay_events_received_total")
        v = metric(samples, "clicksend_relay_events_received_total", kind="sms.inbound",
                   format="post")
        tap.ok(v is not None and v >= 1,
               "clicksend_relay_events_received_total{kind=\"sms.inbound\",format=\"post\"} >= 1",
               ["got %r" % v, r.body[:3000]])
        v = metric(samples, "clicksend_relay_events_received_total", kind="sms.receipt",
                   format="json")
        tap.check_eq(v, 1.0, "clicksend_relay_events_received_total{kind=\"sms.receipt\","
                     "format=\"json\"} is 1")
        v = metric(samples, "clicksend_relay_events_duplicate_total", kind="sms.inbound")
        tap.check_eq(v, 1.0, "clicksend_relay_events_duplicate_total{kind=\"sms.inbound\"} is 1")
        v200 = metric(samples, "clicksend_relay_http_responses_total", code="200")
        v404 = metric(samples, "clicksend_relay_http_responses_total", code="404")
        tap.ok(v200 is not None and v200 >= 3 and v404 is not None and v404 >= 1,
               "clicksend_relay_http_responses_total counts 200s and 404s",
               "200: %r, 404: %r" % (v200, v404))
        names = {n for n, _ in samples}
        for n in ("clicksend_relay_request_duration_seconds_bucket",
                  "clicksend_relay_request_duration_seconds_sum",
                  "clicksend_relay_request_duration_seconds_count"):
            tap.ok(n in names, "/metrics has %s" % n)
        inf = metric(samples, "clicksend_relay_request_duration_seconds_bucket", le="+Inf")
        cnt = metric(samples, "clicksend_relay_request_duration_seconds_count")
        tap.ok(inf is not None and inf == cnt and cnt >= 4,
               "request duration histogram: +Inf bucket equals count", "%r %r" % (inf, cnt))
        batches = metric(samples, "clicksend_relay_store_batches_total")
        items = metric(samples, "clicksend_relay_store_batch_items_total")
        failed = metric(samples, "clicksend_relay_store_commit_failures_total")
        tap.ok(batches is not None and batches >= 1 and items is not None and
               items >= 3 and items >= batches and failed == 0,
               "/metrics: the store writer's transactions, their items (the 3 webhooks at "
               "least) and no failed commit", "%r %r %r" % (batches, items, failed))
    finally:
        d.close()


# --------------------------------------------------------------------------- store failure

@sqlite_only("a sqlite3 shell holds the write lock (PostgreSQL outages: the pg tests)")
def test_store_failure():
    """The store cannot commit: another process holds the SQLite write lock (works as root,
    where chmod would not stop writes). The daemon must answer 503 with Retry-After and not
    acknowledge anything, then recover when the lock goes away."""
    d = Daemon(tap, name="storefail")
    holder = None
    try:
        r = d.request("POST", IN, "message_id=sf-before&body=x", {"Content-Type": FORM})
        tap.check_eq(r.status, 200, "store failure: a webhook before the lock is stored")
        holder = subprocess.Popen(["sqlite3", d.db], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        holder.stdin.write(b".timeout 3000\nBEGIN IMMEDIATE;\nSELECT 'locked-now';\n")
        holder.stdin.flush()
        got = b""
        deadline = time.monotonic() + 5
        while b"locked-now" not in got and time.monotonic() < deadline:
            rd, _, _ = select.select([holder.stdout], [], [], 0.1)
            if rd:
                chunk = os.read(holder.stdout.fileno(), 4096)
                if not chunk:
                    break
                got += chunk
        if b"locked-now" not in got:
            tap.skip("store failure: 503 with Retry-After",
                     "could not take the SQLite write lock: %r" % got[:200])
            return
        t0 = time.monotonic()
        try:
            r = d.request("POST", IN, "message_id=sf-locked&body=x", {"Content-Type": FORM},
                          timeout=45)
        except OSError as e:
            r = None
            err = e
        dt = time.monotonic() - t0
        if r is None:
            tap.ok(False, "store failure: answered 503", "no answer after %.1f s: %s" % (dt, err))
        else:
            ra = r.header("retry-after")
            tap.ok(r.status == 503 and ra is not None and ra.strip().isdigit(),
                   "store cannot commit: 503 with a Retry-After in seconds",
                   ["answer %r after %.2f s" % (r, dt)])
            tap.ok(dt < 5, "a held lock makes a webhook wait only up to the writer's bound "
                   "(2 s), then 503", "answered after %.2f s" % dt)
            t0 = time.monotonic()
            h = d.request("GET", "/healthz", timeout=10)
            dt = time.monotonic() - t0
            tap.ok(h.status == 503 and dt < 2,
                   "while the lock is held /healthz answers 503 within 2 s",
                   "answer %r after %.2f s" % (h, dt))
            tap.ok(not plain_short(r), "the 503 body is a short plain-text line", plain_short(r))
        holder.stdin.write(b"ROLLBACK;\n.quit\n")
        holder.stdin.flush()
        holder.wait(5)
        holder = None
        n = d.sql_value("SELECT count(*) FROM events WHERE message_id = 'sf-locked'")
        tap.check_eq(n, 0, "store failure: the refused event was not stored")
        r = d.request("POST", IN, "message_id=sf-after&body=x", {"Content-Type": FORM})
        n = d.sql_value("SELECT count(*) FROM events WHERE message_id = 'sf-after'")
        tap.ok(r.status == 200 and n == 1, "the daemon recovers once the store can commit",
               ["answer %r, rows %r" % (r, n)])
        r = d.get("/healthz")
        tap.check_eq(r.status, 200, "/healthz is 200 again after the store recovered")
        samples, _ = parse_metrics(d.get("/metrics").body)
        failed = metric(samples, "clicksend_relay_store_commit_failures_total")
        tap.ok(failed is not None and failed >= 1,
               "/metrics counts the store writer's failed transactions", "got %r" % failed)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(5)
        d.close()


@sqlite_only("writes its own configs: the SQLite run covers it")
def test_store_url_errors():
    """[store] url and node are checked when the config is read (exit 78, FILE:LINE),
    and a URL libpq cannot parse is refused without quoting it: its password stays out."""
    tmp = tap.mkdtemp()
    cases = (("url = postgresql://csr:Sec%zzretQQ@127.0.0.1:5432/csr\n", "url: libpq cannot parse it"),
             ("url = postgresql://csr:SecretQQ@[::1/csr\n", "url: libpq cannot parse it"),
             ("url = mysql://csr:SecretQQ@db/csr\n", "url: not a PostgreSQL connection string"),
             ("node = Web_1\n", 'node: "Web_1" is not a node name'),
             ("path = %s\nurl = postgresql://db/csr\n" % os.path.join(tmp, "x.db"),
              "url: the store is either a file (path) or PostgreSQL (url), not both"))
    for body, want in cases:
        conf = write_conf(tmp, "[store]\n" + body)
        rc, out, err = relayd(["-t", "-c", conf], want)
        line = 3 if "path =" in body else 2
        tap.ok(rc == 78 and names_line(err, conf, line) and want in err and
               "SecretQQ" not in out + err and "zzretQQ" not in out + err,
               "[store] %s: exit 78 at line %d, no password echoed" % (body.split("\n")[0], line),
               ["exit %r" % rc, "stderr %r" % err[-800:]])


def main():
    tap.run(test_command_line)
    tap.run(test_config_errors)
    tap.run(test_config_cannot_work)
    tap.run(test_store_url_errors)
    tap.run(test_valid_configs)
    tap.run(test_store_errors)
    tap.run(test_listen_busy)
    tap.run(test_second_instance)
    tap.run(test_signals)
    tap.run(test_sigterm_in_flight)
    tap.run(test_sighup)
    tap.run(test_healthz_metrics)
    tap.run(test_store_failure)
    tap.done()


if __name__ == "__main__":
    main()
