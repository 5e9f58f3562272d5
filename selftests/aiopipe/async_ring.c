// SPDX-License-Identifier: GPL-2.0
/*
 * Ring mode (docs/ring.md): the bytes of read ends attached to a ring are
 * delivered into buffers of a mapping the reader shares with the kernel,
 * one event per buffer; bytes that cannot go into a buffer stay in the
 * pipe and an event says how many to read(2).  These tests are the
 * contract of ring mode as user space sees it:
 *
 *  - create: the parameters, the mapping's layout and first state, mmap;
 *  - attach and detach: what may be attached, to how many rings, and what
 *    an attach announces (bytes already in the pipe, no writers);
 *  - delivery: DATA events, buffers taken in hand-back order, READ events
 *    when there is no buffer or the pipe already holds bytes, EOF, many
 *    pipes on one ring, byte order, PIPE_BUF atomicity;
 *  - a full event ring: READ and EOF events are owed and posted on poll,
 *    RING_WAIT or the next post once there is room; nothing is lost;
 *  - a reader that writes anything into the mapping;
 *  - RING_WAIT, poll, epoll, IOCB_CMD_POLL and io_uring POLL_ADD;
 *  - fork, exit and close: what outlives what, nothing leaks;
 *  - RLIMIT_MEMLOCK of an unprivileged user;
 *  - races: a writer parked at ring_filling (pause_points=1) while the ring
 *    is closed, another pipe posts, or the ring is made to look full; attach,
 *    detach and close of the read end racing writers.
 *
 * The reaper used throughout follows the reader's rules of the uapi: a
 * pipe's events are in its byte order; a DATA buffer's bytes are copied
 * out and the buffer is handed back; READ means read(2) exactly len bytes
 * now.  What it collects per pipe must be exactly the bytes written.
 *
 * The whole binary skips when the module has no ring mode
 * (AIOPIPE_IOC_RING_CREATE is ENOTTY).
 */
#include <grp.h>
#include <stdarg.h>
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "pipe_common.h"
#include "pause_util.h"

#define PAGE		4096
#define GUARD_MS	2000	/* what must happen while a party is parked */
#define UD		0x5eed0000cafe0001ULL
#define NOBODY		65534

/* Stream @i's pattern starts here (ap_pat() of distinct streams differ). */
#define STREAM_BASE(i)	((uint64_t)(i) << 28)

/*
 * Without ring mode there is nothing to test: skip the binary, as
 * backend_require_module() does without the module (which it reports
 * itself: here a missing /dev/aiopipe is left to it).
 */
static void __attribute__((constructor)) ring_require_ring_mode(void)
{
	struct aiopipe_ring_params p = { .entries = 1, .nr_bufs = 1,
					 .buf_size = AIOPIPE_RING_BUF_MIN };
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);

	if (dev < 0)
		return;
	if (ioctl(dev, AIOPIPE_IOC_RING_CREATE, &p) >= 0) {
		close(p.fd);
	} else if (errno == ENOTTY) {
		ksft_print_header();
		ksft_exit_skip("the aiopipe module has no ring mode (AIOPIPE_IOC_RING_CREATE: ENOTTY)\n");
	}
	close(dev);
}

/* AIOPIPE_IOC_RING_CREATE as it is: 0 with p->fd, or -errno. */
static int ring_create(struct aiopipe_ring_params *p)
{
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC), ret;

	if (dev < 0)
		return -errno;
	ret = ioctl(dev, AIOPIPE_IOC_RING_CREATE, p);
	ret = ret < 0 ? -errno : 0;
	close(dev);
	return ret;
}

/* An ioctl's result: 0 (or its value) or -errno. */
static int ioctl_err(int fd, unsigned long cmd, void *arg)
{
	int ret = ioctl(fd, cmd, arg);

	return ret < 0 ? -errno : ret;
}

static int ring_wait_raw(int fd, __u32 min, __u32 flags, __s64 timeout_ns)
{
	struct aiopipe_ring_wait w = {
		.min_events = min, .flags = flags, .timeout_ns = timeout_ns,
	};

	return ioctl_err(fd, AIOPIPE_IOC_RING_WAIT, &w);
}

static int attach_raw(int ringfd, int fd, __u32 flags, __u64 r0, __u64 r1)
{
	struct aiopipe_ring_attach a = {
		.fd = fd, .flags = flags, .user_data = UD,
		.reserved = { r0, r1 },
	};

	return ioctl_err(ringfd, AIOPIPE_IOC_RING_ATTACH, &a);
}

/*
 * An aiopipe pair on @engine whose read end is O_NONBLOCK: the reaper
 * reads announced bytes, which are there, and never waits in read(2).
 */
static int ring_pair(int fds[2], unsigned int engine)
{
	int ret = ap_pair(fds, O_CLOEXEC, 0, engine, AIOPIPE_FILTER_ON);

	if (ret)
		return ret;
	return pt_set_nonblock(fds[0], true);
}

/* One write(2) of the pattern bytes [off, off + n): its result or -errno. */
static ssize_t write_pat(int fd, uint64_t off, size_t n)
{
	unsigned char *b = malloc(n ? n : 1);
	ssize_t ret;

	if (!b)
		return -ENOMEM;
	ap_fill(b, n, off);
	ret = write(fd, b, n);
	if (ret < 0)
		ret = -errno;
	free(b);
	return ret;
}

/*
 * Read exactly @len bytes from the nonblocking @fd: the bytes of a READ
 * event are there, but a short read is looped on (with @ms as the guard).
 * Returns the bytes read, or -errno if none could be.
 */
static ssize_t read_exactly(int fd, void *buf, size_t len, int ms)
{
	int64_t t0 = ap_now_ns();
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n > 0) {
			got += n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return got ? (ssize_t)got : -errno;
		if (ap_ms_since(t0) > ms)
			break;
		ap_poll1(fd, POLLIN, 10);
	}
	return got;
}

/*
 * What a nonblocking @fd holds now, at most @max bytes, appended to @out
 * (may be NULL).
 */
static size_t drain_max(int fd, unsigned char **out, size_t *len, size_t *cap,
			size_t max);
#define drain_now(fd, out, len, cap)	drain_max(fd, out, len, cap, SIZE_MAX)

/* ---- the reaper ------------------------------------------------------ */

/* What one pipe's events delivered, in its byte order. */
struct stream {
	int rfd;		/* the read end (O_NONBLOCK); -1 once closed */
	__u64 ud;
	unsigned char *got;	/* DATA bytes and READ bytes, in event order */
	size_t len, cap;
	unsigned int data, reads, eofs;
	size_t data_bytes, read_bytes;
	bool after_eof;		/* an event came after EOF */
	bool gap;		/* a READ whose bytes could not be read: the
				 * bytes after it are counted, not kept */
	size_t lost;		/* bytes of such READ events */
};

#define REAP_LOG	256

/* The reader of one ring: a list of streams, the first error seen. */
struct reaper {
	struct aiopipe_ring *r;
	struct stream *s;
	int ns;
	bool keep;		/* keep DATA buffers (hand them back later) */
	bool raw;		/* advance the head only, never ask for owed
				 * events (a reader that makes no system call) */
	__u32 held[AIOPIPE_RING_MAX > 1024 ? 1024 : AIOPIPE_RING_MAX];
	unsigned int nheld;
	unsigned int events;
	struct aiopipe_ring_event log[REAP_LOG];	/* the first events */
	unsigned int nlog;
	char err[256];		/* the first protocol error, "" if none */
};

static void stream_init(struct stream *s, int rfd, __u64 ud)
{
	memset(s, 0, sizeof(*s));
	s->rfd = rfd;
	s->ud = ud;
}

static void stream_free(struct stream *s)
{
	free(s->got);
	s->got = NULL;
	s->len = s->cap = 0;
}

static void grow_append(unsigned char **buf, size_t *len, size_t *cap,
			const void *p, size_t n)
{
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 65536;

		while (c < *len + n)
			c *= 2;
		*buf = realloc(*buf, c);
		if (!*buf)
			abort();
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
}

static void stream_append(struct stream *s, const void *p, size_t n)
{
	if (s->gap)
		return;
	grow_append(&s->got, &s->len, &s->cap, p, n);
}

static size_t drain_max(int fd, unsigned char **out, size_t *len, size_t *cap,
			size_t max)
{
	unsigned char buf[16384];
	size_t total = 0;
	ssize_t n;

	while (total < max &&
	       (n = read(fd, buf, max - total < sizeof(buf) ?
				  max - total : sizeof(buf))) > 0) {
		if (out)
			grow_append(out, len, cap, buf, (size_t)n);
		total += (size_t)n;
	}
	return total;
}

static void reaper_init(struct reaper *rp, struct aiopipe_ring *r,
			struct stream *s, int ns)
{
	memset(rp, 0, sizeof(*rp));
	rp->r = r;
	rp->s = s;
	rp->ns = ns;
}

static void __attribute__((format(printf, 2, 3)))
reap_error(struct reaper *rp, const char *fmt, ...)
{
	va_list ap;

	if (rp->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(rp->err, sizeof(rp->err), fmt, ap);
	va_end(ap);
}

static struct stream *stream_of(struct reaper *rp, __u64 ud)
{
	for (int i = 0; i < rp->ns; i++)
		if (rp->s[i].ud == ud)
			return &rp->s[i];
	return NULL;
}

/* Hand back the buffers kept so far, oldest first. */
static void give_back_held(struct reaper *rp)
{
	for (unsigned int i = 0; i < rp->nheld; i++)
		aiopipe_ring_give_back(rp->r, rp->held[i]);
	rp->nheld = 0;
}

/* One event, in its pipe's byte order (rules 1 to 3 of docs/ring.md). */
static void reap_event(struct reaper *rp, const struct aiopipe_ring_event *slot)
{
	struct aiopipe_ring_event ev = *slot;	/* the slot is read once */
	struct stream *s = stream_of(rp, ev.user_data);
	unsigned int nr = rp->events++;
	unsigned char *tmp;
	ssize_t n;

	if (rp->nlog < REAP_LOG)
		rp->log[rp->nlog++] = ev;
	if (!s) {
		reap_error(rp, "event %u: unknown user_data %#llx (type %u len %u buf %u)",
			   nr, (unsigned long long)ev.user_data, ev.type,
			   ev.len, ev.buf);
		return;
	}
	if (s->eofs)
		s->after_eof = true;
	switch (ev.type) {
	case AIOPIPE_EV_DATA:
		if (ev.buf >= rp->r->nr_bufs || !ev.len ||
		    ev.len > rp->r->buf_size) {
			reap_error(rp, "event %u: DATA with buf %u len %u (%u buffers of %u)",
				   nr, ev.buf, ev.len, rp->r->nr_bufs,
				   rp->r->buf_size);
			return;
		}
		stream_append(s, aiopipe_ring_buf(rp->r, ev.buf), ev.len);
		s->data++;
		s->data_bytes += ev.len;
		if (rp->keep && rp->nheld < sizeof(rp->held) / sizeof(rp->held[0]))
			rp->held[rp->nheld++] = ev.buf;
		else
			aiopipe_ring_give_back(rp->r, ev.buf);
		break;
	case AIOPIPE_EV_READ:
		if (!ev.len || ev.buf) {
			reap_error(rp, "event %u: READ with len %u buf %u",
				   nr, ev.len, ev.buf);
			return;
		}
		s->reads++;
		s->read_bytes += ev.len;
		if (s->rfd < 0) {	/* its pipe is gone with the read end */
			s->gap = true;
			s->lost += ev.len;
			break;
		}
		tmp = malloc(ev.len);
		if (!tmp)
			abort();
		n = read_exactly(s->rfd, tmp, ev.len, AP_LONG_MS);
		if (n != (ssize_t)ev.len)
			reap_error(rp, "event %u: READ of %u bytes, read(2) got %zd",
				   nr, ev.len, n);
		if (n > 0)
			stream_append(s, tmp, (size_t)n);
		free(tmp);
		break;
	case AIOPIPE_EV_EOF:
		if (ev.len || ev.buf)
			reap_error(rp, "event %u: EOF with len %u buf %u",
				   nr, ev.len, ev.buf);
		s->eofs++;
		break;
	default:
		reap_error(rp, "event %u: type %u", nr, ev.type);
	}
}

/* Reap at most @max of the events posted now; how many were. */
static unsigned int reap_max(struct reaper *rp, unsigned int max)
{
	struct aiopipe_ring_event *ev;
	unsigned int n = 0;

	while (n < max && (ev = aiopipe_ring_peek(rp->r))) {
		reap_event(rp, ev);
		if (rp->raw)
			__atomic_store_n(&rp->r->hdr->ev_head,
					 rp->r->hdr->ev_head + 1,
					 __ATOMIC_RELEASE);
		else
			aiopipe_ring_advance(rp->r, 1);
		n++;
	}
	return n;
}

static unsigned int reap(struct reaper *rp)
{
	return reap_max(rp, UINT_MAX);
}

/* The @n events from index @from on, whatever hdr->ev_tail says. */
static void reap_range(struct reaper *rp, __u32 from, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		reap_event(rp, &rp->r->events[(from + i) & rp->r->ev_mask]);
	__atomic_store_n(&rp->r->hdr->ev_head, from + n, __ATOMIC_RELEASE);
}

static size_t reaped_bytes(struct reaper *rp)
{
	size_t n = 0;

	for (int i = 0; i < rp->ns; i++)
		n += rp->s[i].data_bytes + rp->s[i].read_bytes;
	return n;
}

static bool all_eof(struct reaper *rp)
{
	for (int i = 0; i < rp->ns; i++)
		if (!rp->s[i].eofs)
			return false;
	return true;
}

/*
 * Reap until @bytes (all streams together) came and, with @eof, every
 * stream had its EOF; sleeps in RING_WAIT between (which also posts owed
 * events).  True if that happened within @ms.
 */
static bool reap_until(struct reaper *rp, size_t bytes, bool eof, int ms)
{
	int64_t t0 = ap_now_ns();

	for (;;) {
		long left;

		reap(rp);
		if (reaped_bytes(rp) >= bytes && (!eof || all_eof(rp)))
			return true;
		left = ms - ap_ms_since(t0);
		if (left <= 0)
			return false;
		aiopipe_ring_wait(rp->r, 1, left * 1000000LL);
	}
}

/* No event for AP_QUIET_MS: RING_WAIT times out. */
static bool ring_quiet(struct aiopipe_ring *r)
{
	return aiopipe_ring_wait(r, 1, AP_QUIET_MS * 1000000LL) == -ETIME;
}

/* ---- records: PIPE_BUF atomicity with several writers ----------------- */

#define REC_MAGIC	0x474e4952	/* "RING" */
#define REC_HDR		16

struct rec_hdr {
	uint32_t magic;
	uint32_t writer;
	uint32_t seq;
	uint32_t len;		/* the whole record, header included */
};

static unsigned char rec_byte(uint32_t w, uint32_t seq, size_t i)
{
	return (unsigned char)(w * 67 + seq * 13 + i * 7 + 1);
}

static void rec_make(unsigned char *b, uint32_t w, uint32_t seq, size_t len)
{
	struct rec_hdr h = { REC_MAGIC, w, seq, (uint32_t)len };

	memcpy(b, &h, REC_HDR);
	for (size_t i = REC_HDR; i < len; i++)
		b[i] = rec_byte(w, seq, i);
}

/*
 * @len bytes of records of writers 0 .. @nw - 1: each whole, each writer's
 * in sequence from next[w].  Returns -1, or the offset of the first bad
 * byte; a partial record at the end is bad unless @partial_ok.
 */
static long rec_check(const unsigned char *b, size_t len, uint32_t *next,
		      int nw, bool partial_ok)
{
	size_t off = 0;

	while (off < len) {
		struct rec_hdr h;

		if (len - off < REC_HDR)
			return partial_ok ? -1 : (long)off;
		memcpy(&h, b + off, REC_HDR);
		if (h.magic != REC_MAGIC || h.writer >= (uint32_t)nw ||
		    h.len < REC_HDR || h.len > PIPE_BUF ||
		    h.seq != next[h.writer])
			return (long)off;
		for (size_t i = REC_HDR; i < h.len && off + i < len; i++)
			if (b[off + i] != rec_byte(h.writer, h.seq, i))
				return (long)(off + i);
		if (off + h.len > len)
			return partial_ok ? -1 : (long)off;
		next[h.writer]++;
		off += h.len;
	}
	return -1;
}

/*
 * The same on a stream collected piecewise: check the whole records at the
 * start of @s->got and drop them (a partial one stays for later), so a
 * long run holds little.  Adds the bytes dropped to *done; false at a bad
 * record, whose stream offset is then *done + the returned *bad.
 */
static bool rec_consume(struct stream *s, uint32_t *next, int nw,
			size_t *done, long *bad)
{
	size_t off = 0;

	*bad = -1;
	while (s->len - off >= REC_HDR) {
		struct rec_hdr h;

		memcpy(&h, s->got + off, REC_HDR);
		if (h.len >= REC_HDR && h.len <= PIPE_BUF && off + h.len > s->len)
			break;		/* whole later (checked then) */
		*bad = rec_check(s->got + off, h.len >= REC_HDR ? h.len : REC_HDR,
				 next, nw, false);
		if (*bad >= 0) {
			*bad += (long)off;
			break;
		}
		off += h.len;
	}
	memmove(s->got, s->got + off, s->len - off);
	s->len -= off;
	*done += off;
	return *bad < 0;
}

/* A thread writing records of 16 .. PIPE_BUF bytes, each in one write(2). */
struct rec_writer {
	int fd;
	uint32_t id;
	unsigned int nrec;	/* records to write; 0: until an error */
	uint64_t seed;
	size_t bytes;		/* written */
	unsigned int done_recs;
	int err;		/* errno of the write that failed */
	bool stop;		/* set by the test: no more records */
	bool done;
	pthread_t t;
};

static void *rec_writer_main(void *arg)
{
	struct rec_writer *w = arg;
	unsigned char buf[PIPE_BUF];
	uint64_t rng = w->seed;

	for (uint32_t seq = 0; (!w->nrec || seq < w->nrec) &&
	     !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); seq++) {
		size_t len = pt_rand_range(&rng, REC_HDR, PIPE_BUF);
		ssize_t n;

		rec_make(buf, w->id, seq, len);
		do {
			n = write(w->fd, buf, len);
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			w->err = errno;
			break;
		}
		if (n != (ssize_t)len) {	/* never: a PIPE_BUF write is whole */
			w->err = EPROTO;
			w->bytes += n;
			break;
		}
		w->bytes += len;
		w->done_recs++;
	}
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* A thread writing @total pattern bytes in random pieces (blocking). */
struct pat_writer {
	int fd;
	size_t total, max;
	uint64_t base, seed;
	size_t written;
	int err;
	pthread_t t;
};

static void *pat_writer_main(void *arg)
{
	struct pat_writer *w = arg;
	uint64_t rng = w->seed;
	unsigned char *buf = malloc(w->max);

	if (!buf)
		abort();
	while (w->written < w->total) {
		size_t n = pt_rand_range(&rng, 1, w->max);
		ssize_t r;

		if (n > w->total - w->written)
			n = w->total - w->written;
		ap_fill(buf, n, w->base + w->written);
		r = write(w->fd, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			w->err = errno;
			break;
		}
		w->written += r;
	}
	free(buf);
	return NULL;
}

/* ---- one ring, one pair ---------------------------------------------- */

struct rig {
	struct aiopipe_ring r;
	int fds[2];
	struct stream s;
	struct reaper rp;
	bool up;
};

static void rig_init(struct rig *g)
{
	memset(g, 0, sizeof(*g));
	g->r.fd = -1;
	g->fds[0] = g->fds[1] = -1;
}

/* A ring of this geometry and a pair on @engine, attached if @attach. */
static void rig_open(struct __test_metadata *_metadata, struct rig *g,
		     unsigned int entries, unsigned int nr_bufs,
		     unsigned int buf_size, unsigned int engine, bool attach)
{
	rig_init(g);
	ASSERT_EQ(0, aiopipe_ring_setup(&g->r, entries, nr_bufs, buf_size,
					O_CLOEXEC));
	g->up = true;
	ASSERT_EQ(0, ring_pair(g->fds, engine));
	stream_init(&g->s, g->fds[0], UD);
	reaper_init(&g->rp, &g->r, &g->s, 1);
	if (attach)
		ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
}

static void rig_close(struct rig *g)
{
	backend_close(g->fds);
	if (g->up)
		aiopipe_ring_exit(&g->r);
	g->up = false;
	stream_free(&g->s);
}

/* The setup skipped: so does the test (the harness runs it anyway). */
#define RING_BEGIN() do {						\
	if (_metadata->skip)						\
		return;							\
} while (0)

/* The reaper saw no protocol error. */
#define EXPECT_REAP_OK(rp)						\
	EXPECT_STREQ("", (rp)->err)

/* A stream holds exactly the pattern bytes [base, base + n). */
#define EXPECT_STREAM(s, base, n) do {					\
	EXPECT_EQ((long long)(n), (long long)(s)->len);			\
	EXPECT_EQ(-1, ap_check((s)->got, (s)->len, (base)))		\
		TH_LOG("stream %#llx: wrong byte at %ld of %zu",	\
		       (unsigned long long)(s)->ud,			\
		       ap_check((s)->got, (s)->len, (base)), (s)->len);	\
} while (0)

