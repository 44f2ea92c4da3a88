# SPDX-License-Identifier: ISC
"""SIGHUP details: -d stays in force over a config that says level = info, and pending
deliveries of a relay that the new config dropped are reported, not lost."""

import signal
import time

from harness import Tap, Daemon

tap = Tap(timeout=60, name="reload")
FORM = "application/x-www-form-urlencoded"


def test_reload():
    relay = {"relay:gone": {"url": "http://127.0.0.1:9/closed", "retry_schedule": "1h"}}
    with Daemon(tap, sections=dict(relay, log={"level": "info"}), name="reload") as d:
        tap.check_eq(d.post("/clicksend/sms/inbound", b"message_id=r1&body=x", FORM).status,
                     200, "event stored")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and d.sql_value(
                "SELECT attempts FROM deliveries") != 1:
            time.sleep(0.1)
        tap.check_eq(d.sql_value("SELECT state FROM deliveries"), "pending",
                     "the delivery waits for its retry")
        d.reconfigure(sections={"relay:gone": None})
        d.signal(signal.SIGHUP)
        ok = d.wait_log("1 pending delivery for a relay that is not configured", 5)
        tap.ok(ok, "after the reload the orphaned pending delivery is reported", d.log()[-1500:])
        mark = len(d.log())
        d.post("/clicksend/sms/inbound", b"message_id=r2&body=x", FORM)
        time.sleep(0.3)
        tap.ok("[debug]" in d.log()[mark:], "-d keeps debug lines after a reload",
               d.log()[mark:])
        tap.check_eq(d.sql_value("SELECT count(*) FROM deliveries"), 1,
                     "no delivery for the dropped relay is created any more")


tap.run(test_reload)
tap.done()
