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
#include "compat.h"
#include "fault.h"
#include "pause.h"

#include <linux/cred.h>
#include <linux/kthread.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
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

/*
 * Remember the user buffer, the address space and the credentials to copy
 * it with later.
 */
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
	req->cred = get_current_cred();
	return 0;
}

void aiopipe_retry_release(struct aiopipe_req *req)
{
	kfree(req->dup);
	if (req->mm)
		mmdrop(req->mm);
	if (req->cred)
		put_cred(req->cred);
}

enum aiopipe_step {
	STEP_PARK,	/* nothing more possible now: wait in line */
	STEP_DONE,	/* complete with req->res */
	STEP_FAULT,	/* a user page is not present: fault it in, unlocked */
};

/*
 * Where a copy from or to the submitter's memory stopped short, as a
 * range for fault_work: the rest of the current segment, at most
 * AIOPIPE_FAULT_MAX bytes.  A short copy after a fault-in that mapped
 * nothing is a real -EFAULT.  A fault-in can also report success and map
 * nothing for a while: a userfaultfd being closed answers "done" to every
 * fault until its ranges are unregistered, where a CPU would simply retry
 * the access.  So a fault-in that did not help is repeated after a pause
 * that doubles up to AIOPIPE_FAULT_BACKOFF_MAX_MS (aiopipe_fault_backoff()),
 * and only AIOPIPE_FAULT_REPEATS of them in a row, about a second of
 * patience, make the short copy an -EFAULT (memory the worker may not touch
 * even when present, or pages another thread keeps discarding): the
 * request never loops for good.
 */
#define AIOPIPE_FAULT_MAX		(16 * PAGE_SIZE)
#define AIOPIPE_FAULT_REPEATS		16
#define AIOPIPE_FAULT_BACKOFF_MAX_MS	128

static enum aiopipe_step aiopipe_retry_fault_at(struct aiopipe_req *req,
						const struct iov_iter *at)
{
	struct iovec seg;

	if (!req->mm || req->fault_failed || !iov_iter_count(at))
		return STEP_DONE;
	seg = aiopipe_iter_seg(at);
	if (req->fault_done != req->done) {
		req->fault_done = req->done;
		req->fault_repeats = 0;
	} else if (++req->fault_repeats >= AIOPIPE_FAULT_REPEATS) {
		return STEP_DONE;
	}
	req->fault_addr = (unsigned long)seg.iov_base;
	req->fault_len = min_t(size_t, seg.iov_len, AIOPIPE_FAULT_MAX);
	return STEP_FAULT;
}

/*
 * A write of at most PIPE_BUF bytes is all-or-nothing: copy it whole into
 * a kernel buffer first (page faults disabled), then move it from there,
 * where only an injected failure cuts a copy short.  Returns the bytes
 * moved, or a negative errno: -EFAULT with *step saying whether a fault-in
 * may help (what an injected failure let through is counted in done).
 */
static ssize_t aiopipe_retry_write_atomic(struct aiopipe_chan *chan,
					  struct aiopipe_req *req,
					  struct list_head *done,
					  enum aiopipe_step *step)
{
	size_t left = iov_iter_count(&req->iter);
	struct iov_iter at = req->iter;
	struct iov_iter from;
	struct kvec kv;
	bool fault = false;
	size_t moved;
	void *buf;

	buf = aiopipe_should_fail(AIOPIPE_FAIL_ALLOC) ? NULL :
	      kmalloc(left, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	kv.iov_base = buf;
	kv.iov_len = copy_from_iter(buf, left, &at);
	if (kv.iov_len < left) {
		*step = aiopipe_retry_fault_at(req, &at);
		kfree(buf);
		return -EFAULT;
	}
	iov_iter_kvec(&from, WRITE, &kv, 1, left);
	moved = aiopipe_move_in(chan, &from, left, done, &fault);
	iov_iter_advance(&req->iter, moved);
	kfree(buf);
	/* only an injected copy failure stops a copy from a kernel buffer */
	if (fault) {
		req->done += moved;
		*step = STEP_DONE;
		return -EFAULT;
	}
	return moved;
}

/*
 * Move what fits of a write: whole through a bounce buffer when it is at
 * most PIPE_BUF bytes of user memory, else straight from its iterator.
 * Returns the bytes moved or a negative errno; *step as for the bounce.
 */
static ssize_t aiopipe_retry_write_some(struct aiopipe_chan *chan,
					struct aiopipe_req *req,
					struct list_head *done,
					enum aiopipe_step *step)
{
	size_t left = iov_iter_count(&req->iter);
	bool fault = false;
	size_t moved;

