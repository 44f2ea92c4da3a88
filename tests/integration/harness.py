# SPDX-License-Identifier: ISC
"""Black-box test harness for clicksend-relayd (python3 stdlib only).

  tap = Tap()                     TAP reporter; the plan "1..N" is printed by tap.done()
  tap.ok(cond, name, diag=None)   one test point; diag (str or list) becomes "# " lines
  tap.check_eq(got, want, name)
  tap.skip(name, reason)
  tap.run(fn, *args)              runs fn isolated: an exception is a "not ok" with the
                                  traceback as "#" lines, and the next test still runs
  tap.done()                      prints the plan, cleans up, exits 1 if anything failed

  d = Daemon(tap, server={...}, store={...}, sections={"relay:x": {...}}, extra="...",
             env={...})             env: variables added to the daemon's environment
  d.request(method, path, body=None, headers=None, raw=False) -> Response(status, headers, body)
  d.raw_send(bytes) -> bytes answered;  d.sql(query) -> [dict];  d.stop(signal) -> exit code
  d.log(), d.alive(), d.restart(), d.reconfigure(...), d.close()
  wait_for(cond, timeout) polls until true; tool_path() is the operator tool

Environment: RELAYD (daemon binary), RELAY_TOOL, TESTS_DATA, TESTS_LIB (set by make check).
All traffic goes to 127.0.0.1; every wait is bounded; temp dirs are removed at exit.

Store backends: CSR_STORE=postgresql gives every Daemon that sets neither [store] path nor
url a fresh PostgreSQL database on one shared server (pgstore.py), [store] url and node
instead of path, and d.sql() answers through psql with the sqlite3 -json value types. A test
that is about SQLite itself says so and is reported as a TAP skip there:

  @sqlite_only("the lock file")   on a test function run with tap.run()
  if tap.sqlite_only("WAL", "what is skipped"): return     inside a test
  tap.sqlite_only_file("why")     at the top of a file: the whole file is "1..0 # SKIP"
  tap.pg_todo(cond, name, bug)    a known daemon bug on PostgreSQL: TODO there, ok elsewhere
  store_backend()                 "sqlite" or "postgresql"
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import pgstore  # noqa: E402
LOCALHOST = "127.0.0.1"

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

# The environment a daemon must not inherit from a systemd-run test runner.
_SCRUB_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
              "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY")


def relayd_path():
    p = os.environ.get("RELAYD")
    if p:
        return p
    for cand in (os.path.join(HERE, "..", "..", "src", "clicksend-relayd"),
                 "/tmp/build-lead/src/clicksend-relayd"):
        if os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return "clicksend-relayd"


def tool_path():
    """The operator tool: RELAY_TOOL, else beside the daemon."""
    p = os.environ.get("RELAY_TOOL")
    if p:
        return p
    return os.path.join(os.path.dirname(relayd_path()), "clicksend-relay")


def wait_for(cond, timeout, step=0.1):
    """Polls cond() until it is true or timeout seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def tests_data():
    p = os.environ.get("TESTS_DATA")
    if p:
        return p
    return os.path.abspath(os.path.join(HERE, "..", "data"))


def daemon_env():
    env = dict(os.environ)
    for k in _SCRUB_ENV:
        env.pop(k, None)
    return env


def sanitizer_report(text):
    """The first sanitizer report lines found in text, or None."""
    if not text:
        return None
    for pat in SANITIZER_PATTERNS:
        i = text.find(pat)
        if i >= 0:
            start = text.rfind("\n", 0, max(0, i - 200)) + 1
            return text[start:start + 3000]
    return None


def store_backend():
    """The backend Daemons get by default: "sqlite" or "postgresql" (CSR_STORE)."""
    return pgstore.backend()


def sqlite_only(reason):
    """Decorator: under CSR_STORE=postgresql tap.run() reports fn as skipped with reason."""
    def mark(fn):
        fn.sqlite_only = reason
        return fn
    return mark


def sql_quote(s):
    if s is None:
        return "NULL"
    return "'" + str(s).replace("'", "''") + "'"


# --------------------------------------------------------------------------- TAP

class TestTimeout(Exception):
    pass


