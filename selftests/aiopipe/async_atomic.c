// SPDX-License-Identifier: GPL-2.0
/*
 * A queued write of at most PIPE_BUF bytes is all-or-nothing, on both
 * engines, whatever ends it (docs/semantics.md, "The contract").
 *
 * The ring is full and a libaio write of one 100-byte record is queued
 * behind it.  A reader then frees 30 bytes: too little for the record, so
 * none of it may move (a pipe writer of 100 bytes waits for 100 free).  The
 * record is then ended before it could move: io_cancel, io_destroy, SIGKILL
 * or exit of its submitter, or the last reader closing.  The stream a
 * reader sees afterwards holds the rest of the filler, then either the whole
 * record or none of it, then the next writer's record; never a piece.  Where
 * the test can see the record's completion, it says so: -ECANCELED for
 * io_cancel (nothing moved), -EPIPE when the reader went away.
 */
#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define CAP		4096
#define REC		100
#define FIRST_READ	30
/* Pattern offsets: the filler starts at 0, the records far away. */
#define REC_B_OFF	0x0b000000ULL
#define REC_C_OFF	0x0c000000ULL

enum ender {
	END_IO_CANCEL,
	END_IO_DESTROY,
	END_SIGKILL,
	END_EXIT,
	END_READER_CLOSE,
};

FIXTURE(atomic) {
	int fds[2];
	int note[2];	/* child -> test: 'R' once the record is queued */
	int go[2];	/* test -> child: 'G' to exit */
	io_context_t ctx;
	pid_t child;
	char rec_b[REC], rec_c[REC];
	char got[2 * CAP];
};

FIXTURE_VARIANT(atomic) {
	unsigned int engine;
	enum ender ender;
};

#define ATOMIC_VARIANT(eng, ENG, end, END)				\
	FIXTURE_VARIANT_ADD(atomic, eng##_##end) {			\
		.engine = AIOPIPE_ENGINE_##ENG,				\
		.ender = END_##END,					\
	}

ATOMIC_VARIANT(retry, RETRY, io_cancel, IO_CANCEL);
ATOMIC_VARIANT(retry, RETRY, io_destroy, IO_DESTROY);
ATOMIC_VARIANT(retry, RETRY, sigkill, SIGKILL);
ATOMIC_VARIANT(retry, RETRY, exit, EXIT);
ATOMIC_VARIANT(retry, RETRY, reader_close, READER_CLOSE);
ATOMIC_VARIANT(direct, DIRECT, io_cancel, IO_CANCEL);
ATOMIC_VARIANT(direct, DIRECT, io_destroy, IO_DESTROY);
ATOMIC_VARIANT(direct, DIRECT, sigkill, SIGKILL);
ATOMIC_VARIANT(direct, DIRECT, exit, EXIT);
ATOMIC_VARIANT(direct, DIRECT, reader_close, READER_CLOSE);

FIXTURE_SETUP(atomic)
{
	char fill[CAP];

	self->fds[0] = self->fds[1] = -1;
	self->note[0] = self->note[1] = -1;
	self->go[0] = self->go[1] = -1;
	self->child = -1;
	ASSERT_EQ(0, ap_pair(self->fds, 0, CAP, variant->engine,
			     AIOPIPE_FILTER_ON));
	ASSERT_EQ(CAP, aiopipe_get_capacity(self->fds[0]));
	ASSERT_EQ(0, io_setup(8, &self->ctx));
	ASSERT_EQ(0, pipe(self->note));
	ASSERT_EQ(0, pipe(self->go));
	ap_fill(self->rec_b, REC, REC_B_OFF);
	ap_fill(self->rec_c, REC, REC_C_OFF);
	ap_fill(fill, CAP, 0);
	ASSERT_EQ(CAP, write(self->fds[1], fill, CAP));
}

FIXTURE_TEARDOWN(atomic)
{
	int status;

	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, &status, 0);
	}
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
	backend_close(self->note);
	backend_close(self->go);
}

/*
 * The first "write:" line of /proc/self/fdinfo/@fd (every end lists the
 * channel's pending requests) into @line; false if there is none.
 */
static bool pending_write_line(int fd, char *line, size_t len)
{
	char path[64], buf[4096];
	ssize_t n;
	char *p, *e;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strstr(buf, "write:\t");
	if (!p)
		return false;
	e = strchrnul(p, '\n');
	snprintf(line, len, "%.*s", (int)(e - p), p);
	return true;
}

/*
 * Child: queue the record with its own AIO context, report 'R', then wait
 * to be killed (SIGKILL) or for 'G' (exit with the record still queued).
 */
static void child_queue_record(int fd, const char *rec, int note_fd,
			       int go_fd, enum ender end)
{
	io_context_t ctx = 0;
	struct iocb cb;
	char c;

	if (io_setup(1, &ctx))
		_exit(20);
	io_prep_pwrite(&cb, fd, (void *)rec, REC, 0);
	if (ap_submit1(ctx, &cb) != 1)
		_exit(21);
	ap_notify(note_fd, 'R');
	if (end == END_SIGKILL)
		for (;;)
			pause();
	if (read(go_fd, &c, 1) != 1 || c != 'G')
		_exit(22);
	_exit(0);
}