	if (req->atomic && req->mm)
		return aiopipe_retry_write_atomic(chan, req, done, step);
	moved = aiopipe_move_in(chan, &req->iter, left, done, &fault);
	if (!fault)
		return moved;
	req->done += moved;
	*step = aiopipe_retry_fault_at(req, &req->iter);
	return -EFAULT;
}

/*
 * One retry step of a write, mutex held, page faults disabled when the
 * request copies user memory: nothing here sleeps on the submitter's pages
 * while the channel is held.
 */
static enum aiopipe_step aiopipe_retry_move_in(struct aiopipe_chan *chan,
					       struct aiopipe_req *req,
					       struct list_head *done,
					       __poll_t *key)
{
	size_t left = iov_iter_count(&req->iter);
	enum aiopipe_step step = STEP_PARK;
	u32 len_before = chan->len;
	ssize_t moved = 0;

	if (chan->readers && aiopipe_write_ready(chan, left))
		moved = aiopipe_retry_write_some(chan, req, done, &step);
	if (chan->len > len_before)
		*key |= AIOPIPE_READ_KEY;
	if (moved < 0) {
		if (step == STEP_FAULT && chan->readers)
			return STEP_FAULT;
		req->res = req->done ?: moved;
		return STEP_DONE;
	}
	req->done += moved;
	req->res = req->done ?: -EPIPE;
	if (!chan->readers || moved == left)
		return STEP_DONE;
	return STEP_PARK;
}

/*
 * One retry step of a read: as aiopipe_retry_move_in().  A copy that stops
 * at a missing page keeps what it moved and goes on after the fault-in, as
 * pipe_read() would fault and go on: a read completes with what it got
 * when the bytes run out, not where the submitter's memory was cold.
 */
static enum aiopipe_step aiopipe_retry_move_out(struct aiopipe_chan *chan,
						struct aiopipe_req *req,
						struct list_head *done,
						__poll_t *key)
{
	u32 free_before = aiopipe_free(chan);
	bool fault = false;
	size_t moved;

	moved = aiopipe_move_out(chan, &req->iter, done, &fault);
	if (moved)
		*key |= aiopipe_read_wakes(chan, free_before, true);
	req->done += moved;
	if (fault && aiopipe_retry_fault_at(req, &req->iter) == STEP_FAULT)
		return STEP_FAULT;
	req->res = req->done ?: (fault ? -EFAULT : 0);
	if (req->done || fault || !chan->writers)
		return STEP_DONE;
	return STEP_PARK;
}

/*
 * Publish the outcome of a retry: complete, park again first in line, or
 * hand the request to fault_work.  A cancel seen here finishes it.
 */
static void aiopipe_retry_publish(struct aiopipe_chan *chan,
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
		if (!req->direct)
			aiopipe_arm_locked(req);
		aiopipe_heads_changed_locked(chan);
		break;
	}
	spin_unlock_irq(&chan->wq.lock);
}

/*
 * Claim a KICKED request for this worker; false if it is already DONE.
 * A request cancelled while KICKED is finished here without moving a byte:
 * once a cancel has taken effect, nothing more enters or leaves the pipe
 * on its behalf (io_destroy and exit discard the completion).
 */
