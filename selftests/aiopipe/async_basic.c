// SPDX-License-Identifier: GPL-2.0
/*
 * The async contract, one behaviour per test (docs/async.md):
 * a libaio read that finds no data is queued and completes on a write; a
 * write that finds no room is queued and completes once all its bytes are
 * in; what can finish at submission does; EOF and EPIPE complete pending
 * requests (no SIGPIPE for an async completion); RWF_NOWAIT and O_NONBLOCK
 * give -EAGAIN events and never queue.  On a kernel pipe io_submit of a read
 * blocks inside the syscall: the reason aiopipe exists.
 *
 * Every test runs on both engines with wakeup filtering on and off; the
 * counters prove which engine did the work.
 */
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096

static void *page_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

FIXTURE(async_basic) {
	int fds[2];
	io_context_t ctx;
	bool direct;
};

FIXTURE_VARIANT(async_basic) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_FILTER_VARIANTS(async_basic);

FIXTURE_SETUP(async_basic)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(256, &self->ctx));
	self->direct = ap_is_direct(variant->engine);
}

FIXTURE_TEARDOWN(async_basic)
{
	io_destroy(self->ctx);
	backend_close(self->fds);
}

/*
 * Which engine completed one queued request: direct = the peer, inline, one
 * copy and no retry; retry = a worker.
 */
#define EXPECT_COMPLETED_BY_ENGINE(fd, nreq, nbytes) do {		\
	struct aiopipe_stats st;					\
	ASSERT_EQ(0, aiopipe_stats((fd), &st));				\
	if (self->direct) {						\
		EXPECT_EQ((nreq), (long long)st.completed_by_peer);		\
		EXPECT_EQ(0, (long long)st.completed_by_retry);			\
		EXPECT_EQ(0, (long long)st.retries);				\
		EXPECT_EQ((nbytes), (long long)st.bytes_single_copy);		\
	} else {							\
		EXPECT_EQ(0, (long long)st.completed_by_peer);			\
		EXPECT_EQ((nreq), (long long)st.completed_by_retry);		\
		EXPECT_LE((nreq), (long long)st.retries);				\
		EXPECT_EQ(0, (long long)st.bytes_single_copy);			\
	}								\
} while (0)

/*
 *   test                          aiopipe
 *   io_submit(PREAD 512) ------>  empty: queued, io_submit returns 1
 *   (no event for 100 ms)
 *   write(40) ----------------->  direct: copied into the pinned page
 *                                 retry: ring, wake, worker copies
 *   io_getevents <--------------  res 40
 */
TEST_F(async_basic, read_queued_completes_on_write)
{
	char *buf = page_buf(PAGE), data[40];
	struct io_event ev;
	struct iocb cb;
	int64_t t0;

	ASSERT_NE(NULL, buf);
	io_prep_pread(&cb, self->fds[0], buf, AP_PINNED_READ, 0);
	t0 = ap_now_ns();
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_GT(1000, ap_ms_since(t0));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(self->fds[0], queued));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_reads));
	EXPECT_EQ(self->direct ? 1 : 0, AP_STAT(self->fds[0], pinned_pages));

	ap_fill(data, sizeof(data), 0);
	ASSERT_EQ(40, write(self->fds[1], data, sizeof(data)));
	ASSERT_EQ(40, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(&cb, ev.obj);
	EXPECT_EQ(-1, ap_check(buf, 40, 0));
	EXPECT_COMPLETED_BY_ENGINE(self->fds[0], 1, 40);
	if (!self->direct && variant->filter)
		EXPECT_EQ(0, AP_STAT(self->fds[0], futile_retries));
	AP_EXPECT_IDLE(self->fds[0]);
	AP_LOG_STATS(self->fds[0], "after");
}

/*
 *   test                              aiopipe
 *   4 x io_submit(PREAD 3) ------->   queued R1 R2 R3 R4 (FIFO)
 *   write("abcdefghi") ----------->   R1 "abc", R2 "def", R3 "ghi"
 *   write("j") ------------------->   R4 "j"
 */
