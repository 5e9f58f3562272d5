// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input, side by side: every request a kernel pipe refuses, an aiopipe
 * refuses with the same errno (or a documented one), and nothing reaches
 * the kernel log (the VM runner fails the run on any warning):
 * unknown ioctls, bad user pointers, zero-length and huge requests,
 * UIO_MAXIOV + 1 segments, closed fds, impossible capacities, and on
 * /dev/aiopipe invalid pair arguments.
 *
 * Documented differences (docs/semantics.md), asserted here:
 *  - a fault in the middle of a user buffer: an aiopipe returns the bytes
 *    moved before the fault, a pipe returns EFAULT when the fault is in the
 *    first page it copies (it drops the partly copied page);
 *  - pair flags: O_DIRECT (packet mode) is EINVAL on aiopipe.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

#define CAP_DEFAULT	65536
#ifndef UIO_MAXIOV
#define UIO_MAXIOV	1024
#endif

FIXTURE(badinput) {
	int fds[2];
	char *page;		/* one readable and writable page ... */
	char *hole;		/* ... followed by a PROT_NONE page */
};

FIXTURE_VARIANT(badinput) {
	enum backend backend;
};

BACKEND_VARIANTS(badinput);

FIXTURE_SETUP(badinput)
{
	int ret = backend_pair(variant->backend, self->fds, 0);
	char *m;

	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
	m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, mprotect(m + 4096, 4096, PROT_NONE));
	self->page = m;
	self->hole = m + 4096;
}

FIXTURE_TEARDOWN(badinput)
{
	backend_close(self->fds);
	if (self->page)
		munmap(self->page, 2 * 4096);
}

/*
 * The system calls themselves, for requests the compiler would (rightly)
 * refuse to let through its fortified wrappers.
 */
static ssize_t raw_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static ssize_t raw_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

static ssize_t raw_readv(int fd, const struct iovec *iov, int cnt)
{
	return syscall(SYS_readv, fd, iov, cnt);
}

/* A kernel address: never a valid user pointer. */
#define KERNEL_PTR	((void *)0xffff888000000000UL)

TEST_F(badinput, unknown_ioctl_is_enotty_on_both_ends)
{
	struct aiopipe_pair p = { 0 };
	__u32 v = 0;

	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(-1, ioctl(self->fds[i], _IO('x', 0x42)));
		EXPECT_EQ(ENOTTY, errno);
		EXPECT_EQ(-1, ioctl(self->fds[i], _IOR(AIOPIPE_IOC_MAGIC, 0x7f, __u32), &v));
		EXPECT_EQ(ENOTTY, errno);
		/* the factory's ioctl is not an end's */
		EXPECT_EQ(-1, ioctl(self->fds[i], AIOPIPE_IOC_PAIR, &p));
		EXPECT_EQ(ENOTTY, errno);
	}
}

