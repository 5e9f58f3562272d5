// SPDX-License-Identifier: GPL-2.0
/*
 * Randomised differential test: one seeded random sequence of operations
 * is applied in lockstep to a kernel pipe and to an aiopipe pair (per
 * engine): reads and readv (0 .. 2 * PIPE_BUF bytes), writes and writev
 * (0 .. 2 * PIPE_BUF bytes), O_NONBLOCK toggles on either end, poll on both
 * ends, FIONREAD, and closing either end (then a new pair).  Every return
 * value, errno, poll mask and byte read must be the same on both, and match
 * a model of the stream.
 *
 * The seed is printed; AIOPIPE_SEED=<seed> replays a run, AIOPIPE_OPS=<n>
 * sets its length (default 100000), AIOPIPE_RANDOM_MODEL_CHECK=1 runs it on
 * two kernel pipes (a check of the model itself).
 *
 * The capacity difference (docs/semantics.md: an aiopipe counts bytes, a
 * pipe page slots) is kept out of the comparison: a write is only issued
 * when both must take all of it and stay writable afterwards, i.e. when the
 * pipe keeps at least one free page slot (an upper bound of the slots in
 * use is tracked from the writes still unread) and the aiopipe at least
 * PIPE_BUF free bytes.  "Full" is tested deterministically elsewhere
 * (pipe_basic, pipe_capacity).  Reads and writes that would block are not
 * issued (they are tested elsewhere too); with O_NONBLOCK they are, and
 * must give the same EAGAIN.
 */
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

#define PAGE		4096
#define SLOTS		16		/* a pipe's default page slots */
#define CAP_BYTES	65536
#define MAX_IO		(2 * PIPE_BUF)
#define MAX_WRITES	64		/* unread writes tracked for the slot bound */

FIXTURE(random) {
	int p[2];	/* kernel pipe */
	int a[2];	/* aiopipe */
};

FIXTURE_VARIANT(random) {
	enum backend backend;
};

FIXTURE_VARIANT_ADD(random, aiopipe_retry) { .backend = BACKEND_RETRY };
FIXTURE_VARIANT_ADD(random, aiopipe_direct) { .backend = BACKEND_DIRECT };

FIXTURE_SETUP(random)
{
	self->p[0] = self->p[1] = self->a[0] = self->a[1] = -1;
	ASSERT_NE(SIG_ERR, signal(SIGPIPE, SIG_IGN));
}

FIXTURE_TEARDOWN(random)
{
	backend_close(self->p);
	backend_close(self->a);
}

/* What the test knows about the stream of the current pair. */
struct model {
	bool rd_open, wr_open, rd_nb, wr_nb;
	uint64_t wpos, rpos;		/* bytes written / read so far */
	size_t writes[MAX_WRITES];	/* sizes of writes with unread bytes */
	size_t first_left;		/* unread bytes of writes[0] */
	int nwrites;
};

static size_t held(const struct model *m)
{
	return (size_t)(m->wpos - m->rpos);
}

/* Upper bound of the page slots a pipe uses for the unread bytes. */
static int slot_bound(const struct model *m)
{
	int slots = 1;	/* the page a first unread write may share */

	for (int i = 0; i < m->nwrites; i++)
		slots += (int)((m->writes[i] + PAGE - 1) / PAGE);
	return slots;
}

static void model_write(struct model *m, size_t n)
{
	if (!n)
		return;
	if (!m->nwrites)
		m->first_left = n;
	m->writes[m->nwrites++] = n;
	m->wpos += n;
}

static void model_read(struct model *m, size_t n)
{
	m->rpos += n;
	while (n && m->nwrites) {
		size_t take = n < m->first_left ? n : m->first_left;

		m->first_left -= take;
		n -= take;
		if (!m->first_left) {
			memmove(m->writes, m->writes + 1,
				--m->nwrites * sizeof(m->writes[0]));
			if (m->nwrites)
				m->first_left = m->writes[0];
		}
	}
}

/* Both may take a write of @n whole and stay writable (no capacity diff). */
static bool write_is_safe(const struct model *m, size_t n)
{
	return m->nwrites < MAX_WRITES - 1 &&
	       slot_bound(m) + (int)((n + PAGE - 1) / PAGE) <= SLOTS - 1 &&
	       held(m) + n <= CAP_BYTES - PIPE_BUF;
}

/* One result of one call on one backend. */
struct res {
	ssize_t ret;
	int err;
};

static struct res result(ssize_t ret)
{
	return (struct res){ ret, ret < 0 ? errno : 0 };
}

/* Split @len bytes at @buf into 1..4 iovecs (some empty). */
static int make_iov(uint64_t *rs, char *buf, size_t len, struct iovec *iov)
{
	int n = (int)pt_rand_range(rs, 1, 4);
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		size_t part = i == n - 1 ? len - off : pt_rand_range(rs, 0, len - off);

		iov[i] = (struct iovec){ buf + off, part };
		off += part;
	}
	return n;
}