/* One counter of a channel as long long (async_util.h's AP_STAT). */
#define RSTAT(fd, field)	AP_STAT(fd, field)

/* VmPin of this process in kB, or -1. */
static long vm_pin_kb(void)
{
	char buf[4096], *p;

	if (pt_read_file("/proc/self/status", buf, sizeof(buf)) <= 0)
		return -1;
	p = strstr(buf, "VmPin:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/* ---- create ----------------------------------------------------------- */

/*
 * Every parameter out of range is EINVAL; the others are valid (8 event
 * slots, 4 buffers of 4 KiB).
 */
FIXTURE(create) {
	int unused;
};

FIXTURE_VARIANT(create) {
	__u32 entries, nr_bufs, buf_size, flags, pad;
	__u64 reserved0, reserved3;
};

/* name, then entries, nr_bufs, buf_size, flags, pad, reserved[0], reserved[3] */
#define CREATE_BAD(name, e, n, b, f, p, r0, r3)				\
	FIXTURE_VARIANT_ADD(create, name) {				\
		.entries = e, .nr_bufs = n, .buf_size = b, .flags = f,	\
		.pad = p, .reserved0 = r0, .reserved3 = r3,		\
	}

CREATE_BAD(entries_zero,		0, 4, 4096, 0, 0, 0, 0);
CREATE_BAD(entries_not_a_power_of_two,	12, 4, 4096, 0, 0, 0, 0);
CREATE_BAD(entries_above_32768,		65536, 4, 4096, 0, 0, 0, 0);
CREATE_BAD(nr_bufs_zero,		8, 0, 4096, 0, 0, 0, 0);
CREATE_BAD(nr_bufs_not_a_power_of_two,	8, 6, 4096, 0, 0, 0, 0);
CREATE_BAD(nr_bufs_above_32768,		8, 65536, 64, 0, 0, 0, 0);
CREATE_BAD(buf_size_below_64,		8, 4, 32, 0, 0, 0, 0);
CREATE_BAD(buf_size_not_a_power_of_two,	8, 4, 96, 0, 0, 0, 0);
CREATE_BAD(buf_size_above_1_mib,	8, 1, 2U << 20, 0, 0, 0, 0);
CREATE_BAD(buffers_above_1_gib,		8, 2048, 1U << 20, 0, 0, 0, 0);
CREATE_BAD(flags_o_nonblock,		8, 4, 4096, O_NONBLOCK, 0, 0, 0);
CREATE_BAD(flags_o_rdwr,		8, 4, 4096, O_RDWR, 0, 0, 0);
CREATE_BAD(flags_unknown_high_bit,	8, 4, 4096, 0x80000000U, 0, 0, 0);
CREATE_BAD(pad_nonzero,			8, 4, 4096, 0, 1, 0, 0);
CREATE_BAD(reserved_first_nonzero,	8, 4, 4096, 0, 0, 1, 0);
CREATE_BAD(reserved_last_nonzero,	8, 4, 4096, 0, 0, 0, 1ULL << 63);

FIXTURE_SETUP(create)
{
}

FIXTURE_TEARDOWN(create)
{
}

TEST_F(create, bad_parameter_is_einval)
{
	struct aiopipe_ring_params p = {
		.entries = variant->entries, .nr_bufs = variant->nr_bufs,
		.buf_size = variant->buf_size, .flags = variant->flags,
		.pad = variant->pad,
		.reserved = { variant->reserved0, 0, 0, variant->reserved3 },
		.fd = -1,
	};
	int ret = ring_create(&p);

	EXPECT_EQ(-EINVAL, ret);
	if (!ret)
		close(p.fd);
}

/* ---- a fresh ring ------------------------------------------------------ */

#define FRESH_ENTRIES	8
#define FRESH_BUFS	4
#define FRESH_BUF_SIZE	256

FIXTURE(fresh) {
	struct aiopipe_ring_params p;	/* as RING_CREATE filled it in */
	unsigned char *map;
};

FIXTURE_SETUP(fresh)
{
	self->map = MAP_FAILED;
	self->p = (struct aiopipe_ring_params){
		.entries = FRESH_ENTRIES, .nr_bufs = FRESH_BUFS,
		.buf_size = FRESH_BUF_SIZE, .flags = O_CLOEXEC, .fd = -1,
	};
	ASSERT_EQ(0, ring_create(&self->p));
	ASSERT_LE(0, self->p.fd);
	self->map = mmap(NULL, self->p.mmap_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, self->p.fd, 0);
	ASSERT_NE(MAP_FAILED, self->map) TH_LOG("mmap: %s", strerror(errno));
}

FIXTURE_TEARDOWN(fresh)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, self->p.mmap_size);
	if (self->p.fd > 0)
		close(self->p.fd);
}

/*
 *   bufids[] = 0 1 2 3    buf_head 0, buf_tail 4: every buffer free
 *   ev_head = ev_tail = 0                      no event
 *   constants: the geometry asked for
 */
TEST_F(fresh, first_state_has_every_buffer_free_and_no_event)
{
	struct aiopipe_ring_hdr *h = (void *)self->map;
	__u32 *ids = (__u32 *)(self->map + self->p.bufids_off);

	EXPECT_EQ(0U, h->ev_head);
	EXPECT_EQ(0U, h->ev_tail);
	EXPECT_EQ(0U, h->buf_head);
	EXPECT_EQ((__u32)FRESH_BUFS, h->buf_tail);
	EXPECT_EQ(0U, h->flags);
	EXPECT_EQ((__u32)FRESH_ENTRIES, h->ev_entries);
	EXPECT_EQ((__u32)FRESH_ENTRIES - 1, h->ev_mask);
	EXPECT_EQ((__u32)FRESH_BUFS, h->nr_bufs);
	EXPECT_EQ((__u32)FRESH_BUFS - 1, h->buf_mask);
	EXPECT_EQ((__u32)FRESH_BUF_SIZE, h->buf_size);
	for (__u32 i = 0; i < FRESH_BUFS; i++)
		EXPECT_EQ(i, ids[i]);
}

/* The offsets place each part after the previous one, inside mmap_size. */
TEST_F(fresh, layout_fits_the_mapping_with_page_aligned_buffers)
{
	const struct aiopipe_ring_params *p = &self->p;

	EXPECT_LE(sizeof(struct aiopipe_ring_hdr), (size_t)p->events_off);
	EXPECT_LE((size_t)p->events_off +
		  FRESH_ENTRIES * sizeof(struct aiopipe_ring_event),
		  (size_t)p->bufids_off);
	EXPECT_LE((size_t)p->bufids_off + FRESH_BUFS * sizeof(__u32),
		  (size_t)p->bufs_off);
	EXPECT_EQ(0ULL, (unsigned long long)p->bufs_off % PAGE);
	EXPECT_LE((unsigned long long)p->bufs_off +
		  FRESH_BUFS * FRESH_BUF_SIZE,
		  (unsigned long long)p->mmap_size);
	EXPECT_EQ(0ULL, (unsigned long long)p->mmap_size % PAGE);
	EXPECT_EQ(0U, p->events_off % 8);
	EXPECT_EQ(0U, p->bufids_off % 4);
}

/* Kernel pages, zeroed: no event slot or buffer shows old memory. */
TEST_F(fresh, events_and_buffers_start_zeroed)
{
	const unsigned char *ev = self->map + self->p.events_off;
	const unsigned char *bufs = self->map + self->p.bufs_off;
	size_t i, nz = 0;

	for (i = 0; i < FRESH_ENTRIES * sizeof(struct aiopipe_ring_event); i++)
		nz += ev[i] != 0;
	for (i = 0; i < FRESH_BUFS * FRESH_BUF_SIZE; i++)
		nz += bufs[i] != 0;
	EXPECT_EQ(0UL, (unsigned long)nz);
}

/* "[aiopipe-ring]", an anonymous inode that no other user may open. */
TEST_F(fresh, fd_is_an_anon_inode_not_accessible_to_others)
{
	char path[64], link[128] = "";
	struct stat st;
	ssize_t n;

	ASSERT_EQ(0, fstat(self->p.fd, &st));
	EXPECT_EQ(0U, st.st_mode & (S_IRWXG | S_IRWXO))
		TH_LOG("mode 0%o", st.st_mode & 07777);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", self->p.fd);
	n = readlink(path, link, sizeof(link) - 1);
	ASSERT_LT(0, n);
	link[n] = '\0';
	EXPECT_STREQ("anon_inode:[aiopipe-ring]", link);
}

TEST_F(fresh, o_cloexec_sets_fd_cloexec_and_zero_does_not)
{
	struct aiopipe_ring_params p = {
		.entries = 1, .nr_bufs = 1, .buf_size = 64,
	};

	EXPECT_EQ(FD_CLOEXEC, fcntl(self->p.fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(0, ring_create(&p));
	EXPECT_EQ(0, fcntl(p.fd, F_GETFD) & FD_CLOEXEC);
	close(p.fd);
}

/* The bounds themselves are valid. */
TEST_F(fresh, largest_and_smallest_parameters_are_valid)
{
	struct aiopipe_ring_params ok[] = {
		{ .entries = 1, .nr_bufs = 1, .buf_size = AIOPIPE_RING_BUF_MIN },
		{ .entries = AIOPIPE_RING_MAX, .nr_bufs = AIOPIPE_RING_MAX,
		  .buf_size = AIOPIPE_RING_BUF_MIN },
		{ .entries = 2, .nr_bufs = 1, .buf_size = AIOPIPE_RING_BUF_MAX },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		EXPECT_EQ(0, ring_create(&ok[i]))
			TH_LOG("entries %u nr_bufs %u buf_size %u", ok[i].entries,
			       ok[i].nr_bufs, ok[i].buf_size);
		if (ok[i].fd > 0)
			close(ok[i].fd);
	}
}

TEST_F(fresh, mmap_private_is_einval)
{
	void *m = mmap(NULL, self->p.mmap_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE, self->p.fd, 0);

	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, self->p.mmap_size);
}

TEST_F(fresh, mmap_at_a_nonzero_offset_is_einval)
{
	void *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       self->p.fd, PAGE);

	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, PAGE);
}

TEST_F(fresh, mmap_longer_than_mmap_size_is_einval)
{
	size_t len = self->p.mmap_size + PAGE;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       self->p.fd, 0);

	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, len);
}

/* A shorter mapping from offset 0 is allowed and shows the same header. */
TEST_F(fresh, mmap_of_the_first_page_shares_the_header)
{
	struct aiopipe_ring_hdr *h = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
					  MAP_SHARED, self->p.fd, 0);

	ASSERT_NE(MAP_FAILED, h) TH_LOG("mmap: %s", strerror(errno));
	EXPECT_EQ((__u32)FRESH_BUFS, h->buf_tail);
	((struct aiopipe_ring_hdr *)self->map)->ev_head = 5;
	EXPECT_EQ(5U, __atomic_load_n(&h->ev_head, __ATOMIC_ACQUIRE));
	((struct aiopipe_ring_hdr *)self->map)->ev_head = 0;
	munmap(h, PAGE);
}

/* The ring fd has no bytes of its own, and only the ring ioctls. */
TEST_F(fresh, ring_fd_has_no_read_write_or_pipe_ioctls)
{
	struct aiopipe_stats st = { .size = sizeof(st) };
	char c = 'x';
	int n;

	EXPECT_EQ(-1, read(self->p.fd, &c, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, write(self->p.fd, &c, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-ENOTTY, ioctl_err(self->p.fd, AIOPIPE_IOC_GET_STATS, &st));
	EXPECT_EQ(-ENOTTY, ioctl_err(self->p.fd, FIONREAD, &n));
}

/* RING_CREATE exists on the pair factory only. */
TEST_F(fresh, ring_create_on_anything_but_the_factory_is_enotty)
{
	struct aiopipe_ring_params p = {
		.entries = 1, .nr_bufs = 1, .buf_size = 64,
	};
	int fds[2];

	ASSERT_EQ(0, aiopipe_pair(fds, O_CLOEXEC));
	EXPECT_EQ(-ENOTTY, ioctl_err(fds[0], AIOPIPE_IOC_RING_CREATE, &p));
	EXPECT_EQ(-ENOTTY, ioctl_err(fds[1], AIOPIPE_IOC_RING_CREATE, &p));
	EXPECT_EQ(-ENOTTY, ioctl_err(self->p.fd, AIOPIPE_IOC_RING_CREATE, &p));
	backend_close(fds);
}

/* The ring ioctls exist on a ring fd only. */
TEST_F(fresh, ring_ioctls_on_a_pipe_end_are_enotty)
{
	struct aiopipe_ring_wait w = { .min_events = 1 };
	int fds[2];

	ASSERT_EQ(0, aiopipe_pair(fds, O_CLOEXEC));
	EXPECT_EQ(-ENOTTY, attach_raw(fds[0], fds[0], 0, 0, 0));
	EXPECT_EQ(-ENOTTY, ioctl_err(fds[0], AIOPIPE_IOC_RING_DETACH, &fds[0]));
	EXPECT_EQ(-ENOTTY, ioctl_err(fds[0], AIOPIPE_IOC_RING_WAIT, &w));
	backend_close(fds);
}

TEST_F(fresh, bad_pointer_is_efault)
{
	void *bad = (void *)16;
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);

	ASSERT_LE(0, dev);
	EXPECT_EQ(-EFAULT, ioctl_err(dev, AIOPIPE_IOC_RING_CREATE, bad));
	EXPECT_EQ(-EFAULT, ioctl_err(self->p.fd, AIOPIPE_IOC_RING_ATTACH, bad));
	EXPECT_EQ(-EFAULT, ioctl_err(self->p.fd, AIOPIPE_IOC_RING_DETACH, bad));
	EXPECT_EQ(-EFAULT, ioctl_err(self->p.fd, AIOPIPE_IOC_RING_WAIT, bad));
	close(dev);
}

TEST_F(fresh, wait_for_zero_events_is_einval)
{
	EXPECT_EQ(-EINVAL, ring_wait_raw(self->p.fd, 0, 0, 0));
}

TEST_F(fresh, wait_for_more_events_than_entries_is_einval)
{
	EXPECT_EQ(-EINVAL, ring_wait_raw(self->p.fd, FRESH_ENTRIES + 1, 0, 0));
	EXPECT_EQ(-ETIME, ring_wait_raw(self->p.fd, FRESH_ENTRIES, 0, 0));
}

TEST_F(fresh, wait_with_nonzero_flags_is_einval)
{
	EXPECT_EQ(-EINVAL, ring_wait_raw(self->p.fd, 1, 1, 0));
}

/* Timeout 0 only looks: nothing there is ETIME, at once. */
TEST_F(fresh, wait_with_timeout_zero_on_an_empty_ring_is_etime)
{
	int64_t t0 = ap_now_ns();

	EXPECT_EQ(-ETIME, ring_wait_raw(self->p.fd, 1, 0, 0));
	EXPECT_GT(AP_QUIET_MS, ap_ms_since(t0));
}

TEST_F(fresh, wait_times_out_with_etime_after_its_timeout)
{
	int64_t t0 = ap_now_ns();

	EXPECT_EQ(-ETIME, ring_wait_raw(self->p.fd, 1, 0, 50 * 1000000LL));
	EXPECT_LE(50, ap_ms_since(t0));
	EXPECT_GT(AP_LONG_MS, ap_ms_since(t0));
}

TEST_F(fresh, poll_on_an_empty_ring_is_not_readable)
{
	EXPECT_EQ(0, pt_revents(self->p.fd, POLLIN | POLLRDNORM | POLLOUT));
}

/*
 * The ring's pages are charged to the creator's address space as pinned
 * memory (VmPin) while the ring lives, and not after it is gone.
 */
TEST_F(fresh, ring_pages_are_pinned_vm_until_the_ring_is_gone)
{
	long before = vm_pin_kb(), during, after = -1;
	struct aiopipe_ring r;
	int64_t t0;

	ASSERT_LE(0, before) TH_LOG("no VmPin in /proc/self/status");
	ASSERT_EQ(0, aiopipe_ring_setup(&r, 8, 64, 4096, O_CLOEXEC));
	during = vm_pin_kb();
	EXPECT_LE(before + 64 * 4, during);
	EXPECT_GE(before + (long)(r.map_size / 1024), during);
	aiopipe_ring_exit(&r);
	t0 = ap_now_ns();
	while (ap_ms_since(t0) < AP_LONG_MS && (after = vm_pin_kb()) != before)
		ap_sleep_us(AP_POLL_US);
	EXPECT_EQ(before, after);
}

/* ---- attach and detach ------------------------------------------------ */

FIXTURE(attach) {
	struct rig g;
};

FIXTURE_SETUP(attach)
{
	rig_open(_metadata, &self->g, 16, 4, 4096, AIOPIPE_ENGINE_RETRY, false);
}

FIXTURE_TEARDOWN(attach)
{
	rig_close(&self->g);
}

TEST_F(attach, write_end_is_einval)
{
	EXPECT_EQ(-EINVAL, aiopipe_ring_attach(&self->g.r, self->g.fds[1], UD));
}

TEST_F(attach, kernel_pipe_is_einval)
{
	int kp[2];

	ASSERT_EQ(0, pipe2(kp, O_CLOEXEC));
	EXPECT_EQ(-EINVAL, aiopipe_ring_attach(&self->g.r, kp[0], UD));
	backend_close(kp);
}

TEST_F(attach, dev_null_is_einval)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, aiopipe_ring_attach(&self->g.r, fd, UD));
	close(fd);
}

/* A ring fd is not a read end: neither its own nor another ring's. */
TEST_F(attach, ring_fd_is_einval)
{
	struct aiopipe_ring r2;

	EXPECT_EQ(-EINVAL, aiopipe_ring_attach(&self->g.r, self->g.r.fd, UD));
	ASSERT_EQ(0, aiopipe_ring_setup(&r2, 1, 1, 64, O_CLOEXEC));
	EXPECT_EQ(-EINVAL, aiopipe_ring_attach(&self->g.r, r2.fd, UD));
	aiopipe_ring_exit(&r2);
}

TEST_F(attach, bad_fd_is_ebadf)
{
	int fd = dup(self->g.fds[0]);

	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_EQ(-EBADF, aiopipe_ring_attach(&self->g.r, -1, UD));
	EXPECT_EQ(-EBADF, aiopipe_ring_attach(&self->g.r, fd, UD));
}

TEST_F(attach, nonzero_flags_is_einval)
{
	EXPECT_EQ(-EINVAL, attach_raw(self->g.r.fd, self->g.fds[0], 1, 0, 0));
	EXPECT_EQ(-EINVAL, attach_raw(self->g.r.fd, self->g.fds[0],
				      O_CLOEXEC, 0, 0));
	EXPECT_EQ(0, attach_raw(self->g.r.fd, self->g.fds[0], 0, 0, 0));
}

TEST_F(attach, nonzero_reserved_is_einval)
{
	EXPECT_EQ(-EINVAL, attach_raw(self->g.r.fd, self->g.fds[0], 0, 1, 0));
	EXPECT_EQ(-EINVAL, attach_raw(self->g.r.fd, self->g.fds[0], 0, 0,
				      1ULL << 63));
	EXPECT_EQ(0, attach_raw(self->g.r.fd, self->g.fds[0], 0, 0, 0));
}

TEST_F(attach, attaching_twice_is_ebusy)
{
	ASSERT_EQ(0, aiopipe_ring_attach(&self->g.r, self->g.fds[0], UD));
	EXPECT_EQ(-EBUSY, aiopipe_ring_attach(&self->g.r, self->g.fds[0], UD));
}

/* A dup of the read end is the same channel. */
TEST_F(attach, attaching_a_dup_of_an_attached_read_end_is_ebusy)
{
	int fd = dup(self->g.fds[0]);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, aiopipe_ring_attach(&self->g.r, self->g.fds[0], UD));
	EXPECT_EQ(-EBUSY, aiopipe_ring_attach(&self->g.r, fd, UD + 1));
	close(fd);
}

/* A channel has at most one ring. */
TEST_F(attach, attaching_to_a_second_ring_is_ebusy)
{
	struct aiopipe_ring r2;

	ASSERT_EQ(0, aiopipe_ring_setup(&r2, 4, 4, 64, O_CLOEXEC));
	ASSERT_EQ(0, aiopipe_ring_attach(&self->g.r, self->g.fds[0], UD));
	EXPECT_EQ(-EBUSY, aiopipe_ring_attach(&r2, self->g.fds[0], UD));
	EXPECT_EQ(-ENOENT, aiopipe_ring_detach(&r2, self->g.fds[0]));
	/* detached from the first, it may go to the second */
	EXPECT_EQ(0, aiopipe_ring_detach(&self->g.r, self->g.fds[0]));
	EXPECT_EQ(0, aiopipe_ring_attach(&r2, self->g.fds[0], UD));
	EXPECT_EQ(-EBUSY, aiopipe_ring_attach(&self->g.r, self->g.fds[0], UD));
	aiopipe_ring_exit(&r2);
}

TEST_F(attach, detaching_a_pipe_not_attached_is_enoent)
{
	EXPECT_EQ(-ENOENT, aiopipe_ring_detach(&self->g.r, self->g.fds[0]));
	ASSERT_EQ(0, aiopipe_ring_attach(&self->g.r, self->g.fds[0], UD));
	EXPECT_EQ(0, aiopipe_ring_detach(&self->g.r, self->g.fds[0]));
	EXPECT_EQ(-ENOENT, aiopipe_ring_detach(&self->g.r, self->g.fds[0]));
}

