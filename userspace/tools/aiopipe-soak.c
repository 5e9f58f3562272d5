// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe-soak: a stress test that runs for a set time over many aiopipe
 * channels and proves that no accepted byte is lost, duplicated, reordered
 * or corrupted, that every request completes exactly once, and that the
 * module's counters come back to zero.
 *
 * Shape: P worker processes own C channels between them.  Each channel has
 * one writer thread and one reader thread; each process also has a meddler
 * thread that switches engines and filters and changes capacities on the
 * live channels.  One more process (the chaos process) forks children that
 * are killed with SIGKILL while they have requests pending, destroys AIO
 * contexts with requests in flight and fills completion rings.
 *
 * Writers mix write/writev, libaio PWRITE/PWRITEV (several in flight, some
 * RWF_NOWAIT or with an eventfd), io_uring WRITE/WRITEV (some IOSQE_ASYNC)
 * and io_cancel / IORING_OP_ASYNC_CANCEL of their own requests.  Readers mix
 * the same for reads plus IOCB_CMD_POLL.  A channel lives for an epoch: the
 * writer ends it by closing its end (the reader must then see every byte and
 * EOF), or the reader ends it early by closing its end (the writer's pending
 * writes then complete with what they moved, or EPIPE); then a new pair is
 * made, on a random engine, filter and capacity.
 *
 * Framing (why the check is exact even with cancelled and partial writes):
 * one writer thread per channel registers every write, in the order it
 * enters the pipe, in a ledger; write k carries the bytes gen(key, k, 0..len)
 * (a 16-byte header with its sequence number, epoch, channel and a check
 * word, then a keyed pseudo-random payload) and when it completes the ledger
 * records its result r.  The stream is then exactly the concatenation of
 * the first r bytes of every write, in ledger order.  The reader attributes
 * the bytes it reads to (write, offset) by walking the ledger, checks each
 * one against gen(), and holds bytes it cannot attribute yet (their write
 * still in flight) until it can.  Reads are taken in submission order (the
 * order a pipe serves them in), whatever order their completions arrive in.
 *
 * Ring mode (--ring, docs/ring.md): every reader thread has a ring of its own
 * (random sizes, from one buffer of 64 bytes up) and attaches its read end
 * to it: it reaps DATA events (their buffers held a while and handed back
 * in any order), reads exactly what READ events announce, and takes EOF
 * from the EOF event.  It detaches now and then and reads as above (its
 * reads drained before it attaches again), sometimes closes its ring and
 * makes a new one, and on an early end closes its end while attached.  An
 * event of a stale attachment, after EOF, with a bad buffer id or length,
 * a buffer delivered twice, or an announced byte missing fails the run;
 * the ledger checks the bytes as for reads.
 *
 * Output: one CSV row (with --header a header first) on stdout, progress
 * and diagnostics on stderr.  Exit status 0 only if nothing was lost,
 * duplicated or corrupted, every request completed exactly once, nothing
 * unexpected was returned, no thread stalled, and the counters (per channel
 * at every epoch end, global at the end) are back to zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <libaio.h>
#include <liburing.h>

#include "libaiopipe.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define MAX_PROCS	16
#define MAX_CHANS	256
#define MAXSEG		16
#define R_DEPTH		8	/* libaio reads in flight per channel */
#define W_DEPTH		6	/* libaio writes in flight per channel */
#define HDR		16	/* header bytes at the start of every write */
#define PENDING		INT32_MIN
#define DRAIN_MS	30000	/* a request must complete this soon once asked to */

/* ---- options and shared results ------------------------------------------------ */

static struct {
	double seconds;
	unsigned int channels;
	unsigned int procs;
	uint64_t seed;
	size_t max_write;
	size_t max_read;
	unsigned int stall_s;
	bool allow_faults;
	bool fail_self;
	bool chaos;
	bool header;
	bool verbose;
	bool ring;		/* readers reap through a ring */
	int inject;		/* checker self-test: 1 lose, 2 duplicate, 3 corrupt */
} O = {
	.seconds = 10,
	.channels = 8,
	.procs = 2,
	.max_write = 256 << 10,
	.max_read = 128 << 10,
	.stall_s = 90,
	.chaos = true,
};

/* Per-process results, in shared memory, summed by the parent. */
struct results {
	uint64_t ops, sync_ops, aio_ops, uring_ops, poll_ops;
	uint64_t bytes_written, bytes_read, bytes_verified;
	uint64_t lost, duplicated, corrupt, discarded;
	uint64_t epochs, abrupt_epochs, cancels, switches, kills, destroys;
	uint64_t fault_errors;		/* ENOMEM/EFAULT seen (--allow-faults) */
	uint64_t unexpected;		/* results the contract does not allow */
	uint64_t bad_completions;	/* a request completed twice or never */
	uint64_t counter_leaks;		/* counters not back to zero */
	uint64_t stalls;
	uint64_t ring_data, ring_read, ring_eof;	/* events reaped (--ring) */
	uint64_t ring_attaches;
	uint64_t done;			/* the process reached its end */
};

static struct results *shared;	/* MAX_PROCS + 1 entries */
static struct results *R;	/* this process's entry */
static int proc_index;
static int64_t t_start, t_end;
static volatile int stopping;

#define ADD(field, n)	__atomic_add_fetch(&R->field, (n), __ATOMIC_RELAXED)

__attribute__((format(printf, 1, 2)))
static void msg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "aiopipe-soak[%d]: ", proc_index);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0)
		return;
}

/* A failure of the thing under test: counted, and shown. */
#define FAIL(field, ...) do { ADD(field, 1); msg(__VA_ARGS__); } while (0)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool past_deadline(void)
{
	return stopping || now_ns() >= t_end;
}

/* ---- randomness and the stream generator ---------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s;
};

static inline uint64_t rnd(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return mix64(r->s);
}

/* Uniform in [0, n). */
static inline uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static inline bool chance(struct rng *r, unsigned int percent)
{
	return below(r, 100) < percent;
}

/* A transfer size: mostly small (atomic), some medium and large. */
static size_t pick_size(struct rng *r, size_t max)
{
	size_t n;

	switch (below(r, 10)) {
	case 0: case 1: case 2: case 3:
		n = 1 + below(r, PIPE_BUF);
		break;
	case 4:
		n = PIPE_BUF;
		break;
	case 5: case 6: case 7:
		n = PIPE_BUF + below(r, 64 << 10);
		break;
	case 8:
		n = 4096 * (1 + below(r, 32));
		break;
	default:
		n = 1 + below(r, max);
		break;
	}
	return n > max ? max : n;
}

/*
 * Byte i of write k of a channel epoch whose key is @key: a 16-byte header
 * (sequence number, epoch, channel, check word), then keyed noise.
 */
struct gen {
	uint64_t key;
	uint32_t chan, epoch;
};

static inline void gen_header(const struct gen *g, uint64_t k, unsigned char *h)
{
	uint32_t w[4] = {
		(uint32_t)k, g->epoch, g->chan, (uint32_t)mix64(g->key ^ k),
	};

	memcpy(h, w, HDR);
}

static void gen_fill(const struct gen *g, uint64_t k, size_t off,
		     unsigned char *p, size_t n)
{
	uint64_t base = mix64(g->key ^ (k * 0x100000001b3ull)), word = 0;
	uint64_t cur = UINT64_MAX;
	unsigned char h[HDR];
	size_t i;

	gen_header(g, k, h);
	for (i = 0; i < n; i++) {
		size_t at = off + i;

		if (at < HDR) {
			p[i] = h[at];
			continue;
		}
		if (at / 8 != cur) {
			cur = at / 8;
			word = mix64(base + cur);
		}
		p[i] = (unsigned char)(word >> ((at % 8) * 8));
	}
}

/* -1 if @p holds bytes off..off+n of write k, else the first bad index. */
static long gen_check(const struct gen *g, uint64_t k, size_t off,
		      const unsigned char *p, size_t n)
{
	unsigned char want[4096];
	size_t done = 0;

	while (done < n) {
		size_t m = n - done < sizeof(want) ? n - done : sizeof(want);

		gen_fill(g, k, off + done, want, m);
		if (memcmp(want, p + done, m)) {
			size_t i = 0;

			while (want[i] == p[done + i])
				i++;
			return (long)(done + i);
		}
		done += m;
	}
	return -1;
}

/* ---- channels, the ledger and the verifier ------------------------------------ */

struct lent {
	uint32_t len;
	int32_t res;		/* PENDING until the write completes */
};

struct chan {
	unsigned int id;
	struct rng rng;

	pthread_mutex_t lock;	/* everything below up to the verifier */
	pthread_cond_t cond;
	pthread_rwlock_t fdlock; /* meddler's ioctls vs. close */
	int rfd, wfd;
	uint32_t epoch;
	bool open;		/* this epoch's pair exists */
	bool writer_done;	/* the writer closed its end for this epoch */
	bool reader_closed;	/* the reader closed early (abrupt epoch) */
	bool finished;		/* no more epochs */
	struct gen gen;
	struct lent *led;
	uint64_t led_base;	/* sequence number of led[0] */
	size_t led_n, led_cap;
	uint64_t next_seq;
	uint64_t accepted;	/* sum of write results this epoch */

	/* verifier: reader thread only (ledger read under lock) */
	uint64_t k_cur;
	size_t i_cur;
	unsigned char *stash;
	size_t stash_off, stash_n, stash_cap;
	uint64_t read_total, verified;
	bool bad;

	/* for the stall report */
	const char *volatile rwhat, *volatile wwhat;
	volatile uint64_t rbeat, wbeat;
	unsigned int engine, filter, cap;
};

static struct chan *chans;
static unsigned int nchans;

static void ledger_push(struct chan *c, uint32_t len, uint64_t *seq)
{
	pthread_mutex_lock(&c->lock);
	if (c->led_n == c->led_cap) {
		size_t drop = c->k_cur - c->led_base;

		/* entries before the reader's cursor are done with */
		if (drop && drop >= c->led_n / 2) {
			memmove(c->led, c->led + drop,
				(c->led_n - drop) * sizeof(*c->led));
			c->led_base += drop;
			c->led_n -= drop;
		} else {
			c->led_cap = c->led_cap ? c->led_cap * 2 : 256;
			c->led = realloc(c->led, c->led_cap * sizeof(*c->led));
			if (!c->led) {
				msg("out of memory");
				_exit(1);
			}
		}
	}
	*seq = c->next_seq++;
	c->led[c->led_n++] = (struct lent){ .len = len, .res = PENDING };
	pthread_mutex_unlock(&c->lock);
}

/* Record write @seq's result; a second result is a double completion. */
static void ledger_done(struct chan *c, uint64_t seq, long res)
{
	struct lent *e;

	pthread_mutex_lock(&c->lock);
	e = &c->led[seq - c->led_base];
	if (e->res != PENDING) {
		FAIL(bad_completions, "chan %u epoch %u: write %" PRIu64
		     " completed twice (%d, then %ld)", c->id, c->epoch, seq,
		     e->res, res);
	} else {
		e->res = res > 0 ? (int32_t)res : 0;
		c->accepted += e->res;
	}
	pthread_mutex_unlock(&c->lock);
	if (res > 0)
		ADD(bytes_written, res);
}

