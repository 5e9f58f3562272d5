// SPDX-License-Identifier: GPL-2.0
/*
 * Synchronous pipe semantics, side by side: every test runs on a kernel
 * pipe and on an aiopipe pair (retry and direct engine) and expects the
 * same results.  Where aiopipe deliberately differs, the test says so and
 * asserts the documented difference (docs/semantics.md).
 *
 * Covered: read/write/readv/writev, partial reads, EOF, EPIPE + SIGPIPE,
 * O_NONBLOCK + EAGAIN, EINTR and SA_RESTART, ESPIPE, FIONREAD, SIGIO,
 * pair flags, access modes.
 */
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

#define CAP_DEFAULT	65536

FIXTURE(basic) {
	int fds[2];
};

FIXTURE_VARIANT(basic) {
	enum backend backend;
};

BACKEND_VARIANTS(basic);

FIXTURE_SETUP(basic)
{
	int ret = backend_pair(variant->backend, self->fds, 0);

	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
	ASSERT_EQ(CAP_DEFAULT, backend_capacity(variant->backend, self->fds[0]));
}

FIXTURE_TEARDOWN(basic)
{
	backend_close(self->fds);
}

static volatile sig_atomic_t handled;

static void on_signal(int sig)
{
	handled++;
}

/* Wait (bounded) until the handler has run @n times. */
static bool handled_reaches(int n)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (handled < n) {
		if (pt_elapsed_ms(&t0) > PT_TIMEOUT_MS)
			return false;
		sched_yield();
	}
	return true;
}

TEST_F(basic, write_then_read_returns_the_same_bytes)
{
	char in[1000], out[1000];

	pt_pattern_fill(in, sizeof(in), 0);
	EXPECT_EQ(1000, write(self->fds[1], in, sizeof(in)));
	EXPECT_EQ(1000, read(self->fds[0], out, sizeof(out)));
	EXPECT_EQ(0, memcmp(in, out, sizeof(in)));
}