/*
 *   write(200) ----> pipe (not attached)
 *   attach --------> READ 200: read(2) exactly 200
 *   write(100) ----> DATA 100 (the pipe is empty again)
 */
TEST_F(attach, bytes_already_in_the_pipe_are_announced_by_a_read_event)
{
	struct rig *g = &self->g;

	ASSERT_EQ(200, write_pat(g->fds[1], 0, 200));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_EQ(AIOPIPE_EV_READ, aiopipe_ring_peek(&g->r)->type);
	EXPECT_EQ(200U, aiopipe_ring_peek(&g->r)->len);
	EXPECT_EQ(UD, aiopipe_ring_peek(&g->r)->user_data);
	reap(&g->rp);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	ASSERT_TRUE(reap_until(&g->rp, 300, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(1U, g->s.reads);
	EXPECT_EQ(1U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 300);
	EXPECT_EQ(200, RSTAT(g->fds[0], ring_spilled));
	EXPECT_EQ(100, RSTAT(g->fds[0], ring_bytes));
}

TEST_F(attach, pipe_without_writers_gets_eof_at_attach)
{
	struct rig *g = &self->g;

	pt_close_end(&g->fds[1]);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_TRUE(reap_until(&g->rp, 0, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(1U, g->rp.events);
	EXPECT_EQ(1U, g->s.eofs);
}

TEST_F(attach, bytes_and_no_writers_are_a_read_event_then_eof)
{
	struct rig *g = &self->g;

	ASSERT_EQ(700, write_pat(g->fds[1], 0, 700));
	pt_close_end(&g->fds[1]);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_TRUE(reap_until(&g->rp, 700, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(2U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[0].type);
	EXPECT_EQ(AIOPIPE_EV_EOF, g->rp.log[1].type);
	EXPECT_STREAM(&g->s, 0, 700);
	EXPECT_FALSE(g->s.after_eof);
}

/*
 *   attach; write(100) ----> DATA 100 (buffer b)
 *   detach
 *   write(200) ------------> no event: read(2) gets the 200 bytes
 *   buffer b still holds the first 100 bytes, the reader's until given back
 */
TEST_F(attach, after_detach_writes_stay_in_the_pipe_and_buffers_stay_the_readers)
{
	struct rig *g = &self->g;
	unsigned char got[256];
	struct aiopipe_ring_event ev;

	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_EQ(100, write_pat(g->fds[1], 0, 100));
	ASSERT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	ev = *aiopipe_ring_peek(&g->r);
	ASSERT_EQ(AIOPIPE_EV_DATA, ev.type);
	ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	ASSERT_EQ(200, write_pat(g->fds[1], 100, 200));
	EXPECT_EQ(-ETIME, aiopipe_ring_wait(&g->r, 2, AP_QUIET_MS * 1000000LL));
	EXPECT_EQ(1U, aiopipe_ring_ready(&g->r));
	EXPECT_EQ(-1, ap_check(aiopipe_ring_buf(&g->r, ev.buf), 100, 0));
	aiopipe_ring_give_back(&g->r, ev.buf);
	aiopipe_ring_advance(&g->r, 1);
	EXPECT_EQ(200, read_exactly(g->fds[0], got, 200, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(got, 200, 100));
	EXPECT_EQ(-EAGAIN, ap_read_now(g->fds[0], got, sizeof(got)));
	EXPECT_EQ(100, RSTAT(g->fds[0], ring_bytes));
	EXPECT_EQ(0, RSTAT(g->fds[0], ring_spilled));
}

TEST_F(attach, attached_again_after_detach_it_delivers_again)
{
	struct rig *g = &self->g;

	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
		ASSERT_EQ(10, write_pat(g->fds[1], 10 * i, 10));
		ASSERT_TRUE(reap_until(&g->rp, 10 * (i + 1), false, AP_LONG_MS));
		ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	}
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(3U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 30);
}

/*
 * Bytes a READ event announced are not announced again by a later attach:
 *   write(200); attach --> READ 200 (not handled yet)
 *   detach; write(50); attach --> READ 50, not 250
 *   the reader handles both: bytes 0..249, exactly once
 */
TEST_F(attach, attach_again_announces_only_what_no_event_announced)
{
	struct rig *g = &self->g;

	ASSERT_EQ(200, write_pat(g->fds[1], 0, 200));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	ASSERT_EQ(50, write_pat(g->fds[1], 200, 50));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_EQ(2, aiopipe_ring_wait(&g->r, 2, 0));
	ASSERT_TRUE(reap_until(&g->rp, 250, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(2U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[0].type);
	EXPECT_EQ(200U, g->rp.log[0].len);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[1].type);
	EXPECT_EQ(50U, g->rp.log[1].len);
	EXPECT_STREAM(&g->s, 0, 250);
	AP_EXPECT_IDLE(g->fds[0]);
}

/*
 * Events of a ring that is gone announced nothing to anyone:
 *   write(200); attach to ring 1 --> READ 200 (never reaped)
 *   close ring 1; attach to ring 2 --> READ 200 again, in ring 2
 */
TEST_F(attach, attach_after_the_ring_closed_announces_every_byte)
{
	struct rig *g = &self->g;
	struct aiopipe_ring r1 = { .fd = -1 };

	ASSERT_EQ(200, write_pat(g->fds[1], 0, 200));
	ASSERT_EQ(0, aiopipe_ring_setup(&r1, 16, 4, 4096, O_CLOEXEC));
	ASSERT_EQ(0, aiopipe_ring_attach(&r1, g->fds[0], UD));
	ASSERT_EQ(1, aiopipe_ring_wait(&r1, 1, 0));
	aiopipe_ring_exit(&r1);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_TRUE(reap_until(&g->rp, 200, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(1U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[0].type);
	EXPECT_EQ(200U, g->rp.log[0].len);
	EXPECT_STREAM(&g->s, 0, 200);
}

/* The user_data of the attach is the one in the events. */
TEST_F(attach, events_carry_the_user_data_of_the_attach)
{
	struct rig *g = &self->g;
	const __u64 uds[] = { 0, 1, ~0ULL, 0x8000000000000000ULL };

	for (size_t i = 0; i < sizeof(uds) / sizeof(uds[0]); i++) {
		ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], uds[i]));
		ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
		ASSERT_EQ(1, aiopipe_ring_wait(&g->r, 1, AP_LONG_MS * 1000000LL));
		EXPECT_EQ(uds[i], aiopipe_ring_peek(&g->r)->user_data);
		aiopipe_ring_give_back(&g->r, aiopipe_ring_peek(&g->r)->buf);
		aiopipe_ring_advance(&g->r, 1);
		ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	}
}

/*
 *   /dev/aiopipe0 opened O_RDONLY, attached
 *   a writer opens it, writes 100, closes --> DATA 100, EOF
 *   a new writer opens it, writes 50 -------> DATA 50: events again
 */
TEST_F(attach, named_fifo_gets_eof_and_then_the_events_of_a_new_writer)
{
	struct rig *g = &self->g;
	struct stream s;
	struct reaper rp;
	int rd, wr;

	rd = open("/dev/aiopipe0", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0)
		SKIP(return, "no /dev/aiopipe0: %s", strerror(errno));
	drain_now(rd, NULL, NULL, NULL);	/* what an earlier test left */
	stream_init(&s, rd, UD);
	reaper_init(&rp, &g->r, &s, 1);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, rd, UD));
	/* no writer yet: an EOF at attach, as for a pair without writers */
	reap_until(&rp, 0, true, AP_QUIET_MS);
	s.eofs = 0;
	wr = open("/dev/aiopipe0", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wr);
	ASSERT_EQ(100, write_pat(wr, 0, 100));
	close(wr);
	ASSERT_TRUE(reap_until(&rp, 100, true, AP_LONG_MS));
	wr = open("/dev/aiopipe0", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wr);
	ASSERT_EQ(50, write_pat(wr, 100, 50));
	ASSERT_TRUE(reap_until(&rp, 150, false, AP_LONG_MS));
	EXPECT_REAP_OK(&rp);
	EXPECT_EQ(1U, s.eofs);
	EXPECT_STREAM(&s, 0, 150);
	EXPECT_EQ(0, aiopipe_ring_detach(&g->r, rd));
	stream_free(&s);
	close(wr);
	close(rd);
}

/*
 * A named FIFO opened O_RDWR is a read end (and its own writer); opened
 * O_WRONLY it is not.
 */
TEST_F(attach, named_fifo_o_rdwr_can_be_attached_o_wronly_cannot)
{
	struct rig *g = &self->g;
	struct stream s;
	struct reaper rp;
	int rw, wo;

	rw = open("/dev/aiopipe0", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (rw < 0)
		SKIP(return, "no /dev/aiopipe0: %s", strerror(errno));
	wo = open("/dev/aiopipe0", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ASSERT_LE(0, wo);
	EXPECT_EQ(-EINVAL, aiopipe_ring_attach(&g->r, wo, UD));
	drain_now(rw, NULL, NULL, NULL);	/* what an earlier test left */
	stream_init(&s, rw, UD);
	reaper_init(&rp, &g->r, &s, 1);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, rw, UD));
	ASSERT_EQ(5000, write_pat(wo, 0, 5000));
	ASSERT_EQ(3000, write_pat(rw, 5000, 3000));
	EXPECT_TRUE(reap_until(&rp, 8000, false, AP_LONG_MS));
	EXPECT_REAP_OK(&rp);
	EXPECT_EQ(0U, s.eofs);
	EXPECT_STREAM(&s, 0, 8000);
	EXPECT_EQ(0, aiopipe_ring_detach(&g->r, rw));
	stream_free(&s);
	close(wo);
	close(rw);
}

/* ---- delivery --------------------------------------------------------- */

#define DL_ENTRIES	64
#define DL_BUFS		16
#define DL_BUF		1024

/* One ring of 16 buffers of 1 KiB, one pair attached, on each engine. */
FIXTURE(deliver) {
	struct rig g;
};

FIXTURE_VARIANT(deliver) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_VARIANTS(deliver);

FIXTURE_SETUP(deliver)
{
	rig_open(_metadata, &self->g, DL_ENTRIES, DL_BUFS, DL_BUF,
		 variant->engine, true);
}

FIXTURE_TEARDOWN(deliver)
{
	rig_close(&self->g);
}

/*
 *   write(100) --> bufids[0] = 0 taken, 100 bytes copied there
 *                  event {UD, 100, 0, DATA}; nothing in the pipe itself
 */
TEST_F(deliver, one_write_is_one_data_event_with_the_bytes)
{
	struct rig *g = &self->g;
	struct aiopipe_ring_event ev;

	ASSERT_EQ(100, write_pat(g->fds[1], 0, 100));
	ASSERT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	ev = *aiopipe_ring_peek(&g->r);
	EXPECT_EQ(UD, ev.user_data);
	EXPECT_EQ(AIOPIPE_EV_DATA, ev.type);
	EXPECT_EQ(100U, ev.len);
	EXPECT_EQ(0, ev.buf);
	EXPECT_EQ(-1, ap_check(aiopipe_ring_buf(&g->r, ev.buf), 100, 0));
	EXPECT_EQ(1U, __atomic_load_n(&g->r.hdr->ev_tail, __ATOMIC_ACQUIRE));
	EXPECT_EQ(1U, g->r.hdr->buf_head);
	EXPECT_EQ(0U, g->r.hdr->flags);
	EXPECT_EQ(0, ap_fionread(g->fds[0]));
	EXPECT_EQ(1, RSTAT(g->fds[0], ring_buffers));
	EXPECT_EQ(100, RSTAT(g->fds[0], ring_bytes));
	EXPECT_EQ(0, RSTAT(g->fds[0], ring_spilled));
	EXPECT_EQ(0, RSTAT(g->fds[0], ring_owed));
	reap(&g->rp);
	EXPECT_EQ((__u32)DL_BUFS + 1, g->r.hdr->buf_tail);
	EXPECT_REAP_OK(&g->rp);
}

TEST_F(deliver, zero_length_write_posts_nothing)
{
	struct rig *g = &self->g;

	EXPECT_EQ(0, write(g->fds[1], "", 0));
	EXPECT_TRUE(ring_quiet(&g->r));
	EXPECT_EQ(0U, g->r.hdr->buf_head);
}

/*
 *   write(3584) --> DATA 1024 (buf 0), DATA 1024 (1), DATA 1024 (2),
 *                   DATA 512 (3): in order, consecutive
 */
TEST_F(deliver, write_longer_than_a_buffer_fills_several_in_order)
{
	struct rig *g = &self->g;
	const __u32 lens[] = { 1024, 1024, 1024, 512 };

	ASSERT_EQ(3584, write_pat(g->fds[1], 0, 3584));
	ASSERT_EQ(4, aiopipe_ring_wait(&g->r, 1, 0));
	reap(&g->rp);
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(4U, g->rp.nlog);
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[i].type);
		EXPECT_EQ(lens[i], g->rp.log[i].len);
		EXPECT_EQ(i, g->rp.log[i].buf);
	}
	EXPECT_STREAM(&g->s, 0, 3584);
	EXPECT_EQ(4, RSTAT(g->fds[0], ring_buffers));
}

/*
 *   12 buffers filled: ids 0 .. 11 taken, kept
 *   4 buffers filled:  ids 12 .. 15 taken, handed back in the order 14 12 15 13
 *   4 buffers filled:  ids 14 12 15 13 (the hand-back ring, in order)
 */
TEST_F(deliver, buffers_are_taken_in_hand_back_order)
{
	struct rig *g = &self->g;
	const __u16 back[] = { 14, 12, 15, 13 };

	g->rp.keep = true;
	ASSERT_EQ(16 * DL_BUF, write_pat(g->fds[1], 0, 16 * DL_BUF));
	ASSERT_TRUE(reap_until(&g->rp, 16 * DL_BUF, false, AP_LONG_MS));
	for (int i = 0; i < 4; i++)
		aiopipe_ring_give_back(&g->r, back[i]);
	ASSERT_EQ(4 * DL_BUF, write_pat(g->fds[1], 16 * DL_BUF, 4 * DL_BUF));
	ASSERT_TRUE(reap_until(&g->rp, 20 * DL_BUF, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(20U, g->rp.nlog);
	for (int i = 0; i < 16; i++)
		EXPECT_EQ(i, g->rp.log[i].buf);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(back[i], g->rp.log[16 + i].buf);
	EXPECT_EQ(20U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 20 * DL_BUF);
}

/* Buffers handed back go round the ring for ever: 10 laps, all DATA. */
TEST_F(deliver, buffers_handed_back_are_reused)
{
	struct rig *g = &self->g;
	const int n = 10 * DL_BUFS;

	for (int i = 0; i < n; i++) {
		ASSERT_EQ(DL_BUF, write_pat(g->fds[1], (uint64_t)i * DL_BUF,
					    DL_BUF));
		ASSERT_TRUE(reap_until(&g->rp, (size_t)(i + 1) * DL_BUF, false,
				       AP_LONG_MS));
	}
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ((unsigned int)n, g->s.data);
	EXPECT_EQ(0U, g->s.reads);
	EXPECT_STREAM(&g->s, 0, (size_t)n * DL_BUF);
	EXPECT_EQ(n, RSTAT(g->fds[0], ring_buffers));
	EXPECT_EQ(0, RSTAT(g->fds[0], ring_spilled));
}

/*
 *   16 buffers filled and kept: no free buffer
 *   write(300) --> the pipe's byte ring; event {UD, 300, 0, READ}
 *   read(2) exactly 300 bytes: the ones written
 */
TEST_F(deliver, no_free_buffer_is_a_read_event_for_exactly_the_bytes)
{
	struct rig *g = &self->g;
	size_t full = DL_BUFS * DL_BUF;

	g->rp.keep = true;
	ASSERT_EQ((ssize_t)full, write_pat(g->fds[1], 0, full));
	ASSERT_TRUE(reap_until(&g->rp, full, false, AP_LONG_MS));
	ASSERT_EQ(300, write_pat(g->fds[1], full, 300));
	ASSERT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_EQ(AIOPIPE_EV_READ, aiopipe_ring_peek(&g->r)->type);
	EXPECT_EQ(300U, aiopipe_ring_peek(&g->r)->len);
	EXPECT_EQ(0, aiopipe_ring_peek(&g->r)->buf);
	EXPECT_EQ(300, ap_fionread(g->fds[0]));
	reap(&g->rp);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(0, ap_fionread(g->fds[0]));
	EXPECT_STREAM(&g->s, 0, full + 300);
	EXPECT_EQ(300, RSTAT(g->fds[0], ring_spilled));
	EXPECT_EQ(DL_BUFS, RSTAT(g->fds[0], ring_buffers));
}

/*
 *   all buffers kept; write(500) ---------> READ 500 (bytes in the pipe)
 *   the 16 DATA reaped, buffers handed back; READ 500 not yet read
 *   write(300) --> the pipe holds bytes: READ 300, not DATA
 *   read 500, read 300 (in event order)
 *   write(200) --> the pipe is empty, buffers free: DATA 200
 */
TEST_F(deliver, bytes_left_in_the_pipe_keep_later_writes_in_the_pipe)
{
	struct rig *g = &self->g;
	size_t full = DL_BUFS * DL_BUF;

	ASSERT_EQ((ssize_t)full, write_pat(g->fds[1], 0, full));
	ASSERT_EQ(500, write_pat(g->fds[1], full, 500));
	ASSERT_EQ(DL_BUFS + 1, aiopipe_ring_wait(&g->r, DL_BUFS + 1, 0));
	EXPECT_EQ((unsigned int)DL_BUFS, reap_max(&g->rp, DL_BUFS));
	ASSERT_EQ(300, write_pat(g->fds[1], full + 500, 300));
	ASSERT_TRUE(reap_until(&g->rp, full + 800, false, AP_LONG_MS));
	ASSERT_EQ(200, write_pat(g->fds[1], full + 800, 200));
	ASSERT_TRUE(reap_until(&g->rp, full + 1000, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ((unsigned int)DL_BUFS + 3, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[DL_BUFS].type);
	EXPECT_EQ(500U, g->rp.log[DL_BUFS].len);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[DL_BUFS + 1].type);
	EXPECT_EQ(300U, g->rp.log[DL_BUFS + 1].len);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[DL_BUFS + 2].type);
	EXPECT_EQ(200U, g->rp.log[DL_BUFS + 2].len);
	EXPECT_STREAM(&g->s, 0, full + 1000);
}

/*
 *   2 buffers free, write(3 KiB) --> DATA 1024, DATA 1024, then READ 1024
 *   for the rest, which went to the pipe
 */
TEST_F(deliver, write_running_out_of_buffers_goes_on_in_the_pipe)
{
	struct rig *g = &self->g;
	size_t kept = (DL_BUFS - 2) * DL_BUF;

	g->rp.keep = true;
	ASSERT_EQ((ssize_t)kept, write_pat(g->fds[1], 0, kept));
	ASSERT_TRUE(reap_until(&g->rp, kept, false, AP_LONG_MS));
	g->rp.nlog = 0;
	ASSERT_EQ(3 * DL_BUF, write_pat(g->fds[1], kept, 3 * DL_BUF));
	ASSERT_TRUE(reap_until(&g->rp, kept + 3 * DL_BUF, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(3U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[0].type);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[1].type);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[2].type);
	EXPECT_EQ((__u32)DL_BUF, g->rp.log[2].len);
	EXPECT_STREAM(&g->s, 0, kept + 3 * DL_BUF);
}

/*
 * Writes of random sizes; between them the reader reaps a random number
 * of events, keeps some buffers for a while and hands them back later:
 * DATA and READ events mix, and the stream is still the bytes written.
 * The write end is nonblocking: a full pipe is EAGAIN, and short writes
 * count for what they moved.
 */
TEST_F(deliver, random_mix_of_data_and_read_events_keeps_byte_order)
{
	struct rig *g = &self->g;
	uint64_t seed = pt_seed(), rng = seed;
	size_t off = 0;

	TH_LOG("seed %#llx (AIOPIPE_SEED)", (unsigned long long)seed);
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], true));
	for (int i = 0; i < 400; i++) {
		ssize_t n = write_pat(g->fds[1], off,
				      pt_rand_range(&rng, 1, 3 * DL_BUF));

		if (n > 0)
			off += n;
		else
			ASSERT_EQ(-EAGAIN, n);
		g->rp.keep = pt_rand(&rng) % 3 == 0;
		reap_max(&g->rp, pt_rand_range(&rng, 0, 4));
		if (pt_rand(&rng) % 4 == 0)
			give_back_held(&g->rp);
		if (g->rp.err[0])
			break;
	}
	g->rp.keep = false;
	give_back_held(&g->rp);
	EXPECT_TRUE(reap_until(&g->rp, off, false, AP_LONG_MS))
		TH_LOG("%zu of %zu bytes", reaped_bytes(&g->rp), off);
	EXPECT_REAP_OK(&g->rp);
	TH_LOG("%zu bytes: %u DATA, %u READ events", off, g->s.data,
	       g->s.reads);
	EXPECT_STREAM(&g->s, 0, off);
	EXPECT_EQ((long long)g->s.data_bytes, RSTAT(g->fds[0], ring_bytes));
	EXPECT_EQ((long long)g->s.read_bytes, RSTAT(g->fds[0], ring_spilled));
}

/*
 *   writer thread                       test (reaper)
 *   write(1 .. 3 KiB) x n, blocking     RING_WAIT, DATA: copy, hand back;
 *                                       READ: read(2) exactly len
 *   4 MiB in all                        the stream is the 4 MiB written
 */
TEST_F_TIMEOUT(deliver, random_writes_from_a_thread_arrive_once_in_order, 120)
{
	struct rig *g = &self->g;
	struct pat_writer w = {
		.fd = g->fds[1], .total = 4 << 20, .max = 3 * DL_BUF,
		.seed = pt_seed(),
	};

	TH_LOG("seed %#llx", (unsigned long long)w.seed);
	ASSERT_EQ(0, pthread_create(&w.t, NULL, pat_writer_main, &w));
	EXPECT_TRUE(reap_until(&g->rp, w.total, false, 60000))
		TH_LOG("%zu of %zu bytes", reaped_bytes(&g->rp), w.total);
	ASSERT_TRUE(pt_join(w.t, NULL));
	EXPECT_EQ(0, w.err);
	EXPECT_REAP_OK(&g->rp);
	TH_LOG("%u DATA, %u READ events", g->s.data, g->s.reads);
	EXPECT_STREAM(&g->s, 0, w.total);
	EXPECT_EQ((long long)w.total, RSTAT(g->fds[0], ring_bytes) +
				      RSTAT(g->fds[0], ring_spilled));
	EXPECT_EQ((long long)g->s.data, RSTAT(g->fds[0], ring_buffers));
}

/*
 *   pipes 0 .. 7 attached with user_data 1000 + i
 *   writes of random sizes to random pipes, reaped now and then
 *   each event goes to the stream its user_data names; each stream is
 *   exactly its pipe's bytes
 */
TEST_F(deliver, many_pipes_share_one_ring_and_user_data_routes_events)
{
	struct rig *g = &self->g;
	enum { NP = 8 };
	int fds[NP][2];
	size_t off[NP] = { 0 }, total = 0;
	struct stream s[NP];
	struct reaper rp;
	uint64_t seed = pt_seed(), rng = seed;

	TH_LOG("seed %#llx", (unsigned long long)seed);
	for (int i = 0; i < NP; i++) {
		ASSERT_EQ(0, ring_pair(fds[i], variant->engine));
		stream_init(&s[i], fds[i][0], 1000 + i);
		ASSERT_EQ(0, aiopipe_ring_attach(&g->r, fds[i][0], 1000 + i));
	}
	reaper_init(&rp, &g->r, s, NP);
	for (int k = 0; k < 300; k++) {
		int i = (int)(pt_rand(&rng) % NP);
		size_t n = pt_rand_range(&rng, 1, 3 * DL_BUF);

		ASSERT_EQ((ssize_t)n, write_pat(fds[i][1],
						STREAM_BASE(i) + off[i], n));
		off[i] += n;
		total += n;
		if (k % 8 == 7)
			reap(&rp);
	}
	EXPECT_TRUE(reap_until(&rp, total, false, AP_LONG_MS));
	EXPECT_REAP_OK(&rp);
	for (int i = 0; i < NP; i++) {
		EXPECT_STREAM(&s[i], STREAM_BASE(i), off[i]);
		stream_free(&s[i]);
		backend_close(fds[i]);
	}
}

/*
 *   writer A thread     writer B thread       test
 *   records of 16 .. 4096 bytes, each one write(2)    reaps
 *   the stream is whole records, each writer's in sequence: a record's
 *   events (several DATA for one over 1 KiB, or READ) are consecutive
 */
TEST_F_TIMEOUT(deliver, pipe_buf_writes_of_two_threads_never_interleave, 120)
{
	struct rig *g = &self->g;
	struct rec_writer w[2];
	uint32_t next[2] = { 0, 0 };
	uint64_t seed = pt_seed();
	size_t total = 0;
	long bad;

	TH_LOG("seed %#llx", (unsigned long long)seed);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct rec_writer){ .fd = g->fds[1], .id = i,
					    .nrec = 600, .seed = seed + i };
		ASSERT_EQ(0, pthread_create(&w[i].t, NULL, rec_writer_main,
					    &w[i]));
	}
	for (int64_t t0 = ap_now_ns(); ap_ms_since(t0) < 60000;) {
		bool done = __atomic_load_n(&w[0].done, __ATOMIC_ACQUIRE) &&
			    __atomic_load_n(&w[1].done, __ATOMIC_ACQUIRE);

		total = w[0].bytes + w[1].bytes;
		if (done && reaped_bytes(&g->rp) >= total)
			break;
		reap(&g->rp);
		aiopipe_ring_wait(&g->r, 1, 10 * 1000000LL);
	}
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(pt_join(w[i].t, NULL));
		EXPECT_EQ(0, w[i].err);
	}
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ((long long)total, (long long)g->s.len);
	bad = rec_check(g->s.got, g->s.len, next, 2, false);
	EXPECT_EQ(-1, bad) TH_LOG("torn or lost record at stream offset %ld", bad);
	EXPECT_EQ(600U, next[0]);
	EXPECT_EQ(600U, next[1]);
	TH_LOG("%u DATA, %u READ events", g->s.data, g->s.reads);
}

