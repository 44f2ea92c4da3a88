#!/bin/sh
# SPDX-License-Identifier: ISC
# make fuzz: runs each libFuzzer target for FUZZ_SECONDS (default 60) on a corpus in a
# temp dir, seeded from tests/data (and tests/data/fuzz-regress/TARGET, inputs that once
# crashed it). One line per target; a crash, leak or broken check fails the run and keeps
# the log and the input in FUZZ_OUT (default ./fuzz-out).
#   usage: run.sh SRCDIR PROGRAM...
set -u

[ $# -ge 2 ] || { echo "usage: run.sh SRCDIR PROGRAM..." >&2; exit 64; }
data=$1/tests/data
shift
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-fuzz-out}
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/clicksend-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# The seed directories under tests/data for target $1.
seeds() {
	case $1 in
	decode-fuzz) echo webhooks ;;
	json-fuzz) echo webhooks api ;;
	config-fuzz) echo conf ;;
	answer-fuzz) echo api ;;
	*) echo "run.sh: no seeds for $1" >&2; return 1 ;;
	esac
}

# Copies the seeds of target $1 into the corpus dir $2, each name prefixed by its dir.
corpus() {
	dirs=$(seeds "$1") || return 1
	mkdir -p "$2"
	for d in $dirs fuzz-regress/$1; do
		[ -d "$data/$d" ] || continue
		for f in "$data/$d"/*; do
			[ -f "$f" ] && cp "$f" "$2/$(echo "$d" | tr / -)-$(basename "$f")"
		done
	done
	return 0
}

# The last value of "NAME: N" in libFuzzer's log $2 (its final stats and status lines).
fuzz_stat() {
	sed -n "s/.*$1: *\([0-9][0-9]*\).*/\1/p" "$2" | tail -n 1
}

failed=0
for prog in "$@"; do
	name=$(basename "$prog")
	log=$out/$name.log
	rm -f "$log" "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* \
		"$out/$name"-oom-*
	if ! corpus "$name" "$tmp/$name"; then
		failed=$((failed + 1))
		continue
	fi
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$prog" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/$name-" "$tmp/$name" >"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "PASS: $name (${seconds} s, $(fuzz_stat number_of_executed_units "$log") runs," \
			"cov $(fuzz_stat cov "$log"), corpus $(find "$tmp/$name" -type f | wc -l))"
		continue
	fi
	failed=$((failed + 1))
	echo "FAIL: $name (exit $rc; log $log)"
	grep -E '^(==[0-9]+== ?ERROR|SUMMARY|fuzz: |.*runtime error)|Test unit written' "$log" |
		head -n 5
done
[ "$failed" -eq 0 ]