static void stash_add(struct chan *c, const void *p, size_t n)
{
	if (c->stash_off && c->stash_off == c->stash_n)
		c->stash_off = c->stash_n = 0;
	if (c->stash_n + n > c->stash_cap) {
		if (c->stash_off) {
			memmove(c->stash, c->stash + c->stash_off,
				c->stash_n - c->stash_off);
			c->stash_n -= c->stash_off;
			c->stash_off = 0;
		}
		if (c->stash_n + n > c->stash_cap) {
			c->stash_cap = (c->stash_n + n) * 2;
			c->stash = realloc(c->stash, c->stash_cap);
			if (!c->stash) {
				msg("out of memory");
				_exit(1);
			}
		}
	}
	memcpy(c->stash + c->stash_n, p, n);
	c->stash_n += n;
	c->read_total += n;
	ADD(bytes_read, n);
}

static void hexdump(char *out, size_t outsz, const unsigned char *p, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 4 < outsz; i++)
		o += snprintf(out + o, outsz - o, "%02x", p[i]);
	out[o] = 0;
}

/*
 * Report the first mismatch of an epoch: stream offset, write, offset in
 * it, and what the bytes look like (the start of another write of this
 * epoch means lost or duplicated bytes).
 */
static void report_mismatch(struct chan *c, const unsigned char *p, size_t n,
			    size_t bad)
{
	unsigned char want[16];
	char got_s[40], want_s[40];
	uint32_t w[4];
	size_t m = n - bad < 16 ? n - bad : 16;

	gen_fill(&c->gen, c->k_cur, c->i_cur + bad, want, m);
	hexdump(got_s, sizeof(got_s), p + bad, m);
	hexdump(want_s, sizeof(want_s), want, m);
	FAIL(corrupt, "chan %u epoch %u engine %u filter %u cap %u: stream offset %" PRIu64
	     " (write %" PRIu64 " byte %zu): got %s want %s",
	     c->id, c->epoch, c->engine, c->filter, c->cap,
	     c->verified + bad, c->k_cur, c->i_cur + bad, got_s, want_s);
	if (n - bad >= HDR) {
		memcpy(w, p + bad, HDR);
		if (w[1] == c->epoch && w[2] == c->id &&
		    w[3] == (uint32_t)mix64(c->gen.key ^ w[0]))
			msg("  ... the bytes there are the header of write %u: %s",
			    w[0], w[0] > c->k_cur ? "bytes were lost before them" :
			    "bytes were duplicated or reordered");
	}
}

