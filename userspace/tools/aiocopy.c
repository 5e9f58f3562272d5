// SPDX-License-Identifier: GPL-2.0
/*
 * aiocopy: one event loop for disk and pipe I/O.
 *
 * Copies the first SIZE bytes of INPUT (a block device or file, read with
 * O_DIRECT) through N pipes, one per stream: stream i takes the i-th slice of
 * the input, reads it in blocks, writes the blocks into its pipe in file
 * order, reads the pipe's other end and (with --output) writes what comes
 * out to the same offsets of OUTPUT (O_DIRECT).  Without --output the bytes
 * are only checksummed, as a server that sends a file to a socket would.
 *
 *   --mode aio      (default) ONE thread and ONE io_getevents() loop: disk
 *                   reads, pipe writes, pipe reads and disk writes of every
 *                   stream are libaio requests of one AIO context.  Disk
 *                   reads complete in any order; pipe writes are submitted in
 *                   file order (aiopipe serves pending writes FIFO, and so
 *                   keeps each stream's bytes in order); pipe reads are
 *                   consumed in submission order.  aiopipe only: a kernel
 *                   pipe's io_submit() blocks, so one loop would deadlock.
 *   --mode threads  the baseline: per stream a producer thread (pread() the
 *                   slice, write() the pipe) and a consumer thread (read()
 *                   the pipe, pwrite() the output), all blocking; on aiopipe
 *                   or (--pipe kernel) on kernel pipes.
 *
 * Every stream checks that the bytes that came out of its pipe are exactly
 * the bytes read from the input (count and checksum).  One CSV line on
 * stdout (after a header unless --no-header); progress and errors on
 * stderr.  MB is 2^20 bytes.  Exit status: 0 copied and verified, 1 an I/O
 * step failed or the data did not match, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <libaio.h>

#include "libaiopipe.h"

#define ALIGN		4096u
#define MAX_BLOCK	(16u << 20)
#define MAX_STREAMS	64u
#define MAX_DEPTH	64u

enum mode { MODE_AIO, MODE_THREADS };
enum pipe_kind { PIPE_AIOPIPE, PIPE_KERNEL };

static struct {
	enum mode mode;
	enum pipe_kind pipe;
	int engine;			/* AIOPIPE_ENGINE_* (aio mode) */
	unsigned int streams;
	size_t block;
	unsigned int depth;
	unsigned long long size;	/* 0: the input's size */
	unsigned long long skip, seek;	/* input / output offsets */
	unsigned int capacity;		/* pipe capacity, 0: default */
	const char *input, *output;
	bool direct, verify, header, quiet;
	unsigned int timeout;		/* seconds without progress */

	int infd, outfd;
	bool in_direct, out_direct;
	unsigned long long progress;	/* bytes out of the pipes, relaxed atomic */
} O = {
	.mode = MODE_AIO, .pipe = PIPE_AIOPIPE, .engine = AIOPIPE_ENGINE_RETRY,
	.streams = 1, .block = 65536, .depth = 8, .direct = true, .verify = true,
	.header = true, .timeout = 60, .infd = -1, .outfd = -1,
};

