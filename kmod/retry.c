// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe retry engine: the "kiocb retry" model of Bhattacharya et al.,
 * OLS 2004.  A pending request that is first in line sits on the channel's
 * single wait queue with its own wake function.  The wake function filters
 * by poll key (a read cares only for EPOLLIN-class keys, a write for
 * EPOLLOUT-class ones), takes itself off the queue and kicks a work item;
 * the worker adopts the submitter's mm, moves what it can of the remaining
 * part, and completes the request or re-arms it.  A work item never runs
 * concurrently with itself, so no retry of one request runs twice at once.
 *
 * With filtering off (module parameter or AIOPIPE_IOC_SET_FILTER) every
 * wakeup on the queue kicks a retry: the retry storm of the paper's Table 1,
 * visible as futile_retries.
 */
#include "aiopipe.h"
#include "aiopipe_trace.h"
#include "fault.h"
#include "pause.h"

#include <linux/kthread.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

static inline __poll_t aiopipe_req_wants(const struct aiopipe_req *req)
{
	return req->write ? AIOPIPE_ERR_KEY : AIOPIPE_HUP_KEY;
}

/*
 * Wake callback: runs under chan->wq.lock, IRQs off, from any context.
 * Filter, unlink self, kick the work item; touch nothing else (the shape of
 * io_async_buf_func() and wake_page_function()).  A NULL key matches.
 */
static int aiopipe_retry_wake(struct wait_queue_entry *wait, unsigned int mode,
			      int sync, void *key)
{
	struct aiopipe_req *req = container_of(wait, struct aiopipe_req, wait);
	__poll_t mask = key_to_poll(key);

	if (mask && READ_ONCE(req->chan->filter) &&
	    !(mask & aiopipe_req_wants(req))) {
		trace_aiopipe_wake(req, mask, true);
		aiopipe_stat_inc(req->chan, AP_WAKEUPS_FILTERED);
		return 0;
	}
	trace_aiopipe_wake(req, mask, false);
	aiopipe_stat_inc(req->chan, AP_WAKEUPS_DELIVERED);
	aiopipe_kick_locked(req, KICK_WAKE);
	return 1;
}

/*
 * Put an idle first-in-line request on the wait queue (idempotent).  It is
 * a non-exclusive waiter, so it goes in at the head, before every exclusive
 * sync sleeper: a wake-one walk stops at the first exclusive waiter it
 * wakes, and an entry queued behind one would miss the wakeup for good.
 */
void aiopipe_arm_locked(struct aiopipe_req *req)
{
	lockdep_assert_held(&req->chan->wq.lock);
	if (list_empty(&req->wait.entry))
		__add_wait_queue(&req->chan->wq, &req->wait);
}

void aiopipe_kick_locked(struct aiopipe_req *req, enum aiopipe_kick why)
{
	lockdep_assert_held(&req->chan->wq.lock);
	list_del_init(&req->wait.entry);
	req->state = RQ_KICKED;
	req->kick = why;
	aiopipe_heads_changed_locked(req->chan);
	queue_work(aiopipe_wq, &req->work);
}

/* Remember the user buffer and the address space to copy it in later. */
int aiopipe_retry_prepare(struct aiopipe_req *req, struct iov_iter *iter)
{
	const void *dup;

	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC))
		return -ENOMEM;
	dup = dup_iter(&req->iter, iter, GFP_KERNEL_ACCOUNT);
	if (!dup && !iter_is_ubuf(iter))
		return -ENOMEM;
	req->dup = dup;
	req->mm = current->mm;
	mmgrab(req->mm);
	return 0;
}

void aiopipe_retry_release(struct aiopipe_req *req)
{
	kfree(req->dup);
	if (req->mm)
		mmdrop(req->mm);
}

/* One retry step, mutex held: returns true when the request is finished. */
static bool aiopipe_retry_move(struct aiopipe_chan *chan,
			       struct aiopipe_req *req, struct list_head *done,
			       __poll_t *key)
{
	size_t left = iov_iter_count(&req->iter);
	bool fault = false;
	size_t moved = 0;

	if (req->write) {
		u32 len_before = chan->len;

		if (chan->readers && aiopipe_write_ready(chan, left))
			moved = aiopipe_move_in(chan, &req->iter, left, done,
						&fault);
		if (chan->len > len_before)
			*key |= AIOPIPE_READ_KEY;
		req->done += moved;
		req->res = req->done ?: (fault ? -EFAULT : -EPIPE);
		return fault || !chan->readers || moved == left;
	}
	moved = aiopipe_move_out(chan, &req->iter, done, &fault);
	if (moved)
		*key |= aiopipe_read_wakes(chan, chan->cap - chan->len - moved,
					   true);
	req->done += moved;
	req->res = moved ?: (fault ? -EFAULT : 0);
	return moved || fault || !chan->writers;
}

