#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Ingest: every sample x every kind endpoint x every format ends up in the store exactly
as received (clicksend-relayd(8), clicksend-relay(1) STORE), duplicates, token, base_path,
restart, -t."""

import json
import os
import signal
import sys
import urllib.parse

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import (Tap, Daemon, DaemonError, run_relayd, tests_data, sql_quote, time_ok,  # noqa: E402
                     same_json, json_diff, sqlite_json, sqlite_text, render_config, free_port,
                     sqlite_only)

KINDS = {
    "sms.inbound": "/sms/inbound",
    "sms.receipt": "/sms/receipt",
    "fax.inbound": "/fax/inbound",
    "fax.receipt": "/fax/receipt",
    "voice.receipt": "/voice/receipt",
    "email.receipt": "/email/receipt",
}
FORMATS = ("get", "post", "json")
BASE = "/clicksend"
FORM = "application/x-www-form-urlencoded"

tap = Tap(timeout=90)


# --------------------------------------------------------------------------- samples

def form_pairs(text):
    return urllib.parse.parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True)


def load_samples():
    d = os.path.join(tests_data(), "webhooks")
    out = []
    for fn in sorted(os.listdir(d)):
        path = os.path.join(d, fn)
        stem, ext = os.path.splitext(fn)
        if ext not in (".json", ".form", ".query"):
            continue
        with open(path, "rb") as f:
            raw = f.read()
        kind = stem.replace("-", ".", 1)
        if ext == ".json":
            obj = json.loads(raw)
            fmt = "json"
        else:
            obj = dict(form_pairs(raw.decode("utf-8")))
            fmt = "get" if ext == ".query" else "post"
        out.append({"name": fn, "kind": kind, "format": fmt, "raw": raw, "obj": obj})
    return out


def as_form_value(v):
    """A JSON value as ClickSend would put it in a form: text."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def encode(obj, fmt):
    """(query_suffix, body, content_type, expected_payload) to send obj in format fmt."""
    if fmt == "json":
        return "", json.dumps(obj).encode(), "application/json", obj
    pairs = [(k, as_form_value(v)) for k, v in obj.items()]
    enc = urllib.parse.urlencode(pairs)
    expected = dict(pairs)
    if fmt == "get":
        return "?" + enc, None, None, expected
    return "", enc.encode(), FORM, expected


def send(d, path, obj, fmt, headers=None):
    q, body, ctype, expected = encode(obj, fmt)
    h = dict(headers or {})
    if fmt == "get":
        r = d.request("GET", path + q, headers=h)
    else:
        h.setdefault("Content-Type", ctype)
        r = d.request("POST", path, body, h)
    return r, expected


def column_text(v):
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def expected_columns(p):
    def pick(*names):
        for n in names:
            if n in p:
                return column_text(p[n])
        return None
    return {
        "message_id": pick("message_id"),
        "from_number": pick("from", "sms"),
        "to_number": pick("to", "originalsenderid"),
        "body": pick("body", "message"),
        "status_code": pick("status_code"),
        "status_text": pick("status_text"),
        "custom_string": pick("custom_string", "customstring"),
    }


def fetch(d, kind, message_id):
    return d.sql("SELECT *, json_valid(payload) AS payload_valid, json_type(payload) AS "
                 "payload_type FROM events WHERE kind = %s AND message_id = %s ORDER BY id"
                 % (sql_quote(kind), sql_quote(message_id)))


def row_problems(row, kind, fmt, payload, remote="127.0.0.1"):
    """Every way a stored row differs from what was sent."""
    p = []
    if row.get("kind") != kind:
        p.append("kind %r, want %r" % (row.get("kind"), kind))
    if row.get("format") != fmt:
        p.append("format %r, want %r" % (row.get("format"), fmt))
    if row.get("remote_addr") != remote:
        p.append("remote_addr %r, want %r" % (row.get("remote_addr"), remote))
    if not time_ok(row.get("received_at")):
        p.append("received_at %r is not a current YYYY-MM-DDTHH:MM:SS.sssZ UTC time"
                 % row.get("received_at"))
    cols = expected_columns(payload)
    for col, want in cols.items():
        got = row.get(col)
        if col == "to_number" and want is None and "email" in payload and got == payload["email"]:
            continue        # an email receipt's address as to_number is fine
        if got != want:
            p.append("column %s = %r, want %r" % (col, got, want))
    if row.get("payload_valid") != 1 or row.get("payload_type") != "object":
        p.append("payload is not a JSON object: %r" % (row.get("payload"),))
    else:
        got = json.loads(row["payload"])
        diff = json_diff(got, payload)
        if diff:
            p.append("payload differs from what was sent:")
            p.extend("  " + x for x in diff)
    if row.get("duplicates") not in (0, None):
        p.append("duplicates = %r on a first delivery" % row.get("duplicates"))
    return p


