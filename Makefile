# SPDX-License-Identifier: GPL-2.0
#
# aiopipe: top-level build.
#
#   make [KVER=VER]          module for VER (default: newest installed target)
#                            plus every user-space binary (static)
#   make check               deps, build, static checks, selftests in the VM on
#                            every installed Debian kernel; last line "N passed, N failed"
#   make check-debug         the selftests under the KASAN/lockdep debug kernel
#   make vm CMD='...'        run CMD in a VM with the module loaded
#   make bench / bench-quick the paper sweeps, plots and report into results/
#   make print-kdir KVER=V   the kernel build tree used for V
#   make clean

TOP		:= $(CURDIR)
B		:= $(TOP)/build

# Every entry point installs its dependencies (scripts/deps, Debian packages)
# before it lists kernels or uses a tool: on a fresh machine the target
# kernels come with them.  Once per top-level make; not for clean, and not
# where AIOPIPE_NO_DEPS=1 says the caller provides them (a package build,
# whose Build-Depends are its dependencies).
ifeq ($(AIOPIPE_NO_DEPS),)
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),all)),)
ifneq ($(shell $(TOP)/scripts/deps >&2 || echo failed),)
$(error scripts/deps failed: the Debian packages aiopipe needs are not installed)
endif
export AIOPIPE_NO_DEPS := 1
endif
endif
KVER		?= $(shell $(TOP)/scripts/kernels default 2>/dev/null)
KVERS		?= $(shell $(TOP)/scripts/kernels list 2>/dev/null)
KDIR		= $(shell $(TOP)/scripts/kernels kdir $(KVER))
SRCTAR		?= /usr/src/linux-source-6.1.tar.xz
VERSION		:= $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' $(TOP)/dkms.conf)

