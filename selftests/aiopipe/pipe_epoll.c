// SPDX-License-Identifier: GPL-2.0
/*
 * epoll, level- and edge-triggered, side by side on a kernel pipe and an
 * aiopipe pair, including the cases of the kernel's own
 * tools/testing/selftests/filesystems/epoll/epoll_wakeup_test.c carried
 * over from socketpairs to pipes (nested epoll, poll on an epoll fd, several
 * waiters), and the pipe edge cases: a new edge-triggered event for every
 * write, none for a partial read, EPOLLHUP when the last writer closes,
 * EPOLLERR when the last reader closes.
 *
 * Documented difference (docs/semantics.md), asserted here: an aiopipe has
 * ONE wait queue for both directions, so an end registered for both
 * EPOLLIN and EPOLLOUT also gets an edge-triggered event for a transfer in
 * the other direction, which a pipe (two queues) does not give.
 */
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

#define CAP_DEFAULT	65536
#define EP_IN		(EPOLLIN | EPOLLRDNORM)
#define EP_OUT		(EPOLLOUT | EPOLLWRNORM)

FIXTURE(epoll) {
	int fds[2];
	int ep;
};

FIXTURE_VARIANT(epoll) {
	enum backend backend;
};

BACKEND_VARIANTS(epoll);

FIXTURE_SETUP(epoll)
{
	int ret = backend_pair(variant->backend, self->fds, 0);

	self->ep = -1;
	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
	self->ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, self->ep);
}

FIXTURE_TEARDOWN(epoll)
{
	backend_close(self->fds);
	if (self->ep >= 0)
		close(self->ep);
}

static int ep_add(int ep, int fd, unsigned int events, unsigned int data)
{
	struct epoll_event e = { .events = events, .data.u32 = data };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

/* epoll_wait() without blocking: the number of events; *ev gets the first. */
static int ep_poll0(int ep, struct epoll_event *ev)
{
	struct epoll_event dummy;

	return epoll_wait(ep, ev ? ev : &dummy, 1, 0);
}

/* The events of the single ready fd, 0 if none ready, -1 if several. */
static int ep_events(int ep)
{
	struct epoll_event ev[4];
	int n = epoll_wait(ep, ev, 4, 0);

	if (n == 0)
		return 0;
	if (n != 1)
		return -1;
	return (int)ev[0].events;
}

static ssize_t do_epoll_wait(struct pt_call *c)
{
	return epoll_wait(c->fd, c->buf, 1, -1);
}

static bool blocked_in_epoll_wait(pid_t tid)
{
	return pt_wait_blocked2(getpid(), tid, SYS_epoll_wait, SYS_epoll_pwait);
}

/* ---- level-triggered --------------------------------------------------- */

TEST_F(epoll, lt_read_end_reports_in_while_data_remains)
{
	char buf[4];

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN, 0));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(2, write(self->fds[1], "ab", 2));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	ASSERT_EQ(1, read(self->fds[0], buf, 1));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	ASSERT_EQ(1, read(self->fds[0], buf, 1));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, lt_write_end_reports_out_until_full)
{
	char buf[PIPE_BUF];

	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT, 1));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
}

TEST_F(epoll, lt_reports_the_exact_pipe_poll_bits)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLRDNORM |
			    EPOLLPRI | EPOLLRDHUP, 0));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(EP_IN, ep_events(self->ep));
	pt_close_end(&self->fds[1]);
	/* no EPOLLRDHUP on pipes, only EPOLLHUP */
	EXPECT_EQ(EP_IN | EPOLLHUP, ep_events(self->ep));
}

/* ---- edge-triggered ---------------------------------------------------- */

TEST_F(epoll, et_read_end_reports_in_once_per_write)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_second_write_reports_in_again_though_data_was_not_read)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_partial_read_reports_nothing_new)
{
	char buf[10];

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	ASSERT_EQ(100, write(self->fds[1], (char[100]){ 0 }, 100));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	ASSERT_EQ(10, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_read_end_reports_again_after_drain_and_write)
{
	char buf[16];

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	ASSERT_EQ(3, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(3, write(self->fds[1], "def", 3));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
}

TEST_F(epoll, et_write_end_reports_out_once)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 1));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_write_end_reports_out_when_a_full_pipe_gets_room)
{
	char buf[PIPE_BUF];

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 1));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(100, read(self->fds[0], buf, 100));
	/* a read that frees less than a page of a full pipe: no room yet */
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_write_end_reports_nothing_for_reads_of_a_pipe_with_room)
{
	char buf[16];

	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 1));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	ASSERT_EQ(10, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_write_end_interested_in_out_only_ignores_writes)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 1));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_read_end_interested_in_in_only_ignores_room)
{
	char buf[PIPE_BUF];

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, ep_events(self->ep));
}

