// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe direct engine: single copy.  At submission the request's user
 * pages are pinned (FOLL_LONGTERM, so a later fork cannot move them under
 * us); the opposite side, in its own context, copies straight between its
 * own buffer and those pages (peer_in/peer_out below, called by the
 * request core's transfer, transfer.c) and completes the request inline:
 * one copy, no context switch, no workqueue.  A read of at most
 * small_read_max bytes is not pinned: writers in its address space fill it
 * in place (aiopipe_small_ops, retry.c).
 *
 * Pinned pages are bounded per request (max_pin_pages_req) and per channel
 * (max_pin_pages_chan), and charged like io_uring's registered buffers: to
 * the submitter's locked_vm (limits.c) and its mm's pinned_vm.  Past a
 * bound, or when a page belongs to a file's page cache (only anonymous,
 * shmem and hugetlb memory may be pinned for an unbounded time: a
 * long-term pin of page cache defeats the filesystem's writeback), the
 * request uses the retry engine.
 */
#include "aiopipe.h"
#include "compat.h"
#include "fault.h"

#include <linux/mm.h>
#include <linux/slab.h>

#define AIOPIPE_PIN_BATCH	16

/*
 * Reserve @nr pages of the channel's pin budget.  An atomic, not a lock:
 * two racing reservations that together overshoot both back off and use
 * the retry engine, which is only slower.
 */
static int aiopipe_pin_reserve(struct aiopipe_chan *chan, unsigned int nr)
{
	if (atomic_add_return(nr, &chan->pinned_pages) <=
	    aiopipe_max_pin_pages_chan)
		return 0;
	atomic_sub(nr, &chan->pinned_pages);
	return -E2BIG;
}

static void aiopipe_pin_unreserve(struct aiopipe_chan *chan, unsigned int nr)
{
	if (nr)
		atomic_sub(nr, &chan->pinned_pages);
}

static void aiopipe_unpin_bvecs(struct bio_vec *bv, unsigned int nr,
				bool dirty)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		unpin_user_pages_dirty_lock(&bv[i].bv_page, 1, dirty);
}

static struct bio_vec *aiopipe_bvec_alloc(struct aiopipe_req *req,
					  unsigned int npages)
{
	if (aiopipe_should_fail(AIOPIPE_FAIL_ALLOC))
		return NULL;
	if (npages <= AIOPIPE_INLINE_BVECS)
		return req->inline_bv;
	return kvmalloc_array(npages, sizeof(struct bio_vec),
			      GFP_KERNEL_ACCOUNT);
}

static void aiopipe_bvec_free(struct aiopipe_req *req, struct bio_vec *bv)
{
	if (bv != req->inline_bv)
		kvfree(bv);
}

/*
 * Memory a long-term pin may hold: anonymous, shmem (swap-backed) and
 * hugetlb folios, and the zero page; never a file's page cache, which the
 * peer would then write outside ->page_mkwrite and writeback (6.5+ GUP
 * refuses FOLL_LONGTERM|FOLL_WRITE there by itself; io_uring refuses it on
 * every kernel for its registered buffers, and so do we).
 */
static bool aiopipe_page_pinnable(struct page *page)
{
	struct folio *folio = page_folio(page);

	return folio_test_anon(folio) || folio_test_swapbacked(folio) ||
	       folio_test_hugetlb(folio) || !READ_ONCE(folio->mapping);
}

/* Pin one user segment into @bv; returns the number of bvecs filled. */
static int aiopipe_pin_seg(struct iovec seg, struct bio_vec *bv,
			   unsigned int room, unsigned int gup)
{
	unsigned long addr = (unsigned long)seg.iov_base;
	size_t left = seg.iov_len, off = offset_in_page(addr);
	struct page *pages[AIOPIPE_PIN_BATCH];
	unsigned int nr = 0;

	while (left) {
		int want = min_t(size_t, DIV_ROUND_UP(off + left, PAGE_SIZE),
				 AIOPIPE_PIN_BATCH);
		int i, got;

		if (nr + want > room)
			goto fail;
		got = aiopipe_should_fail(AIOPIPE_FAIL_PIN) ? -EFAULT :
		      pin_user_pages_fast(addr - off, want, gup, pages);
		if (got <= 0)
			goto fail;
		for (i = 0; i < got; i++) {
			if (!aiopipe_page_pinnable(pages[i])) {
				unpin_user_pages(pages, got);
				goto fail;
			}
		}
		for (i = 0; i < got; i++, nr++) {
			size_t n = min_t(size_t, PAGE_SIZE - off, left);

			bvec_set_page(&bv[nr], pages[i], n, off);
			addr += n;
			left -= n;
			off = 0;
		}
	}
	return nr;
fail:
	aiopipe_unpin_bvecs(bv, nr, false);
	return -EFAULT;
}

/*
 * Pin every page of @iter and point req->iter at them (ITER_BVEC).  Any
 * failure (bounds, bad address) leaves nothing pinned: the caller falls
 * back to the retry engine, whose copy reports a bad address as -EFAULT.
 */
