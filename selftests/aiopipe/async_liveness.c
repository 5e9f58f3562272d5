// SPDX-License-Identifier: GPL-2.0
/*
 * Progress guarantees that do not depend on the pipe ever going idle, plus
 * bounds on what user space can make the module do.
 *
 *  - fsync() on a write end returns once the bytes written before it have
 *    been read, even while another writer keeps the ring from emptying.
 *  - Growing the capacity serves the first queued write at once, on both
 *    engines, and the sync writer queued behind it.
 *  - A retry read that takes the ring and then drains pending direct writes
 *    leaves the write end writable: epoll reports it and a write of
 *    PIPE_BUF bytes does not block.
 *  - /proc/PID/fdinfo of an end lists a bounded number of pending requests
 *    and counts the rest.
 *  - The writable module parameters refuse values the module cannot use,
 *    leaving the old value in place.
 */
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE		4096
#define BIG_CAP		65536
#define CHUNK		100

static void *page_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int my_tid(void)
{
	return (int)syscall(SYS_gettid);
}

/* Wait until a thread has published its tid in @slot; the tid or 0. */
static int wait_tid(int *slot)
{
	int64_t t0 = ap_now_ns();
	int tid;

	while (!(tid = __atomic_load_n(slot, __ATOMIC_ACQUIRE)) &&
	       ap_ms_since(t0) < AP_LONG_MS)
		sched_yield();
	return tid;
}