def check_stored(d, name, r, kind, fmt, payload, remote="127.0.0.1"):
    diag = ["answer: %r" % (r,)]
    rows = fetch(d, kind, payload.get("message_id"))
    if r.status != 200:
        diag.append("want 200")
    if len(rows) != 1:
        diag.append("%d rows for kind %s message_id %r, want 1" % (len(rows), kind,
                                                                  payload.get("message_id")))
        diag.extend(repr(x) for x in rows[:3])
    else:
        diag.extend(row_problems(rows[0], kind, fmt, payload, remote))
    return tap.ok(len(diag) == 1, name, diag)


# --------------------------------------------------------------------------- tests

def test_matrix():
    """Each sample to each kind endpoint in each format."""
    samples = load_samples()
    tap.ok(len(samples) >= 8, "at least 8 webhook samples in %s/webhooks" % tests_data(),
           [s["name"] for s in samples])
    with Daemon(tap, name="matrix") as d:
        n = 0
        for s in samples:
            for kind, kpath in KINDS.items():
                for fmt in FORMATS:
                    n += 1
                    obj = dict(s["obj"])
                    obj["message_id"] = "%s-m%d" % (obj.get("message_id", "X"), n)
                    r, expected = send(d, BASE + kpath, obj, fmt)
                    check_stored(d, "%s -> %s as %s: 200 and stored as received"
                                 % (s["name"], kpath, fmt), r, kind, fmt, expected)
        total = d.sql_value("SELECT count(*) FROM events")
        tap.check_eq(total, n, "matrix: one row per accepted request, nothing else")


def test_raw_samples():
    """The sample files byte for byte, each on its own endpoint in its own format."""
    with Daemon(tap, name="raw") as d:
        seen = {}
        for s in load_samples():
            path = BASE + KINDS[s["kind"]]
            if s["format"] == "get":
                r = d.request("GET", path + "?" + s["raw"].decode().strip())
            elif s["format"] == "post":
                r = d.request("POST", path, s["raw"].strip(), {"Content-Type": FORM})
            else:
                r = d.request("POST", path, s["raw"], {"Content-Type": "application/json"})
            mid = s["obj"].get("message_id")
            key = (s["kind"], mid)
            rows = fetch(d, s["kind"], mid)
            diag = ["answer: %r" % (r,)]
            if r.status != 200:
                diag.append("want 200")
            if len(rows) != 1:
                diag.append("%d rows, want 1" % len(rows))
            elif key in seen:
                # sms-inbound.query repeats sms-inbound.form's message: a duplicate
                if rows[0].get("duplicates") != 1:
                    diag.append("a repeat of an inbound message_id: duplicates = %r, want 1"
                                % rows[0].get("duplicates"))
                if rows[0].get("format") != seen[key]:
                    diag.append("the duplicate replaced the stored row (format %r)"
                                % rows[0].get("format"))
            else:
                expected = s["obj"]
                diag.extend(row_problems(rows[0], s["kind"], s["format"], expected))
            dup = key in seen
            seen.setdefault(key, s["format"])
            tap.ok(len(diag) == 1, "raw sample %s on %s: 200 and stored%s" % (
                s["name"], path, " as a duplicate of the earlier one" if dup else ""), diag)