/* Check every stashed byte the ledger can attribute. */
static void verify_try(struct chan *c)
{
	pthread_mutex_lock(&c->lock);
	while (!c->bad && c->stash_off < c->stash_n) {
		uint64_t idx = c->k_cur - c->led_base;
		const unsigned char *p = c->stash + c->stash_off;
		size_t n, r;
		long bad;

		if (idx >= c->led_n || c->led[idx].res == PENDING)
			break;
		r = (size_t)c->led[idx].res;
		if (c->i_cur >= r) {
			c->k_cur++;
			c->i_cur = 0;
			continue;
		}
		n = c->stash_n - c->stash_off;
		if (n > r - c->i_cur)
			n = r - c->i_cur;
		bad = gen_check(&c->gen, c->k_cur, c->i_cur, p, n);
		if (bad >= 0) {
			report_mismatch(c, p, c->stash_n - c->stash_off,
					(size_t)bad);
			c->verified += bad;
			ADD(bytes_verified, bad);
			c->bad = true;
			break;
		}
		c->i_cur += n;
		c->stash_off += n;
		c->verified += n;
		ADD(bytes_verified, n);
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- per-thread AIO and io_uring ------------------------------------------------ */

enum { S_FREE, S_INFLIGHT, S_DONE };

struct slot {
	struct iocb cb;
	struct iovec iov[MAXSEG];
	unsigned char *mem;	/* mapping; buf is inside it */
	unsigned char *buf;
	size_t len;
	uint64_t seq;		/* writes: ledger sequence number */
	uint64_t order;		/* reads: submission order */
	uint32_t gen;
	int state;
	long res;
	bool cancelled, nowait, uring, poll;
	const char *what;	/* the call, for reports */
	bool writer_done;	/* reads: the writer had closed when it completed */
};

struct ioside {
	struct chan *c;
	struct rng *rng;
	bool write;
	io_context_t ctx;	/* 0 if io_setup failed (fault injection) */
	struct io_uring ring;
	bool have_ring;
	int efd;		/* eventfd for IOCB_FLAG_RESFD */
	struct slot *slots;
	unsigned int nslots;
	unsigned int inflight;	/* libaio + io_uring requests */
	unsigned int uring_inflight;
	uint64_t next_order, head_order;	/* reads: in-order processing */
	bool eof;
	bool epipe;
	struct slot eof_slot;	/* the read that saw EOF, for reports */
};

static const char *const kind_name[] = { "free", "inflight", "done" };

static void side_init(struct ioside *s, struct chan *c, struct rng *r,
		      bool write, size_t bufsz, unsigned int nslots)
{
	unsigned int i;

	memset(s, 0, sizeof(*s));
	s->c = c;
	s->rng = r;
	s->write = write;
	s->nslots = nslots;
	s->slots = calloc(nslots, sizeof(*s->slots));
	if (!s->slots) {
		msg("out of memory");
		_exit(1);
	}
	for (i = 0; i < nslots; i++) {
		s->slots[i].mem = mmap(NULL, bufsz + 8192, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (s->slots[i].mem == MAP_FAILED) {
			msg("mmap: %s", strerror(errno));
			_exit(1);
		}
	}
	if (io_setup(64, &s->ctx))
		s->ctx = 0;
	s->have_ring = io_uring_queue_init(8, &s->ring, 0) == 0;
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void side_retry_setup(struct ioside *s)
{
	if (!s->ctx && io_setup(64, &s->ctx))
		s->ctx = 0;
	if (!s->have_ring)
		s->have_ring = io_uring_queue_init(8, &s->ring, 0) == 0;
}

static struct slot *slot_get(struct ioside *s)
{
	unsigned int i;

	for (i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->state == S_FREE) {
			sl->gen++;
			sl->cancelled = sl->nowait = sl->uring = sl->poll = false;
			sl->res = 0;
			return sl;
		}
	}
	return NULL;
}

static inline uint64_t slot_tag(struct ioside *s, struct slot *sl)
{
	return ((uint64_t)(sl - s->slots) << 32) | sl->gen;
}

static struct slot *slot_from_tag(struct ioside *s, uint64_t tag)
{
	uint64_t i = tag >> 32;

	if (i >= s->nslots || s->slots[i].gen != (uint32_t)tag)
		return NULL;
	return &s->slots[i];
}

/* Place a buffer of @len at a random offset in the slot's mapping. */
static void slot_buf(struct ioside *s, struct slot *sl, size_t len)
{
	size_t off = chance(s->rng, 50) ? 0 : below(s->rng, 4096);

	sl->buf = sl->mem + off;
	sl->len = len;
}

/* Split the slot's buffer into 1..MAXSEG segments (some empty). */
static int slot_iov(struct ioside *s, struct slot *sl)
{
	int n = 1 + (int)below(s->rng, chance(s->rng, 80) ? 4 : MAXSEG), i;
	size_t left = sl->len, at = 0;

	for (i = 0; i < n; i++) {
		size_t take = i == n - 1 ? left : below(s->rng, left + 1);

		sl->iov[i].iov_base = sl->buf + at;
		sl->iov[i].iov_len = take;
		at += take;
		left -= take;
	}
	return n;
}

/* Is @res an allowed result for a request of @len bytes? */
static bool result_ok(struct ioside *s, struct slot *sl, long res)
{
	if (res > (long)sl->len)
		return false;
	if (res > 0)
		return true;
	switch (res) {
	case 0:
		return !s->write;			/* EOF */
	case -EAGAIN:
		return sl->nowait || sl->uring;
	case -ECANCELED:
		/*
		 * io_uring cancels work queued for io-wq when it cannot
		 * create the first worker (io-wq.c, "failed to create the
		 * first worker"): an allocation the kernel's failslab failed.
		 */
		if (!sl->cancelled && sl->uring && O.allow_faults) {
			ADD(fault_errors, 1);
			return true;
		}
		return sl->cancelled;
	case -EINTR:
		return sl->cancelled;
	case -EPIPE:
		return s->write;
	case -ENOMEM:
	case -EFAULT:
		if (O.allow_faults) {
			ADD(fault_errors, 1);
			return true;
		}
		return false;
	default:
		return false;
	}
}

static void check_result(struct ioside *s, struct slot *sl, long res,
			 const char *what)
{
	struct chan *c = s->c;

	if (!result_ok(s, sl, res))
		FAIL(unexpected, "chan %u epoch %u: %s of %zu bytes%s%s: result %ld (%s)",
		     c->id, c->epoch, what, sl->len,
		     sl->cancelled ? " (cancelled)" : "",
		     sl->nowait ? " (nowait)" : "", res,
		     res < 0 ? strerror((int)-res) : "count");
	/*
	 * A libaio write that was not cancelled completes only when all its
	 * bytes are in, unless the readers went away or a fault was injected.
	 */
	if (s->write && !sl->uring && !sl->nowait && !sl->cancelled &&
	    res >= 0 && (size_t)res < sl->len && !c->reader_closed &&
	    !O.allow_faults)
		FAIL(unexpected, "chan %u epoch %u: %s of %zu bytes completed short: %ld",
		     c->id, c->epoch, what, sl->len, res);
	if (res == -EPIPE)
		s->epipe = true;
}

/* ---- completion handling ----------------------------------------------------------- */

static void read_consume(struct ioside *s);

static void complete(struct ioside *s, struct slot *sl, long res, const char *what)
{
	struct chan *c = s->c;

	if (sl->state != S_INFLIGHT) {
		FAIL(bad_completions, "chan %u epoch %u: %s completed while %s (res %ld)",
		     c->id, c->epoch, what, kind_name[sl->state], res);
		return;
	}
	s->inflight--;
	if (sl->uring)
		s->uring_inflight--;
	if (sl->poll) {
		/* IOCB_CMD_POLL: a mask with POLLIN or POLLHUP, or cancelled */
		if (!(res > 0 && (res & (POLLIN | POLLHUP))) &&
		    !(sl->cancelled && res == -ECANCELED))
			FAIL(unexpected, "chan %u epoch %u: aio poll result %ld",
			     c->id, c->epoch, res);
		sl->res = res;
		sl->state = S_FREE;
		return;
	}
	check_result(s, sl, res, what);
	sl->res = res;
	sl->what = what;
	if (!s->write && res == 0) {
		pthread_mutex_lock(&c->lock);
		sl->writer_done = c->writer_done;
		pthread_mutex_unlock(&c->lock);
	}
	if (s->write) {
		ledger_done(c, sl->seq, res);
		sl->state = S_FREE;
	} else {
		sl->state = S_DONE;
		read_consume(s);
	}
}

/* A request that was never submitted: it moved nothing. */
static void abandon(struct ioside *s, struct slot *sl)
{
	s->inflight--;
	if (sl->uring)
		s->uring_inflight--;
	if (s->write) {
		ledger_done(s->c, sl->seq, 0);
		sl->state = S_FREE;
	} else if (sl->poll) {
		sl->state = S_FREE;
	} else {
		sl->res = -EAGAIN;
		sl->state = S_DONE;
		read_consume(s);
	}
}

/* Reap libaio completions: wait up to @ms for at least @min. */
static int reap_aio(struct ioside *s, int min, int ms)
{
	struct io_event ev[16];
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	int n, i;

	if (!s->ctx)
		return 0;
	n = io_getevents(s->ctx, min, 16, ev, &ts);
	if (n < 0) {
		if (n != -EINTR)
			FAIL(unexpected, "io_getevents: %s", strerror(-n));
		return 0;
	}
	for (i = 0; i < n; i++) {
		struct slot *sl = slot_from_tag(s, (uintptr_t)ev[i].data);

		if (!sl || ev[i].obj != &sl->cb) {
			FAIL(bad_completions, "chan %u: completion for an unknown or recycled iocb (data %#llx)",
			     s->c->id, (unsigned long long)ev[i].data);
			continue;
		}
		complete(s, sl, (long)ev[i].res,
			 sl->poll ? "aio poll" : s->write ? "aio write" : "aio read");
	}
	if (n > 0) {
		uint64_t v;

		/* keep the eventfd from saturating; its count is not checked */
		if (read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			FAIL(unexpected, "eventfd read: %s", strerror(errno));
	}
	return n;
}

#define UR_CANCEL_TAG	(1ull << 63)

static void uring_cqe(struct ioside *s, struct io_uring_cqe *cqe)
{
	if (cqe->user_data & UR_CANCEL_TAG) {
		/* the cancel request itself: found, already running, or gone */
		if (cqe->res != 0 && cqe->res != -EALREADY && cqe->res != -ENOENT)
			FAIL(unexpected, "chan %u: io_uring cancel: %s",
			     s->c->id, strerror(-cqe->res));
		return;
	}
	struct slot *sl = slot_from_tag(s, cqe->user_data);

	if (!sl || !sl->uring) {
		FAIL(bad_completions, "chan %u: io_uring completion for an unknown request",
		     s->c->id);
		return;
	}
	complete(s, sl, cqe->res, s->write ? "io_uring write" : "io_uring read");
}

/* Reap io_uring completions, waiting up to @ms for one. */
static void reap_uring(struct ioside *s, int ms)
{
	struct __kernel_timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	struct io_uring_cqe *cqe;
	int ret;

	if (!s->have_ring)
		return;
	ret = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
	if (ret == -ETIME || ret == -EINTR)
		return;
	if (ret < 0) {
		FAIL(unexpected, "io_uring_wait_cqe: %s", strerror(-ret));
		return;
	}
	while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
		uring_cqe(s, cqe);
		io_uring_cqe_seen(&s->ring, cqe);
	}
}

static int uring_submit(struct ioside *s);

/* Ask every in-flight request to finish (cancel), then wait for all. */
static void side_drain(struct ioside *s, bool cancel)
{
	int64_t t0 = now_ns();
	unsigned int i;

	while (s->inflight) {
		if (cancel || (now_ns() - t0) / 1000000 > DRAIN_MS / 2) {
			for (i = 0; i < s->nslots; i++) {
				struct slot *sl = &s->slots[i];
				struct io_event ev;

				if (sl->state != S_INFLIGHT || sl->cancelled)
					continue;
				sl->cancelled = true;
				ADD(cancels, 1);
				if (!sl->uring) {
					io_cancel(s->ctx, &sl->cb, &ev);
				} else {
					struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

					if (sqe) {
						io_uring_prep_cancel64(sqe, slot_tag(s, sl), 0);
						sqe->user_data = UR_CANCEL_TAG;
						uring_submit(s);
					}
				}
			}
		}
		if (s->uring_inflight)
			reap_uring(s, 50);
		else
			reap_aio(s, 1, 50);
		if ((now_ns() - t0) / 1000000 > DRAIN_MS) {
			for (i = 0; i < s->nslots; i++)
				if (s->slots[i].state == S_INFLIGHT)
					FAIL(bad_completions, "chan %u epoch %u: %s %s of %zu bytes never completed (cancelled %d)",
					     s->c->id, s->c->epoch,
					     s->slots[i].uring ? "io_uring" : "libaio",
					     s->write ? "write" : "read",
					     s->slots[i].len, s->slots[i].cancelled);
			ADD(stalls, 1);
			stopping = 1;
			return;
		}
	}
}

static void set_make_it_fail(void);

/* ---- writer ------------------------------------------------------------------------ */

static void w_fill(struct chan *c, struct slot *sl)
{
	gen_fill(&c->gen, sl->seq, 0, sl->buf, sl->len);
}

static void w_sync(struct ioside *s, int fd)
{
	struct chan *c = s->c;
	struct slot *sl = slot_get(s);
	ssize_t n;

	if (!sl)
		return;
	slot_buf(s, sl, pick_size(s->rng, O.max_write));
	ledger_push(c, sl->len, &sl->seq);
	w_fill(c, sl);
	sl->state = S_INFLIGHT;
	s->inflight++;
	c->wwhat = "sync write";
	switch (below(s->rng, 3)) {
	case 0:
		n = write(fd, sl->buf, sl->len);
		break;
	case 1:
		n = writev(fd, sl->iov, slot_iov(s, sl));
		break;
	default:
		sl->nowait = true;
		n = pwritev2(fd, sl->iov, slot_iov(s, sl), -1, RWF_NOWAIT);
		break;
	}
	if (n < 0)
		n = -errno;
	/* a sync write that blocks is never short unless the readers left */
	if (!sl->nowait && n >= 0 && (size_t)n < sl->len && !O.allow_faults) {
		pthread_mutex_lock(&c->lock);
		if (!c->reader_closed)
			FAIL(unexpected, "chan %u epoch %u: blocking write of %zu returned %zd",
			     c->id, c->epoch, sl->len, n);
		pthread_mutex_unlock(&c->lock);
	}
	ADD(sync_ops, 1);
	complete(s, sl, n, "sync write");
}

/* Submit 1..3 libaio writes; stop at the first io_submit failure. */
static void w_aio(struct ioside *s, int fd)
{
	struct chan *c = s->c;
	unsigned int want = 1 + (unsigned int)below(s->rng, 3), i;

	if (!s->ctx || s->uring_inflight)
		return;
	for (i = 0; i < want && s->inflight < W_DEPTH; i++) {
		struct slot *sl = slot_get(s);
		struct iocb *cbp;
		int ret;

		if (!sl)
			return;
		slot_buf(s, sl, pick_size(s->rng, O.max_write));
		ledger_push(c, sl->len, &sl->seq);
		w_fill(c, sl);
		if (chance(s->rng, 50))
			io_prep_pwrite(&sl->cb, fd, sl->buf, sl->len, 0);
		else
			io_prep_pwritev(&sl->cb, fd, sl->iov, slot_iov(s, sl), 0);
		if (chance(s->rng, 10)) {
			sl->nowait = true;
			sl->cb.aio_rw_flags = RWF_NOWAIT;
		}
		if (s->efd >= 0 && chance(s->rng, 20))
			io_set_eventfd(&sl->cb, s->efd);
		sl->cb.data = (void *)(uintptr_t)slot_tag(s, sl);
		sl->state = S_INFLIGHT;
		s->inflight++;
		cbp = &sl->cb;
		c->wwhat = "io_submit write";
		ret = io_submit(s->ctx, 1, &cbp);
		ADD(aio_ops, 1);
		if (ret != 1) {
			if (ret != -EAGAIN && !(O.allow_faults && ret == -ENOMEM))
				FAIL(unexpected, "chan %u: io_submit write: %s",
				     c->id, strerror(-ret));
			abandon(s, sl);
			return;
		}
	}
}

static void cancel_one(struct ioside *s)
{
	unsigned int i, start = (unsigned int)below(s->rng, s->nslots);

	for (i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[(start + i) % s->nslots];
		struct io_event ev;
		int ret;

		if (sl->state != S_INFLIGHT || sl->uring || sl->cancelled)
			continue;
		s->c->wwhat = s->write ? "io_cancel write" : s->c->wwhat;
		ret = io_cancel(s->ctx, &sl->cb, &ev);
		/* -EINPROGRESS: it will complete; -EINVAL: it already did */
		if (ret != -EINPROGRESS && ret != -EINVAL && ret != -EAGAIN)
			FAIL(unexpected, "chan %u: io_cancel: %s", s->c->id,
			     strerror(-ret));
		if (ret == -EINPROGRESS) {
			sl->cancelled = true;
			ADD(cancels, 1);
		}
		return;
	}
}

/*
 * io_uring_submit, retried while the kernel cannot take the SQE (an
 * injected allocation failure leaves it in the ring, to go in with the
 * next submit): 1 once it is in.  If it never goes in, the ring is given up.
 */
static int uring_submit(struct ioside *s)
{
	int i, ret = 0;

	for (i = 0; i < 1000; i++) {
		ret = io_uring_submit(&s->ring);
		if (ret >= 1)
			return 1;
		if (ret != -EAGAIN && ret != -ENOMEM && ret != -EINTR)
			break;
		usleep(1000);
	}
	FAIL(unexpected, "chan %u: io_uring_submit: %s", s->c->id, strerror(-ret));
	s->have_ring = false;
	return ret;
}

/* One io_uring request, alone on its side: submit, maybe cancel, wait. */
static void uring_one(struct ioside *s, int fd, const char *what)
{
	struct chan *c = s->c;
	struct io_uring_sqe *sqe;
	struct slot *sl;
	int64_t t0;

	if (!s->have_ring || s->inflight)
		return;
	sl = slot_get(s);
	sqe = io_uring_get_sqe(&s->ring);
	if (!sl || !sqe)
		return;
	if (s->write) {
		slot_buf(s, sl, pick_size(s->rng, O.max_write));
		ledger_push(c, sl->len, &sl->seq);
		w_fill(c, sl);
		if (chance(s->rng, 50))
			io_uring_prep_write(sqe, fd, sl->buf, sl->len, 0);
		else
			io_uring_prep_writev(sqe, fd, sl->iov, slot_iov(s, sl), 0);
	} else {
		slot_buf(s, sl, pick_size(s->rng, O.max_read));
		sl->order = s->next_order++;
		if (chance(s->rng, 50))
			io_uring_prep_read(sqe, fd, sl->buf, sl->len, 0);
		else
			io_uring_prep_readv(sqe, fd, sl->iov, slot_iov(s, sl), 0);
	}
	/* offset 0 on a stream is "the current position" for io_uring: use -1 */
	sqe->off = (uint64_t)-1;
	if (chance(s->rng, 25))
		sqe->flags |= IOSQE_ASYNC;
	sqe->user_data = slot_tag(s, sl);
	sl->uring = true;
	sl->state = S_INFLIGHT;
	s->inflight++;
	s->uring_inflight++;
	ADD(uring_ops, 1);
	if (s->write)
		c->wwhat = what;
	else
		c->rwhat = what;
	if (uring_submit(s) != 1) {
		abandon(s, sl);
		return;
	}
	t0 = now_ns();
	while (sl->state == S_INFLIGHT && sl->gen == (uint32_t)slot_tag(s, sl)) {
		if (!sl->cancelled && (chance(s->rng, 3) ||
				       (now_ns() - t0) / 1000000 > DRAIN_MS / 2)) {
			struct io_uring_sqe *cs = io_uring_get_sqe(&s->ring);

			if (cs) {
				sl->cancelled = true;
				ADD(cancels, 1);
				io_uring_prep_cancel64(cs, slot_tag(s, sl), 0);
				cs->user_data = UR_CANCEL_TAG;
				uring_submit(s);
			}
		}
		reap_uring(s, 20);
		if ((now_ns() - t0) / 1000000 > DRAIN_MS) {
			FAIL(bad_completions, "chan %u epoch %u: %s of %zu bytes never completed",
			     c->id, c->epoch, what, sl->len);
			ADD(stalls, 1);
			stopping = 1;
			return;
		}
	}
}

/* Which counters check_chan_idle() looks at. */
#define IDLE_READS	1
#define IDLE_WRITES	2
#define IDLE_PINS	4
#define IDLE_ALL	7

/*
 * Per-channel counters must be back at zero when nothing is in flight:
 * @what says which (a side checks its own requests while the other side
 * may still have some).
 */
static void check_chan_idle(struct chan *c, int fd, int what, const char *when)
{
	struct aiopipe_stats st;
	int i;

	for (i = 0; i < 200; i++) {
		if (aiopipe_stats(fd, &st)) {
			FAIL(unexpected, "chan %u: GET_STATS: %s", c->id, strerror(errno));
			return;
		}
		if (!((what & IDLE_READS) && st.pending_reads) &&
		    !((what & IDLE_WRITES) && st.pending_writes) &&
		    !((what & IDLE_PINS) && st.pinned_pages))
			return;
		/* a completion's tail may still run in a kworker */
		usleep(1000);
	}
	FAIL(counter_leaks, "chan %u epoch %u %s: pending_reads %llu pending_writes %llu pinned_pages %llu",
	     c->id, c->epoch, when, (unsigned long long)st.pending_reads,
	     (unsigned long long)st.pending_writes,
	     (unsigned long long)st.pinned_pages);
}

static void *writer_main(void *arg)
{
	struct chan *c = arg;
	struct rng rng = { mix64(O.seed ^ (c->id * 2 + 1)) };
	struct ioside s;
	uint32_t epoch = 0;

	side_init(&s, c, &rng, true, O.max_write, W_DEPTH + 1);
	if (O.fail_self)
		set_make_it_fail();
	for (;;) {
		unsigned int budget;
		int fd, idle;

		pthread_mutex_lock(&c->lock);
		while (!c->finished && (!c->open || c->epoch == epoch))
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->finished) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		epoch = c->epoch;
		fd = c->wfd;
		pthread_mutex_unlock(&c->lock);
		side_retry_setup(&s);
		s.epipe = false;
		budget = 20 + (unsigned int)below(&rng, 400);
		while (budget-- && !s.epipe && !past_deadline()) {
			c->wbeat++;
			ADD(ops, 1);
			switch (below(&rng, 20)) {
			case 0: case 1: case 2: case 3: case 4: case 5:
				w_sync(&s, fd);
				break;
			case 6: case 7: case 8: case 9: case 10: case 11: case 12:
				w_aio(&s, fd);
				break;
			case 13:
				uring_one(&s, fd, "io_uring write");
				break;
			case 14:
				if (s.inflight && !s.uring_inflight)
					cancel_one(&s);
				break;
			default:
				c->wwhat = "reap writes";
				reap_aio(&s, 0, 0);
				break;
			}
		}
		c->wwhat = "drain writes";
		side_drain(&s, false);
		pthread_mutex_lock(&c->lock);
		idle = c->reader_closed ? IDLE_ALL : IDLE_WRITES;
		pthread_mutex_unlock(&c->lock);
		check_chan_idle(c, fd, idle, "after the writer's requests");
		pthread_rwlock_wrlock(&c->fdlock);
		close(fd);
		c->wfd = -1;
		pthread_rwlock_unlock(&c->fdlock);
		pthread_mutex_lock(&c->lock);
		c->writer_done = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		c->wwhat = "waiting for a new epoch";
	}
	c->wwhat = "finished";
	return NULL;
}

/* ---- reader ------------------------------------------------------------------------ */

/* Bytes the reader got, in stream order, to the verifier. */
static void deliver(struct chan *c, unsigned char *p, size_t n)
{
	if (O.inject && c->id == 0 && c->read_total > 100000) {
		/* --inject: prove the checker sees it */
		if (O.inject == 3)
			p[n / 2] ^= 0x40;
		if (O.inject == 2)
			stash_add(c, p, n);
		if (O.inject != 1)
			stash_add(c, p, n);
		O.inject = 0;
	} else {
		stash_add(c, p, n);
	}
}

/* Process completed reads in submission order. */
static void read_consume(struct ioside *s)
{
	struct chan *c = s->c;
	bool progress = true;

	while (progress) {
		unsigned int i;

		progress = false;
		for (i = 0; i < s->nslots; i++) {
			struct slot *sl = &s->slots[i];

			if (sl->state != S_DONE || sl->order != s->head_order)
				continue;
			if (sl->res > 0) {
				if (s->eof)
					FAIL(corrupt, "chan %u epoch %u engine %u filter %u: %ld bytes read (%s%s of %zu) after EOF (%s%s%s of %zu, the writer %s closed)",
					     c->id, c->epoch, c->engine, c->filter, sl->res,
					     sl->what, sl->cancelled ? ", cancelled" : "", sl->len,
					     s->eof_slot.what, s->eof_slot.nowait ? ", nowait" : "",
					     s->eof_slot.cancelled ? ", cancelled" : "", s->eof_slot.len,
					     s->eof_slot.writer_done ? "had" : "had not");
				deliver(c, sl->buf, (size_t)sl->res);
			} else if (sl->res == 0) {
				if (!s->eof)
					s->eof_slot = *sl;
				s->eof = true;
			}
			sl->state = S_FREE;
			s->head_order++;
			progress = true;
		}
	}
	verify_try(c);
}

/* A read(2)-style call: @how 0 read, 1 readv, 2 RWF_NOWAIT, -1 any. */
static void r_sync(struct ioside *s, int fd, int how)
{
	struct chan *c = s->c;
	struct slot *sl = slot_get(s);
	const char *w;
	ssize_t n;

	if (!sl)
		return;
	slot_buf(s, sl, pick_size(s->rng, O.max_read));
	sl->order = s->next_order++;
	sl->state = S_INFLIGHT;
	s->inflight++;
	c->rwhat = "sync read";
	switch (how >= 0 ? how : (int)below(s->rng, 3)) {
	case 0:
		w = "read";
		n = read(fd, sl->buf, sl->len);
		break;
	case 1:
		w = "readv";
		n = readv(fd, sl->iov, slot_iov(s, sl));
		break;
	default:
		w = "preadv2(RWF_NOWAIT)";
		sl->nowait = true;
		n = preadv2(fd, sl->iov, slot_iov(s, sl), -1, RWF_NOWAIT);
		break;
	}
	ADD(sync_ops, 1);
	complete(s, sl, n < 0 ? -errno : n, w);
}

static void r_aio(struct ioside *s, int fd)
{
	struct chan *c = s->c;
	unsigned int want = 1 + (unsigned int)below(s->rng, 4), i;

	if (!s->ctx || s->uring_inflight)
		return;
	for (i = 0; i < want && s->inflight < R_DEPTH; i++) {
		struct slot *sl = slot_get(s);
		struct iocb *cbp;
		int ret;

		if (!sl)
			return;
		slot_buf(s, sl, pick_size(s->rng, O.max_read));
		if (chance(s->rng, 50))
			io_prep_pread(&sl->cb, fd, sl->buf, sl->len, 0);
		else
			io_prep_preadv(&sl->cb, fd, sl->iov, slot_iov(s, sl), 0);
		if (chance(s->rng, 10)) {
			sl->nowait = true;
			sl->cb.aio_rw_flags = RWF_NOWAIT;
		}
		if (s->efd >= 0 && chance(s->rng, 20))
			io_set_eventfd(&sl->cb, s->efd);
		sl->cb.data = (void *)(uintptr_t)slot_tag(s, sl);
		sl->order = s->next_order++;
		sl->state = S_INFLIGHT;
		s->inflight++;
		cbp = &sl->cb;
		c->rwhat = "io_submit read";
		ret = io_submit(s->ctx, 1, &cbp);
		ADD(aio_ops, 1);
		if (ret != 1) {
			if (ret != -EAGAIN && !(O.allow_faults && ret == -ENOMEM))
				FAIL(unexpected, "chan %u: io_submit read: %s",
				     c->id, strerror(-ret));
			abandon(s, sl);
			return;
		}
	}
}

/*
 * IOCB_CMD_POLL for POLLIN (alone on the read side), then a non-blocking
 * read: the epoll-style way to use a pipe from an AIO loop.
 */
static void r_poll(struct ioside *s, int fd)
{
	struct chan *c = s->c;
	struct slot *sl;
	struct iocb *cbp;
	int64_t t0;

	if (!s->ctx || s->inflight)
		return;
	sl = slot_get(s);
	if (!sl)
		return;
	io_prep_poll(&sl->cb, fd, POLLIN);
	sl->cb.data = (void *)(uintptr_t)slot_tag(s, sl);
	sl->poll = true;
	sl->len = 0;
	sl->state = S_INFLIGHT;
	s->inflight++;
	cbp = &sl->cb;
	c->rwhat = "aio poll";
	ADD(poll_ops, 1);
	if (io_submit(s->ctx, 1, &cbp) != 1) {
		abandon(s, sl);
		return;
	}
	t0 = now_ns();
	while (sl->state == S_INFLIGHT) {
		reap_aio(s, 1, 50);
		if (sl->state == S_INFLIGHT && (now_ns() - t0) / 1000000 > 2000 &&
		    !sl->cancelled) {
			struct io_event ev;

			/* no data for 2 s: a legal idle; cancel it */
			sl->cancelled = true;
			io_cancel(s->ctx, &sl->cb, &ev);
		}
		if ((now_ns() - t0) / 1000000 > DRAIN_MS) {
			FAIL(bad_completions, "chan %u epoch %u: aio poll never completed",
			     c->id, c->epoch);
			ADD(stalls, 1);
			stopping = 1;
			return;
		}
	}
	if (sl->res > 0)
		r_sync(s, fd, 2);
}

/* ---- ring mode (--ring): the reader reaps a ring ------------------------------------ */

static bool fault_result(long res);

struct rside {
	struct aiopipe_ring r;
	bool have;		/* the ring is set up */
	bool attached;		/* this epoch's read end is attached */
	uint32_t gen;		/* attachments so far: user_data's low half */
	uint64_t tag;		/* user_data of the current attachment */
	unsigned char *held;	/* per buffer: the reader holds it */
	uint32_t *held_ids;
	unsigned int nheld;
	unsigned char *rbuf;	/* a READ event's bytes */
	size_t rbuf_cap;
};

static void ring_new(struct rside *rs, struct chan *c, struct rng *rng)
{
	unsigned int entries = 1u << below(rng, 10), nr_bufs = 1u << below(rng, 6);
	unsigned int buf_size = 64u << below(rng, 11);
	int ret, tries = 0;

	while ((size_t)nr_bufs * buf_size > (512u << 10))
		nr_bufs /= 2;
	while ((ret = aiopipe_ring_setup(&rs->r, entries, nr_bufs, buf_size, O_CLOEXEC))) {
		if (!(O.allow_faults && ret == -ENOMEM) || ++tries > 1000) {
			msg("chan %u: aiopipe_ring_setup(%u entries, %u buffers of %u bytes): %s%s",
			    c->id, entries, nr_bufs, buf_size, strerror(-ret),
			    ret == -ENOMEM ? " (RLIMIT_MEMLOCK?)" : "");
			_exit(1);
		}
		ADD(fault_errors, 1);
		usleep(1000);
	}
	rs->held = calloc(nr_bufs, 1);
	rs->held_ids = calloc(nr_bufs, sizeof(*rs->held_ids));
	if (!rs->held || !rs->held_ids) {
		msg("out of memory");
		_exit(1);
	}
	rs->nheld = 0;
	rs->have = true;
}

static void ring_free(struct rside *rs)
{
	aiopipe_ring_exit(&rs->r);
	free(rs->held);
	free(rs->held_ids);
	rs->held = NULL;
	rs->held_ids = NULL;
	rs->nheld = 0;
	rs->have = false;
	rs->attached = false;
}

/* Hand back the buffers held, in a random order. */
static void ring_release(struct rside *rs, struct rng *rng)
{
	while (rs->nheld) {
		unsigned int i = (unsigned int)below(rng, rs->nheld);
		uint32_t id = rs->held_ids[i];

		rs->held_ids[i] = rs->held_ids[--rs->nheld];
		rs->held[id] = 0;
		aiopipe_ring_give_back(&rs->r, id);
	}
}

static void ring_data(struct rside *rs, struct ioside *s, const struct aiopipe_ring_event *ev,
		      bool discard)
{
	struct chan *c = s->c;

	if (ev->buf >= rs->r.nr_bufs || !ev->len || ev->len > rs->r.buf_size) {
		FAIL(unexpected, "chan %u epoch %u: ring DATA event with buffer %u, length %u (%u buffers of %u bytes)",
		     c->id, c->epoch, ev->buf, ev->len, rs->r.nr_bufs, rs->r.buf_size);
		return;
	}
	if (rs->held[ev->buf]) {
		FAIL(bad_completions, "chan %u epoch %u: ring buffer %u delivered again while the reader holds it",
		     c->id, c->epoch, ev->buf);
		return;
	}
	ADD(ring_data, 1);
	if (!discard)
		deliver(c, aiopipe_ring_buf(&rs->r, ev->buf), ev->len);
	/* hold some buffers a while: they come back out of order */
	if (!discard && chance(s->rng, 30) && rs->nheld < rs->r.nr_bufs / 2) {
		rs->held[ev->buf] = 1;
		rs->held_ids[rs->nheld++] = ev->buf;
	} else {
		aiopipe_ring_give_back(&rs->r, ev->buf);
	}
}

/*
 * A READ event: exactly @len bytes are in the pipe now.  Read without
 * waiting for data, so that a missing byte shows; RWF_NOWAIT also gives
 * EAGAIN while another call holds the channel (it never sleeps, not even
 * on the lock): that is tried again, for up to a second.
 */
static void ring_read(struct rside *rs, struct ioside *s, int fd, uint32_t len)
{
	struct chan *c = s->c;
	size_t got = 0;
	int faults = 0, busy = 0;

	ADD(ring_read, 1);
	if (rs->rbuf_cap < len) {
		free(rs->rbuf);
		rs->rbuf_cap = len;
		rs->rbuf = malloc(len);
		if (!rs->rbuf) {
			msg("out of memory");
			_exit(1);
		}
	}
	while (got < len) {
		ssize_t n = preadv2(fd, &(struct iovec){ rs->rbuf + got, len - got }, 1, -1,
				    RWF_NOWAIT);

		if (n < 0 && fault_result(-errno) && ++faults < 1000)
			continue;
		if (n < 0 && errno == EAGAIN && ++busy < 2000) {
			usleep(500);
			continue;
		}
		if (n <= 0) {
			FAIL(unexpected, "chan %u epoch %u: a ring READ event announced %u bytes, the pipe gave %zu, then %s",
			     c->id, c->epoch, len, got, n ? strerror(errno) : "EOF");
			break;
		}
		got += (size_t)n;
	}
	ADD(sync_ops, 1);
	if (got)
		deliver(c, rs->rbuf, got);
}

/*
 * One event.  @discard: the read end is closed (an early end): buffers
 * go back unread, READ events have nothing left to read.
 */
static void ring_event(struct rside *rs, struct ioside *s, int fd,
		       const struct aiopipe_ring_event *ev, bool discard)
{
	struct chan *c = s->c;

	if (ev->user_data != rs->tag) {
		FAIL(unexpected, "chan %u epoch %u: ring event type %u len %u for user_data %#llx, not the attachment's %#llx",
		     c->id, c->epoch, ev->type, ev->len, (unsigned long long)ev->user_data,
		     (unsigned long long)rs->tag);
		if (ev->type == AIOPIPE_EV_DATA && ev->buf < rs->r.nr_bufs && !rs->held[ev->buf])
			aiopipe_ring_give_back(&rs->r, ev->buf);
		return;
	}
	if (s->eof && !discard)
		FAIL(unexpected, "chan %u epoch %u: ring event type %u len %u after EOF",
		     c->id, c->epoch, ev->type, ev->len);
	switch (ev->type) {
	case AIOPIPE_EV_DATA:
		ring_data(rs, s, ev, discard);
		break;
	case AIOPIPE_EV_READ:
		if (!ev->len)
			FAIL(unexpected, "chan %u epoch %u: ring READ event of 0 bytes",
			     c->id, c->epoch);
		else if (!discard)
			ring_read(rs, s, fd, ev->len);
		break;
	case AIOPIPE_EV_EOF:
		ADD(ring_eof, 1);
		if (!discard && !s->eof) {
			pthread_mutex_lock(&c->lock);
			s->eof_slot = (struct slot){ .what = "ring EOF event",
						     .writer_done = c->writer_done };
			pthread_mutex_unlock(&c->lock);
		}
		s->eof = true;
		break;
	default:
		FAIL(unexpected, "chan %u epoch %u: ring event of unknown type %u (len %u, buf %u)",
		     c->id, c->epoch, ev->type, ev->len, ev->buf);
		break;
	}
}

/* Handle every event posted now; returns how many. */
static unsigned int ring_drain(struct rside *rs, struct ioside *s, int fd, bool discard)
{
	struct aiopipe_ring_event *ev;
	unsigned int n = 0;

	while ((ev = aiopipe_ring_peek(&rs->r))) {
		ring_event(rs, s, fd, ev, discard);
		aiopipe_ring_advance(&rs->r, 1);
		n++;
	}
	if (n && !discard)
		verify_try(s->c);
	return n;
}

/* Wait up to @ms for @min events (this also lets owed events in), reap. */
static void ring_reap(struct rside *rs, struct ioside *s, int fd, unsigned int min, int ms)
{
	int ret;

	s->c->rwhat = "ring wait";
	ret = aiopipe_ring_wait(&rs->r, min, (long long)ms * 1000000);
	if (ret < 0 && ret != -ETIME && ret != -EINTR)
		FAIL(unexpected, "chan %u: AIOPIPE_IOC_RING_WAIT(min %u, %d ms): %s",
		     s->c->id, min, ms, strerror(-ret));
	s->c->rwhat = "ring reap";
	ring_drain(rs, s, fd, false);
}

/*
 * Attach the epoch's read end.  No read may be in flight: a queued read
 * is served before the ring, and its bytes would not be in event order.
 */
static void ring_attach_fd(struct rside *rs, struct ioside *s, int fd, struct rng *rng)
{
	struct chan *c = s->c;
	int ret, tries = 0;

	c->rwhat = "drain reads for an attach";
	side_drain(s, true);
	read_consume(s);
	if (s->eof)
		return;
	if (!rs->have)
		ring_new(rs, c, rng);
	rs->gen++;
	rs->tag = ((uint64_t)c->epoch << 32) | rs->gen;
	c->rwhat = "ring attach";
	while ((ret = aiopipe_ring_attach(&rs->r, fd, rs->tag))) {
		if (!(O.allow_faults && ret == -ENOMEM) || ++tries > 1000) {
			FAIL(unexpected, "chan %u epoch %u: AIOPIPE_IOC_RING_ATTACH(fd %d): %s",
			     c->id, c->epoch, fd, strerror(-ret));
			return;
		}
		ADD(fault_errors, 1);
		usleep(1000);
	}
	rs->attached = true;
	ADD(ring_attaches, 1);
}

/*
 * Detach: no event comes after the ioctl, those before are handled (a
 * READ event's bytes are still in the pipe); sometimes the ring goes too.
 */
static void ring_detach_fd(struct rside *rs, struct ioside *s, int fd, struct rng *rng)
{
	struct chan *c = s->c;
	bool close_ring = chance(rng, 30);
	int ret;

	c->rwhat = "ring detach";
	ret = aiopipe_ring_detach(&rs->r, fd);
	if (ret)
		FAIL(unexpected, "chan %u epoch %u: AIOPIPE_IOC_RING_DETACH(fd %d): %s",
		     c->id, c->epoch, fd, strerror(-ret));
	ring_drain(rs, s, fd, false);
	rs->attached = false;
	rs->gen++;
	rs->tag = 0;
	if (close_ring) {
		ring_release(rs, rng);
		ring_free(rs);
	}
}

/* One reader step while attached. */
static void ring_step(struct rside *rs, struct ioside *s, int fd, struct rng *rng)
{
	unsigned int op = (unsigned int)below(rng, 40);

	if (op < 28) {
		ring_reap(rs, s, fd, 1, 10);
	} else if (op < 32) {
		ring_reap(rs, s, fd, 1 + (unsigned int)below(rng, rs->r.ev_mask + 1), 5);
	} else if (op < 35) {
		ring_release(rs, rng);
	} else if (op < 38) {
		struct pollfd p = { .fd = rs->r.fd, .events = POLLIN };

		s->c->rwhat = "ring poll";
		if (poll(&p, 1, 10) < 0 && errno != EINTR)
			FAIL(unexpected, "chan %u: poll of the ring fd: %s", s->c->id, strerror(errno));
		ring_drain(rs, s, fd, false);
	} else {
		ring_detach_fd(rs, s, fd, rng);
	}
}

/* After EOF: nothing left in the pipe that no event announced. */
static void ring_check_drained(struct rside *rs, struct ioside *s, int fd)
{
	struct chan *c = s->c;
	unsigned char b[4096];
	ssize_t n;

	/* no writer is left: a blocking read returns at once */
	do {
		n = read(fd, b, sizeof(b));
	} while (n < 0 && (fault_result(-errno) || errno == EINTR));
	if (n > 0) {
		FAIL(unexpected, "chan %u epoch %u: %zd bytes in the pipe after the ring's EOF event, announced by no event",
		     c->id, c->epoch, n);
		deliver(c, b, (size_t)n);
	}
	if (aiopipe_ring_ready(&rs->r))
		FAIL(unexpected, "chan %u epoch %u: %u ring events after EOF",
		     c->id, c->epoch, aiopipe_ring_ready(&rs->r));
}

/*
 * An early end while attached: reap, then close the end (which detaches
 * it), sometimes the ring first; what is left is discarded.
 */
static void ring_abrupt_close(struct rside *rs, struct ioside *s, int fd, struct rng *rng)
{
	struct chan *c = s->c;
	bool ring_first = chance(rng, 30);

	ring_drain(rs, s, fd, false);
	if (ring_first) {
		ring_release(rs, rng);
		ring_free(rs);
	}
	pthread_rwlock_wrlock(&c->fdlock);
	close(fd);
	c->rfd = -1;
	pthread_rwlock_unlock(&c->fdlock);
	if (rs->have)
		ring_drain(rs, s, fd, true);
	rs->attached = false;
	rs->gen++;
	rs->tag = 0;
}

static void open_epoch(struct chan *c, struct rng *rng)
{
	static const unsigned int caps[] = { 4096, 8192, 16384, 65536, 262144, 1 << 20 };
	int fds[2], ret, tries = 0;

	c->engine = chance(rng, 50) ? AIOPIPE_ENGINE_RETRY : AIOPIPE_ENGINE_DIRECT;
	c->filter = chance(rng, 75) ? AIOPIPE_FILTER_ON : AIOPIPE_FILTER_OFF;
	c->cap = chance(rng, 30) ? 0 : caps[below(rng, 6)];
	for (;;) {
		ret = aiopipe_pair_ex(fds, O_CLOEXEC, c->cap, c->engine);
		if (!ret)
			ret = aiopipe_set_filter(fds[0], c->filter);
		if (!ret)
			break;
		if (!O.allow_faults || ++tries > 1000) {
			msg("chan %u: cannot make a pair: %s", c->id, strerror(-ret));
			_exit(1);
		}
		ADD(fault_errors, 1);
		usleep(1000);
	}
	if (!c->cap)
		c->cap = (unsigned int)aiopipe_get_capacity(fds[0]);
	pthread_rwlock_wrlock(&c->fdlock);
	c->rfd = fds[0];
	c->wfd = fds[1];
	pthread_rwlock_unlock(&c->fdlock);

	pthread_mutex_lock(&c->lock);
	c->epoch++;
	c->gen = (struct gen){
		.key = mix64(O.seed ^ ((uint64_t)c->id << 32) ^ c->epoch),
		.chan = c->id, .epoch = c->epoch,
	};
	c->led_base = c->led_n = 0;
	c->next_seq = 0;
	c->accepted = 0;
	c->k_cur = 0;
	c->i_cur = 0;
	c->stash_off = c->stash_n = 0;
	c->read_total = c->verified = 0;
	c->bad = false;
	c->writer_done = c->reader_closed = false;
	c->open = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	ADD(epochs, 1);
}

/* Both sides are done with the epoch: settle the account. */
static void close_epoch(struct chan *c, struct ioside *s, bool abrupt)
{
	uint64_t left;

	verify_try(c);
	pthread_mutex_lock(&c->lock);
	left = c->stash_n - c->stash_off;
	if (c->bad) {
		ADD(corrupt, c->read_total - c->verified);
	} else if (left) {
		FAIL(duplicated, "chan %u epoch %u: %" PRIu64 " bytes read beyond the %" PRIu64 " accepted",
		     c->id, c->epoch, left, c->accepted);
		ADD(duplicated, left - 1);
	} else if (c->verified < c->accepted) {
		if (abrupt) {
			ADD(discarded, c->accepted - c->verified);
		} else {
			FAIL(lost, "chan %u epoch %u engine %u filter %u cap %u: %" PRIu64
			     " of %" PRIu64 " accepted bytes never read before EOF",
			     c->id, c->epoch, c->engine, c->filter, c->cap,
			     c->accepted - c->verified, c->accepted);
			ADD(lost, c->accepted - c->verified - 1);
		}
	}
	if (!s->eof && !abrupt)
		FAIL(unexpected, "chan %u epoch %u: no EOF after the writer closed", c->id, c->epoch);
	c->open = false;
	pthread_mutex_unlock(&c->lock);
	if (abrupt)
		ADD(abrupt_epochs, 1);
}

/* Until EOF after the writer's end: the ring's events, or reads. */
static void read_to_eof(struct rside *rs, struct ioside *s, int fd)
{
	while (!s->eof && !stopping) {
		if (rs->attached)
			ring_reap(rs, s, fd, 1, 10);
		else
			r_sync(s, fd, 0);
		s->c->rbeat++;
	}
	if (rs->attached && s->eof)
		ring_check_drained(rs, s, fd);
}

static void *reader_main(void *arg)
{
	struct chan *c = arg;
	struct rng rng = { mix64(O.seed ^ (c->id * 2 + 2) ^ 0x5eed) };
	struct rside rs = { 0 };
	struct ioside s;

	side_init(&s, c, &rng, false, O.max_read, R_DEPTH + 2);
	if (O.fail_self)
		set_make_it_fail();
	while (!past_deadline()) {
		bool abrupt = false;
		unsigned int abrupt_at = chance(&rng, 25) ?
					 (unsigned int)below(&rng, 300) : ~0u;
		unsigned int op = 0;
		int fd;

		open_epoch(c, &rng);
		fd = c->rfd;
		side_retry_setup(&s);
		s.eof = false;
		s.next_order = s.head_order = 0;
		if (O.ring && chance(&rng, 80))
			ring_attach_fd(&rs, &s, fd, &rng);
		while (!s.eof && !stopping) {
			c->rbeat++;
			ADD(ops, 1);
			if (op++ == abrupt_at) {
				abrupt = true;
				break;
			}
			if (rs.attached) {
				ring_step(&rs, &s, fd, &rng);
				continue;
			}
			if (O.ring && chance(&rng, 10)) {
				ring_attach_fd(&rs, &s, fd, &rng);
				continue;
			}
			switch (below(&rng, 20)) {
			case 0: case 1: case 2: case 3: case 4: case 5:
				if (!s.uring_inflight)
					r_sync(&s, fd, -1);
				break;
			case 6: case 7: case 8: case 9: case 10: case 11:
				r_aio(&s, fd);
				break;
			case 12:
				uring_one(&s, fd, "io_uring read");
				break;
			case 13:
				r_poll(&s, fd);
				break;
			case 14:
				if (s.inflight && !s.uring_inflight) {
					c->rwhat = "io_cancel read";
					cancel_one(&s);
				}
				break;
			default:
				c->rwhat = "reap reads";
				if (s.uring_inflight)
					reap_uring(&s, 10);
				else
					reap_aio(&s, s.inflight ? 1 : 0, 10);
				break;
			}
		}
		c->rwhat = "drain reads";
		side_drain(&s, abrupt);
		read_consume(&s);
		if (abrupt) {
			pthread_mutex_lock(&c->lock);
			c->reader_closed = true;
			pthread_mutex_unlock(&c->lock);
			check_chan_idle(c, fd, IDLE_READS, "after the reader's requests");
			if (rs.attached) {
				ring_abrupt_close(&rs, &s, fd, &rng);
			} else {
				pthread_rwlock_wrlock(&c->fdlock);
				close(fd);
				c->rfd = -1;
				pthread_rwlock_unlock(&c->fdlock);
			}
		}
		c->rwhat = "waiting for the writer to finish the epoch";
		pthread_mutex_lock(&c->lock);
		while (!c->writer_done)
			pthread_cond_wait(&c->cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
		if (!abrupt) {
			/* anything a late writer request left must still be read */
			read_to_eof(&rs, &s, fd);
			check_chan_idle(c, fd, IDLE_ALL, "at the end of the epoch");
			pthread_rwlock_wrlock(&c->fdlock);
			close(fd);
			c->rfd = -1;
			pthread_rwlock_unlock(&c->fdlock);
			rs.attached = false;
		}
		if (rs.have)
			ring_release(&rs, &rng);
		close_epoch(c, &s, abrupt);
	}
	if (rs.have)
		ring_free(&rs);
	free(rs.rbuf);
	pthread_mutex_lock(&c->lock);
	c->finished = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	c->rwhat = "finished";
	return NULL;
}

/* ---- meddler: engine, filter and capacity changes on live channels -------------- */

static volatile int meddler_stop;

static void *meddler_main(void *arg)
{
	struct rng rng = { mix64(O.seed ^ 0x3edd1e ^ (uintptr_t)proc_index) };

	(void)arg;
	while (!meddler_stop) {
		struct chan *c = &chans[below(&rng, nchans)];
		int fd, ret = 0;

		usleep(1000 + below(&rng, 20000));
		pthread_rwlock_rdlock(&c->fdlock);
		fd = chance(&rng, 50) ? c->rfd : c->wfd;
		if (fd < 0)
			fd = c->rfd >= 0 ? c->rfd : c->wfd;
		if (fd >= 0) {
			switch (below(&rng, 3)) {
			case 0:
				ret = aiopipe_set_engine(fd, 1 + (unsigned int)below(&rng, 2));
				break;
			case 1:
				ret = aiopipe_set_filter(fd, (unsigned int)below(&rng, 2));
				break;
			default:
				ret = aiopipe_set_capacity(fd, 1u << (12 + below(&rng, 9)));
				if (ret == -EBUSY)
					ret = 0;
				break;
			}
			ADD(switches, 1);
		}
		pthread_rwlock_unlock(&c->fdlock);
		if (ret < 0 && !(O.allow_faults && ret == -ENOMEM))
			FAIL(unexpected, "chan %u: meddler ioctl: %s", c->id, strerror(-ret));
	}
	return NULL;
}

/* ---- the worker process ------------------------------------------------------------ */

static void stall_report(void)
{
	unsigned int i;

	for (i = 0; i < nchans; i++) {
		struct chan *c = &chans[i];
		struct aiopipe_stats st;
		int fd = c->rfd >= 0 ? c->rfd : c->wfd;

		msg("  chan %u epoch %u engine %u filter %u cap %u: reader \"%s\", writer \"%s\"; read %" PRIu64
		    " verified %" PRIu64 " accepted %" PRIu64 " ledger %" PRIu64 "/%" PRIu64,
		    c->id, c->epoch, c->engine, c->filter, c->cap, c->rwhat, c->wwhat,
		    c->read_total, c->verified, c->accepted, c->k_cur, c->next_seq);
		if (fd >= 0 && aiopipe_stats(fd, &st) == 0)
			msg("    kernel: pending_reads %llu pending_writes %llu pinned %llu buffered %llu queued %llu retries %llu",
			    (unsigned long long)st.pending_reads,
			    (unsigned long long)st.pending_writes,
			    (unsigned long long)st.pinned_pages,
			    (unsigned long long)st.bytes_buffered,
			    (unsigned long long)st.queued,
			    (unsigned long long)st.retries);
	}
}

static void set_make_it_fail(void)
{
	int err = aiopipe_fail_self();

	if (err)
		msg("make-it-fail: %s", strerror(-err));
}

struct tramp {
	void *(*fn)(void *);
	void *arg;
};

static void *tramp_main(void *p)
{
	struct tramp t = *(struct tramp *)p;

	free(p);
	return t.fn(t.arg);
}

static void *tramp_new(void *(*fn)(void *), void *arg)
{
	struct tramp *t = malloc(sizeof(*t));

	if (!t)
		return NULL;
	t->fn = fn;
	t->arg = arg;
	return t;
}

static int spawn(pthread_t *th, void *(*fn)(void *), void *arg)
{
	void *t = tramp_new(fn, arg);
	int ret;

	if (!t)
		return ENOMEM;
	/* thread creation itself may fail under fault injection: retry */
	for (int i = 0; i < 1000; i++) {
		ret = pthread_create(th, NULL, tramp_main, t);
		if (!ret)
			return 0;
		usleep(1000);
	}
	free(t);
	return ret;
}

static int worker(unsigned int first, unsigned int count)
{
	pthread_t *rt, *wt, mt;
	int64_t last_change = now_ns();
	uint64_t last_sum = 0;
	unsigned int i;

	nchans = count;
	chans = calloc(count, sizeof(*chans));
	rt = calloc(count, sizeof(*rt));
	wt = calloc(count, sizeof(*wt));
	if (!chans || !rt || !wt)
		return 1;
	for (i = 0; i < count; i++) {
		struct chan *c = &chans[i];

		c->id = first + i;
		c->rfd = c->wfd = -1;
		c->rwhat = c->wwhat = "starting";
		pthread_mutex_init(&c->lock, NULL);
		pthread_cond_init(&c->cond, NULL);
		pthread_rwlock_init(&c->fdlock, NULL);
	}
	for (i = 0; i < count; i++) {
		if (spawn(&wt[i], writer_main, &chans[i]) ||
		    spawn(&rt[i], reader_main, &chans[i])) {
			msg("pthread_create failed");
			return 1;
		}
	}
	if (spawn(&mt, meddler_main, NULL)) {
		msg("pthread_create failed");
		return 1;
	}
	/* monitor: every thread must keep making progress */
	for (;;) {
		uint64_t sum = 0;
		bool all_done = true;

		usleep(200000);
		for (i = 0; i < count; i++) {
			sum += chans[i].rbeat + chans[i].wbeat;
			if (!chans[i].finished || strcmp(chans[i].wwhat, "finished"))
				all_done = false;
		}
		if (all_done)
			break;
		if (sum != last_sum) {
			last_sum = sum;
			last_change = now_ns();
		} else if ((now_ns() - last_change) / 1000000000 >= O.stall_s) {
			FAIL(stalls, "no progress for %u s: stalled", O.stall_s);
			stall_report();
			return 3;
		}
		if (O.verbose)
			msg("ops %" PRIu64 " verified %" PRIu64, R->ops, R->bytes_verified);
		if (stopping && (now_ns() - last_change) / 1000000000 >= 5) {
			stall_report();
			return 3;
		}
	}
	for (i = 0; i < count; i++) {
		pthread_join(rt[i], NULL);
		pthread_join(wt[i], NULL);
	}
	meddler_stop = 1;
	pthread_join(mt, NULL);
	return 0;
}

/* ---- the chaos process ----------------------------------------------------------------- */

static int make_pair(int fds[2], unsigned int cap, unsigned int engine, int flags)
{
	int ret, tries = 0;

	while ((ret = aiopipe_pair_ex(fds, flags | O_CLOEXEC, cap, engine))) {
		if (!O.allow_faults || ++tries > 1000)
			return ret;
		usleep(1000);
	}
	return 0;
}

/* Wait for @pid for at most @ms (then SIGKILL); returns its status or -1. */
static int wait_child(pid_t pid, int ms)
{
	int64_t t0 = now_ns();
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		if ((now_ns() - t0) / 1000000 > ms) {
			FAIL(stalls, "child %d did not exit within %d ms after SIGKILL", pid, ms);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(1000);
	}
}

/* Nonblocking read of everything in the pipe; the count read. */
/* An injected fault (--allow-faults): the call moved nothing. */
static bool fault_result(long res)
{
	return O.allow_faults && (res == -EFAULT || res == -ENOMEM);
}

/* What the pipe holds now (again after an injected fault). */
static ssize_t drain_now(int fd, unsigned char *buf, size_t cap)
{
	size_t got = 0;
	int faults = 0;

	while (got < cap) {
		ssize_t n = preadv2(fd, &(struct iovec){ buf + got, cap - got }, 1, -1, RWF_NOWAIT);

		if (n < 0 && fault_result(-errno) && ++faults < 1000)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return (ssize_t)got;
}

/*
 * write(2) of what fits, again after an injected fault: a failed copy
 * ends a write short (the bytes before it are in) or fails it, and the
 * rest is written again.  Without injection a short write is returned as
 * it is, for the caller to report.
 */
static ssize_t write_now(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t done = 0;
	int faults = 0;

	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && fault_result(-errno) && ++faults < 1000)
			continue;
		if (n <= 0)
			return done ? (ssize_t)done : n;
		done += n;
		if (!O.allow_faults)
			break;
	}
	return (ssize_t)done;
}

static void chan_idle_or_fail(int fd, const char *what)
{
	struct chan dummy = { .id = 9999 };

	check_chan_idle(&dummy, fd, IDLE_ALL, what);
}

/*
 * The child of kill_pending(): queue writes on a full pipe and reads on an
 * empty one, with engines switched between them, report, then wait to die.
 */
static void kill_child(struct rng *rng, int full_w, int empty_r, int note)
{
	static unsigned char buf[16][65536];
	struct iocb cbs[16], *cbp[16];
	struct io_uring ring;
	io_context_t ctx = 0;
	int i, n = 0;

	if (io_setup(32, &ctx))
		_exit(0);
	for (i = 0; i < 16; i++) {
		size_t len = 1 + below(rng, sizeof(buf[i]));

		aiopipe_set_engine(i & 1 ? full_w : empty_r, 1 + (unsigned int)below(rng, 2));
		if (chance(rng, 50))
			io_prep_pwrite(&cbs[n], full_w, buf[i], len, 0);
		else
			io_prep_pread(&cbs[n], empty_r, buf[i], len, 0);
		cbp[n] = &cbs[n];
		if (io_submit(ctx, 1, &cbp[n]) == 1)
			n++;
	}
	if (io_uring_queue_init(4, &ring, 0) == 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		if (sqe) {
			io_uring_prep_read(sqe, empty_r, buf[15], 100, -1);
			if (chance(rng, 50))
				sqe->flags |= IOSQE_ASYNC;
			io_uring_submit(&ring);
		}
	}
	if (chance(rng, 30) && n) {
		struct io_event ev;

		io_cancel(ctx, cbp[below(rng, n)], &ev);
	}
	if (write(note, "k", 1) != 1)
		_exit(0);
	for (;;)
		pause();
}

/*
 * kill -9 with requests pending, exactly checked: the full pipe still holds
 * exactly what it held and the empty one swallows nothing written after.
 */
static void kill_pending(struct rng *rng)
{
	int full[2], empty[2], note[2];
	unsigned int cap = 4096u << below(rng, 4);
	unsigned char *buf = malloc(cap + 4096);
	struct gen g = { .key = rnd(rng), .chan = 10000, .epoch = 1 };
	ssize_t n;
	pid_t pid;
	char c;

	if (!buf || make_pair(full, cap, 1 + (unsigned int)below(rng, 2), 0) ||
	    make_pair(empty, 0, 1 + (unsigned int)below(rng, 2), 0) ||
	    pipe2(note, O_CLOEXEC)) {
		free(buf);
		return;
	}
	gen_fill(&g, 0, 0, buf, cap);
	n = write_now(full[1], buf, cap);
	if (n != (ssize_t)cap) {
		FAIL(unexpected, "chaos: filling a %u-byte pipe wrote %zd", cap, n);
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		close(note[0]);
		kill_child(rng, full[1], empty[0], note[1]);
	}
	if (pid < 0)
		goto out;
	close(note[1]);
	note[1] = -1;
	if (poll(&(struct pollfd){ .fd = note[0], .events = POLLIN }, 1, 5000) != 1 ||
	    read(note[0], &c, 1) != 1)
		msg("chaos: child reported nothing");
	if (chance(rng, 50))
		usleep(below(rng, 3000));
	kill(pid, SIGKILL);
	wait_child(pid, 10000);
	ADD(kills, 1);
	chan_idle_or_fail(full[0], "after kill -9 (full pipe)");
	chan_idle_or_fail(empty[0], "after kill -9 (empty pipe)");
	memset(buf, 0, cap);
	n = drain_now(full[0], buf, cap + 4096);
	if (n != (ssize_t)cap || gen_check(&g, 0, 0, buf, cap) >= 0)
		FAIL(corrupt, "chaos: after kill -9 the full %u-byte pipe held %zd bytes%s",
		     cap, n, n == (ssize_t)cap ? " with the wrong content" : "");
	else
		ADD(bytes_verified, cap);
	if (write_now(empty[1], "after", 5) != 5 || drain_now(empty[0], buf, 64) != 5 ||
	    memcmp(buf, "after", 5))
		FAIL(lost, "chaos: after kill -9 a killed child's read swallowed bytes");
out:
	close(full[0]);
	close(full[1]);
	close(empty[0]);
	close(empty[1]);
	close(note[0]);
	if (note[1] >= 0)
		close(note[1]);
	free(buf);
}

/* A child streams on its own pair with random requests and is killed. */
static void kill_streaming(struct rng *rng)
{
	pid_t pid = fork();

	if (pid == 0) {
		static unsigned char buf[8][32768];
		struct iocb cbs[8], *cbp;
		struct io_event ev[8];
		io_context_t ctx = 0;
		int fds[2];

		if (make_pair(fds, 4096u << below(rng, 3), 1 + (unsigned int)below(rng, 2), 0) ||
		    io_setup(16, &ctx))
			_exit(0);
		for (;;) {
			int i = (int)below(rng, 8);
			struct timespec ts = { 0, 0 };

			if (chance(rng, 50))
				io_prep_pwrite(&cbs[i], fds[1], buf[i], 1 + below(rng, sizeof(buf[i])), 0);
			else
				io_prep_pread(&cbs[i], fds[0], buf[i], 1 + below(rng, sizeof(buf[i])), 0);
			cbp = &cbs[i];
			io_submit(ctx, 1, &cbp);
			if (chance(rng, 20))
				io_cancel(ctx, &cbs[below(rng, 8)], &ev[0]);
			if (chance(rng, 10))
				aiopipe_set_engine(fds[0], 1 + (unsigned int)below(rng, 2));
			io_getevents(ctx, 0, 8, ev, &ts);
		}
	}
	if (pid < 0)
		return;
	usleep(below(rng, 20000));
	kill(pid, SIGKILL);
	wait_child(pid, 10000);
	ADD(kills, 1);
}

/*
 * io_destroy with requests pending returns promptly and leaves the
 * channels idle and usable (libaio harness: io_destroy waits for in-flight
 * I/O, and does not hang on a pipe).
 */
static void destroy_pending(struct rng *rng)
{
	static unsigned char buf[8][16384];
	int full[2], empty[2], i;
	io_context_t ctx = 0;
	int64_t t0;
	unsigned char fill[4096];

	if (make_pair(full, 4096, 1 + (unsigned int)below(rng, 2), 0))
		return;
	if (make_pair(empty, 0, 1 + (unsigned int)below(rng, 2), 0)) {
		close(full[0]);
		close(full[1]);
		return;
	}
	memset(fill, 'f', sizeof(fill));
	if (write(full[1], fill, sizeof(fill)) != sizeof(fill) || io_setup(16, &ctx))
		goto out;
	for (i = 0; i < 8; i++) {
		struct iocb cb, *cbp = &cb;

		if (i & 1)
			io_prep_pwrite(&cb, full[1], buf[i], 1 + below(rng, sizeof(buf[i])), 0);
		else
			io_prep_pread(&cb, empty[0], buf[i], 1 + below(rng, sizeof(buf[i])), 0);
		io_submit(ctx, 1, &cbp);
	}
	t0 = now_ns();
	io_destroy(ctx);
	ADD(destroys, 1);
	if ((now_ns() - t0) / 1000000 > 5000)
		FAIL(stalls, "chaos: io_destroy with requests pending took %lld ms",
		     (long long)((now_ns() - t0) / 1000000));
	chan_idle_or_fail(full[0], "after io_destroy (full pipe)");
	chan_idle_or_fail(empty[0], "after io_destroy (empty pipe)");
	if (drain_now(full[0], buf[0], sizeof(buf[0])) != sizeof(fill) ||
	    memcmp(buf[0], fill, sizeof(fill)))
		FAIL(corrupt, "chaos: io_destroy: the full pipe's content changed");
out:
	close(full[0]);
	close(full[1]);
	close(empty[0]);
	close(empty[1]);
}


/*
 * The reads that got a byte got 0, 1, 2, ... in submission order; a read
 * that failed on an injected fault took nothing, so its byte went to the
 * next one and the last bytes are still in the pipe.
 */
static void full_ring_verify(int rfd, unsigned char *buf, const long *res,
			     int n)
{
	unsigned char want = 0;
	int i, fl = fcntl(rfd, F_GETFL);
	ssize_t r;

	for (i = 0; i < n; i++) {
		if (res[i] != 1)
			continue;
		if (buf[i] != want)
			FAIL(corrupt, "chaos: full ring: read %d got byte %u, want %u", i, buf[i], want);
		want = (unsigned char)(buf[i] + 1);
	}
	fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
	while (want < n) {
		unsigned char b;

		r = read(rfd, &b, 1);
		if (r < 0 && fault_result(-errno))
			continue;
		if (r != 1) {
			FAIL(lost, "chaos: full ring: byte %u of %d never arrived", want, n);
			break;
		}
		if (b != want)
			FAIL(corrupt, "chaos: full ring: left in the pipe: byte %u, want %u", b, want);
		want = (unsigned char)(b + 1);
	}
	fcntl(rfd, F_SETFL, fl);
}

/*
 * A completion ring that fills up must not hang anything: queue reads
 * until io_submit says EAGAIN, complete them all without reaping, reap.
 */
static void full_ring(struct rng *rng)
{
	struct iocb cbs[64], *cbp;
	struct io_event ev[64];
	unsigned char buf[64];
	long res[64] = { 0 };
	io_context_t ctx = 0;
	int fds[2], n = 0, got = 0, i;
	int64_t t0;

	if (make_pair(fds, 0, 1 + (unsigned int)below(rng, 2), 0))
		return;
	if (io_setup(1, &ctx))
		goto out;
	while (n < 64) {
		io_prep_pread(&cbs[n], fds[0], &buf[n], 1, 0);
		cbs[n].data = (void *)(uintptr_t)n;
		cbp = &cbs[n];
		if (io_submit(ctx, 1, &cbp) != 1)
			break;
		n++;
	}
	for (i = 0; i < n; i++) {
		unsigned char b = (unsigned char)i;

		if (write_now(fds[1], &b, 1) != 1)
			FAIL(unexpected, "chaos: full ring: write: %s", strerror(errno));
	}
	t0 = now_ns();
	while (got < n && (now_ns() - t0) / 1000000 < 10000) {
		struct timespec ts = { 0, 100000000 };
		int r = io_getevents(ctx, 1, 64, ev, &ts);

		for (i = 0; i < r; i++) {
			unsigned int k = (unsigned int)(uintptr_t)ev[i].data;

			res[k] = (long)ev[i].res;
			if (res[k] != 1 && !fault_result(res[k]))
				FAIL(unexpected, "chaos: full ring: read %u res %ld", k, res[k]);
			got++;
		}
	}
	if (got != n)
		FAIL(bad_completions, "chaos: full ring: %d of %d reads completed", got, n);
	full_ring_verify(fds[0], buf, res, n);
	io_destroy(ctx);
	chan_idle_or_fail(fds[0], "after the full-ring case");
out:
	close(fds[0]);
	close(fds[1]);
}

static int chaos(void)
{
	struct rng rng = { mix64(O.seed ^ 0xc4a05) };

	signal(SIGCHLD, SIG_DFL);
	if (O.fail_self)
		set_make_it_fail();
	while (!past_deadline()) {
		R->ops++;
		switch (below(&rng, 4)) {
		case 0:
			kill_pending(&rng);
			break;
		case 1:
			kill_streaming(&rng);
			break;
		case 2:
			destroy_pending(&rng);
			break;
		default:
			full_ring(&rng);
			break;
		}
		usleep(1000 + below(&rng, 10000));
	}
	return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: aiopipe-soak [--seconds D] [--channels C] [--procs P] [--seed S]\n"
"                    [--max-write B] [--max-read B] [--stall S] [--no-chaos]\n"
"                    [--allow-faults] [--fail-self] [--ring] [--header]\n"
"                    [--verbose] [--inject KIND]\n"
"Stress aiopipe for D seconds over C channels in P worker processes plus a\n"
"chaos process (fork + kill -9 with requests pending, io_destroy, full\n"
"completion rings).  Every byte is checked.\n"
"  --seconds D      run time in seconds (default 10)\n"
"  --channels C     channels, 1..%u (default 8)\n"
"  --procs P        worker processes, 1..%u, at most C (default 2)\n"
"  --seed S         the run's seed (default: from the clock; printed)\n"
"  --max-write B    largest write in bytes, %u..8 MiB (default 262144)\n"
"  --max-read B     largest read in bytes, 1..8 MiB (default 131072)\n"
"  --stall S        a run making no progress for S s fails (default 90)\n"
"  --no-chaos       no chaos process\n"
"  --allow-faults   ENOMEM/EFAULT results are acceptable (fault injection on)\n"
"  --fail-self      every thread sets /proc/thread-self/make-it-fail\n"
"  --ring           readers reap through a ring of their own (ring mode),\n"
"                   detaching and reading now and then\n"
"  --header         print the CSV header before the row\n"
"  --verbose        progress lines on stderr\n"
"  --inject KIND    self-test of the checker: lose, duplicate or corrupt one\n"
"                   read's bytes in user space (lost|dup|corrupt): must FAIL\n"
"  -h, --help       this text\n"
"  --version        print the version and exit\n"
"Prints a CSV row (--header: a header first); exit status 0 only if nothing\n"
"was lost, duplicated or corrupted, every request completed exactly once\n"
"and the counters came back to zero; 1 failure, 2 usage, 4 watchdog.\n",
		MAX_CHANS, MAX_PROCS, HDR);
}

static const char *const csv_cols[] = {
	"seed", "seconds", "procs", "channels", "ops", "sync_ops", "aio_ops", "uring_ops",
	"poll_ops", "bytes_written", "bytes_read", "bytes_verified", "lost",
	"duplicated", "corrupt", "discarded", "epochs", "abrupt_epochs", "cancels",
	"switches", "kills", "destroys", "fault_errors", "unexpected",
	"bad_completions", "counter_leaks", "stalls", "ring_data", "ring_read",
	"ring_eof", "ring_attaches", "result",
};

static int global_idle(struct aiopipe_stats *st)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (aiopipe_stats(-1, st))
			return -1;
		if (!st->pending_reads && !st->pending_writes && !st->pinned_pages &&
		    !st->channels)
			return 1;
		usleep(100000);	/* deferred fput of killed children */
	}
	return 0;
}

