#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side, TAP: unmodified Debian programs against the named FIFOs
# /dev/aiopipe0..3. Needs "scripts/vm-run --host-root" (the host's /usr in the
# guest); without fio it prints "1..0 # SKIP host root not mounted".
#   cat and dd (GNU coreutils) through a node, byte-identical (md5sum);
#   fio, ioengine=libaio and io_uring, reading a node at bs 4k..64k and
#   iodepth 1..64 while dd writes 16 MiB into it: dd writes it all, fio
#   reads on to EOF without an error; python3 reading a node; perf stat and
#   perf record/report
#   (aiopipe's functions among the samples).
# The writer is started first and sleeps in open() until the reader comes,
# as FIFO users do. Test 1 checks exactly that; if it fails (a sleeping open
# must not hold up other opens), the later tests hold each node open O_RDWR
# until both ends have opened, so that they still test the data path.
#   CLIENTS_MB  bytes per transfer, MiB (default 16)
mb=${CLIENTS_MB:-16}
bytes=$((mb * 1048576))
t=/tmp/clients.$$
to=90
n=0
keeper=0

t0=$(date +%s)
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
	echo "# at $(($(date +%s) - t0)) s"
}
not_ok() {
	n=$((n + 1))
	echo "not ok $n - $1"
	echo "# at $(($(date +%s) - t0)) s"
}
skip() {
	n=$((n + 1))
	echo "ok $n - $1 # SKIP $2"
}
show() { [ ! -s "$1" ] || sed 's/^/# /' "$1"; }
md5() { md5sum <"$1" | cut -d' ' -f1; }

# kselftest's skip and the shared checks (lib/ksft.sh)
# shellcheck source=lib/ksft.sh
. "$(dirname "$0")/lib/ksft.sh"
ksft_require_module
if ! command -v fio >/dev/null 2>&1; then
	ksft_skip_all "host root not mounted (no fio; run in scripts/vm-run --host-root)"
fi
if [ ! -c /dev/aiopipe0 ] || [ ! -c /dev/aiopipe3 ]; then
	ksft_skip_all "no /dev/aiopipe0..3 (module not loaded, or fifos < 4)"
fi
mkdir -p "$t"
trap 'rm -rf "$t"' EXIT
head -c "$bytes" /dev/urandom >"$t/src"
want=$(md5 "$t/src")
echo "1..17"
echo "# $(uname -r); $(fio --version); $(dd --version | head -n 1); $(python3 --version 2>&1)"

# opened NODE: a pure reader (lr-x) and a pure writer (l-wx) have NODE open
opened() {
	# shellcheck disable=SC2010 # the mode column is the point
	l=$(ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep " -> $1\$")
	echo "$l" | grep -q '^lr-x' && echo "$l" | grep -q '^l-wx'
}

# xfer NODE WRITER READER: run the two shell commands on NODE, the writer
# first; sets wrc and rrc (exit statuses). With keeper=1, NODE is held open
# O_RDWR (which never sleeps) until both ends have opened it (or one of them
# is gone; perf record, say, takes many seconds to start under TCG).
xfer() {
	node=$1
	if [ "$keeper" = 1 ]; then
		exec 3<>"$node"
	fi
	timeout -k 5 $to sh -c "$2" 3>&- &
	w=$!
	[ "$keeper" = 1 ] || sleep 1
	timeout -k 5 $to sh -c "$3" 3>&- &
	r=$!
	if [ "$keeper" = 1 ]; then
		end=$(($(date +%s) + to - 10))
		while ! opened "$node" && kill -0 "$w" 2>/dev/null && kill -0 "$r" 2>/dev/null &&
			[ "$(date +%s)" -lt "$end" ]; do
			sleep 0.2
		done
		exec 3>&-
	fi
	wait "$r"
	rrc=$?
	wait "$w"
	wrc=$?
}

# dd_bytes FILE: the byte count in dd's summary on stderr
dd_bytes() { awk '/bytes/ { print $1; exit }' "$1"; }

# fio_field NAME: a number of the read side in fio's JSON report
fio_field() {
	awk -v k="\"$1\"" '/"read" : \{/ { r = 1 } r && $1 == k { gsub(/[ ,]/, "", $3); print $3; exit }' \
		"$t/fio.json" 2>/dev/null
}

# 1: writer first, sleeping in open(); then the reader opens
timeout -s KILL 20 dd if="$t/src" of=/dev/aiopipe0 bs=64k 2>"$t/w.err" &
w=$!
end=$(($(date +%s) + 10))
while ! grep -qs aiopipe_wait /proc/[0-9]*/wchan && [ "$(date +%s)" -lt "$end" ]; do
	sleep 0.2
