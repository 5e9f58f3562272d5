// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe-fuzz: a seeded random-syscall fuzzer for aiopipe.
 *
 * Every iteration makes one random call against a pool of fds (aiopipe read
 * and write ends, named FIFOs, /dev/aiopipe, an eventfd, a kernel pipe):
 * AIOPIPE_IOC_* and random ioctls with good, bad and hostile arguments;
 * read/write/readv/writev/preadv2/pwritev2 with random iovecs (bad pointers,
 * read-only and PROT_NONE pages, huge lengths, UIO_MAXIOV+1 segments) and
 * RWF_* flags; libaio io_submit of random iocbs (every opcode, RESFD with
 * bad fds, RWF_NOWAIT, bad buffers), io_cancel of random iocbs,
 * io_getevents, io_destroy with requests in flight; io_uring SQEs (READ,
 * WRITE, READV, WRITEV, POLL_ADD, POLL_REMOVE, ASYNC_CANCEL, NOP, FSYNC,
 * with IOSQE_ASYNC and links); poll/epoll, splice/tee, fsync, fcntl,
 * closes, dups, remapping the buffers pending requests point into, and
 * forks whose children fuzz on and are killed with SIGKILL.  Ring mode
 * (docs/ring.md): rings created with good and bad parameters, mapped and
 * mapped wrongly, pipes attached and detached, events reaped honestly,
 * hostile values written into every field of the mapping, writes to
 * attached pipes, RING_WAIT, rings closed while pipes are attached
 * (--no-ring: none of it, and the calls of earlier versions for a seed).
 *
 * Bounded: --iterations; a periodic timer signal interrupts any call that
 * blocks, and alarm() is a watchdog that reports the seed and the last
 * calls and exits.  Reproducible: the same --seed makes the same sequence
 * of calls (results can differ with timing; the calls do not).  It passes
 * if it finishes, and at the end, with everything closed, the module's
 * global counters of pending requests, pinned pages and channels are back
 * to zero.  Kernel splats are the VM runner's to catch.
 *
 * By default a root caller drops to uid/gid 65534 first: the fuzzer plays
 * an unprivileged user, to whom every limit applies (--keep-root: don't).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <libaio.h>
#include <liburing.h>

#include "libaiopipe.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define MAXFD		48
#define NIOCB		64
#define ARENA		(4u << 20)
#define PAGE		4096u
#define NFIFOS		4

#define NRINGS		4
#define RING_OPS	12

enum fdkind {
	K_NONE, K_READ, K_WRITE, K_FIFO, K_FACTORY, K_EVENTFD, K_PIPE, K_EPOLL, K_RING
};

static const char *const kind_names[] = {
	"none", "read-end", "write-end", "fifo", "factory", "eventfd", "pipe", "epoll",
	"ring",
};

/*
 * A ring of ring mode: its fd (-1 once closed; the mapping keeps it alive),
 * and its mapping as created.  Indexing uses these, never the header's
 * fields, which the fuzzer itself scribbles on.
 */
struct fz_ring {
	int fd;
	unsigned char *map;		/* NULL: not mapped */
	size_t size;			/* mmap_size */
	bool writable;
	uint32_t entries, nr_bufs, buf_size;
	uint32_t events_off, bufids_off;
	uint64_t bufs_off;
};

static struct {
	uint64_t iterations;
	uint64_t seed;
	unsigned int timeout;
	bool verbose;
	bool keep_root;
	bool forks;
	bool global_check;
	bool ring;
} O = {
	.iterations = 20000,
	.timeout = 600,
	.forks = true,
	.global_check = true,
	.ring = true,
};

static struct {
	int fd[MAXFD];
	enum fdkind kind[MAXFD];
	unsigned char *arena;		/* ARENA bytes, read/write */
	unsigned char *ro;		/* one read-only page */
	unsigned char *none;		/* one PROT_NONE page */
	uintptr_t unmapped;		/* an address with nothing mapped */
	io_context_t ctx;
	struct iocb iocbs[NIOCB];
	unsigned int inflight;
	struct io_uring ring;
	bool have_ring;
	unsigned int ring_pending;
	pid_t kids[8];
	uint64_t iter;
	bool child;
	uint64_t counts[32];
	uint64_t forks, kills;
	struct fz_ring rings[NRINGS];
	uint64_t ring_counts[RING_OPS];
	uint64_t ring_events[4];	/* reaped: unknown, DATA, READ, EOF */
	uint64_t rings_created;
} F;

static uint64_t rng_state;

static inline uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static inline bool chance(unsigned int percent)
{
	return below(100) < percent;
}

/* ---- the last calls, for reports ------------------------------------------------ */

#define NLOG	16
static char logbuf[NLOG][200];
static unsigned int logpos;

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	char *b = logbuf[logpos++ % NLOG];
	va_list ap;
	int n;

	n = snprintf(b, sizeof(logbuf[0]), "%s%" PRIu64 ": ", F.child ? "child " : "", F.iter);
	va_start(ap, fmt);
	vsnprintf(b + n, sizeof(logbuf[0]) - n, fmt, ap);
	va_end(ap);
	if (O.verbose) {
		fputs(b, stderr);
		fputc('\n', stderr);
	}
}

static void wr(const char *s)
{
	if (write(2, s, strlen(s)) < 0)
		_exit(5);
}

static void dump_log(void)
{
	unsigned int i;

	wr("aiopipe-fuzz: last calls:\n");
	for (i = 0; i < NLOG; i++) {
		const char *b = logbuf[(logpos + i) % NLOG];

		if (*b) {
			wr("  ");
			wr(b);
			wr("\n");
		}
	}
}

static void report(const char *why)
{
	char m[160];

	snprintf(m, sizeof(m), "aiopipe-fuzz: %s%s at iteration %" PRIu64 " (seed %" PRIu64 ")\n",
		 F.child ? "child: " : "", why, F.iter, O.seed);
	wr(m);
	dump_log();
}

static void on_alarm(int sig)
{
	(void)sig;
	report("watchdog: hung");
	_exit(2);
}

static void on_fatal(int sig)
{
	report(sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : "fatal signal");
	signal(sig, SIG_DFL);
	raise(sig);
}

static timer_t ticker;

static void on_tick(int sig)
{
	(void)sig;	/* only interrupts a blocking call */
}

/* A periodic SIGUSR1 (no SA_RESTART) bounds every blocking call. */
static void start_ticker(void)
{
	struct sigaction sa = { .sa_handler = on_tick };
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
	struct itimerspec its = { { 0, 5000000 }, { 0, 5000000 } };
	sigaction(SIGUSR1, &sa, NULL);
	if (timer_create(CLOCK_MONOTONIC, &sev, &ticker) ||
	    timer_settime(ticker, 0, &its, NULL)) {
		perror("aiopipe-fuzz: timer");
		_exit(1);
	}
}

/* ---- hostile arguments --------------------------------------------------------------- */

static void *rand_ptr(size_t len)
{
	switch (below(12)) {
	case 0:
		return NULL;
	case 1:
		return (void *)(uintptr_t)(1 + below(4095));
	case 2:
		return (void *)(uintptr_t)0xffff888000000000ull;	/* kernel */
	case 3:
		return (void *)F.unmapped;
	case 4:
		return F.none + below(PAGE);
	case 5:
		return F.ro + below(PAGE);
	case 6:		/* runs off the end of the arena into the guard */
		return F.arena + ARENA - below(PAGE);
	case 7:
		return (void *)(uintptr_t)rnd();
	default:
		if (len >= ARENA)
			return F.arena;
		return F.arena + below(ARENA - len);
	}
}

