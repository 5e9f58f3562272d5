// SPDX-License-Identifier: GPL-2.0
/*
 * pipetest: options, pipes, tokens and their verification, the watchdog
 * and the CSV line.  The I/O models are in models.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include "libaiopipe.h"
#include "pipetest.h"

const char *const pt_model_names[PT_NR_MODELS] = {
	[PT_POLL] = "poll",
	[PT_SELECT] = "select",
	[PT_EPOLL] = "epoll",
	[PT_AIO_POLL] = "aio-poll",
	[PT_AIO_READ] = "aio-read",
	[PT_URING_READ] = "io_uring-read",
	[PT_URING_POLL] = "io_uring-poll",
	[PT_THREADS] = "threads",
	[PT_AIO_RW] = "aio-rw",
	[PT_EPOLL_ET] = "epoll-et",
	[PT_URING_MSHOT] = "io_uring-mshot",
	[PT_RING] = "ring",
};

static const char *const backend_names[PT_NR_BACKENDS] = {
	[PT_PIPE] = "pipe",
	[PT_RETRY] = "aiopipe-retry",
	[PT_DIRECT] = "aiopipe-direct",
	[PT_RETRY_NOFILTER] = "aiopipe-retry-nofilter",
};

/* The counters reported as deltas, by their libaiopipe names. */
static const char *const csv_counters[] = {
	"retries", "futile_retries", "wakeups_filtered", "bytes_single_copy",
	"queued", "completed_at_submit", "completed_by_peer",
	"completed_by_retry", "wakeups_delivered",
};
#define NR_CSV_COUNTERS (sizeof(csv_counters) / sizeof(csv_counters[0]))

void pt_die(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("pipetest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void pt_fail_errno(const char *fmt, ...)
{
	int err = errno;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pt_die(PT_EXIT_FAIL, "%s: %s", msg, strerror(err));
}

unsigned long long pt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull +
	       (unsigned long long)ts.tv_nsec;
}

/* ---- tokens ------------------------------------------------------------- */

/* Fletcher-style sum over 8-byte words (order-sensitive), then the tail. */
static uint64_t pt_sum(const char *p, size_t n)
{
	uint64_t a = 0x9e3779b97f4a7c15ull, b = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		a += w;
		b += a;
	}
	for (; i < n; i++) {
		a += (unsigned char)p[i];
		b += a;
	}
	return a ^ (b << 1) ^ (b >> 63);
}

static uint32_t pt_csum(uint32_t id, uint32_t hop, uint64_t paysum)
{
	uint64_t h = ((uint64_t)id << 32 | hop) * 0xff51afd7ed558ccdull;

	h ^= paysum;
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 32;
	return (uint32_t)h;
}

static void pt_token_fill(struct pt *pt, char *buf, uint32_t id)
{
	struct pt_token_hdr h = { .id = id, .hop = 0 };
	unsigned int j;

	for (j = PT_HDR; j < pt->size; j++)
		buf[j] = (char)(id * 131u + j * 7u + (j >> 8));
	pt->paysum[id] = pt_sum(buf + PT_HDR, pt->size - PT_HDR);
	h.csum = pt_csum(id, 0, pt->paysum[id]);
	memcpy(buf, &h, sizeof(h));
}

/*
 * Check the token that came out of pipe @i and advance it to its next hop.
 * Any mismatch ends the run: a benchmark of a pipe that loses, duplicates,
 * reorders or corrupts data measures nothing.
 */
static void pt_verify_and_advance(struct pt *pt, unsigned int i, char *buf)
{
	struct pt_token_hdr h;
	uint64_t paysum;
	unsigned int want_pipe;

	memcpy(&h, buf, sizeof(h));
	if (h.id >= pt->tokens)
		pt_die(PT_EXIT_FAIL,
		       "verify failed at pass %llu on pipe %u: token id %u out of range (%u tokens)",
		       pt->passes, i, h.id, pt->tokens);
	if (h.hop != pt->next_hop[h.id])
		pt_die(PT_EXIT_FAIL,
		       "verify failed at pass %llu on pipe %u: token %u hop %u, expected hop %u (lost or duplicated)",
		       pt->passes, i, h.id, h.hop, pt->next_hop[h.id]);
	want_pipe = (unsigned int)((pt->start[h.id] + (unsigned long long)h.hop) % pt->pipes);
	if (want_pipe != i)
		pt_die(PT_EXIT_FAIL,
		       "verify failed at pass %llu: token %u hop %u came out of pipe %u, expected pipe %u",
		       pt->passes, h.id, h.hop, i, want_pipe);
	paysum = pt->full_verify ? pt_sum(buf + PT_HDR, pt->size - PT_HDR) :
				   pt->paysum[h.id];
	if (h.csum != pt_csum(h.id, h.hop, paysum))
		pt_die(PT_EXIT_FAIL,
		       "verify failed at pass %llu on pipe %u: token %u hop %u checksum 0x%08x, expected 0x%08x (corrupt token)",
		       pt->passes, i, h.id, h.hop, h.csum,
		       pt_csum(h.id, h.hop, paysum));
	h.hop++;
	pt->next_hop[h.id] = h.hop;
	h.csum = pt_csum(h.id, h.hop, paysum);
	memcpy(buf, &h, sizeof(h));
}