/* /proc/self/fdinfo/@fd into @buf (NUL-terminated); its length or -errno. */
static ssize_t fdinfo_read(int fd, char *buf, size_t len)
{
	char path[64];
	size_t got = 0;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		return -errno;
	while (got < len - 1) {
		ssize_t n = read(f, buf + got, len - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(f);
	buf[got] = 0;
	return got;
}

/* The first line of @fd's fdinfo that starts with @tag, into @line. */
static bool fdinfo_line(int fd, const char *tag, char *line, size_t len)
{
	char buf[8192];
	char *p, *e;

	if (fdinfo_read(fd, buf, sizeof(buf)) <= 0)
		return false;
	for (p = buf; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, '\n');
		if (!strncmp(p, tag, strlen(tag))) {
			snprintf(line, len, "%.*s", (int)(e - p), p);
			return true;
		}
	}
	return false;
}

/* Append everything readable now from @fd to @buf (at most @room bytes). */
static size_t drain_now(int fd, char *buf, size_t room)
{
	size_t got = 0;

	while (got < room) {
		ssize_t n = ap_read_now(fd, buf + got, room - got);

		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

FIXTURE(liveness) {
	int fds[2];
	io_context_t ctx;
};

FIXTURE_VARIANT(liveness) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(liveness);

FIXTURE_SETUP(liveness)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(16, &self->ctx));
}

FIXTURE_TEARDOWN(liveness)
{
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
}

/* The three parties of the fsync test. */
struct steady {
	int wfd, rfd;
	int stop_efd;		/* tells the reader to stop */
	int wrote_efd;		/* writer B: one more chunk is in */
	int fsync_efd;		/* signalled when fsync() returned */
	int stop_b, stop_r;
	int fsync_tid;
	int fsync_ret, fsync_errno;
	bool b_running_at_return;
	long long b_bytes, r_bytes;
	long low_waits;		/* times the reader waited for B */
	char scratch[BIG_CAP];
};

static void *fsync_main(void *arg)
{
	struct steady *s = arg;

	__atomic_store_n(&s->fsync_tid, my_tid(), __ATOMIC_RELEASE);
	s->fsync_ret = fsync(s->wfd);
	s->fsync_errno = s->fsync_ret ? errno : 0;
	s->b_running_at_return = !__atomic_load_n(&s->stop_b,
						  __ATOMIC_ACQUIRE);
	eventfd_write(s->fsync_efd, 1);
	return NULL;
}

static void *steady_writer_main(void *arg)
{
	struct steady *s = arg;
	char buf[CHUNK];

	memset(buf, 'B', sizeof(buf));
	while (!__atomic_load_n(&s->stop_b, __ATOMIC_ACQUIRE)) {
		ssize_t n = write(s->wfd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		__atomic_add_fetch(&s->b_bytes, n, __ATOMIC_RELAXED);
		eventfd_write(s->wrote_efd, 1);
	}
	return NULL;
}

/*
 * Reads 64 bytes at a time, but only while the ring holds more than
 * READER_LOW bytes; below that it waits for writer B's next chunk.  Only
 * this thread reads, so the ring never empties while B writes.
 */
#define READER_LOW	1024

static void *steady_reader_main(void *arg)
{
	struct steady *s = arg;
	struct pollfd p[2] = {
		{ .fd = s->wrote_efd, .events = POLLIN },
		{ .fd = s->stop_efd, .events = POLLIN },
	};
	char buf[64];

	while (!__atomic_load_n(&s->stop_r, __ATOMIC_ACQUIRE)) {
		eventfd_t v;
		ssize_t n;

		if (ap_fionread(s->rfd) <= READER_LOW) {
			s->low_waits++;
			if (poll(p, 2, -1) < 0 && errno != EINTR)
				break;
			if (p[0].revents & POLLIN)
				eventfd_read(s->wrote_efd, &v);
			continue;
		}
		n = read(s->rfd, buf, sizeof(buf));
		if (n > 0)
			__atomic_add_fetch(&s->r_bytes, n, __ATOMIC_RELAXED);
	}
	return NULL;
}

/*
 *   capacity 65536
 *   writer A (test)   A's fsync thread       writer B thread     reader thread
 *   write 10 bytes
 *                     fsync(wr): mark 10,
 *                     sleeps (no reader)
 *                                            write 100, 100, ...
 *                                            until the ring is full
 *   start the reader -------------------------------------------> read 64,
 *                                            writes whenever       64, ...
 *                                            there is room         (waits
 *                                                                  for B below
 *                                                                  1024 bytes:
 *                                                                  never empty)
 *                     consumed >= 10:
 *                     returns 0 within 2 s,
 *                     B still writing
 *   stop B, stop the reader, read the rest
 */
TEST_F(liveness, fsync_returns_under_a_steady_writer)
{
	struct steady s = {
		.wfd = self->fds[1], .rfd = self->fds[0],
	};
	pthread_t tf, tb, tr;
	bool returned;
	int64_t t0;
	int tid, fl;

	ASSERT_EQ(BIG_CAP, aiopipe_set_capacity(self->fds[1], BIG_CAP));
	s.stop_efd = eventfd(0, 0);
	s.wrote_efd = eventfd(0, 0);
	s.fsync_efd = eventfd(0, 0);
	ASSERT_LE(0, s.stop_efd);
	ASSERT_LE(0, s.wrote_efd);
	ASSERT_LE(0, s.fsync_efd);
	fl = fcntl(self->fds[0], F_GETFL);
	ASSERT_EQ(0, fcntl(self->fds[0], F_SETFL, fl | O_NONBLOCK));

	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	ASSERT_EQ(0, pthread_create(&tf, NULL, fsync_main, &s));
	tid = wait_tid(&s.fsync_tid);
	ASSERT_NE(0, tid);
	ASSERT_TRUE(ap_wait_wchan(tid, "aiopipe_fsync", AP_LONG_MS));

	ASSERT_EQ(0, pthread_create(&tb, NULL, steady_writer_main, &s));
	t0 = ap_now_ns();
	while (ap_fionread(self->fds[0]) <= BIG_CAP - CHUNK &&
	       ap_ms_since(t0) < AP_LONG_MS)
		sched_yield();
	ASSERT_LT(BIG_CAP - CHUNK, ap_fionread(self->fds[0]));
	EXPECT_EQ(0, ap_poll1(s.fsync_efd, POLLIN, 0))
		TH_LOG("fsync returned before anything was read");

	t0 = ap_now_ns();
	ASSERT_EQ(0, pthread_create(&tr, NULL, steady_reader_main, &s));
	returned = ap_poll1(s.fsync_efd, POLLIN, 2000) == 1;
	EXPECT_TRUE(returned)
		TH_LOG("fsync has not returned %lld ms after the reader started (%lld bytes read, writer B still writing)",
		       (long long)ap_ms_since(t0),
		       __atomic_load_n(&s.r_bytes, __ATOMIC_RELAXED));
	if (returned) {
		EXPECT_EQ(0, s.fsync_ret) TH_LOG("errno %d", s.fsync_errno);
		EXPECT_TRUE(s.b_running_at_return);
		TH_LOG("fsync returned %lld ms after the reader started",
		       (long long)ap_ms_since(t0));
	}

	/* stop B (the reader makes room for its last chunk), then the reader */
	__atomic_store_n(&s.stop_b, 1, __ATOMIC_RELEASE);
	pthread_join(tb, NULL);
	__atomic_store_n(&s.stop_r, 1, __ATOMIC_RELEASE);
	eventfd_write(s.stop_efd, 1);
	pthread_join(tr, NULL);
	TH_LOG("B wrote %lld bytes, the reader read %lld and waited for B %ld times",
	       s.b_bytes, s.r_bytes, s.low_waits);
	/* read the rest: the ring empties, which ends any drain wait */
	drain_now(self->fds[0], s.scratch, sizeof(s.scratch));
	if (!returned) {
		t0 = ap_now_ns();
		returned = ap_poll1(s.fsync_efd, POLLIN, AP_LONG_MS) == 1;
		TH_LOG("fsync %s %lld ms after the ring emptied",
		       returned ? "returned" : "still waiting",
		       (long long)ap_ms_since(t0));
	}
	if (!returned) {
		/* last resort: no reader left, fsync answers EPIPE */
		close(self->fds[0]);
		self->fds[0] = -1;
	}
	pthread_join(tf, NULL);
	close(s.wrote_efd);
	close(s.stop_efd);
	close(s.fsync_efd);
}

struct sync_writer {
	int fd;
	const char *buf;
	size_t len;
	ssize_t ret;
	int tid;
	int efd;
};

static void *sync_writer_main(void *arg)
{
	struct sync_writer *w = arg;

	__atomic_store_n(&w->tid, my_tid(), __ATOMIC_RELEASE);
	w->ret = write(w->fd, w->buf, w->len);
	if (w->ret < 0)
		w->ret = -errno;
	eventfd_write(w->efd, 1);
	return NULL;
}

/*
 *   capacity 4096, full of bytes 0..4095
 *   test                                 writer thread       aiopipe
 *   PWRITE D of 2000 (bytes 4096..6095) --------------------> queued
 *                                        write(10) --------> blocks behind D
 *   SET_CAPACITY(8192) -----------------------------------> 4096 free:
 *                                                            D moves in
 *   D completes with 2000 (< 1 s)
 *                                        returns 10 (< 1 s)
 *   the stream is bytes 0..6105 in order
 */
TEST_F(liveness, grow_capacity_serves_a_queued_direct_write)
{
	const char *eng = ap_is_direct(variant->engine) ? "direct" : "retry";
	char *src = page_buf(2 * PAGE), *got = page_buf(2 * PAGE);
	struct sync_writer w = { .fd = self->fds[1], .len = 10 };
	const size_t total = PAGE + 2000 + 10;
	bool d_done, w_done;
	char line[256], want[64];
	struct io_event ev;
	struct iocb cb;
	pthread_t tw;
	size_t n;
	int tid;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	ap_fill(src, 2 * PAGE, 0);
	w.buf = src + PAGE + 2000;
	w.efd = eventfd(0, 0);
	ASSERT_LE(0, w.efd);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], src, PAGE));

	io_prep_pwrite(&cb, self->fds[1], src + PAGE, 2000, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_TRUE(fdinfo_line(self->fds[1], "write:\t", line, sizeof(line)));
	snprintf(want, sizeof(want), " queued %s done 0 left 2000", eng);
	ASSERT_NE(NULL, strstr(line, want)) TH_LOG("fdinfo: %s", line);

	ASSERT_EQ(0, pthread_create(&tw, NULL, sync_writer_main, &w));
	tid = wait_tid(&w.tid);
	ASSERT_NE(0, tid);
	ASSERT_TRUE(ap_wait_wchan(tid, "aiopipe_wait", AP_LONG_MS));

	EXPECT_EQ(2 * PAGE, aiopipe_set_capacity(self->fds[1], 2 * PAGE));
	d_done = ap_getevents(self->ctx, 1, 1, &ev, 1000) == 1;
	EXPECT_TRUE(d_done)
		TH_LOG("the queued write is still pending 1 s after the capacity grew");
	if (d_done)
		EXPECT_EQ(2000, (long)ev.res);
	w_done = ap_poll1(w.efd, POLLIN, 1000) == 1;
	EXPECT_TRUE(w_done)
		TH_LOG("the sync writer is still blocked 1 s after the capacity grew");
	if (w_done)
		EXPECT_EQ(10, w.ret);

	/* read everything; that also frees whatever is still stuck */
	n = drain_now(self->fds[0], got, 2 * PAGE);
	if (!d_done) {
		ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
		EXPECT_EQ(2000, (long)ev.res);
	}
	if (!w_done)
		ASSERT_EQ(1, ap_poll1(w.efd, POLLIN, AP_LONG_MS));
	pthread_join(tw, NULL);
	n += drain_now(self->fds[0], got + n, 2 * PAGE - n);
	EXPECT_EQ(total, n);
	EXPECT_EQ(-1, ap_check(got, n, 0));
	AP_EXPECT_IDLE(self->fds[0]);
	close(w.efd);
}

