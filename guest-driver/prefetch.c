// SPDX-License-Identifier: GPL-2.0
/*
 * prefetch.c - pages fetched ahead of the kernel's gets and loads.
 *
 * Readahead asks cleancache for a file's pages one by one, and swap
 * readahead loads a window of slots one by one; each get or load that
 * reaches the host costs an exit.  One that must go to the host asks
 * instead, with GET_RANGE, for the page and the next ones of the file
 * (or window) the host holds; those wait here, in a small cache, until
 * the kernel asks for them.  A hit is copied out and dropped: the page then
 * lives in the page cache, and is put again when it is evicted.
 *
 * Coherency: an entry is a copy of what the host held when the device
 * ran the GET_RANGE.  Every put or flush of a key forgets the key here
 * after it has joined its queue, and every GET_RANGE is registered as in
 * flight before it joins the same queue (a file's ops share a queue).
 * A frontswap load goes ahead of the open batch instead, so it asks only
 * for slots whose page the host holds with no op on them queued, and it
 * checks that after its flight is registered (frontswap.c).
 * So a put or flush the device runs after a GET_RANGE either finds the
 * flight, and marks that page stale so it is never inserted, or finds
 * the entry and drops it.  One the device ran before it is already in
 * what the GET_RANGE returned.  docs/guest-driver.md has the argument.
 *
 * The cache holds at most VIRTIO_TMEM_PF_PAGES pages, in entries, in
 * flight and free; the oldest entries are dropped for new fetches, and
 * a shrinker gives everything back under memory pressure.
 */
#include <linux/hashtable.h>
#include <linux/jhash.h>
#include <linux/shrinker.h>

#include "virtio_tmem_drv.h"

struct virtio_tmem_pf_entry {
	struct hlist_node hash;
	struct list_head lru;		/* or on the list of free entries */
	struct virtio_tmem_pool *pool;
	__le64 oid[3];
	u32 index;
	struct page *page;
};

static DEFINE_SPINLOCK(virtio_tmem_pf_lock);	/* irqsave: puts run so */
static DEFINE_HASHTABLE(virtio_tmem_pf_hash, 7);
static LIST_HEAD(virtio_tmem_pf_lru);		/* oldest first */
static LIST_HEAD(virtio_tmem_pf_unused);	/* free entries */
static LIST_HEAD(virtio_tmem_pf_flights);
static struct virtio_tmem_pf_entry virtio_tmem_pf_entries[VIRTIO_TMEM_PF_PAGES];
static struct page *virtio_tmem_pf_free[VIRTIO_TMEM_PF_PAGES];
static unsigned int virtio_tmem_pf_nfree;
/* Pages owned: in entries, in flight, free.  At most VIRTIO_TMEM_PF_PAGES. */
static unsigned int virtio_tmem_pf_held;
static unsigned int virtio_tmem_pf_cached;	/* in entries */

static u32 virtio_tmem_pf_hash_of(const struct virtio_tmem_pool *pool,
				  const __le64 *oid, u32 index)
{
	return jhash(oid, 3 * sizeof(*oid), index ^ (u32)(unsigned long)pool);
}

static bool virtio_tmem_pf_same_object(const struct virtio_tmem_pool *pool,
				       const __le64 *oid,
				       const struct virtio_tmem_pool *p2,
				       const __le64 *oid2)
{
	return pool == p2 && !memcmp(oid, oid2, 3 * sizeof(*oid));
}

/* Drop @e; its page goes to the free pages.  Under the lock. */
static void virtio_tmem_pf_drop(struct virtio_tmem_pf_entry *e)
{
	lockdep_assert_held(&virtio_tmem_pf_lock);
	hash_del(&e->hash);
	list_move(&e->lru, &virtio_tmem_pf_unused);
	virtio_tmem_pf_free[virtio_tmem_pf_nfree++] = e->page;
	e->page = NULL;
	virtio_tmem_pf_cached--;
}

static struct virtio_tmem_pf_entry *
virtio_tmem_pf_find(const struct virtio_tmem_pool *pool, const __le64 *oid,
		    u32 index)
{
	struct virtio_tmem_pf_entry *e;

	hash_for_each_possible(virtio_tmem_pf_hash, e, hash,
			       virtio_tmem_pf_hash_of(pool, oid, index)) {
		if (e->index == index &&
		    virtio_tmem_pf_same_object(pool, oid, e->pool, e->oid))
			return e;
	}
	return NULL;
}

