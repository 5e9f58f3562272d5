// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe request core: queueing a libaio kiocb that cannot finish now,
 * the per-request state machine, cancel, and completion.  What differs
 * between engines is behind the request's ops (struct aiopipe_engine_ops);
 * the worker (worker.c) and the transfer (transfer.c) complete the core.
 *
 * States (all transitions under chan->wq.lock, see aiopipe.h):
 *
 *   NEW --publish--> QUEUED --wake/promote--> KICKED --worker--> BUSY
 *                      |  ^--------------- re-arm ----------------'  |
 *                      |  |                                          |
 *                      |  |   FAULTING <--- page not present --------+
 *                      |  |      '--fault_work: kick--> KICKED       |
 *                      +--peer claim--> BUSY --unclaim--> QUEUED      |
 *                      |                  '---------------------------+--> DONE
 *                      '--cancel / other end closed (also FAULTING)---'
 *
 * Whoever moves a request to DONE owns it: it is off the pending list and
 * that context (or the work item it queued) completes it.  A cancel that
 * finds the request NEW, KICKED or BUSY only sets ->cancelled; the current
 * owner then finishes it, moving nothing more, instead of parking it again.
 * Once a request is back in QUEUED (or handed to a list or a work item),
 * the context that put it there never touches it again: a cancel may
 * complete and free it at once.  Only a QUEUED request is armed (its wait
 * entry on the channel's queue): whoever takes it out of QUEUED (a kick, a
 * peer's claim) takes the entry off the queue in the same locked section,
 * and whoever puts a head back re-arms it, so a wakeup never kicks a
 * request that has another owner.
 *
 * Requests are served in FIFO order per direction: a new read (sync or
 * async) takes bytes only when no read is pending, and likewise for writes,
 * so a submitter's stream is never reordered and no request starves.
 */
#include "aiopipe.h"
#include "aiopipe_trace.h"
#include "fault.h"
#include "pause.h"

#include <linux/aio.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

static inline struct list_head *aiopipe_pending(struct aiopipe_chan *chan,
						bool write)
{
	return write ? &chan->wr_pending : &chan->rd_pending;
}

/*
 * The engine a request queued now uses: the channel's, read once.  On the
 * direct engine a small read from a user buffer is not pinned: a writer in
 * the submitter's address space fills it in place (aiopipe_small_ops).
 */
static inline const struct aiopipe_engine_ops *
aiopipe_req_engine_ops(const struct aiopipe_chan *chan,
		       const struct iov_iter *iter, bool write)
{
	if (READ_ONCE(chan->engine) != AIOPIPE_ENGINE_DIRECT)
		return &aiopipe_retry_ops;
	if (!write && current->mm && user_backed_iter(iter) &&
	    iov_iter_count(iter) <= READ_ONCE(aiopipe_small_read_max))
		return &aiopipe_small_ops;
	return &aiopipe_direct_ops;
}

/* Some peer may serve @req now (a lockless hint's answer). */
static inline bool aiopipe_peer_can_claim(const struct aiopipe_req *req)
{
	return req && req->ops->peer_claimable && req->state == RQ_QUEUED;
}

/* This context, as a peer, can reach @req's memory. */
static inline bool aiopipe_peer_reaches(const struct aiopipe_req *req)
{
	return !req->ops->peer_same_mm ||
	       (req->mm && req->mm == current->mm);
}

/*
 * Keep the lockless hints "a peer can serve the first in line" in step
 * with the lists and states: sleepers test them without locks, so they
 * must never promise work a peer cannot do (it would spin).
 */
void aiopipe_heads_changed_locked(struct aiopipe_chan *chan)
{
	lockdep_assert_held(&chan->wq.lock);
	WRITE_ONCE(chan->rd_head_direct,
		   aiopipe_peer_can_claim(aiopipe_head(&chan->rd_pending)));
	WRITE_ONCE(chan->wr_head_direct,
		   aiopipe_peer_can_claim(aiopipe_head(&chan->wr_pending)));
}

static inline bool aiopipe_req_ready(const struct aiopipe_chan *chan,
				     const struct aiopipe_req *req)
{
	if (req->write)
		return aiopipe_write_ready(chan, iov_iter_count(&req->iter));
	return aiopipe_read_ready(chan);
}

/*
 * The head of a pending list is the only request that may move bytes: arm
 * it (retry) and kick it at once if it can already make progress.  The
 * readiness test is exact only under chan->mutex, so both locks are held;
 * the cancel callback, which cannot take the mutex, leaves the promotion
 * to the channel's promote_work, queued by the work item that finishes the
 * cancelled request.
 */
static void aiopipe_promote_locked(struct aiopipe_chan *chan,
				   struct list_head *list)
{
	struct aiopipe_req *head = aiopipe_head(list);

	lockdep_assert_held(&chan->mutex);
	lockdep_assert_held(&chan->wq.lock);
	if (!head || head->state != RQ_QUEUED)
		return;
	if (head->ops->park_armed)
		aiopipe_arm_locked(head);
	if (aiopipe_req_ready(chan, head))
		aiopipe_kick_locked(head, KICK_PROMOTE);
}

/*
 * Take @req off its list as DONE with result @res.  With @done the caller
 * (mutex held) completes it after dropping its locks and the next in line
 * is promoted now; without (the cancel callback: atomic context, no mutex)
 * the request's work item completes it and then promotes the next in line
 * under the mutex.  When the list empties, every sync waiter of that
 * direction is woken once the request is finished (they wait for "nobody
 * ahead of me", and at EOF or EPIPE all of them must see it).
 */
static void __aiopipe_req_take_locked(struct aiopipe_req *req, long res,
				      struct list_head *done, bool promote)
{
	struct aiopipe_chan *chan = req->chan;
	struct list_head *list = aiopipe_pending(chan, req->write);
	bool was_head = aiopipe_head(list) == req;

	lockdep_assert_held(&chan->wq.lock);
	list_del_init(&req->wait.entry);
	list_del_init(&req->node);
	aiopipe_heads_changed_locked(chan);
	req->state = RQ_DONE;
	req->res = res;
	req->wake_behind = list_empty(list);
	if (done) {
		list_add_tail(&req->node, done);
		if (was_head && promote)
			aiopipe_promote_locked(chan, list);
	} else {
		req->promote_next = was_head && promote;
		queue_work(aiopipe_wq, &req->work);
	}
}

void aiopipe_req_take_locked(struct aiopipe_req *req, long res,
			     struct list_head *done)
{
	__aiopipe_req_take_locked(req, res, done, true);
}

/*
 * Take @req as the cancel callback does, without the mutex: its work item
 * completes it and has the next in line promoted.  wq.lock held.
 */
void aiopipe_req_take_cancelled(struct aiopipe_req *req, long res)
{
	__aiopipe_req_take_locked(req, res, NULL, true);
}

static inline long aiopipe_cancel_res(const struct aiopipe_req *req)
{
	return req->done ? req->done : -ECANCELED;
}

/*
 * Claim the head of @list for a peer copy: only an idle request whose
 * engine lets peers serve it.  The claimed request stays first in line
 * (BUSY) while the caller copies, so nobody can overtake it.
 */
struct aiopipe_req *aiopipe_claim_by_peer(struct aiopipe_chan *chan,
					  struct list_head *list)
{
	struct aiopipe_req *req;

	lockdep_assert_held(&chan->mutex);
	spin_lock_irq(&chan->wq.lock);
	req = aiopipe_head(list);
	if (aiopipe_peer_can_claim(req) && aiopipe_peer_reaches(req)) {
		/* a small read is armed: no wakeup may kick it while ours */
		list_del_init(&req->wait.entry);
		req->state = RQ_BUSY;
	} else {
		req = NULL;
	}
	spin_unlock_irq(&chan->wq.lock);
	return req;
}

/*
 * End a claim: complete the request with @res, or put it back in line;
 * true if it went back (then the caller must not touch it again).  Mutex
 * held: completing promotes the next in line.
 */
bool aiopipe_unclaim(struct aiopipe_req *req, bool finished, long res,
		     struct list_head *done)
{
	struct aiopipe_chan *chan = req->chan;

	lockdep_assert_held(&chan->mutex);
	spin_lock_irq(&chan->wq.lock);
	if (!finished && req->cancelled) {
		finished = true;
		res = aiopipe_cancel_res(req);
	}
	if (finished) {
		aiopipe_req_take_locked(req, res, done);
	} else {
		req->state = RQ_QUEUED;
		/*
		 * Still first in line (a claim is only of the head, and BUSY
		 * keeps it there); a small read, the one kind armed, has
		 * nothing to take yet (a peer fills it only while the ring is
		 * empty): armed again, as a worker parks it, and the peer's
		 * ring write then wakes it.
		 */
		if (req->ops->park_armed)
			aiopipe_arm_locked(req);
	}
	aiopipe_heads_changed_locked(chan);
	spin_unlock_irq(&chan->wq.lock);
	if (finished)
		aiopipe_stat_inc(chan, AP_COMPLETED_BY_PEER);
	return !finished;
}

/*
 * kiocb cancel callback.  Called by io_cancel() and on exit/io_destroy with
 * the AIO context lock held and IRQs off (on !PREEMPT_RT), possibly from
 * softirq (on PREEMPT_RT a kthread): it must not complete the kiocb itself
 * (ki_complete takes that same lock), nor sleep.
 * It always returns 0: fs/aio.c delists the kiocb whatever we answer.
 */
static int aiopipe_cancel(struct kiocb *iocb)
{
	struct aiopipe_req *req = iocb->private;
	struct aiopipe_chan *chan = req->chan;
	unsigned long flags;

	spin_lock_irqsave(&chan->wq.lock, flags);
	trace_aiopipe_cancel(req);
	switch (req->state) {
	case RQ_QUEUED:
	case RQ_FAULTING:
		aiopipe_stat_inc(chan, AP_CANCELS);
		aiopipe_req_take_cancelled(req, aiopipe_cancel_res(req));
		break;
	case RQ_NEW:
	case RQ_KICKED:
	case RQ_BUSY:
		aiopipe_stat_inc(chan, AP_CANCELS);
		req->cancelled = true;
		break;
	case RQ_DONE:
		break;
	}
	spin_unlock_irqrestore(&chan->wq.lock, flags);
	return 0;
}

/*
 * Request memory.  A channel keeps the memory of its last freed request
 * for the next one (chan->spare_req): its requests mostly come and go one
 * at a time, and reuse skips the allocator, its memory-cgroup charge and
 * its zeroing (init_on_alloc zeroes the whole kmalloc-512 object), about
 * a sixth of a small request's instructions.  aiopipe_queue() sets every
 * field.  The spare stays charged to whoever first allocated it, one per
 * channel, and goes with the channel.  Debug kernels keep nothing: a use
 * after free must still meet freed memory (KASAN), and an active work
 * item or list entry in freed memory must still be reported (debugobjects).
 */
static inline bool aiopipe_keep_spare(void)
{
	return !IS_ENABLED(CONFIG_KASAN) &&
	       !IS_ENABLED(CONFIG_DEBUG_OBJECTS_FREE) &&
	       !IS_ENABLED(CONFIG_DEBUG_OBJECTS_WORK);
}

static struct aiopipe_req *aiopipe_req_alloc(struct aiopipe_chan *chan)
{
	struct aiopipe_req *req = NULL;

	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC))
		return NULL;
	if (READ_ONCE(chan->spare_req))
		req = xchg(&chan->spare_req, NULL);
	return req ?: kmalloc(sizeof(*req), GFP_KERNEL_ACCOUNT);
}