static void pt_write_token(struct pt *pt, unsigned int to, const char *buf)
{
	size_t off = 0;

	while (off < pt->size) {
		int fd = __atomic_load_n(&pt->wfd[to], __ATOMIC_RELAXED);
		ssize_t n = write(fd, buf + off, pt->size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && __atomic_load_n(&pt->stop, __ATOMIC_RELAXED) &&
		    pt->model == PT_THREADS)
			return;	/* the threads model is being torn down */
		if (n <= 0)
			pt_fail_errno("write of %u bytes to pipe %u (pass %llu)",
				      pt->size, to, pt->passes);
		off += (size_t)n;
	}
}

/*
 * Read pipe @i into @buf until it holds a whole token, @have bytes of it
 * already there.  Once a token has begun, its rest is already in the pipe
 * (every write is whole before the next pass, and capacity >= tokens *
 * size), so a read cannot block for long; on an O_NONBLOCK end EAGAIN
 * waits with poll().  With @drain and nothing read yet, an empty O_NONBLOCK
 * pipe (EAGAIN) returns false instead: the edge-triggered model reads each
 * pipe until then.
 */
static bool pt_read_more(struct pt *pt, unsigned int i, char *buf,
			 size_t have, bool drain)
{
	while (have < pt->size) {
		ssize_t n = read(pt->rfd[i], buf + have, pt->size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = pt->rfd[i], .events = POLLIN };

			if (drain && !have)
				return false;
			poll(&p, 1, 1000);
			continue;
		}
		if (n == 0 && pt->model == PT_THREADS &&
		    __atomic_load_n(&pt->stop, __ATOMIC_RELAXED))
			pthread_exit(NULL);
		if (n == 0)
			pt_die(PT_EXIT_FAIL,
			       "read on pipe %u: unexpected EOF after %zu of %u bytes (pass %llu)",
			       i, have, pt->size, pt->passes);
		if (n < 0)
			pt_fail_errno("read on pipe %u (pass %llu)", i,
				      pt->passes);
		have += (size_t)n;
	}
	return true;
}

/* A read returned @have bytes of a token: read the rest. */
void pt_read_rest(struct pt *pt, unsigned int i, char *buf, size_t have)
{
	pt_read_more(pt, i, buf, have, false);
}

/* The next token of O_NONBLOCK pipe @i, or false if the pipe is empty. */
bool pt_read_token(struct pt *pt, unsigned int i, char *buf)
{
	return pt_read_more(pt, i, buf, 0, true);
}

static void pt_mark_window(struct pt *pt, unsigned long long done)
{
	if (done == pt->warmup) {
		pt->passes0 = done;
		__atomic_store_n(&pt->t0_ns, pt_now_ns(), __ATOMIC_RELEASE);
	}
}

/* One pass, single-threaded models: @buf holds the whole token from pipe i. */
void pt_pass(struct pt *pt, unsigned int i, char *buf)
{
	unsigned int next = i + 1 == pt->pipes ? 0 : i + 1;
	unsigned long long done;

	if (pt->inject && pt->passes + 1 == pt->inject)
		buf[pt->size - 1] ^= 0x20;	/* prove that the check works */
	pt_verify_and_advance(pt, i, buf);
	pt_write_token(pt, next, buf);
	done = pt->passes + 1;
	__atomic_store_n(&pt->passes, done, __ATOMIC_RELAXED);
	if (pt->warmup && done == pt->warmup)
		pt_mark_window(pt, done);
}

/* Write the token that came out of pipe @i to pipe i + 1. */
void pt_forward(struct pt *pt, unsigned int i, const char *buf)
{
	pt_write_token(pt, i + 1 == pt->pipes ? 0 : i + 1, buf);
}

/* One pass whose write the caller does itself (aio-read, aio-rw). */
void pt_pass_nowrite(struct pt *pt, unsigned int i, char *buf)
{
	unsigned long long done;

	if (pt->inject && pt->passes + 1 == pt->inject)
		buf[pt->size - 1] ^= 0x20;
	pt_verify_and_advance(pt, i, buf);
	done = pt->passes + 1;
	__atomic_store_n(&pt->passes, done, __ATOMIC_RELAXED);
	if (pt->warmup && done == pt->warmup)
		pt_mark_window(pt, done);
}