TEST_F(basic, read_returns_what_is_there_without_waiting_for_more)
{
	char buf[4096];

	ASSERT_EQ(100, write(self->fds[1], "0123456789" "0123456789" "0123456789"
			     "0123456789" "0123456789" "0123456789" "0123456789"
			     "0123456789" "0123456789" "0123456789", 100));
	EXPECT_EQ(100, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(basic, short_read_leaves_the_rest_in_order)
{
	char in[300], out[1300];

	pt_pattern_fill(in, sizeof(in), 0);
	ASSERT_EQ(300, write(self->fds[1], in, sizeof(in)));
	EXPECT_EQ(30, read(self->fds[0], out, 30));
	EXPECT_EQ(270, pt_fionread(self->fds[0]));
	EXPECT_EQ(270, read(self->fds[0], out + 30, 1000));
	EXPECT_EQ(0, memcmp(in, out, sizeof(in)));
}

TEST_F(basic, reads_span_several_writes)
{
	char in[3000], out[4500];

	pt_pattern_fill(in, sizeof(in), 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1000, write(self->fds[1], in + i * 1000, 1000));
	EXPECT_EQ(1500, read(self->fds[0], out, 1500));
	EXPECT_EQ(1500, read(self->fds[0], out + 1500, 3000));
	EXPECT_EQ(0, memcmp(in, out, sizeof(in)));
}

TEST_F(basic, writev_gathers_and_readv_scatters)
{
	char in[700], out[700];
	struct iovec w[4] = {
		{ in, 100 }, { in + 100, 0 }, { in + 100, 350 }, { in + 450, 250 },
	};
	struct iovec r[3] = {
		{ out, 1 }, { out + 1, 498 }, { out + 499, 201 },
	};

	pt_pattern_fill(in, sizeof(in), 0);
	memset(out, 0, sizeof(out));
	EXPECT_EQ(700, writev(self->fds[1], w, 4));
	EXPECT_EQ(700, readv(self->fds[0], r, 3));
	EXPECT_EQ(sizeof(out), pt_pattern_check(out, sizeof(out), 0));
}

TEST_F(basic, readv_stops_at_the_bytes_available)
{
	char out[64];
	struct iovec r[2] = { { out, 8 }, { out + 8, 56 } };

	ASSERT_EQ(12, write(self->fds[1], "hello, world", 12));
	EXPECT_EQ(12, readv(self->fds[0], r, 2));
	EXPECT_EQ(0, memcmp(out, "hello, world", 12));
}

TEST_F(basic, zero_length_read_returns_0_at_once_on_an_empty_pipe)
{
	char buf[1];

	/* blocking fd, no data, a writer: still no wait */
	EXPECT_EQ(0, read(self->fds[0], buf, 0));
	EXPECT_EQ(0, readv(self->fds[0], NULL, 0));
}

TEST_F(basic, zero_length_write_returns_0_even_without_readers)
{
	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	EXPECT_EQ(0, write(self->fds[1], "", 0));
	close(self->fds[0]);
	self->fds[0] = -1;
	EXPECT_EQ(0, write(self->fds[1], "", 0));
	EXPECT_FALSE(pt_take_signal(SIGPIPE, NULL));
	/* a non-empty write then fails */
	EXPECT_EQ(-1, write(self->fds[1], "x", 1));
	EXPECT_EQ(EPIPE, errno);
}

TEST_F(basic, eof_once_the_last_writer_is_gone_and_the_data_read)
{
	char buf[16];

	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	close(self->fds[1]);
	self->fds[1] = -1;
	EXPECT_EQ(5, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(basic, no_eof_while_a_duplicate_of_the_write_end_lives)
{
	char buf[16];
	int dup_wr = dup(self->fds[1]);

	ASSERT_GE(dup_wr, 0);
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], true));
	EXPECT_EQ(-1, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	close(dup_wr);
	EXPECT_EQ(0, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(basic, no_eof_while_a_child_holds_the_write_end)
{
	/*
	 *  parent                      child
	 *  fork ------------------->   holds wr, waits on go[0]
	 *  close(wr)
	 *  read(rd, O_NONBLOCK) == EAGAIN (child still a writer)
	 *  close(go[1]) ----------->   exits (wr closed)
	 *  read(rd) == 0 (EOF)
	 */
	int go[2];
	char buf[4];
	pid_t pid;

	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		close(go[1]);
		close(self->fds[0]);
		_exit(read(go[0], buf, 1) == 0 ? 0 : 1);
	}
	close(go[0]);
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], true));
	EXPECT_EQ(-1, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	close(go[1]);
	EXPECT_EQ(0, pt_child_result(pid));
	EXPECT_EQ(0, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(basic, blocked_reader_gets_eof_when_the_last_writer_closes)
{
	/*
	 *  main                        reader thread
	 *                              read(rd) ... blocks (empty)
	 *  sees it blocked in read
	 *  close(wr)  ---------------> read returns 0
	 */
	char buf[16];
	struct pt_call c = { .fn = pt_do_read, .fd = self->fds[0],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_read));
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(0, c.ret);
}

TEST_F(basic, blocked_reader_gets_the_bytes_of_one_write)
{
	/*
	 *  main                        reader thread
	 *                              read(rd, 100) ... blocks
	 *  sees it blocked
	 *  write(wr, 10)  -----------> read returns 10, not 100
	 */
	char buf[100];
	struct pt_call c = { .fn = pt_do_read, .fd = self->fds[0],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_read));
	EXPECT_EQ(10, write(self->fds[1], "0123456789", 10));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(10, c.ret);
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
}

TEST_F(basic, blocked_writer_resumes_when_a_read_makes_room)
{
	/*
	 *  main                        writer thread
	 *  fill the pipe
	 *                              write(wr, PIPE_BUF) ... blocks (full)
	 *  sees it blocked
	 *  read(rd, PIPE_BUF) -------> write returns PIPE_BUF
	 */
	char buf[PIPE_BUF], out[PIPE_BUF];
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	memset(buf, 'w', sizeof(buf));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	EXPECT_EQ(PIPE_BUF, read(self->fds[0], out, sizeof(out)));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(PIPE_BUF, c.ret);
	EXPECT_EQ(CAP_DEFAULT, pt_fionread(self->fds[0]));
}

struct chunk_reader {
	int fd;
	size_t total;
	size_t bad_at;		/* first pattern mismatch, or SIZE_MAX */
	uint64_t seed;
};

static void *chunk_reader(void *arg)
{
	struct chunk_reader *r = arg;
	static char buf[20000];
	ssize_t n;

	r->bad_at = SIZE_MAX;
	for (;;) {
		size_t want = pt_rand_range(&r->seed, 1, sizeof(buf));

		n = read(r->fd, buf, want);
		if (n <= 0)
			break;
		if (r->bad_at == SIZE_MAX &&
		    pt_pattern_check(buf, n, r->total) != (size_t)n)
			r->bad_at = r->total + pt_pattern_check(buf, n, r->total);
		r->total += n;
	}
	return NULL;
}

TEST_F(basic, write_larger_than_the_capacity_completes_with_a_reader)
{
	const size_t len = 1 << 20;
	char *in = malloc(len);
	struct chunk_reader r = { .fd = self->fds[0], .seed = 42 };
	pthread_t t;

	ASSERT_NE(NULL, in);
	pt_pattern_fill(in, len, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, chunk_reader, &r));
	EXPECT_EQ((ssize_t)len, write(self->fds[1], in, len));
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_TRUE(pt_join(t, NULL));
	EXPECT_EQ(len, r.total);
	EXPECT_EQ(SIZE_MAX, r.bad_at);
	free(in);
}

