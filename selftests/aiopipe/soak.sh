#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh): a short aiopipe-soak run as one TAP test.
# Several processes and threads over many channels, sync/async/vectored
# reads and writes, cancels, closes, kill -9 with requests pending, engine,
# filter and capacity changes; every byte checked (docs/hardening.md).
#   SOAK_SECONDS  run time (default 10)
#   SOAK_ARGS     more aiopipe-soak options (e.g. "--channels 16 --seed 42")
# The CSV row goes to /out/soak.csv when /out exists.
secs=${SOAK_SECONDS:-10}
err=/tmp/soak.$$.err
csv=/tmp/soak.$$.csv

echo "1..1"
# shellcheck disable=SC2086 # SOAK_ARGS is a list of options
aiopipe-soak --seconds "$secs" --header ${SOAK_ARGS:-} >"$csv" 2>"$err"
rc=$?
sed 's/^/# /' "$err"
sed 's/^/# /' "$csv"
[ -d /out ] && cat "$csv" >>/out/soak.csv
# seed,seconds,procs,channels,ops,... (see aiopipe-soak --help)
row=$(tail -n 1 "$csv")
summary=$(echo "$row" | awk -F, 'NF > 20 { printf "seed %s, %s s, %s ops, %s bytes verified, lost %s, duplicated %s, corrupt %s", $1, $2, $5, $12, $13, $14, $15 }')
if [ "$rc" -eq 0 ]; then
	echo "ok 1 soak.${secs}s # $summary"
else
	echo "not ok 1 soak.${secs}s # exit $rc: $summary"
fi
rm -f "$err" "$csv"
exit 0
