// SPDX-License-Identifier: GPL-2.0
/*
 * frontswap.c - the frontswap backend: one persistent pool per swap type.
 *
 * A store that holds a credit is copied into a staging page of the open
 * batch and reported stored at once; the copy stays in the copies table
 * until the device has answered.  Loads of a key with a copy are served
 * from the copy and never reach the device.  If the device refuses the
 * put after all, the copy is kept for good, as guest memory, until the
 * kernel invalidates the key.  A store without credit is a synchronous
 * put.  Spec section 6.9 has the argument that no stored page is lost.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/delay.h>
#include <linux/frontswap.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/swapops.h>

#include "virtio_tmem_drv.h"

#define VIRTIO_TMEM_COPY_BITS	8
#define VIRTIO_TMEM_KEPT_SHARE	16	/* kept copies: at most 1/16 of RAM */
#define VIRTIO_TMEM_COPY_KEPT	BIT(31)	/* in page_private(): kept for good */
/*
 * A pool's held xarray maps each offset stored and not invalidated to
 * where its page is:
 *   PENDING   a put of it is queued or in flight: the host may not have it
 *             yet, and an older op on the key (the flush of the key's
 *             previous page) may still be queued ahead of the put
 *   ON_HOST   the put completed: the host has it, and no op on the key is
 *             queued, so a GET of it needs no order with the open batch
 *   ON_DISK   written to its own swap slot; loads miss, and the kernel
 *             reads the slot
 * Offsets with a kept copy have no entry: the host has nothing of theirs.
 * Lock order: virtio_tmem_copies_lock, then the xarray's lock.
 */
#define VIRTIO_TMEM_ON_HOST	xa_mk_value(1)
#define VIRTIO_TMEM_ON_DISK	xa_mk_value(2)
#define VIRTIO_TMEM_PENDING	xa_mk_value(3)

/*
 * The copies table: staging pages of puts in flight, and pages kept after
 * a refusal, linked through page->lru and keyed by page_private() (the
 * swap type) and page->index (the offset).  A staging page is in the table
 * until its put completes or the key is invalidated, whichever is first;
 * the batch owns it either way unless it was kept.
 */
static struct list_head virtio_tmem_copies[1 << VIRTIO_TMEM_COPY_BITS];
static DEFINE_SPINLOCK(virtio_tmem_copies_lock);

/*
 * The slot whose page is being brought back from the host (type -1:
 * none), by reclaim or by the drain, one at a time.  A store of that slot
 * waits for it: the kernel writes the slot's next page to disk, or stores
 * it on the host, only after that, so neither our disk write nor our
 * flush can overtake the new page.  Under virtio_tmem_copies_lock.  The
 * task bringing it back allocates nothing while the slot is busy, and
 * runs under memalloc_noio_save(), so reclaim never makes it store a page
 * itself (virtio_tmem_frontswap_store() warns if it does).
 */
static int virtio_tmem_busy_type = -1;
static pgoff_t virtio_tmem_busy_offset;
static struct task_struct *virtio_tmem_busy_task;	/* bringing it back */
static DECLARE_WAIT_QUEUE_HEAD(virtio_tmem_busy_wq);

/*
 * Serializes bringing pages back with swapoff, which clears a pool's
 * swap_bdev and swap_file under it before it closes the swap file.
 * Taken before a swap file's inode lock (bmap()), never inside it.
 */
static DEFINE_MUTEX(virtio_tmem_swap_disk_mutex);

static void virtio_tmem_set_busy_slot(int type, pgoff_t offset)
{
	unsigned long flags;

	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	virtio_tmem_busy_type = type;
	virtio_tmem_busy_offset = offset;
	WRITE_ONCE(virtio_tmem_busy_task, type < 0 ? NULL : current);
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (type < 0)
		wake_up_all(&virtio_tmem_busy_wq);
}

static bool virtio_tmem_busy_slot(unsigned int type, pgoff_t offset)
{
	unsigned long flags;
	bool busy;

	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	busy = virtio_tmem_busy_type == type &&
	       virtio_tmem_busy_offset == offset;
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	return busy;
}

static struct list_head *virtio_tmem_bucket(unsigned int type, pgoff_t offset)
{
	return &virtio_tmem_copies[hash_64((u64)type << 56 ^ offset,
					   VIRTIO_TMEM_COPY_BITS)];
}

/* Caller must hold virtio_tmem_copies_lock. */
static struct page *virtio_tmem_copy_find(unsigned int type, pgoff_t offset)
{
	struct page *page;

	lockdep_assert_held(&virtio_tmem_copies_lock);
	list_for_each_entry(page, virtio_tmem_bucket(type, offset), lru) {
		if ((page_private(page) & ~VIRTIO_TMEM_COPY_KEPT) == type &&
		    page->index == offset)
			return page;
	}
	return NULL;
}

static void virtio_tmem_held_move(struct virtio_tmem_pool *pool,
				  pgoff_t offset, void *from, void *to)
{
	unsigned long flags;

	/* Replacing or erasing an entry allocates nothing. */
	xa_lock_irqsave(&pool->held, flags);
	__xa_cmpxchg(&pool->held, offset, from, to, GFP_NOWAIT);
	xa_unlock_irqrestore(&pool->held, flags);
}

