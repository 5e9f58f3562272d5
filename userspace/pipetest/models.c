// SPDX-License-Identifier: GPL-2.0
/*
 * pipetest I/O models.  Each one arms whatever it needs on every pipe,
 * calls pt_start() (which seeds the tokens and opens the timed window),
 * then loops: learn that pipe i holds a token, get the token, pt_pass().
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>

#include <libaio.h>
#include <liburing.h>

#include "pipetest.h"

#define BATCH		256	/* events reaped per call */
#define SUBMIT_CHUNK	1024	/* iocbs per io_submit when arming */

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (!p)
		pt_die(PT_EXIT_FAIL, "out of memory (%zu x %zu bytes)", n, sz);
	return p;
}

/* Per-slot receive buffers, cache-line aligned and apart. */
static char *alloc_bufs(struct pt *pt, size_t nr, size_t *stride)
{
	void *p;

	*stride = (pt->size + 63) & ~(size_t)63;
	if (posix_memalign(&p, 4096, nr * *stride))
		pt_die(PT_EXIT_FAIL, "out of memory (%zu buffers of %u bytes)",
		       nr, pt->size);
	memset(p, 0, nr * *stride);
	return p;
}

static void check_revents(unsigned int i, unsigned int revents)
{
	if (revents & (POLLERR | POLLNVAL))
		pt_die(PT_EXIT_FAIL, "pipe %u: poll reported 0x%x (error)", i,
		       revents);
}

/*
 * Every model waits without a timeout: a timeout makes the kernel read the
 * clock on every call (under TCG the guest's clocksource is the emulated
 * HPET, an MMIO read that costs more than the rest of epoll_wait).  The
 * tokens keep every wait short; the watchdog thread catches a stall.
 */

/* ---- poll ---------------------------------------------------------------- */

void pt_run_poll(struct pt *pt)
{
	struct pollfd *pfd = xcalloc(pt->pipes, sizeof(*pfd));
	char *buf = xcalloc(1, pt->size);
	unsigned int i;

	for (i = 0; i < pt->pipes; i++) {
		pfd[i].fd = pt->rfd[i];
		pfd[i].events = POLLIN;
	}
	pt_start(pt);
	while (pt_running(pt)) {
		int n = poll(pfd, pt->pipes, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			pt_fail_errno("poll on %u fds", pt->pipes);
		for (i = 0; i < pt->pipes && n > 0; i++) {
			if (!pfd[i].revents)
				continue;
			n--;
			check_revents(i, (unsigned int)pfd[i].revents);
			pt_read_rest(pt, i, buf, 0);
			pt_pass(pt, i, buf);
			if (!pt_running(pt))
				break;
		}
	}
	pt_finish(pt);
	free(buf);
	free(pfd);
}

/* ---- select: bitmaps sized for any fd number, not FD_SETSIZE ---------------- */

#define LBITS	(8 * sizeof(unsigned long))

void pt_run_select(struct pt *pt)
{
	int maxfd = 0;
	unsigned int i;
	size_t words, bytes;
	unsigned long *all, *set;
	char *buf = xcalloc(1, pt->size);

	for (i = 0; i < pt->pipes; i++)
		if (pt->rfd[i] > maxfd)
			maxfd = pt->rfd[i];
	words = (size_t)maxfd / LBITS + 1;
	bytes = words * sizeof(unsigned long);
	all = xcalloc(words, sizeof(unsigned long));
	set = xcalloc(words, sizeof(unsigned long));
	for (i = 0; i < pt->pipes; i++)
		all[pt->rfd[i] / LBITS] |= 1ul << (pt->rfd[i] % LBITS);
	pt_start(pt);
	while (pt_running(pt)) {
		int n;

		memcpy(set, all, bytes);
		n = select(maxfd + 1, (fd_set *)set, NULL, NULL, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			pt_fail_errno("select on %u fds (maxfd %d)", pt->pipes,
				      maxfd);
		for (i = 0; i < pt->pipes && n > 0; i++) {
			int fd = pt->rfd[i];

			if (!(set[fd / LBITS] & (1ul << (fd % LBITS))))
				continue;
			n--;
			pt_read_rest(pt, i, buf, 0);
			pt_pass(pt, i, buf);
			if (!pt_running(pt))
				break;
		}
	}
	pt_finish(pt);
	free(all);
	free(set);
	free(buf);
}

/* ---- epoll (level-triggered, as a poll replacement) ----------------------------- */

void pt_run_epoll(struct pt *pt)
{
	struct epoll_event ev[BATCH];
	char *buf = xcalloc(1, pt->size);
	unsigned int i;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		pt_fail_errno("epoll_create1");
	for (i = 0; i < pt->pipes; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, pt->rfd[i], &e))
			pt_fail_errno("epoll_ctl ADD pipe %u", i);
	}
	pt_start(pt);
	while (pt_running(pt)) {
		int n = epoll_wait(ep, ev, BATCH, -1), k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			pt_fail_errno("epoll_wait");
		for (k = 0; k < n; k++) {
			i = ev[k].data.u32;
			check_revents(i, ev[k].events);
			pt_read_rest(pt, i, buf, 0);
			pt_pass(pt, i, buf);
			if (!pt_running(pt))
				break;
		}
	}
	pt_finish(pt);
	close(ep);
	free(buf);
}

