// SPDX-License-Identifier: GPL-2.0
/*
 * Ordering and atomicity under a mix of sync and async requests
 * (docs/async.md, "Ordering"):
 *
 *  - a stream of 10^6 8-byte records written by a mix of write(2),
 *    writev(2), PWRITE and PWRITEV (several in flight, some segments empty)
 *    is read by a mix of read(2), readv(2), PREAD and PREADV (several in
 *    flight) exactly in order: requests of one direction are served in the
 *    order they were issued, whatever their kind;
 *  - several writers, each writing whole records in writes of at most
 *    PIPE_BUF bytes, never tear a record and each writer's records stay in
 *    its order;
 *  - queued writes of at most PIPE_BUF bytes, of any size, are atomic;
 *  - several readers get every record exactly once, each in stream order;
 *  - switching engine and filter while requests are in flight changes
 *    nothing in the stream.
 *
 * Requests are reassembled in issue order: every async request has a slot
 * in a small ring (issue order); a sync read issued while async reads are
 * pending waits behind them, so its bytes come after theirs.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE		4096
#define PIPE_BUF_SZ	4096
#define NREC		1000000ULL
#define REC		8
#define INFL		4		/* async requests in flight per thread */
#define MAXREQ		(64 * 1024)
#define MAXSEG		8

/* Byte @off of a stream of little-endian 64-bit record numbers. */
static inline unsigned char pat8(uint64_t off)
{
	return (unsigned char)((off / REC) >> ((off % REC) * 8));
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A request size: half small (1..256), half large (up to MAXREQ). */
static size_t rnd_size(uint64_t *s, size_t max, size_t unit)
{
	size_t n = rnd(s) % 2 ? 1 + rnd(s) % 256 : 1 + rnd(s) % MAXREQ;

	if (n > max)
		n = max;
	n -= n % unit;
	return n ? n : unit;
}

/* Split @len bytes at @buf into 1..MAXSEG segments, some of them empty. */
static int rnd_iov(uint64_t *s, char *buf, size_t len, struct iovec *iov)
{
	int nseg = 1 + rnd(s) % MAXSEG, i;
	size_t left = len;

	for (i = 0; i < nseg; i++) {
		size_t n = i == nseg - 1 ? left :
			   (rnd(s) % 4 == 0 ? 0 : rnd(s) % (left + 1));

		iov[i].iov_base = buf;
		iov[i].iov_len = n;
		buf += n;
		left -= n;
	}
	return nseg;
}

/* ---- the per-thread request ring ------------------------------------ */

struct slot {
	struct iocb cb;
	struct iovec iov[MAXSEG];
	char *buf;
	size_t len;
	long res;
	bool done;
};

struct stream;
typedef int (*consume_fn)(struct stream *st, const char *data, size_t len);

struct stream {
	int fd;
	io_context_t ctx;
	struct slot slot[INFL];
	unsigned int head, tail;	/* issue order: head = oldest */
	uint64_t seed;
	uint64_t off;			/* bytes moved and checked */
	uint64_t total;
	size_t unit;			/* every request a multiple of this */
	bool eof;
	consume_fn consume;		/* reader: check the bytes */
	void *priv;
	int ops[4];			/* sync, syncv, async, asyncv */
	const char *volatile doing;	/* for the watchdog */
	char err[256];
};

/*
 * A worker thread cannot use the harness's ASSERTs, and a thread that just
 * stopped would leave its peers blocked until the harness timeout: print
 * what went wrong, with the channel's counters, and end the test at once.
 */
static void stream_die(struct stream *st)
{
	struct aiopipe_stats ap;

	fprintf(stderr, "# %s\n", st->err);
	if (aiopipe_stats(st->fd, &ap) == 0) {
		fprintf(stderr, "# at offset %llu:", (unsigned long long)st->off);
		for (int i = 0; i < aiopipe_stat_count(); i++)
			if (aiopipe_stat_value(&ap, i))
				fprintf(stderr, " %s=%llu", aiopipe_stat_name(i),
					aiopipe_stat_value(&ap, i));
		fprintf(stderr, "\n");
	}
	fflush(stderr);
	abort();
}

/*
 * Watchdog: if none of the streams moves a byte for 20 s, print where each
 * thread is (its current call and kernel stack) and the counters, then end
 * the test: a hang is reported as what it is instead of a bare timeout.
 */
struct watchdog {
	struct stream *st[8];
	int n;
	int stop[2];
	pthread_t thread;
};

static void dump_file(const char *path)
{
	char buf[2048];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = 0;
		fprintf(stderr, "%s", buf);
	}
	close(fd);
}