/**
 * virtio_tmem_fs_put_done - a batched frontswap put completed
 * @s: its slot; s->copy is its staging page
 * @status: how it ended
 * @q: its queue; caller must hold q->lock
 *
 * If the key was not invalidated meanwhile (the copy is still in the
 * table), the put was its newest op: on VIRTIO_TMEM_S_OK the page is on
 * the host and the staging page goes back to the queue; on any other
 * status the copy is kept for good and serves the key.
 */
void virtio_tmem_fs_put_done(struct virtio_tmem_slot *s, u8 status,
			     struct virtio_tmem_queue *q)
{
	struct page *copy = s->copy;
	pgoff_t offset = copy->index;
	bool keep = false;

	spin_lock(&virtio_tmem_copies_lock);
	if (!list_empty(&copy->lru)) {
		if (status == VIRTIO_TMEM_S_OK) {
			list_del_init(&copy->lru);
			virtio_tmem_held_move(s->pool, offset,
					      VIRTIO_TMEM_PENDING,
					      VIRTIO_TMEM_ON_HOST);
		} else {
			set_page_private(copy, page_private(copy) |
					 VIRTIO_TMEM_COPY_KEPT);
			virtio_tmem_held_move(s->pool, offset,
					      VIRTIO_TMEM_PENDING, NULL);
			keep = true;
		}
	}
	spin_unlock(&virtio_tmem_copies_lock);

	if (keep) {
		q->npages--;	/* refill_work replaces it */
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_KEPT, 1);
	} else {
		q->pages[q->nfree++] = copy;
	}
}

/* Record that a put of @offset is about to be queued; may fail. */
static int virtio_tmem_held_set(struct virtio_tmem_pool *pool, pgoff_t offset)
{
	unsigned long flags;
	void *old;

	xa_lock_irqsave(&pool->held, flags);
	old = __xa_store(&pool->held, offset, VIRTIO_TMEM_PENDING,
			 GFP_NOWAIT | __GFP_NOWARN);
	xa_unlock_irqrestore(&pool->held, flags);
	return xa_err(old);
}

static void virtio_tmem_held_clear(struct virtio_tmem_pool *pool,
				   pgoff_t offset)
{
	unsigned long flags;

	xa_lock_irqsave(&pool->held, flags);
	__xa_erase(&pool->held, offset);
	xa_unlock_irqrestore(&pool->held, flags);
}

static void virtio_tmem_fs_key(struct virtio_tmem_op *op,
			       const struct virtio_tmem_pool *pool,
			       pgoff_t offset)
{
	op->pool = cpu_to_le32(READ_ONCE(pool->dev_id));
	op->oid[0] = cpu_to_le64((u64)offset >> 32);
	op->index = cpu_to_le32(lower_32_bits(offset));
}

/* A store or invalidation of @offset joined its queue: drop prefetches. */
static void virtio_tmem_fs_forget(struct virtio_tmem_pool *pool,
				  pgoff_t offset)
{
	struct virtio_tmem_op op = { .type = VIRTIO_TMEM_OP_FLUSH_PAGE };

	virtio_tmem_fs_key(&op, pool, offset);
	virtio_tmem_pf_forget(pool, &op);
}

/* Neighbouring offsets share a queue, so each queue sees runs of pages. */
static struct virtio_tmem_queue *virtio_tmem_fs_queue(struct virtio_tmem *vt,
						      unsigned int type,
						      pgoff_t offset)
{
	return virtio_tmem_queue_of(vt, (u64)type << 56 ^ offset >> 9);
}

/* A store the host must answer before the kernel is told. */
static int virtio_tmem_fs_sync_put(struct virtio_tmem *vt,
				   struct virtio_tmem_queue *q,
				   struct virtio_tmem_pool *pool, pgoff_t offset,
				   const struct virtio_tmem_op *put,
				   struct page *page)
{
	int st;

	if (!READ_ONCE(virtio_tmem_sync) &&
	    time_before(jiffies, READ_ONCE(vt->store_backoff))) {
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_STORE_BACKOFFS, 1);
		return -1;
	}
	st = virtio_tmem_sync_op(vt, q, put, VIRTIO_TMEM_FS_STORE, pool, page,
				 NULL);
	if (st == VIRTIO_TMEM_S_NOSPACE || st == VIRTIO_TMEM_S_NOMEM)
		WRITE_ONCE(vt->store_backoff,
			   jiffies + msecs_to_jiffies(VIRTIO_TMEM_BACKOFF_MS));
	if (st)
		return -1;
	/* No other op on the key can be queued: its store has not returned. */
	virtio_tmem_held_move(pool, offset, VIRTIO_TMEM_PENDING,
			      VIRTIO_TMEM_ON_HOST);
	return 0;
}

static int virtio_tmem_fs_put(struct virtio_tmem *vt,
			      struct virtio_tmem_pool *pool,
			      unsigned int type, pgoff_t offset,
			      struct page *page)
{
	struct virtio_tmem_queue *q = virtio_tmem_fs_queue(vt, type, offset);
	struct virtio_tmem_op put = { .type = VIRTIO_TMEM_OP_PUT };
	struct virtio_tmem_slot *s;
	struct virtio_tmem_op *op;
	unsigned long flags;

