/* SPDX-License-Identifier: GPL-2.0 */
/*
 * aiopipe internal definitions: the channel, the async request, and the
 * interfaces between the files of the module.
 *
 * Locking rules and object lifetimes are documented at the top of
 * channel.c, which owns the channel.
 */
#ifndef _AIOPIPE_H
#define _AIOPIPE_H

#ifndef pr_fmt
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#endif

#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/uio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/bvec.h>
#include <linux/percpu.h>
#include <linux/aiopipe.h>

/* Wake keys: what happened. */
#define AIOPIPE_READ_KEY	(EPOLLIN | EPOLLRDNORM)		/* bytes to read */
#define AIOPIPE_WRITE_KEY	(EPOLLOUT | EPOLLWRNORM)	/* room to write */
#define AIOPIPE_HUP_KEY		(EPOLLHUP | EPOLLIN | EPOLLRDNORM) /* no writers */
#define AIOPIPE_ERR_KEY		(EPOLLERR | EPOLLOUT | EPOLLWRNORM) /* no readers */
#define AIOPIPE_DRAIN_KEY	((__force __poll_t)AIOPIPE_POLL_DRAINED)
/* Waiter masks: every key a reader, or a writer, is woken by. */
#define AIOPIPE_READER_MASK	(AIOPIPE_READ_KEY | AIOPIPE_HUP_KEY)
#define AIOPIPE_WRITER_MASK	(AIOPIPE_WRITE_KEY | AIOPIPE_ERR_KEY)
/*
 * Internal, never given to the poll wait queue: a read consumed bytes
 * while somebody waits in fsync; aiopipe_wake() wakes chan->fsync_wq.
 */
#define AIOPIPE_CONSUMED_KEY	((__force __poll_t)(1U << 24))

/* Counters: the order is the order of the u64 fields of struct aiopipe_stats. */
enum aiopipe_stat {
	AP_SYNC_READS,
	AP_SYNC_WRITES,
	AP_ASYNC_READS,
	AP_ASYNC_WRITES,
	AP_COMPLETED_AT_SUBMIT,
	AP_QUEUED,
	AP_COMPLETED_BY_PEER,
	AP_COMPLETED_BY_RETRY,
	AP_RETRIES,
	AP_FUTILE_RETRIES,
	AP_WAKEUPS_DELIVERED,
	AP_WAKEUPS_FILTERED,
	AP_CANCELS,
	AP_EOF_COMPLETIONS,
	AP_EPIPE_COMPLETIONS,
	AP_BYTES_SINGLE_COPY,
	AP_BYTES_RING,
	AP_PENDING_READS,
	AP_PENDING_WRITES,
	AP_PINNED_PAGES,
	AP_PINNED_PAGES_PEAK,
	AP_BYTES_BUFFERED,
	AP_CHANNELS,
	AP_RING_BUFFERS,
	AP_RING_BYTES,
	AP_RING_SPILLED,
	AP_RING_OWED,
	AP_NR_STATS
};

/*
 * A channel's counters.  Those of its hot paths are plain, each updated
 * under the one lock its sites hold (the mutex, or wq.lock for the wake
 * and cancel callbacks; stats.c says which), so a read or a write costs no
 * atomic read-modify-write; the others are atomics.  Readers take a
 * snapshot without locks.
 */
struct aiopipe_counters {
	u64 locked[AP_NR_STATS];
	atomic64_t shared[AP_NR_STATS];
};

/* The pipe object: see the LOCKING comment in channel.c. */

struct aiopipe_chan {
	struct kref ref;
	u64 id;				/* set once: names it in traces, fdinfo */
	struct user_struct *user;	/* charged for the ring (pipe_bufs) */
	struct mutex mutex;
	wait_queue_head_t wq;