/* One channel on the retry engine with an AIO context for 2048 requests. */
FIXTURE(retry_chan) {
	int fds[2];
	io_context_t ctx;
};

FIXTURE_SETUP(retry_chan)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, AIOPIPE_ENGINE_RETRY,
			     AIOPIPE_FILTER_ON));
	ASSERT_EQ(0, io_setup(2048, &self->ctx));
}

FIXTURE_TEARDOWN(retry_chan)
{
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
}

/*
 *   capacity 4096, empty, retry engine
 *   test                                  kworker (R's retry)
 *   PREAD R of 8192 -> queued (retry)
 *   switch the channel to the direct engine
 *   PWRITE D of 8192 (bytes 0..8191):
 *     4096 into the ring, the rest
 *     queued direct (pinned)  ----------> R takes the ring (0..4095), then
 *                                         drains D (4096..8191) directly:
 *                                         D completes
 *   reap R and D; R's bytes and what is left are bytes 0..8191 in order
 *   epoll(EPOLLOUT) on the write end: ready at once
 *   write(4096), nonblocking: 4096
 */
TEST_F(retry_chan, retry_read_draining_direct_writes_wakes_writers)
{
	char *src = page_buf(2 * PAGE), *rbuf = page_buf(2 * PAGE);
	char *rest = page_buf(2 * PAGE);
	long rres = LONG_MIN, dres = LONG_MIN;
	struct epoll_event e = { .events = EPOLLOUT };
	struct iocb rcb, dcb;
	char line[256];
	int64_t t0;
	size_t n;
	int epfd, fl;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, rbuf);
	ASSERT_NE(NULL, rest);
	ap_fill(src, 2 * PAGE, 0);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));

	io_prep_pread(&rcb, self->fds[0], rbuf, 2 * PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &rcb));
	ASSERT_TRUE(fdinfo_line(self->fds[0], "read:\t", line, sizeof(line)));
	ASSERT_NE(NULL, strstr(line, " queued retry ")) TH_LOG("%s", line);
	ASSERT_EQ(0, aiopipe_set_engine(self->fds[0], AIOPIPE_ENGINE_DIRECT));
	io_prep_pwrite(&dcb, self->fds[1], src, 2 * PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &dcb));

	/* R completes; D too if R drained it */
	t0 = ap_now_ns();
	while (rres == LONG_MIN && ap_ms_since(t0) < AP_LONG_MS) {
		struct io_event ev[2];
		int got = ap_getevents(self->ctx, 1, 2, ev, 200);

		for (int i = 0; i < got; i++) {
			if (ev[i].obj == &rcb)
				rres = (long)ev[i].res;
			else if (ev[i].obj == &dcb)
				dres = (long)ev[i].res;
		}
	}
	ASSERT_NE(LONG_MIN, rres) TH_LOG("the read never completed");
	ASSERT_LT(0, rres);
	TH_LOG("R completed with %ld, D %s", rres,
	       dres == LONG_MIN ? "not yet" : "too");
	EXPECT_EQ(-1, ap_check(rbuf, rres, 0));
	n = drain_now(self->fds[0], rest, 2 * PAGE);
	EXPECT_EQ(2 * PAGE - rres, (long)n);
	EXPECT_EQ(-1, ap_check(rest, n, rres));
	if (dres == LONG_MIN) {
		struct io_event ev;

		ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
		dres = (long)ev.res;
	}
	EXPECT_EQ(2 * PAGE, dres);
	/* D used the direct engine: its pages were pinned */
	EXPECT_LT(0, AP_STAT(self->fds[0], pinned_pages_peak));
	AP_EXPECT_IDLE(self->fds[0]);

	/* the write end is writable, and says so */
	epfd = epoll_create1(0);
	ASSERT_LE(0, epfd);
	ASSERT_EQ(0, epoll_ctl(epfd, EPOLL_CTL_ADD, self->fds[1], &e));
	memset(&e, 0, sizeof(e));
	EXPECT_EQ(1, epoll_wait(epfd, &e, 1, 0));
	EXPECT_NE(0, (int)(e.events & EPOLLOUT));
	close(epfd);
	fl = fcntl(self->fds[1], F_GETFL);
	ASSERT_EQ(0, fcntl(self->fds[1], F_SETFL, fl | O_NONBLOCK));
	EXPECT_EQ(PAGE, write(self->fds[1], src, PAGE));
	fcntl(self->fds[1], F_SETFL, fl);
	EXPECT_EQ(PAGE, ap_read_now(self->fds[0], rest, 2 * PAGE));
}

