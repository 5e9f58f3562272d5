// SPDX-License-Identifier: GPL-2.0
/*
 * Interleavings forced with the module's pause points (pause_points=1).
 * Each test parks one context at a named place, runs the other parties
 * into that window, releases, and checks what every party saw:
 *
 *  - a reader that pulled part of a direct write into the ring and put the
 *    write back in line never touches it again: a cancel completes the
 *    write (with the bytes it moved) while the reader is still inside;
 *  - a cancelled request whose retry is already kicked moves nothing, for
 *    io_cancel and for io_destroy (where its completion is never seen, so
 *    bytes it moved would be lost);
 *  - cancelling the queued direct reads of a context does not kick the
 *    next one into a retry that takes bytes written meanwhile;
 *  - io_cancel emptying the read queue while a direct read is being
 *    queued behind it trips no kernel warning;
 *  - io_cancel of a read that is being queued completes it, unlisted,
 *    with -ECANCELED;
 *  - RWF_NOWAIT reads and writes do not wait for the channel mutex;
 *  - SET_CAPACITY checks its privilege against the capacity it replaces,
 *    under the lock: a "keep the size" call racing with a shrink does not
 *    become an unprivileged grow past max_capacity;
 *  - a retry whose copies keep failing after fault-ins that succeeded
 *    backs off and completes once they work (debug kernels: fail_copy);
 *  - an atomic write over many cold pages, faulted in one by one, counts
 *    each fault-in that lets its copy go further as progress;
 *  - ring mode: a writer waiting in a page fault holds no event slot or
 *    buffer of the ring, a fill that copied nothing gives its slot to
 *    the events owed meanwhile, waking the reader, and a page that goes
 *    away again between the fault-in and the copy is faulted in again.
 *
 * Skipped when the module has no pause points.  Every wait is on a fact
 * (a parked count, a request's fdinfo line, a completion, a call that
 * returned) with a failure guard, and a failing test releases every point.
 */
#include <linux/capability.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"
#include "pause_util.h"

#define PAGE		4096
#define RING		4096
#define SMALL_CAP	65536
#define GUARD_MS	2000	/* a completion that must come while parked */
#define NOWAIT_MS	1000	/* a NOWAIT call that must not block */

/* Pair, io context and point files, the same for every fixture here. */
struct race {
	int fds[2];
	io_context_t ctx;
	struct ap_points pt;
	bool skip;
	bool fail_copy;		/* the module's fail_copy armed: disarm it */
};

static int fail_copy_next(const char *times);

static void race_setup(struct __test_metadata *_metadata, struct race *r,
		       unsigned int engine)
{
	unsigned long long chan;
	int i;

	r->fds[0] = r->fds[1] = -1;
	for (i = 0; i < AP_NR_POINTS; i++)
		r->pt.fd[i] = -1;
	if (!ap_pause_present()) {
		r->skip = true;
		SKIP(return, "no %s: load the module with pause_points=1",
		     AP_PAUSE_DIR);
	}
	ASSERT_EQ(0, aiopipe_pair_ex(r->fds, 0, RING, engine));
	ASSERT_EQ(RING, aiopipe_get_capacity(r->fds[0]));
	ASSERT_EQ((int)engine, aiopipe_get_engine(r->fds[0]));
	chan = ap_chan_id(r->fds[0]);
	ASSERT_NE(0ULL, chan);
	ASSERT_EQ(0, ap_points_open(&r->pt, chan));
	ASSERT_EQ(0, io_setup(16, &r->ctx));
}

static void race_teardown(struct race *r)
{
	if (r->fail_copy)	/* a failed test leaves no failure armed */
		fail_copy_next("0");
	ap_release_all(&r->pt);		/* nothing stays parked */
	if (r->ctx)
		io_destroy(r->ctx);
	ap_points_close(&r->pt);
	if (r->fds[0] >= 0)
		close(r->fds[0]);
	if (r->fds[1] >= 0)
		close(r->fds[1]);
}

/* The setup skipped: so does the test (the harness runs it anyway). */
#define RACE_BEGIN(r) do {						\
	if ((r)->skip)							\
		return;							\
} while (0)

static void *page_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* What a helper thread's call works on. */
struct op {
	int fd;
	void *buf;
	size_t len;
	io_context_t ctx;
	struct iocb *cb;
	unsigned int cap;
};

static long op_read(struct ap_call *c)
{
	struct op *o = c->arg;

	return read(o->fd, o->buf, o->len);
}

static long op_write(struct ap_call *c)
{
	struct op *o = c->arg;

	return write(o->fd, o->buf, o->len);
}

static long op_submit(struct ap_call *c)
{
	struct op *o = c->arg;

	return ap_submit1(o->ctx, o->cb);
}

static long op_destroy(struct ap_call *c)
{
	struct op *o = c->arg;

	return io_destroy(o->ctx);
}

static long op_preadv2_nowait(struct ap_call *c)
{
	struct op *o = c->arg;
	struct iovec iov = { o->buf, o->len };

	return preadv2(o->fd, &iov, 1, -1, RWF_NOWAIT);
}

static long op_pwritev2_nowait(struct ap_call *c)
{
	struct op *o = c->arg;
	struct iovec iov = { o->buf, o->len };

	return pwritev2(o->fd, &iov, 1, -1, RWF_NOWAIT);
}

/* Whether the calling thread has CAP_SYS_RESOURCE in its effective set. */
static bool have_cap_sys_resource(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];
	unsigned int bit = CAP_SYS_RESOURCE;

	return !syscall(SYS_capget, &h, d) &&
	       (d[bit / 32].effective & (1U << (bit % 32)));
}

/*
 * Drop CAP_SYS_RESOURCE from the effective set of the calling thread only
 * (capabilities are per thread; the raw syscall does not broadcast).
 */
static int drop_cap_sys_resource_this_thread(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];
	unsigned int bit = CAP_SYS_RESOURCE;

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[bit / 32].effective &= ~(1U << (bit % 32));
	return (int)syscall(SYS_capset, &h, d);
}

/* SET_CAPACITY(o->cap) without CAP_SYS_RESOURCE: ioctl's -1 and errno. */
static long op_set_capacity_unprivileged(struct ap_call *c)
{
	struct op *o = c->arg;
	__u32 cap = o->cap;

	if (drop_cap_sys_resource_this_thread() || have_cap_sys_resource())
		return -2;
	return ioctl(o->fd, AIOPIPE_IOC_SET_CAPACITY, &cap);
}

static unsigned long read_ulong(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	return n > 0 ? strtoul(buf, NULL, 10) : 0;
}

FIXTURE(direct) {
	struct race r;
};

FIXTURE_SETUP(direct)
{
	race_setup(_metadata, &self->r, AIOPIPE_ENGINE_DIRECT);
}