TEST_F(async_basic, queued_reads_complete_in_submission_order)
{
	char buf[4][3];
	struct iocb cbs[4], *cbp[4];
	struct io_event ev[4];
	int i;

	for (i = 0; i < 4; i++) {
		io_prep_pread(&cbs[i], self->fds[0], buf[i], 3, 0);
		cbs[i].data = (void *)(long)i;
		cbp[i] = &cbs[i];
	}
	ASSERT_EQ(4, io_submit(self->ctx, 4, cbp));
	EXPECT_EQ(4, AP_STAT(self->fds[0], pending_reads));
	ASSERT_EQ(9, write(self->fds[1], "abcdefghi", 9));
	ASSERT_EQ(3, ap_getevents(self->ctx, 3, 4, ev, AP_LONG_MS));
	for (i = 0; i < 3; i++) {
		long idx = (long)ev[i].data;

		EXPECT_EQ(3, (long)ev[i].res);
		ASSERT_GT(3, idx);
		EXPECT_EQ(0, memcmp(buf[idx], "abcdefghi" + 3 * idx, 3))
			TH_LOG("read %ld got \"%.3s\"", idx, buf[idx]);
	}
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_reads));
	ASSERT_EQ(1, write(self->fds[1], "j", 1));
	ASSERT_EQ(1, ap_reap1(self->ctx, &ev[0]));
	EXPECT_EQ(3, (long)ev[0].data);
	EXPECT_EQ('j', buf[3][0]);
	EXPECT_COMPLETED_BY_ENGINE(self->fds[0], 4, 10);
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_F(async_basic, read_with_data_completes_at_submit)
{
	char buf[100];
	struct iocb cb;

	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	/* aio completes a synchronous result inside io_submit: no wait */
	EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_at_submit));
	EXPECT_EQ(1, AP_STAT(self->fds[0], async_reads));
}

TEST_F(async_basic, write_with_room_completes_at_submit)
{
	char buf[100];
	struct iocb cb;

	io_prep_pwrite(&cb, self->fds[1], "0123456789", 10, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_at_submit));
	ASSERT_EQ(10, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
}

/*
 *   capacity 4096
 *   test                                 aiopipe
 *   io_submit(PWRITE 256 KiB) ------->   4096 in the ring, rest queued
 *   read(64 KiB), ... --------------->   retry: each read frees room, wakes
 *                                        the write, a worker moves the next
 *                                        part (>= 63 retries)
 *                                        direct: the reader copies straight
 *                                        from the pinned pages
 *   io_getevents <-------------------    res 262144 once the last byte is in
 */
TEST_F(async_basic, write_queued_completes_as_reader_drains)
{
	const long long total = 256 * 1024;
	char *src = page_buf(total), *dst = page_buf(total);
	struct aiopipe_stats st;
	struct iocb cb;
	size_t got = 0;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, dst);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(src, total, 0);
	io_prep_pwrite(&cb, self->fds[1], src, total, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	ASSERT_EQ(0, aiopipe_stats(self->fds[0], &st));
	EXPECT_EQ(1, (long long)st.queued);
	EXPECT_EQ(1, (long long)st.pending_writes);
	EXPECT_EQ(PAGE, (long long)st.bytes_buffered);
	EXPECT_EQ(self->direct ? total / PAGE - 1 : 0, (long long)st.pinned_pages);

	while (got < (size_t)total) {
		ssize_t n = read(self->fds[0], dst + got, total - got);

		ASSERT_LT(0, n);
		got += n;
	}
	EXPECT_EQ(-1, ap_check(dst, total, 0));
	EXPECT_EQ((long)total, ap_reap1(self->ctx, NULL));
	ASSERT_EQ(0, aiopipe_stats(self->fds[0], &st));
	if (self->direct) {
		EXPECT_EQ(1, (long long)st.completed_by_peer);
		EXPECT_EQ(0, (long long)st.retries);
		EXPECT_LT(0, (long long)st.bytes_single_copy);
		EXPECT_EQ(total / PAGE - 1, (long long)st.pinned_pages_peak);
	} else {
		EXPECT_EQ(1, (long long)st.completed_by_retry);
		/* the ring holds 4096: every further 4096 bytes is a retry */
		EXPECT_LE(total / PAGE - 1, (long long)st.retries);
	}
	AP_EXPECT_IDLE(self->fds[0]);
	AP_LOG_STATS(self->fds[0], "after");
}

