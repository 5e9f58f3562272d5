# SPDX-License-Identifier: GPL-2.0
#
# aiopipe: top-level build.
#
#   make [KVER=VER]          module for VER (default: newest installed target)
#                            plus every user-space binary (static)
#   make check               deps, build, static checks, selftests in the VM on
#                            every installed Debian kernel; last line "N passed, N failed"
#   make check-debug         the selftests under the KASAN/lockdep debug kernel
#   make check-race          the race tests under the KCSAN debug kernel
#   make check-all           check, check-debug and check-race (CI runs the first two)
#   make coverage            line/branch coverage of kmod/ by the debug selftests
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
VERSION		:= $(shell sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^" #]*\).*/\1/p' $(TOP)/dkms.conf)

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

.PHONY: all module modules userspace testmods check check-static check-debug check-race check-all coverage coverage-module \
	vm bench bench-quick print-kdir clean deps debug-kernel install uninstall \
	soak soak-debug no-kernel

PREFIX		?= /usr/local
DESTDIR		?=
INST_TOOLS	:= $(notdir $(TOOLS) $(PIPETEST))

all: module userspace

deps:
	$(TOP)/scripts/deps

# ---- kernel module, one build tree per target kernel: build/<VER>/ --------
# The sources are linked into build/<VER>/mod so objects never land in kmod/.
module: $(if $(KVER),$(B)/$(KVER)/aiopipe.ko,no-kernel)

modules: $(if $(KVERS),,no-kernel)
	@for v in $(KVERS); do $(MAKE) --no-print-directory module KVER=$$v || exit 1; done

no-kernel:
	@echo "no target kernel (Debian's image and headers): run scripts/deps" >&2; exit 1

# module_tree DIR: a Kbuild tree of links to the sources in DIR
define module_tree
	@mkdir -p $(1)/kmod $(1)/uapi
	@ln -sfn $(TOP)/Kbuild $(1)/Kbuild
	@ln -sfn $(TOP)/dkms.conf $(1)/dkms.conf
	@ln -sfn $(TOP)/uapi/linux $(1)/uapi/linux
	@for f in $(wildcard kmod/*.c kmod/*.h); do ln -sfn $(TOP)/$$f $(1)/$$f; done
endef

$(B)/%/aiopipe.ko: $(MOD_SRCS) dkms.conf
	@test -n "$*" || { echo "no target kernel: run scripts/deps" >&2; exit 1; }
	$(call module_tree,$(B)/$*/mod)
	$(MAKE) -C $$($(TOP)/scripts/kernels kdir $*) M=$(B)/$*/mod W=1 AIOPIPE_WERROR=y modules
	@cp $(B)/$*/mod/aiopipe.ko $@

# make coverage: the module for the debug kernel with gcov counters
coverage-module: $(B)/coverage/aiopipe.ko

$(B)/coverage/aiopipe.ko: $(MOD_SRCS) dkms.conf
	$(call module_tree,$(B)/coverage/mod)
	@rm -f $(B)/coverage/mod/kmod/*.gcno
	$(MAKE) -C $$($(TOP)/scripts/kernels kdir debug) M=$(B)/coverage/mod W=1 \
		AIOPIPE_WERROR=y AIOPIPE_GCOV=y modules
	@cp $(B)/coverage/mod/aiopipe.ko $@

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
check-static: $(CHECKPATCH) module
	$(TOP)/scripts/check-static checkpatch
	$(TOP)/scripts/check-static sparse $(KVER)
	$(TOP)/scripts/check-static man

check:
	$(TOP)/scripts/check

check-debug:
	$(TOP)/scripts/check --debug

check-race:
	$(TOP)/scripts/check --race

# Each part runs even when an earlier one failed; the goal fails if any did.
check-all:
	@rc=0; for t in check check-debug check-race; do \
		$(MAKE) --no-print-directory $$t || rc=1; done; exit $$rc

coverage:
	$(TOP)/scripts/coverage

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
# make install [DESTDIR=...] [PREFIX=/usr/local] [LIBDIR=PREFIX/lib] [LOAD_AT_BOOT=1]
# installs what the Debian packages (make deb) install:
#   /lib/modules/KVER/updates/aiopipe.ko   the module, for KVER
#   PREFIX/include/aiopipe/linux/aiopipe.h the uapi header and libaiopipe.h,
#   PREFIX/include/aiopipe/libaiopipe.h    found through "pkg-config --cflags
#                                          aiopipe" (-I PREFIX/include/aiopipe);
#                                          /usr/include/linux is the C library's
#   LIBDIR/libaiopipe.a                    static only
#   LIBDIR/pkgconfig/aiopipe.pc
#   PREFIX/bin/                            pipetest aiostream aiopipe-stat aiocopy
#                                          aiopipe-soak aiopipe-fuzz
#   PREFIX/share/man/manN/                 every man/man*/*.[134]
#   /lib/udev/rules.d/60-aiopipe.rules
#   /etc/modules-load.d/aiopipe.conf       only with LOAD_AT_BOOT=1
# The installed tools are not the static ones of build/bin (those are for the
# VM's initramfs): they are built dynamically linked against Debian's libaio,
# liburing, libpthread and libm in build/pkg, like the packaged ones, and
# installed stripped (install -s; debian/rules passes INSTALL_STRIP= so that
# dh_strip keeps the debug symbols for the -dbgsym packages).  install needs
# the module's kernel headers but neither the selftests nor the linux-source
# tarball.  The module is loaded at boot only with LOAD_AT_BOOT=1
# (modules-load.d); otherwise "modprobe aiopipe" loads it.  The udev rule
# gives the named FIFOs to the group "aiopipe", which install does not
# create: the administrator runs "groupadd --system aiopipe"
# (docs/semantics.md, threat model).
#
#   make install-userspace   everything above but the module and modules-load.d
#                            (debian/rules uses it: no kernel headers needed)
#   make tools-dynamic       only build the dynamic tools and library in build/pkg
#   make dkms-install        the module sources alone (Kbuild, dkms.conf, kmod/,
#                            uapi/) into /usr/src/aiopipe-VERSION; without
#                            DESTDIR also "dkms add", then "dkms build" and
#                            "dkms install" for every installed target kernel;
#                            make dkms-uninstall: "dkms remove", and the sources
#   make deb                 the Debian packages into build/deb, checked by lintian
#                            (packaging/build-deb)
.PHONY: install-module install-userspace tools-dynamic dkms-install dkms-uninstall deb

BINDIR		?= $(PREFIX)/bin
INCDIR		?= $(PREFIX)/include
LIBDIR		?= $(PREFIX)/lib
MANDIR		?= $(PREFIX)/share/man
UDEVRULESDIR	?= /lib/udev/rules.d
INSTALL_STRIP	?= -s
# Extra flags for the dynamic build only (debian/rules: dpkg-buildflags).
DYN_CFLAGS	?=
DYN_LDFLAGS	?=
PKG_B		:= $(B)/pkg
DYN_LIB		:= $(PKG_B)/lib/libaiopipe.a
DYN_TOOLS	:= $(addprefix $(PKG_B)/bin/,$(INST_TOOLS))
MAN_PAGES	:= $(wildcard man/man*/*.[134])
INST_MAN	:= $(addprefix $(DESTDIR)$(MANDIR)/,$(patsubst man/%,%,$(MAN_PAGES)))
INST_INC	:= $(DESTDIR)$(INCDIR)/aiopipe
DKMS_SRC	:= /usr/src/aiopipe-$(VERSION)

tools-dynamic: $(if $(LIB_SRCS),$(DYN_LIB)) $(DYN_TOOLS)

$(PKG_B)/lib/%.o: userspace/lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DYN_CFLAGS) -c -o $@ $<

$(DYN_LIB): $(patsubst userspace/lib/%.c,$(PKG_B)/lib/%.o,$(LIB_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(PKG_B)/bin/%: userspace/tools/%.c $(DYN_LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DYN_CFLAGS) $(DYN_LDFLAGS) -Wl,--as-needed -o $@ $< $(DYN_LIB) $(LDLIBS)

$(PKG_B)/bin/pipetest: $(PIPETEST_SRCS) $(wildcard userspace/pipetest/*.h) $(DYN_LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DYN_CFLAGS) $(DYN_LDFLAGS) -Wl,--as-needed -o $@ $(PIPETEST_SRCS) \
		$(DYN_LIB) $(LDLIBS)

install-module: module
	install -D -m 0644 $(B)/$(KVER)/aiopipe.ko $(DESTDIR)/lib/modules/$(KVER)/updates/aiopipe.ko

install-userspace: tools-dynamic
	install -D -m 0644 uapi/linux/aiopipe.h $(INST_INC)/linux/aiopipe.h
	install -D -m 0644 userspace/lib/libaiopipe.h $(INST_INC)/libaiopipe.h
	install -D -m 0644 $(DYN_LIB) $(DESTDIR)$(LIBDIR)/libaiopipe.a
	@mkdir -p $(DESTDIR)$(LIBDIR)/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCDIR)|' \
		-e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		packaging/aiopipe.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/aiopipe.pc
	for t in $(INST_TOOLS); do \
		install -D $(INSTALL_STRIP) -m 0755 $(PKG_B)/bin/$$t $(DESTDIR)$(BINDIR)/$$t || exit 1; \
	done
	for m in $(MAN_PAGES); do \
		install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/$${m#man/} || exit 1; \
	done
	install -D -m 0644 packaging/60-aiopipe.rules $(DESTDIR)$(UDEVRULESDIR)/60-aiopipe.rules

install: install-module install-userspace
	$(if $(filter 1,$(LOAD_AT_BOOT)),install -D -m 0644 packaging/modules-load.conf \
		$(DESTDIR)/etc/modules-load.d/aiopipe.conf)
	$(if $(DESTDIR),,depmod -a $(KVER))

uninstall:
	rm -f $(DESTDIR)/lib/modules/$(KVER)/updates/aiopipe.ko
	rm -f $(INST_INC)/linux/aiopipe.h $(INST_INC)/libaiopipe.h
	rmdir $(INST_INC)/linux $(INST_INC) 2>/dev/null || true
	rm -f $(DESTDIR)$(LIBDIR)/libaiopipe.a $(DESTDIR)$(LIBDIR)/pkgconfig/aiopipe.pc
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INST_TOOLS))
	rm -f $(INST_MAN)
	rm -f $(DESTDIR)$(UDEVRULESDIR)/60-aiopipe.rules $(DESTDIR)/etc/modules-load.d/aiopipe.conf
	$(if $(DESTDIR),,depmod -a $(KVER))

# "dkms add ." in a checkout would copy build/ and everything else into
# /usr/src; this copies the module sources only.  --force rebuilds and
# reinstalls, so that running it again after a source change takes effect.
dkms-install:
	$(if $(DESTDIR),,@! dpkg-query -S $(DKMS_SRC) >/dev/null 2>&1 || \
		{ echo "$(DKMS_SRC) belongs to a Debian package (aiopipe-dkms): remove that first" >&2; exit 1; })
	rm -rf $(DESTDIR)$(DKMS_SRC)
	install -d $(DESTDIR)$(DKMS_SRC)/kmod $(DESTDIR)$(DKMS_SRC)/uapi/linux
	install -m 0644 Kbuild dkms.conf $(DESTDIR)$(DKMS_SRC)/
	install -m 0644 $(wildcard kmod/*.c kmod/*.h) $(DESTDIR)$(DKMS_SRC)/kmod/
	install -m 0644 uapi/linux/aiopipe.h $(DESTDIR)$(DKMS_SRC)/uapi/linux/
	$(if $(DESTDIR),,dkms status -m aiopipe -v $(VERSION) | grep -q . || \
		dkms add -m aiopipe -v $(VERSION))
	$(if $(DESTDIR),,$(if $(KVERS),for k in $(KVERS); do \
		dkms build --force -m aiopipe -v $(VERSION) -k $$k && \
		dkms install --force -m aiopipe -v $(VERSION) -k $$k || exit 1; done, \
		dkms build --force -m aiopipe -v $(VERSION) && \
		dkms install --force -m aiopipe -v $(VERSION)))

dkms-uninstall:
	$(if $(DESTDIR),,@! dpkg-query -S $(DKMS_SRC) >/dev/null 2>&1 || \
		{ echo "$(DKMS_SRC) belongs to a Debian package (aiopipe-dkms): remove that instead" >&2; exit 1; })
	$(if $(DESTDIR),,if dkms status -m aiopipe -v $(VERSION) | grep -q .; then \
		dkms remove -m aiopipe -v $(VERSION) --all; fi)
	rm -rf $(DESTDIR)$(DKMS_SRC)

deb:
	$(TOP)/packaging/build-deb --out $(B)/deb

clean:
	rm -rf $(B)
