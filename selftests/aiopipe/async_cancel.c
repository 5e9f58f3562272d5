// SPDX-License-Identifier: GPL-2.0
/*
 * io_cancel and io_destroy on aiopipe requests (docs/async.md, "Cancel").
 *
 * io_cancel of a pending request returns -EINPROGRESS and the request
 * completes exactly once: -ECANCELED if it moved nothing, else the bytes it
 * moved (a half-done write reports its count, and exactly those bytes are in
 * the stream).  io_cancel of a request that already completed is -EINVAL.
 * Races of io_cancel against the peer's copy, against the other end
 * closing and against a reader draining a half-done write never lose,
 * duplicate or double-complete anything.  io_destroy with requests pending
 * returns promptly and leaves nothing pinned or pending.
 */
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096

FIXTURE(cancel) {
	int fds[2];
	io_context_t ctx;
	bool direct;
};

FIXTURE_VARIANT(cancel) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_FILTER_VARIANTS(cancel);

FIXTURE_SETUP(cancel)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(256, &self->ctx));
	self->direct = ap_is_direct(variant->engine);
}

FIXTURE_TEARDOWN(cancel)
{
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
}

static void *page_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

TEST_F(cancel, cancel_pending_read)
{
	char buf[64];
	struct io_event ev;
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	ASSERT_EQ(-ECANCELED, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(&cb, ev.obj);
	EXPECT_EQ(1, AP_STAT(self->fds[0], cancels));
	AP_EXPECT_IDLE(self->fds[0]);
	/* the cancelled read swallows nothing written afterwards */
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	EXPECT_EQ(5, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_TRUE(ap_no_event(self->ctx));
}

TEST_F(cancel, cancel_pending_write_that_moved_nothing)
{
	char *fill = page_buf(PAGE), *buf = page_buf(2 * PAGE);
	struct io_event ev;
	struct iocb cb;

	ASSERT_NE(NULL, fill);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(fill, PAGE, 0);
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_pwrite(&cb, self->fds[1], "XXXX", 4, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	EXPECT_EQ(-ECANCELED, ap_reap1(self->ctx, NULL));
	AP_EXPECT_IDLE(self->fds[0]);
	EXPECT_EQ(PAGE, ap_read_now(self->fds[0], buf, 2 * PAGE));
	EXPECT_EQ(-1, ap_check(buf, PAGE, 0));
	EXPECT_EQ(-EAGAIN, ap_read_now(self->fds[0], buf, 2 * PAGE));
}

/*
 *   capacity 4096, empty
 *   test                                   aiopipe
 *   io_submit(PWRITE 10000) ---------->    4096 into the ring, rest queued
 *   io_cancel ------------------------>    -EINPROGRESS
 *   io_getevents <--------------------     res 4096 (bytes moved), not
 *                                          -ECANCELED
 *   read --> exactly bytes 0..4095, then nothing
 */
TEST_F(cancel, cancel_half_done_write_reports_bytes_moved)
{
	char *src = page_buf(3 * PAGE), *buf = page_buf(3 * PAGE);
	struct io_event ev;
	struct iocb cb;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(src, 10000, 0);
	io_prep_pwrite(&cb, self->fds[1], src, 10000, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	EXPECT_EQ(PAGE, ap_reap1(self->ctx, NULL));
	AP_EXPECT_IDLE(self->fds[0]);
	EXPECT_EQ(PAGE, ap_read_now(self->fds[0], buf, 3 * PAGE));
	EXPECT_EQ(-1, ap_check(buf, PAGE, 0));
	EXPECT_EQ(-EAGAIN, ap_read_now(self->fds[0], buf, 3 * PAGE));
}

/*
 *   capacity 4096, empty
 *   test                                   aiopipe
 *   io_submit(PWRITE 12288) ---------->    4096 in, queued
 *   read(4096) ----------------------->    frees the ring; the write moves
 *                                          its next 4096 (retry: worker,
 *                                          direct: the reader pulls them)
 *   (wait until the ring holds 4096 again)
 *   io_cancel ------------------------>    res 8192
 *   read --> bytes 4096..8191, then nothing
 */
TEST_F(cancel, cancel_write_after_partial_drain_reports_bytes_moved)
{
	char *src = page_buf(3 * PAGE), *buf = page_buf(3 * PAGE);
	struct io_event ev;
	struct iocb cb;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(src, 3 * PAGE, 0);
	io_prep_pwrite(&cb, self->fds[1], src, 3 * PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(PAGE, read(self->fds[0], buf, PAGE));
	EXPECT_EQ(-1, ap_check(buf, PAGE, 0));
	EXPECT_EQ(PAGE, AP_WAIT_STAT(self->fds[0], bytes_buffered, PAGE,
				     AP_LONG_MS));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	EXPECT_EQ(2 * PAGE, ap_reap1(self->ctx, NULL));
	AP_EXPECT_IDLE(self->fds[0]);
	EXPECT_EQ(PAGE, ap_read_now(self->fds[0], buf, 3 * PAGE));
	EXPECT_EQ(-1, ap_check(buf, PAGE, PAGE));
	EXPECT_EQ(-EAGAIN, ap_read_now(self->fds[0], buf, 3 * PAGE));
}

/* Completed (reaped or not): io_cancel finds nothing to cancel. */
TEST_F(cancel, cancel_of_completed_request_is_einval)
{
	char buf[16];
	struct io_event ev;
	struct iocb cb;
	int efd;

	/* completed at submission, reaped */
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(3, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &cb, &ev));

	/*
	 * queued, completed by a write, not yet reaped: the eventfd says the
	 * completion is posted (the retry engine completes from a worker)
	 */
	efd = eventfd(0, 0);
	ASSERT_LE(0, efd);
	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	io_set_eventfd(&cb, efd);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(3, write(self->fds[1], "def", 3));
	ASSERT_EQ(1, ap_poll1(efd, POLLIN, AP_LONG_MS));
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &cb, &ev));
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(3, (long)ev.res);
	EXPECT_EQ(0, AP_STAT(self->fds[0], cancels));
	close(efd);
}

TEST_F(cancel, second_cancel_is_einval_and_one_event)
{
	char buf[16];
	struct io_event ev;
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &cb, &ev));
	EXPECT_EQ(-ECANCELED, ap_reap1(self->ctx, NULL));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(self->fds[0], cancels));
}

