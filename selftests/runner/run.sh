#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: selftests/runner/run.sh [--kver VER]
#   --kver VER   kernel to test with (default: scripts/kernels default)
#
# Self-tests of scripts/vm-run: boots the kernel for real (7 boots, about a
# minute and a half under TCG) and prints TAP.
#
# Needs build/VER/testmods/warn_on_load.ko (built by make; built here from
# selftests/runner/mods/ when missing). Uses build/VER/aiopipe.ko for the
# plain "-- true" boot when it exists, --no-module elsewhere.
# Checks are passed to check() as single-quoted eval strings, expanded late:
# shellcheck disable=SC2016,SC2034
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
vmrun=$top/scripts/vm-run
PLAN=20

usage() {
	sed -n '3,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	local l
	for l in "$@"; do echo "# $l"; done
}
# check NAME DIAG-FILE CMD...: one TAP line from CMD's status.
check() {
	local name=$1 diag=$2
	shift 2
	if "$@"; then
		ok "$name"
	else
		local -a lines=()
		[ ! -f "$diag" ] || mapfile -t lines < <(tail -n 15 "$diag")
		not_ok "$name" "${lines[@]+"${lines[@]}"}"
	fi
}

# vm NAME ARGS...: run vm-run; stdout/stderr in $tmp/NAME.{out,err}, status in
# rc_NAME, seconds in secs_NAME.
vm() {
	local name=$1 rc=0 t0 t1
	shift
	t0=$(date +%s%N)
	"$vmrun" --kver "$kver" "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
	t1=$(date +%s%N)
	printf -v "rc_$name" '%s' "$rc"
	printf -v "secs_$name" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')"
	cat "$tmp/$name.out" "$tmp/$name.err" >"$tmp/$name.log"
	local s="secs_$name"
	echo "# boot $name: exit $rc after ${!s} s"
}

has() { grep -aqE -- "$2" "$1"; }
has_line() { grep -aqxF -- "$2" "$1"; }
has_text() { grep -aqF -- "$2" "$1"; }
same_file() { [ -f "$1" ] && [ -f "$2" ] && cmp -s "$1" "$2"; }

# The WARN_ON module the lead's Makefile builds; build it here if it is missing.
need_testmod() {
	local ko=$top/build/$kver/testmods/warn_on_load.ko kdir d
	[ ! -f "$ko" ] || return 0
	echo "# $ko missing (normally built by make): building it"
	kdir=$("$top/scripts/kernels" kdir "$kver")
	d=$tmp/mods
	mkdir -p "$d" "$(dirname "$ko")"
	cp "$here/mods/warn_on_load.c" "$d/"
	echo 'obj-m := warn_on_load.o' >"$d/Kbuild"
	timeout 300 make -s -C "$kdir" M="$d" modules >"$tmp/mods.log" 2>&1 ||
		{ sed 's/^/# /' "$tmp/mods.log"; return 1; }
	cp "$d/warn_on_load.ko" "$ko"
}

