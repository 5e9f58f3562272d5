// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency, side by side: many writers and readers on one pipe at once.
 *  - PIPE_BUF atomicity: writes of at most PIPE_BUF bytes (write and
 *    writev) from several processes are never interleaved, and nonblocking
 *    ones are all or nothing;
 *  - more than 10^6 sequence-numbered, checksummed records streamed by
 *    writer threads to reader threads (blocking I/O, so both sides keep
 *    going to sleep and waking each other): none lost, duplicated, torn or
 *    reordered per writer.
 * Run it with --smp 2 (or more) so the two sides really run in parallel.
 */
#include <sys/ioctl.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

FIXTURE(conc) {
	int fds[2];
};

FIXTURE_VARIANT(conc) {
	enum backend backend;
};

BACKEND_VARIANTS(conc);

FIXTURE_SETUP(conc)
{
	int ret;

	self->fds[0] = self->fds[1] = -1;
	if (!backend_selected(variant->backend))
		SKIP(return, "%s: not in AIOPIPE_TEST_BACKENDS",
		     backend_name(variant->backend));
	ret = backend_pair(variant->backend, self->fds, 0);
	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
}

FIXTURE_TEARDOWN(conc)
{
	backend_close(self->fds);
}

static uint32_t hash32(uint32_t a, uint32_t b)
{
	uint64_t z = ((uint64_t)a << 32 | b) * 0x9e3779b97f4a7c15ULL;

	z ^= z >> 29;
	z *= 0xbf58476d1ce4e5b9ULL;
	return (uint32_t)(z ^ (z >> 32));
}

/* ---- PIPE_BUF atomicity: variable-size records, one write each ---------- */

#define REC_MAGIC	0xa1b2c3d4U
#define HDR		12

struct rec_hdr {
	uint32_t magic;
	uint16_t writer;
	uint16_t len;		/* whole record, header included */
	uint32_t seq;
};

static unsigned char body_byte(unsigned int w, unsigned int seq, unsigned int i)
{
	return (unsigned char)(hash32(w << 20 | (seq & 0xfffff), i) >> 24);
}

static size_t make_record(unsigned char *buf, unsigned int w, unsigned int seq,
			  size_t len)
{
	struct rec_hdr h = { REC_MAGIC, (uint16_t)w, (uint16_t)len, seq };

	memcpy(buf, &h, sizeof(h));
	for (size_t i = HDR; i < len; i++)
		buf[i] = body_byte(w, seq, (unsigned int)i);
	return len;
}

/*
 * Writer process @w: @count records of random size in [HDR, PIPE_BUF],
 * each with one write() (or, for odd @w, one writev() of two segments).
 * Exit status 0, or 1 + the failing seq's low bits.
 */
static int atomic_writer(int fd, unsigned int w, unsigned int count, uint64_t seed)
{
	static unsigned char buf[PIPE_BUF];

	for (unsigned int seq = 0; seq < count; seq++) {
		size_t len = pt_rand_range(&seed, HDR, PIPE_BUF);
		ssize_t n;

		make_record(buf, w, seq, len);
		if (w & 1) {
			size_t cut = pt_rand_range(&seed, 1, len - 1);
			struct iovec iov[2] = { { buf, cut }, { buf + cut, len - cut } };

			n = writev(fd, iov, 2);
		} else {
			n = write(fd, buf, len);
		}
		if (n != (ssize_t)len)
			return 2;
	}
	return 0;
}

struct parse {
	unsigned char *buf;
	size_t have;
	unsigned int nwriters;
	unsigned int *next;	/* next expected seq per writer */
	unsigned long records;
	const char *error;
	unsigned long error_at;	/* stream offset of the bad record */
	unsigned long offset;
};

/* Parse whole records at the start of p->buf; false on the first bad one. */
static bool parse_records(struct parse *p)
{
	size_t off = 0;

	while (p->have - off >= HDR) {
		struct rec_hdr h;

		memcpy(&h, p->buf + off, sizeof(h));
		if (h.magic != REC_MAGIC || h.writer >= p->nwriters ||
		    h.len < HDR || h.len > PIPE_BUF) {
			p->error = "bad header: a write was interleaved or torn";
			break;
		}
		if (p->have - off < h.len)
			break;
		if (h.seq != p->next[h.writer]) {
			p->error = "a writer's records out of order, lost or duplicated";
			break;
		}
		for (size_t i = HDR; i < h.len; i++) {
			if (p->buf[off + i] != body_byte(h.writer, h.seq, (unsigned int)i)) {
				p->error = "bad body: a write was interleaved or torn";
				break;
			}
		}
		if (p->error)
			break;
		p->next[h.writer]++;
		p->records++;
		off += h.len;
	}
	if (p->error) {
		p->error_at = p->offset + off;
		return false;
	}
	memmove(p->buf, p->buf + off, p->have - off);
	p->have -= off;
	p->offset += off;
	return true;
}

