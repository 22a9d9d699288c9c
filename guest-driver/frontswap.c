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
#include <linux/frontswap.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/swapops.h>

#include "virtio_tmem_drv.h"

#define VIRTIO_TMEM_COPY_BITS	8
#define VIRTIO_TMEM_COPY_KEPT	BIT(31)	/* in page_private(): kept for good */
/* A pool's held xarray maps each offset to where its page is. */
#define VIRTIO_TMEM_ON_HOST	xa_mk_value(1)
#define VIRTIO_TMEM_ON_DISK	xa_mk_value(2)	/* in its swap slot */

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
 * flush can overtake the new page.  Under virtio_tmem_copies_lock.
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

/* Whether the guest holds a copy of the page: then the device's is moot. */
static bool virtio_tmem_has_copy(unsigned int type, pgoff_t offset)
{
	unsigned long flags;
	bool found;

	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	found = virtio_tmem_copy_find(type, offset);
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	return found;
}

/*
 * A batched put completed.  Give the staging page back to the queue, or
 * keep it if the put was refused and the key is still live.  Caller must
 * hold q->lock.
 */
void virtio_tmem_fs_put_done(struct page *copy, u8 status,
			     struct virtio_tmem_queue *q)
{
	bool keep = false;

	spin_lock(&virtio_tmem_copies_lock);
	if (!list_empty(&copy->lru)) {
		if (status == VIRTIO_TMEM_S_OK) {
			list_del_init(&copy->lru);
		} else {
			set_page_private(copy, page_private(copy) |
					 VIRTIO_TMEM_COPY_KEPT);
			keep = true;
		}
	}
	spin_unlock(&virtio_tmem_copies_lock);

	if (keep) {
		q->npages--;	/* replaced when a batch is next opened */
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_KEPT, 1);
	} else {
		q->pages[q->nfree++] = copy;
	}
}

/* Record that @offset is (about to be) on the device; may fail. */
static int virtio_tmem_held_set(struct virtio_tmem_pool *pool, pgoff_t offset)
{
	unsigned long flags;
	void *old;

	xa_lock_irqsave(&pool->held, flags);
	old = __xa_store(&pool->held, offset, VIRTIO_TMEM_ON_HOST,
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
				   struct virtio_tmem_pool *pool,
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
	return st ? -1 : 0;
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
		return virtio_tmem_fs_sync_put(vt, q, pool, &put, page);

	spin_lock_irqsave(&q->lock, flags);
	op = virtio_tmem_add_op(q, &s, true, true, &flags);
	if (!op) {
		/* Every staging page is kept for a refused put. */
		spin_unlock_irqrestore(&q->lock, flags);
		atomic_inc(&vt->credits);
		return virtio_tmem_fs_sync_put(vt, q, pool, &put, page);
	}
	*op = put;
	op->flags = VIRTIO_TMEM_OP_F_CREDIT;
	s->class = VIRTIO_TMEM_FS_STORE;
	s->pool = pool;
	s->credited = true;
	copy_highpage(s->copy, page);
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

	virtio_tmem_count(ret ? VIRTIO_TMEM_FRONTSWAP_STORE_REJECTS :
				VIRTIO_TMEM_FRONTSWAP_STORES, 1);
	return ret;
}

static int virtio_tmem_fs_get(struct virtio_tmem *vt,
			      struct virtio_tmem_pool *pool,
			      unsigned int type, pgoff_t offset,
			      struct page *page, u8 class)
{
	struct virtio_tmem_queue *q = virtio_tmem_fs_queue(vt, type, offset);
	struct virtio_tmem_op get = { .type = VIRTIO_TMEM_OP_GET };
	int tries, st = VIRTIO_TMEM_S_IO;

	get.arg = cpu_to_le32(PAGE_SHIFT);
	virtio_tmem_fs_key(&get, pool, offset);
	/* S_IO: the host could not read its spilled copy yet; it still has it. */
	for (tries = 0; tries < 3 && st == VIRTIO_TMEM_S_IO; tries++)
		st = virtio_tmem_sync_op(vt, q, &get, class, pool, page, NULL);
	if (st != VIRTIO_TMEM_S_OK)
		pr_err_ratelimited("virtio_tmem: swap page %u:%lu not returned: status %d\n",
				   type, offset, st);
	return st == VIRTIO_TMEM_S_OK ? 0 : -1;
}

static int virtio_tmem_frontswap_load(unsigned int type, pgoff_t offset,
				      struct page *page)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	struct virtio_tmem *vt;
	unsigned long flags;
	struct page *copy;
	int idx, ret = -1;

	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	copy = virtio_tmem_copy_find(type, offset);
	if (copy)
		copy_highpage(page, copy);
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (copy) {
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS, 1);
		virtio_tmem_count(VIRTIO_TMEM_FRONTSWAP_LOADS_FROM_COPY, 1);
		return 0;
	}

	/* Written to its swap slot: the kernel reads it there. */
	if (xa_load(&pool->held, offset) == VIRTIO_TMEM_ON_DISK)
		goto out;
	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = srcu_dereference(virtio_tmem_dev, &virtio_tmem_srcu);
	if (vt && READ_ONCE(pool->on_device))
		ret = virtio_tmem_fs_get(vt, pool, type, offset, page,
					 VIRTIO_TMEM_FS_LOAD);
	srcu_read_unlock(&virtio_tmem_srcu, idx);