class Tap:
    def __init__(self, timeout=None, name=None):
        self.n = 0
        self.failed = 0
        self.name = name or os.path.basename(sys.argv[0])
        self.daemons = []
        self.tmpdirs = []
        self.procs = []          # every process started, killed at exit whatever happened
        self.timeout = timeout
        self._finished = False
        sys.stdout.reconfigure(line_buffering=True)
        if store_backend() == "postgresql":
            why = pgstore.skip_reason()
            if why:
                self._skip_all("CSR_STORE=postgresql: " + why)
        atexit.register(self.cleanup)
        if timeout:
            # a whole-file watchdog: report, kill everything and leave instead of hanging
            signal.signal(signal.SIGALRM, self._watchdog)
            signal.alarm(int(timeout))

    def _watchdog(self, signum, frame):
        self.ok(False, "test file finished within %d s" % self.timeout,
                "watchdog fired; remaining tests abandoned; daemons killed")
        self._kill_all()
        for t in self.tmpdirs:
            shutil.rmtree(t, ignore_errors=True)
        print("1..%d" % self.n)
        sys.stdout.flush()
        os._exit(1)

    def _kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    try:
                        p.kill()
                    except OSError:
                        pass
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass

    # -- output
    @staticmethod
    def _diag_lines(diag):
        if diag is None:
            return []
        if isinstance(diag, (list, tuple)):
            diag = "\n".join(str(d) for d in diag)
        diag = str(diag)
        out = []
        for line in diag.splitlines() or [""]:
            out.append("# " + line)
        return out

    def diag(self, text):
        for line in self._diag_lines(text):
            print(line)

    def ok(self, cond, name, diag=None):
        self.n += 1
        name = str(name).replace("#", "\\#").replace("\n", " ")
        if cond:
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            for line in self._diag_lines(diag):
                print(line)
        return bool(cond)

    def check_eq(self, got, want, name, diag=None):
        d = ["got:  %r" % (got,), "want: %r" % (want,)]
        if diag:
            d.append(diag if isinstance(diag, str) else "\n".join(diag))
        return self.ok(got == want, name, d)

    def check_in(self, got, allowed, name, diag=None):
        d = ["got:  %r" % (got,), "want one of: %r" % (allowed,)]
        if diag:
            d.append(diag if isinstance(diag, str) else "\n".join(diag))
        return self.ok(got in allowed, name, d)

    def todo(self, cond, name, reason, diag=None):
        """A known gap: a failure is reported as TODO (not counted as failed)."""
        self.n += 1
        name = str(name).replace("#", "\\#").replace("\n", " ")
        print("%s %d - %s # TODO %s" % ("ok" if cond else "not ok", self.n, name, reason))
        if not cond:
            for line in self._diag_lines(diag):
                print(line)
        return bool(cond)

    def pg_todo(self, cond, name, reason, diag=None):
        """tap.ok(), except that on a PostgreSQL store a failure is a TODO naming a known
        daemon bug (reason), so it shows without failing the run. A pass is a plain ok: the
        bugs are races, and automake's TAP driver counts a passing TODO (XPASS) as a failure."""
        if store_backend() == "sqlite" or cond:
            return self.ok(cond, name, diag)
        return self.todo(cond, name, "PostgreSQL store: " + reason, diag)

    def skip(self, name, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, reason))

    @staticmethod
    def _skip_all(reason):
        print("1..0 # SKIP %s" % reason.replace("\n", " "))
        sys.stdout.flush()
        sys.exit(0)

    def sqlite_only(self, reason, name="SQLite store only"):
        """True (and a skip reported) when the store is not SQLite: the caller returns."""
        if store_backend() == "sqlite":
            return False
        self.skip(name, "SQLite store only: %s" % reason)
        return True

    def sqlite_only_file(self, reason):
        """The whole file is about SQLite: "1..0 # SKIP" under another backend."""
        if store_backend() != "sqlite":
            self._skip_all("SQLite store only: %s" % reason)

    def run(self, fn, *args, **kwargs):
        """Run one test function isolated from the others (a skip when it is marked
        @sqlite_only and the store is not SQLite)."""
        mark = getattr(fn, "sqlite_only", None)
        if mark and self.sqlite_only(mark, "%s" % fn.__name__):
            return None
        try:
            return fn(*args, **kwargs)
        except Exception:
            self.ok(False, "%s completed without an exception" % fn.__name__,
                    traceback.format_exc())
            return None
        finally:
            # daemons a failed test left running are stopped here so they do not pile up
            for d in list(self.daemons):
                if d.owner_test == fn and d.auto_close:
                    d.close()

    def cleanup(self):
        for d in list(self.daemons):
            try:
                d.close(report=False)
            except Exception:
                pass
        self._kill_all()
        for t in self.tmpdirs:
            shutil.rmtree(t, ignore_errors=True)
        self.tmpdirs = []

    def done(self):
        if self._finished:
            sys.exit(1 if self.failed else 0)
        self._finished = True
        signal.alarm(0)
        for d in list(self.daemons):
            try:
                d.close()
            except Exception:
                self.ok(False, "closing daemon %s" % d.name, traceback.format_exc())
        self.cleanup()
        print("1..%d" % self.n)
        if self.failed:
            print("# %d of %d failed" % (self.failed, self.n))
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)

    def mkdtemp(self, prefix="csr-test-"):
        d = tempfile.mkdtemp(prefix=prefix)
        self.tmpdirs.append(d)
        return d