FIXTURE_TEARDOWN(direct)
{
	race_teardown(&self->r);
}

FIXTURE(retry) {
	struct race r;
};

FIXTURE_SETUP(retry)
{
	race_setup(_metadata, &self->r, AIOPIPE_ENGINE_RETRY);
}

FIXTURE_TEARDOWN(retry)
{
	race_teardown(&self->r);
}

/*
 *   capacity 4096, full; direct engine
 *   test                          thread Q                    aiopipe
 *   io_submit(PWRITE W 12288) ------------------------------>  W queued, pinned
 *   arm pull_unclaimed
 *                                 read(100) ---------------->  100 out of the ring;
 *                                                              100 of W pulled in,
 *                                                              W QUEUED again;
 *                                 parks (mutex held)
 *   io_cancel(W) ------------------------------------------->  W QUEUED: taken
 *   io_getevents <-------------------------------------------  res 100 (moved),
 *                                                              Q still parked
 *   release ------------------->  read returns 100
 *   ring: bytes 100..4195 of the stream, nothing more
 *
 * Q must not look at W after putting it back in line (W is freed by then:
 * a use-after-free that only KASAN shows).
 */
TEST_F(direct, pull_unclaimed_then_cancel)
{
	struct race *r = &self->r;
	char *src = page_buf(4 * PAGE), *buf = page_buf(2 * PAGE);
	char qbuf[100], line[256];
	struct op qo = { .fd = r->fds[0], .buf = qbuf, .len = sizeof(qbuf) };
	struct io_event ev;
	struct ap_call q;
	struct iocb cb;
	int ret;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, buf);
	ap_fill(src, 4 * PAGE, 0);
	ASSERT_EQ(RING, write(r->fds[1], src, RING));
	io_prep_pwrite(&cb, r->fds[1], src + RING, 3 * PAGE, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "write", " queued direct done 0",
				    line, sizeof(line)))
		TH_LOG("the write is not a queued direct request");

	ASSERT_EQ(0, ap_arm(&r->pt, AP_PULL_UNCLAIMED));
	ASSERT_EQ(0, ap_call_start(&q, op_read, &qo));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_PULL_UNCLAIMED, 1, AP_LONG_MS));
	ap_fdinfo_reqs(r->fds[0], "write", "", line, sizeof(line));
	TH_LOG("parked reader; %s", line);

	ret = io_cancel(r->ctx, &cb, &ev);
	EXPECT_TRUE(ret == -EINPROGRESS || ret == 0)
		TH_LOG("io_cancel: %d", ret);
	EXPECT_EQ(1, ap_getevents(r->ctx, 1, 1, &ev, GUARD_MS));
	EXPECT_EQ(100, (long)ev.res);
	EXPECT_EQ(1, ap_parked(&r->pt, AP_PULL_UNCLAIMED));

	ASSERT_EQ(0, ap_release(&r->pt, AP_PULL_UNCLAIMED));
	ASSERT_TRUE(ap_call_join(&q, AP_LONG_MS));
	EXPECT_EQ(100, q.ret);
	EXPECT_EQ(-1, ap_check(qbuf, sizeof(qbuf), 0));
	EXPECT_EQ(RING, ap_read_now(r->fds[0], buf, 2 * PAGE));
	EXPECT_EQ(-1, ap_check(buf, RING, 100));
	EXPECT_EQ(-EAGAIN, ap_read_now(r->fds[0], buf, 2 * PAGE));
}

/*
 *   empty channel; direct engine
 *   test                         thread D                 kworker
 *   io_submit(PREAD R1 100)
 *   io_submit(PREAD R2 100)      (both queued, pinned)
 *   arm retry_start
 *                                io_destroy ----------->  cancel R1, cancel R2:
 *                                                         nothing may be kicked
 *   until parked at retry_start  |  io_destroy returned
 *   (parked: a kicked R2, flagged cancelled, waits to run)
 *   write(10) ------------------------------------------> into the ring; a parked
 *   release                                                R2 would take it
 *   read (nonblocking) --> the 10 bytes
 */
/*
 * A record of at most PIPE_BUF bytes that a reader has started to drain
 * straight from its pinned page is finished before the reader lets go:
 * a cancel that comes then finds nothing half moved.
 *
 *   main                        reader Q                  kernel
 *   fill the ring (4096)
 *   PWRITE W 100 (direct)                                 W queued
 *   arm drain_unclaimed
 *                               read(4096 + 30)           the ring, then 30
 *                                                         bytes of W straight
 *                               (parks, mutex held)       from its page; W let go
 *   io_cancel(W)
 *   release
 *                               returns 4126
 *   W's result; read the rest:  W's other 70 bytes, never a torn record
 */
TEST_F(direct, drained_record_is_finished_before_a_cancel)
{
	struct race *r = &self->r;
	size_t rec = 100, want = RING + 30;
	char *src = page_buf(2 * PAGE), *buf = page_buf(2 * PAGE);
	struct op qo = { .fd = r->fds[0], .buf = buf, .len = want };
	struct io_event ev;
	char rest[256];
	struct ap_call q;
	struct iocb cb;
	long rest_n;
	int ret;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, buf);
	ap_fill(src, 2 * PAGE, 0);
	ASSERT_EQ(RING, write(r->fds[1], src, RING));
	io_prep_pwrite(&cb, r->fds[1], src + RING, rec, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "write", " queued direct done 0",
				    rest, sizeof(rest)))
		TH_LOG("the write is not a queued direct request");

	ASSERT_EQ(0, ap_arm(&r->pt, AP_DRAIN_UNCLAIMED));
	ASSERT_EQ(0, ap_call_start(&q, op_read, &qo));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_DRAIN_UNCLAIMED, 1, AP_LONG_MS));
	ret = io_cancel(r->ctx, &cb, &ev);
	TH_LOG("io_cancel while the reader is parked: %d", ret);
	ASSERT_EQ(0, ap_release(&r->pt, AP_DRAIN_UNCLAIMED));
	ASSERT_TRUE(ap_call_join(&q, AP_LONG_MS));
	EXPECT_EQ((long)want, q.ret);
	EXPECT_EQ(-1, ap_check(buf, want, 0));

	ASSERT_EQ(1, ap_getevents(r->ctx, 1, 1, &ev, GUARD_MS));
	EXPECT_EQ((long)rec, (long)ev.res) TH_LOG("W completed with %ld",
						  (long)ev.res);
	rest_n = ap_read_now(r->fds[0], rest, sizeof(rest));
	EXPECT_EQ((long)rec - 30, rest_n)
		TH_LOG("torn record: 30 bytes of W read, %ld of its last 70 left",
		       rest_n);
	if (rest_n > 0)
		EXPECT_EQ(-1, ap_check(rest, rest_n, want));
}

