// SPDX-License-Identifier: GPL-2.0
/*
 * A retry whose copy faults on a page that is never served stalls nobody
 * but its own request (docs/async.md, "Retry"), and a user whose fault-ins
 * never end holds back only its own (fixture fault_line).
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
 *
 * fault_line: at most 16 fault-ins of one user (the submitter's uid) run at
 * once; its further ones wait in that user's line.  The test (uid 0) queues
 * 17 retry reads, one per channel, each into its own page of one
 * userfaultfd range, and writes a byte into every channel: all 17 reads go
 * to "faulting" (fdinfo), 16 faults reach the userfaultfd and the 17th
 * waits in line.  A second user (uid 65534) then reads into a cold page:
 * its fault-in runs at once and its read completes within a second.  And
 * when one of the 16 faults is served, the 17th fault-in starts: its fault
 * reaches the userfaultfd within a second.  Closing the userfaultfd ends
 * every fault, and all 17 reads complete with their byte.
 */
#include <grp.h>
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
	if (ap_send_fd(sock, uffd))
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

	self->uffd = ap_recv_fd(self->sock[0]);
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

/*
 * fault_line: one user's fault-ins in flight are bounded; the rest wait in
 * that user's line.
 */
#define USER_FAULTS	16		/* a user's fault-ins in flight */
#define NR_STUCK	(USER_FAULTS + 1)	/* one waits in line */
#define PAGE		4096
#define NOBODY		65534		/* the second user */
#define OTHER_LEN	10		/* the second user's bytes */

FIXTURE(fault_line) {
	int fds[NR_STUCK][2];		/* one retry channel per stuck read */
	io_context_t ctx;
	struct iocb cbs[NR_STUCK];	/* read i: PREAD READ_LEN into page i */
	char *pages;			/* NR_STUCK pages under the uffd */
	int uffd;
	bool seen[NR_STUCK];		/* page i's fault was reported */
	int nseen;
	int nmsgs;			/* UFFD_EVENT_PAGEFAULT messages read */
	bool reaped[NR_STUCK];
	int nreaped;
	int ngood;			/* reads completed with their byte */
	int bad;			/* the first read that did not, or -1 */
	long long bad_res;
};

static char byte_of(int i)
{
	return (char)('a' + i);
}

/*
 * True once the pending read of @fd's channel shows @state in fdinfo
 * ("read:\t<id> <state> retry ..."), false if it does not by @ms.
 */
static bool wait_read_state(int fd, const char *state, int ms)
{
	int64_t t0 = ap_now_ns();
	char path[64], buf[4096], want[32];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	snprintf(want, sizeof(want), " %s ", state);
	for (;;) {
		int f = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
		char *line, *end;

		if (f >= 0)
			close(f);
		if (n > 0) {
			buf[n] = 0;
			line = strstr(buf, "\nread:\t");
			end = line ? strchr(line + 1, '\n') : NULL;
			if (end)
				*end = 0;
			if (line && strstr(line, want))
				return true;
		}
		if (ap_ms_since(t0) > ms)
			return false;
		sched_yield();
	}
}

/* The index of the stuck read's page holding @addr, or -1. */
static int page_index(FIXTURE_DATA(fault_line) *self, unsigned long addr)
{
	unsigned long base = (unsigned long)self->pages;

	if (addr < base || addr >= base + (unsigned long)NR_STUCK * PAGE)
		return -1;
	return (int)((addr - base) / PAGE);
}

/*
 * Read the fault reports of the userfaultfd until @want distinct pages
 * have been reported or @ms have passed; returns how many have.  A read
 * report stays outstanding (the fault waits) until the page is served or
 * the userfaultfd is closed.
 */
static int collect_faults(FIXTURE_DATA(fault_line) *self, int want, int ms)
{
	int64_t t0 = ap_now_ns();

	while (self->nseen < want) {
		int left = ms - (int)ap_ms_since(t0);
		struct uffd_msg msg[NR_STUCK];
		ssize_t n;

		if (ap_poll1(self->uffd, POLLIN, left > 0 ? left : 0) != 1)
			break;
		n = read(self->uffd, msg, sizeof(msg));
		if (n < (ssize_t)sizeof(msg[0])) {
			if (n < 0 && errno == EAGAIN && left > 0)
				continue;
			break;
		}
		for (int j = 0; j < n / (ssize_t)sizeof(msg[0]); j++) {
			int i;

			if (msg[j].event != UFFD_EVENT_PAGEFAULT)
				continue;
			self->nmsgs++;
			i = page_index(self, msg[j].arg.pagefault.address);
			if (i >= 0 && !self->seen[i]) {
				self->seen[i] = true;
				self->nseen++;
			}
		}
	}
	return self->nseen;
}