/*
 *   all 16 buffers kept
 *   nonblocking writes of 4 KiB until EAGAIN: the pipe's capacity, each
 *   announced by a READ event, as a full pipe
 *   a blocking write(4 KiB) sleeps in write(2)
 *   the reader takes one READ event's 4 KiB --> the write goes on
 */
TEST_F(deliver, no_free_buffer_and_a_full_pipe_block_the_writer_as_a_pipe)
{
	struct rig *g = &self->g;
	size_t full = DL_BUFS * DL_BUF, off;
	int cap = aiopipe_get_capacity(g->fds[1]);
	unsigned char *src = malloc(PIPE_BUF);
	struct pt_call c = { .fn = pt_do_write, .fd = g->fds[1],
			     .buf = src, .len = PIPE_BUF };
	ssize_t n;

	ASSERT_LT(0, cap);
	ASSERT_NE(NULL, src);
	g->rp.keep = true;
	ASSERT_EQ((ssize_t)full, write_pat(g->fds[1], 0, full));
	ASSERT_TRUE(reap_until(&g->rp, full, false, AP_LONG_MS));
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], true));
	for (off = full; (n = write_pat(g->fds[1], off, PIPE_BUF)) > 0;)
		off += n;
	EXPECT_EQ(-EAGAIN, n);
	EXPECT_EQ((long long)cap, (long long)(off - full));
	EXPECT_EQ(cap, ap_fionread(g->fds[0]));
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], false));
	ap_fill(src, PIPE_BUF, off);
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	EXPECT_EQ(1U, reap_max(&g->rp, 1));	/* READ 4096: read(2) it */
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(PIPE_BUF, c.ret);
	off += PIPE_BUF;
	ASSERT_TRUE(reap_until(&g->rp, off, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, off);
	free(src);
}

/*
 * The write side does not change: writev(2), a libaio PWRITEV and an
 * io_uring WRITE are delivered as write(2) is.
 */
