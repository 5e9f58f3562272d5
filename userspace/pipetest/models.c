// SPDX-License-Identifier: GPL-2.0
/*
 * pipetest I/O models.  Each one arms whatever it needs on every pipe,
 * calls pt_start() (which seeds the tokens and opens the timed window),
 * then loops: learn that pipe i holds a token, get the token, pt_pass().
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/utsname.h>

#include <libaio.h>
#include <liburing.h>

#include "libaiopipe.h"
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

/* ---- epoll: level-triggered (a poll replacement) and edge-triggered ----------- */

/* Make every read end O_NONBLOCK (setup, not timed). */
static void set_nonblock(struct pt *pt)
{
	unsigned int i;

	for (i = 0; i < pt->pipes; i++) {
		int fl = fcntl(pt->rfd[i], F_GETFL);

		if (fl < 0 || fcntl(pt->rfd[i], F_SETFL, fl | O_NONBLOCK))
			pt_fail_errno("O_NONBLOCK on pipe %u", i);
	}
}

/*
 * Edge-triggered, an event says that pipe i became readable since the last
 * wait, not that it is: read it until EAGAIN, one pass per token.
 */
static void epoll_drain(struct pt *pt, unsigned int i, char *buf)
{
	while (pt_running(pt) && pt_read_token(pt, i, buf))
		pt_pass(pt, i, buf);
}

static void pt_run_epoll_mode(struct pt *pt, bool edge)
{
	struct epoll_event ev[BATCH];
	char *buf = xcalloc(1, pt->size);
	unsigned int i;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		pt_fail_errno("epoll_create1");
	if (edge)
		set_nonblock(pt);
	for (i = 0; i < pt->pipes; i++) {
		struct epoll_event e = {
			.events = EPOLLIN | (edge ? EPOLLET : 0),
			.data.u32 = i,
		};

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
			if (edge) {
				epoll_drain(pt, i, buf);
			} else {
				pt_read_rest(pt, i, buf, 0);
				pt_pass(pt, i, buf);
			}
			if (!pt_running(pt))
				break;
		}
	}
	pt_finish(pt);
	close(ep);
	free(buf);
}

void pt_run_epoll(struct pt *pt)
{
	pt_run_epoll_mode(pt, false);
}