static size_t rand_len(void)
{
	switch (below(12)) {
	case 0:
		return 0;
	case 1:
		return SIZE_MAX - below(2);
	case 2:
		return (size_t)SSIZE_MAX;
	case 3:
		return (size_t)INT_MAX + below(3);
	case 4:
		return ARENA + below(ARENA);
	case 5:
		return PIPE_BUF + below(3) - 1;
	case 6:
		return 1u << below(23);
	default:
		return 1 + below(8192);
	}
}

static struct iovec iov_pool[UIO_MAXIOV + 2];

static int rand_iov(void)
{
	int n, i;

	switch (below(10)) {
	case 0:
		n = 0;
		break;
	case 1:
		n = UIO_MAXIOV;
		break;
	case 2:
		n = UIO_MAXIOV + 1;
		break;
	case 3:
		n = (int)below(UIO_MAXIOV + 2);
		break;
	default:
		n = 1 + (int)below(8);
		break;
	}
	for (i = 0; i < n; i++) {
		size_t len = chance(80) ? 1 + below(8192) : rand_len();

		iov_pool[i].iov_len = len;
		iov_pool[i].iov_base = chance(85) ? rand_ptr(len < ARENA ? len : 0) :
						    rand_ptr(0);
		if (chance(90) && len < ARENA)
			iov_pool[i].iov_base = F.arena + below(ARENA - len);
	}
	return n;
}

static struct iovec *iov_arg(void)
{
	return chance(95) ? iov_pool : rand_ptr(64);
}

/* ---- the fd pool --------------------------------------------------------------------- */

static int pick_slot(void)
{
	return (int)below(MAXFD);
}

/* A random fd: mostly a live pool entry, sometimes closed or absurd. */
static int rand_fd(void)
{
	int i;

	switch (below(20)) {
	case 0:
		return -1;
	case 1:
		return 3 + (int)below(1021);	/* never stdin/stdout/stderr */
	case 2:
		return F.have_ring ? F.ring.ring_fd : -1;
	default:
		for (i = 0; i < 8; i++) {
			int s = pick_slot();

			if (F.kind[s] != K_NONE)
				return F.fd[s];
		}
		return F.fd[pick_slot()];
	}
}

static int rand_aiopipe_fd(void)
{
	int i;

	for (i = 0; i < 16; i++) {
		int s = pick_slot();

		if (F.kind[s] == K_READ || F.kind[s] == K_WRITE || F.kind[s] == K_FIFO ||
		    F.kind[s] == K_FACTORY || F.kind[s] == K_RING)
			return F.fd[s];
	}
	return rand_fd();
}

static void put_fd(int fd, enum fdkind k)
{
	int s = pick_slot();

	if (fd < 0)
		return;
	if (F.kind[s] != K_NONE)
		close(F.fd[s]);
	F.fd[s] = fd;
	F.kind[s] = k;
}

/* ---- the calls ------------------------------------------------------------------------ */

static void do_pair(void)
{
	static const unsigned int caps[] = {
		0, 1, 4095, 4096, 4097, 65536, 1u << 20, (1u << 20) + 1, 1u << 21,
		AIOPIPE_CAPACITY_MAX, AIOPIPE_CAPACITY_MAX + 1,
		1u << 31, (1u << 31) + 1, UINT32_MAX,
	};
	struct aiopipe_pair p = { 0 };
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC), ret;

	if (dev < 0)
		return;
	p.flags = chance(80) ? (unsigned int)(below(2) * O_NONBLOCK | below(2) * O_CLOEXEC) :
			       (uint32_t)rnd();
	p.capacity = chance(90) ? caps[below(sizeof(caps) / sizeof(caps[0]))] : (uint32_t)rnd();
	if (geteuid() == 0 && p.capacity > (64u << 20))
		p.capacity = 64u << 20;	/* root could pin all guest memory */
	p.engine = chance(90) ? (unsigned int)below(3) : (uint32_t)rnd();
	if (chance(5))
		p.reserved[below(3)] = (uint32_t)rnd();
	p.fds[0] = p.fds[1] = (int)rnd();
	if (chance(3)) {
		ret = ioctl(dev, AIOPIPE_IOC_PAIR, rand_ptr(sizeof(p)));
		note("PAIR(bad pointer) = %d", ret < 0 ? -errno : ret);
	} else {
		ret = ioctl(dev, AIOPIPE_IOC_PAIR, &p);
		note("PAIR(flags %#x cap %u engine %u) = %d", p.flags, p.capacity,
		     p.engine, ret < 0 ? -errno : ret);
		if (!ret) {
			put_fd(p.fds[0], K_READ);
			put_fd(p.fds[1], K_WRITE);
		}
	}
	if (chance(10))
		put_fd(dev, K_FACTORY);
	else
		close(dev);
}