static void *watchdog_main(void *arg)
{
	struct watchdog *wd = arg;
	uint64_t last = ~0ULL;

	for (;;) {
		uint64_t sum = 0;
		char path[64];

		if (ap_poll1(wd->stop[0], POLLIN, 20000) != 0)
			return NULL;
		for (int i = 0; i < wd->n; i++)
			sum += wd->st[i]->off;
		if (sum != last) {
			last = sum;
			continue;
		}
		for (int i = 0; i < wd->n; i++)
			fprintf(stderr, "# stream %d: offset %llu, in %s, %u in flight\n",
				i, (unsigned long long)wd->st[i]->off,
				wd->st[i]->doing ? wd->st[i]->doing : "-",
				wd->st[i]->tail - wd->st[i]->head);
		snprintf(path, sizeof(path), "/proc/%d/task", getpid());
		for (int t = getpid(); t < getpid() + 64; t++) {
			snprintf(path, sizeof(path), "/proc/%d/task/%d/stack",
				 getpid(), t);
			if (access(path, R_OK) == 0) {
				fprintf(stderr, "# task %d:\n", t);
				dump_file(path);
			}
		}
		snprintf(wd->st[0]->err, sizeof(wd->st[0]->err),
			 "no progress for 20 s");
		stream_die(wd->st[0]);
	}
}

static int watchdog_start(struct watchdog *wd)
{
	if (pipe(wd->stop))
		return -errno;
	return -pthread_create(&wd->thread, NULL, watchdog_main, wd);
}

static void watchdog_stop(struct watchdog *wd)
{
	write(wd->stop[1], "s", 1);
	pthread_join(wd->thread, NULL);
	close(wd->stop[0]);
	close(wd->stop[1]);
}

#define FAIL(st, ...) do {						\
	if (!(st)->err[0])						\
		snprintf((st)->err, sizeof((st)->err), __VA_ARGS__);	\
	stream_die(st);							\
	return -1;							\
} while (0)

static int stream_init(struct stream *st, int fd, uint64_t total,
		       uint64_t seed)
{
	memset(st, 0, sizeof(*st));
	st->fd = fd;
	st->total = total;
	st->seed = seed;
	st->unit = 1;
	if (io_setup(INFL * 2, &st->ctx))
		return -1;
	for (int i = 0; i < INFL; i++) {
		st->slot[i].buf = malloc(MAXREQ);
		if (!st->slot[i].buf)
			return -1;
	}
	return 0;
}

static void stream_fini(struct stream *st)
{
	io_destroy(st->ctx);
	for (int i = 0; i < INFL; i++)
		free(st->slot[i].buf);
}

/* Gather the bytes an iovec request read into one buffer (in place). */
static size_t gather(struct slot *sl, int nseg, size_t res)
{
	size_t at = 0;

	for (int i = 0; i < nseg && at < res; i++) {
		size_t n = sl->iov[i].iov_len;

		if (n > res - at)
			n = res - at;
		memmove(sl->buf + at, sl->iov[i].iov_base, n);
		at += n;
	}
	return at;
}

/* Collect events until at least @min more slots are done. */
static int stream_reap(struct stream *st, int min)
{
	struct io_event ev[INFL];
	int n;

	st->doing = "io_getevents";
	n = ap_getevents(st->ctx, min, INFL, ev, AP_LONG_MS);
	st->doing = NULL;

	if (n < min)
		FAIL(st, "io_getevents: %d of %d events in %d ms", n, min,
		     AP_LONG_MS);
	for (int i = 0; i < n; i++) {
		struct slot *sl = &st->slot[(long)ev[i].data];

		sl->res = (long)ev[i].res;
		sl->done = true;
		if (sl->cb.aio_lio_opcode == IO_CMD_PREADV && sl->res > 0)
			gather(sl, (int)sl->cb.u.c.nbytes, sl->res);
	}
	return 0;
}