main() {
	kver=
	while [ $# -gt 0 ]; do
		case "$1" in
		--kver) [ $# -ge 2 ] || { usage >&2; exit 2; }; kver=$2; shift 2 ;;
		--kver=*) kver=${1#*=}; shift ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
		esac
	done
	[ -n "$kver" ] || kver=$("$top/scripts/kernels" default)
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/vm-run-tests.XXXXXX")
	trap 'rc=$?; rm -rf "$tmp"; exit $rc' EXIT

	echo "1..$PLAN"
	echo "# vm-run self-tests on $kver"

	# --- no boot -----------------------------------------------------------------
	local rc=0
	"$vmrun" --help >"$tmp/help.out" 2>&1 || rc=$?
	check "--help exits 0 and shows the options" "$tmp/help.out" \
		eval '[ "$rc" -eq 0 ] && has "$tmp/help.out" "--modparams"'

	local rc1=0 rc2=0
	"$vmrun" --kver "$kver" --bogus -- true >"$tmp/usage.out" 2>&1 || rc1=$?
	"$vmrun" --kver "$kver" >>"$tmp/usage.out" 2>&1 || rc2=$?
	check "unknown option and missing CMD exit 2" "$tmp/usage.out" \
		eval '[ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ]'
	rc=0
	"$vmrun" --kver "$kver" --disk 12X -- true >"$tmp/disk-usage.out" 2>&1 || rc=$?
	check "--disk 12X: exit 2 with a message" "$tmp/disk-usage.out" \
		eval '[ "$rc" -eq 2 ] && has "$tmp/disk-usage.out" "--disk needs a size"'

	# Splat patterns, without a boot: every line of fixtures/splats.txt is a kernel
	# report, no line of fixtures/clean.txt is.
	local want
	want=$(grep -c . "$here/fixtures/splats.txt")
	rc=0
	"$vmrun" --check-log "$here/fixtures/splats.txt" >"$tmp/splats.out" 2>&1 || rc=$?
	check "--check-log finds all $want reports in fixtures/splats.txt" "$tmp/splats.out" \
		eval '[ "$rc" -eq 3 ] && has "$tmp/splats.out" "reported $want problem line"'
	rc=0
	"$vmrun" --check-log "$here/fixtures/clean.txt" >"$tmp/clean.out" 2>&1 || rc=$?
	check "--check-log: no false positives in fixtures/clean.txt" "$tmp/clean.out" eval '[ "$rc" -eq 0 ]'

	# A scratch tree without build/: vm-run must ask for the module.
	mkdir -p "$tmp/fake/scripts"
	cp "$vmrun" "$top/scripts/kernels" "$top/scripts/debug-kernel" \
		"$top"/scripts/debug-kernel*.config "$tmp/fake/scripts/"
	rc=0
	timeout 60 "$tmp/fake/scripts/vm-run" --kver "$kver" -- true >"$tmp/nomod.out" 2>&1 || rc=$?
	check "missing module: exit 1, 'build the module first: make KVER=$kver'" "$tmp/nomod.out" \
		eval '[ "$rc" -eq 1 ] && has_text "$tmp/nomod.out" "build the module first: make KVER=$kver"'

	# --- boot A: status, argv quoting, --out (9p), --add, --smp 2, uname -r --------
	head -c 3000000 /dev/urandom >"$tmp/blob.bin"
	mkdir -p "$tmp/tree/sub"
	echo "tree file" >"$tmp/tree/sub/f.txt"
	local script='
		set -e
		printf "%s|" "$@" >/out/args.txt
		echo "nproc=$(nproc) uname=$(uname -r)"
		cp /opt/add/blob.bin /out/blob.bin
		cp -R /data/tree /out/tree
		mkdir -p /out/sub
		head -c 100000 /dev/urandom >/out/sub/rand.bin
		echo "randsum=$(md5sum </out/sub/rand.bin | cut -d" " -f1)"
		echo "BUG: this line comes from user space, not the kernel"
		echo "WARNING: so does this one"
		exit 7'
	vm A --no-module --smp 2 --out "$tmp/outA" --add "$tmp/blob.bin" \
		--add "$tmp/tree:/data/tree" -- sh -c "$script" vm 'a  b' "c'd" '$(echo no)' '*'
	check "CMD's status 7 comes back; user 'BUG:'/'WARNING:' lines are no splat" "$tmp/A.log" \
		eval '[ "$rc_A" -eq 7 ]'
	printf '%s|' 'a  b' "c'd" '$(echo no)' '*' >"$tmp/args.expected"
	check "CMD words reach the guest unchanged (spaces, quotes, \$, *)" "$tmp/A.log" \
		same_file "$tmp/outA/args.txt" "$tmp/args.expected"
	local randsum
	randsum=$(sed -n 's/^randsum=\([0-9a-f]*\).*/\1/p' "$tmp/A.out")
	check "--out: binary files and subdirectories come back intact, with console.log" "$tmp/A.log" \
		eval 'same_file "$tmp/outA/blob.bin" "$tmp/blob.bin" &&
			same_file "$tmp/outA/tree/sub/f.txt" "$tmp/tree/sub/f.txt" &&
			[ -n "$randsum" ] && [ "$(md5sum <"$tmp/outA/sub/rand.bin" | cut -d" " -f1)" = "$randsum" ] &&
			has "$tmp/outA/console.log" "^randsum="'
	check "--smp 2: the guest has 2 CPUs" "$tmp/A.log" has "$tmp/A.out" '^nproc=2 '
	local release=$kver img
	if [ "$kver" = debug ] || [ "$kver" = race ]; then # release: the version file by the image
		img=$("$top/scripts/kernels" image "$kver")
		release=$(cat "$(dirname "$img")/version" 2>/dev/null || echo "?")
	fi
	check "uname -r in the guest is $release" "$tmp/A.log" has_line "$tmp/A.out" "nproc=2 uname=$release"

	# --- boots B, C: true and false -------------------------------------------------
	local -a modarg=(--no-module) modtxt="--no-module: build/$kver/aiopipe.ko not built"
	if [ -f "$top/build/$kver/aiopipe.ko" ]; then
		modarg=()
		modtxt="aiopipe.ko loaded"
	fi
	vm B "${modarg[@]+"${modarg[@]}"}" -- true
	check "'vm-run -- true' exits 0 ($modtxt)" "$tmp/B.log" eval '[ "$rc_B" -eq 0 ]'
	vm C --no-module -- false
	check "'vm-run -- false' exits non-zero" "$tmp/C.log" eval '[ "$rc_C" -ne 0 ]'

	# --- boot D: kernel panic ------------------------------------------------------------
	vm D --no-module -- sh -c 'echo c >/proc/sysrq-trigger; sleep 30'
	check "a kernel panic fails the run (exit 3) and is shown" "$tmp/D.log" \
		eval '[ "$rc_D" -eq 3 ] && has "$tmp/D.err" "Kernel panic"'

	# --- boot E: WARN_ON at module load; small /out over the serial line -------------------
	if need_testmod; then
		VM_RUN_XFER=serial vm E --no-module --out "$tmp/outE" -- \
			'insmod /opt/aiopipe/testmods/warn_on_load.ko && echo "small file" >/out/small.txt'
		check "a WARNING from a module fails the run (exit 3) and is shown" "$tmp/E.log" \
			eval '[ "$rc_E" -eq 3 ] && has "$tmp/E.err" "KERNEL: .*WARNING: .*warn_on_load"'
		check "--out over the serial line, even from a failed run" "$tmp/E.log" \
			eval '[ "$(cat "$tmp/outE/small.txt" 2>/dev/null)" = "small file" ] &&
				[ -s "$tmp/outE/console.log" ]'
	else
		not_ok "a WARNING from a module fails the run" "could not build warn_on_load.ko"
		not_ok "--out over the serial line, even from a failed run" "skipped with the boot above"
	fi

	# --- boot G: --host-root and --disk ------------------------------------------------------
	# Results go to /out, not the console, where a kernel warning printed
	# at the wrong moment would split a line.
	local gscript='
		{
		echo "md5sum=$(md5sum --version | head -n 1)"
		echo "python3=$(python3 -c "print(6 * 7)" 2>&1)"
		echo "sh=$(readlink /bin/sh) bb=$(busybox echo ok) tool=$(command -v aiopipe-stat || echo none)"
		if touch /host/vm-run-probe 2>/dev/null; then echo "host=rw"; else echo "host=ro"; fi
		echo "vda=$(cat /sys/block/vda/size)"
		echo vm-run-disk >/tmp/d
		dd if=/tmp/d of=/dev/vda conv=fsync 2>/dev/null
		echo "readback=$(head -c 11 /dev/vda)"
		} >/out/g.txt
		cat /out/g.txt'
	vm G --no-module --host-root --disk 8M --out "$tmp/outG" -- "$gscript"
	local g=$tmp/outG/g.txt
	check "--host-root: the host's GNU md5sum and python3 run in the guest" "$tmp/G.log" \
		eval '[ "$rc_G" -eq 0 ] && has "$g" "^md5sum=md5sum \(GNU coreutils\)" &&
			has_line "$g" "python3=42"'
	check "--host-root: /host read-only, host /bin/sh, busybox and /opt/aiopipe kept" "$tmp/G.log" \
		eval 'has_line "$g" "host=ro" &&
			has "$g" "^sh=/host/bin/sh bb=ok tool=(/opt/aiopipe/bin/aiopipe-stat|none)\$"'
	check "--disk 8M: /dev/vda has 16384 sectors, written and read back" "$tmp/G.log" \
		eval 'has_line "$g" "vda=16384" && has_line "$g" "readback=vm-run-disk"'

	# --- boot F: timeout ---------------------------------------------------------------------
	vm F --no-module --timeout 20 -- sleep 1000
	check "--timeout 20 -- sleep 1000: exit 124 within 45 s, with a message" "$tmp/F.log" \
		eval '[ "$rc_F" -eq 124 ] && awk -v s="$secs_F" "BEGIN { exit !(s < 45) }" &&
			has "$tmp/F.err" "guest timed out after 20 s"'

	[ "$n" -eq "$PLAN" ] || { echo "# bug: planned $PLAN tests, ran $n"; failed=$((failed + 1)); }
	echo "# $((n - failed)) passed, $failed failed ($kver)"
	[ "$failed" -eq 0 ]
}

main "$@"
