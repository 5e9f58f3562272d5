// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe channel: the pipe object, its byte ring and its single wait queue.
 *
 * LOCKING:
 *
 *   chan->mutex (sleepable)
 *	protects the ring (ring, cap, head, len), the reader/writer counts,
 *	the produced/consumed clocks, last_req (request ids) and
 *	fsync_waiters, and
 *	serialises every transfer.  It is held across copies to and from
 *	pinned pages, and to and from user memory in the caller's own
 *	syscall (a signal reaches it), like pipe->mutex; never across a
 *	page fault of a kworker: the retry worker copies with page faults
 *	disabled and leaves faulting to fault_work, which holds no lock.
 *	The request a context holds BUSY (or KICKED: its worker) has its
 *	iter, done and fault fields owned by that context, under the mutex.
 *	Taken in process context only: read/write, the retry worker, the
 *	work item finishing a cancel, ioctl, release.  IOCB_NOWAIT callers
 *	only try it.
 *
 *   chan->wq.lock (irq-safe spinlock, the wait queue's own lock)
 *	protects the wait queue, both pending lists (rd_pending, wr_pending),
 *	every req->state, req->cancelled and req->kick.
 *	Wake callbacks already run under it, so they may move a request between
 *	states without another lock (as eventfd uses wqh.lock for its count).
 *	The aio cancel callback takes it with the AIO context lock held, IRQs
 *	off (on !PREEMPT_RT), in task context or from an RCU callback
 *	(free_ioctx_users, the percpu_ref release after kill_ioctx: softirq,
 *	or the rcuc kthread on PREEMPT_RT).
 *	Whether the new head of a pending list can move bytes depends on the
 *	ring, so it is decided under both locks; the cancel callback, which
 *	cannot take the mutex, leaves that to the channel's promote_work,
 *	queued by the work item that finishes the cancelled request.
 *
 *   No lock: chan->id is set at creation; chan->pinned_pages is an
 *	atomic budget (direct.c);
 *	chan->drain_wanted is set once, ordered by the barriers described at
 *	aiopipe_wake(); rd_head_direct/wr_head_direct are written under
 *	wq.lock and read by sleepers as hints only; chan->engine and
 *	chan->filter are set by ioctl and read once by each user;
 *	chan->spare_req is only exchanged (xchg/cmpxchg, request.c), and
 *	freed here with the channel.
 *
 *   Lock order: chan->mutex -> ctx_lock (kiocb_set_cancel_fn, ki_complete)
 *		 chan->mutex -> chan->wq.lock
 *		 chan->mutex -> ring->lock (ring mode: evring.c, whose
 *		 ring fd's release also takes the mutexes of its channels)
 *		 ctx_lock    -> chan->wq.lock (cancel; aio_poll_cancel does too)
 *	Never call ki_complete(), kiocb_set_cancel_fn() or wake_up() with
 *	wq.lock held: ki_complete takes ctx_lock, which would invert the cancel
 *	order.  Completed requests are collected on a local list and finished
 *	after the spinlock (normally also the mutex) is dropped.
 *
 * LIFETIMES:
 *
 *   The channel is refcounted (kref): one reference per open end file, one
 *   per live request, one while its promote_work is queued, and one while
 *   it is attached to a ring (its sink's, evring.c: the last put may then
 *   come from a ring's release or a detach).  It is
 *   freed by the last aiopipe_chan_put(), which can only happen after every
 *   request has been completed and every file released, so no work item or
 *   wake callback can reach a freed channel.
 *   A request is completed by whoever moves it to RQ_DONE; its memory is
 *   refcounted (fault_work holds a reference while it faults pages in, so
 *   a cancel can complete the request meanwhile) and freed by the last put,
 *   which also drops the request's channel reference, after handing the
 *   memory to the channel as its spare (or freeing it).
 *   A pending libaio request holds a reference on its file (fs/aio.c), so an
 *   end's ->release never runs while one of its own requests is pending.
 */
#include "aiopipe.h"
#include "compat.h"
#include "fault.h"
#include "pause.h"

#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/sched/signal.h>
#include <linux/capability.h>
#include <linux/log2.h>
#include <linux/cred.h>
#include <linux/sched/user.h>
#include <linux/highmem.h>

static atomic64_t aiopipe_chan_ids;

/*
 * The ring is an array of pages, as a pipe's buffers are pages: a user
 * copy goes to or from one page at a time with copy_page_{to,from}_iter(),
 * never to a slab object, so hardened usercopy has nothing to refuse.
 */
static void aiopipe_ring_free(struct page **pages, u32 cap)
{
	u32 i;

	if (!pages)
		return;
	for (i = 0; i < cap >> PAGE_SHIFT; i++)
		if (pages[i])
			__free_page(pages[i]);
	kvfree(pages);
}

static struct page **aiopipe_ring_alloc(u32 cap)
{
	u32 i, n = cap >> PAGE_SHIFT;
	struct page **pages;

	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC))
		return NULL;
	/*
	 * The size comes from user space: one the allocator refuses or
	 * cannot find is ENOMEM, not a kernel warning or an OOM kill.
	 */
	pages = kvcalloc(n, sizeof(*pages), GFP_KERNEL_ACCOUNT | __GFP_NOWARN |
			 __GFP_RETRY_MAYFAIL);
	if (!pages)
		return NULL;
	for (i = 0; i < n; i++) {
		pages[i] = alloc_page(GFP_HIGHUSER | __GFP_ACCOUNT |
				      __GFP_NOWARN | __GFP_RETRY_MAYFAIL);
		if (!pages[i]) {
			aiopipe_ring_free(pages, cap);
			return NULL;
		}
	}
	return pages;
}

/*
 * A new channel of @capacity bytes, charged to the current user (see
 * limits.c): ERR_PTR(-ENFILE) over the hard limit, as pipe() answers.
 */
struct aiopipe_chan *aiopipe_chan_alloc(u32 capacity, u32 engine)
{
	struct aiopipe_chan *chan;
	int ret = -ENOMEM;

	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC))
		return ERR_PTR(-ENOMEM);
	chan = kzalloc(sizeof(*chan), GFP_KERNEL_ACCOUNT);
	if (!chan)
		return ERR_PTR(-ENOMEM);
	chan->user = get_current_user();
	if (aiopipe_charge_ring(chan->user, 0, capacity)) {
		ret = -ENFILE;
		goto put_user;
	}
	chan->ring = aiopipe_ring_alloc(capacity);
	if (!chan->ring)
		goto uncharge;
	kref_init(&chan->ref);
	chan->id = atomic64_inc_return(&aiopipe_chan_ids);
	mutex_init(&chan->mutex);
	init_waitqueue_head(&chan->wq);
	init_waitqueue_head(&chan->fsync_wq);
	INIT_LIST_HEAD(&chan->rd_pending);
	INIT_LIST_HEAD(&chan->wr_pending);
	chan->cap = capacity;
	chan->engine = engine;
	chan->filter = aiopipe_default_filter;
	aiopipe_stat_inc(chan, AP_CHANNELS);
	return chan;

