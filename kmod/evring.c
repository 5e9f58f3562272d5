// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe ring mode: the event ring.  A reader maps one ring (a header, an
 * event array, a ring of buffer ids it hands back, and the buffers) and
 * attaches read ends to it; a writer to an attached channel copies straight
 * into the next free buffer and posts an event, with no request, no pin
 * and no allocation per message.  The buffers are kernel pages mapped into
 * the reader, as AF_PACKET's rings and io_uring's mapped buffer rings are,
 * so a writer in any process copies with copy_page_from_iter().
 *
 * An attachment is the channel's sink, not a request: it never completes,
 * and a request that never completes would stand in line before every
 * later read.  The transfer offers it the bytes a writer moves when the
 * byte ring is empty and no one-shot read waits (aiopipe_sink_fill());
 * bytes that go to the byte ring instead are announced by a READ event
 * with their count (aiopipe_sink_announce()), so that the events, taken in
 * order, give the pipe's bytes in order.
 *
 * Everything in the mapping is written by user space at will.  The kernel
 * keeps its own ev_tail and buf_head and only reads the user's ev_head,
 * buf_tail and ids, once per decision: a head that makes more than
 * ev_entries events look unreaped, or a tail more than nr_bufs ahead, is
 * "no room" and "no buffer", an id out of range is skipped.  Every store
 * goes to an index masked into the arrays.
 *
 * LOCKING:
 *
 *   ring->lock (spinlock_t, process context only)
 *	protects ev_tail, buf_head, promised, nr_sinks, the spare ids,
 *	both lists (sinks, owed), dead, and each sink's owed fields; an
 *	event is written and hdr->ev_tail published under it.  Never held
 *	across a copy: a fill takes a buffer and promises itself an event
 *	slot under it, copies without it (page faults disabled: the slot
 *	and the buffer are the whole ring's), and posts under it again.  A
 *	section that moved the tail wakes ring->wq after it
 *	(aiopipe_evring_unlock()).
 *
 *   chan->mutex
 *	protects chan->sink: attach, detach, fill, announce and eof run
 *	under it, so a sink never goes away under a writer.
 *
 *   Order: chan->mutex -> ring->lock.  ring->wq is woken after ring->lock
 *	is dropped.
 *
 * LIFETIMES:
 *
 *   The ring is refcounted: its file holds one reference, each sink one.
 *   The file's release marks the ring dead (no fill or announce starts
 *   any more; a fill in flight still posts its buffer) and detaches every
 *   sink, taking each channel's mutex with ring->lock
 *   dropped; the pages are freed, and their charge dropped, by the last
 *   put.  A mapping holds the file, so release comes after the last
 *   munmap().  A sink holds a reference on its channel, so the channel
 *   outlives it; it is detached when the ring goes, when its last read
 *   end is released, or by AIOPIPE_IOC_RING_DETACH, and freed (those
 *   references dropped) after the channel's mutex is released.
 */
#include "aiopipe.h"
#include "evring.h"
#include "fault.h"
#include "pause.h"

#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/nospec.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#define AIOPIPE_RING_FLAGS	O_CLOEXEC

int aiopipe_evring_check_params(const struct aiopipe_ring_params *p)
{
	BUILD_BUG_ON(sizeof(struct aiopipe_ring_params) != 80);
	BUILD_BUG_ON(sizeof(struct aiopipe_ring_hdr) != 128);
	BUILD_BUG_ON(sizeof(struct aiopipe_ring_event) != 16);
	BUILD_BUG_ON(sizeof(struct aiopipe_ring_attach) != 32);
	BUILD_BUG_ON(sizeof(struct aiopipe_ring_wait) != 16);
	BUILD_BUG_ON(AIOPIPE_RING_MAX - 1 > U16_MAX);	/* ids fit ev->buf */

	if ((p->flags & ~AIOPIPE_RING_FLAGS) || p->pad ||
	    memchr_inv(p->reserved, 0, sizeof(p->reserved)))
		return -EINVAL;
	if (!is_power_of_2(p->entries) || p->entries > AIOPIPE_RING_MAX ||
	    !is_power_of_2(p->nr_bufs) || p->nr_bufs > AIOPIPE_RING_MAX ||
	    !is_power_of_2(p->buf_size) || p->buf_size < AIOPIPE_RING_BUF_MIN ||
	    p->buf_size > AIOPIPE_RING_BUF_MAX ||
	    (u64)p->nr_bufs * p->buf_size > AIOPIPE_RING_BUFS_MAX)
		return -EINVAL;
	return 0;
}