/* Read exactly @len bytes of @fd; false on EOF or an error. */
static bool read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return false;
		got += n;
	}
	return true;
}

/*
 * splice() from the read end must copy, never lend pages: on 6.1 a
 * splice gives read_iter a pipe iterator, and copy_page_to_iter() on one
 * puts a reference to the page itself into the kernel pipe.  The ring's
 * page is refilled and the writer reuses its buffer once its write has
 * completed; the kernel pipe must still hold what was written.
 *
 *   submitter                    aiopipe (4096)          kernel pipe
 *   write 'A' x 4096 -> ring
 *   aio write 'B' x 4096: queued
 *                                splice 8192 ----------> A..A B..B
 *   reap the write: 4096
 *   buffer := 'C'; write 'D' x 4096 -> ring
 *                                                       read: A..A B..B
 */
TEST_F(async_basic, splice_copies_the_ring_and_a_pending_write)
{
	char *a = page_buf(PAGE), *b = page_buf(PAGE), *out = page_buf(2 * PAGE);
	size_t moved = 0;
	struct iocb cb;
	int kp[2];

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, out);
	ASSERT_EQ(0, pipe(kp));
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(a, PAGE, 0);
	ap_fill(b, PAGE, PAGE);
	ASSERT_EQ(PAGE, write(self->fds[1], a, PAGE));
	io_prep_pwrite(&cb, self->fds[1], b, PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	while (moved < 2 * PAGE) {
		ssize_t n = splice(self->fds[0], NULL, kp[1], NULL,
				   2 * PAGE - moved, 0);

		ASSERT_LT(0, n) TH_LOG("splice after %zu bytes: %s", moved,
				       strerror(errno));
		moved += n;
	}
	EXPECT_EQ(PAGE, ap_reap1(self->ctx, NULL));
	memset(b, 'C', PAGE);
	memset(a, 'D', PAGE);
	ASSERT_EQ(PAGE, write(self->fds[1], a, PAGE));
	ASSERT_TRUE(read_full(kp[0], out, 2 * PAGE));
	EXPECT_EQ(-1, ap_check(out, 2 * PAGE, 0))
		TH_LOG("the kernel pipe saw bytes written after the splice");
	close(kp[0]);
	close(kp[1]);
}