TEST_F(badinput, read_into_a_bad_pointer_is_efault_and_keeps_the_data)
{
	char buf[100];

	pt_pattern_fill(buf, sizeof(buf), 0);
	ASSERT_EQ(100, write(self->fds[1], buf, sizeof(buf)));
	EXPECT_EQ(-1, raw_read(self->fds[0], (void *)1, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, raw_read(self->fds[0], self->hole, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, raw_read(self->fds[0], KERNEL_PTR, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(100, pt_fionread(self->fds[0]));
	memset(buf, 0, sizeof(buf));
	EXPECT_EQ(100, read(self->fds[0], buf, sizeof(buf)));
	EXPECT_EQ(sizeof(buf), pt_pattern_check(buf, sizeof(buf), 0));
}

TEST_F(badinput, write_from_a_bad_pointer_is_efault_and_adds_nothing)
{
	EXPECT_EQ(-1, raw_write(self->fds[1], (void *)1, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, raw_write(self->fds[1], self->hole, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, raw_write(self->fds[1], KERNEL_PTR, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(0, pt_fionread(self->fds[0]));
	/* the pipe still works */
	EXPECT_EQ(3, write(self->fds[1], "abc", 3));
	EXPECT_EQ(3, pt_fionread(self->fds[0]));
}

TEST_F(badinput, bad_iovec_arrays_are_efault)
{
	EXPECT_EQ(-1, raw_readv(self->fds[0], (struct iovec *)1, 2));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, writev(self->fds[1], (struct iovec *)self->hole, 2));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(badinput, ioctl_with_a_bad_pointer_is_efault)
{
	EXPECT_EQ(-1, ioctl(self->fds[0], FIONREAD, (int *)1));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fds[1], FIONREAD, self->hole));
	EXPECT_EQ(EFAULT, errno);
	if (backend_is_aiopipe(variant->backend)) {
		static const unsigned long cmds[] = {
			AIOPIPE_IOC_GET_CAPACITY, AIOPIPE_IOC_SET_CAPACITY,
			AIOPIPE_IOC_GET_ENGINE, AIOPIPE_IOC_SET_ENGINE,
			AIOPIPE_IOC_GET_FILTER, AIOPIPE_IOC_SET_FILTER,
			AIOPIPE_IOC_GET_STATS,
		};

		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			EXPECT_EQ(-1, ioctl(self->fds[i % 2], cmds[i], self->hole));
			EXPECT_EQ(EFAULT, errno) TH_LOG("ioctl %#lx", cmds[i]);
			EXPECT_EQ(-1, ioctl(self->fds[i % 2], cmds[i], KERNEL_PTR));
			EXPECT_EQ(EFAULT, errno) TH_LOG("ioctl %#lx", cmds[i]);
		}
	}
}

TEST_F(badinput, zero_length_requests_return_0)
{
	struct iovec iov[3] = { { self->page, 0 }, { NULL, 0 }, { self->hole, 0 } };

	EXPECT_EQ(0, read(self->fds[0], NULL, 0));
	EXPECT_EQ(0, write(self->fds[1], NULL, 0));
	EXPECT_EQ(0, readv(self->fds[0], iov, 0));
	EXPECT_EQ(0, writev(self->fds[1], iov, 0));
	EXPECT_EQ(0, readv(self->fds[0], iov, 3));
	EXPECT_EQ(0, writev(self->fds[1], iov, 3));
	EXPECT_EQ(0, pt_fionread(self->fds[0]));
}

TEST_F(badinput, requests_larger_than_the_capacity)
{
	const size_t len = 1 << 20;
	char *buf = malloc(len);

	ASSERT_NE(NULL, buf);
	memset(buf, 'b', len);
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	EXPECT_EQ(CAP_DEFAULT, write(self->fds[1], buf, len));
	EXPECT_EQ(CAP_DEFAULT, read(self->fds[0], buf, len));
	ASSERT_EQ(100, write(self->fds[1], buf, 100));
	EXPECT_EQ(100, read(self->fds[0], buf, len));
	free(buf);
}

TEST_F(badinput, requests_larger_than_2gib_are_cut_and_served)
{
	/* the VFS caps a request at MAX_RW_COUNT; the pipe serves what it can */
	const size_t huge = 3UL << 30;
	const size_t len = 1 << 20;
	char *buf = malloc(len);

	ASSERT_NE(NULL, buf);
	memset(buf, 'h', len);
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	EXPECT_EQ(CAP_DEFAULT, raw_write(self->fds[1], buf, huge));
	EXPECT_EQ(CAP_DEFAULT, raw_read(self->fds[0], buf, huge));
	ASSERT_EQ(100, raw_write(self->fds[1], buf, 100));
	EXPECT_EQ(100, raw_read(self->fds[0], buf, huge));
	free(buf);
}

struct drain {
	int fd;
	size_t total;
};

static void *drain(void *arg)
{
	struct drain *d = arg;
	static char buf[65536];
	ssize_t n;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0)
		d->total += n;
	return NULL;
}

TEST_F(badinput, huge_blocking_write_stops_at_the_end_of_the_buffer)
{
	/*
	 *  main                        reader thread
	 *  write(wr, buf, 3 GiB)       drains until EOF
	 *  (buf: 1 MiB, then a hole)
	 *  -> 1 MiB, the bytes before the fault
	 *  close(wr) ----------------> counts 1 MiB
	 */
	const size_t len = 1 << 20;
	char *m = mmap(NULL, len + 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct drain d = { .fd = self->fds[0] };
	pthread_t t;

	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, mprotect(m + len, 4096, PROT_NONE));
	memset(m, 'x', len);
	ASSERT_EQ(0, pthread_create(&t, NULL, drain, &d));
	EXPECT_EQ((ssize_t)len, raw_write(self->fds[1], m, 3UL << 30));
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_TRUE(pt_join(t, NULL));
	EXPECT_EQ(len, d.total);
	munmap(m, len + 4096);
}

TEST_F(badinput, iovec_length_above_ssize_max_is_einval)
{
	struct iovec iov[2] = { { self->page, 10 }, { self->page, SIZE_MAX } };

	EXPECT_EQ(-1, readv(self->fds[0], iov, 2));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, writev(self->fds[1], iov, 2));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, pt_fionread(self->fds[0]));
}

TEST_F(badinput, uio_maxiov_segments_work_and_one_more_is_einval)
{
	static struct iovec iov[UIO_MAXIOV + 1];
	char in[UIO_MAXIOV + 1], out[UIO_MAXIOV + 1];

	pt_pattern_fill(in, sizeof(in), 0);
	for (int i = 0; i <= UIO_MAXIOV; i++)
		iov[i] = (struct iovec){ in + i, 1 };
	EXPECT_EQ(-1, writev(self->fds[1], iov, UIO_MAXIOV + 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(UIO_MAXIOV, writev(self->fds[1], iov, UIO_MAXIOV));
	for (int i = 0; i <= UIO_MAXIOV; i++)
		iov[i] = (struct iovec){ out + i, 1 };
	EXPECT_EQ(-1, readv(self->fds[0], iov, UIO_MAXIOV + 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(UIO_MAXIOV, readv(self->fds[0], iov, UIO_MAXIOV));
	EXPECT_EQ(0, memcmp(in, out, UIO_MAXIOV));
}

TEST_F(badinput, closed_fds_are_ebadf)
{
	int rd = self->fds[0], wr = self->fds[1];
	char buf[4];
	int n;

	close(rd);
	close(wr);
	self->fds[0] = self->fds[1] = -1;
	EXPECT_EQ(-1, read(rd, buf, 1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, write(wr, "x", 1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ioctl(rd, FIONREAD, &n));
	EXPECT_EQ(EBADF, errno);
}

TEST_F(badinput, impossible_capacities_are_einval)
{
	/* above 2 GiB nothing rounds: EINVAL from both */
	static const unsigned long bad[] = { (1UL << 31) + 1, 0xffffffffUL };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret;

		if (backend_is_aiopipe(variant->backend)) {
			ret = aiopipe_set_capacity(self->fds[1], (unsigned int)bad[i]);
		} else {
			ret = fcntl(self->fds[1], F_SETPIPE_SZ, bad[i]);
			ret = ret < 0 ? -errno : ret;
		}
		EXPECT_EQ(-EINVAL, ret) TH_LOG("size %#lx", bad[i]);
	}
	EXPECT_EQ(CAP_DEFAULT, backend_capacity(variant->backend, self->fds[0]));
}

/* ---- documented differences: faults inside a buffer --------------------- */

TEST_F(badinput, read_fault_after_some_bytes)
{
	/*
	 * readv into 50 good bytes then a hole, 100 bytes in the pipe.  A
	 * pipe copies from its page, fails at the hole, and returns EFAULT
	 * without consuming the page.  An aiopipe returns (and consumes) the
	 * 50 bytes that reached user memory.
	 */
	char in[100];
	struct iovec iov[2] = { { self->page + 4096 - 50, 50 }, { self->hole, 50 } };

	pt_pattern_fill(in, sizeof(in), 0);
	ASSERT_EQ(100, write(self->fds[1], in, sizeof(in)));
	if (backend_is_aiopipe(variant->backend)) {
		EXPECT_EQ(50, readv(self->fds[0], iov, 2));
		EXPECT_EQ(50, pt_fionread(self->fds[0]));
	} else {
		EXPECT_EQ(-1, readv(self->fds[0], iov, 2));
		EXPECT_EQ(EFAULT, errno);
		EXPECT_EQ(100, pt_fionread(self->fds[0]));
	}
	EXPECT_EQ(0, memcmp(in, self->page + 4096 - 50, 50));
}

TEST_F(badinput, write_fault_after_some_bytes)
{
	/*
	 * writev of 50 good bytes then a hole.  A pipe drops the partly
	 * filled page and returns EFAULT; an aiopipe keeps and reports the
	 * 50 bytes copied before the fault.
	 */
	struct iovec iov[2] = { { self->page, 50 }, { self->hole, 50 } };

	memset(self->page, 'w', 50);
	if (backend_is_aiopipe(variant->backend)) {
		EXPECT_EQ(50, writev(self->fds[1], iov, 2));
		EXPECT_EQ(50, pt_fionread(self->fds[0]));
	} else {
		EXPECT_EQ(-1, writev(self->fds[1], iov, 2));
		EXPECT_EQ(EFAULT, errno);
		EXPECT_EQ(0, pt_fionread(self->fds[0]));
	}
}

/* ---- /dev/aiopipe and the aiopipe ioctls ---------------------------------- */

static int factory(void)
{
	return open(AIOPIPE_DEV_FACTORY, O_RDWR | O_CLOEXEC);
}

static int pair_ioctl(struct aiopipe_pair *p)
{
	int dev = factory(), ret;

	if (dev < 0)
		return -errno;
	ret = ioctl(dev, AIOPIPE_IOC_PAIR, p);
	ret = ret < 0 ? -errno : ret;
	close(dev);
	return ret;
}

TEST(factory_unknown_ioctl_is_enotty)
{
	int dev = factory(), n;
	__u32 v = 4096;

	ASSERT_LE(0, dev);
	EXPECT_EQ(-1, ioctl(dev, _IO('x', 0x42)));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(dev, FIONREAD, &n));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_SET_CAPACITY, &v));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_GET_CAPACITY, &v));
	EXPECT_EQ(ENOTTY, errno);
	close(dev);
}

TEST(factory_read_and_write_are_einval)
{
	int dev = factory();
	char buf[4];

	ASSERT_LE(0, dev);
	EXPECT_EQ(-1, read(dev, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, write(dev, "x", 1));
	EXPECT_EQ(EINVAL, errno);
	close(dev);
}

TEST(fifo_node_unknown_ioctl_is_enotty)
{
	int fd = open("/dev/aiopipe3", O_RDWR | O_NONBLOCK);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, _IO('x', 0x42)));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(fd, AIOPIPE_IOC_PAIR, NULL));
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
}

