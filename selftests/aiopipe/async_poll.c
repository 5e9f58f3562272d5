// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe in the rest of the kernel's async world (docs/async.md,
 * "Notification"):
 *
 *  - IOCB_FLAG_RESFD: a queued request's completion signals an eventfd,
 *    whoever completes it (the peer inline on the direct engine, a kworker
 *    on the retry engine);
 *  - an epoll loop that mixes such an eventfd with a kernel pipe and an
 *    aiopipe read end polled directly;
 *  - IOCB_CMD_POLL on the read end, on the write end, and on an O_RDWR
 *    /dev/aiopipeN (one wait queue per channel makes it acceptable; an idle
 *    O_RDWR kernel FIFO is refused with EINVAL); HUP and ERR; cancel;
 *  - libaio's io_queue_run() callbacks;
 *  - poll(2) never reports bytes a queued read will take: ready means a
 *    nonblocking read would not get EAGAIN (io_uring retries on it).
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE	4096

FIXTURE(notify) {
	int fds[2];
	io_context_t ctx;
	int efd;
};

FIXTURE_VARIANT(notify) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(notify);

FIXTURE_SETUP(notify)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(64, &self->ctx));
	self->efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, self->efd);
}

FIXTURE_TEARDOWN(notify)
{
	io_destroy(self->ctx);
	close(self->efd);
	backend_close(self->fds);
}

/* Read the eventfd until it has counted @n completions (bounded). */
static long long efd_collect(int efd, long long n)
{
	long long total = 0;

	while (total < n && ap_poll1(efd, POLLIN, AP_LONG_MS) == 1) {
		uint64_t v;

		if (read(efd, &v, sizeof(v)) != sizeof(v))
			break;
		total += (long long)v;
	}
	return total;
}

/*
 *   io_submit(PREAD, RESFD=efd) --> queued; the eventfd stays at 0
 *   write("x") -------------------> completion: eventfd 1, then the event
 */
TEST_F(notify, eventfd_signals_a_queued_read_completion)
{
	struct io_event ev;
	struct iocb cb;
	char buf[8];

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	io_set_eventfd(&cb, self->efd);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, ap_poll1(self->efd, POLLIN, AP_QUIET_MS));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(1, efd_collect(self->efd, 1));
	EXPECT_EQ(1, ap_reap1(self->ctx, &ev));
}

TEST_F(notify, eventfd_signals_a_queued_write_completion)
{
	char fill[PAGE] = { 0 };
	struct iocb cb;

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_pwrite(&cb, self->fds[1], "abc", 3, 0);
	io_set_eventfd(&cb, self->efd);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(0, ap_poll1(self->efd, POLLIN, AP_QUIET_MS));
	ASSERT_EQ(PAGE, read(self->fds[0], fill, PAGE));
	EXPECT_EQ(1, efd_collect(self->efd, 1));
	EXPECT_EQ(3, ap_reap1(self->ctx, NULL));
}

/* Eight 1-byte reads, one 8-byte write: the eventfd counts 8. */
TEST_F(notify, eventfd_counts_every_completion)
{
	struct iocb cbs[8], *cbp[8];
	struct io_event ev[8];
	char buf[8];

	for (int i = 0; i < 8; i++) {
		io_prep_pread(&cbs[i], self->fds[0], &buf[i], 1, 0);
		io_set_eventfd(&cbs[i], self->efd);
		cbp[i] = &cbs[i];
	}
	ASSERT_EQ(8, io_submit(self->ctx, 8, cbp));
	ASSERT_EQ(8, write(self->fds[1], "01234567", 8));
	EXPECT_EQ(8, efd_collect(self->efd, 8));
	ASSERT_EQ(8, ap_getevents(self->ctx, 8, 8, ev, AP_LONG_MS));
	EXPECT_EQ(0, memcmp(buf, "01234567", 8));
}