def test_arrays_and_charsets(d):
    path = BASE + "/sms/receipt"
    objs = [{"message_id": "arr-%d" % i, "status_code": 200 + i, "status_text": "s%d" % i,
             "custom_string": None} for i in range(3)]
    r = d.request("POST", path, json.dumps(objs), {"Content-Type": "application/json"})
    diag = ["answer %r" % (r,)]
    good = r.status == 200
    for o in objs:
        rows = fetch(d, "sms.receipt", o["message_id"])
        if len(rows) != 1:
            good = False
            diag.append("%d rows for %s" % (len(rows), o["message_id"]))
            continue
        pr = row_problems(rows[0], "sms.receipt", "json", o)
        diag.extend(pr)
        good = good and not pr
    tap.ok(good, "JSON array of 3 objects: 200 and 3 rows, each its own payload", diag)

    many = [{"message_id": "arr-many-%d" % i, "status_code": "201"} for i in range(200)]
    r = d.request("POST", path, json.dumps(many), {"Content-Type": "application/json"})
    n = d.sql_value("SELECT count(*) FROM events WHERE message_id LIKE 'arr-many-%'")
    tap.ok(r.status == 200 and n == 200, "JSON array of 200 objects: 200 and 200 rows",
           ["answer %r, rows %r" % (r, n)])

    one = [{"message_id": "arr-single", "status_code": "201"}]
    r = d.request("POST", path, json.dumps(one), {"Content-Type": "application/json"})
    check_stored(d, "JSON array of one object: 200 and one row", r, "sms.receipt", "json", one[0])

    for ctype in ("application/json; charset=utf-8", "application/json;charset=UTF-8",
                  "application/json; charset=\"utf-8\""):
        o = {"message_id": "cs-%s" % ctype, "from": "+61400000001", "body": "charset json"}
        r = d.request("POST", BASE + "/sms/inbound", json.dumps(o), {"Content-Type": ctype})
        check_stored(d, "Content-Type %r accepted" % ctype, r, "sms.inbound", "json", o)

    for ctype in ("application/x-www-form-urlencoded; charset=UTF-8",
                  "application/x-www-form-urlencoded;charset=utf-8"):
        o = {"message_id": "cs-%s" % ctype, "from": "+61400000001", "body": "charset form"}
        r = d.request("POST", BASE + "/sms/inbound", urllib.parse.urlencode(o),
                      {"Content-Type": ctype})
        check_stored(d, "Content-Type %r accepted" % ctype, r, "sms.inbound", "post", o)


def test_unicode_and_escapes(d):
    text = "Caf\u00e9 \u2713 \U0001F600 & = + % ? #\nline2"
    for fmt in FORMATS:
        o = {"message_id": "uni-%s" % fmt, "from": "+61400000002", "to": "+61411111111",
             "body": text, "weird key&=": "v&=+"}
        r, expected = send(d, BASE + "/sms/inbound", o, fmt)
        check_stored(d, "UTF-8 and escaped & = + in keys and values survive (%s)" % fmt, r,
                     "sms.inbound", fmt, expected)
    # \u escapes including a surrogate pair decode to the same text
    body = '{"message_id":"uni-esc","body":"Caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/"}'
    r = d.request("POST", BASE + "/sms/inbound", body, {"Content-Type": "application/json"})
    check_stored(d, "JSON \\u escapes and surrogate pairs decoded", r, "sms.inbound", "json",
                 json.loads(body))
    # NUL bytes, invalid UTF-8 and repeated names are refused: test_input_exact.py
    # form: '+' is a space, %2B a plus; keys are decoded too
    raw = "message_id=plus-test&body=a+b%2Bc%20d&from=%2B61400000003&x%5By%5D=1"
    r = d.request("POST", BASE + "/sms/inbound", raw, {"Content-Type": FORM})
    check_stored(d, "form decoding: + is space, %2B is plus, keys percent-decoded", r,
                 "sms.inbound", "post", {"message_id": "plus-test", "body": "a b+c d",
                                         "from": "+61400000003", "x[y]": "1"})


def test_expect_continue(d):
    """curl sends Expect: 100-continue for bodies over 1 KiB."""
    import socket
    body = ("message_id=expect-1&body=" + "e" * 1500).encode()
    s = d.connect(timeout=10)
    ans = b""
    try:
        s.sendall(("POST %s/sms/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
                   "Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
                   % (BASE, FORM, len(body))).encode())
        s.settimeout(1.5)
        try:
            ans = s.recv(4096)          # "HTTP/1.1 100 Continue" (or nothing: send anyway)
        except socket.timeout:
            pass
        s.sendall(body)
        s.settimeout(10)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            ans += chunk
    except OSError as e:
        ans += ("[%s]" % e).encode()
    finally:
        s.close()
    rows = fetch(d, "sms.inbound", "expect-1")
    tap.ok(b"HTTP/1.1 200" in ans and len(rows) == 1,
           "POST with Expect: 100-continue is answered 200 and stored",
           ["answer %r" % ans[:300], "rows %d" % len(rows)])