	/* under mutex */
	struct page **ring;	/* cap / PAGE_SIZE pages */
	u32 cap;
	u32 head;
	u32 len;
	unsigned int readers;
	unsigned int writers;
	unsigned int r_counter;
	unsigned int w_counter;
	u64 consumed;		/* bytes ever read: the drain barrier's clock */
	u64 produced;		/* bytes ever put in the ring or a reader */
	u64 last_req;		/* the id of its latest queued request */
	unsigned int fsync_waiters;	/* tasks in fsync: wake them as reads go */

	/* under wq.lock */
	struct list_head rd_pending;
	struct list_head wr_pending;
	/* lockless hints: a peer may claim the first pending read / write */
	bool rd_head_direct;	/* (for a small read: a peer in its mm) */
	bool wr_head_direct;

	/* no lock: set by ioctl, read once by each user (WRITE_ONCE/READ_ONCE) */
	u32 engine;
	u32 filter;

	atomic_t pinned_pages;	/* the direct engine's pin budget in use */
	/* ring mode: the ring this channel's bytes go to (evring.c), mutex */
	struct aiopipe_sink *sink;
	/* ring mode: bytes before this point of consumed were announced */
	u64 announced_end;
	/* the memory of a freed request, for the next one (request.c) */
	struct aiopipe_req *spare_req;

	/* set once, locklessly: somebody polls for a drain (aiopipe_wake()) */
	bool drain_wanted;
	wait_queue_head_t fsync_wq;	/* tasks in fsync, never polled */
	struct work_struct promote_work; /* promote the heads, mutex taken */

	struct fasync_struct *fasync_readers;
	struct fasync_struct *fasync_writers;
	struct aiopipe_counters stats;
};

enum aiopipe_req_state {
	RQ_NEW,		/* allocated, not yet on a pending list */
	RQ_QUEUED,	/* on a pending list, idle (armed if park_armed, head) */
	RQ_KICKED,	/* on a pending list, its work item is queued */
	RQ_BUSY,	/* on a pending list, an owner is moving its bytes */
	RQ_FAULTING,	/* on a pending list, fault_work faults its pages in */
	RQ_DONE,	/* off the list; whoever set DONE completes it */
};

enum aiopipe_kick {
	KICK_WAKE,	/* a wakeup matched: a retry that moves nothing is futile */
	KICK_PROMOTE,	/* became head of the list, or must finish */
	KICK_FAULT,	/* its pages were faulted in: moving nothing is futile */
};

/* What a retry worker adopted from the submitter, to give back in leave(). */
struct aiopipe_adopt {
	struct mm_struct *mm;
	const struct cred *cred;
	const struct cred *old_cred;
};

struct aiopipe_req;
struct aiopipe_sink;

/**
 * struct aiopipe_engine_ops - what an engine does for a request
 * @engine: its AIOPIPE_ENGINE_* value
 * @name: for fdinfo
 * @peer_claimable: a queued request may be served by the other side's
 *	syscall (peer_in/peer_out), so sleepers there may count on it
 * @peer_same_mm: only by a peer running in the submitter's address space
 *	(req->mm): it copies to the submitter's user addresses
 * @park_armed: a request parked first in line waits on the channel's
 *	queue for a wakeup that kicks its retry
 * @prepare: at submission, process context, mutex held: take what later
 *	copies need (pins, or mm and credentials); an error falls back to
 *	the retry engine
 * @finish: at completion, before the result is visible (may sleep)
 * @release: when the last reference goes
 * @enter: a worker starts on the request (before it knows whether the
 *	request was cancelled meanwhile): adopt its context; -ESRCH when
 *	the submitter's address space is gone; leave() follows every 0
 * @leave: undo enter(), from @at alone (the request may be gone)
 * @fault_in: fault in user memory a copy stopped at, no lock held;
 *	returns the bytes not faulted in
 * @peer_in: copy from the caller's @from into the request, at most @max
 * @peer_out: copy from the request into the caller's @to
 *
 * Every hook but prepare may be NULL: nothing to do.  peer_in and
 * peer_out set *@fault when the caller's side of a copy stops short; a
 * peer_in whose copy into the request stops short returns 0 and leaves
 * the request as it was (a small read's page not present).
 */
