# SPDX-License-Identifier: ISC
"""A real PostgreSQL server for the integration tests (python3 stdlib only).

This file owns the server's life: initdb in a fresh temp dir, start, stop, restart and
outages, one database with its own role per test, and psql as the superuser.

  reason = skip_reason()            None, or why the PG tests cannot run here (no binaries)
  pg = PgServer(tap=tap).start()    initdb + postgres on 127.0.0.1:<free port>; timezone=
                                    sets the server's (psql sessions here always use UTC)
  db = pg.new_database("ingest")    a role with a random password owning a new database:
        db.uri                      postgresql://ROLE:PASSWORD@127.0.0.1:PORT/DB
        db.uri_nopass               postgresql://ROLE@127.0.0.1:PORT/DB
        db.name, db.role, db.password
        db.write_passfile(path)     a PGPASSFILE (mode 0600) for the password-less URL
        db.psql(sql) / db.value(sql)
  pg.psql(db, sql) -> [tuple]       rows as tuples of str (None for NULL), via the psql
                                    binary (-X -A -t -F) as the superuser over the unix socket;
                                    let one statement of sql return rows (see _parse_rows)
  pg.value(db, sql)                 the first column of the first row, or None
  pg.stop(mode="fast")              fast shutdown ("immediate": crash-like); idempotent
  pg.start() / pg.restart()         the same data dir and the same port
  pg.stop_for(seconds, background=False)
                                    an outage: stop, then start again after seconds (in a
                                    thread when background; join it with the returned thread)
  pg.running(), pg.log(), pg.close()

The server runs as the `postgres` user when the tests run as root (subprocess's user= and
group=, which drop privileges in the child without a Python preexec hook, safe beside the
tests' threads), else as the calling user. TCP takes scram passwords only; the superuser has
no password and reaches the server over the unix socket in the temp dir alone. Every server
is stopped and its directory removed at interpreter exit, when the Tap watchdog fires, and,
through a small watcher process that waits for EOF on a pipe only this process holds, even
when the test process is killed with SIGKILL.
"""

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LOCALHOST = "127.0.0.1"
SUPERUSER = "postgres"
NULL = "\x1a"              # psql's rendering of NULL (-P null=...): never in our data
FIELD_SEP = "\x1f"
RECORD_SEP = "\x1e"
_NEEDED = ("initdb", "postgres", "psql")

# What the watcher runs: at EOF on stdin (its parent exited, however it died) it stops the
# postmaster named in DATADIR/postmaster.pid, fast then hard, and removes TOPDIR.
_WATCHER = r"""
import os, shutil, signal, sys, time
top, data = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read()
def pid():
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None
p = pid()
if p:
    try:
        os.kill(p, signal.SIGINT)
        for _ in range(100):
            os.kill(p, 0)
            time.sleep(0.1)
        os.killpg(p, signal.SIGKILL)
    except OSError:
        pass
shutil.rmtree(top, ignore_errors=True)
"""


class PgError(Exception):
    pass


def bindir():
    """The newest /usr/lib/postgresql/*/bin holding initdb, postgres and psql (PG_BINDIR
    overrides), or None."""
    env = os.environ.get("PG_BINDIR")
    cands = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                     key=_version_key, reverse=True)
    for d in cands:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in _NEEDED):
            return d
    return None


def _version_key(path):
    m = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/", path)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def skip_reason():
    """Why a real PostgreSQL server cannot be started here, or None."""
    if bindir() is None:
        return "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin " \
               "(scripts/setup.sh deps installs the postgresql package)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root and there is no %r user to run the server as" % SUPERUSER
    return None


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _clean_env(psql=False):
    """The environment for the server and psql: no PG* variable of the caller leaks in; psql
    sessions show times in UTC whatever the server's timezone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if psql:
        env["PGTZ"] = "UTC"
    return env


def sql_literal(s):
    return "'" + str(s).replace("'", "''") + "'"


class PgDatabase:
    """One database owned by its own login role (see PgServer.new_database)."""

    def __init__(self, server, name, role, password):
        self.server = server
        self.name = name
        self.role = role
        self.password = password
        self.host = LOCALHOST
        self.port = server.port
        self.uri = "postgresql://%s:%s@%s:%d/%s" % (role, password, LOCALHOST, server.port,
                                                     name)
        self.uri_nopass = "postgresql://%s@%s:%d/%s" % (role, LOCALHOST, server.port, name)

    def write_passfile(self, path):
        """A libpq password file for uri_nopass, mode 0600 as libpq requires."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("%s:%d:%s:%s:%s\n" % (self.host, self.port, self.name, self.role,
                                          self.password))
        return path

    def psql(self, sql, timeout=20):
        return self.server.psql(self.name, sql, timeout)

    def value(self, sql, timeout=20):
        return self.server.value(self.name, sql, timeout)

    def __repr__(self):
        return "<PgDatabase %s role %s on port %d>" % (self.name, self.role, self.port)


