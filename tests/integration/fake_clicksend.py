#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A fake of ClickSend REST v3 for the provisioning tests (python3 stdlib only).

Library use:

  fake = FakeClickSend(username="csr-user", api_key="KEY-s3cr3t-XYZ").start()
  fake.url                         "http://127.0.0.1:PORT/v3" (api_url for the daemon)
  ...
  fake.stop()                      (also a context manager)

Standalone, for poking at it with curl:

  python3 fake_clicksend.py --port 8099 [--user U] [--key K] [--seed-foreign N] \
          [--alt-ids] [--strings] [--receipt-webhook-type-null] [-v]

What it serves below /v3 (HTTP Basic auth on every call; every answer in ClickSend's envelope
{"http_code","response_code","response_msg","data"}):

  GET  /account                              cheap credential check
  GET|POST /automations/<k>                  list (page, limit 15..100, default 15, q) / create
  GET|PUT|DELETE /automations/<k>/<id>       one rule
       <k> = sms/inbound sms/receipts voice/receipts email/receipts fax/receipts fax/inbound
  POST /sms/receipts /sms/inbound /voice/receipts /fax/receipts /email/receipts
       {"url": "..."} (+ "webhook_type" for sms/inbound): answers data = a fake item with a fresh
       message_id and, shortly after, really pushes that item to url from a thread
       (form POST for receipts; post/get/json for sms inbound); url "poll" queues it instead
  GET  /sms/inbound /sms/receipts /mms/receipts /voice/receipts /fax/receipts
       the poll queue of that list: its unread items, paginated (oldest first)
  PUT  /sms/inbound-read/{message_id}        marks that inbound SMS read (404: no such item)
  PUT  /sms/inbound-read /sms/receipts-read /mms/receipts-read /voice/receipts-read
       /fax/receipts-read   {"date_before": unix}: marks the items with a timestamp strictly
       before it read; without date_before every item of the list (as the swagger says)

Runtime controls (thread safe):

  set_auth(user, key)              credentials the fake accepts from now on
  fail_next(status, count=1, method=None, path=None, retry_after=None)
                                   the next count matching calls get that status in the
                                   envelope (429, 500, 503, 403, ...); status 0 drops the
                                   connection without an answer; path matches as a prefix of
                                   the path below /v3 (e.g. "/automations/sms")
  stall(seconds)                   calls arriving in the next N s are held (not answered) until
                                   the window ends or unstall() is called, then served normally
  unstall()                        releases held calls at once and ends the window
  set_options(alt_ids=, numbers_as_strings=, receipt_webhook_type_null=, push_delay=,
              push_enabled=, receipt_push_format=, page_url_style=)
        alt_ids                    sms inbound *lists* name the id sms_inbound_rule_id
        numbers_as_strings         ids, enabled, match_type, message_search_type as strings
        receipt_webhook_type_null  rules of kinds without a webhook type carry "webhook_type": null
        push_enabled               False: test pushes are answered but never delivered
  reset()                          forget rules, log, faults, pushes (keeps credentials)

Request log (each entry a dict: method, path (with /v3, no query), query {name: value},
body (parsed JSON, or form dict, or None), raw (str), content_type, user (Basic user name
or None), auth_ok, status (answer status, None while held), client_gone (the caller hung up
before the answer was written), t (time.monotonic() on arrival), headers):

  requests(method=None, path=None, prefix=None, since=0)   filtered copies
  mark()                           an index to pass as since=
  writes(since=0)                  POST/PUT/DELETE/PATCH on /v3/automations/...
  all_writes(since=0)              every call that is not GET/HEAD
  wait_requests(n, timeout=5, **filters)  waits until >= n matching entries; the list
  clear_log()

Rules (stored with integers; rendered per the switches above):

  add_rule(kind, **fields) -> id   seed a rule (foreign or ours); missing fields get defaults
  add_foreign(kind, n, prefix="foreign rule") -> [ids]
  add_our_rule(kind, public_url, rule_prefix="clicksend-relay", webhook_type="json",
               dedicated_number="*", token=None, **overrides) -> id
  rules(kind) -> [dict]            copies, each with "id"
  rule(kind, id) -> dict or None
  find_rules(kind, rule_name) -> [dict]
  update_rule(kind, id, **fields)  change a rule behind the daemon's back (drift)
  delete_rule(kind, id)