struct aiopipe_engine_ops {
	u32 engine;
	const char *name;
	bool peer_claimable;
	bool peer_same_mm;
	bool park_armed;
	int (*prepare)(struct aiopipe_req *req, struct iov_iter *iter);
	void (*finish)(struct aiopipe_req *req);
	void (*release)(struct aiopipe_req *req);
	int (*enter)(struct aiopipe_req *req, struct aiopipe_adopt *at);
	void (*leave)(struct aiopipe_adopt *at);
	size_t (*fault_in)(struct aiopipe_req *req, unsigned long addr,
			   size_t len);
	size_t (*peer_in)(struct aiopipe_req *req, struct iov_iter *from,
			  size_t max, bool *fault);
	size_t (*peer_out)(struct aiopipe_req *req, struct iov_iter *to,
			   bool *fault);
};

/* Small requests keep their page vector inline: no allocation to pin. */
#define AIOPIPE_INLINE_BVECS	2

/*
 * Reads up to this many bytes on the direct engine are not pinned: a
 * writer in the submitter's address space fills them through a bounce
 * buffer of this size on its stack (aiopipe_small_ops, retry.c).
 */
#define AIOPIPE_SMALL_READ_MAX	256

/*
 * A queued libaio request.  Its memory is refcounted: the completion path
 * holds one reference, and fault_work holds one while it faults pages in
 * without any lock, so that a cancel can complete the request meanwhile.
 * iter, done, bounce and the fault fields belong to whoever holds the
 * request BUSY (or KICKED: its worker; FAULTING: fault_work), see request.c.
 */
struct aiopipe_req {
	struct kref ref;
	struct kiocb *iocb;
	const struct aiopipe_engine_ops *ops;
	struct aiopipe_chan *chan;	/* holds a reference */
	u64 id;				/* per channel, from 1, never reused */
	struct list_head node;		/* rd_pending / wr_pending */
	struct wait_queue_entry wait;	/* on chan->wq while armed */
	struct work_struct work;
	struct work_struct fault_work;	/* retry: fault user pages in */
	struct list_head fault_wait;	/* in its user's line for fault_work */
	struct iov_iter iter;		/* the part still to move */
	const void *dup;		/* retry: our copy of the iovec array */
	struct mm_struct *mm;		/* retry: submitter's mm (mmgrab) */
	const struct cred *cred;	/* retry: submitter's credentials */
	unsigned long fault_addr;	/* retry: the range to fault in */
	size_t fault_len;
	size_t fault_left;		/* bytes left after the last fault's place */
	unsigned int fault_repeats;	/* fault-ins since that place last moved */
	struct mm_struct *pin_mm;	/* direct: pinned_vm charged (mmgrab) */
	struct bio_vec *bv;		/* direct: the pinned pages */
	struct bio_vec inline_bv[AIOPIPE_INLINE_BVECS];
	unsigned int nr_bv;
	struct user_struct *pin_user;	/* direct: charged for pin_charged */
	unsigned int pin_charged;
	size_t done;			/* bytes moved so far */
	long res;			/* the completion result, once DONE */
	enum aiopipe_req_state state;
	enum aiopipe_kick kick;
	bool write;
	bool atomic;			/* a write of at most PIPE_BUF bytes */
	bool cancelled;
	bool fault_failed;		/* the last fault-in could not map a page */
	bool promote_next;		/* taken as head without the mutex */
	bool wake_behind;		/* it emptied its list: wake sync waiters */
};

