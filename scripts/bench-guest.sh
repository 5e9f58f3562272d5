#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# usage: sh bench-guest.sh [--quick] [--runs R] [--seconds D] [--warmup-round] [--only FIGS]
# The benchmark sweeps, run inside the VM guest by scripts/bench (busybox sh:
# no bash-isms).  Writes raw CSV into $OUT (default /out); the host
# aggregates (median, min, max), plots and writes the report.
#
# FIGS is a comma list of: grid fig1 fig4 fig5 storm stream (default: all).
# --warmup-round: every pipetest run first passes the tokens once over every
# pipe (N passes, untimed: a kernel pipe allocates its buffer page at its
# first write, an aiopipe channel its ring at creation), where that moves at
# most WARMUP_MAX bytes (N x S); runs too short for a round measure cold pipes.
# Repetitions are the outer loop, so slow drift of the machine (other jobs,
# thermal) spreads over every configuration instead of biasing a few.
#
# Output:
#   env.txt      kernel, CPU, memory, module parameters, the sweep settings
#   csv/TOOL-FIG-REP.csv  pipetest's or aiostream's CSV (with its header),
#                one line per run of that figure and repetition
#   errors.csv   runs that did not produce a result: fig,tool,config,status,reason
#   logs/FIG.log stderr of every run

OUT=${OUT:-/out}
PIPETEST=${PIPETEST:-pipetest}
AIOSTREAM=${AIOSTREAM:-aiostream}
QUICK=0
RUNS=
SECS=
WARMUP_MAX=0
ONLY=all
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '3,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	--quick) QUICK=1 ;;
	--runs) RUNS=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	--warmup-round) WARMUP_MAX=16777216 ;;
	--only) ONLY=$2; shift ;;
	*) echo "bench-guest: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

# ---- the sweeps -------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
	RUNS=${RUNS:-3}
	SECS=${SECS:-0.25}
	FIG1_N="1 128 4096"
	FIG4_S="12 4096 65536"
	FIG5_T="1 8 64"
	STREAM_B="4096 65536 1048576"
	GRID_PLOT_N=
	GRID_PLOT_S=
else
	RUNS=${RUNS:-3}
	SECS=${SECS:-0.8}
	FIG1_N="1 16 128 1024 4096 16384"
	FIG4_S="12 64 256 512 1024 4096 16384 65536"
	FIG5_T="1 2 8 32 64 122"
	STREAM_B="4096 16384 65536 262144 1048576"
	GRID_PLOT_N="16 1024 16384"
	GRID_PLOT_S="256 1024 16384"
fi
# The answer grid (T=1): every message size crossed with every pipe count,
# plus, for the plots, more pipe counts at S=12 and sizes at N=128.
GRID_S="12 4096 65536"
GRID_N="1 128 4096"
STREAM_D=8

# The answer grid: the aiopipe models (aio-read on both engines, ring
# mode), epoll level- and edge-triggered and the io_uring models on kernel
# pipes.  A model that this pipetest, module or kernel lacks exits 2 and is
# recorded so.
GRID_CONFIGS="epoll:pipe epoll-et:pipe io_uring-read:pipe io_uring-read:pipe-nonblock
io_uring-poll:pipe io_uring-mshot:pipe aio-read:aiopipe-retry aio-read:aiopipe-direct
aio-poll:aiopipe-retry epoll:aiopipe-retry ring:aiopipe-retry"

# Fig. 1: every model on a kernel pipe and on aiopipe (T=1, S=12).  The
# engine matters only for queued libaio requests (aio-read, aio-rw); the
# other models run identical code on either engine, so they use
# aiopipe-retry.  aio-rw: aio-read with the token write submitted as an
# IOCB_CMD_PWRITE in the same io_submit as the re-arms.  ring: every read
# end attached to one aiopipe ring (no libaio request: either engine).
FIG1_CONFIGS="poll:pipe poll:aiopipe-retry select:pipe select:aiopipe-retry
epoll:pipe epoll:aiopipe-retry aio-poll:pipe aio-poll:aiopipe-retry
aio-read:aiopipe-retry aio-read:aiopipe-direct aio-rw:aiopipe-direct
io_uring-read:pipe io_uring-read:pipe-nonblock io_uring-read:aiopipe-retry
io_uring-poll:pipe io_uring-poll:aiopipe-retry threads:pipe threads:aiopipe-retry
ring:aiopipe-retry"
# Fig. 4 (message size, N=128, T=1) and Fig. 5 (tokens in flight, N=128, S=12)
FIG4_CONFIGS="epoll:pipe epoll:aiopipe-retry aio-poll:aiopipe-retry
aio-read:aiopipe-retry aio-read:aiopipe-direct aio-rw:aiopipe-direct
io_uring-read:pipe io_uring-read:pipe-nonblock ring:aiopipe-retry"
FIG5_CONFIGS="poll:pipe epoll:pipe aio-poll:aiopipe-retry aio-read:aiopipe-retry
aio-read:aiopipe-direct aio-rw:aiopipe-direct io_uring-read:pipe
io_uring-read:pipe-nonblock ring:aiopipe-retry"
STREAM_MODES="aio-direct aio-retry aiopipe-rw pipe-rw pipe-splice"

