# SPDX-License-Identifier: ISC
"""The README's SQL examples run against a store the daemon wrote, so the documentation
stays in step with the schema."""

import os
import re
import subprocess

from harness import Tap, Daemon

tap = Tap(timeout=60, name="docs")
tap.sqlite_only_file("the README's sqlite3 -readonly queries on an SQLite store")
FORM = "application/x-www-form-urlencoded"
TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def readme_queries():
    text = open(os.path.join(TOP, "README.md")).read()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    blocks += re.findall(r"sqlite3 var/events\.db '([^']+)'", text)
    return blocks


def test_readme_sql():
    queries = readme_queries()
    tap.ok(len(queries) >= 4, "the README has its SQL examples", repr(queries))
    with Daemon(tap, name="docs") as d:
        d.post("/clicksend/sms/inbound", b"message_id=D1&from=%2B61400000000&body=hi", FORM)
        d.post("/clicksend/sms/receipt",
               b"message_id=493FFB41-9733-4641-985F-BD79A067B58F&status_code=201&status=Delivered",
               FORM)
        for q in queries:
            p = subprocess.run(["sqlite3", "-readonly", d.db, q], capture_output=True,
                               timeout=10)
            first = " ".join(q.split())[:60]
            tap.ok(p.returncode == 0 and not p.stderr,
                   "README query runs: %s" % first, p.stderr.decode(errors="replace"))


tap.run(test_readme_sql)
tap.done()