/* main.c */
extern struct workqueue_struct *aiopipe_wq;
extern struct workqueue_struct *aiopipe_fault_wq;
extern unsigned int aiopipe_default_capacity;
extern unsigned int aiopipe_max_capacity;
extern unsigned int aiopipe_default_engine;
extern unsigned int aiopipe_default_filter;
extern unsigned int aiopipe_max_pin_pages_req;
extern unsigned int aiopipe_small_read_max;
extern unsigned int aiopipe_max_pin_pages_chan;
extern umode_t aiopipe_fifo_mode;
extern unsigned long aiopipe_user_pages_soft;
extern unsigned long aiopipe_user_pages_hard;

/* limits.c */
u32 aiopipe_limit_capacity(u32 cap);
int aiopipe_charge_ring(struct user_struct *user, u32 old, u32 new);
void aiopipe_uncharge_ring(struct user_struct *user, u32 bytes);
struct user_struct *aiopipe_charge_pins(unsigned long nr);
int aiopipe_fault_queue(kuid_t uid, struct workqueue_struct *wq,
			struct work_struct *work, struct list_head *entry);
void aiopipe_fault_done(kuid_t uid, struct workqueue_struct *wq,
			struct work_struct *(*to_work)(struct list_head *));
void aiopipe_uncharge_pins(struct user_struct *user, unsigned long nr);

/* channel.c: the ring, readiness, wakeups */
/* a channel without its request core: aiopipe_chan_create() makes ends' */
struct aiopipe_chan *aiopipe_chan_alloc(u32 capacity, u32 engine);
void aiopipe_chan_put(struct aiopipe_chan *chan);
int aiopipe_chan_round_capacity(u64 size, u32 *cap);
int aiopipe_chan_set_capacity(struct aiopipe_chan *chan, u32 size);
size_t aiopipe_ring_to_iter(struct aiopipe_chan *chan, struct iov_iter *to,
			    bool *fault);
size_t aiopipe_ring_from_iter(struct aiopipe_chan *chan, struct iov_iter *from,
			      size_t max, bool *fault);
void aiopipe_wake(struct aiopipe_chan *chan, __poll_t key);
void aiopipe_wake_all(struct aiopipe_chan *chan, __poll_t key);
int aiopipe_wait(struct aiopipe_chan *chan, __poll_t mask,
		 bool (*ready)(const struct aiopipe_chan *, size_t), size_t arg);

static inline u32 aiopipe_free(const struct aiopipe_chan *chan)
{
	return chan->cap - chan->len;
}

static inline struct aiopipe_req *aiopipe_head(struct list_head *list)
{
	return list_first_entry_or_null(list, struct aiopipe_req, node);
}

/* Readiness, from the channel's state: sleepers read it without locks. */
/* Something a reader can take, or EOF. */
static inline bool aiopipe_read_ready(const struct aiopipe_chan *chan)
{
	return READ_ONCE(chan->len) || !READ_ONCE(chan->writers) ||
	       READ_ONCE(chan->wr_head_direct);
}

/*
 * Room for the next part of a write of @left bytes: all of it when it is at
 * most PIPE_BUF (atomicity), else PIPE_BUF; or a pending reader to copy to
 * directly; or no readers (EPIPE).
 */
static inline bool aiopipe_write_ready(const struct aiopipe_chan *chan,
				       size_t left)
{
	return aiopipe_free(chan) >= min_t(size_t, left, PIPE_BUF) ||
	       !READ_ONCE(chan->readers) ||
	       (!READ_ONCE(chan->len) && READ_ONCE(chan->rd_head_direct));
}

/* Wake key after a read that moved bytes and left @free_before room. */
static inline __poll_t aiopipe_read_wakes(const struct aiopipe_chan *chan,
					  u32 free_before, bool next_reader)
{
	__poll_t key = 0;

	/* writers only care once an end is writable again: PIPE_BUF free */
	if (free_before < PIPE_BUF && aiopipe_free(chan) >= PIPE_BUF)
		key |= AIOPIPE_WRITE_KEY;
	if (next_reader && chan->len)
		key |= AIOPIPE_READ_KEY;
	if (chan->consumed == chan->produced)
		key |= AIOPIPE_DRAIN_KEY;
	if (chan->fsync_waiters)
		key |= AIOPIPE_CONSUMED_KEY;
	return key;
}

