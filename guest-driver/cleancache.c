// SPDX-License-Identifier: GPL-2.0
/*
 * cleancache.c - the cleancache backend: one ephemeral pool per mounted
 * filesystem.
 *
 * Puts run with interrupts off: they copy the page into a staging page of
 * the open batch.  A put that is not sent (no staging page is free, the
 * host hinted that puts do not pay off, or cleancache=0) is turned into a
 * flush of its key instead: the kernel does not invalidate a page it
 * overwrites, it only puts it again at eviction, so a put that vanished
 * would leave the older page on the host for a later get to return
 * (put-put-get coherency, spec 6.6).  Gets are synchronous, but a get for
 * a key the presence filter says the host cannot hold misses without an
 * exit (Avi Kivity's "one exit per cache miss").  Flushes are batched and never skipped, so
 * coherency never rests on the filter.  A flush that cannot be sent
 * poisons its pool: every get misses and every put is dropped until a
 * FLUSH_POOL has emptied the pool on the host.
 */
#include <linux/cleancache.h>
#include <linux/jhash.h>
#include <linux/vmalloc.h>

#include "virtio_tmem_drv.h"

static unsigned int virtio_tmem_filter_slot(const struct virtio_tmem_op *op)
{
	return jhash(op->oid, sizeof(op->oid), le32_to_cpu(op->index)) &
	       (BIT(VIRTIO_TMEM_FILTER_BITS) - 1);
}

static atomic_t *virtio_tmem_filter_object(struct virtio_tmem_filter *f,
					   const struct virtio_tmem_op *op)
{
	return &f->objects[jhash(op->oid, sizeof(op->oid), 0) &
			   (BIT(VIRTIO_TMEM_OBJ_FILTER_BITS) - 1)];
}

/* The host holds nothing of the pool's any more. */
void virtio_tmem_filter_clear(struct virtio_tmem_pool *pool)
{
	if (pool->filter)
		memset(pool->filter, 0, sizeof(*pool->filter));
}

/*
 * Count a put the host may hold (@delta 1), or one it no longer holds
 * (-1).  Saturated key counts stay saturated: they only cost exits.
 */
void virtio_tmem_filter_add(struct virtio_tmem_pool *pool,
			    const struct virtio_tmem_op *op, int delta)
{
	u8 *count, v;

	if (!pool->filter)
		return;
	if (delta > 0)
		atomic_inc(virtio_tmem_filter_object(pool->filter, op));
	else
		atomic_dec_if_positive(virtio_tmem_filter_object(pool->filter,
								 op));
	count = &pool->filter->keys[virtio_tmem_filter_slot(op)];
	v = READ_ONCE(*count);
	if (v == U8_MAX || (delta < 0 && !v))
		return;
	WRITE_ONCE(*count, v + delta);
}

/*
 * The host dropped @n pages of @op's object (FLUSH_OBJECT's count): each
 * was counted when it was put, so the object's counter stays at least
 * the pages the host still holds of the objects that share it.
 */
void virtio_tmem_filter_drop_object(struct virtio_tmem_pool *pool,
				    const struct virtio_tmem_op *op, u32 n)
{
	atomic_t *count;
	int v;

	if (!pool->filter || !n)
		return;
	count = virtio_tmem_filter_object(pool->filter, op);
	v = atomic_read(count);
	while (!atomic_try_cmpxchg(count, &v, (u32)v > n ? v - (int)n : 0))
		;
}

/* Whether the host may hold the page at @op's key. */
static bool virtio_tmem_filter_maybe(const struct virtio_tmem_pool *pool,
				     const struct virtio_tmem_op *op)
{
	if (!atomic_read(virtio_tmem_filter_object(pool->filter, op)))
		return false;
	if (READ_ONCE(virtio_tmem_faults.filter_full))
		return true;
	return READ_ONCE(pool->filter->keys[virtio_tmem_filter_slot(op)]);
}