/* Publish the outcome of a retry: complete, or park again first in line. */
static void aiopipe_retry_publish(struct aiopipe_chan *chan,
				  struct aiopipe_req *req, bool finished,
				  struct list_head *done)
{
	spin_lock_irq(&chan->wq.lock);
	if (!finished && req->cancelled) {
		finished = true;
		req->res = req->done ?: -ECANCELED;
	}
	if (finished) {
		aiopipe_req_take_locked(req, req->res, done);
	} else {
		req->state = RQ_QUEUED;
		if (!req->direct)
			aiopipe_arm_locked(req);
		aiopipe_heads_changed_locked(chan);
	}
	spin_unlock_irq(&chan->wq.lock);
}

/* Claim a KICKED request for this worker; false if it is already DONE. */
static bool aiopipe_retry_claim(struct aiopipe_chan *chan,
				struct aiopipe_req *req)
{
	bool ok;

	spin_lock_irq(&chan->wq.lock);
	ok = req->state == RQ_KICKED;
	if (ok)
		req->state = RQ_BUSY;
	spin_unlock_irq(&chan->wq.lock);
	return ok;
}

/*
 * The retry proper, in a kworker: adopt the submitter's mm (a pinned-page
 * request needs none), move, publish.  After publishing, @req may belong
 * to someone else: only locals are used from then on, and our own channel
 * reference keeps @chan alive.  The mm is released with mmput_async(): a
 * synchronous mmput() here could be the last one and run exit_aio(), which
 * would wait for this very request.
 */
static void aiopipe_retry_run(struct aiopipe_req *req)
{
	struct aiopipe_chan *chan = req->chan;
	struct mm_struct *mm = req->direct ? NULL : req->mm;
	bool finished, futile;
	__poll_t key = 0;
	LIST_HEAD(done);

	if (mm && !mmget_not_zero(mm)) {
		/* The submitter is exiting; exit_aio() is cancelling us. */
		mutex_lock(&chan->mutex);
		spin_lock_irq(&chan->wq.lock);
		aiopipe_req_take_locked(req, req->done ?: -EINTR, &done);
		spin_unlock_irq(&chan->wq.lock);
		mutex_unlock(&chan->mutex);
		aiopipe_finish_list(&done);
		return;
	}
	kref_get(&chan->ref);
	if (mm)
		kthread_use_mm(mm);
	aiopipe_pause(AIOPIPE_PAUSE_RETRY_START, chan->id);
	mutex_lock(&chan->mutex);
	if (aiopipe_retry_claim(chan, req)) {
		size_t before = req->done;

		aiopipe_pause(AIOPIPE_PAUSE_RETRY_CLAIMED, chan->id);
		finished = aiopipe_retry_move(chan, req, &done, &key);
		futile = req->done == before && !finished &&
			 req->kick == KICK_WAKE;
		/* traced first: whoever sees the counter finds the event */
		trace_aiopipe_retry(req, req->done - before, finished, futile);
		aiopipe_stat_inc(chan, AP_RETRIES);
		if (futile)
			aiopipe_stat_inc(chan, AP_FUTILE_RETRIES);
		if (finished)
			aiopipe_stat_inc(chan, AP_COMPLETED_BY_RETRY);
		aiopipe_retry_publish(chan, req, finished, &done);
	}
	mutex_unlock(&chan->mutex);
	if (mm) {
		kthread_unuse_mm(mm);
		mmput_async(mm);
	}
	if (key)
		aiopipe_wake(chan, key);
	aiopipe_finish_list(&done);
	aiopipe_chan_put(chan);
}

static void aiopipe_req_work(struct work_struct *work)
{
	struct aiopipe_req *req = container_of(work, struct aiopipe_req, work);
	struct aiopipe_chan *chan = req->chan;
	bool dead;

	spin_lock_irq(&chan->wq.lock);
	dead = req->state == RQ_DONE;
	spin_unlock_irq(&chan->wq.lock);
	if (dead)
		aiopipe_req_finish(req);
	else
		aiopipe_retry_run(req);
}

void aiopipe_retry_init(struct aiopipe_req *req)
{
	init_waitqueue_func_entry(&req->wait, aiopipe_retry_wake);
	INIT_LIST_HEAD(&req->wait.entry);
	INIT_WORK(&req->work, aiopipe_req_work);
}
