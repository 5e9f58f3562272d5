#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# usage: sh scripts/pipetest-smoke.sh [PASSES]   (default 200 passes per run)
# Smoke run of the benchmark tools, inside the VM guest (busybox sh): every
# pipetest model on every backend with tiny sizes, the unsupported
# combinations (aio-read, aio-rw and ring on a kernel pipe must exit 2), the
# ring model's multi-buffer tokens, spills and owed events, the token checker
# itself, every aiostream mode, and aiopipe-stat.  io_uring-mshot needs Linux
# 6.7 (IORING_OP_READ_MULTISHOT): before, it must exit 2 saying "not on this
# kernel", reported as a skip.  Prints TAP; exits non-zero if any test failed.
#
# Environment: PIPETEST, AIOSTREAM, AIOPIPE_STAT (default: from PATH),
# SMOKE_TIMEOUT per run in seconds (default 60).

case "${1:-}" in
-h | --help) sed -n '3,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
PASSES=${1:-200}
PIPETEST=${PIPETEST:-pipetest}
AIOSTREAM=${AIOSTREAM:-aiostream}
AIOPIPE_STAT=${AIOPIPE_STAT:-aiopipe-stat}
TMO=${SMOKE_TIMEOUT:-60}
MODELS="poll select epoll epoll-et aio-poll aio-read io_uring-read io_uring-poll
io_uring-mshot threads aio-rw ring"
BACKENDS="pipe aiopipe-retry aiopipe-direct aiopipe-retry-nofilter"
STREAMS="aio-retry aio-direct aio-retry-nofilter aiopipe-rw pipe-rw pipe-splice"
log=${TMPDIR:-/tmp}/pipetest-smoke.$$
n=0
failed=0
skipped=0

# io_uring-mshot's exit status on this kernel: 0 from 6.7 on, 2 before
rel=$(uname -r)
major=${rel%%.*}
minor=${rel#*.}
minor=${minor%%[!0-9]*}
if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 7 ]; }; then
	mshot_want=0
else
	mshot_want=2
fi

# Plan: models x backends, + 3 pipe-nonblock io_uring, + 1 lazy re-arm run,
# + 1 depth-2 storm run, + 1 io_uring-mshot short of buffers, + 7 ring runs,
# + 3 checker self-tests, + streams, + 3 aiopipe-stat.
nm=0; for m in $MODELS; do nm=$((nm + 1)); done
nb=0; for b in $BACKENDS; do nb=$((nb + 1)); done
ns=0; for s in $STREAMS; do ns=$((ns + 1)); done
echo "1..$((nm * nb + 3 + 1 + 1 + 1 + 7 + 3 + ns + 3))"

# run WANT_STATUS DESCRIPTION CMD...: one TAP line; an expected exit 2
# whose message says "not on this kernel" is a skip
run() {
	want=$1 desc=$2
	shift 2
	n=$((n + 1))
	timeout "$TMO" "$@" >"$log.out" 2>"$log.err"
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$want" -eq 2 ] &&
		grep -q 'not on this kernel' "$log.err"; then
		skipped=$((skipped + 1))
		echo "ok $n - $desc # SKIP $(grep 'not on this kernel' "$log.err" | head -n 1)"
	elif [ "$rc" -eq "$want" ]; then
		echo "ok $n - $desc"
	else
		failed=$((failed + 1))
		echo "not ok $n - $desc (exit $rc, want $want)"
		echo "#   command: $*"
		sed 's/^/#   /' "$log.err" | tail -n 8
		[ "$rc" -ne 124 ] && [ "$rc" -ne 143 ] || echo "#   timed out after $TMO s"
	fi
}

for b in $BACKENDS; do
	for m in $MODELS; do
		want=0
		case "$m:$b" in
		aio-read:pipe | aio-rw:pipe | ring:pipe) want=2 ;;
		io_uring-mshot:*) want=$mshot_want ;;
		esac
		run "$want" "pipetest $m $b" \
			"$PIPETEST" --model "$m" --backend "$b" --pipes 4 --tokens 2 \
			--passes "$PASSES" --stall 20 --no-header
	done
done
for m in io_uring-read io_uring-poll io_uring-mshot; do
	want=0
	[ "$m" != io_uring-mshot ] || want=$mshot_want
	run "$want" "pipetest $m pipe-nonblock" \
		"$PIPETEST" --model "$m" --backend pipe --nonblock-pipes --pipes 4 \
		--tokens 2 --passes "$PASSES" --stall 20 --no-header
