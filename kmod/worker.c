// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe request core, the worker: a request parked first in line sits on
 * the channel's single wait queue with its own wake function (if its engine
 * parks armed), which filters by poll key (a read cares only for
 * EPOLLIN-class keys, a write for EPOLLOUT-class ones), takes itself off
 * the queue and kicks the request's work item.  The worker enters the
 * engine's context (the retry engine adopts the submitter's mm and
 * credentials), claims the request under the mutex, moves what it can
 * (transfer.c), publishes (complete, park again, or fault the memory a
 * copy stopped at in, with no lock held), and only then leaves: leave()
 * works from what enter() kept, never from the request, which may be
 * gone once published.  A work item never runs concurrently with
 * itself, so no retry of one request runs twice at once.
 *
 * With filtering off (module parameter or AIOPIPE_IOC_SET_FILTER) every
 * wakeup on the queue kicks a retry: the retry storm of the paper's Table 1,
 * visible as futile_retries.
 */
#include "aiopipe.h"
#include "aiopipe_trace.h"
#include "pause.h"

#include <linux/log2.h>
#include <linux/module.h>
#include <linux/sched.h>

/* The longest pause between two fault-ins that did not help (transfer.c). */
#define AIOPIPE_FAULT_BACKOFF_MAX_MS	128

static inline __poll_t aiopipe_req_wants(const struct aiopipe_req *req)
{
	return req->write ? AIOPIPE_WRITER_MASK : AIOPIPE_READER_MASK;
}

/*
 * Wake callback: runs under chan->wq.lock, IRQs off, from any context.
 * Filter, unlink self, kick the work item; touch nothing else (the shape of
 * io_async_buf_func() and wake_page_function()).  A NULL key matches.
 */
