#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The test file of the same name one directory up, against a PostgreSQL store: it sets
CSR_STORE=postgresql (see ../pgstore.py) and runs that file; "1..0 # SKIP" without the
PostgreSQL server binaries, or with CSR_PG_RERUN=no (scripts/setup.sh sets it for the
sanitizer build and distcheck, which run the PostgreSQL tests proper, not this second pass).
Every file in this directory is this same wrapper."""

import os
import sys

if os.environ.get("CSR_PG_RERUN") == "no":
    print("1..0 # SKIP CSR_PG_RERUN=no: the second pass on PostgreSQL is off in this run")
    sys.exit(0)
os.environ["CSR_STORE"] = "postgresql"
here = os.path.dirname(os.path.abspath(__file__))
test = os.path.join(os.path.dirname(here), os.path.basename(__file__))
os.execv(sys.executable, [sys.executable, "-B", test] + sys.argv[1:])
