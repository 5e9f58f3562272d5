// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberately broken test module for the runner's own tests: takes a mutex
 * (a sleeping lock) while holding a spinlock. The mutex is free, so nothing
 * actually sleeps, but mutex_lock()'s might_sleep() check
 * (CONFIG_DEBUG_ATOMIC_SLEEP) reports
 *   "BUG: sleeping function called from invalid context".
 * On a kernel without that option it loads and unloads silently.
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(sia_lock);
static DEFINE_MUTEX(sia_mutex);

static int __init sleep_in_atomic_init(void)
{
	spin_lock(&sia_lock);
	mutex_lock(&sia_mutex);		/* might sleep: invalid under a spinlock */
	mutex_unlock(&sia_mutex);
	spin_unlock(&sia_lock);

	pr_info("sleep_in_atomic: took a mutex under a spinlock\n");
	return 0;
}

static void __exit sleep_in_atomic_exit(void)
{
}

module_init(sleep_in_atomic_init);
module_exit(sleep_in_atomic_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("aiopipe runner self-test: sleeping lock in atomic context");
