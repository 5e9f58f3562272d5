#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh): the async and pipe selftests and a short soak with
# failures injected into aiopipe (docs/hardening.md), as TAP.
#
#  1. the module's own fault attributes, /sys/kernel/debug/aiopipe/
#     fail_alloc, fail_pin, fail_copy (every allocation, pin and copy point),
#     at FAULT_PROBABILITY percent (default 5): each selftest binary must
#     terminate (its own results do not count: injected failures make tests
#     fail, with clean errnos), then the soak with --allow-faults must report
#     zero lost, duplicated or corrupted bytes and every request completed
#     exactly once;
#  2. the kernel's failslab and fail_page_alloc aimed at our processes only
#     (task-filter, make-it-fail set by each test the harness forks, see
#     AIOPIPE_FAIL_SELF in backend.h): the same, at SLAB_PROBABILITY
#     percent (default 1);
#  after each: faults off, and the global counters of pending requests,
#  pinned pages and channels back at zero.  Splats and leaks are the VM
#  runner's to catch (scripts/vm-run --kmemleak).
# Only kernels with CONFIG_FAULT_INJECTION_DEBUG_FS have the attributes:
# elsewhere the whole file is skipped.  async_trace is left out: it enables
# and disables tracepoints, which patches kernel text, and the runner gives
# that a single-threaded TCG boot of its own (scripts/check).
#   FAULT_PROBABILITY, SLAB_PROBABILITY, FAULT_SOAK_SECONDS (default 10),
#   FAULT_TESTS (selftest name globs, default "async_* pipe_*")
dbg=/sys/kernel/debug
fa=$dbg/aiopipe
bin=/opt/aiopipe/bin/selftests
logs=/out/faultinject
prob=${FAULT_PROBABILITY:-5}
slab_prob=${SLAB_PROBABILITY:-1}
secs=${FAULT_SOAK_SECONDS:-10}
tests=${FAULT_TESTS:-"async_* pipe_*"}
budget=100000000	# "times": counts down per injected failure

# kselftest's skip and the shared checks (lib/ksft.sh)
# shellcheck source=lib/ksft.sh
. "$(dirname "$0")/lib/ksft.sh"
ksft_require_module
# the directory alone is no proof: pause_points=1 creates $fa/pause
if [ ! -d "$fa/fail_alloc" ]; then
	ksft_skip_all "no fault injection on this kernel"
