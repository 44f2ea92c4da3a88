# SPDX-License-Identifier: ISC
"""A retry falls due on its own timer, not only on the daemon's one-second tick: with
retry_schedule = 1s the second attempt comes about a second (+/-20 %) after the first."""

import http.server
import threading
import time

from harness import Tap, Daemon

tap = Tap(timeout=60, name="retry-timing")
FORM = "application/x-www-form-urlencoded"


class Sink(http.server.BaseHTTPRequestHandler):
    times = []
    answers = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Sink.times.append(time.monotonic())
        code = Sink.answers.pop(0) if Sink.answers else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_retry_on_time():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/hook" % srv.server_address[1]
    gaps = []
    try:
        relay = {"relay:sink": {"url": url, "retry_schedule": "1s"}}
        with Daemon(tap, sections=relay, name="timing") as d:
            for n in range(3):
                Sink.times = []
                Sink.answers = [500, 200]
                d.post("/clicksend/sms/inbound", ("message_id=t%d" % n).encode(), FORM)
                deadline = time.monotonic() + 6
                while len(Sink.times) < 2 and time.monotonic() < deadline:
                    time.sleep(0.02)
                if len(Sink.times) == 2:
                    gaps.append(Sink.times[1] - Sink.times[0])
            tap.check_eq(len(gaps), 3, "three events: each retried once")
            tap.ok(gaps and all(0.75 <= g <= 1.6 for g in gaps),
                   "each retry comes 1 s +/-20 % after the failed attempt (loose bounds)",
                   "gaps %r" % gaps)
    finally:
        srv.shutdown()


tap.run(test_retry_on_time)
tap.done()
