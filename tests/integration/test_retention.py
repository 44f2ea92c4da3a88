# SPDX-License-Identifier: ISC
"""[store] retention (clicksend-relay.conf(5)): events older than the retention whose deliveries are
all done are deleted with their deliveries; an event with a pending or dead delivery stays."""

import time

from harness import Tap, Daemon

tap = Tap(timeout=60, name="retention")
FORM = "application/x-www-form-urlencoded"


def wait_for(d, query, want, timeout=10):
    """Polls query (SQL for its first value, or a function of d) until it gives want."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = query(d) if callable(query) else d.sql_value(query)
        if got == want:
            return got
        time.sleep(0.1)
    return got


def kept(d):
    """The message_ids still stored, in id order, comma-separated (portable SQL)."""
    return ",".join(r["message_id"] for r in d.sql("SELECT message_id FROM events ORDER BY id"))


def test_retention():
    relays = {
        "relay:ok": {"exec": "/bin/true", "events": "sms.inbound"},
        "relay:fails": {"exec": "/bin/false", "events": "sms.receipt"},
    }
    with Daemon(tap, store={"retention": "1s"}, sections=relays, name="retention") as d:
        for body in (b"message_id=keep-none&body=x", b"message_id=done-1&body=y"):
            tap.check_eq(d.post("/clicksend/sms/inbound", body, FORM).status, 200,
                         "inbound event stored")
        tap.check_eq(d.post("/clicksend/sms/receipt", b"message_id=dead-1&status_code=201",
                            FORM).status, 200, "receipt stored")
        tap.check_eq(d.post("/clicksend/fax/inbound", b"message_id=fax-1", FORM).status, 200,
                     "an event no relay takes is stored")
        tap.check_eq(wait_for(d, "SELECT count(*) FROM deliveries WHERE state = 'done'", 2), 2,
                     "the inbound deliveries are done")
        tap.check_eq(wait_for(d, "SELECT count(*) FROM deliveries WHERE state = 'dead'", 1), 1,
                     "the receipt's delivery is dead (exit 1)")
        time.sleep(1.3)
        d.restart()      # retention runs on the first tick after a start
        left = wait_for(d, kept, "dead-1")
        tap.check_eq(left, "dead-1", "only the event with a dead delivery is kept")
        tap.check_eq(d.sql_value("SELECT count(*) FROM deliveries"), 1,
                     "the deleted events' deliveries are gone too")
        tap.ok("retention: deleted 3 event(s)" in d.log(), "the deletion is logged", d.log())


def test_retention_off_keeps_everything():
    with Daemon(tap, store={"retention": "0"}, name="keep") as d:
        d.post("/clicksend/sms/inbound", b"message_id=old-1&body=x", FORM)
        time.sleep(1.2)
        d.restart()
        time.sleep(1.2)
        tap.check_eq(d.sql_value("SELECT count(*) FROM events"), 1, "retention = 0 keeps events")


tap.run(test_retention)
tap.run(test_retention_off_keeps_everything)
tap.done()