done
run 0 "pipetest aio-read aiopipe-direct depth 2, lazy re-arms (--rearm-batch 4)" \
	"$PIPETEST" --model aio-read --backend aiopipe-direct --depth 2 \
	--rearm-batch 4 --pipes 4 --tokens 2 --passes "$PASSES" --stall 20 --no-header
run 0 "pipetest aio-read aiopipe-retry-nofilter depth 2 (retry-storm workload)" \
	"$PIPETEST" --model aio-read --backend aiopipe-retry-nofilter --depth 2 \
	--pipes 4 --tokens 2 --passes "$PASSES" --stall 20 --no-header
# one buffer of 5 bytes: every read ends the multishot request (-ENOBUFS)
# and every token comes in pieces
run "$mshot_want" "pipetest io_uring-mshot pipe, 1 buffer of 5 bytes (-ENOBUFS re-arms, split tokens)" \
	env PIPETEST_MSHOT_BUFS=1 PIPETEST_MSHOT_BUF_SIZE=5 \
	"$PIPETEST" --model io_uring-mshot --backend pipe --pipes 4 --tokens 2 \
	--passes "$PASSES" --stall 20 --no-header
# ring: N, T, S around the sizes pipetest picks (buffers of S rounded up to a
# power of two, at most 64 KiB), then the knobs that force the other paths
ring_run() { # DESCRIPTION N T S [env VAR=VALUE...]
	rdesc=$1 rn=$2 rt=$3 rs=$4
	shift 4
	run 0 "pipetest ring aiopipe-retry N=$rn T=$rt S=$rs, $rdesc" \
		env "$@" "$PIPETEST" --model ring --backend aiopipe-retry --pipes "$rn" \
		--tokens "$rt" --size "$rs" --passes "$PASSES" --stall 20 --no-header
}
ring_run "a token back to its own pipe" 1 1 12
ring_run "every pipe holds a token" 16 16 100
ring_run "a token fills one 64 KiB buffer" 4 2 65536
ring_run "a token in 2 buffers of 64 KiB" 4 2 100000
ring_run "a token in 16 buffers of 64 B" 4 2 1000 PIPETEST_RING_BUF_SIZE=64
ring_run "1 buffer: writes spill into the pipe (READ events)" 4 2 300 PIPETEST_RING_BUFS=1
ring_run "1 event slot: events owed until the ring has room" 4 2 300 PIPETEST_RING_ENTRIES=1
run 1 "pipetest checker catches a corrupt token (epoll pipe)" \
	"$PIPETEST" --model epoll --backend pipe --pipes 4 --tokens 2 \
	--passes "$PASSES" --inject-corruption $((PASSES / 2 + 1)) --no-header
run 1 "pipetest checker catches a corrupt token (aio-read aiopipe-direct, 4 KiB)" \
	"$PIPETEST" --model aio-read --backend aiopipe-direct --pipes 4 --tokens 2 \
	--size 4096 --passes "$PASSES" --inject-corruption $((PASSES / 2 + 1)) --no-header
run 1 "pipetest checker catches a corrupt token (ring aiopipe-retry, 2 buffers per token)" \
	"$PIPETEST" --model ring --backend aiopipe-retry --pipes 4 --tokens 2 \
	--size 100000 --passes "$PASSES" --inject-corruption $((PASSES / 2 + 1)) --no-header
for s in $STREAMS; do
	run 0 "aiostream $s" "$AIOSTREAM" --mode "$s" --block 16k --depth 4 \
		--mbytes 4 --stall 20 --no-header
done
run 0 "aiopipe-stat" "$AIOPIPE_STAT"
run 0 "aiopipe-stat --csv --watch" "$AIOPIPE_STAT" --csv --watch 0.1 --count 2
run 0 "aiopipe-stat --path /dev/aiopipe0 (one channel)" "$AIOPIPE_STAT" --path /dev/aiopipe0
rm -f "$log.out" "$log.err"
if [ "$skipped" -eq 0 ]; then
	echo "# pipetest-smoke: $((n - failed)) passed, $failed failed"
else
	echo "# pipetest-smoke: $((n - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
[ "$failed" -eq 0 ]
