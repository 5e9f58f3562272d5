#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# usage: kmemleak-check.sh [--baseline|--help]
# Guest side: run kmemleak explicitly and print what it suspects.
#
#   kmemleak-check.sh              scan (twice, after waiting for young objects
#                                  to age) and print the report; exit 1 if any
#                                  leak is suspected, 0 if none
#   kmemleak-check.sh --baseline   scan and then forget everything suspected so
#                                  far (boot-time noise); call it before the tests
#   kmemleak-check.sh --help
#
# Exit 2: kmemleak is not available (not a debug kernel, or kmemleak switched
# itself off, e.g. after running out of its object pool).
# kmemleak reports only objects older than about 5 s and confirms a suspect on a
# second scan, hence the wait and the two scans. The debug kernel has no
# automatic scan (CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN=n): reports come only from here.
# POSIX sh (busybox).
set -eu

KL=/sys/kernel/debug/kmemleak
AGE=${KMEMLEAK_AGE:-6}

usage() {
	sed -n '3,18s/^# \{0,1\}//p' "$0"
}

mode=check
case "${1:-}" in
'') ;;
--baseline) mode=baseline ;;
-h | --help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac

if [ ! -e "$KL" ]; then
	mountpoint -q /sys/kernel/debug 2>/dev/null ||
		mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
fi
if [ ! -e "$KL" ]; then
	echo "kmemleak: $KL not found (kernel without CONFIG_DEBUG_KMEMLEAK?)" >&2
	exit 2
fi

scan() {
	if ! echo scan >"$KL" 2>/dev/null; then
		echo "kmemleak: scan refused: kmemleak is disabled (see dmesg)" >&2
		exit 2
	fi
}

sleep "$AGE"
scan
scan

if [ "$mode" = baseline ]; then
	n=$(grep -c '^unreferenced object' "$KL" || true)
	echo clear >"$KL"
	echo "kmemleak: baseline taken ($n boot-time object(s) ignored from now on)"
	exit 0
fi

n=$(grep -c '^unreferenced object' "$KL" || true)
if [ "$n" -gt 0 ]; then
	echo "kmemleak: $n suspected memory leak(s):"
	cat "$KL"
	exit 1
fi
echo "kmemleak: no leaks suspected"
