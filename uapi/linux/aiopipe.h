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
	__u64 ring_buffers;		/* ring mode: buffers filled (DATA events) */
	__u64 ring_bytes;		/* ring mode: bytes copied into buffers */
	__u64 ring_spilled;		/* ring mode: bytes announced by READ events */
	__u64 ring_owed;		/* ring mode: events deferred, ring full */
	__u64 reserved[4];
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

/*
 * Ring mode (docs/ring.md).  AIOPIPE_IOC_RING_CREATE on /dev/aiopipe returns
 * a ring fd.  mmap(MAP_SHARED) of that fd, offset 0, mmap_size bytes, maps:
 *   at 0:		struct aiopipe_ring_hdr
 *   at events_off:	ev_entries struct aiopipe_ring_event
 *   at bufids_off:	nr_bufs __u32 buffer ids (the hand-back ring)
 *   at bufs_off:	nr_bufs buffers of buf_size bytes; buffer i at
 *			bufs_off + i * buf_size
 * A read end attached to the ring (AIOPIPE_IOC_RING_ATTACH) has its bytes
 * delivered there: a writer copies into a free buffer and posts an event.
 * The kernel writes ev_tail, buf_head, flags and the events; user space
 * writes ev_head (events reaped) and the ids it hands back, then buf_tail.
 * The kernel trusts none of what user space writes.
 */

/**
 * struct aiopipe_ring_params - argument of AIOPIPE_IOC_RING_CREATE
 * @entries:	in: event ring entries, a power of two, 1 .. AIOPIPE_RING_MAX
 * @nr_bufs:	in: buffers, a power of two, 1 .. AIOPIPE_RING_MAX
 * @buf_size:	in: bytes per buffer, a power of two,
 *		AIOPIPE_RING_BUF_MIN .. AIOPIPE_RING_BUF_MAX
 * @flags:	in: O_CLOEXEC or 0
 * @fd:		out: the ring fd
 * @events_off:	out: offset of the event array in the mapping
 * @bufids_off:	out: offset of the hand-back ring of buffer ids
 * @pad:	zero
 * @bufs_off:	out: offset of buffer 0 (page aligned)
 * @mmap_size:	out: the length to map
 * @reserved:	must be zero
 */
struct aiopipe_ring_params {
	__u32 entries;
	__u32 nr_bufs;
	__u32 buf_size;
	__u32 flags;
	__s32 fd;
	__u32 events_off;
	__u32 bufids_off;
	__u32 pad;
	__u64 bufs_off;
	__u64 mmap_size;
	__u64 reserved[4];
};

#define AIOPIPE_RING_MAX	32768		/* entries, nr_bufs */
#define AIOPIPE_RING_BUF_MIN	64
#define AIOPIPE_RING_BUF_MAX	0x100000	/* 1 MiB */
/* nr_bufs * buf_size at most this (and the caller's RLIMIT_MEMLOCK) */
#define AIOPIPE_RING_BUFS_MAX	0x40000000	/* 1 GiB */

/**
 * struct aiopipe_ring_hdr - the start of the mapping
 * @ev_head:	user: the next event to reap; events ev_head .. ev_tail - 1
 *		(modulo 2^32) are posted, entry i at events[i & ev_mask]
 * @buf_tail:	user: one past the last id handed back; store the id at
 *		bufids[buf_tail & buf_mask], then release-store buf_tail + 1
 * @user_pad:	unused, keeps the user's fields in their own cache line
 * @ev_tail:	kernel: one past the last event posted (release-stored)
 * @buf_head:	kernel: ids taken from the hand-back ring so far
 * @flags:	kernel: AIOPIPE_RING_F_*
 * @ev_mask:	kernel, constant: ev_entries - 1
 * @ev_entries:	kernel, constant
 * @buf_mask:	kernel, constant: nr_bufs - 1
 * @nr_bufs:	kernel, constant
 * @buf_size:	kernel, constant
 * @kernel_pad:	unused
 */
