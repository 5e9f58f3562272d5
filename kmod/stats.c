// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe counters: per channel (AIOPIPE_IOC_GET_STATS on an end) and
 * global (the same ioctl on /dev/aiopipe, and one sysfs file per counter
 * under /sys/class/misc/aiopipe/stats/).
 */
#include "aiopipe.h"

#include <linux/device.h>
#include <linux/percpu.h>
#include <linux/uaccess.h>

/* The tracepoints live with the counters: both say what the engines did. */
#define CREATE_TRACE_POINTS
#include "aiopipe_trace.h"

/*
 * Global counters are per CPU, so the hot paths of unrelated channels never
 * share a cache line; readers sum them.  The global pinned pages and their
 * peak are the shared atomics, touched only when pages are pinned or
 * released: the peak needs the current total at once, not a sum over CPUs.
 */
DEFINE_PER_CPU(struct aiopipe_pcpu_counters, aiopipe_global);
static atomic64_t aiopipe_global_pinned;
static atomic64_t aiopipe_global_pinned_peak;

static s64 aiopipe_global_read(enum aiopipe_stat s)
{
	s64 sum = 0;
	int cpu;

	if (s == AP_PINNED_PAGES)
		return atomic64_read(&aiopipe_global_pinned);
	if (s == AP_PINNED_PAGES_PEAK)
		return atomic64_read(&aiopipe_global_pinned_peak);
	for_each_possible_cpu(cpu)
		sum += per_cpu(aiopipe_global, cpu).v[s];
	return sum;
}

static const char * const aiopipe_stat_names[AP_NR_STATS] = {
	"sync_reads", "sync_writes", "async_reads", "async_writes",
	"completed_at_submit", "queued", "completed_by_peer",
	"completed_by_retry", "retries", "futile_retries",
	"wakeups_delivered", "wakeups_filtered", "cancels",
	"eof_completions", "epipe_completions", "bytes_single_copy",
	"bytes_ring", "pending_reads", "pending_writes", "pinned_pages",
	"pinned_pages_peak", "bytes_buffered", "channels", "ring_buffers",
	"ring_bytes", "ring_spilled", "ring_owed",
};

/* A channel nobody else can reach any more gives back what it counted. */
void aiopipe_stat_gone(struct aiopipe_chan *chan, enum aiopipe_stat s, s64 n)
{
	this_cpu_add(aiopipe_global.v[s], n);
}

static void aiopipe_peak(atomic64_t *peak, s64 now)
{
	s64 old = atomic64_read(peak);

	while (now > old) {
		s64 seen = atomic64_cmpxchg(peak, old, now);

		if (seen == old)
			break;
		old = seen;
	}
}

/* Pinned pages now, and their high-water mark, per channel and global. */
void aiopipe_stat_pinned(struct aiopipe_chan *chan, s64 n)
{
	s64 here = atomic64_add_return(n, &chan->stats.shared[AP_PINNED_PAGES]);
	s64 all = atomic64_add_return(n, &aiopipe_global_pinned);

	if (n <= 0)
		return;
	aiopipe_peak(&chan->stats.shared[AP_PINNED_PAGES_PEAK], here);
	aiopipe_peak(&aiopipe_global_pinned_peak, all);
}

/* Fill @st from @chan's counters, or the global ones for a NULL @chan. */
static void aiopipe_counters_fill(struct aiopipe_chan *chan,
				  struct aiopipe_stats *st)
{
	__u64 *out = &st->sync_reads;
	int i;

	for (i = 0; i < AP_NR_STATS; i++)
		out[i] = !chan ? aiopipe_global_read(i) :
			 aiopipe_stat_lock(i) ? READ_ONCE(chan->stats.locked[i]) :
			 atomic64_read(&chan->stats.shared[i]);
}

/*
 * Copy the counters out: the caller states in ->size how much it knows;
 * the kernel fills at most that (older binaries keep working) and writes
 * back the size it filled.  Unknown ->flags are EINVAL.
 */
int aiopipe_stats_copy(struct aiopipe_chan *chan, void __user *arg)
{
	struct aiopipe_stats st;
	u32 usize, flags;

	BUILD_BUG_ON(offsetof(struct aiopipe_stats, reserved) !=
		     offsetof(struct aiopipe_stats, sync_reads) +
		     AP_NR_STATS * sizeof(__u64));
	BUILD_BUG_ON(sizeof(struct aiopipe_stats) != 256);
	if (get_user(usize, (u32 __user *)arg) ||
	    get_user(flags, (u32 __user *)arg + 1))
		return -EFAULT;
	if (flags || usize < offsetof(struct aiopipe_stats, sync_reads))
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	aiopipe_counters_fill(chan, &st);
	st.size = min_t(u32, usize, sizeof(st));
	if (copy_to_user(arg, &st, st.size))
		return -EFAULT;
	return 0;
}

static ssize_t aiopipe_stat_show(struct device *dev,
				 struct device_attribute *attr, char *buf);

static struct device_attribute aiopipe_stat_attrs[AP_NR_STATS];
static struct attribute *aiopipe_stat_attr_ptrs[AP_NR_STATS + 1];

static ssize_t aiopipe_stat_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	int i = attr - aiopipe_stat_attrs;

	return sysfs_emit(buf, "%lld\n", aiopipe_global_read(i));
}

static const struct attribute_group aiopipe_stats_group = {
	.name = "stats",
	.attrs = aiopipe_stat_attr_ptrs,
};

const struct attribute_group *aiopipe_stats_groups[] = {
	&aiopipe_stats_group,
	NULL,
};

/* Build the sysfs attributes from the name table (before misc_register). */
int aiopipe_stats_init(void)
{
	int i;

	for (i = 0; i < AP_NR_STATS; i++) {
		struct device_attribute *a = &aiopipe_stat_attrs[i];

		sysfs_attr_init(&a->attr);
		a->attr.name = aiopipe_stat_names[i];
		a->attr.mode = 0444;
		a->show = aiopipe_stat_show;
		aiopipe_stat_attr_ptrs[i] = &a->attr;
	}
	return 0;
}