static struct virtio_tmem_pool *virtio_tmem_cc_pool(int id)
{
	if (id < 0 || id >= VIRTIO_TMEM_CC_POOLS)
		return NULL;
	return &virtio_tmem_cc_pools[id];
}

static bool virtio_tmem_cc_key(struct virtio_tmem_op *op,
			       const struct virtio_tmem_pool *pool,
			       const struct cleancache_filekey *key,
			       pgoff_t index)
{
	const u32 *k = key->u.key;

	if (index > U32_MAX)
		return false;
	op->pool = cpu_to_le32(READ_ONCE(pool->dev_id));
	op->oid[0] = cpu_to_le64(k[0] | (u64)k[1] << 32);
	op->oid[1] = cpu_to_le64(k[2] | (u64)k[3] << 32);
	op->oid[2] = cpu_to_le64(k[4] | (u64)k[5] << 32);
	op->index = cpu_to_le32(index);
	return true;
}

/* All pages of a file share a queue, so FLUSH_OBJECT is ordered. */
static struct virtio_tmem_queue *
virtio_tmem_cc_queue(struct virtio_tmem *vt, const struct virtio_tmem_op *op)
{
	return virtio_tmem_queue_of(vt, le64_to_cpu(op->oid[0]) ^
				    le64_to_cpu(op->oid[1]) ^
				    le64_to_cpu(op->oid[2]) ^ le32_to_cpu(op->pool));
}

/* The device, if cleancache may use @pool on it now. */
static struct virtio_tmem *virtio_tmem_cc_dev(struct virtio_tmem_pool *pool)
{
	struct virtio_tmem *vt = srcu_dereference(virtio_tmem_dev,
						  &virtio_tmem_srcu);

	if (!vt || !pool || !READ_ONCE(pool->on_device) ||
	    READ_ONCE(pool->poisoned))
		return NULL;
	return vt;
}

void virtio_tmem_pool_poison(struct virtio_tmem *vt,
			     struct virtio_tmem_pool *pool)
{
	WRITE_ONCE(pool->poisoned, true);
	schedule_work(&vt->repair_work);
}

/* Empty poisoned pools on the host, then trust them again. */
void virtio_tmem_repair(struct work_struct *work)
{
	struct virtio_tmem *vt = container_of(work, struct virtio_tmem,
					      repair_work);
	struct virtio_tmem_op flush = { .type = VIRTIO_TMEM_OP_FLUSH_POOL };
	unsigned int i;

	mutex_lock(&virtio_tmem_pools_mutex);
	for (i = 0; i < VIRTIO_TMEM_CC_POOLS; i++) {
		struct virtio_tmem_pool *pool = &virtio_tmem_cc_pools[i];

		if (!pool->on_device || !READ_ONCE(pool->poisoned))
			continue;
		virtio_tmem_quiesce(vt);
		flush.pool = cpu_to_le32(pool->dev_id);
		if (virtio_tmem_sync_op(vt, &vt->queues[0], &flush,
					VIRTIO_TMEM_FLUSH, pool, NULL, NULL))
			continue;	/* stays poisoned */
		virtio_tmem_filter_clear(pool);
		WRITE_ONCE(pool->poisoned, false);
	}
	mutex_unlock(&virtio_tmem_pools_mutex);
}

/* Queue @flush; one that cannot be queued poisons the pool. */
static void virtio_tmem_cc_send_flush(struct virtio_tmem *vt,
				      struct virtio_tmem_pool *pool,
				      const struct virtio_tmem_op *flush)
{
	if (!virtio_tmem_queue_flush(virtio_tmem_cc_queue(vt, flush), flush,
				     pool))
		virtio_tmem_pool_poison(vt, pool);
}