/* @req is unreachable: keep it as the channel's spare, or free it. */
static void aiopipe_req_recycle(struct aiopipe_chan *chan,
				struct aiopipe_req *req)
{
	if (!aiopipe_keep_spare() || cmpxchg(&chan->spare_req, NULL, req))
		kfree(req);
}

/*
 * Queue @iocb: called with the mutex held at the point where a blocking
 * call would sleep.  @done_already bytes of a write have been moved.
 * Returns -EIOCBQUEUED, or a result to complete with now.
 */
ssize_t aiopipe_queue(struct aiopipe_chan *chan, struct kiocb *iocb,
		      struct iov_iter *iter, bool write, size_t done_already,
		      struct list_head *done)
{
	struct aiopipe_req *req;
	bool atomic;
	int ret;

	lockdep_assert_held(&chan->mutex);
	req = aiopipe_req_alloc(chan);
	if (!req)
		return done_already ?: -ENOMEM;
	atomic = write && done_already + iov_iter_count(iter) <= PIPE_BUF;
	/* every field: a reused request keeps nothing of its last use */
	*req = (struct aiopipe_req) {
		.ref = KREF_INIT(1),
		.iocb = iocb,
		.chan = chan,
		.id = ++chan->last_req,
		.write = write,
		.atomic = atomic,
		.done = done_already,
	};
	INIT_LIST_HEAD(&req->node);
	aiopipe_req_init(req);
	req->ops = aiopipe_req_engine_ops(chan, iter, write);
	ret = req->ops->prepare(req, iter);
	if (ret && req->ops->prepare != aiopipe_retry_ops.prepare) {
		req->ops = &aiopipe_retry_ops;
		ret = req->ops->prepare(req, iter);
	}
	if (ret) {
		aiopipe_req_recycle(chan, req);
		return done_already ?: ret;
	}
	kref_get(&chan->ref);
	aiopipe_stat_inc(chan, AP_QUEUED);
	aiopipe_stat_inc(chan, write ? AP_PENDING_WRITES : AP_PENDING_READS);
	iocb->private = req;
	trace_aiopipe_queue(req, iov_iter_count(iter));
	kiocb_set_cancel_fn(iocb, aiopipe_cancel);
	aiopipe_pause(AIOPIPE_PAUSE_QUEUE_PREPARED, chan->id);

