# SPDX-License-Identifier: ISC
"""An operator's replay or retry while that delivery's attempt is still running wins: the
attempt's outcome does not overwrite the row, and the delivery runs again."""

import os
import subprocess
import time

from harness import Tap, Daemon

tap = Tap(timeout=60, name="replay-race")
FORM = "application/x-www-form-urlencoded"


def tool(conf, *args):
    path = os.environ.get("RELAY_TOOL") or "clicksend-relay"
    p = subprocess.run([path, "-c", conf] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def runs(marks):
    try:
        with open(marks) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_replay_during_attempt():
    d = Daemon(tap, start=False, name="race")
    marks = os.path.join(d.dir, "runs")
    script = os.path.join(d.dir, "slow.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"$CLICKSEND_EVENT_ID\" >> %s\nsleep 1.5\nexit 0\n" % marks)
    os.chmod(script, 0o755)
    d.reconfigure(sections={"relay:slow": {"exec": script}})
    d.start()
    try:
        tap.check_eq(d.post("/clicksend/sms/inbound", b"message_id=race-1&body=x", FORM).status,
                     200, "event stored")
        tap.ok(wait(lambda: len(runs(marks)) == 1, 5), "the first attempt started")
        eid = d.sql_value("SELECT id FROM events WHERE message_id = 'race-1'")
        rc, out, err = tool(d.conf_path, "replay", str(eid))
        tap.check_eq(rc, 0, "replay while the attempt runs", [out, err])
        tap.ok(wait(lambda: len(runs(marks)) == 2, 8), "the replayed delivery runs again",
               [repr(runs(marks)), d.log()[-1500:]])
        ok = wait(lambda: d.sql_value("SELECT state FROM deliveries") == "done", 8)
        row = d.sql("SELECT state, attempts FROM deliveries")
        tap.ok(ok and row[0]["attempts"] == 1, "the row ends done after the replayed attempt",
               repr(row))
        tap.ok("retried or replayed during the attempt" in d.log(),
               "the overtaken outcome is logged", d.log()[-1500:])
    finally:
        d.close()


tap.run(test_replay_during_attempt)
tap.done()