def test_big_requests(d):
    fields = [("message_id", "many-fields")] + [("f%04d" % i, "v%d" % i) for i in range(900)]
    r = d.request("POST", BASE + "/sms/inbound", urllib.parse.urlencode(fields),
                  {"Content-Type": FORM})
    n = d.sql_value("SELECT (SELECT count(*) FROM json_each(payload)) FROM events "
                    "WHERE message_id = 'many-fields'")
    tap.ok(r.status == 200 and n == 901, "a form with 901 fields: 200, all in payload",
           ["answer %r, fields in payload %r" % (r, n)])
    o = {"message_id": "long-body", "body": "\u00e9" * 20000}
    r = d.request("POST", BASE + "/sms/inbound", json.dumps(o, ensure_ascii=False),
                  {"Content-Type": "application/json; charset=utf-8"})
    check_stored(d, "a 40 KB UTF-8 body is stored whole", r, "sms.inbound", "json", o)


def test_types_kept(d):
    o = {"message_id": "types-1", "status_code": 201, "error_code": 0, "digits": "6",
         "timestamp": 1489730505, "float": 1.5, "neg": -3, "t": True, "f": False,
         "custom_string": None, "empty": "", "unknown_field_xyz": "kept"}
    r = d.request("POST", BASE + "/voice/receipt", json.dumps(o),
                  {"Content-Type": "application/json"})
    check_stored(d, "JSON types kept: numbers, booleans, null, \"\", unknown fields", r,
                 "voice.receipt", "json", o)
    rows = d.sql("SELECT json_type(payload, '$.status_code') AS sc, "
                 "json_type(payload, '$.custom_string') AS cs, "
                 "json_type(payload, '$.digits') AS dg, json_type(payload, '$.t') AS t "
                 "FROM events WHERE message_id = 'types-1'")
    want = [{"sc": "integer", "cs": "null", "dg": "text", "t": "true"}]
    tap.check_eq(rows, want, "json_type() in sqlite3 sees integer, null, text, true")

    o = {"message_id": "types-big", "timestamp": 12345678901234567890, "n": 9007199254740993}
    r = d.request("POST", BASE + "/sms/inbound", json.dumps(o),
                  {"Content-Type": "application/json"})
    check_stored(d, "large JSON integers kept exactly as written", r, "sms.inbound", "json", o)

    o = {"message_id": "types-nested", "meta": {"a": [1, "two", None, {"b": False}]},
         "list": []}
    r = d.request("POST", BASE + "/fax/inbound", json.dumps(o),
                  {"Content-Type": "application/json"})
    check_stored(d, "nested JSON objects and arrays kept as fields", r, "fax.inbound", "json", o)

    # a form value that looks like a number stays a string
    r = d.request("POST", BASE + "/sms/receipt", "message_id=types-form&status_code=201&user_id=7",
                  {"Content-Type": FORM})
    check_stored(d, "form values are strings in payload", r, "sms.receipt", "post",
                 {"message_id": "types-form", "status_code": "201", "user_id": "7"})


def test_aliases(d):
    for fmt in FORMATS:
        o = {"message_id": "alias-%s" % fmt, "message": "old body", "sms": "+61400000010",
             "originalsenderid": "+61411111111", "customstring": "legacy-cs"}
        r, expected = send(d, BASE + "/sms/inbound", o, fmt)
        rows = fetch(d, "sms.inbound", o["message_id"])
        got = {k: rows[0].get(k) for k in ("body", "from_number", "to_number", "custom_string")} \
            if rows else None
        want = {"body": "old body", "from_number": "+61400000010",
                "to_number": "+61411111111", "custom_string": "legacy-cs"}
        tap.ok(r.status == 200 and got == want,
               "legacy aliases only (message, sms, originalsenderid, customstring) fill the "
               "columns (%s)" % fmt, ["answer %r" % (r,), "got  %r" % (got,), "want %r" % want])
        if rows:
            pd = json_diff(json.loads(rows[0]["payload"]), expected)
            tap.ok(not pd, "legacy alias fields kept in payload under their own names (%s)" % fmt,
                   pd)
    o = {"message_id": "alias-both", "body": "main body", "message": "alias body",
         "from": "+61400000011", "sms": "+61499999999", "to": "+61411111112",
         "originalsenderid": "+61488888888", "custom_string": "main-cs", "customstring": "old-cs"}
    r, expected = send(d, BASE + "/sms/inbound", o, "post")
    check_stored(d, "main fields win over legacy aliases", r, "sms.inbound", "post", expected)


