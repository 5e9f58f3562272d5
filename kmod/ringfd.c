// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe ring mode: the ring fd.  AIOPIPE_IOC_RING_CREATE on /dev/aiopipe
 * makes one; its file operations map the ring, poll it (so it joins epoll,
 * IOCB_CMD_POLL and io_uring's POLL_ADD), attach and detach read ends and
 * wait for events.  The ring itself, its locking and lifetimes: evring.c.
 */
#include "aiopipe.h"
#include "compat.h"
#include "evring.h"

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

/*
 * One shared mapping from offset 0, at most the ring's size; it may not
 * grow (mremap) or be copied on write, which would hide the kernel's
 * stores from the reader, and stays out of core dumps (other processes'
 * messages).  A child forked with it shares the pages: the ring lives
 * until its last mapping and fd are gone.
 */
#define AIOPIPE_MMAP_BATCH	512	/* pages per vm_insert_pages() call */

static int aiopipe_ringfd_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct aiopipe_evring *ring = file->private_data;
	unsigned long nr = vma_pages(vma);
	unsigned long done;

	if (!(vma->vm_flags & VM_MAYSHARE) || vma->vm_pgoff ||
	    nr > ring->nr_pages)
		return -EINVAL;
	aiopipe_vma_set_flags(vma, VM_DONTEXPAND | VM_DONTDUMP);
	/* a 1 GiB ring is 262144 pages: in batches, with a resched between */
	for (done = 0; done < nr; ) {
		unsigned long batch = min_t(unsigned long, nr - done,
					    AIOPIPE_MMAP_BATCH);
		unsigned long left = batch;
		int ret;

		ret = vm_insert_pages(vma, vma->vm_start + done * PAGE_SIZE,
				      ring->pages + done, &left);
		if (ret)
			return ret;
		done += batch - left;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * Readable while events are unreaped.  poll_wait() queues the poller
 * before aiopipe_evring_ready() reads the tail under ring->lock, and a
 * post publishes the tail under that lock before wq_has_sleeper(): one of
 * the two sees the other.  aiopipe_evring_ready() first posts owed events
 * the reader made room for, and wakes the ring's other waiters if it did.
 */
static __poll_t aiopipe_ringfd_poll(struct file *file, poll_table *wait)
{
	struct aiopipe_evring *ring = file->private_data;

	poll_wait(file, &ring->wq, wait);
	return aiopipe_evring_ready(ring) ? EPOLLIN | EPOLLRDNORM : 0;
}

/* The channel of @file if it is an aiopipe end that reads, else NULL. */
static struct aiopipe_chan *aiopipe_ringfd_read_end(struct file *file)
{
	if (file->f_op->read_iter != aiopipe_read_iter ||
	    !(file->f_mode & FMODE_READ))
		return NULL;
	return file->private_data;
}

static long aiopipe_ringfd_attach(struct aiopipe_evring *ring,
				  struct aiopipe_ring_attach __user *uarg)
{
	struct aiopipe_ring_attach a;
	struct aiopipe_chan *chan;
	struct file *file;
	long ret = -EINVAL;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || memchr_inv(a.reserved, 0, sizeof(a.reserved)))
		return -EINVAL;
	file = fget(a.fd);
	if (!file)
		return -EBADF;
	chan = aiopipe_ringfd_read_end(file);
	if (chan)
		ret = aiopipe_sink_attach(ring, chan, a.user_data);
	fput(file);
	return ret;
}

static long aiopipe_ringfd_detach(struct aiopipe_evring *ring,
				  __s32 __user *uarg)
{
	struct aiopipe_sink *sink = NULL;
	struct aiopipe_chan *chan;
	struct file *file;
	__s32 fd;

	if (get_user(fd, uarg))
		return -EFAULT;
	file = fget(fd);
	if (!file)
		return -EBADF;
	chan = aiopipe_ringfd_read_end(file);
	if (chan) {
		mutex_lock(&chan->mutex);
		sink = aiopipe_sink_detach(chan, ring);
		mutex_unlock(&chan->mutex);
	}
	fput(file);
	if (!sink)
		return chan ? -ENOENT : -EINVAL;
	aiopipe_sink_free(sink);
	return 0;
}

/* Wait condition: at least @min events, their number in *@n. */
static bool aiopipe_ringfd_has(struct aiopipe_evring *ring, u32 min,
			       unsigned int *n)
{
	*n = aiopipe_evring_ready(ring);
	return *n >= min;
}

/*
 * Wait for @min events.  With a timeout, -EINTR on a signal: a restarted
 * call would wait its whole timeout again.  Without one, -ERESTARTSYS: the
 * call restarts under SA_RESTART (and after a stop, or the freezer) and
 * is -EINTR otherwise, as read(2) of an empty pipe.
 */
static long aiopipe_ringfd_wait(struct aiopipe_evring *ring,
				struct aiopipe_ring_wait __user *uarg)
{
	struct aiopipe_ring_wait w;
	unsigned int n = 0;
	long ret;

	if (copy_from_user(&w, uarg, sizeof(w)))
		return -EFAULT;
	if (w.flags || !w.min_events || w.min_events > ring->ev_entries)
		return -EINVAL;
	if (!w.timeout_ns)
		return aiopipe_ringfd_has(ring, w.min_events, &n) ? n : -ETIME;
	if (w.timeout_ns < 0)
		ret = wait_event_interruptible(ring->wq,
					       aiopipe_ringfd_has(ring, w.min_events, &n));
	else
		ret = wait_event_interruptible_hrtimeout(ring->wq,
							 aiopipe_ringfd_has(ring, w.min_events, &n),
							 ns_to_ktime(w.timeout_ns));
	if (ret == -ERESTARTSYS && w.timeout_ns > 0)
		return -EINTR;
	return ret ?: n;
}

static long aiopipe_ringfd_ioctl(struct file *file, unsigned int cmd,
				 unsigned long arg)
{
	struct aiopipe_evring *ring = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case AIOPIPE_IOC_RING_ATTACH:
		return aiopipe_ringfd_attach(ring, uarg);
	case AIOPIPE_IOC_RING_DETACH:
		return aiopipe_ringfd_detach(ring, uarg);
	case AIOPIPE_IOC_RING_WAIT:
		return aiopipe_ringfd_wait(ring, uarg);
	default:
		return -ENOTTY;
	}
}

