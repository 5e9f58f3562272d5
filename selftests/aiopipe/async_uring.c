// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring on aiopipe (docs/async.md, "io_uring").
 *
 * The ends have FMODE_NOWAIT: io_uring's first, nonblocking try of a READ
 * or WRITE that cannot finish gets -EAGAIN, io_uring arms a poll and
 * retries in the submitter's task when the wakeup comes: the request is
 * never queued in the module (queued and pending_* stay 0), so nothing in
 * the module needs an io_uring cancel path.  POLL_ADD works on both ends.
 * RWF_NOWAIT is final (-EAGAIN).  A request forced to io_uring's worker
 * threads (IOSQE_ASYNC) blocks there interruptibly, like a pipe read, and
 * ring teardown, process exit, SIGKILL and IORING_OP_ASYNC_CANCEL all end
 * it promptly.
 */
#include <liburing.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096

/* Wait @ms for one CQE; 0 with its res and user_data, or -ETIME. */
static int cqe_wait(struct io_uring *ring, int ms, int *res, uint64_t *data)
{
	struct __kernel_timespec ts = {
		.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L,
	};
	struct io_uring_cqe *cqe;
	int ret;

	do {
		ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	} while (ret == -EINTR);
	if (ret)
		return ret;
	if (res)
		*res = cqe->res;
	if (data)
		*data = cqe->user_data;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

static struct io_uring_sqe *sqe_get(struct io_uring *ring, uint64_t data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (sqe)
		io_uring_sqe_set_data64(sqe, data);
	return sqe;
}

FIXTURE(uring) {
	int fds[2];
	struct io_uring ring;
	bool ring_up;
};

FIXTURE_VARIANT(uring) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(uring);

FIXTURE_SETUP(uring)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_uring_queue_init(16, &self->ring, 0));
	self->ring_up = true;
}

FIXTURE_TEARDOWN(uring)
{
	if (self->ring_up)
		io_uring_queue_exit(&self->ring);
	backend_close(self->fds);
}

/*
 *   test                           io_uring / aiopipe
 *   READ 64 on the empty pipe ---> nonblocking try: -EAGAIN, poll armed
 *   (no CQE for 100 ms; the module queued nothing)
 *   write("0123456789") ---------> EPOLLIN wakeup: io_uring retries the read
 *                                  in this task: CQE res 10
 */
TEST_F(uring, read_on_empty_completes_on_write_never_queued)
{
	char buf[64];
	uint64_t data;
	int res;

	io_uring_prep_read(sqe_get(&self->ring, 1), self->fds[0], buf,
			   sizeof(buf), 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pending_reads));
	EXPECT_LE(1, AP_STAT(self->fds[0], async_reads));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, &data));
	EXPECT_EQ(1U, data);
	EXPECT_EQ(10, res);
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
}

TEST_F(uring, read_with_data_completes_at_once)
{
	char buf[64];
	int res;

	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	io_uring_prep_read(sqe_get(&self->ring, 1), self->fds[0], buf,
			   sizeof(buf), 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, NULL));
	EXPECT_EQ(5, res);
	EXPECT_EQ(0, memcmp(buf, "hello", 5));
}

TEST_F(uring, readv_and_writev)
{
	char a[3], b[5], out[8];
	struct iovec riov[3] = { { a, 3 }, { NULL, 0 }, { b, 5 } };
	struct iovec wiov[2] = { { "abcd", 4 }, { "efgh", 4 } };
	int res;

	io_uring_prep_readv(sqe_get(&self->ring, 1), self->fds[0], riov, 3, 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	io_uring_prep_writev(sqe_get(&self->ring, 2), self->fds[1], wiov, 2, 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, NULL));
		EXPECT_EQ(8, res);
	}
	memcpy(out, a, 3);
	memcpy(out + 3, b, 5);
	EXPECT_EQ(0, memcmp(out, "abcdefgh", 8));
}

/*
 *   capacity 4096, full
 *   WRITE 100 --------------------> -EAGAIN, poll armed for EPOLLOUT
 *   read(4096) -------------------> room: io_uring retries: CQE res 100
 */