/* Where each part lies in the mapping; the buffers start on a page. */
static void aiopipe_evring_layout(struct aiopipe_evring *ring,
				  const struct aiopipe_ring_params *p)
{
	ring->ev_entries = p->entries;
	ring->nr_bufs = p->nr_bufs;
	ring->buf_size = p->buf_size;
	ring->events_off = sizeof(struct aiopipe_ring_hdr);
	ring->bufids_off = ring->events_off +
			   p->entries * sizeof(struct aiopipe_ring_event);
	ring->bufs_off = PAGE_ALIGN(ring->bufids_off + p->nr_bufs * sizeof(u32));
	ring->mmap_size = PAGE_ALIGN(ring->bufs_off +
				     (u64)p->nr_bufs * p->buf_size);
	ring->nr_pages = ring->mmap_size >> PAGE_SHIFT;
}

static void aiopipe_evring_free_pages(struct aiopipe_evring *ring)
{
	unsigned int i;

	if (!ring->pages)
		return;
	for (i = 0; i < ring->nr_pages; i++) {
		if (ring->pages[i])
			__free_page(ring->pages[i]);
		cond_resched();
	}
	kvfree(ring->pages);
}

/* Zeroed pages charged to the memcg; sizes from user space fail quietly. */
static int aiopipe_evring_alloc_pages(struct aiopipe_evring *ring)
{
	const gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN |
			  __GFP_RETRY_MAYFAIL;
	unsigned int i;

	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC))
		return -ENOMEM;
	ring->pages = kvcalloc(ring->nr_pages, sizeof(*ring->pages), gfp);
	if (!ring->pages)
		return -ENOMEM;
	for (i = 0; i < ring->nr_pages; i++) {
		ring->pages[i] = alloc_page(gfp | __GFP_ZERO);
		if (!ring->pages[i])
			return -ENOMEM;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	ring->spare = kvcalloc(ring->nr_bufs, sizeof(*ring->spare), gfp);
	if (!ring->spare)
		return -ENOMEM;
	ring->hdr = vmap(ring->pages, ring->bufs_off >> PAGE_SHIFT, VM_MAP,
			 PAGE_KERNEL);
	return ring->hdr ? 0 : -ENOMEM;
}

/* Every buffer free: ids 0 .. nr_bufs - 1 handed back, as user space would. */
static void aiopipe_evring_init_shared(struct aiopipe_evring *ring)
{
	struct aiopipe_ring_hdr *hdr = ring->hdr;
	u32 i;

	ring->events = (void *)hdr + ring->events_off;
	ring->bufids = (void *)hdr + ring->bufids_off;
	for (i = 0; i < ring->nr_bufs; i++)
		ring->bufids[i] = i;
	hdr->buf_tail = ring->nr_bufs;
	hdr->ev_mask = ring->ev_entries - 1;
	hdr->ev_entries = ring->ev_entries;
	hdr->buf_mask = ring->nr_bufs - 1;
	hdr->nr_bufs = ring->nr_bufs;
	hdr->buf_size = ring->buf_size;
}

/*
 * The pages are locked memory held for the caller: charged to its
 * locked_vm against RLIMIT_MEMLOCK (past it only with CAP_IPC_LOCK, as
 * io_uring's registered buffers) and to its mm's pinned_vm.
 */
