// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe ends: the file operations of a read end, a write end, or an
 * O_RDWR named FIFO.  Synchronous semantics mirror fs/pipe.c; the point
 * where a pipe would sleep is where a libaio request is queued instead
 * (request.c).  Locking: see channel.c.
 */
#include "aiopipe.h"
#include "compat.h"
#include "evring.h"
#include "pause.h"

#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <asm/ioctls.h>

static inline bool aiopipe_nonblock(const struct kiocb *iocb)
{
	return (iocb->ki_filp->f_flags & O_NONBLOCK) ||
	       (iocb->ki_flags & IOCB_NOWAIT);
}

/*
 * Take the channel for a transfer.  IOCB_NOWAIT (RWF_NOWAIT, io_uring's
 * first attempt) never sleeps, not even on the mutex: -EAGAIN, as ext4 and
 * xfs answer when inode_trylock() fails under IOCB_NOWAIT.
 */
static int aiopipe_lock_for(struct aiopipe_chan *chan, const struct kiocb *iocb)
{
	if (!(iocb->ki_flags & IOCB_NOWAIT)) {
		mutex_lock(&chan->mutex);
		return 0;
	}
	return mutex_trylock(&chan->mutex) ? 0 : -EAGAIN;
}

/* Only libaio kiocbs can be cancelled, so only they may be queued. */
static inline bool aiopipe_may_queue(struct kiocb *iocb)
{
	return !is_sync_kiocb(iocb) && (iocb->ki_flags & IOCB_AIO_RW);
}

/* Lockless hints for sleepers; the decision is re-taken under the mutex. */
static inline bool aiopipe_no_readers_ahead(const struct aiopipe_chan *chan)
{
	return list_empty_careful(&chan->rd_pending);
}

static inline bool aiopipe_no_writers_ahead(const struct aiopipe_chan *chan)
{
	return list_empty_careful(&chan->wr_pending);
}

static inline bool aiopipe_sync_read_ready(const struct aiopipe_chan *chan)
{
	return aiopipe_no_readers_ahead(chan) && aiopipe_read_ready(chan);
}

static inline bool aiopipe_sync_write_ready(const struct aiopipe_chan *chan,
					    size_t left)
{
	return aiopipe_no_writers_ahead(chan) && aiopipe_write_ready(chan, left);
}

static bool aiopipe_sync_read_ready_arg(const struct aiopipe_chan *chan,
					size_t unused)
{
	return aiopipe_sync_read_ready(chan);
}

/*
 * read_iter for every caller: read(2), readv(2), splice, libaio, io_uring.
 * A hot path: it keeps one mutex region around the transfer and the decision
 * to sleep or queue, as pipe_read() does.
 */
ssize_t aiopipe_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct aiopipe_chan *chan = iocb->ki_filp->private_data;
	bool woken = false, fault = false;
	LIST_HEAD(done);
	__poll_t key = 0;
	ssize_t ret;

	if (!iov_iter_count(to))
		return 0;
	if (aiopipe_lock_for(chan, iocb))
		return -EAGAIN;
	aiopipe_stat_inc(chan, is_sync_kiocb(iocb) ? AP_SYNC_READS :
						      AP_ASYNC_READS);
	for (;;) {
		u32 free_before = aiopipe_free(chan);

		if (aiopipe_no_readers_ahead(chan)) {
			aiopipe_pause(AIOPIPE_PAUSE_READ_LOCKED, chan->id);
			ret = aiopipe_move_out(chan, to, &done, &fault);
			if (ret) {
				key = aiopipe_read_wakes(chan, free_before, woken);
				break;
			}
			ret = -EFAULT;
			if (fault)
				break;
		}
		ret = 0;
		if (!chan->writers && aiopipe_no_readers_ahead(chan))
			break;
		ret = -EAGAIN;
		if (aiopipe_nonblock(iocb))
			break;
		if (aiopipe_may_queue(iocb)) {
			/* an attached pipe's bytes are the ring's */
			ret = chan->sink ? -EBUSY :
			      aiopipe_queue(chan, iocb, to, false, 0, &done);
			break;
		}
		mutex_unlock(&chan->mutex);
		aiopipe_finish_list(&done);	/* never sleep on completions */
		ret = aiopipe_wait(chan, AIOPIPE_READER_MASK,
				   aiopipe_sync_read_ready_arg, 0);
		if (ret)
			return ret;
		woken = true;
		mutex_lock(&chan->mutex);
	}
	if (ret > 0 && !is_sync_kiocb(iocb))
		aiopipe_stat_inc(chan, AP_COMPLETED_AT_SUBMIT);
	mutex_unlock(&chan->mutex);
	if (key)
		aiopipe_wake(chan, key);
	aiopipe_finish_list(&done);
	return ret;
}

