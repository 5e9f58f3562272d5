// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe request core, the transfer: moving bytes between a caller and
 * the channel in FIFO order, for sync calls and for the worker's steps.
 *
 * A reader takes the ring first, then (peer_out) straight from pending
 * writes that a peer may claim, then pulls those into the room it made; a
 * writer fills pending reads that a peer may claim (peer_in) while the
 * ring is empty, then the ring.  So:
 *  - a pending read is served by a writer only while the ring is empty,
 *    and bytes already in the ring are never overtaken;
 *  - a reader drains pending writes only after the ring is empty, and
 *    pulls them into the ring only in FIFO order behind its contents.
 * The claimed request stays first in line (BUSY) while its peer copies.
 */
#include "aiopipe.h"
#include "compat.h"
#include "evring.h"
#include "fault.h"
#include "pause.h"

#include <linux/indirect_call_wrapper.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

/*
 * Append to the byte ring.  A ring mode reader hears of every append, with
 * its count, in the order the bytes went in (evring.c).  No one-shot read
 * waits in line on an attached channel (aiopipe_read_iter() and
 * aiopipe_sink_attach() refuse it), so the bytes are all the ring's.
 */
static size_t aiopipe_bytes_append(struct aiopipe_chan *chan,
				   struct iov_iter *from, size_t max, bool *fault)
{
	size_t n = aiopipe_ring_from_iter(chan, from, max, fault);

	if (n && chan->sink)
		aiopipe_sink_announce(chan, n);
	return n;
}

static void aiopipe_count_single(struct aiopipe_chan *chan, size_t n)
{
	chan->consumed += n;
	chan->produced += n;
	aiopipe_stat_add(chan, AP_BYTES_SINGLE_COPY, n);
}

/*
 * Writer meets pending reads a peer may claim (ring empty): fill them in
 * order, each completing with what it got, as a woken pipe reader would.
 * A small read whose buffer was not there takes nothing and goes back in
 * line, armed: the filling stops, the bytes go into the ring, and its
 * worker takes them once the page is in.  If it was cancelled meanwhile it
 * is finished instead, and the next read in line is served here.
 */
static size_t aiopipe_peer_fill_reads(struct aiopipe_chan *chan,
				      struct iov_iter *from, size_t max,
				      struct list_head *done, bool *fault)
{
	struct aiopipe_req *req;
	size_t total = 0;

	lockdep_assert_held(&chan->mutex);
	while (total < max && !*fault &&
	       (req = aiopipe_claim_by_peer(chan, &chan->rd_pending))) {
		size_t n;

		WARN_ON_ONCE(chan->len);
		aiopipe_pause(AIOPIPE_PAUSE_FILL_CLAIMED, chan->id);
		n = INDIRECT_CALL_2(req->ops->peer_in, aiopipe_direct_fill,
				    aiopipe_small_fill, req, from, max - total,
				    fault);
		req->done += n;
		total += n;
		aiopipe_count_single(chan, n);
		if (aiopipe_unclaim(req, n != 0, n, done))
			break;	/* back in line: its worker faults it in */
	}
	return total;
}

/* Pull pending writes a peer may claim, in order, into the ring's room. */
static void aiopipe_peer_pull_writes(struct aiopipe_chan *chan,
				     struct list_head *done)
{
	struct aiopipe_req *req;
	bool fault = false;

	while (aiopipe_free(chan) &&
	       (req = aiopipe_claim_by_peer(chan, &chan->wr_pending))) {
		size_t left = iov_iter_count(&req->iter);
		size_t n = 0;
		bool more;

		/* a write of at most PIPE_BUF bytes goes in whole or not at all */
		if (!req->atomic || aiopipe_free(chan) >= left)
			n = aiopipe_bytes_append(chan, &req->iter,
						 aiopipe_free(chan), &fault);
		req->done += n;
		more = n < left;
		/* back in QUEUED, @req may be cancelled and freed at once */
		aiopipe_unclaim(req, !more, req->done, done);
		aiopipe_pause(AIOPIPE_PAUSE_PULL_UNCLAIMED, chan->id);
		if (more)
			break;
	}
}