	put.arg = cpu_to_le32(PAGE_SHIFT);
	virtio_tmem_fs_key(&put, pool, offset);
	if (READ_ONCE(virtio_tmem_sync) || !virtio_tmem_take_credit(vt))
		return virtio_tmem_fs_sync_put(vt, q, pool, offset, &put, page);

	spin_lock_irqsave(&q->lock, flags);
	op = virtio_tmem_add_op(q, &s, true, true, &flags);
	if (!op) {
		/* Every staging page is kept for a refused put. */
		spin_unlock_irqrestore(&q->lock, flags);
		atomic_inc(&vt->credits);
		return virtio_tmem_fs_sync_put(vt, q, pool, offset, &put, page);
	}
	*op = put;
	op->flags = VIRTIO_TMEM_OP_F_CREDIT;
	s->class = VIRTIO_TMEM_FS_STORE;
	s->pool = pool;
	s->credited = true;
	virtio_tmem_copy_page(s->copy, page);
	set_page_private(s->copy, type);
	s->copy->index = offset;
	spin_lock(&virtio_tmem_copies_lock);
	list_add(&s->copy->lru, virtio_tmem_bucket(type, offset));
	spin_unlock(&virtio_tmem_copies_lock);
	virtio_tmem_op_added(q);
	spin_unlock_irqrestore(&q->lock, flags);
	virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_STORES_BATCHED, 1);
	return 0;
}

static int virtio_tmem_frontswap_store(unsigned int type, pgoff_t offset,
				       struct page *page)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	u64 start = virtio_tmem_profile_start();
	struct virtio_tmem *vt;
	int idx, ret = -1;

	/*
	 * Reclaim entered from the task bringing a page back would wait on
	 * its own busy slot, or write the slot before the task does.
	 */
	if (WARN_ON_ONCE(READ_ONCE(virtio_tmem_busy_task) == current))
		return -1;
	wait_event(virtio_tmem_busy_wq, !virtio_tmem_busy_slot(type, offset));
	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = srcu_dereference(virtio_tmem_dev, &virtio_tmem_srcu);
	if (vt && READ_ONCE(virtio_tmem_frontswap_on) &&
	    !READ_ONCE(vt->draining) && READ_ONCE(pool->on_device) &&
	    !virtio_tmem_held_set(pool, offset)) {
		virtio_tmem_fault_store_delay();
		ret = virtio_tmem_fs_put(vt, pool, type, offset, page);
		if (ret)
			virtio_tmem_held_clear(pool, offset);
	}
	srcu_read_unlock(&virtio_tmem_srcu, idx);
	/* After the put joined its queue: see prefetch.c. */
	virtio_tmem_fs_forget(pool, offset);

	virtio_tmem_count(ret ? VIRTIO_TMEM_FRONTSWAP_STORE_REJECTS :
				VIRTIO_TMEM_FRONTSWAP_STORES, 1);
	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_FRONTSWAP_STORE, start);
	return ret;
}

/*
 * Swap readahead (swap_cluster_readahead()) loads an aligned window of
 * 1 << page_cluster slots, 8 by default, in ascending order.  A load asks
 * for the window's slots from its own to the window's end, and only
 * while the host holds each newest page with no op on it queued
 * (ON_HOST): a load is sent ahead of the open batch, which may hold ops
 * on any other key.  The window never crosses a block of 512 slots, so
 * every page it asks for shares the load's queue (virtio_tmem_fs_queue).
 */
#define VIRTIO_TMEM_FS_WINDOW	8

static unsigned int virtio_tmem_fs_window(struct virtio_tmem_pool *pool,
					  pgoff_t offset, unsigned int max)
{
	unsigned int n;

	for (n = 1; n < max && (offset + n) % VIRTIO_TMEM_FS_WINDOW; n++) {
		if (xa_load(&pool->held, offset + n) != VIRTIO_TMEM_ON_HOST)
			break;
	}
	return n;
}

/*
 * A load that also asks for the next slots of its readahead window, into
 * the prefetch cache (prefetch.c).  Returns the VIRTIO_TMEM_S_* status of
 * the load's own page, or -EAGAIN if it asked for no other page and the
 * caller should send a plain GET.
 */
static int virtio_tmem_fs_get_range(struct virtio_tmem *vt,
				    struct virtio_tmem_pool *pool,
				    struct virtio_tmem_queue *q,
				    struct virtio_tmem_op *get, pgoff_t offset,
				    struct page *page)
{
	struct page *more[VIRTIO_TMEM_FS_WINDOW - 1];
	struct virtio_tmem_pf_flight f = {
		.pool = pool,
		.first = le32_to_cpu(get->index),
	};
	unsigned int n, want;
	u32 found;
	int st;

