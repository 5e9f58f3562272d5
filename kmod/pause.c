// SPDX-License-Identifier: GPL-2.0
/* aiopipe pause points for interleaving tests: see pause.h. */
#include "aiopipe.h"
#include "pause.h"

#ifdef CONFIG_DEBUG_FS
#include <linux/debugfs.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>

DEFINE_STATIC_KEY_FALSE(aiopipe_pause_key);

static u32 aiopipe_pause_timeout_ms = 30000;

/*
 * One per point.  LOCKING: aiopipe_pause_lock protects every field; the
 * parked context sleeps on @wait without it.  @gen counts releases: a
 * parked context leaves when it moves past the value it parked under.
 */
struct aiopipe_pause_slot {
	bool armed;
	u64 chan;		/* 0: any channel */
	unsigned int parked;	/* contexts parked now */
	unsigned int released;	/* contexts parked and released, ever */
	unsigned long gen;
	wait_queue_head_t wait;
};

static DEFINE_SPINLOCK(aiopipe_pause_lock);
static struct aiopipe_pause_slot aiopipe_pause_slots[AIOPIPE_NR_PAUSE];
static struct dentry *aiopipe_pause_dir;
static struct dentry *aiopipe_pause_root;	/* ours to remove, if we made it */

static const char *const aiopipe_pause_names[AIOPIPE_NR_PAUSE] = {
	[AIOPIPE_PAUSE_PULL_UNCLAIMED] = "pull_unclaimed",
	[AIOPIPE_PAUSE_DRAIN_UNCLAIMED] = "drain_unclaimed",
	[AIOPIPE_PAUSE_RETRY_START] = "retry_start",
	[AIOPIPE_PAUSE_RETRY_CLAIMED] = "retry_claimed",
	[AIOPIPE_PAUSE_QUEUE_PREPARED] = "queue_prepared",
	[AIOPIPE_PAUSE_WRITE_UNLOCKED] = "write_unlocked",
	[AIOPIPE_PAUSE_READ_LOCKED] = "read_locked",
	[AIOPIPE_PAUSE_RESIZE_START] = "resize_start",
	[AIOPIPE_PAUSE_FILL_CLAIMED] = "fill_claimed",
	[AIOPIPE_PAUSE_RING_FILLING] = "ring_filling",
};

static bool aiopipe_pause_gone(struct aiopipe_pause_slot *s,
			       unsigned long gen)
{
	bool gone;

	spin_lock(&aiopipe_pause_lock);
	gone = s->gen != gen;
	spin_unlock(&aiopipe_pause_lock);
	return gone;
}

void __aiopipe_pause(enum aiopipe_pause_point p, u64 chan_id)
{
	struct aiopipe_pause_slot *s = &aiopipe_pause_slots[p];
	unsigned long gen;
	long left;

	might_sleep();
	spin_lock(&aiopipe_pause_lock);
	if (!s->armed || (s->chan && s->chan != chan_id)) {
		spin_unlock(&aiopipe_pause_lock);
		return;
	}
	s->armed = false;	/* one shot: only the next context parks */
	s->parked++;
	gen = s->gen;
	spin_unlock(&aiopipe_pause_lock);

	left = wait_event_timeout(s->wait, aiopipe_pause_gone(s, gen),
				  msecs_to_jiffies(aiopipe_pause_timeout_ms));

	spin_lock(&aiopipe_pause_lock);
	s->parked--;
	s->released++;
	spin_unlock(&aiopipe_pause_lock);
	if (!left)
		pr_info("pause point %s released by its timeout\n",
			aiopipe_pause_names[p]);
}

static ssize_t aiopipe_pause_read(struct file *file, char __user *ubuf,
				  size_t count, loff_t *ppos)
{
	struct aiopipe_pause_slot *s = file->private_data;
	char buf[96];
	int n;

	spin_lock(&aiopipe_pause_lock);
	n = scnprintf(buf, sizeof(buf), "armed %llu parked %u released %u\n",
		      s->armed ? s->chan : (u64)-1, s->parked, s->released);
	spin_unlock(&aiopipe_pause_lock);
	return simple_read_from_buffer(ubuf, count, ppos, buf, n);
}

static ssize_t aiopipe_pause_write(struct file *file,
				   const char __user *ubuf, size_t count,
				   loff_t *ppos)
{
	struct aiopipe_pause_slot *s = file->private_data;
	char buf[48];
	u64 chan;

	if (!count || count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (sysfs_streq(buf, "release")) {
		spin_lock(&aiopipe_pause_lock);
		s->armed = false;
		s->gen++;
		spin_unlock(&aiopipe_pause_lock);
		wake_up_all(&s->wait);
		return count;
	}
	if (strncmp(buf, "arm ", 4) || kstrtou64(strim(buf + 4), 0, &chan))
		return -EINVAL;
	spin_lock(&aiopipe_pause_lock);
	s->armed = true;
	s->chan = chan;
	spin_unlock(&aiopipe_pause_lock);
	return count;
}

static const struct file_operations aiopipe_pause_fops = {
	.owner	= THIS_MODULE,
	.open	= simple_open,
	.read	= aiopipe_pause_read,
	.write	= aiopipe_pause_write,
	.llseek	= default_llseek,
};

/* With @enable, create the point files and turn the points on. */
int aiopipe_pause_init(bool enable)
{
	struct dentry *root;
	int i;

	if (!enable)
		return 0;
	/* fault.c (debug kernels) may have made aiopipe/ already */
	root = debugfs_lookup("aiopipe", NULL);
	if (root) {
		dput(root);
	} else {
		root = debugfs_create_dir("aiopipe", NULL);
		aiopipe_pause_root = root;
	}
	aiopipe_pause_dir = debugfs_create_dir("pause", root);
	for (i = 0; i < AIOPIPE_NR_PAUSE; i++) {
		init_waitqueue_head(&aiopipe_pause_slots[i].wait);
		debugfs_create_file(aiopipe_pause_names[i], 0600,
				    aiopipe_pause_dir, &aiopipe_pause_slots[i],
				    &aiopipe_pause_fops);
	}
	debugfs_create_u32("timeout_ms", 0600, aiopipe_pause_dir,
			   &aiopipe_pause_timeout_ms);
	static_branch_enable(&aiopipe_pause_key);
	return 0;
}

/* The files go first: nobody can arm a point once the key is off. */
void aiopipe_pause_exit(void)
{
	int i;

	if (!aiopipe_pause_dir)
		return;
	debugfs_remove_recursive(aiopipe_pause_root ?: aiopipe_pause_dir);
	for (i = 0; i < AIOPIPE_NR_PAUSE; i++) {
		spin_lock(&aiopipe_pause_lock);
		aiopipe_pause_slots[i].armed = false;
		aiopipe_pause_slots[i].gen++;
		spin_unlock(&aiopipe_pause_lock);
		wake_up_all(&aiopipe_pause_slots[i].wait);
	}
}
#endif