static int aiopipe_evring_charge(struct aiopipe_evring *ring)
{
	struct user_struct *user = aiopipe_charge_pins(ring->nr_pages);

	if (IS_ERR(user))
		return PTR_ERR(user);
	ring->user = user;
	ring->mm = current->mm;
	mmgrab(ring->mm);
	atomic64_add(ring->nr_pages, &ring->mm->pinned_vm);
	return 0;
}

static void aiopipe_evring_uncharge(struct aiopipe_evring *ring)
{
	aiopipe_uncharge_pins(ring->user, ring->nr_pages);
	atomic64_sub(ring->nr_pages, &ring->mm->pinned_vm);
	mmdrop(ring->mm);
}

/* A new ring for checked @p, charged to the caller; ERR_PTR on failure. */
struct aiopipe_evring *aiopipe_evring_create(const struct aiopipe_ring_params *p)
{
	struct aiopipe_evring *ring;
	int ret;

	ring = kzalloc(sizeof(*ring), GFP_KERNEL_ACCOUNT);
	if (!ring)
		return ERR_PTR(-ENOMEM);
	aiopipe_evring_layout(ring, p);
	ret = aiopipe_evring_charge(ring);
	if (ret)
		goto free_ring;
	ret = aiopipe_evring_alloc_pages(ring);
	if (ret)
		goto free_pages;
	aiopipe_evring_init_shared(ring);
	kref_init(&ring->ref);
	spin_lock_init(&ring->lock);
	init_waitqueue_head(&ring->wq);
	INIT_LIST_HEAD(&ring->sinks);
	INIT_LIST_HEAD(&ring->owed);
	return ring;

free_pages:
	if (ring->hdr)
		vunmap(ring->hdr);
	kvfree(ring->spare);
	aiopipe_evring_free_pages(ring);
	aiopipe_evring_uncharge(ring);
free_ring:
	kfree(ring);
	return ERR_PTR(ret);
}

static void aiopipe_evring_free(struct kref *ref)
{
	struct aiopipe_evring *ring = container_of(ref, struct aiopipe_evring,
						   ref);

	WARN_ON_ONCE(!list_empty(&ring->sinks));
	vunmap(ring->hdr);
	kvfree(ring->spare);
	aiopipe_evring_free_pages(ring);
	aiopipe_evring_uncharge(ring);
	kfree(ring);
}

void aiopipe_evring_put(struct aiopipe_evring *ring)
{
	kref_put(&ring->ref, aiopipe_evring_free);
}

/* ---- events ----------------------------------------------------------- */

/* Posted and not yet reaped, as the user's head says: more is a lie. */
static u32 aiopipe_evring_used(const struct aiopipe_evring *ring)
{
	/* the entries were read before the head: pairs with its release */
	return ring->ev_tail - smp_load_acquire(&ring->hdr->ev_head);
}

/*
 * Room for one event not promised to a fill in flight.  The slot a new
 * event takes was reaped if the head says so: the user's release store of
 * its head after reading the entries, and the acquire load of it, order
 * the two.
 */
static bool aiopipe_evring_room(const struct aiopipe_evring *ring)
{
	u32 used = aiopipe_evring_used(ring);

	lockdep_assert_held(&ring->lock);
	return used < ring->ev_entries && ring->ev_entries - used > ring->promised;
}

/* Write the next event and publish it (the entry before the tail). */
static void aiopipe_evring_post(struct aiopipe_evring *ring, u64 user_data,
				u32 len, u16 buf, u16 type)
{
	struct aiopipe_ring_event *ev;

	lockdep_assert_held(&ring->lock);
	ev = &ring->events[ring->ev_tail & (ring->ev_entries - 1)];
	WRITE_ONCE(ev->user_data, user_data);
	WRITE_ONCE(ev->len, len);
	WRITE_ONCE(ev->buf, buf);
	WRITE_ONCE(ev->type, type);
	ring->ev_tail++;
	/* the entry before the tail: pairs with the reader's acquire load */
	smp_store_release(&ring->hdr->ev_tail, ring->ev_tail);
}