/*
 * A writer claims a small read (not pinned: armed on the channel's queue
 * like a retry read) and a wakeup arrives before it has copied.  The claim
 * took the read off the queue, so the wakeup kicks nothing: the read has
 * one owner, the writer, and completes once.
 *
 *   test                          W1                  W2
 *                                 write(12): ring,
 *                                 mutex dropped,
 *                                 parks (write_unlocked)
 *   read(12) empties the ring
 *   io_submit(PREAD 12): queued, armed
 *                                                     write(12): claims
 *                                                     the read (BUSY),
 *                                                     parks (fill_claimed)
 *   release W1 -----------------> wakes the queue with EPOLLIN
 *   release W2 ---------------------------------------> copies 12, completes
 *   io_getevents: 12, once; wakeups_delivered 0, retries 0
 *
 * Before, the entry stayed on the queue while the read was BUSY: W1's
 * wakeup kicked it and queued its work item, which then ran on a request
 * the writer had completed (a use-after-free under KASAN).
 */
TEST_F(direct, wakeup_while_a_writer_fills_a_small_read_kicks_nothing)
{
	struct race *r = &self->r;
	char buf[12], rbuf[12], w1buf[12] = "first-token", w2buf[12] = "second-tokn";
	struct op w1o = { .fd = r->fds[1], .buf = w1buf, .len = sizeof(w1buf) };
	struct op w2o = { .fd = r->fds[1], .buf = w2buf, .len = sizeof(w2buf) };
	struct ap_call w1, w2;
	struct io_event ev;
	struct iocb cb;

	RACE_BEGIN(r);
	ASSERT_EQ(0, ap_arm(&r->pt, AP_WRITE_UNLOCKED));
	ASSERT_EQ(0, ap_call_start(&w1, op_write, &w1o));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_WRITE_UNLOCKED, 1, AP_LONG_MS));
	ASSERT_EQ(12, ap_read_now(r->fds[0], rbuf, sizeof(rbuf)));
	EXPECT_EQ(0, memcmp(w1buf, rbuf, sizeof(rbuf)));

	memset(buf, 0, sizeof(buf));
	io_prep_pread(&cb, r->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " queued small", NULL,
				    0));

	ASSERT_EQ(0, ap_arm(&r->pt, AP_FILL_CLAIMED));
	ASSERT_EQ(0, ap_call_start(&w2, op_write, &w2o));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_FILL_CLAIMED, 1, AP_LONG_MS));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " busy small", NULL, 0));

	ASSERT_EQ(0, ap_release(&r->pt, AP_WRITE_UNLOCKED));
	ASSERT_TRUE(ap_call_join(&w1, AP_LONG_MS));
	EXPECT_EQ(12, w1.ret);
	EXPECT_EQ(0, AP_STAT(r->fds[0], wakeups_delivered));

	ASSERT_EQ(0, ap_release(&r->pt, AP_FILL_CLAIMED));
	ASSERT_TRUE(ap_call_join(&w2, AP_LONG_MS));
	EXPECT_EQ(12, w2.ret);
	ASSERT_EQ(1, ap_getevents(r->ctx, 1, 1, &ev, GUARD_MS));
	EXPECT_EQ(12, (long)ev.res);
	EXPECT_EQ(0, memcmp(w2buf, buf, sizeof(buf)));
	EXPECT_TRUE(ap_no_event(r->ctx));
	EXPECT_EQ(0, AP_STAT(r->fds[0], wakeups_delivered));
	EXPECT_EQ(0, AP_STAT(r->fds[0], retries));
	EXPECT_EQ(1, AP_STAT(r->fds[0], completed_by_peer));
	AP_EXPECT_IDLE(r->fds[0]);
}

/*
 * A small read S is cancelled while a writer W fills it, and S's page is
 * not there: S takes nothing and is finished (cancelled), and W goes on to
 * the pinned read D behind it, now first in line.
 *
 *   test                                 W
 *   io_submit(S: PREAD 12, cold page)
 *   io_submit(D: PREAD 512, pinned)
 *   arm fill_claimed
 *                                        write(12): claims S (BUSY), parks
 *   io_cancel(S): flagged
 *   release -----------------------------> S's copy stops: S finished,
 *                                        -ECANCELED; D claimed, filled
 *   io_getevents: S -ECANCELED, D 12; nothing left in the ring
 *
 * Before, W stopped filling at S and put its bytes in the ring: D, a
 * pinned read that waits for a peer rather than a wakeup, stayed pending
 * with the bytes behind it, and nothing served it.
 */
TEST_F(direct, cancelled_small_read_passes_the_fill_to_the_next)
{
	struct race *r = &self->r;
	char *cold = page_buf(PAGE), *dbuf = page_buf(PAGE);
	char w[12] = "eleven-char";
	struct op wo = { .fd = r->fds[1], .buf = w, .len = sizeof(w) };
	struct iocb scb, dcb;
	struct io_event ev[2];
	struct ap_call wc;
	long sres = 1, dres = 1;
	int ret, got = 0;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, cold);
	ASSERT_NE(NULL, dbuf);
	io_prep_pread(&scb, r->fds[0], cold, sizeof(w), 0);
	io_prep_pread(&dcb, r->fds[0], dbuf, AP_PINNED_READ, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &scb));
	ASSERT_EQ(1, ap_submit1(r->ctx, &dcb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " queued small", NULL,
				    0));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " queued direct", NULL,
				    0));

	ASSERT_EQ(0, ap_arm(&r->pt, AP_FILL_CLAIMED));
	ASSERT_EQ(0, ap_call_start(&wc, op_write, &wo));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_FILL_CLAIMED, 1, AP_LONG_MS));
	ret = io_cancel(r->ctx, &scb, &ev[0]);
	EXPECT_TRUE(ret == -EINPROGRESS || ret == 0) TH_LOG("io_cancel: %d", ret);

	ASSERT_EQ(0, ap_release(&r->pt, AP_FILL_CLAIMED));
	ASSERT_TRUE(ap_call_join(&wc, AP_LONG_MS));
	EXPECT_EQ(12, wc.ret);
	while (got < 2) {
		int n = ap_getevents(r->ctx, 1, 1, &ev[got], GUARD_MS);

		if (n != 1)
			break;
		if (ev[got].obj == &scb)
			sres = (long)ev[got].res;
		else
			dres = (long)ev[got].res;
		got++;
	}
	EXPECT_EQ(2, got) TH_LOG("D is still pending: nobody served it");
	EXPECT_EQ(-ECANCELED, sres);
	EXPECT_EQ(12, dres);
	EXPECT_EQ(0, memcmp(w, dbuf, sizeof(w)));
	EXPECT_EQ(0, ap_fionread(r->fds[0]));
	AP_EXPECT_IDLE(r->fds[0]);
}

