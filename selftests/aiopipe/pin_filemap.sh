#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest-side (busybox sh or dash), TAP: the direct engine and shared file
# mappings on a disk file system.  An ext2 file system goes onto the scratch
# disk of "scripts/vm-run --disk 64M" (/dev/vda), a 64 KiB file onto it, and
# the selftest binary pin_filemap runs with AIOPIPE_FILEMAP set to that file;
# its TAP is this script's.  The ext2 driver (ext4.ko on Debian) is loaded
# with modprobe, which finds the target kernel's modules under
# "scripts/vm-run --host-root".
#   PIN_FILEMAP_DEV  the scratch disk (default /dev/vda)
# Without the disk, the driver or mke2fs it prints "1..0 # SKIP reason".
dev=${PIN_FILEMAP_DEV:-/dev/vda}
mnt=/tmp/pin_filemap.$$
to=120

skip() { ksft_skip_all "$1"; }
# fail REASON FILE: the setup failed; FILE's lines as TAP comments
fail() {
	echo "1..1"
	[ ! -s "$2" ] || sed 's/^/# /' "$2"
	echo "not ok 1 pin_filemap setup: $1"
	exit 1
}

# kselftest's skip and the shared checks (lib/ksft.sh)
# shellcheck source=lib/ksft.sh
. "$(dirname "$0")/lib/ksft.sh"
ksft_require_module
[ -b "$dev" ] || skip "no $dev: run in scripts/vm-run --host-root --disk 64M"
# The scratch disk is formatted: a disk in use is never one, whatever
# its name (outside the VM /dev/vda can be the machine's own disk).
ksft_disk_in_use "$dev" && skip "$dev is in use (mounted, swap or a holder): not a scratch disk"
command -v pin_filemap >/dev/null 2>&1 || skip "pin_filemap not found (make userspace)"
if ! grep -qw ext2 /proc/filesystems; then
	modprobe ext4 >/dev/null 2>&1 || modprobe ext2 >/dev/null 2>&1
	grep -qw ext2 /proc/filesystems ||
		skip "no ext2 driver (modprobe ext4 failed: run with --host-root)"
fi
if command -v mke2fs >/dev/null 2>&1; then
	mkfs=mke2fs
elif command -v mkfs.ext2 >/dev/null 2>&1; then
	mkfs=mkfs.ext2
else
	skip "no mke2fs"
fi

mkdir -p "$mnt"
err=$mnt.err
trap 'umount "$mnt" 2>/dev/null; rmdir "$mnt" 2>/dev/null; rm -f "$err"' EXIT
timeout $to $mkfs -F "$dev" >"$err" 2>&1 || fail "$mkfs $dev" "$err"
mount -t ext2 "$dev" "$mnt" >"$err" 2>&1 || fail "mount -t ext2 $dev" "$err"
dd if=/dev/zero of="$mnt/file" bs=4096 count=16 conv=fsync >"$err" 2>&1 ||
	fail "a 64 KiB file on $dev" "$err"

rc=0
AIOPIPE_FILEMAP=$mnt/file timeout $to pin_filemap || rc=$?
exit $rc