/*
 * Every section under ring->lock that may post (its own event, or owed
 * ones it found room for) ends here: whoever moved the tail wakes.
 */
static void aiopipe_evring_lock(struct aiopipe_evring *ring, u32 *tail)
	__acquires(&ring->lock)
{
	spin_lock(&ring->lock);
	*tail = ring->ev_tail;
}

static void aiopipe_evring_unlock(struct aiopipe_evring *ring, u32 tail)
	__releases(&ring->lock)
{
	bool posted = ring->ev_tail != tail;

	spin_unlock(&ring->lock);
	if (posted && wq_has_sleeper(&ring->wq))
		wake_up_poll(&ring->wq, EPOLLIN | EPOLLRDNORM);
}

static void aiopipe_evring_set_owed_flag(struct aiopipe_evring *ring)
{
	WRITE_ONCE(ring->hdr->flags,
		   list_empty(&ring->owed) ? 0 : AIOPIPE_RING_F_OWED);
}

/*
 * A sink's debt, in order: owed_bytes[0] READ bytes, an EOF if
 * owed_eof[0], then owed_bytes[1] and owed_eof[1].  Bytes that come after
 * a second owed EOF make it stale (a writer is back, and its going will
 * be an EOF of its own) and join owed_bytes[1].
 */
static bool aiopipe_sink_owes(const struct aiopipe_sink *sink)
{
	return sink->owed_bytes[0] || sink->owed_eof[0];
}

/* Post what one sink owes, in order, while there is room. */
static bool aiopipe_sink_pay(struct aiopipe_sink *sink)
{
	struct aiopipe_evring *ring = sink->ring;

	while (aiopipe_sink_owes(sink)) {
		if (!aiopipe_evring_room(ring))
			return false;
		if (sink->owed_bytes[0]) {
			u32 n = min_t(u64, sink->owed_bytes[0], U32_MAX);

			aiopipe_evring_post(ring, sink->user_data, n, 0,
					    AIOPIPE_EV_READ);
			sink->owed_bytes[0] -= n;
			continue;
		}
		aiopipe_evring_post(ring, sink->user_data, 0, 0, AIOPIPE_EV_EOF);
		sink->owed_bytes[0] = sink->owed_bytes[1];
		sink->owed_eof[0] = sink->owed_eof[1];
		sink->owed_bytes[1] = 0;
		sink->owed_eof[1] = false;
	}
	return true;
}

/* Post owed events, oldest debtor first, while there is room. */
static void aiopipe_evring_flush(struct aiopipe_evring *ring)
{
	struct aiopipe_sink *sink, *next;

	lockdep_assert_held(&ring->lock);
	/*
	 * Nobody reads a dead ring: its sinks' detach leaves every byte in
	 * their pipes to a later attachment to announce.
	 */
	if (ring->dead)
		return;
	list_for_each_entry_safe(sink, next, &ring->owed, owed_node) {
		if (!aiopipe_sink_pay(sink))
			break;
		list_del_init(&sink->owed_node);
	}
	aiopipe_evring_set_owed_flag(ring);
}

/*
 * Put @sink in the ring's debtors and raise AIOPIPE_RING_F_OWED.  A reader
 * that reaps without system calls advances its head, then reads the flag
 * (libaiopipe's aiopipe_ring_advance()) and, seeing it, asks the kernel to
 * pay (a poll, or AIOPIPE_IOC_RING_WAIT with no timeout):
 *
 *   kernel (owe)                        reader (advance)
 *   flags = OWED                        ev_head = new head
 *   smp_mb()                            full barrier
 *   head moved? pay now                 flags & OWED? ask the kernel
 *
 * One side sees the other's store: a debt never waits for a head that
 * moved without anyone noticing.
 */