# --------------------------------------------------------------------------- HTTP

class Response:
    """status (int), headers (dict, lower-case names), body (str, or bytes when raw)."""

    def __init__(self, status, headers, body, reason=""):
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        b = self.body
        if isinstance(b, (bytes, str)) and len(b) > 300:
            b = b[:300] + (b"..." if isinstance(b, bytes) else "...")
        return "<Response %s %r headers=%r body=%r>" % (self.status, self.reason,
                                                         self.headers, b)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_request(port, method, path, body=None, headers=None, raw=False, timeout=15):
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in hdrs) \
                and not any(k.lower() == "transfer-encoding" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        hd = {}
        for k, v in r.getheaders():
            k = k.lower()
            hd[k] = (hd[k] + ", " + v) if k in hd else v
        if not raw:
            data = data.decode("utf-8", "replace")
        return Response(r.status, hd, data, r.reason)
    finally:
        conn.close()


def parse_raw_status(data):
    """The status code of a raw HTTP answer, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data or b"")
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- daemon

_SIGTERM = signal.SIGTERM

class DaemonError(Exception):
    pass


def run_relayd(args, timeout=15, env=None):
    """Run the daemon to completion (e.g. -V, -t). Returns (rc, stdout, stderr);
    rc None when it had to be killed after timeout."""
    try:
        p = subprocess.run([relayd_path()] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, env=env or daemon_env())
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or b"").decode("utf-8", "replace")
        return None, out, err + "\n[killed after %s s]" % timeout


def render_config(sections):
    out = []
    for sec, kv in sections.items():
        if kv is None:
            continue
        out.append("[%s]" % sec)
        for k, v in kv.items():
            if v is None:
                continue
            if isinstance(v, (list, tuple)):      # repeatable keys
                for item in v:
                    out.append("%s = %s" % (k, item))
            else:
                out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Daemon:
    """One clicksend-relayd in a fresh temp dir, listening on 127.0.0.1:<free port>."""

    _count = 0

    def __init__(self, tap, server=None, store=None, sections=None, extra="", args=None,
                 debug=True, start=True, name=None, start_timeout=10, tmpdir=None,
                 auto_close=True, limits=None, env=None):
        Daemon._count += 1
        self.tap = tap
        self.name = name or "daemon%d" % Daemon._count
        self.dir = tmpdir or tap.mkdtemp()
        self.conf_path = os.path.join(self.dir, "relay.conf")
        self.db = os.path.join(self.dir, "events.db")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.args = list(args or [])
        self.debug = debug
        self.start_timeout = start_timeout
        self.port = free_port()
        self.server = dict(server or {})
        self.store = dict(store or {})
        self.sections = dict(sections or {})
        self.extra = extra
        self.proc = None
        self.returncode = None
        self._closed = False
        self._logs = []          # stderr of previous runs (restart)
        self.auto_close = auto_close
        self.limits = dict(limits or {})     # {resource.RLIMIT_x: (soft, hard)} for the daemon
        self.env = dict(env or {})           # added to daemon_env() for this daemon
        self.owner_test = _current_test_function()
        # CSR_STORE=postgresql: a database of its own unless the test chose a store
        # (a subclass may have set its own: test_postgres.PgDaemon)
        self.pgdb = getattr(self, "pgdb", None)
        self.node = getattr(self, "node", None)
        if store_backend() == "postgresql" and not ({"path", "url"} & set(self.store)):
            self.pgdb = pgstore.new_store(tap, self.name)
            self.node = pgstore.node_name(self.name)
        tap.daemons.append(self)
        self.write_config()
        if start:
            self.start()

    # -- config
    def config_text(self):
        server = {"listen": "%s:%d" % (LOCALHOST, self.port), "base_path": "/clicksend"}
        server.update(self.server)
        if self.pgdb is not None and not ({"path", "url"} & set(self.store)):
            store = {"url": self.pgdb.uri, "node": self.node}
        else:
            store = {"path": self.db}
        store.update(self.store)
        secs = {"server": server, "store": store}
        for k, v in self.sections.items():
            if k in secs and v is not None:
                secs[k] = dict(secs[k]); secs[k].update(v)
            else:
                secs[k] = v
        text = render_config(secs)
        if self.extra:
            text += "\n" + self.extra + "\n"
        return text

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())

    def reconfigure(self, server=None, store=None, sections=None, extra=None, text=None):
        """Rewrite the config file (the daemon sees it on SIGHUP or restart)."""
        if text is not None:
            with open(self.conf_path, "w") as f:
                f.write(text)
            return
        if server is not None:
            self.server.update(server)
        if store is not None:
            self.store.update(store)
        if sections is not None:
            self.sections.update(sections)
        if extra is not None:
            self.extra = extra
        self.write_config()

    # -- process
    def start(self):
        last = None
        for attempt in range(5):
            if attempt:
                self.port = free_port()
                self.write_config()
            self._spawn()
            try:
                self._wait_ready()
                return self
            except DaemonError as e:
                last = e
                log = self.log()
                if self.proc.poll() is not None and re.search(
                        r"in use|bind|EADDRINUSE", log, re.I):
                    self._logs.append(log)
                    continue        # somebody took the port meanwhile: another one
                break
        raise last

    def _spawn(self):
        cmd = [relayd_path(), "-c", self.conf_path] + (["-d"] if self.debug else []) + self.args
        self.stderr_f = open(self.stderr_path, "ab")
        self.stdout_f = open(self.stdout_path, "ab")
        self._log_offset = self.stderr_f.tell()
        limits = self.limits

        def preexec():
            import resource
            for res, lim in limits.items():
                resource.setrlimit(res, lim)
        env = daemon_env()
        env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stdout_f,
                                     stderr=self.stderr_f, env=env,
                                     start_new_session=True, cwd=self.dir,
                                     preexec_fn=preexec if limits else None)
        self.tap.procs.append(self.proc)
        self.returncode = None
        self._closed = False

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise DaemonError("%s exited with %s before answering /healthz\n%s"
                                  % (self.name, self.proc.returncode, self.log()[-4000:]))
            try:
                http_request(self.port, "GET", "/healthz", timeout=2)
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        self._kill()
        raise DaemonError("%s did not answer /healthz within %s s\n%s"
                          % (self.name, self.start_timeout, self.log()[-4000:]))

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc:
            self.returncode = self.proc.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout=10):
        """Wait for exit; the exit code, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, signal=_SIGTERM, timeout=15):
        """Send the signal (default SIGTERM) and wait (bounded) for the exit code. Past
        timeout: SIGKILL and DaemonError. Death by a signal is returned as -SIGNUM."""
        sig = signal
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise DaemonError("%s did not exit within %s s of signal %d; killed\n%s"
                                  % (self.name, timeout, sig, self.log()[-3000:]))
        self.returncode = self.proc.returncode
        self._check_sanitizer()
        return self.returncode

    def restart(self):
        rc = self.stop()
        self._logs.append(self.log())
        self.start()
        return rc

    def _check_sanitizer(self):
        rep = sanitizer_report(self.full_log())
        if rep and not getattr(self, "_san_reported", False):
            self._san_reported = True
            self.tap.ok(False, "%s: no sanitizer report on stderr" % self.name, rep)

    def close(self, report=True):
        """Stop (SIGTERM) if running; report a bad exit or sanitizer output; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self in self.tap.daemons:
            self.tap.daemons.remove(self)
        if self.proc is None:
            return
        if not report:
            self._kill()
            return
        was_alive = self.proc.poll() is None
        try:
            rc = self.stop()
            if was_alive and rc != 0:
                self.tap.ok(False, "%s: exits 0 on SIGTERM at the end of its test" % self.name,
                            ["exit status %r" % rc, self.log()[-3000:]])
        except DaemonError as e:
            self.tap.ok(False, "%s: exits on SIGTERM at the end of its test" % self.name, str(e))
        finally:
            for f in (getattr(self, "stderr_f", None), getattr(self, "stdout_f", None)):
                if f:
                    f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- logs
    def log(self):
        """stderr of the current (or last) run."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(getattr(self, "_log_offset", 0))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def full_log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5):
        """Wait until stderr matches regex pattern; the match or None."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m or time.monotonic() >= deadline:
                return m
            time.sleep(0.05)

    # -- traffic
    def request(self, method, path, body=None, headers=None, raw=False, timeout=15):
        return http_request(self.port, method, path, body, headers, raw, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, content_type="application/x-www-form-urlencoded", headers=None,
             **kw):
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        return self.request("POST", path, body, h, **kw)

    def post_json(self, path, obj, headers=None, **kw):
        return self.post(path, json.dumps(obj), "application/json", headers, **kw)

    def connect(self, timeout=5):
        s = socket.create_connection((LOCALHOST, self.port), timeout=timeout)
        return s

    def raw_send(self, data, timeout=5, read=True, shutdown=False):
        """Send raw bytes on a new connection and return what came back until the
        daemon closed it (or timeout). shutdown=True half-closes after sending."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        s = self.connect(timeout)
        out = b""
        try:
            try:
                s.sendall(data)
                if shutdown:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if not read:
                return b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        return out

    # -- store
    def sql(self, query, timeout=10):
        """Rows as dicts, read with the sqlite3 shell (with psql on a PostgreSQL store)."""
        if self.pgdb is not None:
            try:
                return pgstore.pg_json(self.pgdb, query, timeout)
            except pgstore.PgStoreError as e:
                raise DaemonError(str(e))
        if not os.path.exists(self.db):
            raise DaemonError("store %s does not exist" % self.db)
        return sqlite_json(self.db, query, timeout)

    def sql_value(self, query):
        rows = self.sql(query)
        if not rows:
            return None
        return next(iter(rows[0].values()))

    def healthz(self):
        r = self.get("/healthz")
        try:
            return r, json.loads(r.body)
        except ValueError:
            return r, None


