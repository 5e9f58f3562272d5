// SPDX-License-Identifier: GPL-2.0
/*
 * warn_on_load - a test module for scripts/vm-run's splat detection.
 *
 * Loading it prints a WARNING (WARN_ON(1)) with a call trace and then
 * succeeds, so "insmod warn_on_load.ko" exits 0 while the kernel log shows
 * a splat: selftests/runner/run.sh checks that vm-run fails such a run.
 */
#include <linux/bug.h>
#include <linux/init.h>
#include <linux/module.h>

static int __init warn_on_load_init(void)
{
	WARN_ON(1);
	return 0;
}

static void __exit warn_on_load_exit(void)
{
}

module_init(warn_on_load_init);
module_exit(warn_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vm-run self-test: WARN_ON(1) at load time");