static void aiopipe_sink_owe(struct aiopipe_sink *sink)
{
	struct aiopipe_evring *ring = sink->ring;

	if (list_empty(&sink->owed_node))
		list_add_tail(&sink->owed_node, &ring->owed);
	aiopipe_evring_set_owed_flag(ring);
	smp_mb();	/* the flag before the head: see above */
	if (aiopipe_evring_room(ring))
		aiopipe_evring_flush(ring);
}

static void aiopipe_sink_owe_bytes(struct aiopipe_sink *sink, size_t n)
{
	int after = sink->owed_eof[0];

	if (after)
		sink->owed_eof[1] = false;
	sink->owed_bytes[after] += n;
	aiopipe_sink_owe(sink);
}

static void aiopipe_sink_owe_eof(struct aiopipe_sink *sink)
{
	sink->owed_eof[sink->owed_eof[0]] = true;
	aiopipe_sink_owe(sink);
}

/* Events posted and not reaped (0 for a lying head), owed ones posted first. */
unsigned int aiopipe_evring_ready(struct aiopipe_evring *ring)
{
	u32 tail, used;

	aiopipe_evring_lock(ring, &tail);
	if (!list_empty(&ring->owed))
		aiopipe_evring_flush(ring);
	used = aiopipe_evring_used(ring);
	aiopipe_evring_unlock(ring, tail);
	return used > ring->ev_entries ? 0 : used;
}

/* ---- buffers ---------------------------------------------------------- */

/*
 * The next free buffer: one taken and not used, else the next id user
 * space handed back.  A tail more than nr_bufs ahead is no buffer; an id
 * out of range is consumed and is no buffer either (this time: a hostile
 * hand-back costs its ring one reservation per bad id, nothing more).
 */
static int aiopipe_evring_take_buf(struct aiopipe_evring *ring)
{
	u32 tail, id;

	lockdep_assert_held(&ring->lock);
	if (ring->nr_spare)
		return ring->spare[--ring->nr_spare];
	/* the id before the tail: pairs with the reader's release */
	tail = smp_load_acquire(&ring->hdr->buf_tail);
	if (tail == ring->buf_head || tail - ring->buf_head > ring->nr_bufs)
		return -ENOBUFS;
	id = READ_ONCE(ring->bufids[ring->buf_head & (ring->nr_bufs - 1)]);
	ring->buf_head++;
	WRITE_ONCE(ring->hdr->buf_head, ring->buf_head);
	if (id >= ring->nr_bufs)
		return -ENOBUFS;
	return array_index_nospec(id, ring->nr_bufs);
}

/*
 * Copy up to @n bytes of @from into buffer @id, page by page, with page
 * faults disabled: a promised event slot and a buffer of the whole ring
 * are held meanwhile, never across a fault whose end another process
 * decides.  Returns the bytes copied.
 */
static size_t aiopipe_evring_copy_in(struct aiopipe_evring *ring, u32 id,
				     size_t n, struct iov_iter *from)
{
	u64 off = ring->bufs_off + (u64)id * ring->buf_size;
	size_t done = 0;

	if (aiopipe_should_fail(AIOPIPE_FAIL_COPY))
		return 0;
	pagefault_disable();
	while (done < n) {
		u64 at = off + done;
		size_t span = min_t(size_t, n - done,
				    PAGE_SIZE - offset_in_page(at));
		size_t got = copy_page_from_iter(ring->pages[at >> PAGE_SHIFT],
						 offset_in_page(at), span, from);

		done += got;
		if (got < span)
			break;
	}
	pagefault_enable();
	return done;
}

/* ---- sinks ------------------------------------------------------------ */

/*
 * A buffer for @sink's next bytes, with an event slot promised, or an
 * error: the ring is gone, full, out of buffers, or @sink owes events
 * (its bytes must then follow them through the byte ring).
 */