/*
 * Racing parties.  A helper thread waits for a byte on @go, performs its
 * action, and answers on @done; the test thread cancels at the same time.
 */
struct racer {
	int go[2], done[2];
	int (*action)(struct racer *r);
	int fd;			/* the aiopipe end the action uses */
	char *buf;
	size_t len;
	ssize_t result;
	pthread_t thread;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	char c;

	while (read(r->go[0], &c, 1) == 1 && c == 'g') {
		r->result = r->action(r);
		if (write(r->done[1], "d", 1) != 1)
			break;
	}
	return NULL;
}

static int racer_start(struct racer *r)
{
	if (pipe(r->go) || pipe(r->done))
		return -errno;
	return -pthread_create(&r->thread, NULL, racer_main, r);
}

static void racer_kick(struct racer *r)
{
	if (write(r->go[1], "g", 1) != 1)
		abort();
}

static int racer_wait(struct racer *r)
{
	char c;

	if (ap_poll1(r->done[0], POLLIN, AP_LONG_MS) != 1)
		return -ETIMEDOUT;
	return read(r->done[0], &c, 1) == 1 ? 0 : -EIO;
}

static void racer_stop(struct racer *r)
{
	write(r->go[1], "q", 1);
	pthread_join(r->thread, NULL);
	close(r->go[0]);
	close(r->go[1]);
	close(r->done[0]);
	close(r->done[1]);
}

static int act_write_byte(struct racer *r)
{
	return (int)write(r->fd, r->buf, 1);
}

static int act_close(struct racer *r)
{
	return close(r->fd);
}

static int act_read(struct racer *r)
{
	return (int)read(r->fd, r->buf, r->len);
}

#define RACE_ITERS	300

/*
 *   test thread                 racer thread
 *   io_submit(PREAD 64)
 *   kick ---------------------> write(1 byte)
 *   io_cancel                   (same moment)
 *   reap exactly one event: 1 (the byte) or -ECANCELED (byte still there)
 */
