/* SPDX-License-Identifier: GPL-2.0 */
/*
 * aiopipe ring mode: an event ring with buffers, mapped by its reader, that
 * read ends deliver into (evring.c; the ring fd is ringfd.c).  Locking and
 * lifetimes are documented at the top of evring.c.
 */
#ifndef _AIOPIPE_EVRING_H
#define _AIOPIPE_EVRING_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uio.h>
#include <linux/wait.h>
#include <linux/aiopipe.h>

struct aiopipe_chan;
struct mm_struct;
struct user_struct;

/* The ring: see LOCKING in evring.c. */
struct aiopipe_evring {
	struct kref ref;
	spinlock_t lock;		/* see LOCKING in evring.c */
	wait_queue_head_t wq;		/* pollers and AIOPIPE_IOC_RING_WAIT */

	/* set once at creation */
	struct page **pages;		/* the whole mapping */
	unsigned int nr_pages;
	struct aiopipe_ring_hdr *hdr;	/* vmap of the pages before bufs_off */
	struct aiopipe_ring_event *events;
	u32 *bufids;
	u64 bufs_off;
	u32 events_off;
	u32 bufids_off;
	u32 ev_entries;
	u32 nr_bufs;
	u32 buf_size;
	u64 mmap_size;
	struct user_struct *user;	/* charged nr_pages of locked_vm */
	struct mm_struct *mm;		/* charged nr_pages of pinned_vm */

	/* under lock */
	u32 ev_tail;			/* the kernel's: hdr->ev_tail is a copy */
	u32 buf_head;			/* the kernel's: hdr->buf_head is a copy */
	u32 promised;			/* event slots promised to fills in flight */
	u32 nr_sinks;
	u32 nr_spare;			/* ids taken and not used, reused first */
	u32 *spare;
	struct list_head sinks;		/* attached channels */
	struct list_head owed;		/* sinks owing a READ or EOF event */
	bool dead;			/* the ring fd is gone */
};

/*
 * A read end's channel attached to a ring.  chan->sink points to it under
 * chan->mutex; it holds a reference on the ring and one on the channel.
 */
struct aiopipe_sink {
	struct aiopipe_evring *ring;
	struct aiopipe_chan *chan;
	u64 user_data;
	struct list_head node;		/* ring->sinks, under ring->lock */
	/* under ring->lock */
	struct list_head owed_node;	/* ring->owed while it owes events */
	u64 owed_bytes[2];		/* bytes in the byte ring not announced, */
	bool owed_eof[2];		/* before and after an owed EOF */
};

struct aiopipe_evring *aiopipe_evring_create(const struct aiopipe_ring_params *p);
void aiopipe_evring_put(struct aiopipe_evring *ring);
void aiopipe_evring_shutdown(struct aiopipe_evring *ring);
unsigned int aiopipe_evring_ready(struct aiopipe_evring *ring);
int aiopipe_evring_check_params(const struct aiopipe_ring_params *p);

int aiopipe_sink_attach(struct aiopipe_evring *ring, struct aiopipe_chan *chan,
			u64 user_data);
struct aiopipe_sink *aiopipe_sink_detach(struct aiopipe_chan *chan,
					 struct aiopipe_evring *ring);
void aiopipe_sink_free(struct aiopipe_sink *sink);
size_t aiopipe_sink_fill(struct aiopipe_chan *chan, struct iov_iter *from,
			 size_t max, bool *fault);
void aiopipe_sink_announce(struct aiopipe_chan *chan, size_t n);
void aiopipe_sink_eof(struct aiopipe_chan *chan);

/* ringfd.c */
long aiopipe_ringfd_create(struct aiopipe_ring_params __user *uarg);

#endif /* _AIOPIPE_EVRING_H */
