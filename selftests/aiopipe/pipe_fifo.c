// SPDX-License-Identifier: GPL-2.0
/*
 * Named FIFO open semantics, side by side: a mkfifo(3) node in /tmp and an
 * aiopipe node /dev/aiopipeN get the same opens, and must answer the same:
 *  - O_RDONLY blocks until a writer opens, O_WRONLY until a reader opens;
 *  - O_RDONLY|O_NONBLOCK returns at once; read gives EOF (no writer) or
 *    EAGAIN (a writer, no data); no POLLHUP before a writer came and went;
 *  - O_WRONLY|O_NONBLOCK without a reader fails with ENXIO;
 *  - O_RDWR never blocks;
 *  - a signal interrupts a blocked open (EINTR, or restart with SA_RESTART);
 *  - the data goes away with the last open end;
 *  - unmodified tools (cat, dd, shell redirection) work on the node.
 *
 * Documented difference (docs/semantics.md): an aiopipe node is a character
 * device, not S_ISFIFO.
 */
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

/* The aiopipe nodes these tests own (the others are left to other tests). */
#define AIOPIPE_NODE	"/dev/aiopipe1"
#define AIOPIPE_NODE2	"/dev/aiopipe2"
/* The node of the cat/dd example. */
#define AIOPIPE_TOOLS_NODE "/dev/aiopipe0"

FIXTURE(fifo) {
	char dir[64];
	char path[96];
	char path2[96];		/* another node, for independence checks */
	char tools_path[96];
};

FIXTURE_VARIANT(fifo) {
	bool aiopipe;
};

FIXTURE_VARIANT_ADD(fifo, mkfifo) { .aiopipe = false };
FIXTURE_VARIANT_ADD(fifo, aiopipe_node) { .aiopipe = true };

/*
 * Every process a test forks, so that a test that fails while a child
 * sleeps in open() (or while opens queue up behind it) still ends: the
 * teardown kills them all.
 */
static pid_t kids[16];
static int nkids;

static void add_kid(pid_t pid)
{
	if (pid > 0 && nkids < (int)(sizeof(kids) / sizeof(kids[0])))
		kids[nkids++] = pid;
}

static void kill_kids(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	nkids = 0;
}

/* Exit code of a kid (as kid_result()); on timeout all kids die. */
static int kid_result(pid_t pid)
{
	int status = 0;

	if (pt_waitpid(pid, &status) != pid) {
		kill_kids();
		return -1;
	}
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : -1;
}

static void on_usr2(int sig)
{
}

struct opener {
	const char *path;
	int flags;
	int fd;
	int err;
};

static void *opener(void *arg)
{
	struct opener *o = arg;

	o->fd = open(o->path, o->flags);
	o->err = errno;
	return NULL;
}

/*
 * open() by the test itself, which must not hang the test: when it has not
 * returned within PT_TIMEOUT_MS it is interrupted and every kid is killed
 * (which ends whatever it waits behind), and it fails with ETIMEDOUT.
 */
static int open_bounded(const char *path, int flags)
{
	struct opener o = { .path = path, .flags = flags, .fd = -1 };
	pthread_t t;

	if (pt_handle_signal(SIGUSR2, on_usr2, false) ||
	    pthread_create(&t, NULL, opener, &o))
		return -1;
	if (pt_join(t, NULL)) {
		errno = o.err;
		return o.fd;
	}
	pthread_kill(t, SIGUSR2);
	kill_kids();
	pthread_join(t, NULL);
	if (o.fd >= 0)
		close(o.fd);
	errno = ETIMEDOUT;
	return -1;
}

FIXTURE_SETUP(fifo)
{
	int fd;

	strcpy(self->dir, "/tmp/aiopipe-fifo.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	if (variant->aiopipe) {
		strcpy(self->path, AIOPIPE_NODE);
		strcpy(self->path2, AIOPIPE_NODE2);
		strcpy(self->tools_path, AIOPIPE_TOOLS_NODE);
	} else {
		snprintf(self->path, sizeof(self->path), "%s/fifo", self->dir);
		ASSERT_EQ(0, mkfifo(self->path, 0600));
		snprintf(self->path2, sizeof(self->path2), "%s/fifo2", self->dir);
		ASSERT_EQ(0, mkfifo(self->path2, 0600));
		strcpy(self->tools_path, self->path);
	}
	/* precondition: nobody has the node open */
	fd = open(self->path, O_WRONLY | O_NONBLOCK);
	ASSERT_EQ(-1, fd) TH_LOG("%s: a reader is still there", self->path);
	ASSERT_EQ(ENXIO, errno) TH_LOG("%s: %s", self->path, strerror(errno));
}