	spin_lock_irq(&chan->wq.lock);
	if (req->cancelled) {
		req->state = RQ_DONE;
		req->res = aiopipe_cancel_res(req);
		list_add_tail(&req->node, done);
	} else {
		req->state = RQ_QUEUED;
		list_add_tail(&req->node, aiopipe_pending(chan, write));
		aiopipe_heads_changed_locked(chan);
		aiopipe_promote_locked(chan, aiopipe_pending(chan, write));
	}
	spin_unlock_irq(&chan->wq.lock);
	return -EIOCBQUEUED;
}

/*
 * The last reader or writer went away: every idle request of the other
 * direction completes now (EOF for reads; EPIPE, or the bytes already in,
 * for writes).  KICKED requests are finished by their worker, which sees
 * the same condition.  While the ring still holds bytes, reads are not
 * failed: the head is kicked to take them, and each completion promotes
 * the next, until one finds the ring empty and completes with EOF.
 * Mutex held.
 */
void aiopipe_fail_pending(struct aiopipe_chan *chan, bool writes,
			  struct list_head *done)
{
	struct list_head *list = aiopipe_pending(chan, writes);
	struct aiopipe_req *req, *next;

	lockdep_assert_held(&chan->mutex);
	spin_lock_irq(&chan->wq.lock);
	if (!writes && chan->len) {
		aiopipe_promote_locked(chan, list);
		spin_unlock_irq(&chan->wq.lock);
		return;
	}
	list_for_each_entry_safe(req, next, list, node) {
		if (req->state != RQ_QUEUED && req->state != RQ_FAULTING)
			continue;
		__aiopipe_req_take_locked(req, req->done ?: (writes ? -EPIPE : 0),
					  done, false);
	}
	aiopipe_promote_locked(chan, list);
	spin_unlock_irq(&chan->wq.lock);
}