static void do_open(void)
{
	static const int modes[] = {
		O_RDONLY | O_NONBLOCK, O_WRONLY | O_NONBLOCK, O_RDWR, O_RDONLY, O_WRONLY,
		O_RDWR | O_NONBLOCK,
	};
	char path[32];
	int fd, m = modes[below(6)];

	if (chance(15)) {
		fd = open(AIOPIPE_DEV_FACTORY, (int)(chance(50) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		note("open(factory) = %d", fd < 0 ? -errno : fd);
		put_fd(fd, K_FACTORY);
		return;
	}
	snprintf(path, sizeof(path), AIOPIPE_DEV_FIFO_FMT, (unsigned int)below(NFIFOS + 1));
	/* blocking opens wait for a partner: the ticker interrupts them */
	fd = open(path, m | O_CLOEXEC);
	note("open(%s, %#x) = %d", path, m, fd < 0 ? -errno : fd);
	put_fd(fd, K_FIFO);
}

static void do_ioctl(void)
{
	static const unsigned long good[] = {
		AIOPIPE_IOC_PAIR, AIOPIPE_IOC_SET_CAPACITY, AIOPIPE_IOC_GET_CAPACITY,
		AIOPIPE_IOC_SET_ENGINE, AIOPIPE_IOC_GET_ENGINE, AIOPIPE_IOC_SET_FILTER,
		AIOPIPE_IOC_GET_FILTER, AIOPIPE_IOC_GET_STATS, FIONREAD, FIONBIO,
		FIOASYNC, FIOCLEX, FIONCLEX,
	};
	int fd = rand_aiopipe_fd(), ret;
	unsigned long cmd;
	void *arg;
	unsigned char *a = F.arena + below(ARENA - 1024);
	size_t i;

	switch (below(4)) {
	case 0:
	case 1:
		cmd = good[below(sizeof(good) / sizeof(good[0]))];
		break;
	case 2:
		cmd = _IOC(below(4), AIOPIPE_IOC_MAGIC, below(16), below(1024));
		break;
	default:
		cmd = (uint32_t)rnd();
		/* generic fs ioctls that are not aiopipe's to answer */
		if (_IOC_TYPE(cmd) != AIOPIPE_IOC_MAGIC)
			cmd = _IOC(_IOC_DIR(cmd), AIOPIPE_IOC_MAGIC, _IOC_NR(cmd), _IOC_SIZE(cmd));
		break;
	}
	/* argument: a buffer of random words, a small value, or a bad pointer */
	for (i = 0; i < 64; i += 8) {
		uint64_t v = chance(50) ? below(1u << (below(32) + 1)) : rnd();

		memcpy(a + i, &v, 8);
	}
	if (cmd == AIOPIPE_IOC_GET_STATS && chance(70)) {
		uint32_t hdr[2] = { (uint32_t)below(300), chance(90) ? 0 : (uint32_t)rnd() };

		memcpy(a, hdr, sizeof(hdr));
	}
	if (cmd == AIOPIPE_IOC_SET_CAPACITY && chance(70)) {
		uint32_t v = 1u << below(22);

		if (geteuid() == 0 && v > (64u << 20))
			v = 64u << 20;
		memcpy(a, &v, sizeof(v));
	}
	if (cmd == AIOPIPE_IOC_SET_CAPACITY && geteuid() == 0) {
		uint32_t v;

		memcpy(&v, a, sizeof(v));
		if (v > (64u << 20))
			memcpy(a, &(uint32_t){ 64u << 20 }, sizeof(v));
	}
	arg = chance(80) ? (void *)a : chance(50) ? rand_ptr(8) : (void *)(uintptr_t)below(16);
	if (cmd == AIOPIPE_IOC_SET_CAPACITY && geteuid() == 0 && arg != a)
		arg = a;
	ret = ioctl(fd, cmd, arg);
	if (cmd == AIOPIPE_IOC_PAIR && ret == 0 && arg == a) {
		int fds[2];

		memcpy(fds, a, sizeof(fds));
		put_fd(fds[0], K_READ);
		put_fd(fds[1], K_WRITE);
	}
	note("ioctl(%d, %#lx, %p) = %d", fd, cmd, arg, ret < 0 ? -errno : ret);
}

static void do_rw(void)
{
	static const int rwf[] = { 0, RWF_NOWAIT, RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_APPEND };
	int fd = rand_fd(), n, ret = 0, flags;
	size_t len = rand_len();
	void *p = rand_ptr(len < ARENA ? len : 0);

	switch (below(8)) {
	case 0:
		ret = (int)read(fd, p, len);
		note("read(%d, %p, %zu) = %d", fd, p, len, ret < 0 ? -errno : ret);
		break;
	case 1:
		ret = (int)write(fd, p, len);
		note("write(%d, %p, %zu) = %d", fd, p, len, ret < 0 ? -errno : ret);
		break;
	case 2:
		n = rand_iov();
		ret = (int)readv(fd, iov_arg(), n);
		note("readv(%d, %d segs) = %d", fd, n, ret < 0 ? -errno : ret);
		break;
	case 3:
		n = rand_iov();
		ret = (int)writev(fd, iov_arg(), n);
		note("writev(%d, %d segs) = %d", fd, n, ret < 0 ? -errno : ret);
		break;
	case 4:
		n = rand_iov();
		flags = chance(80) ? rwf[below(6)] : (int)rnd();
		ret = (int)preadv2(fd, iov_arg(), n, chance(80) ? -1 : (off_t)below(100), flags);
		note("preadv2(%d, %d segs, %#x) = %d", fd, n, flags, ret < 0 ? -errno : ret);
		break;
	case 5:
		n = rand_iov();
		flags = chance(80) ? rwf[below(6)] : (int)rnd();
		ret = (int)pwritev2(fd, iov_arg(), n, chance(80) ? -1 : (off_t)below(100), flags);
		note("pwritev2(%d, %d segs, %#x) = %d", fd, n, flags, ret < 0 ? -errno : ret);
		break;
	case 6:
		ret = (int)pread(fd, p, len, (off_t)below(10));
		note("pread(%d) = %d", fd, ret < 0 ? -errno : ret);
		break;
	default:
		ret = (int)lseek(fd, (off_t)below(10), (int)below(3));
		note("lseek(%d) = %d", fd, ret < 0 ? -errno : ret);
		break;
	}
}

static int rand_resfd(void)
{
	switch (below(5)) {
	case 0:
		return -1;
	case 1:
		return 3 + (int)below(1021);
	case 2:
		return rand_fd();
	default:
		for (int i = 0; i < MAXFD; i++)
			if (F.kind[i] == K_EVENTFD)
				return F.fd[i];
		return rand_fd();
	}
}

static void reap_aio(int min, long ns)
{
	struct io_event ev[NIOCB];
	struct timespec ts = { 0, ns };
	int n;

	if (!F.ctx)
		return;
	n = io_getevents(F.ctx, min, NIOCB, ev, &ts);
	note("io_getevents(min %d) = %d", min, n);
	if (n > 0)
		F.inflight -= (unsigned int)n > F.inflight ? F.inflight : (unsigned int)n;
}

/*
 * No completion eventfd for an iocb aimed at an epoll instance: aio poll on
 * an epoll that watches the eventfd its completion signals is a lock cycle
 * in the kernel itself (lockdep: ep->poll_wait -> eventfd ctx->wqh in
 * aio_poll_wake(), ctx->wqh -> ep->poll_wait in ep_poll_callback()), with
 * any file, a kernel pipe as well as ours, as the first waker; see
 * docs/hardening.md.  The random draw is kept, so seeds stay reproducible.
 */
static bool fd_is_epoll(int fd)
{
	int i;

	for (i = 0; i < MAXFD; i++)
		if (F.kind[i] == K_EPOLL && F.fd[i] == fd)
			return true;
	return false;
}

static void do_aio(void)
{
	struct iocb *cbs[8];
	unsigned int n = 1 + (unsigned int)below(8), i;
	int ret;

	if (!F.ctx) {
		if (io_setup(NIOCB, &F.ctx))
			F.ctx = 0;
		note("io_setup = %s", F.ctx ? "ok" : "failed");
		return;
	}
	for (i = 0; i < n; i++) {
		struct iocb *cb = &F.iocbs[below(NIOCB)];
		size_t len = chance(70) ? 1 + below(65536) : rand_len();
		int fd = rand_fd();
		void *p = rand_ptr(len < ARENA ? len : 0);

		memset(cb, 0, sizeof(*cb));
		switch (below(10)) {
		case 0:
			io_prep_pwrite(cb, fd, p, len, 0);
			break;
		case 1:
			io_prep_preadv(cb, fd, iov_pool, rand_iov(), 0);
			cb->u.c.buf = iov_arg();
			break;
		case 2:
			io_prep_pwritev(cb, fd, iov_pool, rand_iov(), 0);
			cb->u.c.buf = iov_arg();
			break;
		case 3:
			io_prep_poll(cb, fd, (int)(chance(80) ? (POLLIN | POLLOUT | 0x200) & rnd() :
						  rnd()));
			break;
		case 4:
			io_prep_fsync(cb, fd);
			if (chance(50))
				cb->aio_lio_opcode = IO_CMD_FDSYNC;
			break;
		case 5:
			io_prep_pread(cb, fd, p, len, 0);
			cb->aio_lio_opcode = (short)below(16);	/* NOOP and unknown too */
			break;
		default:
			io_prep_pread(cb, fd, p, len, 0);
			break;
		}
		if (chance(20))
			cb->aio_rw_flags = chance(70) ? RWF_NOWAIT : (int)rnd();
		if (chance(15)) {
			int efd = rand_resfd();

			if (!fd_is_epoll(fd))
				io_set_eventfd(cb, efd);
		}
		if (chance(3))
			cb->u.c.flags = (unsigned int)rnd();
		if (chance(3))
			cb->aio_reqprio = (short)rnd();
		if (chance(5))
			cb->u.c.offset = (long long)rnd();
		cb->data = (void *)(uintptr_t)rnd();
		cbs[i] = cb;
	}
	if (chance(3)) {
		cbs[below(n)] = rand_ptr(sizeof(struct iocb));
	}
	ret = io_submit(F.ctx, n, cbs);
	note("io_submit(%u iocbs) = %d", n, ret);
	if (ret > 0)
		F.inflight += (unsigned int)ret;
	if (F.inflight > NIOCB / 2)
		reap_aio(0, 0);
}

static void do_cancel(void)
{
	struct io_event ev;
	struct iocb *cb = chance(95) ? &F.iocbs[below(NIOCB)] : rand_ptr(sizeof(*cb));
	int ret;

	if (!F.ctx)
		return;
	ret = io_cancel(F.ctx, cb, chance(95) ? &ev : rand_ptr(sizeof(ev)));
	note("io_cancel = %d", ret);
}

static void do_destroy(void)
{
	int ret;

	if (!F.ctx)
		return;
	ret = io_destroy(F.ctx);
	note("io_destroy(%u in flight) = %d", F.inflight, ret);
	F.ctx = 0;
	F.inflight = 0;
	if (io_setup(NIOCB, &F.ctx))
		F.ctx = 0;
}

static void reap_uring(void)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;

	if (!F.have_ring)
		return;
	while (io_uring_peek_cqe(&F.ring, &cqe) == 0) {
		io_uring_cqe_seen(&F.ring, cqe);
		n++;
	}
	if (n)
		note("io_uring: %u completions", n);
}

/*
 * An SQE never targets the ring's own fd: on 6.1 a read or write aimed at
 * the ring loops in task work (poll says ready, the retry says -EAGAIN) in
 * a child with SIGKILL pending, which then never exits.  That is io_uring
 * polling itself, not aiopipe (docs/hardening.md); -1 keeps the sequence of
 * random numbers, so seeds stay reproducible.
 */
static int sqe_fd(void)
{
	int fd = rand_fd();

	return F.have_ring && fd == F.ring.ring_fd ? -1 : fd;
}

static void do_uring(void)
{
	static const unsigned char ops[] = {
		IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READV, IORING_OP_WRITEV,
		IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_ASYNC_CANCEL,
		IORING_OP_NOP, IORING_OP_FSYNC, IORING_OP_READ_FIXED,
		IORING_OP_WRITE_FIXED, IORING_OP_SPLICE, IORING_OP_TEE,
	};
	unsigned int n = 1 + (unsigned int)below(4), i;
	int ret;

	if (!F.have_ring)
		return;
	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&F.ring);
		size_t len = chance(70) ? 1 + below(65536) : rand_len();
		int fd = sqe_fd();
		void *p;

		if (!sqe)
			break;
		p = rand_ptr(len < ARENA ? len : 0);
		memset(sqe, 0, sizeof(*sqe));
		sqe->opcode = ops[below(sizeof(ops))];
		sqe->fd = fd;
		sqe->off = chance(80) ? (uint64_t)-1 : rnd();
		sqe->addr = (uintptr_t)p;
		sqe->len = (uint32_t)len;
		switch (sqe->opcode) {
		case IORING_OP_READV:
		case IORING_OP_WRITEV:
			sqe->len = (uint32_t)rand_iov();
			sqe->addr = (uintptr_t)iov_arg();
			break;
		case IORING_OP_POLL_ADD:
			sqe->poll32_events = chance(80) ? (POLLIN | POLLOUT | 0x200) & (uint32_t)rnd() :
							  (uint32_t)rnd();
			sqe->len = chance(80) ? 0 : (uint32_t)below(4);	/* multishot etc. */
			break;
		case IORING_OP_POLL_REMOVE:
		case IORING_OP_ASYNC_CANCEL:
			sqe->addr = below(16);
			sqe->len = 0;
			sqe->cancel_flags = chance(80) ? 0 : (uint32_t)below(64);
			break;
		case IORING_OP_SPLICE:
		case IORING_OP_TEE:
			sqe->splice_fd_in = sqe_fd();
			sqe->splice_off_in = (uint64_t)-1;
			sqe->off = (uint64_t)-1;
			sqe->addr = 0;
			sqe->splice_flags = (uint32_t)below(16);
			break;
		default:
			break;
		}
		if (chance(25))
			sqe->rw_flags = chance(70) ? RWF_NOWAIT : (int)rnd();
		if (chance(30))
			sqe->flags |= IOSQE_ASYNC;
		if (chance(10))
			sqe->flags |= IOSQE_IO_LINK;
		if (chance(3))
			sqe->flags |= (uint8_t)rnd() & ~IOSQE_FIXED_FILE & ~IOSQE_BUFFER_SELECT;
		sqe->user_data = below(16);
	}
	ret = io_uring_submit(&F.ring);
	note("io_uring_submit(%u) = %d", n, ret);
	reap_uring();
}

