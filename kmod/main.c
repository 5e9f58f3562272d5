// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe: pipes whose read and write are truly asynchronous under Linux
 * native AIO (libaio) and io_uring.  Module parameters, init and exit.
 */
#include "aiopipe.h"
#include "fault.h"
#include "pause.h"

#include <linux/module.h>
#include <linux/moduleparam.h>

struct workqueue_struct *aiopipe_wq;
struct workqueue_struct *aiopipe_fault_wq;

unsigned int aiopipe_default_capacity = 65536;
module_param_named(capacity, aiopipe_default_capacity, uint, 0444);
MODULE_PARM_DESC(capacity, "Default channel capacity in bytes (rounded like F_SETPIPE_SZ; default 65536)");

/*
 * Writable parameters are validated on every write, as at load: a value
 * that a channel would take over later must be one it can work with.
 */
static int aiopipe_param_set_range(const char *val, unsigned int *p,
				   unsigned int min, unsigned int max)
{
	unsigned int v;
	int ret;

	ret = kstrtouint(val, 0, &v);
	if (ret)
		return ret;
	if (v < min || v > max)
		return -EINVAL;
	WRITE_ONCE(*p, v);
	return 0;
}

static int aiopipe_param_set_engine(const char *val,
				    const struct kernel_param *kp)
{
	return aiopipe_param_set_range(val, kp->arg, AIOPIPE_ENGINE_RETRY,
				       AIOPIPE_ENGINE_DIRECT);
}

static int aiopipe_param_set_filter(const char *val,
				    const struct kernel_param *kp)
{
	return aiopipe_param_set_range(val, kp->arg, AIOPIPE_FILTER_OFF,
				       AIOPIPE_FILTER_ON);
}

/* A capacity: PAGE_SIZE .. AIOPIPE_CAPACITY_MAX bytes. */
static int aiopipe_param_set_capacity(const char *val,
				      const struct kernel_param *kp)
{
	return aiopipe_param_set_range(val, kp->arg, PAGE_SIZE,
				       AIOPIPE_CAPACITY_MAX);
}

/* Pin bounds: 0 (never pin) .. 2^20 pages, so the budget never overflows. */
static int aiopipe_param_set_pages(const char *val,
				   const struct kernel_param *kp)
{
	return aiopipe_param_set_range(val, kp->arg, 0, 1U << 20);
}

/* Small reads: 0 (pin every read) .. the bounce buffer's size. */
static int aiopipe_param_set_small_read(const char *val,
					const struct kernel_param *kp)
{
	return aiopipe_param_set_range(val, kp->arg, 0, AIOPIPE_SMALL_READ_MAX);
}

static const struct kernel_param_ops aiopipe_pages_ops = {
	.set = aiopipe_param_set_pages,
	.get = param_get_uint,
};

static const struct kernel_param_ops aiopipe_engine_param_ops = {
	.set = aiopipe_param_set_engine,
	.get = param_get_uint,
};

static const struct kernel_param_ops aiopipe_filter_ops = {
	.set = aiopipe_param_set_filter,
	.get = param_get_uint,
};

static const struct kernel_param_ops aiopipe_capacity_ops = {
	.set = aiopipe_param_set_capacity,
	.get = param_get_uint,
};

static const struct kernel_param_ops aiopipe_small_read_ops = {
	.set = aiopipe_param_set_small_read,
	.get = param_get_uint,
};

unsigned int aiopipe_max_capacity = 1048576;
module_param_cb(max_capacity, &aiopipe_capacity_ops, &aiopipe_max_capacity, 0644);
MODULE_PARM_DESC(max_capacity, "Largest capacity without CAP_SYS_RESOURCE, like pipe-max-size (default 1 MiB)");

unsigned int aiopipe_default_engine = AIOPIPE_ENGINE_RETRY;
module_param_cb(engine, &aiopipe_engine_param_ops, &aiopipe_default_engine, 0644);
MODULE_PARM_DESC(engine, "Default completion engine: 1 = retry (default), 2 = direct");

unsigned int aiopipe_default_filter = AIOPIPE_FILTER_ON;
module_param_cb(filter, &aiopipe_filter_ops, &aiopipe_default_filter, 0644);
MODULE_PARM_DESC(filter, "Default wakeup filtering for the retry engine: 1 = on (default), 0 = off");

unsigned int aiopipe_max_pin_pages_req = 256;
module_param_cb(max_pin_pages_req, &aiopipe_pages_ops, &aiopipe_max_pin_pages_req, 0644);
MODULE_PARM_DESC(max_pin_pages_req, "Direct engine: most pages pinned for one request (default 256)");

unsigned int aiopipe_max_pin_pages_chan = 1024;
module_param_cb(max_pin_pages_chan, &aiopipe_pages_ops, &aiopipe_max_pin_pages_chan, 0644);
MODULE_PARM_DESC(max_pin_pages_chan, "Direct engine: most pages pinned per channel (default 1024)");

