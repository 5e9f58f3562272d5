// SPDX-License-Identifier: GPL-2.0
/*
 * Filtered versus unfiltered wakeups (docs/async.md, "Engines" and
 * "Counters"): the retry storm of the paper's Table 1 made countable.
 *
 * A queued retry-engine request waits on the channel's single wait queue.
 * With filtering on, its wake function ignores keys of the other direction
 * (wakeups_filtered) and a retry runs only when it can move bytes: zero
 * futile_retries.  With filtering off every wakeup kicks a retry, and the
 * ones that find nothing to move are counted as futile.  The direct engine
 * never waits on the queue, so it never retries at all.
 *
 * The workloads are built so the counts are exact, not statistical: after
 * each step the test waits for the retry it expects (a counter, since a
 * retry that moves nothing produces no event).
 */
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096
#define REC	8	/* one record */

FIXTURE(filter) {
	int fds[2];
	io_context_t ctx;
	bool direct;
	bool filtered;
};

FIXTURE_VARIANT(filter) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_FILTER_VARIANTS(filter);

FIXTURE_SETUP(filter)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(256, &self->ctx));
	self->direct = ap_is_direct(variant->engine);
	self->filtered = variant->filter == AIOPIPE_FILTER_ON;
}

FIXTURE_TEARDOWN(filter)
{
	io_destroy(self->ctx);
	backend_close(self->fds);
}

/*
 * A mixed reader/writer workload, one record at a time, with somebody
 * waiting for the drain (a writer that polled its end for
 * AIOPIPE_POLL_DRAINED once: the module sends drain wakeups only on
 * channels where somebody asked for them).
 *
 *   16 reads queued: R1 (first in line, armed) R2 ... R16
 *   for each of 40 records (the writer alternates write(2) and PWRITE):
 *     write record i ----------> EPOLLIN wake: R_i retried, takes it,
 *                                completes; R_i+1 becomes first in line
 *                                and is armed; the read that emptied the
 *                                ring wakes with the "drained" key
 *                                (EPOLLWRBAND, a writer's key)
 *       filtered:   R_i+1 ignores it      -> wakeups_filtered + 1
 *       unfiltered: R_i+1 is retried, finds nothing -> futile_retries + 1
 *
 *   retry, filtered:   retries 40, futile 0,  delivered 40, filtered 40
 *   retry, unfiltered: retries 80, futile 40, delivered 80, filtered 0
 *   direct:            the writer fills the pinned pages; no retry at all
 *
 * Without a drain waiter there is no drained wakeup at all: 40 retries,
 * none futile, filtered or not.
 */
static void records_one_at_a_time(struct __test_metadata *_metadata,
				  FIXTURE_DATA(filter) *self, bool drain_waiter)
{
	const int nrec = 40, nreads = 16 + 40;
	char (*bufs)[64] = calloc(nreads, 64);
	struct iocb *cbs = calloc(nreads, sizeof(*cbs));
	struct pollfd drain = { .fd = self->fds[1], .events = POLLWRBAND };
	bool storm = drain_waiter && !self->filtered;
	struct aiopipe_stats st;
	struct iocb wcb;

	ASSERT_NE(NULL, bufs);
	ASSERT_NE(NULL, cbs);
	if (drain_waiter)
		ASSERT_EQ(1, poll(&drain, 1, 0));
	for (int i = 0; i < nreads; i++) {
		io_prep_pread(&cbs[i], self->fds[0], bufs[i], 64, 0);
		cbs[i].data = (void *)(long)i;
		ASSERT_EQ(1, ap_submit1(self->ctx, &cbs[i]));
	}
	for (int i = 0; i < nrec; i++) {
		uint64_t rec = 0x5245430000000000ULL | i;
		struct io_event ev[2];
		int nev = 1;

		if (i % 2) {
			ASSERT_EQ(REC, write(self->fds[1], &rec, REC));
		} else {
			io_prep_pwrite(&wcb, self->fds[1], &rec, REC, 0);
			wcb.data = (void *)-1L;
			ASSERT_EQ(1, ap_submit1(self->ctx, &wcb));
			nev = 2;
		}
		/* the read's event, and the write's: in either order */
		ASSERT_EQ(nev, ap_getevents(self->ctx, nev, nev, ev,
					    AP_LONG_MS));
		if (nev == 2 && (long)ev[0].data == -1L)
			ev[0] = ev[1];
		EXPECT_EQ(REC, (long)ev[0].res);
		ASSERT_EQ(i, (long)ev[0].data) TH_LOG("record %d", i);
		ASSERT_EQ(0, memcmp(bufs[i], &rec, REC));
		/* the retry of the next reader has no event: wait for it */
		if (!self->direct)
			AP_WAIT_STAT(self->fds[0], retries,
				     (i + 1) * (storm ? 2 : 1), 2000);
	}
	ASSERT_EQ(0, aiopipe_stats(self->fds[0], &st));
	AP_LOG_STATS(self->fds[0], "after 40 records");
	if (self->direct) {
		EXPECT_EQ(nrec, (long long)st.completed_by_peer);
		EXPECT_EQ(0, (long long)st.retries);
		EXPECT_EQ(0, (long long)st.wakeups_delivered);
	} else if (!storm) {
		EXPECT_EQ(nrec, (long long)st.retries);
		EXPECT_EQ(0, (long long)st.futile_retries);
		EXPECT_EQ(nrec, (long long)st.wakeups_delivered);
		EXPECT_EQ(drain_waiter ? nrec : 0,
			  (long long)st.wakeups_filtered);
	} else {
		EXPECT_EQ(2 * nrec, (long long)st.retries);
		EXPECT_EQ(nrec, (long long)st.futile_retries);
		EXPECT_EQ(2 * nrec, (long long)st.wakeups_delivered);
		EXPECT_EQ(0, (long long)st.wakeups_filtered);
	}
	EXPECT_EQ(nrec, (long long)(st.completed_by_peer +
				    st.completed_by_retry));
	EXPECT_EQ(nreads - nrec, (long long)st.pending_reads);
	free(bufs);
	free(cbs);
}