__attribute__((noreturn, format(printf, 2, 3)))
static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("aiocopy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* err is a positive errno */
__attribute__((noreturn, format(printf, 2, 3)))
static void die_err(int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	die(1, "%s: %s", msg, strerror(err));
}

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	va_list ap;

	if (O.quiet)
		return;
	fputs("aiocopy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xalloc(size_t n)
{
	void *p = calloc(1, n);

	if (!p)
		die(1, "out of memory (%zu bytes)", n);
	return p;
}

static unsigned char *xbuf(void)
{
	void *p;

	if (posix_memalign(&p, ALIGN, O.block))
		die(1, "out of memory (a %zu-byte buffer)", O.block);
	return p;
}

/* ---- checksum: 4 lanes of 64-bit multiply-xorshift over 32-byte blocks ---- */

struct sum {
	uint64_t h[4];
	unsigned char tail[32];
	unsigned int tn;
	uint64_t n;
};

static inline uint64_t mix(uint64_t h, uint64_t w)
{
	h ^= w;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static void sum_init(struct sum *s)
{
	memset(s, 0, sizeof(*s));
	s->h[0] = 1;
	s->h[1] = 2;
	s->h[2] = 3;
	s->h[3] = 4;
}

static inline void sum_block(struct sum *s, const unsigned char *p)
{
	uint64_t w[4];

	memcpy(w, p, sizeof(w));
	s->h[0] = mix(s->h[0], w[0]);
	s->h[1] = mix(s->h[1], w[1]);
	s->h[2] = mix(s->h[2], w[2]);
	s->h[3] = mix(s->h[3], w[3]);
}

static void sum_update(struct sum *s, const unsigned char *p, size_t n)
{
	s->n += n;
	if (!O.verify)
		return;
	if (s->tn) {
		size_t k = 32 - s->tn < n ? 32 - s->tn : n;

		memcpy(s->tail + s->tn, p, k);
		s->tn += (unsigned int)k;
		p += k;
		n -= k;
		if (s->tn < 32)
			return;
		sum_block(s, s->tail);
		s->tn = 0;
	}
	for (; n >= 32; p += 32, n -= 32)
		sum_block(s, p);
	memcpy(s->tail, p, n);
	s->tn = (unsigned int)n;
}

static uint64_t sum_final(const struct sum *s)
{
	struct sum t = *s;
	uint64_t r = t.n;
	int i;

	if (!O.verify)
		return 0;
	if (t.tn) {
		memset(t.tail + t.tn, 0, 32 - t.tn);
		sum_block(&t, t.tail);
	}
	for (i = 0; i < 4; i++)
		r = mix(r, t.h[i]);
	return r;
}

/* ---- streams ---------------------------------------------------------------- */

enum req_kind { RK_IN, RK_PW, RK_PR, RK_OUT };
static const char *const kind_names[] = {
	"input read", "pipe write", "pipe read", "output write",
};

enum req_state { RS_FREE, RS_BUSY, RS_DONE };

struct stream;

struct req {
	struct iocb cb;
	struct stream *s;
	enum req_kind kind;
	enum req_state state;
	unsigned char *buf;
	unsigned long long off;		/* file offset, or stream offset (pipe) */
	size_t len;
	long long res;
};

struct stream {
	unsigned int id;
	unsigned long long base, len;	/* slice [base, base + len) of the input */
	unsigned long long nblocks;
	int rfd, wfd;

	/* input -> pipe: nb requests, each a disk read then a pipe write */
	unsigned int nb;
	struct req *inr;
	struct req **in_free;
	unsigned int nin_free;
	struct req **ready;		/* block k at [k % nb], read submitted */
	unsigned long long in_next_blk, pw_next_blk;
	unsigned int in_inflight, pw_inflight;
	struct sum sum_in;

	/* pipe -> output: depth reads, consumed in submission order */
	struct req *prr;
	unsigned long long pr_head, pr_tail;
	bool eof;
	struct sum sum_out;

	/* output writes: an assembly buffer (cur), whole blocks written */
	struct req *outr;
	struct req **out_free;
	unsigned int nout_free;
	struct req *cur;
	size_t cur_fill;
	unsigned long long out_next;	/* stream offset of cur */
	unsigned int out_inflight;

	bool done;
	pthread_t producer, consumer;
};

static struct stream *S;

static void make_pipe(struct stream *s)
{
	int fds[2], ret;

	if (O.pipe == PIPE_AIOPIPE) {
		ret = aiopipe_pair_ex(fds, O_CLOEXEC, O.capacity,
				      O.mode == MODE_AIO ? (unsigned int)O.engine :
							   AIOPIPE_ENGINE_DEFAULT);
		if (ret < 0)
			die_err(-ret, "stream %u: creating an aiopipe (capacity %u%s) through %s",
				s->id, O.capacity, O.capacity ? "" : ": the module's default",
				AIOPIPE_DEV_FACTORY);
	} else {
		if (pipe2(fds, O_CLOEXEC))
			die_err(errno, "stream %u: pipe2", s->id);
		if (O.capacity && fcntl(fds[1], F_SETPIPE_SZ, O.capacity) < 0)
			die_err(errno, "stream %u: F_SETPIPE_SZ %u", s->id, O.capacity);
	}
	s->rfd = fds[0];
	s->wfd = fds[1];
}

static void setup_streams(void)
{
	unsigned long long slice = (O.size / O.streams) & ~(unsigned long long)(ALIGN - 1);
	unsigned int i, j;

	if (!slice)
		die(2, "--size %llu is too small for %u streams (each needs at least %u bytes)",
		    O.size, O.streams, ALIGN);
	S = xalloc(O.streams * sizeof(*S));
	for (i = 0; i < O.streams; i++) {
		struct stream *s = &S[i];

		s->id = i;
		s->base = i * slice;
		s->len = i + 1 < O.streams ? slice : O.size - s->base;
		s->nblocks = (s->len + O.block - 1) / O.block;
		sum_init(&s->sum_in);
		sum_init(&s->sum_out);
		make_pipe(s);
		if (O.mode != MODE_AIO)
			continue;
		s->nb = 2 * O.depth;
		s->inr = xalloc(s->nb * sizeof(*s->inr));
		s->in_free = xalloc(s->nb * sizeof(*s->in_free));
		s->ready = xalloc(s->nb * sizeof(*s->ready));
		for (j = 0; j < s->nb; j++) {
			s->inr[j].s = s;
			s->inr[j].buf = xbuf();
			s->in_free[s->nin_free++] = &s->inr[j];
		}
		s->prr = xalloc(O.depth * sizeof(*s->prr));
		for (j = 0; j < O.depth; j++) {
			s->prr[j].s = s;
			s->prr[j].kind = RK_PR;
			s->prr[j].buf = xbuf();
		}
		if (O.outfd >= 0) {
			s->outr = xalloc((O.depth + 1) * sizeof(*s->outr));
			s->out_free = xalloc((O.depth + 1) * sizeof(*s->out_free));
			for (j = 0; j <= O.depth; j++) {
				s->outr[j].s = s;
				s->outr[j].kind = RK_OUT;
				s->outr[j].buf = xbuf();
				s->out_free[s->nout_free++] = &s->outr[j];
			}
			s->cur = s->out_free[--s->nout_free];
		}
	}
}

static void check_stream(const struct stream *s)
{
	uint64_t a = sum_final(&s->sum_in), b = sum_final(&s->sum_out);

	if (s->sum_in.n != s->len)
		die(1, "stream %u: read %llu bytes from %s, expected %llu",
		    s->id, (unsigned long long)s->sum_in.n, O.input, s->len);
	if (s->sum_out.n != s->len)
		die(1, "stream %u: %llu bytes came out of the pipe, %llu went in (input bytes %llu..%llu)",
		    s->id, (unsigned long long)s->sum_out.n, s->len,
		    O.skip + s->base, O.skip + s->base + s->len);
	if (a != b)
		die(1, "stream %u: data check failed: checksum of the %llu bytes read from %s is %016" PRIx64
		    ", of the bytes out of the pipe %016" PRIx64,
		    s->id, s->len, O.input, a, b);
}

/* ---- the event loop (--mode aio) ------------------------------------------------- */

static io_context_t ctx;
static struct iocb **subq;
static unsigned int nsubq, subq_max;
static unsigned int streams_done;

static void describe(const struct req *r, char *buf, size_t n)
{
	switch (r->kind) {
	case RK_IN:
		snprintf(buf, n, "stream %u: input read of %zu bytes at offset %llu of %s",
			 r->s->id, r->len, r->off, O.input);
		break;
	case RK_OUT:
		snprintf(buf, n, "stream %u: output write of %zu bytes at offset %llu of %s",
			 r->s->id, r->len, r->off, O.output);
		break;
	default:
		snprintf(buf, n, "stream %u: %s of %zu bytes at stream offset %llu",
			 r->s->id, kind_names[r->kind], r->len, r->off);
		break;
	}
}

static void queue(struct req *r)
{
	int fd;

	switch (r->kind) {
	case RK_IN:
		io_prep_pread(&r->cb, O.infd, r->buf, r->len, (long long)r->off);
		break;
	case RK_PW:
		fd = r->s->wfd;
		io_prep_pwrite(&r->cb, fd, r->buf, r->len, 0);
		break;
	case RK_PR:
		fd = r->s->rfd;
		io_prep_pread(&r->cb, fd, r->buf, r->len, 0);
		break;
	case RK_OUT:
		io_prep_pwrite(&r->cb, O.outfd, r->buf, r->len, (long long)r->off);
		break;
	}
	r->cb.data = r;
	r->state = RS_BUSY;
	if (nsubq == subq_max)
		die(1, "bug: submission queue overflow (%u)", subq_max);
	subq[nsubq++] = &r->cb;
}

static void flush_submissions(void)
{
	unsigned int done = 0;

	while (done < nsubq) {
		int ret = io_submit(ctx, (long)(nsubq - done), subq + done);

		if (ret > 0) {
			done += (unsigned int)ret;
			continue;
		}
		if (ret == -EINTR)
			continue;
		{
			char what[256];

			describe(subq[done]->data, what, sizeof(what));
			die_err(ret ? -ret : EIO, "io_submit of %u iocbs (the first one: %s)",
				nsubq - done, what);
		}
	}
	nsubq = 0;
}

static void submit_out(struct stream *s)
{
	struct req *r = s->cur;

	r->off = O.seek + s->base + s->out_next;
	r->len = s->cur_fill;
	s->out_next += s->cur_fill;
	s->out_inflight++;
	queue(r);
	s->cur = s->nout_free ? s->out_free[--s->nout_free] : NULL;
	s->cur_fill = 0;
}

/* Consume n bytes out of the pipe (in stream order); r is their read. */
static void consume(struct stream *s, struct req *r, size_t n)
{
	const unsigned char *p = r->buf;

	if (s->sum_out.n + n > s->len)
		die(1, "stream %u: %llu bytes came out of the pipe, more than the %llu that went in",
		    s->id, (unsigned long long)s->sum_out.n + n, s->len);
	sum_update(&s->sum_out, p, n);
	__atomic_add_fetch(&O.progress, n, __ATOMIC_RELAXED);
	if (O.outfd < 0)
		return;
	if (s->cur_fill == 0 && n == O.block) {
		/* a whole block: write the read's own buffer, no copy */
		unsigned char *t = s->cur->buf;

		s->cur->buf = r->buf;
		r->buf = t;
		s->cur_fill = n;
		submit_out(s);
		return;
	}
	while (n) {
		size_t k = O.block - s->cur_fill < n ? O.block - s->cur_fill : n;

		memcpy(s->cur->buf + s->cur_fill, p, k);
		s->cur_fill += k;
		p += k;
		n -= k;
		if (s->cur_fill == O.block || s->out_next + s->cur_fill == s->len) {
			submit_out(s);
			if (n && !s->cur)
				die(1, "bug: stream %u: no output buffer for %zu bytes", s->id, n);
		}
	}
}

static void fill(struct stream *s)
{
	struct req *r;

	if (s->done)
		return;
	/* pipe writes, strictly in file order */
	while (s->pw_next_blk < s->in_next_blk) {
		r = s->ready[s->pw_next_blk % s->nb];
		if (r->state != RS_DONE)
			break;
		s->ready[s->pw_next_blk % s->nb] = NULL;
		sum_update(&s->sum_in, r->buf, r->len);
		r->kind = RK_PW;
		r->off = s->pw_next_blk * O.block;
		s->pw_next_blk++;
		s->pw_inflight++;
		queue(r);
	}
	/* disk reads, any completion order */
	while (s->in_inflight < O.depth && s->nin_free && s->in_next_blk < s->nblocks) {
		unsigned long long off = s->in_next_blk * O.block;

		r = s->in_free[--s->nin_free];
		r->kind = RK_IN;
		r->off = O.skip + s->base + off;
		r->len = s->len - off < O.block ? (size_t)(s->len - off) : O.block;
		s->ready[s->in_next_blk % s->nb] = r;
		s->in_next_blk++;
		s->in_inflight++;
		queue(r);
	}
	/* everything written and taken: the readers get EOF */
	if (s->wfd >= 0 && s->pw_next_blk == s->nblocks && !s->pw_inflight) {
		if (close(s->wfd))
			die_err(errno, "stream %u: closing the pipe's write end", s->id);
		s->wfd = -1;
	}
	/* pipe reads: consume the completed ones in submission order */
	while (s->pr_head < s->pr_tail) {
		r = &s->prr[s->pr_head % O.depth];
		if (r->state != RS_DONE)
			break;
		/* wait for output buffers: the current one, and another if it overflows */
		if (r->res > 0 && O.outfd >= 0 &&
		    (!s->cur || (s->cur_fill + (size_t)r->res > O.block && !s->nout_free)))
			break;
		if (r->res < 0) {
			char what[256];

			describe(r, what, sizeof(what));
			die_err((int)-r->res, "%s", what);
		}
		if (r->res == 0)
			s->eof = true;
		else if (s->eof)
			die(1, "stream %u: a pipe read returned %lld bytes after end-of-file", s->id, r->res);
		else
			consume(s, r, (size_t)r->res);
		r->state = RS_FREE;
		s->pr_head++;
	}
	while (!s->eof && s->pr_tail - s->pr_head < O.depth) {
		r = &s->prr[s->pr_tail % O.depth];
		r->off = s->sum_out.n;	/* for messages: a lower bound */
		r->len = O.block;
		s->pr_tail++;
		queue(r);
	}
	if (s->eof && s->pr_head == s->pr_tail) {
		check_stream(s);	/* an early EOF dies here with the counts */
		if (s->out_inflight)
			return;
		close(s->rfd);
		s->rfd = -1;
		s->done = true;
		streams_done++;
	}
}

static void complete(struct req *r, long long res)
{
	struct stream *s = r->s;
	char what[256];

	r->res = res;
	switch (r->kind) {
	case RK_IN:
		s->in_inflight--;
		break;
	case RK_PW:
		s->pw_inflight--;
		break;
	case RK_PR:
		r->state = RS_DONE;	/* checked in order by fill() */
		return;
	case RK_OUT:
		s->out_inflight--;
		break;
	}
	if (res != (long long)r->len) {
		describe(r, what, sizeof(what));
		if (res < 0)
			die_err((int)-res, "%s", what);
		die(1, "%s: completed with %lld bytes (short)", what, res);
	}
	switch (r->kind) {
	case RK_IN:
		r->state = RS_DONE;
		break;
	case RK_PW:
		r->state = RS_FREE;
		s->in_free[s->nin_free++] = r;
		break;
	case RK_OUT:
		r->state = RS_FREE;
		if (!s->cur)
			s->cur = r;
		else
			s->out_free[s->nout_free++] = r;
		break;
	default:
		break;
	}
}

static void dump_state(void)
{
	unsigned int i;

	for (i = 0; i < O.streams; i++) {
		const struct stream *s = &S[i];

		fprintf(stderr,
			"aiocopy:   stream %u: %s; blocks read %llu/%llu (%u in flight), written to the pipe %llu (%u in flight); pipe reads %llu done, %llu in flight, %llu bytes out%s; output writes in flight %u\n",
			s->id, s->done ? "done" : "running", s->in_next_blk, s->nblocks,
			s->in_inflight, s->pw_next_blk, s->pw_inflight, s->pr_head,
			s->pr_tail - s->pr_head, (unsigned long long)s->sum_out.n,
			s->eof ? ", EOF" : "", s->out_inflight);
	}
}

static void run_aio(void)
{
	unsigned int per = 2 * O.depth + O.depth + (O.outfd >= 0 ? O.depth + 1 : 0);
	unsigned int nr = O.streams * per, i;
	struct io_event *ev;
	int ret, idle = 0;

	subq_max = nr;
	subq = xalloc(nr * sizeof(*subq));
	ev = xalloc(nr * sizeof(*ev));
	ret = io_setup((int)nr, &ctx);
	if (ret < 0)
		die_err(-ret, "io_setup(%u) (see /proc/sys/fs/aio-max-nr)", nr);
	while (streams_done < O.streams) {
		struct timespec ts = { 1, 0 };

		for (i = 0; i < O.streams; i++)
			fill(&S[i]);
		flush_submissions();
		if (streams_done == O.streams)
			break;
		ret = io_getevents(ctx, 1, (long)nr, ev, &ts);
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			die_err(-ret, "io_getevents");
		if (ret == 0) {
			if (++idle < (int)O.timeout)
				continue;
			fprintf(stderr, "aiocopy: no completion for %u s; state:\n", O.timeout);
			dump_state();
			die(1, "stalled: no completion for %u s (a lost wakeup or completion?)", O.timeout);
		}
		idle = 0;
		for (i = 0; i < (unsigned int)ret; i++)
			complete(ev[i].data, (long long)(long)ev[i].res);
	}
	io_destroy(ctx);
	free(ev);
	free(subq);
}

/* ---- the threaded baseline ----------------------------------------------------- */

static void write_all(int fd, const unsigned char *p, size_t n, const char *what,
		      unsigned int id, unsigned long long off)
{
	while (n) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die_err(k < 0 ? errno : EIO, "stream %u: %s of %zu bytes at stream offset %llu",
				id, what, n, off);
		p += k;
		n -= (size_t)k;
		off += (unsigned long long)k;
	}
}

static void pread_all(int fd, unsigned char *p, size_t n, unsigned long long off, unsigned int id)
{
	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die_err(errno, "stream %u: input read of %zu bytes at offset %llu of %s",
				id, n, off, O.input);
		if (k == 0)
			die(1, "stream %u: input read at offset %llu of %s: end of file", id, off, O.input);
		p += k;
		n -= (size_t)k;
		off += (unsigned long long)k;
	}
}

static void pwrite_all(int fd, const unsigned char *p, size_t n, unsigned long long off,
		       unsigned int id)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die_err(k < 0 ? errno : EIO, "stream %u: output write of %zu bytes at offset %llu of %s",
				id, n, off, O.output);
		p += k;
		n -= (size_t)k;
		off += (unsigned long long)k;
	}
}