/*
 * The epoll loop.
 *
 *   producer thread                      event loop (epoll_wait)
 *   for r in 0..199:                     efd (RESFD of 8 aiopipes with one
 *     aiopipe[r % 8] <- byte r             queued PREAD each): reap, check,
 *     kernel pipe    <- byte r             resubmit on that aiopipe
 *     aiopipe X      <- byte r           kernel pipe: read(2)
 *                                        aiopipe X read end: read(2)
 *   every source delivers its 200 bytes, each in order
 */
#define NAP	8
#define ROUNDS	200

struct producer {
	int ap[NAP];
	int kp, x;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int r = 0; r < ROUNDS; r++) {
		unsigned char b = (unsigned char)r;

		if (write(p->ap[r % NAP], &b, 1) != 1 ||
		    write(p->kp, &b, 1) != 1 || write(p->x, &b, 1) != 1)
			return (void *)1;
	}
	return NULL;
}

TEST_F(notify, epoll_loop_mixes_the_aio_eventfd_with_other_fds)
{
	int ap[NAP][2], kp[2], x[2], ep;
	struct iocb cbs[NAP];
	unsigned char buf[NAP], tmp[64];
	int next_ap[NAP] = { 0 }, next_kp = 0, next_x = 0, aio_done = 0;
	struct producer prod;
	pthread_t thr;
	struct epoll_event ee;
	void *thr_ret;

	ASSERT_EQ(0, pipe(kp));
	ASSERT_EQ(0, ap_pair(x, 0, 0, AIOPIPE_ENGINE_DEFAULT,
			     AIOPIPE_FILTER_ON));
	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	ee = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 0 };
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->efd, &ee));
	ee.data.u32 = 1;
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, kp[0], &ee));
	ee.data.u32 = 2;
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, x[0], &ee));
	for (int i = 0; i < NAP; i++) {
		ASSERT_EQ(0, ap_pair(ap[i], 0, 0,
				     aiopipe_get_engine(self->fds[0]),
				     AIOPIPE_FILTER_ON));
		io_prep_pread(&cbs[i], ap[i][0], &buf[i], 1, 0);
		io_set_eventfd(&cbs[i], self->efd);
		cbs[i].data = (void *)(long)i;
		ASSERT_EQ(1, ap_submit1(self->ctx, &cbs[i]));
		prod.ap[i] = ap[i][1];
	}
	prod.kp = kp[1];
	prod.x = x[1];
	ASSERT_EQ(0, pthread_create(&thr, NULL, produce, &prod));

	while (aio_done < ROUNDS || next_kp < ROUNDS || next_x < ROUNDS) {
		struct epoll_event evs[4];
		int n = epoll_wait(ep, evs, 4, AP_LONG_MS);

		ASSERT_LT(0, n) TH_LOG("stuck: aio %d, pipe %d, aiopipe %d",
				       aio_done, next_kp, next_x);
		for (int e = 0; e < n; e++) {
			if (evs[e].data.u32 == 0) {
				struct io_event ioev[NAP];
				uint64_t cnt;
				int got;

				/*
				 * exactly as many as counted: later ones are
				 * counted by the eventfd and reaped later
				 */
				ASSERT_EQ(8, read(self->efd, &cnt, 8));
				got = ap_getevents(self->ctx, (int)cnt,
						   (int)cnt, ioev, AP_LONG_MS);
				ASSERT_EQ((int)cnt, got);
				for (int k = 0; k < got; k++) {
					int i = (int)(long)ioev[k].data;

					ASSERT_EQ(1, (long)ioev[k].res);
					ASSERT_EQ(next_ap[i] * NAP + i, buf[i])
						TH_LOG("aiopipe %d out of order", i);
					next_ap[i]++;
					aio_done++;
					if (next_ap[i] * NAP + i < ROUNDS)
						ASSERT_EQ(1, ap_submit1(self->ctx,
									&cbs[i]));
				}
			} else {
				int fd = evs[e].data.u32 == 1 ? kp[0] : x[0];
				int *next = evs[e].data.u32 == 1 ? &next_kp :
								   &next_x;
				ssize_t r = read(fd, tmp, sizeof(tmp));

				ASSERT_LT(0, r);
				for (ssize_t k = 0; k < r; k++, (*next)++)
					ASSERT_EQ((unsigned char)*next, tmp[k]);
			}
		}
	}
	pthread_join(thr, &thr_ret);
	EXPECT_EQ(NULL, thr_ret);
	EXPECT_EQ(ROUNDS, aio_done);
	for (int i = 0; i < NAP; i++) {
		AP_EXPECT_IDLE(ap[i][0]);
		backend_close(ap[i]);
	}
	backend_close(kp);
	backend_close(x);
	close(ep);
}

