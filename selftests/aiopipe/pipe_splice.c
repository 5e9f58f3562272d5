// SPDX-License-Identifier: GPL-2.0
/*
 * splice(2) and sendfile(2), side by side.  aiopipe ends implement
 * splice_read and splice_write, so bytes move between an aiopipe and a
 * kernel pipe with splice(), and from a file into an aiopipe with
 * sendfile(), with a pipe's EOF, EAGAIN and EPIPE rules; sendfile() from
 * either is EINVAL (its input must be a regular file).
 *
 * Documented differences (docs/semantics.md), asserted here: an aiopipe end
 * is a file, not a kernel pipe, so
 *  - splice() between an aiopipe and a regular file is EINVAL (one side
 *    of a splice must be a kernel pipe), tee() is EINVAL and vmsplice() is
 *    EBADF;
 *  - SPLICE_F_NONBLOCK does not make a splice from an aiopipe nonblocking
 *    (as for any file: only O_NONBLOCK on the aiopipe end does).
 */
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

FIXTURE(splice) {
	int fds[2];		/* the backend under test */
	int kp[2];		/* a kernel pipe on the other side */
	int file;		/* a temporary file */
};

FIXTURE_VARIANT(splice) {
	enum backend backend;
};

BACKEND_VARIANTS(splice);

FIXTURE_SETUP(splice)
{
	int ret = backend_pair(variant->backend, self->fds, 0);

	self->kp[0] = self->kp[1] = self->file = -1;
	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
	ASSERT_EQ(0, pipe(self->kp));
	self->file = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	ASSERT_LE(0, self->file);
}

FIXTURE_TEARDOWN(splice)
{
	backend_close(self->fds);
	backend_close(self->kp);
	if (self->file >= 0)
		close(self->file);
}

/* splice() until @len bytes moved; returns the total or -errno. */
static ssize_t splice_all(int in, int out, size_t len, unsigned int flags)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = splice(in, NULL, out, NULL, len - done, flags);

		if (n < 0)
			return done ? (ssize_t)done : -errno;
		if (!n)
			break;
		done += n;
	}
	return done;
}

struct drain {
	int fd;
	size_t total;
	size_t bad_at;
};

static void *drain_check(void *arg)
{
	struct drain *d = arg;
	static char buf[32768];
	ssize_t n;

	d->bad_at = SIZE_MAX;
	while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
		size_t ok = pt_pattern_check(buf, n, d->total);

		if (ok != (size_t)n && d->bad_at == SIZE_MAX)
			d->bad_at = d->total + ok;
		d->total += n;
	}
	return NULL;
}

/* splice(c->fd -> (int)c->arg, 4096 bytes), for a helper thread */
static ssize_t do_splice(struct pt_call *c)
{
	return splice(c->fd, NULL, (int)c->arg, NULL, 4096, 0);
}

static ssize_t do_splice_nonblock(struct pt_call *c)
{
	return splice(c->fd, NULL, (int)c->arg, NULL, 4096, SPLICE_F_NONBLOCK);
}

static int fill_file(int fd, size_t len)
{
	static char buf[65536];

	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		pt_pattern_fill(buf, n, off);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return -1;
	}
	return 0;
}

TEST_F(splice, splice_from_the_read_end_into_a_pipe_moves_bytes)
{
	static char in[10000], out[10000];

	pt_pattern_fill(in, sizeof(in), 0);
	ASSERT_EQ(10000, write(self->fds[1], in, sizeof(in)));
	EXPECT_EQ(10000, splice_all(self->fds[0], self->kp[1], 10000, 0));
	EXPECT_EQ(0, pt_fionread(self->fds[0]));
	EXPECT_EQ(10000, read(self->kp[0], out, sizeof(out)));
	EXPECT_EQ(sizeof(out), pt_pattern_check(out, sizeof(out), 0));
}

TEST_F(splice, splice_from_a_pipe_into_the_write_end_moves_bytes)
{
	static char in[10000], out[10000];

	pt_pattern_fill(in, sizeof(in), 0);
	ASSERT_EQ(10000, write(self->kp[1], in, sizeof(in)));
	EXPECT_EQ(10000, splice_all(self->kp[0], self->fds[1], 10000, 0));
	EXPECT_EQ(10000, pt_fionread(self->fds[0]));
	EXPECT_EQ(10000, read(self->fds[0], out, sizeof(out)));
	EXPECT_EQ(sizeof(out), pt_pattern_check(out, sizeof(out), 0));
}

TEST_F(splice, splice_moves_only_what_is_there)
{
	char out[64];

	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	EXPECT_EQ(5, splice(self->fds[0], NULL, self->kp[1], NULL, 4096, 0));
	EXPECT_EQ(5, read(self->kp[0], out, sizeof(out)));
	EXPECT_EQ(0, memcmp(out, "hello", 5));
}

TEST_F(splice, splice_from_the_read_end_at_eof_returns_0)
{
	close(self->fds[1]);
	self->fds[1] = -1;
	EXPECT_EQ(0, splice(self->fds[0], NULL, self->kp[1], NULL, 4096, 0));
}