unsigned int aiopipe_small_read_max = AIOPIPE_SMALL_READ_MAX;
module_param_cb(small_read_max, &aiopipe_small_read_ops, &aiopipe_small_read_max, 0644);
MODULE_PARM_DESC(small_read_max, "Direct engine: reads of at most this many bytes are filled without pinning by writers in the reader's address space (0..256, default 256; 0 = pin every read)");

static unsigned int aiopipe_nr_fifo_nodes = 4;
module_param_named(fifos, aiopipe_nr_fifo_nodes, uint, 0444);
MODULE_PARM_DESC(fifos, "Number of named FIFOs /dev/aiopipeN (default 4)");

/*
 * Named FIFOs are shared by everyone on the machine, so by default only
 * root opens them; the udev rule grants a group (docs/semantics.md).
 */
umode_t aiopipe_fifo_mode = 0600;
module_param_named(fifo_mode, aiopipe_fifo_mode, ushort, 0444);
MODULE_PARM_DESC(fifo_mode, "Mode of the /dev/aiopipeN nodes (default 0600)");

unsigned long aiopipe_user_pages_soft = 16384;
module_param_named(user_pages_soft, aiopipe_user_pages_soft, ulong, 0644);
MODULE_PARM_DESC(user_pages_soft, "Ring pages per user (with its kernel pipes) past which new channels get the minimum capacity, like pipe-user-pages-soft (default 16384; 0 = no limit)");

unsigned long aiopipe_user_pages_hard;
module_param_named(user_pages_hard, aiopipe_user_pages_hard, ulong, 0644);
MODULE_PARM_DESC(user_pages_hard, "Ring pages per user (with its kernel pipes) past which channels cannot be created or grown, like pipe-user-pages-hard (default 0 = no limit)");

static bool aiopipe_pause_points;
module_param_named(pause_points, aiopipe_pause_points, bool, 0444);
MODULE_PARM_DESC(pause_points, "Test pause points in debugfs (aiopipe/pause/); default off");

static int aiopipe_check_params(void)
{
	u32 cap;

	if (aiopipe_default_engine < AIOPIPE_ENGINE_RETRY ||
	    aiopipe_default_engine > AIOPIPE_ENGINE_DIRECT ||
	    aiopipe_default_filter > AIOPIPE_FILTER_ON ||
	    aiopipe_nr_fifo_nodes > 64 || (aiopipe_fifo_mode & ~0777))
		return -EINVAL;
	if (aiopipe_chan_round_capacity(aiopipe_default_capacity, &cap))
		return -EINVAL;
	aiopipe_default_capacity = cap;
	return 0;
}

static int __init aiopipe_init(void)
{
	int ret;

	ret = aiopipe_check_params();
	if (ret) {
		pr_err("invalid module parameter\n");
		return ret;
	}
	aiopipe_wq = alloc_workqueue("aiopipe", 0, 0);
	if (!aiopipe_wq)
		return -ENOMEM;
	/*
	 * Fault-ins may wait as long as a user's page fault does (a FUSE
	 * daemon, a userfaultfd): their own unbound queue, so they can never
	 * hold back a retry or the completion of a cancel.
	 */
	ret = -ENOMEM;
	aiopipe_fault_wq = alloc_workqueue("aiopipe_fault", WQ_UNBOUND, 0);
	if (!aiopipe_fault_wq)
		goto destroy_wq;
	ret = aiopipe_stats_init();
	if (ret)
		goto destroy_fault_wq;
	ret = aiopipe_fault_init();
	if (ret)
		goto destroy_fault_wq;
	ret = aiopipe_pause_init(aiopipe_pause_points);
	if (ret)
		goto fault_exit;
	/*
	 * User-visible interfaces last, and nothing may fail once one is
	 * visible (a file opened while the module is COMING would outlive a
	 * failed init): the factory is the last step that can fail; the
	 * named FIFOs, after it, keep the nodes they could make.
	 */
	ret = aiopipe_factory_init();
	if (ret)
		goto pause_exit;
	ret = aiopipe_fifo_init(aiopipe_nr_fifo_nodes);
	if (ret) {
		pr_warn("no named FIFOs: %d\n", ret);
		ret = 0;
	}
	return 0;

pause_exit:
	aiopipe_pause_exit();
fault_exit:
	aiopipe_fault_exit();
destroy_fault_wq:
	destroy_workqueue(aiopipe_fault_wq);
destroy_wq:
	destroy_workqueue(aiopipe_wq);
	return ret;
}

/*
 * Mirrors aiopipe_init().  No request can be alive here: each one holds a
 * file reference, which holds the module.  destroy_workqueue() waits for a
 * work item still running the tail of a completion.
 */
static void __exit aiopipe_exit(void)
{
	aiopipe_fifo_exit();
	aiopipe_factory_exit();
	aiopipe_pause_exit();
	aiopipe_fault_exit();
	destroy_workqueue(aiopipe_fault_wq);
	destroy_workqueue(aiopipe_wq);
}

module_init(aiopipe_init);
module_exit(aiopipe_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("aiopipe developers");
MODULE_DESCRIPTION("Pipes that are truly asynchronous under libaio and io_uring");
MODULE_VERSION(AIOPIPE_VERSION);