TEST_F(direct, destroy_does_not_kick_direct_reads)
{
	struct race *r = &self->r;
	char *b1 = page_buf(PAGE), *b2 = page_buf(PAGE), buf[64];
	struct op dop = { .ctx = r->ctx };
	struct iocb cb1, cb2;
	bool parked = false, written = false;
	struct ap_call d;
	int64_t t0;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, b1);
	ASSERT_NE(NULL, b2);
	io_prep_pread(&cb1, r->fds[0], b1, AP_PINNED_READ, 0);
	io_prep_pread(&cb2, r->fds[0], b2, AP_PINNED_READ, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb1));
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb2));
	ASSERT_EQ(2, ap_fdinfo_reqs(r->fds[0], "read", " queued direct",
				    NULL, 0));

	ASSERT_EQ(0, ap_arm(&r->pt, AP_RETRY_START));
	r->ctx = 0;		/* D destroys it */
	ASSERT_EQ(0, ap_call_start(&d, op_destroy, &dop));
	for (t0 = ap_now_ns(); ap_ms_since(t0) <= AP_LONG_MS;
	     ap_sleep_us(AP_POLL_US)) {
		if (ap_parked(&r->pt, AP_RETRY_START) >= 1) {
			parked = true;
			break;
		}
		if (ap_call_wait(&d, 0))
			break;
	}
	if (parked) {
		ASSERT_EQ(10, write(r->fds[1], "0123456789", 10));
		written = true;
	}
	ASSERT_EQ(0, ap_release(&r->pt, AP_RETRY_START));
	ASSERT_TRUE(ap_call_join(&d, AP_LONG_MS));
	EXPECT_EQ(0, d.ret);
	EXPECT_EQ(0, parked);
	if (!written)
		ASSERT_EQ(10, write(r->fds[1], "0123456789", 10));
	EXPECT_EQ(10, ap_read_now(r->fds[0], buf, sizeof(buf)));
}

/*
 * A kicked retry read is cancelled while its worker waits to run.
 *
 *   empty channel; retry engine
 *   test                                    kworker (R's retry)
 *   io_submit(PREAD R 100)                  R queued, armed
 *   arm retry_start
 *   write(10) ---------------------------->  10 in the ring, R kicked
 *                                            parks before the mutex
 *   io_cancel(R)  |  thread: io_destroy      R KICKED: flagged cancelled
 *   (io_destroy: until fdinfo shows R " cancelled")
 *   release ------------------------------>  R cancelled: moves nothing
 *   R completes -ECANCELED (io_cancel: reaped; io_destroy: it returns)
 *   read (nonblocking) --> the 10 bytes
 */
FIXTURE(cancel_by) {
	struct race r;
};

FIXTURE_VARIANT(cancel_by) {
	bool destroy;
};

FIXTURE_VARIANT_ADD(cancel_by, io_cancel) {
	.destroy = false,
};

FIXTURE_VARIANT_ADD(cancel_by, io_destroy) {
	.destroy = true,
};

FIXTURE_SETUP(cancel_by)
{
	race_setup(_metadata, &self->r, AIOPIPE_ENGINE_RETRY);
}

FIXTURE_TEARDOWN(cancel_by)
{
	race_teardown(&self->r);
}

TEST_F(cancel_by, kicked_read_cancel_moves_nothing)
{
	struct race *r = &self->r;
	char *rbuf = page_buf(PAGE), buf[64], line[256];
	struct op dop = { .ctx = r->ctx };
	struct io_event ev;
	struct ap_call d;
	struct iocb cb;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, rbuf);
	io_prep_pread(&cb, r->fds[0], rbuf, 100, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " queued retry",
				    NULL, 0));
	ASSERT_EQ(0, ap_arm(&r->pt, AP_RETRY_START));
	ASSERT_EQ(10, write(r->fds[1], "0123456789", 10));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_RETRY_START, 1, AP_LONG_MS));
	EXPECT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " kicked retry",
				    line, sizeof(line)));

	if (variant->destroy) {
		r->ctx = 0;	/* D destroys it */
		ASSERT_EQ(0, ap_call_start(&d, op_destroy, &dop));
		EXPECT_TRUE(ap_wait_fdinfo_req(r->fds[0], "read", " cancelled",
					       AP_LONG_MS));
	} else {
		EXPECT_EQ(-EINPROGRESS, io_cancel(r->ctx, &cb, &ev));
		EXPECT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " cancelled",
					    NULL, 0));
	}
	ASSERT_EQ(0, ap_release(&r->pt, AP_RETRY_START));

	if (variant->destroy) {
		ASSERT_TRUE(ap_call_join(&d, AP_LONG_MS));
		EXPECT_EQ(0, d.ret);
	} else {
		EXPECT_EQ(-ECANCELED, ap_reap1(r->ctx, &ev));
	}
	EXPECT_EQ(10, ap_read_now(r->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
}

/*
 *   capacity 4096, full; retry engine
 *   test                                    kworker (W's retry)
 *   io_submit(PWRITE W 100)                 W queued, armed
 *   arm retry_start
 *   read(4096) --------------------------->  room: W kicked
 *                                            parks before the mutex
 *   io_cancel(W) ------------------------->  W KICKED: flagged cancelled
 *   release ------------------------------>  W cancelled: moves nothing
 *   W completes -ECANCELED
 *   read (nonblocking) --> EAGAIN: none of W's bytes are in the stream
 */
TEST_F(retry, kicked_write_cancel_moves_nothing)
{
	struct race *r = &self->r;
	char *fill = page_buf(PAGE), *buf = page_buf(2 * PAGE);
	char wbuf[100];
	struct io_event ev;
	struct iocb cb;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, fill);
	ASSERT_NE(NULL, buf);
	ap_fill(fill, RING, 0);
	ap_fill(wbuf, sizeof(wbuf), RING);
	ASSERT_EQ(RING, write(r->fds[1], fill, RING));
	io_prep_pwrite(&cb, r->fds[1], wbuf, sizeof(wbuf), 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "write", " queued retry",
				    NULL, 0));

	ASSERT_EQ(0, ap_arm(&r->pt, AP_RETRY_START));
	ASSERT_EQ(RING, read(r->fds[0], buf, RING));
	EXPECT_EQ(-1, ap_check(buf, RING, 0));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_RETRY_START, 1, AP_LONG_MS));
	EXPECT_EQ(1, ap_fdinfo_reqs(r->fds[0], "write", " kicked retry",
				    NULL, 0));
	EXPECT_EQ(-EINPROGRESS, io_cancel(r->ctx, &cb, &ev));
	ASSERT_EQ(0, ap_release(&r->pt, AP_RETRY_START));

	EXPECT_EQ(-ECANCELED, ap_reap1(r->ctx, &ev));
	EXPECT_EQ(-EAGAIN, ap_read_now(r->fds[0], buf, 2 * PAGE));
}

