/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fault injection at every allocation, page-pin and copy point of aiopipe,
 * through the kernel's fault-injection framework: /sys/kernel/debug/aiopipe/
 * fail_alloc, fail_pin and fail_copy (probability, interval, times, ...; see
 * Documentation/fault-injection/fault-injection.rst).  Only kernels with
 * CONFIG_FAULT_INJECTION_DEBUG_FS (the debug kernel) have them; elsewhere
 * the checks compile to nothing.
 */
#ifndef _AIOPIPE_FAULT_H
#define _AIOPIPE_FAULT_H

#include <linux/types.h>

enum aiopipe_fault {
	AIOPIPE_FAIL_ALLOC,	/* every kmalloc/kvmalloc/dup_iter */
	AIOPIPE_FAIL_PIN,	/* pin_user_pages_fast for the direct engine */
	AIOPIPE_FAIL_COPY,	/* copies to/from user memory and pinned pages */
	AIOPIPE_NR_FAULTS
};

#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
bool aiopipe_should_fail(enum aiopipe_fault f);
int aiopipe_fault_init(void);
void aiopipe_fault_exit(void);
#else
static inline bool aiopipe_should_fail(enum aiopipe_fault f)
{
	return false;
}

static inline int aiopipe_fault_init(void)
{
	return 0;
}

static inline void aiopipe_fault_exit(void)
{
}
#endif

#endif /* _AIOPIPE_FAULT_H */
