#!/bin/sh
# SPDX-License-Identifier: ISC
# The benchmark, one command: builds clicksend-relayd with -O2 in _build/bench, then on
# 127.0.0.1 measures with wrk, in one run, nginx answering a fixed 200, adnanh/webhook running
# /bin/true per hook and clicksend-relayd (synchronous = full) at 1, 10 and 100 connections;
# relaying to a local sink while ingesting; peak RSS; ingest on a store preloaded with 1M
# events. Prints ratios against the references measured in the same run; fails on none.
#   sh bench/run.sh            BENCH_SECONDS (default 10) is the length of each wrk run
# Needs wrk, nginx, webhook, sqlite3, curl and python3 (sh scripts/setup.sh bench installs
# them). Every server is started fresh in a temp dir and stopped; every wait is bounded.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${BENCH_SECONDS:-10}
conns="1 10 100"
preload=${BENCH_PRELOAD:-1000000}
body=$top/tests/data/webhooks/sms-inbound.form
relayd=$top/_build/bench/src/clicksend-relayd
helper="python3 $top/bench/report.py"
pids=""
tmp=""

die() {
	echo "bench: $*" >&2
	exit 1
}

cleanup() {
	for p in $pids; do
		stop "$p"
	done
	if [ -n "$tmp" ] && [ -n "${BENCH_KEEP:-}" ]; then
		echo "bench: kept $tmp" >&2
	elif [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
}

case $secs$preload in
'' | *[!0-9]*) die "BENCH_SECONDS and BENCH_PRELOAD must be whole numbers" ;;
esac
[ "$secs" -ge 1 ] || die "BENCH_SECONDS must be 1 or more"
PATH=$PATH:/usr/sbin
for tool in wrk nginx webhook sqlite3 curl python3 timeout; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found (sh scripts/setup.sh bench installs what is needed)"
done

build() {
	[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] ||
		autoreconf -fi
	mkdir -p _build/bench
	(cd _build/bench && { [ -f Makefile ] || ../../configure -q CFLAGS=-O2; } &&
		make -s -j"$(nproc 2>/dev/null || echo 2)")
}

# sql DB [QUERY]: sqlite3 waiting up to 5 s for a lock the daemon holds.
sql() {
	sqlite3 -cmd '.timeout 5000' "$@"
}

# alive PID: the process exists and is not a zombie waiting for us to reap it.
alive() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	i=0
	while alive "$1" && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	pids=$(echo " $pids " | sed "s/ $1 / /; s/^ *//; s/ *$//")
}

# start NAME PORT CMD...: CMD in the background (log in $tmp/NAME.log), waited for on PORT;
# its pid is left in $pid.
start() {
	name=$1 port=$2
	shift 2
	"$@" >"$tmp/$name.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	$helper wait "$port" "$pid" 20 || {
		tail -n 20 "$tmp/$name.log" >&2
		die "$name did not start on 127.0.0.1:$port"
	}
}

# nginx_conf DIR PORT STATUS: a minimal nginx answering STATUS to everything.
nginx_conf() {
	mkdir -p "$1"
	cat >"$1/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	default_type text/plain;
	keepalive_requests 1000000;
	client_body_temp_path $1/body;
	proxy_temp_path $1/proxy;
	fastcgi_temp_path $1/fastcgi;
	uwsgi_temp_path $1/uwsgi;
	scgi_temp_path $1/scgi;
	server {
		listen 127.0.0.1:$2;
		location / { return $3; }
	}
}
EOF
}

start_nginx() { # NAME PORT STATUS
	nginx_conf "$tmp/$1" "$2" "$3"
	start "$1" "$2" nginx -p "$tmp/$1" -e "$tmp/$1/error.log" -c "$tmp/$1/nginx.conf"
}

# webhook answers after /bin/true has run (like relayd, which answers after its commit).
start_webhook() { # PORT
	cat >"$tmp/hooks.json" <<EOF
[{"id": "bench", "execute-command": "/bin/true", "command-working-directory": "$tmp",
  "include-command-output-in-response": true}]
EOF
	start webhook "$1" webhook -hooks "$tmp/hooks.json" -ip 127.0.0.1 -port "$1"
}