/* ---- hangup and error -------------------------------------------------- */

TEST_F(epoll, et_hup_when_the_last_writer_closes)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(EPOLLIN | EPOLLHUP, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, lt_hup_is_reported_without_interest_in_any_event)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], 0, 0));
	EXPECT_EQ(0, ep_events(self->ep));
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(EPOLLHUP, ep_events(self->ep));
	EXPECT_EQ(EPOLLHUP, ep_events(self->ep));
}

TEST_F(epoll, et_no_hup_while_a_duplicate_writer_lives)
{
	int dup_wr = dup(self->fds[1]);

	ASSERT_LE(0, dup_wr);
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(0, ep_events(self->ep));
	close(dup_wr);
	EXPECT_EQ(EPOLLHUP, ep_events(self->ep));
}

TEST_F(epoll, et_err_when_the_last_reader_closes)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 1));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
	pt_close_end(&self->fds[0]);
	EXPECT_EQ(EPOLLOUT | EPOLLERR, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, et_err_is_reported_without_interest_in_any_event)
{
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLET, 1));
	EXPECT_EQ(0, ep_events(self->ep));
	pt_close_end(&self->fds[0]);
	EXPECT_EQ(EPOLLERR, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
}

TEST_F(epoll, both_ends_in_one_set_report_separately)
{
	struct epoll_event ev[4];
	int n, seen_rd = 0, seen_wr = 0;

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN, 10));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT, 11));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	n = epoll_wait(self->ep, ev, 4, 0);
	EXPECT_EQ(2, n);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u32 == 10)
			seen_rd = ev[i].events;
		else if (ev[i].data.u32 == 11)
			seen_wr = ev[i].events;
	}
	EXPECT_EQ(EPOLLIN, seen_rd);
	EXPECT_EQ(EPOLLOUT, seen_wr);
}

TEST_F(epoll, oneshot_reports_once_until_rearmed)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT };

	ASSERT_EQ(0, epoll_ctl(self->ep, EPOLL_CTL_ADD, self->fds[0], &e));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(1, write(self->fds[1], "y", 1));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(0, epoll_ctl(self->ep, EPOLL_CTL_MOD, self->fds[0], &e));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
}

/* ---- epoll_wakeup_test topologies ---------------------------------------- */

/*
 *          t0
 *           | (ew)
 *          e0
 *           | (outer)
 *          e1
 *           | (inner)
 *          rd
 * Expected counts of two successive epoll_wait(e0, 0) after one write:
 * epoll_wakeup_test epoll17..epoll20.
 */
static void nested(struct __test_metadata *_metadata, int fds[2],
		   unsigned int inner, unsigned int outer, int first, int second)
{
	int e0 = epoll_create1(0), e1 = epoll_create1(0);

	ASSERT_LE(0, e0);
	ASSERT_LE(0, e1);
	ASSERT_EQ(0, ep_add(e1, fds[0], EPOLLIN | inner, 0));
	ASSERT_EQ(0, ep_add(e0, e1, EPOLLIN | outer, 0));
	EXPECT_EQ(0, ep_poll0(e0, NULL));
	ASSERT_EQ(1, write(fds[1], "w", 1));
	EXPECT_EQ(first, ep_poll0(e0, NULL));
	EXPECT_EQ(second, ep_poll0(e0, NULL));
	close(e0);
	close(e1);
}

TEST_F(epoll, nested_lt_in_lt_reports_repeatedly)
{
	nested(_metadata, self->fds, 0, 0, 1, 1);
}

TEST_F(epoll, nested_et_in_lt_reports_repeatedly)
{
	nested(_metadata, self->fds, EPOLLET, 0, 1, 1);
}

