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

#include <linux/miscdevice.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

struct aiopipe_fifo {
	struct miscdevice misc;
	struct mutex lock;		/* protects chan */
	struct aiopipe_chan *chan;	/* holds a reference while attached */
	char name[24];
};

static struct aiopipe_fifo *aiopipe_fifos;
static unsigned int aiopipe_nr_fifos;

/* Get (creating if needed) the node's channel; fifo->lock held. */
static struct aiopipe_chan *aiopipe_fifo_chan(struct aiopipe_fifo *fifo)
{
	lockdep_assert_held(&fifo->lock);
	if (!fifo->chan) {
		struct aiopipe_chan *chan;

		chan = aiopipe_chan_alloc(aiopipe_limit_capacity(aiopipe_default_capacity),
					  aiopipe_default_engine);
		if (IS_ERR(chan))
			return chan;
		chan->fifo = fifo;
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

int aiopipe_fifo_open(struct inode *inode, struct file *file)
{
	struct miscdevice *misc = file->private_data;
	struct aiopipe_fifo *fifo = container_of(misc, struct aiopipe_fifo,
						 misc);
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

void aiopipe_fifo_release(struct file *file)
{
	struct aiopipe_chan *chan = file->private_data;

	aiopipe_fifo_drop(chan->fifo, file);
}

int aiopipe_fifo_init(unsigned int count)
{
	unsigned int i;
	int ret;

	aiopipe_fifos = kcalloc(count, sizeof(*aiopipe_fifos), GFP_KERNEL);
	if (!aiopipe_fifos && count)
		return -ENOMEM;
	for (i = 0; i < count; i++) {
		struct aiopipe_fifo *fifo = &aiopipe_fifos[i];

		mutex_init(&fifo->lock);
		snprintf(fifo->name, sizeof(fifo->name), "aiopipe%u", i);
		fifo->misc.minor = MISC_DYNAMIC_MINOR;
		fifo->misc.name = fifo->name;
		fifo->misc.fops = &aiopipe_end_fops;
		fifo->misc.mode = aiopipe_fifo_mode;
		ret = misc_register(&fifo->misc);
		if (ret)
			goto unregister;
		aiopipe_nr_fifos = i + 1;
	}
	return 0;

unregister:
	aiopipe_fifo_exit();
	return ret;
}

void aiopipe_fifo_exit(void)
{
	while (aiopipe_nr_fifos)
		misc_deregister(&aiopipe_fifos[--aiopipe_nr_fifos].misc);
	kfree(aiopipe_fifos);
	aiopipe_fifos = NULL;
}