/* ---- IOCB_CMD_POLL ------------------------------------------------------ */

TEST_F(notify, aio_poll_on_the_read_end)
{
	struct io_event ev;
	struct iocb cb;

	io_prep_poll(&cb, self->fds[0], POLLIN);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(POLLIN, (int)ev.res & POLLIN);
}

TEST_F(notify, aio_poll_on_the_write_end)
{
	char fill[PAGE] = { 0 };
	struct io_event ev;
	struct iocb cb;

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_poll(&cb, self->fds[1], POLLOUT);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	ASSERT_EQ(PAGE, read(self->fds[0], fill, PAGE));
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(POLLOUT, (int)ev.res & POLLOUT);
}

TEST_F(notify, aio_poll_ready_completes_at_once)
{
	struct io_event ev;
	struct iocb cb;

	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	io_prep_poll(&cb, self->fds[0], POLLIN);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, 0));
	EXPECT_EQ(POLLIN, (int)ev.res & POLLIN);
}

TEST_F(notify, aio_poll_sees_hup_when_the_writer_closes)
{
	struct io_event ev;
	struct iocb cb;

	io_prep_poll(&cb, self->fds[0], POLLIN);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(POLLHUP, (int)ev.res & POLLHUP);
}

TEST_F(notify, aio_poll_sees_err_when_the_reader_closes)
{
	char fill[PAGE] = { 0 };
	struct io_event ev;
	struct iocb cb;

	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	ASSERT_EQ(PAGE, write(self->fds[1], fill, PAGE));
	io_prep_poll(&cb, self->fds[1], POLLOUT);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	close(self->fds[0]);
	self->fds[0] = -1;
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(POLLERR, (int)ev.res & POLLERR);
}

TEST_F(notify, aio_poll_cancel_of_a_pending_poll)
{
	struct io_event ev;
	struct iocb cb;

	io_prep_poll(&cb, self->fds[0], POLLIN);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(0, (int)ev.res & POLLIN);
	EXPECT_TRUE(ap_no_event(self->ctx));
	/* the channel is untouched */
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(1, ap_fionread(self->fds[0]));
}

/*
 * One wait queue per channel: IOCB_CMD_POLL accepts an O_RDWR named FIFO.
 * A kernel FIFO opened O_RDWR registers two queues and, idle, is refused.
 *
 *   open /dev/aiopipe0 O_RDWR; POLL(POLLIN) --> queued (not EINVAL)
 *   write(same fd, "x") --------------------> event POLLIN
 *   control: mkfifo, open O_RDWR, POLL(POLLIN) --> io_submit -EINVAL
 */
