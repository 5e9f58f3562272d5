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

unsigned int aiopipe_default_capacity = 65536;
module_param_named(capacity, aiopipe_default_capacity, uint, 0444);
MODULE_PARM_DESC(capacity, "Default channel capacity in bytes (rounded like F_SETPIPE_SZ; default 65536)");

unsigned int aiopipe_max_capacity = 1048576;
module_param_named(max_capacity, aiopipe_max_capacity, uint, 0644);
MODULE_PARM_DESC(max_capacity, "Largest capacity without CAP_SYS_RESOURCE, like pipe-max-size (default 1 MiB)");

unsigned int aiopipe_default_engine = AIOPIPE_ENGINE_RETRY;
module_param_named(engine, aiopipe_default_engine, uint, 0644);
MODULE_PARM_DESC(engine, "Default completion engine: 1 = retry (default), 2 = direct");

unsigned int aiopipe_default_filter = AIOPIPE_FILTER_ON;
module_param_named(filter, aiopipe_default_filter, uint, 0644);
MODULE_PARM_DESC(filter, "Default wakeup filtering for the retry engine: 1 = on (default), 0 = off");

unsigned int aiopipe_max_pin_pages_req = 256;
module_param_named(max_pin_pages_req, aiopipe_max_pin_pages_req, uint, 0644);
MODULE_PARM_DESC(max_pin_pages_req, "Direct engine: most pages pinned for one request (default 256)");

unsigned int aiopipe_max_pin_pages_chan = 1024;
module_param_named(max_pin_pages_chan, aiopipe_max_pin_pages_chan, uint, 0644);
MODULE_PARM_DESC(max_pin_pages_chan, "Direct engine: most pages pinned per channel (default 1024)");

static unsigned int aiopipe_nr_fifo_nodes = 4;
module_param_named(fifos, aiopipe_nr_fifo_nodes, uint, 0444);
MODULE_PARM_DESC(fifos, "Number of named FIFOs /dev/aiopipeN (default 4)");

umode_t aiopipe_fifo_mode = 0666;
module_param_named(fifo_mode, aiopipe_fifo_mode, ushort, 0444);
MODULE_PARM_DESC(fifo_mode, "Mode of the /dev/aiopipeN nodes (default 0666)");

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
	ret = aiopipe_stats_init();
	if (ret)
		goto destroy_wq;
	ret = aiopipe_fault_init();
	if (ret)
		goto stats_exit;
	ret = aiopipe_pause_init(aiopipe_pause_points);
	if (ret)
		goto fault_exit;
	ret = aiopipe_factory_init();
	if (ret)
		goto pause_exit;
	ret = aiopipe_fifo_init(aiopipe_nr_fifo_nodes);
	if (ret)
		goto factory_exit;
	return 0;

factory_exit:
	aiopipe_factory_exit();
pause_exit:
	aiopipe_pause_exit();
fault_exit:
	aiopipe_fault_exit();
stats_exit:
	aiopipe_stats_exit();
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
	aiopipe_stats_exit();
	destroy_workqueue(aiopipe_wq);
}

module_init(aiopipe_init);
module_exit(aiopipe_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("aiopipe developers");
MODULE_DESCRIPTION("Pipes that are truly asynchronous under libaio and io_uring");
