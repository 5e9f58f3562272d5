/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The backends every differential selftest runs on: a kernel pipe, and an
 * aiopipe pair on each engine.  A test body opens its pair through
 * backend_pair() and never needs to know which one it got, except where
 * aiopipe deliberately differs (then it says so, see backend_is_aiopipe()).
 * Every selftest includes it: it also skips the whole binary when the
 * module is absent (backend_require_module(), at the end).
 */
#ifndef AIOPIPE_SELFTEST_BACKEND_H
#define AIOPIPE_SELFTEST_BACKEND_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "kselftest.h"
#include "libaiopipe.h"

enum backend {
	BACKEND_PIPE,		/* pipe2() */
	BACKEND_RETRY,		/* aiopipe pair, retry engine */
	BACKEND_DIRECT,		/* aiopipe pair, direct engine */
};

static inline const char *backend_name(enum backend b)
{
	switch (b) {
	case BACKEND_PIPE:
		return "pipe";
	case BACKEND_RETRY:
		return "aiopipe-retry";
	default:
		return "aiopipe-direct";
	}
}

static inline bool backend_is_aiopipe(enum backend b)
{
	return b != BACKEND_PIPE;
}

/*
 * Whether this run selects backend @b.  AIOPIPE_TEST_BACKENDS, when set, is
 * a comma-separated list of backend_name()s; unset, every backend runs.
 * make check-race leaves the kernel pipe out: under KCSAN, its concurrent
 * writers race in fs/pipe.c's own file_update_time(), a report about the
 * reference, not about aiopipe.  A fixture that honours it skips in its
 * setup, and its tests begin with BACKEND_BEGIN() (the harness runs a test
 * whose setup skipped).
 */
static inline bool backend_selected(enum backend b)
{
	const char *list = getenv("AIOPIPE_TEST_BACKENDS");
	const char *name = backend_name(b);
	size_t len = strlen(name);

	if (!list)
		return true;
	for (const char *p = list; *p; ) {
		size_t n = strcspn(p, ",");

		if (n == len && !strncmp(p, name, len))
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

/* The test of a fixture whose setup skipped an unselected backend ends here. */
#define BACKEND_BEGIN(variant) do {					\
	if (!backend_selected((variant)->backend))			\
		return;							\
} while (0)

/* pipe2() on the chosen backend; returns 0 or -errno. */
static inline int backend_pair(enum backend b, int fds[2], int flags)
{
	if (b == BACKEND_PIPE)
		return pipe2(fds, flags) ? -errno : 0;
	return aiopipe_pair_ex(fds, flags, 0,
			       b == BACKEND_RETRY ? AIOPIPE_ENGINE_RETRY :
						    AIOPIPE_ENGINE_DIRECT);
}

/*
 * Capacity in bytes: F_GETPIPE_SZ on a pipe, the ioctl on aiopipe.  Both
 * accept at least this many bytes of PIPE_BUF-sized writes.
 */
static inline int backend_capacity(enum backend b, int fd)
{
	if (b == BACKEND_PIPE)
		return fcntl(fd, F_GETPIPE_SZ);
	return aiopipe_get_capacity(fd);
}

/* F_SETPIPE_SZ or AIOPIPE_IOC_SET_CAPACITY: the new size or -errno. */
static inline int backend_set_capacity(enum backend b, int fd, int bytes)
{
	int ret;

	if (b != BACKEND_PIPE)
		return aiopipe_set_capacity(fd, (unsigned int)bytes);
	ret = fcntl(fd, F_SETPIPE_SZ, bytes);
	return ret < 0 ? -errno : ret;
}

/* Close both ends that are still open (fd < 0 means closed). */
static inline void backend_close(int fds[2])
{
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/*
 * AIOPIPE_FAIL_SELF=1 (faultinject.sh): every test the harness forks opts in
 * to the kernel's task-filtered failslab/fail_page_alloc, the harness itself
 * does not.  Failing its exec (past the point of no return the kernel answers
 * with SIGSEGV) or its unchecked result mmap() would kill the whole binary
 * before any result, which says nothing about aiopipe.
 */
static void backend_fail_self_child(void)
{
	int err = aiopipe_fail_self();

	if (err) {
		fprintf(stderr, "AIOPIPE_FAIL_SELF: make-it-fail: %s\n", strerror(-err));
		_exit(2);
	}
}

static void __attribute__((constructor)) backend_fail_self_init(void)
{
	const char *v = getenv("AIOPIPE_FAIL_SELF");

	if (v && strcmp(v, "0"))
		pthread_atfork(NULL, NULL, backend_fail_self_child);
}

/*
 * Without the module there is nothing to test: the whole binary skips
 * before the harness prints its plan, with "1..0 # SKIP" and KSFT_SKIP (4),
 * as a kselftest does when its driver is absent.  Every selftest includes
 * this header (directly, or through pipe_common.h), so this is the one
 * check; the tests themselves never see a missing /dev/aiopipe.
 *
 * The kernel-pipe variants skip with the rest rather than run alone: they
 * are the reference the aiopipe variants are compared with, they test
 * nothing of aiopipe by themselves, and some encode the pipe behaviour of
 * the target kernels (6.1, 6.12) that another host kernel may not share
 * (pipes honour IOCB_NOWAIT since 6.4), so on such a host they could fail
 * for reasons unrelated to aiopipe.  A binary with half its tests skipped
 * would also exit 0, "passed", when nothing of aiopipe ran.
 *
 * The check is on the node, not on /sys/module: without /dev/aiopipe no
 * test can open a pair, whatever the reason (module not loaded, no
 * devtmpfs or udev).  The reason printed tells the two apart.
 */
static void __attribute__((constructor)) backend_require_module(void)
{
	struct stat st;

	if (stat(AIOPIPE_DEV_FACTORY, &st) == 0 && S_ISCHR(st.st_mode))
		return;
	ksft_print_header();
	if (access("/sys/module/aiopipe", F_OK) == 0)
		ksft_exit_skip("aiopipe module loaded but no %s (no devtmpfs or udev?)\n",
			       AIOPIPE_DEV_FACTORY);
	ksft_exit_skip("aiopipe module not loaded (no %s): modprobe aiopipe\n",
		       AIOPIPE_DEV_FACTORY);
}

#endif /* AIOPIPE_SELFTEST_BACKEND_H */