TEST_F_TIMEOUT(conc, pipe_buf_writes_of_many_processes_never_interleave, 300)
{
	/*
	 *  writer 0..3 (processes)             main (reader)
	 *  1500 records each, 12..PIPE_BUF     read(64 KiB) and parse:
	 *  bytes, one write/writev each        whole records, each writer
	 *  ------------------------------->    in order, to EOF
	 */
	enum { NW = 4, COUNT = 1500 };
	unsigned int next[NW] = { 0 };
	struct parse p = { .nwriters = NW, .next = next };
	uint64_t seed = pt_seed();
	pid_t pid[NW];
	ssize_t n;

	BACKEND_BEGIN(variant);
	TH_LOG("seed %#llx (AIOPIPE_SEED)", (unsigned long long)seed);
	p.buf = malloc(2 * 65536 + PIPE_BUF);
	ASSERT_NE(NULL, p.buf);
	for (unsigned int w = 0; w < NW; w++) {
		pid[w] = fork();
		ASSERT_LE(0, pid[w]);
		if (!pid[w]) {
			close(self->fds[0]);
			_exit(atomic_writer(self->fds[1], w, COUNT, seed + w));
		}
	}
	close(self->fds[1]);
	self->fds[1] = -1;
	while ((n = read(self->fds[0], p.buf + p.have, 65536)) > 0) {
		p.have += n;
		if (!parse_records(&p))
			break;
	}
	EXPECT_EQ(NULL, p.error) TH_LOG("%s at stream offset %lu", p.error, p.error_at);
	EXPECT_EQ(0, n);
	EXPECT_EQ(0UL, p.have);
	for (unsigned int w = 0; w < NW; w++) {
		EXPECT_EQ(0, pt_child_result(pid[w])) TH_LOG("writer %u", w);
		EXPECT_EQ((unsigned int)COUNT, next[w]) TH_LOG("writer %u", w);
	}
	EXPECT_EQ((unsigned long)NW * COUNT, p.records);
	free(p.buf);
}

struct nb_writer {
	int fd;
	unsigned int w, count;
	uint64_t seed;
	unsigned long partial;	/* writes that were neither whole nor EAGAIN */
	unsigned long eagain;
};

static void *nb_writer(void *arg)
{
	struct nb_writer *nw = arg;
	unsigned char buf[PIPE_BUF];

	for (unsigned int seq = 0; seq < nw->count; seq++) {
		size_t len = pt_rand_range(&nw->seed, HDR, PIPE_BUF);

		make_record(buf, nw->w, seq, len);
		for (;;) {
			ssize_t n = write(nw->fd, buf, len);

			if (n == (ssize_t)len)
				break;
			if (n < 0 && errno == EAGAIN) {
				nw->eagain++;
				pt_poll_ms(nw->fd, POLLOUT, PT_TIMEOUT_MS);
				continue;
			}
			nw->partial++;
			return NULL;
		}
	}
	return NULL;
}