done
timeout -s KILL 15 cat /dev/aiopipe0 >"$t/out" &
r=$!
sleep 3
# shellcheck disable=SC2013 # pids, one word each
rwchan=$(for p in $(cat "/proc/$r/task/$r/children" 2>/dev/null); do cat "/proc/$p/wchan"; done)
wait "$r"
rrc=$?
wait "$w"
wrc=$?
if [ "$rrc" -eq 0 ] && [ "$wrc" -eq 0 ] && [ "$(md5 "$t/out")" = "$want" ]; then
	ok "dd sleeps in open(/dev/aiopipe0, O_WRONLY), then cat opens it: both run, $mb MiB intact"
else
	not_ok "dd sleeps in open(/dev/aiopipe0, O_WRONLY), then cat opens it: both run, $mb MiB intact # cat exit $rrc (wchan ${rwchan:-?} after 3 s), dd exit $wrc"
	case "$rwchan" in
	*misc_open*) echo "# cat waited in misc_open(): the writer sleeping in aiopipe's ->open holds misc_mtx" ;;
	esac
	echo "# the tests below hold each node open O_RDWR until both ends are open"
	keeper=1
fi

# 2: cat | node | cat
xfer /dev/aiopipe1 "cat '$t/src' >/dev/aiopipe1" "cat /dev/aiopipe1 >'$t/out'"
got=$(md5 "$t/out")
if [ "$wrc" -eq 0 ] && [ "$rrc" -eq 0 ] && [ "$got" = "$want" ]; then
	ok "cat > /dev/aiopipe1, cat < /dev/aiopipe1: md5 $got"
else
	not_ok "cat > /dev/aiopipe1, cat < /dev/aiopipe1: md5 $got, want $want (exit $wrc/$rrc)"
fi

# 3-4: dd with different block sizes on each side
for sizes in "64k 4k" "1M 7k"; do
	# shellcheck disable=SC2086 # two words on purpose
	set -- $sizes
	xfer /dev/aiopipe2 "dd if='$t/src' of=/dev/aiopipe2 bs=$1 2>'$t/w.err'" \
		"dd if=/dev/aiopipe2 of='$t/out' bs=$2 2>'$t/r.err'"
	got=$(md5 "$t/out")
	if [ "$wrc" -eq 0 ] && [ "$rrc" -eq 0 ] && [ "$got" = "$want" ]; then
		ok "dd bs=$1 > /dev/aiopipe2, dd bs=$2 <: md5 $got"
	else
		show "$t/w.err"
		show "$t/r.err"
		not_ok "dd bs=$1 > /dev/aiopipe2, dd bs=$2 <: md5 $got, want $want (exit $wrc/$rrc)"
	fi
done