TEST_F(uring, write_on_full_completes_as_reader_drains_never_queued)
{
	char fill[PAGE] = { 0 }, w[100], got[PAGE];
	int res;

	memset(w, 'w', sizeof(w));
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_uring_prep_write(sqe_get(&self->ring, 2), self->fds[1], w,
			    sizeof(w), 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pending_writes));
	ASSERT_EQ(PAGE, read(self->fds[0], got, PAGE));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, NULL));
	EXPECT_EQ(100, res);
	EXPECT_EQ(100, ap_read_now(self->fds[0], got, sizeof(got)));
	EXPECT_EQ(0, memcmp(got, w, 100));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
}

/* RWF_NOWAIT: io_uring does not retry; -EAGAIN is the result. */
TEST_F(uring, rwf_nowait_read_gets_eagain)
{
	struct io_uring_sqe *sqe;
	char buf[16];
	int res;

	sqe = sqe_get(&self->ring, 1);
	io_uring_prep_read(sqe, self->fds[0], buf, sizeof(buf), 0);
	sqe->rw_flags = RWF_NOWAIT;
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, NULL));
	EXPECT_EQ(-EAGAIN, res);
}

TEST_F(uring, poll_add_on_the_read_end)
{
	unsigned int res;
	int r;

	io_uring_prep_poll_add(sqe_get(&self->ring, 7), self->fds[0], POLLIN);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &r, NULL));
	res = (unsigned int)r;
	EXPECT_TRUE((res & POLLIN) != 0) TH_LOG("revents %#x", res);
}

TEST_F(uring, poll_add_on_the_write_end)
{
	char fill[PAGE] = { 0 };
	unsigned int res;
	int r;

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_uring_prep_poll_add(sqe_get(&self->ring, 7), self->fds[1], POLLOUT);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	ASSERT_EQ(PAGE, read(self->fds[0], fill, PAGE));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &r, NULL));
	res = (unsigned int)r;
	EXPECT_TRUE((res & POLLOUT) != 0) TH_LOG("revents %#x", res);
}

/* A read waiting on its armed poll is cancelled by io_uring itself. */
TEST_F(uring, async_cancel_of_a_waiting_read)
{
	char buf[16];
	uint64_t data;
	int res, seen = 0;

	io_uring_prep_read(sqe_get(&self->ring, 1), self->fds[0], buf,
			   sizeof(buf), 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	io_uring_prep_cancel64(sqe_get(&self->ring, 2), 1, 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, &data));
		if (data == 1) {
			EXPECT_EQ(-ECANCELED, res);
		} else {
			EXPECT_EQ(0, res);
		}
		seen |= 1 << data;
	}
	EXPECT_EQ(6, seen);
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(3, ap_read_now(self->fds[0], buf, sizeof(buf)));
}

/*
 *   READ with IOSQE_ASYNC --------> io-wq worker: read_iter without
 *                                   IOCB_NOWAIT; not a libaio kiocb, so it
 *                                   blocks like a pipe read (never queued)
 *   write("0123") ----------------> the worker's read returns: CQE res 4
 */
TEST_F(uring, forced_async_read_blocks_in_a_worker_never_queued)
{
	struct io_uring_sqe *sqe;
	char buf[16];
	int res;

	sqe = sqe_get(&self->ring, 1);
	io_uring_prep_read(sqe, self->fds[0], buf, sizeof(buf), 0);
	sqe->flags |= IOSQE_ASYNC;
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_LE(1, AP_WAIT_STAT(self->fds[0], async_reads, 1, AP_LONG_MS));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pending_reads));
	ASSERT_EQ(4, write(self->fds[1], "0123", 4));
	ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, NULL));
	EXPECT_EQ(4, res);
	EXPECT_EQ(0, memcmp(buf, "0123", 4));
}

/* IORING_OP_ASYNC_CANCEL interrupts the worker's blocking read. */
TEST_F(uring, forced_async_read_is_cancelled_promptly)
{
	struct io_uring_sqe *sqe;
	char buf[16];
	uint64_t data;
	int res, rres = 1;
	int64_t t0;

	sqe = sqe_get(&self->ring, 1);
	io_uring_prep_read(sqe, self->fds[0], buf, sizeof(buf), 0);
	sqe->flags |= IOSQE_ASYNC;
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	ASSERT_LE(1, AP_WAIT_STAT(self->fds[0], async_reads, 1, AP_LONG_MS));
	t0 = ap_now_ns();
	io_uring_prep_cancel64(sqe_get(&self->ring, 2), 1, 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, cqe_wait(&self->ring, AP_LONG_MS, &res, &data));
		if (data == 1)
			rres = res;
	}
	EXPECT_GT(1000, ap_ms_since(t0));
	EXPECT_TRUE(rres == -EINTR || rres == -ECANCELED)
		TH_LOG("read res %d", rres);
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(3, ap_read_now(self->fds[0], buf, sizeof(buf)));
}