/* ---- libaio: reaping the completion ring from user space ----------------------- */

/*
 * The ring the kernel maps at the io_context_t address (fs/aio.c), as fio's
 * libaio engine reads it with userspace_reap: the 2002 paper's
 * io_getevents "vsyscall", with no system call at all.
 */
struct aio_ring {
	unsigned int id;
	unsigned int nr;
	unsigned int head;
	unsigned int tail;
	unsigned int magic;
	unsigned int compat_features;
	unsigned int incompat_features;
	unsigned int header_length;
	struct io_event io_events[];
};

#define AIO_RING_MAGIC	0xa10a10a1

static int aio_user_reap(io_context_t ctx, struct io_event *ev, int max)
{
	struct aio_ring *ring = (struct aio_ring *)ctx;
	unsigned int head, tail;
	int n = 0;

	head = ring->head;
	tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	while (head != tail && n < max) {
		ev[n++] = ring->io_events[head];
		if (++head == ring->nr)
			head = 0;
	}
	if (n)
		__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	return n;
}

static bool aio_ring_usable(io_context_t ctx)
{
	struct aio_ring *ring = (struct aio_ring *)ctx;

	return ring->magic == AIO_RING_MAGIC && ring->incompat_features == 0;
}

/* Completions: from the mapped ring, else wait in io_getevents. */
static int aio_reap(io_context_t ctx, bool user, struct io_event *ev)
{
	for (;;) {
		int n = user ? aio_user_reap(ctx, ev, BATCH) : 0;

		if (n)
			return n;
		n = io_getevents(ctx, 1, BATCH, ev, NULL);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			errno = -n;
			pt_fail_errno("io_getevents");
		}
		return n;
	}
}

static void aio_submit_all(io_context_t ctx, struct iocb **list, long nr,
			   const char *what)
{
	while (nr > 0) {
		int n = io_submit(ctx, nr > SUBMIT_CHUNK ? SUBMIT_CHUNK : nr, list);

		if (n == -EINTR)
			continue;
		if (n <= 0) {
			errno = n ? -n : EAGAIN;
			pt_fail_errno("io_submit of %ld %s", nr, what);
		}
		list += n;
		nr -= n;
	}
}

static io_context_t aio_setup(struct pt *pt, unsigned long nr)
{
	io_context_t ctx = 0;
	int ret;
	/* fs/aio.c doubles the request (and counts it against aio-max-nr). */
	FILE *f = fopen("/proc/sys/fs/aio-max-nr", "r");
	unsigned long long max = 0;

	if (f) {
		if (fscanf(f, "%llu", &max) != 1)
			max = 0;
		fclose(f);
	}
	if (max && max < 4ull * nr) {
		f = fopen("/proc/sys/fs/aio-max-nr", "w");
		if (f) {
			fprintf(f, "%llu\n", 4ull * nr);
			fclose(f);
		}
	}
	ret = io_setup((int)nr, &ctx);
	if (ret) {
		errno = -ret;
		pt_fail_errno("io_setup(%lu) for %u pipes", nr, pt->pipes);
	}
	return ctx;
}

static bool env_flag(const char *name, bool dflt)
{
	const char *v = getenv(name);

	return v ? strcmp(v, "0") != 0 : dflt;
}

/* ---- aio-poll: IOCB_CMD_POLL, one shot, re-armed after each completion ----------- */

