// SPDX-License-Identifier: GPL-2.0
/*
 * Small reads on the direct engine (docs/async.md, "Small reads"): a read
 * of at most small_read_max bytes (module parameter, default 256) from a
 * user buffer is not pinned.  A writer running in the reader's address
 * space fills it in place, through a bounce buffer on its stack, with page
 * faults disabled on the reader's side; a writer in another address space,
 * or a reader's page that is not there, sends the bytes through the ring to
 * the request's worker, as on the retry engine.  Larger reads are pinned
 * as before, and small_read_max=0 pins every read.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE		4096
#define TOKEN		"0123456789ab"
#define TOKEN_LEN	12

/* The module parameter, or -1 if it cannot be read. */
static long small_read_max(void)
{
	char buf[32];

	if (ap_param_read("small_read_max", buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10);
}

FIXTURE(small) {
	int fds[2];
	io_context_t ctx;
	long max;		/* small_read_max at setup */
	bool restore;		/* teardown writes max back */
};

FIXTURE_SETUP(small)
{
	self->fds[0] = self->fds[1] = -1;
	self->max = small_read_max();
	if (self->max < TOKEN_LEN)
		SKIP(return, "small_read_max is %ld: small reads are pinned",
		     self->max);
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, AIOPIPE_ENGINE_DIRECT,
			     AIOPIPE_FILTER_ON));
	ASSERT_EQ(0, io_setup(8, &self->ctx));
}

FIXTURE_TEARDOWN(small)
{
	char val[32];

	if (self->restore) {
		snprintf(val, sizeof(val), "%ld", self->max);
		ap_param_write("small_read_max", val);
	}
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
}

/* Queue a PREAD of @len bytes into @buf on the empty channel. */
static void queue_read(struct __test_metadata *_metadata,
		       FIXTURE_DATA(small) *self, struct iocb *cb, void *buf,
		       size_t len)
{
	io_prep_pread(cb, self->fds[0], buf, len, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, cb));
	EXPECT_EQ(true, ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(self->fds[0], pending_reads));
}

/*
 *   io_submit(PREAD 12 B) --> queued, nothing pinned
 *   write(12 B) ------------> copied into the reader's buffer in write()
 *                             (completed by the peer, no retry)
 */
TEST_F(small, small_read_is_filled_in_place_without_a_pin)
{
	char buf[TOKEN_LEN + 1] = "";
	struct iocb cb;

	queue_read(_metadata, self, &cb, buf, TOKEN_LEN);
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(TOKEN_LEN, write(self->fds[1], TOKEN, TOKEN_LEN));
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_STREQ(TOKEN, buf);
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_peer));
	EXPECT_EQ(0, AP_STAT(self->fds[0], retries));
	EXPECT_EQ(TOKEN_LEN, AP_STAT(self->fds[0], bytes_single_copy));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages_peak));
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_F(small, read_above_small_read_max_is_pinned)
{
	char *buf = calloc(1, (size_t)self->max + 1);
	struct iocb cb;

	ASSERT_NE(NULL, buf);
	queue_read(_metadata, self, &cb, buf, (size_t)self->max + 1);
	EXPECT_EQ(1, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(TOKEN_LEN, write(self->fds[1], TOKEN, TOKEN_LEN));
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(TOKEN, buf, TOKEN_LEN));
	EXPECT_EQ(0, AP_STAT(self->fds[0], pinned_pages));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_peer));
	AP_EXPECT_IDLE(self->fds[0]);
	free(buf);
}

TEST_F(small, small_read_max_zero_pins_every_read)
{
	char buf[TOKEN_LEN + 1] = "";
	struct iocb cb;

	if (geteuid())
		SKIP(return, "writing module parameters needs root");
	self->restore = true;
	ASSERT_EQ(0, ap_param_write("small_read_max", "0"));
	queue_read(_metadata, self, &cb, buf, TOKEN_LEN);
	EXPECT_EQ(1, AP_STAT(self->fds[0], pinned_pages));
	ASSERT_EQ(TOKEN_LEN, write(self->fds[1], TOKEN, TOKEN_LEN));
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_STREQ(TOKEN, buf);
	AP_EXPECT_IDLE(self->fds[0]);
}

