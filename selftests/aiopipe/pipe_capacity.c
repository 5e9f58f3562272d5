// SPDX-License-Identifier: GPL-2.0
/*
 * Capacity, side by side: AIOPIPE_IOC_SET_CAPACITY / GET_CAPACITY on an
 * aiopipe against F_SETPIPE_SZ / F_GETPIPE_SZ on a kernel pipe.  Both round
 * up to a power of two of at least a page, refuse with EBUSY a size that
 * cannot hold what is in the pipe (no data is lost), and refuse with EPERM
 * growing above the limit (pipe-max-size; the max_capacity module
 * parameter) without CAP_SYS_RESOURCE.  Data survives a grow or shrink, and
 * growing a full pipe wakes a blocked writer.
 *
 * Documented differences (docs/semantics.md), asserted here:
 *  - an aiopipe's capacity counts bytes; a pipe's counts page slots, so
 *    small writes fill a pipe (and make a shrink EBUSY) sooner;
 *  - F_SETPIPE_SZ/F_GETPIPE_SZ are EBADF on aiopipe ends (use the ioctls).
 */
#include <linux/capability.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "pipe_common.h"

#define CAP_DEFAULT	65536

FIXTURE(capacity) {
	int fds[2];
	long max;		/* pipe-max-size, or the max_capacity parameter */
};

FIXTURE_VARIANT(capacity) {
	enum backend backend;
};

BACKEND_VARIANTS(capacity);

FIXTURE_SETUP(capacity)
{
	int ret = backend_pair(variant->backend, self->fds, 0);

	ASSERT_EQ(0, ret) TH_LOG("%s: no pair: %s", backend_name(variant->backend),
				strerror(-ret));
	if (backend_is_aiopipe(variant->backend))
		self->max = pt_read_ulong("/sys/module/aiopipe/parameters/max_capacity");
	else
		self->max = pt_read_ulong("/proc/sys/fs/pipe-max-size");
	ASSERT_LT(0, self->max);
}

FIXTURE_TEARDOWN(capacity)
{
	backend_close(self->fds);
}

/* Drop CAP_SYS_RESOURCE from every set of this process (a child's). */
static int drop_cap_sys_resource(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];
	unsigned int bit = CAP_SYS_RESOURCE;

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[bit / 32].effective &= ~(1U << (bit % 32));
	d[bit / 32].permitted &= ~(1U << (bit % 32));
	d[bit / 32].inheritable &= ~(1U << (bit % 32));
	return (int)syscall(SYS_capset, &h, d);
}

/* Whether this process has CAP_SYS_RESOURCE in its effective set. */
static bool have_cap_sys_resource(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];
	unsigned int bit = CAP_SYS_RESOURCE;

	return !syscall(SYS_capget, &h, d) &&
	       (d[bit / 32].effective & (1U << (bit % 32)));
}

TEST_F(capacity, default_capacity_is_64k)
{
	EXPECT_EQ(CAP_DEFAULT, backend_capacity(variant->backend, self->fds[0]));
	EXPECT_EQ(CAP_DEFAULT, backend_capacity(variant->backend, self->fds[1]));
	if (backend_is_aiopipe(variant->backend))
		EXPECT_EQ(CAP_DEFAULT, pt_read_ulong("/sys/module/aiopipe/parameters/capacity"));
}