class PgServer:
    """One initdb'd cluster in a temp dir, served by one postmaster at a time."""

    def __init__(self, tap=None, start_timeout=60, timezone=None):
        self.tap = tap
        self.timezone = timezone
        self.start_timeout = start_timeout
        self.bindir = bindir()
        self.top = None
        self.port = None
        self.proc = None
        self.watcher = None
        self._lock = threading.Lock()
        self._closed = False
        self._dbs = 0

    # -- paths and identity
    @property
    def datadir(self):
        return os.path.join(self.top, "data")

    @property
    def sockdir(self):
        return os.path.join(self.top, "sock")

    @property
    def logpath(self):
        return os.path.join(self.top, "postgres.log")

    def _ids(self):
        """(uid, gid) the server runs as: postgres when we are root, else ourselves."""
        if os.geteuid() != 0:
            return None, None
        pw = pwd.getpwnam(SUPERUSER)
        return pw.pw_uid, pw.pw_gid

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _as_server_user(self):
        uid, gid = self._ids()
        if uid is None:
            return {}
        return {"user": uid, "group": gid, "extra_groups": []}

    # -- life
    def start(self):
        """initdb on first use, then start the postmaster and wait until it takes queries."""
        with self._lock:
            if self.top is None:
                self._init()
            if self.running():
                return self
            self._start_locked(retry_port=self.proc is None)
        return self

    def _init(self):
        reason = skip_reason()
        if reason:
            raise PgError(reason)
        self.top = tempfile.mkdtemp(prefix="csr-pg-")
        uid, gid = self._ids()
        if uid is not None:
            os.chown(self.top, uid, gid)
        os.chmod(self.top, 0o700)
        atexit.register(self.close)
        self._start_watcher()
        os.mkdir(self.sockdir, 0o700)
        if uid is not None:
            os.chown(self.sockdir, uid, gid)
        cmd = [self._bin("initdb"), "-D", self.datadir, "-U", SUPERUSER, "-E", "UTF8",
               "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                           env=_clean_env(), cwd=self.top, **self._as_server_user())
        if p.returncode != 0:
            raise PgError("initdb failed (%d): %s" % (p.returncode,
                                                      p.stderr.decode("utf-8", "replace")))
        self.port = _free_port()
        self._write_conf()

    def _start_watcher(self):
        """The SIGKILL safety net described at the top of the file."""
        self.watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, self.top, self.datadir],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=_clean_env())

    def _write_conf(self):
        """Our settings, appended last so they win; fsync and the rest stay as initdb set
        them."""
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# clicksend-relay tests (tests/lib/pgserver.py)\n"
                    "listen_addresses = '%s'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "password_encryption = 'scram-sha-256'\n"
                    "max_connections = 100\n"
                    "log_destination = 'stderr'\n"
                    "logging_collector = off\n"
                    "log_connections = off\n"
                    % (LOCALHOST, self.port, self.sockdir))
            if self.timezone:
                f.write("timezone = '%s'\n" % self.timezone)

    def _set_port(self, port):
        self.port = port
        path = os.path.join(self.datadir, "postgresql.conf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"(?m)^port = \d+$", "port = %d" % port, text))

    def _start_locked(self, retry_port):
        last = None
        for attempt in range(5 if retry_port else 1):
            if attempt:
                self._set_port(_free_port())
            self._spawn()
            try:
                self._wait_ready()
                return
            except PgError as e:
                last = e
                if not re.search(r"could not bind|in use", self.log(), re.I):
                    break
        raise last

    def _spawn(self):
        logf = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(
                [self._bin("postgres"), "-D", self.datadir], stdin=subprocess.DEVNULL,
                stdout=logf, stderr=logf, env=_clean_env(), cwd=self.top,
                start_new_session=True, **self._as_server_user())
        finally:
            logf.close()
        if self.tap is not None:
            self.tap.procs.append(self.proc)     # the Tap watchdog kills its process group

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PgError("postgres exited with %s while starting:\n%s"
                              % (self.proc.returncode, self.log()[-3000:]))
            p = subprocess.run(self._psql_cmd("postgres") + ["-c", "SELECT 1"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                               env=_clean_env(psql=True))
            if p.returncode == 0:
                return
            time.sleep(0.1)
        self._kill_group(signal.SIGKILL)
        raise PgError("postgres not ready within %s s:\n%s"
                      % (self.start_timeout, self.log()[-3000:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, mode="fast", timeout=30):
        """Stop the postmaster: "fast" (SIGINT: sessions cut, clean checkpoint), "smart"
        (SIGTERM) or "immediate" (SIGQUIT: no checkpoint, recovery at next start). Past
        timeout, SIGKILL to its whole process group. Idempotent."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        with self._lock:
            if not self.running():
                return
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
            # backends and auxiliaries leave with the postmaster; make sure of it
            self._kill_group(signal.SIGKILL)

    def _kill_group(self, sig):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def restart(self, mode="fast"):
        self.stop(mode)
        return self.start()

    def stop_for(self, seconds, background=False, mode="fast"):
        """An outage of about seconds. Blocking by default; with background=True the start
        happens in a thread, which is returned (join it before the next step)."""
        self.stop(mode)

        def later():
            time.sleep(seconds)
            self.start()
        if not background:
            later()
            return None
        t = threading.Thread(target=later, name="pg-outage", daemon=True)
        t.start()
        return t

    def close(self):
        """Stop and remove everything; also registered with atexit. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop("fast", timeout=20)
        except Exception:
            self._kill_group(signal.SIGKILL)
        if self.top:
            shutil.rmtree(self.top, ignore_errors=True)
        if self.watcher is not None:
            try:
                self.watcher.stdin.close()
                self.watcher.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                pass

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    # -- SQL
    def _psql_cmd(self, db):
        return [self._bin("psql"), "-X", "-q", "-A", "-t", "-F", FIELD_SEP, "-R", RECORD_SEP,
                "-P", "null=" + NULL, "-v", "ON_ERROR_STOP=1", "-h", self.sockdir,
                "-p", str(self.port), "-U", SUPERUSER, "-d", db]

    def psql(self, db, sql, timeout=20):
        """Runs sql in database db (a name or a PgDatabase) as the superuser; the rows of
        every statement that returns some, as tuples of str, None for NULL. PgError when
        psql fails."""
        name = db.name if isinstance(db, PgDatabase) else db
        p = subprocess.run(self._psql_cmd(name), input=sql.encode("utf-8"),
                           capture_output=True, timeout=timeout, env=_clean_env(psql=True))
        if p.returncode != 0:
            raise PgError("psql -d %s failed (%d) on %r: %s"
                          % (name, p.returncode, sql[:300],
                             p.stderr.decode("utf-8", "replace").strip()))
        return _parse_rows(p.stdout.decode("utf-8", "replace"))

    def value(self, db, sql, timeout=20):
        rows = self.psql(db, sql, timeout)
        return rows[0][0] if rows and rows[0] else None

    def new_database(self, name=None):
        """A new database owned by a new login role (not superuser, no CREATEDB or CREATEROLE)
        with a random password; a PgDatabase."""
        self._dbs += 1
        name = name or "db%d" % self._dbs
        if not re.match(r"^[a-z_][a-z0-9_]*$", name):
            raise PgError("database name %r: use [a-z_][a-z0-9_]*" % name)
        role = "%s_%s" % (name, secrets.token_hex(3))
        password = "pw" + secrets.token_hex(12)
        self.psql("postgres", "CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                  "PASSWORD %s;" % (role, sql_literal(password)))
        self.psql("postgres", "CREATE DATABASE %s OWNER %s;" % (name, role))
        return PgDatabase(self, name, role, password)


def _parse_rows(text):
    """psql -A -t output with our separators -> [tuple]. psql ends each statement's rows with
    one newline, so rows are exact (newlines in values included) when one statement returns
    rows; the others may be DDL or DML (-q keeps them silent)."""
    if text == "":
        return []
    if text.endswith("\n"):
        text = text[:-1]
    return [tuple(None if v == NULL else v for v in rec.split(FIELD_SEP))
            for rec in text.split(RECORD_SEP)]