void pt_run_epoll_et(struct pt *pt)
{
	pt_run_epoll_mode(pt, true);
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

/* A test knob: the number in environment variable @name, else @dflt. */
static unsigned long env_num(const char *name, unsigned long dflt,
			     unsigned long max)
{
	const char *v = getenv(name);
	unsigned long n;
	char *end;

	if (!v)
		return dflt;
	errno = 0;
	n = strtoul(v, &end, 0);
	if (errno || end == v || *end || !n || n > max)
		pt_die(PT_EXIT_UNSUPPORTED, "%s=%s: want 1..%lu", name, v, max);
	return n;
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
 *
 * --rearm-batch B (aio-read, --depth 2 or more): lazy re-arms.  A pipe
 * whose read completed still has another queued, so its re-arm can wait:
 * re-arms are held back and sent in one io_submit once B are waiting, or
 * before the loop blocks in io_getevents (nothing left in the mapped ring),
 * so no token ever waits for a read that is only held back.  At T=1 a pass
 * then costs one write() and 1/B of an io_submit.
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
	struct iocb **held = xcalloc(slots, sizeof(*held));
	unsigned long nheld = 0;
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
		int n = user ? aio_user_reap(ctx, ev, BATCH) : 0, k, nout = 0;
		long nl = 0;

		if (!n) {
			/* about to block: no read may stay held back */
			if (nheld)
				aio_submit_all(ctx, held, (long)nheld,
					       "held-back read re-arms");
			nheld = 0;
			n = aio_reap(ctx, user, ev);
		}

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
			if (pt->rearm_batch > 1)
				held[nheld++] = &cb[s];
			else
				list[nl++] = &cb[s];
		}
		if (nheld >= pt->rearm_batch) {
			aio_submit_all(ctx, held, (long)nheld,
				       "held-back read re-arms");
			nheld = 0;
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
	free(held);
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

static void uring_submit(struct pt *pt, struct io_uring *ring)
{
	int ret = io_uring_submit(ring);

	if (ret < 0) {
		errno = -ret;
		pt_fail_errno("io_uring_submit (arming %u pipes)", pt->pipes);
	}
}

/* Submit what is queued, wait for a completion, hand each one to @fn. */
static inline void uring_reap(struct io_uring *ring,
			      void (*fn)(void *arg, const struct io_uring_cqe *cqe),
			      void *arg)
{
	struct io_uring_cqe *cqe;
	unsigned int head, seen = 0;

	uring_wait(ring);
	io_uring_for_each_cqe(ring, head, cqe) {
		seen++;
		fn(arg, cqe);
	}
	io_uring_cq_advance(ring, seen);
}

/* A completion that ends the run: an error, or a read that saw EOF. */
__attribute__((noreturn))
static void uring_bad_res(struct pt *pt, unsigned int i, int res,
			  const char *what)
{
	if (!res)
		pt_die(PT_EXIT_FAIL, "io_uring %s on pipe %u completed with 0 (EOF) at pass %llu",
		       what, i, pt->passes);
	errno = -res;
	pt_fail_errno("io_uring %s on pipe %u completed with an error (pass %llu)",
		      what, i, pt->passes);
}

struct uring_rw {
	struct pt *pt;
	struct io_uring *ring;
	char *bufs;
	size_t stride;
	bool poll;
};

static void uring_rw_cqe(void *arg, const struct io_uring_cqe *cqe)
{
	struct uring_rw *u = arg;
	struct pt *pt = u->pt;
	unsigned int i = (unsigned int)io_uring_cqe_get_data64(cqe);
	char *b = u->bufs + (u->poll ? 0 : i * u->stride);
	int res = cqe->res;

	if (res < 0 || (!res && !u->poll))
		uring_bad_res(pt, i, res, u->poll ? "poll" : "read");
	if (u->poll) {
		check_revents(i, (unsigned int)res);
		res = 0;
	}
	pt_read_rest(pt, i, b, (size_t)res);
	pt_pass(pt, i, b);
	uring_arm(pt, u->ring, i, b, u->poll);
}

static void pt_run_uring(struct pt *pt, bool poll)
{
	struct io_uring ring;
	struct uring_rw u = { .pt = pt, .ring = &ring, .poll = poll };
	unsigned int i;

	u.bufs = alloc_bufs(pt, poll ? 1 : pt->pipes, &u.stride);
	uring_init(pt, &ring);
	for (i = 0; i < pt->pipes; i++)
		uring_arm(pt, &ring, i, u.bufs + (poll ? 0 : i * u.stride), poll);
	uring_submit(pt, &ring);
	pt_start(pt);
	while (pt_running(pt))
		uring_reap(&ring, uring_rw_cqe, &u);
	pt_finish(pt);
	io_uring_queue_exit(&ring);
	free(u.bufs);
}

void pt_run_uring_read(struct pt *pt)
{
	pt_run_uring(pt, false);
}

void pt_run_uring_poll(struct pt *pt)
{
	pt_run_uring(pt, true);
}

/*
 * ---- io_uring-mshot: one multishot read per pipe into provided buffers --------
 * Each pipe's read end is a registered file with one IORING_OP_READ_MULTISHOT
 * armed on it: the kernel reads whenever the pipe becomes readable, into a
 * buffer it takes from a ring of provided buffers of S bytes, and posts a
 * completion naming the buffer, the request staying armed while the
 * completion has IORING_CQE_F_MORE.  A completion without it (out of
 * buffers, -ENOBUFS; or an overflowing completion queue) ends the request:
 * the pipe is armed again once the batch's buffers are back in the ring.
 */

/* IORING_OP_READ_MULTISHOT, Linux 6.7: liburing 2.3's opcode enum ends before it. */
#define PT_OP_READ_MULTISHOT	49
#define MSHOT_BGID		0
#define MSHOT_BUFS_MAX		32768	/* a buffer ring's bound (a power of two) */

struct mshot {
	struct pt *pt;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	unsigned int nbufs;
	unsigned int bufsize;	/* S, unless a test knob makes it smaller */
	char *bufs;		/* nbufs buffers, stride apart */
	size_t stride;
	unsigned int returned;	/* buffers given back since the last advance */
	char **part;		/* per pipe: a token that came in pieces */
	unsigned int *have;	/* per pipe: bytes of it so far */
	unsigned int *rearm;	/* pipes whose request ended in this batch */
	unsigned int nrearm;
	unsigned long long rearms, pieces, nobufs;	/* for -v */
};

/* exit 2 on a kernel without the opcode (6.1's submit fails with EINVAL) */
static void mshot_probe(struct io_uring *ring)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	bool ok = p && io_uring_opcode_supported(p, PT_OP_READ_MULTISHOT);
	struct utsname u;

	if (p)
		io_uring_free_probe(p);
	if (ok)
		return;
	if (uname(&u))
		strcpy(u.release, "this kernel");
	pt_die(PT_EXIT_UNSUPPORTED,
	       "io_uring-mshot: not on this kernel (%s: %s; IORING_OP_READ_MULTISHOT is Linux 6.7 and later)",
	       u.release, p ? "io_uring has no multishot read" : "no io_uring opcode probe");
}

static void mshot_give_back(struct mshot *m, unsigned int bid)
{
	io_uring_buf_ring_add(m->br, m->bufs + (size_t)bid * m->stride,
			      m->bufsize, (unsigned short)bid,
			      io_uring_buf_ring_mask(m->nbufs), (int)m->returned++);
}

/* Registered read ends and a ring of nbufs provided buffers, all in it. */
static void mshot_setup(struct mshot *m)
{
	struct pt *pt = m->pt;
	unsigned long long want = (unsigned long long)pt->pipes * pt->depth + pt->tokens;
	struct io_uring_buf_reg reg = { .bgid = MSHOT_BGID };
	unsigned int bid;
	void *mem;
	int ret;

	/* test knobs: too few buffers (-ENOBUFS), too small (tokens in pieces) */
	want = env_num("PIPETEST_MSHOT_BUFS", want, MSHOT_BUFS_MAX);
	m->bufsize = env_num("PIPETEST_MSHOT_BUF_SIZE", pt->size, pt->size);
	m->nbufs = 1;
	while (m->nbufs < want && m->nbufs < MSHOT_BUFS_MAX)
		m->nbufs <<= 1;
	ret = io_uring_register_files(&m->ring, pt->rfd, pt->pipes);
	if (ret < 0) {
		errno = -ret;
		pt_fail_errno("io_uring_register_files (%u read ends)", pt->pipes);
	}
	if (posix_memalign(&mem, 4096, m->nbufs * sizeof(struct io_uring_buf)))
		pt_die(PT_EXIT_FAIL, "out of memory (buffer ring of %u)", m->nbufs);
	m->br = mem;
	reg.ring_addr = (uintptr_t)mem;
	reg.ring_entries = m->nbufs;
	ret = io_uring_register_buf_ring(&m->ring, &reg, 0);
	if (ret < 0) {
		errno = -ret;
		pt_fail_errno("io_uring_register_buf_ring (%u buffers)", m->nbufs);
	}
	m->bufs = alloc_bufs(pt, m->nbufs, &m->stride);
	io_uring_buf_ring_init(m->br);
	for (bid = 0; bid < m->nbufs; bid++)
		mshot_give_back(m, bid);
	io_uring_buf_ring_advance(m->br, (int)m->returned);
	m->returned = 0;
	m->part = xcalloc(pt->pipes, sizeof(*m->part));
	m->have = xcalloc(pt->pipes, sizeof(*m->have));
	m->rearm = xcalloc(pt->pipes, sizeof(*m->rearm));
	if (pt->verbose)
		fprintf(stderr, "pipetest: io_uring-mshot: %u registered files, %u buffers of %u bytes\n",
			pt->pipes, m->nbufs, m->bufsize);
}

static void mshot_arm(struct mshot *m, unsigned int i)
{
	struct io_uring_sqe *sqe = uring_sqe(&m->ring);

	/* no address, no length: each read fills one provided buffer */
	io_uring_prep_rw(PT_OP_READ_MULTISHOT, sqe, (int)i, NULL, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->buf_group = MSHOT_BGID;
	io_uring_sqe_set_data64(sqe, i);
}

/*
 * @len bytes of pipe i's stream in @b: a whole token passes from the
 * buffer itself; one that came in pieces is put together first.
 */
static void mshot_consume(struct mshot *m, unsigned int i, char *b, size_t len)
{
	struct pt *pt = m->pt;

	while (len) {
		size_t take = pt->size - m->have[i];

		if (!m->have[i] && len == pt->size) {
			pt_pass(pt, i, b);
			return;
		}
		if (!m->part[i])
			m->part[i] = xcalloc(1, pt->size);
		m->pieces++;
		if (take > len)
			take = len;
		memcpy(m->part[i] + m->have[i], b, take);
		m->have[i] += (unsigned int)take;
		b += take;
		len -= take;
		if (m->have[i] == pt->size) {
			m->have[i] = 0;
			pt_pass(pt, i, m->part[i]);
		}
	}
}

static void mshot_cqe(void *arg, const struct io_uring_cqe *cqe)
{
	struct mshot *m = arg;
	struct pt *pt = m->pt;
	unsigned int i = (unsigned int)io_uring_cqe_get_data64(cqe);
	unsigned int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		m->rearm[m->nrearm++] = i;
	if (res == -ENOBUFS) {
		m->nobufs++;
		return;
	}
	if (res == -EINVAL && !pt->passes)
		pt_die(PT_EXIT_UNSUPPORTED,
		       "io_uring-mshot: not on this kernel (IORING_OP_READ_MULTISHOT on pipe %u: %s)",
		       i, strerror(EINVAL));
	if (res <= 0)
		uring_bad_res(pt, i, res, "multishot read");
	if (!(cqe->flags & IORING_CQE_F_BUFFER) || bid >= m->nbufs)
		pt_die(PT_EXIT_FAIL, "io_uring multishot read on pipe %u: %d bytes without a provided buffer (flags 0x%x)",
		       i, res, cqe->flags);
	mshot_consume(m, i, m->bufs + (size_t)bid * m->stride, (size_t)res);
	mshot_give_back(m, bid);
}

void pt_run_uring_mshot(struct pt *pt)
{
	struct mshot m = { .pt = pt };
	unsigned int i;

	uring_init(pt, &m.ring);
	mshot_probe(&m.ring);
	mshot_setup(&m);
	for (i = 0; i < pt->pipes; i++)
		mshot_arm(&m, i);
	uring_submit(pt, &m.ring);
	pt_start(pt);
	while (pt_running(pt)) {
		uring_reap(&m.ring, mshot_cqe, &m);
		io_uring_buf_ring_advance(m.br, (int)m.returned);
		m.returned = 0;
		m.rearms += m.nrearm;
		while (m.nrearm)
			mshot_arm(&m, m.rearm[--m.nrearm]);
	}
	pt_finish(pt);
	if (pt->verbose)
		fprintf(stderr, "pipetest: io_uring-mshot: %llu re-arms (%llu out of buffers), %llu token pieces\n",
			m.rearms, m.nobufs, m.pieces);
	io_uring_queue_exit(&m.ring);
	for (i = 0; i < pt->pipes; i++)
		free(m.part[i]);
	free(m.part);
	free(m.have);
	free(m.rearm);
	free(m.bufs);
	free(m.br);
}

/*
 * ---- ring: aiopipe ring mode, every read end attached to one ring ----------
 * A writer copies the token straight into a free buffer of the ring and
 * posts an event {pipe, length, buffer}: the loop reaps events from the
 * mapping without a system call, writes the token on from the buffer
 * itself and hands the buffer back, so a pass costs one write().  Only
 * when no event is posted does it block, in AIOPIPE_IOC_RING_WAIT.  A
 * token longer than a buffer arrives in several events; bytes the kernel
 * could not put in a buffer (none free, the event ring full) stay in the
 * pipe and a READ event says how many to read(2).  Either way a pipe's
 * events are its bytes in order, put together per pipe as io_uring-mshot
 * does.
 */
#define RING_MIN	64		/* event slots and buffers, at least */
#define RING_BUF_CAP	65536		/* a larger token takes several buffers */

struct ring {
	struct pt *pt;
	struct aiopipe_ring r;
	unsigned int entries, nr_bufs, buf_size;
	char **part;		/* per pipe: a token that came in pieces */
	unsigned int *have;	/* per pipe: bytes of it so far */
	unsigned long long datas, reads, read_bytes, pieces, waits;	/* for -v */
};

static unsigned int pow2_at_least(unsigned long long v, unsigned int max)
{
	unsigned int p = 1;

	while (p < v && p < max)
		p <<= 1;
	return p;
}

/*
 * Sizes from N, T and S: a buffer of S bytes rounded up to a power of two
 * (64 B .. 64 KiB), and buffers and event slots for twice the pieces of
 * every token in flight, at least 64, so that no write spills to the
 * pipe.  The PIPETEST_RING_* knobs override them (tests of the spill and
 * owed-event paths).
 */
static void ring_sizes(struct ring *rg)
{
	struct pt *pt = rg->pt;
	unsigned long long pieces, want;

	rg->buf_size = pow2_at_least(pt->size, RING_BUF_CAP);
	if (rg->buf_size < AIOPIPE_RING_BUF_MIN)
		rg->buf_size = AIOPIPE_RING_BUF_MIN;
	rg->buf_size = (unsigned int)env_num("PIPETEST_RING_BUF_SIZE",
					     rg->buf_size, AIOPIPE_RING_BUF_MAX);
	pieces = (pt->size + rg->buf_size - 1) / rg->buf_size;
	want = 2ull * pt->tokens * pieces;
	if (want < RING_MIN)
		want = RING_MIN;
	rg->entries = pow2_at_least(want, AIOPIPE_RING_MAX);
	rg->nr_bufs = pow2_at_least(want, AIOPIPE_RING_MAX);
	while (rg->nr_bufs > 1 &&
	       (unsigned long long)rg->nr_bufs * rg->buf_size > AIOPIPE_RING_BUFS_MAX)
		rg->nr_bufs >>= 1;
	rg->entries = (unsigned int)env_num("PIPETEST_RING_ENTRIES", rg->entries,
					    AIOPIPE_RING_MAX);
	rg->nr_bufs = (unsigned int)env_num("PIPETEST_RING_BUFS", rg->nr_bufs,
					    AIOPIPE_RING_MAX);
}

/* The ring's pages count against RLIMIT_MEMLOCK (without CAP_IPC_LOCK). */
static void ring_raise_memlock(struct ring *rg)
{
	unsigned long long need = (unsigned long long)rg->nr_bufs * rg->buf_size +
				  rg->entries * sizeof(struct aiopipe_ring_event) +
				  rg->nr_bufs * sizeof(__u32) + 2 * 4096;
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		rl.rlim_max = need;
	(void)setrlimit(RLIMIT_MEMLOCK, &rl);	/* else CAP_IPC_LOCK must do */
}

static void ring_setup(struct ring *rg)
{
	struct pt *pt = rg->pt;
	unsigned int i;
	int ret;

	ring_sizes(rg);
	ring_raise_memlock(rg);
	ret = aiopipe_ring_setup(&rg->r, rg->entries, rg->nr_bufs, rg->buf_size,
				 O_CLOEXEC);
	if (ret == -ENOTTY)
		pt_die(PT_EXIT_UNSUPPORTED,
		       "model ring: this aiopipe module has no ring mode (AIOPIPE_IOC_RING_CREATE: %s)",
		       strerror(ENOTTY));
	if (ret < 0) {
		errno = -ret;
		pt_fail_errno("ring setup: AIOPIPE_IOC_RING_CREATE and mmap (entries %u, nr_bufs %u, buf_size %u%s)",
			      rg->entries, rg->nr_bufs, rg->buf_size,
			      ret == -ENOMEM ? "; RLIMIT_MEMLOCK?" : "");
	}
	if (rg->r.ev_mask + 1 != rg->entries || rg->r.nr_bufs != rg->nr_bufs ||
	    rg->r.buf_size != rg->buf_size)
		pt_die(PT_EXIT_FAIL, "ring setup: the mapped header says entries %u, nr_bufs %u, buf_size %u; asked for %u, %u, %u",
		       rg->r.ev_mask + 1, rg->r.nr_bufs, rg->r.buf_size,
		       rg->entries, rg->nr_bufs, rg->buf_size);
	for (i = 0; i < pt->pipes; i++) {
		ret = aiopipe_ring_attach(&rg->r, pt->rfd[i], i);
		if (ret < 0) {
			errno = -ret;
			pt_fail_errno("AIOPIPE_IOC_RING_ATTACH of pipe %u of %u (read end fd %d)",
				      i, pt->pipes, pt->rfd[i]);
		}
	}
	rg->part = xcalloc(pt->pipes, sizeof(*rg->part));
	rg->have = xcalloc(pt->pipes, sizeof(*rg->have));
	if (pt->verbose)
		fprintf(stderr, "pipetest: ring: %u pipes attached, %u events, %u buffers of %u bytes (%zu bytes mapped)\n",
			pt->pipes, rg->entries, rg->nr_bufs, rg->buf_size,
			rg->r.map_size);
}

/* Pipe i's token so far, allocated at its first piece. */
static char *ring_part(struct ring *rg, unsigned int i)
{
	if (!rg->part[i])
		rg->part[i] = xcalloc(1, rg->pt->size);
	return rg->part[i];
}

/* @len bytes of pipe i's stream in ring buffer @b: pass every token whole. */
static void ring_consume(struct ring *rg, unsigned int i, char *b, size_t len)
{
	struct pt *pt = rg->pt;

	while (len) {
		size_t take = pt->size - rg->have[i];
		char *part;

		if (!rg->have[i] && len == pt->size) {
			pt_pass(pt, i, b);	/* written on from the ring buffer */
			return;
		}
		part = ring_part(rg, i);
		rg->pieces++;
		if (take > len)
			take = len;
		memcpy(part + rg->have[i], b, take);
		rg->have[i] += (unsigned int)take;
		b += take;
		len -= take;
		if (rg->have[i] == pt->size) {
			rg->have[i] = 0;
			pt_pass(pt, i, part);
		}
	}
}

/* read(2) exactly @len bytes from pipe i into @buf: a READ event's bytes. */
static void ring_read_exact(struct ring *rg, unsigned int i, char *buf,
			    size_t len, size_t left)
{
	struct pt *pt = rg->pt;

	while (len) {
		ssize_t n = read(pt->rfd[i], buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			pt_fail_errno("ring: read(2) of the %zu bytes a READ event announced on pipe %u (pass %llu)",
				      left, i, pt->passes);
		if (n == 0)
			pt_die(PT_EXIT_FAIL, "ring: read(2) on pipe %u: EOF with %zu of the %zu bytes a READ event announced still unread (pass %llu)",
			       i, len, left, pt->passes);
		buf += n;
		len -= (size_t)n;
	}
}

/* A READ event: @len bytes of pipe i's stream wait in the pipe itself. */
static void ring_read(struct ring *rg, unsigned int i, size_t len)
{
	struct pt *pt = rg->pt;
	size_t left = len;

	rg->reads++;
	rg->read_bytes += len;
	while (len) {
		size_t take = pt->size - rg->have[i];
		char *part = ring_part(rg, i);

		if (take > len)
			take = len;
		ring_read_exact(rg, i, part + rg->have[i], take, left);
		rg->have[i] += (unsigned int)take;
		len -= take;
		if (rg->have[i] == pt->size) {
			rg->have[i] = 0;
			pt_pass(pt, i, part);
		}
	}
}

static void ring_event(struct ring *rg, const struct aiopipe_ring_event *ev)
{
	struct pt *pt = rg->pt;
	unsigned int i = (unsigned int)ev->user_data;

	if (ev->user_data >= pt->pipes)
		pt_die(PT_EXIT_FAIL, "ring: event type %u for user_data %llu, not a pipe (%u pipes) at pass %llu",
		       ev->type, (unsigned long long)ev->user_data, pt->pipes,
		       pt->passes);
	switch (ev->type) {
	case AIOPIPE_EV_DATA:
		if (ev->buf >= rg->nr_bufs || !ev->len || ev->len > rg->buf_size)
			pt_die(PT_EXIT_FAIL, "ring: DATA event on pipe %u names buffer %u with %u bytes (%u buffers of %u bytes) at pass %llu",
			       i, ev->buf, ev->len, rg->nr_bufs, rg->buf_size,
			       pt->passes);
		rg->datas++;
		ring_consume(rg, i, aiopipe_ring_buf(&rg->r, ev->buf), ev->len);
		aiopipe_ring_give_back(&rg->r, ev->buf);
		break;
	case AIOPIPE_EV_READ:
		if (!ev->len)
			pt_die(PT_EXIT_FAIL, "ring: READ event of 0 bytes on pipe %u at pass %llu",
			       i, pt->passes);
		ring_read(rg, i, ev->len);
		break;
	case AIOPIPE_EV_EOF:
		pt_die(PT_EXIT_FAIL, "ring: EOF event on pipe %u (no writer left) with %u of %u bytes of a token read, at pass %llu",
		       i, rg->have[i], pt->size, pt->passes);
	default:
		pt_die(PT_EXIT_FAIL, "ring: event of unknown type %u on pipe %u (len %u, buf %u) at pass %llu",
		       ev->type, i, ev->len, ev->buf, pt->passes);
	}
}

/* Nothing posted: block until an event is (never spin). */
static void ring_wait(struct ring *rg)
{
	int ret;

	rg->waits++;
	do {
		ret = aiopipe_ring_wait(&rg->r, 1, -1);
	} while (ret == -EINTR);
	if (ret < 0) {
		errno = -ret;
		pt_fail_errno("ring: AIOPIPE_IOC_RING_WAIT for 1 event (pass %llu)",
			      rg->pt->passes);
	}
}

void pt_run_ring(struct pt *pt)
{
	struct ring rg = { .pt = pt };
	unsigned int i;

	ring_setup(&rg);
	pt_start(pt);
	while (pt_running(pt)) {
		struct aiopipe_ring_event *ev = aiopipe_ring_peek(&rg.r);

		if (!ev) {
			ring_wait(&rg);
			continue;
		}
		ring_event(&rg, ev);
		aiopipe_ring_advance(&rg.r, 1);
	}
	pt_finish(pt);
	if (pt->verbose)
		fprintf(stderr, "pipetest: ring: %llu DATA events, %llu READ events (%llu bytes read), %llu token pieces, %llu waits\n",
			rg.datas, rg.reads, rg.read_bytes, rg.pieces, rg.waits);
	aiopipe_ring_exit(&rg.r);
	for (i = 0; i < pt->pipes; i++)
		free(rg.part[i]);
	free(rg.part);
	free(rg.have);
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