static int aiopipe_sink_reserve(struct aiopipe_sink *sink)
{
	struct aiopipe_evring *ring = sink->ring;
	int id;

	lockdep_assert_held(&ring->lock);
	if (ring->dead)
		return -EPIPE;
	if (!list_empty(&ring->owed))
		aiopipe_evring_flush(ring);
	if (aiopipe_sink_owes(sink) || !aiopipe_evring_room(ring))
		return -ENOSPC;
	id = aiopipe_evring_take_buf(ring);
	if (id >= 0)
		ring->promised++;
	return id;
}

/*
 * Post a filled buffer in its promised slot, or keep an unused one; the
 * slot given back may be what a debt waited for.
 */
static void aiopipe_sink_commit(struct aiopipe_sink *sink, u32 id, size_t n)
{
	struct aiopipe_evring *ring = sink->ring;
	u32 tail;

	aiopipe_evring_lock(ring, &tail);
	ring->promised--;
	if (n)
		aiopipe_evring_post(ring, sink->user_data, n, id,
				    AIOPIPE_EV_DATA);
	else if (ring->nr_spare < ring->nr_bufs)
		ring->spare[ring->nr_spare++] = id;
	/* else an id handed back twice: it stays user space's */
	if (!list_empty(&ring->owed))
		aiopipe_evring_flush(ring);
	aiopipe_evring_unlock(ring, tail);
}

/*
 * May a fill that stopped at a page that is not there fault it in and go
 * on, as pipe_write() would?  Not in a retry worker, which runs with page
 * faults disabled (its fault_work faults in unlocked), nor for a task
 * being killed.  chan->mutex is held meanwhile, as pipe_write() holds the
 * pipe's; no buffer or event slot is.
 */
static bool aiopipe_sink_may_fault_in(void)
{
	return !pagefault_disabled() && !fatal_signal_pending(current);
}

/* Copies that stop at one place after a fault-in, before it is -EFAULT. */
#define AIOPIPE_SINK_FAULT_REPEATS	16

/*
 * Writer, mutex held, byte ring empty, no read in line: copy up to @max
 * bytes of @from into free buffers of the attached ring, one event per
 * buffer, until the buffers or the event slots run out.  Returns the
 * bytes delivered; the rest, if any, goes to the byte ring.
 *
 * A copy that stops at a missing page is undone, its buffer kept, and
 * its span faulted in; the copy is then done again.  A copy that stops
 * again right after a fault-in is posted short, and the next one may
 * fault in again.  *@fault when nothing could be faulted in (the address
 * is bad), when no fault-in is possible, or when pages vanish again
 * between fault-in and copy AIOPIPE_SINK_FAULT_REPEATS times in a row
 * (reclaim, migration and MADV_DONTNEED may take one, not forever).
 */
size_t aiopipe_sink_fill(struct aiopipe_chan *chan, struct iov_iter *from,
			 size_t max, bool *fault)
{
	struct aiopipe_sink *sink = chan->sink;
	struct aiopipe_evring *ring = sink->ring;
	unsigned int repeats = 0;
	bool faulted_in = false;
	size_t total = 0;
	u32 events = 0;

	lockdep_assert_held(&chan->mutex);
	max = min(max, iov_iter_count(from));
	while (total < max) {
		size_t n = min_t(size_t, max - total, ring->buf_size);
		size_t got;
		u32 tail;
		int id;

		aiopipe_evring_lock(ring, &tail);
		id = aiopipe_sink_reserve(sink);
		aiopipe_evring_unlock(ring, tail);
		if (id < 0)
			break;
		aiopipe_pause(AIOPIPE_PAUSE_RING_FILLING, chan->id);
		got = aiopipe_evring_copy_in(ring, id, n, from);
		if (got < n && !faulted_in && aiopipe_sink_may_fault_in()) {
			iov_iter_revert(from, got);
			aiopipe_sink_commit(sink, id, 0);
			if (fault_in_iov_iter_readable(from, n) == n ||
			    ++repeats > AIOPIPE_SINK_FAULT_REPEATS) {
				*fault = true;
				break;
			}
			faulted_in = true;
			continue;
		}
		aiopipe_sink_commit(sink, id, got);
		total += got;
		events += !!got;
		faulted_in = false;
		if (got < n && !aiopipe_sink_may_fault_in()) {
			*fault = true;
			break;
		}
		if (got)
			repeats = 0;
		if (got == n && fatal_signal_pending(current))
			break;
		cond_resched();
	}
	if (!total)
		return 0;
	chan->produced += total;
	chan->consumed += total;
	aiopipe_stat_add(chan, AP_RING_BUFFERS, events);
	aiopipe_stat_add(chan, AP_RING_BYTES, total);
	return total;
}