# ---- helpers ------------------------------------------------------------------
# Per run: one fork of timeout and one exec of the tool; no sed/cat/awk, so
# that the driver's own cost stays small next to a 0.3 s run under TCG.
mkdir -p "$OUT/logs" "$OUT/csv"
COUNT_ONLY=0
total=0
done_n=0
failed=0
read -r T0 _ </proc/uptime
T0=${T0%.*}

want() { # FIG: is this figure selected?
	[ "$ONLY" = all ] && return 0
	case ",$ONLY," in *",$1,"*) return 0 ;; esac
	return 1
}

progress() {
	read -r now _ </proc/uptime
	echo "bench: [$done_n/$total $((${now%.*} - T0))s] $*"
}

# record_error FIG TOOL CONFIG STATUS LOGFILE
record_error() {
	reason=$(tail -n 1 "$5" | tr ',"' ";'" | cut -c1-300)
	[ -n "$reason" ] || reason="exit status $4"
	[ "$4" != 124 ] || reason="timed out (killed after the per-run limit)"
	echo "$1,$2,$3,$4,\"$reason\"" >>"$OUT/errors.csv"
	[ "$4" -eq 2 ] || {
		failed=$((failed + 1))
		echo "bench: FAILED (exit $4): $2 $3: $reason"
	}
}

# csvfile TOOL FIG REP: the raw CSV of one figure and repetition (with header)
csvfile() {
	f=$OUT/csv/$1-$2-$3.csv
	[ -e "$f" ] || "$1" --print-header >"$f"
}

# pt FIG REP MODEL BACKEND N T S [extra pipetest options...]
pt() {
	fig=$1 rep=$2 model=$3 backend=$4 n=$5 t=$6 s=$7
	shift 7
	if [ "$COUNT_ONLY" = 1 ]; then total=$((total + 1)); return; fi
	done_n=$((done_n + 1))
	progress "$fig rep $rep: $model $backend N=$n T=$t S=$s $*"
	log=$OUT/logs/$fig.log
	csvfile "$PIPETEST" "$fig" "$rep"
	settle 1 50
	w=0
	[ $((n * s)) -gt "$WARMUP_MAX" ] || w=$n
	b=$backend
	nb=
	if [ "$b" = pipe-nonblock ]; then b=pipe; nb=--nonblock-pipes; fi
	# shellcheck disable=SC2086 # $PT_PREFIX and $nb are option words
	timeout 180 $PT_PREFIX "$PIPETEST" --model "$model" --backend "$b" $nb \
		--pipes "$n" --tokens "$t" --size "$s" --seconds "$SECS" --warmup "$w" \
		--stall 30 --no-header "$@" >>"$f" 2>>"$log"
	rc=$?
	[ "$rc" -eq 0 ] || record_error "$fig" pipetest "$model:$backend:N=$n:T=$t:S=$s${*:+:$*}" "$rc" "$log"
}

# st FIG REP MODE B D [extra aiostream options]
st() {
	fig=$1 rep=$2 mode=$3 bs=$4 depth=$5
	shift 5
	if [ "$COUNT_ONLY" = 1 ]; then total=$((total + 1)); return; fi
	done_n=$((done_n + 1))
	progress "$fig rep $rep: aiostream $mode B=$bs D=$depth $*"
	log=$OUT/logs/$fig.log
	csvfile "$AIOSTREAM" "$fig" "$rep"
	settle 1 50
	# shellcheck disable=SC2086 # $PT_PREFIX is option words
	timeout 180 $PT_PREFIX "$AIOSTREAM" --mode "$mode" --block "$bs" --depth "$depth" \
		--seconds "$SECS" --stall 30 --no-header "$@" >>"$f" 2>>"$log"
	rc=$?
	[ "$rc" -eq 0 ] || record_error "$fig" aiostream "$mode:B=$bs:D=$depth${*:+:$*}" "$rc" "$log"
}

in_list() { # WORD LIST: is WORD one of the words of LIST?
	for w in $2; do [ "$w" = "$1" ] && return 0; done
	return 1
}

# grid_points: "S:N" of the grid, the table's cross product then the plots' extras
grid_points() {
	for s in $GRID_S; do
		for n in $GRID_N; do echo "$s:$n"; done
	done
	for n in $GRID_PLOT_N; do in_list "$n" "$GRID_N" || echo "12:$n"; done
	for s in $GRID_PLOT_S; do in_list "$s" "$GRID_S" || echo "$s:128"; done
}

# in_figs CONFIG N S: does the Fig. 1 or Fig. 4 sweep run this T=1 point?
# The grid reuses those runs (the report pools them) instead of repeating them.
in_figs() {
	want fig1 && [ "$3" = 12 ] && in_list "$2" "$FIG1_N" && in_list "$1" "$FIG1_CONFIGS" && return 0
	want fig4 && [ "$2" = 128 ] && in_list "$3" "$FIG4_S" && in_list "$1" "$FIG4_CONFIGS" && return 0
	return 1
}