def test_duplicates(d):
    ib = BASE + "/sms/inbound"
    o = {"message_id": "dup-in-1", "from": "+61400000020", "to": "+61411111111",
         "body": "first"}

    def state(kind, mid):
        return d.sql("SELECT id, duplicates, body, format FROM events WHERE kind = %s AND "
                     "message_id = %s" % (sql_quote(kind), sql_quote(mid)))

    r, _ = send(d, ib, o, "post")
    first = state("sms.inbound", "dup-in-1")
    tap.ok(r.status == 200 and len(first) == 1 and first[0]["duplicates"] == 0,
           "inbound: first delivery stored, duplicates 0", [repr(r), repr(first)])
    o2 = dict(o, body="retry with another body")
    r, _ = send(d, ib, o2, "json")
    st = state("sms.inbound", "dup-in-1")
    tap.ok(r.status == 200 and len(st) == 1 and st[0]["duplicates"] == 1
           and st[0]["body"] == "first" and st[0]["format"] == "post",
           "inbound: same kind+message_id again (other format) is 200, one row, duplicates 1, "
           "stored row unchanged", [repr(r), repr(st)])
    r, _ = send(d, ib, o, "get")
    st = state("sms.inbound", "dup-in-1")
    tap.ok(r.status == 200 and len(st) == 1 and st[0]["duplicates"] == 2,
           "inbound: third time is 200, still one row, duplicates 2", [repr(r), repr(st)])

    r, _ = send(d, BASE + "/fax/inbound", o, "post")
    st = d.sql("SELECT kind FROM events WHERE message_id = 'dup-in-1' ORDER BY kind")
    tap.ok(r.status == 200 and [x["kind"] for x in st] == ["fax.inbound", "sms.inbound"],
           "same message_id under another kind is not a duplicate", [repr(r), repr(st)])

    rp = BASE + "/sms/receipt"
    a = {"message_id": "dup-rc-1", "status_code": "200", "status_text": "sent"}
    b = {"message_id": "dup-rc-1", "status_code": "201", "status_text": "delivered"}
    r1, _ = send(d, rp, a, "post")
    r2, _ = send(d, rp, b, "post")
    st = d.sql("SELECT status_code, duplicates FROM events WHERE kind = 'sms.receipt' AND "
               "message_id = 'dup-rc-1' ORDER BY status_code")
    tap.ok(r1.status == 200 and r2.status == 200 and
           st == [{"status_code": "200", "duplicates": 0}, {"status_code": "201", "duplicates": 0}],
           "receipts: same message_id, different status_code -> two rows", [repr(st)])
    r3, _ = send(d, rp, b, "json")
    st = d.sql("SELECT status_code, duplicates FROM events WHERE kind = 'sms.receipt' AND "
               "message_id = 'dup-rc-1' ORDER BY status_code")
    tap.ok(r3.status == 200 and
           st == [{"status_code": "200", "duplicates": 0}, {"status_code": "201", "duplicates": 1}],
           "receipts: same message_id and status_code -> 200, duplicate counted on that row",
           [repr(r3), repr(st)])
    fx = {"message_id": "dup-fax-1", "status_code": "Completed"}
    send(d, BASE + "/fax/receipt", fx, "post")
    r, _ = send(d, BASE + "/fax/receipt", fx, "post")
    st = d.sql("SELECT duplicates FROM events WHERE message_id = 'dup-fax-1'")
    tap.ok(r.status == 200 and st == [{"duplicates": 1}],
           "fax receipt with status_code Completed twice -> one row, duplicates 1", [repr(st)])

    for kind, path in (("sms.inbound", ib), ("sms.receipt", rp)):
        o = {"from": "+61400000030", "body": "no id %s" % kind, "status_code": "201"}
        r1, _ = send(d, path, o, "post")
        r2, _ = send(d, path, o, "post")
        n = d.sql_value("SELECT count(*) FROM events WHERE kind = %s AND body = %s"
                        % (sql_quote(kind), sql_quote(o["body"])))
        tap.ok(r1.status == 200 and r2.status == 200 and n == 2,
               "%s without message_id twice -> two rows, never a duplicate" % kind,
               ["answers %d %d, rows %r" % (r1.status, r2.status, n)])

    arr = [{"message_id": "dup-arr", "body": "x"}, {"message_id": "dup-arr", "body": "x"}]
    r = d.request("POST", ib, json.dumps(arr), {"Content-Type": "application/json"})
    st = state("sms.inbound", "dup-arr")
    tap.ok(r.status == 200 and len(st) == 1 and st[0]["duplicates"] == 1,
           "a JSON array repeating one message: one row, duplicates 1", [repr(r), repr(st)])