TEST_F(basic, epipe_and_sigpipe_when_no_reader_is_left)
{
	siginfo_t si;

	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	close(self->fds[0]);
	self->fds[0] = -1;
	EXPECT_EQ(-1, write(self->fds[1], "x", 1));
	EXPECT_EQ(EPIPE, errno);
	ASSERT_TRUE(pt_take_signal(SIGPIPE, &si));
	EXPECT_EQ(SIGPIPE, si.si_signo);
	/* once per failing write */
	EXPECT_EQ(-1, write(self->fds[1], "x", 1));
	EXPECT_TRUE(pt_take_signal(SIGPIPE, NULL));
	EXPECT_FALSE(pt_take_signal(SIGPIPE, NULL));
}

TEST_F(basic, sigpipe_kills_a_writer_with_the_default_disposition)
{
	pid_t pid;

	close(self->fds[0]);
	self->fds[0] = -1;
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		signal(SIGPIPE, SIG_DFL);
		write(self->fds[1], "x", 1);
		_exit(0);
	}
	EXPECT_EQ(1000 + SIGPIPE, pt_child_result(pid));
}

TEST_F(basic, epipe_only_when_sigpipe_is_ignored)
{
	ASSERT_NE(SIG_ERR, signal(SIGPIPE, SIG_IGN));
	close(self->fds[0]);
	self->fds[0] = -1;
	EXPECT_EQ(-1, write(self->fds[1], "x", 1));
	EXPECT_EQ(EPIPE, errno);
	struct iovec iov = { "abc", 3 };

	EXPECT_EQ(-1, writev(self->fds[1], &iov, 1));
	EXPECT_EQ(EPIPE, errno);
}

TEST_F(basic, blocked_writer_gets_epipe_and_sigpipe_when_the_reader_leaves)
{
	/*
	 *  main                        writer thread (SIGPIPE blocked)
	 *  fill the pipe
	 *                              write(wr, PIPE_BUF) ... blocks
	 *  sees it blocked
	 *  close(rd)  ---------------> write fails EPIPE, SIGPIPE pending
	 */
	char buf[PIPE_BUF];
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	close(self->fds[0]);
	self->fds[0] = -1;
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(-1, c.ret);
	EXPECT_EQ(EPIPE, c.err);
	EXPECT_TRUE(c.sigpipe);
}