TEST_F(async_basic, eof_completes_pending_read)
{
	char buf[16];
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	close(self->fds[1]);
	self->fds[1] = -1;
	EXPECT_EQ(0, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(1, AP_STAT(self->fds[0], eof_completions));
	AP_EXPECT_IDLE(self->fds[0]);
}

/* EOF only when the last writer goes: a dup keeps the read pending. */
TEST_F(async_basic, eof_waits_for_the_last_writer)
{
	int dup_w = dup(self->fds[1]);
	char buf[16];
	struct iocb cb;

	ASSERT_LE(0, dup_w);
	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	close(self->fds[1]);
	self->fds[1] = -1;
	EXPECT_TRUE(ap_no_event(self->ctx));
	close(dup_w);
	EXPECT_EQ(0, ap_reap1(self->ctx, NULL));
}

/*
 *   capacity 4096, full
 *   test                                 aiopipe
 *   io_submit(PWRITE 100) ----------->   queued, nothing moved
 *   close(read end) ----------------->   the write completes -EPIPE in the
 *                                        closer's context: no SIGPIPE (it
 *                                        would hit the closer, not the
 *                                        submitter)
 *   write(2) ------------------------>   -1 EPIPE and SIGPIPE, as on a pipe
 */
TEST_F(async_basic, epipe_completes_pending_write_without_sigpipe)
{
	char fill[PAGE] = { 0 };
	sigset_t block, pending;
	struct iocb cb;

	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	ASSERT_EQ(0, sigprocmask(SIG_BLOCK, &block, NULL));
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_pwrite(&cb, self->fds[1], fill, 100, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(self->fds[1], pending_writes));
	close(self->fds[0]);
	self->fds[0] = -1;
	EXPECT_EQ(-EPIPE, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(1, AP_STAT(self->fds[1], epipe_completions));
	AP_EXPECT_IDLE(self->fds[1]);
	ASSERT_EQ(0, sigpending(&pending));
	EXPECT_FALSE(sigismember(&pending, SIGPIPE));

	/* control: the check above can see a SIGPIPE */
	EXPECT_EQ(-1, write(self->fds[1], fill, 1));
	EXPECT_EQ(EPIPE, errno);
	ASSERT_EQ(0, sigpending(&pending));
	EXPECT_TRUE(sigismember(&pending, SIGPIPE));
}

/* A write that already moved bytes reports them, not -EPIPE. */
TEST_F(async_basic, epipe_after_partial_write_gives_the_count)
{
	char *src = page_buf(3 * PAGE);
	sigset_t block, pending;
	struct iocb cb;

	ASSERT_NE(NULL, src);
	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	ASSERT_EQ(0, sigprocmask(SIG_BLOCK, &block, NULL));
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	io_prep_pwrite(&cb, self->fds[1], src, 3 * PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	close(self->fds[0]);
	self->fds[0] = -1;
	EXPECT_EQ(PAGE, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[1], epipe_completions));
	ASSERT_EQ(0, sigpending(&pending));
	EXPECT_FALSE(sigismember(&pending, SIGPIPE));
	AP_EXPECT_IDLE(self->fds[1]);
}

/* RWF_NOWAIT (IOCB_NOWAIT): an -EAGAIN event at once, never queued. */
TEST_F(async_basic, rwf_nowait_gets_eagain_never_queued)
{
	char buf[PAGE] = { 0 };
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	cb.aio_rw_flags = RWF_NOWAIT;
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EAGAIN, ap_reap1(self->ctx, NULL));

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], buf, PAGE));
	io_prep_pwrite(&cb, self->fds[1], buf, 1, 0);
	cb.aio_rw_flags = RWF_NOWAIT;
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EAGAIN, ap_reap1(self->ctx, NULL));

	/* with data present RWF_NOWAIT reads succeed */
	io_prep_pread(&cb, self->fds[0], buf, 10, 0);
	cb.aio_rw_flags = RWF_NOWAIT;
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	AP_EXPECT_IDLE(self->fds[0]);
}

