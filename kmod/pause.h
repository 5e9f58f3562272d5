/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pause points: named places in the module where a test can park the next
 * context that reaches them on a given channel, so that a second context
 * can be run into the window a race needs.  Tests synchronise on the fact
 * "a context is parked at P", never on sleeps.
 *
 * They exist only when the module is loaded with pause_points=1, which
 * creates /sys/kernel/debug/aiopipe/pause/<point> (root only, as all of
 * debugfs) and turns on a static key; otherwise each point is a no-op
 * branch and the files are absent.  The key is set once, at load: text
 * is never patched while the module runs.
 *
 * A point file takes:
 *	"arm CHAN"	park the next context that reaches the point on
 *			channel CHAN (the "channel:" line of fdinfo); 0 = any
 *	"release"	wake what is parked and disarm
 * and reads back "armed CHAN parked N released N".  A context that stays
 * parked longer than pause_timeout_ms is released on its own, so a test
 * that dies never leaves the channel stuck.
 *
 * A point may only sit where its context can sleep (mutexes may be held:
 * that is often the point).  Every point is listed in docs/hardening.md.
 */
#ifndef _AIOPIPE_PAUSE_H
#define _AIOPIPE_PAUSE_H

#include <linux/jump_label.h>
#include <linux/types.h>

enum aiopipe_pause_point {
	/* reader: a direct write pulled into the ring is QUEUED again (mutex) */
	AIOPIPE_PAUSE_PULL_UNCLAIMED,
	/* reader: a pending direct write it drained is QUEUED again (mutex) */
	AIOPIPE_PAUSE_DRAIN_UNCLAIMED,
	/* retry worker: its request is KICKED, mutex not yet taken */
	AIOPIPE_PAUSE_RETRY_START,
	/* retry worker: request claimed (BUSY), mutex held, nothing moved */
	AIOPIPE_PAUSE_RETRY_CLAIMED,
	/* a libaio request prepared, not yet on its list (mutex held) */
	AIOPIPE_PAUSE_QUEUE_PREPARED,
	/* writer: bytes are in, the mutex is dropped, the wakeup not sent */
	AIOPIPE_PAUSE_WRITE_UNLOCKED,
	/* reader: about to move bytes out, mutex held */
	AIOPIPE_PAUSE_READ_LOCKED,
	/* SET_CAPACITY: request parsed, mutex not yet taken */
	AIOPIPE_PAUSE_RESIZE_START,
	/* writer: a pending read claimed (BUSY), nothing copied (mutex) */
	AIOPIPE_PAUSE_FILL_CLAIMED,
	/* writer: took a ring mode buffer (mutex held, ring lock not), no copy */
	AIOPIPE_PAUSE_RING_FILLING,
	AIOPIPE_NR_PAUSE
};

#ifdef CONFIG_DEBUG_FS
DECLARE_STATIC_KEY_FALSE(aiopipe_pause_key);
void __aiopipe_pause(enum aiopipe_pause_point p, u64 chan_id);
int aiopipe_pause_init(bool enable);
void aiopipe_pause_exit(void);

/* Park here if a test armed @p for channel @chan_id.  Process context. */
static __always_inline void aiopipe_pause(enum aiopipe_pause_point p,
					  u64 chan_id)
{
	if (static_branch_unlikely(&aiopipe_pause_key))
		__aiopipe_pause(p, chan_id);
}
#else
static inline void aiopipe_pause(enum aiopipe_pause_point p, u64 chan_id)
{
}

static inline int aiopipe_pause_init(bool enable)
{
	return 0;
}

static inline void aiopipe_pause_exit(void)
{
}
#endif

#endif /* _AIOPIPE_PAUSE_H */
