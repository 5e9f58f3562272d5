// SPDX-License-Identifier: GPL-2.0
/*
 * Named FIFOs /dev/aiopipe0 .. /dev/aiopipeN-1 with the open semantics of
 * fifo_open() in fs/pipe.c, so unmodified programs (cat, dd, shell
 * redirection, fio) can use aiopipe:
 *  - O_RDONLY blocks until a writer appears, unless O_NONBLOCK;
 *  - O_WRONLY blocks until a reader appears; with O_NONBLOCK and no reader
 *    it fails with ENXIO;
 *  - O_RDWR never blocks.
 * A node's channel lives while any end is open, and is dropped (with any
 * unread bytes) when the last one closes, as a FIFO's pipe is.
 *
 * Lock order: fifo->lock -> chan->mutex.  fifo->lock is never held while
 * sleeping for a partner.
 */
#include "aiopipe.h"
#include "compat.h"

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

/*
 * The nodes are a character device region of their own, not misc devices:
 * misc_open() holds the global misc_mtx across ->open, and an open that
 * sleeps for its partner would then block every misc device's open in the
 * system (including this node's partner, a deadlock).  chrdev_open() holds
 * no lock across ->open.
 */
struct aiopipe_fifo {
	struct cdev cdev;
	struct mutex lock;		/* protects chan */
	struct aiopipe_chan *chan;	/* holds a reference while attached */
};

static inline struct aiopipe_fifo *aiopipe_inode_fifo(struct inode *inode)
{
	return container_of(inode->i_cdev, struct aiopipe_fifo, cdev);
}

static struct aiopipe_fifo *aiopipe_fifos;
static unsigned int aiopipe_nr_fifos;
static dev_t aiopipe_fifo_base;		/* of aiopipe_fifo_count minors */
static unsigned int aiopipe_fifo_count;
static struct class *aiopipe_fifo_class;

/* Get (creating if needed) the node's channel; fifo->lock held. */
static struct aiopipe_chan *aiopipe_fifo_chan(struct aiopipe_fifo *fifo)
{
	lockdep_assert_held(&fifo->lock);
	if (!fifo->chan) {
		struct aiopipe_chan *chan;

		chan = aiopipe_chan_create(aiopipe_limit_capacity(aiopipe_default_capacity),
					   aiopipe_default_engine);
		if (IS_ERR(chan))
			return chan;
		fifo->chan = chan;
	}
	kref_get(&fifo->chan->ref);
	return fifo->chan;
}

static bool aiopipe_w_counter_moved(const struct aiopipe_chan *chan,
				    size_t seen)
{
	return READ_ONCE(chan->w_counter) != seen;
}

static bool aiopipe_r_counter_moved(const struct aiopipe_chan *chan,
				    size_t seen)
{
	return READ_ONCE(chan->r_counter) != seen;
}

/* wait_for_partner(): sleep until the other side's open counter moves. */
static int aiopipe_wait_partner(struct aiopipe_chan *chan, bool writer)
{
	unsigned int seen = writer ? chan->w_counter : chan->r_counter;
	int ret;

	mutex_unlock(&chan->mutex);
	ret = aiopipe_wait(chan, EPOLLIN | EPOLLOUT,
			   writer ? aiopipe_w_counter_moved :
				    aiopipe_r_counter_moved, seen);
	mutex_lock(&chan->mutex);
	return ret;
}

static void aiopipe_wake_partner(struct aiopipe_chan *chan)
{
	aiopipe_wake_all(chan, AIOPIPE_READ_KEY | AIOPIPE_WRITE_KEY);
}

/* Count the new end in; fifo->lock and chan->mutex held. */
static int aiopipe_fifo_join(struct file *file, struct aiopipe_chan *chan)
{
	switch (file->f_mode & (FMODE_READ | FMODE_WRITE)) {
	case FMODE_READ:
		chan->r_counter++;
		chan->readers++;
		return 0;
	case FMODE_WRITE:
		if ((file->f_flags & O_NONBLOCK) && !chan->readers)
			return -ENXIO;
		chan->w_counter++;
		chan->writers++;
		return 0;
	case FMODE_READ | FMODE_WRITE:
		chan->r_counter++;
		chan->w_counter++;
		chan->readers++;
		chan->writers++;
		return 0;
	default:
		return -EINVAL;
	}
}

/* Block for the partner where fifo_open() does; chan->mutex held. */
static int aiopipe_fifo_meet(struct file *file, struct aiopipe_chan *chan)
{
	switch (file->f_mode & (FMODE_READ | FMODE_WRITE)) {
	case FMODE_READ:
		if (chan->writers)
			return 0;
		if (file->f_flags & O_NONBLOCK) {
			/* no EPOLLHUP until a writer has come and gone */
			*aiopipe_file_seen(file) = chan->w_counter;
			return 0;
		}
		return aiopipe_wait_partner(chan, true);
	case FMODE_WRITE:
		return chan->readers ? 0 : aiopipe_wait_partner(chan, false);
	default:
		return 0;
	}
}

