/* SPDX-License-Identifier: LGPL-2.1 OR MIT */
/*
 * libaiopipe: a tiny helper library for aiopipe users.
 * Every function returns 0 (or a value >= 0) on success and -errno on
 * failure; errno is left as the failing call set it.
 */
#ifndef LIBAIOPIPE_H
#define LIBAIOPIPE_H

#include <stddef.h>
#include <linux/aiopipe.h>

#ifdef __cplusplus
extern "C" {
#endif

/* pipe2() for aiopipe: fds[0] read end, fds[1] write end. */
int aiopipe_pair(int fds[2], int flags);
/* The same with a capacity (bytes, 0 = default) and engine (AIOPIPE_ENGINE_*). */
int aiopipe_pair_ex(int fds[2], int flags, unsigned int capacity,
		    unsigned int engine);
/* Returns the new capacity, like fcntl(F_SETPIPE_SZ). */
int aiopipe_set_capacity(int fd, unsigned int bytes);
int aiopipe_get_capacity(int fd);
int aiopipe_set_engine(int fd, unsigned int engine);
int aiopipe_get_engine(int fd);
int aiopipe_set_filter(int fd, unsigned int on);
int aiopipe_get_filter(int fd);
/* Counters of fd's channel; fd < 0 for the global ones. */
int aiopipe_stats(int fd, struct aiopipe_stats *st);
/* Name and value of counter i (0 .. aiopipe_stat_count()-1). */
int aiopipe_stat_count(void);
const char *aiopipe_stat_name(int i);
unsigned long long aiopipe_stat_value(const struct aiopipe_stats *st, int i);
/* "retry" / "direct" <-> AIOPIPE_ENGINE_*; -EINVAL for anything else. */
int aiopipe_engine_parse(const char *name);
const char *aiopipe_engine_name(unsigned int engine);

/*
 * Ring mode (docs/ring.md): events of many read ends in one mapped ring,
 * bytes in buffers the kernel fills.  One thread reaps a ring; the inline
 * helpers below do no system call.
 */
struct aiopipe_ring {
	int fd;
	void *map;
	size_t map_size;
	struct aiopipe_ring_hdr *hdr;
	struct aiopipe_ring_event *events;
	__u32 *bufids;
	unsigned char *bufs;
	__u32 ev_mask;
	__u32 buf_mask;
	__u32 buf_size;
	__u32 nr_bufs;
};

/* Create and map a ring; flags: O_CLOEXEC or 0. */
int aiopipe_ring_setup(struct aiopipe_ring *r, unsigned int entries,
		       unsigned int nr_bufs, unsigned int buf_size, int flags);
/* Unmap and close (attached pipes are detached by the kernel). */
void aiopipe_ring_exit(struct aiopipe_ring *r);
/* Deliver read end @fd's bytes to the ring, tagged @user_data. */
int aiopipe_ring_attach(struct aiopipe_ring *r, int fd,
			unsigned long long user_data);
int aiopipe_ring_detach(struct aiopipe_ring *r, int fd);
/*
 * Wait until at least @min_events are unreaped; @timeout_ns < 0: no
 * timeout.  Returns the number available, -ETIME, or -EINTR.
 */
int aiopipe_ring_wait(struct aiopipe_ring *r, unsigned int min_events,
		      long long timeout_ns);

/* The oldest unreaped event, or NULL. */
static inline struct aiopipe_ring_event *
aiopipe_ring_peek(struct aiopipe_ring *r)
{
	__u32 head = r->hdr->ev_head;
	__u32 tail = __atomic_load_n(&r->hdr->ev_tail, __ATOMIC_ACQUIRE);

	return head == tail ? (struct aiopipe_ring_event *)0 :
			      &r->events[head & r->ev_mask];
}

/* Events not yet reaped. */
static inline unsigned int aiopipe_ring_ready(struct aiopipe_ring *r)
{
	return __atomic_load_n(&r->hdr->ev_tail, __ATOMIC_ACQUIRE) -
	       r->hdr->ev_head;
}

/* Have the kernel post events it owes (AIOPIPE_RING_F_OWED): no wait. */
int aiopipe_ring_collect(struct aiopipe_ring *r);

/*
 * Mark @n events reaped: their slots go back to the kernel.  The head is
 * stored after the entries were read; then, past a full barrier, the
 * flag: events the kernel could not post for want of room are asked for
 * (the kernel stores the flag, then reads the head: one side sees the
 * other).  Asking is a system call (aiopipe_ring_collect()); it may set
 * errno, which a caller that reaps in a loop need not check: a failed
 * collect leaves the flag set for the next advance.
 */
static inline void aiopipe_ring_advance(struct aiopipe_ring *r, unsigned int n)
{
	__atomic_store_n(&r->hdr->ev_head, r->hdr->ev_head + n,
			 __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->hdr->flags, __ATOMIC_RELAXED) &
	    AIOPIPE_RING_F_OWED)
		aiopipe_ring_collect(r);
}

/* The memory of buffer @id (from an AIOPIPE_EV_DATA event). */
static inline void *aiopipe_ring_buf(struct aiopipe_ring *r, unsigned int id)
{
	return r->bufs + (size_t)(id & r->buf_mask) * r->buf_size;
}

/* Hand buffer @id back to the kernel for a later event. */
static inline void aiopipe_ring_give_back(struct aiopipe_ring *r,
					  unsigned int id)
{
	__u32 tail = r->hdr->buf_tail;

	r->bufids[tail & r->buf_mask] = id;
	__atomic_store_n(&r->hdr->buf_tail, tail + 1, __ATOMIC_RELEASE);
}

/* fault injection (docs/hardening.md): the calling thread opts in to failslab */
int aiopipe_fail_self(void);

#ifdef __cplusplus
}
#endif

#endif /* LIBAIOPIPE_H */
