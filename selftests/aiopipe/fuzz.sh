#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh): a bounded aiopipe-fuzz run as one TAP test.  It
# passes if the fuzzer finishes (its watchdog reports the seed of a hang)
# and the module's global counters come back to zero; kernel splats are
# caught by the VM runner.  docs/hardening.md.
#   FUZZ_ITERATIONS  iterations (default 20000: make check; make soak runs more)
#   FUZZ_SEED        seed (default: from the clock; printed)
#   FUZZ_ARGS        more aiopipe-fuzz options
#   FUZZ_TIMEOUT     seconds before it counts as hung (default iterations/20 + 120)
iters=${FUZZ_ITERATIONS:-20000}
err=/tmp/fuzz.$$.err
out=/tmp/fuzz.$$.csv
# about 400 iterations/s under TCG, a few times less with KASAN: be generous
timeout=${FUZZ_TIMEOUT:-$((iters / 20 + 120))}

seed=${FUZZ_SEED:-$(date +%s)$$}

# kselftest's skip and the shared checks (lib/ksft.sh)
# shellcheck source=lib/ksft.sh
. "$(dirname "$0")/lib/ksft.sh"
ksft_require_module
echo "1..1"
echo "# aiopipe-fuzz --iterations $iters --seed $seed ${FUZZ_ARGS:-}"
# The fuzzer's own watchdog (alarm) reports its last calls; this one fires
# first and shows where in the kernel it is stuck.
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
aiopipe-fuzz --iterations "$iters" --timeout "$((timeout + 60))" --seed "$seed" \
	${FUZZ_ARGS:-} >"$out" 2>"$err" &
pid=$!
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null && [ $(($(date +%s) - start)) -lt "$timeout" ]; do
	sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
	echo "# fuzz: still running after $timeout s: kernel stacks of its processes"
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = aiopipe-fuzz ] || continue
		echo "# pid ${d#/proc/} $(sed -n 's/^State:[[:space:]]*//p' "$d/status" 2>/dev/null)," \
			"wchan $(cat "$d/wchan" 2>/dev/null), pending signals" \
			"$(sed -n 's/^ShdPnd:[[:space:]]*//p' "$d/status" 2>/dev/null)" \
			"$(sed -n 's/^SigPnd:[[:space:]]*//p' "$d/status" 2>/dev/null)"
		sed 's/^/#   /' "$d/stack" 2>/dev/null
		# aiopipe ends with pending requests (their fdinfo lists them)
		for f in "$d"/fdinfo/*; do
			grep -q '^engine:' "$f" 2>/dev/null || continue
			grep -qE '^(read|write):' "$f" || continue
			echo "#   fd ${f##*/}:"
			sed 's/^/#     /' "$f"
		done
	done
	s=/sys/class/misc/aiopipe/stats
	echo "# module counters: pending_reads $(cat $s/pending_reads 2>/dev/null)," \
		"pending_writes $(cat $s/pending_writes 2>/dev/null)," \
		"pinned_pages $(cat $s/pinned_pages 2>/dev/null)"
	# blocked tasks (KERN_INFO: raise the console level) and every CPU's
	# backtrace go to the console
	dmesg -n 8 2>/dev/null
	echo w >/proc/sysrq-trigger 2>/dev/null
	echo l >/proc/sysrq-trigger 2>/dev/null
fi
# The fuzzer's watchdog ends it 60 s after ours fired; a process stuck in
# the kernel (D state) outlives that and SIGKILL: then report, don't wait.
rc=
while kill -0 "$pid" 2>/dev/null && [ $(($(date +%s) - start)) -lt $((timeout + 75)) ]; do
	sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
	kill -9 "$pid" 2>/dev/null
	sleep 5
	if kill -0 "$pid" 2>/dev/null; then
		echo "# fuzz: pid $pid survives SIGKILL: $(sed -n 's/^State:[[:space:]]*//p' "/proc/$pid/status")"
		rc=137
	fi
fi
if [ -z "$rc" ]; then
	wait "$pid"
	rc=$?
fi
sed 's/^/# /' "$err" | tail -n 40
[ -d /out ] && cat "$out" >>/out/fuzz.csv
# seed,iterations,seconds,forks,kills,result
summary=$(awk -F, 'NF == 6 { printf "seed %s, %s iterations in %s s, %s forks", $1, $2, $3, $4 }' "$out")
[ -n "$summary" ] || summary=$(sed -n 's/^aiopipe-fuzz: seed \([0-9]*\).*/seed \1/p' "$err" | head -n 1)
if [ "$rc" -eq 0 ]; then
	echo "ok 1 fuzz.${iters}_iterations # $summary"
else
	echo "not ok 1 fuzz.${iters}_iterations # exit $rc: $summary"
fi
rm -f "$err" "$out"
exit 0