/* Called with interrupts off: no sleeping, no allocation. */
static void virtio_tmem_cleancache_put(int id, struct cleancache_filekey key,
				       pgoff_t index, struct page *page)
{
	struct virtio_tmem_pool *pool = virtio_tmem_cc_pool(id);
	struct virtio_tmem_op put = { .type = VIRTIO_TMEM_OP_PUT };
	enum virtio_tmem_stat outcome = VIRTIO_TMEM_CLEANCACHE_PUT_DROPS;
	struct virtio_tmem_op *op = NULL;
	struct virtio_tmem_queue *q;
	struct virtio_tmem_slot *s;
	struct virtio_tmem *vt;
	u64 start = virtio_tmem_profile_start();
	unsigned long flags;
	int idx;

	idx = srcu_read_lock(&virtio_tmem_srcu);
	/* No device, or nothing of the pool's on it to go stale. */
	vt = virtio_tmem_cc_dev(pool);
	if (!vt || !virtio_tmem_cc_key(&put, pool, &key, index))
		goto out;
	put.arg = cpu_to_le32(PAGE_SHIFT);
	q = virtio_tmem_cc_queue(vt, &put);
	if (READ_ONCE(pool->hint_off)) {
		outcome = VIRTIO_TMEM_CLEANCACHE_PUT_HINTED_OFF;
	} else if (READ_ONCE(virtio_tmem_cleancache_on) &&
		   !READ_ONCE(vt->draining)) {
		spin_lock_irqsave(&q->lock, flags);
		op = virtio_tmem_add_op(q, &s, true, false, &flags);
		if (op) {
			*op = put;
			s->class = VIRTIO_TMEM_CC_PUT;
			s->pool = pool;
			virtio_tmem_copy_page(s->copy, page);
			virtio_tmem_filter_add(pool, op, 1);
			virtio_tmem_op_added(q);
			outcome = VIRTIO_TMEM_CLEANCACHE_PUTS;
		}
		spin_unlock_irqrestore(&q->lock, flags);
	}
	if (!op) {
		put.type = VIRTIO_TMEM_OP_FLUSH_PAGE;
		put.arg = 0;
		virtio_tmem_cc_send_flush(vt, pool, &put);
		virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_PUTS_FLUSHED, 1);
	}
out:
	/* After the put or flush joined its queue: see prefetch.c. */
	if (pool && virtio_tmem_cc_key(&put, pool, &key, index))
		virtio_tmem_pf_forget(pool, &put);
	srcu_read_unlock(&virtio_tmem_srcu, idx);
	virtio_tmem_count(outcome, 1);
	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_CLEANCACHE_PUT, start);
}

/*
 * How many of the pages from @get's on (it included) to ask for: up to
 * the prefetch window, while the presence filter says the host may hold
 * the next one.  1 for no prefetch.
 */
static unsigned int virtio_tmem_cc_window(struct virtio_tmem *vt,
					  struct virtio_tmem_pool *pool,
					  const struct virtio_tmem_op *get)
{
	unsigned int max = min3(READ_ONCE(virtio_tmem_prefetch),
				(unsigned int)READ_ONCE(pool->pf_window),
				(unsigned int)VIRTIO_TMEM_RANGE_MAX);
	struct virtio_tmem_op next = *get;
	u32 index = le32_to_cpu(get->index);
	unsigned int n;

	if (!vt->has_get_range || READ_ONCE(virtio_tmem_sync))
		return 1;
	for (n = 1; n < max && index + n > index; n++) {
		next.index = cpu_to_le32(index + n);
		if (!virtio_tmem_filter_maybe(pool, &next))
			break;
	}
	return n;
}

/*
 * Adapt @pool's window to what the host returned: a file re-read from
 * the host fills it, one the host does not have (rewritten, or never
 * put) shrinks it to a single page, so that misses do not make the host
 * look up, and the guest lend, pages for nothing.  A hit doubles it.
 * @asked neighbours were asked for and @got came back.
 */
static void virtio_tmem_cc_adapt(struct virtio_tmem_pool *pool, bool hit,
				 unsigned int asked, unsigned int got)
{
	unsigned int w = READ_ONCE(pool->pf_window);

	if (asked && got * 2 < asked)
		w = max(w / 2, 1U);
	else if (hit)
		w = min(w * 2, (unsigned int)VIRTIO_TMEM_RANGE_MAX);
	WRITE_ONCE(pool->pf_window, w);
}

