// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe resource limits, charged where the kernel charges its own pipes
 * and pinned memory:
 *
 *  - ring buffers count in the user's pipe_bufs (pages), together with the
 *    user's kernel pipes, against the user_pages_soft / user_pages_hard
 *    module parameters (the analogues of pipe-user-pages-soft/hard): over
 *    the soft limit a new channel gets the minimum capacity, over the hard
 *    limit channel creation fails with ENFILE and growing with EPERM, unless
 *    the caller has CAP_SYS_RESOURCE or CAP_SYS_ADMIN;
 *  - pages pinned by the direct engine count in the user's locked_vm
 *    against RLIMIT_MEMLOCK, as io_uring's registered buffers do, unless
 *    the caller has CAP_IPC_LOCK; past it the request uses the retry engine;
 *  - fault-ins of the retry engine (worker.c) in flight are at most
 *    AIOPIPE_FAULTS_PER_USER per user: a fault may wait as long as the
 *    memory behind it (a FUSE daemon, a userfaultfd) decides, and the
 *    workers that wait are shared.  A user's further fault-ins wait in that
 *    user's line, so one user's stuck faults hold back only its own.
 */
#include "aiopipe.h"

#include <linux/capability.h>
#include <linux/hashtable.h>
#include <linux/slab.h>
#include <linux/uidgid.h>
#include <linux/cred.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>

static inline bool aiopipe_user_privileged(void)
{
	return capable(CAP_SYS_RESOURCE) || capable(CAP_SYS_ADMIN);
}

static inline long aiopipe_pages(u32 bytes)
{
	return bytes >> PAGE_SHIFT;
}

/* The capacity a new channel may have, PAGE_SIZE when over the soft limit. */
u32 aiopipe_limit_capacity(u32 cap)
{
	long used = atomic_long_read(&current_user()->pipe_bufs);

	if (aiopipe_user_pages_soft && used >= aiopipe_user_pages_soft &&
	    !aiopipe_user_privileged())
		return PAGE_SIZE;
	return cap;
}

static inline bool aiopipe_over_soft(long pages)
{
	return aiopipe_user_pages_soft && pages > aiopipe_user_pages_soft;
}

static inline bool aiopipe_over_hard(long pages)
{
	return aiopipe_user_pages_hard && pages > aiopipe_user_pages_hard;
}

/*
 * Charge a ring changing from @old to @new bytes to @user.  As in
 * pipe_set_size(), growing past the soft or the hard limit is EPERM for an
 * unprivileged user; a new ring (@old == 0) only has to respect the hard
 * one, its size having been cut to the minimum past the soft one already.
 */
int aiopipe_charge_ring(struct user_struct *user, u32 old, u32 new)
{
	long delta = aiopipe_pages(new) - aiopipe_pages(old);
	long now = atomic_long_add_return(delta, &user->pipe_bufs);
	bool over = aiopipe_over_hard(now) || (old && aiopipe_over_soft(now));

	if (delta > 0 && over && !aiopipe_user_privileged()) {
		atomic_long_sub(delta, &user->pipe_bufs);
		return -EPERM;
	}
	return 0;
}

void aiopipe_uncharge_ring(struct user_struct *user, u32 bytes)
{
	atomic_long_sub(aiopipe_pages(bytes), &user->pipe_bufs);
}

/*
 * Charge @nr pinned pages to the submitter; returns the user to uncharge
 * later (a reference), NULL when nothing was charged (past the limit with
 * CAP_IPC_LOCK), or an ERR_PTR(-ENOMEM) over RLIMIT_MEMLOCK.
 *
 * Every direct request comes here, so the capability is asked only past
 * the limit: capable() runs the LSM hooks (and marks the task as having
 * used its privilege) on every call.  Under the limit a privileged caller
 * is charged like anyone else; past it, it pins uncharged, as io_uring
 * does for CAP_IPC_LOCK.
 */
struct user_struct *aiopipe_charge_pins(unsigned long nr)
{
	long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	struct user_struct *user = current_user();
	long cur = atomic_long_read(&user->locked_vm);

	do {
		if (cur + (long)nr > limit)
			return capable(CAP_IPC_LOCK) ? NULL : ERR_PTR(-ENOMEM);
	} while (!atomic_long_try_cmpxchg(&user->locked_vm, &cur, cur + nr));
	return get_uid(user);
}

void aiopipe_uncharge_pins(struct user_struct *user, unsigned long nr)
{
	if (!user)
		return;
	atomic_long_sub(nr, &user->locked_vm);
	free_uid(user);
}

#define AIOPIPE_FAULTS_PER_USER	16

/*
 * A user with fault-ins in flight.  LOCKING: aiopipe_fault_lock (irq-safe:
 * taken under chan->wq.lock) protects the table and every field.
 */
struct aiopipe_fault_user {
	struct hlist_node node;
	kuid_t uid;
	unsigned int running;		/* queued or running fault-ins */
	struct list_head waiting;	/* work items past the limit, in order */
};

static DEFINE_HASHTABLE(aiopipe_fault_users, 6);
static DEFINE_SPINLOCK(aiopipe_fault_lock);

static struct aiopipe_fault_user *aiopipe_fault_user(kuid_t uid)
{
	struct aiopipe_fault_user *u;

	lockdep_assert_held(&aiopipe_fault_lock);
	hash_for_each_possible(aiopipe_fault_users, u, node, __kuid_val(uid))
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

/*
 * Queue @work, a fault-in for @uid, on @wq now, or in @uid's line when it
 * has AIOPIPE_FAULTS_PER_USER running.  @entry links it while it waits.
 * Any context that may take a spinlock_t (GFP_ATOMIC under one: not under a
 * raw lock on PREEMPT_RT).  -ENOMEM when the user's entry cannot be made.
 */
int aiopipe_fault_queue(kuid_t uid, struct workqueue_struct *wq,
			struct work_struct *work, struct list_head *entry)
{
	struct aiopipe_fault_user *u;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&aiopipe_fault_lock, flags);
	u = aiopipe_fault_user(uid);
	if (!u) {
		u = kzalloc(sizeof(*u), GFP_ATOMIC);
		if (!u) {
			ret = -ENOMEM;
			goto unlock;
		}
		u->uid = uid;
		INIT_LIST_HEAD(&u->waiting);
		hash_add(aiopipe_fault_users, &u->node, __kuid_val(uid));
	}
	if (u->running < AIOPIPE_FAULTS_PER_USER) {
		u->running++;
		queue_work(wq, work);
	} else {
		list_add_tail(entry, &u->waiting);
	}
unlock:
	spin_unlock_irqrestore(&aiopipe_fault_lock, flags);
	return ret;
}

/*
 * A fault-in of @uid has ended: start the next one in its line, or give
 * its place back.  @to_work maps a waiting entry to its work item.
 */
void aiopipe_fault_done(kuid_t uid, struct workqueue_struct *wq,
			struct work_struct *(*to_work)(struct list_head *))
{
	struct aiopipe_fault_user *u;
	struct list_head *next;
	unsigned long flags;

	spin_lock_irqsave(&aiopipe_fault_lock, flags);
	u = aiopipe_fault_user(uid);
	if (WARN_ON_ONCE(!u || !u->running))
		goto unlock;
	if (!list_empty(&u->waiting)) {
		next = u->waiting.next;
		list_del_init(next);
		queue_work(wq, to_work(next));
	} else if (!--u->running) {
		hash_del(&u->node);
		kfree(u);
	}
unlock:
	spin_unlock_irqrestore(&aiopipe_fault_lock, flags);
}
