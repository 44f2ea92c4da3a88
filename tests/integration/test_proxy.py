# SPDX-License-Identifier: ISC
"""Behind a reverse proxy: every X-Forwarded-For line counts (a proxy may append its own
line), a unix-socket listener serves the local proxy, and a few answers libevent would
otherwise give itself (CONNECT) come from the daemon."""

import os
import socket
import stat

from harness import Tap, Daemon, parse_raw_status

tap = Tap(timeout=60, name="proxy")
FORM = "application/x-www-form-urlencoded"
IN = "/clicksend/sms/inbound"


def raw(d, data):
    return d.raw_send(data, timeout=5)


def test_xff_lines():
    with Daemon(tap, server={"allow_from": "10.0.0.0/8"}, name="xff") as d:
        # the client forged the first line; the trusted proxy (127.0.0.1) appended the second
        req = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 13\r\n"
               "X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-For: 8.8.8.8\r\n"
               "Connection: close\r\n\r\nmessage_id=x1" % (IN, FORM)).encode()
        ans = raw(d, req)
        tap.check_eq(parse_raw_status(ans), 403,
                     "the proxy's own X-Forwarded-For line decides: 8.8.8.8 is refused")
        tap.check_eq(d.sql_value("SELECT count(*) FROM events"), 0, "nothing stored")
        req = req.replace(b"8.8.8.8", b"10.2.2.2")
        ans = raw(d, req)
        tap.check_eq(parse_raw_status(ans), 200, "an allowed address on the last line: 200")
        tap.check_eq(d.sql_value("SELECT remote_addr FROM events"), "10.2.2.2",
                     "remote_addr is the address the trusted proxy saw")


def unix_request(path, data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(data)
    out = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def unix_fails_closed(d, sock):
    """Behind the unix-socket proxy an X-Forwarded-For that names no usable client never
    leaves the client as the trusted "unix" peer: 400 when too long, 403 for a hop that is
    not exactly one address (nor an empty header), on every path."""
    for path in (IN + "?message_id=fc1&body=x", "/healthz", "/metrics"):
        for xff, want, what in (("192.0.2.1," * 500, 400, "an X-Forwarded-For over 4 KiB"),
                                ("192.0.2.7, unknown", 403, "a hop that is not an address"),
                                ("unknown", 403, "only a non-address"),
                                ("", 403, "an empty X-Forwarded-For"),
                                ("192.0.2.7 203.0.113.9", 403, "a hop of two words"),
                                ("192.0.2.7:4711", 403, "a hop with a port")):
            req = ("GET %s HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: %s\r\n"
                   "Connection: close\r\n\r\n" % (path, xff)).encode()
            tap.check_eq(parse_raw_status(unix_request(sock, req)), want,
                         "%s on %s: %d" % (what, path.split("?")[0], want))
    tap.check_eq(d.sql_value("SELECT count(*) FROM events WHERE message_id = 'fc1'"), 0,
                 "nothing stored from a client that could not be named")


def test_unix_listener():
    d = Daemon(tap, start=False, name="unix")
    sock = os.path.join(d.dir, "relay.sock")
    d.reconfigure(server={"listen": "127.0.0.1:%d unix:%s" % (d.port, sock),
                          "allow_from": "192.0.2.0/24"})
    d.start()
    try:
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        tap.ok(mode & 0o066 == 0o066, "the unix socket is usable by a proxy of another user",
               "mode %o" % mode)
        body = b"message_id=u1&body=via+unix"
        req = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
               "X-Forwarded-For: 192.0.2.7\r\nConnection: close\r\n\r\n"
               % (IN, FORM, len(body))).encode() + body
        tap.check_eq(parse_raw_status(unix_request(sock, req)), 200,
                     "a webhook through the unix socket is stored")
        tap.check_eq(d.sql_value("SELECT remote_addr FROM events WHERE message_id = 'u1'"),
                     "192.0.2.7", "the unix-socket proxy's X-Forwarded-For is honoured")
        req = req.replace(b"192.0.2.7", b"203.0.113.9")
        tap.check_eq(parse_raw_status(unix_request(sock, req)), 403,
                     "allow_from applies to the forwarded address")
        unix_fails_closed(d, sock)
        tap.check_eq(d.stop(), 0, "exits 0")
        tap.ok(not os.path.exists(sock), "the unix socket is removed at exit")
    finally:
        d.close()


def test_connect_and_zero_series():
    relays = {"relay:idle": {"url": "http://127.0.0.1:9/none"}}
    with Daemon(tap, sections=relays, name="misc") as d:
        ans = raw(d, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n"
                     b"Connection: close\r\n\r\n")
        tap.check_in(parse_raw_status(ans), (404, 405), "CONNECT is answered by the daemon")
        m = d.request("GET", "/metrics").body
        for res in ("done", "retry", "dead"):
            tap.ok('clicksend_relay_deliveries_total{relay="idle",result="%s"} 0' % res in m,
                   "deliveries_total{relay,result=%s} exists at 0 before any attempt" % res)


tap.run(test_xff_lines)
tap.run(test_unix_listener)
tap.run(test_connect_and_zero_series)
tap.done()