static void aiopipe_count_result(struct aiopipe_req *req)
{
	if (!req->write && req->res == 0)
		aiopipe_stat_inc(req->chan, AP_EOF_COMPLETIONS);
	if (req->write && req->res == -EPIPE)
		aiopipe_stat_inc(req->chan, AP_EPIPE_COMPLETIONS);
}

/* Who waits behind an emptied queue: readers (or their EOF), or writers. */
static inline __poll_t aiopipe_behind_key(const struct aiopipe_chan *chan,
					  bool write)
{
	if (write)
		return AIOPIPE_WRITE_KEY;
	return READ_ONCE(chan->writers) ? AIOPIPE_READ_KEY : AIOPIPE_HUP_KEY;
}

/*
 * Complete and free a DONE request.  Process context, no spinlock held:
 * unpinning may sleep and ki_complete takes the AIO context lock.  Pages
 * are released before the completion is visible, so a reaped completion
 * never leaves pinned memory behind.
 */
static void aiopipe_req_free(struct kref *ref)
{
	struct aiopipe_req *req = container_of(ref, struct aiopipe_req, ref);
	struct aiopipe_chan *chan = req->chan;

	if (req->ops->release)
		req->ops->release(req);
	aiopipe_req_recycle(chan, req);
	aiopipe_chan_put(chan);
}