def test_token():
    tok = "Zq8-s3cr3t-T0ken"
    with Daemon(tap, server={"token": tok}, name="token") as d:
        o = {"message_id": "tok-ok", "from": "+61400000040", "body": "with token"}
        r, exp = send(d, "%s/%s/sms/inbound" % (BASE, tok), o, "post")
        check_stored(d, "token: %s/<token>/sms/inbound accepted" % BASE, r, "sms.inbound",
                     "post", exp)
        o = {"message_id": "tok-ok-get", "status_code": "201"}
        r, exp = send(d, "%s/%s/sms/receipt" % (BASE, tok), o, "get")
        check_stored(d, "token: GET %s/<token>/sms/receipt accepted" % BASE, r, "sms.receipt",
                     "get", exp)
        bad = {
            "no token": BASE + "/sms/inbound",
            "wrong token": BASE + "/wrong/sms/inbound",
            "same length, last char differs": "%s/%s/sms/inbound" % (BASE, tok[:-1] + "m"),
            "token prefix": "%s/%s/sms/inbound" % (BASE, tok[:-3]),
            "token plus suffix": "%s/%sx/sms/inbound" % (BASE, tok),
            "token in other case": "%s/%s/sms/inbound" % (BASE, tok.lower()),
            "token twice": "%s/%s/%s/sms/inbound" % (BASE, tok, tok),
            "token after the kind": "%s/sms/inbound/%s" % (BASE, tok),
            "token without base_path": "/%s/sms/inbound" % tok,
        }
        i = 0
        for what, path in bad.items():
            i += 1
            o = {"message_id": "tok-bad-%d" % i, "body": "should not be stored"}
            for fmt in ("post", "json"):
                r, _ = send(d, path, o, fmt)
                n = d.sql_value("SELECT count(*) FROM events WHERE message_id = %s"
                                % sql_quote(o["message_id"]))
                tap.ok(r.status == 404 and n == 0, "token: %s (%s) -> 404, nothing stored"
                       % (what, fmt), ["path %s" % path, "answer %r" % (r,), "rows %r" % n])
        r = d.get("/healthz")
        tap.check_eq(r.status, 200, "token: /healthz needs no token")


def test_base_paths():
    for bp, good, bad in (
            ("/hooks/cs", "/hooks/cs/sms/inbound",
             ["/clicksend/sms/inbound", "/hooks/sms/inbound", "/sms/inbound",
              "/hooks/cs/cs/sms/inbound"]),
            ("/", "/sms/inbound", ["/clicksend/sms/inbound", "/x/sms/inbound"])):
        with Daemon(tap, server={"base_path": bp}, name="base%s" % bp.replace("/", "_")) as d:
            o = {"message_id": "bp-%s" % bp, "body": "base path"}
            r, exp = send(d, good, o, "post")
            check_stored(d, "base_path %s: %s accepted" % (bp, good), r, "sms.inbound", "post",
                         exp)
            for i, p in enumerate(bad):
                o = {"message_id": "bp-bad-%s-%d" % (bp, i)}
                r, _ = send(d, p, o, "post")
                n = d.sql_value("SELECT count(*) FROM events WHERE message_id = %s"
                                % sql_quote(o["message_id"]))
                tap.ok(r.status == 404 and n == 0, "base_path %s: %s -> 404" % (bp, p),
                       ["answer %r" % (r,), "rows %r" % n])