/* Hand finished requests, oldest first, to the checker. */
static int stream_retire(struct stream *st, bool reading)
{
	while (st->head != st->tail) {
		struct slot *sl = &st->slot[st->head % INFL];

		if (!sl->done)
			break;
		if (sl->res < 0)
			FAIL(st, "async request at %llu: res %ld",
			     (unsigned long long)st->off, sl->res);
		if (reading) {
			if (sl->res == 0)
				st->eof = true;
			else if (st->eof)
				FAIL(st, "data after EOF");
			else if (st->consume(st, sl->buf, sl->res))
				return -1;
		} else if ((size_t)sl->res != sl->len) {
			FAIL(st, "async write of %zu completed with %ld",
			     sl->len, sl->res);
		}
		st->head++;
	}
	return 0;
}

/* Wait for every async request in flight. */
static int stream_drain(struct stream *st, bool reading)
{
	while (st->head != st->tail) {
		if (stream_reap(st, 1) || stream_retire(st, reading))
			return -1;
	}
	return 0;
}

/*
 * One read of the reader: a random kind and size.  Vectored async reads
 * scatter into the upper half of the slot buffer and are gathered on
 * completion, so the checker always sees contiguous bytes.
 */
static int read_step(struct stream *st)
{
	int kind = rnd(&st->seed) % 4;
	size_t len = rnd_size(&st->seed, MAXREQ / 2, st->unit);

	st->ops[kind]++;
	if (kind <= 1) {		/* read(2) / readv(2) */
		static __thread char sbuf[MAXREQ];
		struct iovec iov[MAXSEG];
		ssize_t n;

		if (kind == 0) {
			st->doing = "read";
			n = read(st->fd, sbuf, len);
		} else {
			int nseg = rnd_iov(&st->seed, sbuf, len, iov);

			st->doing = "readv";
			n = readv(st->fd, iov, nseg);
		}
		st->doing = NULL;
		if (n < 0)
			FAIL(st, "read: %s", strerror(errno));
		/* everything issued before this read came first */
		if (stream_drain(st, true))
			return -1;
		if (n == 0) {
			st->eof = true;
			return 0;
		}
		if (st->eof)
			FAIL(st, "data after EOF");
		return st->consume(st, sbuf, n);
	}
	if (st->tail - st->head == INFL) {
		if (stream_reap(st, 1) || stream_retire(st, true))
			return -1;
		if (st->tail - st->head == INFL)
			return 0;
	}
	{
		unsigned int idx = st->tail % INFL;
		struct slot *sl = &st->slot[idx];
		struct iocb *cbp = &sl->cb;

		sl->done = false;
		sl->len = len;
		if (kind == 2) {
			io_prep_pread(&sl->cb, st->fd, sl->buf, len, 0);
		} else {
			int nseg = rnd_iov(&st->seed, sl->buf + MAXREQ / 2,
					   len, sl->iov);

			io_prep_preadv(&sl->cb, st->fd, sl->iov, nseg, 0);
		}
		sl->cb.data = (void *)(long)idx;
		if (io_submit(st->ctx, 1, &cbp) != 1)
			FAIL(st, "io_submit read failed");
		st->tail++;
	}
	/* take what is already done, without waiting */
	if (stream_reap(st, 0))
		return -1;
	return stream_retire(st, true);
}

/* ---- writers ---------------------------------------------------------- */

typedef void (*fill_fn)(struct stream *st, char *buf, size_t len);

/* The single stream's bytes. */
static void fill_stream(struct stream *st, char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)pat8(st->off + i);
}

/*
 * One write: a random kind and size (a multiple of st->unit, at most
 * @max).  Async writes keep their buffer until they complete.
 */