FIXTURE_TEARDOWN(fifo)
{
	char out[128];

	kill_kids();
	if (!variant->aiopipe) {
		unlink(self->path);
		unlink(self->path2);
	}
	snprintf(out, sizeof(out), "%s/in", self->dir);
	unlink(out);
	snprintf(out, sizeof(out), "%s/out", self->dir);
	unlink(out);
	rmdir(self->dir);
}

/*
 * A child process: reports on st (one byte per event: 'O' an open
 * succeeded, 'E' then errno an open failed, 'H' its signal handler ran, ...)
 * and takes orders on go.
 */
struct kid {
	pid_t pid;
	int st;		/* parent reads the child's reports here */
	int go;		/* parent writes orders here; closing it = "finish" */
};

typedef int (*kid_fn)(const char *path, int st, int go);

static int spawn(struct kid *k, kid_fn fn, const char *path)
{
	int st[2], go[2];

	if (pipe2(st, O_CLOEXEC) || pipe2(go, O_CLOEXEC))
		return -1;
	k->pid = fork();
	if (k->pid < 0)
		return -1;
	add_kid(k->pid);
	if (!k->pid) {
		/* hold nothing of the parent's: not the other kids' pipes */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != st[1] && fd != go[0])
				close(fd);
		_exit(fn(path, st[1], go[0]));
	}
	close(st[1]);
	close(go[0]);
	k->st = st[0];
	k->go = go[1];
	return 0;
}

/* The child's next report byte, -1 if none within @ms, -2 at EOF. */
static int report(struct kid *k, int ms)
{
	unsigned char c;

	if (pt_poll_ms(k->st, POLLIN, ms) <= 0)
		return -1;
	if (read(k->st, &c, 1) != 1)
		return -2;
	return c;
}

/* Nothing reported right now (the child is known to be blocked). */
static bool quiet(struct kid *k)
{
	return pt_revents(k->st, POLLIN) == 0;
}

/* Let the child go on, then its exit code (see kid_result()). */
static int finish(struct kid *k)
{
	int ret;

	close(k->go);
	ret = kid_result(k->pid);
	close(k->st);
	return ret;
}

static void say(int st, char c)
{
	if (write(st, &c, 1) != 1)
		_exit(99);
}

/* Open @path with @flags, report 'O' or 'E'+errno; returns the fd. */
static int kid_open(const char *path, int flags, int st)
{
	int fd = open(path, flags);

	if (fd < 0) {
		say(st, 'E');
		say(st, (char)errno);
	} else {
		say(st, 'O');
	}
	return fd;
}

static void wait_go(int go)
{
	char c;

	while (read(go, &c, 1) > 0)
		;
}

static int kid_reader(const char *path, int st, int go)
{
	char buf[16];
	int fd = kid_open(path, O_RDONLY, st);

	if (fd < 0)
		return 1;
	if (read(fd, buf, sizeof(buf)) != 2 || memcmp(buf, "hi", 2))
		return 2;
	wait_go(go);
	return 0;
}

static int kid_writer(const char *path, int st, int go)
{
	int fd = kid_open(path, O_WRONLY, st);

	if (fd < 0)
		return 1;
	if (write(fd, "hi", 2) != 2)
		return 2;
	wait_go(go);
	return 0;
}

static int kid_open_rdonly_and_hold(const char *path, int st, int go)
{
	int fd = kid_open(path, O_RDONLY, st);

	wait_go(go);
	return fd < 0;
}

/* Open for writing; on the first order write once: 'P' for EPIPE. */
static int kid_writer_epipe(const char *path, int st, int go)
{
	char c;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	fd = kid_open(path, O_WRONLY, st);
	if (fd < 0)
		return 1;
	if (read(go, &c, 1) != 1)
		return 2;
	say(st, write(fd, "x", 1) == -1 && errno == EPIPE ? 'P' : 'W');
	wait_go(go);
	return 0;
}

static bool blocked_in_open(pid_t pid)
{
	return pt_wait_blocked(pid, pid, SYS_openat);
}

/* ---- blocking opens ---------------------------------------------------- */