def test_listeners():
    """listen takes several addresses: HOST:PORT, [V6]:PORT and unix:/path
    (clicksend-relay.conf(5)); remote_addr is the client address without port."""
    import socket
    d = Daemon(tap, start=False, name="listeners")
    p6 = free_port()
    sock = os.path.join(d.dir, "http.sock")
    try:
        s6 = socket.socket(socket.AF_INET6)
        s6.bind(("::1", 0))
        s6.close()
        have6 = True
    except OSError:
        have6 = False
    d.server["listen"] = "127.0.0.1:%d%s unix:%s" % (d.port, " [::1]:%d" % p6 if have6 else "",
                                                       sock)
    d.write_config()
    try:
        d.start()
    except DaemonError as e:
        tap.ok(False, "a daemon with IPv4, IPv6 and unix listeners starts", str(e))
        return
    try:
        if have6:
            import http.client
            c = http.client.HTTPConnection("::1", p6, timeout=10)
            body = "message_id=v6-1&body=over+ipv6"
            c.request("POST", BASE + "/sms/inbound", body,
                      {"Content-Type": FORM, "Content-Length": str(len(body))})
            r = c.getresponse()
            r.read()
            c.close()
            rows = fetch(d, "sms.inbound", "v6-1")
            tap.ok(r.status == 200 and len(rows) == 1 and rows[0]["remote_addr"] == "::1",
                   "listen [::1]:PORT: accepted, remote_addr ::1 (no brackets, no port)",
                   ["status %r" % r.status, repr(rows)])
        else:
            tap.skip("listen [::1]:PORT", "no IPv6 loopback here")
        ok = os.path.exists(sock)
        ans = b""
        if ok:
            u = socket.socket(socket.AF_UNIX)
            u.settimeout(10)
            try:
                u.connect(sock)
                body = b"message_id=unix-1&body=over+unix"
                u.sendall(b"POST " + (BASE + "/sms/inbound").encode() + b" HTTP/1.1\r\n"
                          b"Host: localhost\r\nContent-Type: " + FORM.encode() +
                          b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) +
                          body)
                while True:
                    chunk = u.recv(4096)
                    if not chunk:
                        break
                    ans += chunk
            except OSError as e:
                ans += ("[%s]" % e).encode()
            finally:
                u.close()
        rows = fetch(d, "sms.inbound", "unix-1")
        tap.ok(ans.startswith(b"HTTP/1.1 200") and len(rows) == 1,
               "listen unix:/path: webhook accepted and stored",
               ["socket exists: %r" % ok, "answer %r" % ans[:200], repr(rows)])
        r = d.get("/healthz")
        tap.check_eq(r.status, 200, "IPv4 listener still answers next to the others")
    finally:
        d.close()


def test_restart():
    d = Daemon(tap, name="restart")
    try:
        a = {"message_id": "persist-1", "from": "+61400000050", "to": "+61411111111",
             "body": "survive"}
        b = {"message_id": "persist-r", "status_code": "201"}
        send(d, BASE + "/sms/inbound", a, "post")
        send(d, BASE + "/sms/receipt", b, "json")
        before = d.sql("SELECT id, kind, message_id, payload FROM events ORDER BY id")
        rc = d.stop(signal.SIGTERM)
        tap.check_eq(rc, 0, "SIGTERM: exit status 0")
        d.start()
        after = d.sql("SELECT id, kind, message_id, payload FROM events ORDER BY id")
        tap.ok(len(before) == 2 and before == after,
               "events persisted across a restart on the same store",
               ["before %r" % before, "after  %r" % after])
        r, _ = send(d, BASE + "/sms/inbound", a, "post")
        st = d.sql("SELECT duplicates FROM events WHERE message_id = 'persist-1'")
        tap.ok(r.status == 200 and st == [{"duplicates": 1}],
               "duplicate detection survives a restart", [repr(r), repr(st)])
        r, exp = send(d, BASE + "/sms/inbound", {"message_id": "persist-2", "body": "new"}, "get")
        check_stored(d, "new events stored after a restart", r, "sms.inbound", "get", exp)
        ids = [x["id"] for x in d.sql("SELECT id FROM events ORDER BY id")]
        tap.ok(len(ids) == 3 and ids == sorted(set(ids)), "ids stay unique and increasing",
               repr(ids))
        n_in = d.sql_value("SELECT count(*) FROM inbound_sms")
        n_rc = d.sql_value("SELECT count(*) FROM receipts")
        tap.ok(n_in == 2 and n_rc == 1, "views inbound_sms (2) and receipts (1) list the events",
               ["inbound_sms %r, receipts %r" % (n_in, n_rc)])
        rc = d.stop(signal.SIGTERM)
        tap.check_eq(rc, 0, "SIGTERM after restart: exit status 0")
    finally:
        d.close()