TEST_F(deliver, writev_libaio_and_io_uring_writes_are_delivered_alike)
{
	struct rig *g = &self->g;
	unsigned char *src = malloc(6000);
	struct iovec iov[3];
	io_context_t ctx = 0;
	struct io_event ev;
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct iocb cb, *cbp = &cb;

	ASSERT_NE(NULL, src);
	ap_fill(src, 6000, 0);
	iov[0] = (struct iovec){ src, 10 };
	iov[1] = (struct iovec){ src + 10, 0 };
	iov[2] = (struct iovec){ src + 10, 1990 };
	ASSERT_EQ(2000, writev(g->fds[1], iov, 3));
	ASSERT_EQ(0, io_setup(4, &ctx));
	iov[0] = (struct iovec){ src + 2000, 1500 };
	iov[1] = (struct iovec){ src + 3500, 500 };
	io_prep_pwritev(&cb, g->fds[1], iov, 2, 0);
	ASSERT_EQ(1, io_submit(ctx, 1, &cbp));
	ASSERT_EQ(1, ap_getevents(ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(2000, (long)ev.res);
	io_destroy(ctx);
	ASSERT_EQ(0, io_uring_queue_init(4, &ring, 0));
	io_uring_prep_write(io_uring_get_sqe(&ring), g->fds[1], src + 4000,
			    2000, 0);
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
	EXPECT_EQ(2000, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	ASSERT_TRUE(reap_until(&g->rp, 6000, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(0U, g->s.reads);
	EXPECT_STREAM(&g->s, 0, 6000);
	free(src);
}

/*
 * One reader of record: a one-shot read that would wait in line on an
 * attached pipe is refused, and the bytes go to the ring.
 *   io_submit(PREAD 100) on the attached, empty pipe --> EBUSY at once
 *   write(50) --> DATA 50
 */
TEST_F(deliver, libaio_read_that_would_wait_is_ebusy)
{
	struct rig *g = &self->g;
	unsigned char buf[AP_PINNED_READ];
	io_context_t ctx = 0;
	struct io_event ev;
	struct iocb cb;

	ASSERT_EQ(0, pt_set_nonblock(g->fds[0], false));
	ASSERT_EQ(0, io_setup(4, &ctx));
	io_prep_pread(&cb, g->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(ctx, &cb));
	ASSERT_EQ(1, ap_getevents(ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(-EBUSY, (long)ev.res);
	ASSERT_EQ(0, pt_set_nonblock(g->fds[0], true));
	ASSERT_EQ(50, write_pat(g->fds[1], 0, 50));
	ASSERT_TRUE(reap_until(&g->rp, 50, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(1U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 50);
	AP_EXPECT_IDLE(g->fds[0]);
	io_destroy(ctx);
}

/*
 *   detached pipe; io_submit(PREAD 10): waits in line
 *   attach --> EBUSY (its bytes would not be the ring's)
 *   write(10) --> the read completes with 0..9
 *   attach --> 0; write(20) --> the events give 10..29
 */
TEST_F(deliver, attach_while_a_read_waits_in_line_is_ebusy)
{
	struct rig *g = &self->g;
	unsigned char buf[10];
	io_context_t ctx = 0;
	struct io_event ev;
	struct iocb cb;

	ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	ASSERT_EQ(0, pt_set_nonblock(g->fds[0], false));
	ASSERT_EQ(0, io_setup(4, &ctx));
	io_prep_pread(&cb, g->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(ctx, &cb));
	EXPECT_TRUE(ap_no_event(ctx));
	EXPECT_EQ(-EBUSY, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	ASSERT_EQ(1, ap_getevents(ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(10, (long)ev.res);
	EXPECT_EQ(-1, ap_check(buf, 10, 0));
	ASSERT_EQ(0, pt_set_nonblock(g->fds[0], true));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
	ASSERT_EQ(20, write_pat(g->fds[1], 10, 20));
	ASSERT_TRUE(reap_until(&g->rp, 20, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 10, 20);
	AP_EXPECT_IDLE(g->fds[0]);
	io_destroy(ctx);
}

/*
 *   src: page 0 mapped, page 1 not
 *   write(src, 8 KiB) --> what write(2) returns, and no more, is in the
 *   events (a fault takes no bytes and posts no garbage)
 *   write(page 1 only) --> EFAULT, no event
 *   write(10) ----------> DATA 10 right behind, in order
 */
TEST_F(deliver, write_from_a_bad_address_posts_only_the_bytes_written)
{
	struct rig *g = &self->g;
	unsigned char *src = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ssize_t n;

	ASSERT_NE(MAP_FAILED, src);
	ap_fill(src, PAGE, 0);
	ASSERT_EQ(0, munmap(src + PAGE, PAGE));
	n = write(g->fds[1], src + 100, 2 * PAGE - 100);
	if (n < 0)
		n = -errno;
	TH_LOG("write of %d bytes, the last %d unmapped: %zd", 2 * PAGE - 100,
	       PAGE, n);
	EXPECT_TRUE(n == PAGE - 100 || n == -EFAULT);
	if (n < 0)
		n = 0;
	errno = 0;
	EXPECT_EQ(-1, write(g->fds[1], src + PAGE, 10));
	EXPECT_EQ(EFAULT, errno);
	ap_fill(src, 10, 100 + n);
	ASSERT_EQ(10, write(g->fds[1], src, 10));
	ASSERT_TRUE(reap_until(&g->rp, n + 10, false, AP_LONG_MS));
	EXPECT_TRUE(ring_quiet(&g->r)) TH_LOG("more events than bytes written");
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 100, (size_t)n + 10);
	EXPECT_EQ((long long)n + 10, RSTAT(g->fds[0], ring_bytes) +
				     RSTAT(g->fds[0], ring_spilled));
	munmap(src, PAGE);
}

/*
 *   sendfile(memfd --> write end, 10000) and splice(kernel pipe --> write
 *   end, 3000): delivered as write(2) is, in order
 */
TEST_F(deliver, sendfile_and_splice_into_the_pipe_are_delivered_alike)
{
	struct rig *g = &self->g;
	unsigned char *src = malloc(13000);
	int mfd = memfd_create("ring-src", MFD_CLOEXEC), kp[2];
	off_t off = 0;
	size_t sent = 0;

	ASSERT_NE(NULL, src);
	ASSERT_LE(0, mfd);
	ap_fill(src, 13000, 0);
	ASSERT_EQ(10000, write(mfd, src, 10000));
	while (sent < 10000) {
		ssize_t n = sendfile(g->fds[1], mfd, &off, 10000 - sent);

		ASSERT_LT(0, n) TH_LOG("sendfile: %s", strerror(errno));
		sent += n;
	}
	ASSERT_EQ(0, pipe2(kp, O_CLOEXEC));
	ASSERT_EQ(3000, write(kp[1], src + 10000, 3000));
	for (sent = 0; sent < 3000;) {
		ssize_t n = splice(kp[0], NULL, g->fds[1], NULL, 3000 - sent, 0);

		ASSERT_LT(0, n) TH_LOG("splice: %s", strerror(errno));
		sent += n;
	}
	ASSERT_TRUE(reap_until(&g->rp, 13000, false, AP_LONG_MS))
		TH_LOG("%zu of 13000 bytes", reaped_bytes(&g->rp));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(0U, g->s.reads);
	EXPECT_STREAM(&g->s, 0, 13000);
	backend_close(kp);
	close(mfd);
	free(src);
}

/*
 *   all buffers kept; the pipe filled (READ events)
 *   io_submit(PWRITE 5000): no room, queued
 *   the reader takes the READ events' bytes --> room: the queued write
 *   moves in (its worker, or the reader pulling it in); its bytes are
 *   announced like any: the stream is complete, the write completes
 */
TEST_F(deliver, queued_libaio_write_is_announced_as_it_moves_in)
{
	struct rig *g = &self->g;
	size_t full = DL_BUFS * DL_BUF, off;
	unsigned char *src = malloc(5000);
	io_context_t ctx = 0;
	struct io_event ev;
	struct iocb cb;
	ssize_t n;

	ASSERT_NE(NULL, src);
	g->rp.keep = true;
	ASSERT_EQ((ssize_t)full, write_pat(g->fds[1], 0, full));
	ASSERT_TRUE(reap_until(&g->rp, full, false, AP_LONG_MS));
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], true));
	for (off = full; (n = write_pat(g->fds[1], off, PIPE_BUF)) > 0;)
		off += n;
	ASSERT_EQ(-EAGAIN, n);
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], false));
	ASSERT_EQ(0, io_setup(4, &ctx));
	ap_fill(src, 5000, off);
	io_prep_pwrite(&cb, g->fds[1], src, 5000, 0);
	ASSERT_EQ(1, ap_submit1(ctx, &cb));
	EXPECT_TRUE(ap_no_event(ctx));
	off += 5000;
	EXPECT_TRUE(reap_until(&g->rp, off, false, AP_LONG_MS))
		TH_LOG("%zu of %zu bytes; FIONREAD %d", reaped_bytes(&g->rp),
		       off, ap_fionread(g->fds[0]));
	EXPECT_EQ(1, ap_getevents(ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(5000, (long)ev.res);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, off);
	AP_EXPECT_IDLE(g->fds[0]);
	io_destroy(ctx);
	free(src);
}

/* The global counters move with the per-channel ones. */
TEST_F(deliver, global_counters_count_ring_deliveries)
{
	struct rig *g = &self->g;
	long long b0 = RSTAT(-1, ring_buffers), y0 = RSTAT(-1, ring_bytes);
	long long s0 = RSTAT(-1, ring_spilled);

	g->rp.keep = true;
	ASSERT_EQ(DL_BUFS * DL_BUF, write_pat(g->fds[1], 0, DL_BUFS * DL_BUF));
	ASSERT_EQ(10, write_pat(g->fds[1], DL_BUFS * DL_BUF, 10));
	ASSERT_TRUE(reap_until(&g->rp, DL_BUFS * DL_BUF + 10, false,
			       AP_LONG_MS));
	EXPECT_EQ(b0 + DL_BUFS, RSTAT(-1, ring_buffers));
	EXPECT_EQ(y0 + DL_BUFS * DL_BUF, RSTAT(-1, ring_bytes));
	EXPECT_EQ(s0 + 10, RSTAT(-1, ring_spilled));
}

/* ---- buffers of more than a page --------------------------------------- */

FIXTURE(bigbuf) {
	struct rig g;
};

FIXTURE_VARIANT(bigbuf) {
	unsigned int nr_bufs, buf_size;
};

FIXTURE_VARIANT_ADD(bigbuf, buffers_of_64_kib) { .nr_bufs = 4, .buf_size = 65536 };
FIXTURE_VARIANT_ADD(bigbuf, buffers_of_1_mib) { .nr_bufs = 2, .buf_size = 1U << 20 };

FIXTURE_SETUP(bigbuf)
{
	rig_open(_metadata, &self->g, 8, variant->nr_bufs, variant->buf_size,
		 AIOPIPE_ENGINE_RETRY, true);
}

FIXTURE_TEARDOWN(bigbuf)
{
	rig_close(&self->g);
}

/*
 *   4 or 2 free buffers of 64 KiB or 1 MiB (more than the pipe's 64 KiB)
 *   write(1.5 buffers), nonblocking --> all of it: DATA buf_size,
 *   DATA buf_size / 2; nothing in the pipe
 */
TEST_F(bigbuf, write_of_one_and_a_half_buffers_fills_two_buffers)
{
	struct rig *g = &self->g;
	size_t big = variant->buf_size + variant->buf_size / 2;
	ssize_t n;

	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], true));
	n = write_pat(g->fds[1], 0, big);
	EXPECT_EQ((ssize_t)big, n);
	if (n <= 0)
		return;
	ASSERT_TRUE(reap_until(&g->rp, (size_t)n, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	for (unsigned int i = 0; i < g->rp.nlog && i < 8; i++)
		TH_LOG("event %u: type %u len %u buf %u", i, g->rp.log[i].type,
		       g->rp.log[i].len, g->rp.log[i].buf);
	ASSERT_LE(2U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[0].type);
	EXPECT_EQ(variant->buf_size, g->rp.log[0].len);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[1].type);
	EXPECT_EQ(variant->buf_size / 2, g->rp.log[1].len);
	EXPECT_EQ(2U, g->rp.nlog);
	EXPECT_STREAM(&g->s, 0, (size_t)n);
}

/* Writes of random sizes at odd lengths: every page of the buffers. */
TEST_F(bigbuf, bytes_cross_the_pages_of_a_buffer_in_order)
{
	struct rig *g = &self->g;
	uint64_t rng = 7;
	size_t off;

	for (off = 0; off < 4 * (size_t)variant->buf_size;) {
		size_t n = pt_rand_range(&rng, 1, 3 * PAGE + 17);

		ASSERT_EQ((ssize_t)n, write_pat(g->fds[1], off, n));
		off += n;
		ASSERT_TRUE(reap_until(&g->rp, off, false, AP_LONG_MS));
	}
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, off);
	EXPECT_EQ(0U, g->s.reads);
}

/*
 * A write from a source whose pages fault on the way (the copy into the
 * ring runs with page faults disabled, and a writer in a fault holds no
 * buffer or slot) is delivered whole and in order, in DATA events while
 * buffers are free:
 *   5 pages of a memfd, freshly mapped, all cold: write(5 pages - 100)
 *   5 anonymous pages, the first written, the others never touched
 *   (they read as zeros): write(5 pages - 100)
 */
TEST_F(bigbuf, write_from_cold_pages_is_delivered_whole_in_data_events)
{
	struct rig *g = &self->g;
	size_t len = 5 * PAGE, n = len - 100;
	unsigned char *src = malloc(len), *want = calloc(1, n), *m;
	int mfd = memfd_create("ring-src", MFD_CLOEXEC);

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, want);
	ASSERT_LE(0, mfd);
	ap_fill(src, len, 0);
	ASSERT_EQ((ssize_t)len, write(mfd, src, len));
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ((ssize_t)n, write(g->fds[1], m + 100, n));
	munmap(m, len);
	ASSERT_TRUE(reap_until(&g->rp, n, false, AP_LONG_MS));	/* all free */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ap_fill(m, PAGE, 0);
	ap_fill(want, PAGE - 100, 100);
	ASSERT_EQ((ssize_t)n, write(g->fds[1], m + 100, n));
	munmap(m, len);
	ASSERT_TRUE(reap_until(&g->rp, 2 * n, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	for (unsigned int i = 0; i < g->rp.nlog && i < 8; i++)
		TH_LOG("event %u: type %u len %u buf %u", i, g->rp.log[i].type,
		       g->rp.log[i].len, g->rp.log[i].buf);
	EXPECT_EQ(0U, g->s.reads);
	ASSERT_EQ((long long)(2 * n), (long long)g->s.len);
	EXPECT_EQ(-1, ap_check(g->s.got, n, 100));
	EXPECT_EQ(0, memcmp(g->s.got + n, want, n));
	close(mfd);
	free(src);
	free(want);
}

/*
 * A source with one page in four resident: every copy stops at the next
 * cold page, after moving some bytes.  The write still fills every buffer
 * and returns whole (a fault-in is not the end of a write while copies
 * make progress):
 *   write(all buffers' bytes from pages 0, 4, 8, ... written, the others
 *   never touched) --> returns all of it; DATA events only, in order
 */
TEST_F(bigbuf, write_from_partly_resident_pages_returns_whole)
{
	struct rig *g = &self->g;
	size_t len = (size_t)variant->nr_bufs * variant->buf_size;
	unsigned char *m, *want = malloc(len);

	ASSERT_NE(NULL, want);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (size_t off = 0; off < len; off += 4 * PAGE)
		ap_fill(m + off, PAGE, off);
	EXPECT_EQ((ssize_t)len, write(g->fds[1], m, len));
	memcpy(want, m, len);
	munmap(m, len);
	ASSERT_TRUE(reap_until(&g->rp, len, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(0U, g->s.reads);
	ASSERT_EQ((long long)len, (long long)g->s.len);
	EXPECT_EQ(0, memcmp(g->s.got, want, len));
	free(want);
}

/* The mapping cannot be grown past mmap_size with mremap(2). */
TEST_F(bigbuf, mremap_cannot_grow_the_mapping)
{
	struct rig *g = &self->g;
	void *m = mremap(g->r.map, g->r.map_size, g->r.map_size + PAGE,
			 MREMAP_MAYMOVE);

	EXPECT_EQ(MAP_FAILED, m) TH_LOG("mremap grew the ring's mapping");
	if (m != MAP_FAILED) {
		g->r.map = m;
		g->r.map_size += PAGE;
	} else {
		TH_LOG("mremap: %s", strerror(errno));
	}
}

/* ---- EOF ---------------------------------------------------------------- */

/*
 *   two write ends (dup)
 *   close one ----> no event
 *   close last ---> {UD, 0, 0, EOF}; read(2) is 0
 */
TEST_F(deliver, eof_event_when_the_last_writer_closes)
{
	struct rig *g = &self->g;
	char c;
	int w2 = dup(g->fds[1]);

	ASSERT_LE(0, w2);
	pt_close_end(&g->fds[1]);
	EXPECT_TRUE(ring_quiet(&g->r));
	close(w2);
	ASSERT_TRUE(reap_until(&g->rp, 0, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(1U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_EOF, g->rp.log[0].type);
	EXPECT_EQ(0U, g->rp.log[0].len);
	EXPECT_EQ(UD, g->rp.log[0].user_data);
	EXPECT_EQ(0, read(g->fds[0], &c, 1));
	EXPECT_TRUE(ring_quiet(&g->r));
}

/*
 *   write(2500) --> DATA 1024, DATA 1024, DATA 452
 *   close --------> EOF, after them
 */
TEST_F(deliver, bytes_in_buffers_come_before_eof)
{
	struct rig *g = &self->g;

	ASSERT_EQ(2500, write_pat(g->fds[1], 0, 2500));
	pt_close_end(&g->fds[1]);
	ASSERT_TRUE(reap_until(&g->rp, 2500, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(4U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_EOF, g->rp.log[3].type);
	EXPECT_FALSE(g->s.after_eof);
	EXPECT_STREAM(&g->s, 0, 2500);
}

/*
 *   all buffers kept; write(300) --> READ 300
 *   close ----------------------> EOF after it; read 300, then read(2) is 0
 */
TEST_F(deliver, bytes_in_the_pipe_come_before_eof)
{
	struct rig *g = &self->g;
	size_t full = DL_BUFS * DL_BUF;
	char c;

	g->rp.keep = true;
	ASSERT_EQ((ssize_t)full, write_pat(g->fds[1], 0, full));
	ASSERT_EQ(300, write_pat(g->fds[1], full, 300));
	pt_close_end(&g->fds[1]);
	ASSERT_TRUE(reap_until(&g->rp, full + 300, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ((unsigned int)DL_BUFS + 2, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[DL_BUFS].type);
	EXPECT_EQ(AIOPIPE_EV_EOF, g->rp.log[DL_BUFS + 1].type);
	EXPECT_STREAM(&g->s, 0, full + 300);
	EXPECT_EQ(0, read(g->fds[0], &c, 1));
}

/* ---- a full event ring: owed events ----------------------------------- */

#define OW_ENTRIES	2
#define OW_BUFS		8
#define OW_BUF		256

/* Two event slots, eight buffers: the event ring fills first. */
FIXTURE(owed) {
	struct rig g;
};

FIXTURE_SETUP(owed)
{
	rig_open(_metadata, &self->g, OW_ENTRIES, OW_BUFS, OW_BUF,
		 AIOPIPE_ENGINE_RETRY, true);
}

FIXTURE_TEARDOWN(owed)
{
	rig_close(&self->g);
}

/* Two writes of 100: two DATA events, the event ring is full. */
static void fill_event_ring(struct __test_metadata *_metadata, struct rig *g)
{
	ASSERT_EQ(100, write_pat(g->fds[1], 0, 100));
	ASSERT_EQ(100, write_pat(g->fds[1], 100, 100));
	ASSERT_EQ(OW_ENTRIES, aiopipe_ring_wait(&g->r, OW_ENTRIES, 0));
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
}

/*
 *   DATA 100, DATA 100: full
 *   write(100) --> no slot: the pipe; READ owed (F_OWED, ring_owed 1)
 *   reap both (slots free)
 *   poll(ring fd) --> POLLIN: the READ 100 is posted; F_OWED clear
 */
TEST_F(owed, read_event_due_on_a_full_ring_is_owed_until_poll)
{
	struct rig *g = &self->g;
	long long owed0 = RSTAT(-1, ring_owed);

	g->rp.raw = true;
	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_EQ(1, RSTAT(g->fds[0], ring_owed));
	EXPECT_EQ(owed0 + 1, RSTAT(-1, ring_owed));
	EXPECT_EQ((unsigned int)OW_ENTRIES, aiopipe_ring_ready(&g->r));
	EXPECT_EQ(100, ap_fionread(g->fds[0]));
	EXPECT_EQ(2U, reap(&g->rp));
	EXPECT_EQ(POLLIN, pt_revents(g->r.fd, POLLIN) & POLLIN);
	EXPECT_EQ(1U, aiopipe_ring_ready(&g->r));
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
	EXPECT_EQ(1U, reap(&g->rp));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[2].type);
	EXPECT_EQ(100U, g->rp.log[2].len);
	EXPECT_STREAM(&g->s, 0, 300);
}

/*
 * The same, with the library's advance: it sees AIOPIPE_RING_F_OWED after
 * freeing the slots and asks for the owed event, which the same reap
 * then takes.
 */
TEST_F(owed, library_advance_asks_for_the_owed_event)
{
	struct rig *g = &self->g;

	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_EQ(3U, reap(&g->rp));
	EXPECT_EQ(0, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 300);
}

/* The same, posted by RING_WAIT with timeout 0. */
TEST_F(owed, owed_event_is_posted_by_ring_wait)
{
	struct rig *g = &self->g;

	g->rp.raw = true;
	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_EQ(2U, reap(&g->rp));
	EXPECT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
	reap(&g->rp);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 300);
}

/*
 *   pipe A owes READ 100 (ring full); both slots reaped
 *   write(B, 50) --> the next post: A's READ first, then B's DATA
 */
TEST_F(owed, owed_event_is_posted_before_the_next_post)
{
	struct rig *g = &self->g;
	struct stream s[2];
	struct reaper rp;
	int b[2];

	g->rp.raw = true;
	ASSERT_EQ(0, ring_pair(b, AIOPIPE_ENGINE_RETRY));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, b[0], UD + 1));
	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	EXPECT_EQ(2U, reap(&g->rp));
	s[0] = g->s;		/* A's 200 bytes so far */
	stream_init(&s[1], b[0], UD + 1);
	reaper_init(&rp, &g->r, s, 2);
	ASSERT_EQ(50, write_pat(b[1], STREAM_BASE(1), 50));
	EXPECT_EQ(2U, aiopipe_ring_ready(&g->r));
	reap(&rp);
	EXPECT_REAP_OK(&rp);
	ASSERT_EQ(2U, rp.nlog);
	EXPECT_EQ(UD, rp.log[0].user_data);
	EXPECT_EQ(AIOPIPE_EV_READ, rp.log[0].type);
	EXPECT_EQ(UD + 1, rp.log[1].user_data);
	EXPECT_EQ(AIOPIPE_EV_DATA, rp.log[1].type);
	EXPECT_STREAM(&s[0], 0, 300);
	EXPECT_STREAM(&s[1], STREAM_BASE(1), 50);
	g->s = s[0];		/* freed by the teardown */
	stream_free(&s[1]);
	backend_close(b);
}

/*
 *   ring full (A's two DATA events)
 *   pipe B with 300 bytes and no writer, attached --> READ 300 and EOF
 *   are owed; reaped slots: both posted, in order
 */
TEST_F(owed, announcement_at_attach_on_a_full_ring_is_owed)
{
	struct rig *g = &self->g;
	struct stream s[2];
	struct reaper rp;
	int b[2];

	ASSERT_EQ(0, ring_pair(b, AIOPIPE_ENGINE_RETRY));
	ASSERT_EQ(300, write_pat(b[1], STREAM_BASE(1), 300));
	pt_close_end(&b[1]);
	fill_event_ring(_metadata, g);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, b[0], UD + 1));
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_LE(1, RSTAT(b[0], ring_owed));
	s[0] = g->s;
	stream_init(&s[1], b[0], UD + 1);
	reaper_init(&rp, &g->r, s, 2);
	ASSERT_TRUE(reap_until(&rp, 500, false, AP_LONG_MS));
	aiopipe_ring_wait(&g->r, 1, 0);
	reap(&rp);
	EXPECT_REAP_OK(&rp);
	EXPECT_STREAM(&s[0], 0, 200);
	EXPECT_STREAM(&s[1], STREAM_BASE(1), 300);
	EXPECT_EQ(1U, s[1].eofs);
	EXPECT_FALSE(s[1].after_eof);
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
	g->s = s[0];		/* freed by the teardown */
	stream_free(&s[1]);
	backend_close(b);
}

/*
 *   full; write(100) owed; write(50) --> the pipe too (behind the owed one)
 *   reap; RING_WAIT posts READ events for 150 bytes in all, in order
 *   read them; write(30) --> DATA again
 */
TEST_F(owed, writes_while_owing_go_behind_the_owed_event)
{
	struct rig *g = &self->g;

	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	ASSERT_EQ(50, write_pat(g->fds[1], 300, 50));
	EXPECT_EQ(150, ap_fionread(g->fds[0]));
	EXPECT_EQ((unsigned int)OW_ENTRIES, aiopipe_ring_ready(&g->r));
	ASSERT_TRUE(reap_until(&g->rp, 350, false, AP_LONG_MS));
	EXPECT_EQ(2U, g->s.data);
	EXPECT_EQ(150U, (unsigned int)g->s.read_bytes);
	ASSERT_EQ(30, write_pat(g->fds[1], 350, 30));
	ASSERT_TRUE(reap_until(&g->rp, 380, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[g->rp.nlog - 1].type);
	EXPECT_STREAM(&g->s, 0, 380);
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
}

/*
 *   full; write(100): READ owed; close the write end: EOF owed
 *   reap; poll --> READ 100, then EOF
 */
TEST_F(owed, owed_eof_comes_after_the_owed_read)
{
	struct rig *g = &self->g;

	g->rp.raw = true;
	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	pt_close_end(&g->fds[1]);
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_EQ(2U, reap(&g->rp));
	EXPECT_EQ(POLLIN, pt_revents(g->r.fd, POLLIN) & POLLIN);
	ASSERT_TRUE(reap_until(&g->rp, 300, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	ASSERT_EQ(4U, g->rp.nlog);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[2].type);
	EXPECT_EQ(AIOPIPE_EV_EOF, g->rp.log[3].type);
	EXPECT_FALSE(g->s.after_eof);
	EXPECT_STREAM(&g->s, 0, 300);
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
}

/* An EOF alone on a full ring is owed as well. */
TEST_F(owed, eof_due_on_a_full_ring_is_owed)
{
	struct rig *g = &self->g;

	fill_event_ring(_metadata, g);
	pt_close_end(&g->fds[1]);
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	EXPECT_EQ(1, RSTAT(g->fds[0], ring_owed));
	ASSERT_TRUE(reap_until(&g->rp, 200, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(3U, g->rp.events);
	EXPECT_STREAM(&g->s, 0, 200);
}

/*
 * A reader that lets the two slots fill again and again: many writes,
 * one event reaped every few, RING_WAIT now and then; then EOF.  Every
 * byte arrives once, in order, whatever was owed on the way.
 */
TEST_F_TIMEOUT(owed, nothing_is_lost_while_the_event_ring_keeps_filling, 120)
{
	struct rig *g = &self->g;
	uint64_t seed = pt_seed(), rng = seed;
	size_t off = 0;

	TH_LOG("seed %#llx", (unsigned long long)seed);
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], true));
	for (int i = 0; i < 1000 && !g->rp.err[0]; i++) {
		ssize_t n = write_pat(g->fds[1], off,
				      pt_rand_range(&rng, 1, 3 * OW_BUF));

		if (n > 0)
			off += n;
		else
			ASSERT_EQ(-EAGAIN, n);
		if (pt_rand(&rng) % 4 == 0)
			reap_max(&g->rp, 1);
		if (pt_rand(&rng) % 16 == 0)
			aiopipe_ring_wait(&g->r, 1, 0);
	}
	pt_close_end(&g->fds[1]);
	EXPECT_TRUE(reap_until(&g->rp, off, true, AP_LONG_MS))
		TH_LOG("%zu of %zu bytes, eof %u", reaped_bytes(&g->rp), off,
		       g->s.eofs);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, off);
	EXPECT_FALSE(g->s.after_eof);
	EXPECT_LT(0, RSTAT(g->fds[0], ring_owed));
	TH_LOG("%zu bytes: %u DATA, %u READ, owed %lld", off, g->s.data,
	       g->s.reads, RSTAT(g->fds[0], ring_owed));
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
}

/*
 *   full; write(100): READ owed
 *   detach: the owed event is dropped, F_OWED cleared;
 *   read(2) finds the 100 bytes
 */
TEST_F(owed, detach_drops_the_owed_event_and_leaves_the_bytes)
{
	struct rig *g = &self->g;
	unsigned char buf[200];

	fill_event_ring(_metadata, g);
	ASSERT_EQ(100, write_pat(g->fds[1], 200, 100));
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	EXPECT_EQ(2U, reap(&g->rp));
	EXPECT_EQ(-ETIME, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_EQ(0U, g->r.hdr->flags & AIOPIPE_RING_F_OWED);
	EXPECT_EQ(100, read_exactly(g->fds[0], buf, 100, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(buf, 100, 200));
}

/* ---- RING_WAIT, poll, epoll, IOCB_CMD_POLL, io_uring ------------------- */

#define WT_ENTRIES	16

FIXTURE(wait) {
	struct rig g;
};

FIXTURE_SETUP(wait)
{
	rig_open(_metadata, &self->g, WT_ENTRIES, 16, 256,
		 AIOPIPE_ENGINE_RETRY, true);
}

FIXTURE_TEARDOWN(wait)
{
	rig_close(&self->g);
}

/* A thread blocked in RING_WAIT. */
struct waiter {
	struct aiopipe_ring *r;
	unsigned int min;
	long long timeout_ns;
	pid_t tid;
	int ret;
	bool done;
	pthread_t t;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	__atomic_store_n(&w->tid, pt_gettid(), __ATOMIC_RELEASE);
	w->ret = aiopipe_ring_wait(w->r, w->min, w->timeout_ns);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Start @w and wait until it sleeps in the ioctl; false if it never did. */
static bool waiter_start(struct waiter *w)
{
	int64_t t0 = ap_now_ns();

	if (pthread_create(&w->t, NULL, waiter_main, w))
		return false;
	while (!__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE))
		if (ap_ms_since(t0) > AP_LONG_MS)
			return false;
	return pt_thread_blocked(w->tid, SYS_ioctl);
}

static bool waiter_done(struct waiter *w, int ms)
{
	int64_t t0 = ap_now_ns();

	while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) {
		if (ap_ms_since(t0) > ms)
			return false;
		ap_sleep_us(AP_POLL_US);
	}
	return pt_join(w->t, NULL);
}

/* CPU time of thread @t in microseconds, or -1. */
static long long thread_cpu_us(pthread_t t)
{
	struct timespec ts;
	clockid_t cid;

	if (pthread_getcpuclockid(t, &cid) || clock_gettime(cid, &ts))
		return -1;
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

TEST_F(wait, wait_returns_the_number_of_unreaped_events)
{
	struct rig *g = &self->g;

	for (int i = 0; i < 3; i++)
		ASSERT_EQ(10, write_pat(g->fds[1], 10 * i, 10));
	EXPECT_EQ(3, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_EQ(3, aiopipe_ring_wait(&g->r, 3, 0));
	EXPECT_EQ(3, aiopipe_ring_wait(&g->r, 3, -1));
	EXPECT_EQ(-ETIME, aiopipe_ring_wait(&g->r, 4, 0));
	EXPECT_EQ(1U, reap_max(&g->rp, 1));
	EXPECT_EQ(2, aiopipe_ring_wait(&g->r, 1, 0));
	reap(&g->rp);
	EXPECT_EQ(-ETIME, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_REAP_OK(&g->rp);
}

/*
 *   waiter: RING_WAIT(min 3, no timeout)
 *   write, write --> 2 events: the waiter sleeps on
 *   write ---------> 3: it returns 3
 */
TEST_F(wait, wait_sleeps_until_min_events_are_posted)
{
	struct rig *g = &self->g;
	struct waiter w = { .r = &g->r, .min = 3, .timeout_ns = -1 };

	ASSERT_TRUE(waiter_start(&w));
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(10, write_pat(g->fds[1], 10 * i, 10));
	EXPECT_TRUE(pt_thread_blocked(w.tid, SYS_ioctl));
	EXPECT_FALSE(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	ASSERT_EQ(10, write_pat(g->fds[1], 20, 10));
	ASSERT_TRUE(waiter_done(&w, AP_LONG_MS));
	EXPECT_EQ(3, w.ret);
}

/*
 *   waiter thread: RING_WAIT(1, no timeout): sleeps
 *   its CPU time over AP_QUIET_MS x 3: ~0 (it sleeps, it does not spin)
 *   write(1) ----------------------------> returns 1
 */
TEST_F(wait, blocked_waiter_uses_no_cpu_and_a_writer_wakes_it)
{
	struct rig *g = &self->g;
	struct waiter w = { .r = &g->r, .min = 1, .timeout_ns = -1 };
	long long c0, c1;

	ASSERT_TRUE(waiter_start(&w));
	c0 = thread_cpu_us(w.t);
	ap_sleep_us(3 * AP_QUIET_MS * 1000);
	c1 = thread_cpu_us(w.t);
	ASSERT_LE(0, c0);
	EXPECT_GT(10000, c1 - c0) TH_LOG("the blocked waiter used %lld us of CPU",
					 c1 - c0);
	EXPECT_EQ('S', pt_task_state(getpid(), w.tid));
	EXPECT_FALSE(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
	ASSERT_TRUE(waiter_done(&w, AP_LONG_MS));
	EXPECT_EQ(1, w.ret);
}

static void on_sigusr1(int sig)
{
}

TEST_F(wait, signal_interrupts_a_blocked_wait_with_eintr)
{
	struct rig *g = &self->g;
	struct waiter w = { .r = &g->r, .min = 1, .timeout_ns = -1 };

	ASSERT_EQ(0, pt_handle_signal(SIGUSR1, on_sigusr1, false));
	ASSERT_TRUE(waiter_start(&w));
	ASSERT_EQ(0, pthread_kill(w.t, SIGUSR1));
	ASSERT_TRUE(waiter_done(&w, AP_LONG_MS));
	EXPECT_EQ(-EINTR, w.ret);
}

/* The last writer's close wakes a waiter: the EOF event. */
TEST_F(wait, last_writer_closing_wakes_the_waiter_with_eof)
{
	struct rig *g = &self->g;
	struct waiter w = { .r = &g->r, .min = 1, .timeout_ns = -1 };

	ASSERT_TRUE(waiter_start(&w));
	pt_close_end(&g->fds[1]);
	ASSERT_TRUE(waiter_done(&w, AP_LONG_MS));
	EXPECT_EQ(1, w.ret);
	ASSERT_TRUE(reap_until(&g->rp, 0, true, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(1U, g->s.eofs);
}

/* A waiter with a timeout that a writer beats returns the count. */
TEST_F(wait, writer_beats_the_timeout)
{
	struct rig *g = &self->g;
	struct waiter w = { .r = &g->r, .min = 1,
			    .timeout_ns = 60 * 1000000000LL };

	ASSERT_TRUE(waiter_start(&w));
	ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
	ASSERT_TRUE(waiter_done(&w, AP_LONG_MS));
	EXPECT_EQ(1, w.ret);
}

/* The same from a writer in another process (another mm). */
TEST_F(wait, writer_in_another_process_wakes_the_waiter)
{
	struct rig *g = &self->g;
	struct waiter w = { .r = &g->r, .min = 1, .timeout_ns = -1 };
	int status;
	pid_t pid;

	ASSERT_TRUE(waiter_start(&w));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(write_pat(g->fds[1], 0, 700) == 700 ? 0 : 1);
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	ASSERT_TRUE(waiter_done(&w, AP_LONG_MS));
	EXPECT_LE(1, w.ret);		/* 700 bytes: 3 buffers of 256 */
	EXPECT_GE(3, w.ret);
	ASSERT_TRUE(reap_until(&g->rp, 700, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 700);
}

/*
 * ROUNDS rounds:
 *   test (writer)                     waiter thread
 *                                     RING_WAIT / epoll_wait (10 s guard)
 *   write(1..256): one DATA event -->  wakes, reaps, acks
 *   wait for the ack; a little spin
 * The writer writes while the waiter is on its way back to sleep: a lost
 * wakeup is a round whose wait runs into its guard.
 */
#define ROUNDS	1000

struct loop {
	struct rig *g;
	int ep;			/* epoll fd, or -1: RING_WAIT */
	int ack;		/* eventfd: one count per event reaped */
	unsigned int lost_round;	/* 0, or the round that timed out + 1 */
	unsigned int spurious;
};

static void *loop_waiter(void *arg)
{
	struct loop *l = arg;
	unsigned int reaped = 0;

	while (reaped < ROUNDS) {
		uint64_t n;
		int ret;

		if (l->ep >= 0) {
			struct epoll_event ee;

			do {
				ret = epoll_wait(l->ep, &ee, 1, AP_LONG_MS);
			} while (ret < 0 && errno == EINTR);
		} else {
			ret = aiopipe_ring_wait(&l->g->r, 1,
						AP_LONG_MS * 1000000LL);
			ret = ret == -ETIME ? 0 : ret;
		}
		if (ret <= 0) {
			l->lost_round = reaped + 1;
			break;
		}
		n = reap(&l->g->rp);
		if (!n) {
			l->spurious++;
			continue;
		}
		reaped += n;
		if (write(l->ack, &n, sizeof(n)) != sizeof(n))
			break;
	}
	return NULL;
}

static void run_wakeup_loop(struct __test_metadata *_metadata, struct rig *g,
			    int ep)
{
	struct loop l = { .g = g, .ep = ep };
	uint64_t seed = pt_seed(), rng = seed;
	size_t off = 0;
	pthread_t t;
	int i;

	l.ack = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, l.ack);
	ASSERT_EQ(0, pthread_create(&t, NULL, loop_waiter, &l));
	for (i = 0; i < ROUNDS; i++) {
		size_t n = pt_rand_range(&rng, 1, 256);
		uint64_t acked;
		int64_t spin = pt_rand_range(&rng, 0, 50000);
		int64_t t0;

		ASSERT_EQ((ssize_t)n, write_pat(g->fds[1], off, n));
		off += n;
		if (ap_poll1(l.ack, POLLIN, 2 * AP_LONG_MS) != 1)
			break;
		ASSERT_EQ((ssize_t)sizeof(acked), read(l.ack, &acked, sizeof(acked)));
		ASSERT_EQ(1ULL, (unsigned long long)acked);
		for (t0 = ap_now_ns(); ap_now_ns() - t0 < spin;)
			;
	}
	EXPECT_EQ(ROUNDS, i) TH_LOG("round %d: no ack; the waiter lost round %u",
				    i, l.lost_round);
	EXPECT_TRUE(pt_join(t, NULL));
	EXPECT_EQ(0U, l.lost_round);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, off);
	TH_LOG("seed %#llx, %u spurious wakeups", (unsigned long long)seed,
	       l.spurious);
	close(l.ack);
}

TEST_F_TIMEOUT(wait, ring_wait_misses_no_wakeup_in_many_rounds, 300)
{
	run_wakeup_loop(_metadata, &self->g, -1);
}

TEST_F_TIMEOUT(wait, epoll_misses_no_wakeup_in_many_rounds, 300)
{
	struct epoll_event ee = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->g.r.fd, &ee));
	run_wakeup_loop(_metadata, &self->g, ep);
	close(ep);
}

/*
 *   empty: not readable
 *   write --> POLLIN | POLLRDNORM
 *   reap ---> not readable again
 */
TEST_F(wait, poll_is_readable_while_events_are_unreaped)
{
	struct rig *g = &self->g;

	EXPECT_EQ(0, pt_revents(g->r.fd, POLLIN | POLLRDNORM));
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	EXPECT_EQ(POLLIN | POLLRDNORM, pt_revents(g->r.fd, POLLIN | POLLRDNORM));
	reap(&g->rp);
	EXPECT_EQ(0, pt_revents(g->r.fd, POLLIN | POLLRDNORM));
	EXPECT_REAP_OK(&g->rp);
}

/* A poll that sleeps on the ring fd is woken by the write. */
TEST_F(wait, blocked_poll_is_woken_by_a_writer)
{
	struct rig *g = &self->g;
	struct pt_call c = { .fn = pt_do_poll, .fd = g->r.fd, .arg = POLLIN };

	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_wait_blocked2(getpid(), c.tid, SYS_poll, SYS_ppoll));
	ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(POLLIN, c.ret & POLLIN);
}

/*
 *   io_submit(IOCB_CMD_POLL ring fd, POLLIN) --> queued, no event
 *   write(1) --------------------------------> completes with POLLIN
 */
TEST_F(wait, iocb_cmd_poll_on_the_ring_fd_completes_when_an_event_arrives)
{
	struct rig *g = &self->g;
	io_context_t ctx = 0;
	struct io_event ev;
	struct iocb cb;

	ASSERT_EQ(0, io_setup(4, &ctx));
	io_prep_poll(&cb, g->r.fd, POLLIN);
	ASSERT_EQ(1, ap_submit1(ctx, &cb));
	EXPECT_TRUE(ap_no_event(ctx));
	ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
	EXPECT_EQ(1, ap_getevents(ctx, 1, 1, &ev, AP_LONG_MS));
	EXPECT_EQ(POLLIN, (int)ev.res & POLLIN);
	io_destroy(ctx);
}

TEST_F(wait, io_uring_poll_add_on_the_ring_fd_completes_when_an_event_arrives)
{
	struct rig *g = &self->g;
	struct __kernel_timespec ts = { .tv_nsec = AP_QUIET_MS * 1000000L };
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	struct io_uring_sqe *sqe;

	ASSERT_EQ(0, io_uring_queue_init(4, &ring, 0));
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_poll_add(sqe, g->r.fd, POLLIN);
	io_uring_sqe_set_data64(sqe, 7);
	ASSERT_EQ(1, io_uring_submit(&ring));
	EXPECT_EQ(-ETIME, io_uring_wait_cqe_timeout(&ring, &cqe, &ts));
	ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
	ts.tv_sec = AP_LONG_MS / 1000;
	ts.tv_nsec = 0;
	ASSERT_EQ(0, io_uring_wait_cqe_timeout(&ring, &cqe, &ts));
	EXPECT_EQ(7ULL, (unsigned long long)cqe->user_data);
	EXPECT_EQ(POLLIN, cqe->res & POLLIN);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
}

/*
 * The ring fd has no read(2): EINVAL at once, from read(2) and from an
 * io_uring READ, whether or not events are ready (io_uring does not poll
 * the fd and retry a read that can never succeed):
 *   read(ring fd) -------------------> EINVAL
 *   io_uring READ, no event ---------> CQE EINVAL
 *   write(1): one event; READ again -> CQE EINVAL
 */
TEST_F(wait, read_of_the_ring_fd_is_einval_now_and_once_readable)
{
	struct rig *g = &self->g;
	struct __kernel_timespec ts = { .tv_sec = AP_LONG_MS / 1000 };
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	char buf[64];

	EXPECT_EQ(-1, read(g->r.fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, io_uring_queue_init(4, &ring, 0));
	for (int round = 0; round < 2; round++) {
		if (round)
			ASSERT_EQ(1, write_pat(g->fds[1], 0, 1));
		io_uring_prep_read(io_uring_get_sqe(&ring), g->r.fd, buf,
				   sizeof(buf), 0);
		ASSERT_EQ(1, io_uring_submit(&ring));
		ASSERT_EQ(0, io_uring_wait_cqe_timeout(&ring, &cqe, &ts))
			TH_LOG("round %d: no completion of the READ", round);
		EXPECT_EQ(-EINVAL, cqe->res);
		io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_queue_exit(&ring);
}

/* ---- fork, exit, close ---------------------------------------------------- */

FIXTURE(life) {
	struct rig g;
	long long base_channels;
};

FIXTURE_SETUP(life)
{
	self->base_channels = RSTAT(-1, channels);
	rig_open(_metadata, &self->g, 16, 4, 1024, AIOPIPE_ENGINE_RETRY, true);
}

FIXTURE_TEARDOWN(life)
{
	rig_close(&self->g);
}

/*
 *   parent                            child (fork: shares fd and mapping)
 *                                     write(1500), write(100); exit
 *   reaps DATA 1024, DATA 476, DATA 100
 */
TEST_F(life, child_writes_and_parent_reaps)
{
	struct rig *g = &self->g;
	int status;
	pid_t pid;

	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(write_pat(g->fds[1], 0, 1500) == 1500 &&
		      write_pat(g->fds[1], 1500, 100) == 100 ? 0 : 1);
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	ASSERT_TRUE(reap_until(&g->rp, 1600, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(3U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 1600);
}

/*
 *   parent                            child
 *   write(1000) x 3: 3 DATA
 *                                     reaps them through the inherited
 *                                     mapping, hands the buffers back, exits
 *   ev_head 3, buf_tail 7
 *   write(1000) x 4: DATA again (the 3 buffers came back; the ring lives on)
 */
TEST_F(life, child_reaps_the_parents_events_through_the_shared_mapping)
{
	struct rig *g = &self->g;
	int status;
	pid_t pid;

	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1000, write_pat(g->fds[1], 1000 * i, 1000));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (!reap_until(&g->rp, 3000, false, AP_LONG_MS))
			_exit(1);
		if (g->rp.err[0] || g->s.data != 3)
			_exit(2);
		_exit(ap_check(g->s.got, g->s.len, 0) == -1 &&
		      g->s.len == 3000 ? 0 : 3);
	}
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(3U, g->r.hdr->ev_head);
	EXPECT_EQ(7U, g->r.hdr->buf_tail);
	stream_free(&g->s);
	stream_init(&g->s, g->fds[0], UD);
	reaper_init(&g->rp, &g->r, &g->s, 1);
	g->rp.keep = true;
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(1000, write_pat(g->fds[1], 1000 * i, 1000));
	ASSERT_TRUE(reap_until(&g->rp, 4000, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(4U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 4000);
}

/*
 *   child: a ring of its own; the parent's pair P and 3 pairs of its own
 *   attached; DATA it never reaps, buffers it never hands back, READ and
 *   EOF owed; exits with all of it open
 *   parent: the channels count is back; P is detached (attachable to a
 *   new ring), reads as a pipe
 */
TEST_F(life, exit_with_events_unreaped_and_buffers_held_leaks_nothing)
{
	struct rig *g = &self->g;
	int p[2], status;
	char buf[16];
	pid_t pid;

	ASSERT_EQ(0, ring_pair(p, AIOPIPE_ENGINE_RETRY));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct aiopipe_ring r;
		int q[3][2];

		if (aiopipe_ring_setup(&r, 4, 2, 256, 0) ||
		    aiopipe_ring_attach(&r, p[0], 1))
			_exit(1);
		if (write_pat(p[1], 0, 100) != 100)
			_exit(2);
		for (int i = 0; i < 3; i++) {
			if (ring_pair(q[i], AIOPIPE_ENGINE_RETRY) ||
			    aiopipe_ring_attach(&r, q[i][0], 10 + i) ||
			    write_pat(q[i][1], 0, 600) != 600)
				_exit(3);
		}
		close(q[2][1]);		/* EOF owed: the ring is full */
		if (!(r.hdr->flags & AIOPIPE_RING_F_OWED))
			_exit(4);
		_exit(0);
	}
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	ASSERT_EQ(0, status);
	EXPECT_EQ(0, ap_fionread(p[0]));
	EXPECT_EQ(0, aiopipe_ring_attach(&g->r, p[0], 2));
	EXPECT_EQ(0, aiopipe_ring_detach(&g->r, p[0]));
	ASSERT_EQ(5, write(p[1], "after", 5));
	EXPECT_EQ(5, read_exactly(p[0], buf, 5, AP_LONG_MS));
	EXPECT_EQ(0, memcmp(buf, "after", 5));
	backend_close(p);
	EXPECT_EQ(self->base_channels + 1,
		  AP_WAIT_STAT_LE(-1, channels, self->base_channels + 1,
				  AP_LONG_MS));
	AP_EXPECT_IDLE(-1);
}

/*
 *   pipes A, B attached; a DATA each
 *   munmap + close of the ring (its last references)
 *   writes to A and B now stay in the pipes: read(2) gets them
 *   A and B can be attached to a new ring
 */
TEST_F(life, closing_the_ring_detaches_every_pipe)
{
	struct rig *g = &self->g;
	unsigned char buf[64];
	struct aiopipe_ring r2;
	int b[2];

	ASSERT_EQ(0, ring_pair(b, AIOPIPE_ENGINE_RETRY));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, b[0], UD + 1));
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	ASSERT_EQ(10, write_pat(b[1], 0, 10));
	ASSERT_EQ(2, aiopipe_ring_wait(&g->r, 2, 0));
	aiopipe_ring_exit(&g->r);
	g->up = false;
	ASSERT_EQ(20, write_pat(g->fds[1], 10, 20));
	ASSERT_EQ(30, write_pat(b[1], 10, 30));
	EXPECT_EQ(20, read_exactly(g->fds[0], buf, 20, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(buf, 20, 10));
	EXPECT_EQ(30, read_exactly(b[0], buf, 30, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(buf, 30, 10));
	ASSERT_EQ(0, aiopipe_ring_setup(&r2, 4, 4, 64, O_CLOEXEC));
	EXPECT_EQ(0, aiopipe_ring_attach(&r2, g->fds[0], UD));
	EXPECT_EQ(0, aiopipe_ring_attach(&r2, b[0], UD + 1));
	aiopipe_ring_exit(&r2);
	backend_close(b);
}

/*
 *   close the ring fd, keep the mapping: the ring lives on, writes are
 *   DATA events in the mapping
 *   munmap (the last reference) --> detached: writes stay in the pipe
 */
TEST_F(life, mapping_keeps_the_ring_alive_after_its_fd_is_closed)
{
	struct rig *g = &self->g;
	unsigned char buf[64];

	close(g->r.fd);
	g->r.fd = -1;
	ASSERT_EQ(50, write_pat(g->fds[1], 0, 50));
	EXPECT_EQ(1U, reap(&g->rp));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 50);
	EXPECT_EQ(0, ap_fionread(g->fds[0]));
	munmap(g->r.map, g->r.map_size);
	g->r.map = NULL;
	g->up = false;
	ASSERT_EQ(20, write_pat(g->fds[1], 50, 20));
	EXPECT_EQ(20, read_exactly(g->fds[0], buf, 20, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(buf, 20, 50));
}

/*
 *   read end R attached, and a dup R2 of it
 *   close R --> still attached (R2 is the same open file): DATA
 *   close R2 -> the last read end: detached; writes are EPIPE
 *   the ring goes on with another pipe; the channel is freed
 */
TEST_F(life, closing_the_last_read_end_detaches_the_pipe)
{
	struct rig *g = &self->g;
	struct stream s;
	struct reaper rp;
	int r2 = dup(g->fds[0]), c[2];

	ASSERT_LE(0, r2);
	ASSERT_NE(SIG_ERR, signal(SIGPIPE, SIG_IGN));
	pt_close_end(&g->fds[0]);
	g->s.rfd = r2;
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	ASSERT_TRUE(reap_until(&g->rp, 10, false, AP_LONG_MS));
	EXPECT_EQ(1U, g->s.data);
	close(r2);
	EXPECT_EQ(-EPIPE, write_pat(g->fds[1], 10, 10));
	EXPECT_EQ(-EBADF, aiopipe_ring_detach(&g->r, r2));
	pt_close_end(&g->fds[1]);
	EXPECT_TRUE(ring_quiet(&g->r));
	EXPECT_EQ(self->base_channels,
		  AP_WAIT_STAT_LE(-1, channels, self->base_channels,
				  AP_LONG_MS));
	ASSERT_EQ(0, ring_pair(c, AIOPIPE_ENGINE_RETRY));
	stream_init(&s, c[0], UD + 1);
	reaper_init(&rp, &g->r, &s, 1);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, c[0], UD + 1));
	ASSERT_EQ(10, write_pat(c[1], 0, 10));
	ASSERT_TRUE(reap_until(&rp, 10, false, AP_LONG_MS));
	EXPECT_REAP_OK(&rp);
	EXPECT_STREAM(&s, 0, 10);
	stream_free(&s);
	backend_close(c);
}

/*
 *   all 4 buffers kept, the pipe full (READ events), a writer thread
 *   blocked in write(2)
 *   the ring closed (munmap + close) --> a plain pipe: read(2) gets the
 *   announced bytes, the blocked write goes on and its bytes follow
 */
TEST_F(life, closing_the_ring_under_a_blocked_writer_leaves_a_plain_pipe)
{
	struct rig *g = &self->g;
	int cap = aiopipe_get_capacity(g->fds[1]);
	unsigned char *src = malloc(PIPE_BUF), *buf = malloc(cap + PIPE_BUF);
	struct pt_call c = { .fn = pt_do_write, .fd = g->fds[1], .buf = src,
			     .len = PIPE_BUF };
	size_t off;
	ssize_t n;

	ASSERT_LT(0, cap);
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, buf);
	g->rp.keep = true;
	ASSERT_EQ(4096, write_pat(g->fds[1], 0, 4096));
	ASSERT_TRUE(reap_until(&g->rp, 4096, false, AP_LONG_MS));
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], true));
	for (off = 4096; (n = write_pat(g->fds[1], off, PIPE_BUF)) > 0;)
		off += n;
	ASSERT_EQ(-EAGAIN, n);
	ASSERT_EQ(0, pt_set_nonblock(g->fds[1], false));
	ap_fill(src, PIPE_BUF, off);
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	aiopipe_ring_exit(&g->r);
	g->up = false;
	n = read_exactly(g->fds[0], buf, off - 4096 + PIPE_BUF, AP_LONG_MS);
	EXPECT_EQ((ssize_t)(off - 4096 + PIPE_BUF), n);
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(PIPE_BUF, c.ret);
	EXPECT_EQ(-1, ap_check(buf, n > 0 ? (size_t)n : 0, 4096));
	free(src);
	free(buf);
}

/* A second mapping of the ring fd shows the same ring. */
TEST_F(life, two_mappings_show_the_same_ring)
{
	struct rig *g = &self->g;
	unsigned char *m2 = mmap(NULL, g->r.map_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, g->r.fd, 0);
	struct aiopipe_ring_hdr *h2 = (void *)m2;
	const struct aiopipe_ring_event *ev;

	ASSERT_NE(MAP_FAILED, m2);
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	EXPECT_EQ(1U, __atomic_load_n(&h2->ev_tail, __ATOMIC_ACQUIRE));
	ev = (const void *)(m2 + ((unsigned char *)g->r.events -
				  (unsigned char *)g->r.map));
	EXPECT_EQ(AIOPIPE_EV_DATA, ev->type);
	EXPECT_EQ(0, memcmp(m2 + (g->r.bufs - (unsigned char *)g->r.map) +
			    (size_t)ev->buf * g->r.buf_size,
			    aiopipe_ring_buf(&g->r, ev->buf), 10));
	h2->ev_head = 1;	/* reaped through the second mapping */
	EXPECT_EQ(0U, aiopipe_ring_ready(&g->r));
	munmap(m2, g->r.map_size);
}

/*
 * A ring closed with READ events unreaped: the announced bytes are still
 * in the pipe, read(2) finds them, then what is written later.
 */
TEST_F(life, bytes_announced_by_read_events_outlive_the_ring)
{
	struct rig *g = &self->g;
	unsigned char buf[8192];

	g->rp.keep = true;
	ASSERT_EQ(4096, write_pat(g->fds[1], 0, 4096));	/* 4 buffers */
	ASSERT_TRUE(reap_until(&g->rp, 4096, false, AP_LONG_MS));
	ASSERT_EQ(700, write_pat(g->fds[1], 4096, 700));	/* READ 700 */
	ASSERT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	aiopipe_ring_exit(&g->r);
	g->up = false;
	ASSERT_EQ(300, write_pat(g->fds[1], 4796, 300));
	EXPECT_EQ(1000, read_exactly(g->fds[0], buf, 1000, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(buf, 1000, 4096));
	EXPECT_EQ(-EAGAIN, ap_read_now(g->fds[0], buf, sizeof(buf)));
}

/* ---- memory accounting ------------------------------------------------- */

/* What the unprivileged child saw: 0 or -errno per step. */
struct ml_report {
	int dropped;		/* 0, or the errno of the privilege drop */
	int limit;		/* setrlimit */
	int big;		/* a ring above the limit */
	int first;		/* a ring within it */
	int second;		/* another one while the first is open */
	int again;		/* the second again, after closing the first */
	int again_ms;		/* how long the charge took to go */
};

#define ML_LIMIT	(256 * 1024)

FIXTURE(memlock) {
	struct ml_report *rep;
};

FIXTURE_SETUP(memlock)
{
	self->rep = MAP_FAILED;
	if (geteuid() != 0)
		SKIP(return, "needs root to drop to nobody");
	self->rep = mmap(NULL, sizeof(*self->rep), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->rep);
	memset(self->rep, 0, sizeof(*self->rep));
}

FIXTURE_TEARDOWN(memlock)
{
	if (self->rep != MAP_FAILED)
		munmap(self->rep, sizeof(*self->rep));
}

/*
 *   child as nobody (no CAP_IPC_LOCK), RLIMIT_MEMLOCK 256 KiB
 *   ring of 64 x 16 KiB (1 MiB) --------> ENOMEM
 *   ring of 8 x 16 KiB (128 KiB + header) -> works
 *   a second one while it is open -------> ENOMEM (past the limit)
 *   close the first; the second again ---> works: the charge is gone
 */
TEST_F(memlock, rings_of_an_unprivileged_user_count_against_rlimit_memlock)
{
	struct ml_report *rep = self->rep;
	struct rlimit rl = { ML_LIMIT, ML_LIMIT };
	int status;
	pid_t pid;

	RING_BEGIN();
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct aiopipe_ring a, b;
		int64_t t0;

		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY) || geteuid() != NOBODY) {
			rep->dropped = errno ?: EPERM;
			_exit(1);
		}
		rep->limit = setrlimit(RLIMIT_MEMLOCK, &rl) ? -errno : 0;
		rep->big = aiopipe_ring_setup(&a, 8, 64, 16384, 0);
		if (!rep->big)
			aiopipe_ring_exit(&a);
		rep->first = aiopipe_ring_setup(&a, 8, 8, 16384, 0);
		rep->second = aiopipe_ring_setup(&b, 8, 8, 16384, 0);
		if (!rep->second)
			aiopipe_ring_exit(&b);
		if (!rep->first)
			aiopipe_ring_exit(&a);
		t0 = ap_now_ns();
		do {
			rep->again = aiopipe_ring_setup(&b, 8, 8, 16384, 0);
		} while (rep->again == -ENOMEM && ap_ms_since(t0) < AP_LONG_MS &&
			 (ap_sleep_us(AP_POLL_US), true));
		rep->again_ms = (int)ap_ms_since(t0);
		if (!rep->again)
			aiopipe_ring_exit(&b);
		_exit(0);
	}
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS * 2, &status));
	ASSERT_EQ(0, rep->dropped) TH_LOG("drop to nobody: %s",
					  strerror(rep->dropped));
	ASSERT_EQ(0, rep->limit);
	EXPECT_EQ(-ENOMEM, rep->big);
	EXPECT_EQ(0, rep->first);
	EXPECT_EQ(-ENOMEM, rep->second);
	EXPECT_EQ(0, rep->again);
	EXPECT_GT(100, rep->again_ms) TH_LOG("the charge went after %d ms",
					     rep->again_ms);
}

/* ---- a reader that writes anything into the mapping --------------------- */

FIXTURE(hostile) {
	struct rig g;
};

FIXTURE_SETUP(hostile)
{
	rig_open(_metadata, &self->g, 8, 4, 256, AIOPIPE_ENGINE_RETRY, true);
	ASSERT_EQ(0, pt_set_nonblock(self->g.fds[1], true));
}

FIXTURE_TEARDOWN(hostile)
{
	rig_close(&self->g);
}

/*
 *   all 4 buffers kept; bufids[4 & 3] = 999, buf_tail 5
 *   write(10) --> id 999 skipped: no buffer, READ 10
 *   a good id back; read the 10; write(10) --> DATA in that buffer
 */
TEST_F(hostile, handed_back_id_out_of_range_is_skipped)
{
	struct rig *g = &self->g;

	g->rp.keep = true;
	ASSERT_EQ(1024, write_pat(g->fds[1], 0, 1024));
	ASSERT_TRUE(reap_until(&g->rp, 1024, false, AP_LONG_MS));
	aiopipe_ring_give_back(&g->r, 999);
	ASSERT_EQ(10, write_pat(g->fds[1], 1024, 10));
	ASSERT_TRUE(reap_until(&g->rp, 1034, false, AP_LONG_MS));
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[g->rp.nlog - 1].type);
	aiopipe_ring_give_back(&g->r, 2);
	ASSERT_EQ(10, write_pat(g->fds[1], 1034, 10));
	ASSERT_TRUE(reap_until(&g->rp, 1044, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(AIOPIPE_EV_DATA, g->rp.log[g->rp.nlog - 1].type);
	EXPECT_EQ(2, g->rp.log[g->rp.nlog - 1].buf);
	EXPECT_STREAM(&g->s, 0, 1044);
}

/*
 *   all kept; buffer 1 handed back twice
 *   write(10), write(20) --> DATA buf 1, DATA buf 1: the second write's
 *   bytes are in it; the reader lost only its own first 10 bytes
 */
TEST_F(hostile, same_id_handed_back_twice_overwrites_only_the_readers_data)
{
	struct rig *g = &self->g;
	struct aiopipe_ring_event e[2];

	g->rp.keep = true;
	ASSERT_EQ(1024, write_pat(g->fds[1], 0, 1024));
	ASSERT_TRUE(reap_until(&g->rp, 1024, false, AP_LONG_MS));
	aiopipe_ring_give_back(&g->r, 1);
	aiopipe_ring_give_back(&g->r, 1);
	ASSERT_EQ(10, write_pat(g->fds[1], 1024, 10));
	ASSERT_EQ(20, write_pat(g->fds[1], 1034, 20));
	ASSERT_EQ(2, aiopipe_ring_wait(&g->r, 2, 0));
	e[0] = g->r.events[g->r.hdr->ev_head & g->r.ev_mask];
	e[1] = g->r.events[(g->r.hdr->ev_head + 1) & g->r.ev_mask];
	EXPECT_EQ(AIOPIPE_EV_DATA, e[0].type);
	EXPECT_EQ(1, e[0].buf);
	EXPECT_EQ(AIOPIPE_EV_DATA, e[1].type);
	EXPECT_EQ(1, e[1].buf);
	EXPECT_EQ(-1, ap_check(aiopipe_ring_buf(&g->r, 1), 20, 1034));
	aiopipe_ring_advance(&g->r, 2);
}

/*
 *   buf_tail = buf_head + nr_bufs + 1 ("more free than there are"):
 *   no buffer: write(10) is READ 10
 */
TEST_F(hostile, buf_tail_too_far_ahead_means_no_buffer)
{
	struct rig *g = &self->g;

	g->r.hdr->buf_tail = g->r.hdr->buf_head + g->r.nr_bufs + 1;
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	ASSERT_TRUE(reap_until(&g->rp, 10, false, AP_LONG_MS));
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[0].type);
	EXPECT_EQ(0U, g->r.hdr->buf_head);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 10);
}

/*
 *   ev_head = ev_tail + 1 (UINT32_MAX events "unreaped"): no room;
 *   write(10) --> the pipe, READ owed; ev_head back: RING_WAIT posts it
 */
TEST_F(hostile, ev_head_ahead_of_ev_tail_means_no_room)
{
	struct rig *g = &self->g;

	g->r.hdr->ev_head = 1;
	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	EXPECT_EQ(0U, __atomic_load_n(&g->r.hdr->ev_tail, __ATOMIC_ACQUIRE));
	EXPECT_EQ(10, ap_fionread(g->fds[0]));
	EXPECT_EQ(AIOPIPE_RING_F_OWED, (int)(g->r.hdr->flags & AIOPIPE_RING_F_OWED));
	g->r.hdr->ev_head = 0;
	ASSERT_TRUE(reap_until(&g->rp, 10, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(AIOPIPE_EV_READ, g->rp.log[0].type);
	EXPECT_STREAM(&g->s, 0, 10);
}

/*
 * The kernel's fields overwritten: it keeps its own ev_tail and buf_head
 * and writes them again with the next event.
 */
TEST_F(hostile, kernel_fields_overwritten_are_the_kernels_own_again)
{
	struct rig *g = &self->g;
	struct aiopipe_ring_hdr *h = g->r.hdr;

	ASSERT_EQ(10, write_pat(g->fds[1], 0, 10));
	ASSERT_TRUE(reap_until(&g->rp, 10, false, AP_LONG_MS));
	h->ev_tail = 12345;
	h->buf_head = 0xdead;
	h->flags = ~0U;
	h->ev_mask = h->ev_entries = h->buf_mask = ~0U;
	h->nr_bufs = h->buf_size = 0;
	ASSERT_EQ(10, write_pat(g->fds[1], 10, 10));
	EXPECT_EQ(2U, __atomic_load_n(&h->ev_tail, __ATOMIC_ACQUIRE));
	EXPECT_EQ(2U, h->buf_head);
	EXPECT_EQ(1, aiopipe_ring_wait(&g->r, 1, 0));
	ASSERT_TRUE(reap_until(&g->rp, 20, false, AP_LONG_MS));
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 20);
}

/*
 * One mutation of the mapping.  @t0 is where the reader's ev_head was with
 * every event reaped: an ev_head in t0 + 1 .. t0 + entries would release
 * slots the kernel may then post over before the test has read them (a
 * reader's own loss, not the kernel's), so the round's recovery could not
 * tell the events apart; every other value is fair.  With @idle (no event
 * or buffer is the reader's) event slots and buffers get garbage too.
 */
static void mutate(struct aiopipe_ring *r, uint64_t *rng, __u32 t0, bool idle)
{
	struct aiopipe_ring_hdr *h = r->hdr;
	__u32 bh = h->buf_head, e = r->ev_mask + 1, n = r->nr_bufs;
	__u32 i = (__u32)pt_rand(rng);
	const __u32 heads[] = { 0, UINT32_MAX, t0 - e - 1, t0 - e,
				t0 - (i % (e + 1)), t0 + e + 1 + (i % 1000),
				t0 + 0x80000000U, t0 + e + 1 + i % 0x7fffffffU };
	const __u32 tails[] = { 0, UINT32_MAX, bh + n + 1, bh - 1, bh + 2 * n,
				bh + n, bh + (i % (n + 1)), i, 0x80000000U };
	const __u32 ids[] = { UINT32_MAX, n, n + (i % 100), 65535, 65536,
			      r->bufids[(i + 1) & r->buf_mask], i % n };

	switch (pt_rand(rng) % (idle ? 9 : 7)) {
	case 0:
	case 1:
		__atomic_store_n(&h->ev_head,
				 heads[pt_rand(rng) % (sizeof(heads) / 4)],
				 __ATOMIC_RELEASE);
		break;
	case 2:
	case 3:
		__atomic_store_n(&h->buf_tail,
				 tails[pt_rand(rng) % (sizeof(tails) / 4)],
				 __ATOMIC_RELEASE);
		break;
	case 4:
		r->bufids[i & r->buf_mask] = ids[pt_rand(rng) % (sizeof(ids) / 4)];
		break;
	case 5:
		h->ev_tail = (__u32)pt_rand(rng);
		h->buf_head = (__u32)pt_rand(rng);
		h->flags = (__u32)pt_rand(rng);
		break;
	case 6:
		h->ev_mask = (__u32)pt_rand(rng);
		h->ev_entries = (__u32)pt_rand(rng);
		h->buf_mask = (__u32)pt_rand(rng);
		h->nr_bufs = (__u32)pt_rand(rng);
		h->buf_size = (__u32)pt_rand(rng);
		break;
	case 7:
		memset(&r->events[i & r->ev_mask], (int)(i >> 8),
		       sizeof(r->events[0]));
		break;
	default:
		memset(aiopipe_ring_buf(r, i), (int)(i >> 16), r->buf_size);
	}
}

/*
 * One round: a fresh ring of a random geometry, a little clean traffic
 * (all reaped, all buffers back), then mutations of the mapping and
 * nonblocking writes among them.  Each write is accepted or EAGAIN.  Then
 * ev_head back where it was; what the kernel posted (RING_WAIT says how
 * much: at most entries) and what the pipe holds after a detach is every
 * byte written, in order (unless an id was taken twice: then the count).
 * Returns "" or what went wrong.
 */
static void hostile_round(uint64_t *rng, char *why, size_t len)
{
	unsigned int e = 1U << pt_rand_range(rng, 0, 3);
	unsigned int nb = 1U << pt_rand_range(rng, 0, 3);
	unsigned int bs = 64U << pt_rand_range(rng, 0, 3);
	bool seen[8] = { false }, dup = false;
	struct aiopipe_ring r;
	struct stream s;
	struct reaper rp;
	size_t off = 0;
	__u32 t0;
	int fds[2] = { -1, -1 }, n, k;

	why[0] = '\0';
	if (aiopipe_ring_setup(&r, e, nb, bs, O_CLOEXEC)) {
		snprintf(why, len, "ring setup: %s", strerror(errno));
		return;
	}
	if (ring_pair(fds, AIOPIPE_ENGINE_RETRY) ||
	    pt_set_nonblock(fds[1], true) ||
	    aiopipe_ring_attach(&r, fds[0], UD)) {
		snprintf(why, len, "pair/attach: %s", strerror(errno));
		goto out;
	}
	stream_init(&s, fds[0], UD);
	reaper_init(&rp, &r, &s, 1);
	for (k = (int)pt_rand_range(rng, 0, 3); k > 0; k--) {
		ssize_t w = write_pat(fds[1], off, pt_rand_range(rng, 1, 2 * bs));

		if (w > 0)
			off += w;
	}
	if (!reap_until(&rp, off, false, AP_LONG_MS) || rp.err[0]) {
		snprintf(why, len, "clean traffic: %zu of %zu bytes; %s",
			 reaped_bytes(&rp), off, rp.err);
		goto out_s;
	}
	t0 = r.hdr->ev_head;
	rp.keep = true;
	for (k = (int)pt_rand_range(rng, 1, 4); k > 0; k--)
		mutate(&r, rng, t0, true);
	for (k = (int)pt_rand_range(rng, 1, 6); k > 0; k--) {
		ssize_t w = write_pat(fds[1], off, pt_rand_range(rng, 1, 3 * bs));

		if (w > 0) {
			off += w;
		} else if (w != -EAGAIN) {
			snprintf(why, len, "write: %s", strerror((int)-w));
			goto out_s;
		}
		if (pt_rand(rng) % 3 == 0)
			mutate(&r, rng, t0, false);
	}
	__atomic_store_n(&r.hdr->ev_head, t0, __ATOMIC_RELEASE);
	n = aiopipe_ring_wait(&r, 1, 0);
	n = aiopipe_ring_wait(&r, 1, 0);	/* after any owed were posted */
	if (n == -ETIME)
		n = 0;
	if (n < 0 || n > (int)e) {
		snprintf(why, len, "RING_WAIT says %d unreaped of %u entries",
			 n, e);
		goto out_s;
	}
	for (k = 0; k < n; k++) {
		const struct aiopipe_ring_event *ev = &r.events[(t0 + k) & (e - 1)];

		if (ev->type == AIOPIPE_EV_DATA && ev->buf < nb) {
			dup |= seen[ev->buf];
			seen[ev->buf] = true;
		}
	}
	reap_range(&rp, t0, (unsigned int)n);
	if (rp.err[0]) {
		snprintf(why, len, "events: %s", rp.err);
		goto out_s;
	}
	if (aiopipe_ring_detach(&r, fds[0])) {
		snprintf(why, len, "detach: %s", strerror(errno));
		goto out_s;
	}
	drain_now(fds[0], &s.got, &s.len, &s.cap);
	if (s.len != off)
		snprintf(why, len, "%zu bytes written, %zu found (%u DATA, %u READ)",
			 off, s.len, s.data, s.reads);
	else if (!dup && ap_check(s.got, s.len, 0) != -1)
		snprintf(why, len, "wrong byte at %ld of %zu",
			 ap_check(s.got, s.len, 0), s.len);
out_s:
	stream_free(&s);
out:
	if (why[0])
		snprintf(why + strlen(why), len - strlen(why),
			 " [entries %u, %u buffers of %u]", e, nb, bs);
	backend_close(fds);
	aiopipe_ring_exit(&r);
}

/*
 * Clean traffic on a ring of a process of its own until told to stop:
 * every byte once, in order, and no write or wait ever stalls.
 * Exit status 0, or the step that failed.
 */
static int bystander(int stop_fd)
{
	struct aiopipe_ring r;
	struct stream s;
	struct reaper rp;
	uint64_t rng = 42;
	size_t off = 0;
	int fds[2];

	if (aiopipe_ring_setup(&r, 16, 8, 512, O_CLOEXEC) ||
	    ring_pair(fds, AIOPIPE_ENGINE_RETRY) ||
	    aiopipe_ring_attach(&r, fds[0], 7))
		return 10;
	stream_init(&s, fds[0], 7);
	reaper_init(&rp, &r, &s, 1);
	while (ap_poll1(stop_fd, POLLIN, 0) == 0) {
		size_t n = pt_rand_range(&rng, 1, 2000);

		if (write_pat(fds[1], off, n) != (ssize_t)n)
			return 11;
		off += n;
		if (!reap_until(&rp, off, false, GUARD_MS))
			return 12;
	}
	if (rp.err[0] || s.len != off || ap_check(s.got, s.len, 0) != -1)
		return 13;
	return 0;
}

/*
 *   test (hostile)                         bystander (another process)
 *   rounds of mutations and writes         its own ring, clean traffic
 *   each round: every byte recovered       every byte, never a stall
 */
TEST_F_TIMEOUT(hostile, hostile_indices_lose_no_byte_and_disturb_no_one, 300)
{
	uint64_t seed = pt_seed(), rng = seed;
	int stop[2], status, rounds = 0;
	char why[512] = "";
	int64_t t0 = ap_now_ns();
	pid_t pid;

	TH_LOG("seed %#llx", (unsigned long long)seed);
	ASSERT_EQ(0, pipe2(stop, O_CLOEXEC));
	pid = ap_fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(bystander(stop[0]));
	while (rounds < 2000 && ap_ms_since(t0) < 60000) {
		uint64_t round_seed = rng;

		hostile_round(&rng, why, sizeof(why));
		rounds++;
		if (why[0]) {
			TH_LOG("round %d (its generator state %#llx): %s",
			       rounds, (unsigned long long)round_seed, why);
			break;
		}
	}
	EXPECT_STREQ("", why);
	TH_LOG("%d rounds", rounds);
	ASSERT_EQ(1, write(stop[1], "s", 1));
	ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("bystander step %d",
						 WEXITSTATUS(status));
	backend_close(stop);
}

struct hammer {
	struct aiopipe_ring *r;
	uint64_t seed;
	bool stop;
	unsigned long writes;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	uint64_t rng = h->seed;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		/* no recovery here: anything goes, slots and buffers too */
		mutate(h->r, &rng, (__u32)pt_rand(&rng), true);
		h->writes++;
		if (h->writes % 64 == 0)
			sched_yield();
	}
	return NULL;
}

/*
 *   hammer thread                      test
 *   random values into ev_head,        nonblocking writes of random sizes,
 *   buf_tail, bufids, kernel fields,   RING_WAIT(0) and poll of the ring
 *   events, buffers: non-stop          fd, read(2) when the pipe is full
 *   stop; detach; read the rest
 *   every write returned; bytes written = ring_bytes + bytes read(2)
 *   (what went into buffers and what stayed in the pipe); the pipe then
 *   works as a pipe
 */
TEST_F_TIMEOUT(hostile, values_changing_under_a_writer_stall_nothing, 120)
{
	struct rig *g = &self->g;
	struct hammer h = { .r = &g->r, .seed = pt_seed() };
	uint64_t rng = h.seed ^ 1;
	size_t off = 0, got = 0;
	unsigned char buf[8];
	pthread_t t;

	TH_LOG("seed %#llx", (unsigned long long)h.seed);
	ASSERT_EQ(0, pthread_create(&t, NULL, hammer_main, &h));
	for (int i = 0; i < 3000; i++) {
		ssize_t n = write_pat(g->fds[1], off, pt_rand_range(&rng, 1, 1024));

		if (n > 0)
			off += n;
		else
			ASSERT_EQ(-EAGAIN, n);
		if (n < 0 || i % 32 == 0)
			got += drain_now(g->fds[0], NULL, NULL, NULL);
		if (i % 8 == 0) {
			aiopipe_ring_wait(&g->r, 1, 0);
			pt_revents(g->r.fd, POLLIN);
		}
	}
	__atomic_store_n(&h.stop, true, __ATOMIC_RELEASE);
	ASSERT_TRUE(pt_join(t, NULL));
	TH_LOG("%lu mutations, %zu bytes written", h.writes, off);
	EXPECT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
	got += drain_now(g->fds[0], NULL, NULL, NULL);
	EXPECT_EQ((long long)off, RSTAT(g->fds[0], ring_bytes) + (long long)got);
	ASSERT_EQ(4, write(g->fds[1], "tail", 4));
	EXPECT_EQ(4, read_exactly(g->fds[0], buf, 4, AP_LONG_MS));
	EXPECT_EQ(0, memcmp(buf, "tail", 4));
}

/* ---- races: a writer parked at ring_filling ------------------------------ */

/*
 * A ring of 8 event slots and 8 buffers of 4 KiB, a pair attached, and the
 * pause points armed for that pair's channel.  Skipped without
 * pause_points=1 (or a module without ring_filling).
 */
FIXTURE(race) {
	struct rig g;
	struct ap_points pt;
};

FIXTURE_SETUP(race)
{
	for (int i = 0; i < AP_NR_POINTS; i++)
		self->pt.fd[i] = -1;
	rig_init(&self->g);
	if (!ap_pause_present())
		SKIP(return, "no %s: load the module with pause_points=1",
		     AP_PAUSE_DIR);
	if (access(AP_PAUSE_DIR "/ring_filling", F_OK))
		SKIP(return, "no ring_filling pause point");
	rig_open(_metadata, &self->g, 8, 8, 4096, AIOPIPE_ENGINE_RETRY, true);
	ASSERT_EQ(0, ap_points_open(&self->pt, ap_chan_id(self->g.fds[0])));
	ASSERT_NE(0ULL, self->pt.chan);
}

FIXTURE_TEARDOWN(race)
{
	ap_points_close(&self->pt);	/* releases what is still parked */
	rig_close(&self->g);
}

struct op {
	int fd;
	uint64_t off;
	size_t len;
	void *map;
	size_t map_len;
};

static long op_write_pat(struct ap_call *c)
{
	struct op *o = c->arg;

	return write_pat(o->fd, o->off, o->len);
}

/* munmap (if a mapping is given), then close: the ring's last references */
static long op_unmap_close(struct ap_call *c)
{
	struct op *o = c->arg;

	if (o->map)
		munmap(o->map, o->map_len);
	return close(o->fd);
}

/* Start a writer of [off, off + len) and wait until it parks at ring_filling. */
static void park_writer(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self,
			struct ap_call *w, struct op *o)
{
	ASSERT_EQ(0, ap_arm(&self->pt, AP_RING_FILLING));
	ASSERT_EQ(0, ap_call_start(w, op_write_pat, o));
	ASSERT_EQ(1, ap_wait_parked(&self->pt, AP_RING_FILLING, 1, AP_LONG_MS));
}

/*
 *   test                    writer W                      closer C
 *                           write(1000): takes a buffer,
 *                           parks (mutex held)
 *   munmap (fd still open)
 *                                                         close(ring fd): the
 *                                                         last reference
 *   release --------------> copies, returns 1000
 *                                                         returns
 *   the 1000 bytes went into a buffer (ring_bytes: the ring took them
 *   before it was closed, and they went with it) or are in the pipe; the
 *   pipe is detached and works as a pipe; no use after free (KASAN)
 */
TEST_F(race, ring_closed_and_unmapped_under_a_parked_writer)
{
	struct rig *g = &self->g;
	struct op wo = { .fd = g->fds[1], .len = 1000 };
	struct op co = { .fd = g->r.fd };
	unsigned char buf[2048];
	struct aiopipe_ring r2;
	struct ap_call w, c;
	long long delivered;
	ssize_t readable;

	RING_BEGIN();
	park_writer(_metadata, self, &w, &wo);
	munmap(g->r.map, g->r.map_size);
	g->r.map = NULL;
	g->r.fd = -1;
	g->up = false;
	ASSERT_EQ(0, ap_call_start(&c, op_unmap_close, &co));
	TH_LOG("close %s while the writer is parked",
	       ap_call_wait(&c, AP_QUIET_MS) ? "returned" : "waits");
	ASSERT_EQ(0, ap_release(&self->pt, AP_RING_FILLING));
	ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
	EXPECT_EQ(1000, w.ret);
	ASSERT_TRUE(ap_call_join(&c, AP_LONG_MS));
	EXPECT_EQ(0, c.ret);
	delivered = RSTAT(g->fds[0], ring_bytes);
	readable = ap_read_now(g->fds[0], buf, sizeof(buf));
	if (readable < 0)
		readable = 0;
	TH_LOG("%lld bytes went into the ring, %zd stayed in the pipe",
	       delivered, readable);
	EXPECT_EQ(1000, delivered + readable);
	if (readable)
		EXPECT_EQ(-1, ap_check(buf, (size_t)readable, 0));
	ASSERT_EQ(5, write_pat(g->fds[1], 1000, 5));
	EXPECT_EQ(5, read_exactly(g->fds[0], buf, 5, AP_LONG_MS));
	EXPECT_EQ(-1, ap_check(buf, 5, 1000));
	ASSERT_EQ(0, aiopipe_ring_setup(&r2, 4, 4, 64, O_CLOEXEC));
	EXPECT_EQ(0, aiopipe_ring_attach(&r2, g->fds[0], UD));
	aiopipe_ring_exit(&r2);
}

/*
 * The same with the mapping kept: the ring lives on (the mapping is a
 * reference), the parked writer's bytes are a DATA event in it.
 */
TEST_F(race, ring_fd_closed_under_a_parked_writer_mapping_kept)
{
	struct rig *g = &self->g;
	struct op wo = { .fd = g->fds[1], .len = 1000 };
	struct op co = { .fd = g->r.fd };
	struct ap_call w, c;

	RING_BEGIN();
	park_writer(_metadata, self, &w, &wo);
	g->r.fd = -1;
	ASSERT_EQ(0, ap_call_start(&c, op_unmap_close, &co));
	EXPECT_TRUE(ap_call_wait(&c, GUARD_MS))
		TH_LOG("close of the fd (not the last reference) waits for the writer");
	ASSERT_EQ(0, ap_release(&self->pt, AP_RING_FILLING));
	ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
	EXPECT_EQ(1000, w.ret);
	ASSERT_TRUE(ap_call_join(&c, AP_LONG_MS));
	reap(&g->rp);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_EQ(1U, g->s.data);
	EXPECT_STREAM(&g->s, 0, 1000);
}

/*
 *   test                    writer W (pipe A)             pipe B
 *                           write(A, 3000): buffer taken,
 *                           parks (A's mutex held)
 *   write(B, 100) x 3 ------------------------------------> return at once,
 *                                                           3 DATA
 *   release --------------> copies, posts A's DATA
 *   reap: A's 3000 bytes, B's 300 bytes, each in order
 */
TEST_F(race, parked_writer_does_not_hold_up_another_pipe_of_the_ring)
{
	struct rig *g = &self->g;
	struct op wo = { .fd = g->fds[1], .len = 3000 };
	struct stream s[2];
	struct reaper rp;
	struct ap_call w, bw;
	struct op bo;
	int b[2];

	RING_BEGIN();
	ASSERT_EQ(0, ring_pair(b, AIOPIPE_ENGINE_RETRY));
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, b[0], UD + 1));
	stream_init(&s[0], g->fds[0], UD);
	stream_init(&s[1], b[0], UD + 1);
	reaper_init(&rp, &g->r, s, 2);
	park_writer(_metadata, self, &w, &wo);
	for (int i = 0; i < 3; i++) {
		bo = (struct op){ .fd = b[1], .off = STREAM_BASE(1) + 100 * i,
				  .len = 100 };
		ASSERT_EQ(0, ap_call_start(&bw, op_write_pat, &bo));
		EXPECT_TRUE(ap_call_join(&bw, GUARD_MS))
			TH_LOG("B's write %d waits for A's parked writer", i);
		EXPECT_EQ(100, bw.ret);
	}
	TH_LOG("%u events posted while A's writer is parked",
	       aiopipe_ring_ready(&g->r));
	EXPECT_EQ(1, ap_parked(&self->pt, AP_RING_FILLING));
	reap(&rp);
	ASSERT_EQ(0, ap_release(&self->pt, AP_RING_FILLING));
	ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
	EXPECT_EQ(3000, w.ret);
	EXPECT_TRUE(reap_until(&rp, 3300, false, AP_LONG_MS));
	EXPECT_REAP_OK(&rp);
	EXPECT_STREAM(&s[0], 0, 3000);
	EXPECT_STREAM(&s[1], STREAM_BASE(1), 300);
	EXPECT_EQ(1U, s[0].data);
	EXPECT_EQ(3U, s[1].data);
	stream_free(&s[0]);
	stream_free(&s[1]);
	backend_close(b);
}

/*
 *   test                      writer W                    detacher D
 *                             write(1000): buffer taken,
 *                             parks (mutex held)
 *                                                         DETACH
 *   release ----------------> copies, returns 1000
 *                                                         returns 0
 *   the 1000 bytes: a DATA event (posted before the detach) or in the
 *   pipe; after the detach, writes stay in the pipe
 */
static long op_detach(struct ap_call *c)
{
	struct rig *g = c->arg;

	return aiopipe_ring_detach(&g->r, g->fds[0]);
}

TEST_F(race, detach_under_a_parked_writer)
{
	struct rig *g = &self->g;
	struct op wo = { .fd = g->fds[1], .len = 1000 };
	unsigned char buf[2048];
	struct ap_call w, d;
	ssize_t n;

	RING_BEGIN();
	park_writer(_metadata, self, &w, &wo);
	ASSERT_EQ(0, ap_call_start(&d, op_detach, g));
	TH_LOG("detach %s while the writer is parked",
	       ap_call_wait(&d, AP_QUIET_MS) ? "returned" : "waits");
	ASSERT_EQ(0, ap_release(&self->pt, AP_RING_FILLING));
	ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
	EXPECT_EQ(1000, w.ret);
	ASSERT_TRUE(ap_call_join(&d, AP_LONG_MS));
	EXPECT_EQ(0, d.ret);
	reap(&g->rp);
	n = ap_read_now(g->fds[0], buf, sizeof(buf));
	if (n > 0)
		stream_append(&g->s, buf, (size_t)n);
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, 1000);
	ASSERT_EQ(10, write_pat(g->fds[1], 1000, 10));
	EXPECT_EQ(-ETIME, aiopipe_ring_wait(&g->r, 1, 0));
	EXPECT_EQ(10, read_exactly(g->fds[0], buf, 10, AP_LONG_MS));
}

