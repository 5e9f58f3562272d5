/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every kernel-version difference aiopipe depends on, as whole functions.
 * Supported: Debian's 6.1 and 6.12 LTS kernels, 6.12's PREEMPT_RT build
 * (and the 6.1-based debug kernels).  Nothing outside this file tests
 * LINUX_VERSION_CODE.  PREEMPT_RT needs no function here: the module takes
 * no raw_spinlock_t and disables neither interrupts nor preemption by hand;
 * every spinlock it takes is a spinlock_t, nested only inside other
 * spinlock_t (fs/aio.c's ctx_lock, a wait queue's lock), so it becomes a
 * sleeping lock on RT exactly where its callers' locks do.
 */
#ifndef _AIOPIPE_COMPAT_H
#define _AIOPIPE_COMPAT_H

#include <linux/version.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/splice.h>
#include <linux/uio.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)

/* struct class: class_create() without owner, const devnode() device. */
#define AIOPIPE_DEVNODE_CONST const
static inline struct class *aiopipe_class_create(const char *name)
{
	return class_create(name);
}

/* The writer-generation a FIFO reader has seen (pipe's f_pipe). */
static inline u64 *aiopipe_file_seen(struct file *file)
{
	return &file->f_pipe;
}

/* The current segment of a user-backed iterator. */
static inline struct iovec aiopipe_iter_seg(const struct iov_iter *iter)
{
	if (iter_is_ubuf(iter))
		return (struct iovec) {
			.iov_base = iter->ubuf + iter->iov_offset,
			.iov_len = iter->count,
		};
	return (struct iovec) {
		.iov_base = iter_iov_addr(iter),
		.iov_len = min(iter->count, iter_iov_len(iter)),
	};
}

static inline ssize_t aiopipe_splice_read(struct file *in, loff_t *ppos,
					  struct pipe_inode_info *pipe,
					  size_t len, unsigned int flags)
{
	return copy_splice_read(in, ppos, pipe, len, flags);
}

/* Flags of a VMA being set up in ->mmap. */
static inline void aiopipe_vma_set_flags(struct vm_area_struct *vma,
					 vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

/* Copy @n bytes of @page at @off to @to (no pipe iterators here). */
static inline size_t aiopipe_copy_page_to_iter(struct page *page, size_t off,
					       size_t n, struct iov_iter *to)
{
	return copy_page_to_iter(page, off, n, to);
}

#else /* 6.1 */

#define AIOPIPE_DEVNODE_CONST
static inline struct class *aiopipe_class_create(const char *name)
{
	return class_create(THIS_MODULE, name);
}

static inline u64 *aiopipe_file_seen(struct file *file)
{
	return &file->f_version;
}

static inline void aiopipe_vma_set_flags(struct vm_area_struct *vma,
					 vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline struct iovec aiopipe_iter_seg(const struct iov_iter *iter)
{
	if (iter_is_ubuf(iter))
		return (struct iovec) {
			.iov_base = iter->ubuf + iter->iov_offset,
			.iov_len = iter->count,
		};
	return iov_iter_iovec(iter);
}

static inline ssize_t aiopipe_splice_read(struct file *in, loff_t *ppos,
					  struct pipe_inode_info *pipe,
					  size_t len, unsigned int flags)
{
	return generic_file_splice_read(in, ppos, pipe, len, flags);
}

/*
 * splice() hands read_iter an ITER_PIPE, and copy_page_to_iter() on one
 * puts a reference to @page itself into the pipe: a page of our ring, or a
 * pending writer's pinned page, would then change under the pipe's reader.
 * Copy through a mapping instead, as copy_to_iter() does for pipes.
 */
static inline size_t aiopipe_copy_page_to_iter(struct page *page, size_t off,
					       size_t n, struct iov_iter *to)
{
	size_t ret;
	void *kaddr;

	if (!iov_iter_is_pipe(to))
		return copy_page_to_iter(page, off, n, to);
	kaddr = kmap_local_page(page);
	ret = copy_to_iter(kaddr + off, n, to);
	kunmap_local(kaddr);
	return ret;
}

#endif

#endif /* _AIOPIPE_COMPAT_H */