void aiopipe_req_put(struct aiopipe_req *req)
{
	kref_put(&req->ref, aiopipe_req_free);
}

static void aiopipe_req_finish(struct aiopipe_req *req)
{
	struct aiopipe_chan *chan = req->chan;

	if (req->ops->finish)
		req->ops->finish(req);
	aiopipe_count_result(req);
	aiopipe_stat_add(chan, req->write ? AP_PENDING_WRITES :
					    AP_PENDING_READS, -1);
	trace_aiopipe_complete(req);
	req->iocb->ki_complete(req->iocb, req->res);
	if (req->wake_behind)
		aiopipe_wake_all(chan, aiopipe_behind_key(chan, req->write));
	aiopipe_req_put(req);
}

/* Promote both heads under both locks. */
static void aiopipe_promote_heads(struct aiopipe_chan *chan)
{
	mutex_lock(&chan->mutex);
	spin_lock_irq(&chan->wq.lock);
	aiopipe_promote_locked(chan, &chan->rd_pending);
	aiopipe_promote_locked(chan, &chan->wr_pending);
	spin_unlock_irq(&chan->wq.lock);
	mutex_unlock(&chan->mutex);
}

/*
 * The channel's promote_work.  One per channel, so that however many
 * cancelled heads ask for it, at most one worker waits for the mutex.
 * Holds a channel reference while queued.
 */
static void aiopipe_promote_work(struct work_struct *work)
{
	struct aiopipe_chan *chan = container_of(work, struct aiopipe_chan,
						 promote_work);

	aiopipe_promote_heads(chan);
	aiopipe_chan_put(chan);
}

/* A new channel (channel.c) with its requests' promote_work set up. */
struct aiopipe_chan *aiopipe_chan_create(u32 capacity, u32 engine)
{
	struct aiopipe_chan *chan = aiopipe_chan_alloc(capacity, engine);

	if (!IS_ERR(chan))
		INIT_WORK(&chan->promote_work, aiopipe_promote_work);
	return chan;
}

/*
 * SET_CAPACITY: resize the ring (channel.c), then serve the first queued
 * write if the new room fits it: a write no wakeup kicks (one that peers
 * serve, not armed) would otherwise wait for the next reader.
 */