TEST_F_TIMEOUT(conc, nonblocking_pipe_buf_writes_are_all_or_nothing, 300)
{
	/*
	 *  writer threads 0, 1 (O_NONBLOCK)    main (reader, small reads)
	 *  write; on EAGAIN poll(POLLOUT)      parse records to EOF
	 *  and retry: never a short count
	 */
	enum { NW = 2, COUNT = 3000 };
	unsigned int next[NW] = { 0 };
	struct parse p = { .nwriters = NW, .next = next };
	struct nb_writer nw[NW];
	uint64_t seed = pt_seed(), rs;
	pthread_t t[NW];
	ssize_t n;

	BACKEND_BEGIN(variant);
	TH_LOG("seed %#llx (AIOPIPE_SEED)", (unsigned long long)seed);
	rs = seed;
	p.buf = malloc(2 * 65536 + PIPE_BUF);
	ASSERT_NE(NULL, p.buf);
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	for (unsigned int w = 0; w < NW; w++) {
		nw[w] = (struct nb_writer){ .fd = self->fds[1], .w = w,
					    .count = COUNT, .seed = seed + w };
		ASSERT_EQ(0, pthread_create(&t[w], NULL, nb_writer, &nw[w]));
	}
	for (;;) {
		size_t want = pt_rand_range(&rs, 1, 3 * PIPE_BUF);
		bool done = true;

		/* close the write end once both writers are finished */
		for (unsigned int w = 0; w < NW; w++)
			done &= next[w] == COUNT || nw[w].partial;
		if (done && self->fds[1] >= 0) {
			for (unsigned int w = 0; w < NW; w++)
				ASSERT_TRUE(pt_join(t[w], NULL));
			close(self->fds[1]);
			self->fds[1] = -1;
		}
		n = read(self->fds[0], p.buf + p.have, want);
		if (n <= 0)
			break;
		p.have += n;
		if (!parse_records(&p))
			break;
	}
	EXPECT_EQ(NULL, p.error) TH_LOG("%s at stream offset %lu", p.error, p.error_at);
	EXPECT_EQ(0, n);
	for (unsigned int w = 0; w < NW; w++) {
		EXPECT_EQ(0UL, nw[w].partial) TH_LOG("writer %u: short nonblocking write", w);
		EXPECT_EQ((unsigned int)COUNT, next[w]);
	}
	if (self->fds[1] >= 0)
		for (unsigned int w = 0; w < NW; w++)
			pt_join(t[w], NULL);
	TH_LOG("EAGAIN seen %lu + %lu times", nw[0].eagain, nw[1].eagain);
	free(p.buf);
}

/* ---- wakeups with sleepers on both sides ------------------------------------ */

/* Wait (bounded) until FIONREAD on @fd is @n. */
static bool fionread_reaches(int fd, int n)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (pt_fionread(fd) != n) {
		if (pt_elapsed_ms(&t0) > PT_TIMEOUT_MS)
			return false;
		sched_yield();
	}
	return true;
}

TEST_F(conc, a_woken_reader_that_makes_room_wakes_the_writer_despite_a_sleeping_reader)
{
	/*
	 *  reader 1        reader 2        writer              main
	 *  read(8K) ...    read(8K) ...                        sees both asleep
	 *  (asleep)        (asleep)        write(128K):
	 *                                  64K in, wakes a
	 *                                  reader, sleeps
	 *  woken: takes 8K                                     (full -> 8K free)
	 *  and wakes the
	 *  next reader and
	 *  the writer:     takes 8K        refills to 64K
	 *                                  and sleeps again    sees FIONREAD
	 *                                                      back at 64K
	 * A pipe wakes its writers and its readers on two queues.  With one
	 * queue, one exclusive wakeup for "data and room" must still reach a
	 * writer when a reader sleeps ahead of it.
	 */
	const size_t len = 2 * 65536;
	static char rbuf[2][8192];
	char *wbuf, *drain;
	struct pt_call r[2], w = { .fn = pt_do_write, .fd = self->fds[1],
				   .len = len };
	size_t got = 0;
	bool refilled;

	BACKEND_BEGIN(variant);
	wbuf = calloc(1, len);
	ASSERT_NE(NULL, wbuf);
	w.buf = wbuf;
	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	ASSERT_EQ(65536, backend_capacity(variant->backend, self->fds[0]));
	for (int i = 0; i < 2; i++) {
		r[i] = (struct pt_call){ .fn = pt_do_read, .fd = self->fds[0],
					 .buf = rbuf[i], .len = sizeof(rbuf[i]) };
		ASSERT_LT(0, pt_call_start(&r[i]));
		ASSERT_TRUE(pt_thread_blocked(r[i].tid, SYS_read));
	}
	ASSERT_LT(0, pt_call_start(&w));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(pt_call_join(&r[i]));
		EXPECT_EQ(8192, r[i].ret);
	}
	refilled = fionread_reaches(self->fds[0], 65536) &&
		   pt_thread_blocked(w.tid, SYS_write);
	EXPECT_TRUE(refilled) TH_LOG("the writer sleeps with %d bytes free",
				     65536 - pt_fionread(self->fds[0]));
	if (!refilled) {
		/* end the writer without relying on more wakeups */
		close(self->fds[0]);
		self->fds[0] = -1;
		ASSERT_TRUE(pt_call_join(&w));
		free(wbuf);
		return;
	}
	/* let the writer finish */
	drain = malloc(len);
	ASSERT_NE(NULL, drain);
	while (got < len - 2 * 8192) {
		ssize_t n = read(self->fds[0], drain, len);

		ASSERT_LT(0, n);
		got += n;
	}
	ASSERT_TRUE(pt_call_join(&w));
	EXPECT_EQ((ssize_t)len, w.ret);
	free(drain);
	free(wbuf);
}