void pt_run_aio_poll(struct pt *pt)
{
	unsigned long nr = pt->pipes + 64;
	io_context_t ctx = aio_setup(pt, nr);
	struct iocb *cb = xcalloc(pt->pipes, sizeof(*cb));
	struct iocb **list = xcalloc(pt->pipes, sizeof(*list));
	struct io_event ev[BATCH];
	char *buf = xcalloc(1, pt->size);
	bool user = env_flag("PIPETEST_USER_REAP", true) && aio_ring_usable(ctx);
	unsigned int i;

	for (i = 0; i < pt->pipes; i++) {
		io_prep_poll(&cb[i], pt->rfd[i], POLLIN);
		cb[i].data = (void *)(uintptr_t)i;
		list[i] = &cb[i];
	}
	aio_submit_all(ctx, list, pt->pipes, "polls");
	pt_start(pt);
	while (pt_running(pt)) {
		int n = aio_reap(ctx, user, ev), k;
		long nre = 0;

		for (k = 0; k < n; k++) {
			i = (unsigned int)(uintptr_t)ev[k].data;
			if ((long)ev[k].res < 0) {
				errno = -(int)(long)ev[k].res;
				pt_fail_errno("aio poll on pipe %u completed with an error", i);
			}
			check_revents(i, (unsigned int)ev[k].res);
			pt_read_rest(pt, i, buf, 0);
			pt_pass(pt, i, buf);
			io_prep_poll(&cb[i], pt->rfd[i], POLLIN);
			cb[i].data = (void *)(uintptr_t)i;
			list[nre++] = &cb[i];
		}
		if (nre)
			aio_submit_all(ctx, list, nre, "poll re-arms");
	}
	pt_finish(pt);
	io_destroy(ctx);
	free(buf);
	free(list);
	free(cb);
}

/*
 * ---- aio-read: a queued PREAD kept armed on every pipe --------------------------
 * As in the 2002 paper, the read is posted again before the token is
 * written on ("the token write() is performed after the async read is
 * posted"), so on the direct engine the write copies straight into the
 * pinned buffer of a pending read and completes it, even when it goes back
 * to the same pipe (N=1).  Completions are reaped from the mapped ring;
 * the re-arms of one batch go to the kernel in one io_submit, then the
 * batch's tokens are written with write().  Each slot has two buffers:
 * the re-armed read lands in one while the token is written from the other.
 *
 * aio-rw: the same, but each token's write is an IOCB_CMD_PWRITE placed in
 * that io_submit after the re-arms, so a batch of passes costs one system
 * call.  A write never waits (the capacity holds every token), so it has
 * completed, and its buffer is free, when io_submit returns.
 */
#define WRITE_TAG	(1ul << 62)

