/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the synchronous-semantics selftests (pipe_*.c): the
 * backend variants, waiting until a task is known to sleep in a system call
 * (the only way these tests synchronise with a blocked party: never a sleep),
 * bounded joins, signals, byte patterns.
 *
 * Every helper returns a value the test checks; none of them asserts.
 */
#ifndef AIOPIPE_SELFTEST_PIPE_COMMON_H
#define AIOPIPE_SELFTEST_PIPE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "backend.h"

/* How long a test waits for something that must happen "at once". */
#define PT_TIMEOUT_MS	10000

/*
 * The three backends of every differential fixture.  The fixture's
 * FIXTURE_VARIANT must have a member "enum backend backend".
 */
#define BACKEND_VARIANTS(f)						\
	FIXTURE_VARIANT_ADD(f, pipe) { .backend = BACKEND_PIPE };	\
	FIXTURE_VARIANT_ADD(f, aiopipe_retry) { .backend = BACKEND_RETRY }; \
	FIXTURE_VARIANT_ADD(f, aiopipe_direct) { .backend = BACKEND_DIRECT }

static inline pid_t pt_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static inline long pt_elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Read a small /proc file into @buf; returns its length or -1. */
static inline ssize_t pt_read_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* The scheduler state letter of a task ('R', 'S', ...), or 0. */
static inline char pt_task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	if (pt_read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* The system call a task is blocked in, -1 if running, -2 on error. */
static inline long pt_task_syscall(pid_t pid, pid_t tid)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	if (pt_read_file(path, buf, sizeof(buf)) <= 0)
		return -2;
	if (buf[0] < '0' || buf[0] > '9')
		return -1;
	return strtol(buf, NULL, 10);
}

/*
 * Wait until task @tid of process @pid sleeps interruptibly inside system
 * call @nr (or any of @nr and @nr2; pass -1 for no second one).  This is
 * how a test knows that the other party is really blocked before it acts:
 * no sleep, and bounded by PT_TIMEOUT_MS.  Returns false on timeout.
 */
static inline bool pt_wait_blocked2(pid_t pid, pid_t tid, long nr, long nr2)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (pt_task_state(pid, tid) == 'S') {
			long sc = pt_task_syscall(pid, tid);

			/* re-check: the syscall file is read a moment later */
			if ((sc == nr || (nr2 >= 0 && sc == nr2)) &&
			    pt_task_state(pid, tid) == 'S')
				return true;
		}
		if (pt_elapsed_ms(&t0) > PT_TIMEOUT_MS)
			return false;
		sched_yield();
	}
}

static inline bool pt_wait_blocked(pid_t pid, pid_t tid, long nr)
{
	return pt_wait_blocked2(pid, tid, nr, -1);
}

/* A thread of this process blocked in @nr. */
static inline bool pt_thread_blocked(pid_t tid, long nr)
{
	return pt_wait_blocked(getpid(), tid, nr);
}

/* pthread_join() bounded by PT_TIMEOUT_MS; false if still running. */
static inline bool pt_join(pthread_t t, void **ret)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += PT_TIMEOUT_MS / 1000;
	return pthread_timedjoin_np(t, ret, &ts) == 0;
}

/*
 * waitpid() bounded by @ms (a pidfd becomes readable when the child
 * exits); returns the child's pid, 0 on timeout, -1 on error.
 */
static inline pid_t pt_waitpid_ms(pid_t pid, int *status, int ms)
{
	struct pollfd pfd = { .events = POLLIN };
	pid_t r;

	pfd.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd.fd >= 0) {
		int n = poll(&pfd, 1, ms);

		close(pfd.fd);
		if (n == 0)
			return 0;
	}
	do {
		r = waitpid(pid, status, 0);
	} while (r < 0 && errno == EINTR);
	return r;
}

static inline pid_t pt_waitpid(pid_t pid, int *status)
{
	return pt_waitpid_ms(pid, status, PT_TIMEOUT_MS);
}

/* Exit code of a child that exited normally, else 1000 + signal, or -1. */
static inline int pt_child_result(pid_t pid)
{
	int status = 0;

	if (pt_waitpid(pid, &status) != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return -1;
}

/* poll() one fd without blocking: revents, or -errno. */
static inline int pt_revents(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, 0);

	if (n < 0)
		return -errno;
	return n ? pfd.revents : 0;
}

/* Every poll bit pipe_poll() can report, except POLLWRBAND (see below). */
#define PT_POLL_ALL	(POLLIN | POLLPRI | POLLOUT | POLLRDNORM | \
			 POLLRDBAND | POLLWRNORM | POLLRDHUP)

/* poll() up to @ms for @events: revents, 0 on timeout, -errno. */
static inline int pt_poll_ms(int fd, short events, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, ms);

	if (n < 0)
		return -errno;
	return n ? pfd.revents : 0;
}

/* FIONREAD, or -errno. */
static inline int pt_fionread(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) < 0)
		return -errno;
	return n;
}

static inline int pt_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

/* The byte at stream offset @off of the test pattern (period is not a power of 2). */
static inline unsigned char pt_pattern_byte(uint64_t off)
{
	return (unsigned char)((off * 131 + (off >> 7) * 7 + 17) % 251);
}