	want = min3(READ_ONCE(virtio_tmem_prefetch),
		    (unsigned int)VIRTIO_TMEM_FS_WINDOW,
		    VIRTIO_TMEM_FS_WINDOW - (unsigned int)(offset %
						  VIRTIO_TMEM_FS_WINDOW));
	if (!vt->has_get_range || READ_ONCE(virtio_tmem_sync) || want < 2)
		return -EAGAIN;
	memcpy(f.oid, get->oid, sizeof(f.oid));
	n = virtio_tmem_pf_begin(&f, want - 1, more);
	if (!n)
		return -EAGAIN;
	/* After the flight is registered: see prefetch.c. */
	n = virtio_tmem_fs_window(pool, offset, n + 1);
	virtio_tmem_pf_trim(&f, more, n);
	if (n == 1) {
		virtio_tmem_pf_end(&f, more, 0);
		return -EAGAIN;
	}
	st = virtio_tmem_pf_send(vt, q, &f, get, VIRTIO_TMEM_FS_LOAD, page,
				 more, &found);
	get->type = VIRTIO_TMEM_OP_GET;
	get->arg = cpu_to_le32(PAGE_SHIFT);
	return st;
}

/*
 * Fetch a page the host holds; return the VIRTIO_TMEM_S_* status.
 * VIRTIO_TMEM_S_IO means the host could not read its spilled copy yet, and
 * still has it (spec 6.6): for a load, the only copy, so it is asked again,
 * backing off up to a second between tries, for as long as it takes.
 * Bringing a page back gives up after a few tries: the page then simply
 * stays on the host.
 */
static int virtio_tmem_fs_get(struct virtio_tmem *vt,
			      struct virtio_tmem_pool *pool,
			      unsigned int type, pgoff_t offset,
			      struct page *page, u8 class)
{
	struct virtio_tmem_queue *q = virtio_tmem_fs_queue(vt, type, offset);
	struct virtio_tmem_op get = { .type = VIRTIO_TMEM_OP_GET };
	unsigned int tries;
	int st;

	get.arg = cpu_to_le32(PAGE_SHIFT);
	virtio_tmem_fs_key(&get, pool, offset);
	if (class == VIRTIO_TMEM_FS_LOAD) {
		st = virtio_tmem_fs_get_range(vt, pool, q, &get, offset, page);
		if (st != -EAGAIN && st != VIRTIO_TMEM_S_IO)
			return st;
	}
	for (tries = 0;; tries++) {
		st = virtio_tmem_sync_op(vt, q, &get, class, pool, page, NULL);
		if (st != VIRTIO_TMEM_S_IO ||
		    (class == VIRTIO_TMEM_BRING_BACK && tries >= 4))
			break;
		virtio_tmem_count(VIRTIO_TMEM_LOAD_RETRIES, 1);
		if (tries == 4)
			pr_warn_ratelimited("virtio_tmem: swap page %u:%lu: the host cannot read it back yet; retrying\n",
					    type, offset);
		msleep(1U << min(tries, 10U));
	}
	return st;
}

/* Load @offset's page from the copies table, if it has one there. */
static bool virtio_tmem_load_copy(unsigned int type, pgoff_t offset,
				  struct page *page)
{
	unsigned long flags;
	struct page *copy;

	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	copy = virtio_tmem_copy_find(type, offset);
	if (copy)
		virtio_tmem_copy_page(page, copy);
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (copy) {
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS, 1);
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS_FROM_COPY, 1);
	}
	return copy;
}

static int virtio_tmem_fs_load(unsigned int type, pgoff_t offset,
			       struct page *page)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	struct virtio_tmem_op get = { .type = VIRTIO_TMEM_OP_GET };
	int idx, st = -ENODEV;
	struct virtio_tmem *vt;

	if (virtio_tmem_load_copy(type, offset, page))
		return 0;
	virtio_tmem_fs_key(&get, pool, offset);
	if (virtio_tmem_pf_get(pool, &get, page)) {
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS, 1);
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS_PREFETCHED, 1);
		return 0;
	}
	/* Written to its swap slot: the kernel reads it there. */
	if (xa_load(&pool->held, offset) == VIRTIO_TMEM_ON_DISK)
		goto miss;
	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = srcu_dereference(virtio_tmem_dev, &virtio_tmem_srcu);
	if (vt && READ_ONCE(pool->on_device))
		st = virtio_tmem_fs_get(vt, pool, type, offset, page,
					VIRTIO_TMEM_FS_LOAD);
	srcu_read_unlock(&virtio_tmem_srcu, idx);
	if (st == VIRTIO_TMEM_S_OK) {
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS, 1);
		return 0;
	}
	/*
	 * Brought back while we asked: reclaim makes the page a kept copy,
	 * or writes it to its slot, before it flushes it on the host.
	 */
	if (virtio_tmem_load_copy(type, offset, page))
		return 0;
	if (xa_load(&pool->held, offset) == VIRTIO_TMEM_ON_DISK)
		goto miss;
	pr_err_ratelimited("virtio_tmem: swap page %u:%lu not returned: %s %d\n",
			   type, offset, st < 0 ? "error" : "status", st);
miss:
	virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOAD_MISSES, 1);
	return -1;
}

static int virtio_tmem_frontswap_load(unsigned int type, pgoff_t offset,
				      struct page *page)
{
	u64 start = virtio_tmem_profile_start();
	int ret = virtio_tmem_fs_load(type, offset, page);

	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_FRONTSWAP_LOAD, start);
	return ret;
}