static int write_step(struct stream *st, fill_fn fill, size_t max,
		      int kinds)
{
	int kind = rnd(&st->seed) % kinds;
	size_t len = rnd_size(&st->seed, max, st->unit);

	if (len > st->total - st->off)
		len = st->total - st->off;
	st->ops[kind]++;
	if (kind <= 1) {
		static __thread char sbuf[MAXREQ];
		struct iovec iov[MAXSEG];
		int nseg = 1;
		ssize_t n;

		fill(st, sbuf, len);
		if (kind == 1)
			nseg = rnd_iov(&st->seed, sbuf, len, iov);
		else {
			iov[0].iov_base = sbuf;
			iov[0].iov_len = len;
		}
		st->doing = "writev";
		n = writev(st->fd, iov, nseg);
		st->doing = NULL;
		if (n != (ssize_t)len)
			FAIL(st, "write of %zu: %zd (%s)", len, n,
			     strerror(errno));
		st->off += len;
		return 0;
	}
	if (st->tail - st->head == INFL) {
		if (stream_reap(st, 1) || stream_retire(st, false))
			return -1;
		if (st->tail - st->head == INFL)
			return 0;
	}
	{
		unsigned int idx = st->tail % INFL;
		struct slot *sl = &st->slot[idx];
		struct iocb *cbp = &sl->cb;

		fill(st, sl->buf, len);
		sl->done = false;
		sl->len = len;
		if (kind == 2) {
			io_prep_pwrite(&sl->cb, st->fd, sl->buf, len, 0);
		} else {
			int nseg = rnd_iov(&st->seed, sl->buf, len, sl->iov);

			io_prep_pwritev(&sl->cb, st->fd, sl->iov, nseg, 0);
		}
		sl->cb.data = (void *)(long)idx;
		if (io_submit(st->ctx, 1, &cbp) != 1)
			FAIL(st, "io_submit write failed");
		st->tail++;
		st->off += len;
	}
	if (stream_reap(st, 0))
		return -1;
	return stream_retire(st, false);
}

/* ---- checkers ----------------------------------------------------------- */

static int consume_stream(struct stream *st, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)data[i] != pat8(st->off + i))
			FAIL(st, "byte %llu is %#x, expected %#x",
			     (unsigned long long)(st->off + i),
			     (unsigned char)data[i], pat8(st->off + i));
	st->off += len;
	return 0;
}

/* ---- the single stream ------------------------------------------------ */

struct single {
	struct stream w, r;
	int wfd;
	unsigned int engine_toggle;	/* switch engine every N writes */
};

static void *single_writer(void *arg)
{
	struct single *s = arg;
	struct stream *st = &s->w;
	unsigned int n = 0;

	while (st->off < st->total) {
		if (write_step(st, fill_stream, MAXREQ, 4))
			break;
		if (s->engine_toggle && ++n % s->engine_toggle == 0) {
			aiopipe_set_engine(st->fd, (n / s->engine_toggle) % 2 ?
					   AIOPIPE_ENGINE_DIRECT :
					   AIOPIPE_ENGINE_RETRY);
			aiopipe_set_filter(st->fd, (n / s->engine_toggle / 2) % 2);
		}
	}
	stream_drain(st, false);
	close(st->fd);		/* EOF for the reader */
	return NULL;
}

static void *single_reader(void *arg)
{
	struct stream *st = arg;

	while (!st->eof) {
		if (read_step(st))
			break;
	}
	stream_drain(st, true);
	return NULL;
}

FIXTURE(order) {
	int fds[2];
};

FIXTURE_VARIANT(order) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_FILTER_VARIANTS(order);

FIXTURE_SETUP(order)
{
	self->fds[0] = self->fds[1] = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
}

FIXTURE_TEARDOWN(order)
{
	backend_close(self->fds);
}

static void run_single(struct __test_metadata *_metadata, int fds[2],
		       unsigned int toggle)
{
	struct single *s = calloc(1, sizeof(*s));
	struct watchdog wd = { .n = 0 };
	pthread_t wt, rt;
	int64_t t0 = ap_now_ns();

	ASSERT_NE(NULL, s);
	ASSERT_EQ(0, stream_init(&s->w, fds[1], NREC * REC, 0x1234567));
	ASSERT_EQ(0, stream_init(&s->r, fds[0], NREC * REC, 0x7654321));
	s->r.consume = consume_stream;
	s->engine_toggle = toggle;
	fds[1] = -1;		/* the writer thread closes it */
	wd.st[wd.n++] = &s->w;
	wd.st[wd.n++] = &s->r;
	ASSERT_EQ(0, watchdog_start(&wd));
	ASSERT_EQ(0, pthread_create(&wt, NULL, single_writer, s));
	ASSERT_EQ(0, pthread_create(&rt, NULL, single_reader, &s->r));
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	watchdog_stop(&wd);
	EXPECT_STREQ("", s->w.err);
	EXPECT_STREQ("", s->r.err);
	EXPECT_EQ(NREC * REC, s->r.off);
	EXPECT_TRUE(s->r.eof);
	TH_LOG("%llu records in %lld ms; writes: %d write %d writev %d PWRITE %d PWRITEV; reads: %d read %d readv %d PREAD %d PREADV",
	       NREC, (long long)ap_ms_since(t0), s->w.ops[0], s->w.ops[1],
	       s->w.ops[2], s->w.ops[3], s->r.ops[0], s->r.ops[1],
	       s->r.ops[2], s->r.ops[3]);
	AP_LOG_STATS(fds[0], "counters");
	AP_EXPECT_IDLE(fds[0]);
	EXPECT_LT(0, AP_STAT(fds[0], queued));
	stream_fini(&s->w);
	stream_fini(&s->r);
	free(s);
}