fi
mkdir -p "$logs"
n=0
tap() { # ok|fail NAME [COMMENT]
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n faultinject.$2${3:+ # $3}"
	else
		echo "not ok $n faultinject.$2${3:+ # $3}"
	fi
}

attr_on() { # DIR PROBABILITY
	echo 0 >"$1/probability"
	echo 1 >"$1/interval"
	echo "$budget" >"$1/times"
	echo 0 >"$1/space"
	echo 0 >"$1/verbose"
	echo "$2" >"$1/probability"
}
attr_off() { echo 0 >"$1/probability"; }
injected() { echo $((budget - $(cat "$1/times"))); }

aiopipe_attrs="$fa/fail_alloc $fa/fail_pin $fa/fail_copy"
kernel_attrs=
[ -d "$dbg/failslab" ] && kernel_attrs="$dbg/failslab"
[ -d "$dbg/fail_page_alloc" ] && kernel_attrs="$kernel_attrs $dbg/fail_page_alloc"

all_off() {
	for a in $aiopipe_attrs $kernel_attrs; do attr_off "$a"; done
}

counters_zero() { # PHASE
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		leaks=$(aiopipe-stat 2>/dev/null |
			awk '$1 ~ /^(pending_reads|pending_writes|pinned_pages|channels)$/ && $2 != 0')
		[ -z "$leaks" ] && break
		sleep 0.5
	done
	if [ -z "$leaks" ]; then
		tap ok "$1.counters_back_to_zero"
	else
		tap fail "$1.counters_back_to_zero" "$(echo "$leaks" | tr '\n' ' ')"
	fi
}

# run_one_test PREFIX... BINARY: sets rc, passed, failed
run_one_test() {
	log=$logs/$phase.$name.log
	timeout 900 "$@" >"$log" 2>&1
	rc=$?
	passed=$(grep -c '^ok ' "$log")
	failed=$(grep -c '^not ok ' "$log")
}

# run_tests PHASE PREFIX...: every selftest binary under injection
run_tests() {
	phase=$1
	shift
	for glob in $tests; do
		for t in "$bin"/$glob; do
			[ -x "$t" ] || continue
			name=$(basename "$t")
			[ "$name" != async_trace ] || continue
			run_one_test "$@" "$t"
			if [ "$rc" -eq 124 ] || [ "$rc" -gt 128 ]; then
				tap fail "$phase.$name.terminates" "exit $rc after $passed passed, $failed failed"
				# where it died: the kernel's unhandled-signal line, the log's end
				dmesg | grep -E "$name.*(segfault|trap)" | tail -n 3 | sed 's/^/# /'
				tail -n 5 "$logs/$phase.$name.log" | sed "s/^/#   /"
			else
				tap ok "$phase.$name.terminates" "$passed passed, $failed failed under injected faults"
			fi
		done
	done
}

# run_soak PHASE ARGS...
run_soak() {
	phase=$1
	shift
	aiopipe-soak --seconds "$secs" --allow-faults --header "$@" \
		>"$logs/$phase.soak.csv" 2>"$logs/$phase.soak.log"
	rc=$?
	sed 's/^/# /' "$logs/$phase.soak.log" | tail -n 20
	row=$(tail -n 1 "$logs/$phase.soak.csv")
	sum=$(echo "$row" | awk -F, 'NF > 20 { printf "seed %s, %s ops, %s bytes verified, %s fault errors, lost %s, duplicated %s, corrupt %s, bad completions %s", $1, $5, $12, $23, $13, $14, $15, $25 }')
	if [ "$rc" -eq 0 ]; then
		tap ok "$phase.soak_no_loss" "$sum"
	else
		tap fail "$phase.soak_no_loss" "exit $rc: $sum"
	fi
}

trap all_off EXIT

# --- 1: the module's own injection points -------------------------------------
for a in $aiopipe_attrs; do attr_on "$a" "$prob"; done
run_tests module
run_soak module
counts=""
for a in $aiopipe_attrs; do counts="$counts $(basename "$a")=$(injected "$a")"; done
all_off
echo "# module fault points, failures injected:$counts"
counters_zero module

# --- 2: failslab and fail_page_alloc, our processes only ----------------------
if [ -n "$kernel_attrs" ]; then
	for a in $kernel_attrs; do
		attr_on "$a" "$slab_prob"
		echo Y >"$a/task-filter"
		echo N >"$a/ignore-gfp-wait"
	done
	if [ -d "$dbg/fail_page_alloc" ]; then
		# order 0 is spared: a failed page-table or user-page fault would
		# call the OOM killer, which is not what this tests
		echo 1 >"$dbg/fail_page_alloc/min-order"
		echo Y >"$dbg/fail_page_alloc/ignore-gfp-highmem"
	fi
	tests=${FAULT_SLAB_TESTS:-"async_basic async_cancel pipe_basic"}
	# each forked test opts in, not the harness (selftests/aiopipe/backend.h)
	export AIOPIPE_FAIL_SELF=1
	run_tests kernel
	unset AIOPIPE_FAIL_SELF
	run_soak kernel --fail-self
	counts=""
	for a in $kernel_attrs; do counts="$counts $(basename "$a")=$(injected "$a")"; done
	all_off
	echo "# kernel fault points (our tasks only), failures injected:$counts"
	counters_zero kernel
fi
echo "1..$n"
exit 0