/*
 * Reader meets pending writes a peer may claim: once the ring is empty,
 * copy straight from them; a write completes when its last byte is taken.
 * Then move what is left of them into the ring, behind everything else.
 */
static size_t aiopipe_peer_drain_writes(struct aiopipe_chan *chan,
					struct iov_iter *to,
					struct list_head *done, bool *fault)
{
	struct aiopipe_req *req;
	size_t total = 0;

	lockdep_assert_held(&chan->mutex);
	while (!chan->len && iov_iter_count(to) && !*fault &&
	       (req = aiopipe_claim_by_peer(chan, &chan->wr_pending))) {
		size_t n = INDIRECT_CALL_1(req->ops->peer_out,
					    aiopipe_direct_drain, req, to, fault);
		bool pfault = false;

		req->done += n;
		total += n;
		aiopipe_count_single(chan, n);
		/*
		 * A record of at most PIPE_BUF bytes that has started to move
		 * finishes now, while it is ours: the rest goes into the ring,
		 * which is empty and holds at least PIPE_BUF.  Put back in
		 * line half moved, a cancel would tear it.
		 */
		if (req->atomic && n && iov_iter_count(&req->iter))
			req->done += aiopipe_bytes_append(chan, &req->iter,
							 aiopipe_free(chan),
							 &pfault);
		aiopipe_unclaim(req, !iov_iter_count(&req->iter), req->done,
				done);
		aiopipe_pause(AIOPIPE_PAUSE_DRAIN_UNCLAIMED, chan->id);
	}
	aiopipe_peer_pull_writes(chan, done);
	return total;
}

/*
 * Reader side of a transfer, mutex held: the ring first, then straight
 * from pending writes a peer may claim (the direct engine's pinned pages),
 * then pull those into the room just made.  Byte order is the ring's
 * order followed by the pending writes' FIFO order.
 */
size_t aiopipe_move_out(struct aiopipe_chan *chan, struct iov_iter *to,
			struct list_head *done, bool *fault)
{
	size_t n;

	lockdep_assert_held(&chan->mutex);
	n = aiopipe_ring_to_iter(chan, to, fault);
	if (!*fault && !list_empty_careful(&chan->wr_pending))
		n += aiopipe_peer_drain_writes(chan, to, done, fault);
	return n;
}

/*
 * Writer side of a transfer, mutex held: straight into pending reads a
 * peer may claim while the ring is empty, then into an attached ring's
 * buffers while the ring is still empty and no read waits, then the ring,
 * up to @max bytes in all.
 */
size_t aiopipe_move_in(struct aiopipe_chan *chan, struct iov_iter *from,
		       size_t max, struct list_head *done, bool *fault)
{
	size_t n = 0;

	lockdep_assert_held(&chan->mutex);
	if (!chan->len && !list_empty_careful(&chan->rd_pending))
		n = aiopipe_peer_fill_reads(chan, from, max, done, fault);
	if (*fault)
		return n;
	if (chan->sink && n < max && !chan->len &&
	    list_empty_careful(&chan->rd_pending)) {
		n += aiopipe_sink_fill(chan, from, max - n, fault);
		if (*fault || n == max)
			return n;
	}
	return n + aiopipe_bytes_append(chan, from, max - n, fault);
}