int aiopipe_set_capacity(struct aiopipe_chan *chan, u32 size)
{
	int ret = aiopipe_chan_set_capacity(chan, size);

	if (ret > 0) {
		mutex_lock(&chan->mutex);
		spin_lock_irq(&chan->wq.lock);
		aiopipe_promote_locked(chan, &chan->wr_pending);
		spin_unlock_irq(&chan->wq.lock);
		mutex_unlock(&chan->mutex);
	}
	return ret;
}

/*
 * Finish a request the cancel callback took, from its work item: complete
 * it at once, then have the channel do what the callback could not without
 * the mutex, promote the next in line.
 */
void aiopipe_req_finish_taken(struct aiopipe_req *req)
{
	struct aiopipe_chan *chan = req->chan;
	bool promote = req->promote_next;

	kref_get(&chan->ref);
	aiopipe_req_finish(req);
	if (promote && queue_work(aiopipe_wq, &chan->promote_work))
		return;		/* the work item drops our reference */
	aiopipe_chan_put(chan);
}

void aiopipe_finish_list(struct list_head *done)
{
	struct aiopipe_req *req, *next;

	list_for_each_entry_safe(req, next, done, node) {
		list_del_init(&req->node);
		aiopipe_req_finish(req);
	}
}

static const char *const aiopipe_state_names[] = {
	[RQ_NEW] = "new", [RQ_QUEUED] = "queued", [RQ_KICKED] = "kicked",
	[RQ_BUSY] = "busy", [RQ_FAULTING] = "faulting", [RQ_DONE] = "done",
};

/* fdinfo lists this many requests per direction, then counts the rest. */
#define AIOPIPE_FDINFO_REQS	16

/*
 * At most AIOPIPE_FDINFO_REQS lines, then how many more are pending (from
 * the counter, not a walk: the list is walked with IRQs off).
 */
static void aiopipe_show_pending(struct seq_file *m, struct aiopipe_chan *chan,
				 bool write)
{
	struct list_head *list = aiopipe_pending(chan, write);
	const char *dir = write ? "write" : "read";
	unsigned int n = 0;
	struct aiopipe_req *req;
	s64 pending;

	list_for_each_entry(req, list, node) {
		if (n++ == AIOPIPE_FDINFO_REQS) {
			pending = atomic64_read(&chan->stats.shared[write ?
					AP_PENDING_WRITES : AP_PENDING_READS]);
			seq_printf(m, "%s:\t%lld more\n", dir,
				   max_t(s64, pending - AIOPIPE_FDINFO_REQS, 1));
			break;
		}
		seq_printf(m, "%s:\t%llu %s %s done %zu left %zu%s%s%s\n",
			   req->write ? "write" : "read", req->id,
			   aiopipe_state_names[req->state],
			   req->ops->name, req->done,
			   iov_iter_count(&req->iter),
			   req->cancelled ? " cancelled" : "",
			   list_empty(&req->wait.entry) ? "" : " armed",
			   work_pending(&req->work) ? " work-pending" : "");
	}
}

/*
 * /proc/PID/fdinfo/FD: the channel and its first pending requests, in
 * queue order (a debugging aid, like io_uring's).  The ring fields are read
 * without the mutex: a snapshot, not a consistent state.
 */
void aiopipe_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct aiopipe_chan *chan = file->private_data;

	seq_printf(m, "channel:\t%llu\n", chan->id);
	seq_printf(m, "capacity:\t%u\nbytes:\t%u\nreaders:\t%u\nwriters:\t%u\n",
		   READ_ONCE(chan->cap), READ_ONCE(chan->len),
		   READ_ONCE(chan->readers), READ_ONCE(chan->writers));
	seq_printf(m, "engine:\t%s\nfilter:\t%u\n",
		   READ_ONCE(chan->engine) == AIOPIPE_ENGINE_DIRECT ?
		   "direct" : "retry", READ_ONCE(chan->filter));
	spin_lock_irq(&chan->wq.lock);
	aiopipe_show_pending(m, chan, false);
	aiopipe_show_pending(m, chan, true);
	spin_unlock_irq(&chan->wq.lock);
}