static ssize_t do_fsync(struct pt_call *c)
{
	return fsync(c->fd);
}

TEST(aiopipe_every_drain_waiter_wakes_when_the_pipe_drains)
{
	/*
	 *  fsync thread 1     fsync thread 2     main
	 *  fsync(wr) ...      fsync(wr) ...      sees both asleep
	 *                                        read(rd) everything
	 *  returns 0          returns 0
	 * (aiopipe only: the drain barrier.  One drain is an event for every
	 * waiter, not for one of them.)
	 */
	struct pt_call c[2];
	char buf[100];
	int fds[2];
	bool woke[2];

	ASSERT_EQ(0, aiopipe_pair(fds, 0));
	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	ASSERT_EQ(100, write(fds[1], buf, sizeof(buf)));
	for (int i = 0; i < 2; i++) {
		c[i] = (struct pt_call){ .fn = do_fsync, .fd = fds[1] };
		ASSERT_LT(0, pt_call_start(&c[i]));
		ASSERT_TRUE(pt_thread_blocked(c[i].tid, SYS_fsync));
	}
	ASSERT_EQ(100, read(fds[0], buf, sizeof(buf)));
	for (int i = 0; i < 2; i++)
		woke[i] = pt_call_join(&c[i]);
	for (int i = 0; i < 2; i++) {
		EXPECT_TRUE(woke[i]) TH_LOG("fsync %d still asleep on a drained pipe", i);
		if (woke[i])
			EXPECT_EQ(0, c[i].ret);
	}
	/* end a sleeper without relying on the lost wakeup */
	close(fds[0]);
	for (int i = 0; i < 2; i++)
		if (!woke[i])
			pt_call_join(&c[i]);
	close(fds[1]);
}

/* ---- a million small records through threads ------------------------------ */

#define SMALL_MAGIC	0x5eed

struct small_rec {
	uint32_t seq;
	uint16_t writer;
	uint16_t magic;
	uint32_t payload;
	uint32_t sum;
};

static void small_fill(struct small_rec *r, unsigned int w, uint32_t seq)
{
	r->seq = seq;
	r->writer = (uint16_t)w;
	r->magic = SMALL_MAGIC;
	r->payload = hash32(w, seq);
	r->sum = hash32(seq ^ r->payload, w * 0x10001U + SMALL_MAGIC);
}

static bool small_valid(const struct small_rec *r, unsigned int nwriters)
{
	return r->magic == SMALL_MAGIC && r->writer < nwriters &&
	       r->payload == hash32(r->writer, r->seq) &&
	       r->sum == hash32(r->seq ^ r->payload, r->writer * 0x10001U + SMALL_MAGIC);
}

#define MAX_W	4
#define MAX_R	4

struct stream {
	int wr, rd;
	unsigned int nwriters, nreaders;
	uint32_t per_writer;		/* records per writer */
	bool exact_order;		/* one reader: seqs must be consecutive */
	uint32_t max_batch;		/* records per write; 0: PIPE_BUF's worth */
	uint64_t seed;
	unsigned char *seen[MAX_W];	/* per writer and seq: times seen */
	/* results */
	unsigned long torn_reads;	/* a read not a multiple of a record */
	unsigned long bad;		/* checksum or header wrong */
	unsigned long dup;
	unsigned long reordered;
	unsigned long write_errors;
	unsigned long records_read;
	unsigned long progress;		/* calls that moved bytes, both sides */
};

struct worker {
	struct stream *s;
	unsigned int id;
	uint64_t seed;
};

static void *small_writer(void *arg)
{
	struct worker *wk = arg;
	struct stream *s = wk->s;
	static __thread struct small_rec batch[65536 / sizeof(struct small_rec)];
	uint32_t max = s->max_batch ?: PIPE_BUF / sizeof(struct small_rec);
	uint32_t seq = 0;

	while (seq < s->per_writer) {
		uint32_t n = (uint32_t)pt_rand_range(&wk->seed, 1, max);
		ssize_t len;

		if (n > s->per_writer - seq)
			n = s->per_writer - seq;
		for (uint32_t i = 0; i < n; i++)
			small_fill(&batch[i], wk->id, seq + i);
		len = (ssize_t)(n * sizeof(batch[0]));
		if (write(s->wr, batch, len) != len) {
			__atomic_add_fetch(&s->write_errors, 1, __ATOMIC_RELAXED);
			return NULL;
		}
		__atomic_add_fetch(&s->progress, 1, __ATOMIC_RELAXED);
		seq += n;
	}
	return NULL;
}