/* Queue a FLUSH_PAGE; nothing here sleeps. */
static void virtio_tmem_fs_flush(struct virtio_tmem *vt,
				 struct virtio_tmem_pool *pool,
				 unsigned int type, pgoff_t offset)
{
	struct virtio_tmem_op flush = { .type = VIRTIO_TMEM_OP_FLUSH_PAGE };

	virtio_tmem_fs_key(&flush, pool, offset);
	/* Lost: the host keeps a dead page until swapoff. */
	virtio_tmem_queue_flush(virtio_tmem_fs_queue(vt, type, offset), &flush,
				pool);
}

/* May be called with a spinlock held: nothing here sleeps. */
static void virtio_tmem_frontswap_invalidate_page(unsigned int type,
						  pgoff_t offset)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	struct virtio_tmem *vt;
	struct page *copy;
	unsigned long flags;
	bool kept = false;
	int idx;

	/* Before the copies table: see virtio_tmem_fetch(). */
	virtio_tmem_held_clear(pool, offset);
	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	copy = virtio_tmem_copy_find(type, offset);
	if (copy) {
		list_del_init(&copy->lru);
		kept = page_private(copy) & VIRTIO_TMEM_COPY_KEPT;
	}
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (kept) {
		__free_page(copy);
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_KEPT, -1);
	}
	virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_INVALIDATES, 1);

	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = srcu_dereference(virtio_tmem_dev, &virtio_tmem_srcu);
	if (vt && READ_ONCE(pool->on_device))
		virtio_tmem_fs_flush(vt, pool, type, offset);
	srcu_read_unlock(&virtio_tmem_srcu, idx);
	/* After the flush joined its queue: see prefetch.c. */
	virtio_tmem_fs_forget(pool, offset);
}

static void virtio_tmem_frontswap_invalidate_area(unsigned int type)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	struct page *page, *next;
	struct virtio_tmem *vt;
	unsigned long flags;
	LIST_HEAD(kept);
	unsigned int i;

	/* Wait for a page being brought back; bring no more to this area. */
	mutex_lock(&virtio_tmem_swap_disk_mutex);
	pool->swap_bdev = NULL;
	pool->swap_file = NULL;

	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	for (i = 0; i < ARRAY_SIZE(virtio_tmem_copies); i++) {
		list_for_each_entry_safe(page, next, &virtio_tmem_copies[i],
					 lru) {
			if ((page_private(page) & ~VIRTIO_TMEM_COPY_KEPT) != type)
				continue;
			list_del_init(&page->lru);
			if (page_private(page) & VIRTIO_TMEM_COPY_KEPT)
				list_add(&page->lru, &kept);
		}
	}
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	list_for_each_entry_safe(page, next, &kept, lru) {
		__free_page(page);
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_KEPT, -1);
	}

	mutex_lock(&virtio_tmem_pools_mutex);
	vt = rcu_dereference_protected(virtio_tmem_dev,
				       lockdep_is_held(&virtio_tmem_pools_mutex));
	if (vt)
		virtio_tmem_pool_detach(vt, pool);
	virtio_tmem_pf_forget_pool(pool);
	pool->in_use = false;
	xa_destroy(&pool->held);
	mutex_unlock(&virtio_tmem_pools_mutex);
	mutex_unlock(&virtio_tmem_swap_disk_mutex);
}

/*
 * Where swap area @type keeps its pages, so that they can be written back
 * to it: a block device, or a swap file on one.  5.10 exports no way to
 * reach the area's file but __page_file_mapping(), which reads only
 * page_private(), so a scratch page stands in for a swap cache page.  The
 * file is open from swapon until after swapoff's invalidate_area.
 */
static void virtio_tmem_find_swap_disk(struct virtio_tmem_pool *pool,
				       unsigned int type)
{
	struct address_space *mapping;
	struct page *scratch;
	struct inode *inode;

	scratch = virtio_tmem_alloc_page(GFP_KERNEL);
	if (!scratch)
		return;		/* pages come back to guest memory then */
	set_page_private(scratch, swp_entry(type, 1).val);
	mapping = __page_file_mapping(scratch);
	set_page_private(scratch, 0);
	__free_page(scratch);

	inode = mapping ? mapping->host : NULL;
	if (!inode)
		return;
	/*
	 * Swap slot n is the nth page of a block device.  In a swap file it
	 * is the nth page swapon mapped, and swapon skips pages whose blocks
	 * are not one aligned, contiguous run on the disk: with blocks
	 * smaller than a page it may renumber them, so only files of
	 * page-sized blocks, where slot n is file page n, are written to.
	 */
	if (S_ISBLK(inode->i_mode)) {
		pool->swap_bdev = I_BDEV(inode);
	} else if (S_ISREG(inode->i_mode) && inode->i_sb->s_bdev &&
		   inode->i_blkbits == PAGE_SHIFT) {
		pool->swap_bdev = inode->i_sb->s_bdev;
		pool->swap_file = inode;
	}
}

/**
 * virtio_tmem_frontswap_pool_init - make swap type @type's pool usable
 * @type: the swap type
 * @find_disk: look up where the swap area keeps its pages; false for a
 *	type with no swap area behind it (the torture test's)
 */
