#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Ingest benchmark: how many webhooks per second the daemon stores, as a ratio against
GET /healthz measured in the same run with the same clients (a reference that does no
store write). Loopback only, bounded in count and time.

  python3 bench/ingest.py [--relayd PATH] [--requests N] [--clients C] [--sync full|normal]

Prints one line per phase and the ratio; nothing is asserted (timings are not tests)."""

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

FORM = "application/x-www-form-urlencoded"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(relayd, sync):
    d = tempfile.mkdtemp(prefix="csr-bench-")
    port = free_port()
    conf = os.path.join(d, "bench.conf")
    with open(conf, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:%d\n[store]\npath = %s/events.db\n"
                "synchronous = %s\n[log]\nlevel = warning\n" % (port, d, sync))
    p = subprocess.Popen([relayd, "-c", conf], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port, d
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("bench: the daemon did not start")


def client(port, n, make_request, results, deadline):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ok = 0
    for i in range(n):
        if time.monotonic() > deadline:
            break
        method, path, body = make_request(i)
        conn.request(method, path, body, {"Content-Type": FORM} if body else {})
        r = conn.getresponse()
        r.read()
        ok += r.status == 200
    conn.close()
    results.append(ok)


def phase(port, total, clients, make_request, budget=60):
    results, threads = [], []
    deadline = time.monotonic() + budget
    t0 = time.monotonic()
    for c in range(clients):
        mk = (lambda c: lambda i: make_request(c, i))(c)
        t = threading.Thread(target=client, args=(port, total // clients, mk, results, deadline))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    done = sum(results)
    return done, elapsed, done / elapsed if elapsed else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relayd", default=os.environ.get("RELAYD", "_build/default/src/clicksend-relayd"))
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--sync", default="full", choices=("full", "normal"))
    a = ap.parse_args()
    p, port, d = start(a.relayd, a.sync)
    try:
        ref = phase(port, a.requests, a.clients, lambda c, i: ("GET", "/healthz", None))
        hook = phase(port, a.requests, a.clients, lambda c, i: (
            "POST", "/clicksend/sms/inbound",
            ("message_id=bench-%d-%d&from=%%2B61400000000&body=hello+%d" % (c, i, i)).encode()))
        print("reference GET /healthz:      %6d in %5.2f s = %8.0f req/s" % ref)
        print("webhook POST (sync=%-6s):  %6d in %5.2f s = %8.0f req/s" % ((a.sync,) + hook))
        print("ratio webhook/reference: %.2f" % (hook[2] / ref[2] if ref[2] else 0))
    finally:
        p.terminate()
        p.wait(15)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
