#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh): a bounded aiopipe-fuzz run as one TAP test.  It
# passes if the fuzzer finishes (its watchdog reports the seed of a hang)
# and the module's global counters come back to zero; kernel splats are
# caught by the VM runner.  docs/hardening.md.
#   FUZZ_ITERATIONS  iterations (default 3000: make check; make soak runs more)
#   FUZZ_SEED        seed (default: from the clock; printed)
#   FUZZ_ARGS        more aiopipe-fuzz options
#   FUZZ_TIMEOUT     seconds before it counts as hung (default iterations/20 + 120)
iters=${FUZZ_ITERATIONS:-3000}
err=/tmp/fuzz.$$.err
out=/tmp/fuzz.$$.csv
# about 400 iterations/s under TCG, a few times less with KASAN: be generous
timeout=${FUZZ_TIMEOUT:-$((iters / 20 + 120))}

seed=${FUZZ_SEED:-$(date +%s)$$}

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
	for p in $(pgrep aiopipe-fuzz); do
		echo "# pid $p $(cat "/proc/$p/wchan" 2>/dev/null) $(sed -n 's/^State:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)"
		sed 's/^/#   /' "/proc/$p/stack" 2>/dev/null
	done
	# blocked tasks and every CPU's backtrace go to the console
	echo w >/proc/sysrq-trigger 2>/dev/null
	echo l >/proc/sysrq-trigger 2>/dev/null
fi
wait "$pid"
rc=$?
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