/*
 *   writer thread                              reader thread
 *   write/writev/PWRITE/PWRITEV (4 in flight)  read/readv/PREAD/PREADV
 *   random sizes 1..64 KiB, empty segments     (4 in flight), random sizes
 *   10^6 records = 8 MB, then close  ------->  reassembled in issue order:
 *                                              every byte checked, then EOF
 */
TEST_F_TIMEOUT(order, single_stream_mixed_sync_async_1m_records, 300)
{
	run_single(_metadata, self->fds, 0);
}

/* The same while the writer switches engine and filter every 16 writes. */
TEST_F_TIMEOUT(order, engine_and_filter_switched_midstream, 300)
{
	run_single(_metadata, self->fds, 16);
}

/* ---- several writers: whole records, at most PIPE_BUF per write -------- */

#define NWRITERS	4

struct mw {
	struct stream w[NWRITERS];
	struct stream r;
	uint32_t next[NWRITERS];
	uint64_t recs[NWRITERS];
	unsigned char carry[REC];
	size_t ncarry;
};

/* Records {writer, seq}: the writer's stream offset counts its records. */
static void fill_records(struct stream *st, char *buf, size_t len)
{
	uint32_t w = (uint32_t)(long)st->priv;
	uint64_t seq = st->off / REC;

	for (size_t i = 0; i < len; i += REC) {
		uint32_t rec[2] = { w, (uint32_t)(seq + i / REC) };

		memcpy(buf + i, rec, REC);
	}
}

static int check_record(struct stream *st, struct mw *m,
			const unsigned char *p)
{
	uint32_t rec[2];

	memcpy(rec, p, REC);
	if (rec[0] >= NWRITERS)
		FAIL(st, "torn record at %llu: writer %u seq %u",
		     (unsigned long long)st->off, rec[0], rec[1]);
	if (rec[1] != m->next[rec[0]])
		FAIL(st, "writer %u: record %u, expected %u (at %llu)",
		     rec[0], rec[1], m->next[rec[0]],
		     (unsigned long long)st->off);
	m->next[rec[0]]++;
	return 0;
}

static int consume_records(struct stream *st, const char *data, size_t len)
{
	struct mw *m = st->priv;
	const unsigned char *p = (const unsigned char *)data;

	while (len) {
		size_t n = REC - m->ncarry;

		if (n > len)
			n = len;
		memcpy(m->carry + m->ncarry, p, n);
		m->ncarry += n;
		p += n;
		len -= n;
		st->off += n;
		if (m->ncarry == REC) {
			if (check_record(st, m, m->carry))
				return -1;
			m->ncarry = 0;
		}
	}
	return 0;
}

static void *mw_writer(void *arg)
{
	struct stream *st = arg;
	/* writers 0,1 only write(2)/writev(2); 2,3 every kind */
	int kinds = (long)st->priv < 2 ? 2 : 4;

	while (st->off < st->total)
		if (write_step(st, fill_records, PIPE_BUF_SZ, kinds))
			break;
	stream_drain(st, false);
	return NULL;
}

/*
 *   writer 0: write(2)   writer 1: writev(2)    \
 *   writer 2, 3: all four kinds, 4 in flight    |  whole records,
 *   each 250000 records, <= PIPE_BUF per write  /   <= 4096 bytes
 *                    |
 *                    v
 *   one reader, all four kinds: every record whole, each writer's
 *   records in its order, none lost
 */