TEST_F(cancel, cancel_races_with_write_exactly_once_no_loss)
{
	struct racer r = { .fd = self->fds[1], .action = act_write_byte };
	int got_byte = 0, cancelled = 0;
	char wbuf[1], buf[64];

	r.buf = wbuf;
	ASSERT_EQ(0, racer_start(&r));
	for (int i = 0; i < RACE_ITERS; i++) {
		struct io_event ev;
		struct iocb cb;
		long res;
		int c;

		wbuf[0] = (char)('a' + i % 26);
		io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
		cb.data = (void *)(long)i;
		ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
		racer_kick(&r);
		c = io_cancel(self->ctx, &cb, &ev);
		ASSERT_TRUE(c == -EINPROGRESS || c == -EINVAL)
			TH_LOG("iteration %d: io_cancel %d", i, c);
		res = ap_reap1(self->ctx, &ev);
		ASSERT_EQ(0, racer_wait(&r));
		ASSERT_EQ(i, (long)ev.data);
		ASSERT_EQ(1, r.result);
		if (res == 1) {
			got_byte++;
			ASSERT_EQ(wbuf[0], buf[0]);
			ASSERT_EQ(-EAGAIN, ap_read_now(self->fds[0], buf, 64));
		} else {
			ASSERT_EQ(-ECANCELED, res)
				TH_LOG("iteration %d", i);
			cancelled++;
			ASSERT_EQ(1, ap_read_now(self->fds[0], buf, 64));
			ASSERT_EQ(wbuf[0], buf[0]);
		}
	}
	racer_stop(&r);
	TH_LOG("%d completed with the byte, %d cancelled", got_byte, cancelled);
	EXPECT_TRUE(ap_no_event(self->ctx));
	AP_EXPECT_IDLE(self->fds[0]);
}

/* Cancel against the last writer closing: 0 (EOF) or -ECANCELED, once. */
TEST_F(cancel, cancel_races_with_writer_close_exactly_once)
{
	struct racer r = { .action = act_close };
	int eof = 0, cancelled = 0;
	char buf[64];

	ASSERT_EQ(0, racer_start(&r));
	for (int i = 0; i < RACE_ITERS / 2; i++) {
		struct io_event ev;
		struct iocb cb;
		int fds[2];
		long res;

		ASSERT_EQ(0, ap_pair(fds, 0, 0, variant->engine,
				     variant->filter));
		r.fd = fds[1];
		io_prep_pread(&cb, fds[0], buf, sizeof(buf), 0);
		cb.data = (void *)(long)i;
		ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
		racer_kick(&r);
		io_cancel(self->ctx, &cb, &ev);
		res = ap_reap1(self->ctx, &ev);
		ASSERT_EQ(0, racer_wait(&r));
		ASSERT_EQ(i, (long)ev.data);
		if (res == 0) {
			eof++;
		} else {
			ASSERT_EQ(-ECANCELED, res);
			cancelled++;
		}
		AP_EXPECT_IDLE(fds[0]);
		close(fds[0]);
	}
	racer_stop(&r);
	TH_LOG("%d EOF, %d cancelled", eof, cancelled);
	EXPECT_TRUE(ap_no_event(self->ctx));
}

/*
 *   capacity 4096, full of bytes 0..4095
 *   test thread                      racer thread
 *   io_submit(PWRITE bytes 4096..12287)
 *   kick --------------------------> read(8192)
 *   io_cancel
 *   event: the bytes the write moved (or -ECANCELED if none); what was
 *   read plus what is left in the ring is exactly 4096 + that, in order
 */