static int aiopipe_direct_pin(struct aiopipe_req *req, struct iov_iter *iter)
{
	struct aiopipe_chan *chan = req->chan;
	unsigned int gup = FOLL_LONGTERM | (req->write ? 0 : FOLL_WRITE);
	int npages = iov_iter_npages(iter, INT_MAX);
	struct iov_iter walk = *iter;
	unsigned int nr = 0;
	struct bio_vec *bv;
	int ret;

	if (!iter_is_ubuf(iter) && !iter_is_iovec(iter))
		return -EINVAL;
	if (npages > aiopipe_max_pin_pages_req)
		return -E2BIG;
	ret = aiopipe_pin_reserve(chan, npages);
	if (ret)
		return ret;
	req->pin_user = aiopipe_charge_pins(npages);
	if (IS_ERR(req->pin_user)) {
		ret = PTR_ERR(req->pin_user);
		req->pin_user = NULL;
		goto unreserve;
	}
	ret = -ENOMEM;
	bv = aiopipe_bvec_alloc(req, npages);
	if (!bv)
		goto uncharge;
	while (iov_iter_count(&walk)) {
		struct iovec seg = aiopipe_iter_seg(&walk);

		ret = aiopipe_pin_seg(seg, bv + nr, npages - nr, gup);
		if (ret < 0)
			goto unpin;
		nr += ret;
		iov_iter_advance(&walk, seg.iov_len);
	}
	req->bv = bv;
	req->nr_bv = nr;
	iov_iter_bvec(&req->iter, iov_iter_rw(iter), bv, nr,
		      iov_iter_count(iter));
	aiopipe_pin_unreserve(chan, npages - nr);
	aiopipe_stat_pinned(chan, nr);
	req->pin_charged = npages;
	req->pin_mm = current->mm;
	mmgrab(req->pin_mm);
	atomic64_add(npages, &req->pin_mm->pinned_vm);
	return 0;

unpin:
	aiopipe_unpin_bvecs(bv, nr, false);
	aiopipe_bvec_free(req, bv);
uncharge:
	aiopipe_uncharge_pins(req->pin_user, npages);
	req->pin_user = NULL;
unreserve:
	aiopipe_pin_unreserve(chan, npages);
	return ret;
}

/* Process context: unpinning may sleep (it locks pages to dirty them). */
static void aiopipe_direct_unpin(struct aiopipe_req *req)
{
	aiopipe_unpin_bvecs(req->bv, req->nr_bv, !req->write);
	aiopipe_bvec_free(req, req->bv);
	aiopipe_pin_unreserve(req->chan, req->nr_bv);
	aiopipe_uncharge_pins(req->pin_user, req->pin_charged);
	atomic64_sub(req->pin_charged, &req->pin_mm->pinned_vm);
	mmdrop(req->pin_mm);
	aiopipe_stat_pinned(req->chan, -(s64)req->nr_bv);
}

/* Copy from the caller's @from into a pending read's pages. */
size_t aiopipe_direct_fill(struct aiopipe_req *req, struct iov_iter *from,
			   size_t max, bool *fault)
{
	size_t total = 0;

	while (total < max && iov_iter_count(&req->iter)) {
		const struct bio_vec *bv = req->iter.bvec;
		size_t off = req->iter.iov_offset;
		size_t n = min3(bv->bv_len - off, max - total,
				iov_iter_count(&req->iter));
		size_t got = aiopipe_should_fail(AIOPIPE_FAIL_COPY) ? 0 :
			     copy_page_from_iter(bv->bv_page,
						 bv->bv_offset + off, n, from);

		iov_iter_advance(&req->iter, got);
		total += got;
		if (got < n) {
			*fault = true;
			break;
		}
	}
	return total;
}

/* Copy from a pending write's pages into the caller's @to. */
size_t aiopipe_direct_drain(struct aiopipe_req *req, struct iov_iter *to,
			    bool *fault)
{
	size_t total = 0;

	while (iov_iter_count(to) && iov_iter_count(&req->iter)) {
		const struct bio_vec *bv = req->iter.bvec;
		size_t off = req->iter.iov_offset;
		size_t n = min3(bv->bv_len - off, iov_iter_count(to),
				iov_iter_count(&req->iter));
		size_t got = aiopipe_should_fail(AIOPIPE_FAIL_COPY) ? 0 :
			     aiopipe_copy_page_to_iter(bv->bv_page,
						       bv->bv_offset + off, n, to);

		iov_iter_advance(&req->iter, got);
		total += got;
		if (got < n) {
			*fault = true;
			break;
		}
	}
	return total;
}

const struct aiopipe_engine_ops aiopipe_direct_ops = {
	.engine		= AIOPIPE_ENGINE_DIRECT,
	.name		= "direct",
	.peer_claimable	= true,
	.prepare	= aiopipe_direct_pin,
	.finish		= aiopipe_direct_unpin,
	.peer_in	= aiopipe_direct_fill,
	.peer_out	= aiopipe_direct_drain,
};