/*
 *   test                      writer W                    closer C
 *                             write(1000): buffer taken,
 *                             parks (mutex held)
 *                                                         close(read end):
 *                                                         the last one
 *   release ----------------> copies; returns 1000 (or EPIPE)
 *   no use after free; a DATA event, if posted, holds the bytes; the
 *   channel goes; the ring serves another pipe
 */
TEST_F(race, last_read_end_closed_under_a_parked_writer)
{
	struct rig *g = &self->g;
	long long base;
	struct op wo = { .fd = g->fds[1], .len = 1000 };
	struct op co = { .fd = g->fds[0] };
	struct ap_call w, c;
	struct stream s;
	struct reaper rp;
	int p[2];

	RING_BEGIN();
	ASSERT_NE(SIG_ERR, signal(SIGPIPE, SIG_IGN));
	park_writer(_metadata, self, &w, &wo);
	g->fds[0] = -1;
	g->s.rfd = -1;
	ASSERT_EQ(0, ap_call_start(&c, op_unmap_close, &co));
	TH_LOG("close %s while the writer is parked",
	       ap_call_wait(&c, AP_QUIET_MS) ? "returned" : "waits");
	ASSERT_EQ(0, ap_release(&self->pt, AP_RING_FILLING));
	ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
	EXPECT_TRUE(w.ret == 1000 || (w.ret == -EPIPE))
		TH_LOG("the parked write returned %ld", w.ret);
	ASSERT_TRUE(ap_call_join(&c, AP_LONG_MS));
	EXPECT_EQ(0, c.ret);
	reap(&g->rp);
	EXPECT_REAP_OK(&g->rp);
	TH_LOG("write %ld; %u DATA, %u READ events", w.ret, g->s.data,
	       g->s.reads);
	if (g->s.data)
		EXPECT_EQ(-1, ap_check(g->s.got, g->s.len, 0));
	EXPECT_EQ(-EPIPE, write_pat(g->fds[1], 1000, 10));
	base = RSTAT(-1, channels);
	pt_close_end(&g->fds[1]);
	EXPECT_EQ(base - 1, AP_WAIT_STAT_LE(-1, channels, base - 1, AP_LONG_MS));
	ASSERT_EQ(0, ring_pair(p, AIOPIPE_ENGINE_RETRY));
	stream_init(&s, p[0], UD + 1);
	reaper_init(&rp, &g->r, &s, 1);
	ASSERT_EQ(0, aiopipe_ring_attach(&g->r, p[0], UD + 1));
	ASSERT_EQ(10, write_pat(p[1], 0, 10));
	ASSERT_TRUE(reap_until(&rp, 10, false, AP_LONG_MS));
	EXPECT_STREAM(&s, 0, 10);
	stream_free(&s);
	backend_close(p);
}