TEST_F(epoll, nested_lt_in_et_reports_once)
{
	nested(_metadata, self->fds, 0, EPOLLET, 1, 0);
}

TEST_F(epoll, nested_et_in_et_reports_once)
{
	nested(_metadata, self->fds, EPOLLET, EPOLLET, 1, 0);
}

TEST_F(epoll, nested_et_reports_again_after_a_second_write)
{
	int e0 = epoll_create1(0), e1 = epoll_create1(0);

	ASSERT_LE(0, e0);
	ASSERT_LE(0, e1);
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	ASSERT_EQ(0, ep_add(e1, self->fds[0], EPOLLIN | EPOLLET, 0));
	ASSERT_EQ(0, ep_add(e0, e1, EPOLLIN | EPOLLET, 0));
	/* data is already there: one event at insertion, then an edge */
	EXPECT_EQ(1, ep_poll0(e0, NULL));
	EXPECT_EQ(0, ep_poll0(e0, NULL));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	EXPECT_EQ(1, ep_poll0(e0, NULL));
	close(e0);
	close(e1);
}

/*
 *          t0
 *           | (p)
 *          e0
 *           | (lt / et)
 *          rd
 * epoll_wakeup_test epoll5 and epoll6: poll() on the epoll fd.
 */
TEST_F(epoll, poll_on_an_epoll_fd_lt)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN, 0));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	EXPECT_EQ(POLLIN, pt_revents(self->ep, POLLIN));
	EXPECT_EQ(1, ep_poll0(self->ep, NULL));
	EXPECT_EQ(POLLIN, pt_revents(self->ep, POLLIN));
	EXPECT_EQ(1, ep_poll0(self->ep, NULL));
}

TEST_F(epoll, poll_on_an_epoll_fd_et)
{
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	EXPECT_EQ(POLLIN, pt_revents(self->ep, POLLIN));
	EXPECT_EQ(1, ep_poll0(self->ep, NULL));
	EXPECT_EQ(0, pt_revents(self->ep, POLLIN));
	EXPECT_EQ(0, ep_poll0(self->ep, NULL));
}

/* ---- blocked waiters ---------------------------------------------------------- */

TEST_F(epoll, blocked_epoll_wait_wakes_on_write)
{
	/*
	 *  main                        waiter thread
	 *                              epoll_wait(ep: rd ET) ... blocks
	 *  sees it blocked
	 *  write(wr) ----------------> 1 event, EPOLLIN
	 */
	struct epoll_event ev = { 0 };
	struct pt_call c = { .fn = do_epoll_wait, .fd = self->ep, .buf = &ev };

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 7));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(blocked_in_epoll_wait(c.tid));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, c.ret);
	EXPECT_EQ(EPOLLIN, (int)ev.events);
	EXPECT_EQ(7, (int)ev.data.u32);
}

TEST_F(epoll, blocked_epoll_wait_wakes_with_hup_when_the_last_writer_closes)
{
	struct epoll_event ev = { 0 };
	struct pt_call c = { .fn = do_epoll_wait, .fd = self->ep, .buf = &ev };

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 7));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(blocked_in_epoll_wait(c.tid));
	pt_close_end(&self->fds[1]);
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, c.ret);
	EXPECT_EQ(EPOLLHUP, (int)ev.events);
}

TEST_F(epoll, blocked_epoll_wait_wakes_with_err_when_the_last_reader_closes)
{
	struct epoll_event ev = { 0 };
	struct pt_call c = { .fn = do_epoll_wait, .fd = self->ep, .buf = &ev };

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 8));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(blocked_in_epoll_wait(c.tid));
	pt_close_end(&self->fds[0]);
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, c.ret);
	EXPECT_EQ(EPOLLERR, (int)ev.events);
}

TEST_F(epoll, blocked_epoll_wait_on_a_full_pipe_wakes_when_room_appears)
{
	struct epoll_event ev = { 0 };
	struct pt_call c = { .fn = do_epoll_wait, .fd = self->ep, .buf = &ev };
	char buf[PIPE_BUF];

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLOUT | EPOLLET, 8));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(blocked_in_epoll_wait(c.tid));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, c.ret);
	EXPECT_EQ(EPOLLOUT, (int)ev.events);
}