# 5-14: fio reads while dd writes. A pipe read may return less than asked
# (a short read: the reader was ahead of the writer), and fio's accounting of
# one is not exact: it re-issues the remainder without counting the first
# part in io_bytes (io_u.c, io_completed()), and counts the re-issue again
# towards --size (ioengines.c, td_io_queue()), so with --size equal to the
# stream it stops early and dd dies of SIGPIPE. fio is therefore given twice
# the stream and reads on to EOF (0-byte reads); the checks are that dd
# wrote every byte, fio ended without an error, and fio never saw more
# bytes than were written. Byte-exact streams are tests 1-4 and 15 (md5).
for engine in libaio io_uring; do
	for p in 4k:1 4k:64 16k:8 64k:1 64k:64; do
		bs=${p%:*} depth=${p#*:}
		name="fio ioengine=$engine bs=$bs iodepth=$depth reads /dev/aiopipe3 to EOF while dd writes $mb MiB"
		rm -f "$t/fio.json"
		xfer /dev/aiopipe3 "dd if='$t/src' of=/dev/aiopipe3 bs=64k 2>'$t/w.err'" \
			"fio --name=clients --filename=/dev/aiopipe3 --readonly --rw=read --ioengine=$engine --bs=$bs --iodepth=$depth --size=$((2 * mb))M --eta=never --output-format=json --output='$t/fio.json' 2>'$t/r.err'"
		fio_bytes=$(fio_field io_bytes)
		fio_short=$(fio_field short_ios)
		fio_bw=$(awk '/"read" : \{/ { r = 1 } r && /"bw_bytes"/ { gsub(/[ ,]/, "", $3); printf "%.1f", $3 / 1048576; exit }' "$t/fio.json" 2>/dev/null)
		fio_err=$(awk '/"error" :/ { gsub(/[ ,]/, "", $3); print $3; exit }' "$t/fio.json" 2>/dev/null)
		dd_w=$(dd_bytes "$t/w.err")
		if [ "$wrc" -eq 0 ] && [ "$rrc" -eq 0 ] && [ "$fio_err" = 0 ] &&
			[ "$dd_w" = "$bytes" ] && [ "${fio_bytes:-0}" -gt 0 ] &&
			[ "$fio_bytes" -le "$bytes" ]; then
			ok "$name # dd wrote $dd_w; fio io_bytes $fio_bytes, short reads ${fio_short:-?}; ${fio_bw:-?} MB/s"
		else
			show "$t/w.err"
			show "$t/r.err"
			not_ok "$name # fio exit $rrc error ${fio_err:-?} io_bytes ${fio_bytes:-?} short reads ${fio_short:-?}; dd exit $wrc wrote ${dd_w:-?}"
		fi
	done
done

# 15: python3 (the host's) reads a node
xfer /dev/aiopipe0 "dd if='$t/src' of=/dev/aiopipe0 bs=64k 2>/dev/null" \
	"python3 -c 'import hashlib, os
fd = os.open(\"/dev/aiopipe0\", os.O_RDONLY)
h = hashlib.md5()
while True:
    b = os.read(fd, 65536)
    if not b:
        break
    h.update(b)
print(h.hexdigest())' >'$t/py.out' 2>&1"
got=$(cat "$t/py.out")
if [ "$rrc" -eq 0 ] && [ "$got" = "$want" ]; then
	ok "python3 os.read() from /dev/aiopipe0: md5 $got"
else
	show "$t/py.out"
	not_ok "python3 os.read() from /dev/aiopipe0: md5 $got, want $want (exit $rrc)"
fi

# 16-17: perf, when it runs here (linux-perf is built for one kernel series)
if ! perf stat -e task-clock -o /dev/null -- true >"$t/perf.err" 2>&1; then
	reason="perf does not run on $(uname -r): $(head -n 1 "$t/perf.err")"
	skip "perf stat -e task-clock,context-switches on a reader" "$reason"
	skip "perf record -e cpu-clock: kernel and aiopipe symbols" "$reason"
else
	xfer /dev/aiopipe1 "dd if='$t/src' of=/dev/aiopipe1 bs=64k 2>/dev/null" \
		"perf stat -x, -e task-clock,context-switches -o '$t/pstat' -- dd if=/dev/aiopipe1 of='$t/out' bs=64k 2>/dev/null"
	if [ "$rrc" -eq 0 ] && [ "$(md5 "$t/out")" = "$want" ] &&
		grep -q '^[0-9.]*,msec,task-clock' "$t/pstat" &&
		grep -q '^[0-9]*,,context-switches' "$t/pstat"; then
		ok "perf stat -e task-clock,context-switches on a reader # $(grep -v '^#' "$t/pstat" | grep . | cut -d, -f1,3 | tr '\n' ' ')"
	else
		show "$t/pstat"
		not_ok "perf stat -e task-clock,context-switches on a reader (exit $rrc)"
	fi
	xfer /dev/aiopipe2 "head -c 8388608 '$t/src' | dd of=/dev/aiopipe2 bs=4k 2>/dev/null" \
		"perf record -q -N -e cpu-clock -o '$t/perf.data' -- dd if=/dev/aiopipe2 of=/dev/null bs=4k 2>/dev/null"
	perf report -i "$t/perf.data" --stdio --sort dso,sym 2>/dev/null | grep -v '^#' | grep . >"$t/report"
	# module symbols come from /proc/kallsyms: "[kernel.kallsyms] [k] aiopipe_read_iter"
	if [ "$rrc" -eq 0 ] && grep -q '\[k\] aiopipe_' "$t/report"; then
		ok "perf record -e cpu-clock: kernel and aiopipe symbols # $(grep -c '\[k\] aiopipe_' "$t/report") aiopipe functions sampled"
		grep '\[k\] aiopipe_' "$t/report" | head -n 5 | sed 's/^/# /'
	else
		head -n 20 "$t/report" | sed 's/^/# /'
		not_ok "perf record -e cpu-clock: kernel and aiopipe symbols (exit $rrc, writer $wrc)"
	fi
fi
exit 0