TEST_F(capacity, set_rounds_up_to_a_power_of_two_of_at_least_a_page)
{
	static const struct { int ask, get; } t[] = {
		{ 0, 4096 }, { 1, 4096 }, { 4095, 4096 }, { 4096, 4096 },
		{ 4097, 8192 }, { 5000, 8192 }, { 65535, 65536 },
		{ 65536, 65536 }, { 65537, 131072 }, { 300000, 524288 },
		{ 1048576, 1048576 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		EXPECT_EQ(t[i].get, backend_set_capacity(variant->backend,
							 self->fds[1], t[i].ask))
			TH_LOG("asked for %d", t[i].ask);
		EXPECT_EQ(t[i].get, backend_capacity(variant->backend, self->fds[0]));
	}
}

TEST_F(capacity, both_ends_share_one_capacity)
{
	EXPECT_EQ(8192, backend_set_capacity(variant->backend, self->fds[0], 8000));
	EXPECT_EQ(8192, backend_capacity(variant->backend, self->fds[1]));
	EXPECT_EQ(16384, backend_set_capacity(variant->backend, self->fds[1], 16384));
	EXPECT_EQ(16384, backend_capacity(variant->backend, self->fds[0]));
}

TEST_F(capacity, a_full_pipe_holds_exactly_its_capacity)
{
	char buf[PIPE_BUF] = { 0 };
	int total = 0;
	ssize_t n;

	ASSERT_EQ(16384, backend_set_capacity(variant->backend, self->fds[1], 16384));
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	while ((n = write(self->fds[1], buf, sizeof(buf))) > 0)
		total += n;
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(16384, total);
	EXPECT_EQ(-1, write(self->fds[1], buf, 1));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_F(capacity, shrinking_below_the_bytes_held_is_ebusy_and_loses_nothing)
{
	static char in[20000], out[20000];

	pt_pattern_fill(in, sizeof(in), 0);
	ASSERT_EQ(20000, write(self->fds[1], in, sizeof(in)));
	EXPECT_EQ(-EBUSY, backend_set_capacity(variant->backend, self->fds[1], 4096));
	EXPECT_EQ(-EBUSY, backend_set_capacity(variant->backend, self->fds[1], 16384));
	EXPECT_EQ(CAP_DEFAULT, backend_capacity(variant->backend, self->fds[1]));
	EXPECT_EQ(32768, backend_set_capacity(variant->backend, self->fds[1], 32768));
	EXPECT_EQ(20000, pt_fionread(self->fds[0]));
	EXPECT_EQ(20000, read(self->fds[0], out, sizeof(out)));
	EXPECT_EQ(sizeof(out), pt_pattern_check(out, sizeof(out), 0));
}

TEST_F(capacity, data_survives_a_grow_and_a_shrink)
{
	static char in[10000], out[10000];

	pt_pattern_fill(in, sizeof(in), 0);
	ASSERT_EQ(10000, write(self->fds[1], in, sizeof(in)));
	EXPECT_EQ(1048576, backend_set_capacity(variant->backend, self->fds[1], 1048576));
	EXPECT_EQ(10000, pt_fionread(self->fds[0]));
	EXPECT_EQ(16384, backend_set_capacity(variant->backend, self->fds[1], 16384));
	EXPECT_EQ(10000, pt_fionread(self->fds[0]));
	EXPECT_EQ(10000, read(self->fds[0], out, sizeof(out)));
	EXPECT_EQ(sizeof(out), pt_pattern_check(out, sizeof(out), 0));
}

TEST_F(capacity, data_survives_resizing_a_wrapped_buffer)
{
	/*
	 * 60000 in, 30000 out, 30000 in: the aiopipe ring has wrapped (and
	 * the pipe uses 15 of its 16 slots).  Grow, read it all; then the same
	 * with a shrink to 65536.
	 */
	static char buf[60000];
	uint64_t wpos = 0, rpos = 0;

	for (int round = 0; round < 2; round++) {
		int newcap = round ? 65536 : 131072;

		pt_pattern_fill(buf, 60000, wpos);
		ASSERT_EQ(60000, write(self->fds[1], buf, 60000));
		wpos += 60000;
		ASSERT_EQ(30000, read(self->fds[0], buf, 30000));
		EXPECT_EQ(30000UL, pt_pattern_check(buf, 30000, rpos));
		rpos += 30000;
		pt_pattern_fill(buf, 30000, wpos);
		ASSERT_EQ(30000, write(self->fds[1], buf, 30000));
		wpos += 30000;
		EXPECT_EQ(newcap, backend_set_capacity(variant->backend,
						       self->fds[0], newcap));
		EXPECT_EQ(60000, pt_fionread(self->fds[0]));
		ASSERT_EQ(60000, read(self->fds[0], buf, 60000));
		EXPECT_EQ(60000UL, pt_pattern_check(buf, 60000, rpos));
		rpos += 60000;
	}
}

TEST_F(capacity, growing_a_full_pipe_wakes_a_blocked_writer)
{
	/*
	 *  main                        writer thread
	 *  fill (64 KiB)
	 *                              write(wr, PIPE_BUF) ... blocks
	 *  sees it blocked
	 *  set capacity 128 KiB -----> write returns PIPE_BUF
	 */
	char buf[PIPE_BUF] = { 0 };
	struct pt_call c = { .fn = pt_do_write, .fd = self->fds[1],
			     .buf = buf, .len = sizeof(buf) };

	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	while (write(self->fds[1], buf, sizeof(buf)) > 0)
		;
	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], false));
	ASSERT_EQ(CAP_DEFAULT, pt_fionread(self->fds[0]));
	EXPECT_EQ(0, pt_revents(self->fds[1], POLLOUT));
	ASSERT_LT(0, pt_call_start(&c));
	ASSERT_TRUE(pt_thread_blocked(c.tid, SYS_write));
	EXPECT_EQ(131072, backend_set_capacity(variant->backend, self->fds[0], 131072));
	ASSERT_TRUE(pt_call_join(&c));
	EXPECT_EQ(PIPE_BUF, c.ret);
	EXPECT_EQ(POLLOUT, pt_revents(self->fds[1], POLLOUT));
}