enum op { OP_WRITE, OP_READ, OP_NONBLOCK, OP_POLL, OP_FIONREAD, OP_CLOSE, OP_NR };

struct history {
	char line[32][96];
	unsigned long n;
};

static void note(struct history *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct history *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->line[h->n % 32], sizeof(h->line[0]), fmt, ap);
	va_end(ap);
	h->n++;
}

static void dump(struct __test_metadata *_metadata, struct history *h,
		 unsigned long long seed)
{
	unsigned long from = h->n > 32 ? h->n - 32 : 0;

	TH_LOG("seed %#llx: replay with AIOPIPE_SEED=%#llx; last operations:",
	       seed, seed);
	for (unsigned long i = from; i < h->n; i++)
		TH_LOG("  #%lu %s", i, h->line[i % 32]);
}

/* Expected poll bits of each end from the model. */
static int want_rd_mask(const struct model *m)
{
	return (held(m) ? POLLIN | POLLRDNORM : 0) | (m->wr_open ? 0 : POLLHUP);
}

static int want_wr_mask(const struct model *m)
{
	/* writes are kept where both stay writable */
	return POLLOUT | POLLWRNORM | (m->rd_open ? 0 : POLLERR);
}

TEST_F_TIMEOUT(random, random_operations_match_a_kernel_pipe, 600)
{
	/*
	 *  one seeded generator
	 *        |
	 *        +--> op on the kernel pipe  --> result P
	 *        +--> same op on the aiopipe --> result A
	 *  P == A == model, for every op
	 */
	unsigned long long seed = pt_seed();
	const char *ops_env = getenv("AIOPIPE_OPS");
	unsigned long ops = ops_env ? strtoul(ops_env, NULL, 0) : 100000;
	static char wbuf[MAX_IO], pbuf[MAX_IO], abuf[MAX_IO];
	unsigned long counts[OP_NR] = { 0 }, pairs = 0, max_held = 0;
	struct history *h = calloc(1, sizeof(*h));
	struct model m;
	uint64_t rs = seed;
	bool bad = false;

	ASSERT_NE(NULL, h);
	TH_LOG("seed %#llx (AIOPIPE_SEED), %lu operations", seed, ops);
	for (unsigned long i = 0; i < ops && !bad; i++) {
		struct res p, a;
		enum op op;
		int end;

		if (self->p[0] < 0 && self->p[1] < 0) {
			ASSERT_EQ(0, pipe(self->p));
			/* AIOPIPE_RANDOM_MODEL_CHECK: two kernel pipes, to check the model */
			ASSERT_EQ(0, backend_pair(getenv("AIOPIPE_RANDOM_MODEL_CHECK") ?
						  BACKEND_PIPE : variant->backend,
						  self->a, 0));
			memset(&m, 0, sizeof(m));
			m.rd_open = m.wr_open = true;
			pairs++;
			note(h, "new pair");
		}
		op = (enum op)pt_rand_range(&rs, 0, 99);
		/* weights: write 35, read 35, nonblock 8, poll 12, fionread 9, close 1 */
		op = op < 35 ? OP_WRITE : op < 70 ? OP_READ : op < 78 ? OP_NONBLOCK :
		     op < 90 ? OP_POLL : op < 99 ? OP_FIONREAD : OP_CLOSE;
		end = (int)pt_rand_range(&rs, 0, 1);

		switch (op) {
		case OP_WRITE: {
			size_t n = pt_rand_range(&rs, 0, MAX_IO);
			bool vec = pt_rand_range(&rs, 0, 1);
			struct iovec iov[4];
			int cnt = 0;

			if (!m.wr_open)
				continue;
			if (m.rd_open && !write_is_safe(&m, n))
				continue;
			pt_pattern_fill(wbuf, n, m.wpos);
			if (vec) {
				cnt = make_iov(&rs, wbuf, n, iov);
				p = result(writev(self->p[1], iov, cnt));
				a = result(writev(self->a[1], iov, cnt));
			} else {
				p = result(write(self->p[1], wbuf, n));
				a = result(write(self->a[1], wbuf, n));
			}
			note(h, "%s(wr, %zu)%s -> pipe %zd/%d aiopipe %zd/%d",
			     vec ? "writev" : "write", n, m.wr_nb ? " nb" : "",
			     p.ret, p.err, a.ret, a.err);
			if (p.ret != a.ret || p.err != a.err) {
				bad = true;
				break;
			}
			if (!m.rd_open) {
				/* nothing happens for 0 bytes; else EPIPE */
				bad = n ? p.err != EPIPE : p.ret != 0;
				break;
			}
			bad = p.ret != (ssize_t)n;
			if (!bad)
				model_write(&m, n);
			if (held(&m) > max_held)
				max_held = held(&m);
			break;
		}
		case OP_READ: {
			size_t n = pt_rand_range(&rs, 0, MAX_IO);
			bool vec = pt_rand_range(&rs, 0, 1);
			size_t want;
			ssize_t expect;

			if (!m.rd_open)
				continue;
			/* a blocking read of an empty pipe with a writer would block */
			if (n && !held(&m) && m.wr_open && !m.rd_nb)
				continue;
			memset(pbuf, 0, n);
			memset(abuf, 0xff, n);
			if (vec) {
				struct iovec pi[4], ai[4];
				int cnt = make_iov(&rs, pbuf, n, pi);

				for (int k = 0; k < cnt; k++)
					ai[k] = (struct iovec){
						abuf + ((char *)pi[k].iov_base - pbuf),
						pi[k].iov_len };
				p = result(readv(self->p[0], pi, cnt));
				a = result(readv(self->a[0], ai, cnt));
			} else {
				p = result(read(self->p[0], pbuf, n));
				a = result(read(self->a[0], abuf, n));
			}
			note(h, "%s(rd, %zu)%s held %zu -> pipe %zd/%d aiopipe %zd/%d",
			     vec ? "readv" : "read", n, m.rd_nb ? " nb" : "",
			     held(&m), p.ret, p.err, a.ret, a.err);
			if (p.ret != a.ret || p.err != a.err) {
				bad = true;
				break;
			}
			want = n < held(&m) ? n : held(&m);
			expect = (ssize_t)want;
			if (!want && n && m.wr_open)
				expect = -1;	/* EAGAIN */
			if (p.ret != expect || (expect < 0 && p.err != EAGAIN)) {
				bad = true;
				break;
			}
			if (p.ret > 0) {
				if (memcmp(pbuf, abuf, p.ret) ||
				    pt_pattern_check(pbuf, p.ret, m.rpos) != (size_t)p.ret) {
					note(h, "bytes differ at stream offset %llu",
					     (unsigned long long)m.rpos);
					bad = true;
					break;
				}
				model_read(&m, p.ret);
			}
			break;
		}
		case OP_NONBLOCK: {
			bool on = pt_rand_range(&rs, 0, 1);

			if (end ? !m.wr_open : !m.rd_open)
				continue;
			ASSERT_EQ(0, pt_set_nonblock(self->p[end], on));
			ASSERT_EQ(0, pt_set_nonblock(self->a[end], on));
			if (end)
				m.wr_nb = on;
			else
				m.rd_nb = on;
			note(h, "%s O_NONBLOCK %s", end ? "wr" : "rd", on ? "on" : "off");
			break;
		}
		case OP_POLL: {
			int want;

			if (end ? !m.wr_open : !m.rd_open)
				continue;
			p.ret = pt_revents(self->p[end], PT_POLL_ALL);
			a.ret = pt_revents(self->a[end], PT_POLL_ALL);
			want = end ? want_wr_mask(&m) : want_rd_mask(&m);
			note(h, "poll(%s) held %zu -> pipe %#zx aiopipe %#zx (model %#x)",
			     end ? "wr" : "rd", held(&m), p.ret, a.ret, want);
			bad = p.ret != a.ret || p.ret != want;
			break;
		}
		case OP_FIONREAD: {
			if (end ? !m.wr_open : !m.rd_open)
				continue;
			p.ret = pt_fionread(self->p[end]);
			a.ret = pt_fionread(self->a[end]);
			note(h, "FIONREAD(%s) -> pipe %zd aiopipe %zd (model %zu)",
			     end ? "wr" : "rd", p.ret, a.ret, held(&m));
			bad = p.ret != a.ret || p.ret != (ssize_t)held(&m);
			break;
		}
		default: {
			if (end ? !m.wr_open : !m.rd_open)
				continue;
			close(self->p[end]);
			close(self->a[end]);
			self->p[end] = self->a[end] = -1;
			if (end)
				m.wr_open = false;
			else
				m.rd_open = false;
			note(h, "close(%s)", end ? "wr" : "rd");
			break;
		}
		}
		counts[op]++;
	}
	if (bad)
		dump(_metadata, h, seed);
	EXPECT_FALSE(bad);
	TH_LOG("%lu pairs, up to %lu bytes held; %lu writes, %lu reads, %lu toggles, %lu polls, %lu FIONREADs, %lu closes",
	       pairs, max_held, counts[OP_WRITE], counts[OP_READ], counts[OP_NONBLOCK],
	       counts[OP_POLL], counts[OP_FIONREAD], counts[OP_CLOSE]);
	free(h);
}

TEST_HARNESS_MAIN