TEST_F(epoll, two_lt_waiters_both_wake_for_one_write)
{
	/*
	 *        t0    t1
	 *     (ew) \  / (ew)
	 *           e0
	 *            | (lt)
	 *           rd
	 * epoll_wakeup_test epoll64: both waiters see the level.
	 */
	struct epoll_event ev[2];
	struct pt_call c[2] = {
		{ .fn = do_epoll_wait, .fd = self->ep, .buf = &ev[0] },
		{ .fn = do_epoll_wait, .fd = self->ep, .buf = &ev[1] },
	};

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN, 0));
	for (int i = 0; i < 2; i++) {
		ASSERT_LT(0, pt_call_start(&c[i]));
		ASSERT_TRUE(blocked_in_epoll_wait(c[i].tid));
	}
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(pt_call_join(&c[i]));
		EXPECT_EQ(1, c[i].ret);
		EXPECT_EQ(EPOLLIN, (int)ev[i].events);
	}
}

TEST_F(epoll, two_et_waiters_take_one_event_per_write)
{
	/*
	 *        t0    t1
	 *     (ew) \  / (ew)
	 *           e0
	 *            | (et)
	 *           rd
	 * One write, one event: one waiter returns, the other stays blocked
	 * until the next write.
	 */
	struct epoll_event ev[2];
	struct pt_call c[2] = {
		{ .fn = do_epoll_wait, .fd = self->ep, .buf = &ev[0] },
		{ .fn = do_epoll_wait, .fd = self->ep, .buf = &ev[1] },
	};
	struct timespec t0;
	int first = -1;

	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLET, 0));
	for (int i = 0; i < 2; i++) {
		c[i].ret = -100;
		ASSERT_LT(0, pt_call_start(&c[i]));
		ASSERT_TRUE(blocked_in_epoll_wait(c[i].tid));
	}
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (first < 0 && pt_elapsed_ms(&t0) < PT_TIMEOUT_MS) {
		for (int i = 0; i < 2; i++)
			if (__atomic_load_n(&c[i].ret, __ATOMIC_SEQ_CST) != -100)
				first = i;
		sched_yield();
	}
	ASSERT_LE(0, first);
	ASSERT_TRUE(pt_call_join(&c[first]));
	EXPECT_EQ(1, c[first].ret);
	/* the other one is (still or again) asleep in epoll_wait, with no event */
	ASSERT_TRUE(blocked_in_epoll_wait(c[!first].tid));
	EXPECT_EQ(-100, __atomic_load_n(&c[!first].ret, __ATOMIC_SEQ_CST));
	ASSERT_EQ(1, write(self->fds[1], "w", 1));
	ASSERT_TRUE(pt_call_join(&c[!first]));
	EXPECT_EQ(1, c[!first].ret);
}

/* ---- documented difference: one wait queue for both directions ------------- */

TEST_F(epoll, et_write_end_interested_in_in_and_out_sees_writes_only_on_aiopipe)
{
	/*
	 * A pipe's write end waits on wr_wait only, so a write (which wakes
	 * rd_wait) gives it no new edge.  An aiopipe end waits on the one
	 * channel queue; the wakeup of a write carries EPOLLIN, which this
	 * registration asked for, so epoll re-polls the end and reports its
	 * (unchanged) EPOLLOUT as a new edge.
	 */
	int edge = backend_is_aiopipe(variant->backend) ? EPOLLOUT : 0;

	ASSERT_EQ(0, ep_add(self->ep, self->fds[1], EPOLLIN | EPOLLOUT | EPOLLET, 1));
	EXPECT_EQ(EPOLLOUT, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(edge, ep_events(self->ep));
}

TEST_F(epoll, et_read_end_interested_in_in_and_out_sees_room_only_on_aiopipe)
{
	char buf[PIPE_BUF];
	int edge = backend_is_aiopipe(variant->backend) ? EPOLLIN : 0;

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, ep_add(self->ep, self->fds[0], EPOLLIN | EPOLLOUT | EPOLLET, 0));
	EXPECT_EQ(EPOLLIN, ep_events(self->ep));
	EXPECT_EQ(0, ep_events(self->ep));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(edge, ep_events(self->ep));
}

TEST_HARNESS_MAIN