TEST(pair_flags_other_than_cloexec_and_nonblock_are_einval)
{
	static const unsigned int bad[] = {
		O_APPEND, O_SYNC, O_NOATIME, O_RDWR, 0x80000000U,
		O_DIRECT,	/* pipe2() takes it (packet mode); aiopipe not */
	};
	int fds[2];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aiopipe_pair p = { .flags = bad[i] };

		EXPECT_EQ(-EINVAL, pair_ioctl(&p)) TH_LOG("flags %#x", bad[i]);
		if (bad[i] != O_DIRECT) {
			EXPECT_EQ(-1, pipe2(fds, (int)bad[i])) TH_LOG("flags %#x", bad[i]);
			EXPECT_EQ(EINVAL, errno);
		}
	}
	/* documented difference: packet-mode pipes exist, packet aiopipes do not */
	ASSERT_EQ(0, pipe2(fds, O_DIRECT));
	close(fds[0]);
	close(fds[1]);
}

TEST(pair_reserved_fields_must_be_zero)
{
	for (int i = 0; i < 3; i++) {
		struct aiopipe_pair p = { 0 };

		p.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, pair_ioctl(&p)) TH_LOG("reserved[%d]", i);
	}
}

TEST(pair_unknown_engine_is_einval)
{
	static const unsigned int bad[] = { 3, 0x100, 0xffffffffU };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aiopipe_pair p = { .engine = bad[i] };

		EXPECT_EQ(-EINVAL, pair_ioctl(&p)) TH_LOG("engine %u", bad[i]);
	}
}