static int aiopipe_req_wake(struct wait_queue_entry *wait, unsigned int mode,
			    int sync, void *key)
{
	struct aiopipe_req *req = container_of(wait, struct aiopipe_req, wait);
	__poll_t mask = key_to_poll(key);

	/*
	 * Only a QUEUED request is armed (request.c): nothing else to kick.
	 * Unlinked, a stray entry is never visited again, even once freed.
	 */
	if (WARN_ON_ONCE(req->state != RQ_QUEUED)) {
		list_del_init(&wait->entry);
		return 0;
	}
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

/*
 * Hand a request whose copy stopped at a missing page to fault_work, which
 * faults the range in with no lock held (the shape of generic_perform_write:
 * copy with faults disabled under the lock, fault in outside it).  A cancel
 * may complete the request meanwhile; fault_work's reference keeps the
 * memory, and its module reference makes rmmod refuse (in use) rather than
 * wait in destroy_workqueue() for a fault that may never end.  A user has
 * a bounded number of fault-ins running (limits.c); the rest wait in its
 * line.  wq.lock held.  -ENOMEM leaves the request as it was.
 */
static int aiopipe_fault_in_locked(struct aiopipe_req *req)
{
	lockdep_assert_held(&req->chan->wq.lock);
	kref_get(&req->ref);
	__module_get(THIS_MODULE);
	if (aiopipe_fault_queue(req->cred->uid, aiopipe_fault_wq,
				&req->fault_work, &req->fault_wait)) {
		module_put(THIS_MODULE);
		aiopipe_req_put(req);	/* never the last: the completion's */
		return -ENOMEM;
	}
	req->state = RQ_FAULTING;
	aiopipe_heads_changed_locked(req->chan);
	return 0;
}

static struct work_struct *aiopipe_fault_entry_work(struct list_head *entry)
{
	return &container_of(entry, struct aiopipe_req, fault_wait)->fault_work;
}

/* Whether fault_work still has a request to fault in for: not completed. */
static bool aiopipe_fault_wanted(struct aiopipe_req *req)
{
	bool wanted;

	spin_lock_irq(&req->chan->wq.lock);
	wanted = req->state == RQ_FAULTING;
	spin_unlock_irq(&req->chan->wq.lock);
	return wanted;
}

/*
 * Before the fault-in that repeats one after which the copy stopped at the
 * same place: 1, 2, 4 ... AIOPIPE_FAULT_BACKOFF_MAX_MS milliseconds (at
 * least a jiffy each), so that whatever makes the memory usable (the
 * closer of a userfaultfd walking its ranges under the mmap lock) gets
 * there first.  The sleep holds no lock, but it does hold a place in the
 * user's fault-in line (limits.c), a module reference and the request.
 * fault_repeats is stable here: the request is FAULTING, published under
 * wq.lock before aiopipe_fault_wanted() took it, and nobody claims it
 * until this work kicks it.
 */
static void aiopipe_fault_pause(struct aiopipe_req *req)
{
	unsigned int repeats = req->fault_repeats;

	if (repeats)
		schedule_timeout_idle(msecs_to_jiffies(1U <<
			min_t(unsigned int, repeats - 1,
			      ilog2(AIOPIPE_FAULT_BACKOFF_MAX_MS))));
}

/*
 * Fault the memory a copy stopped at in through the engine (the retry
 * engine: as the submitter), after a pause if it stopped there before,
 * holding no lock another context waits for: if the fault never ends (a
 * userfaultfd nobody serves, a FUSE daemon that hangs), only this request
 * (and, as in a pipe, those in line behind it) waits; io_cancel() still
 * completes it, and the submitter still dies of SIGKILL, though its
 * address space, and so its AIO context, stay until the fault ends.  Then
 * retry, unless the request was completed meanwhile.
 */
static void aiopipe_fault_work(struct work_struct *work)
{
	struct aiopipe_req *req = container_of(work, struct aiopipe_req,
					       fault_work);
	struct aiopipe_chan *chan = req->chan;
	size_t len = req->fault_len, left = len;
	kuid_t uid = req->cred->uid;

	/* one completed while it waited (in its user's line, or here) is left */
	if (aiopipe_fault_wanted(req)) {
		aiopipe_fault_pause(req);
		if (aiopipe_fault_wanted(req))
			left = req->ops->fault_in(req, req->fault_addr, len);
	}
	spin_lock_irq(&chan->wq.lock);
	if (req->state == RQ_FAULTING) {
		req->fault_failed = left == len;
		aiopipe_kick_locked(req, KICK_FAULT);
	}
	spin_unlock_irq(&chan->wq.lock);
	aiopipe_fault_done(uid, aiopipe_fault_wq, aiopipe_fault_entry_work);
	aiopipe_req_put(req);
	module_put(THIS_MODULE);
}

/*
 * Claim a KICKED request for this worker; false if it is already DONE.
 * A request cancelled while KICKED is finished here without moving a byte:
 * once a cancel has taken effect, nothing more enters or leaves the pipe
 * on its behalf (io_destroy and exit discard the completion).
 */
static bool aiopipe_worker_claim(struct aiopipe_chan *chan,
				 struct aiopipe_req *req,
				 struct list_head *done)
{
	bool ok;

	spin_lock_irq(&chan->wq.lock);
	ok = req->state == RQ_KICKED;
	if (ok && req->cancelled) {
		aiopipe_req_take_locked(req, req->done ?: -ECANCELED, done);
		ok = false;
	} else if (ok) {
		req->state = RQ_BUSY;
	}
	spin_unlock_irq(&chan->wq.lock);
	return ok;
}

/*
 * Publish the outcome of a retry: complete, park again first in line, or
 * hand the request to fault_work.  A cancel seen here finishes it.
 */
static void aiopipe_worker_publish(struct aiopipe_chan *chan,
				   struct aiopipe_req *req,
				   enum aiopipe_step step,
				   struct list_head *done)
{
	spin_lock_irq(&chan->wq.lock);
	if (step != STEP_DONE && req->cancelled) {
		step = STEP_DONE;
		req->res = req->done ?: -ECANCELED;
	}
	switch (step) {
	case STEP_DONE:
		aiopipe_req_take_locked(req, req->res, done);
		break;
	case STEP_FAULT:
		if (!aiopipe_fault_in_locked(req))
			break;
		aiopipe_req_take_locked(req, req->done ?: -ENOMEM, done);
		break;
	case STEP_PARK:
		req->state = RQ_QUEUED;
		if (req->ops->park_armed)
			aiopipe_arm_locked(req);
		aiopipe_heads_changed_locked(chan);
		break;
	}
	spin_unlock_irq(&chan->wq.lock);
}

/* One claimed step under the mutex, with the counters and the trace. */
static void aiopipe_worker_step(struct aiopipe_chan *chan,
				struct aiopipe_req *req, struct list_head *done,
				__poll_t *key)
{
	size_t before = req->done;
	enum aiopipe_step step;
	bool futile;

	aiopipe_pause(AIOPIPE_PAUSE_RETRY_CLAIMED, chan->id);
	step = aiopipe_req_move(chan, req, done, key);
	/* a wakeup that found nothing, or a fault-in that did not help */
	futile = req->done == before &&
		 ((req->kick == KICK_WAKE && step == STEP_PARK) ||
		  (req->kick == KICK_FAULT && step != STEP_DONE));
	/* traced first: whoever sees the counter finds the event */
	trace_aiopipe_retry(req, req->done - before, step == STEP_DONE,
			    futile);
	aiopipe_stat_inc(chan, AP_RETRIES);
	if (futile)
		aiopipe_stat_inc(chan, AP_FUTILE_RETRIES);
	if (step == STEP_DONE)
		aiopipe_stat_inc(chan, AP_COMPLETED_BY_RETRY);
	aiopipe_worker_publish(chan, req, step, done);
}

/*
 * A KICKED request that has been cancelled, or whose submitter is exiting
 * (exit_aio() is cancelling it: @gone), ends here without the mutex, which
 * a reader faulting on its own memory may hold for long: taken as the
 * cancel callback takes a request, completed by its work item (this one,
 * queued again), the next in line promoted by the channel's promote_work.
 */
static bool aiopipe_worker_end_early(struct aiopipe_chan *chan,
				     struct aiopipe_req *req, bool gone)
{
	bool ended = false;

	spin_lock_irq(&chan->wq.lock);
	if (req->state == RQ_KICKED && (gone || req->cancelled)) {
		aiopipe_req_take_cancelled(req, req->done ?:
					   (gone ? -EINTR : -ECANCELED));
		ended = true;
	}
	spin_unlock_irq(&chan->wq.lock);
	return ended;
}

/*
 * One retry, in a kworker: enter the engine's context, claim, move,
 * publish, leave.  After publishing, @req may belong to someone else: only
 * locals are used from then on (leave() works from @at alone), and our own
 * channel reference keeps @chan alive.
 */
static void aiopipe_worker_run(struct aiopipe_req *req)
{
	const struct aiopipe_engine_ops *ops = req->ops;
	struct aiopipe_chan *chan = req->chan;
	struct aiopipe_adopt at = {};
	__poll_t key = 0;
	LIST_HEAD(done);
	int err = ops->enter ? ops->enter(req, &at) : 0;
	bool gone = err == -ESRCH;

	WARN_ON_ONCE(err && !gone);
	if (aiopipe_worker_end_early(chan, req, gone) || gone) {
		if (!gone && ops->leave)
			ops->leave(&at);
		return;
	}
	kref_get(&chan->ref);
	aiopipe_pause(AIOPIPE_PAUSE_RETRY_START, chan->id);
	mutex_lock(&chan->mutex);
	if (aiopipe_worker_claim(chan, req, &done))
		aiopipe_worker_step(chan, req, &done, &key);
	mutex_unlock(&chan->mutex);
	if (ops->leave)
		ops->leave(&at);
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
		aiopipe_req_finish_taken(req);
	else
		aiopipe_worker_run(req);
}

void aiopipe_req_init(struct aiopipe_req *req)
{
	init_waitqueue_func_entry(&req->wait, aiopipe_req_wake);
	INIT_LIST_HEAD(&req->wait.entry);
	INIT_WORK(&req->work, aiopipe_req_work);
	INIT_WORK(&req->fault_work, aiopipe_fault_work);
	INIT_LIST_HEAD(&req->fault_wait);
	req->fault_left = SIZE_MAX;
}
