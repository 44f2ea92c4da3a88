#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The second pass of a store-facing test file against a PostgreSQL store. Each file in
pg/ is a symbolic link to this one: run as pg/test_X.py, it sets CSR_STORE=postgresql (see
pgstore.py) and runs test_X.py of this directory; "1..0 # SKIP" without the PostgreSQL
server binaries, or with CSR_PG_RERUN=no (scripts/setup.sh sets it for the sanitizer build
and distcheck, which run the PostgreSQL tests proper, not this second pass)."""

import os
import sys

if os.environ.get("CSR_PG_RERUN") == "no":
    print("1..0 # SKIP CSR_PG_RERUN=no: the second pass on PostgreSQL is off in this run")
    sys.exit(0)
os.environ["CSR_STORE"] = "postgresql"
# __file__ is the link's own path (pg/test_X.py): its namesake is one directory up
link = os.path.abspath(__file__)
test = os.path.join(os.path.dirname(os.path.dirname(link)), os.path.basename(link))
if os.path.basename(link) == "pgrerun.py":
    sys.exit("pgrerun.py: run it through a link in tests/integration/pg/")
os.execv(sys.executable, [sys.executable, "-B", test] + sys.argv[1:])
