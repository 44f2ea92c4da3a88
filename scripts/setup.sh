#!/bin/sh
# SPDX-License-Identifier: ISC
# Sets up a Debian 12 machine for clicksend-relay and builds it.
#   scripts/setup.sh deps   install the Debian packages the build and the tests need
#   scripts/setup.sh run    deps, build, run the daemon in the foreground (dev config, ./var)
#   scripts/setup.sh test   deps, build and run the whole test suite twice (plain and
#                           ASan+UBSan), make fuzz (clang, each fuzzer for FUZZ_SECONDS,
#                           default 60) and make distcheck; the last line is
#                           "N passed, N failed[, N skipped]"
#   scripts/setup.sh bench  deps plus wrk, nginx and webhook, then sh bench/run.sh (builds
#                           in _build/bench with -O2; BENCH_SECONDS per wrk run, default 10)
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config python3 sqlite3 curl
ca-certificates libevent-dev libsqlite3-dev libcurl4-openssl-dev libyajl-dev libsystemd-dev
libinih-dev libssl-dev check clang libclang-rt-dev llvm"
# Only for the benchmark (bench/run.sh): the load generator and the two reference servers
# (nginx-light unless another nginx package already provides /usr/sbin/nginx).
BENCH_PACKAGES="wrk webhook"

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

# deps [EXTRA_PACKAGES]: installs whatever of PACKAGES and EXTRA_PACKAGES is missing.
deps() {
	missing=""
	for p in $PACKAGES ${1:-}; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "setup: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
}

bootstrap() {
	[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] ||
		autoreconf -fi
}

# build DIR [configure options...]
build() {
	dir=$1
	shift
	mkdir -p "$dir"
	(cd "$dir" && { [ -f Makefile ] || "$top/configure" -q "$@"; } && make -s -j"$jobs")
}

# Adds one build's automake test-suite.log totals to the running sums.
count() {
	log=$1/test-suite.log
	if [ ! -f "$log" ]; then
		failed=$((failed + 1))
		return
	fi
	n() { sed -n "s/^# $1: *\([0-9]*\).*/\1/p" "$log" | head -n 1; }
	passed=$((passed + $(n PASS) + $(n XFAIL)))
	failed=$((failed + $(n FAIL) + $(n XPASS) + $(n ERROR)))
	skipped=$((skipped + $(n SKIP)))
}

# check DIR [configure options...]: build and make check, never stopping the script.
check() {
	dir=$1
	rm -f "$dir/test-suite.log"
	if build "$@"; then
		(cd "$dir" && make -s -j"$jobs" check) || true
	fi
	count "$dir"
}

run_tests() {
	passed=0 failed=0 skipped=0
	check _build/default
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		check _build/sanitizers --enable-sanitizers
	if build _build/fuzz CC=clang --enable-fuzzers &&
		(cd _build/fuzz && make -s fuzz >fuzz.out 2>&1); then
		passed=$((passed + 1))
		echo "PASS: make fuzz"
	else
		failed=$((failed + 1))
		echo "FAIL: make fuzz (see _build/fuzz/fuzz.out)"
		tail -n 20 _build/fuzz/fuzz.out 2>/dev/null
	fi
	if (cd _build/default && make -s distcheck >distcheck.out 2>&1); then
		passed=$((passed + 1))
		echo "PASS: make distcheck"
	else
		failed=$((failed + 1))
		echo "FAIL: make distcheck (see _build/default/distcheck.out)"
		tail -n 30 _build/default/distcheck.out
	fi
	summary="$passed passed, $failed failed"
	[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
	echo "$summary"
	[ "$failed" -eq 0 ]
}

case "${1:-}" in
deps) deps ;;
run)
	deps
	bootstrap
	build _build/default
	mkdir -p var
	exec _build/default/src/clicksend-relayd -c etc/clicksend-relay.dev.conf
	;;
test)
	deps
	bootstrap
	run_tests
	;;
bench)
	[ -x /usr/sbin/nginx ] || BENCH_PACKAGES="$BENCH_PACKAGES nginx-light"
	deps "$BENCH_PACKAGES"
	exec sh bench/run.sh
	;;
*)
	echo "usage: scripts/setup.sh deps|run|test|bench" >&2
	exit 64
	;;
esac