TEST_F_TIMEOUT(order, many_writers_never_tear_records, 300)
{
	struct mw *m = calloc(1, sizeof(*m));
	struct watchdog wd = { .n = 0 };
	pthread_t wt[NWRITERS], rt;
	int64_t t0 = ap_now_ns();

	ASSERT_NE(NULL, m);
	for (long i = 0; i < NWRITERS; i++) {
		ASSERT_EQ(0, stream_init(&m->w[i], self->fds[1],
					 NREC / NWRITERS * REC, 99 + i));
		m->w[i].unit = REC;
		m->w[i].priv = (void *)i;
	}
	ASSERT_EQ(0, stream_init(&m->r, self->fds[0], NREC * REC, 4242));
	m->r.consume = consume_records;
	m->r.priv = m;
	for (int i = 0; i < NWRITERS; i++)
		wd.st[wd.n++] = &m->w[i];
	wd.st[wd.n++] = &m->r;
	ASSERT_EQ(0, watchdog_start(&wd));
	for (int i = 0; i < NWRITERS; i++)
		ASSERT_EQ(0, pthread_create(&wt[i], NULL, mw_writer, &m->w[i]));
	ASSERT_EQ(0, pthread_create(&rt, NULL, single_reader, &m->r));
	for (int i = 0; i < NWRITERS; i++) {
		pthread_join(wt[i], NULL);
		EXPECT_STREQ("", m->w[i].err);
	}
	close(self->fds[1]);
	self->fds[1] = -1;
	pthread_join(rt, NULL);
	watchdog_stop(&wd);
	EXPECT_STREQ("", m->r.err);
	for (int i = 0; i < NWRITERS; i++)
		EXPECT_EQ(NREC / NWRITERS, (unsigned long long)m->next[i]);
	EXPECT_EQ(0, (int)m->ncarry);
	TH_LOG("%llu records from %d writers in %lld ms", NREC, NWRITERS,
	       (long long)ap_ms_since(t0));
	AP_LOG_STATS(self->fds[0], "counters");
	AP_EXPECT_IDLE(self->fds[0]);
	for (int i = 0; i < NWRITERS; i++)
		stream_fini(&m->w[i]);
	stream_fini(&m->r);
	free(m);
}

/* ---- queued writes of any size up to PIPE_BUF are atomic ------------- */

/*
 * Each write is a message: a header {magic, writer, seq, len} and
 * len - 12 payload bytes derived from (writer, seq).  Sizes 12..4096, not
 * multiples of anything.  A capacity of 4096 makes most of them queue.
 */
#define MSG_MAGIC	0xA1B2u
#define MSG_HDR		12
#define NMSG		3000

struct msg_hdr {
	uint16_t magic;
	uint16_t len;
	uint32_t writer;
	uint32_t seq;
};

static unsigned char msg_byte(uint32_t w, uint32_t seq, size_t i)
{
	return (unsigned char)(w * 131 + seq * 7 + i);
}

static size_t msg_make(char *buf, uint32_t w, uint32_t seq, uint64_t *s)
{
	struct msg_hdr h = { MSG_MAGIC, 0, w, seq };
	size_t len = MSG_HDR + rnd(s) % (PIPE_BUF_SZ - MSG_HDR + 1);

	h.len = (uint16_t)len;
	memcpy(buf, &h, MSG_HDR);
	for (size_t i = MSG_HDR; i < len; i++)
		buf[i] = (char)msg_byte(w, seq, i);
	return len;
}

struct atomic_writer {
	int fd;
	uint32_t id;
	char err[128];
};