out:

	virtio_tmem_count(ret ? VIRTIO_TMEM_FRONTSWAP_LOAD_MISSES :
				VIRTIO_TMEM_FRONTSWAP_LOADS, 1);
	return ret;
}

/* Queue a FLUSH_PAGE; nothing here sleeps. */
static void virtio_tmem_fs_flush(struct virtio_tmem *vt,
				 struct virtio_tmem_pool *pool,
				 unsigned int type, pgoff_t offset)
{
	struct virtio_tmem_queue *q = virtio_tmem_fs_queue(vt, type, offset);
	struct virtio_tmem_slot *s;
	struct virtio_tmem_op *op;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	op = virtio_tmem_add_op(q, &s, false, false, &flags);
	if (op) {
		op->type = VIRTIO_TMEM_OP_FLUSH_PAGE;
		virtio_tmem_fs_key(op, pool, offset);
		s->class = VIRTIO_TMEM_FLUSH;
		s->pool = pool;
		virtio_tmem_op_added(q);
	} else {
		/* The host keeps a dead page until swapoff. */
		virtio_tmem_count(VIRTIO_TMEM_FLUSHES_LOST, 1);
	}
	spin_unlock_irqrestore(&q->lock, flags);
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
	if (S_ISBLK(inode->i_mode)) {
		pool->swap_bdev = I_BDEV(inode);
	} else if (S_ISREG(inode->i_mode) && inode->i_sb->s_bdev &&
		   inode->i_blkbits <= PAGE_SHIFT) {
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
 * Fetch one swap page the device holds into a kept copy.  It is kept only
 * if the key is still held: an invalidation clears held first and then
 * looks in the copies table, so it either stops the insertion or finds
 * and frees the copy.  Returns 1 if kept, 0 if no longer held.
 */
static int virtio_tmem_fetch(struct virtio_tmem *vt, unsigned int type,
			     pgoff_t offset, gfp_t gfp)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	unsigned long flags;
	struct page *page;
	bool kept = false;

	page = virtio_tmem_alloc_page(gfp | __GFP_NOWARN);
	if (!page)
		return -ENOMEM;
	if (virtio_tmem_fs_get(vt, pool, type, offset, page,
			       VIRTIO_TMEM_BRING_BACK)) {
		__free_page(page);
		return -EIO;
	}
	set_page_private(page, type | VIRTIO_TMEM_COPY_KEPT);
	page->index = offset;
	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	if (xa_load(&pool->held, offset) && !virtio_tmem_copy_find(type, offset)) {
		list_add(&page->lru, virtio_tmem_bucket(type, offset));
		kept = true;
	}
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (!kept) {
		__free_page(page);
		return 0;
	}
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
	unsigned int bits = file ? file->i_blkbits : PAGE_SHIFT;
	sector_t block = (sector_t)offset << (PAGE_SHIFT - bits);

	if (file && (bmap(file, &block) || !block))
		return -EIO;
	*sector = block << (bits - SECTOR_SHIFT);
	return 0;
}

static int virtio_tmem_write_slot(const struct virtio_tmem_pool *pool,
				  pgoff_t offset, struct page *page)
{
	struct bio *bio;
	sector_t sector;
	int err;

	err = virtio_tmem_slot_sector(pool, offset, &sector);
	if (err)
		return err;
	bio = bio_alloc(GFP_KERNEL, 1);
	bio_set_dev(bio, pool->swap_bdev);
	bio->bi_iter.bi_sector = sector;
	bio->bi_opf = REQ_OP_WRITE | REQ_SYNC;
	bio_add_page(bio, page, PAGE_SIZE, 0);
	err = submit_bio_wait(bio);
	bio_put(bio);
	return err;
}

/*
 * Write one held page to its own slot on the swap disk.  The kernel still
 * thinks the page is in frontswap; our load misses from now on, and
 * swap_readpage() reads the slot instead.  Returns 1 if written, 0 if no
 * longer held or a put of it is in flight.
 */
static int virtio_tmem_write_back(struct virtio_tmem *vt, unsigned int type,
				  pgoff_t offset, struct page *buf)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	unsigned long flags;
	bool held;
	void *old;
	int err;

	if (!pool->swap_bdev || !buf)
		return -ENODEV;
	/* The slot is busy: no new put of it can start while we write. */
	spin_lock_irqsave(&virtio_tmem_copies_lock, flags);
	held = xa_load(&pool->held, offset) == VIRTIO_TMEM_ON_HOST &&
	       !virtio_tmem_copy_find(type, offset);
	spin_unlock_irqrestore(&virtio_tmem_copies_lock, flags);
	if (!held)
		return 0;
	if (virtio_tmem_fs_get(vt, pool, type, offset, buf,
			       VIRTIO_TMEM_BRING_BACK))
		return -EIO;
	err = virtio_tmem_write_slot(pool, offset, buf);
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
 * Bring the page at @offset back from the host: to its slot on the swap
 * disk, or else, if @memory allows, to guest memory as a kept copy;
 * *@dest says which.  For @reclaim, flush it on the host afterwards, and
 * take only memory that is free: neither the OOM killer nor kswapd should
 * push other pages out to make room for it.  The slot is busy meanwhile
 * (see virtio_tmem_busy_type).  Returns 1 if the page moved, 0 if it was
 * no longer held, or an error if it is still on the host alone.
 */
static int virtio_tmem_bring_back(struct virtio_tmem *vt, unsigned int type,
				  pgoff_t offset, bool reclaim, bool memory,
				  struct page *buf, enum virtio_tmem_dest *dest)
{
	struct virtio_tmem_pool *pool = &virtio_tmem_fs_pools[type];
	gfp_t gfp = reclaim ? GFP_NOWAIT & ~__GFP_KSWAPD_RECLAIM : GFP_KERNEL;
	int ret;

	mutex_lock(&virtio_tmem_swap_disk_mutex);
	virtio_tmem_set_busy_slot(type, offset);
	virtio_tmem_fault_busy_alloc();
	*dest = VIRTIO_TMEM_TO_DISK;
	ret = virtio_tmem_write_back(vt, type, offset, buf);
	if (ret < 0 && memory) {
		*dest = VIRTIO_TMEM_TO_MEMORY;
		ret = virtio_tmem_fetch(vt, type, offset, gfp);
	}
	if (ret > 0)
		virtio_tmem_count(VIRTIO_TMEM_BROUGHT_BACK, 1);
	if (ret > 0 && reclaim) {
		if (*dest == VIRTIO_TMEM_TO_MEMORY)
			virtio_tmem_held_clear(pool, offset);
		virtio_tmem_fs_flush(vt, pool, type, offset);
	}
	virtio_tmem_set_busy_slot(-1, 0);
	mutex_unlock(&virtio_tmem_swap_disk_mutex);
	return ret;
}

/*
 * The host asked for persistent pages back (VIRTIO_TMEM_EVENT_RECLAIM):
 * bring up to that many back and flush them on the host.  They go to
 * their slots on the swap disk; kept copies are the fallback only, within
 * half of the guest's available memory, because the kernel cannot reclaim
 * them: a guest that swaps is short of memory already.  Not through
 * frontswap_shrink(): see virtio_tmem_frontswap_drain().
 */
void virtio_tmem_reclaim(struct work_struct *work)
{
	struct virtio_tmem *vt = container_of(work, struct virtio_tmem,
					      reclaim_work);
	long want = atomic_long_xchg(&vt->reclaim_target, 0);
	long room = si_mem_available() / 2;
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
			if (entry != VIRTIO_TMEM_ON_HOST ||
			    virtio_tmem_has_copy(type, offset))
				continue;
			ret = virtio_tmem_bring_back(vt, type, offset, true,
						     room > 0, buf, &dest);
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

/*
 * Before the device goes away, bring every swap page it holds back: to
 * its slot on the swap disk when the swap area is a block device or a
 * swap file on one, else into guest memory as a kept copy that serves
 * later loads.  frontswap_shrink() cannot do this in 5.10: asked for every
 * page, its try_to_unuse() loops while any page of the area is on disk,
 * and asked for part of them it still waited for the owner to exit in our
 * tests.
 */
void virtio_tmem_frontswap_drain(struct virtio_tmem *vt)
{
	unsigned long offset, lost = 0, kept = 0, written = 0;
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
			if (entry != VIRTIO_TMEM_ON_HOST ||
			    virtio_tmem_has_copy(type, offset))
				continue;
			ret = virtio_tmem_bring_back(vt, type, offset, false,
						     true, buf, &dest);
			if (ret > 0 && dest == VIRTIO_TMEM_TO_DISK)
				written++;
			else if (ret > 0)
				kept++;
			else if (ret < 0 && xa_load(&pool->held, offset))
				lost++;
			cond_resched();
		}
		/* Only what went to disk stays, for virtio_tmem_frontswap_load. */
		xa_for_each(&pool->held, offset, entry) {
			if (entry != VIRTIO_TMEM_ON_DISK)
				virtio_tmem_held_clear(pool, offset);
		}
	}
	if (buf)
		__free_page(buf);
	dev_info(&vt->vdev->dev,
		 "swap pages brought back from the host: %lu to the swap disk, %lu to guest memory\n",
		 written, kept);
	if (lost)
		dev_err(&vt->vdev->dev, "%lu swap pages could not be brought back\n",
			lost);
}