void virtio_tmem_frontswap_pool_init(unsigned int type, bool find_disk)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	struct virtio_tmem *vt;

	/*
	 * Without the swap disk mutex: swapon holds the swap file's inode
	 * lock here, and reclaim takes that lock (bmap()) under the mutex.
	 * No page of this area is held yet, so nothing reads these fields.
	 */
	pool->swap_bdev = NULL;
	pool->swap_file = NULL;
	if (find_disk)
		virtio_tmem_find_swap_disk(pool, type);

	mutex_lock(&virtio_tmem_pools_mutex);
	pool->kind = VIRTIO_TMEM_POOL_PERSISTENT;
	pool->in_use = true;
	vt = rcu_dereference_protected(virtio_tmem_dev,
				       lockdep_is_held(&virtio_tmem_pools_mutex));
	if (vt && !pool->on_device)
		virtio_tmem_pool_attach(vt, pool);
	mutex_unlock(&virtio_tmem_pools_mutex);
}

static void virtio_tmem_frontswap_init(unsigned int type)
{
	virtio_tmem_frontswap_pool_init(type, true);
}

/*
 * Not const: frontswap_register_ops() links it into its list.  It is
 * registered from module init, so it is read-only from then on.
 */
struct frontswap_ops virtio_tmem_frontswap_ops __ro_after_init = {
	.init = virtio_tmem_frontswap_init,
	.store = virtio_tmem_frontswap_store,
	.load = virtio_tmem_frontswap_load,
	.invalidate_page = virtio_tmem_frontswap_invalidate_page,
	.invalidate_area = virtio_tmem_frontswap_invalidate_area,
};

void virtio_tmem_frontswap_setup(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(virtio_tmem_copies); i++)
		INIT_LIST_HEAD(&virtio_tmem_copies[i]);
	for (i = 0; i < MAX_SWAPFILES; i++)
		xa_init_flags(&virtio_tmem_fs_pools[i].held, XA_FLAGS_LOCK_IRQ);
}

/*
 * A GET that brought no page back.  If the key was invalidated meanwhile,
 * its flush may have gone first: nothing is lost.  Returns 0 then, else
 * -EIO: the page stays on the host, or, if it missed, is lost.
 */
static int virtio_tmem_not_back(struct virtio_tmem_pool *pool,
				unsigned int type, pgoff_t offset, int st)
{
	if (xa_load(&pool->held, offset) != VIRTIO_TMEM_ON_HOST)
		return 0;
	if (st == VIRTIO_TMEM_S_IO)
		pr_warn_ratelimited("virtio_tmem: swap page %u:%lu stays on the host: it cannot read it back yet\n",
				    type, offset);
	else
		pr_err_ratelimited("virtio_tmem: swap page %u:%lu not returned: status %d\n",
				   type, offset, st);
	return -EIO;
}

/*
 * Fetch one swap page the host holds into @page, a kept copy.  It is
 * kept only if the key is still held: an invalidation clears held first
 * and then looks in the copies table, so it either stops the insertion or
 * finds and frees the copy.  Returns 1 if kept (and @page taken), 0 if no
 * longer held.
 */
static int virtio_tmem_fetch(struct virtio_tmem *vt, unsigned int type,
			     pgoff_t offset, struct page *page)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	unsigned long flags;
	bool kept = false;
	int st;

	/* As in virtio_tmem_write_back(): no op on the key is queued. */
	if (xa_load(&pool->held, offset) != VIRTIO_TMEM_ON_HOST)
		return 0;
	st = virtio_tmem_fs_get(vt, pool, type, offset, page,
				VIRTIO_TMEM_BRING_BACK);
	if (st)
		return virtio_tmem_not_back(pool, type, offset, st);
	set_page_private(page, type | VIRTIO_TMEM_COPY_KEPT);
	page->index = offset;
	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	if (xa_load(&pool->held, offset) == VIRTIO_TMEM_ON_HOST &&
	    !virtio_tmem_copy_find(type, offset)) {
		list_add(&page->lru, virtio_tmem_bucket(type, offset));
		/* A kept copy's key has no entry: the host's page is moot. */
		virtio_tmem_held_move(pool, offset, VIRTIO_TMEM_ON_HOST, NULL);
		kept = true;
	}
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (!kept)
		return 0;
	virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_KEPT, 1);
	return 1;
}

/*
 * The sector of swap slot @offset.  A swap file's blocks cannot move while
 * it is on (S_SWAPFILE): swapon itself mapped them with bmap().
 */
static int virtio_tmem_slot_sector(const struct virtio_tmem_pool *pool,
				   pgoff_t offset, sector_t *sector)
{
	struct inode *file = pool->swap_file;
	sector_t block = offset;

	if (file && (bmap(file, &block) || !block))
		return -EIO;
	*sector = block << (PAGE_SHIFT - SECTOR_SHIFT);
	return 0;
}

/* Write @page to slot @offset with @bio, allocated beforehand. */
static int virtio_tmem_write_slot(const struct virtio_tmem_pool *pool,
				  pgoff_t offset, struct page *page,
				  struct bio *bio)
{
	sector_t sector;
	int err;