static void on_alarm(int sig)
{
	static const char m[] = "aiopipe-soak: watchdog: the run did not end in time\n";

	(void)sig;
	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(4);
	_exit(4);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 'd' },
		{ "channels", required_argument, NULL, 'c' },
		{ "procs", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 's' },
		{ "max-write", required_argument, NULL, 'W' },
		{ "max-read", required_argument, NULL, 'R' },
		{ "stall", required_argument, NULL, 'S' },
		{ "no-chaos", no_argument, NULL, 'n' },
		{ "allow-faults", no_argument, NULL, 'f' },
		{ "fail-self", no_argument, NULL, 'F' },
		{ "ring", no_argument, NULL, 'r' },
		{ "header", no_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "inject", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct results sum = { 0 };
	struct aiopipe_stats st;
	pid_t pids[MAX_PROCS + 1];
	unsigned int nproc, i, per, first = 0;
	bool seeded = false, ok;
	int opt, status, rc = 0, idle;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': O.seconds = strtod(optarg, NULL); break;
		case 'c': O.channels = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'p': O.procs = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 's': O.seed = strtoull(optarg, NULL, 0); seeded = true; break;
		case 'W': O.max_write = strtoul(optarg, NULL, 0); break;
		case 'R': O.max_read = strtoul(optarg, NULL, 0); break;
		case 'S': O.stall_s = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'n': O.chaos = false; break;
		case 'f': O.allow_faults = true; break;
		case 'F': O.fail_self = true; break;
		case 'r': O.ring = true; break;
		case 'H': O.header = true; break;
		case 'v': O.verbose = true; break;
		case 'I':
			O.inject = !strcmp(optarg, "lost") ? 1 : !strcmp(optarg, "dup") ? 2 :
				   !strcmp(optarg, "corrupt") ? 3 : -1;
			if (O.inject < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("aiopipe-soak %s\n", AIOPIPE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || O.seconds <= 0 || !O.channels || O.channels > MAX_CHANS ||
	    !O.procs || O.procs > MAX_PROCS || O.max_write < HDR ||
	    O.max_write > (8u << 20) || !O.max_read || O.max_read > (8u << 20)) {
		usage(stderr);
		return 2;
	}
	if (O.procs > O.channels)
		O.procs = O.channels;
	if (!seeded)
		O.seed = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
	fprintf(stderr, "aiopipe-soak: seed %" PRIu64 ", %.1f s, %u channels, %u processes%s%s%s\n",
		O.seed, O.seconds, O.channels, O.procs, O.chaos ? " + chaos" : "",
		O.allow_faults ? ", faults allowed" : "", O.ring ? ", ring mode" : "");
	if (aiopipe_stats(-1, &st)) {
		fprintf(stderr, "aiopipe-soak: %s: %s (is aiopipe.ko loaded?)\n",
			AIOPIPE_DEV_FACTORY, strerror(errno));
		return 1;
	}
	shared = mmap(NULL, sizeof(*shared) * (MAX_PROCS + 1), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	t_start = now_ns();
	t_end = t_start + (int64_t)(O.seconds * 1e9);
	nproc = O.procs + (O.chaos ? 1 : 0);
	per = O.channels / O.procs;
	for (i = 0; i < nproc; i++) {
		unsigned int count = i == O.procs - 1 ? O.channels - first : per;

		pids[i] = fork();
		if (pids[i] < 0) {
			perror("aiopipe-soak: fork");
			return 1;
		}
		if (pids[i] == 0) {
			proc_index = (int)i;
			R = &shared[i];
			rc = i < O.procs ? worker(first, count) : chaos();
			R->done = 1;
			_exit(rc);
		}
		if (i < O.procs)
			first += count;
	}
	signal(SIGALRM, on_alarm);
	alarm((unsigned int)O.seconds + 2 * O.stall_s + 120);
	for (i = 0; i < nproc; i++) {
		if (waitpid(pids[i], &status, 0) != pids[i])
			rc = 1;
		else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "aiopipe-soak: process %u %s %d\n", i,
				WIFEXITED(status) ? "exited with" : "killed by signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			rc = 1;
		}
	}
	alarm(0);
	for (i = 0; i < nproc; i++) {
		uint64_t *s = (uint64_t *)&shared[i], *d = (uint64_t *)&sum;

		for (size_t k = 0; k < sizeof(sum) / sizeof(uint64_t); k++)
			d[k] += s[k];
	}
	idle = global_idle(&st);
	if (idle != 1) {
		fprintf(stderr, "aiopipe-soak: global counters not back to zero: pending_reads %llu pending_writes %llu pinned_pages %llu channels %llu\n",
			(unsigned long long)st.pending_reads,
			(unsigned long long)st.pending_writes,
			(unsigned long long)st.pinned_pages,
			(unsigned long long)st.channels);
		sum.counter_leaks++;
	}
	ok = !rc && !sum.lost && !sum.duplicated && !sum.corrupt && !sum.unexpected &&
	     !sum.bad_completions && !sum.counter_leaks && !sum.stalls;
	if (O.header) {
		for (i = 0; i < sizeof(csv_cols) / sizeof(csv_cols[0]); i++)
			printf("%s%s", i ? "," : "", csv_cols[i]);
		printf("\n");
	}
	printf("%" PRIu64 ",%.1f,%u,%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
	       ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
	       ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
	       ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
	       ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%s\n",
	       O.seed, (now_ns() - t_start) / 1e9, O.procs, O.channels, sum.ops,
	       sum.sync_ops, sum.aio_ops, sum.uring_ops, sum.poll_ops,
	       sum.bytes_written, sum.bytes_read, sum.bytes_verified, sum.lost,
	       sum.duplicated, sum.corrupt, sum.discarded, sum.epochs,
	       sum.abrupt_epochs, sum.cancels, sum.switches, sum.kills,
	       sum.destroys, sum.fault_errors, sum.unexpected, sum.bad_completions,
	       sum.counter_leaks, sum.stalls, sum.ring_data, sum.ring_read, sum.ring_eof,
	       sum.ring_attaches, ok ? "pass" : "FAIL");
	fflush(stdout);
	if (!ok)
		fprintf(stderr, "aiopipe-soak: FAILED (seed %" PRIu64 ")\n", O.seed);
	return ok ? 0 : 1;
}