static void *producer(void *arg)
{
	struct stream *s = arg;
	unsigned char *buf = xbuf();
	unsigned long long off;

	for (off = 0; off < s->len; off += O.block) {
		size_t n = s->len - off < O.block ? (size_t)(s->len - off) : O.block;

		pread_all(O.infd, buf, n, O.skip + s->base + off, s->id);
		sum_update(&s->sum_in, buf, n);
		write_all(s->wfd, buf, n, "pipe write", s->id, off);
	}
	if (close(s->wfd))
		die_err(errno, "stream %u: closing the pipe's write end", s->id);
	s->wfd = -1;
	free(buf);
	return NULL;
}

static void *consumer(void *arg)
{
	struct stream *s = arg;
	unsigned char *buf = xbuf(), *out = O.outfd >= 0 ? xbuf() : NULL;
	unsigned long long out_next = 0;
	size_t fill = 0;

	for (;;) {
		ssize_t n = read(s->rfd, buf, O.block);
		const unsigned char *p = buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_err(errno, "stream %u: pipe read of %zu bytes at stream offset %llu",
				s->id, O.block, (unsigned long long)s->sum_out.n);
		if (n == 0)
			break;
		sum_update(&s->sum_out, buf, (size_t)n);
		__atomic_add_fetch(&O.progress, (unsigned long long)n, __ATOMIC_RELAXED);
		while (out && n) {
			size_t k = O.block - fill < (size_t)n ? O.block - fill : (size_t)n;

			memcpy(out + fill, p, k);
			fill += k;
			p += k;
			n -= (ssize_t)k;
			if (fill == O.block) {
				pwrite_all(O.outfd, out, fill, O.seek + s->base + out_next, s->id);
				out_next += fill;
				fill = 0;
			}
		}
	}
	if (fill)
		pwrite_all(O.outfd, out, fill, O.seek + s->base + out_next, s->id);
	close(s->rfd);
	s->rfd = -1;
	free(buf);
	free(out);
	return NULL;
}