static bool aiopipe_sync_write_ready_arg(const struct aiopipe_chan *chan,
					 size_t left)
{
	return aiopipe_sync_write_ready(chan, left);
}

/* The submitting task gets SIGPIPE, as from pipe_write(). */
static ssize_t aiopipe_epipe(void)
{
	send_sig(SIGPIPE, current, 0);
	return -EPIPE;
}

/*
 * write_iter for every caller.  A write of at most PIPE_BUF bytes starts only
 * when it fits whole and runs under the mutex, so it is never interleaved.
 * A libaio write that cannot finish now is queued with what it already
 * moved and completes when all its bytes are in.  Hot path: one mutex region.
 */
ssize_t aiopipe_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct aiopipe_chan *chan = iocb->ki_filp->private_data;
	size_t written = 0;
	bool woken = false, fault = false;
	LIST_HEAD(done);
	__poll_t key = 0;
	ssize_t ret;

	if (!iov_iter_count(from))
		return 0;
	if (aiopipe_lock_for(chan, iocb))
		return -EAGAIN;
	aiopipe_stat_inc(chan, is_sync_kiocb(iocb) ? AP_SYNC_WRITES :
						      AP_ASYNC_WRITES);
	for (;;) {
		size_t left = iov_iter_count(from);
		u32 len_before = chan->len;

		if (!chan->readers) {
			/* SIGPIPE even after a partial write, as pipe_write() */
			ret = aiopipe_epipe();
			if (written)
				ret = written;
			break;
		}
		if (aiopipe_sync_write_ready(chan, left)) {
			size_t n = aiopipe_move_in(chan, from, left, &done,
						   &fault);

			written += n;
			if (chan->len > len_before)
				key |= AIOPIPE_READ_KEY;
			ret = written;
			if (fault) {
				ret = written ?: -EFAULT;
				break;
			}
			if (n == left)
				break;
			continue;
		}
		ret = written ?: -EAGAIN;
		if (aiopipe_nonblock(iocb))
			break;
		if (aiopipe_may_queue(iocb)) {
			ret = aiopipe_queue(chan, iocb, from, true, written,
					    &done);
			break;
		}
		mutex_unlock(&chan->mutex);
		if (key)
			aiopipe_wake(chan, key);
		key = 0;
		/*
		 * Reads this write filled complete now, not when it ends: their
		 * submitter may be what has to make the room we wait for.
		 */
		aiopipe_finish_list(&done);
		ret = aiopipe_wait(chan, AIOPIPE_WRITER_MASK,
				   aiopipe_sync_write_ready_arg, left);
		if (ret)
			return written ?: ret;
		woken = true;
		mutex_lock(&chan->mutex);
	}
	if (woken && ret > 0 && aiopipe_free(chan) >= PIPE_BUF)
		key |= AIOPIPE_WRITE_KEY;
	if (ret > 0 && !is_sync_kiocb(iocb))
		aiopipe_stat_inc(chan, AP_COMPLETED_AT_SUBMIT);
	mutex_unlock(&chan->mutex);
	aiopipe_pause(AIOPIPE_PAUSE_WRITE_UNLOCKED, chan->id);
	if (key)
		aiopipe_wake(chan, key);
	aiopipe_finish_list(&done);
	return ret;
}

/*
 * Make this poller visible before reading the state it tests: its queued
 * entry, and its interest in drains (which epoll may add later, through
 * EPOLL_CTL_MOD, without queueing again).  Pairs with wq_has_sleeper() in
 * aiopipe_wake(); see the timeline there.
 */
static void aiopipe_poll_publish(struct aiopipe_chan *chan, poll_table *wait)
{
	bool barrier = !poll_does_not_wait(wait);

	if (wait && (poll_requested_events(wait) & AIOPIPE_DRAIN_KEY) &&
	    !READ_ONCE(chan->drain_wanted)) {
		WRITE_ONCE(chan->drain_wanted, true);
		barrier = true;
	}
	if (barrier)
		smp_mb();	/* pairs with wq_has_sleeper() in aiopipe_wake() */
}

