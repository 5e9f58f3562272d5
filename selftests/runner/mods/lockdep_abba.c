// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberately broken test module for the runner's own tests: takes two
 * mutexes in both orders (A then B, later B then A). One thread does it
 * sequentially, so nothing deadlocks, but lockdep (CONFIG_PROVE_LOCKING)
 * sees the inverted order on the second pass and reports
 *   "WARNING: possible circular locking dependency detected".
 * On a kernel without lockdep it loads and unloads silently.
 */
#include <linux/module.h>
#include <linux/mutex.h>

static DEFINE_MUTEX(abba_a);
static DEFINE_MUTEX(abba_b);

static int __init lockdep_abba_init(void)
{
	mutex_lock(&abba_a);
	mutex_lock(&abba_b);
	mutex_unlock(&abba_b);
	mutex_unlock(&abba_a);

	/* The inverted order: lockdep reports here. */
	mutex_lock(&abba_b);
	mutex_lock(&abba_a);
	mutex_unlock(&abba_a);
	mutex_unlock(&abba_b);

	pr_info("lockdep_abba: took abba_a/abba_b in both orders\n");
	return 0;
}

static void __exit lockdep_abba_exit(void)
{
}

module_init(lockdep_abba_init);
module_exit(lockdep_abba_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("aiopipe runner self-test: ABBA lock order for lockdep");