static void run_threads(void)
{
	unsigned long long last = 0;
	unsigned int i, idle = 0;
	int ret;

	for (i = 0; i < O.streams; i++) {
		ret = pthread_create(&S[i].consumer, NULL, consumer, &S[i]);
		if (!ret)
			ret = pthread_create(&S[i].producer, NULL, producer, &S[i]);
		if (ret)
			die_err(ret, "stream %u: pthread_create", i);
	}
	/* watchdog: the threads block; fail if the bytes stop moving */
	for (i = 0; i < O.streams;) {
		struct timespec ts;
		unsigned long long p;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		ret = pthread_timedjoin_np(S[i].consumer, NULL, &ts);
		if (!ret) {
			i++;
			continue;
		}
		if (ret != ETIMEDOUT)
			die_err(ret, "stream %u: joining the consumer", i);
		p = __atomic_load_n(&O.progress, __ATOMIC_RELAXED);
		if (p != last) {
			last = p;
			idle = 0;
		} else if (++idle >= O.timeout) {
			die(1, "stalled: no byte came out of any pipe for %u s (%llu bytes so far)",
			    O.timeout, p);
		}
	}
	for (i = 0; i < O.streams; i++) {
		ret = pthread_join(S[i].producer, NULL);
		if (ret)
			die_err(ret, "stream %u: joining the producer", i);
		check_stream(&S[i]);
	}
}