# relayd_conf DIR PORT [SINKPORT]: the daemon's config, store in DIR, a relay to SINKPORT.
relayd_conf() {
	mkdir -p "$1"
	cat >"$1/relayd.conf" <<EOF
[server]
listen = 127.0.0.1:$2
base_path = /clicksend
shutdown_timeout = 2s
[store]
path = $1/events.db
synchronous = full
[log]
level = warning
EOF
	[ $# -lt 3 ] || printf '[relay:sink]\nurl = http://127.0.0.1:%s/\n' "$3" >>"$1/relayd.conf"
}

start_relayd() { # NAME DIR PORT
	start "$1" "$3" "$relayd" -c "$2/relayd.conf"
}

# rss RUN PID: the daemon's peak resident set (VmHWM, from /proc: no ps needed).
rss() {
	kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$2/status")
	echo "rss run=$1 kb=${kb:-0}" >>"$tmp/results"
}

# measure SERVER CONNS URL: one wrk run; its BENCH line goes to the results.
measure() {
	out=$tmp/wrk-$1-$2.out
	echo "bench: $1, $2 connections, ${secs} s" >&2
	timeout $((secs + 60)) wrk -t1 -c"$2" -d"${secs}s" --timeout 5s --latency \
		-s "$top/bench/post.lua" "$3" -- "$body" >"$out" 2>&1 || {
		cat "$out" >&2
		die "wrk failed against $1"
	}
	line=$(grep '^BENCH ' "$out") || die "no result from wrk against $1"
	echo "wrk server=$1 conns=$2 ${line#BENCH }" >>"$tmp/results"
}

# preload DIR: a store with $preload events made like real ones: the daemon creates the
# schema and stores the sample once, then sqlite3 copies that row with fresh message_ids
# (UUID-shaped, random leading groups as ClickSend's) and older received_at, and drops it.
preload() {
	relayd_conf "$1" "$port"
	start_relayd preload-relayd "$1" "$port"
	curl -sf -o /dev/null --max-time 10 -H 'Content-Type: application/x-www-form-urlencoded' \
		--data-binary "@$body" "http://127.0.0.1:$port/clicksend/sms/inbound" ||
		die "the daemon did not store the sample"
	stop "$pid"
	timeout 900 sqlite3 "$1/events.db" >/dev/null <<EOF || die "preloading the store failed"
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
WITH RECURSIVE n(i, mid) AS (
	SELECT 1, NULL
	UNION ALL
	SELECT i + 1, printf('%08X-%04X-%04X-0000-%012X', random() & 2147483647,
	                     random() & 65535, random() & 65535, i + 1)
	FROM n WHERE i <= $preload),
t AS (SELECT * FROM events ORDER BY id LIMIT 1)
INSERT INTO events (kind, format, received_at, remote_addr, message_id, from_number,
                    to_number, body, status_code, status_text, custom_string, payload,
                    dedupe_key, duplicates)
SELECT t.kind, t.format,
       strftime('%Y-%m-%dT%H:%M:%fZ', t.received_at, printf('-%d seconds', 2 * ($preload + 2 - n.i))),
       t.remote_addr, n.mid, t.from_number, t.to_number, t.body, t.status_code,
       t.status_text, t.custom_string, replace(t.payload, t.message_id, n.mid),
       replace(t.dedupe_key, t.message_id, n.mid), 0
FROM n, t WHERE n.mid IS NOT NULL;
DELETE FROM events WHERE id = (SELECT min(id) FROM events);
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
	n=$(sql "$1/events.db" 'SELECT count(*) FROM events')
	[ "$n" -eq "$preload" ] || die "preloaded store has $n events, not $preload"
}

# relay_run: relayd with one relay to an nginx sink answering 204, ingest at 100 conns,
# then a bounded wait for the outbox to drain; counts read from the deliveries table.
relay_run() {
	sink=$($helper port)
	start_nginx sink "$sink" 204
	sinkpid=$pid
	port=$($helper port)
	relayd_conf "$tmp/relay" "$port" "$sink"
	start_relayd relayd-relay "$tmp/relay" "$port"
	measure relayd-relay 100 "http://127.0.0.1:$port/clicksend/sms/inbound"
	db=$tmp/relay/events.db
	limit=$((secs * 6 > 30 ? secs * 6 : 30))
	i=0
	while [ "$(sql "$db" "SELECT count(*) FROM deliveries WHERE state = 'pending'")" != 0 ] &&
		[ "$i" -lt "$limit" ]; do
		sleep 1
		i=$((i + 1))
	done
	rss relay "$pid"
	stop "$pid"
	stop "$sinkpid"
	sql "$db" >>"$tmp/results" <<'EOF'
WITH w AS (SELECT julianday(min(received_at)) AS t0, julianday(max(received_at)) AS t1,
                  max(received_at) AS last FROM events),
     d AS (SELECT count(*) AS done, julianday(max(done_at)) AS tz FROM deliveries
           WHERE state = 'done')
SELECT printf('deliveries done=%d during=%d window_s=%.3f drain_s=%.3f pending=%d', d.done,
              (SELECT count(*) FROM deliveries WHERE state = 'done' AND done_at <= w.last),
              (w.t1 - w.t0) * 86400, max(0, coalesce(d.tz - w.t1, 0)) * 86400,
              (SELECT count(*) FROM deliveries WHERE state <> 'done'))
FROM w, d;
EOF
}

build >&2
[ -x "$relayd" ] || die "no daemon at $relayd"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/csr-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "info seconds=$secs body=$(wc -c <"$body" | tr -d ' ') cpus=$(nproc 2>/dev/null || echo '?') preload=$preload" \
	>"$tmp/results"

echo "bench: preloading a store with $preload events" >&2
port=$($helper port)
preload "$tmp/1m"

for c in $conns; do
	port=$($helper port)
	start_nginx nginx "$port" 200
	measure nginx "$c" "http://127.0.0.1:$port/"
	stop "$pid"

	port=$($helper port)
	start_webhook "$port"
	measure webhook "$c" "http://127.0.0.1:$port/hooks/bench"
	stop "$pid"

	port=$($helper port)
	relayd_conf "$tmp/relayd-c$c" "$port"
	start_relayd "relayd-c$c" "$tmp/relayd-c$c" "$port"
	measure relayd "$c" "http://127.0.0.1:$port/clicksend/sms/inbound"
	rss "c$c" "$pid"
	stop "$pid"
	rm -rf "$tmp/relayd-c$c"
done

# The reference for the last two: an empty store again, just before them, since the
# machine's speed drifts over a run.
port=$($helper port)
relayd_conf "$tmp/empty" "$port"
start_relayd relayd-empty "$tmp/empty" "$port"
measure relayd-empty 100 "http://127.0.0.1:$port/clicksend/sms/inbound"
rss empty "$pid"
stop "$pid"
rm -rf "$tmp/empty"

relay_run

port=$($helper port)
relayd_conf "$tmp/1m" "$port"
start_relayd relayd-1m "$tmp/1m" "$port"
measure relayd-1m 100 "http://127.0.0.1:$port/clicksend/sms/inbound"
rss preloaded "$pid"
stop "$pid"

echo >&2
$helper table "$tmp/results"