	err = virtio_tmem_slot_sector(pool, offset, &sector);
	if (err)
		return err;
	bio_set_dev(bio, pool->swap_bdev);
	bio->bi_iter.bi_sector = sector;
	bio->bi_opf = REQ_OP_WRITE | REQ_SYNC;
	bio_add_page(bio, page, PAGE_SIZE, 0);
	return submit_bio_wait(bio);
}

/*
 * Write one page the host holds to its own slot on the swap disk.  The
 * kernel still thinks the page is in frontswap; our load misses from now
 * on, and swap_readpage() reads the slot instead.  Returns 1 if written,
 * 0 if no longer held or not on the host yet.
 */
static int virtio_tmem_write_back(struct virtio_tmem *vt, unsigned int type,
				  pgoff_t offset, struct page *buf,
				  struct bio *bio)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	unsigned long flags;
	void *old;
	int err, st;

	/*
	 * The slot is busy: no new store of it can start.  ON_HOST: no op on
	 * the key is queued, so the GET needs no order (spec 6.9).
	 */
	if (xa_load(&pool->held, offset) != VIRTIO_TMEM_ON_HOST)
		return 0;
	st = virtio_tmem_fs_get(vt, pool, type, offset, buf,
				VIRTIO_TMEM_BRING_BACK);
	if (st)
		return virtio_tmem_not_back(pool, type, offset, st);
	err = virtio_tmem_write_slot(pool, offset, buf, bio);
	if (err)
		return err;
	/* Only if not invalidated meanwhile; replacing allocates nothing. */
	xa_lock_irqsave(&pool->held, flags);
	old = __xa_cmpxchg(&pool->held, offset, VIRTIO_TMEM_ON_HOST,
			   VIRTIO_TMEM_ON_DISK, GFP_NOWAIT);
	xa_unlock_irqrestore(&pool->held, flags);
	return old == VIRTIO_TMEM_ON_HOST;
}

enum virtio_tmem_dest { VIRTIO_TMEM_TO_DISK, VIRTIO_TMEM_TO_MEMORY };

/*
 * One try at bringing the page at @offset back, with what was allocated
 * for it: with @bio, to its swap slot; with @copy, into that page, kept.
 * The slot is busy meanwhile, and nothing is allocated: reclaim must not
 * make this task store a page while its slot is busy.
 */
static int virtio_tmem_bring_back_with(struct virtio_tmem *vt,
				       unsigned int type, pgoff_t offset,
				       struct page *buf, struct bio *bio,
				       struct page *copy)
{
	unsigned int noio = memalloc_noio_save();
	int ret;

	virtio_tmem_set_busy_slot(type, offset);
	virtio_tmem_fault_busy_alloc();
	if (bio)
		ret = virtio_tmem_write_back(vt, type, offset, buf, bio);
	else
		ret = virtio_tmem_fetch(vt, type, offset, copy);
	if (ret > 0) {
		virtio_tmem_count(VIRTIO_TMEM_BROUGHT_BACK, 1);
		virtio_tmem_fs_flush(vt, &virtio_tmem_fs_pools[type], type,
				     offset);
	}
	virtio_tmem_set_busy_slot(-1, 0);
	memalloc_noio_restore(noio);
	return ret;
}

/*
 * Bring the page at @offset back from the host, and flush it there: to its
 * slot on the swap disk, or else, if @memory, to guest memory as a kept
 * copy allocated with @gfp; *@dest says which.  Returns 1 if the page
 * moved, 0 if it was no longer on the host, or an error if it still is.
 */
static int virtio_tmem_bring_back(struct virtio_tmem *vt, unsigned int type,
				  pgoff_t offset, bool memory, gfp_t gfp,
				  struct page *buf, enum virtio_tmem_dest *dest)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	struct page *copy;
	struct bio *bio;
	int ret = -ENODEV;

	mutex_lock(&virtio_tmem_swap_disk_mutex);
	*dest = VIRTIO_TMEM_TO_DISK;
	if (pool->swap_bdev && buf) {
		bio = bio_alloc(GFP_NOIO, 1);
		ret = virtio_tmem_bring_back_with(vt, type, offset, buf, bio,
						  NULL);
		bio_put(bio);
	}
	if (ret < 0 && memory) {
		*dest = VIRTIO_TMEM_TO_MEMORY;
		copy = virtio_tmem_alloc_page(gfp | __GFP_NOWARN);
		ret = copy ? virtio_tmem_bring_back_with(vt, type, offset,
							 NULL, NULL, copy) :
			     -ENOMEM;
		if (ret <= 0 && copy)
			__free_page(copy);
	}
	mutex_unlock(&virtio_tmem_swap_disk_mutex);
	return ret;
}

/*
 * The host asked for persistent pages back (VIRTIO_TMEM_EVENT_RECLAIM):
 * bring up to that many back and flush them on the host.  They go to
 * their slots on the swap disk; kept copies are the fallback only, within
 * half of the guest's available memory and taken from free memory alone,
 * because the kernel cannot reclaim them: a guest that swaps is short of
 * memory already.  Not through frontswap_shrink(): see
 * virtio_tmem_frontswap_drain().
 */