static void *write_token(void *arg)
{
	int fd = *(int *)arg;

	return (void *)(intptr_t)write(fd, TOKEN, TOKEN_LEN);
}

/*
 *   main thread                    second thread (same mm)
 *   io_submit(PREAD 12 B)
 *                                  write(12 B): fills the read in place
 *   io_getevents: 12
 */
TEST_F(small, writer_thread_of_the_reader_fills_it_in_place)
{
	char buf[TOKEN_LEN + 1] = "";
	struct iocb cb;
	pthread_t t;
	void *ret;

	queue_read(_metadata, self, &cb, buf, TOKEN_LEN);
	ASSERT_EQ(0, pthread_create(&t, NULL, write_token, &self->fds[1]));
	ASSERT_EQ(0, pthread_join(t, &ret));
	EXPECT_EQ(TOKEN_LEN, (intptr_t)ret);
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_STREQ(TOKEN, buf);
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_peer));
	EXPECT_EQ(0, AP_STAT(self->fds[0], retries));
}

/*
 *   parent                          child (fork: another mm)
 *   io_submit(PREAD 12 B)
 *                                   write(12 B): cannot reach the parent's
 *                                   buffer; into the ring, wakeup
 *   worker: copies as the parent
 *   io_getevents: 12
 */
TEST_F(small, writer_in_another_process_leaves_it_to_the_worker)
{
	char buf[TOKEN_LEN + 1] = "";
	struct iocb cb;
	int status;
	pid_t pid;

	queue_read(_metadata, self, &cb, buf, TOKEN_LEN);
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(write(self->fds[1], TOKEN, TOKEN_LEN) == TOKEN_LEN ?
		      0 : 1);
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_STREQ(TOKEN, buf);
	EXPECT_EQ(0, AP_STAT(self->fds[0], completed_by_peer));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_retry));
	EXPECT_EQ(TOKEN_LEN, AP_STAT(self->fds[0], bytes_ring));
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 *   io_submit(PREAD 12 B into a page never touched)
 *   write(12 B): the copy into the page stops (faults disabled): the
 *                bytes go back to the writer and into the ring; write
 *                returns 12
 *   worker: faults the page in as the reader, copies from the ring
 *   io_getevents: 12
 */
TEST_F(small, cold_page_sends_the_bytes_through_the_ring)
{
	char *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iocb cb;

	ASSERT_NE(MAP_FAILED, page);
	queue_read(_metadata, self, &cb, page, TOKEN_LEN);
	ASSERT_EQ(TOKEN_LEN, write(self->fds[1], TOKEN, TOKEN_LEN));
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(TOKEN, page, TOKEN_LEN));
	EXPECT_EQ(0, AP_STAT(self->fds[0], completed_by_peer));
	EXPECT_EQ(1, AP_STAT(self->fds[0], completed_by_retry));
	EXPECT_EQ(0, AP_STAT(self->fds[0], bytes_single_copy));
	EXPECT_EQ(TOKEN_LEN, AP_STAT(self->fds[0], bytes_ring));
	AP_EXPECT_IDLE(self->fds[0]);
	munmap(page, PAGE);
}

/*
 * A write of PIPE_BUF bytes meets a small read: the read gets the first
 * bytes, in place (warm page) or from the ring (cold page), the rest stays
 * in the ring right behind them, in order.
 */
TEST_F(small, pipe_buf_write_meeting_a_small_read_stays_in_order)
{
	char *src = malloc(PAGE), *rest = malloc(PAGE);

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, rest);
	ap_fill(src, PAGE, 0);
	for (int cold = 0; cold < 2; cold++) {
		char *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		size_t n = (size_t)self->max;
		struct iocb cb;

		ASSERT_NE(MAP_FAILED, page);
		if (!cold)
			memset(page, 0, PAGE);
		queue_read(_metadata, self, &cb, page, n);
		ASSERT_EQ(PAGE, write(self->fds[1], src, PAGE));
		EXPECT_EQ((long)n, ap_reap1(self->ctx, NULL)) TH_LOG("cold %d", cold);
		EXPECT_EQ(-1, ap_check(page, n, 0)) TH_LOG("cold %d", cold);
		EXPECT_EQ((long)(PAGE - n),
			  ap_read_now(self->fds[0], rest, PAGE));
		EXPECT_EQ(-1, ap_check(rest, PAGE - n, n)) TH_LOG("cold %d", cold);
		munmap(page, PAGE);
	}
	AP_EXPECT_IDLE(self->fds[0]);
	free(src);
	free(rest);
}