static void do_close(void)
{
	int s = pick_slot();

	if (F.kind[s] == K_NONE)
		return;
	note("close(%d %s)", F.fd[s], kind_names[F.kind[s]]);
	close(F.fd[s]);
	F.kind[s] = K_NONE;
	F.fd[s] = -1;
}

static void do_misc(void)
{
	int fd = rand_fd(), ret = 0, s;

	switch (below(12)) {
	case 0:
		ret = fsync(fd);
		note("fsync(%d) = %d", fd, ret < 0 ? -errno : ret);
		break;
	case 1:
		ret = fdatasync(fd);
		note("fdatasync(%d) = %d", fd, ret < 0 ? -errno : ret);
		break;
	case 2: {
		struct pollfd p[4];

		for (s = 0; s < 4; s++)
			p[s] = (struct pollfd){ .fd = rand_fd(), .events = (short)rnd() };
		ret = poll(p, 4, chance(80) ? 0 : 10);
		note("poll = %d", ret < 0 ? -errno : ret);
		break;
	}
	case 3: {
		int ep = -1;

		for (s = 0; s < MAXFD; s++)
			if (F.kind[s] == K_EPOLL)
				ep = F.fd[s];
		if (ep < 0) {
			ep = epoll_create1(EPOLL_CLOEXEC);
			put_fd(ep, K_EPOLL);
		}
		struct epoll_event ev = { .events = (uint32_t)rnd() & ~EPOLLWAKEUP,
					  .data.u64 = rnd() };
		ret = epoll_ctl(ep, 1 + (int)below(3), fd, &ev);
		note("epoll_ctl(%d) = %d", fd, ret < 0 ? -errno : ret);
		struct epoll_event out[8];

		ret = epoll_wait(ep, out, 8, 0);
		note("epoll_wait = %d", ret < 0 ? -errno : ret);
		break;
	}
	case 4: {
		int out = rand_fd();
		size_t len = rand_len();

		ret = (int)splice(fd, NULL, out, NULL, len,
				  (unsigned int)(chance(50) ? SPLICE_F_NONBLOCK : below(16)));
		note("splice(%d -> %d, %zu) = %d", fd, out, len, ret < 0 ? -errno : ret);
		break;
	}
	case 5: {
		int out = rand_fd();

		ret = (int)tee(fd, out, rand_len(), SPLICE_F_NONBLOCK);
		note("tee(%d -> %d) = %d", fd, out, ret < 0 ? -errno : ret);
		break;
	}
	case 6: {
		int fl = fcntl(fd, F_GETFL);

		ret = fcntl(fd, F_SETFL, fl ^ (chance(50) ? O_NONBLOCK : O_ASYNC));
		note("fcntl(%d, SETFL) = %d", fd, ret < 0 ? -errno : ret);
		break;
	}
	case 7:
		ret = fcntl(fd, chance(50) ? F_SETPIPE_SZ : F_GETPIPE_SZ, (int)(1u << below(22)));
		note("fcntl(%d, PIPE_SZ) = %d", fd, ret < 0 ? -errno : ret);
		break;
	case 8:
		ret = dup(fd);
		note("dup(%d) = %d", fd, ret < 0 ? -errno : ret);
		for (s = 0; s < MAXFD && ret >= 0; s++)
			if (F.fd[s] == fd && F.kind[s] != K_NONE) {
				put_fd(ret, F.kind[s]);
				ret = -1;
			}
		if (ret >= 0)
			close(ret);
		break;
	case 9: {
		void *m = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);

		note("mmap(%d) = %s", fd, m == MAP_FAILED ? "failed" : "mapped");
		if (m != MAP_FAILED)
			munmap(m, PAGE);
		break;
	}
	case 10: {
		uint64_t v = 1;
		int efd = eventfd(0, EFD_CLOEXEC | (chance(50) ? EFD_NONBLOCK : 0));

		if (efd >= 0 && write(efd, &v, sizeof(v)) < 0)
			v = 0;
		put_fd(efd, K_EVENTFD);
		note("eventfd = %d", efd);
		break;
	}
	default: {
		int p[2];

		ret = pipe2(p, O_CLOEXEC | (chance(50) ? O_NONBLOCK : 0));
		if (!ret) {
			put_fd(p[0], K_PIPE);
			put_fd(p[1], K_PIPE);
		}
		note("pipe2 = %d", ret);
		break;
	}
	}
}

