// SPDX-License-Identifier: GPL-2.0
/*
 * A retry whose copy faults on a page that is never served stalls nobody
 * but its own request (docs/async.md, "Retry").
 *
 * Process P queues a libaio read (retry engine) into a page registered
 * with userfaultfd, for missing pages, kernel faults included, and hands the
 * userfaultfd to the test, which never answers it.  The test writes one
 * byte: P's read is kicked, and the worker's copy into P's page waits on the
 * userfaultfd, which reports the fault.  While the fault is outstanding,
 * every other user of the channel goes on within a second: a non-blocking
 * write, a blocking write, a blocking read (it returns, or a signal
 * interrupts it), a capacity change, the close of the write end.  P itself
 * can cancel the stuck read (it completes with -ECANCELED at once) and dies
 * of SIGKILL at once.
 *
 * When one of these does not return within a second, the test says so and
 * then closes the userfaultfd, which resolves the fault, so every blocked
 * call and the worker finish and the test ends.
 */
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define CAP		4096
#define READ_LEN	100
#define WITHIN_MS	1000	/* "does not stall": returns within this */
#define SIGNAL_MS	500	/* a blocking read is signalled after this */
#define SETUP_MS	5000	/* setup guard */

/* P's answer to 'C' (io_cancel, then io_getevents for at most 1 s). */
struct cancel_report {
	int cancel_ret;		/* io_cancel's return value */
	int nevents;		/* io_getevents within WITHIN_MS */
	long long res;		/* the event's res */
	long long ms;		/* from io_cancel to the event (or the end) */
};

FIXTURE(fault) {
	int fds[2];
	int uffd;
	int sock[2];	/* P -> test: the userfaultfd (SCM_RIGHTS) */
	int cmd[2];	/* test -> P: 'C' = cancel your read */
	int rep[2];	/* P -> test: 'R' when queued, then reports */
	pid_t pid;
};

static int send_fd(int sock, int fd)
{
	char c = 0, ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &c, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &mh, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char c, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &mh, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * P: a fresh page registered with userfaultfd, the userfaultfd to the test
 * (P keeps no copy of it, nor of the write end), a PREAD of READ_LEN bytes
 * into the page queued on the empty ring; 'R'.  Then serve 'C' until the
 * command pipe closes.  Exit codes > 0 are setup failures.
 */
static void child_p(int rfd, int sock, int cmd, int rep)
{
	io_context_t ctx = 0;
	struct iocb cb, *cbp = &cb;
	char *page, c;
	int uffd = ap_uffd_page(&page);

	if (uffd < 0)
		_exit(20);
	if (send_fd(sock, uffd))
		_exit(21);
	close(uffd);
	if (io_setup(4, &ctx))
		_exit(22);
	io_prep_pread(&cb, rfd, page, READ_LEN, 0);
	if (io_submit(ctx, 1, &cbp) != 1)
		_exit(23);
	ap_notify(rep, 'R');
	while (read(cmd, &c, 1) == 1) {
		struct cancel_report r = { 0 };
		struct io_event ev = { 0 };
		int64_t t0 = ap_now_ns();

		if (c != 'C')
			_exit(24);
		r.cancel_ret = io_cancel(ctx, &cb, &ev);
		r.nevents = ap_getevents(ctx, 1, 1, &ev, WITHIN_MS);
		r.res = r.nevents == 1 ? (long long)ev.res : 0;
		r.ms = ap_ms_since(t0);
		if (write(rep, &r, sizeof(r)) != sizeof(r))
			_exit(25);
	}
	for (;;)	/* the test closed its end: wait for SIGKILL */
		pause();
}

static void on_sigusr1(int sig)
{
}

FIXTURE_SETUP(fault)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };	/* no SA_RESTART */
	char c = 0;
	int probe;

	self->fds[0] = self->fds[1] = self->uffd = -1;
	self->sock[0] = self->sock[1] = -1;
	self->cmd[0] = self->cmd[1] = self->rep[0] = self->rep[1] = -1;
	self->pid = -1;

	probe = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (probe < 0 && (errno == ENOSYS || errno == EPERM))
		SKIP(return, "no userfaultfd for kernel faults here (%s)",
		     strerror(errno));
	ASSERT_LE(0, probe) TH_LOG("userfaultfd: %s", strerror(errno));
	close(probe);
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));

	ASSERT_EQ(0, ap_pair(self->fds, 0, CAP, AIOPIPE_ENGINE_RETRY,
			     AIOPIPE_FILTER_ON));
	ASSERT_EQ(CAP, aiopipe_get_capacity(self->fds[0]));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, self->sock));
	ASSERT_EQ(0, pipe(self->cmd));
	ASSERT_EQ(0, pipe(self->rep));

	self->pid = ap_fork();
	ASSERT_LE(0, self->pid);
	if (self->pid == 0) {
		close(self->fds[1]);
		close(self->sock[0]);
		close(self->cmd[1]);
		close(self->rep[0]);
		child_p(self->fds[0], self->sock[1], self->cmd[0],
			self->rep[1]);
	}
	close(self->sock[1]);
	close(self->cmd[0]);
	close(self->rep[1]);
	self->sock[1] = self->cmd[0] = self->rep[1] = -1;

	self->uffd = recv_fd(self->sock[0]);
	ASSERT_LE(0, self->uffd) TH_LOG("P did not send its userfaultfd");
	ASSERT_EQ(1, ap_poll1(self->rep[0], POLLIN, SETUP_MS));
	ASSERT_EQ(1, read(self->rep[0], &c, 1));
	ASSERT_EQ('R', c);
	ASSERT_EQ(1, AP_STAT(self->fds[0], pending_reads));

	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_EQ(1, ap_poll1(self->uffd, POLLIN, SETUP_MS))
		TH_LOG("the retry never faulted on the registered page");
}