uncharge:
	aiopipe_uncharge_ring(chan->user, capacity);
put_user:
	free_uid(chan->user);
	kfree(chan);
	return ERR_PTR(ret);
}

static void aiopipe_chan_free(struct kref *ref)
{
	struct aiopipe_chan *chan = container_of(ref, struct aiopipe_chan, ref);

	WARN_ON_ONCE(!list_empty(&chan->rd_pending));
	WARN_ON_ONCE(!list_empty(&chan->wr_pending));
	WARN_ON_ONCE(atomic_read(&chan->pinned_pages));
	WARN_ON_ONCE(chan->sink);	/* a sink holds a reference */
	aiopipe_stat_gone(chan, AP_BYTES_BUFFERED, -(s64)chan->len);
	aiopipe_stat_gone(chan, AP_CHANNELS, -1);
	mutex_destroy(&chan->mutex);
	aiopipe_ring_free(chan->ring, chan->cap);
	aiopipe_uncharge_ring(chan->user, chan->cap);
	free_uid(chan->user);
	kfree(chan->spare_req);
	kfree(chan);
}

/* Drop a reference; the last one frees the channel (see LIFETIMES). */
void aiopipe_chan_put(struct aiopipe_chan *chan)
{
	kref_put(&chan->ref, aiopipe_chan_free);
}