MOD_SRCS	:= $(wildcard kmod/*.c kmod/*.h) Kbuild uapi/linux/aiopipe.h
TESTMOD_SRCS	:= $(wildcard selftests/runner/mods/*.c)

CC		:= gcc
CFLAGS		:= -O2 -g -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE \
		   -I$(TOP)/uapi -I$(TOP)/userspace/lib -I$(B)/ksft \
		   -DAIOPIPE_VERSION='"$(VERSION)"'
LDFLAGS		:= -static
LDLIBS		:= -luring -laio -lpthread -lm

LIB_SRCS	:= $(wildcard userspace/lib/*.c)
LIB_HDRS	:= $(wildcard userspace/lib/*.h) uapi/linux/aiopipe.h
LIB		:= $(B)/lib/libaiopipe.a
TOOL_SRCS	:= $(wildcard userspace/tools/*.c)
TOOLS		:= $(patsubst userspace/tools/%.c,$(B)/bin/%,$(TOOL_SRCS))
PIPETEST_SRCS	:= $(wildcard userspace/pipetest/*.c)
PIPETEST	:= $(if $(PIPETEST_SRCS),$(B)/bin/pipetest)
TEST_SRCS	:= $(wildcard selftests/aiopipe/*.c)
TEST_HDRS	:= $(wildcard selftests/aiopipe/*.h)
TESTS		:= $(patsubst selftests/aiopipe/%.c,$(B)/bin/selftests/%,$(TEST_SRCS))
HARNESS		:= $(B)/ksft/kselftest_harness.h
CHECKPATCH	:= $(B)/ksrc/scripts/checkpatch.pl

.PHONY: all module modules userspace testmods check check-static check-debug \
	vm bench bench-quick print-kdir clean deps debug-kernel install uninstall \
	soak soak-debug

PREFIX		?= /usr/local
DESTDIR		?=
INST_TOOLS	:= $(notdir $(TOOLS) $(PIPETEST))

all: module userspace

deps:
	$(TOP)/scripts/deps

# ---- kernel module, one build tree per target kernel: build/<VER>/ --------
# The sources are linked into build/<VER>/mod so objects never land in kmod/.
module: $(B)/$(KVER)/aiopipe.ko

modules:
	@for v in $(KVERS); do $(MAKE) --no-print-directory module KVER=$$v || exit 1; done

$(B)/%/aiopipe.ko: $(MOD_SRCS) dkms.conf
	@test -n "$*" || { echo "no target kernel: run scripts/deps" >&2; exit 1; }
	@mkdir -p $(B)/$*/mod/kmod $(B)/$*/mod/uapi
	@ln -sfn $(TOP)/Kbuild $(B)/$*/mod/Kbuild
	@ln -sfn $(TOP)/dkms.conf $(B)/$*/mod/dkms.conf
	@ln -sfn $(TOP)/uapi/linux $(B)/$*/mod/uapi/linux
	@for f in $(wildcard kmod/*.c kmod/*.h); do ln -sfn $(TOP)/$$f $(B)/$*/mod/$$f; done
	$(MAKE) -C $$($(TOP)/scripts/kernels kdir $*) M=$(B)/$*/mod W=1 AIOPIPE_WERROR=y modules
	@cp $(B)/$*/mod/aiopipe.ko $@

# Deliberately broken modules that prove the VM runner catches splats.
testmods: $(if $(TESTMOD_SRCS),$(B)/$(KVER)/testmods/.built)

$(B)/%/testmods/.built: $(TESTMOD_SRCS)
	@mkdir -p $(B)/$*/testmods/src
	@rm -f $(B)/$*/testmods/src/*.c
	@for f in $(TESTMOD_SRCS); do ln -sfn $(TOP)/$$f $(B)/$*/testmods/src/; done
	@echo 'obj-m := $(patsubst %.c,%.o,$(notdir $(TESTMOD_SRCS)))' > $(B)/$*/testmods/src/Kbuild
	$(MAKE) -C $$($(TOP)/scripts/kernels kdir $*) M=$(B)/$*/testmods/src modules
	@cp $(B)/$*/testmods/src/*.ko $(B)/$*/testmods/
	@touch $@

print-kdir:
	@echo $(KDIR)

# ---- files taken from the Debian linux-source tarball at build time -------
$(HARNESS):
	@mkdir -p $(B)/ksft
	tar -xJf $(SRCTAR) -C $(B)/ksft --strip-components=4 \
		--wildcards '*/tools/testing/selftests/kselftest_harness.h' \
		'*/tools/testing/selftests/kselftest.h'
	@touch $@

$(CHECKPATCH):
	@mkdir -p $(B)/ksrc
	tar -xJf $(SRCTAR) -C $(B)/ksrc --strip-components=1 \
		--wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	@touch $@

# ---- user space (static, so it runs in the initramfs) ----------------------
userspace: $(if $(LIB_SRCS),$(LIB)) $(TOOLS) $(PIPETEST) $(TESTS)

$(B)/lib/%.o: userspace/lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(patsubst userspace/lib/%.c,$(B)/lib/%.o,$(LIB_SRCS))
	ar rcs $@ $^

$(B)/bin/%: userspace/tools/%.c $(LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(B)/bin/pipetest: $(PIPETEST_SRCS) $(wildcard userspace/pipetest/*.h) $(LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(PIPETEST_SRCS) $(LIB) $(LDLIBS)

$(B)/bin/selftests/%: selftests/aiopipe/%.c $(TEST_HDRS) $(HARNESS) $(LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-parameter $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# ---- checks ------------------------------------------------------------------
check-static: $(CHECKPATCH)
	$(TOP)/scripts/check-static

check:
	$(TOP)/scripts/check

check-debug:
	$(TOP)/scripts/check --debug

debug-kernel:
	$(TOP)/scripts/debug-kernel --build

vm: all
	$(TOP)/scripts/vm-run --kver $(KVER) -- $(CMD)

# make soak [KVER=...] [DURATION=60] [FUZZ=N] [SEED=S]; soak-debug adds fault
# injection, 10^5 fuzz iterations and a kmemleak scan on the debug kernel.
soak: all
	$(TOP)/scripts/soak --kver $(KVER) --duration $(or $(DURATION),60) \
		$(if $(FUZZ),--fuzz $(FUZZ)) $(if $(SEED),--seed $(SEED))

soak-debug:
	$(MAKE) --no-print-directory module KVER=debug
	$(TOP)/scripts/soak --kver debug --duration $(or $(DURATION),60) \
		--fuzz $(or $(FUZZ),100000) --faults

bench:
	$(TOP)/scripts/bench $(BENCH_ARGS)

bench-quick:
	$(TOP)/scripts/bench --quick $(BENCH_ARGS)

# ---- installation as users expect of an out-of-tree module ----------------
# make install [DESTDIR=...] [PREFIX=/usr/local] [LOAD_AT_BOOT=1]
# The module is loaded at boot only with LOAD_AT_BOOT=1 (modules-load.d);
# otherwise "modprobe aiopipe" loads it.  The udev rule gives the named FIFOs
# to the group "aiopipe", which install does not create: the administrator
# runs "groupadd --system aiopipe" (docs/semantics.md, threat model).
install: all
	install -D -m 0644 $(B)/$(KVER)/aiopipe.ko $(DESTDIR)/lib/modules/$(KVER)/updates/aiopipe.ko
	install -D -m 0644 uapi/linux/aiopipe.h $(DESTDIR)$(PREFIX)/include/linux/aiopipe.h
	install -D -m 0644 userspace/lib/libaiopipe.h $(DESTDIR)$(PREFIX)/include/libaiopipe.h
	install -D -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libaiopipe.a
	@mkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' packaging/aiopipe.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/aiopipe.pc
	for t in $(INST_TOOLS); do install -D -m 0755 $(B)/bin/$$t $(DESTDIR)$(PREFIX)/bin/$$t; done
	install -D -m 0644 packaging/60-aiopipe.rules $(DESTDIR)/lib/udev/rules.d/60-aiopipe.rules
	$(if $(filter 1,$(LOAD_AT_BOOT)),install -D -m 0644 packaging/modules-load.conf \
		$(DESTDIR)/etc/modules-load.d/aiopipe.conf)
	$(if $(DESTDIR),,depmod -a $(KVER))

uninstall:
	rm -f $(DESTDIR)/lib/modules/$(KVER)/updates/aiopipe.ko
	rm -f $(DESTDIR)$(PREFIX)/include/linux/aiopipe.h $(DESTDIR)$(PREFIX)/include/libaiopipe.h
	rm -f $(DESTDIR)$(PREFIX)/lib/libaiopipe.a $(DESTDIR)$(PREFIX)/lib/pkgconfig/aiopipe.pc
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(INST_TOOLS))
	rm -f $(DESTDIR)/lib/udev/rules.d/60-aiopipe.rules $(DESTDIR)/etc/modules-load.d/aiopipe.conf
	$(if $(DESTDIR),,depmod -a $(KVER))

clean:
	rm -rf $(B)