/* One pass, threads model: the counter is shared. */
void pt_pass_mt(struct pt *pt, unsigned int i, char *buf)
{
	unsigned int next = i + 1 == pt->pipes ? 0 : i + 1;
	unsigned long long done;

	if (pt->inject &&
	    __atomic_load_n(&pt->passes, __ATOMIC_RELAXED) + 1 == pt->inject)
		buf[pt->size - 1] ^= 0x20;
	pt_verify_and_advance(pt, i, buf);
	pt_write_token(pt, next, buf);
	done = __atomic_add_fetch(&pt->passes, 1, __ATOMIC_RELAXED);
	if (pt->warmup && done == pt->warmup)
		pt_mark_window(pt, done);
	if (pt->passes_max && done == pt->passes_max + pt->warmup) {
		pt->passes1 = done;
		pt->t1_ns = pt_now_ns();
		__atomic_store_n(&pt->stop, 1, __ATOMIC_RELEASE);
	}
}

bool pt_mt_done(struct pt *pt)
{
	return __atomic_load_n(&pt->stop, __ATOMIC_ACQUIRE);
}

void pt_start(struct pt *pt)
{
	char *buf = malloc(pt->size);
	unsigned int k;

	if (!buf)
		pt_die(PT_EXIT_FAIL, "out of memory");
	if (!pt->warmup) {
		pt->passes0 = 0;
		__atomic_store_n(&pt->t0_ns, pt_now_ns(), __ATOMIC_RELEASE);
	}
	for (k = 0; k < pt->tokens; k++) {
		pt_token_fill(pt, buf, k);
		pt_write_token(pt, pt->start[k], buf);
	}
	free(buf);
}

void pt_finish(struct pt *pt)
{
	if (!pt->t1_ns) {
		pt->t1_ns = pt_now_ns();
		pt->passes1 = __atomic_load_n(&pt->passes, __ATOMIC_RELAXED);
	}
}

/* ---- watchdog: the --seconds deadline, progress lines, stall detection --- */

/*
 * Samples of (time, passes) every WINDOW_NS inside the timed window: the
 * rates of these short windows give a "steady" rate, their median, which a
 * few windows in which the host descheduled the emulator cannot move.
 */
#define WINDOW_NS	(10 * 1000 * 1000)
#define MAX_SAMPLES	200000
static struct { unsigned long long t, p; } samples[MAX_SAMPLES];
static unsigned int nr_samples;	/* relaxed atomic */