/*
 * round_pipe_size() for bytes: a power of two of at least PAGE_SIZE, at
 * most AIOPIPE_CAPACITY_MAX.
 */
int aiopipe_chan_round_capacity(u64 size, u32 *cap)
{
	if (size > AIOPIPE_CAPACITY_MAX)
		return -EINVAL;
	*cap = size < PAGE_SIZE ? PAGE_SIZE : roundup_pow_of_two(size);
	return 0;
}

/*
 * As pipe_set_size(): only growing past max_capacity needs the capability.
 * Asked once before the new ring is allocated (no unprivileged caller gets
 * a big allocation it may not keep) and again under the mutex, so that a
 * concurrent shrink cannot turn "keep the size" into a grow.
 */
static int aiopipe_capacity_allowed(u32 now, u32 cap)
{
	if (cap > now && cap > READ_ONCE(aiopipe_max_capacity) &&
	    !capable(CAP_SYS_RESOURCE))
		return -EPERM;
	return 0;
}

/* Copy the ring's contents, oldest first, to the start of @dst. */
static void aiopipe_ring_linearize(struct aiopipe_chan *chan,
				   struct page **dst)
{
	u32 from = chan->head, to = 0, left = chan->len;

	while (left) {
		u32 n = min3(left, (u32)(PAGE_SIZE - offset_in_page(from)),
			     (u32)(PAGE_SIZE - offset_in_page(to)));
		void *s = kmap_local_page(chan->ring[from >> PAGE_SHIFT]);
		void *d = kmap_local_page(dst[to >> PAGE_SHIFT]);

		memcpy(d + offset_in_page(to), s + offset_in_page(from), n);
		kunmap_local(d);
		kunmap_local(s);
		from = (from + n) & (chan->cap - 1);
		to += n;
		left -= n;
	}
}

/*
 * F_SETPIPE_SZ for a channel: EBUSY if the bytes held would not fit, so a
 * shrink never loses data.  Returns the new capacity, which the ioctl hands
 * back through sys_ioctl()'s int: AIOPIPE_CAPACITY_MAX keeps it positive.
 */
int aiopipe_chan_set_capacity(struct aiopipe_chan *chan, u32 size)
{
	struct page **ring;
	u32 cap;
	int ret;

	BUILD_BUG_ON(AIOPIPE_CAPACITY_MAX > INT_MAX);
	ret = aiopipe_chan_round_capacity(size, &cap);
	if (!ret)
		ret = aiopipe_capacity_allowed(READ_ONCE(chan->cap), cap);
	if (ret)
		return ret;
	ring = aiopipe_ring_alloc(cap);
	if (!ring)
		return -ENOMEM;
	aiopipe_pause(AIOPIPE_PAUSE_RESIZE_START, chan->id);
	mutex_lock(&chan->mutex);
	ret = aiopipe_capacity_allowed(chan->cap, cap);
	if (ret)
		goto unlock;
	ret = -EBUSY;
	if (chan->len > cap)
		goto unlock;
	ret = aiopipe_charge_ring(chan->user, chan->cap, cap);
	if (ret)
		goto unlock;
	aiopipe_ring_linearize(chan, ring);
	ret = cap;
	swap(ring, chan->ring);		/* the old ring and its size */
	swap(cap, chan->cap);		/* are freed below */
	chan->head = 0;
unlock:
	mutex_unlock(&chan->mutex);
	aiopipe_ring_free(ring, cap);
	if (ret > 0)
		aiopipe_wake(chan, AIOPIPE_WRITE_KEY);
	return ret;
}

