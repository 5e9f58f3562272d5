// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe retry engine: the "kiocb retry" model of Bhattacharya et al.,
 * OLS 2004.  A request keeps the submitter's buffer (its iovec), its mm
 * and its credentials; the request core's worker (worker.c) runs its
 * retries in a kworker that adopts them (enter/leave below) and copies
 * with page faults disabled, and a copy that stops at a missing page is
 * faulted in here, as the submitter, with no lock held.
 *
 * The direct engine's small reads (aiopipe_small_ops, at the end) are
 * retry requests that a writer in the submitter's address space may also
 * fill in place.
 */
#include "aiopipe.h"
#include "compat.h"
#include "fault.h"

#include <linux/cred.h>
#include <linux/kthread.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

/*
 * Keep the user buffer in req->iter: one range as ITER_UBUF, with no copy
 * of an iovec (6.1's aio PREAD, import_single_range(), and a one-segment
 * readv hand a single range in as an ITER_IOVEC whose iovec lives on the
 * caller's stack; 6.12's aio passes ITER_UBUF already), more segments in
 * our copy of the array.
 */
static int aiopipe_retry_keep_iter(struct aiopipe_req *req,
				   struct iov_iter *iter)
{
	if (iter_is_ubuf(iter)) {
		req->iter = *iter;
		return 0;
	}
	if (iter_is_iovec(iter) && iter->nr_segs == 1) {
		struct iovec seg = aiopipe_iter_seg(iter);

		iov_iter_ubuf(&req->iter, iov_iter_rw(iter), seg.iov_base,
			      seg.iov_len);
		return 0;
	}
	req->dup = dup_iter(&req->iter, iter, GFP_KERNEL_ACCOUNT);
	return req->dup ? 0 : -ENOMEM;
}

/*
 * Remember the user buffer, the address space and the credentials to copy
 * it with later.
 */
static int aiopipe_retry_prepare(struct aiopipe_req *req,
				 struct iov_iter *iter)
{
	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC) ||
	    aiopipe_retry_keep_iter(req, iter))
		return -ENOMEM;
	req->mm = current->mm;
	mmgrab(req->mm);
	req->cred = get_current_cred();
	return 0;
}

/* The last reference is gone: fault_work no longer needs mm and cred. */
static void aiopipe_retry_release(struct aiopipe_req *req)
{
	kfree(req->dup);
	if (req->mm)
		mmdrop(req->mm);
	if (req->cred)
		put_cred(req->cred);
}

/*
 * Adopt the submitter's mm and credentials for a retry; -ESRCH when its
 * address space is gone (it is exiting).  What @at keeps lets leave()
 * undo it without looking at @req, which may be freed by then.
 */
static int aiopipe_retry_enter(struct aiopipe_req *req,
			       struct aiopipe_adopt *at)
{
	if (!req->mm)
		return 0;
	if (!mmget_not_zero(req->mm))
		return -ESRCH;
	at->mm = req->mm;
	at->cred = get_cred(req->cred);
	kthread_use_mm(at->mm);
	at->old_cred = override_creds(at->cred);
	return 0;
}

/*
 * The mm is released with mmput_async(): a synchronous mmput() here could
 * be the last one and run exit_aio(), which would wait for this very
 * request.
 */
static void aiopipe_retry_leave(struct aiopipe_adopt *at)
{
	if (!at->mm)
		return;
	revert_creds(at->old_cred);
	put_cred(at->cred);
	kthread_unuse_mm(at->mm);
	mmput_async(at->mm);
}

/*
 * Fault @len bytes at @addr in, as the submitter (its mm and its
 * credentials); returns the bytes not faulted in.  Holds nothing another
 * context waits for: a fault that never ends (a userfaultfd nobody serves,
 * a FUSE daemon that hangs) stalls only this request.
 */
static size_t aiopipe_retry_fault_in(struct aiopipe_req *req,
				     unsigned long addr, size_t len)
{
	const struct cred *old_cred;
	size_t left = len;

	if (!mmget_not_zero(req->mm))
		return len;
	kthread_use_mm(req->mm);
	old_cred = override_creds(req->cred);
	if (req->write)
		left = fault_in_readable((const char __user *)addr, len);
	else
		left = fault_in_safe_writeable((const char __user *)addr, len);
	revert_creds(old_cred);
	kthread_unuse_mm(req->mm);
	mmput_async(req->mm);
	return left;
}

/* What every retry request does: its own, and a small read's. */
#define AIOPIPE_RETRY_HOOKS						\
	.park_armed	= true,						\
	.prepare	= aiopipe_retry_prepare,			\
	.release	= aiopipe_retry_release,			\
	.enter		= aiopipe_retry_enter,				\
	.leave		= aiopipe_retry_leave,				\
	.fault_in	= aiopipe_retry_fault_in

const struct aiopipe_engine_ops aiopipe_retry_ops = {
	.engine		= AIOPIPE_ENGINE_RETRY,
	.name		= "retry",
	AIOPIPE_RETRY_HOOKS,
};

/*
 * The direct engine's small reads (at most small_read_max bytes, from a
 * user buffer) are not pinned: pinning and unpinning a page costs more
 * than copying a few hundred bytes twice.  Such a read is a retry request
 * that a writer running in the submitter's address space (the submitter,
 * or another thread of it: peer_same_mm) fills in place, through a bounce
 * buffer on the writer's stack.  A writer in another address space cannot
 * reach the buffer: it writes the ring, and the wakeup kicks the request's
 * worker, as for any retry request.
 *
 * The writer's context (its syscall, or the worker of a pending write in
 * the same mm, with page faults already disabled), mutex held, request
 * claimed (BUSY).  The copy from the writer's own buffer faults as the
 * writer's copies do (like pipe_write() in a syscall); the copy into the
 * submitter's buffer never faults (pagefault_disable()): that page is the
 * request's, and a userfaultfd or a FUSE mapping there must not hold the
 * writer, and through it the channel's mutex.  Where that copy stops
 * short, the request takes nothing (0): both iterators are reverted and
 * all the bytes stay the writer's, in the same mutex section, so a write
 * of at most PIPE_BUF bytes is still never interleaved with another.  The
 * request goes back first in line, armed, the writer stops filling and
 * puts the bytes in the ring, and the request's worker faults the page in
 * and takes them from there: a read never completes short because its
 * buffer was cold, and what the stopped copy left in it is written again
 * with the same bytes.  If it was cancelled meanwhile, the unclaim
 * finishes it instead (its buffer may keep those first bytes: the writer
 * is in its address space) and the bytes go to the next read in line.
 */
size_t aiopipe_small_fill(struct aiopipe_req *req, struct iov_iter *from,
			  size_t max, bool *fault)
{
	char bounce[AIOPIPE_SMALL_READ_MAX];
	size_t n = min3(max, iov_iter_count(&req->iter), sizeof(bounce));
	size_t got, put;

	got = copy_from_iter(bounce, n, from);
	if (got < n)
		*fault = true;
	pagefault_disable();
	put = aiopipe_should_fail(AIOPIPE_FAIL_COPY) ? 0 :
	      copy_to_iter(bounce, got, &req->iter);
	pagefault_enable();
	if (put < got) {
		iov_iter_revert(&req->iter, put);
		iov_iter_revert(from, got);
		return 0;
	}
	return put;
}

const struct aiopipe_engine_ops aiopipe_small_ops = {
	.engine		= AIOPIPE_ENGINE_DIRECT,
	.name		= "small",
	.peer_claimable	= true,
	.peer_same_mm	= true,
	.peer_in	= aiopipe_small_fill,
	AIOPIPE_RETRY_HOOKS,
};
