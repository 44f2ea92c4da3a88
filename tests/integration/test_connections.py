#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Connections: the daemon raises its open-files limit, keeps
serving webhooks when idle clients would exhaust its descriptors (no accept() spin, no log
flood), and request_timeout is a deadline for a whole request, not an idle timer."""

import os
import resource
import select
import socket
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Daemon, LOCALHOST, parse_raw_status  # noqa: E402

IN = "/clicksend/sms/inbound"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
tap = Tap(timeout=120, name="connections")


def cpu_seconds(pid):
    """utime + stime of a process, from /proc (no ps on a minimal system)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    return None


def post_retrying(d, mid, within):
    """POST until an answer comes (the daemon may shed or pause), at most `within` s."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            return d.request("POST", IN, "message_id=%s&body=x" % mid, FORM, timeout=10).status
        except OSError as e:
            last = e
            time.sleep(0.2)
    return last


def test_descriptors_run_out():
    d = Daemon(tap, name="fds", limits={resource.RLIMIT_NOFILE: (40, 64)})
    idle = []
    try:
        tap.check_eq(nofile(d.proc.pid), (64, 64),
                     "the soft open-files limit is raised to the hard limit at start")
        log0 = len(d.log())
        for _ in range(150):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((LOCALHOST, d.port))
            idle.append(s)
        time.sleep(0.5)
        c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        time.sleep(2)
        used = (cpu_seconds(d.proc.pid) - c0) / (time.monotonic() - t0)
        tap.ok(used < 0.5, "150 idle clients over a 64-descriptor limit do not make the "
               "daemon spin", "%.0f %% of a CPU" % (used * 100))
        st = post_retrying(d, "fd-1", 15)
        tap.check_eq(st, 200, "a webhook is still answered while idle clients hold the rest")
        tap.check_eq(d.sql_value("SELECT count(*) FROM events WHERE message_id = 'fd-1'"), 1,
                     "and it is stored")
        lines = [ln for ln in d.log()[log0:].splitlines()
                 if "accept" in ln or "connection cap" in ln]
        tap.ok(0 < len(lines) <= 5, "running short of descriptors is logged, rate-limited",
               ["%d lines" % len(lines)] + lines[:5])
        tap.ok(d.alive(), "the daemon is still running")
    finally:
        for s in idle:
            s.close()
        d.close()


def idle_clients(d, n, wait=1.0):
    """Opens n idle connections, waits, then asks /healthz on each: how many the daemon
    had closed (shed) and how many it answered within 3 s (one still in the listen
    backlog is neither)."""
    socks = [socket.create_connection((LOCALHOST, d.port), timeout=2) for _ in range(n)]
    time.sleep(wait)
    closed = served = 0
    live = []
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
                continue
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
            continue
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            live.append(s)
        except OSError:
            closed += 1
    deadline = time.monotonic() + 3
    while live and time.monotonic() < deadline:
        rd, _, _ = select.select(live, [], [], max(0, deadline - time.monotonic()))
        for s in rd:
            try:
                served += s.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                pass
            live.remove(s)
    for s in socks:
        s.close()
    time.sleep(0.5)             # the daemon's sweep lets them go
    return closed, served


def test_cap_recovers():
    """Descriptors run short for a while (the soft limit lowered under the running
    daemon): the connection cap drops to what there is, shedding idle clients, then comes
    back once accept() has not run out for 10 s, so every idle client is held and served."""
    d = Daemon(tap, name="regrow", server={"request_timeout": "60s"},
               limits={resource.RLIMIT_NOFILE: (64, 64)})
    try:
        tap.check_eq(idle_clients(d, 28), (0, 28),
                     "cap regrow: 28 idle clients under the cap are held and served")
        base = len(os.listdir("/proc/%d/fd" % d.proc.pid))
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (base + 12, 64))
        short = idle_clients(d, 40)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
        soon = idle_clients(d, 28)
        tap.diag("cap regrow: (shed, served) %r while short, %r right after" % (short, soon))
        tap.ok(short[0] > 0 and soon[0] > 0, "cap regrow: out of descriptors the cap drops "
               "and idle clients are shed, for a while", "%r then %r" % (short, soon))
        time.sleep(11)
        tap.check_eq(idle_clients(d, 28), (0, 28),
                     "cap regrow: 10 s later the cap is back: 28 idle clients held and served")
        tap.check_eq(d.request("POST", IN, "message_id=rg-1&body=x", FORM).status, 200,
                     "cap regrow: webhooks are served")
    finally:
        d.close()


def test_request_deadline():
    """A client trickling a header line every 0.3 s is cut off request_timeout (1 s) after
    it connected; a prompt client on the same daemon is unaffected."""
    d = Daemon(tap, name="deadline", server={"request_timeout": "1s"})
    try:
        s = socket.create_connection((LOCALHOST, d.port), timeout=5)
        t0 = time.monotonic()
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\n" % IN).encode())
        closed = None
        got = b""
        while time.monotonic() - t0 < 6:
            try:
                s.sendall(b"X-Slow: %d\r\n" % int((time.monotonic() - t0) * 10))
            except OSError:
                closed = time.monotonic() - t0
                break
            s.settimeout(0.3)
            try:
                chunk = s.recv(4096)
                if not chunk:
                    closed = time.monotonic() - t0
                    break
                got += chunk
            except socket.timeout:
                pass
            except OSError:
                closed = time.monotonic() - t0
                break
        s.close()
        tap.ok(closed is not None and closed < 3,
               "slowloris: a header line every 0.3 s is cut off about request_timeout (1 s) "
               "after connecting", "closed after %s s, got %r" % (closed, got[:200]))
        tap.check_in(parse_raw_status(got), (None, 400, 408),
                     "slowloris: nothing but a refusal was answered")
        r = d.request("POST", IN, "message_id=dl-1&body=x", FORM)
        tap.check_eq(r.status, 200, "a prompt client is served")
        # keep-alive: two requests a second apart on one connection both succeed
        s = socket.create_connection((LOCALHOST, d.port), timeout=5)
        ok = 0
        for i in range(2):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(3)
            data = s.recv(65536)
            ok += data.startswith(b"HTTP/1.1 200")
            time.sleep(0.6)
        s.close()
        tap.check_eq(ok, 2, "the deadline restarts after each answer on a keep-alive "
                     "connection")
    finally:
        d.close()


def test_unit_limit():
    data = os.environ.get("TESTS_DATA") or os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "data")
    unit = os.path.join(data, "..", "..", "systemd", "clicksend-relayd.service.in")
    with open(unit) as f:
        text = f.read()
    tap.ok(any(ln.startswith("LimitNOFILE=") for ln in text.splitlines()),
           "the service unit sets LimitNOFILE=")


tap.run(test_unit_limit)
tap.run(test_descriptors_run_out)
tap.run(test_cap_recovers)
tap.run(test_request_deadline)
tap.done()