TEST_F(basic, blocked_large_writer_gets_its_count_and_sigpipe_when_the_reader_leaves)
{
	/*
	 *  main                        writer thread (SIGPIPE blocked)
	 *                              write(wr, 2 * capacity)
	 *                              ... blocks once the pipe is full
	 *  sees it blocked, FIONREAD == capacity
	 *  close(rd)  ---------------> write returns capacity (bytes moved),
	 *                              and SIGPIPE is sent all the same
	 */
	const size_t len = 2 * CAP_DEFAULT;
	char *buf = calloc(1, len);
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = len };

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, pt_block_signal(SIGPIPE));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	ASSERT_EQ(CAP_DEFAULT, pt_fionread(self->fds[0]));
	close(self->fds[0]);
	self->fds[0] = -1;
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(CAP_DEFAULT, c.ret);
	EXPECT_TRUE(c.sigpipe) TH_LOG("a write cut short by the readers leaving must raise SIGPIPE (pipe_write does)");
	free(buf);
}

TEST_F(basic, nonblocking_read_of_an_empty_pipe_gives_eagain)
{
	char buf[8];

	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], true));
	EXPECT_EQ(-1, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	struct iovec iov = { buf, sizeof(buf) };

	EXPECT_EQ(-1, readv(self->fds[0], &iov, 1));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	EXPECT_EQ(1, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(basic, nonblocking_write_to_a_full_pipe_gives_eagain)
{
	char buf[PIPE_BUF] = { 0 };

	EXPECT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	EXPECT_EQ(-1, write(self->fds[1], buf, 1));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(-1, write(self->fds[1], buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(CAP_DEFAULT, pt_fionread(self->fds[0]));
}

TEST_F(basic, nonblocking_write_beyond_pipe_buf_is_partial)
{
	const size_t len = 100000;
	char *buf = calloc(1, len);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	EXPECT_EQ(CAP_DEFAULT, write(self->fds[1], buf, len));
	EXPECT_EQ(-1, write(self->fds[1], buf, len));
	EXPECT_EQ(EAGAIN, errno);
	free(buf);
}

TEST_F(basic, nonblocking_write_up_to_pipe_buf_is_all_or_nothing)
{
	char buf[PIPE_BUF] = { 0 };

	/* 15 full pages and 3996 bytes: 100 bytes of room (and no free page) */
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	for (int i = 0; i < 15; i++)
		ASSERT_EQ(PIPE_BUF, write(self->fds[1], buf, PIPE_BUF));
	ASSERT_EQ(PIPE_BUF - 100, write(self->fds[1], buf, PIPE_BUF - 100));
	EXPECT_EQ(-1, write(self->fds[1], buf, 200));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(CAP_DEFAULT - 100, pt_fionread(self->fds[0]));
	EXPECT_EQ(50, write(self->fds[1], buf, 50));
	EXPECT_EQ(50, write(self->fds[1], buf, 50));
	EXPECT_EQ(-1, write(self->fds[1], buf, 1));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_F(basic, o_nonblock_can_be_toggled_with_fcntl)
{
	char buf[4];

	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], true));
	EXPECT_EQ(-1, read(self->fds[0], buf, 1));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], false));
	EXPECT_EQ(0, fcntl(self->fds[0], F_GETFL) & O_NONBLOCK);
	ASSERT_EQ(0, pt_set_nonblock(self->fds[0], true));
	EXPECT_EQ(O_NONBLOCK, fcntl(self->fds[0], F_GETFL) & O_NONBLOCK);
}

TEST_F(basic, ends_have_the_access_modes_of_pipe2)
{
	EXPECT_EQ(O_RDONLY, fcntl(self->fds[0], F_GETFL) & O_ACCMODE);
	EXPECT_EQ(O_WRONLY, fcntl(self->fds[1], F_GETFL) & O_ACCMODE);
	EXPECT_EQ(0, fcntl(self->fds[0], F_GETFL) & O_NONBLOCK);
	EXPECT_EQ(0, fcntl(self->fds[0], F_GETFD) & FD_CLOEXEC);
}

TEST_F(basic, pair_flags_o_nonblock_and_o_cloexec_apply_to_both_ends)
{
	int fds[2];
	char buf[1];

	ASSERT_EQ(0, backend_pair(variant->backend, fds, O_NONBLOCK | O_CLOEXEC));
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(O_NONBLOCK, fcntl(fds[i], F_GETFL) & O_NONBLOCK);
		EXPECT_EQ(FD_CLOEXEC, fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	}
	EXPECT_EQ(-1, read(fds[0], buf, 1));
	EXPECT_EQ(EAGAIN, errno);
	backend_close(fds);
}