#define FDINFO_REQS		1000
#define FDINFO_MAX_BYTES	8192
#define FDINFO_MAX_LINES	16

/*
 * 1000 reads pending on one channel: its fdinfo stays at most 8192 bytes,
 * lists at most 16 of them and reports the others as "read:\t<N> more".
 */
TEST_F(retry_chan, fdinfo_is_bounded)
{
	static char info[256 * 1024];
	struct iocb *cbs = calloc(FDINFO_REQS, sizeof(*cbs));
	struct iocb **cbp = calloc(FDINFO_REQS, sizeof(*cbp));
	char *bufs = malloc(FDINFO_REQS);
	long long more = -1;
	int listed = 0;
	ssize_t len;
	char *p, *e;

	ASSERT_NE(NULL, cbs);
	ASSERT_NE(NULL, cbp);
	ASSERT_NE(NULL, bufs);
	for (int i = 0; i < FDINFO_REQS; i++) {
		io_prep_pread(&cbs[i], self->fds[0], bufs + i, 1, 0);
		cbp[i] = &cbs[i];
	}
	for (int done = 0; done < FDINFO_REQS;) {
		int r = io_submit(self->ctx, FDINFO_REQS - done, cbp + done);

		ASSERT_LT(0, r);
		done += r;
	}
	ASSERT_EQ(FDINFO_REQS, AP_STAT(self->fds[0], pending_reads));

	len = fdinfo_read(self->fds[0], info, sizeof(info));
	ASSERT_LT(0, len);
	for (p = info; *p; p = *e ? e + 1 : e) {
		long long n;

		e = strchrnul(p, '\n');
		if (strncmp(p, "read:\t", 6))
			continue;
		if (memmem(p, e - p, "more", 4) &&
		    sscanf(p, "read:\t%lld more", &n) == 1)
			more = n;
		else
			listed++;
	}
	TH_LOG("%zd bytes, %d requests listed, %lld more", len, listed, more);
	EXPECT_GE(FDINFO_MAX_BYTES, len);
	EXPECT_GE(FDINFO_MAX_LINES, listed);
	EXPECT_LE(0, more) TH_LOG("no \"read:\\t<N> more\" line");
	if (more >= 0)
		EXPECT_EQ(FDINFO_REQS, listed + more);

	EXPECT_EQ(0, io_destroy(self->ctx));
	self->ctx = 0;
	AP_EXPECT_IDLE(self->fds[0]);
	free(cbs);
	free(cbp);
	free(bufs);
}