TEST_F(capacity, growing_above_the_limit_needs_cap_sys_resource)
{
	/*
	 *  parent (root)               child: drops CAP_SYS_RESOURCE
	 *  fork --------------------->  set(max) ok, set(2 * max) EPERM,
	 *                               the capacity stays max
	 */
	long max = self->max;
	pid_t pid;

	if (!have_cap_sys_resource())
		SKIP(return, "needs CAP_SYS_RESOURCE to set a size above the limit first");

	/* with the capability (root): above the limit is fine */
	EXPECT_EQ(2 * max, backend_set_capacity(variant->backend, self->fds[1], 2 * max));
	EXPECT_EQ(CAP_DEFAULT, backend_set_capacity(variant->backend, self->fds[1], CAP_DEFAULT));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (drop_cap_sys_resource())
			_exit(10);
		if (backend_set_capacity(variant->backend, self->fds[1], max) != max)
			_exit(11);
		if (backend_set_capacity(variant->backend, self->fds[1], 2 * max) != -EPERM)
			_exit(12);
		if (backend_capacity(variant->backend, self->fds[0]) != max)
			_exit(13);
		if (backend_set_capacity(variant->backend, self->fds[1], max + 1) != -EPERM)
			_exit(14);
		if (backend_set_capacity(variant->backend, self->fds[1], 4096) != 4096)
			_exit(15);
		_exit(0);
	}
	EXPECT_EQ(0, pt_child_result(pid));
}

TEST_F(capacity, keeping_or_shrinking_a_size_above_the_limit_needs_no_capability)
{
	/*
	 * F_SETPIPE_SZ refuses only growing above pipe-max-size
	 * (nr_slots > pipe->max_usage): a pipe given 4 * max by root may be
	 * set to 4 * max again, or shrunk to 2 * max, without the capability.
	 */
	long max = self->max;
	pid_t pid;

	if (!have_cap_sys_resource())
		SKIP(return, "needs CAP_SYS_RESOURCE to set a size above the limit first");

	ASSERT_EQ(4 * max, backend_set_capacity(variant->backend, self->fds[1], 4 * max));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (drop_cap_sys_resource())
			_exit(10);
		if (backend_set_capacity(variant->backend, self->fds[1], 4 * max) != 4 * max)
			_exit(11);
		if (backend_set_capacity(variant->backend, self->fds[1], 2 * max) != 2 * max)
			_exit(12);
		if (backend_set_capacity(variant->backend, self->fds[1], 4 * max) != -EPERM)
			_exit(13);
		_exit(0);
	}
	EXPECT_EQ(0, pt_child_result(pid)) TH_LOG("exit 11/12: EPERM for a size that does not grow the pipe");
}

TEST_F(capacity, pollout_returns_after_growing_a_full_pipe)
{
	char buf[PIPE_BUF] = { 0 };

	ASSERT_EQ(4096, backend_set_capacity(variant->backend, self->fds[1], 4096));
	ASSERT_EQ(PIPE_BUF, write(self->fds[1], buf, sizeof(buf)));
	EXPECT_EQ(0, pt_revents(self->fds[1], POLLOUT));
	ASSERT_EQ(8192, backend_set_capacity(variant->backend, self->fds[1], 8192));
	EXPECT_EQ(POLLOUT, pt_revents(self->fds[1], POLLOUT));
}

/* ---- documented differences ---------------------------------------------- */

TEST_F(capacity, capacity_counts_bytes_on_aiopipe_and_page_slots_on_a_pipe)
{
	/*
	 * 3000-byte writes do not merge into a page that holds 3000 already,
	 * so each takes one of a pipe's 16 slots: 16 writes (48000 bytes)
	 * fill it.  An aiopipe takes 21 (63000 bytes; 2536 left < 3000).
	 */
	char buf[3000] = { 0 };
	int writes = 0;

	ASSERT_EQ(0, pt_set_nonblock(self->fds[1], true));
	while (write(self->fds[1], buf, sizeof(buf)) == sizeof(buf))
		writes++;
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(backend_is_aiopipe(variant->backend) ? 21 : 16, writes);
}

TEST_F(capacity, shrink_needs_room_for_the_bytes_on_aiopipe_and_the_slots_on_a_pipe)
{
	/*
	 * 4096 in, 4000 out, 100 in: 196 bytes, but in two page slots of a
	 * pipe (the 100 do not fit behind the first page's data).  A one-page
	 * capacity holds 196 bytes, not two slots.
	 */
	char buf[4096] = { 0 };
	int expect = backend_is_aiopipe(variant->backend) ? 4096 : -EBUSY;

	ASSERT_EQ(4096, write(self->fds[1], buf, 4096));
	ASSERT_EQ(4000, read(self->fds[0], buf, 4000));
	ASSERT_EQ(100, write(self->fds[1], buf, 100));
	EXPECT_EQ(196, pt_fionread(self->fds[0]));
	EXPECT_EQ(expect, backend_set_capacity(variant->backend, self->fds[1], 4096));
	EXPECT_EQ(196, read(self->fds[0], buf, sizeof(buf)));
}

