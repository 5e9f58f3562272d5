// SPDX-License-Identifier: GPL-2.0
/*
 * Vectored async requests (docs/async.md, "Vectored requests"): PREADV and
 * PWRITEV with many segments, empty ones among them, segments that share a
 * page or straddle pages, queued and completed later on both engines.  The
 * bytes land in (or come from) exactly the segments, in order, and nothing
 * around them is touched.
 */
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096
#define GUARD	0xEE
#define NSEG	64

FIXTURE(vector) {
	int fds[2];
	io_context_t ctx;
	bool direct;
	char *area;		/* 16 pages */
};

FIXTURE_VARIANT(vector) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(vector);

FIXTURE_SETUP(vector)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(16, &self->ctx));
	self->direct = ap_is_direct(variant->engine);
	self->area = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->area);
	memset(self->area, GUARD, 16 * PAGE);
}

FIXTURE_TEARDOWN(vector)
{
	io_destroy(self->ctx);
	munmap(self->area, 16 * PAGE);
	backend_close(self->fds);
}

/*
 * NSEG segments: every fifth one empty, the others 1..200 bytes, each
 * followed by a 16-byte guard; the first starts 100 bytes before a page
 * boundary so several straddle pages.  Returns the total length.
 */
static size_t make_segments(char *area, struct iovec *iov)
{
	char *p = area + PAGE - 100;
	size_t total = 0;

	for (int i = 0; i < NSEG; i++) {
		size_t n = i % 5 == 0 ? 0 : (size_t)(i * 37) % 200 + 1;

		iov[i].iov_base = p;
		iov[i].iov_len = n;
		p += n + 16;
		total += n;
	}
	return total;
}

/* -1 if the segments hold the pattern and every byte around is GUARD. */
static long check_segments(const char *area, const struct iovec *iov)
{
	uint64_t off = 0;
	const char *p = area;

	for (int i = 0; i < NSEG; i++) {
		const char *b = iov[i].iov_base;

		for (; p < b; p++)
			if ((unsigned char)*p != GUARD)
				return p - area;
		if (ap_check(b, iov[i].iov_len, off) != -1)
			return b - area;
		off += iov[i].iov_len;
		p = b + iov[i].iov_len;
	}
	for (; p < area + 16 * PAGE; p++)
		if ((unsigned char)*p != GUARD)
			return p - area;
	return -1;
}

/*
 *   io_submit(PREADV 64 segments, 13 of them empty) --> queued
 *   write(total) ---------------------------------------> scattered in order
 *   (direct: straight into the pinned pages, one copy)
 */