static void *small_reader(void *arg)
{
	struct worker *wk = arg;
	struct stream *s = wk->s;
	static __thread struct small_rec buf[8192 / sizeof(struct small_rec)];
	int64_t last[MAX_W];
	unsigned long records = 0;

	for (unsigned int w = 0; w < MAX_W; w++)
		last[w] = -1;
	for (;;) {
		size_t want = pt_rand_range(&wk->seed, 1,
				sizeof(buf) / sizeof(buf[0])) * sizeof(buf[0]);
		ssize_t n = read(s->rd, buf, want);

		if (n <= 0)
			break;
		__atomic_add_fetch(&s->progress, 1, __ATOMIC_RELAXED);
		if (n % sizeof(buf[0])) {
			__atomic_add_fetch(&s->torn_reads, 1, __ATOMIC_RELAXED);
			break;
		}
		for (size_t i = 0; i < n / sizeof(buf[0]); i++) {
			const struct small_rec *r = &buf[i];

			if (!small_valid(r, s->nwriters) || r->seq >= s->per_writer) {
				__atomic_add_fetch(&s->bad, 1, __ATOMIC_RELAXED);
				continue;
			}
			if (__atomic_fetch_add(&s->seen[r->writer][r->seq], 1,
					       __ATOMIC_RELAXED))
				__atomic_add_fetch(&s->dup, 1, __ATOMIC_RELAXED);
			if ((int64_t)r->seq <= last[r->writer] ||
			    (s->exact_order && (int64_t)r->seq != last[r->writer] + 1))
				__atomic_add_fetch(&s->reordered, 1, __ATOMIC_RELAXED);
			last[r->writer] = r->seq;
			records++;
		}
	}
	__atomic_add_fetch(&s->records_read, records, __ATOMIC_RELAXED);
	return NULL;
}

/*
 * Join @t; false if the stream makes no progress for STALL_S seconds while
 * waiting (a lost wakeup: everyone asleep with work to do).
 */
#define STALL_S	20

static bool join_or_stall(struct stream *s, pthread_t t)
{
	unsigned long last = __atomic_load_n(&s->progress, __ATOMIC_RELAXED);
	int idle = 0;

	for (;;) {
		struct timespec ts;
		unsigned long now;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!pthread_timedjoin_np(t, NULL, &ts))
			return true;
		now = __atomic_load_n(&s->progress, __ATOMIC_RELAXED);
		idle = now == last ? idle + 1 : 0;
		last = now;
		if (idle >= STALL_S)
			return false;
	}
}

/*
 * Stream @s: writer threads, reader threads; the write end is closed when
 * every writer is done, so the readers end at EOF.  Returns false if the
 * stream stalled (the threads are left behind, blocked).
 */
static bool run_stream(struct stream *s)
{
	struct worker ww[MAX_W], rw[MAX_R];
	pthread_t wt[MAX_W], rt[MAX_R];
	bool ok = true;

	for (unsigned int w = 0; w < s->nwriters; w++) {
		s->seen[w] = calloc(s->per_writer, 1);
		if (!s->seen[w])
			return false;
	}
	for (unsigned int r = 0; r < s->nreaders; r++) {
		rw[r] = (struct worker){ s, r, s->seed + 100 + r };
		if (pthread_create(&rt[r], NULL, small_reader, &rw[r]))
			return false;
	}
	for (unsigned int w = 0; w < s->nwriters; w++) {
		ww[w] = (struct worker){ s, w, s->seed + w };
		if (pthread_create(&wt[w], NULL, small_writer, &ww[w]))
			return false;
	}
	for (unsigned int w = 0; w < s->nwriters && ok; w++)
		ok = join_or_stall(s, wt[w]);
	close(s->wr);
	for (unsigned int r = 0; r < s->nreaders && ok; r++)
		ok = join_or_stall(s, rt[r]);
	return ok;
}

static unsigned long count_missing(struct stream *s)
{
	unsigned long missing = 0;

	for (unsigned int w = 0; w < s->nwriters; w++) {
		for (uint32_t i = 0; i < s->per_writer; i++)
			missing += !s->seen[w][i];
		free(s->seen[w]);
	}
	return missing;
}