FIXTURE(params) {
	char engine[32], filter[32], max_capacity[32], small_read_max[32];
	bool saved;
};

FIXTURE_SETUP(params)
{
	self->saved =
		!ap_param_read("engine", self->engine, sizeof(self->engine)) &&
		!ap_param_read("filter", self->filter, sizeof(self->filter)) &&
		!ap_param_read("max_capacity", self->max_capacity,
			    sizeof(self->max_capacity)) &&
		!ap_param_read("small_read_max", self->small_read_max,
			    sizeof(self->small_read_max));
}

FIXTURE_TEARDOWN(params)
{
	if (!self->saved || geteuid())
		return;
	ap_param_write("engine", self->engine);
	ap_param_write("filter", self->filter);
	ap_param_write("max_capacity", self->max_capacity);
	ap_param_write("small_read_max", self->small_read_max);
}

TEST_F(params, module_params_are_validated)
{
	const struct {
		const char *name, *bad;
		const char *orig;
	} cases[] = {
		{ "engine", "7", self->engine },
		{ "filter", "2", self->filter },
		{ "max_capacity", "100", self->max_capacity },
		{ "small_read_max", "257", self->small_read_max },
	};
	char now[32];
	int fds[2];

	if (!self->saved)
		SKIP(return, "no " AP_PARAM_DIR);
	if (geteuid())
		SKIP(return, "writing module parameters needs root");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EXPECT_EQ(-EINVAL, ap_param_write(cases[i].name, cases[i].bad))
			TH_LOG("%s=%s was accepted", cases[i].name,
			       cases[i].bad);
		ASSERT_EQ(0, ap_param_read(cases[i].name, now, sizeof(now)));
		EXPECT_STREQ(cases[i].orig, now)
			TH_LOG("%s changed", cases[i].name);
	}
	/* a new channel still gets a real engine by default */
	ASSERT_EQ(0, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DEFAULT));
	EXPECT_EQ(atoi(self->engine), aiopipe_get_engine(fds[0]));
	backend_close(fds);

	EXPECT_EQ(0, ap_param_write("engine", "2"));
	ASSERT_EQ(0, ap_param_read("engine", now, sizeof(now)));
	EXPECT_STREQ("2", now);
	EXPECT_EQ(0, ap_param_write("engine", self->engine));
	ASSERT_EQ(0, ap_param_read("engine", now, sizeof(now)));
	EXPECT_STREQ(self->engine, now);
}

TEST_HARNESS_MAIN
