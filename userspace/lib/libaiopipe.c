// SPDX-License-Identifier: LGPL-2.1 OR MIT
/* libaiopipe: see libaiopipe.h. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "libaiopipe.h"

static const char *const stat_names[] = {
	"sync_reads", "sync_writes", "async_reads", "async_writes",
	"completed_at_submit", "queued", "completed_by_peer",
	"completed_by_retry", "retries", "futile_retries",
	"wakeups_delivered", "wakeups_filtered", "cancels",
	"eof_completions", "epipe_completions", "bytes_single_copy",
	"bytes_ring", "pending_reads", "pending_writes", "pinned_pages",
	"pinned_pages_peak", "bytes_buffered", "channels",
};

_Static_assert(sizeof(struct aiopipe_stats) == 256, "uapi stats size");
_Static_assert(sizeof(stat_names) / sizeof(stat_names[0]) ==
	       (offsetof(struct aiopipe_stats, reserved) -
		offsetof(struct aiopipe_stats, sync_reads)) / 8,
	       "stat names match the uapi struct");

static int ioctl_ret(int ret)
{
	return ret < 0 ? -errno : ret;
}

int aiopipe_pair_ex(int fds[2], int flags, unsigned int capacity,
		    unsigned int engine)
{
	struct aiopipe_pair p = {
		.flags = (unsigned int)flags,
		.capacity = capacity,
		.engine = engine,
	};
	int dev, ret;

	dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	ret = ioctl_ret(ioctl(dev, AIOPIPE_IOC_PAIR, &p));
	close(dev);
	if (ret < 0)
		return ret;
	fds[0] = p.fds[0];
	fds[1] = p.fds[1];
	return 0;
}

int aiopipe_pair(int fds[2], int flags)
{
	return aiopipe_pair_ex(fds, flags, 0, AIOPIPE_ENGINE_DEFAULT);
}

static int set_u32(int fd, unsigned long cmd, unsigned int val)
{
	__u32 v = val;

	return ioctl_ret(ioctl(fd, cmd, &v));
}

static int get_u32(int fd, unsigned long cmd)
{
	__u32 v;
	int ret = ioctl_ret(ioctl(fd, cmd, &v));

	return ret < 0 ? ret : (int)v;
}

int aiopipe_set_capacity(int fd, unsigned int bytes)
{
	return set_u32(fd, AIOPIPE_IOC_SET_CAPACITY, bytes);
}

int aiopipe_get_capacity(int fd)
{
	return get_u32(fd, AIOPIPE_IOC_GET_CAPACITY);
}

int aiopipe_set_engine(int fd, unsigned int engine)
{
	return set_u32(fd, AIOPIPE_IOC_SET_ENGINE, engine);
}

int aiopipe_get_engine(int fd)
{
	return get_u32(fd, AIOPIPE_IOC_GET_ENGINE);
}

int aiopipe_set_filter(int fd, unsigned int on)
{
	return set_u32(fd, AIOPIPE_IOC_SET_FILTER, on);
}

int aiopipe_get_filter(int fd)
{
	return get_u32(fd, AIOPIPE_IOC_GET_FILTER);
}

int aiopipe_stats(int fd, struct aiopipe_stats *st)
{
	int dev = fd, ret;

	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	if (fd < 0) {
		dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
		if (dev < 0)
			return -errno;
	}
	ret = ioctl_ret(ioctl(dev, AIOPIPE_IOC_GET_STATS, st));
	if (fd < 0)
		close(dev);
	return ret;
}

int aiopipe_stat_count(void)
{
	return (int)(sizeof(stat_names) / sizeof(stat_names[0]));
}

const char *aiopipe_stat_name(int i)
{
	return i >= 0 && i < aiopipe_stat_count() ? stat_names[i] : NULL;
}

unsigned long long aiopipe_stat_value(const struct aiopipe_stats *st, int i)
{
	return (&st->sync_reads)[i];
}

int aiopipe_engine_parse(const char *name)
{
	if (!strcmp(name, "retry"))
		return AIOPIPE_ENGINE_RETRY;
	if (!strcmp(name, "direct"))
		return AIOPIPE_ENGINE_DIRECT;
	return -EINVAL;
}

const char *aiopipe_engine_name(unsigned int engine)
{
	switch (engine) {
	case AIOPIPE_ENGINE_RETRY:
		return "retry";
	case AIOPIPE_ENGINE_DIRECT:
		return "direct";
	default:
		return "default";
	}
}

/*
 * Opt the calling thread (and the tasks it creates from now on) in to the
 * kernel's task-filtered fault injection: failslab and fail_page_alloc with
 * task-filter=Y fail only tasks that set make-it-fail.  Returns 0 or -errno.
 */
int aiopipe_fail_self(void)
{
	int fd = open("/proc/thread-self/make-it-fail", O_WRONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "1", 1) != 1)
		err = -errno;
	close(fd);
	return err;
}