TEST_F(filter, one_record_at_a_time_counts_futile_retries)
{
	records_one_at_a_time(_metadata, self, true);
}

TEST_F(filter, no_drained_wakeups_without_a_drain_waiter)
{
	records_one_at_a_time(_metadata, self, false);
}

/*
 * Wakeups of the other direction only.
 *
 *   one read queued (armed)
 *   5 x AIOPIPE_IOC_SET_CAPACITY --> each wakes the queue with EPOLLOUT
 *     filtered:   5 wakeups filtered, no retry
 *     unfiltered: 5 retries, all futile (the test waits for each one)
 *   write "x" --------------------> the read completes with 1
 */
TEST_F(filter, other_direction_wakeups_kick_only_unfiltered_retries)
{
	char buf[AP_PINNED_READ];
	struct io_event ev;
	struct iocb cb;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	for (int i = 1; i <= 5; i++) {
		int cap = (i % 2 + 1) * 4 * PAGE;

		/* takes the mutex: after any retry in flight has re-armed */
		ASSERT_EQ(cap, aiopipe_set_capacity(self->fds[1], cap));
		if (!self->direct && !self->filtered)
			EXPECT_EQ(i, AP_WAIT_STAT(self->fds[0], retries, i,
						  2000));
	}
	EXPECT_TRUE(ap_no_event(self->ctx));
	if (self->direct) {
		EXPECT_EQ(0, AP_STAT(self->fds[0], wakeups_filtered));
		EXPECT_EQ(0, AP_STAT(self->fds[0], retries));
	} else if (self->filtered) {
		EXPECT_EQ(5, AP_STAT(self->fds[0], wakeups_filtered));
		EXPECT_EQ(0, AP_STAT(self->fds[0], retries));
	} else {
		EXPECT_EQ(5, AP_STAT(self->fds[0], futile_retries));
	}
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_EQ(1, ap_reap1(self->ctx, &ev));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 * A large queued write and a reader whose reads are smaller than the ring.
 *
 *   capacity 4096
 *   io_submit(PWRITE 64 KiB) --> 4096 in, queued; it needs PIPE_BUF (4096)
 *                                free bytes to move its next part
 *   read(3000) ----------------> 3000 free: EPOLLOUT wake
 *   read(3000) ----------------> 4096 free: EPOLLOUT wake
 *   ...
 *   filtered: a retry runs only when it can move bytes -> futile 0
 *   (every 3000-byte read leaves 1096 or 2192 bytes behind, so about every
 *   other EPOLLOUT wakeup comes when the room is still below PIPE_BUF)
 */
TEST_F(filter, write_retry_runs_only_when_there_is_room_for_it)
{
	const size_t total = 64 * 1024;
	char *src = malloc(total), *dst = malloc(total);
	size_t got = 0;
	struct iocb cb;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, dst);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ap_fill(src, total, 0);
	io_prep_pwrite(&cb, self->fds[1], src, total, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	while (got < total) {
		ssize_t n = read(self->fds[0], dst + got,
				 total - got < 3000 ? total - got : 3000);

		ASSERT_LT(0, n);
		got += n;
	}
	EXPECT_EQ(-1, ap_check(dst, total, 0));
	EXPECT_EQ((long)total, ap_reap1(self->ctx, NULL));
	AP_LOG_STATS(self->fds[0], "after");
	if (self->direct) {
		EXPECT_EQ(0, AP_STAT(self->fds[0], retries));
	} else if (self->filtered) {
		EXPECT_EQ(0, AP_STAT(self->fds[0], futile_retries));
	} else {
		EXPECT_LT(0, AP_STAT(self->fds[0], futile_retries));
	}
	AP_EXPECT_IDLE(self->fds[0]);
}

/* The filter is per channel and can be read back. */
TEST_F(filter, filter_is_per_channel)
{
	int other[2];

	EXPECT_EQ((int)variant->filter, aiopipe_get_filter(self->fds[0]));
	EXPECT_EQ((int)variant->filter, aiopipe_get_filter(self->fds[1]));
	ASSERT_EQ(0, ap_pair(other, 0, 0, variant->engine,
			     !variant->filter));
	EXPECT_EQ((int)!variant->filter, aiopipe_get_filter(other[0]));
	EXPECT_EQ((int)variant->filter, aiopipe_get_filter(self->fds[0]));
	EXPECT_EQ(-EINVAL, aiopipe_set_filter(other[0], 2));
	backend_close(other);
}

TEST_HARNESS_MAIN