# One repetition of everything selected.
sweep() {
	rep=$1
	if want grid; then
		for p in $(grid_points); do
			for c in $GRID_CONFIGS; do
				in_figs "$c" "${p#*:}" "${p%%:*}" ||
					pt grid "$rep" "${c%%:*}" "${c#*:}" "${p#*:}" 1 "${p%%:*}"
			done
		done
	fi
	if want fig1; then
		for n in $FIG1_N; do
			for c in $FIG1_CONFIGS; do
				pt fig1 "$rep" "${c%%:*}" "${c#*:}" "$n" 1 12
			done
		done
	fi
	if want fig4; then
		for s in $FIG4_S; do
			for c in $FIG4_CONFIGS; do
				pt fig4 "$rep" "${c%%:*}" "${c#*:}" 128 1 "$s"
			done
		done
	fi
	if want fig5; then
		for t in $FIG5_T; do
			for c in $FIG5_CONFIGS; do
				pt fig5 "$rep" "${c%%:*}" "${c#*:}" 128 "$t" 12
			done
		done
	fi
	if want storm; then
		# Retry storm (OLS 2004, 7.2 / Table 1): two reads queued per pipe
		# and a writer waiting for the drain (--drain-waiter), so every
		# read that empties a pipe wakes the next queued read with the
		# writer's key; filtering stops it, unfiltered it runs a futile
		# retry.  On 2 CPUs and pinned to one (taskset), where the bound
		# workqueue runs every retry on the submitter's CPU.
		for b in aiopipe-retry aiopipe-retry-nofilter; do
			for t in 1 8; do
				pt storm "$rep" aio-read "$b" 128 "$t" 12 --depth 2 --drain-waiter
				PT_PREFIX="taskset 1"
				pt storm-1cpu "$rep" aio-read "$b" 128 "$t" 12 --depth 2 --drain-waiter
				PT_PREFIX=
			done
		done
		for m in aio-retry aio-retry-nofilter; do
			st storm "$rep" "$m" 4096 "$STREAM_D"
			PT_PREFIX="taskset 1"
			st storm-1cpu "$rep" "$m" 4096 "$STREAM_D"
			PT_PREFIX=
		done
	fi
	if want stream; then
		for bs in $STREAM_B; do
			for m in $STREAM_MODES; do
				st stream "$rep" "$m" "$bs" "$STREAM_D"
			done
		done
	fi
}

# settle QUIET MAX: wait until nothing else runs on QUIET samples in a row,
# 0.1 s apart, at most MAX samples.  Right after boot the kernel's crypto
# self-tests (cryptomgr_test) take the CPU for about a second, which would
# halve the first runs; before every run, whatever the previous run left
# running would be charged to the next.  Runnable tasks in
# /proc/loadavg count the reader itself: 1 is quiet.
settle() {
	quiet=0
	i=0
	while :; do
		read -r _ _ _ rq _ </proc/loadavg
		if [ "${rq%/*}" -le 1 ]; then quiet=$((quiet + 1)); else quiet=0; fi
		i=$((i + 1))
		[ "$quiet" -lt "$1" ] && [ "$i" -lt "$2" ] || return 0
		sleep 0.1
	done
}

# ---- run ------------------------------------------------------------------------
PT_PREFIX=
settle 3 200
{
	echo "kernel=$(uname -r)"
	echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "cpus=$(nproc)"
	echo "mem_mib=$(($(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024))"
	echo "quick=$QUICK"
	echo "runs=$RUNS"
	echo "seconds=$SECS"
	echo "only=$ONLY"
	echo "warmup_round_max_bytes=$WARMUP_MAX"
	echo "grid_s=$GRID_S"
	echo "grid_n=$GRID_N"
	echo "grid_plot_n=$GRID_PLOT_N"
	echo "grid_plot_s=$GRID_PLOT_S"
	echo "fig1_n=$FIG1_N"
	echo "fig4_s=$FIG4_S"
	echo "fig5_t=$FIG5_T"
	echo "stream_b=$STREAM_B"
	echo "stream_depth=$STREAM_D"
	for p in /sys/module/aiopipe/parameters/*; do
		[ -r "$p" ] && echo "aiopipe.${p##*/}=$(cat "$p")"
	done
	echo "pipe_max_size=$(cat /proc/sys/fs/pipe-max-size)"
	echo "cmdline=$(cat /proc/cmdline)"
} >"$OUT/env.txt"
echo "fig,tool,config,status,reason" >"$OUT/errors.csv"

COUNT_ONLY=1
r=1
while [ "$r" -le "$RUNS" ]; do sweep "$r"; r=$((r + 1)); done
COUNT_ONLY=0
echo "bench: $(uname -r): $total runs ($RUNS repetitions, ${SECS}s each), figures: $ONLY"
r=1
while [ "$r" -le "$RUNS" ]; do sweep "$r"; r=$((r + 1)); done
read -r now _ </proc/uptime
echo "bench: $(uname -r): done in $((${now%.*} - T0)) s, $failed failed run(s)"
[ -e /dev/aiopipe ] && aiopipe-stat --csv >"$OUT/aiopipe-stat.csv" 2>/dev/null
exit 0