/*
 * io_cancel empties the read queue while a direct read is being queued
 * behind it, with bytes in the ring whose wakeup has not gone out yet.
 *
 *   empty channel; R0: a retry read, then the channel goes direct
 *   test               thread W              thread S                aiopipe
 *   io_submit(PREAD R0 100)                                          R0 queued, armed
 *   SET_ENGINE direct
 *   arm write_unlocked
 *                      write(10) ------------------------------->    10 in the ring
 *                      parks: mutex dropped,                         R0 still queued
 *                      wakeup not sent
 *   arm queue_prepared
 *                                            io_submit(PREAD S 100)  readers ahead (R0):
 *                                            parks, mutex held       S pinned, cancel
 *                                                                    fn set, not listed
 *   io_cancel(R0) ------------------------------------------------->  R0 QUEUED: taken
 *   release S ---------------------------->  S listed, alone, with
 *                                            10 bytes in the ring
 *   release W -------> write returns 10
 *   R0: -ECANCELED; S: 10 bytes; no kernel warning (taint bit 9)
 */
TEST_F(retry, queue_race_no_warn)
{
	struct race *r = &self->r;
	char *b0 = page_buf(PAGE), *bs = page_buf(PAGE);
	struct op wo = { .fd = r->fds[1], .buf = "0123456789", .len = 10 };
	struct iocb cb0, cbs, *cbp = &cbs;
	struct op so = { .ctx = r->ctx, .cb = cbp };
	struct io_event ev[2];
	long taint_before, taint_after;
	long res0 = LONG_MIN, ress = LONG_MIN;
	struct ap_call w, s;
	int i, n;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, b0);
	ASSERT_NE(NULL, bs);
	taint_before = ap_tainted();
	ASSERT_LE(0, taint_before);
	if (taint_before & AP_TAINT_WARN)
		TH_LOG("already tainted by a warning (%ld): a new one does not show",
		       taint_before);

	io_prep_pread(&cb0, r->fds[0], b0, 100, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb0));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " queued retry",
				    NULL, 0));
	ASSERT_EQ(0, aiopipe_set_engine(r->fds[0], AIOPIPE_ENGINE_DIRECT));

	ASSERT_EQ(0, ap_arm(&r->pt, AP_WRITE_UNLOCKED));
	ASSERT_EQ(0, ap_call_start(&w, op_write, &wo));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_WRITE_UNLOCKED, 1, AP_LONG_MS));
	EXPECT_EQ(10, ap_fionread(r->fds[0]));
	EXPECT_EQ(1, ap_fdinfo_reqs(r->fds[0], "read", " queued retry",
				    NULL, 0));

	io_prep_pread(&cbs, r->fds[0], bs, 100, 0);
	ASSERT_EQ(0, ap_arm(&r->pt, AP_QUEUE_PREPARED));
	ASSERT_EQ(0, ap_call_start(&s, op_submit, &so));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_QUEUE_PREPARED, 1, AP_LONG_MS));

	EXPECT_EQ(-EINPROGRESS, io_cancel(r->ctx, &cb0, &ev[0]));
	ASSERT_EQ(0, ap_release(&r->pt, AP_QUEUE_PREPARED));
	ASSERT_TRUE(ap_call_join(&s, AP_LONG_MS));
	EXPECT_EQ(1, s.ret);
	ASSERT_EQ(0, ap_release(&r->pt, AP_WRITE_UNLOCKED));
	ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
	EXPECT_EQ(10, w.ret);

	n = ap_getevents(r->ctx, 2, 2, ev, AP_LONG_MS);
	EXPECT_EQ(2, n);
	for (i = 0; i < n; i++) {
		if (ev[i].obj == &cb0)
			res0 = (long)ev[i].res;
		else if (ev[i].obj == &cbs)
			ress = (long)ev[i].res;
	}
	EXPECT_EQ(-ECANCELED, res0);
	EXPECT_EQ(10, ress);
	EXPECT_EQ(0, memcmp(bs, "0123456789", 10));
	taint_after = ap_tainted();
	EXPECT_EQ(0L, (taint_after & ~taint_before) & AP_TAINT_WARN)
		TH_LOG("tainted %ld -> %ld: the kernel warned", taint_before,
		       taint_after);
}

/*
 * io_cancel reaches a read between kiocb_set_cancel_fn() and its listing:
 * the read is marked, never listed, and completes -ECANCELED from the
 * submit itself; a write after it is not taken by it.
 *
 *   empty channel
 *   test                          thread S                    aiopipe
 *   arm queue_prepared
 *                                 io_submit(PREAD S 100) -->  S prepared, cancel
 *                                 parks, mutex held           fn set, not listed
 *   io_cancel(S) -------------------------------------------> S NEW: marked
 *   release ---------------------> io_submit returns 1        S DONE, -ECANCELED,
 *                                                             never listed
 *   write(10): stays in the ring; S: -ECANCELED, 0 bytes
 */
TEST_F(retry, cancel_while_being_queued_completes_unlisted)
{
	struct race *r = &self->r;
	char *bs = page_buf(PAGE), buf[16];
	struct iocb cbs, *cbp = &cbs;
	struct op so = { .ctx = r->ctx, .cb = cbp };
	struct io_event ev;
	struct ap_call s;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, bs);
	io_prep_pread(&cbs, r->fds[0], bs, 100, 0);
	ASSERT_EQ(0, ap_arm(&r->pt, AP_QUEUE_PREPARED));
	ASSERT_EQ(0, ap_call_start(&s, op_submit, &so));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_QUEUE_PREPARED, 1, AP_LONG_MS));

	EXPECT_EQ(-EINPROGRESS, io_cancel(r->ctx, &cbs, &ev));
	ASSERT_EQ(0, ap_release(&r->pt, AP_QUEUE_PREPARED));
	ASSERT_TRUE(ap_call_join(&s, AP_LONG_MS));
	EXPECT_EQ(1, s.ret);
	EXPECT_EQ(0, ap_fdinfo_reqs(r->fds[0], "read", "", NULL, 0));

	EXPECT_EQ(-ECANCELED, ap_reap1(r->ctx, &ev));
	EXPECT_EQ(10, write(r->fds[1], "0123456789", 10));
	EXPECT_EQ(10, ap_fionread(r->fds[0]));
	EXPECT_EQ(10, read(r->fds[0], buf, sizeof(buf)));
}