static inline void pt_pattern_fill(void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pt_pattern_byte(off + i);
}

/* Index of the first byte that differs from the pattern, or @len. */
static inline size_t pt_pattern_check(const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pt_pattern_byte(off + i))
			return i;
	return len;
}

/* write() all of @len (blocking fd); returns bytes written or -errno. */
static inline ssize_t pt_write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -errno;
		}
		done += n;
	}
	return done;
}

/* read() until @len bytes or EOF; returns bytes read or -errno. */
static inline ssize_t pt_read_all(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -errno;
		}
		if (!n)
			break;
		done += n;
	}
	return done;
}

/* Block @sig in this thread (and in threads it creates afterwards). */
static inline int pt_block_signal(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Take a pending (blocked) @sig without waiting; true if there was one. */
static inline bool pt_take_signal(int sig, siginfo_t *info)
{
	struct timespec zero = { 0, 0 };
	siginfo_t dummy;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	return sigtimedwait(&set, info ? info : &dummy, &zero) == sig;
}

/* Install @handler for @sig, with or without SA_RESTART. */
static inline int pt_handle_signal(int sig, void (*handler)(int), bool restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

/* Number of open fds of this process. */
static inline int pt_fd_count(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	}
	return n;
}

/* An unsigned module parameter or sysctl, or -1. */
static inline long pt_read_ulong(const char *path)
{
	char buf[64];

	if (pt_read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* The seed of a randomised test: $AIOPIPE_SEED, or time and pid. */
static inline unsigned long long pt_seed(void)
{
	const char *s = getenv("AIOPIPE_SEED");
	struct timespec t;

	if (s && *s)
		return strtoull(s, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &t);
	return ((unsigned long long)t.tv_sec * 1000003ULL) ^
	       (unsigned long long)t.tv_nsec ^ ((unsigned long long)getpid() << 32);
}

/* splitmix64: a small, seedable generator. */
static inline uint64_t pt_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline uint64_t pt_rand_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
	return lo + pt_rand(state) % (hi - lo + 1);
}

/*
 * A system call run by a helper thread, so that the test can act while it
 * is blocked: start it, wait until pt_thread_blocked(call.tid, SYS_...),
 * act, then join it and look at ret/err.
 */
struct pt_call {
	ssize_t (*fn)(struct pt_call *c);
	int fd;
	void *buf;
	size_t len;
	long arg;
	pthread_t thread;
	pid_t tid;		/* set by the thread before it calls fn */
	ssize_t ret;
	int err;		/* errno if ret < 0 */
	bool sigpipe;		/* a SIGPIPE was pending after the call */
};

static inline void *pt_call_thread(void *arg)
{
	struct pt_call *c = arg;

	__atomic_store_n(&c->tid, pt_gettid(), __ATOMIC_SEQ_CST);
	c->ret = c->fn(c);
	c->err = c->ret < 0 ? errno : 0;
	c->sigpipe = pt_take_signal(SIGPIPE, NULL);
	return NULL;
}

/* Start @c in a thread; returns its tid, or -1. */
static inline pid_t pt_call_start(struct pt_call *c)
{
	struct timespec t0;

	c->tid = 0;
	if (pthread_create(&c->thread, NULL, pt_call_thread, c))
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!__atomic_load_n(&c->tid, __ATOMIC_SEQ_CST)) {
		if (pt_elapsed_ms(&t0) > PT_TIMEOUT_MS)
			return -1;
		sched_yield();
	}
	return c->tid;
}

static inline bool pt_call_join(struct pt_call *c)
{
	return pt_join(c->thread, NULL);
}

static inline ssize_t pt_do_read(struct pt_call *c)
{
	return read(c->fd, c->buf, c->len);
}

static inline ssize_t pt_do_write(struct pt_call *c)
{
	return write(c->fd, c->buf, c->len);
}

/* poll(c->fd, events = c->arg), no timeout: returns revents. */
static inline ssize_t pt_do_poll(struct pt_call *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = (short)c->arg };
	ssize_t n = ppoll(&pfd, 1, NULL, NULL);

	return n > 0 ? pfd.revents : n;
}

/*
 * Fill the pipe with PIPE_BUF-sized nonblocking writes (page-sized, so a
 * kernel pipe and an aiopipe both hold their whole capacity); returns the
 * bytes accepted, or -1.  The end is left blocking again.
 */
static inline ssize_t pt_fill(int wr)
{
	char buf[PIPE_BUF];
	ssize_t total = 0, n;

	if (pt_set_nonblock(wr, true))
		return -1;
	memset(buf, 'f', sizeof(buf));
	while ((n = write(wr, buf, sizeof(buf))) > 0)
		total += n;
	if (errno != EAGAIN || pt_set_nonblock(wr, false))
		return -1;
	return total;
}

/* Close one end of a pair and mark it closed for backend_close(). */
static inline void pt_close_end(int *fd)
{
	close(*fd);
	*fd = -1;
}

#endif /* AIOPIPE_SELFTEST_PIPE_COMMON_H */
