/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * aiopipe: pipes whose read and write are truly asynchronous under
 * Linux native AIO and io_uring.
 *
 * This is the only ABI shared between the module and user space.  Ioctl
 * numbers never change once published; new fields go into reserved space,
 * which the kernel checks is zero.
 */
#ifndef _UAPI_LINUX_AIOPIPE_H
#define _UAPI_LINUX_AIOPIPE_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define AIOPIPE_DEV_FACTORY	"/dev/aiopipe"	/* pair factory */
#define AIOPIPE_DEV_FIFO_FMT	"/dev/aiopipe%u"	/* named FIFOs */

/**
 * struct aiopipe_pair - argument of AIOPIPE_IOC_PAIR
 * @fds:	out: fds[0] is the read end, fds[1] the write end (as pipe2())
 * @flags:	in: O_CLOEXEC and/or O_NONBLOCK; anything else is EINVAL
 * @capacity:	in: ring size in bytes, 0 for the default; rounded up as
 *		F_SETPIPE_SZ rounds.  out: the capacity actually used
 * @engine:	in: AIOPIPE_ENGINE_*, or AIOPIPE_ENGINE_DEFAULT
 * @reserved:	must be zero
 */
struct aiopipe_pair {
	__s32 fds[2];
	__u32 flags;
	__u32 capacity;
	__u32 engine;
	__u32 reserved[3];
};

/* Completion engines for queued (libaio) requests. */
#define AIOPIPE_ENGINE_DEFAULT	0	/* module parameter "engine" */
#define AIOPIPE_ENGINE_RETRY	1	/* kiocb retry on a workqueue */
#define AIOPIPE_ENGINE_DIRECT	2	/* pinned pages, peer copies inline */

/* Wakeup filtering for the retry engine (AIOPIPE_IOC_SET_FILTER). */
#define AIOPIPE_FILTER_OFF	0	/* every wakeup kicks a retry */
#define AIOPIPE_FILTER_ON	1	/* only matching poll keys do */

/*
 * Poll bit reported on a write end when every byte written has been
 * consumed (the drain barrier; see docs/semantics.md).
 */
#define AIOPIPE_POLL_DRAINED	0x0200	/* == EPOLLWRBAND */

/**
 * struct aiopipe_stats - counters, per channel or global
 * @size:	in: sizeof(struct aiopipe_stats) as the caller knows it;
 *		out: the size the kernel filled (the smaller of the two)
 * @flags:	must be zero
 *
 * Every counter is cumulative except @pending_reads, @pending_writes,
 * @pinned_pages and @bytes_buffered, which are current levels, and
 * @pinned_pages_peak, the high-water mark of @pinned_pages.
 */
struct aiopipe_stats {
	__u32 size;
	__u32 flags;
	__u64 sync_reads;		/* read(2)-style calls */
	__u64 sync_writes;
	__u64 async_reads;		/* libaio / io_uring read_iter calls */
	__u64 async_writes;
	__u64 completed_at_submit;	/* async calls that finished at once */
	__u64 queued;			/* returned -EIOCBQUEUED */
	__u64 completed_by_peer;	/* direct: completed by the other side */
	__u64 completed_by_retry;	/* completed by a retry worker */
	__u64 retries;			/* retry work items run */
	__u64 futile_retries;		/* retries that moved nothing */
	__u64 wakeups_delivered;	/* wake callbacks that kicked a retry */
	__u64 wakeups_filtered;		/* wake callbacks ignored by key */
	__u64 cancels;			/* cancel callbacks that took effect */
	__u64 eof_completions;		/* reads completed with 0 at EOF */
	__u64 epipe_completions;	/* writes completed with -EPIPE */
	__u64 bytes_single_copy;	/* moved by a peer, not via the ring */
	__u64 bytes_ring;		/* moved through the ring buffer */
	__u64 pending_reads;		/* level */
	__u64 pending_writes;		/* level */
	__u64 pinned_pages;		/* level */
	__u64 pinned_pages_peak;
	__u64 bytes_buffered;		/* level: bytes in the ring(s) */
	__u64 channels;			/* level: live channels (global only) */
	__u64 reserved[8];
};

/*
 * 0xD4 is unassigned in Documentation/userspace-api/ioctl/ioctl-number.rst
 * (the nearest entries are 0xCF and 0xDB) and unused by the uapi headers.
 */
#define AIOPIPE_IOC_MAGIC	0xD4

/*
 * The largest capacity, 1 GiB: SET_CAPACITY returns the new capacity, and
 * ioctl(2) returns an int.  Larger sizes are EINVAL.
 */
#define AIOPIPE_CAPACITY_MAX	0x40000000	/* 1 GiB */

/* On /dev/aiopipe: create a pair, like pipe2(). */
#define AIOPIPE_IOC_PAIR	_IOWR(AIOPIPE_IOC_MAGIC, 0x00, struct aiopipe_pair)
/*
 * On either end.  SET_CAPACITY behaves like fcntl(F_SETPIPE_SZ): the size is
 * rounded up to a power of two of at least PAGE_SIZE, EPERM above the
 * max_capacity module parameter without CAP_SYS_RESOURCE, EINVAL above
 * AIOPIPE_CAPACITY_MAX, EBUSY if the bytes held would not fit; it returns
 * the new capacity.
 */
#define AIOPIPE_IOC_SET_CAPACITY _IOW(AIOPIPE_IOC_MAGIC, 0x01, __u32)
#define AIOPIPE_IOC_GET_CAPACITY _IOR(AIOPIPE_IOC_MAGIC, 0x02, __u32)
#define AIOPIPE_IOC_SET_ENGINE	_IOW(AIOPIPE_IOC_MAGIC, 0x03, __u32)
#define AIOPIPE_IOC_GET_ENGINE	_IOR(AIOPIPE_IOC_MAGIC, 0x04, __u32)
#define AIOPIPE_IOC_SET_FILTER	_IOW(AIOPIPE_IOC_MAGIC, 0x05, __u32)
#define AIOPIPE_IOC_GET_FILTER	_IOR(AIOPIPE_IOC_MAGIC, 0x06, __u32)
/* On an end: this channel's counters.  On /dev/aiopipe: global ones. */
#define AIOPIPE_IOC_GET_STATS	_IOWR(AIOPIPE_IOC_MAGIC, 0x07, struct aiopipe_stats)

#endif /* _UAPI_LINUX_AIOPIPE_H */
