/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the async_*.c selftests: engine/filter variants, pairs
 * with a chosen engine and filter, counters, libaio wrappers with timeouts
 * (a timeout is only ever a failure guard or an "expect nothing" window),
 * a position-checkable byte pattern, and bounded waits for child processes.
 *
 * Include after kselftest_harness.h.
 */
#ifndef AIOPIPE_SELFTEST_ASYNC_UTIL_H
#define AIOPIPE_SELFTEST_ASYNC_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "libaiopipe.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/*
 * A read the direct engine pins: more than small_read_max can be (256).
 * A smaller direct read is not pinned but filled in place by writers in
 * the reader's address space (async_small.c); tests of pinned requests
 * read at least this much.
 */
#define AP_PINNED_READ	512

#define AP_PARAM_DIR	"/sys/module/aiopipe/parameters/"

/* A module parameter's value without its newline; 0 or -errno. */
static inline int ap_param_read(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), AP_PARAM_DIR "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static inline int ap_param_write(const char *name, const char *val)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), AP_PARAM_DIR "%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		n = -errno;
	close(fd);
	return n < 0 ? (int)n : 0;
}

/* How long "nothing happens" is watched, and how long anything may take. */
#define AP_QUIET_MS	100
#define AP_LONG_MS	10000

/*
 * FIXTURE_VARIANT(f) { unsigned int engine; unsigned int filter; } plus
 * these four adds: every engine with wakeup filtering on and off.  The
 * filter only changes the retry engine (and a direct request that fell
 * back to it); direct variants with the filter off show that.
 */
#define AP_ENGINE_FILTER_VARIANTS(f)					\
	FIXTURE_VARIANT_ADD(f, retry_filtered) {			\
		.engine = AIOPIPE_ENGINE_RETRY,				\
		.filter = AIOPIPE_FILTER_ON,				\
	};								\
	FIXTURE_VARIANT_ADD(f, retry_unfiltered) {			\
		.engine = AIOPIPE_ENGINE_RETRY,				\
		.filter = AIOPIPE_FILTER_OFF,				\
	};								\
	FIXTURE_VARIANT_ADD(f, direct_filtered) {			\
		.engine = AIOPIPE_ENGINE_DIRECT,			\
		.filter = AIOPIPE_FILTER_ON,				\
	};								\
	FIXTURE_VARIANT_ADD(f, direct_unfiltered) {			\
		.engine = AIOPIPE_ENGINE_DIRECT,			\
		.filter = AIOPIPE_FILTER_OFF,				\
	}

/* The two engines, filtering at its default (on). */
#define AP_ENGINE_VARIANTS(f)						\
	FIXTURE_VARIANT_ADD(f, retry) {					\
		.engine = AIOPIPE_ENGINE_RETRY,				\
		.filter = AIOPIPE_FILTER_ON,				\
	};								\
	FIXTURE_VARIANT_ADD(f, direct) {				\
		.engine = AIOPIPE_ENGINE_DIRECT,			\
		.filter = AIOPIPE_FILTER_ON,				\
	}

static inline bool ap_is_direct(unsigned int engine)
{
	return engine == AIOPIPE_ENGINE_DIRECT;
}

static inline int64_t ap_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ap_ms_since(int64_t t0)
{
	return (ap_now_ns() - t0) / 1000000;
}

/* An aiopipe pair on @engine with @filter; @cap 0 = default. 0 or -errno. */
static inline int ap_pair(int fds[2], int flags, unsigned int cap,
			  unsigned int engine, unsigned int filter)
{
	int ret = aiopipe_pair_ex(fds, flags, cap, engine);

	if (ret)
		return ret;
	ret = aiopipe_set_filter(fds[0], filter);
	if (ret) {
		close(fds[0]);
		close(fds[1]);
	}
	return ret;
}

/*
 * One counter of @fd's channel (fd < 0: global) as a signed number, so the
 * harness compares it with plain integer literals; -1 if the ioctl failed.
 */
#define AP_STAT(fd, field) ({						\
	struct aiopipe_stats __st;					\
	aiopipe_stats((fd), &__st) ? -1LL : (long long)__st.field;	\
})

static inline unsigned long long ap_stat_at(int fd, size_t off)
{
	struct aiopipe_stats st;

	if (aiopipe_stats(fd, &st))
		return ~0ULL;
	return *(const __u64 *)((const char *)&st + off);
}

