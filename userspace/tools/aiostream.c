// SPDX-License-Identifier: GPL-2.0
/*
 * aiostream: streaming throughput through one pipe, in the spirit of
 * aio-stress (OLS 2004 AIO paper, section 3.6).  One writer thread writes
 * blocks of B bytes; the reader keeps D reads of B bytes in flight (libaio
 * on aiopipe) or reads synchronously.  Every byte is checked against a
 * pattern that depends on its stream offset, so loss, duplication and
 * reordering all fail the run.  One CSV line on stdout, progress on stderr.
 *
 * Modes:
 *   aio-retry            aiopipe, retry engine, libaio reads, D in flight
 *   aio-direct           aiopipe, direct (single-copy) engine, libaio reads
 *   aio-retry-nofilter   aio-retry with wakeup filtering off (retry storm)
 *   aiopipe-rw           aiopipe, plain read()/write()
 *   pipe-rw              kernel pipe, read()/write()
 *   pipe-splice          kernel pipe, vmsplice() writer (no copy in), read()
 *
 * --ring, with an aiopipe mode: the read end is attached to a mapped ring
 * (ring mode, docs/ring.md) and the reader reaps its DATA, READ and EOF
 * events instead of reading; the mode column says "<mode>+ring".
 *
 * MB is 2^20 bytes, as in aio-stress.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>
#include <sys/utsname.h>

#include <libaio.h>

#include "libaiopipe.h"

enum mode {
	M_AIO_RETRY, M_AIO_DIRECT, M_AIO_RETRY_NOFILTER, M_AIOPIPE_RW,
	M_PIPE_RW, M_PIPE_SPLICE, M_NR
};

static const char *const mode_names[M_NR] = {
	"aio-retry", "aio-direct", "aio-retry-nofilter", "aiopipe-rw",
	"pipe-rw", "pipe-splice",
};

static const char *const csv_counters[] = {
	"retries", "futile_retries", "wakeups_filtered", "bytes_single_copy",
	"completed_by_peer", "completed_by_retry", "wakeups_delivered",
};
#define NR_CSV_COUNTERS (sizeof(csv_counters) / sizeof(csv_counters[0]))

/* ring mode: in the summary on stderr, not in the CSV */
static const char *const ring_counters[] = {
	"ring_buffers", "ring_bytes", "ring_spilled", "ring_owed",
};
#define NR_RING_COUNTERS (sizeof(ring_counters) / sizeof(ring_counters[0]))

#define PERIOD		((1u << 20) + 4093)	/* pattern period, bytes */
#define MAX_BLOCK	(16u << 20)

static struct {
	enum mode mode;
	size_t block;
	unsigned int depth;
	unsigned long long bytes_max;	/* 0: run for seconds */
	double seconds;
	unsigned int capacity;
	bool header;
	unsigned int stall;
	bool ring;			/* --ring: the reader reaps a ring */
	unsigned int ring_bufs;
	unsigned int ring_buf_size;

	int rfd, wfd;
	unsigned char *pat;		/* PERIOD + block bytes */
	unsigned long long written;	/* by the writer, final after join */
	int stop;			/* relaxed atomic */
	unsigned long long got;		/* by the reader, relaxed atomic */
} S;