static int aiopipe_ringfd_release(struct inode *inode, struct file *file)
{
	aiopipe_evring_shutdown(file->private_data);
	return 0;
}

static void aiopipe_ringfd_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct aiopipe_evring *ring = file->private_data;

	spin_lock(&ring->lock);
	seq_printf(m, "entries:\t%u\nbuffers:\t%u\nbuf_size:\t%u\n",
		   ring->ev_entries, ring->nr_bufs, ring->buf_size);
	seq_printf(m, "ev_tail:\t%u\nbuf_head:\t%u\nattached:\t%u\nowed:\t%d\n",
		   ring->ev_tail, ring->buf_head, ring->nr_sinks,
		   !list_empty(&ring->owed));
	spin_unlock(&ring->lock);
}

static const struct file_operations aiopipe_ringfd_fops = {
	.owner		= THIS_MODULE,
	.mmap		= aiopipe_ringfd_mmap,
	.poll		= aiopipe_ringfd_poll,
	.unlocked_ioctl	= aiopipe_ringfd_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.release	= aiopipe_ringfd_release,
	.show_fdinfo	= aiopipe_ringfd_show_fdinfo,
	.llseek		= noop_llseek,
};

static void aiopipe_ringfd_describe(const struct aiopipe_evring *ring,
				    struct aiopipe_ring_params *p, int fd)
{
	p->fd = fd;
	p->events_off = ring->events_off;
	p->bufids_off = ring->bufids_off;
	p->bufs_off = ring->bufs_off;
	p->mmap_size = ring->mmap_size;
}

/* AIOPIPE_IOC_RING_CREATE: a new ring and its fd, installed last. */
long aiopipe_ringfd_create(struct aiopipe_ring_params __user *uarg)
{
	struct aiopipe_ring_params p;
	struct aiopipe_evring *ring;
	struct file *file;
	int fd, ret;

	if (copy_from_user(&p, uarg, sizeof(p)))
		return -EFAULT;
	ret = aiopipe_evring_check_params(&p);
	if (ret)
		return ret;
	ring = aiopipe_evring_create(&p);
	if (IS_ERR(ring))
		return PTR_ERR(ring);
	fd = get_unused_fd_flags(p.flags & O_CLOEXEC);
	if (fd < 0) {
		ret = fd;
		goto put_ring;
	}
	file = anon_inode_getfile("[aiopipe-ring]", &aiopipe_ringfd_fops, ring,
				  O_RDWR);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto put_fd;
	}
	/* no read_iter: io_uring fails a read at once instead of polling */
	file->f_mode |= FMODE_NOWAIT;
	aiopipe_ringfd_describe(ring, &p, fd);
	if (copy_to_user(uarg, &p, sizeof(p))) {
		put_unused_fd(fd);
		fput(file);	/* its release puts the ring */
		return -EFAULT;
	}
	fd_install(fd, file);
	return 0;

put_fd:
	put_unused_fd(fd);
put_ring:
	aiopipe_evring_shutdown(ring);
	return ret;
}
