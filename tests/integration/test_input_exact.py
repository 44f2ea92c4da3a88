#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Input exactness (clicksend-relayd(8), WEBHOOKS): a NUL, invalid UTF-8, an unpaired
surrogate escape or a repeated name is refused with 400 and nothing is stored, so no field
name, column or dedupe key is ever cut or merged; charsets other than UTF-8 get 415."""

import json
import os
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.environ.get("TESTS_LIB") or os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Daemon, plain_short, sql_quote  # noqa: E402

BASE = "/clicksend"
IN = BASE + "/sms/inbound"
FORM = "application/x-www-form-urlencoded"
JSONT = "application/json"

tap = Tap(timeout=60)


def rows(d, where):
    return d.sql("SELECT id, message_id, body, payload, dedupe_key, duplicates FROM events "
                 "WHERE " + where + " ORDER BY id")


def count(d):
    return d.sql_value("SELECT count(*) FROM events")


def refused(d, name, r, code, reason, before):
    """The answer is CODE with REASON in its one-line body, and nothing new is stored."""
    after = count(d)
    diag = ["answer %r" % (r,), "events %r -> %r" % (before, after)] + plain_short(r)
    return tap.ok(r.status == code and reason in r.body and after == before and
                  not plain_short(r), name, diag)


def test_nul_then_plain(d):
    """message_id=dup%00x must not make a later message_id=dup a duplicate."""
    sends = (
        ("post", lambda mid: d.request("POST", IN, "message_id=" + mid + "&body=b",
                                       {"Content-Type": FORM})),
        ("get", lambda mid: d.request("GET", IN + "?message_id=" + mid + "&body=b")),
        ("json", lambda mid: d.request("POST", IN, '{"message_id":"%s","body":"b"}'
                                       % mid.replace("%00", "\\u0000"),
                                       {"Content-Type": JSONT})),
    )
    for fmt, send in sends:
        mid = "nul-%s" % fmt
        before = count(d)
        r = send(mid + "%00x")
        if fmt == "json":
            refused(d, "json: \\u0000 in message_id refused with 400", r, 400,
                    "holds \\u0000 (a NUL character)", before)
        else:
            refused(d, "%s: %%00 in message_id refused with 400" % fmt, r, 400,
                    "field 1: value holds a NUL byte", before)
        r = send(mid)
        got = rows(d, "message_id LIKE %s" % sql_quote(mid + "%"))
        tap.ok(r.status == 200 and len(got) == 1 and got[0]["message_id"] == mid and
               got[0]["duplicates"] == 0 and
               got[0]["dedupe_key"] == "sms.inbound|" + mid and
               json.loads(got[0]["payload"]).get("message_id") == mid,
               "%s: then message_id=%s is stored as a new event, not a duplicate" % (fmt, mid),
               ["answer %r" % (r,), repr(got)])


def test_nul_in_names(d):
    before = count(d)
    r = d.request("POST", IN, "message_id=nul-name&k%00x=v", {"Content-Type": FORM})
    refused(d, "form: %00 in a field name refused", r, 400, "field 2: name holds a NUL byte",
            before)
    r = d.request("POST", IN, b"message_id=nul-raw&body=a\x00b", {"Content-Type": FORM})
    refused(d, "form: a raw NUL byte in a value refused", r, 400,
            "field 2: value holds a NUL byte", before)
    r = d.request("POST", IN, '{"message_id":"nul-key","k\\u0000x":"v"}',
                  {"Content-Type": JSONT})
    refused(d, "json: \\u0000 in a key refused", r, 400, "holds \\u0000", before)


def test_invalid_utf8(d):
    before = count(d)
    r = d.request("POST", IN, "message_id=utf-1&x%FE=1&x%FF=2", {"Content-Type": FORM})
    refused(d, "form: names x%FE and x%FF (invalid UTF-8) refused, not merged into one key",
            r, 400, "field 2: name is not valid UTF-8", before)
    r = d.request("GET", IN + "?message_id=utf-2&body=caf%E9")
    refused(d, "get: a Latin-1 byte in a value refused", r, 400,
            "field 2: value is not valid UTF-8", before)
    r = d.request("POST", IN, b'{"message_id":"utf-3","body":"caf\xe9"}',
                  {"Content-Type": JSONT})
    refused(d, "json: raw invalid UTF-8 refused", r, 400, "invalid JSON", before)
    r = d.request("POST", IN, b'{"message_id":"utf-3b","body":"\xc0\x80","\xed\xa0\x80":1}',
                  {"Content-Type": JSONT})
    refused(d, "json: an overlong form and a UTF-8 surrogate (which yajl passes) refused", r,
            400, "JSON string at byte 31 is not valid UTF-8", before)
    r = d.request("POST", IN, '{"message_id":"utf-4","\\ud800":1,"\\ud801":2}',
                  {"Content-Type": JSONT})
    refused(d, "json: keys with unpaired surrogates refused, not merged into one key", r, 400,
            "unpaired high surrogate", before)
    r = d.request("POST", IN, '{"message_id":"utf-5","body":"\\udc00"}',
                  {"Content-Type": JSONT})
    refused(d, "json: an unpaired low surrogate refused", r, 400, "unpaired low surrogate",
            before)
    r = d.request("POST", IN, '{"message_id":"utf-6","\\ud83d\\ude00":"\\u00e9"}',
                  {"Content-Type": JSONT})
    got = rows(d, "message_id = 'utf-6'")
    tap.ok(r.status == 200 and len(got) == 1 and
           json.loads(got[0]["payload"]).get("\U0001F600") == "\u00e9",
           "json: a surrogate pair is stored as the character it encodes", [repr(r), repr(got)])


def test_repeated_names(d):
    before = count(d)
    r = d.request("POST", IN, "message_id=rep-1&body=a&message_id=rep-2", {"Content-Type": FORM})
    refused(d, "form: a repeated name refused", r, 400, "field 3: name repeats an earlier field",
            before)
    r = d.request("GET", IN + "?message_id=rep-3&message_id=rep-3")
    refused(d, "get: a repeated name refused (same value too)", r, 400,
            "field 2: name repeats an earlier field", before)
    r = d.request("POST", IN, '[{"message_id":"rep-4"},{"message_id":"rep-5","message_id":"x"}]',
                  {"Content-Type": JSONT})
    refused(d, "json: a repeated key refused, the whole request (no event of it stored)", r,
            400, "JSON object 2: key 2 repeats an earlier key", before)


def test_charsets(d):
    for ctype in ("application/x-www-form-urlencoded; charset=iso-8859-1",
                  "application/json; charset=windows-1252", "application/json; charset=\"utf-16\""):
        before = count(d)
        body = "message_id=cs-bad&body=x" if ctype.startswith(FORM) else \
            '{"message_id":"cs-bad","body":"x"}'
        r = d.request("POST", IN, body, {"Content-Type": ctype})
        refused(d, "Content-Type %r refused with 415" % ctype, r, 415,
                "unsupported charset (only utf-8)", before)
    r = d.request("POST", IN, "message_id=cs-ascii&body=x",
                  {"Content-Type": FORM + "; charset=US-ASCII"})
    got = rows(d, "message_id = 'cs-ascii'")
    tap.ok(r.status == 200 and len(got) == 1, "charset=US-ASCII (a subset of UTF-8) accepted",
           [repr(r), repr(got)])


def main():
    d = None
    try:
        d = Daemon(tap, name="exact")
    except Exception as e:
        tap.ok(False, "daemon starts", str(e))
    if d:
        for t in (test_nul_then_plain, test_nul_in_names, test_invalid_utf8,
                  test_repeated_names, test_charsets):
            tap.run(t, d)
        tap.ok(d.alive(), "daemon still running", d.log()[-2000:])
        d.close()
    tap.done()


if __name__ == "__main__":
    main()
