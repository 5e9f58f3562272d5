// SPDX-License-Identifier: GPL-2.0
/*
 * poll(2) and select(2) masks, side by side on a kernel pipe and an aiopipe
 * pair: the masks are pipe_poll()'s (EPOLLIN|EPOLLRDNORM with data,
 * EPOLLOUT|EPOLLWRNORM with room, EPOLLHUP on the read end once the last
 * writer left, EPOLLERR on the write end once the last reader left), and
 * a blocked poll/select wakes for each of those transitions.
 *
 * Documented differences (docs/semantics.md), asserted here:
 *  - the write end of an aiopipe reports POLLWRBAND (AIOPIPE_POLL_DRAINED)
 *    when every byte written has been read; a pipe never does;
 *  - EPOLLOUT means "PIPE_BUF bytes free" on aiopipe and "a page slot free"
 *    on a pipe, which differ only when small writes used up a pipe's slots.
 */
#include <sys/ioctl.h>
#include <sys/select.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

#define CAP_DEFAULT	65536
#define IN_BITS		(POLLIN | POLLRDNORM)
#define OUT_BITS	(POLLOUT | POLLWRNORM)

FIXTURE(poll) {
	int fds[2];
};

FIXTURE_VARIANT(poll) {
	enum backend backend;
};

BACKEND_VARIANTS(poll);

FIXTURE_SETUP(poll)
{
	int ret = backend_pair(variant->backend, self->fds, 0);

	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
	ASSERT_EQ(CAP_DEFAULT, backend_capacity(variant->backend, self->fds[0]));
}

FIXTURE_TEARDOWN(poll)
{
	backend_close(self->fds);
}

/* select() without waiting: bit 0 readable, 1 writable, 2 exceptional. */
static int select_bits(int fd)
{
	struct timeval tv = { 0, 0 };
	fd_set r, w, x;
	int bits = 0;

	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	FD_SET(fd, &r);
	FD_SET(fd, &w);
	FD_SET(fd, &x);
	if (select(fd + 1, &r, &w, &x, &tv) < 0)
		return -1;
	if (FD_ISSET(fd, &r))
		bits |= 1;
	if (FD_ISSET(fd, &w))
		bits |= 2;
	if (FD_ISSET(fd, &x))
		bits |= 4;
	return bits;
}

TEST_F(poll, empty_pipe_read_end_reports_nothing)
{
	EXPECT_EQ(0, pt_revents(self->fds[0], PT_POLL_ALL));
}

TEST_F(poll, empty_pipe_write_end_reports_out_and_wrnorm)
{
	EXPECT_EQ(OUT_BITS, pt_revents(self->fds[1], PT_POLL_ALL));
}

TEST_F(poll, data_makes_the_read_end_report_in_and_rdnorm)
{
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(IN_BITS, pt_revents(self->fds[0], PT_POLL_ALL));
	EXPECT_EQ(OUT_BITS, pt_revents(self->fds[1], PT_POLL_ALL));
}

TEST_F(poll, read_end_never_reports_out_and_write_end_never_in)
{
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(0, pt_revents(self->fds[0], POLLOUT | POLLWRNORM));
	EXPECT_EQ(0, pt_revents(self->fds[1], POLLIN | POLLRDNORM));
}

TEST_F(poll, full_pipe_write_end_reports_nothing)
{
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	EXPECT_EQ(0, pt_revents(self->fds[1], PT_POLL_ALL));
	EXPECT_EQ(IN_BITS, pt_revents(self->fds[0], PT_POLL_ALL));
}

TEST_F(poll, reading_a_page_of_a_full_pipe_reports_out_again)
{
	char buf[PIPE_BUF];

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(OUT_BITS, pt_revents(self->fds[1], PT_POLL_ALL));
}

TEST_F(poll, reading_less_than_a_page_of_a_full_pipe_keeps_it_unwritable)
{
	char buf[100];

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(100, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, pt_revents(self->fds[1], PT_POLL_ALL));
}