TEST(pair_with_a_bad_pointer_is_efault)
{
	int dev = factory();

	ASSERT_LE(0, dev);
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_PAIR, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_PAIR, (void *)1));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_PAIR, KERNEL_PTR));
	EXPECT_EQ(EFAULT, errno);
	close(dev);
}

TEST(pair_whose_answer_cannot_be_written_back_is_efault_and_leaks_no_fd)
{
	struct aiopipe_pair *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int dev = factory(), before;

	ASSERT_LE(0, dev);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 0, sizeof(*p));
	ASSERT_EQ(0, mprotect(p, 4096, PROT_READ));
	before = pt_fd_count();
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_PAIR, p));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(before, pt_fd_count());
	close(dev);
	munmap(p, 4096);
}

/* The lowest fd number not in use (what the next open() would get). */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

/*
 * Like pipe2(): EMFILE when RLIMIT_NOFILE leaves no fd for the read end,
 * or one fd (the read end's) but none for the write end; no fd stays taken.
 */
TEST(pair_without_two_free_fds_is_emfile_like_pipe2)
{
	int dev = factory(), lowest, spare, fds[2];
	struct rlimit old, lim;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
	lowest = lowest_free_fd();
	ASSERT_LE(0, lowest);
	for (spare = 0; spare <= 1; spare++) {
		struct aiopipe_pair p = { 0 };

		lim = old;
		lim.rlim_cur = lowest + spare;
		ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
		EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_PAIR, &p)) TH_LOG("%d spare", spare);
		EXPECT_EQ(EMFILE, errno);
		EXPECT_EQ(-1, pipe2(fds, 0)) TH_LOG("%d spare", spare);
		EXPECT_EQ(EMFILE, errno);
		ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
		EXPECT_EQ(lowest, lowest_free_fd()) TH_LOG("%d spare", spare);
	}
	close(dev);
}