@sqlite_only("PRAGMA user_version and journal_mode, sqlite_master, EXPLAIN QUERY PLAN")
def test_check_config():
    tmp = tap.mkdtemp()
    db = os.path.join(tmp, "store", "events.db")
    os.mkdir(os.path.dirname(db))
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write(render_config({"server": {"listen": "127.0.0.1:%d" % free_port(),
                                          "base_path": "/clicksend"},
                               "store": {"path": db}}))
    rc, out, err = run_relayd(["-c", conf, "-t"])
    tap.check_eq(rc, 0, "-t on a good config exits 0", err[-2000:])
    if not tap.ok(os.path.exists(db), "-t creates the store file", err[-2000:]):
        return
    uv = sqlite_json(db, "PRAGMA user_version")
    uv = uv[0]["user_version"] if uv else None
    tap.ok(isinstance(uv, int) and uv >= 1, "PRAGMA user_version >= 1", "got %r" % uv)
    jm = sqlite_json(db, "PRAGMA journal_mode")
    tap.check_eq(jm[0].get("journal_mode") if jm else None, "wal", "journal_mode is wal")
    objs = {(r["type"], r["name"]) for r in
            sqlite_json(db, "SELECT type, name FROM sqlite_master")}
    for t in ("events", "deliveries", "provisioned_rules"):
        tap.ok(("table", t) in objs, "table %s exists" % t, repr(sorted(objs)))
    for v in ("inbound_sms", "receipts", "pending_deliveries", "dead_deliveries"):
        ok = ("view", v) in objs
        if ok:
            try:
                sqlite_json(db, "SELECT * FROM %s LIMIT 1" % v)
            except DaemonError as e:
                ok = False
                objs.add(("error", str(e)))
        tap.ok(ok, "view %s exists and can be queried" % v, repr(sorted(objs)))
    want_cols = {
        "events": ["id", "kind", "format", "received_at", "remote_addr", "message_id",
                   "from_number", "to_number", "body", "status_code", "status_text",
                   "custom_string", "payload", "dedupe_key", "duplicates"],
        "deliveries": ["id", "event_id", "relay", "state", "attempts", "next_attempt_at",
                       "last_attempt_at", "last_result", "done_at"],
        "provisioned_rules": ["kind", "rule_id", "rule_name", "action_address", "webhook_type",
                              "synced_at", "last_error"],
    }
    for t, cols in want_cols.items():
        got = [r["name"] for r in sqlite_json(db, "PRAGMA table_info(%s)" % t)]
        missing = [c for c in cols if c not in got]
        tap.ok(not missing, "table %s has the contract columns" % t,
               ["missing %r" % missing, "has %r" % got])
    plans = {}
    for what, q in (("events by message_id", "SELECT * FROM events WHERE message_id = 'x'"),
                    ("events of a kind", "SELECT * FROM events WHERE kind = 'sms.inbound' "
                     "ORDER BY id DESC LIMIT 10"),
                    ("due deliveries", "SELECT * FROM deliveries WHERE state = 'pending' AND "
                     "next_attempt_at <= '2030-01-01T00:00:00.000Z'")):
        try:
            plan = " | ".join(x.strip() for x in
                              sqlite_text(db, "EXPLAIN QUERY PLAN " + q).splitlines())
        except DaemonError as e:
            plan = str(e)
        plans[what] = plan
        tap.ok("USING" in plan and "INDEX" in plan, "an index serves %s" % what, plan)
    rc2, _, err2 = run_relayd(["-c", conf, "-t"])
    uv2 = sqlite_json(db, "PRAGMA user_version")[0]["user_version"]
    tap.ok(rc2 == 0 and uv2 == uv, "-t again on the migrated store: exit 0, version unchanged",
           ["exit %r, user_version %r -> %r" % (rc2, uv, uv2), err2[-1500:]])
    n = sqlite_json(db, "SELECT count(*) AS n FROM events")[0]["n"]
    tap.check_eq(n, 0, "-t stores no events")


def main():
    tap.run(test_check_config)
    tap.run(test_matrix)
    tap.run(test_raw_samples)
    shared = None
    try:
        shared = Daemon(tap, name="shared")
    except DaemonError as e:
        tap.ok(False, "shared daemon starts", str(e))
    if shared:
        for t in (test_arrays_and_charsets, test_unicode_and_escapes, test_expect_continue,
                  test_big_requests, test_types_kept,
                  test_aliases, test_duplicates):
            tap.run(t, shared)
        tap.ok(shared.alive(), "shared daemon still running", shared.log()[-2000:])
        shared.close()
    tap.run(test_token)
    tap.run(test_base_paths)
    tap.run(test_restart)
    tap.run(test_listeners)
    tap.done()


if __name__ == "__main__":
    main()