Test pushes: pushes() -> [dict(kind, url, format, item, status, error, t, body)],
  wait_pushes(n, timeout=10); poll_queue(kind) (the unread items of the kind's main list).

Poll queues (one per list; a list is a path such as "/mms/receipts" or a kind, which names
its main list):
  add_poll_item(list, **fields) -> item   an unread item: a fresh message_id, the kind's
                                   fields, timestamp now - 60 s unless given
  add_poll_items(list, n, **fields) -> [item]
  poll_items(list, unread=None) -> [item]  copies; unread True/False filters
  arrive_on_read(list, **fields) -> item   queued now, added to the list when the next read
                                   mark of that list arrives, before it is processed: an item
                                   that came in between the fetch and the read mark

Module helpers: KINDS, WEBHOOK_PATHS, TEST_PUSH_KINDS, expected_rule(kind, public_url, ...),
  action_address(kind, public_url, token=None).
"""

import argparse
import base64
import copy
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCALHOST = "127.0.0.1"

# kind -> automation endpoint below /v3, id field, rule fields in ClickSend's order
KINDS = {
    "sms.inbound": {"path": "/automations/sms/inbound", "id": "inbound_rule_id",
                    "alt_id": "sms_inbound_rule_id", "schema": "inbound_sms",
                    "noun": "inbound rule"},
    "sms.receipt": {"path": "/automations/sms/receipts", "id": "receipt_rule_id",
                    "schema": "receipt", "noun": "SMS receipt"},
    "voice.receipt": {"path": "/automations/voice/receipts", "id": "receipt_rule_id",
                      "schema": "receipt", "noun": "voice receipt"},
    "email.receipt": {"path": "/automations/email/receipts", "id": "receipt_rule_id",
                      "schema": "receipt", "noun": "email receipt"},
    "fax.receipt": {"path": "/automations/fax/receipts", "id": "receipt_rule_id",
                    "schema": "receipt", "noun": "fax receipt"},
    "fax.inbound": {"path": "/automations/fax/inbound", "id": "inbound_rule_id",
                    "schema": "inbound_fax", "noun": "inbound fax rule"},
}

# kind -> the daemon's webhook path below base_path (clicksend-relayd(8), ENDPOINTS)
WEBHOOK_PATHS = {
    "sms.inbound": "/sms/inbound",
    "sms.receipt": "/sms/receipt",
    "fax.inbound": "/fax/inbound",
    "fax.receipt": "/fax/receipt",
    "voice.receipt": "/voice/receipt",
    "email.receipt": "/email/receipt",
}

# poll list below /v3 -> (kind, read-mark path); inbound SMS is also marked per message_id
POLL_LISTS = {
    "/sms/inbound": ("sms.inbound", "/sms/inbound-read"),
    "/sms/receipts": ("sms.receipt", "/sms/receipts-read"),
    "/mms/receipts": ("sms.receipt", "/mms/receipts-read"),
    "/voice/receipts": ("voice.receipt", "/voice/receipts-read"),
    "/fax/receipts": ("fax.receipt", "/fax/receipts-read"),
}
POLL_READS = {read: lst for lst, (_, read) in POLL_LISTS.items()}
POLL_KIND_LIST = {"sms.inbound": "/sms/inbound", "sms.receipt": "/sms/receipts",
                  "voice.receipt": "/voice/receipts", "fax.receipt": "/fax/receipts"}

# test push endpoint below /v3 -> kind
TEST_PUSH_PATHS = {
    "/sms/receipts": "sms.receipt",
    "/sms/inbound": "sms.inbound",
    "/voice/receipts": "voice.receipt",
    "/fax/receipts": "fax.receipt",
    "/email/receipts": "email.receipt",
}
TEST_PUSH_KINDS = tuple(TEST_PUSH_PATHS.values())

SCHEMAS = {
    "inbound_sms": ["dedicated_number", "rule_name", "message_search_type",
                    "message_search_term", "action", "action_address", "body", "enabled",
                    "webhook_type"],
    "receipt": ["rule_name", "match_type", "action", "action_address", "enabled"],
    "inbound_fax": ["dedicated_number", "rule_name", "action", "action_address", "enabled"],
}
# required per the swagger definitions InboundSMSRule / DeliveryReceiptRule / InboundFaxRule
REQUIRED = {
    "inbound_sms": ["action", "action_address", "dedicated_number", "enabled",
                    "message_search_term", "message_search_type", "rule_name"],
    "receipt": ["action", "action_address", "enabled", "match_type", "rule_name"],
    "inbound_fax": ["action", "action_address", "dedicated_number", "enabled", "rule_name"],
}
NUMERIC_FIELDS = ("enabled", "match_type", "message_search_type")
ACTIONS = ("AUTO_REPLY", "EMAIL_USER", "EMAIL_FIXED", "URL", "SMS", "POLL", "GROUP_SMS",
           "MOVE_CONTACT", "CREATE_CONTACT", "CREATE_CONTACT_PLUS_EMAIL",
           "CREATE_CONTACT_PLUS_NAME_EMAIL", "CREATE_CONTACT_PLUS_NAME", "SMPP", "NONE")
WEBHOOK_TYPES = ("post", "get", "json")

RESPONSE_CODES = {
    200: "SUCCESS", 201: "CREATED", 204: "NO_CONTENT", 400: "BAD_REQUEST",
    401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_FOUND",
    409: "CONFLICT", 429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT",
}
RESPONSE_MSGS = {
    400: "Invalid input.", 401: "Invalid credentials.", 403: "Access denied.",
    404: "Resource not found.", 405: "Method not allowed.", 429: "Too many requests.",
    500: "Internal server error.", 502: "Bad gateway.", 503: "Service unavailable.",
    504: "Gateway timeout.",
}


def action_address(kind, public_url, token=None):
    """public_url + (token) + kind path, as the daemon must set it."""
    base = public_url.rstrip("/")
    if token:
        base += "/" + token
    return base + WEBHOOK_PATHS[kind]


def expected_rule(kind, public_url, rule_prefix="clicksend-relay", webhook_type="json",
                  dedicated_number="*", token=None):
    """The rule body the daemon should send for kind (the swagger model's fields)."""
    schema = KINDS[kind]["schema"]
    r = {"rule_name": "%s %s" % (rule_prefix, kind), "action": "URL",
         "action_address": action_address(kind, public_url, token), "enabled": 1}
    if schema == "inbound_sms":
        r.update(dedicated_number=dedicated_number, message_search_type=0,
                 message_search_term="", webhook_type=webhook_type)
    elif schema == "inbound_fax":
        r.update(dedicated_number=dedicated_number)
    else:
        r.update(match_type=0)
    return r


def _field_label(name):
    return name.replace("_", " ")


def _as_int(v):
    """An int from an int or a numeric string; None otherwise (bool is not a number)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v.strip())
    return None


def _new_message_id():
    return str(uuid.uuid4()).upper()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def version_string(self):
        return "nginx"

    def log_message(self, fmt, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fake-clicksend: %s\n" % (fmt % args))

    def _serve(self):
        self.server.fake._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that hung up (a cancelled call, a daemon stopped mid-call) is normal here
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Drop(Exception):
    pass


class FakeClickSend:
    def __init__(self, username="csr-user", api_key="KEY-s3cr3t-XYZ", port=0, host=LOCALHOST,
                 verbose=False, push_delay=0.3):
        self.host = host
        self._want_port = port
        self.verbose = verbose
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._user = username
        self._key = api_key
        self.options = {
            "alt_ids": False,
            "numbers_as_strings": False,
            "receipt_webhook_type_null": False,
            "push_delay": push_delay,
            "push_enabled": True,
            "receipt_push_format": "post",
            "page_url_style": "relative",     # "/?page=2" as in ClickSend's docs; or "absolute"
            # ClickSend's documented test receipt carries a fixed id; True reuses one id
            # per kind across test pushes, as the real service may
            "fixed_test_ids": False,
        }
        self._server = None
        self._thread = None
        self._release = threading.Event()
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle
    def _reset_state(self):
        self._rules = {k: {} for k in KINDS}
        self._next_id = 101
        self._log = []
        self._faults = []
        self._stall_until = 0.0
        self._pushes = []
        self._poll = {lst: [] for lst in POLL_LISTS}   # [{"item": ..., "read": bool}]
        self._arrivals = {lst: [] for lst in POLL_LISTS}
        self._release.set()

    def start(self):
        self._server = _Server((self.host, self._want_port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="fake-clicksend")
        self._thread.start()
        return self

    def stop(self):
        self.unstall()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def url(self):
        return "http://%s:%d/v3" % (self.host, self.port)

    # ------------------------------------------------------------------ controls
    def set_auth(self, user, key):
        with self._lock:
            self._user, self._key = user, key

    def set_options(self, **kw):
        with self._lock:
            for k, v in kw.items():
                if k not in self.options:
                    raise KeyError("unknown option %r" % k)
                self.options[k] = v

    def fail_next(self, status, count=1, method=None, path=None, retry_after=None):
        with self._lock:
            self._faults.append({"status": int(status), "count": int(count),
                                 "method": method.upper() if method else None,
                                 "path": path, "retry_after": retry_after})

    def clear_faults(self):
        with self._lock:
            self._faults = []

    def stall(self, seconds):
        with self._lock:
            self._stall_until = time.monotonic() + float(seconds)
            self._release.clear()

    def unstall(self):
        with self._lock:
            self._stall_until = 0.0
            self._release.set()

    def reset(self):
        self.unstall()
        with self._lock:
            self._reset_state()

    # ------------------------------------------------------------------ request log
    def requests(self, method=None, path=None, prefix=None, since=0):
        with self._lock:
            out = []
            for e in self._log[since:]:
                if method and e["method"] != method.upper():
                    continue
                if path is not None and e["path"] != path:
                    continue
                if prefix is not None and not e["path"].startswith(prefix):
                    continue
                out.append(copy.deepcopy(e))
            return out

    def mark(self):
        with self._lock:
            return len(self._log)

    def writes(self, since=0):
        return [e for e in self.requests(since=since, prefix="/v3/automations/")
                if e["method"] not in ("GET", "HEAD")]

    def all_writes(self, since=0):
        return [e for e in self.requests(since=since) if e["method"] not in ("GET", "HEAD")]

    def wait_requests(self, n, timeout=5.0, **filters):
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests(**filters)
            if len(got) >= n or time.monotonic() >= deadline:
                return got
            time.sleep(0.05)

    def clear_log(self):
        with self._lock:
            self._log = []

    # ------------------------------------------------------------------ rules
    def _defaults(self, kind, name):
        schema = KINDS[kind]["schema"]
        d = {"rule_name": name, "action": "EMAIL_FIXED", "action_address": "ops@example.com",
             "enabled": 1}
        if schema == "inbound_sms":
            d.update(dedicated_number="*", message_search_type=0, message_search_term="",
                     body=None, webhook_type=None)
        elif schema == "inbound_fax":
            d.update(dedicated_number="*")
        else:
            d.update(match_type=0)
        return d

    def add_rule(self, kind, **fields):
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            r = self._defaults(kind, fields.get("rule_name", "rule %d" % rid))
            r.update(fields)
            self._rules[kind][rid] = r
            return rid

    def add_foreign(self, kind, n, prefix="foreign rule"):
        return [self.add_rule(kind, rule_name="%s %d" % (prefix, i + 1)) for i in range(n)]

    def add_our_rule(self, kind, public_url, rule_prefix="clicksend-relay", webhook_type="json",
                     dedicated_number="*", token=None, **overrides):
        r = expected_rule(kind, public_url, rule_prefix, webhook_type, dedicated_number, token)
        if KINDS[kind]["schema"] == "inbound_sms":
            r.setdefault("body", None)
        r.update(overrides)
        return self.add_rule(kind, **r)

    def rules(self, kind):
        with self._lock:
            return [dict(r, id=rid) for rid, r in self._rules[kind].items()]

    def rule(self, kind, rid):
        with self._lock:
            r = self._rules[kind].get(int(rid))
            return dict(r, id=int(rid)) if r is not None else None

    def find_rules(self, kind, rule_name):
        return [r for r in self.rules(kind) if r.get("rule_name") == rule_name]

    def update_rule(self, kind, rid, **fields):
        with self._lock:
            self._rules[kind][int(rid)].update(fields)

    def delete_rule(self, kind, rid):
        with self._lock:
            self._rules[kind].pop(int(rid), None)

    # ------------------------------------------------------------------ pushes
    def pushes(self):
        with self._lock:
            return copy.deepcopy(self._pushes)

    def wait_pushes(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = [p for p in self.pushes() if p["status"] is not None or p["error"]]
            if len(got) >= n or time.monotonic() >= deadline:
                return self.pushes()
            time.sleep(0.05)

    def poll_queue(self, kind):
        return self.poll_items(kind, unread=True)

    # ------------------------------------------------------------------ poll queues
    @staticmethod
    def _list_of(lst):
        return POLL_KIND_LIST.get(lst, lst)

    def _poll_item(self, lst, fields):
        kind = POLL_LISTS[lst][0]
        item = self._test_item(kind)
        item["timestamp"] = int(time.time()) - 60
        if lst == "/mms/receipts":
            item["message_type"] = "mms"
        item.update(fields)
        return item

    def add_poll_item(self, lst, **fields):
        lst = self._list_of(lst)
        item = self._poll_item(lst, fields)
        with self._lock:
            self._poll[lst].append({"item": item, "read": False})
        return copy.deepcopy(item)

    def add_poll_items(self, lst, n, **fields):
        return [self.add_poll_item(lst, **fields) for _ in range(n)]

    def poll_items(self, lst, unread=None):
        lst = self._list_of(lst)
        with self._lock:
            return [copy.deepcopy(e["item"]) for e in self._poll[lst]
                    if unread is None or unread != e["read"]]

    def arrive_on_read(self, lst, **fields):
        lst = self._list_of(lst)
        fields.setdefault("timestamp", None)
        with self._lock:
            self._arrivals[lst].append(fields)
        return fields

    def _take_arrivals(self, lst):
        with self._lock:
            pending, self._arrivals[lst] = self._arrivals[lst], []
        for fields in pending:
            if fields.get("timestamp") is None:
                fields["timestamp"] = int(time.time())
            item = self._poll_item(lst, fields)
            with self._lock:
                self._poll[lst].append({"item": item, "read": False})

    def _poll_get(self, h, lst, query):
        with self._lock:
            items = [copy.deepcopy(e["item"]) for e in self._poll[lst] if not e["read"]]
        return self._send(h, 200, "Here are your data.", self._paginate(items, query, lst))

    def _poll_read(self, h, lst, body, ident=None):
        self._take_arrivals(lst)
        if ident is not None:
            with self._lock:
                found = [e for e in self._poll[lst] if e["item"].get("message_id") == ident]
                for e in found:
                    e["read"] = True
            if not found:
                return self._send(h, 404, "Resource not found.")
            return self._send(h, 200, "Inbound messages have been marked as read.", True)
        before = body.get("date_before") if isinstance(body, dict) else None
        if before is not None and not isinstance(before, (int, float)) \
                or isinstance(before, bool):
            return self._send(h, 400, "Invalid input.",
                              {"date_before": "The date before must be a number."})
        with self._lock:
            for e in self._poll[lst]:
                ts = _as_int(e["item"].get("timestamp"))
                if before is None or (ts is not None and ts < before):
                    e["read"] = True
        return self._send(h, 200, "Messages have been marked as read.", True)

    # ------------------------------------------------------------------ rendering
    def _render(self, kind, rid, r, in_list=False):
        info = KINDS[kind]
        schema = info["schema"]
        strings = self.options["numbers_as_strings"]
        idname = info["id"]
        if in_list and self.options["alt_ids"] and "alt_id" in info:
            idname = info["alt_id"]
        out = {idname: str(rid) if strings else rid}
        for f in SCHEMAS[schema]:
            if f not in r:
                continue
            v = r[f]
            if strings and f in NUMERIC_FIELDS and isinstance(v, int) and not isinstance(v, bool):
                v = str(v)
            out[f] = v
        if schema != "inbound_sms" and self.options["receipt_webhook_type_null"]:
            out["webhook_type"] = None
        return out

    def _page_url(self, path, page, limit):
        if self.options["page_url_style"] == "absolute":
            return "%s%s?page=%d&limit=%d" % (self.url, path, page, limit)
        return "/?page=%d" % page

    def _paginate(self, items, query, path):
        def qint(name, default):
            v = _as_int(query.get(name, ""))
            return default if v is None else v
        page = max(1, qint("page", 1))
        limit = min(100, max(15, qint("limit", 15)))
        total = len(items)
        last = max(1, (total + limit - 1) // limit)
        chunk = items[(page - 1) * limit: page * limit]
        first = (page - 1) * limit + 1
        return {
            "total": total, "per_page": limit, "current_page": page, "last_page": last,
            "next_page_url": self._page_url(path, page + 1, limit) if page < last else None,
            "prev_page_url": self._page_url(path, page - 1, limit) if page > 1 else None,
            "from": first if chunk else None,
            "to": first + len(chunk) - 1 if chunk else None,
            "data": chunk,
        }

    # ------------------------------------------------------------------ validation
    def _validate(self, kind, body):
        """(normalized fields, errors {field: message})."""
        schema = KINDS[kind]["schema"]
        errors = {}
        if not isinstance(body, dict):
            return None, {"body": "The request body must be a JSON object."}
        out = {}
        for f in REQUIRED[schema]:
            if f not in body or body[f] is None:
                errors[f] = "The %s field is required." % _field_label(f)
        for f in ("rule_name", "action", "dedicated_number"):
            if f in REQUIRED[schema] and f not in errors:
                if not isinstance(body[f], str) or not body[f].strip():
                    errors[f] = "The %s field is required." % _field_label(f)
        if "action" not in errors and body["action"] not in ACTIONS:
            errors["action"] = "The selected action is invalid."
        if "action_address" not in errors:
            addr = body["action_address"]
            if not isinstance(addr, str):
                errors["action_address"] = "The action address must be a string."
            elif body.get("action") == "URL" and not re.match(r"https?://[^/\s]+", addr):
                errors["action_address"] = "The action address format is invalid."
            elif body.get("action") not in ("POLL", "NONE", "EMAIL_USER") and not addr.strip():
                errors["action_address"] = "The action address field is required."
        for f in NUMERIC_FIELDS:
            if f in REQUIRED[schema] and f not in errors:
                v = _as_int(body[f])
                if v is None:
                    errors[f] = "The %s must be a number." % _field_label(f)
                elif f == "enabled" and v not in (0, 1):
                    errors[f] = "The selected enabled is invalid."
                elif f == "message_search_type" and v not in (0, 1, 2, 3):
                    errors[f] = "The selected message search type is invalid."
                elif f == "match_type" and v < 0:
                    errors[f] = "The selected match type is invalid."
                else:
                    out[f] = v
        if schema == "inbound_sms":
            term = body.get("message_search_term")
            if "message_search_term" not in errors:
                if not isinstance(term, str):
                    errors["message_search_term"] = "The message search term must be a string."
                elif out.get("message_search_type", 0) != 0 and not term:
                    errors["message_search_term"] = "The message search term field is required."
            wt = body.get("webhook_type")
            if wt is not None and wt not in WEBHOOK_TYPES:
                errors["webhook_type"] = "The selected webhook type is invalid."
        if errors:
            return None, errors
        for f in SCHEMAS[schema]:
            if f in body and f not in out:
                out[f] = body[f]
        return out, {}

    # ------------------------------------------------------------------ HTTP
    def _send(self, h, status, msg=None, data=None, headers=None, code=None):
        env = {"http_code": status, "response_code": code or RESPONSE_CODES.get(status, "ERROR"),
               "response_msg": msg if msg is not None else RESPONSE_MSGS.get(status, ""),
               "data": data}
        body = json.dumps(env).encode("utf-8")
        h._csr_status = status
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, str(v))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        return status

    def _handle(self, h):
        split = urllib.parse.urlsplit(h.path)
        path = split.path
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        n = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(n) if n > 0 else b""
        ctype = h.headers.get("Content-Type", "")
        body = None
        if raw:
            text = raw.decode("utf-8", "replace")
            if "x-www-form-urlencoded" in ctype:
                body = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
            else:
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
        user, key = None, None
        auth = h.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                dec = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
                user, _, key = dec.partition(":")
            except (ValueError, UnicodeDecodeError):
                pass
        with self._lock:
            auth_ok = user is not None and user == self._user and key == self._key
            entry = {"method": h.command, "path": path, "query": query, "body": body,
                     "raw": raw.decode("utf-8", "replace"), "content_type": ctype,
                     "user": user, "auth_ok": auth_ok, "status": None, "client_gone": False,
                     "t": time.monotonic(),
                     "headers": {k.lower(): v for k, v in h.headers.items()
                                 if k.lower() != "authorization"}}
            self._log.append(entry)
            stall_for = self._stall_until - time.monotonic()
        if stall_for > 0:
            self._release.wait(stall_for)
        try:
            status = self._dispatch(h, path, query, body, raw, auth_ok)
        except (BrokenPipeError, ConnectionResetError):
            status = getattr(h, "_csr_status", None)
            with self._lock:
                entry["client_gone"] = True
            h.close_connection = True
        except _Drop:
            status = 0
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
        with self._lock:
            entry["status"] = status
        if self.verbose:
            sys.stderr.write("fake-clicksend: %s %s%s user=%s -> %s %s\n" % (
                h.command, path, "?" + split.query if split.query else "", user, status,
                json.dumps(body)[:300] if body is not None else ""))

    def _take_fault(self, method, sub):
        with self._lock:
            for f in self._faults:
                if f["count"] <= 0:
                    continue
                if f["method"] and f["method"] != method:
                    continue
                if f["path"] and not sub.startswith(f["path"]):
                    continue
                f["count"] -= 1
                return dict(f)
        return None

    def _dispatch(self, h, path, query, body, raw, auth_ok):
        if not (path == "/v3" or path.startswith("/v3/")):
            return self._send(h, 404, "Resource not found.")
        sub = path[3:].rstrip("/") or "/"
        fault = self._take_fault(h.command, sub)
        if fault:
            if fault["status"] == 0:
                raise _Drop()
            hd = {"Retry-After": fault["retry_after"]} if fault["retry_after"] is not None else None
            return self._send(h, fault["status"], headers=hd)
        if not auth_ok:
            return self._send(h, 401, "Invalid credentials.")
        if sub == "/account":
            if h.command != "GET":
                return self._send(h, 405)
            return self._send(h, 200, "Here's your account", {
                "user_id": 304497, "username": self._user, "user_email": "ops@example.com",
                "balance": "12.3400", "user_phone": "+61411111111", "user_first_name": "Test",
                "user_last_name": "Account", "active": 1, "banned": 0, "country": "AU",
                "default_country_sms": "AU", "timezone": "Australia/Melbourne",
                "_currency": {"currency_name_short": "AUD", "currency_prefix_d": "$"}})
        for kind, info in KINDS.items():
            base = info["path"]
            if sub == base:
                return self._rules_collection(h, kind, query, body, raw)
            if sub.startswith(base + "/"):
                return self._rules_item(h, kind, sub[len(base) + 1:], body, raw)
        if sub in TEST_PUSH_PATHS and h.command == "POST":
            return self._test_push(h, TEST_PUSH_PATHS[sub], body)
        if sub in POLL_LISTS and h.command == "GET":
            return self._poll_get(h, sub, query)
        if sub in TEST_PUSH_PATHS or sub in POLL_LISTS:
            return self._send(h, 405)
        if sub in POLL_READS or sub.startswith("/sms/inbound-read/"):
            if h.command != "PUT":
                return self._send(h, 405)
            if raw and body is None:
                return self._send(h, 400, "Invalid input.", {"body": "Malformed JSON."})
            if sub in POLL_READS:
                return self._poll_read(h, POLL_READS[sub], body)
            ident = urllib.parse.unquote(sub[len("/sms/inbound-read/"):])
            return self._poll_read(h, "/sms/inbound", body, ident)
        return self._send(h, 404, "Resource not found.")

    def _rules_collection(self, h, kind, query, body, raw):
        info = KINDS[kind]
        if h.command == "GET":
            q = (query.get("q") or "").lower()
            with self._lock:
                items = [self._render(kind, rid, r, in_list=True)
                         for rid, r in self._rules[kind].items()
                         if not q or q in str(r.get("rule_name", "")).lower()]
            word = "inbound rules" if info["schema"] != "receipt" else "receipt rules"
            return self._send(h, 200, "Your list of %s." % word,
                              self._paginate(items, query, info["path"]))
        if h.command == "POST":
            if raw and body is None:
                return self._send(h, 400, "Invalid input.", {"body": "Malformed JSON."})
            fields, errors = self._validate(kind, body if body is not None else {})
            if errors:
                return self._send(h, 400, "Invalid input.", errors)
            if info["schema"] == "inbound_sms":
                fields.setdefault("webhook_type", "post")
                fields.setdefault("body", None)
            with self._lock:
                rid = self._next_id
                self._next_id += 1
                r = self._defaults(kind, fields["rule_name"])
                r.update(fields)
                self._rules[kind][rid] = r
                data = self._render(kind, rid, r)
            msg = ("Your record has been added." if info["schema"] != "receipt"
                   else "Your new %s has been added." % info["noun"])
            return self._send(h, 200, msg, data)
        return self._send(h, 405)

    def _rules_item(self, h, kind, ident, body, raw):
        if not re.fullmatch(r"\d+", ident):
            return self._send(h, 404, "Resource not found.")
        rid = int(ident)
        with self._lock:
            exists = rid in self._rules[kind]
        if not exists:
            return self._send(h, 404, "Resource not found.")
        if h.command == "GET":
            with self._lock:
                data = self._render(kind, rid, self._rules[kind][rid])
            return self._send(h, 200, "Here is your rule.", data)
        if h.command == "PUT":
            if raw and body is None:
                return self._send(h, 400, "Invalid input.", {"body": "Malformed JSON."})
            fields, errors = self._validate(kind, body if body is not None else {})
            if errors:
                return self._send(h, 400, "Invalid input.", errors)
            with self._lock:
                r = self._rules[kind].get(rid)
                if r is None:
                    return self._send(h, 404, "Resource not found.")
                r.update(fields)
                data = self._render(kind, rid, r)
            return self._send(h, 200, "Your record has been updated.", data)
        if h.command == "DELETE":
            with self._lock:
                self._rules[kind].pop(rid, None)
            return self._send(h, 200, "Your record has been deleted.", True)
        return self._send(h, 405)

    # ------------------------------------------------------------------ test pushes
    def _test_item(self, kind):
        now = int(time.time())
        mid = _new_message_id()
        if self.options["fixed_test_ids"]:
            mid = "FIXED-TEST-%s" % kind.upper().replace(".", "-")
        if kind == "sms.inbound":
            return {"originalsenderid": "+61411111111", "body": "This is a test inbound message.",
                    "message": "This is a test inbound message.", "sms": "+61400000000",
                    "from": "+61400000000", "to": "+61411111111", "timestamp": now,
                    "message_id": mid, "original_message_id": _new_message_id(),
                    "original_body": "Test outbound message.", "user_id": 304497,
                    "subaccount_id": 563840, "custom_string": "custom_string"}
        if kind == "sms.receipt":
            return {"timestamp_send": now, "timestamp": now, "message_id": mid,
                    "status": "Delivered", "status_code": 201,
                    "status_text": "Success: Message received on handset.", "error_code": 0,
                    "error_text": "error_text", "custom_string": "custom_string",
                    "user_id": 304497, "subaccount_id": 563840, "message_type": "sms"}
        if kind == "voice.receipt":
            return {"timestamp_send": now, "timestamp": now, "message_id": mid,
                    "status": "Delivered", "status_code": 201,
                    "status_text": "Success: Message received on handset.", "error_code": 0,
                    "error_text": "error_text", "custom_string": "custom_string",
                    "user_id": 304497, "subaccount_id": 563840, "message_type": "voice",
                    "digits": 6}
        if kind == "fax.receipt":
            return {"timestamp_send": now, "timestamp": now, "message_id": mid,
                    "status": "Delivered", "status_code": "Completed", "status_text": "",
                    "error_code": "", "error_text": "", "custom_string": "custom_string",
                    "user_id": 304497, "subaccount_id": 563840, "message_type": "fax"}
        if kind == "email.receipt":
            return {"email": "john_doe@user.com", "message_id": mid + "@clicksend.com",
                    "status": "Delivered", "timestamp": now}
        raise KeyError(kind)

    def _test_push(self, h, kind, body):
        if not isinstance(body, dict) or not isinstance(body.get("url"), str) \
                or not body["url"].strip():
            return self._send(h, 400, "Invalid input.", {"url": "The url field is required."})
        url = body["url"].strip()
        fmt = self.options["receipt_push_format"]
        if kind == "sms.inbound":
            fmt = body.get("webhook_type") or "post"
            if fmt not in WEBHOOK_TYPES:
                return self._send(h, 400, "Invalid input.",
                                  {"webhook_type": "The selected webhook type is invalid."})
        item = self._test_item(kind)
        if url == "poll":
            if kind not in POLL_KIND_LIST:
                return self._send(h, 400, "Invalid input.", {"url": "The url format is invalid."})
            with self._lock:
                self._poll[POLL_KIND_LIST[kind]].append({"item": item, "read": False})
        elif url.startswith(("http://", "https://")):
            rec = {"kind": kind, "url": url, "format": fmt, "item": item, "status": None,
                   "error": None, "t": None, "body": None}
            with self._lock:
                self._pushes.append(rec)
                enabled = self.options["push_enabled"]
                delay = self.options["push_delay"]
            if enabled:
                threading.Thread(target=self._push, args=(rec, delay), daemon=True,
                                 name="fake-clicksend-push").start()
            else:
                rec["error"] = "push disabled"
        else:
            return self._send(h, 400, "Invalid input.", {"url": "The url format is invalid."})
        msg = ("Inbound message has been added" if kind == "sms.inbound"
               else "Receipt has been added")
        return self._send(h, 200, msg, item)

    def _push(self, rec, delay):
        time.sleep(delay)
        item, url, fmt = rec["item"], rec["url"], rec["format"]
        formitems = [(k, "" if v is None else str(v)) for k, v in item.items()]
        headers = {"User-Agent": "ClickSend-Webhook/1.0"}
        data = None
        method = "POST"
        if fmt == "json":
            data = json.dumps(item).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif fmt == "get":
            method = "GET"
            url = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(formitems)
        else:
            data = urllib.parse.urlencode(formitems).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, error, text = None, None, None
        try:
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
                text = r.read(2000).decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status = e.code
            text = e.read(2000).decode("utf-8", "replace")
        except Exception as e:          # connection refused, timeout: as ClickSend sees it
            error = "%s: %s" % (type(e).__name__, e)
        with self._lock:
            rec.update(status=status, error=error, body=text, t=time.monotonic())
        if self.verbose:
            sys.stderr.write("fake-clicksend: pushed %s %s to %s -> %s\n"
                             % (rec["kind"], fmt, rec["url"], status or error))


def main():
    ap = argparse.ArgumentParser(description="A fake ClickSend REST v3 on 127.0.0.1")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--user", default="csr-user")
    ap.add_argument("--key", default="KEY-s3cr3t-XYZ")
    ap.add_argument("--seed-foreign", type=int, default=0, metavar="N",
                    help="N foreign rules per kind")
    ap.add_argument("--alt-ids", action="store_true",
                    help="sms inbound lists say sms_inbound_rule_id")
    ap.add_argument("--strings", action="store_true", help="numbers as strings")
    ap.add_argument("--receipt-webhook-type-null", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    fake = FakeClickSend(a.user, a.key, port=a.port, verbose=a.verbose)
    fake.set_options(alt_ids=a.alt_ids, numbers_as_strings=a.strings,
                     receipt_webhook_type_null=a.receipt_webhook_type_null)
    for kind in KINDS:
        fake.add_foreign(kind, a.seed_foreign)
    fake.start()
    print("fake ClickSend on %s (user %s)" % (fake.url, a.user), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
