/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The backends every differential selftest runs on: a kernel pipe, and an
 * aiopipe pair on each engine.  A test body opens its pair through
 * backend_pair() and never needs to know which one it got, except where
 * aiopipe deliberately differs (then it says so, see backend_is_aiopipe()).
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

#endif /* AIOPIPE_SELFTEST_BACKEND_H */