/*
 * pipe_poll(): the same masks, one wait queue for both directions.  Bytes
 * and EOF that queued libaio reads will take are not a reader's to see, nor
 * room that queued writes will fill a writer's: "ready" must mean that a
 * nonblocking call would not get -EAGAIN, because io_uring retries its
 * read or write as soon as poll says so (a poll that says ready to a call
 * that fails loops in task work).  The request that empties a queue wakes
 * the pollers behind it (aiopipe_req_finish()).
 */
__poll_t aiopipe_poll(struct file *file, poll_table *wait)
{
	struct aiopipe_chan *chan = file->private_data;
	__poll_t mask = 0;
	u32 len;

	poll_wait(file, &chan->wq, wait);
	aiopipe_poll_publish(chan, wait);
	len = READ_ONCE(chan->len);
	if ((file->f_mode & FMODE_READ) && aiopipe_no_readers_ahead(chan)) {
		if (len || READ_ONCE(chan->wr_head_direct))
			mask |= EPOLLIN | EPOLLRDNORM;
		if (!READ_ONCE(chan->writers) &&
		    *aiopipe_file_seen(file) != READ_ONCE(chan->w_counter))
			mask |= EPOLLHUP;
	}
	if (file->f_mode & FMODE_WRITE) {
		if (READ_ONCE(chan->cap) - len >= PIPE_BUF &&
		    aiopipe_no_writers_ahead(chan))
			mask |= EPOLLOUT | EPOLLWRNORM;
		if (!READ_ONCE(chan->readers))
			mask |= EPOLLERR;
		if (READ_ONCE(chan->consumed) == READ_ONCE(chan->produced) &&
		    list_empty_careful(&chan->wr_pending))
			mask |= AIOPIPE_DRAIN_KEY;
	}
	return mask;
}

/*
 * Engine and filter: no lock, each reader takes one value (a request its
 * engine at queue time, a wake callback the filter as it runs).
 */
static long aiopipe_set_u32(u32 *field, u32 val, u32 max)
{
	if (val > max)
		return -EINVAL;
	WRITE_ONCE(*field, val);
	return 0;
}

static long aiopipe_set_engine(struct aiopipe_chan *chan, u32 engine)
{
	if (engine == AIOPIPE_ENGINE_DEFAULT)
		engine = aiopipe_default_engine;
	if (engine < AIOPIPE_ENGINE_RETRY)
		return -EINVAL;
	return aiopipe_set_u32(&chan->engine, engine, AIOPIPE_ENGINE_DIRECT);
}

long aiopipe_ioctl(struct file *file, unsigned int cmd,
		   unsigned long arg)
{
	struct aiopipe_chan *chan = file->private_data;
	u32 __user *uarg = (u32 __user *)arg;
	u32 val;

	switch (cmd) {
	case FIONREAD:
		return put_user(READ_ONCE(chan->len), (int __user *)arg);
	case AIOPIPE_IOC_GET_CAPACITY:
		return put_user(READ_ONCE(chan->cap), uarg);
	case AIOPIPE_IOC_GET_ENGINE:
		return put_user(READ_ONCE(chan->engine), uarg);
	case AIOPIPE_IOC_GET_FILTER:
		return put_user(READ_ONCE(chan->filter), uarg);
	case AIOPIPE_IOC_GET_STATS:
		return aiopipe_stats_copy(chan, (void __user *)arg);
	case AIOPIPE_IOC_SET_CAPACITY:
	case AIOPIPE_IOC_SET_ENGINE:
	case AIOPIPE_IOC_SET_FILTER:
		break;
	default:
		return -ENOTTY;
	}
	if (get_user(val, uarg))
		return -EFAULT;
	if (cmd == AIOPIPE_IOC_SET_CAPACITY)
		return aiopipe_set_capacity(chan, val);
	if (cmd == AIOPIPE_IOC_SET_ENGINE)
		return aiopipe_set_engine(chan, val);
	return aiopipe_set_u32(&chan->filter, val, AIOPIPE_FILTER_ON);
}

int aiopipe_fasync(int fd, struct file *file, int on)
{
	struct aiopipe_chan *chan = file->private_data;
	int ret = 0;

	mutex_lock(&chan->mutex);
	if (file->f_mode & FMODE_READ)
		ret = fasync_helper(fd, file, on, &chan->fasync_readers);
	if (ret >= 0 && (file->f_mode & FMODE_WRITE)) {
		ret = fasync_helper(fd, file, on, &chan->fasync_writers);
		if (ret < 0 && (file->f_mode & FMODE_READ))
			fasync_helper(-1, file, 0, &chan->fasync_readers);
	}
	mutex_unlock(&chan->mutex);
	return ret < 0 ? ret : 0;
}