/* ---- setup -------------------------------------------------------------------------- */

/* /proc/stat "cpu" line: all jiffies, and idle + iowait */
static void cpu_times(unsigned long long *total, unsigned long long *idle)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int i;

	*total = *idle = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 4) {
		for (i = 0; i < 8; i++)
			*total += v[i];
		*idle = v[3] + v[4];
	}
	fclose(f);
}

static unsigned long long parse_size(const char *opt, const char *arg)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || arg[0] == '-')
		die(2, "%s: not a size: '%s'", opt, arg);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		die(2, "%s: not a size: '%s' (bytes, or a K, M or G suffix)", opt, arg);
	return v;
}

static unsigned int parse_uint(const char *opt, const char *arg, unsigned int lo, unsigned int hi)
{
	unsigned long long v = parse_size(opt, arg);

	if (v < lo || v > hi)
		die(2, "%s must be %u..%u, got %s", opt, lo, hi, arg);
	return (unsigned int)v;
}

static int open_direct(const char *path, int flags, bool *direct, const char *role)
{
	int fd = -1;

	if (O.direct) {
		fd = open(path, flags | O_DIRECT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			*direct = true;
			return fd;
		}
		if (errno != EINVAL)
			die_err(errno, "opening the %s %s with O_DIRECT", role, path);
		note("%s %s does not support O_DIRECT (EINVAL): buffered I/O", role, path);
	}
	fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		die_err(errno, "opening the %s %s", role, path);
	*direct = false;
	return fd;
}

