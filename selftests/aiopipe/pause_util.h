/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for interleaving tests built on the module's pause points
 * (loaded with pause_points=1: /sys/kernel/debug/aiopipe/pause/<point>).
 *
 * A test arms a point for its channel, starts the party that will reach
 * it, waits for the fact "parked N" and then runs the other parties into
 * the window.  Every wait here polls a fact (a point's parked count, a
 * request's state in fdinfo, a call that returned) with a failure guard;
 * none of them is a synchronising sleep.
 *
 * Also: the channel id and the pending-request lines of an end's fdinfo,
 * the kernel's taint mask, and a thread running one blocking call that
 * the test can wait for with a guard.
 *
 * Include after kselftest_harness.h and async_util.h.
 */
#ifndef AIOPIPE_SELFTEST_PAUSE_UTIL_H
#define AIOPIPE_SELFTEST_PAUSE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#define AP_PAUSE_DIR	"/sys/kernel/debug/aiopipe/pause"

/* How often a wait looks at its fact again. */
#define AP_POLL_US	1000

/* The points, named as the files in AP_PAUSE_DIR. */
enum ap_point {
	AP_PULL_UNCLAIMED,	/* reader pulled part of a direct write, re-QUEUED it */
	AP_RETRY_START,		/* retry worker of a KICKED request, no mutex yet */
	AP_RETRY_CLAIMED,	/* retry worker, request BUSY, mutex held */
	AP_QUEUE_PREPARED,	/* libaio request about to be queued, mutex held */
	AP_WRITE_UNLOCKED,	/* writer dropped the mutex, wakeup not sent */
	AP_READ_LOCKED,		/* reader holds the mutex, about to move bytes */
	AP_RESIZE_START,	/* SET_CAPACITY: ring allocated, no mutex yet */
	AP_DRAIN_UNCLAIMED,	/* reader drained part of a direct write, re-QUEUED it */
	AP_FILL_CLAIMED,	/* writer claimed a pending read (BUSY), mutex held */
	AP_RING_FILLING,	/* writer took a ring buffer, mutex held, nothing copied */
	AP_NR_POINTS
};

static const char *const ap_point_names[AP_NR_POINTS] = {
	[AP_PULL_UNCLAIMED] = "pull_unclaimed",
	[AP_RETRY_START] = "retry_start",
	[AP_RETRY_CLAIMED] = "retry_claimed",
	[AP_QUEUE_PREPARED] = "queue_prepared",
	[AP_WRITE_UNLOCKED] = "write_unlocked",
	[AP_READ_LOCKED] = "read_locked",
	[AP_RESIZE_START] = "resize_start",
	[AP_DRAIN_UNCLAIMED] = "drain_unclaimed",
	[AP_FILL_CLAIMED] = "fill_claimed",
	[AP_RING_FILLING] = "ring_filling",
};

/* The point files of one test, all armed for one channel. */
struct ap_points {
	int fd[AP_NR_POINTS];
	unsigned long long chan;
};

/* What a point file reads back. */
struct ap_point_state {
	unsigned long long armed;	/* the channel, or ~0ULL if not armed */
	unsigned int parked;		/* contexts parked now */
	unsigned int released;		/* contexts parked and released, ever */
};

static inline bool ap_pause_present(void)
{
	return access(AP_PAUSE_DIR, F_OK) == 0;
}

static inline void ap_sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The whole of /proc/self/fdinfo/@fd into @buf; its length or -errno. */
static inline ssize_t ap_fdinfo(int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n, got = 0;
	int ifd;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	ifd = open(path, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return -errno;
	while (got < (ssize_t)len - 1 &&
	       (n = read(ifd, buf + got, len - 1 - got)) > 0)
		got += n;
	close(ifd);
	buf[got] = '\0';
	return got;
}

/* The channel id of an end ("channel:" in fdinfo), or 0 if not found. */
static inline unsigned long long ap_chan_id(int fd)
{
	char buf[4096], *p;

	if (ap_fdinfo(fd, buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, "channel:\t");
	return p ? strtoull(p + strlen("channel:\t"), NULL, 10) : 0;
}

/*
 * The pending-request lines of direction @dir ("read" or "write") in @fd's
 * fdinfo that contain @needle ("" for any): how many there are, and the
 * first one copied into @line (if not NULL) without its newline.  A line
 * reads "<dir>:\t<id> <state> <engine> done <n> left <n>[ cancelled]...".
 */
static inline int ap_fdinfo_reqs(int fd, const char *dir, const char *needle,
				 char *line, size_t len)
{
	char buf[8192], prefix[16], *p, *end, save;
	size_t plen;
	int hits = 0;

	if (ap_fdinfo(fd, buf, sizeof(buf)) < 0)
		return -1;
	plen = snprintf(prefix, sizeof(prefix), "%s:\t", dir);
	for (p = buf; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, '\n');
		if (strncmp(p, prefix, plen))
			continue;
		save = *end;
		*end = '\0';
		if (strstr(p, needle) && hits++ == 0 && line && len) {
			size_t n = (size_t)(end - p);

			if (n > len - 1)
				n = len - 1;
			memcpy(line, p, n);
			line[n] = '\0';
		}
		*end = save;
	}
	return hits;
}

/* Wait until ap_fdinfo_reqs() finds a line; true if it did within @ms. */
static inline bool ap_wait_fdinfo_req(int fd, const char *dir,
				      const char *needle, int ms)
{
	int64_t t0 = ap_now_ns();

	for (;;) {
		if (ap_fdinfo_reqs(fd, dir, needle, NULL, 0) > 0)
			return true;
		if (ap_ms_since(t0) > ms)
			return false;
		ap_sleep_us(AP_POLL_US);
	}
}

/* /proc/sys/kernel/tainted, or -1. */
#define AP_TAINT_WARN	(1L << 9)

static inline long ap_tainted(void)
{
	char buf[32];
	ssize_t n;
	int fd = open("/proc/sys/kernel/tainted", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/*
 * Open every point file for channel @chan; 0, -ENOENT if the module has
 * no pause points (not loaded with pause_points=1), or -errno.
 */
static inline int ap_points_open(struct ap_points *p, unsigned long long chan)
{
	char path[128];
	int i;

	for (i = 0; i < AP_NR_POINTS; i++)
		p->fd[i] = -1;
	p->chan = chan;
	if (!ap_pause_present())
		return -ENOENT;
	for (i = 0; i < AP_NR_POINTS; i++) {
		snprintf(path, sizeof(path), AP_PAUSE_DIR "/%s",
			 ap_point_names[i]);
		p->fd[i] = open(path, O_RDWR | O_CLOEXEC);
		if (p->fd[i] < 0)
			return -errno;
	}
	return 0;
}

static inline int ap_point_write(struct ap_points *p, enum ap_point pt,
				 const char *s)
{
	ssize_t n = pwrite(p->fd[pt], s, strlen(s), 0);

	return n == (ssize_t)strlen(s) ? 0 : -errno;
}

/* Park the next context that reaches @pt on our channel (one shot). */
static inline int ap_arm(struct ap_points *p, enum ap_point pt)
{
	char cmd[48];

	snprintf(cmd, sizeof(cmd), "arm %llu", p->chan);
	return ap_point_write(p, pt, cmd);
}

/* Wake what is parked at @pt and disarm it. */
static inline int ap_release(struct ap_points *p, enum ap_point pt)
{
	return ap_point_write(p, pt, "release");
}

static inline int ap_point_read(struct ap_points *p, enum ap_point pt,
				struct ap_point_state *st)
{
	char buf[128];
	ssize_t n = pread(p->fd[pt], buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "armed %llu parked %u released %u", &st->armed,
		   &st->parked, &st->released) != 3)
		return -EIO;
	return 0;
}

/* Contexts parked at @pt now, or -1. */
static inline int ap_parked(struct ap_points *p, enum ap_point pt)
{
	struct ap_point_state st;

	return ap_point_read(p, pt, &st) ? -1 : (int)st.parked;
}

/*
 * Wait until @n contexts are parked at @pt; returns the last count seen,
 * so EXPECT_EQ(n, ...) reports what was there when @ms ran out.
 */
static inline int ap_wait_parked(struct ap_points *p, enum ap_point pt,
				 int n, int ms)
{
	int64_t t0 = ap_now_ns();
	int seen;

	for (;;) {
		seen = ap_parked(p, pt);
		if (seen >= n || ap_ms_since(t0) > ms)
			return seen;
		ap_sleep_us(AP_POLL_US);
	}
}

/* Release (and disarm) every point: a failed test leaves nothing parked. */
static inline void ap_release_all(struct ap_points *p)
{
	int i;

	for (i = 0; i < AP_NR_POINTS; i++)
		if (p->fd[i] >= 0)
			ap_release(p, i);
}

static inline void ap_points_close(struct ap_points *p)
{
	int i;

	ap_release_all(p);
	for (i = 0; i < AP_NR_POINTS; i++) {
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
}

/*
 * One blocking call in its own thread: @fn runs once, its result and errno
 * are kept, and an eventfd says when it returned.  The test waits for that
 * with a guard, and joins only a call that returned (a call still blocked
 * when the test gives up is left behind; the process exit ends it).
 */
struct ap_call {
	long (*fn)(struct ap_call *c);
	void *arg;
	long ret;
	int err;
	int efd;
	bool started, joined;
	pthread_t thread;
};

static inline void *ap_call_main(void *arg)
{
	struct ap_call *c = arg;
	uint64_t one = 1;

	errno = 0;
	c->ret = c->fn(c);
	c->err = errno;
	if (write(c->efd, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

/* 0 or -errno. */
static inline int ap_call_start(struct ap_call *c,
				long (*fn)(struct ap_call *c), void *arg)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	c->efd = eventfd(0, EFD_CLOEXEC);
	if (c->efd < 0)
		return -errno;
	ret = pthread_create(&c->thread, NULL, ap_call_main, c);
	if (ret) {
		close(c->efd);
		c->efd = -1;
		return -ret;
	}
	c->started = true;
	return 0;
}

/* True if the call returned (now, or within @ms). */
static inline bool ap_call_wait(struct ap_call *c, int ms)
{
	return c->started && ap_poll1(c->efd, POLLIN, ms) == 1;
}

/* Wait at most @ms for the call, join it; true if it returned. */
static inline bool ap_call_join(struct ap_call *c, int ms)
{
	if (!c->started)
		return false;
	if (c->joined)
		return true;
	if (!ap_call_wait(c, ms))
		return false;
	pthread_join(c->thread, NULL);
	close(c->efd);
	c->joined = true;
	return true;
}

#endif /* AIOPIPE_SELFTEST_PAUSE_UTIL_H */