/*
 * Mutex held: post a READ event for @n bytes (@type AIOPIPE_EV_READ, the
 * bytes counted as spilled) or an EOF (@n 0), after as much of what the
 * ring's debtors owe as fits; owe it when @chan's sink already owes (its
 * events stay in order) or the ring is full.  Nothing on a dead ring.
 */
static void aiopipe_sink_notify(struct aiopipe_chan *chan, size_t n, u16 type)
{
	struct aiopipe_sink *sink = chan->sink;
	struct aiopipe_evring *ring = sink->ring;
	u32 tail;

	lockdep_assert_held(&chan->mutex);
	aiopipe_evring_lock(ring, &tail);
	if (ring->dead)
		goto unlock;
	if (!list_empty(&ring->owed))
		aiopipe_evring_flush(ring);
	if (!aiopipe_sink_owes(sink) && aiopipe_evring_room(ring)) {
		aiopipe_evring_post(ring, sink->user_data, n, 0, type);
	} else {
		if (type == AIOPIPE_EV_EOF)
			aiopipe_sink_owe_eof(sink);
		else
			aiopipe_sink_owe_bytes(sink, n);
		aiopipe_stat_inc(chan, AP_RING_OWED);
	}
	if (type == AIOPIPE_EV_READ)
		aiopipe_stat_add(chan, AP_RING_SPILLED, n);
unlock:
	aiopipe_evring_unlock(ring, tail);
}

/*
 * Writer, mutex held: @n bytes went to the byte ring.  Tell the reader to
 * read(2) them, in order: now, or once the ring has room.
 */
void aiopipe_sink_announce(struct aiopipe_chan *chan, size_t n)
{
	aiopipe_sink_notify(chan, n, AIOPIPE_EV_READ);
}

/* Mutex held: the last writer went (or there was none at attach). */
void aiopipe_sink_eof(struct aiopipe_chan *chan)
{
	lockdep_assert_held(&chan->mutex);
	if (chan->sink)
		aiopipe_sink_notify(chan, 0, AIOPIPE_EV_EOF);
}

/*
 * Mutex held: how many of the bytes in the pipe, from its front, an event
 * of an earlier attachment announced (posted before it was detached, and
 * not read yet): they are not announced again.
 */
static u32 aiopipe_sink_announced(const struct aiopipe_chan *chan)
{
	lockdep_assert_held(&chan->mutex);
	if (chan->announced_end <= chan->consumed)
		return 0;
	return min_t(u64, chan->announced_end - chan->consumed, chan->len);
}

/*
 * Attach @chan (a read end's) to @ring.  Bytes already in the pipe are
 * announced (but for those a READ event of an earlier attachment did),
 * and a pipe without writers gets its EOF, as they would have been had
 * the ring been there first.  -EBUSY if it has a ring, or a
 * one-shot read waits in line (its bytes would not be the ring's).
 */