/**
 * virtio_tmem_pf_get - serve a cleancache get or frontswap load from the cache
 * @pool: its pool
 * @op: its key, as an op
 * @page: where the page goes
 *
 * Return: true on a hit; the entry is gone then.
 */
bool virtio_tmem_pf_get(struct virtio_tmem_pool *pool,
			const struct virtio_tmem_op *op, struct page *page)
{
	struct virtio_tmem_pf_entry *e;
	unsigned long flags;

	if (!READ_ONCE(virtio_tmem_pf_cached))
		return false;
	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	e = virtio_tmem_pf_find(pool, op->oid, le32_to_cpu(op->index));
	if (e) {
		virtio_tmem_copy_page(page, e->page);
		virtio_tmem_pf_drop(e);
	}
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
	return e;
}

/*
 * Forget what the cache has or will have of @pool: of one object if @op
 * is not NULL, of one page of it if @page_only.  Under the lock.
 */
static void virtio_tmem_pf_forget_locked(struct virtio_tmem_pool *pool,
					 const struct virtio_tmem_op *op,
					 bool page_only)
{
	u32 index = op ? le32_to_cpu(op->index) : 0;
	struct virtio_tmem_pf_flight *f;
	struct virtio_tmem_pf_entry *e, *n;
	unsigned int dropped = 0;

	lockdep_assert_held(&virtio_tmem_pf_lock);
	list_for_each_entry(f, &virtio_tmem_pf_flights, node) {
		if (f->pool != pool ||
		    (op && !virtio_tmem_pf_same_object(pool, op->oid, f->pool,
						       f->oid)))
			continue;
		if (!page_only)
			f->stale = ~0u;
		else if (index - f->first < f->count)
			f->stale |= BIT(index - f->first);
	}
	if (!virtio_tmem_pf_cached)
		return;
	if (page_only) {
		e = virtio_tmem_pf_find(pool, op->oid, index);
		if (e) {
			virtio_tmem_pf_drop(e);
			dropped++;
		}
	} else {
		list_for_each_entry_safe(e, n, &virtio_tmem_pf_lru, lru) {
			if (e->pool != pool ||
			    (op && !virtio_tmem_pf_same_object(pool, op->oid,
							       e->pool, e->oid)))
				continue;
			virtio_tmem_pf_drop(e);
			dropped++;
		}
	}
	virtio_tmem_count(VIRTIO_TMEM_PREFETCH_DROPPED, dropped);
}

/**
 * virtio_tmem_pf_forget - a put or flush of a key, or of an object, joined
 * its queue (or found no device)
 * @pool: its pool
 * @op: the op: FLUSH_OBJECT forgets the object, others the key
 *
 * May run with interrupts off.
 */
void virtio_tmem_pf_forget(struct virtio_tmem_pool *pool,
			   const struct virtio_tmem_op *op)
{
	unsigned long flags;

	/* Nothing cached and nothing in flight: nothing to forget. */
	if (!READ_ONCE(virtio_tmem_pf_held))
		return;
	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	virtio_tmem_pf_forget_locked(pool, op,
				     op->type != VIRTIO_TMEM_OP_FLUSH_OBJECT);
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
}

/**
 * virtio_tmem_pf_forget_pool - forget all the cache has of a pool
 * @pool: the pool, or NULL for every pool
 */
void virtio_tmem_pf_forget_pool(struct virtio_tmem_pool *pool)
{
	struct virtio_tmem_pf_entry *e, *n;
	struct virtio_tmem_pf_flight *f;
	unsigned long flags;

	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	if (pool) {
		virtio_tmem_pf_forget_locked(pool, NULL, false);
	} else {
		list_for_each_entry(f, &virtio_tmem_pf_flights, node)
			f->stale = ~0u;
		list_for_each_entry_safe(e, n, &virtio_tmem_pf_lru, lru)
			virtio_tmem_pf_drop(e);
	}
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
}

/**
 * virtio_tmem_pf_begin - take pages for a GET_RANGE and register it
 * @f: the flight: pool, oid and first set; count is set here
 * @want: neighbours wanted, at most VIRTIO_TMEM_RANGE_MAX - 1
 * @pages: gets the pages
 *
 * Takes free pages, drops the oldest entries for theirs, and allocates
 * (never waiting, never from the reserves) while under the bound.
 *
 * Return: the neighbours there are pages for; 0 means no flight.
 */
