// SPDX-License-Identifier: GPL-2.0
/*
 * The "done when" program, as a test (docs/async.md, "Scale"):
 * queue 1000 reads on 1000 aiopipes (one each), write one byte to each,
 * reap 1000 completions, and no io_submit ever blocks.
 *
 * "Never blocks" is measured: every io_submit returns within a second (on a
 * kernel pipe the first one would not return at all), and none of the 1000
 * events shows up before its byte is written.
 */
#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define NPIPES	1000

FIXTURE(scale) {
	int (*fds)[2];
	io_context_t ctx;
	int n;
};

FIXTURE_VARIANT(scale) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(scale);

FIXTURE_SETUP(scale)
{
	ASSERT_EQ(0, ap_raise_nofile(2 * NPIPES + 64));
	self->fds = calloc(NPIPES, sizeof(*self->fds));
	ASSERT_NE(NULL, self->fds);
	for (self->n = 0; self->n < NPIPES; self->n++)
		ASSERT_EQ(0, ap_pair(self->fds[self->n], O_CLOEXEC, 0,
				     variant->engine, variant->filter))
			TH_LOG("pair %d", self->n);
	ASSERT_EQ(0, io_setup(NPIPES, &self->ctx));
}

FIXTURE_TEARDOWN(scale)
{
	if (self->ctx)
		io_destroy(self->ctx);
	for (int i = 0; i < self->n; i++)
		backend_close(self->fds[i]);
	free(self->fds);
}

/*
 *   1000 aiopipes                       test
 *   PREAD 1 on each, one io_submit      every io_submit < 100 ms
 *   each                                (no event yet)
 *   write 1 byte to each -------------> 1000 events, event i has byte i
 */
TEST_F_TIMEOUT(scale, thousand_reads_on_thousand_aiopipes, 120)
{
	static struct iocb cbs[NPIPES];
	static unsigned char buf[NPIPES];
	static struct io_event ev[NPIPES];
	int64_t worst = 0, t0, total0 = ap_now_ns();
	int got;

	for (int i = 0; i < NPIPES; i++) {
		io_prep_pread(&cbs[i], self->fds[i][0], &buf[i], 1, 0);
		cbs[i].data = (void *)(long)i;
		t0 = ap_now_ns();
		ASSERT_EQ(1, ap_submit1(self->ctx, &cbs[i]))
			TH_LOG("io_submit %d", i);
		if (ap_now_ns() - t0 > worst)
			worst = ap_now_ns() - t0;
	}
	TH_LOG("1000 io_submit calls in %lld ms, the slowest %lld us",
	       (long long)ap_ms_since(total0), (long long)worst / 1000);
	EXPECT_GT(1000 * 1000000LL, worst);
	EXPECT_EQ(0, ap_getevents(self->ctx, 0, NPIPES, ev, 0));
	EXPECT_EQ(NPIPES, AP_STAT(-1, pending_reads));

	t0 = ap_now_ns();
	for (int i = 0; i < NPIPES; i++) {
		unsigned char b = (unsigned char)(i * 7);

		ASSERT_EQ(1, write(self->fds[i][1], &b, 1));
	}
	got = ap_getevents(self->ctx, NPIPES, NPIPES, ev, 60000);
	ASSERT_EQ(NPIPES, got);
	TH_LOG("1000 writes and 1000 completions in %lld ms",
	       (long long)ap_ms_since(t0));
	for (int i = 0; i < NPIPES; i++) {
		long idx = (long)ev[i].data;

		ASSERT_EQ(1, (long)ev[i].res) TH_LOG("event %d", i);
		ASSERT_EQ((unsigned char)(idx * 7), buf[idx]);
	}
	EXPECT_EQ(0, AP_STAT(-1, pending_reads));
	EXPECT_EQ(0, AP_STAT(-1, pinned_pages));
}

/* The same 1000 reads in one io_submit call. */
TEST_F_TIMEOUT(scale, thousand_reads_in_one_io_submit, 120)
{
	static struct iocb cbs[NPIPES], *cbp[NPIPES];
	static unsigned char buf[NPIPES];
	static struct io_event ev[NPIPES];
	int64_t t0;

	for (int i = 0; i < NPIPES; i++) {
		io_prep_pread(&cbs[i], self->fds[i][0], &buf[i], 1, 0);
		cbs[i].data = (void *)(long)i;
		cbp[i] = &cbs[i];
	}
	t0 = ap_now_ns();
	ASSERT_EQ(NPIPES, io_submit(self->ctx, NPIPES, cbp));
	TH_LOG("one io_submit of 1000 reads: %lld ms",
	       (long long)ap_ms_since(t0));
	EXPECT_GT(2000, ap_ms_since(t0));
	for (int i = NPIPES - 1; i >= 0; i--)
		ASSERT_EQ(1, write(self->fds[i][1], "q", 1));
	ASSERT_EQ(NPIPES, ap_getevents(self->ctx, NPIPES, NPIPES, ev, 60000));
	for (int i = 0; i < NPIPES; i++)
		ASSERT_EQ(1, (long)ev[i].res);
	EXPECT_EQ(0, AP_STAT(-1, pending_reads));
}

TEST_HARNESS_MAIN
