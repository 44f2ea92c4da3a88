#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The bad-input battery of clicksend-relayd(8), ENDPOINTS: every rejected request gets the
right status and a short plain-text answer, stores nothing, and the daemon keeps serving
everybody else."""

import json
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import (Tap, Daemon, plain_short, parse_raw_status, sql_quote)  # noqa: E402

BASE = "/clicksend"
IN = BASE + "/sms/inbound"
FORM = "application/x-www-form-urlencoded"
JSONT = "application/json"
KIND_PATHS = ("/sms/inbound", "/sms/receipt", "/fax/inbound", "/fax/receipt", "/voice/receipt",
              "/email/receipt")

tap = Tap(timeout=90)
accepted = {"n": 0}     # events the battery daemon acknowledged with 200


def expect(r, code, name, extra_diag=None):
    """Status code plus a short plain-text answer body."""
    diag = ["answer %r" % (r,), "want %d" % code]
    if extra_diag:
        diag.append(extra_diag)
    good = r.status == code
    if r.status != 200 or code != 200:
        probs = plain_short(r)
        diag.extend(probs)
        good = good and not probs
    return tap.ok(good, name, diag)


def rejected_count(d):
    return d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'rej-%' OR "
                       "body LIKE 'rej-%'")


def try_request(d, *a, **kw):
    """request() that turns a dropped connection into a status of None."""
    try:
        return d.request(*a, **kw)
    except (OSError, Exception) as e:     # http.client.RemoteDisconnected, reset, timeout
        from harness import Response
        return Response(None, {}, "", "connection error: %s: %s" % (type(e).__name__, e))


def raw_plain_problems(ans):
    """plain_short() for a raw HTTP answer; [] when there was no answer."""
    if parse_raw_status(ans) is None:
        return []
    head, _, body = ans.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    from harness import Response
    return plain_short(Response(parse_raw_status(ans), hdrs, body.decode("utf-8", "replace")))


protocol_answers = []    # (what, problems) for answers to malformed HTTP


def note_protocol_answer(what, ans):
    probs = raw_plain_problems(ans)
    if probs:
        protocol_answers.append("%s: %s; %r" % (what, "; ".join(probs), ans[:160]))


def test_protocol_answers():
    # libevent 2.1 writes these answers itself, as HTML, before any handler runs.
    tap.todo(not protocol_answers, "answers to malformed HTTP (garbage, oversized headers) are "
             "short plain-text lines too", "libevent 2.1 answers malformed HTTP with its own "
             "HTML page", protocol_answers)


# --------------------------------------------------------------------------- 400

def test_bad_bodies(d):
    cases = [
        ("bad JSON (truncated)", JSONT, '{"message_id":"rej-1",'),
        ("bad JSON (trailing garbage)", JSONT, '{"message_id":"rej-2"} trailing'),
        ("bad JSON (single quotes)", JSONT, "{'message_id':'rej-3'}"),
        ("JSON number", JSONT, "42"),
        ("JSON string", JSONT, '"rej-4"'),
        ("JSON null", JSONT, "null"),
        ("JSON true", JSONT, "true"),
        ("empty JSON array", JSONT, "[]"),
        ("JSON array with a number", JSONT, '[{"message_id":"rej-5","body":"rej-5"}, 1]'),
        ("JSON array with a string", JSONT, '[{"message_id":"rej-6","body":"rej-6"}, "x"]'),
        ("JSON array with null", JSONT, '[{"message_id":"rej-7"}, null]'),
        ("JSON array of arrays", JSONT, '[[{"message_id":"rej-8"}]]'),
        ("empty JSON body", JSONT, ""),
        ("whitespace JSON body", JSONT, "  \n"),
        ("form with %zz", FORM, "message_id=rej-9&body=%zz"),
        ("form with truncated %4", FORM, "message_id=rej-10&body=rej%4"),
        ("form with % at the end", FORM, "message_id=rej-11&body=rej%"),
        ("form with %zz in a key", FORM, "message_id=rej-12&bo%zzdy=rej-12"),
        ("empty form body", FORM, ""),
    ]
    for what, ctype, body in cases:
        r = d.request("POST", IN, body, {"Content-Type": ctype})
        expect(r, 400, "400 for %s" % what)
    r = d.request("GET", IN + "?message_id=rej-13&body=%zz")
    expect(r, 400, "400 for GET with %zz in the query string")
    r = d.request("GET", IN + "?message_id=rej-14&body=%e")
    expect(r, 400, "400 for GET with a truncated escape")
    for p in KIND_PATHS:
        r = d.request("GET", BASE + p)
        expect(r, 400, "400 for GET %s without a query string" % p)
    r = d.request("GET", IN + "?")
    expect(r, 400, "400 for GET with an empty query string")
    r = d.request("POST", IN, None, {"Content-Type": FORM, "Content-Length": "0"})
    expect(r, 400, "400 for a POST with Content-Length 0")


# --------------------------------------------------------------------------- 404/405/415

def test_paths_methods_types(d):
    body = "message_id=rej-404&body=rej-404"
    for p in ("/", "/clicksend", "/clicksend/", "/clicksend/sms", "/clicksend/sms/",
              "/clicksend/sms/unknown", "/clicksend/sms/inbound/extra",
              "/clicksend/sms/inboundx", "/clicksend/SMS/INBOUND", "/clicksendx/sms/inbound",
              "/sms/inbound", "/other/clicksend/sms/inbound", "/clicksend/mms/inbound",
              "/healthzx", "/metrics/x", "/clicksend/healthz"):
        r = d.request("POST", p, body, {"Content-Type": FORM})
        expect(r, 404, "404 for POST %s" % p)
    r = d.request("GET", "/nowhere?message_id=rej-404g")
    expect(r, 404, "404 for GET of an unknown path with a query")

    for m in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        for p in (IN, BASE + "/voice/receipt"):
            r = d.request(m, p, "message_id=rej-405&body=rej-405", {"Content-Type": FORM})
            allow = r.header("allow") or ""
            methods = {x.strip().upper() for x in allow.split(",")}
            expect(r, 405, "405 for %s %s, with Allow listing GET and POST" % (m, p),
                   "Allow: %r" % allow)
            tap.ok(r.status != 405 or {"GET", "POST"} <= methods,
                   "Allow header on the 405 for %s %s names GET and POST" % (m, p),
                   "Allow: %r" % allow)

    for ctype, body in (
            ("text/plain", "message_id=rej-415&body=rej-415"),
            ("multipart/form-data; boundary=XyZ",
             "--XyZ\r\nContent-Disposition: form-data; name=\"message_id\"\r\n\r\nrej-415m\r\n"
             "--XyZ--\r\n"),
            ("application/xml", "<message_id>rej-415x</message_id>"),
            ("application/octet-stream", "message_id=rej-415o"),
            ("application/jsonx", '{"message_id":"rej-415j"}'),
            ("text/json-ish", '{"message_id":"rej-415t"}')):
        r = d.request("POST", IN, body, {"Content-Type": ctype})
        expect(r, 415, "415 for Content-Type %s" % ctype.split(";")[0])


# --------------------------------------------------------------------------- 413

def test_body_size(d):
    pad = "x" * 2048
    r = d.request("POST", IN, "message_id=rej-413&body=rej-413" + pad, {"Content-Type": FORM})
    expect(r, 413, "413 for a 2 KiB form body over max_body_size = 1k")
    r = d.request("POST", IN, json.dumps({"message_id": "rej-413j", "body": "rej-" + pad}),
                  {"Content-Type": JSONT})
    expect(r, 413, "413 for a 2 KiB JSON body over max_body_size = 1k")

    base = "message_id=acc-limit&body="
    body = base + "y" * (1024 - len(base))
    r = d.request("POST", IN, body, {"Content-Type": FORM})
    expect(r, 200, "a body of exactly 1024 bytes (= 1k) is accepted")
    if r.status == 200:
        accepted["n"] += 1
    base = "message_id=acc-under&body="
    r = d.request("POST", IN, base + "z" * 500, {"Content-Type": FORM})
    expect(r, 200, "a body under max_body_size is accepted")
    if r.status == 200:
        accepted["n"] += 1

    # chunked bodies count too: the answer is 413 or the connection is dropped, never a 200
    chunk = ("message_id=rej-413c&body=rej-413c" + "q" * 2100).encode()
    raw = (b"POST " + IN.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " +
           FORM.encode() + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
           b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")
    ans = d.raw_send(raw, timeout=4)
    st = parse_raw_status(ans)
    tap.ok(st in (None, 413, 400), "a 2 KiB chunked body is refused (413 or dropped)",
           repr(ans[:300]))

    # a Content-Length announcing more than the limit is refused without reading the body
    raw = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: 999999\r\n"
           "Connection: close\r\n\r\nmessage_id=rej-413h" % (IN, FORM)).encode()
    t0 = time.monotonic()
    ans = d.raw_send(raw, timeout=4)
    st = parse_raw_status(ans)
    tap.ok(st in (None, 413), "Content-Length over the limit: 413 (or dropped) at once",
           ["%r after %.2f s" % (ans[:300], time.monotonic() - t0)])


# --------------------------------------------------------------------------- 403, proxies

def test_allow_from():
    with Daemon(tap, server={"allow_from": "10.0.0.0/8"}, name="deny") as d:
        for m, p, body in (("GET", "/healthz", None), ("GET", "/metrics", None),
                           ("POST", IN, "message_id=rej-403&body=rej-403"),
                           ("GET", IN + "?message_id=rej-403g&body=rej-403g", None),
                           ("POST", "/unknown/path", "message_id=rej-403u"),
                           ("PUT", IN, "message_id=rej-403p")):
            r = d.request(m, p, body, {"Content-Type": FORM} if body else None)
            expect(r, 403, "allow_from = 10.0.0.0/8: %s %s from 127.0.0.1 -> 403" % (m, p))
        tap.check_eq(rejected_count(d), 0, "allow_from: refused clients stored nothing")
    with Daemon(tap, server={"allow_from": "10.0.0.0/8 127.0.0.0/8"}, name="allow") as d:
        r = d.get("/healthz")
        expect(r, 200, "allow_from = 10.0.0.0/8 127.0.0.0/8: /healthz from 127.0.0.1 -> 200")
        r = d.request("POST", IN, "message_id=acc-allow&body=ok", {"Content-Type": FORM})
        expect(r, 200, "allow_from = ... 127.0.0.0/8: webhook from 127.0.0.1 -> 200")
        n = d.sql_value("SELECT count(*) FROM events WHERE message_id = 'acc-allow'")
        tap.check_eq(n, 1, "allow_from: the allowed webhook is stored")


def remote_of(d, mid):
    rows = d.sql("SELECT remote_addr FROM events WHERE message_id = %s" % sql_quote(mid))
    return rows[0]["remote_addr"] if rows else None


def test_trusted_proxies():
    with Daemon(tap, name="proxy-default") as d:      # default trusted_proxies: 127.0.0.1 ::1
        for i, (xff, want) in enumerate((("203.0.113.7", "203.0.113.7"),
                                         ("2001:db8::1", "2001:db8::1"))):
            mid = "xff-%d" % i
            r = d.request("POST", IN, "message_id=%s" % mid,
                          {"Content-Type": FORM, "X-Forwarded-For": xff})
            got = remote_of(d, mid)
            tap.ok(r.status == 200 and got == want,
                   "trusted proxy 127.0.0.1: X-Forwarded-For %s -> remote_addr %s" % (xff, want),
                   ["answer %r" % (r,), "remote_addr %r" % got])
        r = d.request("POST", IN, "message_id=xff-none", {"Content-Type": FORM})
        tap.check_eq(remote_of(d, "xff-none"), "127.0.0.1",
                     "without X-Forwarded-For remote_addr is 127.0.0.1")
        r = try_request(d, "POST", IN, "message_id=xff-junk",
                        {"Content-Type": FORM, "X-Forwarded-For": "not-an-address"})
        tap.ok(r.status is not None and r.status < 500 and d.alive(),
               "a junk X-Forwarded-For does not break the daemon", repr(r))

    with Daemon(tap, server={"trusted_proxies": "192.0.2.1", "allow_from": "127.0.0.0/8"},
                name="proxy-other") as d:
        r = d.request("POST", IN, "message_id=xff-untrusted",
                      {"Content-Type": FORM, "X-Forwarded-For": "203.0.113.7"})
        got = remote_of(d, "xff-untrusted")
        tap.ok(r.status == 200 and got == "127.0.0.1",
               "untrusted client: X-Forwarded-For ignored, remote_addr 127.0.0.1 and allow_from "
               "applied to 127.0.0.1", ["answer %r" % (r,), "remote_addr %r" % got])

    with Daemon(tap, server={"allow_from": "203.0.113.0/24"}, name="proxy-acl") as d:
        r = d.request("POST", IN, "message_id=xff-acl-ok",
                      {"Content-Type": FORM, "X-Forwarded-For": "203.0.113.9"})
        got = remote_of(d, "xff-acl-ok")
        tap.ok(r.status == 200 and got == "203.0.113.9",
               "allow_from applies to the forwarded address: 203.0.113.9 allowed",
               ["answer %r" % (r,), "remote_addr %r" % got])
        r = d.request("POST", IN, "message_id=rej-xff-1",
                      {"Content-Type": FORM, "X-Forwarded-For": "198.51.100.9"})
        expect(r, 403, "allow_from: forwarded 198.51.100.9 -> 403")
        r = d.request("POST", IN, "message_id=rej-xff-2", {"Content-Type": FORM})
        expect(r, 403, "allow_from: the proxy itself (127.0.0.1, no X-Forwarded-For) -> 403")
        r = d.request("GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
        expect(r, 200, "allow_from: /healthz through the proxy for an allowed client -> 200")
        tap.check_eq(rejected_count(d), 0, "forwarded refusals stored nothing")


# --------------------------------------------------------------------------- abuse

def test_big_headers(d):
    big = "a" * (100 * 1024)
    raw = ("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
           % big).encode()
    ans = d.raw_send(raw, timeout=5)
    st = parse_raw_status(ans)
    tap.ok(st is None or 400 <= st < 500, "a 100 KiB header is rejected (4xx or dropped)",
           repr(ans[:300]))
    note_protocol_answer("a 100 KiB header", ans)
    tap.ok(d.alive(), "alive after a 100 KiB header")

    raw = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n" % (IN, FORM) +
           "".join("X-H%d: v\r\n" % i for i in range(5000)) +
           "Content-Length: 19\r\nConnection: close\r\n\r\nmessage_id=rej-hdrs").encode()
    ans = d.raw_send(raw, timeout=5)
    st = parse_raw_status(ans)
    tap.ok(st is None or 400 <= st < 500, "5000 header lines are rejected (4xx or dropped)",
           repr(ans[:300]))
    note_protocol_answer("5000 header lines", ans)

    raw = ("GET %s?message_id=big-url&body=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Connection: close\r\n\r\n" % (IN, "u" * (100 * 1024))).encode()
    ans = d.raw_send(raw, timeout=5)
    st = parse_raw_status(ans)
    tap.ok(st is None or st < 500, "a 100 KiB request line does not cause a 5xx",
           repr(ans[:300]))
    if st == 200:
        accepted["n"] += 1
    tap.ok(d.alive(), "alive after oversized requests")


def test_garbage(d):
    cases = [
        ("binary junk", b"\x00\x01\x02\xff\xfe" * 200, (None, 400)),
        ("a TLS ClientHello", bytes.fromhex("160301010001000100fc0303") + os.urandom(240),
         (None, 400)),
        ("a line that is not HTTP", b"HELLO WORLD\r\n\r\n", (None, 400)),
        ("empty lines only", b"\r\n" * 500, (None, 400, 408)),
        ("spaces for a request line", b"    \r\n\r\n", (None, 400)),
        ("HTTP/9.9", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", (None, 400, 505, 200)),
        ("negative Content-Length",
         ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: -5\r\n\r\n"
          "message_id=rej-neg" % (IN, FORM)).encode(), (None, 400, 411, 413)),
        ("huge Content-Length",
         ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
          "Content-Length: 99999999999999999999999\r\n\r\nmessage_id=rej-huge" % (IN, FORM))
         .encode(), (None, 400, 413)),
        ("bad chunk size",
         ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
          "zz\r\nmessage_id=rej-chunk\r\n0\r\n\r\n" % (IN, FORM)).encode(), (None, 400, 413)),
        ("NUL in the path", b"GET /clicksend/sms/inbound\x00x?message_id=rej-nul HTTP/1.1\r\n"
         b"Host: x\r\n\r\n", (None, 400, 404)),
        ("header without colon", ("POST %s HTTP/1.1\r\nHost: x\r\nBroken header\r\n"
                                  "Content-Type: %s\r\nContent-Length: 18\r\n\r\n"
                                  "message_id=rej-hdr" % (IN, FORM)).encode(), (None, 400)),
    ]
    for what, data, allowed in cases:
        ans = d.raw_send(data, timeout=3, shutdown=False)
        st = parse_raw_status(ans)
        tap.ok(st in allowed and d.alive(), "garbage (%s): %s, daemon alive" % (
            what, " or ".join("dropped" if a is None else str(a) for a in allowed)),
            repr(ans[:300]))
        note_protocol_answer(what, ans)


def test_pipelining(d):
    req = ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    ans = d.raw_send(req, timeout=3)
    tap.check_eq(ans.count(b"HTTP/1.1 200"), 2, "two pipelined requests get two answers",
                 repr(ans[:500]))


def test_head_and_framing(d):
    """HEAD answers carry no body (keep-alive framing holds); a request with two different
    Content-Length headers, or one with Transfer-Encoding too, is refused and closed."""
    for path in ("/healthz", "/metrics", IN):
        req = ("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
        ans = d.raw_send(req.encode(), timeout=3)
        head, _, rest = ans.partition(b"\r\n\r\n")
        tap.ok(rest.startswith(b"HTTP/1.1 200"),
               "HEAD %s: no body, the next answer on the connection follows at once" % path,
               repr(ans[:600]))
        tap.ok(b"content-length:" in head.lower(),
               "HEAD %s: Content-Length of the GET answer is given" % path, repr(head[:400]))
    body = "message_id=rej-cl&body=helloxxxxxxxxxx"
    for extra, what in (("Content-Length: 5\r\nContent-Length: %d\r\n" % len(body),
                         "two different Content-Length headers"),
                        ("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body),
                         "Content-Length with Transfer-Encoding")):
        req = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%s\r\n%s"
               % (IN, FORM, extra, body))
        ans = d.raw_send(req.encode(), timeout=3)
        tap.check_eq(parse_raw_status(ans), 400, "%s: 400" % what, repr(ans[:300]))
        tap.ok(ans.count(b"HTTP/1.1") == 1, "%s: one answer, then the connection closes" % what,
               repr(ans[:600]))
    n = d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'rej-cl%'")
    tap.check_eq(n, 0, "nothing stored from a request with conflicting lengths")


def test_slow_clients(d):
    """request_timeout = 1s: stalled clients are cut off while others are served."""
    stalled = []
    for data in (b"",
                 ("POST %s HTTP/1.1\r\nHost: x\r\n" % IN).encode(),
                 ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 200\r\n\r\n"
                  "message_id=rej-stall" % (IN, FORM)).encode()):
        s = d.connect()
        if data:
            s.sendall(data)
        stalled.append(s)
    names = ("a silent connection", "half a header", "half a body")
    t0 = time.monotonic()
    served = []
    while time.monotonic() - t0 < 0.8:
        r0 = time.monotonic()
        r = d.get("/healthz", timeout=3)
        served.append((r.status, round(time.monotonic() - r0, 3)))
        time.sleep(0.1)
    tap.ok(served and all(st == 200 and dt < 1.0 for st, dt in served),
           "other clients are served while three connections stall", repr(served))
    for s, name in zip(stalled, names):
        s.settimeout(max(0.1, t0 + 5 - time.monotonic()))
        closed_at = None
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    closed_at = time.monotonic() - t0
                    break
                data += chunk
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic() - t0
        finally:
            s.close()
        st = parse_raw_status(data)
        tap.ok(closed_at is not None and st in (None, 400, 408),
               "request_timeout 1s: %s is disconnected (within 5 s)" % name,
               ["closed after %s s, got %r" % (closed_at, data[:200])])
    tap.ok(d.alive() and d.get("/healthz").status == 200, "healthy after the stalled clients")


def test_concurrency(d):
    n = 100
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        try:
            barrier.wait(10)
            r = d.request("POST", IN, "message_id=conc-%d&body=concurrent" % i,
                          {"Content-Type": FORM}, timeout=20)
            results[i] = r.status
        except Exception as e:
            results[i] = "%s: %s" % (type(e).__name__, e)

    th = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in th:
        t.start()
    for t in th:
        t.join(30)
    okn = sum(1 for x in results if x == 200)
    accepted["n"] += okn
    bad = [x for x in results if x != 200]
    tap.ok(okn == n, "%d concurrent webhook POSTs all answered 200" % n,
           ["%d ok in %.2f s; others: %r" % (okn, time.monotonic() - t0, bad[:10])])
    cnt = d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'conc-%'")
    tap.check_eq(cnt, okn, "every acknowledged concurrent POST is stored once")

    idle = []
    try:
        for _ in range(300):
            idle.append(d.connect())
        r = d.get("/healthz", timeout=5)
        tap.check_eq(r.status, 200, "/healthz answers while 300 idle connections are open")
    finally:
        for s in idle:
            s.close()


def test_deep_json():
    """Deeply nested JSON must not crash the parser (default max_body_size 64k)."""
    with Daemon(tap, name="deep") as d:
        body = "[" * 30000 + "]" * 30000
        r = try_request(d, "POST", IN, body, {"Content-Type": JSONT})
        tap.ok(r.status == 400 and d.alive(), "30000 nested arrays: 400, daemon alive", repr(r))
        body = '{"message_id":"deep-obj","x":' + "[" * 30000 + "]" * 30000 + "}"
        r = try_request(d, "POST", IN, body, {"Content-Type": JSONT})
        tap.ok(r.status in (200, 400) and d.alive(),
               "an object holding 30000 nested arrays: 200 or 400, daemon alive", repr(r))
        body = '{"message_id":"deep-obj2","x":' + '{"a":' * 10000 + "1" + "}" * 10000 + "}"
        r = try_request(d, "POST", IN, body, {"Content-Type": JSONT})
        tap.ok(r.status in (200, 400) and d.alive(),
               "an object holding 10000 nested objects: 200 or 400, daemon alive", repr(r))
        r = d.get("/healthz")
        tap.check_eq(r.status, 200, "/healthz after deep JSON")


# --------------------------------------------------------------------------- main

def battery_daemon(name="battery"):
    try:
        return Daemon(tap, server={"max_body_size": "1k", "request_timeout": "1s"}, name=name)
    except Exception as e:
        tap.ok(False, "%s daemon starts" % name, str(e))
        return None


def main():
    battery = battery_daemon()
    for t in (test_bad_bodies, test_paths_methods_types, test_body_size, test_big_headers,
              test_garbage, test_pipelining, test_head_and_framing, test_slow_clients, test_concurrency):
        if battery is None:
            break
        tap.run(t, battery)
        if not battery.alive():
            tap.ok(False, "daemon survived %s" % t.__name__, battery.log()[-3000:])
            try:
                battery.close()
            except Exception:
                pass
            battery = battery_daemon("battery-again")
            accepted["n"] = 0

    def final():
        tap.ok(battery.alive(), "the daemon is still running after the whole battery")
        r = battery.get("/healthz")
        expect(r, 200, "/healthz is 200 after the battery")
        tap.check_eq(rejected_count(battery), 0, "no rejected request left a row in events",
                     repr(battery.sql("SELECT id, kind, message_id, body FROM events WHERE "
                                      "message_id LIKE 'rej-%' OR body LIKE 'rej-%' LIMIT 5")))
        total = battery.sql_value("SELECT count(*) FROM events")
        tap.check_eq(total, accepted["n"], "events holds exactly the acknowledged requests")
    if battery is not None:
        tap.run(final)
        tap.run(test_protocol_answers)
        battery.close()
    tap.run(test_allow_from)
    tap.run(test_trusted_proxies)
    tap.run(test_deep_json)
    tap.done()


if __name__ == "__main__":
    main()
