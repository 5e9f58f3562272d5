// SPDX-License-Identifier: GPL-2.0
/*
 * Safe defaults for unprivileged users (docs/semantics.md, "Named FIFOs").
 *
 * Any user can make private pairs on /dev/aiopipe, like pipe(2).  The named
 * FIFOs /dev/aiopipeN are global, shared by every user and container, so by
 * default they belong to root with mode 0600 (the fifo_mode module
 * parameter changes that): an unprivileged user cannot open one to read or
 * inject another user's records, or to hold it open against others.
 *
 * The unprivileged side runs in a forked child that drops to uid and gid
 * 65534 (nobody) with no supplementary groups; it reports through shared
 * memory.  Needs root to drop privileges and to open the nodes.
 */
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define NOBODY		65534
#define FACTORY		AIOPIPE_DEV_FACTORY
#define NODE		"/dev/aiopipe0"
#define FIFO_MODE_PARAM	"/sys/module/aiopipe/parameters/fifo_mode"
#define DEFAULT_MODE	0600

/* What the unprivileged child saw: 0 or an errno per step. */
struct report {
	int dropped;		/* 0, or the errno of the privilege drop */
	int step;		/* the step that failed, 0 if none */
	int err[4];
};

FIXTURE(security) {
	struct report *rep;	/* shared with the child */
};

FIXTURE_SETUP(security)
{
	self->rep = MAP_FAILED;
	if (geteuid() != 0)
		SKIP(return, "needs root to drop privileges and open the nodes");
	self->rep = mmap(NULL, sizeof(*self->rep), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->rep);
	memset(self->rep, 0, sizeof(*self->rep));
}

FIXTURE_TEARDOWN(security)
{
	if (self->rep != MAP_FAILED)
		munmap(self->rep, sizeof(*self->rep));
}

/*
 * Run @fn in a child that is nobody: uid and gid 65534, no supplementary
 * groups (so no capabilities either).  0 once the child has ended.
 */
static int as_nobody(void (*fn)(struct report *), struct report *rep)
{
	int status;
	pid_t pid;

	pid = ap_fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (setgroups(0, NULL) ||
		    setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY) ||
		    geteuid() != NOBODY) {
			rep->dropped = errno ?: EPERM;
			_exit(1);
		}
		fn(rep);
		_exit(0);
	}
	return ap_wait_child(pid, AP_LONG_MS, &status);
}

