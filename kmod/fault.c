// SPDX-License-Identifier: GPL-2.0
/* aiopipe fault injection points: see fault.h. */
#include "aiopipe.h"
#include "fault.h"

#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
#include <linux/debugfs.h>
#include <linux/fault-inject.h>

static struct fault_attr aiopipe_faults[AIOPIPE_NR_FAULTS] = {
	[0 ... AIOPIPE_NR_FAULTS - 1] = FAULT_ATTR_INITIALIZER,
};

static const char * const aiopipe_fault_names[AIOPIPE_NR_FAULTS] = {
	[AIOPIPE_FAIL_ALLOC] = "fail_alloc",
	[AIOPIPE_FAIL_PIN] = "fail_pin",
	[AIOPIPE_FAIL_COPY] = "fail_copy",
};

static struct dentry *aiopipe_debugfs;

bool aiopipe_should_fail(enum aiopipe_fault f)
{
	return should_fail(&aiopipe_faults[f], 1);
}

int aiopipe_fault_init(void)
{
	int i;

	aiopipe_debugfs = debugfs_create_dir("aiopipe", NULL);
	for (i = 0; i < AIOPIPE_NR_FAULTS; i++) {
		struct dentry *d;

		d = fault_create_debugfs_attr(aiopipe_fault_names[i],
					      aiopipe_debugfs,
					      &aiopipe_faults[i]);
		if (IS_ERR(d)) {
			debugfs_remove_recursive(aiopipe_debugfs);
			return PTR_ERR(d);
		}
	}
	return 0;
}

void aiopipe_fault_exit(void)
{
	debugfs_remove_recursive(aiopipe_debugfs);
}
#endif