TEST_F(vector, queued_preadv_scatters_into_many_segments)
{
	struct iovec iov[NSEG];
	size_t total = make_segments(self->area, iov);
	char *src = malloc(total);
	struct iocb cb;

	ASSERT_NE(NULL, src);
	ap_fill(src, total, 0);
	io_prep_preadv(&cb, self->fds[0], iov, NSEG, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	if (self->direct)
		EXPECT_LT(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ((ssize_t)total, write(self->fds[1], src, total));
	EXPECT_EQ((long)total, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(-1, check_segments(self->area, iov));
	if (self->direct)
		EXPECT_EQ((long long)total,
			  AP_STAT(self->fds[0], bytes_single_copy));
	AP_EXPECT_IDLE(self->fds[0]);
	free(src);
}

/*
 *   capacity 4096, full
 *   io_submit(PWRITEV 64 segments from the area) --> queued
 *   read everything: the prefill, then the segments' bytes in order
 */
TEST_F(vector, queued_pwritev_gathers_from_many_segments)
{
	struct iovec iov[NSEG];
	size_t total = make_segments(self->area, iov), off = 0, got = 0;
	char fill[PAGE], *dst = malloc(PAGE + total + 1);
	struct iocb cb;

	ASSERT_NE(NULL, dst);
	for (int i = 0; i < NSEG; i++) {
		ap_fill(iov[i].iov_base, iov[i].iov_len, off);
		off += iov[i].iov_len;
	}
	memset(fill, 'F', sizeof(fill));
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_pwritev(&cb, self->fds[1], iov, NSEG, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	while (got < PAGE + total) {
		ssize_t n = read(self->fds[0], dst + got, PAGE + total - got);

		ASSERT_LT(0, n);
		got += n;
	}
	EXPECT_EQ((long)total, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(dst, fill, PAGE));
	EXPECT_EQ(-1, ap_check(dst + PAGE, total, 0));
	AP_EXPECT_IDLE(self->fds[0]);
	free(dst);
}

TEST_F(vector, queued_preadv_partial_fill)
{
	char *a = self->area, *b = self->area + 200, *c = self->area + 400;
	struct iovec iov[3] = { { a, 100 }, { b, 100 }, { c, 100 } };
	char src[150];
	struct iocb cb;

	ap_fill(src, sizeof(src), 0);
	io_prep_preadv(&cb, self->fds[0], iov, 3, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(150, write(self->fds[1], src, sizeof(src)));
	EXPECT_EQ(150, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(-1, ap_check(a, 100, 0));
	EXPECT_EQ(-1, ap_check(b, 50, 100));
	EXPECT_EQ(GUARD, (unsigned char)b[50]);
	EXPECT_EQ(GUARD, (unsigned char)c[0]);
}

/* Ten empty segments first, then the real one (the pinning walk skips them). */
TEST_F(vector, queued_preadv_leading_empty_segments)
{
	struct iovec iov[12];
	struct iocb cb;

	for (int i = 0; i < 10; i++) {
		iov[i].iov_base = self->area + i;
		iov[i].iov_len = 0;
	}
	iov[10].iov_base = self->area + PAGE;
	iov[10].iov_len = AP_PINNED_READ;
	iov[11].iov_base = self->area + 3 * PAGE;
	iov[11].iov_len = 0;
	io_prep_preadv(&cb, self->fds[0], iov, 12, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	if (self->direct)
		EXPECT_EQ(1, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(7, write(self->fds[1], "abcdefg", 7));
	EXPECT_EQ(7, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(self->area + PAGE, "abcdefg", 7));
	EXPECT_EQ(GUARD, (unsigned char)self->area[0]);
	EXPECT_EQ(GUARD, (unsigned char)self->area[PAGE + 7]);
	AP_EXPECT_IDLE(self->fds[0]);
}

/* 32 segments of 8 bytes inside one page. */
TEST_F(vector, queued_preadv_segments_sharing_a_page)
{
	struct iovec iov[32];
	char src[256];
	struct iocb cb;

	for (int i = 0; i < 32; i++) {
		iov[i].iov_base = self->area + 2 * PAGE + i * 16;
		iov[i].iov_len = 8;
	}
	ap_fill(src, sizeof(src), 0);
	io_prep_preadv(&cb, self->fds[0], iov, 32, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	TH_LOG("pinned pages for 32 segments in one page: %lld",
	       AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(256, write(self->fds[1], src, 256));
	EXPECT_EQ(256, ap_reap1(self->ctx, NULL));
	for (int i = 0; i < 32; i++) {
		EXPECT_EQ(-1, ap_check(iov[i].iov_base, 8, i * 8));
		EXPECT_EQ(GUARD, (unsigned char)self->area[2 * PAGE + i * 16 + 8]);
	}
	AP_EXPECT_IDLE(self->fds[0]);
}

/* Only empty segments: nothing to move, completes with 0 at once. */
TEST_F(vector, all_empty_segments_complete_with_zero)
{
	struct iovec iov[4] = { { self->area, 0 }, { self->area, 0 },
				{ self->area, 0 }, { self->area, 0 } };
	struct iocb cb;

	io_prep_preadv(&cb, self->fds[0], iov, 4, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, ap_reap1(self->ctx, NULL));
	io_prep_pwritev(&cb, self->fds[1], iov, 4, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, AP_STAT(self->fds[0], queued));
}

TEST_HARNESS_MAIN