/* At most @n bytes from ring offset @off that stay inside one page. */
static inline size_t aiopipe_page_span(u32 off, size_t n)
{
	return min_t(size_t, n, PAGE_SIZE - offset_in_page(off));
}

static size_t aiopipe_ring_copy_out(struct aiopipe_chan *chan, u32 off,
				    size_t n, struct iov_iter *to)
{
	if (aiopipe_should_fail(AIOPIPE_FAIL_COPY))
		return 0;
	return aiopipe_copy_page_to_iter(chan->ring[off >> PAGE_SHIFT],
					 offset_in_page(off), n, to);
}

static size_t aiopipe_ring_copy_in(struct aiopipe_chan *chan, u32 off,
				   size_t n, struct iov_iter *from)
{
	if (aiopipe_should_fail(AIOPIPE_FAIL_COPY))
		return 0;
	return copy_page_from_iter(chan->ring[off >> PAGE_SHIFT],
				   offset_in_page(off), n, from);
}

/* Move as much of the ring as fits into @to.  Returns the bytes moved. */
size_t aiopipe_ring_to_iter(struct aiopipe_chan *chan, struct iov_iter *to,
			    bool *fault)
{
	size_t total = 0;

	lockdep_assert_held(&chan->mutex);
	while (chan->len && iov_iter_count(to)) {
		size_t n = aiopipe_page_span(chan->head,
					     min3((size_t)chan->len,
						  (size_t)(chan->cap - chan->head),
						  iov_iter_count(to)));
		size_t got = aiopipe_ring_copy_out(chan, chan->head, n, to);

		chan->head = (chan->head + got) & (chan->cap - 1);
		chan->len -= got;
		total += got;
		if (got < n) {
			*fault = true;
			break;
		}
	}
	if (!chan->len)
		chan->head = 0;
	chan->consumed += total;
	aiopipe_stat_add(chan, AP_BYTES_RING, total);
	aiopipe_stat_add(chan, AP_BYTES_BUFFERED, -(s64)total);
	return total;
}

/* Append up to @max bytes of @from to the ring.  Returns the bytes moved. */
size_t aiopipe_ring_from_iter(struct aiopipe_chan *chan, struct iov_iter *from,
			      size_t max, bool *fault)
{
	size_t total = 0;

	lockdep_assert_held(&chan->mutex);
	max = min3(max, iov_iter_count(from), (size_t)aiopipe_free(chan));
	while (total < max) {
		u32 tail = (chan->head + chan->len) & (chan->cap - 1);
		size_t n = aiopipe_page_span(tail, min(max - total,
						       (size_t)(chan->cap - tail)));
		size_t got = aiopipe_ring_copy_in(chan, tail, n, from);

		chan->len += got;
		total += got;
		if (got < n) {
			*fault = true;
			break;
		}
	}
	chan->produced += total;
	aiopipe_stat_add(chan, AP_BYTES_BUFFERED, total);
	return total;
}

/*
 * Keyed wakeups.  Every wakeup carries a poll key so that epoll, aio poll,
 * io_uring poll and our own retry callbacks can filter.  One queue serves
 * both directions, so each direction gets its own wake-one walk: a single
 * walk with a combined key would stop at the first exclusive sleeper of
 * either kind, and a reader woken for "data" would swallow the writers'
 * "room" wakeup.  Drain waiters are all woken, but only on a channel
 * where somebody has ever asked for a drain: every other read that empties
 * the ring would walk the queue for nothing.  Called without chan->wq.lock.
 * Fsync waiters sleep on a queue of their own, which nothing polls: a read
 * that consumed bytes while one waits (AIOPIPE_CONSUMED_KEY, decided under
 * the mutex, where fsync counts itself) wakes them all, and each tests its
 * own mark.
 * The barrier in wq_has_sleeper() pairs with the one in prepare_to_wait()
 * and the one aiopipe_poll() issues after poll_wait(), so neither the
 * queued entry nor drain_wanted can be missed:
 *
 *   reader (waker)                       drain waiter (poll)
 *   consumed += n (mutex)                add entry to chan->wq
 *                                        drain_wanted = true
 *   smp_mb() (wq_has_sleeper)            smp_mb()
 *   entry queued? drain_wanted?          consumed == produced?
 *
 * At least one side sees the other's stores: the waiter sees the drain,
 * or the waker sees the waiter and wakes it.
 */
