// SPDX-License-Identifier: GPL-2.0
/*
 * The drain barrier, "AIO fsync" given a meaning for pipes: fsync() on a
 * write end returns once every byte put into the pipe before the call has
 * been read (EPIPE if the readers go away first), and AIOPIPE_POLL_DRAINED
 * (EPOLLWRBAND) on the write end reports "drained" to poll, epoll and aio
 * poll, so the wait can be asynchronous and cancelled.  IOCB_CMD_FSYNC runs
 * ->fsync in a kworker no signal reaches, so it is refused (EOPNOTSUPP)
 * rather than risking a hung exit.
 */
#include <errno.h>
#include <libaio.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "backend.h"

#define SETTLE_MS	200	/* "still blocked" guard: a failure can only be late */
#define DONE_MS		10000	/* bound for something that must happen */

struct fsync_call {
	int fd;
	int done;	/* eventfd, signalled when fsync() returned */
	int ret;
	int err;
};

static void *fsync_thread(void *arg)
{
	struct fsync_call *c = arg;

	c->ret = fsync(c->fd);
	c->err = errno;
	eventfd_write(c->done, 1);
	return NULL;
}

static bool readable_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static short poll_mask(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

FIXTURE(drain) {
	int fds[2];
	struct fsync_call call;
	pthread_t thread;
};

FIXTURE_VARIANT(drain) {
	enum backend backend;
};

FIXTURE_VARIANT_ADD(drain, retry) {
	.backend = BACKEND_RETRY,
};

FIXTURE_VARIANT_ADD(drain, direct) {
	.backend = BACKEND_DIRECT,
};

FIXTURE_SETUP(drain)
{
	ASSERT_EQ(0, backend_pair(variant->backend, self->fds, 0));
	self->call.fd = self->fds[1];
	self->call.done = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, self->call.done);
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(drain)
{
	backend_close(self->fds);
	close(self->call.done);
}

/*
 *   writer                     reader
 *   write(100)
 *   fsync() ...blocks...
 *                              read(100)
 *   fsync() == 0
 */
TEST_F(drain, fsync_waits_until_every_byte_is_read)
{
	char buf[100] = { 0 };

	ASSERT_EQ(100, write(self->fds[1], buf, sizeof(buf)));
	ASSERT_EQ(0, pthread_create(&self->thread, NULL, fsync_thread,
				    &self->call));
	EXPECT_FALSE(readable_within(self->call.done, SETTLE_MS))
		TH_LOG("fsync returned before the bytes were read");
	ASSERT_EQ(60, read(self->fds[0], buf, 60));
	EXPECT_FALSE(readable_within(self->call.done, SETTLE_MS))
		TH_LOG("fsync returned with 40 bytes still unread");
	ASSERT_EQ(40, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_TRUE(readable_within(self->call.done, DONE_MS));
	pthread_join(self->thread, NULL);
	EXPECT_EQ(0, self->call.ret);
}

TEST_F(drain, fsync_on_an_empty_pipe_returns_at_once)
{
	EXPECT_EQ(0, fsync(self->fds[1]));
	EXPECT_EQ(0, fdatasync(self->fds[1]));
}

TEST_F(drain, fsync_fails_with_epipe_when_the_readers_go)
{
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	ASSERT_EQ(0, pthread_create(&self->thread, NULL, fsync_thread,
				    &self->call));
	EXPECT_FALSE(readable_within(self->call.done, SETTLE_MS));
	close(self->fds[0]);
	self->fds[0] = -1;
	EXPECT_TRUE(readable_within(self->call.done, DONE_MS));
	pthread_join(self->thread, NULL);
	EXPECT_EQ(-1, self->call.ret);
	EXPECT_EQ(EPIPE, self->call.err);
}

TEST_F(drain, fsync_on_the_read_end_is_einval)
{
	EXPECT_EQ(-1, fsync(self->fds[0]));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(drain, poll_reports_drained_only_when_empty)
{
	char buf[8];

	EXPECT_EQ(POLLWRBAND, poll_mask(self->fds[1], POLLWRBAND));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(0, poll_mask(self->fds[1], POLLWRBAND));
	ASSERT_EQ(3, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(POLLWRBAND, poll_mask(self->fds[1], POLLWRBAND));
}

TEST_F(drain, edge_triggered_epoll_reports_the_drain)
{
	struct epoll_event ev = { .events = EPOLLWRBAND | EPOLLET };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[8];

	ASSERT_LE(0, ep);
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->fds[1], &ev));
	EXPECT_EQ(0, epoll_wait(ep, &ev, 1, 0));
	ASSERT_EQ(3, read(self->fds[0], buf, sizeof(buf)));
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, DONE_MS));
	EXPECT_EQ((uint32_t)EPOLLWRBAND, ev.events & EPOLLWRBAND);
	close(ep);
}