/*
 *   test                      writer W
 *                             write(1000): buffer taken, parks
 *   ev_head = ev_tail - 8 (full) / ev_tail + 1 (ahead: "more than full")
 *   release ----------------> copies; its event has a slot or not
 *                             returns 1000
 *   ev_head back; RING_WAIT posts what is owed
 *   the 1000 bytes: a DATA event, or a READ event with them in the pipe
 */
TEST_F(race, parked_writer_meets_a_ring_made_to_look_full)
{
	struct rig *g = &self->g;
	const __u32 shift[] = { (__u32)-8, 1, 0x80000000U };
	uint64_t off = 0;

	RING_BEGIN();
	for (size_t k = 0; k < sizeof(shift) / sizeof(shift[0]); k++) {
		struct op wo = { .fd = g->fds[1], .off = off, .len = 1000 };
		struct ap_call w;
		__u32 head = g->r.hdr->ev_head;

		park_writer(_metadata, self, &w, &wo);
		__atomic_store_n(&g->r.hdr->ev_head, head + shift[k],
				 __ATOMIC_RELEASE);
		ASSERT_EQ(0, ap_release(&self->pt, AP_RING_FILLING));
		ASSERT_TRUE(ap_call_join(&w, AP_LONG_MS));
		EXPECT_EQ(1000, w.ret);
		off += 1000;
		__atomic_store_n(&g->r.hdr->ev_head, head, __ATOMIC_RELEASE);
		EXPECT_TRUE(reap_until(&g->rp, off, false, AP_LONG_MS))
			TH_LOG("ev_head + %#x: %zu of %llu bytes", shift[k],
			       reaped_bytes(&g->rp), (unsigned long long)off);
		TH_LOG("ev_head + %#x: %u DATA, %u READ so far", shift[k],
		       g->s.data, g->s.reads);
	}
	EXPECT_REAP_OK(&g->rp);
	EXPECT_STREAM(&g->s, 0, off);
}