/* retry.c, direct.c: the engines */
extern const struct aiopipe_engine_ops aiopipe_retry_ops;
extern const struct aiopipe_engine_ops aiopipe_direct_ops;
extern const struct aiopipe_engine_ops aiopipe_small_ops;
size_t aiopipe_small_fill(struct aiopipe_req *req, struct iov_iter *from,
			  size_t max, bool *fault);
size_t aiopipe_direct_fill(struct aiopipe_req *req, struct iov_iter *from,
			   size_t max, bool *fault);
size_t aiopipe_direct_drain(struct aiopipe_req *req, struct iov_iter *to,
			    bool *fault);

/* request.c: the request core's state machine, cancel and completion */
struct aiopipe_chan *aiopipe_chan_create(u32 capacity, u32 engine);
int aiopipe_set_capacity(struct aiopipe_chan *chan, u32 size);
ssize_t aiopipe_queue(struct aiopipe_chan *chan, struct kiocb *iocb,
		      struct iov_iter *iter, bool write, size_t done_already,
		      struct list_head *done);
struct aiopipe_req *aiopipe_claim_by_peer(struct aiopipe_chan *chan,
					  struct list_head *list);
/* true if @req went back in line */
bool aiopipe_unclaim(struct aiopipe_req *req, bool finished, long res,
		     struct list_head *done);
void aiopipe_req_take_locked(struct aiopipe_req *req, long res,
			     struct list_head *done);
void aiopipe_req_take_cancelled(struct aiopipe_req *req, long res);
void aiopipe_heads_changed_locked(struct aiopipe_chan *chan);
void aiopipe_req_put(struct aiopipe_req *req);
void aiopipe_req_finish_taken(struct aiopipe_req *req);
struct seq_file;
void aiopipe_show_fdinfo(struct seq_file *m, struct file *file);
void aiopipe_finish_list(struct list_head *done);
void aiopipe_fail_pending(struct aiopipe_chan *chan, bool writes,
			  struct list_head *done);

/* worker.c: the request core's retry worker, wakeups and fault-ins */
void aiopipe_req_init(struct aiopipe_req *req);
void aiopipe_arm_locked(struct aiopipe_req *req);
void aiopipe_kick_locked(struct aiopipe_req *req, enum aiopipe_kick why);

/* transfer.c: the request core's transfer, for sync and async callers */
enum aiopipe_step {
	STEP_PARK,	/* nothing more possible now: wait in line */
	STEP_DONE,	/* complete with req->res */
	STEP_FAULT,	/* a user page is not present: fault it in, unlocked */
};

size_t aiopipe_move_out(struct aiopipe_chan *chan, struct iov_iter *to,
			struct list_head *done, bool *fault);
size_t aiopipe_move_in(struct aiopipe_chan *chan, struct iov_iter *from,
		       size_t max, struct list_head *done, bool *fault);
enum aiopipe_step aiopipe_req_move(struct aiopipe_chan *chan,
				   struct aiopipe_req *req,
				   struct list_head *done, __poll_t *key);

/* file.c: the file operations */
extern const struct file_operations aiopipe_end_fops;
void aiopipe_end_init(struct file *file, struct aiopipe_chan *chan);
void aiopipe_end_release(struct file *file);
ssize_t aiopipe_read_iter(struct kiocb *iocb, struct iov_iter *to);
ssize_t aiopipe_write_iter(struct kiocb *iocb, struct iov_iter *from);
__poll_t aiopipe_poll(struct file *file, poll_table *wait);
long aiopipe_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
int aiopipe_fsync(struct file *file, loff_t start, loff_t end, int datasync);
int aiopipe_fasync(int fd, struct file *file, int on);
ssize_t aiopipe_splice_read_fn(struct file *in, loff_t *ppos,
			       struct pipe_inode_info *pipe, size_t len,
			       unsigned int flags);