/*
 * Interest in the drain added later, by EPOLL_CTL_MOD on an entry that
 * already waits for EPOLLOUT: the read that empties the pipe must still
 * wake it (the module wakes drain waiters only once somebody asked).
 */
TEST_F(drain, epoll_mod_to_drained_is_woken_by_the_read)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[8];

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->fds[1], &ev));
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, 0));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	ev.events = EPOLLWRBAND | EPOLLET;
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_MOD, self->fds[1], &ev));
	EXPECT_EQ(0, epoll_wait(ep, &ev, 1, 0));
	ASSERT_EQ(3, read(self->fds[0], buf, sizeof(buf)));
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, DONE_MS));
	EXPECT_EQ((uint32_t)EPOLLWRBAND, ev.events & EPOLLWRBAND);
	close(ep);
}

TEST_F(drain, aio_poll_completes_on_drain)
{
	io_context_t ctx = 0;
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	struct timespec bound = { .tv_sec = DONE_MS / 1000 };
	char buf[8];

	ASSERT_EQ(0, io_setup(4, &ctx));
	ASSERT_EQ(2, write(self->fds[1], "ab", 2));
	io_prep_poll(&cb, self->fds[1], POLLWRBAND);
	ASSERT_EQ(1, io_submit(ctx, 1, cbs));
	EXPECT_EQ(0, io_getevents(ctx, 0, 1, &ev, &(struct timespec){ 0 }));
	ASSERT_EQ(2, read(self->fds[0], buf, sizeof(buf)));
	ASSERT_EQ(1, io_getevents(ctx, 1, 1, &ev, &bound));
	EXPECT_EQ(POLLWRBAND, (short)ev.res & POLLWRBAND);
	io_destroy(ctx);
}

TEST_F(drain, aio_poll_for_drain_can_be_cancelled)
{
	io_context_t ctx = 0;
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	struct timespec bound = { .tv_sec = DONE_MS / 1000 };

	ASSERT_EQ(0, io_setup(4, &ctx));
	ASSERT_EQ(2, write(self->fds[1], "ab", 2));
	io_prep_poll(&cb, self->fds[1], POLLWRBAND);
	ASSERT_EQ(1, io_submit(ctx, 1, cbs));
	EXPECT_EQ(-EINPROGRESS, io_cancel(ctx, &cb, &ev));
	ASSERT_EQ(1, io_getevents(ctx, 1, 1, &ev, &bound));
	EXPECT_EQ(0, (short)ev.res & POLLWRBAND) TH_LOG("cancelled poll reported a drain");
	io_destroy(ctx);
}

TEST_F(drain, aio_fsync_is_refused)
{
	io_context_t ctx = 0;
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	struct timespec bound = { .tv_sec = DONE_MS / 1000 };

	ASSERT_EQ(0, io_setup(4, &ctx));
	ASSERT_EQ(2, write(self->fds[1], "ab", 2));
	io_prep_fsync(&cb, self->fds[1]);
	ASSERT_EQ(1, io_submit(ctx, 1, cbs));
	ASSERT_EQ(1, io_getevents(ctx, 1, 1, &ev, &bound));
	EXPECT_EQ(-EOPNOTSUPP, (long)ev.res);
	io_destroy(ctx);
}

/* Wait for @pid for at most DONE_MS; true if it was reaped. */
static bool reaped_within(pid_t pid, int *status)
{
	for (int waited = 0; waited < DONE_MS; waited += 10) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 *   child: write, aio poll for drain pending, thread blocked in fsync,
 *          tell parent, then wait forever
 *   parent: kill -9 child; it must be reaped promptly
 */
TEST_F(drain, exit_with_drain_waits_pending_is_prompt)
{
	int ready[2], status;
	pid_t pid;

	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		io_context_t ctx = 0;
		struct iocb cb, *cbs[1] = { &cb };

		if (write(self->fds[1], "xyz", 3) != 3 || io_setup(4, &ctx))
			_exit(1);
		io_prep_poll(&cb, self->fds[1], POLLWRBAND);
		if (io_submit(ctx, 1, cbs) != 1 ||
		    pthread_create(&self->thread, NULL, fsync_thread,
				   &self->call))
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	ASSERT_TRUE(readable_within(ready[0], DONE_MS));
	kill(pid, SIGKILL);
	EXPECT_TRUE(reaped_within(pid, &status));
	EXPECT_TRUE(WIFSIGNALED(status));
	close(ready[0]);
}

TEST_HARNESS_MAIN
