#!/bin/sh
# SPDX-License-Identifier: ISC
# The benchmark, one command: builds clicksend-relayd with -O2 in _build/bench, then on
# 127.0.0.1 measures with wrk, in one run, nginx answering a fixed 200, adnanh/webhook running
# /bin/true per hook and clicksend-relayd (synchronous = full) at 1, 10 and 100 connections;
# relaying to a local sink while ingesting; peak RSS; ingest on a store preloaded with 1M
# events; and the daemon on a PostgreSQL store (a server of its own, started here), one node
# and two nodes sharing the database, ingesting and relaying, next to the SQLite figures.
# Prints ratios against the references measured in the same run; fails on none.
#   sh bench/run.sh            BENCH_SECONDS (default 10) is the length of each wrk run
#   BENCH_ONLY=pg              only the PostgreSQL runs and the two SQLite runs they are
#                              compared with (ingest at 100 connections, the relay run)
#   BENCH_ONLY=sqlite          everything but the PostgreSQL runs
# Needs wrk, nginx, webhook, sqlite3, curl, python3 and PostgreSQL (server and client; sh
# scripts/setup.sh bench installs them). Every server is started fresh in a temp dir and
# stopped; every wait is bounded.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${BENCH_SECONDS:-10}
conns="1 10 100"
preload=${BENCH_PRELOAD:-1000000}
only=${BENCH_ONLY:-}
body=$top/tests/data/webhooks/sms-inbound.form
relayd=$top/_build/bench/src/clicksend-relayd
helper="python3 $top/bench/report.py"
pids=""
tmp=""
pgpid=""

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
case $only in
'' | pg | sqlite) ;;
*) die "BENCH_ONLY must be pg or sqlite" ;;
esac
PATH=$PATH:/usr/sbin
tools="wrk nginx sqlite3 curl python3 timeout"
[ "$only" = pg ] || tools="$tools webhook"
[ "$only" = sqlite ] || tools="$tools setpriv"
for tool in $tools; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found (sh scripts/setup.sh bench installs what is needed)"
done
# The newest PostgreSQL installed; initdb and the server refuse to run as root, so they run
# as the postgres user that Debian's package creates.
pgbin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
aspg="setpriv --reuid=postgres --regid=postgres --init-groups"
if [ "$only" != sqlite ]; then
	for tool in initdb postgres psql pg_isready; do
		[ -x "$pgbin/$tool" ] ||
			die "no PostgreSQL $tool (sh scripts/setup.sh bench installs what is needed)"
	done
	id postgres >/dev/null 2>&1 || die "no postgres user (the postgresql package makes it)"
fi

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