TEST_F(splice, splice_from_an_empty_nonblocking_read_end_is_eagain)
{
	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], true));
	EXPECT_EQ(-1, splice(self->fds[0], NULL, self->kp[1], NULL, 4096, 0));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_F(splice, splice_into_a_write_end_without_readers_is_epipe_and_sigpipe)
{
	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	close(self->fds[0]);
	self->fds[0] = -1;
	ASSERT_EQ(3, write(self->kp[1], "abc", 3));
	EXPECT_EQ(-1, splice(self->kp[0], NULL, self->fds[1], NULL, 3, 0));
	EXPECT_EQ(EPIPE, errno);
	EXPECT_TRUE(pt_take_signal(SIGPIPE, NULL));
}

TEST_F(splice, blocked_splice_from_the_read_end_wakes_on_write)
{
	/*
	 *  main                        splicer thread
	 *                              splice(rd -> kernel pipe) ... blocks
	 *  sees it blocked
	 *  write(wr, "abc") ---------> returns 3
	 */
	struct pt_call c = { .fn = do_splice };
	char out[8];

	c.fd = self->fds[0];
	c.arg = self->kp[1];
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_splice));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(3, c.ret);
	EXPECT_EQ(3, read(self->kp[0], out, sizeof(out)));
}

TEST_F(splice, sendfile_from_a_file_into_the_write_end_moves_every_byte)
{
	/*
	 *  main                        reader thread
	 *  sendfile(wr, file, 1 MiB)   reads and checks until EOF
	 *  close(wr) ----------------> 1 MiB, in order
	 */
	const size_t len = 1 << 20;
	struct drain d = { .fd = self->fds[0] };
	size_t done = 0;
	pthread_t t;

	ASSERT_EQ(0, fill_file(self->file, len));
	ASSERT_EQ(0, lseek(self->file, 0, SEEK_SET));
	ASSERT_EQ(0, pthread_create(&t, NULL, drain_check, &d));
	while (done < len) {
		ssize_t n = sendfile(self->fds[1], self->file, NULL, len - done);

		if (n <= 0) {
			TH_LOG("sendfile: %zd (%s) after %zu", n, strerror(errno), done);
			break;
		}
		done += n;
	}
	EXPECT_EQ(len, done);
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_TRUE(pt_join(t, NULL));
	EXPECT_EQ(len, d.total);
	EXPECT_EQ(SIZE_MAX, d.bad_at);
}

/* ---- documented differences: an aiopipe end is not a kernel pipe --------- */

TEST_F(splice, splice_between_a_file_and_an_end_needs_a_kernel_pipe)
{
	int expect = backend_is_aiopipe(variant->backend) ? -EINVAL : 4096;
	ssize_t n;

	ASSERT_EQ(0, fill_file(self->file, 4096));
	n = splice(self->file, NULL, self->fds[1], NULL, 4096, 0);
	EXPECT_EQ(expect, n < 0 ? -errno : n);
}

TEST_F(splice, sendfile_from_the_read_end_is_einval)
{
	/* sendfile() wants a regular file or block device as its input */
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	EXPECT_EQ(-1, sendfile(self->file, self->fds[0], NULL, 5));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(5, pt_fionread(self->fds[0]));
}

TEST_F(splice, tee_and_vmsplice_need_a_kernel_pipe)
{
	struct iovec iov = { "abc", 3 };
	bool aio = backend_is_aiopipe(variant->backend);
	ssize_t n;

	ASSERT_EQ(3, write(self->fds[1], "xyz", 3));
	n = tee(self->fds[0], self->kp[1], 3, 0);
	EXPECT_EQ(aio ? -EINVAL : 3, n < 0 ? -errno : n);
	n = vmsplice(self->fds[1], &iov, 1, 0);
	EXPECT_EQ(aio ? -EBADF : 3, n < 0 ? -errno : n);
}

TEST_F(splice, splice_f_nonblock_does_not_make_an_aiopipe_nonblocking)
{
	/*
	 * On a pipe SPLICE_F_NONBLOCK gives EAGAIN at once.  On an aiopipe
	 * (a file, like a socket without O_NONBLOCK) the splice blocks until
	 * data comes: this test writes once it sees the splice blocked.
	 */
	struct pt_call c = { .fn = do_splice_nonblock };

	c.fd = self->fds[0];
	c.arg = self->kp[1];
	ASSERT_LT(0, pt_call_start(&c));
	if (backend_is_aiopipe(variant->backend)) {
		ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_splice));
		ASSERT_EQ(1, write(self->fds[1], "x", 1));
		ASSERT_TRUE(pt_call_join(&c));
		EXPECT_EQ(1, c.ret);
	} else {
		ASSERT_TRUE(pt_call_join(&c));
		EXPECT_EQ(-1, c.ret);
		EXPECT_EQ(EAGAIN, c.err);
	}
}

TEST_HARNESS_MAIN