/*
 * Wait until a counter reaches @want: for work that has no fd to wait on
 * (a retry that moves nothing completes nothing).  Returns the last value
 * seen; the caller's EXPECT decides.  Never sleeps: yields the CPU to the
 * kworker it is waiting for, with @ms as the failure guard.
 */
static inline unsigned long long ap_wait_stat_at(int fd, size_t off,
						 unsigned long long want,
						 int ms)
{
	int64_t t0 = ap_now_ns();
	unsigned long long v;

	for (;;) {
		v = ap_stat_at(fd, off);
		if ((v != ~0ULL && v >= want) || ap_ms_since(t0) > ms)
			return v;
		sched_yield();
	}
}

/* The same, until the counter drops to at most @want. */
static inline unsigned long long ap_wait_stat_le_at(int fd, size_t off,
						    unsigned long long want,
						    int ms)
{
	int64_t t0 = ap_now_ns();
	unsigned long long v;

	for (;;) {
		v = ap_stat_at(fd, off);
		if (v <= want || ap_ms_since(t0) > ms)
			return v;
		sched_yield();
	}
}

#define AP_WAIT_STAT_LE(fd, field, want, ms)				\
	((long long)ap_wait_stat_le_at((fd),				\
			offsetof(struct aiopipe_stats, field), (want), (ms)))

#define AP_WAIT_STAT(fd, field, want, ms)				\
	((long long)ap_wait_stat_at((fd),				\
			offsetof(struct aiopipe_stats, field), (want), (ms)))

/* Counters that must be back at zero when nothing is pending. */
#define AP_EXPECT_IDLE(fd) do {						\
	struct aiopipe_stats __s;					\
	ASSERT_EQ(0, aiopipe_stats((fd), &__s));			\
	EXPECT_EQ(0, (long long)__s.pending_reads);			\
	EXPECT_EQ(0, (long long)__s.pending_writes);			\
	EXPECT_EQ(0, (long long)__s.pinned_pages);			\
} while (0)

/* Log every non-zero counter of @fd's channel. */
#define AP_LOG_STATS(fd, what) do {					\
	struct aiopipe_stats __s;					\
	char __b[1024];							\
	int __n = 0;							\
	if (aiopipe_stats((fd), &__s) == 0) {				\
		for (int __i = 0; __i < aiopipe_stat_count(); __i++) {	\
			unsigned long long __v =			\
				aiopipe_stat_value(&__s, __i);		\
			if (__v && __n < (int)sizeof(__b) - 64)		\
				__n += snprintf(__b + __n,		\
					sizeof(__b) - __n, " %s=%llu",	\
					aiopipe_stat_name(__i), __v);	\
		}							\
		__b[__n] = 0;						\
		TH_LOG("%s:%s", (what), __n ? __b : " (all zero)");	\
	}								\
} while (0)

/*
 * io_getevents until @min events arrived or @ms passed (EINTR retried).
 * Returns the number of events, or -errno.
 */
static inline int ap_getevents(io_context_t ctx, int min, int max,
			       struct io_event *ev, int ms)
{
	int64_t deadline = ap_now_ns() + (int64_t)ms * 1000000;
	int got = 0;

	while (got < min) {
		int64_t left = deadline - ap_now_ns();
		struct timespec ts;
		int n;

		if (left < 0)
			left = 0;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		n = io_getevents(ctx, min - got, max - got, ev + got, &ts);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
		got += n;
		if (!left)
			break;
	}
	return got;
}

/* Reap exactly one event within AP_LONG_MS; its res, or LONG_MIN. */
static inline long ap_reap1(io_context_t ctx, struct io_event *ev)
{
	struct io_event tmp;

	if (!ev)
		ev = &tmp;
	if (ap_getevents(ctx, 1, 1, ev, AP_LONG_MS) != 1)
		return LONG_MIN;
	return (long)ev->res;
}

/* True if no event shows up within AP_QUIET_MS (nothing is reaped then). */
static inline bool ap_no_event(io_context_t ctx)
{
	struct io_event ev;
	struct timespec ts = { 0, AP_QUIET_MS * 1000000L };

	return io_getevents(ctx, 1, 1, &ev, &ts) == 0;
}

static inline int ap_submit1(io_context_t ctx, struct iocb *cb)
{
	return io_submit(ctx, 1, &cb);
}

