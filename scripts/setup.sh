#!/bin/sh
# SPDX-License-Identifier: ISC
# Sets up a Debian 12 machine for clicksend-relay and builds it.
#   scripts/setup.sh deps   install the Debian packages the build and the tests need
#   scripts/setup.sh run    deps, build, run the daemon in the foreground (dev config, ./var)
#   scripts/setup.sh test   deps, build and run the whole test suite twice (plain and
#                           ASan+UBSan), make fuzz (clang, each fuzzer for FUZZ_SECONDS,
#                           default 60), make distcheck and the Debian package (as deb,
#                           without its unit tests); the last line is
#                           "N passed, N failed[, N skipped]"
#   scripts/setup.sh deb    deps plus debhelper and lintian, build the Debian package (unit
#                           tests included unless DEB_BUILD_OPTIONS says nocheck) into
#                           _build/deb, copy the .deb to the top and run lintian on it; fails
#                           on any lintian error or warning, or if the package lacks a file
#                           README's table names or its purge would leave the store
#   scripts/setup.sh bench  deps plus wrk, nginx and webhook, then sh bench/run.sh (builds
#                           in _build/bench with -O2; BENCH_SECONDS per wrk run, default 10;
#                           its PostgreSQL runs use the postgresql of PACKAGES)
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config python3 sqlite3 curl
ca-certificates libevent-dev libsqlite3-dev libcurl4-openssl-dev libyajl-dev libsystemd-dev
libinih-dev libssl-dev libpq-dev postgresql check clang libclang-rt-dev llvm"
# Only for the benchmark (bench/run.sh): the load generator and the two reference servers
# (nginx-light unless another nginx package already provides /usr/sbin/nginx).
BENCH_PACKAGES="wrk webhook"
# For the Debian package (dpkg-buildpackage and its build dependencies, then lintian).
DEB_PACKAGES="dpkg-dev debhelper lintian"

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
	# The tests start PostgreSQL servers of their own; the package's default cluster (a
	# server on port 5432 started at install) is not wanted. Only when nothing says otherwise.
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold $missing
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

# failed_logs DIR: what failed in DIR's test logs (distcheck's too), so CI's output names it.
failed_logs() {
	find "$1" -name '*.log' ! -name test-suite.log 2>/dev/null | while read -r log; do
		grep -E '^(not ok|Bail out)' "$log" | grep -q -v '# TODO' || continue
		echo "--- $log"
		grep -E -A 8 '^(not ok|Bail out)' "$log" | grep -v '# TODO' | head -n 40
	done | head -n 200
}

# check DIR [configure options...]: build and make check, never stopping the script.
check() {
	dir=$1
	rm -f "$dir/test-suite.log"
	if build "$@"; then
		(cd "$dir" && make -s -j"$jobs" check) || true
	fi
	count "$dir"
	if grep -q -E '^# (FAIL|ERROR): *[1-9]' "$dir/test-suite.log" 2>/dev/null; then
		failed_logs "$dir"
	fi
}

# The package's version must be configure.ac's with a Debian revision (0.1.0 -> 0.1.0-1).
deb_version_ok() {
	version=$(sed -n 's/^AC_INIT(\[clicksend-relay\], \[\([^]]*\)\].*/\1/p' configure.ac)
	changelog=$(dpkg-parsechangelog -S Version)
	case $changelog in
	"$version"-[0-9]*) return 0 ;;
	esac
	echo "setup: debian/changelog says $changelog, configure.ac $version" >&2
	return 1
}

# deb_options OPTIONS: OPTIONS plus parallel=JOBS unless they say how parallel already.
deb_options() {
	case " $1 " in
	*" parallel="*) echo "$1" ;;
	*) echo "${1:+$1 }parallel=$jobs" ;;
	esac
}

# The files the README's package table promises, as dpkg-deb -c names them.
DEB_FILES="./usr/sbin/clicksend-relayd ./usr/bin/clicksend-relay
./etc/clicksend-relay/clicksend-relay.conf ./lib/systemd/system/clicksend-relayd.service
./lib/systemd/system/clicksend-relayd.socket ./usr/share/clicksend-relay/schema.sql
./usr/share/man/man8/clicksend-relayd.8.gz ./usr/share/man/man1/clicksend-relay.1.gz
./usr/share/man/man5/clicksend-relay.conf.5.gz ./usr/share/doc/clicksend-relay/README.md.gz"

