#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Helper of bench/run.sh (python3 stdlib only). Loopback only; every wait is bounded.

  report.py port                      print a free TCP port on 127.0.0.1
  report.py wait PORT PID SECONDS     wait until 127.0.0.1:PORT accepts a connection while
                                      PID is alive; exit 1 if it does not within SECONDS
  report.py table RESULTS             print the tables from run.sh's results file

The results file has one record a line: a tag, then key=value words, e.g.
  wrk server=relayd conns=100 requests=N duration_us=N non2xx=N errors=N p50_us=N p99_us=N
  rss run=relayd-c100 kb=N
  deliveries run=sqlite done=N during=N window_s=F drain_s=F pending=N
  log run=relayd-c100 lines=N
  info seconds=10 body=521 cpus=2
  info-pg version=150020 fsync=on synchronous_commit=on    (server_version_num)
Runs of several nodes at once have one wrk record per node, as server=RUN-NODE.
Nothing here fails on a target: they are printed next to the measured values."""

import socket
import sys
import time

SERVERS = ("nginx", "webhook", "relayd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(port, pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive(pid):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


def parse(path):
    """(tag, {key: value}) records; numbers as int or float where they look like one."""
    recs = []
    with open(path) as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            kv = {}
            for w in words[1:]:
                k, _, v = w.partition("=")
                for conv in (int, float):
                    try:
                        v = conv(v)
                        break
                    except ValueError:
                        pass
                kv[k] = v
            recs.append((words[0], kv))
    return recs


def rate(w):
    """Answers with a 2xx status per second; nan when not measured."""
    if not w or not w["duration_us"]:
        return float("nan")
    return (w["requests"] - w["non2xx"]) / (w["duration_us"] / 1e6)


def ratio(a, b):
    return a / b if b and b == b else float("nan")


def ms(us):
    return "%.2f" % (us / 1000.0)


def cell(w):
    if not w:
        return "%-22s" % "-"
    return "%8.0f %6s/%-7s" % (rate(w), ms(w["p50_us"]), ms(w["p99_us"]))


def print_table(wrk, conns):
    if not conns:
        return
    print("req/s of 2xx answers, then p50/p99 latency in ms")
    print("%5s | %-22s | %-22s | %-22s | %12s | %14s" % (
        "conns", "nginx", "webhook", "relayd", "relayd/nginx", "relayd/webhook"))
    print("-" * 112)
    for c in conns:
        row = [wrk.get((s, c)) for s in SERVERS]
        r = [rate(w) for w in row]
        print("%5d | %s | %s | %s | %12.2f | %14.2f" % (
            c, cell(row[0]), cell(row[1]), cell(row[2]), ratio(r[2], r[0]), ratio(r[2], r[1])))
    print()


def print_problems(recs):
    n = 0
    for tag, kv in recs:
        n += tag in ("wrk", "log") and bool(kv.get("non2xx") or kv.get("errors") or
                                             kv.get("lines"))
        if tag == "wrk" and (kv["non2xx"] or kv["errors"]):
            print("note: %s at %d conns: %d non-2xx answers, %d socket errors" % (
                kv["server"], kv["conns"], kv["non2xx"], kv["errors"]))
        if tag == "log" and kv["lines"] and kv["run"] == "postgres":
            print("note: the PostgreSQL server logged %d ERROR, FATAL or PANIC lines (the first "
                  "are on stderr, BENCH_KEEP=1 keeps the log)" % kv["lines"])
        elif tag == "log" and kv["lines"]:
            print("note: clicksend-relayd logged %d lines in run %s (level warning; the "
                  "first are on stderr, BENCH_KEEP=1 keeps the log)" % (kv["lines"], kv["run"]))
    if n:
        print()


class Targets:
    """Rows of: what, measured, target, met or not (informational only)."""

    def __init__(self):
        self.rows = []

    def add(self, what, value, op, target, fmt="%.2f"):
        if value != value:  # nan: not measured
            met = "not measured"
        else:
            met = "met" if (value >= target if op == ">=" else value <= target) else "NOT met"
        self.rows.append((what, fmt % value, "%s %s" % (op, fmt % target), met))

    def show(self):
        print("%-44s %12s %12s  %s" % ("target (informational)", "measured", "target", ""))
        for r in self.rows:
            print("%-44s %12s %12s  %s" % r)


def get(recs, tag, **match):
    for t, kv in recs:
        if t == tag and all(kv.get(k) == v for k, v in match.items()):
            return kv
    return None


def runs(wrk, name):
    """The wrk records of run NAME: one for a single daemon, else one per node (NAME-NODE)."""
    one = [kv for (s, c), kv in wrk.items() if s == name]
    return one or sorted((kv for (s, c), kv in wrk.items() if s.startswith(name + "-")),
                         key=lambda kv: kv["server"])


def total(recs):
    """The summed rate of runs at the same time; nan when there are none."""
    return sum(rate(w) for w in recs) if recs else float("nan")


def drained(d):
    """Deliveries per second while ingesting and after ingest stopped."""
    d = d or {}
    return (ratio(d.get("during", 0), d.get("window_s", 0)),
            ratio(d.get("done", 0) - d.get("during", 0), d.get("drain_s", 0)))


def sum_cell(recs):
    if len(recs) == 1:
        return cell(recs[0])
    return "%8.0f %-14s" % (total(recs), "(sum)") if recs else cell(None)


def print_stores(recs, wrk):
    """SQLite against PostgreSQL, one node and two, each ingesting and relaying."""
    pg = get(recs, "info-pg")
    if not pg:
        return
    rows = (("SQLite, one daemon", "relayd-empty", "relayd-relay", "sqlite"),
            ("PostgreSQL, one node", "pg", "pgrelay", "pgrelay"),
            ("PostgreSQL, two nodes", "pg2", "pgrelay2", "pgrelay2"))
    v = pg.get("version")
    version = "%d.%d" % divmod(v, 10000) if isinstance(v, int) else "?"
    print("SQLite (synchronous = full) against PostgreSQL %s (fsync=%s, synchronous_commit=%s) "
          "on 127.0.0.1, one database shared by the nodes; 100 connections in all (two nodes: "
          "one wrk with 50 per node, at once); req/s of 2xx answers, p50/p99 ms"
          % (version, pg.get("fsync", "?"), pg.get("synchronous_commit", "?")))
    print("%-22s | %-23s | %-23s | %10s | %13s | %7s" % (
        "store", "ingest", "ingest with one relay", "deliv/s in", "deliv/s after", "pending"))
    print("-" * 110)
    got = {}
    for label, ingest, relay, dl in rows:
        i, r = runs(wrk, ingest), runs(wrk, relay)
        d = get(recs, "deliveries", run=dl)
        during, after = drained(d)
        got[ingest] = (total(i), total(r), during)
        print("%-22s | %s | %s | %10.0f | %13.0f | %7s" % (
            label, sum_cell(i), sum_cell(r), during, after, d.get("pending", "-") if d else "-"))
        if len(i) > 1 or len(r) > 1:
            for k in range(max(len(i), len(r))):
                node = (i[k] if k < len(i) else r[k])["server"].rsplit("-", 1)[1]
                print("%-22s | %s | %s |" % (
                    "  node %s" % node, cell(i[k] if k < len(i) else None),
                    cell(r[k] if k < len(r) else None)))
    sq, one, two = got["relayd-empty"], got["pg"], got["pg2"]
    print("PostgreSQL/SQLite: ingest %.2f (one node), %.2f (two nodes); ingest with the relay "
          "%.2f, %.2f; deliveries while ingesting %.2f, %.2f" % (
              ratio(one[0], sq[0]), ratio(two[0], sq[0]), ratio(one[1], sq[1]),
              ratio(two[1], sq[1]), ratio(one[2], sq[2]), ratio(two[2], sq[2])))
    print("two nodes/one node (PostgreSQL): ingest %.2f, ingest with the relay %.2f, "
          "deliveries while ingesting %.2f" % (
              ratio(two[0], one[0]), ratio(two[1], one[1]), ratio(two[2], one[2])))
    print()


def print_sqlite(recs, wrk, info, base):
    """The relay run and the preloaded store against the empty store's rate, RSS."""
    relay = rate(wrk.get(("relayd-relay", 100)))
    full = rate(wrk.get(("relayd-1m", 100)))
    during, after = drained(get(recs, "deliveries", run="sqlite"))
    d = get(recs, "deliveries", run="sqlite") or {}
    print("relayd at 100 conns on an empty store, again, as the reference below: %.0f req/s"
          % base)
    print("relay to a local sink (nginx answering 204), ingest at 100 conns:")
    print("  ingest %.0f req/s with the relay, %.0f without: ratio %.2f" % (
        relay, base, ratio(relay, base)))
    print("  deliveries done while ingesting: %d in %.2f s = %.0f/s" % (
        d.get("during", 0), d.get("window_s", 0), during))
    print("  deliveries done after ingest stopped: %d in %.2f s = %.0f/s; %d still pending" % (
        d.get("done", 0) - d.get("during", 0), d.get("drain_s", 0), after, d.get("pending", 0)))
    if full == full:
        print("store preloaded with %s events, ingest at 100 conns: %.0f req/s, empty store %.0f: "
              "ratio %.2f" % (info.get("preload", "?"), full, base, ratio(full, base)))
    rss = [(kv["run"], kv["kb"]) for t, kv in recs if t == "rss"]
    print("peak RSS (VmHWM) of clicksend-relayd: " +
          ", ".join("%s %.1f MiB" % (r, kb / 1024.0) for r, kb in rss))
    print()
    return relay, full, during, rss