/* 1 if @fd gets one of @events within @ms, 0 if not, -errno on error. */
static inline int ap_poll1(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do {
		n = poll(&p, 1, ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n > 0 && (p.revents & (events | POLLHUP | POLLERR)) ? 1 : 0;
}

/* Bytes in the ring (FIONREAD), or -1. */
static inline int ap_fionread(int fd)
{
	int n;

	return ioctl(fd, FIONREAD, &n) ? -1 : n;
}

/*
 * The test pattern: the byte at stream offset @off is byte (off % 4) of the
 * little-endian 32-bit number off / 4, so any lost, duplicated or reordered
 * byte shows as a mismatch at a known position.
 */
static inline unsigned char ap_pat(uint64_t off)
{
	return (unsigned char)((off / 4) >> ((off % 4) * 8));
}

static inline void ap_fill(void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = ap_pat(off + i);
}

/* -1 if @buf holds the pattern from @off, else the first bad index. */
static inline long ap_check(const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != ap_pat(off + i))
			return (long)i;
	return -1;
}

/* Read exactly @len bytes (blocking fd); returns bytes read, or -errno. */
static inline ssize_t ap_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return got ? (ssize_t)got : -errno;
		if (n == 0)
			break;
		got += n;
	}
	return got;
}

static inline ssize_t ap_write_full(int fd, const void *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = write(fd, (const char *)buf + put, len - put);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return put ? (ssize_t)put : -errno;
		put += n;
	}
	return put;
}

/* Non-blocking drain of whatever the ring holds right now. */
static inline ssize_t ap_read_now(int fd, void *buf, size_t len)
{
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n = read(fd, buf, len);
	if (n < 0)
		n = -errno;
	fcntl(fd, F_SETFL, fl);
	return n;
}

/* @n fresh pages whose first touch waits on the returned userfaultfd, or -1. */
static inline int ap_uffd_pages(int n, char **pages)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	*pages = MAP_FAILED;
	if (fd < 0)
		return -1;
	*pages = mmap(NULL, (size_t)n * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.range.start = (unsigned long)*pages;
	reg.range.len = (unsigned long)n * 4096;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (*pages == MAP_FAILED || ioctl(fd, UFFDIO_API, &api) ||
	    ioctl(fd, UFFDIO_REGISTER, &reg)) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int ap_uffd_page(char **page)
{
	return ap_uffd_pages(1, page);
}

/*
 * fork() whose child dies with the test process (SIGKILL when it exits):
 * a failed ASSERT in the parent never leaves a child behind that holds
 * channels open (the module's counters would count them as leaked).
 */
static inline pid_t ap_fork(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid == 0 &&
	    (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(99);
	return pid;
}

/*
 * Wait at most @ms for child @pid to end; 0 and *status, or -ETIMEDOUT
 * (the child is then killed and reaped).  A pidfd makes it fd-synchronised.
 */
static inline int ap_wait_child(pid_t pid, int ms, int *status)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int ret = 0;

	if (pfd >= 0) {
		if (ap_poll1(pfd, POLLIN, ms) != 1)
			ret = -ETIMEDOUT;
		close(pfd);
	}
	if (ret) {
		kill(pid, SIGKILL);
		waitpid(pid, status, 0);
		return ret;
	}
	return waitpid(pid, status, 0) == pid ? 0 : -errno;
}

/*
 * Wait until task @pid sleeps in kernel function @fn (/proc/PID/wchan), so a
 * test knows a blocking call has reached its wait queue.  True if it did
 * within @ms.
 */
static inline bool ap_wait_wchan(pid_t pid, const char *fn, int ms)
{
	int64_t t0 = ap_now_ns();
	char path[64], buf[128];

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	for (;;) {
		int fd = open(path, O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (!strcmp(buf, fn))
				return true;
		}
		if (ap_ms_since(t0) > ms)
			return false;
		sched_yield();
	}
}

/* Child side: report a byte to the parent over a notification pipe. */
static inline void ap_notify(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(100);
}

/* Raise RLIMIT_NOFILE to at least @n; 0 or -errno. */
static inline int ap_raise_nofile(rlim_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= n)
		return 0;
	if (rl.rlim_max < n)
		rl.rlim_max = n;
	rl.rlim_cur = n;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

/* Pass an fd over a unix socket (SCM_RIGHTS), one byte of data with it. */
static inline int ap_send_fd(int sock, int fd)
{
	char c = 0, ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &c, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &mh, 0) == 1 ? 0 : -1;
}

static inline int ap_recv_fd(int sock)
{
	char c, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &mh, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

#endif /* AIOPIPE_SELFTEST_ASYNC_UTIL_H */
