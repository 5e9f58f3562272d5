// SPDX-License-Identifier: GPL-2.0
/*
 * The factory and the module's life: AIOPIPE_IOC_PAIR gives a read end and
 * a write end that move bytes; the module cannot be unloaded while an end
 * is open; bad requests to the factory get clean errnos.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "backend.h"		/* skips the binary without the module */
#include "libaiopipe.h"

static int factory_open(void)
{
	return open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
}

/* Run "rmmod aiopipe" and return its exit status. */
static int rmmod_status(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 2);
		execlp("rmmod", "rmmod", "aiopipe", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

FIXTURE(pair) {
	int fds[2];
};

FIXTURE_SETUP(pair)
{
	ASSERT_EQ(0, aiopipe_pair(self->fds, 0));
}

FIXTURE_TEARDOWN(pair)
{
	close(self->fds[0]);
	close(self->fds[1]);
}

TEST_F(pair, ends_are_distinct_and_one_way)
{
	char c = 'x';

	EXPECT_NE(self->fds[0], self->fds[1]);
	EXPECT_EQ(O_RDONLY, fcntl(self->fds[0], F_GETFL) & O_ACCMODE);
	EXPECT_EQ(O_WRONLY, fcntl(self->fds[1], F_GETFL) & O_ACCMODE);
	EXPECT_EQ(-1, write(self->fds[0], &c, 1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, read(self->fds[1], &c, 1));
	EXPECT_EQ(EBADF, errno);
}

TEST_F(pair, bytes_in_equal_bytes_out)
{
	static char in[65536], out[65536];
	size_t sizes[] = { 1, 17, 4096, 4097, 65536 };

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)(i * 131 + 7);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t got = 0;

		ASSERT_EQ((ssize_t)sizes[s], write(self->fds[1], in, sizes[s]));
		while (got < sizes[s]) {
			ssize_t n = read(self->fds[0], out + got, sizeof(out) - got);

			ASSERT_LT(0, n);
			got += n;
		}
		EXPECT_EQ(sizes[s], got);
		EXPECT_EQ(0, memcmp(in, out, sizes[s]))
			TH_LOG("size %zu differs", sizes[s]);
	}
}

TEST_F(pair, eof_after_writer_closes)
{
	char buf[8];

	ASSERT_EQ(3, write(self->fds[1], "abc", 3));
	close(self->fds[1]);
	self->fds[1] = open("/dev/null", O_WRONLY);
	EXPECT_EQ(3, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(pair, rmmod_refused_while_an_end_is_open)
{
	EXPECT_NE(0, rmmod_status());
	EXPECT_EQ(0, access(AIOPIPE_DEV_FACTORY, F_OK));
}

TEST_F(pair, unknown_ioctl_is_enotty)
{
	EXPECT_EQ(-1, ioctl(self->fds[0], _IO(AIOPIPE_IOC_MAGIC, 0x7f)));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fds[1], AIOPIPE_IOC_PAIR, NULL));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(pair, bad_pointers_are_efault)
{
	EXPECT_EQ(-1, ioctl(self->fds[0], AIOPIPE_IOC_GET_CAPACITY, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fds[0], AIOPIPE_IOC_GET_STATS, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	char *volatile bad = NULL;

	ASSERT_EQ(1, write(self->fds[1], "z", 1));
	EXPECT_EQ(-1, read(self->fds[0], bad, 1));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, write(self->fds[1], bad, 1));
	EXPECT_EQ(EFAULT, errno);
}

FIXTURE(factory) {
	int dev;
};

FIXTURE_SETUP(factory)
{
	self->dev = factory_open();
	ASSERT_LE(0, self->dev) TH_LOG("open %s: %s", AIOPIPE_DEV_FACTORY,
				       strerror(errno));
}

FIXTURE_TEARDOWN(factory)
{
	close(self->dev);
}

TEST_F(factory, pair_flags_reach_the_fds)
{
	struct aiopipe_pair p = { .flags = O_CLOEXEC | O_NONBLOCK };

	ASSERT_EQ(0, ioctl(self->dev, AIOPIPE_IOC_PAIR, &p));
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(FD_CLOEXEC, fcntl(p.fds[i], F_GETFD));
		EXPECT_EQ(O_NONBLOCK, fcntl(p.fds[i], F_GETFL) & O_NONBLOCK);
		close(p.fds[i]);
	}
	EXPECT_EQ(65536U, p.capacity);
}

TEST_F(factory, unknown_ioctl_is_enotty)
{
	EXPECT_EQ(-1, ioctl(self->dev, FIONREAD, &(int){0}));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(factory, bad_pair_pointer_is_efault)
{
	void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);

	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-1, ioctl(self->dev, AIOPIPE_IOC_PAIR, NULL));
	EXPECT_EQ(EFAULT, errno);
	/* readable but not writable: the fds must not leak */
	EXPECT_EQ(-1, ioctl(self->dev, AIOPIPE_IOC_PAIR, ro));
	EXPECT_EQ(EFAULT, errno);
	munmap(ro, 4096);
}

TEST_F(factory, bad_pair_arguments_are_einval)
{
	struct aiopipe_pair bad_flags = { .flags = O_APPEND };
	struct aiopipe_pair bad_reserved = { .reserved = { 0, 1, 0 } };
	struct aiopipe_pair bad_engine = { .engine = 3 };

	EXPECT_EQ(-1, ioctl(self->dev, AIOPIPE_IOC_PAIR, &bad_flags));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->dev, AIOPIPE_IOC_PAIR, &bad_reserved));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->dev, AIOPIPE_IOC_PAIR, &bad_engine));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(factory, global_stats_have_the_uapi_size)
{
	struct aiopipe_stats st;

	ASSERT_EQ(0, aiopipe_stats(-1, &st));
	EXPECT_EQ(sizeof(st), st.size);
	st.flags = 1;
	EXPECT_EQ(-1, ioctl(self->dev, AIOPIPE_IOC_GET_STATS, &st));
	EXPECT_EQ(EINVAL, errno);
}

/*
 * /sys/class/misc/aiopipe/stats/NAME says what GET_STATS says: each value
 * read between two ioctls lies between their two readings (other tests'
 * work items may still move a counter).
 */
TEST_F(factory, sysfs_stats_match_the_ioctl)
{
	struct aiopipe_stats before, after;
	char path[256], buf[64];
	int n = aiopipe_stat_count();

	ASSERT_LT(0, n);
	for (int i = 0; i < n; i++) {
		unsigned long long a, b, lo, hi, seen;
		int fd;
		ssize_t len;

		snprintf(path, sizeof(path), "/sys/class/misc/aiopipe/stats/%s",
			 aiopipe_stat_name(i));
		ASSERT_EQ(0, aiopipe_stats(self->dev, &before));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		ASSERT_LE(0, fd) TH_LOG("%s: %s", path, strerror(errno));
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		ASSERT_LT(0, len) TH_LOG("%s", path);
		buf[len] = '\0';
		seen = strtoull(buf, NULL, 10);
		ASSERT_EQ(0, aiopipe_stats(self->dev, &after));
		a = aiopipe_stat_value(&before, i);
		b = aiopipe_stat_value(&after, i);
		lo = a < b ? a : b;
		hi = a < b ? b : a;
		EXPECT_TRUE(lo <= seen && seen <= hi)
			TH_LOG("%s: sysfs %llu, ioctl %llu then %llu",
			       aiopipe_stat_name(i), seen, a, b);
	}
}

TEST_HARNESS_MAIN