/*
 * What every end's file_operations share: an anonymous end's (file.c) adds
 * its release, a named FIFO's (fifo.c) its open and release.
 */
#define AIOPIPE_END_FOPS						\
	.owner		= THIS_MODULE,					\
	.read_iter	= aiopipe_read_iter,				\
	.write_iter	= aiopipe_write_iter,				\
	.poll		= aiopipe_poll,					\
	.unlocked_ioctl	= aiopipe_ioctl,				\
	.compat_ioctl	= compat_ptr_ioctl,				\
	.fsync		= aiopipe_fsync,				\
	.fasync		= aiopipe_fasync,				\
	.splice_read	= aiopipe_splice_read_fn,			\
	.splice_write	= iter_file_splice_write,			\
	.show_fdinfo	= aiopipe_show_fdinfo

/* stats.c */
struct aiopipe_pcpu_counters {
	s64 v[AP_NR_STATS];
};

DECLARE_PER_CPU(struct aiopipe_pcpu_counters, aiopipe_global);

/* Which lock a per-channel counter is updated under; none: an atomic. */
enum aiopipe_stat_lock { AP_LOCK_NONE, AP_LOCK_MUTEX, AP_LOCK_WQ };

static __always_inline enum aiopipe_stat_lock
aiopipe_stat_lock(enum aiopipe_stat s)
{
	switch (s) {
	case AP_SYNC_READS ... AP_FUTILE_RETRIES:
	case AP_BYTES_SINGLE_COPY ... AP_BYTES_RING:
	case AP_BYTES_BUFFERED:
	case AP_RING_BUFFERS ... AP_RING_OWED:
		return AP_LOCK_MUTEX;
	case AP_WAKEUPS_DELIVERED ... AP_CANCELS:
		return AP_LOCK_WQ;
	default:
		return AP_LOCK_NONE;
	}
}

/*
 * Count @n in the channel's copy (plain, under the lock its class names,
 * or atomic) and in this CPU's global one.  Inline: @s is a constant at
 * almost every site, so the class is decided at compile time.
 */
static __always_inline void aiopipe_stat_add(struct aiopipe_chan *chan,
					     enum aiopipe_stat s, s64 n)
{
	switch (aiopipe_stat_lock(s)) {
	case AP_LOCK_MUTEX:
		lockdep_assert_held(&chan->mutex);
		WRITE_ONCE(chan->stats.locked[s], chan->stats.locked[s] + n);
		break;
	case AP_LOCK_WQ:
		lockdep_assert_held(&chan->wq.lock);
		WRITE_ONCE(chan->stats.locked[s], chan->stats.locked[s] + n);
		break;
	case AP_LOCK_NONE:
		if (s != AP_CHANNELS)
			atomic64_add(n, &chan->stats.shared[s]);
		break;
	}
	this_cpu_add(aiopipe_global.v[s], n);
}

void aiopipe_stat_gone(struct aiopipe_chan *chan, enum aiopipe_stat s, s64 n);
void aiopipe_stat_pinned(struct aiopipe_chan *chan, s64 n);
void aiopipe_stats_fill(struct aiopipe_chan *chan, struct aiopipe_stats *st);
int aiopipe_stats_copy(struct aiopipe_chan *chan, void __user *arg);
int aiopipe_stats_init(void);
extern const struct attribute_group *aiopipe_stats_groups[];

static inline void aiopipe_stat_inc(struct aiopipe_chan *chan,
				    enum aiopipe_stat s)
{
	aiopipe_stat_add(chan, s, 1);
}

/* factory.c, fifo.c */
int aiopipe_factory_init(void);
void aiopipe_factory_exit(void);
int aiopipe_fifo_init(unsigned int count);
void aiopipe_fifo_exit(void);

#endif /* _AIOPIPE_H */