TEST(engine_and_filter_out_of_range_are_einval)
{
	int fds[2];

	ASSERT_EQ(0, aiopipe_pair(fds, 0));
	EXPECT_EQ(-EINVAL, aiopipe_set_engine(fds[0], 3));
	EXPECT_EQ(-EINVAL, aiopipe_set_engine(fds[1], 0xffffffffU));
	EXPECT_EQ(-EINVAL, aiopipe_set_filter(fds[0], 2));
	EXPECT_EQ(-EINVAL, aiopipe_set_filter(fds[1], 0xffffffffU));
	EXPECT_EQ(0, aiopipe_set_engine(fds[0], AIOPIPE_ENGINE_DIRECT));
	EXPECT_EQ(AIOPIPE_ENGINE_DIRECT, aiopipe_get_engine(fds[1]));
	close(fds[0]);
	close(fds[1]);
}

TEST(stats_with_bad_size_or_flags_is_einval)
{
	struct aiopipe_stats st;
	int fds[2];

	ASSERT_EQ(0, aiopipe_pair(fds, 0));
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	st.flags = 1;
	EXPECT_EQ(-1, ioctl(fds[0], AIOPIPE_IOC_GET_STATS, &st));
	EXPECT_EQ(EINVAL, errno);
	st.flags = 0;
	st.size = 4;
	EXPECT_EQ(-1, ioctl(fds[0], AIOPIPE_IOC_GET_STATS, &st));
	EXPECT_EQ(EINVAL, errno);
	st.size = sizeof(st);
	EXPECT_EQ(0, ioctl(fds[0], AIOPIPE_IOC_GET_STATS, &st));
	EXPECT_EQ(sizeof(st), st.size);
	close(fds[0]);
	close(fds[1]);
}

TEST_HARNESS_MAIN