/*
 *   the ring holds 1 byte
 *   test             thread Q                thread A              thread B
 *   arm read_locked
 *                    read(1): parks,
 *                    mutex held
 *                                            preadv2(RWF_NOWAIT)   pwritev2(RWF_NOWAIT)
 *                                            -1/EAGAIN in 1 s      -1/EAGAIN in 1 s
 *   release -------> read returns 1
 */
TEST_F(retry, nowait_does_not_sleep_on_the_mutex)
{
	struct race *r = &self->r;
	char qbuf[1], abuf[16];
	struct op qo = { .fd = r->fds[0], .buf = qbuf, .len = 1 };
	struct op ao = { .fd = r->fds[0], .buf = abuf, .len = sizeof(abuf) };
	struct op bo = { .fd = r->fds[1], .buf = "b", .len = 1 };
	struct ap_call q, a, b;
	bool a_back, b_back;
	int64_t t0;

	RACE_BEGIN(r);
	ASSERT_EQ(1, write(r->fds[1], "q", 1));
	ASSERT_EQ(0, ap_arm(&r->pt, AP_READ_LOCKED));
	ASSERT_EQ(0, ap_call_start(&q, op_read, &qo));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_READ_LOCKED, 1, AP_LONG_MS));

	t0 = ap_now_ns();
	ASSERT_EQ(0, ap_call_start(&a, op_preadv2_nowait, &ao));
	ASSERT_EQ(0, ap_call_start(&b, op_pwritev2_nowait, &bo));
	a_back = ap_call_wait(&a, NOWAIT_MS);
	b_back = ap_call_wait(&b, (int)(NOWAIT_MS > ap_ms_since(t0) ?
					 NOWAIT_MS - ap_ms_since(t0) : 0));
	EXPECT_TRUE(a_back) TH_LOG("preadv2(RWF_NOWAIT) waited for the mutex");
	EXPECT_TRUE(b_back) TH_LOG("pwritev2(RWF_NOWAIT) waited for the mutex");

	ASSERT_EQ(0, ap_release(&r->pt, AP_READ_LOCKED));
	ASSERT_TRUE(ap_call_join(&q, AP_LONG_MS));
	ASSERT_TRUE(ap_call_join(&a, AP_LONG_MS));
	ASSERT_TRUE(ap_call_join(&b, AP_LONG_MS));
	EXPECT_EQ(1, q.ret);
	EXPECT_EQ('q', qbuf[0]);
	EXPECT_EQ(-1, a.ret);
	EXPECT_EQ(EAGAIN, a.err);
	EXPECT_EQ(-1, b.ret);
	EXPECT_EQ(EAGAIN, b.err);
}

/*
 *   max_capacity M (module parameter); the channel grown past it by root
 *   test (root)                      thread T (no CAP_SYS_RESOURCE)
 *   SET_CAPACITY(2M) -> 2M
 *   arm resize_start
 *                                    SET_CAPACITY(2M), "keep the size":
 *                                    parks before the mutex
 *   SET_CAPACITY(64K) -> 64K
 *   release ------------------------> now a grow past M: -1/EPERM
 *   the capacity stays 64K
 */
TEST_F(retry, resize_privilege_checked_under_the_lock)
{
	struct race *r = &self->r;
	long max;
	struct op to = { .fd = r->fds[1] };
	struct ap_call t;

	RACE_BEGIN(r);
	if (!have_cap_sys_resource())
		SKIP(return, "needs CAP_SYS_RESOURCE to grow past max_capacity first");
	max = (long)read_ulong("/sys/module/aiopipe/parameters/max_capacity");
	ASSERT_LT(0, max);
	ASSERT_GE(1L << 30, max);
	to.cap = 2 * max;
	ASSERT_LT(SMALL_CAP, (int)to.cap);
	ASSERT_EQ((int)to.cap, aiopipe_set_capacity(r->fds[0], to.cap));

	ASSERT_EQ(0, ap_arm(&r->pt, AP_RESIZE_START));
	ASSERT_EQ(0, ap_call_start(&t, op_set_capacity_unprivileged, &to));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_RESIZE_START, 1, AP_LONG_MS));
	EXPECT_EQ(SMALL_CAP, aiopipe_set_capacity(r->fds[0], SMALL_CAP));
	ASSERT_EQ(0, ap_release(&r->pt, AP_RESIZE_START));
	ASSERT_TRUE(ap_call_join(&t, AP_LONG_MS));

	EXPECT_EQ(-1, t.ret);
	EXPECT_EQ(EPERM, t.err);
	EXPECT_EQ(SMALL_CAP, aiopipe_get_capacity(r->fds[0]));
}

/* The module's copy fault attribute (debug kernels: fault injection). */
#define FAIL_COPY	"/sys/kernel/debug/aiopipe/fail_copy"