void virtio_tmem_reclaim(struct work_struct *work)
{
	struct virtio_tmem *vt = container_of(work, struct virtio_tmem,
					      reclaim_work);
	long want = atomic_long_xchg(&vt->reclaim_target, 0);
	/*
	 * Half of what is available, and never more kept copies in all than
	 * VIRTIO_TMEM_KEPT_SHARE of RAM: the kernel cannot reclaim them, and
	 * each RECLAIM would otherwise take half of what the last one left
	 * (and what swapping to disk freed meanwhile) until the guest OOMs.
	 */
	long room = min_t(long, si_mem_available() / 2,
			  totalram_pages() / VIRTIO_TMEM_KEPT_SHARE -
			  atomic64_read(&virtio_tmem_stats[VIRTIO_TMEM_FRONTSWAP_KEPT]));
	/* free memory only: no direct reclaim, no kswapd, no OOM killer */
	gfp_t gfp = GFP_NOWAIT & ~__GFP_KSWAPD_RECLAIM;
	enum virtio_tmem_dest dest;
	unsigned long offset;
	struct page *buf;
	unsigned int type;
	void *entry;
	int ret;

	buf = virtio_tmem_alloc_page(GFP_KERNEL | __GFP_NOWARN);
	for (type = 0; type < MAX_SWAPFILES && want > 0; type++) {
		struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];

		if (!READ_ONCE(pool->on_device))
			continue;
		xa_for_each(&pool->held, offset, entry) {
			if (want <= 0 || READ_ONCE(vt->draining))
				goto out;
			if (entry != VIRTIO_TMEM_ON_HOST)
				continue;
			ret = virtio_tmem_bring_back(vt, type, offset,
						     room > 0, gfp, buf, &dest);
			if (ret < 0)
				goto out;
			if (ret > 0) {
				virtio_tmem_count(VIRTIO_TMEM_RECLAIMED, 1);
				if (dest == VIRTIO_TMEM_TO_DISK)
					virtio_tmem_count(VIRTIO_TMEM_RECLAIMED_TO_DISK, 1);
				else
					room--;
				want--;
			}
			cond_resched();
		}
	}
out:
	if (buf)
		__free_page(buf);
}

/* Swap pages the host holds (or will, once their puts complete). */
unsigned long virtio_tmem_frontswap_on_host(void)
{
	unsigned long offset, n = 0;
	unsigned int type;
	void *entry;

	for (type = 0; type < MAX_SWAPFILES; type++) {
		xa_for_each(&virtio_tmem_fs_pools[type].held, offset, entry) {
			if (entry != VIRTIO_TMEM_ON_DISK)
				n++;
		}
	}
	return n;
}

/**
 * virtio_tmem_frontswap_drain - bring every swap page back from the host
 * @vt: the device; stores must be stopped (virtio_tmem_stop_stores())
 *
 * Before the device goes away or sleeps, bring every swap page it holds
 * back: to its slot on the swap disk when the swap area is a block device
 * or a swap file on one, else into guest memory as a kept copy that serves
 * later loads.  Memory for copies may be reclaimed: the slot is not busy
 * while it is taken, and stores are refused, so what reclaim pushes out
 * goes to the swap disk.  frontswap_shrink() cannot do this in 5.10: asked
 * for every page, its try_to_unuse() loops while any page of the area is
 * on disk, and asked for part of them it still waited for the owner to
 * exit in our tests.
 *
 * Return: the pages still on the host, which stay held.
 */
unsigned long virtio_tmem_frontswap_drain(struct virtio_tmem *vt)
{
	unsigned long offset, kept = 0, written = 0;
	enum virtio_tmem_dest dest;
	unsigned int type;
	struct page *buf;
	void *entry;
	int ret;

	buf = virtio_tmem_alloc_page(GFP_KERNEL);
	for (type = 0; type < MAX_SWAPFILES; type++) {
		struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];

		if (!READ_ONCE(pool->on_device))
			continue;
		xa_for_each(&pool->held, offset, entry) {
			if (WARN_ON_ONCE(entry == VIRTIO_TMEM_PENDING) ||
			    entry != VIRTIO_TMEM_ON_HOST)
				continue;
			ret = virtio_tmem_bring_back(vt, type, offset, true,
						     GFP_KERNEL, buf, &dest);
			if (ret > 0 && dest == VIRTIO_TMEM_TO_DISK)
				written++;
			else if (ret > 0)
				kept++;
			cond_resched();
		}
	}
	if (buf)
		__free_page(buf);
	dev_info(&vt->vdev->dev,
		 "swap pages brought back from the host: %lu to the swap disk, %lu to guest memory\n",
		 written, kept);
	return virtio_tmem_frontswap_on_host();
}

/*
 * The device is gone: forget what it held.  What went to disk stays, for
 * virtio_tmem_frontswap_load().
 */
void virtio_tmem_frontswap_forget(void)
{
	unsigned long offset;
	unsigned int type;
	void *entry;

	for (type = 0; type < MAX_SWAPFILES; type++) {
		struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];

		xa_for_each(&pool->held, offset, entry) {
			if (entry != VIRTIO_TMEM_ON_DISK)
				virtio_tmem_held_clear(pool, offset);
		}
	}
}