static void *atomic_writer_main(void *arg)
{
	struct atomic_writer *aw = arg;
	uint64_t seed = 777 + aw->id;
	io_context_t ctx = 0;
	char *bufs = malloc(8 * PIPE_BUF_SZ);
	uint32_t seq = 0;

	if (!bufs || io_setup(16, &ctx)) {
		snprintf(aw->err, sizeof(aw->err), "setup");
		return NULL;
	}
	while (seq < NMSG) {
		struct iocb cbs[8], *cbp[8];
		struct io_event ev[8];
		size_t lens[8];
		int n = 0;

		/* a batch of up to 8 writes in one io_submit, in order */
		for (; n < 8 && seq < NMSG; n++, seq++) {
			lens[n] = msg_make(bufs + n * PIPE_BUF_SZ, aw->id, seq,
					   &seed);
			io_prep_pwrite(&cbs[n], aw->fd, bufs + n * PIPE_BUF_SZ,
				       lens[n], 0);
			cbs[n].data = (void *)(long)n;
			cbp[n] = &cbs[n];
		}
		if (io_submit(ctx, n, cbp) != n ||
		    ap_getevents(ctx, n, n, ev, AP_LONG_MS) != n) {
			snprintf(aw->err, sizeof(aw->err), "submit/reap");
			fprintf(stderr, "# writer %u: %s\n", aw->id, aw->err);
			abort();
		}
		for (int i = 0; i < n; i++)
			if ((long)ev[i].res != (long)lens[(long)ev[i].data])
				snprintf(aw->err, sizeof(aw->err),
					 "write of %zu: %ld",
					 lens[(long)ev[i].data],
					 (long)ev[i].res);
	}
	io_destroy(ctx);
	free(bufs);
	return NULL;
}

/*
 *   capacity 4096
 *   writers 0..3: batches of 8 PWRITEs of 12..4096 bytes (mostly queued)
 *   writer 4:     write(2) of the same messages
 *                   |
 *                   v
 *   reader: read(2) of random sizes; parses header + payload: a message
 *   interleaved with another breaks the parse
 */
TEST_F_TIMEOUT(order, queued_writes_up_to_pipe_buf_are_atomic, 300)
{
	struct atomic_writer aw[4];
	pthread_t wt[4];
	uint32_t next[5] = { 0 };
	char *buf = malloc(PIPE_BUF_SZ), *rbuf = malloc(MAXREQ);
	uint64_t seed = 5;
	size_t have = 0, msgs = 0;
	int64_t t0 = ap_now_ns();

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, rbuf);
	ASSERT_EQ(PAGE, aiopipe_set_capacity(self->fds[1], PAGE));
	for (int i = 0; i < 4; i++) {
		aw[i] = (struct atomic_writer){ .fd = self->fds[1], .id = i };
		ASSERT_EQ(0, pthread_create(&wt[i], NULL, atomic_writer_main,
					    &aw[i]));
	}
	/* writer 4: write(2) from another process */
	{
		pid_t pid = ap_fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			uint64_t s = 11;

			for (uint32_t seq = 0; seq < NMSG; seq++) {
				size_t len = msg_make(buf, 4, seq, &s);

				if (write(self->fds[1], buf, len) != (ssize_t)len)
					_exit(1);
			}
			_exit(0);
		}
		/* the reader below runs while all five write */
		while (msgs < 5 * NMSG) {
			size_t want = 1 + rnd(&seed) % MAXREQ;
			ssize_t n;

			if (want > MAXREQ - have)
				want = MAXREQ - have;
			n = read(self->fds[0], rbuf + have, want);
			ASSERT_LT(0, n);
			have += n;
			/* parse every complete message */
			for (;;) {
				struct msg_hdr h;
				size_t i;

				if (have < MSG_HDR)
					break;
				memcpy(&h, rbuf, MSG_HDR);
				ASSERT_EQ(MSG_MAGIC, h.magic)
					TH_LOG("message %zu: bad header", msgs);
				ASSERT_GT(5U, h.writer);
				ASSERT_EQ(next[h.writer], h.seq)
					TH_LOG("writer %u out of order", h.writer);
				if (have < h.len)
					break;
				for (i = MSG_HDR; i < h.len; i++)
					if ((unsigned char)rbuf[i] !=
					    msg_byte(h.writer, h.seq, i))
						break;
				ASSERT_EQ(h.len, i)
					TH_LOG("writer %u message %u interleaved at byte %zu",
					       h.writer, h.seq, i);
				next[h.writer]++;
				msgs++;
				memmove(rbuf, rbuf + h.len, have - h.len);
				have -= h.len;
			}
		}
		{
			int status;

			ASSERT_EQ(0, ap_wait_child(pid, AP_LONG_MS, &status));
			EXPECT_EQ(0, status);
		}
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(wt[i], NULL);
		EXPECT_STREQ("", aw[i].err);
	}
	EXPECT_EQ(0, (int)have);
	TH_LOG("%zu messages in %lld ms", msgs, (long long)ap_ms_since(t0));
	AP_LOG_STATS(self->fds[0], "counters");
	EXPECT_LT(NMSG, AP_STAT(self->fds[0], queued));
	AP_EXPECT_IDLE(self->fds[0]);
	free(buf);
	free(rbuf);
}

