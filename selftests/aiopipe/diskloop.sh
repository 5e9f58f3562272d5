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

# kselftest's skip and the shared checks (lib/ksft.sh)
# shellcheck source=lib/ksft.sh
. "$(dirname "$0")/lib/ksft.sh"
ksft_require_module
if [ ! -b "$dev" ]; then
	ksft_skip_all "no $dev: run in scripts/vm-run --disk 384M"
fi
# The scratch disk is overwritten: a disk in use is never one, whatever
# its name (outside the VM /dev/vda can be the machine's own disk).
if ksft_disk_in_use "$dev"; then
	ksft_skip_all "$dev is in use (mounted, swap or a holder): not a scratch disk"
fi
if ! command -v aiocopy >/dev/null 2>&1; then
	ksft_skip_all "aiocopy not found (make userspace)"
fi
disk_mb=$(($(cat "/sys/block/${dev#/dev/}/size") / 2048))
if [ "$disk_mb" -lt $((5 * mb)) ]; then
	ksft_skip_all "$dev has $disk_mb MiB, needs $((5 * mb)) (--disk $((5 * mb))M)"
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
