#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh): a short aiopipe-soak run as TAP.
# Several processes and threads over many channels, sync/async/vectored
# reads and writes, cancels, closes, kill -9 with requests pending, engine,
# filter and capacity changes; every byte checked (docs/hardening.md).
#
#  1. soak.Ns: the soak's own verdict (no byte lost, duplicated or corrupt);
#  2. soak.trace_every_queued_request_completes_once: the same run, seen
#     through aiopipe's tracepoints in a tracefs instance of its own
#     (docs/async.md section 15): every request (chan=, req=: ids are never
#     reused) is queued once and completed once, and no wake, retry or
#     cancel names a request that was never queued.  A second witness of
#     "exactly once", independent of the module's counters.  (Order is not
#     checked: events of two CPUs can carry the same timestamp.)
#  3. soak.ring.Ns: a second, shorter run (half of SOAK_SECONDS, at least
#     3 s) whose readers reap through rings of their own (--ring): every
#     byte through DATA and READ events, detaches and re-attaches.
#
#   SOAK_SECONDS  run time of test 1 (default 10)
#   SOAK_ARGS     more aiopipe-soak options (e.g. "--channels 16 --seed 42")
#   SOAK_TRACE_KB trace buffer per CPU (default 1024 KiB per second of
#                 soak, 4096 to 32768); an overflowed buffer fails test 2
# The CSV rows go to /out/soak.csv (one header) when /out exists.
secs=${SOAK_SECONDS:-10}
err=/tmp/soak.$$.err
csv=/tmp/soak.$$.csv
# 10 s of soak on 6.12: 34000 events of about 50 bytes, on 2 CPUs: 10x room
kb=$((secs * 1024))
[ "$kb" -ge 4096 ] || kb=4096
[ "$kb" -le 32768 ] || kb=32768
trace_kb=${SOAK_TRACE_KB:-$kb}

# trace_start: an instance recording only aiopipe's events; sets $inst.
# 1: no tracefs here; 2: tracefs without aiopipe's events
trace_start() {
	root=/sys/kernel/tracing
	[ -d "$root/instances" ] ||
		mount -t tracefs nodev "$root" 2>/dev/null || return 1
	inst=$root/instances/aiopipe-soak-$$
	mkdir "$inst" || return 1
	[ -d "$inst/events/aiopipe" ] || return 2
	echo "$trace_kb" >"$inst/buffer_size_kb" &&
		echo global >"$inst/trace_clock" &&
		echo 1 >"$inst/events/aiopipe/enable"
}

# trace_check: prints "ok" or the first violations, with the counts
trace_check() {
	echo 0 >"$inst/events/aiopipe/enable"
	awk '
	/^# entries-in-buffer\/entries-written:/ {
		split($3, e, "/")
		if (e[1] != e[2])
			bad[++nb] = "trace buffer overflowed: " e[1] " of " e[2] " events kept (SOAK_TRACE_KB)"
	}
	/^#/ { next }
	{
		ev = ""; c = ""; r = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^aiopipe_[a-z]+:$/) ev = substr($i, 9, length($i) - 9)
			else if ($i ~ /^chan=/) c = substr($i, 6)
			else if ($i ~ /^req=/) r = substr($i, 5)
		}
		if (ev == "" || c == "" || r == "") next
		r = c "." r
		n[ev]++
		seen[r] = 1
		if (ev == "queue") nq[r]++
		else if (ev == "complete") nc[r]++
		else if (!(r in first)) first[r] = $0
	}
	END {
		for (r in seen) {
			if (nq[r] != 1 || nc[r] != 1)
				bad[++nb] = sprintf("chan.req %s: queued %d, completed %d times", r, nq[r], nc[r])
			if (!nq[r] && (r in first))
				bad[++nb] = "never queued: " first[r]
		}
		summary = sprintf("queue %d, complete %d, wake %d, retry %d, cancel %d", n["queue"], n["complete"], n["wake"], n["retry"], n["cancel"])
		if (!nb) { print "ok " summary; exit }
		print "bad " summary
		for (i = 1; i <= nb && i <= 10; i++) print "# " bad[i]
	}' "$inst/trace"
}

# soak_test N NAME OPTION...: one aiopipe-soak run as TAP test N; its CSV
# row (seed,seconds,procs,channels,ops,... see aiopipe-soak --help) also
# goes to /out/soak.csv
soak_test() {
	n=$1 tname=$2
	shift 2
	# shellcheck disable=SC2086 # SOAK_ARGS is a list of options
	aiopipe-soak "$@" --header ${SOAK_ARGS:-} >"$csv" 2>"$err"
	rc=$?
	sed 's/^/# /' "$err"
	sed 's/^/# /' "$csv"
	if [ -d /out ]; then
		# the header once, then a row per run
		if [ -s /out/soak.csv ]; then
			tail -n 1 "$csv" >>/out/soak.csv
		else
			cat "$csv" >/out/soak.csv
		fi
	fi
	summary=$(tail -n 1 "$csv" | awk -F, 'NF > 20 { printf "seed %s, %s s, %s ops, %s bytes verified, lost %s, duplicated %s, corrupt %s", $1, $2, $5, $12, $13, $14, $15 }')
	if [ "$rc" -eq 0 ]; then
		echo "ok $n $tname # $summary"
	else
		echo "not ok $n $tname # exit $rc: $summary"
	fi
}

# kselftest's skip and the shared checks (lib/ksft.sh)
# shellcheck source=lib/ksft.sh
. "$(dirname "$0")/lib/ksft.sh"
ksft_require_module
echo "1..3"
inst=
trace_start
traced=$?
soak_test 1 "soak.${secs}s" --seconds "$secs"
name=soak.trace_every_queued_request_completes_once
if [ "$traced" -eq 1 ]; then
	echo "ok 2 $name # SKIP no tracefs instance here (CONFIG_EVENT_TRACING)"
elif [ "$traced" -ne 0 ]; then
	echo "not ok 2 $name # tracefs has no aiopipe events: a module without tracepoints?"
else
	verdict=$(trace_check)
	case "$verdict" in
	ok*) echo "ok 2 $name # ${verdict#ok }" ;;
	*)
		echo "not ok 2 $name # $(echo "$verdict" | head -n 1 | cut -c5-)"
		echo "$verdict" | tail -n +2
		;;
	esac
fi
[ -z "$inst" ] || rmdir "$inst" 2>/dev/null
rsecs=$((secs / 2))
[ "$rsecs" -ge 3 ] || rsecs=3
soak_test 3 "soak.ring.${rsecs}s" --ring --seconds "$rsecs"
rm -f "$err" "$csv"
exit 0