# deb_contents_ok DEB: DEB_FILES are in it, the config is its conffile, and its postinst
# neither enables nor starts a unit (debhelper's enable and start snippets are absent).
deb_contents_ok() {
	files=$(dpkg-deb -c "$1" | awk '{ print $6 }')
	for f in $DEB_FILES; do
		echo "$files" | grep -q -x -F "$f" || { echo "setup: $1 lacks $f" >&2; return 1; }
	done
	dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles |
		grep -q -x -F /etc/clicksend-relay/clicksend-relay.conf ||
		{ echo "setup: $1: the config is not a conffile" >&2; return 1; }
	if dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./postinst |
		grep -q -e 'was-enabled defaults to true' -e '_dh_action=start' \
			-e 'deb-systemd-invoke start'; then
		echo "setup: $1: its postinst enables or starts a unit" >&2
		return 1
	fi
}

# deb_purge_ok: debian/postrm purge, run on a scratch DPKG_ROOT laid out as systemd leaves it
# (the state directory in /var/lib/private, a link to it, the two credentials), removes it all.
deb_purge_ok() {
	root=$(mktemp -d)
	mkdir -p "$root/var/lib/private/clicksend-relay" "$root/etc/clicksend-relay"
	: >"$root/var/lib/private/clicksend-relay/events.db"
	ln -s private/clicksend-relay "$root/var/lib/clicksend-relay"
	: >"$root/etc/clicksend-relay/api-key"
	: >"$root/etc/clicksend-relay/store-password"
	DPKG_ROOT=$root sh debian/postrm purge
	left=$(cd "$root" && find var/lib/private/clicksend-relay var/lib/clicksend-relay \
		etc/clicksend-relay/api-key etc/clicksend-relay/store-password 2>/dev/null || true)
	rm -rf "$root"
	[ -z "$left" ] && return 0
	echo "setup: debian/postrm purge leaves:" >&2
	echo "$left" >&2
	return 1
}

# deb DEB_BUILD_OPTIONS: dpkg-buildpackage builds in the tree it is given and writes next to
# it, so it gets a copy in _build/deb/clicksend-relay (the checkout and its out-of-tree builds
# stay as they are); the .deb, .buildinfo and .changes land in _build/deb. Then lintian on
# the .changes, which covers the .deb: any error or warning fails; then deb_contents_ok and
# deb_purge_ok.
deb() {
	deb_version_ok || return 1
	rm -rf _build/deb
	mkdir -p _build/deb/clicksend-relay
	tar -cf - --anchored --exclude='./_build*' --exclude=./.git --exclude=./var \
		--exclude='./clicksend-relay[-_]*' . | tar -xf - -C _build/deb/clicksend-relay ||
		return 1
	(cd _build/deb/clicksend-relay &&
		DEB_BUILD_OPTIONS="$(deb_options "$1")" dpkg-buildpackage -b -us -uc) || return 1
	lintian --fail-on error,warning _build/deb/clicksend-relay_*.changes || return 1
	deb_contents_ok _build/deb/clicksend-relay_*_*.deb && deb_purge_ok
}

run_tests() {
	passed=0 failed=0 skipped=0
	check _build/default
	# The second pass of the store-facing files on PostgreSQL (tests/integration/pg/) runs
	# in the plain build only: the sanitizer build and distcheck run every test once.
	CSR_PG_RERUN=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1 check _build/sanitizers --enable-sanitizers
	if build _build/fuzz CC=clang --enable-fuzzers &&
		(cd _build/fuzz && make -s fuzz >fuzz.out 2>&1); then
		passed=$((passed + 1))
		echo "PASS: make fuzz"
	else
		failed=$((failed + 1))
		echo "FAIL: make fuzz (see _build/fuzz/fuzz.out)"
		tail -n 20 _build/fuzz/fuzz.out 2>/dev/null
	fi
	if (cd _build/default && CSR_PG_RERUN=no make -s distcheck >distcheck.out 2>&1); then
		passed=$((passed + 1))
		echo "PASS: make distcheck"
	else
		failed=$((failed + 1))
		echo "FAIL: make distcheck (see _build/default/distcheck.out)"
		tail -n 30 _build/default/distcheck.out
		failed_logs _build/default
	fi
	if deb nocheck >_build/deb.out 2>&1; then
		passed=$((passed + 1))
		echo "PASS: deb"
	else
		failed=$((failed + 1))
		echo "FAIL: deb (see _build/deb.out)"
		tail -n 30 _build/deb.out
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
	deps "$DEB_PACKAGES"
	bootstrap
	run_tests
	;;
deb)
	deps "$DEB_PACKAGES"
	deb "${DEB_BUILD_OPTIONS:-}"
	rm -f clicksend-relay_*.deb
	cp _build/deb/clicksend-relay_*.deb .
	echo "setup: install it with: apt-get install ./$(ls clicksend-relay_*.deb)"
	;;
bench)
	[ -x /usr/sbin/nginx ] || BENCH_PACKAGES="$BENCH_PACKAGES nginx-light"
	deps "$BENCH_PACKAGES"
	exec sh bench/run.sh
	;;
*)
	echo "usage: scripts/setup.sh deps|run|test|deb|bench" >&2
	exit 64
	;;
esac