def table(path):
    recs = parse(path)
    info = get(recs, "info") or {}
    wrk = {(kv["server"], kv["conns"]): kv for t, kv in recs if t == "wrk"}
    conns = sorted({c for (s, c) in wrk if s in SERVERS})
    print("clicksend-relay benchmark: %s s per run, wrk -t1, POST of a %s-byte inbound SMS form, "
          "127.0.0.1, %s CPUs" % (info.get("seconds", "?"), info.get("body", "?"),
                                   info.get("cpus", "?")))
    print()
    print_table(wrk, conns)
    print_problems(recs)

    # The empty-store run next to the relay, 1M and PostgreSQL runs; the table's as a fallback.
    base = rate(wrk.get(("relayd-empty", 100)) or wrk.get(("relayd", 100)))
    relay, full, during, rss = print_sqlite(recs, wrk, info, base)
    print_stores(recs, wrk)

    def rr(c, other):
        return ratio(rate(wrk.get(("relayd", c))), rate(wrk.get((other, c))))

    def p99(c):
        w = wrk.get(("relayd", c))
        return w["p99_us"] / 1000.0 if w else float("nan")

    t = Targets()
    t.add("relayd/nginx at 100 conns", rr(100, "nginx"), ">=", 0.30)
    t.add("relayd/nginx at 10 conns", rr(10, "nginx"), ">=", 0.20)
    t.add("relayd/webhook at 10 conns", rr(10, "webhook"), ">=", 2.5)
    t.add("relayd/webhook at 100 conns", rr(100, "webhook"), ">=", 2.5)
    t.add("relayd p99 at 100 conns (ms)", p99(100), "<=", 15, "%.1f")
    t.add("relayd p99 at 10 conns (ms)", p99(10), "<=", 5, "%.1f")
    t.add("deliveries/s while ingesting", during, ">=", 5000, "%.0f")
    t.add("ingest with relay / without", ratio(relay, base), ">=", 0.5)
    t.add("peak RSS (MiB)", max([kb for r, kb in rss] or [float("nan")]) / 1024.0, "<=", 32,
          "%.1f")
    t.add("ingest on %s-event store / empty store" % info.get("preload", "?"),
          ratio(full, base), ">=", 0.9)
    t.show()


def main(argv):
    if len(argv) == 2 and argv[1] == "port":
        print(free_port())
        return 0
    if len(argv) == 5 and argv[1] == "wait":
        return wait(int(argv[2]), int(argv[3]), float(argv[4]))
    if len(argv) == 3 and argv[1] == "table":
        table(argv[2])
        return 0
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