def sqlite_json(db, query, timeout=10):
    p = subprocess.run(["sqlite3", "-json", "-cmd", ".timeout 5000", db, query],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise DaemonError("sqlite3 %s %r failed: %s" % (db, query,
                                                       p.stderr.decode("utf-8", "replace")))
    text = p.stdout.decode("utf-8", "replace").strip()
    if not text:
        return []
    # several statements print several arrays: join them
    rows = []
    dec = json.JSONDecoder()
    i = 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        val, i = dec.raw_decode(text, i)
        rows.extend(val if isinstance(val, list) else [val])
    return rows


def sqlite_text(db, query, timeout=10):
    """The sqlite3 shell's plain output (e.g. for EXPLAIN QUERY PLAN)."""
    p = subprocess.run(["sqlite3", "-cmd", ".timeout 5000", db, query],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise DaemonError("sqlite3 %s %r failed: %s" % (db, query,
                                                       p.stderr.decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


def _current_test_function():
    """The function tap.run() is executing, for auto-close of leftover daemons."""
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "run" and "fn" in f.f_locals and isinstance(
                f.f_locals.get("self"), Tap):
            return f.f_locals["fn"]
        f = f.f_back
    return None


# --------------------------------------------------------------------------- helpers

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def time_ok(text, slack=300):
    """received_at style UTC text, within slack seconds of now."""
    if not isinstance(text, str) or not TIME_RE.match(text):
        return False
    import calendar
    t = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return abs(t - time.time()) <= slack


def plain_short(resp):
    """A list of problems with an answer body that should be one short plain-text line."""
    problems = []
    ct = resp.header("content-type", "")
    if ct and not ct.lower().startswith("text/plain"):
        problems.append("Content-Type %r is not text/plain" % ct)
    body = resp.body if isinstance(resp.body, str) else resp.body.decode("utf-8", "replace")
    if len(body) > 200:
        problems.append("body longer than 200 bytes (%d)" % len(body))
    if body.strip("\r\n").count("\n") > 0:
        problems.append("body has more than one line: %r" % body[:200])
    if re.search(r"<\s*(html|body|title|h1)\b", body, re.I):
        problems.append("body looks like HTML: %r" % body[:200])
    return problems


def same_json(a, b):
    """Strict JSON equality: types matter (1 != 1.0 != "1", True != 1)."""
    if type(a) != type(b):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
                and not isinstance(a, bool) and not isinstance(b, bool):
            return False
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


def json_diff(got, want):
    """Human-readable differences between two JSON objects (top level)."""
    out = []
    if not isinstance(got, dict) or not isinstance(want, dict):
        return ["got %r, want %r" % (got, want)]
    for k in want:
        if k not in got:
            out.append("missing field %r (want %r)" % (k, want[k]))
        elif not same_json(got[k], want[k]):
            out.append("field %r: got %r (%s), want %r (%s)" % (
                k, got[k], type(got[k]).__name__, want[k], type(want[k]).__name__))
    for k in got:
        if k not in want:
            out.append("extra field %r = %r" % (k, got[k]))
    return out
