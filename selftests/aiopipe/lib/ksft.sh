# SPDX-License-Identifier: GPL-2.0
# Sourced by the shell selftests (POSIX sh, busybox too): kselftest's skip
# and the checks they share.  Not a test itself: it lives apart from the
# *.sh tests so that no runner takes it for one.

# KSFT_SKIP: kselftest runners count exit 4 as a skip, never a failure.
ksft_skip=4

# ksft_skip_all REASON: the whole script cannot run here
ksft_skip_all() {
	echo "1..0 # SKIP $1"
	exit $ksft_skip
}

# ksft_require_module: nothing here means anything without the module, so
# skip before anything runs, saying which part is missing
ksft_require_module() {
	[ ! -c /dev/aiopipe ] || return 0
	if [ -d /sys/module/aiopipe ]; then
		ksft_skip_all "aiopipe module loaded but no /dev/aiopipe (no devtmpfs or udev?)"
	fi
	ksft_skip_all "aiopipe module not loaded (no /dev/aiopipe): modprobe aiopipe"
}

# ksft_disk_in_use DEV: DEV or a partition of it is mounted (by device
# number, so also as /dev/root), is swap, or holds device-mapper/md devices.
# A scratch disk the tests format is never one in use, whatever its name
# (outside the VM /dev/vda can be the machine's own disk).
ksft_disk_in_use() {
	for b in "/sys/class/block/${1#/dev/}" "/sys/class/block/${1#/dev/}"/*/; do
		[ -r "$b/dev" ] || continue
		[ -z "$(ls "$b/holders" 2>/dev/null)" ] || return 0
		awk -v d="$(cat "$b/dev")" '$3 == d { f = 1 } END { exit !f }' \
			/proc/self/mountinfo && return 0
	done
	grep -qE "^$1[p0-9]* " /proc/swaps
}