TEST_F(notify, aio_poll_on_an_o_rdwr_named_fifo)
{
	const char *path = "/tmp/async_poll.fifo";
	struct io_event ev;
	struct iocb cb;
	char c;
	int fd, kfd;

	fd = open("/dev/aiopipe0", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	while (ap_read_now(fd, &c, 1) == 1)
		;	/* start empty whatever earlier tests left */
	io_prep_poll(&cb, fd, POLLIN);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_TRUE(ap_no_event(self->ctx));
	ASSERT_EQ(1, write(fd, "x", 1));
	ASSERT_EQ(1, ap_getevents(self->ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(POLLIN, (int)ev.res & POLLIN);
	EXPECT_EQ(1, read(fd, &c, 1));
	close(fd);

	unlink(path);
	ASSERT_EQ(0, mkfifo(path, 0600));
	kfd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, kfd);
	io_prep_poll(&cb, kfd, POLLIN);
	EXPECT_EQ(-EINVAL, ap_submit1(self->ctx, &cb));
	close(kfd);
	unlink(path);
}

/* ---- io_queue_run --------------------------------------------------------- */

static struct {
	int calls;
	long res[8];
	struct iocb *cb[8];
} cbrec;

static void on_done(io_context_t ctx, struct iocb *cb, long res, long res2)
{
	if (cbrec.calls < 8) {
		cbrec.res[cbrec.calls] = res;
		cbrec.cb[cbrec.calls] = cb;
	}
	cbrec.calls++;
}

/*
 *   8 x PREAD 1 byte, io_set_callback + RESFD
 *   write("abcdefgh") --> eventfd counts 8
 *   io_queue_run ------> on_done() 8 times, res 1 each, bytes in order
 */
TEST_F(notify, io_queue_run_calls_the_callbacks)
{
	struct iocb cbs[8], *cbp[8];
	char buf[8];

	memset(&cbrec, 0, sizeof(cbrec));
	for (int i = 0; i < 8; i++) {
		io_prep_pread(&cbs[i], self->fds[0], &buf[i], 1, 0);
		io_set_callback(&cbs[i], on_done);
		io_set_eventfd(&cbs[i], self->efd);
		cbp[i] = &cbs[i];
	}
	ASSERT_EQ(8, io_submit(self->ctx, 8, cbp));
	EXPECT_EQ(0, io_queue_run(self->ctx));
	EXPECT_EQ(0, cbrec.calls);
	ASSERT_EQ(8, write(self->fds[1], "abcdefgh", 8));
	ASSERT_EQ(8, efd_collect(self->efd, 8));
	EXPECT_EQ(0, io_queue_run(self->ctx));
	ASSERT_EQ(8, cbrec.calls);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(1, cbrec.res[i]);
	EXPECT_EQ(0, memcmp(buf, "abcdefgh", 8));
}

/*
 * The retry engine's worker copies into a page that faults on a
 * userfaultfd, so a queued read holds its place while bytes sit in the ring.
 *
 *   test                                  kworker
 *   PREAD 2 into the uffd page: queued
 *   write("abcdef") --------------------> retry: copy "ab" faults, waits
 *   poll(read end): no POLLIN, the bytes are the queued read's first
 *   close(uffd) ------------------------> the fault resolves: "ab" copied,
 *                                         the read completes, the queue is
 *   poll(read end, 10 s): POLLIN  <------ empty: pollers behind it woken
 *   read: "cdef"
 */
TEST_F(notify, poll_does_not_offer_bytes_a_queued_read_will_take)
{
	struct io_event ev;
	struct iocb cb;
	char *page, buf[8];
	int uffd;

	if (ap_is_direct(variant->engine))
		SKIP(return, "the direct engine pins (and so faults in) the page at submit");
	uffd = ap_uffd_page(&page);
	if (uffd < 0 && errno == ENOSYS)
		SKIP(return, "no userfaultfd in this kernel (CONFIG_USERFAULTFD)");
	ASSERT_LE(0, uffd) TH_LOG("userfaultfd page: %s", strerror(errno));

	io_prep_pread(&cb, self->fds[0], page, 2, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(6, write(self->fds[1], "abcdef", 6));
	ASSERT_EQ(1, ap_poll1(uffd, POLLIN, AP_LONG_MS))
		TH_LOG("the retry never faulted on the registered page");
	EXPECT_EQ(0, ap_poll1(self->fds[0], POLLIN, 0))
		TH_LOG("poll offered bytes that the queued read is taking");

	close(uffd);	/* the poll below mostly sleeps until the read is done */
	EXPECT_EQ(1, ap_poll1(self->fds[0], POLLIN, AP_LONG_MS));
	EXPECT_EQ(2, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(0, memcmp(page, "ab", 2));
	EXPECT_EQ(4, ap_read_now(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "cdef", 4));
	munmap(page, PAGE);
}

TEST_HARNESS_MAIN