/* Resolve the fault first: everything blocked behind it then finishes. */
static void resolve_fault(FIXTURE_DATA(fault) *self)
{
	if (self->uffd >= 0)
		close(self->uffd);
	self->uffd = -1;
}

FIXTURE_TEARDOWN(fault)
{
	int status;

	resolve_fault(self);
	if (self->pid > 0) {
		kill(self->pid, SIGKILL);
		ap_wait_child(self->pid, AP_LONG_MS, &status);
	}
	backend_close(self->fds);
	backend_close(self->sock);
	backend_close(self->cmd);
	backend_close(self->rep);
}

/* One call made by a thread of the test while the fault is outstanding. */
enum op_kind { OP_WRITE, OP_READ, OP_SET_CAPACITY, OP_CLOSE };

struct op {
	enum op_kind kind;
	int fd;
	long ret;
	int err;
	int efd;	/* eventfd: signalled when the call returned */
	pthread_t th;
	int64_t t0;
	long long ms;	/* how long the call took */
};

static void *op_thread(void *arg)
{
	struct op *op = arg;
	uint64_t one = 1;
	char c = 'y';

	switch (op->kind) {
	case OP_WRITE:
		op->ret = write(op->fd, &c, 1);
		break;
	case OP_READ:
		op->ret = read(op->fd, &c, 1);
		break;
	case OP_SET_CAPACITY:	/* AIOPIPE_IOC_SET_CAPACITY */
		op->ret = aiopipe_set_capacity(op->fd, 2 * CAP);
		if (op->ret < 0) {
			errno = (int)-op->ret;
			op->ret = -1;
		}
		break;
	case OP_CLOSE:
		op->ret = close(op->fd);
		break;
	}
	op->err = op->ret < 0 ? errno : 0;
	op->ms = ap_ms_since(op->t0);
	if (write(op->efd, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

static int op_start(struct op *op, enum op_kind kind, int fd)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->fd = fd;
	op->efd = eventfd(0, EFD_CLOEXEC);
	if (op->efd < 0)
		return -errno;
	op->t0 = ap_now_ns();
	return -pthread_create(&op->th, NULL, op_thread, op);
}

/* True if the call has returned by @ms after it started. */
static bool op_returned_by(struct op *op, int ms)
{
	int left = ms - (int)ap_ms_since(op->t0);

	return ap_poll1(op->efd, POLLIN, left > 0 ? left : 0) == 1;
}

/*
 * The failure path: the call is still blocked.  Resolve the fault, nudge
 * the thread out of any interruptible wait, and collect it (bounded).
 */
static void op_unblock(FIXTURE_DATA(fault) *self, struct op *op)
{
	resolve_fault(self);
	for (int i = 0; i < AP_LONG_MS / 100; i++) {
		pthread_kill(op->th, SIGUSR1);
		if (ap_poll1(op->efd, POLLIN, 100) == 1)
			return;
	}
}

static void op_end(struct op *op)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 1;
	if (pthread_timedjoin_np(op->th, NULL, &ts))
		pthread_detach(op->th);
	close(op->efd);
}

/* Is the fault still outstanding (nobody resolved it)? */
static bool fault_pending(FIXTURE_DATA(fault) *self)
{
	return self->uffd >= 0 && ap_poll1(self->uffd, POLLIN, 0) == 1;
}

/*
 *   P                          test                        kworker
 *   uffd page; uffd -> test
 *   PREAD 100 into the page
 *   (queued, ring empty) -->
 *                              write("x") ---------------> kicked: copy
 *                                                          into P's page:
 *                                                          faults, waits on
 *                                                          the uffd
 *                              poll(uffd): the fault is reported
 *                              thread T: write(1), O_NONBLOCK
 *                              T returns 1 within 1 s
 */
TEST_F(fault, nonblocking_write_is_not_stalled)
{
	struct op op;
	bool in_time;

	if (_metadata->skip)
		return;
	ASSERT_EQ(0, fcntl(self->fds[1], F_SETFL, O_NONBLOCK));
	ASSERT_EQ(0, op_start(&op, OP_WRITE, self->fds[1]));
	in_time = op_returned_by(&op, WITHIN_MS);
	if (!in_time)
		op_unblock(self, &op);
	op_end(&op);
	EXPECT_TRUE(in_time)
		TH_LOG("a non-blocking write took %lld ms: it waited for the faulting retry",
		       op.ms);
	EXPECT_EQ(1, op.ret) TH_LOG("write: %s", strerror(op.err));
	EXPECT_TRUE(!in_time || fault_pending(self));
}

/* The same with a blocking write (the ring has room: 1 of 4096 used). */
TEST_F(fault, blocking_write_is_not_stalled)
{
	struct op op;
	bool in_time;

	if (_metadata->skip)
		return;
	ASSERT_EQ(0, op_start(&op, OP_WRITE, self->fds[1]));
	in_time = op_returned_by(&op, WITHIN_MS);
	if (!in_time)
		op_unblock(self, &op);
	op_end(&op);
	EXPECT_TRUE(in_time)
		TH_LOG("a blocking write took %lld ms: it waited for the faulting retry",
		       op.ms);
	EXPECT_EQ(1, op.ret) TH_LOG("write: %s", strerror(op.err));
	EXPECT_TRUE(!in_time || fault_pending(self));
}

/*
 *   (setup as above: P's read waits in the fault)
 *   test: thread T: read(1) on the read end
 *   after 500 ms, if T has not returned: SIGUSR1 to T (no SA_RESTART)
 *   by 1 s T has returned: with a byte, or -1 EINTR (it waited
 *   interruptibly); a T still blocked sleeps where no signal reaches it
 */
TEST_F(fault, blocking_read_returns_or_is_interruptible)
{
	bool in_time, signalled = false;
	struct op op;

	if (_metadata->skip)
		return;
	ASSERT_EQ(0, op_start(&op, OP_READ, self->fds[0]));
	in_time = op_returned_by(&op, SIGNAL_MS);
	if (!in_time) {
		signalled = true;
		pthread_kill(op.th, SIGUSR1);
		in_time = op_returned_by(&op, WITHIN_MS);
	}
	if (!in_time)
		op_unblock(self, &op);
	op_end(&op);
	EXPECT_TRUE(in_time)
		TH_LOG("a blocking read took %lld ms%s: it waited for the faulting retry",
		       op.ms, signalled ? " despite a signal at 500 ms" : "");
	EXPECT_TRUE(op.ret == 1 || (op.ret == -1 && op.err == EINTR))
		TH_LOG("read: %ld (%s)", op.ret, strerror(op.err));
	TH_LOG("the read %s after %lld ms", op.ret == 1 ? "got a byte" :
	       op.err == EINTR ? "was interrupted" : "failed", op.ms);
}

/* AIOPIPE_IOC_SET_CAPACITY 4096 -> 8192 returns 8192 within 1 s. */
TEST_F(fault, set_capacity_is_not_stalled)
{
	struct op op;
	bool in_time;

	if (_metadata->skip)
		return;
	ASSERT_EQ(0, op_start(&op, OP_SET_CAPACITY, self->fds[1]));
	in_time = op_returned_by(&op, WITHIN_MS);
	if (!in_time)
		op_unblock(self, &op);
	op_end(&op);
	EXPECT_TRUE(in_time)
		TH_LOG("AIOPIPE_IOC_SET_CAPACITY took %lld ms: it waited for the faulting retry",
		       op.ms);
	EXPECT_EQ(2 * CAP, op.ret) TH_LOG("ioctl: %s", strerror(op.err));
	EXPECT_TRUE(!in_time || fault_pending(self));
}

/*
 * close() of the only write end (P closed its copy at fork) returns within
 * 1 s: ->release runs before close() goes back to user space.
 */
TEST_F(fault, close_of_the_write_end_is_not_stalled)
{
	int fd = self->fds[1];
	struct op op;
	bool in_time;

	if (_metadata->skip)
		return;
	self->fds[1] = -1;
	ASSERT_EQ(0, op_start(&op, OP_CLOSE, fd));
	in_time = op_returned_by(&op, WITHIN_MS);
	if (!in_time)
		op_unblock(self, &op);
	op_end(&op);
	EXPECT_TRUE(in_time)
		TH_LOG("close() of the write end took %lld ms: %s",
		       op.ms, "->release waited for the faulting retry");
	EXPECT_EQ(0, op.ret) TH_LOG("close: %s", strerror(op.err));
	EXPECT_TRUE(!in_time || fault_pending(self));
}

/*
 *   P                          test
 *   (its read waits in the fault)
 *                       <----- 'C'
 *   io_cancel(read)
 *   io_getevents (1 s): -ECANCELED
 *   report ------------------> nevents 1, res -ECANCELED, < 1 s
 */
TEST_F(fault, submitter_cancels_the_stuck_read)
{
	struct cancel_report r = { 0 };
	bool got;

	if (_metadata->skip)
		return;
	ap_notify(self->cmd[1], 'C');
	got = ap_poll1(self->rep[0], POLLIN, 2 * WITHIN_MS) == 1 &&
	      read(self->rep[0], &r, sizeof(r)) == sizeof(r);
	ASSERT_TRUE(got) TH_LOG("P did not report its io_cancel");
	TH_LOG("io_cancel: %d; %d event(s) after %lld ms, res %lld",
	       r.cancel_ret, r.nevents, r.ms, r.res);
	EXPECT_EQ(1, r.nevents)
		TH_LOG("no completion within 1 s of io_cancel: the read stays stuck in the fault");
	if (r.nevents == 1) {
		EXPECT_EQ(-ECANCELED, r.res);
		EXPECT_TRUE(fault_pending(self))
			TH_LOG("the fault was resolved before the cancel completed");
	}
}

/*
 *   test: kill(P, SIGKILL); P is reaped within 1 s (pidfd), though the
 *   worker may still hold its mm; the fault is resolved only afterwards
 */
TEST_F(fault, submitter_dies_of_sigkill_at_once)
{
	int pfd, status = 0;
	bool in_time;
	int64_t t0;

	if (_metadata->skip)
		return;
	pfd = (int)syscall(SYS_pidfd_open, self->pid, 0);
	ASSERT_LE(0, pfd);
	t0 = ap_now_ns();
	ASSERT_EQ(0, kill(self->pid, SIGKILL));
	in_time = ap_poll1(pfd, POLLIN, WITHIN_MS) == 1;
	close(pfd);
	if (!in_time)
		resolve_fault(self);
	EXPECT_TRUE(in_time)
		TH_LOG("P was not reaped within 1 s of SIGKILL");
	ASSERT_EQ(self->pid, waitpid(self->pid, &status, 0));
	self->pid = -1;
	TH_LOG("reaped %lld ms after SIGKILL", (long long)ap_ms_since(t0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("status 0x%x", status);
}

TEST_HARNESS_MAIN