static void check_stream(struct __test_metadata *_metadata, struct stream *s,
			 bool finished, unsigned long total)
{
	EXPECT_TRUE(finished) TH_LOG("no progress for %d s after %lu reads and writes: everyone asleep (a lost wakeup?)",
				     STALL_S, s->progress);
	if (!finished)
		return;
	EXPECT_EQ(0UL, s->write_errors);
	EXPECT_EQ(0UL, s->torn_reads);
	EXPECT_EQ(0UL, s->bad);
	EXPECT_EQ(0UL, s->dup);
	EXPECT_EQ(0UL, s->reordered);
	EXPECT_EQ(total, s->records_read);
	if (finished)
		EXPECT_EQ(0UL, count_missing(s));
}

TEST_F_TIMEOUT(conc, a_million_records_from_3_writers_to_2_readers, 300)
{
	/*
	 *  writer threads 0..2                  reader threads 0..1
	 *  batches of 1..256 16-byte records    reads of 1..512 records
	 *  (<= PIPE_BUF): one write each  ----> check: whole records, sums,
	 *                                       per-writer order; none twice;
	 *                                       at the end none missing
	 */
	struct stream s = {
		.wr = self->fds[1], .rd = self->fds[0],
		.nwriters = 3, .nreaders = 2, .per_writer = 333334,
		.seed = pt_seed(),
	};
	unsigned long total = (unsigned long)s.nwriters * s.per_writer;
	bool finished;

	BACKEND_BEGIN(variant);
	TH_LOG("seed %#llx (AIOPIPE_SEED), %lu records", (unsigned long long)s.seed,
	       total);
	ASSERT_LE(1000000UL, total);
	finished = run_stream(&s);
	self->fds[1] = -1;	/* closed by run_stream() */
	check_stream(_metadata, &s, finished, total);
}

TEST_F_TIMEOUT(conc, records_from_3_writers_to_one_reader_arrive_in_exact_order, 300)
{
	struct stream s = {
		.wr = self->fds[1], .rd = self->fds[0],
		.nwriters = 3, .nreaders = 1, .per_writer = 100000,
		.exact_order = true, .seed = pt_seed(),
	};
	bool finished;

	BACKEND_BEGIN(variant);
	TH_LOG("seed %#llx (AIOPIPE_SEED)", (unsigned long long)s.seed);
	finished = run_stream(&s);
	self->fds[1] = -1;
	check_stream(_metadata, &s, finished, 300000UL);
}

TEST_F_TIMEOUT(conc, records_through_a_one_page_pipe_with_4_writers_and_4_readers, 300)
{
	/* the smallest capacity: every write fills it, everyone sleeps a lot */
	struct stream s = {
		.wr = self->fds[1], .rd = self->fds[0],
		.nwriters = 4, .nreaders = 4, .per_writer = 50000,
		.seed = pt_seed(),
	};
	bool finished;

	BACKEND_BEGIN(variant);
	TH_LOG("seed %#llx (AIOPIPE_SEED)", (unsigned long long)s.seed);
	ASSERT_EQ(4096, backend_set_capacity(variant->backend, self->fds[0], 4096));
	finished = run_stream(&s);
	self->fds[1] = -1;
	check_stream(_metadata, &s, finished, 200000UL);
}

TEST_F_TIMEOUT(conc, large_writes_from_3_writers_to_2_readers_lose_nothing, 300)
{
	/*
	 *  writer threads 0..2                  reader threads 0..1
	 *  batches of 1..4096 records (up to    reads of 1..512 records
	 *  64 KiB, beyond PIPE_BUF: writers     (a reader that reads a page
	 *  sleep on a full pipe while readers   or more must wake the writer
	 *  sleep on an empty one)         ----> even when another reader
	 *                                       sleeps too)
	 * Writes above PIPE_BUF may interleave, but at record boundaries (all
	 * sizes are multiples of a record): the same checks hold.
	 */
	struct stream s = {
		.wr = self->fds[1], .rd = self->fds[0],
		.nwriters = 3, .nreaders = 2, .per_writer = 200000,
		.max_batch = 65536 / sizeof(struct small_rec), .seed = pt_seed(),
	};
	bool finished;

	BACKEND_BEGIN(variant);
	TH_LOG("seed %#llx (AIOPIPE_SEED)", (unsigned long long)s.seed);
	finished = run_stream(&s);
	self->fds[1] = -1;
	check_stream(_metadata, &s, finished, 600000UL);
}

TEST_HARNESS_MAIN