/* ---- races without pause points ------------------------------------------ */

FIXTURE(churn) {
	struct rig g;
};

FIXTURE_SETUP(churn)
{
	rig_open(_metadata, &self->g, 64, 16, 1024, AIOPIPE_ENGINE_RETRY,
		 false);
}

FIXTURE_TEARDOWN(churn)
{
	rig_close(&self->g);
}

/*
 *   writer 0, writer 1 (threads)       test, CYCLES times:
 *   records of 16 .. 4096 bytes        attach; reap a while; detach;
 *   until told to stop                 reap what was posted; let the
 *                                      writers fill the pipe a while;
 *                                      read(2) it, or leave it for the
 *                                      next attach's READ event
 *   DATA + READ + read(2) after the detaches = every record, whole and in
 *   each writer's order
 */
#define CYCLES	400

TEST_F_TIMEOUT(churn, attach_and_detach_racing_writers_conserve_every_byte, 300)
{
	struct rig *g = &self->g;
	struct rec_writer w[2];
	uint32_t next[2] = { 0, 0 };
	uint64_t seed = pt_seed(), rng = seed;
	size_t detached = 0, checked = 0;
	int cycles = 0;
	long bad = -1;

	TH_LOG("seed %#llx", (unsigned long long)seed);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct rec_writer){ .fd = g->fds[1], .id = i,
					    .seed = seed + i };
		ASSERT_EQ(0, pthread_create(&w[i].t, NULL, rec_writer_main,
					    &w[i]));
	}
	for (int64_t t0 = ap_now_ns(); ap_ms_since(t0) < 200000; cycles++) {
		bool done = __atomic_load_n(&w[0].done, __ATOMIC_ACQUIRE) &&
			    __atomic_load_n(&w[1].done, __ATOMIC_ACQUIRE);
		int spins = (int)pt_rand_range(&rng, 0, 5);

		if (done && checked + g->s.len >= w[0].bytes + w[1].bytes)
			break;
		if (cycles == CYCLES)
			for (int i = 0; i < 2; i++)
				__atomic_store_n(&w[i].stop, true,
						 __ATOMIC_RELEASE);
		ASSERT_EQ(0, aiopipe_ring_attach(&g->r, g->fds[0], UD));
		for (int k = 0; k < spins; k++) {
			reap_max(&g->rp, 64);	/* the writers never stop */
			aiopipe_ring_wait(&g->r, 1, 200000);
		}
		ASSERT_EQ(0, aiopipe_ring_detach(&g->r, g->fds[0]));
		/* what was posted before the detach, in order */
		reap(&g->rp);
		/* detached: the writers fill the pipe a while */
		for (int64_t t1 = ap_now_ns(), d = pt_rand_range(&rng, 0, 300000);
		     ap_now_ns() - t1 < d;)
			sched_yield();
		/* then read(2) the pipe, or leave it to the next attach's READ */
		if (pt_rand(&rng) % 2 || done)
			detached += drain_max(g->fds[0], &g->s.got, &g->s.len,
					      &g->s.cap, 1 << 20);
		if (g->rp.err[0] || !rec_consume(&g->s, next, 2, &checked, &bad))
			break;
	}
	for (int i = 0; i < 2; i++) {
		__atomic_store_n(&w[i].stop, true, __ATOMIC_RELEASE);
		ASSERT_TRUE(pt_join(w[i].t, NULL));
		EXPECT_EQ(0, w[i].err);
	}
	EXPECT_LE(CYCLES, cycles);
	EXPECT_REAP_OK(&g->rp);
	TH_LOG("%d attach/detach cycles: %u DATA, %u READ events, %zu bytes read after detach",
	       cycles, g->s.data, g->s.reads, detached);
	EXPECT_EQ((long long)(w[0].bytes + w[1].bytes),
		  (long long)(g->s.data_bytes + g->s.read_bytes + detached));
	if (bad < 0)
		rec_consume(&g->s, next, 2, &checked, &bad);
	EXPECT_EQ(-1, bad) TH_LOG("torn, lost or repeated record at %zu",
				  checked + (size_t)bad);
	EXPECT_EQ((long long)(w[0].bytes + w[1].bytes), (long long)checked);
	EXPECT_EQ(0L, (long)g->s.len);
	EXPECT_EQ(w[0].done_recs, next[0]);
	EXPECT_EQ(w[1].done_recs, next[1]);
	EXPECT_EQ((long long)g->s.data_bytes, RSTAT(g->fds[0], ring_bytes));
}

/*
 * ROUNDS2 rounds on one ring: a fresh pair attached, a writer thread
 * writing records until EPIPE, the test reaping a while and then closing
 * the read end (the only one).  The writer ends with EPIPE; every event
 * of the pair posted before is whole (DATA records in order up to the
 * first READ, whose bytes went with the pipe); the ring serves the next
 * round; no channel is left behind.
 */
#define ROUNDS2	40

TEST_F_TIMEOUT(churn, close_of_the_read_end_racing_a_writer, 300)
{
	struct rig *g = &self->g;
	long long base = RSTAT(-1, channels);
	uint64_t seed = pt_seed(), rng = seed;

	TH_LOG("seed %#llx", (unsigned long long)seed);
	ASSERT_NE(SIG_ERR, signal(SIGPIPE, SIG_IGN));
	for (int round = 0; round < ROUNDS2; round++) {
		struct rec_writer w = { .id = 0, .seed = rng };
		uint32_t next = 0;
		struct stream s;
		struct reaper rp;
		int p[2], spins = (int)pt_rand_range(&rng, 0, 30);
		long bad;

		ASSERT_EQ(0, ring_pair(p, AIOPIPE_ENGINE_RETRY));
		w.fd = p[1];
		stream_init(&s, p[0], 100 + round);
		reaper_init(&rp, &g->r, &s, 1);
		ASSERT_EQ(0, aiopipe_ring_attach(&g->r, p[0], 100 + round));
		ASSERT_EQ(0, pthread_create(&w.t, NULL, rec_writer_main, &w));
		for (int k = 0; k < spins; k++) {
			reap(&rp);
			aiopipe_ring_wait(&g->r, 1, 1000000);
		}
		close(p[0]);
		s.rfd = -1;
		ASSERT_TRUE(pt_join(w.t, NULL)) TH_LOG("round %d: the writer hangs",
						       round);
		EXPECT_EQ(EPIPE, w.err) TH_LOG("round %d", round);
		reap(&rp);
		EXPECT_REAP_OK(&rp);
		bad = rec_check(s.got, s.len, &next, 1, s.gap);
		EXPECT_EQ(-1, bad) TH_LOG("round %d: bad record at %ld of %zu",
					  round, bad, s.len);
		EXPECT_LE((long long)(s.data_bytes + s.read_bytes),
			  (long long)w.bytes);
		stream_free(&s);
		close(p[1]);
		rng = pt_rand(&rng);
		if (_metadata->passed == 0)
			break;
	}
	EXPECT_TRUE(ring_quiet(&g->r));
	EXPECT_EQ(base, AP_WAIT_STAT_LE(-1, channels, base, AP_LONG_MS));
}

TEST_HARNESS_MAIN
