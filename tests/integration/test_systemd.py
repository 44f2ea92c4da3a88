# SPDX-License-Identifier: ISC
"""systemd integration (clicksend-relayd(8), SYSTEMD INTEGRATION), without systemd: a notify
socket of our own receives READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1, and a
listening socket passed as LISTEN_FDS is served while `listen` is ignored."""

import os
import signal
import socket
import subprocess
import time

from harness import Tap, daemon_env, free_port, http_request, relayd_path, render_config

tap = Tap(timeout=90, name="systemd")
tap.sqlite_only_file("notify and socket activation with SQLite configs of its own")


class Notify:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []

    def drain(self, until=None, timeout=5):
        """Collect datagrams; with `until`, stop as soon as one holds that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                if until is None:
                    return None
                continue
            self.messages.append(msg)
            if until is not None and until in msg.split("\n"):
                return msg
        return None

    def close(self):
        self.sock.close()


def write_conf(d, listen):
    conf = os.path.join(d, "relay.conf")
    with open(conf, "w") as f:
        f.write(render_config({"server": {"listen": listen, "base_path": "/clicksend"},
                               "store": {"path": os.path.join(d, "events.db")}}))
    return conf


def spawn(args, env, d, **kw):
    err = open(os.path.join(d, "stderr.log"), "ab")
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                            cwd=d, **kw)


def healthy(port):
    try:
        return http_request(port, "GET", "/healthz", timeout=2).status == 200
    except OSError:
        return False


def test_notify():
    d = tap.mkdtemp()
    port = free_port()
    conf = write_conf(d, "127.0.0.1:%d" % port)
    n = Notify(os.path.join(d, "notify"))
    env = daemon_env()
    env.update(NOTIFY_SOCKET=n.path, WATCHDOG_USEC="2000000")
    p = spawn([relayd_path(), "-c", conf], env, d)
    try:
        ready = n.drain(until="READY=1", timeout=10)
        tap.ok(ready is not None, "READY=1 is sent", n.messages)
        tap.ok(healthy(port), "the listener answers once READY=1 was sent")
        tap.ok(any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in n.messages),
               "a STATUS= line is sent", n.messages)
        tap.ok(n.drain(until="WATCHDOG=1", timeout=4) is not None,
               "WATCHDOG=1 is sent when WATCHDOG_USEC is set", n.messages)
        p.send_signal(signal.SIGHUP)
        tap.ok(n.drain(until="RELOADING=1", timeout=5) is not None, "SIGHUP sends RELOADING=1")
        tap.ok(n.drain(until="READY=1", timeout=5) is not None, "then READY=1 again")
        p.send_signal(signal.SIGTERM)
        tap.ok(n.drain(until="STOPPING=1", timeout=5) is not None, "SIGTERM sends STOPPING=1")
        tap.check_eq(p.wait(15), 0, "and the daemon exits 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        n.close()


def test_socket_activation():
    d = tap.mkdtemp()
    # `listen` names a port nobody uses; the passed socket must be served instead.
    unused = free_port()
    conf = write_conf(d, "127.0.0.1:%d" % unused)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    # sd_listen_fds() wants the socket at fd 3 and LISTEN_PID equal to the daemon's pid:
    # the child moves the socket to 3, and the shell's exec keeps its pid for the daemon.
    script = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"'
    p = spawn(["/bin/sh", "-c", script, relayd_path(), conf], daemon_env(), d,
              preexec_fn=lambda: os.dup2(fd, 3) if fd != 3 else os.set_inheritable(3, True),
              close_fds=False)
    lsock.close()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not healthy(port):
            time.sleep(0.05)
        tap.ok(healthy(port), "the socket passed in LISTEN_FDS is served")
        r = http_request(port, "POST", "/clicksend/sms/inbound", b"message_id=sa-1&body=hi",
                         {"Content-Type": "application/x-www-form-urlencoded"})
        tap.check_eq(r.status, 200, "a webhook through the passed socket is stored")
        refused = False
        try:
            socket.create_connection(("127.0.0.1", unused), timeout=1).close()
        except OSError:
            refused = True
        tap.ok(refused, "the configured listen address is ignored under socket activation")
        p.send_signal(signal.SIGTERM)
        tap.check_eq(p.wait(15), 0, "exits 0 on SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_unit_files():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    svc = open(os.path.join(top, "systemd", "clicksend-relayd.service.in")).read()
    for want in ("Type=notify", "DynamicUser=yes", "StateDirectory=clicksend-relay",
                 "LoadCredential=clicksend-api-key", "ProtectSystem=strict", "WatchdogSec="):
        tap.ok(want in svc, "the service unit has %s" % want)
    sock = open(os.path.join(top, "systemd", "clicksend-relayd.socket.in")).read()
    tap.ok("ListenStream=" in sock, "the socket unit has ListenStream=")


tap.run(test_notify)
tap.run(test_socket_activation)
tap.run(test_unit_files)
tap.done()