/* ---- several readers: every record exactly once ---------------------- */

#define NREADERS	3

struct mr {
	struct stream r[NREADERS];
	struct stream w;
	unsigned char *seen;
	uint64_t last[NREADERS];
	uint64_t count[NREADERS];
};

/* A reader's requests are multiples of REC, so it only ever sees whole records. */
static int consume_mr(struct stream *st, const char *data, size_t len)
{
	struct mr *m = st->priv;
	int me = (int)(st - m->r);

	if (len % REC)
		FAIL(st, "reader %d got %zu bytes: a torn record", me, len);
	for (size_t i = 0; i < len; i += REC) {
		uint64_t rec;

		memcpy(&rec, data + i, REC);
		if (rec >= NREC / 4)
			FAIL(st, "reader %d: bad record %llu", me,
			     (unsigned long long)rec);
		if (m->count[me] && rec <= m->last[me])
			FAIL(st, "reader %d: record %llu after %llu", me,
			     (unsigned long long)rec,
			     (unsigned long long)m->last[me]);
		if (__atomic_exchange_n(&m->seen[rec], 1, __ATOMIC_RELAXED))
			FAIL(st, "record %llu read twice", (unsigned long long)rec);
		m->last[me] = rec;
		m->count[me]++;
	}
	st->off += len;
	return 0;
}

static void *mr_writer(void *arg)
{
	struct stream *st = arg;

	while (st->off < st->total)
		if (write_step(st, fill_stream, MAXREQ, 4))
			break;
	stream_drain(st, false);
	close(st->fd);
	return NULL;
}

/*
 *   one writer (all kinds, any multiple of 8 bytes)
 *        |
 *        v
 *   readers 0..2, all kinds, requests of multiples of 8 bytes:
 *   each sees increasing record numbers; together every record once
 */
TEST_F_TIMEOUT(order, many_readers_get_every_record_exactly_once, 300)
{
	const uint64_t nrec = NREC / 4;
	struct mr *m = calloc(1, sizeof(*m));
	struct watchdog wd = { .n = 0 };
	pthread_t wt, rt[NREADERS];
	uint64_t sum = 0;

	ASSERT_NE(NULL, m);
	m->seen = calloc(nrec, 1);
	ASSERT_NE(NULL, m->seen);
	ASSERT_EQ(0, stream_init(&m->w, self->fds[1], nrec * REC, 31337));
	m->w.unit = REC;
	self->fds[1] = -1;
	for (int i = 0; i < NREADERS; i++) {
		ASSERT_EQ(0, stream_init(&m->r[i], self->fds[0], nrec * REC,
					 1000 + i));
		m->r[i].unit = REC;
		m->r[i].consume = consume_mr;
		m->r[i].priv = m;
	}
	wd.st[wd.n++] = &m->w;
	for (int i = 0; i < NREADERS; i++)
		wd.st[wd.n++] = &m->r[i];
	ASSERT_EQ(0, watchdog_start(&wd));
	ASSERT_EQ(0, pthread_create(&wt, NULL, mr_writer, &m->w));
	for (int i = 0; i < NREADERS; i++)
		ASSERT_EQ(0, pthread_create(&rt[i], NULL, single_reader,
					    &m->r[i]));
	pthread_join(wt, NULL);
	EXPECT_STREQ("", m->w.err);
	for (int i = 0; i < NREADERS; i++) {
		pthread_join(rt[i], NULL);
		EXPECT_STREQ("", m->r[i].err);
		sum += m->count[i];
		TH_LOG("reader %d: %llu records", i,
		       (unsigned long long)m->count[i]);
	}
	watchdog_stop(&wd);
	EXPECT_EQ(nrec, sum);
	AP_EXPECT_IDLE(self->fds[0]);
	for (int i = 0; i < NREADERS; i++)
		stream_fini(&m->r[i]);
	stream_fini(&m->w);
	free(m->seen);
	free(m);
}

TEST_HARNESS_MAIN