# stop PID: SIGTERM (SIGINT for PostgreSQL: its fast shutdown, which ends the sessions
# still open), up to 10 s to exit, then SIGKILL; reaps it.
stop() {
	sig=TERM
	[ "$1" != "$pgpid" ] || sig=INT
	kill -"$sig" "$1" 2>/dev/null || true
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

# relayd_conf DIR PORT [SINKPORT [DB NODE]]: the daemon's config, a relay to SINKPORT unless
# it is "-" or missing; the store is DIR/events.db, or the PostgreSQL database DB as NODE.
relayd_conf() {
	mkdir -p "$1"
	if [ $# -ge 5 ]; then
		store="url = postgresql://bench:$pgpass@127.0.0.1:$pgport/$4
node = $5"
	else
		store="path = $1/events.db
synchronous = full"
	fi
	cat >"$1/relayd.conf" <<EOF
[server]
listen = 127.0.0.1:$2
base_path = /clicksend
shutdown_timeout = 2s
[store]
$store
[log]
level = warning
EOF
	[ "${3:--}" = - ] ||
		printf '[relay:sink]\nurl = http://127.0.0.1:%s/\n' "$3" >>"$1/relayd.conf"
	chmod 600 "$1/relayd.conf" # the PostgreSQL password; the temp dir is 0711 for postgres
}

start_relayd() { # NAME DIR PORT
	start "$1" "$3" "$relayd" -c "$2/relayd.conf"
}

# logs NAME: how many lines the daemon NAME logged (level warning and up) to the results, and
# the first few of them to stderr.
logs() {
	n=$(wc -l <"$tmp/$1.log" | tr -d ' ')
	echo "log run=$1 lines=$n" >>"$tmp/results"
	[ "$n" -eq 0 ] || {
		echo "bench: $1 logged $n lines, the first:" >&2
		head -n 5 "$tmp/$1.log" >&2
	}
}

# stop_relayd NAME PID: stops the daemon and counts what it logged.
stop_relayd() {
	stop "$2"
	logs "$1"
}

# rss RUN PID: the daemon's peak resident set (VmHWM, from /proc: no ps needed).
rss() {
	kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$2/status")
	echo "rss run=$1 kb=${kb:-0}" >>"$tmp/results"
}

# wrk_run SERVER CONNS URL: one wrk run, its output in $tmp/wrk-SERVER-CONNS.out.
wrk_run() {
	timeout $((secs + 60)) wrk -t1 -c"$2" -d"${secs}s" --timeout 5s --latency \
		-s "$top/bench/post.lua" "$3" -- "$body" >"$tmp/wrk-$1-$2.out" 2>&1
}

# wrk_result SERVER CONNS: the BENCH line of that run goes to the results.
wrk_result() {
	line=$(grep '^BENCH ' "$tmp/wrk-$1-$2.out") || die "no result from wrk against $1"
	echo "wrk server=$1 conns=$2 ${line#BENCH }" >>"$tmp/results"
}

# measure SERVER CONNS URL: one wrk run and its result.
measure() {
	echo "bench: $1, $2 connections, ${secs} s" >&2
	wrk_run "$@" || {
		cat "$tmp/wrk-$1-$2.out" >&2
		die "wrk failed against $1"
	}
	wrk_result "$1" "$2"
}

# measure_nodes SERVER CONNS NODE:PORT...: one wrk per node at the same time, CONNS
# connections each; a result per node, as server SERVER-NODE.
measure_nodes() {
	name=$1 c=$2
	shift 2
	if [ $# -eq 1 ]; then
		echo "bench: $name, one node, $c connections, ${secs} s" >&2
	else
		echo "bench: $name, $# nodes at once, $c connections each, ${secs} s" >&2
	fi
	wpids=""
	for np in "$@"; do
		wrk_run "$name-${np%%:*}" "$c" "http://127.0.0.1:${np#*:}/clicksend/sms/inbound" &
		wpids="$wpids $!"
	done
	failed=""
	for w in $wpids; do
		wait "$w" || failed=1
	done
	for np in "$@"; do
		[ -z "$failed" ] || cat "$tmp/wrk-$name-${np%%:*}-$c.out" >&2
		wrk_result "$name-${np%%:*}" "$c"
	done
	[ -z "$failed" ] || die "wrk failed against $name"
}

# drain CMD...: waits while CMD (a count of pending deliveries) prints anything but 0, up to
# 6 times the wrk run and at least 30 s.
drain() {
	limit=$((secs * 6 > 30 ? secs * 6 : 30))
	i=0
	while [ "$("$@")" != 0 ] && [ "$i" -lt "$limit" ]; do
		sleep 1
		i=$((i + 1))
	done
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
	drain sql "$db" "SELECT count(*) FROM deliveries WHERE state = 'pending'"
	rss relay "$pid"
	stop_relayd relayd-relay "$pid"
	stop "$sinkpid"
	sql "$db" >>"$tmp/results" <<'EOF'
WITH w AS (SELECT julianday(min(received_at)) AS t0, julianday(max(received_at)) AS t1,
                  max(received_at) AS last FROM events),
     d AS (SELECT count(*) AS done, julianday(max(done_at)) AS tz FROM deliveries
           WHERE state = 'done')
SELECT printf('deliveries run=sqlite done=%d during=%d window_s=%.3f drain_s=%.3f pending=%d', d.done,
              (SELECT count(*) FROM deliveries WHERE state = 'done' AND done_at <= w.last),
              (w.t1 - w.t0) * 86400, max(0, coalesce(d.tz - w.t1, 0)) * 86400,
              (SELECT count(*) FROM deliveries WHERE state <> 'done'))
FROM w, d;
EOF
}

# pgsql DB ARGS...: psql as the superuser over the server's unix socket (trusted there; the
# loopback TCP port wants the password).
pgsql() {
	db=$1
	shift
	"$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$tmp/pg" -p "$pgport" -U postgres -d "$db" \
		"$@"
}

# pg_start: a PostgreSQL server of its own: initdb in $tmp/pg as the postgres user, listening
# on 127.0.0.1 only, its unix socket in $tmp/pg, with the default durability (fsync and
# synchronous_commit on, as SQLite's synchronous = full); the role bench with a random
# password (scram-sha-256 on TCP), which owns the databases of the runs.
pg_start() {
	chmod 711 "$tmp"
	mkdir "$tmp/pg"
	chown postgres:postgres "$tmp/pg"
	chmod 700 "$tmp/pg"
	echo "bench: initdb and PostgreSQL in $tmp/pg" >&2
	$aspg "$pgbin/initdb" -D "$tmp/pg/data" -U postgres -E UTF8 --locale=C \
		--auth-local=trust --auth-host=scram-sha-256 >"$tmp/initdb.log" 2>&1 || {
		tail -n 20 "$tmp/initdb.log" >&2
		die "initdb failed"
	}
	pgport=$($helper port)
	# shellcheck disable=SC2086
	start postgres "$pgport" $aspg "$pgbin/postgres" -D "$tmp/pg/data" -p "$pgport" \
		-k "$tmp/pg" -c listen_addresses=127.0.0.1
	pgpid=$pid
	i=0
	until "$pgbin/pg_isready" -q -h "$tmp/pg" -p "$pgport" -U postgres; do
		[ "$i" -lt 100 ] || die "PostgreSQL is not ready (see $tmp/postgres.log)"
		sleep 0.1
		i=$((i + 1))
	done
	pgpass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	pgsql postgres -c "CREATE ROLE bench LOGIN PASSWORD '$pgpass'" || die "CREATE ROLE failed"
	echo "info-pg version=$(pgsql postgres -c 'SHOW server_version_num')" \
		"fsync=$(pgsql postgres -c 'SHOW fsync')" \
		"synchronous_commit=$(pgsql postgres -c 'SHOW synchronous_commit')" >>"$tmp/results"
}

# pg_nodes RUN SINKPORT NODE...: a fresh database RUN and one daemon per NODE sharing it
# (node = NODE, a port of its own), relaying to SINKPORT unless it is "-". Leaves NODE:PORT
# and NODE:PID lists in $nodeports and $nodepids.
pg_nodes() {
	run=$1 sink=$2
	shift 2
	pgsql postgres -c "CREATE DATABASE $run OWNER bench" || die "CREATE DATABASE failed"
	nodeports="" nodepids=""
	for n in "$@"; do
		p=$($helper port)
		relayd_conf "$tmp/$run-$n" "$p" "$sink" "$run" "$n"
		start_relayd "$run-$n" "$tmp/$run-$n" "$p"
		nodeports="$nodeports $n:$p" nodepids="$nodepids $n:$pid"
		healthy "$p" || die "$run-$n: /healthz is not 200 after 10 s"
	done
}

# healthy PORT: waits up to 10 s for the daemon's /healthz to answer 200 (its store reached).
healthy() {
	i=0
	until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$1/healthz"; do
		[ "$i" -lt 20 ] || return 1
		sleep 0.5
		i=$((i + 1))
	done
}

# pg_stop_nodes RUN: each node's peak RSS, then stops it and counts its log lines.
pg_stop_nodes() {
	for np in $nodepids; do
		rss "$1-${np%%:*}" "${np#*:}"
		stop_relayd "$1-${np%%:*}" "${np#*:}"
	done
}

# pg_ingest RUN NODE...: ingest at 100 connections in all, shared between the nodes.
pg_ingest() {
	run=$1
	shift
	pg_nodes "$run" - "$@"
	# shellcheck disable=SC2086
	measure_nodes "$run" $((100 / $#)) $nodeports
	pg_stop_nodes "$run"
	pgsql postgres -c "DROP DATABASE $run"
}

# pg_relay RUN NODE...: as relay_run, with the nodes sharing a database, each relaying to the
# same sink; ingest at 100 connections in all, then a bounded wait for the outbox to drain.
pg_relay() {
	run=$1
	shift
	sink=$($helper port)
	start_nginx "$run-sink" "$sink" 204
	sinkpid=$pid
	pg_nodes "$run" "$sink" "$@"
	# shellcheck disable=SC2086
	measure_nodes "$run" $((100 / $#)) $nodeports
	drain pgsql "$run" -c "SELECT count(*) FROM deliveries WHERE state = 'pending'"
	pg_stop_nodes "$run"
	stop "$sinkpid"
	pgsql "$run" >>"$tmp/results" <<EOF
WITH w AS (SELECT min(received_at) AS t0, max(received_at) AS t1 FROM events),
     d AS (SELECT count(*) AS done, max(done_at) AS tz FROM deliveries WHERE state = 'done')
SELECT format('deliveries run=$run done=%s during=%s window_s=%s drain_s=%s pending=%s',
              d.done,
              (SELECT count(*) FROM deliveries WHERE state = 'done' AND done_at <= w.t1),
              round(coalesce(extract(epoch FROM w.t1 - w.t0), 0), 3),
              round(greatest(0, coalesce(extract(epoch FROM d.tz - w.t1), 0)), 3),
              (SELECT count(*) FROM deliveries WHERE state <> 'done'))
FROM w, d;
EOF
	pgsql postgres -c "DROP DATABASE $run"
}

# pg_runs: the PostgreSQL runs, in the order that puts each next to what it is compared with:
# the relay runs (two nodes, one node), then ingest (two nodes, one node) just before the
# SQLite daemon's ingest at 100 connections.
pg_runs() {
	pg_start
	pg_relay pgrelay2 a b
	pg_relay pgrelay a
	pg_ingest pg2 a b
	pg_ingest pg a
	stop "$pgpid"
	pgpid=""
	pg_log
}

# pg_log: the server log's ERROR, FATAL and PANIC lines counted in the results, the first
# few of them to stderr.
pg_log() {
	grep -E '^[^[]*\[[0-9]+\] (ERROR|FATAL|PANIC): ' "$tmp/postgres.log" >"$tmp/postgres.errors" ||
		true
	n=$(wc -l <"$tmp/postgres.errors" | tr -d ' ')
	echo "log run=postgres lines=$n" >>"$tmp/results"
	[ "$n" -eq 0 ] || {
		echo "bench: PostgreSQL logged $n errors, the first:" >&2
		head -n 5 "$tmp/postgres.errors" >&2
	}
}

build >&2
[ -x "$relayd" ] || die "no daemon at $relayd"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/csr-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "info seconds=$secs body=$(wc -c <"$body" | tr -d ' ') cpus=$(nproc 2>/dev/null || echo '?') preload=$preload" \
	>"$tmp/results"

if [ "$only" != pg ]; then
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
		stop_relayd "relayd-c$c" "$pid"
		rm -rf "$tmp/relayd-c$c"
	done
fi

[ "$only" = sqlite ] || pg_runs

# The reference for the PostgreSQL runs before and the 1M-store run after: an empty store
# again, since the machine's speed drifts over a run.
port=$($helper port)
relayd_conf "$tmp/empty" "$port"
start_relayd relayd-empty "$tmp/empty" "$port"
measure relayd-empty 100 "http://127.0.0.1:$port/clicksend/sms/inbound"
rss empty "$pid"
stop_relayd relayd-empty "$pid"
rm -rf "$tmp/empty"

relay_run

if [ "$only" != pg ]; then
	port=$($helper port)
	relayd_conf "$tmp/1m" "$port"
	start_relayd relayd-1m "$tmp/1m" "$port"
	measure relayd-1m 100 "http://127.0.0.1:$port/clicksend/sms/inbound"
	rss preloaded "$pid"
	stop_relayd relayd-1m "$pid"
fi

echo >&2
$helper table "$tmp/results"