static void pt_run_aio(struct pt *pt, bool aio_write)
{
	unsigned long slots = (unsigned long)pt->pipes * pt->depth;
	io_context_t ctx = aio_setup(pt, (aio_write ? 2 * slots : slots) + 64);
	struct iocb *cb = xcalloc(slots, sizeof(*cb));
	struct iocb *wcb = aio_write ? xcalloc(BATCH, sizeof(*wcb)) : NULL;
	struct iocb **list = xcalloc(slots > 2 * BATCH ? slots : 2 * BATCH,
				     sizeof(*list));
	struct { unsigned int pipe; char *buf; } out[BATCH];
	unsigned char *flip = xcalloc(slots, 1);
	struct io_event ev[BATCH];
	size_t stride;
	char *bufs = alloc_bufs(pt, 2 * slots, &stride);
	bool user = env_flag("PIPETEST_USER_REAP", true) && aio_ring_usable(ctx);
	unsigned long s;

	for (s = 0; s < slots; s++) {
		io_prep_pread(&cb[s], pt->rfd[s / pt->depth], bufs + s * stride,
			      pt->size, 0);
		cb[s].data = (void *)(uintptr_t)s;
		list[s] = &cb[s];
	}
	aio_submit_all(ctx, list, (long)slots, "reads");
	pt_start(pt);
	while (pt_running(pt)) {
		int n = aio_reap(ctx, user, ev), k, nout = 0;
		long nl = 0;

		for (k = 0; k < n; k++) {
			unsigned long tag = (unsigned long)(uintptr_t)ev[k].data;
			long res = (long)ev[k].res;
			unsigned int i;
			char *b;

			if (tag & WRITE_TAG) {
				if (res != (long)pt->size) {
					errno = res < 0 ? (int)-res : EIO;
					pt_fail_errno("aio write to pipe %lu completed with %ld of %u bytes",
						      tag & ~WRITE_TAG, res, pt->size);
				}
				continue;
			}
			s = tag;
			i = (unsigned int)(s / pt->depth);
			b = bufs + (s + (flip[s] ? slots : 0)) * stride;
			if (res < 0) {
				errno = (int)-res;
				pt_fail_errno("aio read on pipe %u completed with an error (pass %llu)",
					      i, pt->passes);
			}
			if (res == 0)
				pt_die(PT_EXIT_FAIL, "aio read on pipe %u completed with 0 (EOF) at pass %llu",
				       i, pt->passes);
			if (res > (long)pt->size)
				pt_die(PT_EXIT_FAIL, "aio read on pipe %u completed with %ld > %u bytes",
				       i, res, pt->size);
			pt_read_rest(pt, i, b, (size_t)res);
			pt_pass_nowrite(pt, i, b);
			out[nout].pipe = i;
			out[nout++].buf = b;
			flip[s] ^= 1;
			io_prep_pread(&cb[s], pt->rfd[i],
				      bufs + (s + (flip[s] ? slots : 0)) * stride,
				      pt->size, 0);
			cb[s].data = (void *)(uintptr_t)s;
			list[nl++] = &cb[s];
		}
		if (aio_write) {
			for (k = 0; k < nout; k++) {
				unsigned int next = out[k].pipe + 1 == pt->pipes ?
						    0 : out[k].pipe + 1;

				io_prep_pwrite(&wcb[k], pt->wfd[next], out[k].buf,
					       pt->size, 0);
				wcb[k].data = (void *)(uintptr_t)(WRITE_TAG | next);
				list[nl++] = &wcb[k];
			}
		}
		if (nl)
			aio_submit_all(ctx, list, nl, aio_write ?
				       "read re-arms and writes" : "read re-arms");
		if (!aio_write)
			for (k = 0; k < nout; k++)
				pt_forward(pt, out[k].pipe, out[k].buf);
	}
	pt_finish(pt);
	io_destroy(ctx);
	free(bufs);
	free(flip);
	free(list);
	free(wcb);
	free(cb);
}

void pt_run_aio_read(struct pt *pt)
{
	pt_run_aio(pt, false);
}

void pt_run_aio_rw(struct pt *pt)
{
	pt_run_aio(pt, true);
}

/* ---- io_uring ------------------------------------------------------------------- */

static const char *uring_setup_name = "";

static void uring_init(struct pt *pt, struct io_uring *ring)
{
	static const struct {
		unsigned int flags;
		const char *name;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer-taskrun" },
		{ IORING_SETUP_COOP_TASKRUN, "coop-taskrun" },
		{ 0, "plain" },
	};
	unsigned int entries = 64, i;
	int ret = -EINVAL;

	while (entries < pt->pipes + pt->tokens && entries < 4096)
		entries <<= 1;
	if (pt->backend == PT_PIPE && !pt->nonblock) {
		/*
		 * Before 6.4 a kernel pipe read goes to an io-wq worker that
		 * blocks: one worker per pipe, bounded by RLIMIT_NPROC.
		 */
		struct rlimit rl;

		if (!getrlimit(RLIMIT_NPROC, &rl) &&
		    rl.rlim_cur < 2ull * pt->pipes + 1024) {
			rl.rlim_cur = 2ull * pt->pipes + 1024;
			if (rl.rlim_max < rl.rlim_cur)
				rl.rlim_max = rl.rlim_cur;
			(void)setrlimit(RLIMIT_NPROC, &rl);
		}
	}
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = 2 * entries;
		ret = io_uring_queue_init_params(entries, ring, &p);
		if (!ret) {
			uring_setup_name = tries[i].name;
			break;
		}
		if (ret != -EINVAL)
			break;
	}
	if (ret) {
		errno = -ret;
		pt_fail_errno("io_uring_queue_init(%u)", entries);
	}
	if (pt->verbose)
		fprintf(stderr, "pipetest: io_uring %u entries, %s\n", entries,
			uring_setup_name);
}

static struct io_uring_sqe *uring_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		int ret = io_uring_submit(ring);

		if (ret < 0) {
			errno = -ret;
			pt_fail_errno("io_uring_submit");
		}
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			pt_die(PT_EXIT_FAIL, "io_uring: no SQE after submit");
	}
	return sqe;
}