/*
 * Where a copy from or to the submitter's memory stopped short, as a
 * range for fault_work: the rest of the current segment, at most
 * AIOPIPE_FAULT_MAX bytes.  A short copy after a fault-in that failed is a
 * real -EFAULT.  A fault-in can also report success and map nothing for a
 * while: a userfaultfd being closed answers "done" to every fault until
 * its ranges are unregistered, where a CPU would simply retry the access;
 * pages another thread discards, or KSM merges, go away again.  So a
 * fault-in after which the copy stops at the same place again is repeated
 * after a pause (aiopipe_fault_pause(), worker.c), and only
 * AIOPIPE_FAULT_REPEATS fault-ins at one place, about a second of
 * patience, make the short copy an -EFAULT: the request never loops for
 * good.  Progress is where the copy stopped (the bytes left after it),
 * not req->done: a write of at most PIPE_BUF bytes moves nothing until
 * all of its pages are in, one segment after the other.
 */
#define AIOPIPE_FAULT_MAX		(16 * PAGE_SIZE)
#define AIOPIPE_FAULT_REPEATS		16

static enum aiopipe_step aiopipe_req_fault_at(struct aiopipe_req *req,
					      const struct iov_iter *at)
{
	struct iovec seg;

	if (!req->ops->fault_in || !req->mm || req->fault_failed ||
	    !iov_iter_count(at))
		return STEP_DONE;
	seg = aiopipe_iter_seg(at);
	if (iov_iter_count(at) < req->fault_left) {
		req->fault_left = iov_iter_count(at);
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
static ssize_t aiopipe_req_write_atomic(struct aiopipe_chan *chan,
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
		*step = aiopipe_req_fault_at(req, &at);
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
static ssize_t aiopipe_req_write_some(struct aiopipe_chan *chan,
				      struct aiopipe_req *req,
				      struct list_head *done,
				      enum aiopipe_step *step)
{
	size_t left = iov_iter_count(&req->iter);
	bool fault = false;
	size_t moved;

	if (req->atomic && req->mm)
		return aiopipe_req_write_atomic(chan, req, done, step);
	moved = aiopipe_move_in(chan, &req->iter, left, done, &fault);
	if (!fault)
		return moved;
	req->done += moved;
	*step = aiopipe_req_fault_at(req, &req->iter);
	return -EFAULT;
}

/*
 * One worker step of a write (aiopipe_req_move()).
 */
static enum aiopipe_step aiopipe_req_move_in(struct aiopipe_chan *chan,
					     struct aiopipe_req *req,
					     struct list_head *done,
					     __poll_t *key)
{
	size_t left = iov_iter_count(&req->iter);
	enum aiopipe_step step = STEP_PARK;
	u32 len_before = chan->len;
	ssize_t moved = 0;

	if (chan->readers && aiopipe_write_ready(chan, left))
		moved = aiopipe_req_write_some(chan, req, done, &step);
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
 * One worker step of a read (aiopipe_req_move()).  A copy that stops
 * at a missing page keeps what it moved and goes on after the fault-in, as
 * pipe_read() would fault and go on: a read completes with what it got
 * when the bytes run out, not where the submitter's memory was cold.
 */
static enum aiopipe_step aiopipe_req_move_out(struct aiopipe_chan *chan,
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
	if (fault && aiopipe_req_fault_at(req, &req->iter) == STEP_FAULT)
		return STEP_FAULT;
	req->res = req->done ?: (fault ? -EFAULT : 0);
	if (req->done || fault || !chan->writers)
		return STEP_DONE;
	return STEP_PARK;
}

/*
 * One step of a claimed request in the worker, mutex held, page faults
 * disabled when the request copies user memory through the submitter's
 * mm: nothing here sleeps on the submitter's pages while the channel is
 * held.
 */
enum aiopipe_step aiopipe_req_move(struct aiopipe_chan *chan,
				   struct aiopipe_req *req,
				   struct list_head *done, __poll_t *key)
{
	enum aiopipe_step step;

	lockdep_assert_held(&chan->mutex);
	if (req->mm)
		pagefault_disable();
	step = req->write ? aiopipe_req_move_in(chan, req, done, key) :
			    aiopipe_req_move_out(chan, req, done, key);
	if (req->mm)
		pagefault_enable();
	return step;
}
