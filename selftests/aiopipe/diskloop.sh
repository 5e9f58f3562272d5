#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh or dash), TAP: disk and pipe I/O in one event loop.
# A random image goes onto the scratch disk of "scripts/vm-run --disk 384M"
# (/dev/vda), then aiocopy streams it from the disk (O_DIRECT libaio reads)
# through 1 and 4 aiopipes (libaio writes and reads, retry and direct
# engines, one io_getevents loop) into a file, and back from the file through
# the pipes onto the disk (O_DIRECT libaio writes) at fresh offsets; every
# copy is compared with the image byte for byte (cmp / md5sum), on top of
# aiocopy's own per-stream checksums. Then the threaded baselines (aiopipe and
# kernel pipes) once each, and the refusal of one loop on kernel pipes.
#   DISKLOOP_DEV  the scratch disk (default /dev/vda)
#   DISKLOOP_MB   image size in MiB (default 64); the disk needs 5 times that
# Without the disk (or aiocopy) it prints "1..0 # SKIP reason".
dev=${DISKLOOP_DEV:-/dev/vda}
mb=${DISKLOOP_MB:-64}
t=/tmp/diskloop.$$
n=0
to=300

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	echo "not ok $n - $1"
}
# show FILE: its lines as TAP comments
show() { sed 's/^/# /' "$1"; }

# KSFT_SKIP: kselftest runners count exit 4 as a skip, never a failure.
ksft_skip=4
# Nothing here means anything without the module: skip before anything runs.
if [ ! -c /dev/aiopipe ]; then
	why="aiopipe module not loaded (no /dev/aiopipe): modprobe aiopipe"
	[ ! -d /sys/module/aiopipe ] ||
		why="aiopipe module loaded but no /dev/aiopipe (no devtmpfs or udev?)"
	echo "1..0 # SKIP $why"
	exit $ksft_skip
fi
if [ ! -b "$dev" ]; then
	echo "1..0 # SKIP no $dev: run in scripts/vm-run --disk 384M"
	exit $ksft_skip
fi
# The scratch disk is overwritten: a disk in use is never one, whatever
# its name (outside the VM /dev/vda can be the machine's own disk).
# in_use DEV: DEV or a partition of it is mounted (by device number, so
# also as /dev/root), is swap, or holds device-mapper/md devices
in_use() {
	for b in "/sys/class/block/${1#/dev/}" "/sys/class/block/${1#/dev/}"/*/; do
		[ -r "$b/dev" ] || continue
		[ -z "$(ls "$b/holders" 2>/dev/null)" ] || return 0
		awk -v d="$(cat "$b/dev")" '$3 == d { f = 1 } END { exit !f }' \
			/proc/self/mountinfo && return 0
	done
	grep -qE "^$1[p0-9]* " /proc/swaps
}
if in_use "$dev"; then
	echo "1..0 # SKIP $dev is in use (mounted, swap or a holder): not a scratch disk"
	exit $ksft_skip
fi
if ! command -v aiocopy >/dev/null 2>&1; then
	echo "1..0 # SKIP aiocopy not found (make userspace)"
	exit $ksft_skip
fi
disk_mb=$(($(cat "/sys/block/${dev#/dev/}/size") / 2048))
if [ "$disk_mb" -lt $((5 * mb)) ]; then
	echo "1..0 # SKIP $dev has $disk_mb MiB, needs $((5 * mb)) (--disk $((5 * mb))M)"
	exit $ksft_skip
fi

mkdir -p "$t"
trap 'rm -rf "$t"' EXIT
echo "1..12"

# 1: the image, on the disk at offset 0
if timeout $to dd if=/dev/urandom of="$t/img" bs=1M count="$mb" 2>"$t/err" &&
	timeout $to dd if="$t/img" of="$dev" bs=1M conv=fsync 2>>"$t/err"; then
	ok "a $mb MiB random image written to $dev"
else
	show "$t/err"
	not_ok "a $mb MiB random image written to $dev"
fi
want=$(md5sum <"$t/img" | cut -d' ' -f1)

# copy NAME ARGS...: one aiocopy run as one test; its CSV row in the comment
copy() {
	name=$1
	shift
	rc=0
	timeout -k 5 $to aiocopy --no-header --timeout 30 "$@" >"$t/csv" 2>"$t/err" || rc=$?
	row=$(tail -n 1 "$t/csv")
}

# 2-5: disk -> pipes -> file
for e in retry direct; do
	for s in 1 4; do
		name="disk->aiopipe x$s ($e, one loop) -> file: $mb MiB intact"
		copy "$name" --input "$dev" --size "${mb}M" --streams "$s" --engine "$e" --output "$t/out"
		if [ "$rc" -eq 0 ] && cmp "$t/img" "$t/out" >"$t/cmp" 2>&1; then
			ok "$name # $row"
		else
			show "$t/err"
			[ ! -s "$t/cmp" ] || show "$t/cmp"
			not_ok "$name # aiocopy exit $rc"
		fi
		rm -f "$t/out"
	done
done

# 6-9: file -> pipes -> disk, each at its own fresh offset
k=1
for e in retry direct; do
	for s in 1 4; do
		name="file->aiopipe x$s ($e, one loop) -> disk at ${k}x$mb MiB: intact"
		copy "$name" --input "$t/img" --streams "$s" --engine "$e" --output "$dev" --seek "$((k * mb))M"
		got=$(timeout $to dd if="$dev" bs=1M skip=$((k * mb)) count="$mb" 2>/dev/null | md5sum | cut -d' ' -f1)
		if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
			ok "$name # $row"
		else
			show "$t/err"
			not_ok "$name # aiocopy exit $rc; md5 on disk $got, image $want"
		fi
		k=$((k + 1))
	done
done

# 10-11: the threaded baselines
for p in aiopipe kernel; do
	name="threads on $p pipes x4: disk -> file intact"
	copy "$name" --input "$dev" --size "${mb}M" --streams 4 --mode threads --pipe "$p" --output "$t/out"
	if [ "$rc" -eq 0 ] && cmp "$t/img" "$t/out" >"$t/cmp" 2>&1; then
		ok "$name # $row"
	else
		show "$t/err"
		[ ! -s "$t/cmp" ] || show "$t/cmp"
		not_ok "$name # aiocopy exit $rc"
	fi
	rm -f "$t/out"
done

# 12: one loop on kernel pipes is refused (io_submit would block)
copy refused --input "$dev" --size 1M --mode aio --pipe kernel
if [ "$rc" -eq 2 ] && grep -q 'needs --mode threads' "$t/err"; then
	ok "one loop on kernel pipes is refused (exit 2)"
else
	show "$t/err"
	not_ok "one loop on kernel pipes is refused (exit 2) # exit $rc"
fi
exit 0