__attribute__((noreturn, format(printf, 2, 3)))
static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("aiostream: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

__attribute__((noreturn, format(printf, 1, 2)))
static void die_errno(const char *fmt, ...)
{
	int err = errno;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	die(1, "%s: %s", msg, strerror(err));
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull +
	       (unsigned long long)ts.tv_nsec;
}

static bool is_aio(void)
{
	return S.mode <= M_AIO_RETRY_NOFILTER;
}

static bool is_aiopipe(void)
{
	return S.mode <= M_AIOPIPE_RW;
}

/* The mode as the CSV and the messages name it. */
static const char *mode_label(void)
{
	static char label[64];

	if (!S.ring)
		return mode_names[S.mode];
	snprintf(label, sizeof(label), "%s+ring", mode_names[S.mode]);
	return label;
}

/* ---- the pattern: byte k of the stream is pat[k % PERIOD] ------------------- */

static void make_pattern(void)
{
	uint64_t x = 0x2545f4914f6cdd1dull;
	size_t n = PERIOD + S.block, i;

	if (posix_memalign((void **)&S.pat, 4096, (n + 4095) & ~(size_t)4095))
		die(1, "out of memory");
	for (i = 0; i < PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		S.pat[i] = (unsigned char)(x >> 24);
	}
	for (; i < n; i++)
		S.pat[i] = S.pat[i - PERIOD];
}

static void verify(const unsigned char *buf, size_t n, unsigned long long off)
{
	const unsigned char *want = S.pat + off % PERIOD;
	size_t i;

	if (!memcmp(buf, want, n))
		return;
	for (i = 0; i < n && buf[i] == want[i]; i++)
		;
	die(1, "data check failed at stream offset %llu: got 0x%02x, expected 0x%02x (read of %zu bytes at offset %llu)",
	    off + i, buf[i], want[i], n, off);
}

/* ---- writer thread ------------------------------------------------------------ */

static void *writer(void *arg)
{
	unsigned long long off = 0;

	(void)arg;
	for (;;) {
		size_t left = S.block;

		if (S.bytes_max) {
			if (off >= S.bytes_max)
				break;
			if (S.bytes_max - off < left)
				left = (size_t)(S.bytes_max - off);
		} else if (__atomic_load_n(&S.stop, __ATOMIC_RELAXED)) {
			break;
		}
		while (left) {
			const unsigned char *p = S.pat + off % PERIOD;
			ssize_t n;

			if (S.mode == M_PIPE_SPLICE) {
				struct iovec iov = { (void *)p, left };

				n = vmsplice(S.wfd, &iov, 1, 0);
			} else {
				n = write(S.wfd, p, left);
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				die_errno("%s of %zu bytes at offset %llu",
					  S.mode == M_PIPE_SPLICE ? "vmsplice" : "write",
					  left, off);
			off += (unsigned long long)n;
			left -= (size_t)n;
		}
	}
	S.written = off;
	close(S.wfd);
	return NULL;
}

/* ---- readers ------------------------------------------------------------------- */

static unsigned long long read_sync(void)
{
	unsigned char *buf;
	unsigned long long off = 0;

	if (posix_memalign((void **)&buf, 4096, S.block))
		die(1, "out of memory");
	for (;;) {
		ssize_t n = read(S.rfd, buf, S.block);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_errno("read at offset %llu", off);
		if (n == 0)
			break;
		verify(buf, (size_t)n, off);
		off += (unsigned long long)n;
		__atomic_store_n(&S.got, off, __ATOMIC_RELAXED);
	}
	free(buf);
	return off;
}

struct aio_ring {
	unsigned int id, nr, head, tail, magic, compat_features,
		     incompat_features, header_length;
	struct io_event io_events[];
};

static int user_reap(io_context_t ctx, struct io_event *ev, int max)
{
	struct aio_ring *ring = (struct aio_ring *)ctx;
	unsigned int head = ring->head, tail;
	int n = 0;

	if (ring->magic != 0xa10a10a1 || ring->incompat_features)
		return 0;
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

/*
 * D reads in flight.  Results come back in completion order; the bytes
 * belong to the stream in submission order, so slots are retired in order.
 */
static unsigned long long read_aio(void)
{
	unsigned int d = S.depth, i, head = 0, live = d;
	io_context_t ctx = 0;
	struct iocb *cb = calloc(d, sizeof(*cb));
	struct iocb **list = calloc(d, sizeof(*list));
	long *res = calloc(d, sizeof(*res));
	bool *done = calloc(d, sizeof(*done));
	struct io_event ev[64];
	unsigned char *bufs;
	unsigned long long off = 0;
	bool eof = false;
	int ret;

	if (!cb || !list || !res || !done ||
	    posix_memalign((void **)&bufs, 4096, (size_t)d * S.block))
		die(1, "out of memory");
	ret = io_setup((int)d + 16, &ctx);
	if (ret) {
		errno = -ret;
		die_errno("io_setup(%u)", d + 16);
	}
	for (i = 0; i < d; i++) {
		io_prep_pread(&cb[i], S.rfd, bufs + (size_t)i * S.block, S.block, 0);
		cb[i].data = (void *)(uintptr_t)i;
		list[i] = &cb[i];
	}
	ret = io_submit(ctx, d, list);
	if (ret != (int)d) {
		errno = ret < 0 ? -ret : EAGAIN;
		die_errno("io_submit of %u reads (%d)", d, ret);
	}
	while (live) {
		int n = user_reap(ctx, ev, 64), k, nre = 0;

		if (!n) {
			n = io_getevents(ctx, 1, 64, ev, NULL);
			if (n == -EINTR)
				continue;
			if (n < 0) {
				errno = -n;
				die_errno("io_getevents");
			}
		}
		for (k = 0; k < n; k++) {
			i = (unsigned int)(uintptr_t)ev[k].data;
			res[i] = (long)ev[k].res;
			done[i] = true;
		}
		/* Retire in submission order. */
		while (done[head]) {
			long r = res[head];

			done[head] = false;
			if (r < 0) {
				errno = (int)-r;
				die_errno("aio read (slot %u) at offset %llu", head, off);
			}
			if (r > 0 && eof)
				die(1, "aio read returned %ld bytes after EOF at offset %llu",
				    r, off);
			if (r == 0) {
				eof = true;
				live--;
			} else {
				verify(bufs + (size_t)head * S.block, (size_t)r, off);
				off += (unsigned long long)r;
				__atomic_store_n(&S.got, off, __ATOMIC_RELAXED);
				io_prep_pread(&cb[head], S.rfd,
					      bufs + (size_t)head * S.block,
					      S.block, 0);
				cb[head].data = (void *)(uintptr_t)head;
				list[nre++] = &cb[head];
			}
			head = head + 1 == d ? 0 : head + 1;
		}
		if (nre) {
			ret = io_submit(ctx, nre, list);
			if (ret != nre) {
				errno = ret < 0 ? -ret : EAGAIN;
				die_errno("io_submit of %d re-arms (%d)", nre, ret);
			}
		}
	}
	io_destroy(ctx);
	free(bufs);
	free(cb);
	free(list);
	free(res);
	free(done);
	return off;
}

/* ---- ring mode: the reader reaps events ----------------------------------------- */

struct ring_reader {
	struct aiopipe_ring r;
	unsigned char *buf;		/* S.block bytes, for READ events */
	unsigned long long off;
	unsigned long long data_events, read_events;
	bool eof;
};

static void ring_open(struct ring_reader *rr)
{
	unsigned int entries = S.ring_bufs * 4;
	int ret;

	if (entries < 16)
		entries = 16;
	if (entries > AIOPIPE_RING_MAX)
		entries = AIOPIPE_RING_MAX;
	ret = aiopipe_ring_setup(&rr->r, entries, S.ring_bufs, S.ring_buf_size,
				 O_CLOEXEC);
	if (ret == -ENOTTY)
		die(2, "--ring: this aiopipe module has no ring mode (AIOPIPE_IOC_RING_CREATE: %s)",
		    strerror(-ret));
	if (ret == -ENOMEM)
		die(1, "aiopipe_ring_setup(%u entries, %u buffers of %u bytes): %s (RLIMIT_MEMLOCK, ulimit -l?)",
		    entries, S.ring_bufs, S.ring_buf_size, strerror(-ret));
	if (ret < 0) {
		errno = -ret;
		die_errno("aiopipe_ring_setup(%u entries, %u buffers of %u bytes)",
			  entries, S.ring_bufs, S.ring_buf_size);
	}
	ret = aiopipe_ring_attach(&rr->r, S.rfd, 0);
	if (ret < 0) {
		errno = -ret;
		die_errno("aiopipe_ring_attach(fd %d)", S.rfd);
	}
	if (posix_memalign((void **)&rr->buf, 4096, S.block))
		die(1, "out of memory");
}

static void ring_data(struct ring_reader *rr, const struct aiopipe_ring_event *ev)
{
	if (ev->buf >= rr->r.nr_bufs || !ev->len || ev->len > rr->r.buf_size)
		die(1, "ring: DATA event with buffer %u, length %u (%u buffers of %u bytes) at offset %llu",
		    ev->buf, ev->len, rr->r.nr_bufs, rr->r.buf_size, rr->off);
	verify(aiopipe_ring_buf(&rr->r, ev->buf), ev->len, rr->off);
	aiopipe_ring_give_back(&rr->r, ev->buf);
	rr->off += ev->len;
	rr->data_events++;
}

/* READ event: exactly @len announced bytes are in the pipe, in order. */
static void ring_read(struct ring_reader *rr, unsigned int len)
{
	unsigned int left = len;

	while (left) {
		size_t want = left < S.block ? left : S.block;
		ssize_t n = read(S.rfd, rr->buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_errno("ring: read of %zu of the %u bytes a READ event announced at offset %llu",
				  want, len, rr->off);
		if (n == 0)
			die(1, "ring: EOF with %u of the %u bytes a READ event announced unread at offset %llu",
			    left, len, rr->off);
		verify(rr->buf, (size_t)n, rr->off);
		rr->off += (unsigned long long)n;
		left -= (unsigned int)n;
	}
	rr->read_events++;
}

static void ring_event(struct ring_reader *rr, const struct aiopipe_ring_event *ev)
{
	if (ev->user_data != 0)
		die(1, "ring: event of type %u for user_data %llu, not this pipe's",
		    ev->type, (unsigned long long)ev->user_data);
	if (rr->eof)
		die(1, "ring: event of type %u, length %u after EOF at offset %llu",
		    ev->type, ev->len, rr->off);
	switch (ev->type) {
	case AIOPIPE_EV_DATA:
		ring_data(rr, ev);
		break;
	case AIOPIPE_EV_READ:
		ring_read(rr, ev->len);
		break;
	case AIOPIPE_EV_EOF:
		rr->eof = true;
		break;
	default:
		die(1, "ring: unknown event type %u (length %u) at offset %llu",
		    ev->type, ev->len, rr->off);
	}
}

/* Reap DATA, READ and EOF events until EOF; every byte verified. */
static unsigned long long read_ring(void)
{
	struct ring_reader rr = { 0 };
	struct aiopipe_ring_event *ev;

	ring_open(&rr);
	while (!rr.eof) {
		int ret = aiopipe_ring_wait(&rr.r, 1, -1);

		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			errno = -ret;
			die_errno("aiopipe_ring_wait at offset %llu", rr.off);
		}
		while ((ev = aiopipe_ring_peek(&rr.r))) {
			ring_event(&rr, ev);
			aiopipe_ring_advance(&rr.r, 1);
		}
		__atomic_store_n(&S.got, rr.off, __ATOMIC_RELAXED);
	}
	fprintf(stderr, "aiostream: ring: %llu DATA events, %llu READ events, %u buffers of %u bytes\n",
		rr.data_events, rr.read_events, rr.r.nr_bufs, rr.r.buf_size);
	aiopipe_ring_exit(&rr.r);
	free(rr.buf);
	return rr.off;
}

/* ---- timer, stall watchdog ------------------------------------------------------ */

static void *watchdog(void *arg)
{
	unsigned long long t0 = now_ns(), last = 0, last_change = t0, now;

	(void)arg;
	for (;;) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		unsigned long long g;

		nanosleep(&ts, NULL);
		now = now_ns();
		if (!S.bytes_max && now - t0 >= (unsigned long long)(S.seconds * 1e9))
			__atomic_store_n(&S.stop, 1, __ATOMIC_RELAXED);
		g = __atomic_load_n(&S.got, __ATOMIC_RELAXED);
		if (g != last) {
			last = g;
			last_change = now;
		} else if (now - last_change > S.stall * 1000000000ull) {
			fprintf(stderr, "aiostream: stalled: no data for %u s after %llu bytes (mode %s, block %zu, depth %u)\n",
				S.stall, g, mode_label(), S.block, S.depth);
			_exit(3);
		}
	}
	return NULL;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: aiostream [options]\n"
"Streaming throughput through one pipe: one writer thread, one reader with\n"
"D reads of B bytes in flight.  Every byte is verified.\n"
"  -m, --mode M       aio-retry | aio-direct | aio-retry-nofilter |\n"
"                     aiopipe-rw | pipe-rw | pipe-splice (default aio-direct)\n"
"  -b, --block B      bytes per read and per write (default 65536; k/m suffix)\n"
"  -q, --depth D      reads in flight, aio modes (default 8)\n"
"      --ring         the reader reaps a ring the read end is attached to\n"
"                     (aiopipe modes; the CSV mode is MODE+ring, depth the\n"
"                     number of buffers)\n"
"      --ring-bufs N  ring buffers, a power of two (default 32)\n"
"      --ring-buf-size B  bytes per ring buffer, a power of two, 64..1m\n"
"                     (default 65536)\n"
"  -M, --mbytes M     move M MiB ...\n"
"  -d, --seconds S    ... or write for S seconds (default 1)\n"
"      --capacity C   pipe capacity in bytes (default 65536, as a kernel pipe)\n"
"      --stall S      fail (exit 3) after S seconds without data (default 20)\n"
"      --no-header    omit the CSV header\n"
"      --print-header print only the CSV header\n"
"  -h, --help         this text\n"
"      --version      print the version and exit\n"
"Exit status: 0 ok, 1 failure (data check, system call), 2 usage or\n"
"unsupported, 3 stalled.\n");
}

static unsigned long long parse_size(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (errno || end == s || *end || !v)
		die(2, "bad value for %s: '%s'", opt, s);
	return v;
}

static void print_header(void)
{
	size_t c;

	printf("kernel,mode,block_size,depth,mbytes,seconds,mb_per_sec");
	for (c = 0; c < NR_CSV_COUNTERS; c++)
		printf(",%s", csv_counters[c]);
	printf("\n");
}

/* The global counters @names, 0 in the kernel pipe modes. */
static void counters(const char *const *names, size_t nr, unsigned long long *out)
{
	struct aiopipe_stats st;
	int i, n = aiopipe_stat_count();
	size_t c;

	memset(out, 0, nr * sizeof(*out));
	if (!is_aiopipe() || aiopipe_stats(-1, &st) < 0)
		return;
	for (c = 0; c < nr; c++)
		for (i = 0; i < n; i++)
			if (!strcmp(aiopipe_stat_name(i), names[c]))
				out[c] = aiopipe_stat_value(&st, i);
}

static bool power_of_two(unsigned long long v)
{
	return v && !(v & (v - 1));
}

static void open_pipe(void)
{
	int fds[2];

	if (is_aiopipe()) {
		int ret = aiopipe_pair_ex(fds, O_CLOEXEC, S.capacity,
					  S.mode == M_AIO_DIRECT ?
					  AIOPIPE_ENGINE_DIRECT : AIOPIPE_ENGINE_RETRY);

		if (ret == -ENOENT || ret == -ENODEV || ret == -ENXIO)
			die(2, "mode %s: %s: %s (is aiopipe.ko loaded?)",
			    mode_names[S.mode], AIOPIPE_DEV_FACTORY, strerror(-ret));
		if (ret < 0) {
			errno = -ret;
			die_errno("aiopipe_pair_ex(capacity %u)", S.capacity);
		}
		if (S.mode == M_AIO_RETRY_NOFILTER &&
		    aiopipe_set_filter(fds[0], AIOPIPE_FILTER_OFF) < 0)
			die_errno("AIOPIPE_IOC_SET_FILTER off");
	} else {
		if (pipe2(fds, O_CLOEXEC))
			die_errno("pipe2");
		if (S.capacity != 65536 && fcntl(fds[1], F_SETPIPE_SZ, S.capacity) < 0)
			die_errno("F_SETPIPE_SZ %u", S.capacity);
	}
	S.rfd = fds[0];
	S.wfd = fds[1];
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "block", required_argument, NULL, 'b' },
		{ "depth", required_argument, NULL, 'q' },
		{ "mbytes", required_argument, NULL, 'M' },
		{ "seconds", required_argument, NULL, 'd' },
		{ "capacity", required_argument, NULL, 'C' },
		{ "stall", required_argument, NULL, 'S' },
		{ "ring", no_argument, NULL, 'r' },
		{ "ring-bufs", required_argument, NULL, 'N' },
		{ "ring-buf-size", required_argument, NULL, 'Z' },
		{ "no-header", no_argument, NULL, 'H' },
		{ "print-header", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long before[NR_CSV_COUNTERS], after[NR_CSV_COUNTERS];
	unsigned long long rbefore[NR_RING_COUNTERS], rafter[NR_RING_COUNTERS];
	unsigned long long v;
	unsigned long long t0, t1, got;
	pthread_t wt, wd;
	struct utsname u;
	double secs, mb;
	char *end;
	size_t c;
	int opt, i;

	S.mode = M_AIO_DIRECT;
	S.block = 65536;
	S.depth = 8;
	S.seconds = 1;
	S.capacity = 65536;
	S.header = true;
	S.stall = 20;
	S.ring_bufs = 32;
	S.ring_buf_size = 65536;
	while ((opt = getopt_long(argc, argv, "m:b:q:M:d:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			for (i = 0; i < M_NR && strcmp(mode_names[i], optarg); i++)
				;
			if (i == M_NR)
				die(2, "unknown mode '%s' (see --help)", optarg);
			S.mode = (enum mode)i;
			break;
		case 'b':
			S.block = (size_t)parse_size("--block", optarg);
			if (S.block > MAX_BLOCK)
				die(2, "--block at most %u", MAX_BLOCK);
			break;
		case 'q':
			S.depth = (unsigned int)parse_size("--depth", optarg);
			if (S.depth > 1024)
				die(2, "--depth at most 1024");
			break;
		case 'M':
			S.bytes_max = parse_size("--mbytes", optarg) << 20;
			break;
		case 'd':
			S.seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(S.seconds > 0))
				die(2, "bad value for --seconds: '%s'", optarg);
			S.bytes_max = 0;
			break;
		case 'C':
			S.capacity = (unsigned int)parse_size("--capacity", optarg);
			break;
		case 'S':
			S.stall = (unsigned int)parse_size("--stall", optarg);
			break;
		case 'r':
			S.ring = true;
			break;
		case 'N':
			v = parse_size("--ring-bufs", optarg);
			if (!power_of_two(v) || v > AIOPIPE_RING_MAX)
				die(2, "--ring-bufs: a power of two up to %u, not '%s'",
				    AIOPIPE_RING_MAX, optarg);
			S.ring_bufs = (unsigned int)v;
			break;
		case 'Z':
			v = parse_size("--ring-buf-size", optarg);
			if (!power_of_two(v) || v < AIOPIPE_RING_BUF_MIN || v > AIOPIPE_RING_BUF_MAX)
				die(2, "--ring-buf-size: a power of two from %u to %u, not '%s'",
				    AIOPIPE_RING_BUF_MIN, AIOPIPE_RING_BUF_MAX, optarg);
			S.ring_buf_size = (unsigned int)v;
			break;
		case 'H':
			S.header = false;
			break;
		case 'P':
			print_header();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("aiostream %s\n", AIOPIPE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		die(2, "unexpected argument '%s'", argv[optind]);
	if (S.ring && !is_aiopipe())
		die(2, "--ring needs an aiopipe mode, not %s", mode_names[S.mode]);
	if (S.ring)
		S.depth = S.ring_bufs;
	else if (!is_aio())
		S.depth = 1;
	signal(SIGPIPE, SIG_IGN);
	make_pattern();
	open_pipe();
	counters(csv_counters, NR_CSV_COUNTERS, before);
	counters(ring_counters, NR_RING_COUNTERS, rbefore);

	t0 = now_ns();
	if (pthread_create(&wd, NULL, watchdog, NULL))
		die(1, "pthread_create");
	pthread_detach(wd);
	if (pthread_create(&wt, NULL, writer, NULL))
		die(1, "pthread_create");
	got = S.ring ? read_ring() : is_aio() ? read_aio() : read_sync();
	t1 = now_ns();
	pthread_join(wt, NULL);
	counters(csv_counters, NR_CSV_COUNTERS, after);
	counters(ring_counters, NR_RING_COUNTERS, rafter);
	if (got != S.written)
		die(1, "read %llu bytes, writer wrote %llu", got, S.written);

	secs = (double)(t1 - t0) / 1e9;
	mb = (double)got / 1048576.0;
	if (uname(&u))
		strcpy(u.release, "unknown");
	if (S.header)
		print_header();
	printf("%s,%s,%zu,%u,%.2f,%.6f,%.2f", u.release, mode_label(),
	       S.block, S.depth, mb, secs, mb / secs);
	for (c = 0; c < NR_CSV_COUNTERS; c++)
		printf(",%llu", after[c] - before[c]);
	printf("\n");
	fflush(stdout);
	fprintf(stderr, "aiostream: %s B=%zu D=%u: %.1f MiB in %.3f s = %.1f MiB/s\n",
		mode_label(), S.block, S.depth, mb, secs, mb / secs);
	if (S.ring) {
		fprintf(stderr, "aiostream: ring counters:");
		for (c = 0; c < NR_RING_COUNTERS; c++)
			fprintf(stderr, " %s %llu", ring_counters[c], rafter[c] - rbefore[c]);
		fprintf(stderr, "\n");
	}
	close(S.rfd);
	return 0;
}