/*
 * Ask the host for the page at @get, and for the next ones it holds in
 * the same request: readahead will ask for them next.
 */
static int virtio_tmem_cc_get_range(struct virtio_tmem *vt,
				    struct virtio_tmem_pool *pool,
				    struct virtio_tmem_op *get,
				    struct page *page)
{
	struct page *more[VIRTIO_TMEM_RANGE_MAX - 1];
	struct virtio_tmem_queue *q = virtio_tmem_cc_queue(vt, get);
	unsigned int n = virtio_tmem_cc_window(vt, pool, get);
	struct virtio_tmem_pf_flight f = {
		.pool = pool,
		.first = le32_to_cpu(get->index),
	};
	u32 found;
	int st;

	memcpy(f.oid, get->oid, sizeof(f.oid));
	if (n > 1)
		n = 1 + virtio_tmem_pf_begin(&f, n - 1, more);
	if (n == 1) {
		get->arg = cpu_to_le32(PAGE_SHIFT);
		st = virtio_tmem_sync_op(vt, q, get, VIRTIO_TMEM_CC_GET, pool,
					 page, NULL);
		virtio_tmem_cc_adapt(pool, st == VIRTIO_TMEM_S_OK, 0, 0);
		return st;
	}
	st = virtio_tmem_pf_send(vt, q, &f, get, VIRTIO_TMEM_CC_GET, page,
				 more, &found);
	virtio_tmem_cc_adapt(pool, st == VIRTIO_TMEM_S_OK, n - 1,
			     hweight32(found & ~1U));
	return st;
}

static int virtio_tmem_cleancache_get(int id, struct cleancache_filekey key,
				      pgoff_t index, struct page *page)
{
	struct virtio_tmem_pool *pool = virtio_tmem_cc_pool(id);
	struct virtio_tmem_op get = { .type = VIRTIO_TMEM_OP_GET };
	u64 start = virtio_tmem_profile_start();
	struct virtio_tmem *vt;
	int idx, ret = -1;

	virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_GETS, 1);
	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = virtio_tmem_cc_dev(pool);
	if (!vt || !virtio_tmem_cc_key(&get, pool, &key, index))
		goto out;
	virtio_tmem_fault_get_delay();
	if (virtio_tmem_pf_get(pool, &get, page)) {
		virtio_tmem_count(VIRTIO_TMEM_PREFETCH_HITS, 1);
		ret = 0;
		goto out;
	}
	if (!READ_ONCE(virtio_tmem_sync) &&
	    !virtio_tmem_filter_maybe(pool, &get)) {
		virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_MISSES_NO_EXIT, 1);
		goto out;
	}
	if (!virtio_tmem_cc_get_range(vt, pool, &get, page))
		ret = 0;
out:
	srcu_read_unlock(&virtio_tmem_srcu, idx);
	virtio_tmem_count(ret ? VIRTIO_TMEM_CLEANCACHE_MISSES :
				VIRTIO_TMEM_CLEANCACHE_HITS, 1);
	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_CLEANCACHE_GET, start);
	return ret;
}

/* Queue a FLUSH_PAGE or FLUSH_OBJECT.  May run with interrupts off. */
static void virtio_tmem_cc_flush(int id, struct cleancache_filekey *key,
				 pgoff_t index, u8 type)
{
	struct virtio_tmem_pool *pool = virtio_tmem_cc_pool(id);
	struct virtio_tmem_op flush = { .type = type };
	struct virtio_tmem *vt;
	int idx;

	virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_INVALIDATES, 1);
	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = virtio_tmem_cc_dev(pool);
	if (!vt)
		goto out;
	if (!virtio_tmem_cc_key(&flush, pool, key, index)) {
		virtio_tmem_pool_poison(vt, pool);
		goto out;
	}
	if (type == VIRTIO_TMEM_OP_FLUSH_OBJECT)
		flush.index = 0;
	virtio_tmem_cc_send_flush(vt, pool, &flush);