struct aiopipe_ring_hdr {
	__u32 ev_head;
	__u32 buf_tail;
	__u32 user_pad[14];
	__u32 ev_tail;
	__u32 buf_head;
	__u32 flags;
	__u32 ev_mask;
	__u32 ev_entries;
	__u32 buf_mask;
	__u32 nr_bufs;
	__u32 buf_size;
	__u32 kernel_pad[8];
};

/*
 * hdr->flags: some event could not be posted because the ring was full; it
 * is posted when the kernel sees room (poll, AIOPIPE_IOC_RING_WAIT, the
 * next post).  A reader that reaps without system calls must, after
 * freeing slots: store ev_head with release semantics, issue a full
 * barrier, then load flags, and if this bit is set, poll(2) the ring fd or
 * call AIOPIPE_IOC_RING_WAIT with a timeout of 0.  The kernel sets the bit,
 * issues a full barrier and then reads ev_head, so one side sees the other
 * (libaiopipe's aiopipe_ring_advance() does this).
 */
#define AIOPIPE_RING_F_OWED	0x1

/**
 * struct aiopipe_ring_event - one completion
 * @user_data:	the attachment's user_data (which pipe)
 * @len:	AIOPIPE_EV_DATA: bytes in buffer @buf; AIOPIPE_EV_READ: bytes
 *		to take with read(2) from the pipe, in order; else 0
 * @buf:	AIOPIPE_EV_DATA: the buffer, now the reader's until handed back
 * @type:	AIOPIPE_EV_*
 *
 * A pipe's events are in its byte order: read exactly @len bytes of a READ
 * event before using the next event of that pipe.
 */
struct aiopipe_ring_event {
	__u64 user_data;
	__u32 len;
	__u16 buf;
	__u16 type;
};

#define AIOPIPE_EV_DATA		1	/* bytes in a buffer */
#define AIOPIPE_EV_READ		2	/* bytes in the pipe: read(2) them */
#define AIOPIPE_EV_EOF		3	/* no writers left (a FIFO may get new ones) */

/**
 * struct aiopipe_ring_attach - argument of AIOPIPE_IOC_RING_ATTACH
 * @fd:		a read end (or an O_RDWR FIFO) of an aiopipe
 * @flags:	must be zero
 * @user_data:	copied into every event of this pipe
 * @reserved:	must be zero
 */
struct aiopipe_ring_attach {
	__s32 fd;
	__u32 flags;
	__u64 user_data;
	__u64 reserved[2];
};

/**
 * struct aiopipe_ring_wait - argument of AIOPIPE_IOC_RING_WAIT
 * @min_events:	return once this many events are posted and unreaped
 *		(at least 1, at most ev_entries)
 * @flags:	must be zero
 * @timeout_ns:	relative; < 0 waits without a timeout, 0 does not wait
 *
 * Returns the number of events available, or -ETIME when the timeout
 * passed first.  A signal ends a wait with a timeout with -EINTR; a wait
 * without one restarts under SA_RESTART, and is -EINTR otherwise.
 */
struct aiopipe_ring_wait {
	__u32 min_events;
	__u32 flags;
	__s64 timeout_ns;
};

/* On /dev/aiopipe: a new ring; the fd is in params.fd. */
#define AIOPIPE_IOC_RING_CREATE	_IOWR(AIOPIPE_IOC_MAGIC, 0x08, struct aiopipe_ring_params)
/* On a ring fd: attach a read end (EBUSY if it has a ring already). */
#define AIOPIPE_IOC_RING_ATTACH	_IOW(AIOPIPE_IOC_MAGIC, 0x09, struct aiopipe_ring_attach)
/* On a ring fd: detach the read end whose fd is the argument. */
#define AIOPIPE_IOC_RING_DETACH	_IOW(AIOPIPE_IOC_MAGIC, 0x0a, __s32)
/* On a ring fd: wait for events. */
#define AIOPIPE_IOC_RING_WAIT	_IOW(AIOPIPE_IOC_MAGIC, 0x0b, struct aiopipe_ring_wait)

#endif /* _UAPI_LINUX_AIOPIPE_H */