static bool aiopipe_retry_claim(struct aiopipe_chan *chan,
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

/* One claimed step under the mutex, with the counters and the trace. */
static void aiopipe_retry_step(struct aiopipe_chan *chan,
			       struct aiopipe_req *req, struct list_head *done,
			       __poll_t *key)
{
	size_t before = req->done;
	enum aiopipe_step step;
	bool futile;

	aiopipe_pause(AIOPIPE_PAUSE_RETRY_CLAIMED, chan->id);
	if (req->mm)
		pagefault_disable();
	step = req->write ? aiopipe_retry_move_in(chan, req, done, key) :
			    aiopipe_retry_move_out(chan, req, done, key);
	if (req->mm)
		pagefault_enable();
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
	aiopipe_retry_publish(chan, req, step, done);
}

/*
 * A KICKED request that has been cancelled, or whose submitter is exiting
 * (exit_aio() is cancelling it), ends here without the mutex, which a
 * reader faulting on its own memory may hold for long: taken as the cancel
 * callback takes a request, completed by its work item (this one, queued
 * again), the next in line promoted by the channel's promote_work.
 * Otherwise, with @mm, the submitter's mm is held (mmget) on return.
 */
static bool aiopipe_retry_end_early(struct aiopipe_chan *chan,
				    struct aiopipe_req *req,
				    struct mm_struct *mm)
{
	bool gone = mm && !mmget_not_zero(mm);
	bool ended = false;

	spin_lock_irq(&chan->wq.lock);
	if (req->state == RQ_KICKED && (gone || req->cancelled)) {
		aiopipe_req_take_cancelled(req, req->done ?:
					   (gone ? -EINTR : -ECANCELED));
		ended = true;
	}
	spin_unlock_irq(&chan->wq.lock);
	if (ended && !gone && mm)
		mmput_async(mm);
	return ended || gone;
}

/*
 * The retry proper, in a kworker: adopt the submitter's mm and credentials
 * (a pinned-page request needs neither), move, publish.  After publishing,
 * @req may belong to someone else: only locals are used from then on, and
 * our own channel reference keeps @chan alive.  The mm is released with
 * mmput_async(): a synchronous mmput() here could be the last one and run
 * exit_aio(), which would wait for this very request.
 */
static void aiopipe_retry_run(struct aiopipe_req *req)
{
	struct aiopipe_chan *chan = req->chan;
	struct mm_struct *mm = req->direct ? NULL : req->mm;
	const struct cred *cred = NULL, *old_cred = NULL;
	__poll_t key = 0;
	LIST_HEAD(done);

	if (aiopipe_retry_end_early(chan, req, mm))
		return;
	kref_get(&chan->ref);
	if (mm) {
		/* our own reference: once published, @req may be freed */
		cred = get_cred(req->cred);
		kthread_use_mm(mm);
		old_cred = override_creds(cred);
	}
	aiopipe_pause(AIOPIPE_PAUSE_RETRY_START, chan->id);
	mutex_lock(&chan->mutex);
	if (aiopipe_retry_claim(chan, req, &done))
		aiopipe_retry_step(chan, req, &done, &key);
	mutex_unlock(&chan->mutex);
	if (mm) {
		revert_creds(old_cred);
		put_cred(cred);
		kthread_unuse_mm(mm);
		mmput_async(mm);
	}
	if (key)
		aiopipe_wake(chan, key);
	aiopipe_finish_list(&done);
	aiopipe_chan_put(chan);
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
int aiopipe_fault_in_locked(struct aiopipe_req *req)
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
 * Before a fault-in that follows fault-ins that did not help: 1, 2, 4 ...
 * AIOPIPE_FAULT_BACKOFF_MAX_MS milliseconds, slept holding nothing, so the
 * context that will make the memory usable (the closer of a userfaultfd,
 * which needs the mmap lock these fault-ins keep taking) gets to run.
 * fault_repeats is stable here: only the BUSY holder writes it.  Returns
 * whether the request is still wanted afterwards.
 */
static bool aiopipe_fault_backoff(struct aiopipe_req *req)
{
	unsigned int repeats = req->fault_repeats, shift;

	if (repeats < 2)
		return true;
	shift = min(repeats - 2, ilog2(AIOPIPE_FAULT_BACKOFF_MAX_MS));
	schedule_timeout_idle(msecs_to_jiffies(1U << shift));
	return aiopipe_fault_wanted(req);
}

/*
 * Fault the submitter's pages in, as the submitter (its mm and its
 * credentials), holding nothing another context waits for: if the fault
 * never ends (a userfaultfd nobody serves, a FUSE daemon that hangs), only
 * this request (and, as in a pipe, those in line behind it) waits;
 * io_cancel() still completes it, and the submitter still dies of SIGKILL,
 * though its address space, and so its AIO context, stay until the fault
 * ends.  Then retry, unless the request was completed meanwhile.
 */
static void aiopipe_fault_work(struct work_struct *work)
{
	struct aiopipe_req *req = container_of(work, struct aiopipe_req,
					       fault_work);
	struct aiopipe_chan *chan = req->chan;
	void __user *addr = (void __user *)req->fault_addr;
	size_t len = req->fault_len, left = len;
	kuid_t uid = req->cred->uid;
	const struct cred *old_cred;
	bool wanted;

	/* a request completed while it waited (in its user's line, or here) is left */
	wanted = aiopipe_fault_wanted(req) && aiopipe_fault_backoff(req);
	if (wanted && mmget_not_zero(req->mm)) {
		kthread_use_mm(req->mm);
		old_cred = override_creds(req->cred);
		if (req->write)
			left = fault_in_readable(addr, len);
		else
			left = fault_in_safe_writeable(addr, len);
		revert_creds(old_cred);
		kthread_unuse_mm(req->mm);
		mmput_async(req->mm);
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
		aiopipe_retry_run(req);
}

void aiopipe_retry_init(struct aiopipe_req *req)
{
	init_waitqueue_func_entry(&req->wait, aiopipe_retry_wake);
	INIT_LIST_HEAD(&req->wait.entry);
	INIT_WORK(&req->work, aiopipe_req_work);
	INIT_WORK(&req->fault_work, aiopipe_fault_work);
	INIT_LIST_HEAD(&req->fault_wait);
}