/* Account a completion of one of the stuck reads. */
static void note_done(FIXTURE_DATA(fault_line) *self,
		      const struct io_event *ev)
{
	long i = (long)(uintptr_t)ev->data;

	if (i < 0 || i >= NR_STUCK || self->reaped[i])
		return;
	self->reaped[i] = true;
	self->nreaped++;
	/* with res 1 the page is present: it holds what the read copied */
	if ((long long)ev->res == 1 && self->pages[i * PAGE] == byte_of(i)) {
		self->ngood++;
	} else if (self->bad < 0) {
		self->bad = (int)i;
		self->bad_res = (long long)ev->res;
	}
}

/*
 * Close the userfaultfd: every fault waiting on it ends (the pages are
 * then filled as plain anonymous memory) and the user's line moves on.
 * Reap every read not reaped yet (bounded); returns how many of the
 * NR_STUCK reads completed with their byte.
 */
static int resolve_and_reap(FIXTURE_DATA(fault_line) *self)
{
	if (self->uffd >= 0)
		close(self->uffd);
	self->uffd = -1;
	while (self->ctx && self->nreaped < NR_STUCK) {
		struct io_event ev[NR_STUCK];
		int n = ap_getevents(self->ctx, 1, NR_STUCK - self->nreaped,
				     ev, AP_LONG_MS);

		if (n <= 0)
			break;
		for (int j = 0; j < n; j++)
			note_done(self, &ev[j]);
	}
	return self->ngood;
}

/*
 * Setup: 17 retry channels, 17 pages under one userfaultfd, read i
 * queued into page i on channel i, one byte written into every channel;
 * returns when all 17 reads show "faulting".  The fault reports are left
 * for the tests to read.
 */
FIXTURE_SETUP(fault_line)
{
	struct iocb *cbp[NR_STUCK];
	int probe;

	for (int i = 0; i < NR_STUCK; i++)
		self->fds[i][0] = self->fds[i][1] = -1;
	self->uffd = -1;
	self->pages = MAP_FAILED;
	self->bad = -1;

	probe = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (probe < 0 && (errno == ENOSYS || errno == EPERM))
		SKIP(return, "no userfaultfd for kernel faults here (%s)",
		     strerror(errno));
	ASSERT_LE(0, probe) TH_LOG("userfaultfd: %s", strerror(errno));
	close(probe);

	for (int i = 0; i < NR_STUCK; i++)
		ASSERT_EQ(0, ap_pair(self->fds[i], 0, CAP, AIOPIPE_ENGINE_RETRY,
				     AIOPIPE_FILTER_ON));
	self->uffd = ap_uffd_pages(NR_STUCK, &self->pages);
	ASSERT_LE(0, self->uffd) TH_LOG("userfaultfd over %d pages: %s",
					NR_STUCK, strerror(errno));
	ASSERT_EQ(0, io_setup(NR_STUCK, &self->ctx));
	for (int i = 0; i < NR_STUCK; i++) {
		io_prep_pread(&self->cbs[i], self->fds[i][0],
			      self->pages + i * PAGE, READ_LEN, 0);
		self->cbs[i].data = (void *)(uintptr_t)i;
		cbp[i] = &self->cbs[i];
	}
	ASSERT_EQ(NR_STUCK, io_submit(self->ctx, NR_STUCK, cbp));
	for (int i = 0; i < NR_STUCK; i++)
		ASSERT_EQ(1, AP_STAT(self->fds[i][0], pending_reads));

	for (int i = 0; i < NR_STUCK; i++) {
		char c = byte_of(i);

		ASSERT_EQ(1, write(self->fds[i][1], &c, 1));
	}
	for (int i = 0; i < NR_STUCK; i++) {
		ASSERT_TRUE(wait_read_state(self->fds[i][0], "faulting",
					    SETUP_MS))
			TH_LOG("read %d never went to faulting", i);
	}
}

FIXTURE_TEARDOWN(fault_line)
{
	resolve_and_reap(self);
	if (self->ctx)
		io_destroy(self->ctx);
	if (self->pages != MAP_FAILED)
		munmap(self->pages, (size_t)NR_STUCK * PAGE);
	for (int i = 0; i < NR_STUCK; i++)
		backend_close(self->fds[i]);
}

/*
 * The 16 running fault-ins have reported their faults, and no 17th comes
 * within AP_QUIET_MS; returns the index of the read waiting in line, or -1
 * when there is no single one.
 */