static unsigned long long file_size(int fd, const char *path)
{
	struct stat st;
	unsigned long long n;

	if (fstat(fd, &st))
		die_err(errno, "fstat %s", path);
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &n))
			die_err(errno, "BLKGETSIZE64 on %s", path);
		return n;
	}
	if (S_ISREG(st.st_mode))
		return (unsigned long long)st.st_size;
	die(2, "input %s is neither a block device nor a regular file", path);
}

static void usage(FILE *f)
{
	fputs(
"usage: aiocopy --input PATH [options]\n"
"Copy the first SIZE bytes of PATH through one pipe per stream, in one libaio\n"
"event loop (--mode aio) or with blocking threads (--mode threads); every\n"
"stream checks that what came out of its pipe is what was read.\n"
"  -i, --input PATH     block device or file to read (O_DIRECT when it allows)\n"
"  -o, --output PATH    write what comes out of the pipes to PATH at the same\n"
"                       offsets (O_DIRECT; created if missing); default: discard\n"
"  -s, --size BYTES     bytes to copy (default: the input's size); K/M/G suffixes\n"
"      --skip BYTES     start at this input offset (default 0)\n"
"      --seek BYTES     write at this output offset (default 0)\n"
"  -n, --streams N      concurrent streams, 1..64 (default 1): stream i copies\n"
"                       the i-th slice of SIZE through its own pipe\n"
"  -b, --block BYTES    I/O size, a multiple of 4096 (default 65536)\n"
"  -d, --depth N        requests in flight per stream and direction, 1..64\n"
"                       (default 8; aio mode)\n"
"  -m, --mode MODE      aio (one thread, one io_getevents loop; default) or\n"
"                       threads (a producer and a consumer thread per stream)\n"
"  -p, --pipe KIND      aiopipe (default) or kernel (pipe2; threads mode only)\n"
"  -e, --engine E       aiopipe engine in aio mode: retry (default) or direct\n"
"  -c, --capacity BYTES pipe capacity (default: the module's / the kernel's)\n"
"      --no-direct      buffered I/O on input and output\n"
"      --no-verify      count the bytes but do not checksum them\n"
"      --no-header      no CSV header line\n"
"  -t, --timeout S      fail when nothing moves for S seconds (default 60)\n"
"  -q, --quiet          no progress on stderr\n"
"  -h, --help           this text\n"
"      --version        print the version and exit\n"
"Output: one CSV line on stdout:\n"
"  mode,pipe,engine,streams,block,depth,mbytes,seconds,mb_per_sec,cpu_idle_pct\n"
"(MB = 2^20 bytes; cpu_idle_pct: idle + iowait share of all CPUs from /proc/stat\n"
"during the copy). Exit status: 0 copied and verified, 1 failure (the message\n"
"names the step and the value), 2 usage.\n", f);
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "size", required_argument, NULL, 's' },
		{ "skip", required_argument, NULL, 'K' },
		{ "seek", required_argument, NULL, 'E' },
		{ "streams", required_argument, NULL, 'n' },
		{ "block", required_argument, NULL, 'b' },
		{ "depth", required_argument, NULL, 'd' },
		{ "mode", required_argument, NULL, 'm' },
		{ "pipe", required_argument, NULL, 'p' },
		{ "engine", required_argument, NULL, 'e' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "no-direct", no_argument, NULL, 'D' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "no-header", no_argument, NULL, 'H' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "i:o:s:n:b:d:m:p:e:c:t:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'i': O.input = optarg; break;
		case 'o': O.output = optarg; break;
		case 's': O.size = parse_size("--size", optarg); break;
		case 'K': O.skip = parse_size("--skip", optarg); break;
		case 'E': O.seek = parse_size("--seek", optarg); break;
		case 'n': O.streams = parse_uint("--streams", optarg, 1, MAX_STREAMS); break;
		case 'b': O.block = parse_uint("--block", optarg, ALIGN, MAX_BLOCK); break;
		case 'd': O.depth = parse_uint("--depth", optarg, 1, MAX_DEPTH); break;
		case 'c': O.capacity = parse_uint("--capacity", optarg, 0, AIOPIPE_CAPACITY_MAX); break;
		case 't': O.timeout = parse_uint("--timeout", optarg, 1, 86400); break;
		case 'D': O.direct = false; break;
		case 'V': O.verify = false; break;
		case 'H': O.header = false; break;
		case 'q': O.quiet = true; break;
		case 'm':
			if (!strcmp(optarg, "aio"))
				O.mode = MODE_AIO;
			else if (!strcmp(optarg, "threads"))
				O.mode = MODE_THREADS;
			else
				die(2, "--mode must be aio or threads, got '%s'", optarg);
			break;
		case 'p':
			if (!strcmp(optarg, "aiopipe"))
				O.pipe = PIPE_AIOPIPE;
			else if (!strcmp(optarg, "kernel"))
				O.pipe = PIPE_KERNEL;
			else
				die(2, "--pipe must be aiopipe or kernel, got '%s'", optarg);
			break;
		case 'e':
			O.engine = aiopipe_engine_parse(optarg);
			if (O.engine < 0)
				die(2, "--engine must be retry or direct, got '%s'", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'v':
			printf("aiocopy %s\n", AIOPIPE_VERSION);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die(2, "unexpected argument '%s' (see --help)", argv[optind]);
	if (!O.input)
		die(2, "--input is required (see --help)");
	if (O.block % ALIGN)
		die(2, "--block must be a multiple of %u, got %zu", ALIGN, O.block);
	if (O.skip % ALIGN || O.seek % ALIGN)
		die(2, "--skip and --seek must be multiples of %u", ALIGN);
	if (O.mode == MODE_AIO && O.pipe == PIPE_KERNEL)
		die(2, "--pipe kernel needs --mode threads: io_submit() on a kernel pipe blocks until the pipe is ready, so one event loop would deadlock");
	if (O.mode == MODE_THREADS)
		O.depth = 1;
}

int main(int argc, char **argv)
{
	unsigned long long t0, i0, t1, i1, avail;
	double start, secs, mb, idle = 0;
	struct rusage ru;
	unsigned int i;
	const char *engine;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);

	O.infd = open_direct(O.input, O_RDONLY, &O.in_direct, "input");
	avail = file_size(O.infd, O.input);
	if (O.skip > avail)
		die(2, "--skip %llu is past the end of %s (%llu bytes)", O.skip, O.input, avail);
	if (!O.size)
		O.size = avail - O.skip;
	if (O.size > avail - O.skip)
		die(2, "--size %llu at --skip %llu is past the end of %s (%llu bytes)",
		    O.size, O.skip, O.input, avail);
	if (O.size % ALIGN)
		die(2, "the size to copy (%llu) must be a multiple of %u", O.size, ALIGN);
	if (O.output)
		O.outfd = open_direct(O.output, O_WRONLY | O_CREAT, &O.out_direct, "output");
	setup_streams();

	engine = O.mode == MODE_THREADS ? "sync" : aiopipe_engine_name((unsigned int)O.engine);
	note("%s, %s pipes%s%s: %u stream(s) x %.1f MiB, block %zu, depth %u: %s%s -> %s%s",
	     O.mode == MODE_AIO ? "one io_getevents loop" : "threads",
	     O.pipe == PIPE_AIOPIPE ? "aiopipe" : "kernel",
	     O.mode == MODE_AIO ? ", engine " : "", O.mode == MODE_AIO ? engine : "",
	     O.streams, (double)S[0].len / (1 << 20), O.block, O.depth,
	     O.input, O.in_direct ? " (O_DIRECT)" : "",
	     O.output ? O.output : "checksum only",
	     O.output && O.out_direct ? " (O_DIRECT)" : "");

	cpu_times(&t0, &i0);
	start = now();
	if (O.mode == MODE_AIO)
		run_aio();
	else
		run_threads();
	secs = now() - start;
	cpu_times(&t1, &i1);
	if (t1 > t0)
		idle = 100.0 * (double)(i1 - i0) / (double)(t1 - t0);
	if (O.outfd >= 0 && close(O.outfd))
		die_err(errno, "closing the output %s", O.output);
	close(O.infd);

	mb = (double)O.size / (1 << 20);
	if (O.header)
		printf("mode,pipe,engine,streams,block,depth,mbytes,seconds,mb_per_sec,cpu_idle_pct\n");
	printf("%s,%s,%s,%u,%zu,%u,%.1f,%.3f,%.1f,%.1f\n",
	       O.mode == MODE_AIO ? "aio" : "threads",
	       O.pipe == PIPE_AIOPIPE ? "aiopipe" : "kernel", engine, O.streams,
	       O.block, O.depth, mb, secs, secs > 0 ? mb / secs : 0.0, idle);
	fflush(stdout);

	getrusage(RUSAGE_SELF, &ru);
	{
		uint64_t digest = 0;

		for (i = 0; i < O.streams; i++)
			digest = mix(digest ^ i, sum_final(&S[i].sum_out));
		note("%.1f MiB in %.3f s: %.1f MB/s, CPU idle %.1f%%, this process %.2f s CPU; %s",
		     mb, secs, secs > 0 ? mb / secs : 0.0, idle,
		     (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
		     O.verify ? "every stream's bytes verified" : "byte counts verified (--no-verify)");
		if (O.verify)
			note("digest %016" PRIx64, digest);
	}
	return 0;
}
