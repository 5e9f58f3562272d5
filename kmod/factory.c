// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/aiopipe: the pair factory.  AIOPIPE_IOC_PAIR returns a read end and
 * a write end, like pipe2(); the same ioctl number space gives the global
 * counters (AIOPIPE_IOC_GET_STATS).
 */
#include "aiopipe.h"
#include "evring.h"

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/miscdevice.h>
#include <linux/uaccess.h>

#define AIOPIPE_PAIR_FLAGS	(O_CLOEXEC | O_NONBLOCK)

static inline bool aiopipe_pair_valid(const struct aiopipe_pair *p)
{
	return !(p->flags & ~AIOPIPE_PAIR_FLAGS) &&
	       p->engine <= AIOPIPE_ENGINE_DIRECT &&
	       !p->reserved[0] && !p->reserved[1] && !p->reserved[2];
}

static int aiopipe_pair_capacity(u32 asked, u32 *cap)
{
	int ret;

	if (!asked) {
		*cap = aiopipe_limit_capacity(aiopipe_default_capacity);
		return 0;
	}
	ret = aiopipe_chan_round_capacity(asked, cap);
	if (ret)
		return ret;
	if (*cap > READ_ONCE(aiopipe_max_capacity) && !capable(CAP_SYS_RESOURCE))
		return -EPERM;
	*cap = aiopipe_limit_capacity(*cap);
	return 0;
}

static struct file *aiopipe_end_file(struct aiopipe_chan *chan, int flags)
{
	struct file *file;

	file = anon_inode_getfile("[aiopipe]", &aiopipe_end_fops, chan, flags);
	if (IS_ERR(file))
		return file;
	kref_get(&chan->ref);
	aiopipe_end_init(file, chan);
	return file;
}

/* Create the channel and both ends; the fds are installed by the caller. */
static int aiopipe_pair_files(struct aiopipe_pair *p, struct file **files)
{
	int nonblock = p->flags & O_NONBLOCK;
	struct aiopipe_chan *chan;
	u32 engine = p->engine ?: aiopipe_default_engine;
	u32 cap;
	int ret;

	ret = aiopipe_pair_capacity(p->capacity, &cap);
	if (ret)
		return ret;
	chan = aiopipe_chan_create(cap, engine);
	if (IS_ERR(chan))
		return PTR_ERR(chan);
	chan->readers = 1;
	chan->writers = 1;
	chan->r_counter = 1;
	chan->w_counter = 1;
	files[0] = aiopipe_end_file(chan, O_RDONLY | nonblock);
	if (IS_ERR(files[0])) {
		ret = PTR_ERR(files[0]);
		goto put_chan;
	}
	files[1] = aiopipe_end_file(chan, O_WRONLY | nonblock);
	if (IS_ERR(files[1])) {
		ret = PTR_ERR(files[1]);
		goto put_read_end;
	}
	p->capacity = cap;
	aiopipe_chan_put(chan);
	return 0;

put_read_end:
	fput(files[0]);
put_chan:
	aiopipe_chan_put(chan);
	return ret;
}

static long aiopipe_pair_ioctl(struct aiopipe_pair __user *uarg)
{
	struct aiopipe_pair p;
	struct file *files[2];
	int fds[2];
	int ret;

	if (copy_from_user(&p, uarg, sizeof(p)))
		return -EFAULT;
	if (!aiopipe_pair_valid(&p))
		return -EINVAL;
	ret = aiopipe_pair_files(&p, files);
	if (ret)
		return ret;
	fds[0] = get_unused_fd_flags(p.flags & O_CLOEXEC);
	if (fds[0] < 0) {
		ret = fds[0];
		goto put_files;
	}
	fds[1] = get_unused_fd_flags(p.flags & O_CLOEXEC);
	if (fds[1] < 0) {
		ret = fds[1];
		goto put_fd0;
	}
	p.fds[0] = fds[0];
	p.fds[1] = fds[1];
	if (copy_to_user(uarg, &p, sizeof(p))) {
		ret = -EFAULT;
		goto put_fd1;
	}
	fd_install(fds[0], files[0]);
	fd_install(fds[1], files[1]);
	return 0;

put_fd1:
	put_unused_fd(fds[1]);
put_fd0:
	put_unused_fd(fds[0]);
put_files:
	fput(files[1]);
	fput(files[0]);
	return ret;
}

static long aiopipe_factory_ioctl(struct file *file, unsigned int cmd,
				  unsigned long arg)
{
	switch (cmd) {
	case AIOPIPE_IOC_PAIR:
		return aiopipe_pair_ioctl((struct aiopipe_pair __user *)arg);
	case AIOPIPE_IOC_GET_STATS:
		return aiopipe_stats_copy(NULL, (void __user *)arg);
	case AIOPIPE_IOC_RING_CREATE:
		return aiopipe_ringfd_create((void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations aiopipe_factory_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= aiopipe_factory_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice aiopipe_factory = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "aiopipe",
	.fops	= &aiopipe_factory_fops,
	.mode	= 0666,
};

int aiopipe_factory_init(void)
{
	aiopipe_factory.groups = aiopipe_stats_groups;
	return misc_register(&aiopipe_factory);
}

void aiopipe_factory_exit(void)
{
	misc_deregister(&aiopipe_factory);
}