TEST_F(poll, last_writer_gone_read_end_reports_hup)
{
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(POLLHUP, pt_revents(self->fds[0], PT_POLL_ALL));
}

TEST_F(poll, last_writer_gone_with_data_reports_in_and_hup)
{
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(IN_BITS | POLLHUP, pt_revents(self->fds[0], PT_POLL_ALL));
}

TEST_F(poll, no_hup_while_a_duplicate_writer_lives)
{
	int dup_wr = dup(self->fds[1]);

	ASSERT_LE(0, dup_wr);
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(0, pt_revents(self->fds[0], PT_POLL_ALL));
	close(dup_wr);
	EXPECT_EQ(POLLHUP, pt_revents(self->fds[0], PT_POLL_ALL));
}

TEST_F(poll, last_reader_gone_write_end_reports_err_and_out)
{
	pt_close_end(&self->fds[0]);
	EXPECT_EQ(OUT_BITS | POLLERR, pt_revents(self->fds[1], PT_POLL_ALL));
}

TEST_F(poll, last_reader_gone_from_a_full_pipe_reports_err_only)
{
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	pt_close_end(&self->fds[0]);
	EXPECT_EQ(POLLERR, pt_revents(self->fds[1], PT_POLL_ALL));
}

TEST_F(poll, hup_and_err_are_reported_even_when_not_asked_for)
{
	int fds[2];

	ASSERT_EQ(0, backend_pair(variant->backend, fds, 0));
	pt_close_end(&self->fds[1]);
	pt_close_end(&fds[0]);
	EXPECT_EQ(POLLHUP, pt_revents(self->fds[0], 0));
	EXPECT_EQ(POLLERR, pt_revents(fds[1], 0));
	backend_close(fds);
}

TEST_F(poll, select_sets_follow_the_poll_masks)
{
	int fds[2];

	/* empty: write end writable only */
	EXPECT_EQ(0, select_bits(self->fds[0]));
	EXPECT_EQ(2, select_bits(self->fds[1]));
	/* data: read end readable */
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(1, select_bits(self->fds[0]));
	/* writer gone: HUP makes the read end readable even when empty */
	ASSERT_EQ(1, read(self->fds[0], (char[1]){ 0 }, 1));
	pt_close_end(&self->fds[1]);
	EXPECT_EQ(1, select_bits(self->fds[0]));
	/* full: not writable; reader gone: ERR makes it readable and writable */
	ASSERT_EQ(0, backend_pair(variant->backend, fds, 0));
	ASSERT_EQ(CAP_DEFAULT, pt_fill(fds[1]));
	EXPECT_EQ(0, select_bits(fds[1]));
	pt_close_end(&fds[0]);
	EXPECT_EQ(3, select_bits(fds[1]));
	backend_close(fds);
}

/* ---- blocked poll/select are woken ------------------------------------ */

TEST_F(poll, blocked_poll_wakes_when_data_arrives)
{
	/*
	 *  main                        poller thread
	 *                              ppoll(rd, POLLIN) ... blocks
	 *  sees it blocked
	 *  write(wr, "x") -----------> returns POLLIN|POLLRDNORM
	 */
	struct pt_call c = { .fn = pt_do_poll, .fd = self->fds[0],
			     .arg = POLLIN | POLLRDNORM };

	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_ppoll));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(IN_BITS, c.ret);
}

TEST_F(poll, blocked_poll_wakes_with_hup_when_the_last_writer_closes)
{
	struct pt_call c = { .fn = pt_do_poll, .fd = self->fds[0],
			     .arg = POLLIN };

	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_ppoll));
	pt_close_end(&self->fds[1]);
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(POLLHUP, c.ret);
}