static int wait_note(int fd)
{
	char c = 0;

	if (ap_poll1(fd, POLLIN, AP_LONG_MS) != 1)
		return -ETIMEDOUT;
	return read(fd, &c, 1) == 1 && c == 'R' ? 0 : -EIO;
}

/* Append everything the ring holds now to @buf (at most @room bytes). */
static size_t drain_now(int fd, char *buf, size_t room)
{
	size_t got = 0;

	while (got < room) {
		ssize_t n = ap_read_now(fd, buf + got, room - got);

		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

/*
 *   capacity 4096, full of filler bytes 0..4095
 *   submitter (test or child)      test (reader, second writer)   aiopipe
 *   PWRITE record B (100) ------------------------------------->  queued
 *                                  fdinfo: "write: queued ... done 0"
 *                                  read(30) ------------------->  30 free:
 *                                                                 B must wait
 *   B ends: io_cancel | io_destroy | SIGKILL | exit
 *                                  | close(read end)
 *                                  read the rest of the ring
 *                                  write record C (100)
 *                                  read the rest
 *   stream: filler 0..4095, then all of B or none of it, then C.
 *   B's completion: io_cancel -ECANCELED, reader_close -EPIPE.
 */
TEST_F(atomic, queued_pipe_buf_write_is_all_or_nothing)
{
	bool forked = variant->ender == END_SIGKILL ||
		      variant->ender == END_EXIT;
	const char *eng = ap_is_direct(variant->engine) ? "direct" : "retry";
	char line[256], want[64];
	size_t got, rest, nb;
	struct io_event ev;
	struct iocb cb;
	int status, fl;
	long res;

	if (forked) {
		self->child = ap_fork();
		ASSERT_LE(0, self->child);
		if (self->child == 0) {
			close(self->note[0]);
			close(self->go[1]);
			child_queue_record(self->fds[1], self->rec_b,
					   self->note[1], self->go[0],
					   variant->ender);
		}
		ASSERT_EQ(0, wait_note(self->note[0]));
	} else {
		io_prep_pwrite(&cb, self->fds[1], self->rec_b, REC, 0);
		ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	}
	ASSERT_TRUE(pending_write_line(self->fds[1], line, sizeof(line)))
		TH_LOG("the record is not pending");
	snprintf(want, sizeof(want), " queued %s done 0 left %d", eng, REC);
	ASSERT_NE(NULL, strstr(line, want)) TH_LOG("fdinfo: %s", line);

	ASSERT_EQ(FIRST_READ, ap_read_now(self->fds[0], self->got,
					  FIRST_READ));
	if (pending_write_line(self->fds[1], line, sizeof(line)))
		TH_LOG("after the %d-byte read: %s", FIRST_READ, line);

	switch (variant->ender) {
	case END_IO_CANCEL:
		EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
		res = ap_reap1(self->ctx, &ev);
		EXPECT_EQ(-ECANCELED, res)
			TH_LOG("the cancelled record reports %ld bytes", res);
		break;
	case END_IO_DESTROY:
		EXPECT_EQ(0, io_destroy(self->ctx));
		self->ctx = 0;
		break;
	case END_SIGKILL:
		ASSERT_EQ(0, kill(self->child, SIGKILL));
		ASSERT_EQ(0, ap_wait_child(self->child, AP_LONG_MS, &status));
		self->child = -1;
		EXPECT_TRUE(WIFSIGNALED(status));
		break;
	case END_EXIT:
		ap_notify(self->go[1], 'G');
		ASSERT_EQ(0, ap_wait_child(self->child, AP_LONG_MS, &status));
		self->child = -1;
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("child status 0x%x", status);
		break;
	case END_READER_CLOSE:
		close(self->fds[0]);
		self->fds[0] = -1;
		res = ap_reap1(self->ctx, &ev);
		EXPECT_EQ(-EPIPE, res)
			TH_LOG("the record reports %ld bytes", res);
		AP_EXPECT_IDLE(self->fds[1]);
		return;
	}
	/* B has ended: nothing is pending any more */
	ASSERT_EQ(0, AP_WAIT_STAT_LE(self->fds[1], pending_writes, 0,
				     AP_LONG_MS));

	got = FIRST_READ;
	got += drain_now(self->fds[0], self->got + got, sizeof(self->got) - got);
	fl = fcntl(self->fds[1], F_GETFL);
	ASSERT_EQ(0, fcntl(self->fds[1], F_SETFL, fl | O_NONBLOCK));
	EXPECT_EQ(REC, write(self->fds[1], self->rec_c, REC));
	fcntl(self->fds[1], F_SETFL, fl);
	got += drain_now(self->fds[0], self->got + got, sizeof(self->got) - got);

	/* filler, then nb bytes of B, then C */
	ASSERT_LE((size_t)(CAP + REC), got) TH_LOG("stream of %zu bytes", got);
	rest = got - CAP;
	nb = rest - REC;
	EXPECT_EQ(-1, ap_check(self->got, CAP, 0));
	EXPECT_TRUE(nb == 0 || nb == REC)
		TH_LOG("torn: %zu bytes of the %d-byte record in the stream",
		       nb, REC);
	EXPECT_EQ(-1, ap_check(self->got + CAP, nb, REC_B_OFF));
	EXPECT_EQ(-1, ap_check(self->got + CAP + nb, REC, REC_C_OFF));
	TH_LOG("stream: %d filler bytes, %zu of the record, then the next",
	       CAP, nb);
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_HARNESS_MAIN