int aiopipe_sink_attach(struct aiopipe_evring *ring, struct aiopipe_chan *chan,
			u64 user_data)
{
	struct aiopipe_sink *sink;
	u32 announced;
	int ret = 0;

	sink = kzalloc(sizeof(*sink), GFP_KERNEL_ACCOUNT);
	if (!sink)
		return -ENOMEM;
	sink->ring = ring;
	sink->chan = chan;
	sink->user_data = user_data;
	INIT_LIST_HEAD(&sink->owed_node);
	mutex_lock(&chan->mutex);
	/* one reader of record: not with a ring, nor with reads in line */
	if (chan->sink || !list_empty_careful(&chan->rd_pending)) {
		ret = -EBUSY;
		goto unlock;
	}
	kref_get(&ring->ref);
	kref_get(&chan->ref);
	spin_lock(&ring->lock);
	list_add_tail(&sink->node, &ring->sinks);
	ring->nr_sinks++;
	spin_unlock(&ring->lock);
	chan->sink = sink;
	announced = aiopipe_sink_announced(chan);
	if (chan->len > announced)
		aiopipe_sink_announce(chan, chan->len - announced);
	if (!chan->writers)
		aiopipe_sink_eof(chan);
	sink = NULL;
unlock:
	mutex_unlock(&chan->mutex);
	kfree(sink);
	return ret;
}

/*
 * Mutex held: take @chan's sink off it, if it is @ring's (any ring's for a
 * NULL @ring).  Returns it for aiopipe_sink_free() once the mutex is
 * dropped, or NULL.
 */
struct aiopipe_sink *aiopipe_sink_detach(struct aiopipe_chan *chan,
					 struct aiopipe_evring *ring)
{
	struct aiopipe_sink *sink = chan->sink;
	bool by_reader = ring;

	lockdep_assert_held(&chan->mutex);
	if (!sink || (ring && sink->ring != ring))
		return NULL;
	chan->sink = NULL;
	ring = sink->ring;
	spin_lock(&ring->lock);
	/*
	 * Detached by its reader from a live ring, posted READ events stay
	 * that reader's to act on: they cover the front of the byte ring,
	 * owed ones the bytes behind.  A ring that is gone, or a read end
	 * that is, leaves nobody to act on them: a later attach announces
	 * every byte in the pipe.
	 */
	if (by_reader && !ring->dead)
		chan->announced_end = chan->consumed + chan->len -
				      min_t(u64, chan->len, sink->owed_bytes[0] +
							    sink->owed_bytes[1]);
	else
		chan->announced_end = chan->consumed;
	list_del(&sink->node);
	ring->nr_sinks--;
	list_del_init(&sink->owed_node);
	aiopipe_evring_set_owed_flag(ring);
	spin_unlock(&ring->lock);
	return sink;
}

/* Drop a detached sink's references; no channel mutex held. */
void aiopipe_sink_free(struct aiopipe_sink *sink)
{
	if (!sink)
		return;
	aiopipe_chan_put(sink->chan);
	aiopipe_evring_put(sink->ring);
	kfree(sink);
}

/*
 * The ring fd is gone: post nothing more, detach every channel.  Each
 * channel is pinned (a reference) before ring->lock is dropped, then
 * detached under its own mutex; one that went meanwhile is simply no
 * longer listed.  Drops the file's reference.
 */
void aiopipe_evring_shutdown(struct aiopipe_evring *ring)
{
	for (;;) {
		struct aiopipe_sink *sink;
		struct aiopipe_chan *chan = NULL;

		spin_lock(&ring->lock);
		ring->dead = true;
		sink = list_first_entry_or_null(&ring->sinks,
						struct aiopipe_sink, node);
		if (sink) {
			chan = sink->chan;
			kref_get(&chan->ref);
		}
		spin_unlock(&ring->lock);
		if (!chan)
			break;
		mutex_lock(&chan->mutex);
		sink = aiopipe_sink_detach(chan, ring);
		mutex_unlock(&chan->mutex);
		aiopipe_sink_free(sink);
		aiopipe_chan_put(chan);
	}
	aiopipe_evring_put(ring);
}