unsigned int virtio_tmem_pf_begin(struct virtio_tmem_pf_flight *f,
				  unsigned int want, struct page **pages)
{
	unsigned int n = 0, alloc = 0, failed = 0, i, k;
	struct virtio_tmem_pf_entry *e;
	unsigned long flags;

	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	while (n < want) {
		if (virtio_tmem_pf_nfree) {
			pages[n++] = virtio_tmem_pf_free[--virtio_tmem_pf_nfree];
		} else if (virtio_tmem_pf_held + alloc < VIRTIO_TMEM_PF_PAGES) {
			pages[n++] = NULL;	/* allocated below */
			alloc++;
		} else {
			e = list_first_entry_or_null(&virtio_tmem_pf_lru,
						     struct virtio_tmem_pf_entry,
						     lru);
			if (!e)
				break;	/* the rest is in flight */
			virtio_tmem_pf_drop(e);
			virtio_tmem_count(VIRTIO_TMEM_PREFETCH_DROPPED, 1);
		}
	}
	virtio_tmem_pf_held += alloc;
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);

	/* Short of memory: fetch fewer, and stop trying. */
	for (i = 0, k = 0; i < n; i++) {
		if (!pages[i] && !failed)
			pages[i] = virtio_tmem_alloc_page(GFP_NOWAIT |
							  __GFP_NOWARN |
							  __GFP_NOMEMALLOC);
		if (!pages[i]) {
			failed++;
			continue;
		}
		pages[k++] = pages[i];
	}
	if (failed) {
		spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
		virtio_tmem_pf_held -= failed;
		spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
	}
	n = k;
	if (!n)
		return 0;
	f->count = n + 1;
	f->stale = 0;
	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	list_add(&f->node, &virtio_tmem_pf_flights);
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
	return n;
}

/**
 * virtio_tmem_pf_trim - ask for fewer pages than virtio_tmem_pf_begin() gave
 * @f: the flight
 * @pages: its pages
 * @count: pages to ask for now, the first included; at least 1
 */
void virtio_tmem_pf_trim(struct virtio_tmem_pf_flight *f, struct page **pages,
			 unsigned int count)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	for (i = count; i < f->count; i++)
		virtio_tmem_pf_free[virtio_tmem_pf_nfree++] = pages[i - 1];
	f->count = min(f->count, count);
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
}

/**
 * virtio_tmem_pf_end - keep what a GET_RANGE brought
 * @f: the flight, registered by virtio_tmem_pf_begin()
 * @pages: its neighbours' pages, f->count - 1 of them
 * @found: bit i set if the page at f->first + i came back; 0 if the
 *	request failed
 */
void virtio_tmem_pf_end(struct virtio_tmem_pf_flight *f, struct page **pages,
			u32 found)
{
	unsigned int i, kept = 0, stale = 0;
	struct virtio_tmem_pf_entry *e;
	unsigned long flags;

	spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
	list_del(&f->node);
	for (i = 1; i < f->count; i++) {
		struct page *page = pages[i - 1];

		if (!(found & BIT(i)) || (f->stale & BIT(i)) ||
		    virtio_tmem_pf_find(f->pool, f->oid, f->first + i)) {
			stale += found & BIT(i) ? 1 : 0;
			virtio_tmem_pf_free[virtio_tmem_pf_nfree++] = page;
			continue;
		}
		/* There is an entry for every page held. */
		e = list_first_entry(&virtio_tmem_pf_unused,
				     struct virtio_tmem_pf_entry, lru);
		e->pool = f->pool;
		memcpy(e->oid, f->oid, sizeof(e->oid));
		e->index = f->first + i;
		e->page = page;
		list_move_tail(&e->lru, &virtio_tmem_pf_lru);
		hash_add(virtio_tmem_pf_hash, &e->hash,
			 virtio_tmem_pf_hash_of(e->pool, e->oid, e->index));
		virtio_tmem_pf_cached++;
		kept++;
	}
	spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
	virtio_tmem_count(VIRTIO_TMEM_PREFETCH_ASKED, f->count - 1);
	virtio_tmem_count(VIRTIO_TMEM_PREFETCH_KEPT, kept);
	virtio_tmem_count(VIRTIO_TMEM_PREFETCH_STALE, stale);
}