TEST_F(basic, wrong_direction_is_ebadf)
{
	char buf[4] = "abc";

	EXPECT_EQ(-1, write(self->fds[0], buf, 1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, read(self->fds[1], buf, 1));
	EXPECT_EQ(EBADF, errno);
}

TEST_F(basic, pread_pwrite_and_lseek_give_espipe)
{
	char buf[4] = "abc";
	struct iovec iov = { buf, 1 };

	ASSERT_EQ(3, write(self->fds[1], buf, 3));
	EXPECT_EQ(-1, pread(self->fds[0], buf, 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, pwrite(self->fds[1], buf, 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, preadv(self->fds[0], &iov, 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, pwritev(self->fds[1], &iov, 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(-1, lseek(self->fds[i], 0, SEEK_CUR));
		EXPECT_EQ(ESPIPE, errno);
		EXPECT_EQ(-1, lseek(self->fds[i], 0, SEEK_SET));
		EXPECT_EQ(ESPIPE, errno);
	}
	/* offset -1 means "the current position": a plain read */
	EXPECT_EQ(1, preadv2(self->fds[0], &iov, 1, -1, 0));
	EXPECT_EQ(1, pwritev2(self->fds[1], &iov, 1, -1, 0));
	EXPECT_EQ(3, pt_fionread(self->fds[0]));
}

TEST_F(basic, fionread_counts_unread_bytes_on_both_ends)
{
	char buf[5000] = { 0 };

	EXPECT_EQ(0, pt_fionread(self->fds[0]));
	EXPECT_EQ(0, pt_fionread(self->fds[1]));
	ASSERT_EQ(123, write(self->fds[1], buf, 123));
	ASSERT_EQ(5000, write(self->fds[1], buf, 5000));
	EXPECT_EQ(5123, pt_fionread(self->fds[0]));
	EXPECT_EQ(5123, pt_fionread(self->fds[1]));
	ASSERT_EQ(200, read(self->fds[0], buf, 200));
	EXPECT_EQ(4923, pt_fionread(self->fds[0]));
}

TEST_F(basic, fstat_type_is_fifo_only_for_kernel_pipes)
{
	struct stat st;

	/* documented difference: pair ends are anonymous-inode files */
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, fstat(self->fds[i], &st));
		EXPECT_EQ(!backend_is_aiopipe(variant->backend),
			  S_ISFIFO(st.st_mode));
	}
}

TEST_F(basic, fsync_is_a_drain_barrier_on_aiopipe_and_einval_on_a_pipe)
{
	/*
	 * Documented difference: fsync/fdatasync on an aiopipe write end
	 * waits until every byte written has been read (at once here: nothing
	 * is unread); EINVAL on the read end.  A pipe has no fsync: EINVAL.
	 */
	int expect = backend_is_aiopipe(variant->backend) ? 0 : -EINVAL;

	EXPECT_EQ(expect, fsync(self->fds[1]) ? -errno : 0);
	EXPECT_EQ(expect, fdatasync(self->fds[1]) ? -errno : 0);
	EXPECT_EQ(-EINVAL, fsync(self->fds[0]) ? -errno : 0);
}

/* ---- signals: EINTR and SA_RESTART ------------------------------------ */

TEST_F(basic, blocked_read_interrupted_without_sa_restart_fails_with_eintr)
{
	/*
	 *  main                        reader thread
	 *                              read(rd) ... blocks
	 *  sees it blocked
	 *  pthread_kill(SIGUSR1) ----> handler runs, read fails EINTR
	 */
	char buf[8];
	struct pt_call c = { .fn = pt_do_read, .fd = self->fds[0],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(0, pt_handle_signal(SIGUSR1, on_signal, false));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_read));
	ASSERT_EQ(0, pthread_kill(c.thread, SIGUSR1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, handled);
	EXPECT_EQ(-1, c.ret);
	EXPECT_EQ(EINTR, c.err);
	EXPECT_EQ(0, pt_fionread(self->fds[0]));
}

TEST_F(basic, blocked_read_interrupted_with_sa_restart_is_restarted)
{
	/*
	 *  main                        reader thread
	 *                              read(rd) ... blocks
	 *  sees it blocked
	 *  pthread_kill(SIGUSR1) ----> handler runs, read restarts
	 *  sees the handler ran and
	 *  the thread blocked in read
	 *  again
	 *  write(wr, "abc") ---------> read returns 3
	 */
	char buf[8];
	struct pt_call c = { .fn = pt_do_read, .fd = self->fds[0],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(0, pt_handle_signal(SIGUSR1, on_signal, true));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_read));
	ASSERT_EQ(0, pthread_kill(c.thread, SIGUSR1));
	ASSERT_TRUE(handled_reaches(1));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_read));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(3, c.ret);
}