out:
	/* After the flush joined its queue: see prefetch.c. */
	if (pool && virtio_tmem_cc_key(&flush, pool, key, index))
		virtio_tmem_pf_forget(pool, &flush);
	srcu_read_unlock(&virtio_tmem_srcu, idx);
}

static void virtio_tmem_cleancache_invalidate_page(int id,
						   struct cleancache_filekey key,
						   pgoff_t index)
{
	virtio_tmem_cc_flush(id, &key, index, VIRTIO_TMEM_OP_FLUSH_PAGE);
}

static void virtio_tmem_cleancache_invalidate_inode(int id,
						    struct cleancache_filekey key)
{
	virtio_tmem_cc_flush(id, &key, 0, VIRTIO_TMEM_OP_FLUSH_OBJECT);
}

static void virtio_tmem_cleancache_invalidate_fs(int id)
{
	struct virtio_tmem_pool *pool = virtio_tmem_cc_pool(id);
	struct virtio_tmem *vt;

	if (!pool)
		return;
	mutex_lock(&virtio_tmem_pools_mutex);
	vt = rcu_dereference_protected(virtio_tmem_dev,
				       lockdep_is_held(&virtio_tmem_pools_mutex));
	if (vt)
		virtio_tmem_pool_detach(vt, pool);
	/* The next filesystem to take this pool must not see our pages. */
	virtio_tmem_pf_forget_pool(pool);
	/*
	 * The hooks read the filter under SRCU, after they saw on_device;
	 * detach cleared it, waited for them and for the device.  Without a
	 * device, on_device was false all along.
	 */
	vfree(pool->filter);
	pool->filter = NULL;
	pool->in_use = false;
	mutex_unlock(&virtio_tmem_pools_mutex);
}

static int virtio_tmem_cleancache_init_fs(size_t pagesize)
{
	struct virtio_tmem_pool *pool;
	struct virtio_tmem *vt;
	int id;

	if (pagesize != PAGE_SIZE)
		return -1;
	mutex_lock(&virtio_tmem_pools_mutex);
	for (id = 0; id < VIRTIO_TMEM_CC_POOLS; id++) {
		if (!virtio_tmem_cc_pools[id].in_use)
			break;
	}
	if (id == VIRTIO_TMEM_CC_POOLS)
		goto fail;
	pool = &virtio_tmem_cc_pools[id];
	pool->filter = vzalloc(sizeof(*pool->filter));
	if (!pool->filter)
		goto fail;
	pool->kind = VIRTIO_TMEM_POOL_EPHEMERAL;
	pool->pf_window = VIRTIO_TMEM_RANGE_MAX;
	pool->in_use = true;
	pool->hint_off = false;
	pool->poisoned = false;
	vt = rcu_dereference_protected(virtio_tmem_dev,
				       lockdep_is_held(&virtio_tmem_pools_mutex));
	if (vt)
		virtio_tmem_pool_attach(vt, pool);
	mutex_unlock(&virtio_tmem_pools_mutex);
	return id;
fail:
	mutex_unlock(&virtio_tmem_pools_mutex);
	return -1;
}

/* Shared (clustered) filesystems would need pools shared between guests. */
static int virtio_tmem_cleancache_init_shared_fs(uuid_t *uuid, size_t pagesize)
{
	return -1;
}

const struct cleancache_ops virtio_tmem_cleancache_ops = {
	.init_fs = virtio_tmem_cleancache_init_fs,
	.init_shared_fs = virtio_tmem_cleancache_init_shared_fs,
	.get_page = virtio_tmem_cleancache_get,
	.put_page = virtio_tmem_cleancache_put,
	.invalidate_page = virtio_tmem_cleancache_invalidate_page,
	.invalidate_inode = virtio_tmem_cleancache_invalidate_inode,
	.invalidate_fs = virtio_tmem_cleancache_invalidate_fs,
};