static void uring_wait(struct io_uring *ring)
{
	int ret = io_uring_submit_and_wait(ring, 1);

	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY &&
	    ret != -ETIME) {
		errno = -ret;
		pt_fail_errno("io_uring_submit_and_wait");
	}
}

static void uring_arm(struct pt *pt, struct io_uring *ring, unsigned int i,
		      char *buf, bool poll)
{
	struct io_uring_sqe *sqe = uring_sqe(ring);

	if (poll)
		io_uring_prep_poll_add(sqe, pt->rfd[i], POLLIN);
	else
		io_uring_prep_read(sqe, pt->rfd[i], buf, pt->size, 0);
	io_uring_sqe_set_data64(sqe, i);
}

static void pt_run_uring(struct pt *pt, bool poll)
{
	struct io_uring ring;
	size_t stride;
	char *bufs = alloc_bufs(pt, poll ? 1 : pt->pipes, &stride);
	unsigned int i;
	int ret;

	uring_init(pt, &ring);
	for (i = 0; i < pt->pipes; i++)
		uring_arm(pt, &ring, i, bufs + (poll ? 0 : i * stride), poll);
	ret = io_uring_submit(&ring);
	if (ret < 0) {
		errno = -ret;
		pt_fail_errno("io_uring_submit (arming %u pipes)", pt->pipes);
	}
	pt_start(pt);
	while (pt_running(pt)) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		uring_wait(&ring);
		io_uring_for_each_cqe(&ring, head, cqe) {
			int res = cqe->res;
			char *b;

			seen++;
			i = (unsigned int)io_uring_cqe_get_data64(cqe);
			b = bufs + (poll ? 0 : i * stride);
			if (res < 0) {
				errno = -res;
				pt_fail_errno("io_uring %s on pipe %u completed with an error (pass %llu)",
					      poll ? "poll" : "read", i, pt->passes);
			}
			if (poll) {
				check_revents(i, (unsigned int)res);
				res = 0;
			} else if (res == 0) {
				pt_die(PT_EXIT_FAIL, "io_uring read on pipe %u completed with 0 (EOF) at pass %llu",
				       i, pt->passes);
			}
			pt_read_rest(pt, i, b, (size_t)res);
			pt_pass(pt, i, b);
			uring_arm(pt, &ring, i, b, poll);
		}
		io_uring_cq_advance(&ring, seen);
	}
	pt_finish(pt);
	io_uring_queue_exit(&ring);
	free(bufs);
}

void pt_run_uring_read(struct pt *pt)
{
	pt_run_uring(pt, false);
}

void pt_run_uring_poll(struct pt *pt)
{
	pt_run_uring(pt, true);
}

/* ---- threads: one blocking reader per pipe --------------------------------------- */

struct pt_thread {
	struct pt *pt;
	unsigned int i;
	pthread_t tid;
	char *buf;
};

static void *pt_reader(void *arg)
{
	struct pt_thread *t = arg;
	struct pt *pt = t->pt;

	while (!pt_mt_done(pt)) {
		pt_read_rest(pt, t->i, t->buf, 0);
		if (pt_mt_done(pt))
			break;
		pt_pass_mt(pt, t->i, t->buf);
	}
	return NULL;
}

void pt_run_threads(struct pt *pt)
{
	struct pt_thread *th = xcalloc(pt->pipes, sizeof(*th));
	pthread_attr_t attr;
	size_t stride;
	char *bufs = alloc_bufs(pt, pt->pipes, &stride);
	unsigned int i;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (i = 0; i < pt->pipes; i++) {
		th[i].pt = pt;
		th[i].i = i;
		th[i].buf = bufs + i * stride;
		if (pthread_create(&th[i].tid, &attr, pt_reader, &th[i]))
			pt_die(PT_EXIT_FAIL, "pthread_create: reader %u of %u",
			       i, pt->pipes);
	}
	pthread_attr_destroy(&attr);
	pt_start(pt);
	while (!pt_mt_done(pt)) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	pt_finish(pt);
	/* Closing every write end gives each blocked reader EOF. */
	for (i = 0; i < pt->pipes; i++) {
		int fd = pt->wfd[i];

		__atomic_store_n(&pt->wfd[i], -1, __ATOMIC_RELAXED);
		close(fd);
	}
	for (i = 0; i < pt->pipes; i++)
		pthread_join(th[i].tid, NULL);
	free(bufs);
	free(th);
}