static int the_one_in_line(FIXTURE_DATA(fault_line) *self)
{
	int last = -1;

	collect_faults(self, USER_FAULTS, SETUP_MS);
	collect_faults(self, NR_STUCK, AP_QUIET_MS);	/* nothing more */
	if (self->nseen != USER_FAULTS)
		return -1;
	for (int i = 0; i < NR_STUCK; i++)
		if (!self->seen[i])
			last = i;
	return last;
}

/* What the second user saw. */
struct other_user_report {
	int step;		/* 0, or the step that failed */
	int err;		/* its errno */
	int nevents;		/* io_getevents within WITHIN_MS of the write */
	long long res;		/* the read's res */
	long long ms;		/* from the write to the completion (or the end) */
	long long retries;	/* retries of its channel */
	bool data_ok;		/* the page holds the bytes written */
};

/*
 * B: become uid/gid 65534 with no supplementary groups, make a retry pair
 * and an AIO context, queue a PREAD of READ_LEN bytes into a page never
 * touched (its copy faults), write OTHER_LEN bytes, and report whether the
 * read completed within WITHIN_MS.
 */
static void child_other_user(pid_t parent, int rep)
{
	struct other_user_report r = { 0 };
	static const char bytes[OTHER_LEN] = "0123456789";
	int fds[2] = { -1, -1 };
	struct iocb cb, *cbp = &cb;
	io_context_t ctx = 0;
	struct io_event ev;
	int64_t t0;
	char *page;

	r.step = 1;
	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY) || geteuid() != NOBODY)
		goto out;
	/* a change of credentials cleared the parent-death signal */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(99);
	r.step = 2;
	r.err = -ap_pair(fds, 0, CAP, AIOPIPE_ENGINE_RETRY, AIOPIPE_FILTER_ON);
	if (r.err)
		goto out;
	r.step = 3;
	if (io_setup(1, &ctx))
		goto out;
	r.step = 4;
	page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		goto out;
	r.step = 5;
	io_prep_pread(&cb, fds[0], page, READ_LEN, 0);
	if (io_submit(ctx, 1, &cbp) != 1)
		goto out;
	r.step = 6;
	t0 = ap_now_ns();
	if (write(fds[1], bytes, OTHER_LEN) != OTHER_LEN)
		goto out;
	r.step = 0;
	r.nevents = ap_getevents(ctx, 1, 1, &ev, WITHIN_MS);
	r.ms = ap_ms_since(t0);
	if (r.nevents == 1) {
		r.res = (long long)ev.res;
		r.data_ok = r.res == OTHER_LEN &&
			    !memcmp(page, bytes, OTHER_LEN);
	}
	r.retries = AP_STAT(fds[0], retries);
out:
	if (r.step)
		r.err = r.err ?: errno;
	if (write(rep, &r, sizeof(r)) != sizeof(r))
		_exit(2);
	_exit(0);	/* exit cancels a read still queued */
}

/*
 *   test (uid 0)                   fault workers          B (uid 65534)
 *   17 channels; 17 uffd pages;
 *   PREAD 100 into page i on
 *   channel i; 1 byte into each
 *   (all 17 reads "faulting") ---> 16 fault-ins run and
 *                                  wait on the uffd; the
 *                                  17th waits in uid 0's
 *                                  line
 *   16 faults reported, and no
 *   17th within 100 ms
 *   fork B ----------------------------------------------> drop to 65534
 *                                                          pair; PREAD 100
 *                                                          into a cold page
 *                                  B's fault-in runs <---- write 10 bytes
 *                                  at once                 (its copy faults)
 *                                                          read done: 10
 *                                                          bytes within 1 s
 *   <------------------------------------------------------ report
 *   (uid 0's 17 reads still "faulting")
 *   close uffd: all 17 reads complete with their byte
 */