/*
 * Retry semantics for a small read: its buffer unmapped after submission
 * is -EFAULT, and the bytes stay in the pipe (a pinned read would have
 * completed into the pages it holds).
 */
TEST_F(small, buffer_unmapped_after_submission_is_efault_bytes_kept)
{
	char *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char buf[TOKEN_LEN + 1] = "";
	struct iocb cb;

	ASSERT_NE(MAP_FAILED, page);
	queue_read(_metadata, self, &cb, page, TOKEN_LEN);
	ASSERT_EQ(0, munmap(page, PAGE));
	ASSERT_EQ(TOKEN_LEN, write(self->fds[1], TOKEN, TOKEN_LEN));
	EXPECT_EQ(-EFAULT, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(TOKEN_LEN, ap_read_now(self->fds[0], buf, sizeof(buf)));
	EXPECT_STREQ(TOKEN, buf);
	AP_EXPECT_IDLE(self->fds[0]);
}

struct uffd_writer {
	int fd;
	int done;	/* eventfd: written when write() returned */
	ssize_t ret;
};

static void *uffd_write(void *arg)
{
	struct uffd_writer *w = arg;
	uint64_t one = 1;

	w->ret = write(w->fd, TOKEN, TOKEN_LEN);
	if (write(w->done, &one, sizeof(one)) != sizeof(one))
		w->ret = -2;
	return NULL;
}

/*
 * The reader's page is a userfaultfd page nobody has served yet.  The
 * writer does not fault on it (it would hold the channel's mutex until
 * someone serves the fault): its write returns at once, the bytes wait in
 * the ring, and the worker's fault-in is what reaches the userfaultfd.
 * Served, the read completes with the bytes.
 *
 *   test                      writer thread          worker
 *   io_submit(PREAD, uffd page)
 *                             write(12 B) returns
 *                                                    fault-in -> uffd
 *   read the uffd event
 *   UFFDIO_ZEROPAGE
 *                                                    copies 12 B
 *   io_getevents: 12
 */
TEST_F(small, writer_never_waits_on_the_readers_userfaultfd)
{
	struct uffd_writer w = { .fd = self->fds[1], .ret = -1 };
	struct uffdio_zeropage zero = { 0 };
	struct uffd_msg msg;
	struct pollfd pfd;
	uint64_t cnt;
	struct iocb cb;
	pthread_t t;
	char *page;
	int uffd = ap_uffd_page(&page);

	if (uffd < 0)
		SKIP(return, "no userfaultfd");
	w.done = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, w.done);
	queue_read(_metadata, self, &cb, page, TOKEN_LEN);
	ASSERT_EQ(0, pthread_create(&t, NULL, uffd_write, &w));
	pfd = (struct pollfd){ .fd = w.done, .events = POLLIN };
	EXPECT_EQ(1, poll(&pfd, 1, AP_LONG_MS)) {
		/* it waits on the fault: serve it, so the test can end */
		close(uffd);
		uffd = -1;
	}
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(TOKEN_LEN, w.ret);
	ASSERT_EQ((ssize_t)sizeof(cnt), read(w.done, &cnt, sizeof(cnt)));
	if (uffd >= 0) {
		pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
		ASSERT_EQ(1, poll(&pfd, 1, AP_LONG_MS));
		ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));
		EXPECT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
		EXPECT_EQ((unsigned long)page,
			  msg.arg.pagefault.address & ~(PAGE - 1UL));
		zero.range.start = (unsigned long)page;
		zero.range.len = PAGE;
		ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero));
	}
	EXPECT_EQ(TOKEN_LEN, ap_reap1(self->ctx, NULL));
	EXPECT_EQ(0, memcmp(TOKEN, page, TOKEN_LEN));
	EXPECT_EQ(0, AP_STAT(self->fds[0], completed_by_peer));
	AP_EXPECT_IDLE(self->fds[0]);
	if (uffd >= 0)
		close(uffd);
	close(w.done);
	munmap(page, PAGE);
}

TEST_HARNESS_MAIN