static void aiopipe_fifo_drop(struct aiopipe_fifo *fifo, struct file *file)
{
	struct aiopipe_chan *chan = file->private_data;
	bool idle;

	mutex_lock(&fifo->lock);
	aiopipe_end_release(file);
	mutex_lock(&chan->mutex);
	idle = !chan->readers && !chan->writers;
	mutex_unlock(&chan->mutex);
	if (idle && fifo->chan == chan) {
		fifo->chan = NULL;
		aiopipe_chan_put(chan);
	}
	mutex_unlock(&fifo->lock);
	aiopipe_chan_put(chan);
}

static int aiopipe_fifo_open(struct inode *inode, struct file *file)
{
	struct aiopipe_fifo *fifo = aiopipe_inode_fifo(inode);
	struct aiopipe_chan *chan;
	int ret;

	mutex_lock(&fifo->lock);
	chan = aiopipe_fifo_chan(fifo);
	if (IS_ERR(chan)) {
		mutex_unlock(&fifo->lock);
		return PTR_ERR(chan);
	}
	aiopipe_end_init(file, chan);
	mutex_lock(&chan->mutex);
	ret = aiopipe_fifo_join(file, chan);
	if (ret) {
		bool idle = !chan->readers && !chan->writers;

		mutex_unlock(&chan->mutex);
		if (idle) {
			fifo->chan = NULL;
			aiopipe_chan_put(chan);
		}
		mutex_unlock(&fifo->lock);
		aiopipe_chan_put(chan);
		return ret;
	}
	mutex_unlock(&fifo->lock);
	aiopipe_wake_partner(chan);
	ret = aiopipe_fifo_meet(file, chan);
	mutex_unlock(&chan->mutex);
	if (ret)
		aiopipe_fifo_drop(fifo, file);
	return ret;
}

static int aiopipe_fifo_release(struct inode *inode, struct file *file)
{
	aiopipe_fifo_drop(aiopipe_inode_fifo(inode), file);
	return 0;
}

/* The nodes' file operations: an end's, with a named FIFO's open and release. */
static const struct file_operations aiopipe_fifo_fops = {
	AIOPIPE_END_FOPS,
	.open		= aiopipe_fifo_open,
	.release	= aiopipe_fifo_release,
};

/* The nodes' mode: the fifo_mode parameter (devtmpfs; udev may override). */
static char *aiopipe_fifo_devnode(AIOPIPE_DEVNODE_CONST struct device *dev,
				  umode_t *mode)
{
	if (mode)
		*mode = aiopipe_fifo_mode;
	return NULL;
}

int aiopipe_fifo_init(unsigned int count)
{
	unsigned int i;
	int ret;

	if (!count)
		return 0;
	aiopipe_fifos = kcalloc(count, sizeof(*aiopipe_fifos), GFP_KERNEL);
	if (!aiopipe_fifos)
		return -ENOMEM;
	ret = alloc_chrdev_region(&aiopipe_fifo_base, 0, count, "aiopipe");
	if (ret)
		goto free;
	aiopipe_fifo_count = count;
	aiopipe_fifo_class = aiopipe_class_create("aiopipe");
	if (IS_ERR(aiopipe_fifo_class)) {
		ret = PTR_ERR(aiopipe_fifo_class);
		goto unregister_region;
	}
	aiopipe_fifo_class->devnode = aiopipe_fifo_devnode;
	for (i = 0; i < count; i++) {
		struct aiopipe_fifo *fifo = &aiopipe_fifos[i];
		dev_t devt = MKDEV(MAJOR(aiopipe_fifo_base), i);
		struct device *dev;

		mutex_init(&fifo->lock);
		cdev_init(&fifo->cdev, &aiopipe_fifo_fops);
		fifo->cdev.owner = THIS_MODULE;
		ret = cdev_add(&fifo->cdev, devt, 1);
		if (ret)
			goto short_of_nodes;
		dev = device_create(aiopipe_fifo_class, NULL, devt, fifo,
				    "aiopipe%u", i);
		if (IS_ERR(dev)) {
			ret = PTR_ERR(dev);
			cdev_del(&fifo->cdev);
			goto short_of_nodes;
		}
		aiopipe_nr_fifos = i + 1;
	}
	return 0;

	/*
	 * A node made is visible and may be open already: keep the ones made
	 * (aiopipe_fifo_exit() removes them at unload) rather than unwind.
	 */
short_of_nodes:
	pr_warn("only %u of %u named FIFOs: %d\n", i, count, ret);
	return 0;
unregister_region:
	unregister_chrdev_region(aiopipe_fifo_base, count);
free:
	kfree(aiopipe_fifos);
	aiopipe_fifos = NULL;
	return ret;
}

/*
 * Undo aiopipe_fifo_init(), or what it made of it; every node file is
 * closed (they hold the module).
 */
void aiopipe_fifo_exit(void)
{
	if (!aiopipe_fifos)
		return;
	while (aiopipe_nr_fifos) {
		struct aiopipe_fifo *fifo = &aiopipe_fifos[--aiopipe_nr_fifos];

		device_destroy(aiopipe_fifo_class, fifo->cdev.dev);
		cdev_del(&fifo->cdev);
	}
	class_destroy(aiopipe_fifo_class);
	unregister_chrdev_region(aiopipe_fifo_base, aiopipe_fifo_count);
	kfree(aiopipe_fifos);
	aiopipe_fifos = NULL;
}