TEST_F(cancel, cancel_races_with_reader_draining_a_write)
{
	char *src = page_buf(3 * PAGE), *got = page_buf(4 * PAGE);
	struct racer r = { .fd = self->fds[0], .action = act_read };
	long long moved_total = 0;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	ap_fill(src, 3 * PAGE, 0);
	r.buf = got;
	r.len = 2 * PAGE;
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(0, racer_start(&r));
	for (int i = 0; i < RACE_ITERS / 2; i++) {
		struct io_event ev;
		struct iocb cb;
		long res, want;
		ssize_t rest;

		ASSERT_EQ(PAGE, write(self->fds[1], src, PAGE));
		io_prep_pwrite(&cb, self->fds[1], src + PAGE, 2 * PAGE, 0);
		cb.data = (void *)(long)i;
		ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
		racer_kick(&r);
		io_cancel(self->ctx, &cb, &ev);
		res = ap_reap1(self->ctx, &ev);
		ASSERT_EQ(0, racer_wait(&r));
		ASSERT_EQ(i, (long)ev.data);
		ASSERT_LT(0, r.result);
		want = PAGE + (res == -ECANCELED ? 0 : res);
		ASSERT_TRUE(res == -ECANCELED || (res > 0 && res <= 2 * PAGE))
			TH_LOG("iteration %d: res %ld", i, res);
		rest = ap_read_now(self->fds[0], got + r.result,
				   4 * PAGE - r.result);
		if (rest == -EAGAIN)
			rest = 0;
		ASSERT_LE(0, rest);
		ASSERT_EQ(want, r.result + rest)
			TH_LOG("iteration %d: res %ld, read %zd + %zd", i, res,
			       r.result, rest);
		ASSERT_EQ(-1, ap_check(got, want, 0))
			TH_LOG("iteration %d", i);
		moved_total += want - PAGE;
	}
	racer_stop(&r);
	TH_LOG("%lld bytes moved by %d cancelled writes", moved_total,
	       RACE_ITERS / 2);
	EXPECT_TRUE(ap_no_event(self->ctx));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 *   pair A: 64 reads queued;  pair B (full): 64 writes queued
 *   io_destroy --> returns within a second; every request was cancelled;
 *   nothing pending or pinned; the cancelled reads took no bytes, the
 *   cancelled writes added none
 */
TEST_F(cancel, io_destroy_with_pending_requests_returns_promptly)
{
	char *rbuf = page_buf(64 * PAGE), *wbuf = page_buf(PAGE);
	struct iocb cbs[128], *cbp[128];
	int b[2];
	int64_t t0;
	char tmp[2 * PAGE];

	ASSERT_NE(NULL, rbuf);
	ASSERT_NE(NULL, wbuf);
	ASSERT_EQ(0, ap_pair(b, 0, PAGE, variant->engine, variant->filter));
	ap_fill(wbuf, PAGE, 0);
	ASSERT_EQ(PAGE, write(b[1], wbuf, PAGE));
	for (int i = 0; i < 64; i++) {
		io_prep_pread(&cbs[i], self->fds[0], rbuf + i * PAGE,
			      AP_PINNED_READ, 0);
		io_prep_pwrite(&cbs[64 + i], b[1], wbuf, 100, 0);
	}
	for (int i = 0; i < 128; i++)
		cbp[i] = &cbs[i];
	ASSERT_EQ(128, io_submit(self->ctx, 128, cbp));
	EXPECT_EQ(64, AP_STAT(self->fds[0], pending_reads));
	EXPECT_EQ(64, AP_STAT(b[0], pending_writes));
	if (self->direct) {
		EXPECT_EQ(64, AP_STAT(self->fds[0], pinned_pages));
		EXPECT_EQ(64, AP_STAT(b[0], pinned_pages));
	}
	t0 = ap_now_ns();
	EXPECT_EQ(0, io_destroy(self->ctx));
	self->ctx = 0;
	EXPECT_GT(1000, ap_ms_since(t0));
	TH_LOG("io_destroy took %lld ms", (long long)ap_ms_since(t0));
	AP_EXPECT_IDLE(self->fds[0]);
	AP_EXPECT_IDLE(b[0]);
	EXPECT_EQ(64, AP_STAT(self->fds[0], cancels));
	EXPECT_EQ(64, AP_STAT(b[0], cancels));
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	EXPECT_EQ(5, ap_read_now(self->fds[0], tmp, sizeof(tmp)));
	EXPECT_EQ(PAGE, ap_read_now(b[0], tmp, sizeof(tmp)));
	EXPECT_EQ(-1, ap_check(tmp, PAGE, 0));
	EXPECT_EQ(-EAGAIN, ap_read_now(b[0], tmp, sizeof(tmp)));
	backend_close(b);
}

TEST_HARNESS_MAIN