TEST_F(capacity, fcntl_pipe_size_applies_only_to_pipes_and_the_ioctls_only_to_aiopipe)
{
	__u32 cap = 0;

	if (backend_is_aiopipe(variant->backend)) {
		EXPECT_EQ(-1, fcntl(self->fds[0], F_GETPIPE_SZ));
		EXPECT_EQ(EBADF, errno);
		EXPECT_EQ(-1, fcntl(self->fds[1], F_SETPIPE_SZ, 8192));
		EXPECT_EQ(EBADF, errno);
		EXPECT_EQ(0, ioctl(self->fds[0], AIOPIPE_IOC_GET_CAPACITY, &cap));
		EXPECT_EQ(CAP_DEFAULT, (int)cap);
	} else {
		EXPECT_EQ(CAP_DEFAULT, fcntl(self->fds[0], F_GETPIPE_SZ));
		EXPECT_EQ(-1, ioctl(self->fds[0], AIOPIPE_IOC_GET_CAPACITY, &cap));
		EXPECT_EQ(ENOTTY, errno);
		cap = 8192;
		EXPECT_EQ(-1, ioctl(self->fds[1], AIOPIPE_IOC_SET_CAPACITY, &cap));
		EXPECT_EQ(ENOTTY, errno);
	}
}

/* ---- aiopipe only: the pair ioctl's capacity ----------------------------- */

static int raw_pair(struct aiopipe_pair *p)
{
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC), ret;

	if (dev < 0)
		return -errno;
	ret = ioctl(dev, AIOPIPE_IOC_PAIR, p);
	ret = ret < 0 ? -errno : ret;
	close(dev);
	return ret;
}

TEST(pair_capacity_is_rounded_and_reported_back)
{
	struct aiopipe_pair p = { .capacity = 5000 };

	ASSERT_EQ(0, raw_pair(&p));
	EXPECT_EQ(8192, (int)p.capacity);
	EXPECT_EQ(8192, aiopipe_get_capacity(p.fds[0]));
	close(p.fds[0]);
	close(p.fds[1]);
	memset(&p, 0, sizeof(p));
	ASSERT_EQ(0, raw_pair(&p));
	EXPECT_EQ(CAP_DEFAULT, (int)p.capacity);
	close(p.fds[0]);
	close(p.fds[1]);
}

TEST(pair_capacity_above_the_limit_needs_cap_sys_resource)
{
	long max = pt_read_ulong("/sys/module/aiopipe/parameters/max_capacity");
	pid_t pid;

	ASSERT_LT(0, max);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct aiopipe_pair p = { .capacity = (__u32)max };

		if (drop_cap_sys_resource())
			_exit(10);
		if (raw_pair(&p))
			_exit(11);
		close(p.fds[0]);
		close(p.fds[1]);
		memset(&p, 0, sizeof(p));
		p.capacity = (__u32)(2 * max);
		if (raw_pair(&p) != -EPERM)
			_exit(12);
		_exit(0);
	}
	EXPECT_EQ(0, pt_child_result(pid));
}

TEST(capacity_above_1gib_is_einval_even_for_root)
{
	/*
	 * 1 GiB is the largest capacity: AIOPIPE_IOC_SET_CAPACITY returns
	 * the new capacity, and ioctl(2) an int (F_SETPIPE_SZ accepts 2 GiB,
	 * which glibc's int fcntl() cannot return either).  Above
	 * it EINVAL, for root too; at it, the new capacity or ENOMEM (the
	 * VM has 1 GiB), never a negative capacity or a kernel warning (the
	 * VM runner fails the run on one).
	 */
	struct aiopipe_pair p = { .capacity = 1U << 31 };
	int fds[2], ret;

	if (!have_cap_sys_resource())
		SKIP(return, "needs CAP_SYS_RESOURCE to get past the EPERM check");

	ASSERT_EQ(0, aiopipe_pair(fds, 0));
	EXPECT_EQ(-EINVAL, aiopipe_set_capacity(fds[1], AIOPIPE_CAPACITY_MAX + 1));
	EXPECT_EQ(-EINVAL, aiopipe_set_capacity(fds[1], 1U << 31));
	EXPECT_EQ(CAP_DEFAULT, aiopipe_get_capacity(fds[0]));
	ret = aiopipe_set_capacity(fds[1], AIOPIPE_CAPACITY_MAX);
	EXPECT_TRUE(ret == AIOPIPE_CAPACITY_MAX || ret == -ENOMEM) TH_LOG("got %d", ret);
	EXPECT_EQ(-EINVAL, raw_pair(&p));
	close(fds[0]);
	close(fds[1]);
}

TEST_HARNESS_MAIN