static int fail_copy_attr(const char *name, const char *value)
{
	char path[128];
	int fd, ret = 0;

	snprintf(path, sizeof(path), FAIL_COPY "/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* The next @times copies of the module fail, every one; 0 turns it off. */
static int fail_copy_next(const char *times)
{
	int ret = fail_copy_attr("probability", "0");

	if (!ret && strcmp(times, "0")) {
		ret = fail_copy_attr("interval", "1") ?:
		      fail_copy_attr("space", "0") ?:
		      fail_copy_attr("verbose", "0") ?:
		      fail_copy_attr("task-filter", "N") ?:
		      fail_copy_attr("times", times) ?:
		      fail_copy_attr("probability", "100");
	}
	return ret;
}

/*
 * A fault-in can report success and map nothing for a while (a userfaultfd
 * being closed answers "done" to every fault until its ranges are gone);
 * twelve copies failing in a row after successful fault-ins stand in for
 * that window here.  The retry pauses before each repeated fault-in (1, 2,
 * 4 ... 128 ms: at least 600 ms for eleven) and goes on; the read
 * completes with the bytes, not with -EFAULT.  fail_copy is global: no
 * other test may use the module meanwhile (the harness runs one at a time).
 *
 *   test                                   retry worker
 *   io_submit(PREAD 2) on the empty pipe
 *   arm retry_start
 *   write "ab" ------------------------->  kicked: parks
 *   the next 12 copies fail
 *   release ---------------------------->  copy fails, fault-in succeeds,
 *                                          12 times, each later one after
 *                                          a longer pause; copy 13: "ab"
 *   io_getevents: 2, "ab"
 */
TEST_F(retry, copies_failing_after_good_fault_ins_are_retried_patiently)
{
	struct race *r = &self->r;
	char *page = page_buf(PAGE);
	struct io_event ev;
	struct iocb cb;
	int64_t t0;

	RACE_BEGIN(r);
	if (access(FAIL_COPY, F_OK))
		SKIP(return, "no %s: a kernel without fault injection", FAIL_COPY);
	ASSERT_NE(NULL, page);
	memset(page, 0, PAGE);
	io_prep_pread(&cb, r->fds[0], page, 2, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(0, ap_arm(&r->pt, AP_RETRY_START));
	ASSERT_EQ(2, write(r->fds[1], "ab", 2));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_RETRY_START, 1, AP_LONG_MS));

	r->fail_copy = true;
	ASSERT_EQ(0, fail_copy_next("12"));
	t0 = ap_now_ns();
	ASSERT_EQ(0, ap_release(&r->pt, AP_RETRY_START));
	EXPECT_EQ(2, ap_reap1(r->ctx, &ev));
	EXPECT_LE(300, ap_ms_since(t0)) TH_LOG("no pause between the fault-ins");
	EXPECT_EQ(0, fail_copy_next("0"));
	r->fail_copy = false;
	EXPECT_EQ(0, memcmp(page, "ab", 2));
	munmap(page, PAGE);
}

/*
 * A queued write of at most PIPE_BUF bytes whose twenty segments each sit on
 * a page never touched: the retry copies it whole into a bounce buffer, so
 * it moves nothing until the last page is in, faulting one page per step.
 * Each fault-in lets the copy stop further on: that is progress, and 20
 * of them in a row (more than the repeat bound) still complete the write.
 *
 *   test                                   retry worker
 *   write 4096: the ring is full
 *   io_submit(PWRITEV 20 x 8 bytes) -----> queued
 *   read 4096 ---------------------------> kicked: copy stops at segment
 *                                          0, 1, ... 19, one fault-in each
 *   io_getevents: 160; read: 160 zero bytes
 */
TEST_F(retry, atomic_write_over_cold_pages_faults_them_in_one_by_one)
{
	enum { SEGS = 20, SEG = 8 };
	struct race *r = &self->r;
	char *fill = page_buf(RING), *pages = page_buf(SEGS * PAGE);
	char buf[RING], zero[SEGS * SEG] = { 0 };
	struct iovec iov[SEGS];
	struct io_event ev;
	struct iocb cb;

	RACE_BEGIN(r);
	ASSERT_NE(NULL, fill);
	ASSERT_NE(NULL, pages);
	for (int i = 0; i < SEGS; i++)
		iov[i] = (struct iovec){ pages + i * PAGE, SEG };
	ASSERT_EQ(RING, write(r->fds[1], fill, RING));
	io_prep_pwritev(&cb, r->fds[1], iov, SEGS, 0);
	ASSERT_EQ(1, ap_submit1(r->ctx, &cb));
	ASSERT_EQ(1, ap_fdinfo_reqs(r->fds[0], "write", " queued retry",
				    NULL, 0));

	ASSERT_EQ(RING, read(r->fds[0], buf, RING));
	EXPECT_EQ(SEGS * SEG, ap_reap1(r->ctx, &ev));
	EXPECT_EQ(SEGS * SEG, ap_read_now(r->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, zero, sizeof(zero)));
	munmap(pages, SEGS * PAGE);
	munmap(fill, RING);
}

/*
 * Ring mode: two pipes, P and Q, attached to one ring of a single event
 * slot (so a slot held is the whole ring) and four 64-byte buffers.
 */
FIXTURE(ring) {
	struct race r;		/* P: the pair the pause points watch */
	int q[2];
	struct aiopipe_ring ring;
};

FIXTURE_SETUP(ring)
{
	int ret;

	self->q[0] = self->q[1] = -1;
	self->ring.fd = -1;
	race_setup(_metadata, &self->r, AIOPIPE_ENGINE_RETRY);
	if (self->r.skip)
		return;
	ret = aiopipe_ring_setup(&self->ring, 1, 4, 64, O_CLOEXEC);
	if (ret == -ENOTTY) {
		self->r.skip = true;
		SKIP(return, "no ring mode in this module");
	}
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, aiopipe_pair(self->q, O_CLOEXEC));
	ASSERT_EQ(0, aiopipe_ring_attach(&self->ring, self->r.fds[0], 'P'));
	ASSERT_EQ(0, aiopipe_ring_attach(&self->ring, self->q[0], 'Q'));
}

FIXTURE_TEARDOWN(ring)
{
	race_teardown(&self->r);
	if (self->ring.fd >= 0)
		aiopipe_ring_exit(&self->ring);
	if (self->q[0] >= 0)
		close(self->q[0]);
	if (self->q[1] >= 0)
		close(self->q[1]);
}

static long op_ring_wait(struct ap_call *c)
{
	return aiopipe_ring_wait(c->arg, 1, 5000000000LL);
}

/* The next event, or a zeroed one when there is none. */
static struct aiopipe_ring_event ring_next(struct aiopipe_ring *ring)
{
	struct aiopipe_ring_event *ev = aiopipe_ring_peek(ring);
	struct aiopipe_ring_event none = { 0 };

	return ev ? *ev : none;
}

/*
 * Start write(P, 12) from a page of a userfaultfd nobody serves yet and
 * wait until the writer is in that fault.  *@uffd is -1 without
 * userfaultfd (nothing started).
 */
static void ring_write_in_uffd_fault(struct __test_metadata *_metadata,
				     struct race *r, struct ap_call *pw,
				     struct op *po, char **page, int *uffd)
{
	struct uffd_msg msg;
	struct pollfd pfd;

	*uffd = ap_uffd_page(page);
	if (*uffd < 0)
		return;
	*po = (struct op){ .fd = r->fds[1], .buf = *page, .len = 12 };
	ASSERT_EQ(0, ap_call_start(pw, op_write, po));
	pfd = (struct pollfd){ .fd = *uffd, .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, AP_LONG_MS));
	ASSERT_EQ((ssize_t)sizeof(msg), read(*uffd, &msg, sizeof(msg)));
}

/*
 * P's writer waits in a page fault that another process decides (a
 * userfaultfd nobody serves yet).  It must not hold the ring's event slot
 * or a buffer meanwhile: Q's bytes are delivered, and P's follow once its
 * page is there.
 *
 *   P's writer (uffd page)              test
 *   write(P, 12): buffer taken, slot
 *   promised; the copy stops (page
 *   faults disabled): slot and buffer
 *   given back; fault-in -> uffd
 *                                       the uffd event: P is in its fault
 *                                       write(Q, 12): DATA(Q)
 *                                       RING_WAIT: 1, DATA(Q)
 *                                       serve the page (zeros)
 *   copy again: no slot (DATA(Q) is
 *   unreaped): byte ring, READ(P) owed
 *                                       reap DATA(Q): advance sees OWED and
 *                                       collects: READ(P) 12; read: zeros
 *
 * Before, the writer faulted with the slot promised: Q's bytes went to its
 * byte ring with their READ event owed, and RING_WAIT timed out for as
 * long as the fault lasted.
 */