static void *pt_watchdog(void *arg)
{
	struct pt *pt = arg;
	unsigned long long last = 0, last_change = pt_now_ns(), last_print;
	unsigned long long deadline = 0, now, t0;

	last_print = last_change;
	for (;;) {
		struct timespec ts = { 0, WINDOW_NS };
		unsigned long long p;

		nanosleep(&ts, NULL);
		now = pt_now_ns();
		p = __atomic_load_n(&pt->passes, __ATOMIC_RELAXED);
		t0 = __atomic_load_n(&pt->t0_ns, __ATOMIC_ACQUIRE);
		if (t0 && !__atomic_load_n(&pt->stop, __ATOMIC_RELAXED) &&
		    nr_samples < MAX_SAMPLES) {
			unsigned int n = nr_samples;

			samples[n].t = now;
			samples[n].p = p;
			__atomic_store_n(&nr_samples, n + 1, __ATOMIC_RELEASE);
		}
		if (!deadline && t0 && !pt->passes_max)
			deadline = t0 + (unsigned long long)(pt->seconds * 1e9);
		if (deadline && now >= deadline &&
		    !__atomic_load_n(&pt->stop, __ATOMIC_RELAXED)) {
			if (pt->model == PT_THREADS) {
				pt->passes1 = p;
				pt->t1_ns = now;
			}
			__atomic_store_n(&pt->stop, 1, __ATOMIC_RELEASE);
		}
		if (p != last) {
			last = p;
			last_change = now;
		} else if (t0 && now - last_change > pt->stall * 1000000000ull) {
			char msg[256];
			int n = snprintf(msg, sizeof(msg),
					 "pipetest: stalled: no pass for %u s after %llu passes (model %s, backend %s, pipes %u, tokens %u)\n",
					 pt->stall, p, pt_model_names[pt->model],
					 backend_names[pt->backend], pt->pipes,
					 pt->tokens);

			if (write(2, msg, (size_t)n) < 0)
				_exit(PT_EXIT_STALL);
			_exit(PT_EXIT_STALL);
		}
		if (now - last_print >= 2000000000ull) {
			last_print = now;
			fprintf(stderr, "pipetest: %s/%s: %llu passes\n",
				pt_model_names[pt->model],
				backend_names[pt->backend], p);
		}
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Median and 90th percentile of the window rates inside [t0, t1]; 0 when
 * there are fewer than 3 windows.
 */
static void pt_window_rates(struct pt *pt, double *med, double *p90)
{
	unsigned int n = __atomic_load_n(&nr_samples, __ATOMIC_ACQUIRE), i, k = 0;
	unsigned long long pt_prev = pt->t0_ns, pp_prev = pt->passes0;
	double *r = n ? malloc((n + 1) * sizeof(*r)) : NULL;

	*med = *p90 = 0;
	if (!r)
		return;
	for (i = 0; i < n; i++) {
		if (samples[i].t <= pt_prev || samples[i].t > pt->t1_ns ||
		    samples[i].p < pp_prev)
			continue;
		r[k++] = (double)(samples[i].p - pp_prev) * 1e9 /
			 (double)(samples[i].t - pt_prev);
		pt_prev = samples[i].t;
		pp_prev = samples[i].p;
	}
	if (k >= 3) {
		qsort(r, k, sizeof(*r), cmp_double);
		*med = k % 2 ? r[k / 2] : (r[k / 2 - 1] + r[k / 2]) / 2;
		*p90 = r[(k * 9) / 10 < k ? (k * 9) / 10 : k - 1];
	}
	free(r);
}

/* ---- setup ----------------------------------------------------------------- */

static unsigned int roundup_pow2(unsigned long long v)
{
	unsigned long long p = 4096;

	while (p < v && p < (1ull << 30))
		p <<= 1;
	return (unsigned int)p;
}

static void pt_write_proc(const char *path, unsigned long long want)
{
	unsigned long long have = 0;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%llu", &have) != 1)
			have = 0;
		fclose(f);
	}
	if (have >= want)
		return;
	f = fopen(path, "w");
	if (!f || fprintf(f, "%llu\n", want) < 0 || fclose(f))
		pt_die(PT_EXIT_FAIL, "need %s >= %llu (have %llu) and cannot raise it: %s",
		       path, want, have, strerror(errno));
}

static void pt_raise_nofile(unsigned long long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		pt_fail_errno("getrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		pt_write_proc("/proc/sys/fs/nr_open", need);
		rl.rlim_max = need;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		pt_fail_errno("raising RLIMIT_NOFILE to %llu (run as root, or raise the hard limit)",
			      need);
}

static void pt_open_pipes(struct pt *pt)
{
	unsigned int i, engine = 0;
	int dev = -1;

	pt->rfd = calloc(pt->pipes, sizeof(int));
	pt->wfd = calloc(pt->pipes, sizeof(int));
	if (!pt->rfd || !pt->wfd)
		pt_die(PT_EXIT_FAIL, "out of memory");
	if (!pt->capacity) {
		unsigned long long need = (unsigned long long)pt->tokens * pt->size;

		pt->capacity = roundup_pow2(need);
	}
	if (pt->backend != PT_PIPE) {
		dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
		if (dev < 0)
			pt_die(PT_EXIT_UNSUPPORTED, "backend %s: cannot open %s: %s (is aiopipe.ko loaded?)",
			       backend_names[pt->backend], AIOPIPE_DEV_FACTORY,
			       strerror(errno));
		engine = pt->backend == PT_DIRECT ? AIOPIPE_ENGINE_DIRECT :
						    AIOPIPE_ENGINE_RETRY;
	}
	for (i = 0; i < pt->pipes; i++) {
		int fds[2];

		if (pt->backend == PT_PIPE) {
			if (pipe2(fds, O_CLOEXEC))
				pt_fail_errno("pipe2 (pipe %u of %u)", i, pt->pipes);
			if (pt->capacity > 65536 &&
			    fcntl(fds[1], F_SETPIPE_SZ, pt->capacity) < 0)
				pt_fail_errno("F_SETPIPE_SZ %u", pt->capacity);
			if (pt->nonblock &&
			    fcntl(fds[0], F_SETFL, O_NONBLOCK))
				pt_fail_errno("O_NONBLOCK");
		} else {
			struct aiopipe_pair p = {
				.flags = O_CLOEXEC,
				.capacity = pt->capacity,
				.engine = engine,
			};

			if (ioctl(dev, AIOPIPE_IOC_PAIR, &p))
				pt_fail_errno("AIOPIPE_IOC_PAIR (pipe %u of %u, capacity %u)",
					      i, pt->pipes, pt->capacity);
			fds[0] = p.fds[0];
			fds[1] = p.fds[1];
			if (pt->backend == PT_RETRY_NOFILTER &&
			    aiopipe_set_filter(fds[0], AIOPIPE_FILTER_OFF) < 0)
				pt_fail_errno("AIOPIPE_IOC_SET_FILTER off");
			if (pt->drain_waiter &&
			    poll(&(struct pollfd){ fds[1], POLLWRBAND, 0 }, 1, 0) < 0)
				pt_fail_errno("poll POLLWRBAND (pipe %u)", i);
		}
		pt->rfd[i] = fds[0];
		pt->wfd[i] = fds[1];
	}
	if (dev >= 0)
		close(dev);
}

static void pt_close_pipes(struct pt *pt)
{
	unsigned int i;

	for (i = 0; i < pt->pipes; i++) {
		if (pt->rfd[i] >= 0)
			close(pt->rfd[i]);
		if (pt->wfd[i] >= 0)
			close(pt->wfd[i]);
	}
}

/* ---- options ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: pipetest [options]\n"
"Token passing over N pipes (OLS 2002 AIO paper, section 3): pipe i feeds\n"
"pipe (i+1) mod N; a pass reads a token from one pipe and writes it to the\n"
"next.  Prints one CSV line (after a header) on stdout, progress on stderr.\n"
"\n"
"  -n, --pipes N        number of pipes (default 128)\n"
"  -t, --tokens T       tokens in flight, seeded on distinct pipes (default 1)\n"
"  -s, --size S         message bytes, >= %d (default 12)\n"
"  -p, --passes P       run P passes ...\n"
"  -d, --seconds D      ... or for D seconds (default 1)\n"
"  -b, --backend B      pipe | aiopipe-retry | aiopipe-direct |\n"
"                       aiopipe-retry-nofilter (default pipe)\n"
"  -m, --model M        poll | select | epoll | epoll-et | aio-poll |\n"
"                       aio-read | aio-rw | io_uring-read | io_uring-poll |\n"
"                       io_uring-mshot | ring | threads (default epoll).\n"
"                       epoll-et: edge-triggered epoll, each ready pipe read\n"
"                       until EAGAIN (the model makes the read ends\n"
"                       O_NONBLOCK itself).  aio-rw: aio-read whose token\n"
"                       write is an IOCB_CMD_PWRITE in the same io_submit as\n"
"                       the re-arms (one system call per batch of passes).\n"
"                       io_uring-mshot: one multishot read per pipe\n"
"                       (IORING_OP_READ_MULTISHOT, Linux 6.7 and later; exit\n"
"                       2 before) into a ring of provided buffers.\n"
"                       ring: every read end attached to one aiopipe ring;\n"
"                       events reaped from the mapping, the token written on\n"
"                       from the ring buffer the writer filled (aiopipe\n"
"                       backends only)\n"
"      --nonblock-pipes open kernel pipes' read ends O_NONBLOCK (backend\n"
"                       label pipe-nonblock): io_uring then polls instead of\n"
"                       parking a worker thread per read on kernels < 6.4\n"
"      --depth R        aio-read, aio-rw: reads kept queued per pipe (default 1;\n"
"                       the retry-storm workload uses 2); io_uring-mshot:\n"
"                       provided buffers per pipe (plus one per token)\n"
"      --rearm-batch B  aio-read with --depth 2 or more: lazy re-arms, held\n"
"                       back and sent in one io_submit once B are waiting or\n"
"                       before the loop would block (default 1: at once)\n"
"      --drain-waiter   poll every aiopipe write end once for the drain\n"
"                       (AIOPIPE_POLL_DRAINED): from then on every read that\n"
"                       empties a pipe wakes its queue with that writer's key,\n"
"                       the foreign wakeup of the retry-storm workload\n"
"      --capacity C     pipe capacity in bytes (default: tokens*size rounded\n"
"                       up to a power of two, at least 4096; kernel pipes keep\n"
"                       their 64 KiB unless more is needed)\n"
"      --warmup W       passes before the timed window opens (default 0)\n"
"      --verify full|header  checksum every byte of every token (default), or\n"
"                       only id, hop and header checksum\n"
"      --stall S        fail (exit 3) after S seconds without a pass (default 20)\n"
"      --no-header      omit the CSV header line\n"
"      --print-header   print only the CSV header and exit\n"
"      --inject-corruption P  flip a bit of the token at pass P (self-test of\n"
"                       the checker: the run must fail with exit 1)\n"
"  -v, --verbose        more progress on stderr\n"
"  -h, --help           this text\n"
"      --version        print the version and exit\n"
"\n"
"Exit status: 0 ok, 1 failure (a token check, a system call), 2 combination\n"
"not supported (e.g. aio-read on a kernel pipe: io_submit would block;\n"
"ring on a kernel pipe: only aiopipe read ends attach), 3 stalled.\n", PT_HDR);
}

static unsigned long long parse_num(const char *opt, const char *s,
				    unsigned long long min,
				    unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		pt_die(PT_EXIT_UNSUPPORTED, "bad value for %s: '%s' (%llu..%llu)",
		       opt, s, min, max);
	return v;
}

static int lookup(const char *const *names, int n, const char *s)
{
	int i;

	for (i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return i;
	return -1;
}

static void print_header(void)
{
	size_t c;

	printf("kernel,model,backend,pipes,tokens,size,passes,seconds,passes_per_sec");
	for (c = 0; c < NR_CSV_COUNTERS; c++)
		printf(",%s", csv_counters[c]);
	printf(",depth,verify,steady_passes_per_sec,p90_passes_per_sec,rearm_batch\n");
}

enum {
	OPT_NONBLOCK = 256, OPT_DEPTH, OPT_REARM_BATCH, OPT_DRAIN_WAITER, OPT_CAPACITY, OPT_WARMUP, OPT_VERIFY,
	OPT_STALL, OPT_NO_HEADER, OPT_PRINT_HEADER, OPT_INJECT, OPT_VERSION,
};

static void parse_args(struct pt *pt, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pipes", required_argument, NULL, 'n' },
		{ "tokens", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "passes", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 'd' },
		{ "backend", required_argument, NULL, 'b' },
		{ "model", required_argument, NULL, 'm' },
		{ "nonblock-pipes", no_argument, NULL, OPT_NONBLOCK },
		{ "depth", required_argument, NULL, OPT_DEPTH },
		{ "rearm-batch", required_argument, NULL, OPT_REARM_BATCH },
		{ "drain-waiter", no_argument, NULL, OPT_DRAIN_WAITER },
		{ "capacity", required_argument, NULL, OPT_CAPACITY },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "verify", required_argument, NULL, OPT_VERIFY },
		{ "stall", required_argument, NULL, OPT_STALL },
		{ "no-header", no_argument, NULL, OPT_NO_HEADER },
		{ "print-header", no_argument, NULL, OPT_PRINT_HEADER },
		{ "inject-corruption", required_argument, NULL, OPT_INJECT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int c, v;
	char *end;

	while ((c = getopt_long(argc, argv, "n:t:s:p:d:b:m:vh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'n':
			pt->pipes = (unsigned int)parse_num("--pipes", optarg, 1, 1u << 20);
			break;
		case 't':
			pt->tokens = (unsigned int)parse_num("--tokens", optarg, 1, 1u << 20);
			break;
		case 's':
			pt->size = (unsigned int)parse_num("--size", optarg, PT_HDR, 1u << 24);
			break;
		case 'p':
			pt->passes_max = parse_num("--passes", optarg, 1, ~0ull >> 2);
			break;
		case 'd':
			errno = 0;
			pt->seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(pt->seconds > 0) ||
			    pt->seconds > 1e6)
				pt_die(PT_EXIT_UNSUPPORTED, "bad value for --seconds: '%s'", optarg);
			pt->passes_max = 0;
			break;
		case 'b':
			v = lookup(backend_names, PT_NR_BACKENDS, optarg);
			if (v < 0 && !strcmp(optarg, "pipe-nonblock")) {
				v = PT_PIPE;
				pt->nonblock = true;
			}
			if (v < 0)
				pt_die(PT_EXIT_UNSUPPORTED, "unknown backend '%s' (see --help)", optarg);
			pt->backend = (enum pt_backend)v;
			break;
		case 'm':
			v = lookup(pt_model_names, PT_NR_MODELS, optarg);
			if (v < 0)
				pt_die(PT_EXIT_UNSUPPORTED, "unknown model '%s' (see --help)", optarg);
			pt->model = (enum pt_model)v;
			break;
		case OPT_NONBLOCK:
			pt->nonblock = true;
			break;
		case OPT_DRAIN_WAITER:
			pt->drain_waiter = true;
			break;
		case OPT_DEPTH:
			pt->depth = (unsigned int)parse_num("--depth", optarg, 1, 64);
			break;
		case OPT_REARM_BATCH:
			pt->rearm_batch = (unsigned int)parse_num("--rearm-batch", optarg, 1, 64);
			break;
		case OPT_CAPACITY:
			pt->capacity = (unsigned int)parse_num("--capacity", optarg, 4096, AIOPIPE_CAPACITY_MAX);
			break;
		case OPT_WARMUP:
			pt->warmup = parse_num("--warmup", optarg, 0, ~0ull >> 2);
			break;
		case OPT_VERIFY:
			if (!strcmp(optarg, "full"))
				pt->full_verify = true;
			else if (!strcmp(optarg, "header"))
				pt->full_verify = false;
			else
				pt_die(PT_EXIT_UNSUPPORTED, "--verify: full or header");
			break;
		case OPT_STALL:
			pt->stall = (unsigned int)parse_num("--stall", optarg, 1, 86400);
			break;
		case OPT_INJECT:
			pt->inject = parse_num("--inject-corruption", optarg, 1, ~0ull >> 2);
			break;
		case OPT_NO_HEADER:
			pt->header = false;
			break;
		case OPT_PRINT_HEADER:
			print_header();
			exit(0);
		case 'v':
			pt->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("pipetest %s\n", AIOPIPE_VERSION);
			exit(0);
		default:
			usage(stderr);
			exit(PT_EXIT_UNSUPPORTED);
		}
	}
	if (optind < argc)
		pt_die(PT_EXIT_UNSUPPORTED, "unexpected argument '%s' (see --help)", argv[optind]);
}

/* Combinations that cannot run: exit 2 with the reason. */
static void check_supported(struct pt *pt)
{
	const char *m = pt_model_names[pt->model];

	if (pt->tokens > pt->pipes)
		pt_die(PT_EXIT_UNSUPPORTED, "--tokens %u > --pipes %u: tokens start on distinct pipes",
		       pt->tokens, pt->pipes);
	if (pt->nonblock && pt->backend != PT_PIPE)
		pt_die(PT_EXIT_UNSUPPORTED, "--nonblock-pipes is for kernel pipes only");
	if ((pt->model == PT_AIO_READ || pt->model == PT_AIO_RW) &&
	    pt->backend == PT_PIPE)
		pt_die(PT_EXIT_UNSUPPORTED,
		       "model %s is not supported on a kernel pipe: io_submit(IOCB_CMD_PREAD) on a pipe does not queue, it blocks inside io_submit until data arrives (or fails with EAGAIN on O_NONBLOCK); use an aiopipe backend",
		       m);
	if (pt->model == PT_RING && pt->backend == PT_PIPE)
		pt_die(PT_EXIT_UNSUPPORTED,
		       "model ring is not supported on a kernel pipe: AIOPIPE_IOC_RING_ATTACH takes only aiopipe read ends (a ring delivers an aiopipe channel's writes into its buffers); use an aiopipe backend");
	if (pt->model == PT_THREADS && pt->pipes > PT_THREADS_MAX)
		pt_die(PT_EXIT_UNSUPPORTED, "model threads: --pipes %u > %u (one blocking reader thread per pipe)",
		       pt->pipes, PT_THREADS_MAX);
	if (pt->depth > 1 && pt->model != PT_AIO_READ &&
	    pt->model != PT_AIO_RW && pt->model != PT_URING_MSHOT)
		pt_die(PT_EXIT_UNSUPPORTED, "--depth is for models aio-read, aio-rw and io_uring-mshot only (not %s)",
		       m);
	if (pt->rearm_batch > 1 && pt->model != PT_AIO_READ)
		pt_die(PT_EXIT_UNSUPPORTED, "--rearm-batch is for model aio-read only (not %s)", m);
	if (pt->rearm_batch > 1 && pt->depth < 2)
		pt_die(PT_EXIT_UNSUPPORTED, "--rearm-batch %u needs --depth 2 or more: a pipe whose re-arm is held back must still have a read queued",
		       pt->rearm_batch);
	/* io_uring-mshot's depth counts buffers, which a token may span */
	if (pt->depth > 1 && pt->size > 4096 && pt->model != PT_URING_MSHOT)
		pt_die(PT_EXIT_UNSUPPORTED, "--depth > 1 needs --size <= PIPE_BUF (4096): a split token could land in two reads");
	if (pt->capacity && (unsigned long long)pt->tokens * pt->size > pt->capacity)
		pt_die(PT_EXIT_UNSUPPORTED, "tokens*size = %llu > capacity %u: a write could block the single-threaded ring",
		       (unsigned long long)pt->tokens * pt->size, pt->capacity);
}

static void read_counters(struct pt *pt, unsigned long long *out)
{
	struct aiopipe_stats st;
	int i, c, n = aiopipe_stat_count();

	memset(out, 0, NR_CSV_COUNTERS * sizeof(*out));
	if (pt->backend == PT_PIPE)
		return;
	if (aiopipe_stats(-1, &st) < 0) {
		fprintf(stderr, "pipetest: warning: global aiopipe counters: %s\n",
			strerror(errno));
		return;
	}
	for (c = 0; c < (int)NR_CSV_COUNTERS; c++)
		for (i = 0; i < n; i++)
			if (!strcmp(aiopipe_stat_name(i), csv_counters[c]))
				out[c] = aiopipe_stat_value(&st, i);
}

int main(int argc, char **argv)
{
	static struct pt pts;
	struct pt *pt = &pts;
	unsigned long long before[NR_CSV_COUNTERS], after[NR_CSV_COUNTERS];
	unsigned long long setup_ns, passes;
	double secs, wmed, wp90;
	struct utsname u;
	pthread_t wd;
	unsigned int k;
	size_t c;

	pt->pipes = 128;
	pt->tokens = 1;
	pt->size = PT_HDR;
	pt->depth = 1;
	pt->rearm_batch = 1;
	pt->seconds = 1.0;
	pt->stall = 20;
	pt->backend = PT_PIPE;
	pt->model = PT_EPOLL;
	pt->full_verify = true;
	pt->header = true;
	parse_args(pt, argc, argv);
	check_supported(pt);
	signal(SIGPIPE, SIG_IGN);

	pt->start = calloc(pt->tokens, sizeof(*pt->start));
	pt->next_hop = calloc(pt->tokens, sizeof(*pt->next_hop));
	pt->paysum = calloc(pt->tokens, sizeof(*pt->paysum));
	if (!pt->start || !pt->next_hop || !pt->paysum)
		pt_die(PT_EXIT_FAIL, "out of memory");
	for (k = 0; k < pt->tokens; k++)
		pt->start[k] = (unsigned int)(((unsigned long long)k * pt->pipes) / pt->tokens);

	setup_ns = pt_now_ns();
	pt_raise_nofile(2ull * pt->pipes + 64);
	pt_open_pipes(pt);
	if (pt->verbose)
		fprintf(stderr, "pipetest: %u %s pipes open (capacity %u)\n",
			pt->pipes, backend_names[pt->backend], pt->capacity);
	if (pthread_create(&wd, NULL, pt_watchdog, pt))
		pt_die(PT_EXIT_FAIL, "pthread_create (watchdog)");
	pthread_detach(wd);
	read_counters(pt, before);

	switch (pt->model) {
	case PT_POLL: pt_run_poll(pt); break;
	case PT_SELECT: pt_run_select(pt); break;
	case PT_EPOLL: pt_run_epoll(pt); break;
	case PT_AIO_POLL: pt_run_aio_poll(pt); break;
	case PT_AIO_READ: pt_run_aio_read(pt); break;
	case PT_URING_READ: pt_run_uring_read(pt); break;
	case PT_URING_POLL: pt_run_uring_poll(pt); break;
	case PT_THREADS: pt_run_threads(pt); break;
	case PT_AIO_RW: pt_run_aio_rw(pt); break;
	case PT_EPOLL_ET: pt_run_epoll_et(pt); break;
	case PT_URING_MSHOT: pt_run_uring_mshot(pt); break;
	case PT_RING: pt_run_ring(pt); break;
	default: pt_die(PT_EXIT_FAIL, "no such model");
	}
	read_counters(pt, after);
	setup_ns = pt->t0_ns - setup_ns;

	passes = pt->passes1 - pt->passes0;
	secs = (double)(pt->t1_ns - pt->t0_ns) / 1e9;
	if (uname(&u))
		strcpy(u.release, "unknown");
	if (pt->header)
		print_header();
	printf("%s,%s,%s%s,%u,%u,%u,%llu,%.6f,%.1f", u.release,
	       pt_model_names[pt->model], backend_names[pt->backend],
	       pt->nonblock ? "-nonblock" : "", pt->pipes, pt->tokens,
	       pt->size, passes, secs, secs > 0 ? (double)passes / secs : 0.0);
	for (c = 0; c < NR_CSV_COUNTERS; c++)
		printf(",%llu", after[c] - before[c]);
	pt_window_rates(pt, &wmed, &wp90);
	printf(",%u,%s,%.1f,%.1f,%u\n", pt->depth,
	       pt->full_verify ? "full" : "header", wmed, wp90, pt->rearm_batch);
	fflush(stdout);
	fprintf(stderr, "pipetest: %s/%s%s N=%u T=%u S=%u: %llu passes in %.3f s = %.0f/s (setup %.2f s)\n",
		pt_model_names[pt->model], backend_names[pt->backend],
		pt->nonblock ? "-nonblock" : "", pt->pipes, pt->tokens,
		pt->size, passes, secs, secs > 0 ? (double)passes / secs : 0.0,
		(double)setup_ns / 1e9);
	pt_close_pipes(pt);
	return 0;
}
