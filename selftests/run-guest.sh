#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM guest (busybox sh): every selftest binary and guest-side
# test script, each one's TAP kept in /out/tap/NAME.tap and its exit status in
# /out/tap/status; then proves the module leaks nothing: the global counters
# of pending requests and pinned pages are zero and "rmmod aiopipe" succeeds.
# usage: run-guest.sh [NAME-GLOB... !NAME...]   (default: every test; a
#        list whose first word is "*" is followed by the pipetest smoke
#        run and the module leak/unload checks; "!NAME" leaves NAME out)
# Each test's start is also written to the kernel log, so that a report on
# the console names the test that was running. With a gcov-instrumented
# module (make coverage) the counters go to /out/gcov at the end.
set -u

bin=/opt/aiopipe/bin/selftests
scripts=/opt/aiopipe/selftests
out=/out/tap
globs=${*:-*}
per_test_timeout=${AIOPIPE_TEST_TIMEOUT:-900}

# excluded NAME: the list has "!NAME" (set by main)
skips=' '
excluded() {
	case "$skips" in *" $1 "*) return 0 ;; esac
	return 1
}

run_one() {
	name=$1
	shift
	excluded "$name" && return 0
	echo "# ---- $name"
	echo "aiopipe-selftest: $name" >/dev/kmsg 2>/dev/null
	t=$per_test_timeout
	# a suite of suites: every async_* and pipe_* binary under injected
	# faults (each bounded on its own), then two soaks
	[ "$name" != faultinject ] || t=$((per_test_timeout * 2))
	timeout "$t" "$@" >"$out/$name.tap" 2>&1
	rc=$?
	disarm_faults
	cat "$out/$name.tap"
	echo "$name $rc" >>"$out/status"
}

# A test killed by its timeout (faultinject.sh) cannot turn its injected
# faults off: no later test may run under them.
disarm_faults() {
	for a in /sys/kernel/debug/aiopipe/fail_* /sys/kernel/debug/failslab \
		/sys/kernel/debug/fail_page_alloc; do
		[ -w "$a/probability" ] && echo 0 >"$a/probability"
	done
	return 0
}

# A TAP file of our own for the leak and unload checks.
final_checks() {
	f=$out/module.tap
	echo "1..2" >"$f"
	# Deferred fput and work items may still be finishing: give them 5 s.
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		leaks=$(aiopipe-stat 2>/dev/null |
			awk '$1 ~ /^(pending_reads|pending_writes|pinned_pages|channels)$/ && $2 != 0')
		[ -z "$leaks" ] && break
		sleep 0.5
	done
	if [ -z "$leaks" ] && aiopipe-stat >/dev/null 2>&1; then
		echo "ok 1 module.counters_back_to_zero" >>"$f"
	else
		echo "not ok 1 module.counters_back_to_zero # $leaks" >>"$f"
	fi
	if rmmod aiopipe; then
		echo "ok 2 module.rmmod_when_idle" >>"$f"
	else
		echo "not ok 2 module.rmmod_when_idle" >>"$f"
	fi
	cat "$f"
	echo "module 0" >>"$out/status"
}

# The module's gcov counters (kept in debugfs after rmmod: gcov_persist=1),
# under their build path, for scripts/coverage. Nothing without gcov.
collect_gcov() {
	g=/sys/kernel/debug/gcov
	[ -d "$g" ] || return 0
	find "$g" -name '*.gcda' | while read -r f; do
		rel=${f#"$g"}
		mkdir -p "/out/gcov${rel%/*}"
		cat "$f" >"/out/gcov$rel"
	done
}

main() {
	mkdir -p "$out"
	: >"$out/status"
	for glob in $globs; do
		case "$glob" in !*) skips="$skips${glob#!} " ;; esac
	done
	for glob in $globs; do
		case "$glob" in !*) continue ;; esac
		set +f
		for t in "$bin"/$glob; do
			[ -x "$t" ] || continue
			run_one "$(basename "$t")" "$t"
		done
		for s in "$scripts"/aiopipe/$glob.sh; do
			[ -f "$s" ] || continue
			name=$(basename "$s" .sh)
			# a script named like a binary keeps its own results file
			[ ! -e "$bin/$name" ] || name=$name.sh
			run_one "$name" sh "$s"
		done
		set -f
	done
	case "$globs" in "*" | "* "*) ;; *) collect_gcov; return 0 ;; esac
	# every pipetest model and backend, tiny sizes: a broken model fails CI
	smoke=/opt/aiopipe/scripts/pipetest-smoke.sh
	[ -f "$smoke" ] && run_one pipetest_smoke sh "$smoke"
	final_checks
	collect_gcov
	return 0
}

set -f	# the globs name tests, not files in the current directory
main "$@"