/* Pull the rug from under pending requests: remap part of the arena. */
static void do_remap(void)
{
	size_t off = below(ARENA / PAGE - 16) * PAGE, len = (1 + below(16)) * PAGE;
	void *p = F.arena + off;

	switch (below(3)) {
	case 0:
		note("mprotect(arena+%zu, %zu, NONE) and back", off, len);
		mprotect(p, len, PROT_NONE);
		sched_yield();
		mprotect(p, len, PROT_READ | PROT_WRITE);
		break;
	case 1:
		note("mmap(MAP_FIXED) over arena+%zu, %zu", off, len);
		if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == MAP_FAILED)
			_exit(6);
		break;
	default:
		note("madvise(arena+%zu, %zu, DONTNEED)", off, len);
		madvise(p, len, MADV_DONTNEED);
		break;
	}
}

/* ---- ring mode ------------------------------------------------------------------------ */

static const char *const ring_op_names[RING_OPS] = {
	"create", "mmap", "attach", "detach", "wait", "hostile", "reap", "repair",
	"write", "pair-attach", "close", "poll",
};

static struct fz_ring *pick_ring(void)
{
	return &F.rings[below(NRINGS)];
}

/* The ring's fd, or now and then any fd (the ring ioctls on the wrong file). */
static int ring_fd(struct fz_ring *r)
{
	return chance(90) && r->fd >= 0 ? r->fd : rand_fd();
}

/* A read end (or FIFO) from the pool, sometimes anything at all. */
static int rand_read_fd(void)
{
	int i;

	for (i = 0; i < 16 && chance(90); i++) {
		int s = pick_slot();

		if (F.kind[s] == K_READ || F.kind[s] == K_FIFO)
			return F.fd[s];
	}
	return rand_fd();
}