static int open_err(const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Pair on the factory, one byte through it. */
static void make_pair(struct report *rep)
{
	int fds[2] = { -1, -1 }, ret;
	char c = 0;

	ret = aiopipe_pair(fds, O_CLOEXEC);
	if (ret) {
		rep->step = 1;
		rep->err[0] = -ret;
		return;
	}
	if (write(fds[1], "n", 1) != 1) {
		rep->step = 2;
		rep->err[1] = errno;
	} else if (read(fds[0], &c, 1) != 1 || c != 'n') {
		rep->step = 3;
		rep->err[2] = errno;
	}
	backend_close(fds);
}

/* The three opens of the node, each on its own. */
static void open_node(struct report *rep)
{
	rep->err[0] = open_err(NODE, O_RDONLY | O_NONBLOCK);
	rep->err[1] = open_err(NODE, O_WRONLY | O_NONBLOCK);
	rep->err[2] = open_err(NODE, O_RDWR | O_NONBLOCK);
}

static bool have_node(void)
{
	return access(NODE, F_OK) == 0;
}

/*
 *   test (root)                   child (nobody)
 *   fork ------------------------> ioctl(/dev/aiopipe, AIOPIPE_IOC_PAIR)
 *                                  write 1 byte, read it back
 *   waitpid; every step succeeded
 */
TEST_F(security, unprivileged_can_make_pairs)
{
	if (_metadata->skip)
		return;
	if (access(FACTORY, F_OK))
		SKIP(return, "no %s", FACTORY);
	ASSERT_EQ(0, as_nobody(make_pair, self->rep));
	ASSERT_EQ(0, self->rep->dropped)
		TH_LOG("dropping to nobody: %s", strerror(self->rep->dropped));
	EXPECT_EQ(0, self->rep->step)
		TH_LOG("as nobody, step %d (1 pair, 2 write, 3 read): %s",
		       self->rep->step,
		       strerror(self->rep->err[self->rep->step - 1]));
}

/*
 *   test (root)                   child (nobody)
 *   fork ------------------------> open(/dev/aiopipe0, O_RDONLY|O_NONBLOCK)
 *                                  open(.., O_WRONLY|O_NONBLOCK)
 *                                  open(.., O_RDWR|O_NONBLOCK)
 *   waitpid; each failed with EACCES
 */
TEST_F(security, unprivileged_cannot_open_named_fifo)
{
	if (_metadata->skip)
		return;
	if (!have_node())
		SKIP(return, "no %s (module loaded with fifos=0)", NODE);
	ASSERT_EQ(0, as_nobody(open_node, self->rep));
	ASSERT_EQ(0, self->rep->dropped)
		TH_LOG("dropping to nobody: %s", strerror(self->rep->dropped));
	EXPECT_EQ(EACCES, self->rep->err[0])
		TH_LOG("nobody's O_RDONLY open of %s: %s", NODE,
		       self->rep->err[0] ? strerror(self->rep->err[0]) :
		       "succeeded");
	EXPECT_EQ(EACCES, self->rep->err[1])
		TH_LOG("nobody's O_WRONLY open of %s: %s", NODE,
		       self->rep->err[1] ? strerror(self->rep->err[1]) :
		       "succeeded");
	EXPECT_EQ(EACCES, self->rep->err[2])
		TH_LOG("nobody's O_RDWR open of %s: %s", NODE,
		       self->rep->err[2] ? strerror(self->rep->err[2]) :
		       "succeeded");
}

/* Root opens both ends of the node and moves a byte through it. */
TEST_F(security, root_can_open_named_fifo)
{
	int rfd, wfd;
	char c = 0;

	if (_metadata->skip)
		return;
	if (!have_node())
		SKIP(return, "no %s (module loaded with fifos=0)", NODE);
	rfd = open(NODE, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ASSERT_LE(0, rfd) TH_LOG("O_RDONLY: %s", strerror(errno));
	wfd = open(NODE, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	EXPECT_LE(0, wfd) TH_LOG("O_WRONLY: %s", strerror(errno));
	if (wfd >= 0) {
		EXPECT_EQ(1, write(wfd, "r", 1));
		EXPECT_EQ(1, read(rfd, &c, 1));
		EXPECT_EQ('r', c);
		close(wfd);
	}
	close(rfd);
}

/*
 * The fifo_mode parameter as a mode; DEFAULT_MODE if it cannot be read.
 * sysfs prints the ushort in decimal; base 0 also takes an octal "0600".
 */
static unsigned int fifo_mode_param(bool *found)
{
	char buf[32] = { 0 };
	int fd = open(FIFO_MODE_PARAM, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	*found = n > 0;
	return n > 0 ? (unsigned int)strtoul(buf, NULL, 0) : DEFAULT_MODE;
}

/*
 * /dev/aiopipe0 is a character device owned by root:root whose permission
 * bits are the fifo_mode parameter, 0600 unless the module was loaded
 * with another value.
 */
TEST_F(security, named_fifo_mode_is_0600_root_owned_by_default)
{
	unsigned int want;
	struct stat st;
	bool found;

	if (_metadata->skip)
		return;
	if (!have_node())
		SKIP(return, "no %s (module loaded with fifos=0)", NODE);
	want = fifo_mode_param(&found);
	TH_LOG("fifo_mode %s: 0%o", found ? "parameter" : "unreadable, default",
	       want);
	ASSERT_EQ(0, stat(NODE, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0U, st.st_uid);
	EXPECT_EQ(0U, st.st_gid);
	EXPECT_EQ(want, st.st_mode & 0777)
		TH_LOG("%s has mode 0%o, fifo_mode is 0%o", NODE,
		       st.st_mode & 0777, want);
}

TEST_HARNESS_MAIN