TEST_F(basic, blocked_write_interrupted_without_sa_restart_fails_with_eintr)
{
	char buf[PIPE_BUF] = { 0 };
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(0, pt_handle_signal(SIGUSR1, on_signal, false));
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	ASSERT_EQ(0, pthread_kill(c.thread, SIGUSR1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(-1, c.ret);
	EXPECT_EQ(EINTR, c.err);
	EXPECT_EQ(CAP_DEFAULT, pt_fionread(self->fds[0]));
}

TEST_F(basic, blocked_write_interrupted_with_sa_restart_is_restarted)
{
	char buf[PIPE_BUF] = { 0 }, out[PIPE_BUF];
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(0, pt_handle_signal(SIGUSR1, on_signal, true));
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	ASSERT_EQ(0, pthread_kill(c.thread, SIGUSR1));
	ASSERT_TRUE(handled_reaches(1));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], out, sizeof(out)));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(PIPE_BUF, c.ret);
	EXPECT_EQ(CAP_DEFAULT, pt_fionread(self->fds[0]));
}

TEST_F(basic, interrupted_large_write_returns_its_partial_count)
{
	/*
	 *  main                        writer thread
	 *                              write(wr, 2 * capacity): blocks full
	 *  sees it blocked
	 *  pthread_kill(SIGUSR1) ----> returns capacity; SA_RESTART does not
	 *                              restart a call that moved bytes
	 */
	const size_t len = 2 * CAP_DEFAULT;
	char *buf = calloc(1, len);
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = len };

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, pt_handle_signal(SIGUSR1, on_signal, true));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	ASSERT_EQ(0, pthread_kill(c.thread, SIGUSR1));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(1, handled);
	EXPECT_EQ(CAP_DEFAULT, c.ret);
	free(buf);
}

TEST_F(basic, signal_from_another_process_interrupts_a_blocked_read)
{
	/*
	 *  parent                      child
	 *  fork ------------------->   SIGUSR1 handler (no SA_RESTART)
	 *                              read(rd) ... blocks
	 *  sees it blocked
	 *  kill(child, SIGUSR1) ---->  read fails EINTR, exit(0)
	 */
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		char buf[4];

		if (pt_handle_signal(SIGUSR1, on_signal, false))
			_exit(2);
		if (read(self->fds[0], buf, sizeof(buf)) != -1)
			_exit(3);
		_exit(errno == EINTR && handled == 1 ? 0 : 4);
	}
	ASSERT_TRUE(pt_wait_blocked(pid, pid, SYS_read));
	ASSERT_EQ(0, kill(pid, SIGUSR1));
	EXPECT_EQ(0, pt_child_result(pid));
}

/* ---- fasync: F_SETOWN + O_ASYNC --------------------------------------- */

static int set_async(int fd, int sig)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETOWN, getpid()) ||
	    fcntl(fd, F_SETSIG, sig) || fcntl(fd, F_SETFL, fl | O_ASYNC))
		return -1;
	return 0;
}

static void drain_signal(int sig)
{
	while (pt_take_signal(sig, NULL))
		;
}