enum uring_end { END_TEARDOWN_THEN_EXIT, END_EXIT, END_SIGKILL };

/*
 * Child: a READ forced to a worker, left pending; then ring teardown and
 * exit, plain exit, or SIGKILL from the parent.
 *
 *   parent                             child
 *   fork ----------------------------> READ (IOSQE_ASYNC) blocks in io-wq
 *                                      "R" once read_iter was entered
 *   (SIGKILL)                          io_uring_queue_exit; _exit
 *   waitpid bounded: < 2 s; the channel still works
 */
static void forced_async_exit(struct __test_metadata *_metadata, int fds[2],
			      enum uring_end end)
{
	long long reads0 = AP_STAT(fds[0], async_reads);
	int note[2], status;
	char buf[8], c;
	int64_t t0;
	pid_t pid;

	ASSERT_EQ(0, pipe(note));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		static char rbuf[16];
		struct io_uring ring;
		struct io_uring_sqe *sqe;

		if (io_uring_queue_init(4, &ring, 0))
			_exit(20);
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fds[0], rbuf, sizeof(rbuf), 0);
		sqe->flags |= IOSQE_ASYNC;
		if (io_uring_submit(&ring) != 1)
			_exit(21);
		if (AP_WAIT_STAT(fds[0], async_reads, reads0 + 1, AP_LONG_MS) <
		    reads0 + 1)
			_exit(22);
		ap_notify(note[1], 'R');
		if (end == END_SIGKILL)
			for (;;)
				pause();
		if (end == END_TEARDOWN_THEN_EXIT)
			io_uring_queue_exit(&ring);
		_exit(0);
	}
	ASSERT_EQ(1, ap_poll1(note[0], POLLIN, AP_LONG_MS));
	ASSERT_EQ(1, read(note[0], &c, 1));
	t0 = ap_now_ns();
	if (end == END_SIGKILL)
		ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_GT(2000, ap_ms_since(t0));
	TH_LOG("child gone %lld ms after its read was blocked",
	       (long long)ap_ms_since(t0));
	if (end == END_SIGKILL) {
		EXPECT_TRUE(WIFSIGNALED(status));
	} else {
		EXPECT_EQ(0, status);
	}
	/* nothing of the dead read is left: bytes written now stay */
	ASSERT_EQ(3, write(fds[1], "abc", 3));
	EXPECT_EQ(3, ap_read_now(fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, AP_STAT(fds[0], queued));
	AP_EXPECT_IDLE(fds[0]);
	backend_close(note);
}

TEST_F(uring, forced_async_read_pending_at_ring_teardown_and_exit)
{
	forced_async_exit(_metadata, self->fds, END_TEARDOWN_THEN_EXIT);
}

TEST_F(uring, forced_async_read_pending_at_exit)
{
	forced_async_exit(_metadata, self->fds, END_EXIT);
}

TEST_F(uring, forced_async_read_pending_at_sigkill)
{
	forced_async_exit(_metadata, self->fds, END_SIGKILL);
}

/* A pending READ of a ring that is torn down by the process itself. */
TEST_F(uring, ring_teardown_with_a_waiting_read_returns_promptly)
{
	char buf[16];
	int64_t t0;

	io_uring_prep_read(sqe_get(&self->ring, 1), self->fds[0], buf,
			   sizeof(buf), 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-ETIME, cqe_wait(&self->ring, AP_QUIET_MS, NULL, NULL));
	t0 = ap_now_ns();
	io_uring_queue_exit(&self->ring);
	self->ring_up = false;
	EXPECT_GT(1000, ap_ms_since(t0));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(3, ap_read_now(self->fds[0], buf, sizeof(buf)));
}

TEST_HARNESS_MAIN