/**
 * virtio_tmem_pf_send - send a flight's GET_RANGE and keep what it brought
 * @vt: the device
 * @q: the queue of the page's key
 * @f: the flight, registered by virtio_tmem_pf_begin() (and trimmed)
 * @get: a GET of the flight's first page; its type and argument are
 *	changed to ask for f->count pages
 * @class: VIRTIO_TMEM_* class of the op, for the statistics
 * @page: the first page's buffer
 * @pages: the flight's other pages
 * @found: (out) bit i set if the page at f->first + i came back
 *
 * Ends the flight.  Returns the first page's VIRTIO_TMEM_S_* status.
 */
int virtio_tmem_pf_send(struct virtio_tmem *vt, struct virtio_tmem_queue *q,
			struct virtio_tmem_pf_flight *f,
			struct virtio_tmem_op *get, u8 class, struct page *page,
			struct page **pages, u32 *found)
{
	int st;

	*found = 0;
	get->type = VIRTIO_TMEM_OP_GET_RANGE;
	get->arg = cpu_to_le32(VIRTIO_TMEM_RANGE_ARG(PAGE_SHIFT, f->count));
	st = virtio_tmem_sync_range(vt, q, get, class, f->pool, page, pages,
				    f->count - 1, found);
	if (st != VIRTIO_TMEM_S_OK && st != VIRTIO_TMEM_S_MISS)
		*found = 0;
	virtio_tmem_pf_end(f, pages, *found);
	return st;
}

/* Pages the cache holds: what /sys/kernel/debug/virtio_tmem/stats shows. */
unsigned int virtio_tmem_pf_pages(void)
{
	return READ_ONCE(virtio_tmem_pf_held);
}

static unsigned long virtio_tmem_pf_count(struct shrinker *sh,
					  struct shrink_control *sc)
{
	return READ_ONCE(virtio_tmem_pf_cached) +
	       READ_ONCE(virtio_tmem_pf_nfree);
}

/* Memory pressure: give back the free pages, then the oldest entries. */
static unsigned long virtio_tmem_pf_scan(struct shrinker *sh,
					 struct shrink_control *sc)
{
	struct page *batch[16];
	unsigned long freed = 0;
	struct virtio_tmem_pf_entry *e;
	unsigned long flags;
	unsigned int n;

	while (freed < sc->nr_to_scan) {
		spin_lock_irqsave(&virtio_tmem_pf_lock, flags);
		while (!virtio_tmem_pf_nfree &&
		       (e = list_first_entry_or_null(&virtio_tmem_pf_lru,
						     struct virtio_tmem_pf_entry,
						     lru))) {
			virtio_tmem_pf_drop(e);
			virtio_tmem_count(VIRTIO_TMEM_PREFETCH_DROPPED, 1);
		}
		for (n = 0; n < ARRAY_SIZE(batch) && virtio_tmem_pf_nfree; n++)
			batch[n] = virtio_tmem_pf_free[--virtio_tmem_pf_nfree];
		virtio_tmem_pf_held -= n;
		spin_unlock_irqrestore(&virtio_tmem_pf_lock, flags);
		if (!n)
			break;
		freed += n;
		while (n)
			__free_page(batch[--n]);
	}
	return freed ? freed : SHRINK_STOP;
}

static struct shrinker virtio_tmem_pf_shrinker = {
	.count_objects = virtio_tmem_pf_count,
	.scan_objects = virtio_tmem_pf_scan,
	.seeks = DEFAULT_SEEKS,
};

/* Before the backends are registered. */
void virtio_tmem_pf_init(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(virtio_tmem_pf_entries); i++)
		list_add(&virtio_tmem_pf_entries[i].lru,
			 &virtio_tmem_pf_unused);
}

/*
 * Once the module cannot fail to load any more: it is never unloaded,
 * so the shrinker is never unregistered.  Without it the cache still
 * holds at most VIRTIO_TMEM_PF_PAGES pages.
 */
void virtio_tmem_pf_shrinker_init(void)
{
	if (register_shrinker(&virtio_tmem_pf_shrinker))
		pr_warn("virtio_tmem: no shrinker for the prefetched pages\n");
}