TEST_F(fifo, rdonly_open_blocks_until_a_writer_opens)
{
	/*
	 *  parent                      child
	 *  fork ---------------------> open(O_RDONLY) ... blocks
	 *  sees it blocked, no report
	 *  open(O_WRONLY): at once --> open returns: 'O'
	 *  write("hi") --------------> reads "hi"
	 */
	struct kid k;
	int wr;

	ASSERT_EQ(0, spawn(&k, kid_reader, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	EXPECT_TRUE(quiet(&k));
	wr = open_bounded(self->path, O_WRONLY);
	ASSERT_LE(0, wr);
	EXPECT_EQ('O', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(2, write(wr, "hi", 2));
	EXPECT_EQ(0, finish(&k));
	close(wr);
}

TEST_F(fifo, wronly_open_blocks_until_a_reader_opens)
{
	/*
	 *  parent                      child
	 *  fork ---------------------> open(O_WRONLY) ... blocks
	 *  sees it blocked, no report
	 *  open(O_RDONLY): at once --> open returns: 'O', writes "hi"
	 *  reads "hi"
	 */
	struct kid k;
	char buf[4];
	int rd;

	ASSERT_EQ(0, spawn(&k, kid_writer, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	EXPECT_TRUE(quiet(&k));
	rd = open_bounded(self->path, O_RDONLY);
	ASSERT_LE(0, rd);
	EXPECT_EQ('O', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(2, read(rd, buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "hi", 2));
	EXPECT_EQ(0, finish(&k));
	close(rd);
}

TEST_F(fifo, one_writer_releases_every_blocked_reader)
{
	/*
	 *  parent                      child 1, child 2
	 *  fork x2 ------------------> open(O_RDONLY) ... both block
	 *  sees both blocked
	 *  open(O_WRONLY) -----------> both opens return: 'O', 'O'
	 */
	struct kid k[2];
	int wr;

	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, spawn(&k[i], kid_open_rdonly_and_hold, self->path));
		ASSERT_TRUE(blocked_in_open(k[i].pid));
	}
	wr = open_bounded(self->path, O_WRONLY);
	ASSERT_LE(0, wr);
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ('O', report(&k[i], PT_TIMEOUT_MS));
		EXPECT_EQ(0, finish(&k[i]));
	}
	close(wr);
}

TEST_F(fifo, rdwr_open_never_blocks_and_talks_to_itself)
{
	char buf[4];
	int fd = open_bounded(self->path, O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(POLLOUT | POLLWRNORM, pt_revents(fd, PT_POLL_ALL));
	EXPECT_EQ(1, write(fd, "x", 1));
	EXPECT_EQ(POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM,
		  pt_revents(fd, PT_POLL_ALL));
	EXPECT_EQ(1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ('x', buf[0]);
	close(fd);
}

TEST_F(fifo, rdwr_open_releases_a_blocked_reader)
{
	struct kid k;
	int fd;

	ASSERT_EQ(0, spawn(&k, kid_reader, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	fd = open_bounded(self->path, O_RDWR);
	ASSERT_LE(0, fd);
	EXPECT_EQ('O', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(2, write(fd, "hi", 2));
	EXPECT_EQ(0, finish(&k));
	close(fd);
}

TEST_F(fifo, writer_open_completes_when_a_reader_came_and_went)
{
	/*
	 *  parent                      child (SIGPIPE ignored)
	 *  fork ---------------------> open(O_WRONLY) ... blocks
	 *  sees it blocked
	 *  open(O_RDONLY|O_NONBLOCK)
	 *  close it -----------------> open returns 'O' (a reader came)
	 *  go -----------------------> write: EPIPE (it went): 'P'
	 */
	struct kid k;
	int rd;

	ASSERT_EQ(0, spawn(&k, kid_writer_epipe, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rd);
	close(rd);
	EXPECT_EQ('O', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(1, write(k.go, "g", 1));
	EXPECT_EQ('P', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(0, finish(&k));
}

TEST_F(fifo, a_sleeping_open_does_not_hold_up_opens_of_other_nodes)
{
	/*
	 *  parent                      child
	 *  fork ---------------------> open(node, O_RDONLY) ... sleeps
	 *  sees it asleep in open
	 *  open(node2, O_RDWR): at once
	 *  open(/dev/aiopipe): at once (aiopipe only)
	 *  open(node, O_WRONLY) -----> 'O'
	 */
	struct kid k;
	int fd;

	ASSERT_EQ(0, spawn(&k, kid_open_rdonly_and_hold, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	fd = open_bounded(self->path2, O_RDWR);
	EXPECT_LE(0, fd) TH_LOG("open(%s) waited behind the sleeping open of %s: %s",
				self->path2, self->path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (variant->aiopipe) {
		fd = open_bounded(AIOPIPE_DEV_FACTORY, O_RDONLY);
		EXPECT_LE(0, fd) TH_LOG("open(%s) waited behind the sleeping open of %s: %s",
					AIOPIPE_DEV_FACTORY, self->path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	fd = open_bounded(self->path, O_WRONLY);
	EXPECT_LE(0, fd);
	EXPECT_EQ('O', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(0, finish(&k));
	if (fd >= 0)
		close(fd);
}

/* ---- nonblocking opens ------------------------------------------------- */

TEST_F(fifo, rdonly_nonblock_open_returns_at_once_and_reads_eof)
{
	char buf[4];
	int rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK);

	ASSERT_LE(0, rd);
	EXPECT_EQ(0, read(rd, buf, sizeof(buf)));
	/* and in blocking mode too: no writer, so EOF */
	ASSERT_EQ(0, pt_set_nonblock(rd, false));
	EXPECT_EQ(0, read(rd, buf, sizeof(buf)));
	close(rd);
}

TEST_F(fifo, reader_that_never_saw_a_writer_gets_no_hup)
{
	int rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK);

	ASSERT_LE(0, rd);
	EXPECT_EQ(0, pt_revents(rd, PT_POLL_ALL));
	close(rd);
}

TEST_F(fifo, nonblocking_reader_gets_eagain_then_data_then_eof_and_hup)
{
	char buf[8];
	int rd, wr;

	rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rd);
	wr = open_bounded(self->path, O_WRONLY | O_NONBLOCK);
	ASSERT_LE(0, wr);
	EXPECT_EQ(-1, read(rd, buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(0, pt_revents(rd, PT_POLL_ALL));
	EXPECT_EQ(3, write(wr, "abc", 3));
	EXPECT_EQ(POLLIN | POLLRDNORM, pt_revents(rd, PT_POLL_ALL));
	EXPECT_EQ(3, read(rd, buf, sizeof(buf)));
	close(wr);
	EXPECT_EQ(POLLHUP, pt_revents(rd, PT_POLL_ALL));
	EXPECT_EQ(0, read(rd, buf, sizeof(buf)));
	close(rd);
}

TEST_F(fifo, hup_depends_on_the_writers_each_reader_has_seen)
{
	/*
	 * Reader A opens before a writer comes and goes: POLLHUP.  Reader B
	 * opens (nonblocking) after that writer left: it has seen no writer,
	 * so no POLLHUP, as fifo_open() arranges with f_version / f_pipe.
	 */
	int a, b, wr;

	a = open_bounded(self->path, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, a);
	wr = open_bounded(self->path, O_WRONLY | O_NONBLOCK);
	ASSERT_LE(0, wr);
	close(wr);
	b = open_bounded(self->path, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, b);
	EXPECT_EQ(POLLHUP, pt_revents(a, PT_POLL_ALL));
	EXPECT_EQ(0, pt_revents(b, PT_POLL_ALL));
	/* B sees the next writer leave */
	wr = open_bounded(self->path, O_WRONLY | O_NONBLOCK);
	ASSERT_LE(0, wr);
	EXPECT_EQ(0, pt_revents(b, PT_POLL_ALL));
	close(wr);
	EXPECT_EQ(POLLHUP, pt_revents(b, PT_POLL_ALL));
	close(a);
	close(b);
}

TEST_F(fifo, wronly_nonblock_without_a_reader_fails_with_enxio)
{
	EXPECT_EQ(-1, open_bounded(self->path, O_WRONLY | O_NONBLOCK));
	EXPECT_EQ(ENXIO, errno);
}

TEST_F(fifo, enxio_open_does_not_count_as_a_writer)
{
	int rd;

	EXPECT_EQ(-1, open_bounded(self->path, O_WRONLY | O_NONBLOCK));
	EXPECT_EQ(ENXIO, errno);
	/* no writer was ever counted: a new reader sees no POLLHUP */
	rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rd);
	EXPECT_EQ(0, pt_revents(rd, PT_POLL_ALL));
	close(rd);
}

TEST_F(fifo, wronly_nonblock_with_a_reader_succeeds)
{
	int rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK), wr;

	ASSERT_LE(0, rd);
	wr = open_bounded(self->path, O_WRONLY | O_NONBLOCK);
	EXPECT_LE(0, wr);
	EXPECT_EQ(POLLOUT | POLLWRNORM, pt_revents(wr, PT_POLL_ALL));
	close(wr);
	close(rd);
}

TEST_F(fifo, writer_without_readers_gets_epipe)
{
	int rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK), wr;

	ASSERT_LE(0, rd);
	wr = open_bounded(self->path, O_WRONLY | O_NONBLOCK);
	ASSERT_LE(0, wr);
	close(rd);
	ASSERT_NE(SIG_ERR, signal(SIGPIPE, SIG_IGN));
	EXPECT_EQ(POLLOUT | POLLWRNORM | POLLERR, pt_revents(wr, PT_POLL_ALL));
	EXPECT_EQ(-1, write(wr, "x", 1));
	EXPECT_EQ(EPIPE, errno);
	close(wr);
}

/* ---- signals during a blocked open --------------------------------------- */

static int kid_st = -1;

static void on_signal_report(int sig)
{
	char c = 'H';

	if (write(kid_st, &c, 1) != 1)
		_exit(98);
}

static int kid_open_eintr(const char *path, int st, int go)
{
	kid_st = st;
	if (pt_handle_signal(SIGUSR1, on_signal_report, false))
		return 10;
	if (kid_open(path, O_RDONLY, st) >= 0)
		return 11;
	wait_go(go);
	return 0;
}

static int kid_open_restart(const char *path, int st, int go)
{
	kid_st = st;
	if (pt_handle_signal(SIGUSR1, on_signal_report, true))
		return 10;
	if (kid_open(path, O_RDONLY, st) < 0)
		return 11;
	wait_go(go);
	return 0;
}

TEST_F(fifo, blocked_open_interrupted_fails_with_eintr_and_leaves_no_reader)
{
	/*
	 *  parent                      child (SIGUSR1 handler, no SA_RESTART)
	 *  fork ---------------------> open(O_RDONLY) ... blocks
	 *  sees it blocked
	 *  kill(SIGUSR1) ------------> 'H', open fails: 'E', EINTR
	 *  open(O_WRONLY|O_NONBLOCK)
	 *  == ENXIO: no reader left
	 */
	struct kid k;

	ASSERT_EQ(0, spawn(&k, kid_open_eintr, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	ASSERT_EQ(0, kill(k.pid, SIGUSR1));
	EXPECT_EQ('H', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ('E', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(EINTR, report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(-1, open_bounded(self->path, O_WRONLY | O_NONBLOCK));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(0, finish(&k));
}

TEST_F(fifo, blocked_open_with_sa_restart_keeps_waiting)
{
	/*
	 *  parent                      child (SIGUSR1 handler, SA_RESTART)
	 *  fork ---------------------> open(O_RDONLY) ... blocks
	 *  sees it blocked
	 *  kill(SIGUSR1) ------------> 'H', open restarts
	 *  sees it blocked again
	 *  open(O_WRONLY) -----------> 'O'
	 */
	struct kid k;
	int wr;

	ASSERT_EQ(0, spawn(&k, kid_open_restart, self->path));
	ASSERT_TRUE(blocked_in_open(k.pid));
	ASSERT_EQ(0, kill(k.pid, SIGUSR1));
	EXPECT_EQ('H', report(&k, PT_TIMEOUT_MS));
	ASSERT_TRUE(blocked_in_open(k.pid));
	EXPECT_TRUE(quiet(&k));
	wr = open_bounded(self->path, O_WRONLY);
	ASSERT_LE(0, wr);
	EXPECT_EQ('O', report(&k, PT_TIMEOUT_MS));
	EXPECT_EQ(0, finish(&k));
	close(wr);
}

/* ---- the data's lifetime --------------------------------------------------- */

TEST_F(fifo, data_goes_away_with_the_last_open_end)
{
	char buf[8];
	int fd = open_bounded(self->path, O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(3, write(fd, "abc", 3));
	close(fd);
	fd = open_bounded(self->path, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, pt_fionread(fd));
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	close(fd);
}

TEST_F(fifo, data_stays_while_a_reader_holds_the_node_open)
{
	char buf[8];
	int rd, wr;

	rd = open_bounded(self->path, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rd);
	wr = open_bounded(self->path, O_WRONLY);
	ASSERT_LE(0, wr);
	ASSERT_EQ(3, write(wr, "abc", 3));
	close(wr);
	EXPECT_EQ(3, pt_fionread(rd));
	EXPECT_EQ(3, read(rd, buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "abc", 3));
	EXPECT_EQ(0, read(rd, buf, sizeof(buf)));
	close(rd);
}

TEST_F(fifo, opened_ends_are_streams)
{
	char buf[4];
	int fd = open_bounded(self->path, O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(2, write(fd, "ab", 2));
	EXPECT_EQ(-1, lseek(fd, 0, SEEK_SET));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, pread(fd, buf, 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);
	close(fd);
}

/* ---- documented difference: the node type --------------------------------- */

TEST_F(fifo, aiopipe_node_is_a_character_device_not_a_fifo)
{
	struct stat st;
	int fd;

	ASSERT_EQ(0, stat(self->path, &st));
	EXPECT_EQ(!variant->aiopipe, S_ISFIFO(st.st_mode));
	EXPECT_EQ(variant->aiopipe, S_ISCHR(st.st_mode));
	if (variant->aiopipe)
		EXPECT_EQ(0600, (int)(st.st_mode & 0777)) TH_LOG("default fifo_mode");
	fd = open_bounded(self->path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(!variant->aiopipe, S_ISFIFO(st.st_mode));
	close(fd);
}

/* ---- unmodified tools ------------------------------------------------------- */

static pid_t shell(const char *cmd)
{
	pid_t pid = fork();

	add_kid(pid);
	if (!pid) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Compare two files byte for byte; returns the size if equal, else -1. */
static long same_file(const char *a, const char *b)
{
	static char x[65536], y[65536];
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
	long total = 0;
	ssize_t n, m;

	if (fa < 0 || fb < 0)
		return -1;
	do {
		n = pt_read_all(fa, x, sizeof(x));
		m = pt_read_all(fb, y, sizeof(y));
		if (n != m || n < 0 || memcmp(x, y, n)) {
			total = -1;
			break;
		}
		total += n;
	} while (n);
	close(fa);
	close(fb);
	return total;
}

TEST_F(fifo, cat_and_dd_copy_a_file_byte_for_byte)
{
	/*
	 *  cat NODE > out   &   dd if=in of=NODE bs=64k count=64
	 *  (in: 4 MiB from /dev/urandom); then in == out
	 */
	char in[128], out[128], cmd[512];
	pid_t cat, dd;

	snprintf(in, sizeof(in), "%s/in", self->dir);
	snprintf(out, sizeof(out), "%s/out", self->dir);
	snprintf(cmd, sizeof(cmd),
		 "dd if=/dev/urandom of=%s bs=64k count=64 2>/dev/null", in);
	ASSERT_EQ(0, kid_result(shell(cmd)));
	snprintf(cmd, sizeof(cmd), "cat %s > %s", self->tools_path, out);
	cat = shell(cmd);
	ASSERT_LT(0, cat);
	snprintf(cmd, sizeof(cmd), "dd if=%s of=%s bs=64k count=64 2>/dev/null",
		 in, self->tools_path);
	dd = shell(cmd);
	ASSERT_LT(0, dd);
	EXPECT_EQ(0, kid_result(dd));
	EXPECT_EQ(0, kid_result(cat));
	EXPECT_EQ(64 * 65536, same_file(in, out));
}

TEST_F(fifo, shell_redirection_writes_and_reads_the_node)
{
	char cmd[256], buf[16];
	pid_t pid;
	int fd;

	/* sh writes, we read (our blocking open waits for sh's) */
	snprintf(cmd, sizeof(cmd), "echo hello > %s", self->path);
	pid = shell(cmd);
	ASSERT_LT(0, pid);
	fd = open_bounded(self->path, O_RDONLY);
	ASSERT_LE(0, fd);
	EXPECT_EQ(6, pt_read_all(fd, buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "hello\n", 6));
	close(fd);
	EXPECT_EQ(0, kid_result(pid));
	/* we write, sh reads */
	snprintf(cmd, sizeof(cmd), "read x < %s && test \"$x\" = hi", self->path);
	pid = shell(cmd);
	ASSERT_LT(0, pid);
	fd = open_bounded(self->path, O_WRONLY);
	ASSERT_LE(0, fd);
	EXPECT_EQ(3, write(fd, "hi\n", 3));
	close(fd);
	EXPECT_EQ(0, kid_result(pid));
}

TEST_HARNESS_MAIN