void aiopipe_wake(struct aiopipe_chan *chan, __poll_t key)
{
	if (key & AIOPIPE_CONSUMED_KEY) {
		wake_up_all(&chan->fsync_wq);
		key &= ~AIOPIPE_CONSUMED_KEY;
	}
	if (!wq_has_sleeper(&chan->wq))
		goto fasync;
	if (!READ_ONCE(chan->drain_wanted))
		key &= ~AIOPIPE_DRAIN_KEY;
	if (key & AIOPIPE_READER_MASK)
		__wake_up(&chan->wq, TASK_INTERRUPTIBLE, 1,
			  poll_to_key(key & AIOPIPE_READER_MASK));
	if (key & AIOPIPE_WRITER_MASK)
		__wake_up(&chan->wq, TASK_INTERRUPTIBLE, 1,
			  poll_to_key(key & AIOPIPE_WRITER_MASK));
	if (key & AIOPIPE_DRAIN_KEY)
		__wake_up(&chan->wq, TASK_INTERRUPTIBLE, 0,
			  poll_to_key(AIOPIPE_DRAIN_KEY));
fasync:
	if (key & EPOLLIN)
		kill_fasync(&chan->fasync_readers, SIGIO, POLL_IN);
	if (key & EPOLLOUT)
		kill_fasync(&chan->fasync_writers, SIGIO, POLL_OUT);
}

/* Wake every waiter, exclusive or not: an end went away. */
void aiopipe_wake_all(struct aiopipe_chan *chan, __poll_t key)
{
	if (key & EPOLLERR)
		wake_up_all(&chan->fsync_wq);	/* readers gone: EPIPE */
	if (wq_has_sleeper(&chan->wq))
		__wake_up(&chan->wq, TASK_INTERRUPTIBLE, 0, poll_to_key(key));
	if (key & EPOLLIN)
		kill_fasync(&chan->fasync_readers, SIGIO, POLL_IN);
	if (key & EPOLLOUT)
		kill_fasync(&chan->fasync_writers, SIGIO, POLL_OUT);
}

/* ---- sync waiting ---------------------------------------------------------- */

/*
 * Sync sleepers filter by key like every other waiter, so that one wait
 * queue can serve both directions (and IOCB_CMD_POLL accepts the file).
 */
struct aiopipe_waiter {
	struct wait_queue_entry entry;
	__poll_t mask;
};

static int aiopipe_sync_wake(struct wait_queue_entry *entry, unsigned int mode,
			     int sync, void *key)
{
	struct aiopipe_waiter *w = container_of(entry, struct aiopipe_waiter,
						entry);
	__poll_t mask = key_to_poll(key);

	if (mask && !(mask & w->mask))
		return 0;
	return autoremove_wake_function(entry, mode, sync, key);
}

/* Sleep, mutex dropped, until @ready; -ERESTARTSYS on a signal. */
int aiopipe_wait(struct aiopipe_chan *chan, __poll_t mask,
		 bool (*ready)(const struct aiopipe_chan *, size_t), size_t arg)
{
	struct aiopipe_waiter w = { .mask = mask };
	int ret = 0;

	init_wait(&w.entry);
	w.entry.func = aiopipe_sync_wake;
	/*
	 * Signals first: the caller found nothing to do before coming here,
	 * so a pending signal must win even over a readiness hint that the
	 * caller may again find nothing behind.
	 */
	for (;;) {
		prepare_to_wait_exclusive(&chan->wq, &w.entry,
					  TASK_INTERRUPTIBLE);
		if (signal_pending(current)) {
			ret = -ERESTARTSYS;
			break;
		}
		if (ready(chan, arg))
			break;
		schedule();
	}
	finish_wait(&chan->wq, &w.entry);
	return ret;
}