TEST_F(ring, a_writer_in_a_page_fault_holds_no_slot_of_the_ring)
{
	struct race *r = &self->r;
	struct uffdio_zeropage zero = { 0 };
	struct aiopipe_ring_event ev;
	struct ap_call pw;
	char *page, buf[12];
	struct op po;
	int uffd;

	RACE_BEGIN(r);
	ring_write_in_uffd_fault(_metadata, r, &pw, &po, &page, &uffd);
	if (uffd < 0)
		SKIP(return, "no userfaultfd");

	ASSERT_EQ(12, write(self->q[1], "from-pipe-Q!", 12));
	EXPECT_EQ(1, aiopipe_ring_wait(&self->ring, 1, 2000000000LL));
	ev = ring_next(&self->ring);
	EXPECT_EQ(AIOPIPE_EV_DATA, ev.type);
	EXPECT_EQ((__u64)'Q', ev.user_data);
	EXPECT_EQ(12U, ev.len);

	zero.range.start = (unsigned long)page;
	zero.range.len = 4096;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero));
	ASSERT_TRUE(ap_call_join(&pw, AP_LONG_MS));
	EXPECT_EQ(12, pw.ret);

	aiopipe_ring_give_back(&self->ring, ev.buf);
	aiopipe_ring_advance(&self->ring, 1);
	ev = ring_next(&self->ring);
	EXPECT_EQ(AIOPIPE_EV_READ, ev.type);
	EXPECT_EQ((__u64)'P', ev.user_data);
	EXPECT_EQ(12U, ev.len);
	memset(buf, 'x', sizeof(buf));
	EXPECT_EQ(12, read(r->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(page, buf, sizeof(buf)));
	EXPECT_EQ(1, AP_STAT(r->fds[0], ring_owed));
	close(uffd);
	munmap(page, 4096);
}

/*
 * A fill whose copy moves nothing gives its promised slot back, and the
 * slot pays what was owed meanwhile: the reader waiting for it wakes.
 * Debug kernels (fail_copy).
 *
 *   P's writer                  test                          T
 *   write(P, 12): slot
 *   promised, parks
 *                               write(Q, 12): no room:
 *                               byte ring, READ(Q) owed
 *                                                             RING_WAIT(1, 5 s)
 *                               the next copy fails
 *   release --> copy: nothing;
 *   slot back: READ(Q) posted,
 *   T woken; P's bytes: byte
 *   ring, READ(P) owed
 *                                                             1: READ(Q)
 *
 * Before, the slot came back silently: T slept its whole timeout with a
 * free slot and an owed event.
 */
TEST_F(ring, a_fill_that_copies_nothing_pays_what_is_owed)
{
	struct race *r = &self->r;
	struct aiopipe_ring_event ev;
	struct ap_call pw, t;
	struct op po = { .fd = r->fds[1], .buf = "from-pipe-P!", .len = 12 };

	RACE_BEGIN(r);
	if (access(FAIL_COPY, F_OK))
		SKIP(return, "no %s: a kernel without fault injection", FAIL_COPY);
	ASSERT_EQ(0, ap_arm(&r->pt, AP_RING_FILLING));
	ASSERT_EQ(0, ap_call_start(&pw, op_write, &po));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_RING_FILLING, 1, AP_LONG_MS));
	ASSERT_EQ(12, write(self->q[1], "from-pipe-Q!", 12));
	EXPECT_EQ(1, AP_STAT(self->q[0], ring_owed));
	ASSERT_EQ(0, ap_call_start(&t, op_ring_wait, &self->ring));

	r->fail_copy = true;
	ASSERT_EQ(0, fail_copy_next("1"));
	ASSERT_EQ(0, ap_release(&r->pt, AP_RING_FILLING));
	ASSERT_TRUE(ap_call_join(&pw, AP_LONG_MS));
	EXPECT_EQ(0, fail_copy_next("0"));
	r->fail_copy = false;
	EXPECT_EQ(12, pw.ret);
	ASSERT_TRUE(ap_call_join(&t, GUARD_MS)) TH_LOG("the reader still sleeps");
	EXPECT_EQ(1, t.ret);
	ev = ring_next(&self->ring);
	EXPECT_EQ(AIOPIPE_EV_READ, ev.type);
	EXPECT_EQ((__u64)'Q', ev.user_data);
	EXPECT_EQ(12U, ev.len);
}

/*
 * A page that goes away again between the fault-in and the copy (reclaim,
 * migration, another thread's MADV_DONTNEED) is faulted in again: the
 * write is not cut short with EFAULT for memory that is there.
 *
 *   P's writer (uffd page)              test
 *   write(P, 12): copy stops (page
 *   missing); fault-in -> uffd
 *                                       the uffd event; arm ring_filling
 *                                       serve the page (zeros)
 *   parks before the second copy
 *                                       MADV_DONTNEED the page; release
 *   copy again: nothing (gone);
 *   fault-in again -> uffd
 *                                       the second uffd event: serve it
 *   copy: DATA(P) 12; write -> 12
 *
 * Before, a copy that moved nothing right after a fault-in was -EFAULT:
 * write(2) failed on a valid buffer.
 */
TEST_F(ring, a_page_gone_again_after_the_fault_in_is_faulted_in_again)
{
	struct race *r = &self->r;
	struct uffdio_zeropage zero = { 0 };
	struct aiopipe_ring_event ev;
	struct ap_call pw;
	struct uffd_msg msg;
	struct pollfd pfd;
	struct op po;
	char *page;
	int uffd;

	RACE_BEGIN(r);
	ring_write_in_uffd_fault(_metadata, r, &pw, &po, &page, &uffd);
	if (uffd < 0)
		SKIP(return, "no userfaultfd");
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	ASSERT_EQ(0, ap_arm(&r->pt, AP_RING_FILLING));
	zero.range.start = (unsigned long)page;
	zero.range.len = 4096;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero));
	ASSERT_EQ(1, ap_wait_parked(&r->pt, AP_RING_FILLING, 1, AP_LONG_MS));
	ASSERT_EQ(0, madvise(page, 4096, MADV_DONTNEED));
	ASSERT_EQ(0, ap_release(&r->pt, AP_RING_FILLING));

	if (poll(&pfd, 1, GUARD_MS) == 1) {
		ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));
		ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero));
	}
	ASSERT_TRUE(ap_call_join(&pw, AP_LONG_MS));
	EXPECT_EQ(12, pw.ret) TH_LOG("write(2) of a valid buffer: %ld", pw.ret);
	ev = ring_next(&self->ring);
	EXPECT_EQ(AIOPIPE_EV_DATA, ev.type);
	EXPECT_EQ((__u64)'P', ev.user_data);
	EXPECT_EQ(12U, ev.len);
	close(uffd);
	munmap(page, 4096);
}

TEST_HARNESS_MAIN
