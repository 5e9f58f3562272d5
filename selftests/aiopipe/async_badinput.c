// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input to async requests (docs/async.md, "Errors"): a clear error,
 * never a kernel warning, never lost bytes.
 *
 *  - a bad buffer gives an -EFAULT completion, at submission or later, on
 *    both engines (the direct engine cannot pin it and falls back to the
 *    retry engine, whose copy faults); the bytes stay in the pipe;
 *  - a partly bad iovec moves the good part and reports it;
 *  - huge lengths are clamped like read(2)/write(2) and move what the
 *    buffer holds; the direct engine falls back past its pin bound;
 *  - UIO_MAXIOV segments are fine, one more is EINVAL at io_submit;
 *  - wrong direction, closed fd, negative offset, bad iocb pointer: errors
 *    from io_submit itself;
 *  - a full AIO context gives EAGAIN for the excess, not a hang.
 */
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096

FIXTURE(badinput) {
	int fds[2];
	io_context_t ctx;
	bool direct;
};

FIXTURE_VARIANT(badinput) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(badinput);

FIXTURE_SETUP(badinput)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(64, &self->ctx));
	self->direct = ap_is_direct(variant->engine);
}

FIXTURE_TEARDOWN(badinput)
{
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
}

/* @pages mapped pages followed by an unmapped guard page. */
static char *guarded(int pages, int prot)
{
	char *p = mmap(NULL, (size_t)(pages + 1) * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	munmap(p + (size_t)pages * PAGE, PAGE);
	if (prot != (PROT_READ | PROT_WRITE))
		mprotect(p, (size_t)pages * PAGE, prot);
	return p;
}

TEST_F(badinput, read_into_null_with_data_present_is_efault)
{
	struct iocb cb;

	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	io_prep_pread(&cb, self->fds[0], NULL, 10, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(10, ap_fionread(self->fds[0]));
}

/*
 *   io_submit(PREAD NULL 10) --> queued (direct: cannot pin, retry instead)
 *   write("0123456789") ------> the retry's copy faults: event -EFAULT;
 *                               the 10 bytes are still in the pipe
 */
TEST_F(badinput, queued_read_into_null_is_efault_and_keeps_the_bytes)
{
	char buf[16];
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], NULL, 10, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_reads));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_retry));
	AP_EXPECT_IDLE(self->fds[0]);
	EXPECT_EQ(10, ap_read_now(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
}

TEST_F(badinput, queued_read_into_read_only_memory_is_efault)
{
	char *ro = guarded(1, PROT_READ), buf[16];
	struct iocb cb;

	ASSERT_NE(NULL, ro);
	io_prep_pread(&cb, self->fds[0], ro, 10, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(10, ap_read_now(self->fds[0], buf, sizeof(buf)));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 * The buffer goes away after submission.  Retry: the worker's copy faults,
 * -EFAULT, bytes kept.  Direct: the pages were pinned at submission and
 * stay valid: the read completes into them (the bytes are consumed, as
 * with O_DIRECT into memory unmapped meanwhile).  The read asks for a whole
 * page, more than small_read_max: a small direct read is not pinned and
 * behaves as a retry read (async_small.c).
 */
TEST_F(badinput, buffer_unmapped_after_submission)
{
	char *p = guarded(1, PROT_READ | PROT_WRITE), buf[16];
	struct iocb cb;

	ASSERT_NE(NULL, p);
	io_prep_pread(&cb, self->fds[0], p, PAGE, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(0, munmap(p, PAGE));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	if (self->direct) {
		EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
		EXPECT_EQ(0, ap_fionread(self->fds[0]));
	} else {
		EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
		EXPECT_EQ(10, ap_read_now(self->fds[0], buf, sizeof(buf)));
	}
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_F(badinput, partly_bad_iovec_read_moves_the_good_part)
{
	char good[10];
	struct iovec iov[2] = { { good, 10 }, { NULL, 10 } };
	struct iocb cb;

	/* at submission */
	ASSERT_EQ(20, write(self->fds[1], "0123456789abcdefghij", 20));
	io_prep_preadv(&cb, self->fds[0], iov, 2, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(good, "0123456789", 10));
	EXPECT_EQ(10, ap_fionread(self->fds[0]));
	ASSERT_EQ(10, ap_read_now(self->fds[0], good, 10));

	/* queued, completed later */
	io_prep_preadv(&cb, self->fds[0], iov, 2, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(20, write(self->fds[1], "ABCDEFGHIJabcdefghij", 20));
	EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(good, "ABCDEFGHIJ", 10));
	EXPECT_EQ(10, ap_fionread(self->fds[0]));
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_F(badinput, write_from_null_is_efault_and_writes_nothing)
{
	struct iocb cb;

	io_prep_pwrite(&cb, self->fds[1], NULL, 10, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, ap_fionread(self->fds[0]));
}

/*
 *   capacity 4096, full
 *   io_submit(PWRITE NULL 100) --> queued (direct falls back to retry)
 *   read(4096) ------------------> the retry's copy faults: -EFAULT, and
 *                                  nothing of it enters the pipe
 */
TEST_F(badinput, queued_write_from_null_is_efault)
{
	char fill[PAGE] = { 0 };
	struct iocb cb;

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_pwrite(&cb, self->fds[1], NULL, 100, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_writes));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(PAGE, read(self->fds[0], fill, PAGE));
	EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, ap_fionread(self->fds[0]));
	AP_EXPECT_IDLE(self->fds[0]);
}

/* A writer's bad buffer faults in the writer; the queued read waits on. */
TEST_F(badinput, bad_writer_buffer_leaves_a_queued_read_pending)
{
	char *volatile bad = NULL;	/* hidden from -Wnonnull */
	char buf[64];
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-1, write(self->fds[1], bad, 10));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_reads));
	EXPECT_EQ(0, ap_fionread(self->fds[0]));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(3, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(buf, "abc", 3));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 *   PREAD 64 queued
 *   writev("hello", NULL 5) --> 5 (the fault ends the write), and the read
 *                               completes with "hello" (direct: copied into
 *                               its page before the fault; retry: via ring)
 */
TEST_F(badinput, partly_bad_writev_completes_a_queued_read_with_the_good_part)
{
	char buf[64];
	struct iovec iov[2] = { { "hello", 5 }, { NULL, 5 } };
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(5, writev(self->fds[1], iov, 2));
	EXPECT_EQ(5, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(buf, "hello", 5));
	EXPECT_EQ(0, ap_fionread(self->fds[0]));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 *   capacity 4096, full of bytes 0..4095; PWRITE of bytes 4096..4195 queued
 *   readv(4146 bytes, NULL 100) --> the good part (4096, or 4146 when the
 *                                   reader copies from the pinned write)
 *   then the rest reads back in order; the write completes with 100
 */
TEST_F(badinput, partly_bad_readv_against_a_queued_write_loses_nothing)
{
	char *src = malloc(PAGE + 100), *got = malloc(2 * PAGE);
	struct iovec iov[2];
	struct iocb cb;
	ssize_t n, rest;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	ap_fill(src, PAGE + 100, 0);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], src, PAGE));
	io_prep_pwrite(&cb, self->fds[1], src + PAGE, 100, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	iov[0] = (struct iovec){ got, PAGE + 50 };
	iov[1] = (struct iovec){ NULL, 100 };
	n = readv(self->fds[0], iov, 2);
	ASSERT_LE(PAGE, n);
	ASSERT_GE(PAGE + 50, n);
	EXPECT_EQ(100, ap_reap1(self->ctx, NULL));
	rest = ap_read_now(self->fds[0], got + n, 2 * PAGE - n);
	ASSERT_EQ(PAGE + 100, n + rest);
	EXPECT_EQ(-1, ap_check(got, PAGE + 100, 0));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 * A read of (size_t)-1 / 2 bytes into one page followed by a hole: the
 * length is clamped (MAX_RW_COUNT) like read(2); queued (direct: far past
 * the pin bound, retry instead); a 10-byte write completes it with 10.
 * With 64 KiB in the pipe, it copies the 4096 bytes the page holds and
 * reports them; the rest stays.
 */
TEST_F(badinput, huge_read_length)
{
	char *p = guarded(1, PROT_READ | PROT_WRITE);
	char *src = malloc(65536);
	struct iocb cb;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, src);
	io_prep_pread(&cb, self->fds[0], p, SIZE_MAX / 2, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_reads));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	EXPECT_EQ(10, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(p, "0123456789", 10));

	ap_fill(src, 65536, 0);
	ASSERT_EQ(65536, write(self->fds[1], src, 65536));
	io_prep_pread(&cb, self->fds[0], p, SIZE_MAX / 2, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(PAGE, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(-1, ap_check(p, PAGE, 0));
	EXPECT_EQ(65536 - PAGE, ap_fionread(self->fds[0]));
	AP_EXPECT_IDLE(self->fds[0]);
}

/* A 1 GiB write from one page: it moves the page and reports 4096. */
TEST_F(badinput, huge_write_length)
{
	char *p = guarded(1, PROT_READ | PROT_WRITE);
	struct iocb cb;

	ASSERT_NE(NULL, p);
	ap_fill(p, PAGE, 0);
	io_prep_pwrite(&cb, self->fds[1], p, 1UL << 30, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(PAGE, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(PAGE, ap_fionread(self->fds[0]));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 * A queued 1 GiB read of a MAP_NORESERVE region (valid, untouched): the
 * direct engine refuses to pin that much and uses the retry engine.
 */
TEST_F(badinput, huge_queued_read_falls_back_from_direct)
{
	const size_t len = 1UL << 30;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct iocb cb;

	ASSERT_NE(MAP_FAILED, p);
	io_prep_pread(&cb, self->fds[0], p, len, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	EXPECT_EQ(5, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(p, "hello", 5));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_retry));
	AP_EXPECT_IDLE(self->fds[0]);
	munmap(p, len);
}

/* UIO_MAXIOV (1024) segments queue and complete; 1025 is EINVAL. */
TEST_F(badinput, uio_maxiov_segments_and_one_more)
{
	static struct iovec iov[UIO_MAXIOV + 1];
	static char buf[UIO_MAXIOV + 1];
	char src[UIO_MAXIOV];
	struct iocb cb;

	for (int i = 0; i <= UIO_MAXIOV; i++) {
		iov[i].iov_base = &buf[i];
		iov[i].iov_len = 1;
	}
	io_prep_preadv(&cb, self->fds[0], iov, UIO_MAXIOV + 1, 0);
	EXPECT_EQ(-EINVAL, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, AP_STAT(self->fds[0], async_reads));

	io_prep_preadv(&cb, self->fds[0], iov, UIO_MAXIOV, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ap_fill(src, sizeof(src), 0);
	ASSERT_EQ(UIO_MAXIOV, write(self->fds[1], src, sizeof(src)));
	EXPECT_EQ(UIO_MAXIOV, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(-1, ap_check(buf, UIO_MAXIOV, 0));
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_F(badinput, wrong_direction_and_closed_fds_are_ebadf)
{
	char buf[8];
	struct iocb cb;
	int fd;

	io_prep_pread(&cb, self->fds[1], buf, sizeof(buf), 0);
	EXPECT_EQ(-EBADF, ap_submit1(self->ctx, &cb));
	io_prep_pwrite(&cb, self->fds[0], buf, sizeof(buf), 0);
	EXPECT_EQ(-EBADF, ap_submit1(self->ctx, &cb));
	fd = dup(self->fds[0]);
	ASSERT_LE(0, fd);
	close(fd);
	io_prep_pread(&cb, fd, buf, sizeof(buf), 0);
	EXPECT_EQ(-EBADF, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, AP_STAT(self->fds[0], async_reads));
}

TEST_F(badinput, negative_offset_is_einval)
{
	char buf[8];
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), -1);
	EXPECT_EQ(-EINVAL, ap_submit1(self->ctx, &cb));
}

TEST_F(badinput, bad_iocb_pointer_is_efault)
{
	struct iocb *cbp = (struct iocb *)8;

	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, &cbp));
}

/*
 *   io_setup(16)
 *   io_submit(4096 queued reads) --> returns n, 16 <= n < 4096, at once
 *   io_submit(one more) ----------> -EAGAIN (the context is full)
 *   io_destroy --------------------> everything cancelled, counters 0
 */
TEST_F(badinput, full_context_gives_eagain_not_a_hang)
{
	const int nr = 4096;
	struct iocb *cbs = calloc(nr, sizeof(*cbs));
	struct iocb **cbp = calloc(nr, sizeof(*cbp));
	char *bufs = malloc(nr);
	io_context_t small = 0;
	int64_t t0;
	int n;

	ASSERT_NE(NULL, cbs);
	ASSERT_NE(NULL, cbp);
	ASSERT_NE(NULL, bufs);
	ASSERT_EQ(0, io_setup(16, &small));
	for (int i = 0; i < nr; i++) {
		io_prep_pread(&cbs[i], self->fds[0], &bufs[i], 1, 0);
		cbp[i] = &cbs[i];
	}
	t0 = ap_now_ns();
	n = io_submit(small, nr, cbp);
	EXPECT_GT(1000, ap_ms_since(t0));
	EXPECT_LE(16, n);
	EXPECT_GT(nr, n);
	TH_LOG("a context of 16 took %d reads", n);
	EXPECT_EQ(n, AP_STAT(self->fds[0], pending_reads));
	t0 = ap_now_ns();
	EXPECT_EQ(-EAGAIN, io_submit(small, 1, cbp + n));
	EXPECT_GT(1000, ap_ms_since(t0));
	EXPECT_EQ(0, io_destroy(small));
	AP_EXPECT_IDLE(self->fds[0]);
	ASSERT_EQ(1, write(self->fds[1], "z", 1));
	EXPECT_EQ(1, ap_fionread(self->fds[0]));
}

TEST_HARNESS_MAIN