static void ring_forget(struct fz_ring *r)
{
	if (r->map)
		munmap(r->map, r->size);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Powers of two mostly, in and out of range; anything now and then. */
static uint32_t ring_size_param(unsigned int lo_shift, unsigned int hi_shift)
{
	switch (below(20)) {
	case 0:
		return 0;
	case 1:
		return (uint32_t)rnd();
	case 2:
		return (1u << below(32)) + (uint32_t)below(3) - 1;
	default:
		return 1u << (lo_shift + below(hi_shift - lo_shift + 1));
	}
}

static void ring_map(struct fz_ring *r)
{
	void *m;

	r->writable = chance(90);
	m = mmap(NULL, r->size, PROT_READ | (r->writable ? PROT_WRITE : 0), MAP_SHARED,
		 r->fd, 0);
	note("mmap(ring %d, %zu, %s) = %s", r->fd, r->size, r->writable ? "rw" : "ro",
	     m == MAP_FAILED ? "failed" : "mapped");
	if (m != MAP_FAILED)
		r->map = m;
}

static void ring_create(void)
{
	struct aiopipe_ring_params p = { 0 };
	struct fz_ring *r = pick_ring();
	bool bad_ptr = chance(3), map = chance(80), pool = chance(30);
	uint64_t cap = geteuid() == 0 ? 64u << 20 : 4u << 20;
	int dev, ret;

	p.entries = ring_size_param(0, 15);
	p.nr_bufs = ring_size_param(0, 8);
	p.buf_size = ring_size_param(6, 16);
	if (chance(5))
		p.nr_bufs = 1u << below(16);
	if (chance(3))
		p.buf_size = 1u << (16 + below(6));
	p.flags = chance(80) ? (uint32_t)(below(2) * O_CLOEXEC) : (uint32_t)rnd();
	if (chance(5))
		p.reserved[below(4)] = rnd();
	if (chance(5))
		p.pad = (uint32_t)rnd();
	p.fd = (int)rnd();
	/* a ring as big as a capacity: bounded like one (memlock bounds the rest) */
	if ((uint64_t)p.nr_bufs * p.buf_size > cap && p.buf_size && p.nr_bufs &&
	    !(p.buf_size & (p.buf_size - 1)) && !(p.nr_bufs & (p.nr_bufs - 1)) &&
	    chance(90))
		p.nr_bufs = (uint32_t)(cap / p.buf_size) ? (uint32_t)(cap / p.buf_size) : 1;
	dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
	if (dev < 0)
		return;
	if (bad_ptr) {
		ret = ioctl(dev, AIOPIPE_IOC_RING_CREATE, rand_ptr(sizeof(p)));
		note("RING_CREATE(bad pointer) = %d", ret < 0 ? -errno : ret);
		if (ret >= 0)
			close(ret);	/* never: the fd is returned in the struct */
		close(dev);
		return;
	}
	ret = ioctl(dev, AIOPIPE_IOC_RING_CREATE, &p);
	note("RING_CREATE(entries %u bufs %u size %u flags %#x) = %d fd %d", p.entries,
	     p.nr_bufs, p.buf_size, p.flags, ret < 0 ? -errno : ret, ret ? -1 : p.fd);
	close(dev);
	if (ret)
		return;
	F.rings_created++;
	ring_forget(r);
	*r = (struct fz_ring){
		.fd = p.fd, .size = p.mmap_size, .entries = p.entries,
		.nr_bufs = p.nr_bufs, .buf_size = p.buf_size,
		.events_off = p.events_off, .bufids_off = p.bufids_off,
		.bufs_off = p.bufs_off,
	};
	if (map)
		ring_map(r);
	if (pool)
		put_fd(dup(r->fd), K_RING);
}

/* Odd mappings: private, at an offset, too long, read-only, a second one. */
static void ring_mmap(void)
{
	struct fz_ring *r = pick_ring();
	int how = (int)below(6), fd = ring_fd(r);
	size_t len = r->size ? r->size : PAGE;
	off_t off = 0;
	int flags = MAP_SHARED;
	void *m;

	if (r->map && chance(30)) {
		note("munmap(ring %d)", r->fd);
		munmap(r->map, r->size);
		r->map = NULL;
		return;
	}
	switch (how) {
	case 0:
		flags = MAP_PRIVATE;
		break;
	case 1:
		off = (off_t)(PAGE * (1 + below(4)));
		break;
	case 2:
		len += PAGE * (1 + below(4));
		break;
	case 3:
		len = PAGE * (1 + below(4));
		break;
	default:
		if (!r->map && r->fd >= 0 && fd == r->fd) {
			ring_map(r);
			return;
		}
		break;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);
	note("mmap(%d, %zu, %s, off %lld) = %s", fd, len,
	     flags == MAP_PRIVATE ? "private" : "shared", (long long)off,
	     m == MAP_FAILED ? "failed" : "mapped");
	if (m != MAP_FAILED)
		munmap(m, len);
}

static void ring_attach(void)
{
	struct fz_ring *r = pick_ring();
	struct aiopipe_ring_attach a = { 0 };
	int fd = ring_fd(r), ret;
	void *arg = &a;

	a.fd = rand_read_fd();
	a.user_data = (uint64_t)(uint32_t)a.fd;	/* the reaper reads this fd */
	if (chance(5))
		a.flags = (uint32_t)rnd();
	if (chance(5))
		a.reserved[below(2)] = rnd();
	if (chance(3))
		arg = rand_ptr(sizeof(a));
	ret = ioctl(fd, AIOPIPE_IOC_RING_ATTACH, arg);
	note("RING_ATTACH(%d, fd %d) = %d", fd, a.fd, ret < 0 ? -errno : ret);
}

static void ring_detach(void)
{
	struct fz_ring *r = pick_ring();
	int fd = ring_fd(r), ret;
	int32_t v = rand_read_fd();
	void *arg = chance(3) ? rand_ptr(sizeof(v)) : (void *)&v;

	ret = ioctl(fd, AIOPIPE_IOC_RING_DETACH, arg);
	note("RING_DETACH(%d, fd %d) = %d", fd, v, ret < 0 ? -errno : ret);
}

static void ring_wait(void)
{
	struct fz_ring *r = pick_ring();
	struct aiopipe_ring_wait w = { 0 };
	int fd = ring_fd(r), ret;
	void *arg = &w;

	w.min_events = chance(80) ? 1 + (uint32_t)below(r->entries ? r->entries : 8) :
				    (uint32_t)rnd();
	if (chance(5))
		w.flags = (uint32_t)rnd();
	/* mostly just a check; a blocking wait ends with the 5 ms ticker */
	w.timeout_ns = chance(85) ? 0 : chance(50) ? (int64_t)below(2000000) : -1;
	if (chance(3))
		arg = rand_ptr(sizeof(w));
	ret = ioctl(fd, AIOPIPE_IOC_RING_WAIT, arg);
	note("RING_WAIT(%d, min %u, %lld ns) = %d", fd, w.min_events,
	     (long long)w.timeout_ns, ret < 0 ? -errno : ret);
}

/* Random values into the header's fields (the kernel's too), ids, buffers. */
static void ring_hostile(void)
{
	struct fz_ring *r = pick_ring();
	uint32_t *hdr, v, field;
	unsigned int what = (unsigned int)below(4);
	uint64_t at = 0;

	v = chance(50) ? (uint32_t)rnd() : (uint32_t)below(3) - 1 + (uint32_t)below(r->entries + 2);
	field = (uint32_t)below(32);
	if (what == 1 || what == 2)
		at = below(what == 1 ? (r->nr_bufs ? r->nr_bufs : 1) :
			   (uint64_t)r->nr_bufs * r->buf_size + 1);
	if (!r->map || !r->writable)
		return;
	hdr = (uint32_t *)r->map;
	switch (what) {
	case 0:		/* ev_head, buf_tail, or any word of the header */
		field = chance(60) ? (uint32_t)below(2) : field;
		note("ring %d: header word %u = %u", r->fd, field, v);
		__atomic_store_n(&hdr[field], v, __ATOMIC_RELEASE);
		break;
	case 1:
		note("ring %d: bufids[%" PRIu64 "] = %u", r->fd, at, v);
		((uint32_t *)(r->map + r->bufids_off))[at] = v;
		break;
	case 2:
		if (at >= (uint64_t)r->nr_bufs * r->buf_size)
			break;
		note("ring %d: buffer byte %" PRIu64 " = %u", r->fd, at, v & 0xff);
		r->map[r->bufs_off + at] = (unsigned char)v;
		break;
	default:	/* a burst of hand-backs of random ids */
		note("ring %d: hand back %u ids from %u", r->fd, v % 8, v);
		for (uint32_t i = 0; i < v % 8; i++) {
			uint32_t t = hdr[1];

			((uint32_t *)(r->map + r->bufids_off))[t & (r->nr_bufs - 1)] = v + i;
			__atomic_store_n(&hdr[1], t + 1, __ATOMIC_RELEASE);
		}
		break;
	}
}

/* An announced READ: take up to len bytes, without blocking. */
static void ring_take(int fd, uint32_t len)
{
	int i;

	for (i = 0; i < MAXFD; i++)
		if (F.fd[i] == fd && (F.kind[i] == K_READ || F.kind[i] == K_FIFO))
			break;
	if (i == MAXFD || len == 0)
		return;
	if (len > 65536)
		len = 65536;
	if (preadv2(fd, &(struct iovec){ F.arena, len }, 1, -1, RWF_NOWAIT) < 0 &&
	    errno != EAGAIN)
		note("ring READ: read(%d, %u): %d", fd, len, -errno);
}

/*
 * After hostile writes: skip every event the header claims, and hand every
 * buffer back (the ones still in use get overwritten: the reader's loss).
 */
static void ring_repair(struct fz_ring *r)
{
	struct aiopipe_ring_hdr *hdr = (struct aiopipe_ring_hdr *)r->map;
	uint32_t *ids, i, t;

	if (!r->map || !r->writable)
		return;
	ids = (uint32_t *)(r->map + r->bufids_off);
	t = hdr->buf_head;

	for (i = 0; i < r->nr_bufs; i++)
		ids[(t + i) & (r->nr_bufs - 1)] = i;
	__atomic_store_n(&hdr->buf_tail, t + r->nr_bufs, __ATOMIC_RELEASE);
	__atomic_store_n(&hdr->ev_head, __atomic_load_n(&hdr->ev_tail, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
	note("ring %d: repaired (ev_head = ev_tail, every buffer handed back)", r->fd);
}

/* The honest reader: events in order, buffers back, READ bytes taken. */
static void ring_reap(void)
{
	struct fz_ring *r = pick_ring();
	struct aiopipe_ring_hdr *hdr = (struct aiopipe_ring_hdr *)r->map;
	struct aiopipe_ring_event *evs;
	uint32_t *ids, head, n, i;

	if (!r->map || !r->writable)
		return;
	evs = (struct aiopipe_ring_event *)(r->map + r->events_off);
	ids = (uint32_t *)(r->map + r->bufids_off);
	head = hdr->ev_head;
	n = __atomic_load_n(&hdr->ev_tail, __ATOMIC_ACQUIRE) - head;
	if (n > r->entries)
		n = r->entries;		/* the kernel's field may be scribbled on */
	for (i = 0; i < n && i < 64; i++) {
		struct aiopipe_ring_event ev = evs[(head + i) & (r->entries - 1)];

		F.ring_events[ev.type < 4 ? ev.type : 0]++;
		if (ev.type == AIOPIPE_EV_DATA) {
			uint32_t t = hdr->buf_tail;

			ids[t & (r->nr_bufs - 1)] = ev.buf;
			__atomic_store_n(&hdr->buf_tail, t + 1, __ATOMIC_RELEASE);
		} else if (ev.type == AIOPIPE_EV_READ) {
			ring_take((int)ev.user_data, ev.len);
		}
	}
	__atomic_store_n(&hdr->ev_head, head + i, __ATOMIC_RELEASE);
	note("ring %d: reaped %u events", r->fd, i);
	if ((hdr->flags & AIOPIPE_RING_F_OWED) && r->fd >= 0) {
		struct aiopipe_ring_wait w = { .min_events = 1 };

		ioctl(r->fd, AIOPIPE_IOC_RING_WAIT, &w);
	}
}

/* Bytes for attached pipes: any write end of the pool. */
static void ring_write(void)
{
	size_t len = chance(80) ? 1 + below(chance(50) ? 512 : 70000) : rand_len();
	int fd = -1, i;

	for (i = 0; i < 16; i++) {
		int s = pick_slot();

		if (F.kind[s] == K_WRITE || F.kind[s] == K_FIFO) {
			fd = F.fd[s];
			break;
		}
	}
	if (len > ARENA)
		len = ARENA;
	if (fd < 0)
		return;
	i = (int)write(fd, F.arena + below(ARENA - len + 1), len);
	note("write(%d, %zu) to an attached pipe? = %d", fd, len, i < 0 ? -errno : i);
}

/* A fresh nonblocking pair, attached at once, with bytes before or after. */
static void ring_pair_attach(void)
{
	struct fz_ring *r = pick_ring();
	size_t before = chance(30) ? 1 + below(8192) : 0, after = 1 + below(20000);
	bool close_w = chance(10);
	int fds[2], ret;

	if (aiopipe_pair(fds, O_NONBLOCK | O_CLOEXEC))
		return;
	if (before && write(fds[1], F.arena, before) < 0)
		before = 0;
	if (close_w) {
		close(fds[1]);
		fds[1] = -1;
	}
	ret = r->fd >= 0 ? aiopipe_ring_attach(&(struct aiopipe_ring){ .fd = r->fd },
					       fds[0], (uint32_t)fds[0]) : -EBADF;
	if (fds[1] >= 0 && write(fds[1], F.arena + below(ARENA - after), after) < 0)
		after = 0;
	note("pair %d/%d attached to ring %d = %d (%zu bytes before, %zu after)", fds[0],
	     fds[1], r->fd, ret, before, after);
	put_fd(fds[0], K_READ);
	if (fds[1] >= 0)
		put_fd(fds[1], K_WRITE);
}

/* Close a ring with pipes attached: its fd, its mapping, or both. */
static void ring_close(void)
{
	struct fz_ring *r = pick_ring();
	unsigned int how = (unsigned int)below(3);

	note("close ring %d (%s)", r->fd, how == 0 ? "fd" : how == 1 ? "mapping" : "both");
	if (how != 1 && r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	if (how != 0 && r->map) {
		munmap(r->map, r->size);
		r->map = NULL;
	}
	if (r->fd < 0 && !r->map)
		ring_forget(r);
}

static void ring_poll(void)
{
	struct fz_ring *r = pick_ring();
	struct pollfd p = { .fd = ring_fd(r), .events = (short)(chance(80) ? POLLIN : rnd()) };
	int ret = poll(&p, 1, chance(90) ? 0 : 2);

	note("poll(ring %d) = %d revents %#x", p.fd, ret < 0 ? -errno : ret, p.revents);
}

/* The mix: rings live long enough to carry bytes between creates and closes. */
static const unsigned char ring_mix[] = {
	0, 0, 1, 2, 3, 4, 5, 6, 6, 6, 7, 8, 8, 9, 9, 10, 11,
};

static void do_ring(void)
{
	unsigned int op = ring_mix[below(sizeof(ring_mix))];

	F.ring_counts[op]++;
	switch (op) {
	case 0: ring_create(); break;
	case 1: ring_mmap(); break;
	case 2: ring_attach(); break;
	case 3: ring_detach(); break;
	case 4: ring_wait(); break;
	case 5: ring_hostile(); break;
	case 6: ring_reap(); break;
	case 7: ring_repair(pick_ring()); break;
	case 8: ring_write(); break;
	case 9: ring_pair_attach(); break;
	case 10: ring_close(); break;
	default: ring_poll(); break;
	}
}

static void run(uint64_t iterations);

static pid_t wait_pid(pid_t pid, int *status, int flags)
{
	pid_t r;

	do {
		r = waitpid(pid, status, flags);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* A child fuzzes on with the fds it inherited (and its own AIO/io_uring). */
static void do_fork(void)
{
	unsigned int i;
	uint64_t seed = rnd();
	pid_t pid;

	if (F.child || !O.forks)
		return;
	for (i = 0; i < 8 && F.kids[i]; i++)
		;
	if (i == 8) {
		int status;

		i = (unsigned int)below(8);
		kill(F.kids[i], SIGKILL);
		wait_pid(F.kids[i], &status, 0);
		F.kills++;
		note("kill -9 child %d", F.kids[i]);
		F.kids[i] = 0;
	}
	pid = fork();
	if (pid == 0) {
		F.child = true;
		rng_state = seed;
		alarm(60);
		start_ticker();
		F.ctx = 0;
		F.inflight = 0;
		if (F.have_ring)
			io_uring_queue_exit(&F.ring);
		F.have_ring = io_uring_queue_init(16, &F.ring, 0) == 0;
		if (io_setup(NIOCB, &F.ctx))
			F.ctx = 0;
		run(50 + below(500));
		_exit(0);
	}
	note("fork = %d", pid);
	if (pid > 0) {
		F.kids[i] = pid;
		F.forks++;
	}
}

static void reap_kids(bool all)
{
	unsigned int i;

	for (i = 0; i < 8; i++) {
		int status;

		if (!F.kids[i])
			continue;
		if (all || chance(30)) {
			if (!all || chance(50))
				kill(F.kids[i], SIGKILL);
			if (wait_pid(F.kids[i], &status, 0) == F.kids[i] && WIFSIGNALED(status) &&
			    WTERMSIG(status) != SIGKILL) {
				char m[96];

				snprintf(m, sizeof(m), "aiopipe-fuzz: child %d died of signal %d\n",
					 F.kids[i], WTERMSIG(status));
				wr(m);
			}
			F.kills++;
			F.kids[i] = 0;
		} else if (wait_pid(F.kids[i], &status, WNOHANG) == F.kids[i]) {
			F.kids[i] = 0;
		}
	}
}

enum {
	A_PAIR, A_OPEN, A_IOCTL, A_RW, A_AIO, A_CANCEL, A_REAP, A_DESTROY,
	A_URING, A_CLOSE, A_MISC, A_REMAP, A_FORK, A_RING, A_NR
};

static const char *const action_names[A_NR] = {
	"pair", "open", "ioctl", "rw", "aio", "cancel", "getevents", "destroy",
	"uring", "close", "misc", "remap", "fork", "ring",
};

/*
 * Weights out of 100, plus the ring's on top: the draw is below(100) without
 * ring operations, so --no-ring makes the calls earlier versions made.
 */
static const unsigned char weights[A_NR] = {
	[A_PAIR] = 8, [A_OPEN] = 4, [A_IOCTL] = 14, [A_RW] = 14, [A_AIO] = 16,
	[A_CANCEL] = 8, [A_REAP] = 6, [A_DESTROY] = 1, [A_URING] = 12,
	[A_CLOSE] = 8, [A_MISC] = 6, [A_REMAP] = 2, [A_FORK] = 1, [A_RING] = 12,
};

static void run(uint64_t iterations)
{
	unsigned int total = 100 + (O.ring ? weights[A_RING] : 0);
	uint64_t i;

	for (i = 0; i < iterations; i++) {
		unsigned int w = (unsigned int)below(total), a;

		F.iter++;
		for (a = 0; a < A_NR - 1 && w >= weights[a]; a++)
			w -= weights[a];
		F.counts[a]++;
		switch (a) {
		case A_PAIR: do_pair(); break;
		case A_OPEN: do_open(); break;
		case A_IOCTL: do_ioctl(); break;
		case A_RW: do_rw(); break;
		case A_AIO: do_aio(); break;
		case A_CANCEL: do_cancel(); break;
		case A_REAP: reap_aio(0, chance(90) ? 0 : 1000000); break;
		case A_DESTROY: do_destroy(); break;
		case A_URING: do_uring(); break;
		case A_CLOSE: do_close(); break;
		case A_MISC: do_misc(); break;
		case A_REMAP: do_remap(); break;
		case A_FORK: do_fork(); break;
		default: do_ring(); break;
		}
		if (!F.child && (i & 255) == 0)
			reap_kids(false);
		if (!F.child && F.iter % 5000 == 0)
			fprintf(stderr, "aiopipe-fuzz: %" PRIu64 " iterations\n", F.iter);
	}
}

static void setup(void)
{
	int i;

	F.arena = mmap(NULL, ARENA + 3 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (F.arena == MAP_FAILED) {
		perror("aiopipe-fuzz: mmap");
		exit(1);
	}
	/* arena | PROT_NONE guard | read-only page | PROT_NONE page */
	F.ro = F.arena + ARENA + PAGE;
	F.none = F.arena + ARENA + 2 * PAGE;
	mprotect(F.arena + ARENA, PAGE, PROT_NONE);
	mprotect(F.ro, PAGE, PROT_READ);
	mprotect(F.none, PAGE, PROT_NONE);
	for (size_t k = 0; k < ARENA; k += 8) {
		uint64_t v = rnd();

		memcpy(F.arena + k, &v, 8);
	}
	void *u = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	munmap(u, PAGE);
	F.unmapped = (uintptr_t)u;
	for (i = 0; i < MAXFD; i++)
		F.fd[i] = -1;
	for (i = 0; i < NRINGS; i++)
		F.rings[i].fd = -1;
	if (io_setup(NIOCB, &F.ctx))
		F.ctx = 0;
	F.have_ring = io_uring_queue_init(32, &F.ring, 0) == 0;
}

static void drop_root(void)
{
	if (O.keep_root || geteuid() != 0)
		return;
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
		perror("aiopipe-fuzz: dropping to uid 65534");
		exit(1);
	}
}

static void teardown(void)
{
	int i;

	timer_delete(ticker);
	reap_kids(true);
	if (F.ctx)
		io_destroy(F.ctx);
	F.ctx = 0;
	if (F.have_ring)
		io_uring_queue_exit(&F.ring);
	F.have_ring = false;
	for (i = 0; i < NRINGS; i++)
		ring_forget(&F.rings[i]);
	for (i = 0; i < MAXFD; i++)
		if (F.kind[i] != K_NONE)
			close(F.fd[i]);
	/* any fd the calls left behind (dup results, io_submit's RESFD...) */
	for (i = 3; i < 1024; i++)
		close(i);
}

/*
 * Counters of pending requests, pins and channels back at zero within 30 s
 * (io_uring tears its rings down asynchronously, holding file references).
 */
static int check_global(void)
{
	struct aiopipe_stats st;
	int i;

	for (i = 0; i < 300; i++) {
		if (aiopipe_stats(-1, &st))
			return -1;
		if (!st.pending_reads && !st.pending_writes && !st.pinned_pages && !st.channels)
			return 0;
		usleep(100000);
	}
	fprintf(stderr, "aiopipe-fuzz: counters not back to zero after the run: pending_reads %llu pending_writes %llu pinned_pages %llu channels %llu (seed %" PRIu64 ")\n",
		(unsigned long long)st.pending_reads, (unsigned long long)st.pending_writes,
		(unsigned long long)st.pinned_pages, (unsigned long long)st.channels, O.seed);
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: aiopipe-fuzz [--iterations N] [--seed S] [--timeout S] [--keep-root]\n"
"                    [--no-fork] [--no-ring] [--no-global-check] [--verbose]\n"
"Random syscalls against aiopipe (ioctls, iovecs, libaio iocbs, io_cancel,\n"
"io_uring SQEs, ring mode, closes, forks), reproducible by seed.\n"
"  --iterations N     calls to make (default 20000)\n"
"  --seed S           the run's seed (default: from the clock; printed)\n"
"  --timeout S        watchdog: exit 2 after S seconds (default 600)\n"
"  --keep-root        run as root (default: root drops to uid/gid 65534)\n"
"  --no-fork          no child processes\n"
"  --no-ring          no ring mode operations (the calls of versions before\n"
"                     ring mode, for the same seed)\n"
"  --no-global-check  skip the final check of the global counters\n"
"  --verbose          log every call on stderr\n"
"  -h, --help         this text\n"
"  --version          print the version and exit\n"
"Prints one CSV row: seed,iterations,seconds,forks,kills,result.  Exits 0 if\n"
"the run finished and the module's global counters came back to zero, 1 on\n"
"failure, 2 on usage or when the watchdog fired.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "iterations", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "keep-root", no_argument, NULL, 'r' },
		{ "no-fork", no_argument, NULL, 'F' },
		{ "no-ring", no_argument, NULL, 'R' },
		{ "no-global-check", no_argument, NULL, 'G' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction fatal = { .sa_handler = on_fatal };
	struct timespec t0, t1;
	bool seeded = false;
	int opt, rc = 0, a;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': O.iterations = strtoull(optarg, NULL, 0); break;
		case 's': O.seed = strtoull(optarg, NULL, 0); seeded = true; break;
		case 't': O.timeout = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'r': O.keep_root = true; break;
		case 'F': O.forks = false; break;
		case 'R': O.ring = false; break;
		case 'G': O.global_check = false; break;
		case 'v': O.verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("aiopipe-fuzz %s\n", AIOPIPE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!seeded)
		O.seed = (uint64_t)t0.tv_nsec ^ ((uint64_t)t0.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
	rng_state = O.seed;
	fprintf(stderr, "aiopipe-fuzz: seed %" PRIu64 ", %" PRIu64 " iterations\n", O.seed,
		O.iterations);
	if (access(AIOPIPE_DEV_FACTORY, R_OK)) {
		fprintf(stderr, "aiopipe-fuzz: %s: %s (is aiopipe.ko loaded?)\n",
			AIOPIPE_DEV_FACTORY, strerror(errno));
		return 1;
	}
	drop_root();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGIO, SIG_IGN);
	signal(SIGURG, SIG_IGN);
	signal(SIGALRM, on_alarm);
	sigaction(SIGSEGV, &fatal, NULL);
	sigaction(SIGBUS, &fatal, NULL);
	alarm(O.timeout);
	setup();
	start_ticker();
	run(O.iterations);
	teardown();
	if (O.global_check)
		rc = check_global();
	alarm(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "aiopipe-fuzz: calls:");
	for (a = 0; a < A_NR; a++)
		fprintf(stderr, " %s=%" PRIu64, action_names[a], F.counts[a]);
	fprintf(stderr, "\n");
	if (O.ring) {
		fprintf(stderr, "aiopipe-fuzz: ring calls:");
		for (a = 0; a < RING_OPS; a++)
			fprintf(stderr, " %s=%" PRIu64, ring_op_names[a], F.ring_counts[a]);
		fprintf(stderr, "; rings created %" PRIu64 "; events reaped: DATA=%" PRIu64
			" READ=%" PRIu64 " EOF=%" PRIu64 " other=%" PRIu64 "\n", F.rings_created,
			F.ring_events[AIOPIPE_EV_DATA],
			F.ring_events[AIOPIPE_EV_READ], F.ring_events[AIOPIPE_EV_EOF],
			F.ring_events[0]);
	}
	printf("%" PRIu64 ",%" PRIu64 ",%.1f,%" PRIu64 ",%" PRIu64 ",%s\n", O.seed, F.iter,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, F.forks,
	       F.kills, rc ? "FAIL" : "pass");
	if (rc)
		fprintf(stderr, "aiopipe-fuzz: FAILED (seed %" PRIu64 ")\n", O.seed);
	return rc ? 1 : 0;
}