TEST_F(poll, blocked_poll_on_a_full_pipe_wakes_when_a_read_makes_room)
{
	/*
	 *  main                        poller thread
	 *  fill
	 *                              ppoll(wr, POLLOUT) ... blocks
	 *  sees it blocked
	 *  read(rd, PIPE_BUF) -------> returns POLLOUT|POLLWRNORM
	 */
	char buf[PIPE_BUF];
	struct pt_call c = { .fn = pt_do_poll, .fd = self->fds[1],
			     .arg = POLLOUT | POLLWRNORM };

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_ppoll));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(OUT_BITS, c.ret);
}

TEST_F(poll, blocked_poll_on_the_write_end_wakes_with_err_when_the_last_reader_closes)
{
	struct pt_call c = { .fn = pt_do_poll, .fd = self->fds[1],
			     .arg = POLLOUT };

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_ppoll));
	pt_close_end(&self->fds[0]);
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(POLLERR, c.ret);
}

static ssize_t do_select_read(struct pt_call *c)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(c->fd, &r);
	if (select(c->fd + 1, &r, NULL, NULL, NULL) < 0)
		return -1;
	return FD_ISSET(c->fd, &r);
}

TEST_F(poll, blocked_select_wakes_when_data_arrives)
{
	struct pt_call c = { .fn = do_select_read, .fd = self->fds[0] };

	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_wait_blocked2(getpid(), c.tid, SYS_select, SYS_pselect6));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, c.ret);
}

TEST_F(poll, poll_on_many_fds_reports_each_end)
{
	struct pollfd pfd[2] = {
		{ .fd = self->fds[0], .events = PT_POLL_ALL },
		{ .fd = self->fds[1], .events = PT_POLL_ALL },
	};

	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(2, poll(pfd, 2, 0));
	EXPECT_EQ(IN_BITS, pfd[0].revents);
	EXPECT_EQ(OUT_BITS, pfd[1].revents);
}

/* ---- documented differences ---------------------------------------------- */

TEST_F(poll, drained_bit_pollwrband_is_reported_only_by_aiopipe)
{
	/*
	 * AIOPIPE_POLL_DRAINED == POLLWRBAND: every byte written has been
	 * read.  A pipe never reports POLLWRBAND.
	 */
	int drained = backend_is_aiopipe(variant->backend) ? POLLWRBAND : 0;
	char buf[8];

	EXPECT_EQ(AIOPIPE_POLL_DRAINED, POLLWRBAND);
	EXPECT_EQ(OUT_BITS | drained, pt_revents(self->fds[1], PT_POLL_ALL | POLLWRBAND));
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	EXPECT_EQ(OUT_BITS, pt_revents(self->fds[1], PT_POLL_ALL | POLLWRBAND));
	ASSERT_EQ(3, read(self->fds[0], buf, 3));
	EXPECT_EQ(OUT_BITS, pt_revents(self->fds[1], PT_POLL_ALL | POLLWRBAND));
	ASSERT_EQ(2, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(OUT_BITS | drained, pt_revents(self->fds[1], PT_POLL_ALL | POLLWRBAND));
	/* the read end never reports it */
	EXPECT_EQ(0, pt_revents(self->fds[0], PT_POLL_ALL | POLLWRBAND));
}

TEST_F(poll, pollout_needs_pipe_buf_bytes_on_aiopipe_and_a_free_slot_on_a_pipe)
{
	/*
	 * Sixteen 3000-byte writes take a pipe's sixteen page slots (a write
	 * merges into the last page only if it fits there): the pipe is full
	 * with 48000 bytes in it.  An aiopipe counts bytes: 17536 are free.
	 */
	char buf[3000] = { 0 };
	int n = 0;

	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	for (int i = 0; i < 16; i++)
		ASSERT_EQ(3000, write(self->fds[1], buf, sizeof(buf)));
	if (backend_is_aiopipe(variant->backend))
		n = OUT_BITS;
	EXPECT_EQ(n, pt_revents(self->fds[1], PT_POLL_ALL));
	EXPECT_EQ(48000, pt_fionread(self->fds[0]));
}

TEST_HARNESS_MAIN
