// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe retry engine: the "kiocb retry" model of Bhattacharya et al.,
 * OLS 2004.  A request keeps a copy of the submitter's iovec, its mm and
 * its credentials; the request core's worker (worker.c) runs its retries
 * in a kworker that adopts them (enter/leave below) and copies with page
 * faults disabled, and a copy that stops at a missing page is faulted in
 * here, as the submitter, with no lock held.
 */
#include "aiopipe.h"
#include "fault.h"

#include <linux/cred.h>
#include <linux/kthread.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

/*
 * Remember the user buffer, the address space and the credentials to copy
 * it with later.
 */
static int aiopipe_retry_prepare(struct aiopipe_req *req,
				 struct iov_iter *iter)
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

const struct aiopipe_engine_ops aiopipe_retry_ops = {
	.engine		= AIOPIPE_ENGINE_RETRY,
	.name		= "retry",
	.park_armed	= true,
	.prepare	= aiopipe_retry_prepare,
	.release	= aiopipe_retry_release,
	.enter		= aiopipe_retry_enter,
	.leave		= aiopipe_retry_leave,
	.fault_in	= aiopipe_retry_fault_in,
};
