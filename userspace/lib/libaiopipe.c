// SPDX-License-Identifier: LGPL-2.1 OR MIT
/* libaiopipe: see libaiopipe.h. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "libaiopipe.h"

static const char *const stat_names[] = {
	"sync_reads", "sync_writes", "async_reads", "async_writes",
	"completed_at_submit", "queued", "completed_by_peer",
	"completed_by_retry", "retries", "futile_retries",
	"wakeups_delivered", "wakeups_filtered", "cancels",
	"eof_completions", "epipe_completions", "bytes_single_copy",
	"bytes_ring", "pending_reads", "pending_writes", "pinned_pages",
	"pinned_pages_peak", "bytes_buffered", "channels", "ring_buffers",
	"ring_bytes", "ring_spilled", "ring_owed",
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

int aiopipe_ring_setup(struct aiopipe_ring *r, unsigned int entries,
		       unsigned int nr_bufs, unsigned int buf_size, int flags)
{
	struct aiopipe_ring_params p = {
		.entries = entries,
		.nr_bufs = nr_bufs,
		.buf_size = buf_size,
		.flags = (unsigned int)flags,
	};
	int dev, ret;
	void *map;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	ret = ioctl_ret(ioctl(dev, AIOPIPE_IOC_RING_CREATE, &p));
	close(dev);
	if (ret < 0)
		return ret;
	map = mmap(NULL, p.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   p.fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		close(p.fd);
		return ret;
	}
	r->fd = p.fd;
	r->map = map;
	r->map_size = p.mmap_size;
	r->hdr = map;
	r->events = (struct aiopipe_ring_event *)((char *)map + p.events_off);
	r->bufids = (__u32 *)((char *)map + p.bufids_off);
	r->bufs = (unsigned char *)map + p.bufs_off;
	r->ev_mask = r->hdr->ev_mask;
	r->buf_mask = r->hdr->buf_mask;
	r->buf_size = r->hdr->buf_size;
	r->nr_bufs = r->hdr->nr_bufs;
	return 0;
}

void aiopipe_ring_exit(struct aiopipe_ring *r)
{
	if (r->map)
		munmap(r->map, r->map_size);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

int aiopipe_ring_attach(struct aiopipe_ring *r, int fd,
			unsigned long long user_data)
{
	struct aiopipe_ring_attach a = { .fd = fd, .user_data = user_data };

	return ioctl_ret(ioctl(r->fd, AIOPIPE_IOC_RING_ATTACH, &a));
}

int aiopipe_ring_detach(struct aiopipe_ring *r, int fd)
{
	__s32 v = fd;

	return ioctl_ret(ioctl(r->fd, AIOPIPE_IOC_RING_DETACH, &v));
}

int aiopipe_ring_wait(struct aiopipe_ring *r, unsigned int min_events,
		      long long timeout_ns)
{
	struct aiopipe_ring_wait w = {
		.min_events = min_events,
		.timeout_ns = timeout_ns,
	};

	return ioctl_ret(ioctl(r->fd, AIOPIPE_IOC_RING_WAIT, &w));
}

int aiopipe_ring_collect(struct aiopipe_ring *r)
{
	int ret = aiopipe_ring_wait(r, 1, 0);

	return ret == -ETIME ? 0 : ret;
}