TEST_F(fault_line, one_users_stuck_faults_do_not_hold_back_another_user)
{
	struct other_user_report r = { 0 };
	int rep[2], status, last;
	bool got;
	pid_t pid;

	if (_metadata->skip)
		return;
	if (geteuid() != 0)
		SKIP(return, "needs root to run a second user");

	last = the_one_in_line(self);
	TH_LOG("%d faults reported (%d messages); read %d waits in line",
	       self->nseen, self->nmsgs, last);
	EXPECT_EQ(USER_FAULTS, self->nseen)
		TH_LOG("%d of the %d reads' fault-ins reached the userfaultfd (%d messages); a user has %d in flight",
		       self->nseen, NR_STUCK, self->nmsgs, USER_FAULTS);

	ASSERT_EQ(0, pipe(rep));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(rep[0]);
		close(self->uffd);
		for (int i = 0; i < NR_STUCK; i++) {
			close(self->fds[i][0]);
			close(self->fds[i][1]);
		}
		child_other_user(getppid(), rep[1]);
	}
	close(rep[1]);
	got = ap_poll1(rep[0], POLLIN, SETUP_MS + WITHIN_MS) == 1 &&
	      read(rep[0], &r, sizeof(r)) == sizeof(r);
	close(rep[0]);
	ap_wait_child(pid, AP_LONG_MS, &status);
	ASSERT_TRUE(got) TH_LOG("the second user did not report");
	ASSERT_EQ(0, r.step) TH_LOG("the second user failed at step %d: %s",
				    r.step, strerror(r.err));
	TH_LOG("uid %d's read: %d event(s) after %lld ms, res %lld, %lld retries",
	       NOBODY, r.nevents, r.ms, r.res, r.retries);
	EXPECT_EQ(1, r.nevents)
		TH_LOG("uid %d's read did not complete within 1 s: its fault-in waited behind uid 0's",
		       NOBODY);
	if (r.nevents == 1) {
		EXPECT_EQ(OTHER_LEN, r.res);
		EXPECT_TRUE(r.data_ok);
		/* a retry that faulted, and one after the fault-in */
		EXPECT_LE(2, r.retries)
			TH_LOG("uid %d's read completed without a fault-in",
			       NOBODY);
	}

	for (int i = 0; i < NR_STUCK; i++) {
		EXPECT_TRUE(wait_read_state(self->fds[i][0], "faulting", 0))
			TH_LOG("uid 0's read %d is no longer faulting", i);
	}

	EXPECT_EQ(NR_STUCK, resolve_and_reap(self))
		TH_LOG("%d reaped; read %d: res %lld", self->nreaped,
		       self->bad, self->bad_res);
}

/*
 *   test                                        fault workers
 *   (setup as above: 16 faults reported, the
 *   17th read waits in line)
 *   UFFDIO_COPY a page for read k's fault ----> read k's fault-in ends:
 *                                               read k completes (1 byte);
 *                                               the 17th fault-in starts
 *   within 1 s: read k's completion, and the
 *   17th page's fault is reported
 *   close uffd: the other 16 reads complete
 */
TEST_F(fault_line, a_users_line_moves_when_a_fault_ends)
{
	static char src[PAGE] __attribute__((aligned(PAGE)));
	struct uffdio_copy copy = { 0 };
	int first = -1, last;
	struct io_event ev;
	int64_t t0;
	int n;

	if (_metadata->skip)
		return;
	last = the_one_in_line(self);
	ASSERT_LE(0, last)
		TH_LOG("%d of the %d reads' fault-ins reached the userfaultfd (%d messages): no single one waits in line",
		       self->nseen, NR_STUCK, self->nmsgs);
	for (int i = 0; i < NR_STUCK && first < 0; i++)
		if (self->seen[i])
			first = i;
	TH_LOG("read %d waits in line; serving read %d's fault", last, first);

	memset(src, 0x5a, sizeof(src));
	copy.dst = (unsigned long)(self->pages + first * PAGE);
	copy.src = (unsigned long)src;
	copy.len = PAGE;
	t0 = ap_now_ns();
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_COPY, &copy))
		TH_LOG("UFFDIO_COPY: %s", strerror(errno));

	n = ap_getevents(self->ctx, 1, 1, &ev, WITHIN_MS);
	EXPECT_EQ(1, n) TH_LOG("read %d did not complete within 1 s of its page",
			       first);
	if (n == 1) {
		note_done(self, &ev);
		EXPECT_EQ(first, (int)(uintptr_t)ev.data);
		EXPECT_EQ(1, (long long)ev.res);
		EXPECT_EQ(1, self->ngood);
	}

	collect_faults(self, NR_STUCK,
		       WITHIN_MS - (int)ap_ms_since(t0));
	TH_LOG("%d faults reported %lld ms after the page", self->nseen,
	       (long long)ap_ms_since(t0));
	EXPECT_TRUE(self->seen[last])
		TH_LOG("the fault-in waiting in line did not start within 1 s of the end of another");
	EXPECT_TRUE(wait_read_state(self->fds[last][0], "faulting", 0));

	EXPECT_EQ(NR_STUCK, resolve_and_reap(self))
		TH_LOG("%d reaped; read %d: res %lld", self->nreaped,
		       self->bad, self->bad_res);
}

TEST_HARNESS_MAIN