TEST_F(basic, sigio_tells_the_reader_owner_about_a_write)
{
	int sig = SIGRTMIN + 1;
	siginfo_t si;

	ASSERT_EQ(0, pt_block_signal(sig));
	ASSERT_EQ(0, set_async(self->fds[0], sig));
	EXPECT_FALSE(pt_take_signal(sig, NULL));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	ASSERT_TRUE(pt_take_signal(sig, &si));
	EXPECT_EQ(POLL_IN, si.si_code);
	EXPECT_EQ(self->fds[0], si.si_fd);
	EXPECT_TRUE(si.si_band & POLLIN);
}

TEST_F(basic, sigio_with_the_default_signal_is_sigio)
{
	ASSERT_EQ(0, pt_block_signal(SIGIO));
	ASSERT_EQ(0, set_async(self->fds[0], 0));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_TRUE(pt_take_signal(SIGIO, NULL));
}

TEST_F(basic, sigio_tells_the_writer_owner_about_room_in_a_full_pipe)
{
	int sig = SIGRTMIN + 1;
	char buf[PIPE_BUF];
	siginfo_t si;

	ASSERT_EQ(0, pt_block_signal(sig));
	ASSERT_EQ(CAP_DEFAULT, pt_fill(self->fds[1]));
	ASSERT_EQ(0, set_async(self->fds[1], sig));
	drain_signal(sig);
	ASSERT_EQ(PIPE_BUF, read(self->fds[0], buf, sizeof(buf)));
	ASSERT_TRUE(pt_take_signal(sig, &si));
	EXPECT_EQ(POLL_OUT, si.si_code);
	EXPECT_EQ(self->fds[1], si.si_fd);
	EXPECT_TRUE(si.si_band & POLLOUT);
}

TEST_F(basic, sigio_tells_the_reader_owner_that_the_last_writer_left)
{
	int sig = SIGRTMIN + 1;
	siginfo_t si;

	ASSERT_EQ(0, pt_block_signal(sig));
	ASSERT_EQ(0, set_async(self->fds[0], sig));
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_TRUE(pt_take_signal(sig, &si));
	EXPECT_EQ(POLL_IN, si.si_code);
	EXPECT_EQ(self->fds[0], si.si_fd);
}

TEST_F(basic, sigio_tells_the_writer_owner_that_the_last_reader_left)
{
	int sig = SIGRTMIN + 1;
	siginfo_t si;

	ASSERT_EQ(0, pt_block_signal(sig));
	ASSERT_EQ(0, set_async(self->fds[1], sig));
	close(self->fds[0]);
	self->fds[0] = -1;
	ASSERT_TRUE(pt_take_signal(sig, &si));
	EXPECT_EQ(POLL_OUT, si.si_code);
	EXPECT_EQ(self->fds[1], si.si_fd);
}

TEST_F(basic, no_sigio_after_o_async_is_cleared)
{
	int sig = SIGRTMIN + 1;
	int fl;

	ASSERT_EQ(0, pt_block_signal(sig));
	ASSERT_EQ(0, set_async(self->fds[0], sig));
	fl = fcntl(self->fds[0], F_GETFL);
	ASSERT_EQ(0, fcntl(self->fds[0], F_SETFL, fl & ~O_ASYNC));
	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_FALSE(pt_take_signal(sig, NULL));
}

TEST_F(basic, sigio_to_the_writer_on_reads_that_make_no_needed_room_only_on_pipes)
{
	/*
	 * Documented difference: pipe_read() signals the write end's owner
	 * after every read, even one that leaves the pipe nowhere near full
	 * (or reads nothing).  aiopipe raises SIGIO only with a wakeup, i.e.
	 * when a read turns "less than PIPE_BUF free" into more room, which is
	 * exactly when a writer that got EAGAIN can make progress.
	 */
	int sig = SIGRTMIN + 1;
	char buf[16];

	ASSERT_EQ(0, pt_block_signal(sig));
	ASSERT_EQ(0, set_async(self->fds[1], sig));
	ASSERT_EQ(10, write(self->fds[1], "0123456789", 10));
	drain_signal(sig);
	ASSERT_EQ(10, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(!backend_is_aiopipe(variant->backend),
		  pt_take_signal(sig, NULL));
}

TEST_HARNESS_MAIN