/*
 * Drain barrier: wait until every byte written before the call (the mark:
 * the produced clock when it is called) has been consumed; EPIPE if the
 * readers go away first.  Each waiter tests its own mark on every read
 * that consumes bytes (AIOPIPE_CONSUMED_KEY), so a steady writer behind
 * the mark does not hold it back; poll's DRAINED, a full drain, is another
 * condition.
 */
static bool aiopipe_drained(const struct aiopipe_chan *chan, u64 mark)
{
	return READ_ONCE(chan->consumed) >= mark || !READ_ONCE(chan->readers);
}

int aiopipe_fsync(struct file *file, loff_t start, loff_t end,
		  int datasync)
{
	struct aiopipe_chan *chan = file->private_data;
	u64 mark;
	int ret;

	if (!(file->f_mode & FMODE_WRITE))
		return -EINVAL;
	/*
	 * IOCB_CMD_FSYNC calls us from a kworker that no signal reaches: a
	 * drain that never comes would hang the submitter's exit in
	 * exit_aio().  Refuse; aio poll on AIOPIPE_POLL_DRAINED is the
	 * asynchronous, cancellable way to wait for a drain.
	 */
	if (current->flags & PF_KTHREAD)
		return -EOPNOTSUPP;
	/*
	 * Counted under the mutex: a read after this section sees the count
	 * and wakes fsync_wq (its lock orders that wakeup against our
	 * prepare_to_wait()); a read before it is in the clock we test.
	 */
	mutex_lock(&chan->mutex);
	chan->fsync_waiters++;
	mark = chan->produced;
	mutex_unlock(&chan->mutex);
	ret = wait_event_interruptible(chan->fsync_wq,
				       aiopipe_drained(chan, mark));
	mutex_lock(&chan->mutex);
	chan->fsync_waiters--;
	mutex_unlock(&chan->mutex);
	if (ret)
		return ret;
	return READ_ONCE(chan->consumed) >= mark ? 0 : -EPIPE;
}

/*
 * Drop this end's counts; complete what the vanished side left pending.
 * The last reader takes the channel off its ring; the last writer's going
 * is the ring's EOF event.
 */
void aiopipe_end_release(struct file *file)
{
	struct aiopipe_chan *chan = file->private_data;
	struct aiopipe_sink *sink = NULL;
	__poll_t key = 0;
	LIST_HEAD(done);

	mutex_lock(&chan->mutex);
	if (file->f_mode & FMODE_READ && !--chan->readers) {
		aiopipe_fail_pending(chan, true, &done);
		sink = aiopipe_sink_detach(chan, NULL);
		key |= AIOPIPE_ERR_KEY;
	}
	if (file->f_mode & FMODE_WRITE && !--chan->writers) {
		aiopipe_fail_pending(chan, false, &done);
		aiopipe_sink_eof(chan);
		key |= AIOPIPE_HUP_KEY;
	}
	mutex_unlock(&chan->mutex);
	aiopipe_sink_free(sink);
	if (key)
		aiopipe_wake_all(chan, key);
	aiopipe_finish_list(&done);
	aiopipe_fasync(-1, file, 0);
}

static int aiopipe_release(struct inode *inode, struct file *file)
{
	struct aiopipe_chan *chan = file->private_data;

	aiopipe_end_release(file);
	aiopipe_chan_put(chan);
	return 0;
}

ssize_t aiopipe_splice_read_fn(struct file *in, loff_t *ppos,
			       struct pipe_inode_info *pipe,
			       size_t len, unsigned int flags)
{
	return aiopipe_splice_read(in, ppos, pipe, len, flags);
}

const struct file_operations aiopipe_end_fops = {
	AIOPIPE_END_FOPS,
	.release	= aiopipe_release,
};

/* Make @file an end of @chan: a stream that honours IOCB_NOWAIT. */
void aiopipe_end_init(struct file *file, struct aiopipe_chan *chan)
{
	stream_open(file_inode(file), file);
	file->f_mode |= FMODE_NOWAIT;
	file->private_data = chan;
	/*
	 * No writer seen yet, as fifo_open() and create_pipe_files() set it.
	 * On 6.12 f_pipe shares a union with f_pos_lock, which init_file()
	 * initialised: "they are expected to initialize the respective member".
	 */
	*aiopipe_file_seen(file) = 0;
}