/* An O_NONBLOCK end: -EAGAIN events, never queued (the pipe's rule). */
TEST_F(async_basic, o_nonblock_gets_eagain_never_queued)
{
	char buf[2 * PAGE] = { 0 };
	struct iocb cb;

	ASSERT_EQ(0, fcntl(self->fds[0], F_SETFL, O_NONBLOCK));
	ASSERT_EQ(0, fcntl(self->fds[1], F_SETFL, O_NONBLOCK));
	io_prep_pread(&cb, self->fds[0], buf, 10, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EAGAIN, ap_reap1(self->ctx, NULL));

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	/* more than the room: a partial count, as write(2) on a pipe */
	io_prep_pwrite(&cb, self->fds[1], buf, 2 * PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(PAGE, ap_reap1(self->ctx, NULL));
	io_prep_pwrite(&cb, self->fds[1], buf, 1, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EAGAIN, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_F(async_basic, zero_length_completes_at_once)
{
	char buf[8];
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, 0, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, ap_reap1(self->ctx, NULL));
	io_prep_pwrite(&cb, self->fds[1], buf, 0, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	EXPECT_EQ(0, ap_fionread(self->fds[0]));
}

/*
 * A queued read must hear a wakeup even when a sync reader sleeps ahead of
 * it on the wait queue.
 *
 *   child                         test                       aiopipe
 *   read(16): empty, sleeps ---------------------------->   sync waiter S
 *   (test waits for wchan aiopipe_wait)                     (exclusive)
 *                                 io_submit(PREAD 16) --->   queued R,
 *                                                            armed after S
 *                                 write("0123456789") --->   wake-one:
 *                                                            R must be kicked
 *   R completes with the 10 bytes; S waits behind R, then
 *                                 write("abc") ---------->   S reads "abc"
 */
TEST_F(async_basic, queued_read_is_woken_past_a_sleeping_sync_reader)
{
	char buf[16], got[16];
	struct io_event ev;
	struct iocb cb;
	int note[2], status;
	pid_t pid;

	ASSERT_EQ(0, pipe(note));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		ssize_t n = read(self->fds[0], got, sizeof(got));

		if (n > 0 && write(note[1], got, n) != n)
			_exit(1);
		_exit(n > 0 ? 0 : 2);
	}
	ASSERT_TRUE(ap_wait_wchan(pid, "aiopipe_wait", AP_LONG_MS));
	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	if (ap_getevents(self->ctx, 1, 1, &ev, 2000) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ASSERT_TRUE(false) TH_LOG("the queued read missed the wakeup");
	}
	EXPECT_EQ(10, (long)ev.res);
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(3, read(note[0], got, sizeof(got)));
	EXPECT_EQ(0, memcmp(got, "abc", 3));
	AP_EXPECT_IDLE(self->fds[0]);
	backend_close(note);
}

/*
 * The write-side twin: a queued write must hear the wakeup when a sync
 * writer sleeps ahead of it.
 *
 *   capacity 4096, full
 *   child                         test                       aiopipe
 *   write(10): no room, sleeps -------------------------->  sync waiter S
 *                                 io_submit(PWRITE 100) -->  queued W,
 *                                                            armed after S
 *                                 read(4096) ------------->  wake-one:
 *                                                            W must be kicked
 *   W completes with 100; S writes behind it: the stream is W's bytes,
 *   then S's
 */
TEST_F(async_basic, queued_write_is_woken_past_a_sleeping_sync_writer)
{
	char fill[PAGE] = { 0 }, wbuf[100], got[PAGE];
	struct io_event ev;
	struct iocb cb;
	int status;
	pid_t pid;

	memset(wbuf, 'W', sizeof(wbuf));
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(write(self->fds[1], "SSSSSSSSSS", 10) == 10 ? 0 : 1);
	ASSERT_TRUE(ap_wait_wchan(pid, "aiopipe_wait", AP_LONG_MS));
	io_prep_pwrite(&cb, self->fds[1], wbuf, sizeof(wbuf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(PAGE, read(self->fds[0], got, PAGE));
	if (ap_getevents(self->ctx, 1, 1, &ev, 2000) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ASSERT_TRUE(false) TH_LOG("the queued write missed the wakeup");
	}
	EXPECT_EQ(100, (long)ev.res);
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	ASSERT_EQ(110, ap_read_now(self->fds[0], got, sizeof(got)));
	EXPECT_EQ(0, memcmp(got, wbuf, 100));
	EXPECT_EQ(0, memcmp(got + 100, "SSSSSSSSSS", 10));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 * EOF is for every reader.  A queued read that is being retried when the
 * last writer goes is finished by its worker, after the release's
 * wake-all; every sync reader waiting behind it must still see EOF.
 *
 *   R queued; children S1, S2 (SCHED_FIFO) asleep in read(2) behind it
 *   test, SCHED_FIFO, all on CPU 0, so the kworker waits its turn:
 *   write("x")                      R is kicked (retry: its work is queued)
 *   close(write end)                the release finds R in flight and
 *                                   wakes everyone; S1, S2 see R ahead of
 *                                   them and sleep again
 *   the worker finishes R ("x")     R was the last pending read: S1 and S2
 *                                   must both be woken to see EOF
 *   S1 and S2 both return 0 within 2 s
 */
TEST_F(async_basic, eof_reaches_every_sync_reader_behind_a_pending_read)
{
	struct sched_param fifo = { .sched_priority = 1 }, other = { 0 };
	cpu_set_t one;
	int stuck = 0;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	for (int it = 0; it < 20 && !stuck; it++) {
		int fds[2], status;
		pid_t pid[2];
		struct io_event ev;
		struct iocb cb;
		char buf[8];

		ASSERT_EQ(0, ap_pair(fds, 0, 0, variant->engine,
				     variant->filter));
		io_prep_pread(&cb, fds[0], buf, sizeof(buf), 0);
		ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
		for (int i = 0; i < 2; i++) {
			pid[i] = ap_fork();
			ASSERT_LE(0, pid[i]);
			if (pid[i] == 0) {
				/* FIFO: they run before the kworker does */
				sched_setscheduler(0, SCHED_FIFO, &fifo);
				close(fds[1]);
				_exit(read(fds[0], buf, sizeof(buf)) == 0 ? 0 : 1);
			}
			ASSERT_TRUE(ap_wait_wchan(pid[i], "aiopipe_wait",
						  AP_LONG_MS));
		}
		ASSERT_EQ(0, sched_setscheduler(0, SCHED_FIFO, &fifo));
		ASSERT_EQ(1, write(fds[1], "x", 1));
		close(fds[1]);
		ASSERT_EQ(0, sched_setscheduler(0, SCHED_OTHER, &other));
		for (int i = 0; i < 2; i++) {
			if (ap_wait_child(pid[i], 2000, &status)) {
				stuck++;
				TH_LOG("round %d: reader %d never saw EOF", it, i);
				continue;
			}
			EXPECT_EQ(0, status);
		}
		EXPECT_EQ(1, ap_reap1(self->ctx, &ev));
		close(fds[0]);
	}
	EXPECT_EQ(0, stuck);
}

/*
 * The write-side twin: EPIPE is for every writer.
 *
 *   capacity 4096, full; W (PWRITE 100) queued; children SW1, SW2
 *   (SCHED_FIFO, SIGPIPE ignored) asleep in write(2) behind it
 *   test, SCHED_FIFO, all on CPU 0:
 *   read(4096)                      W is kicked (retry: its work is queued)
 *   close(read end)                 the release finds W in flight and
 *                                   wakes everyone; SW1, SW2 see W ahead
 *                                   and sleep again
 *   the worker finishes W (-EPIPE)  W was the last pending write: SW1 and
 *                                   SW2 must both be woken to see EPIPE
 */
TEST_F(async_basic, epipe_reaches_every_sync_writer_behind_a_pending_write)
{
	struct sched_param fifo = { .sched_priority = 1 }, other = { 0 };
	char fill[PAGE] = { 0 };
	cpu_set_t one;
	int stuck = 0;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	for (int it = 0; it < 20 && !stuck; it++) {
		int fds[2], status;
		pid_t pid[2];
		struct io_event ev;
		struct iocb cb;

		ASSERT_EQ(0, ap_pair(fds, 0, PAGE, variant->engine,
				     variant->filter));
		ASSERT_EQ(PAGE, write(fds[1], fill, PAGE));
		io_prep_pwrite(&cb, fds[1], fill, 100, 0);
		ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
		for (int i = 0; i < 2; i++) {
			pid[i] = ap_fork();
			ASSERT_LE(0, pid[i]);
			if (pid[i] == 0) {
				sched_setscheduler(0, SCHED_FIFO, &fifo);
				signal(SIGPIPE, SIG_IGN);
				close(fds[0]);
				_exit(write(fds[1], fill, 10) == -1 &&
				      errno == EPIPE ? 0 : 1);
			}
			ASSERT_TRUE(ap_wait_wchan(pid[i], "aiopipe_wait",
						  AP_LONG_MS));
		}
		ASSERT_EQ(0, sched_setscheduler(0, SCHED_FIFO, &fifo));
		ASSERT_EQ(PAGE, read(fds[0], fill, PAGE));
		close(fds[0]);
		ASSERT_EQ(0, sched_setscheduler(0, SCHED_OTHER, &other));
		for (int i = 0; i < 2; i++) {
			if (ap_wait_child(pid[i], 2000, &status)) {
				stuck++;
				TH_LOG("round %d: writer %d never saw EPIPE", it, i);
				continue;
			}
			EXPECT_EQ(0, status);
		}
		/* 100 if W got in before the reader left, else -EPIPE */
		EXPECT_NE(LONG_MIN, ap_reap1(self->ctx, &ev));
		close(fds[1]);
	}
	EXPECT_EQ(0, stuck);
}

/*
 * The same io_submit on a kernel pipe and on aiopipe.
 *
 *   parent                           child
 *                                    io_submit(PREAD 1) on the empty pipe
 *                                    write(note, "S") once it returns
 *   poll(note, 300 ms)
 *     kernel pipe: nothing, the child is still inside io_submit
 *     aiopipe:     "S", io_submit returned with the read queued
 *   write(pipe, "x") -------------->  (kernel pipe: io_submit returns now)
 *                                    io_getevents: res 1, "x"
 *   waitpid (bounded)
 */
FIXTURE(submit) {
	int fds[2];
	int note[2];
};

FIXTURE_VARIANT(submit) {
	enum backend backend;
	bool blocks;
};

FIXTURE_VARIANT_ADD(submit, kernel_pipe) {
	.backend = BACKEND_PIPE,
	.blocks = true,
};

FIXTURE_VARIANT_ADD(submit, aiopipe_retry) {
	.backend = BACKEND_RETRY,
	.blocks = false,
};

FIXTURE_VARIANT_ADD(submit, aiopipe_direct) {
	.backend = BACKEND_DIRECT,
	.blocks = false,
};

FIXTURE_SETUP(submit)
{
	ASSERT_EQ(0, backend_pair(variant->backend, self->fds, 0));
	ASSERT_EQ(0, pipe(self->note));
}

FIXTURE_TEARDOWN(submit)
{
	backend_close(self->fds);
	backend_close(self->note);
}

TEST_F(submit, read_on_empty_returns_at_once_unlike_kernel_pipe)
{
	int status, returned;
	pid_t pid;

	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		io_context_t ctx = 0;
		struct io_event ev;
		struct iocb cb;
		char c = 0;

		if (io_setup(8, &ctx))
			_exit(10);
		io_prep_pread(&cb, self->fds[0], &c, 1, 0);
		if (ap_submit1(ctx, &cb) != 1)
			_exit(11);
		ap_notify(self->note[1], 'S');
		if (ap_reap1(ctx, &ev) != 1)
			_exit(12);
		_exit(c == 'x' ? 0 : 13);
	}
	returned = ap_poll1(self->note[0], POLLIN, 300);
	EXPECT_EQ(variant->blocks ? 0 : 1, returned)
		TH_LOG("%s: io_submit %s", backend_name(variant->backend),
		       returned ? "returned" : "is still blocked");
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(1, ap_poll1(self->note[0], POLLIN, AP_LONG_MS));
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	if (backend_is_aiopipe(variant->backend))
		EXPECT_EQ(1, AP_STAT(self->fds[0], queued));
}

/*
 * A sync write bigger than the room fills the queued read first, then
 * sleeps for room.  The read must have completed by then: its submitter
 * may be the one who makes that room (it waits for the completion first).
 *
 *   test                           child                    aiopipe (4096)
 *   io_submit(PREAD 100): queued
 *                                  write(100 + 8192) ---->  the read gets
 *                                                           100, the ring
 *                                                           4096; sleeps
 *   io_getevents: 100 while the child still sleeps
 *   read(8192): the child's write returns 8292
 */
TEST_F(async_basic, a_sleeping_writer_has_completed_the_reads_it_filled)
{
	static char out[100 + 2 * PAGE], in[2 * PAGE];
	struct io_event ev;
	struct iocb cb;
	char buf[100];
	int status;
	pid_t pid;

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(out, sizeof(out), 0);
	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(write(self->fds[1], out, sizeof(out)) == sizeof(out) ? 0 : 1);
	ASSERT_TRUE(ap_wait_wchan(pid, "aiopipe_wait", AP_LONG_MS));
	EXPECT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS))
		TH_LOG("the read the writer filled did not complete while it slept");
	EXPECT_EQ(100, (long)ev.res);
	EXPECT_EQ(-1, ap_check(buf, sizeof(buf), 0));
	EXPECT_EQ(2 * PAGE, ap_read_full(self->fds[0], in, sizeof(in)));
	EXPECT_EQ(-1, ap_check(in, sizeof(in), 100));
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_HARNESS_MAIN
