// SPDX-License-Identifier: MIT
/*
 * slab.c - the allocator for compressed pages.
 *
 * Objects are rounded up to a size class (32-byte steps to 4 KiB, then
 * 512-byte steps to 64 KiB) and packed into slabs of 16 to 256 KiB, sized
 * per class so that little is left at the tail.  A slab holds one kind of
 * page (persistent or ephemeral), so that reclaim can take a whole slab
 * at once: drop it, or spill it.  Reclaim in whole slabs is what gives
 * memory back to the host; freeing pages one by one from a dense
 * allocator mostly does not.
 *
 * Slabs are carved in 4 KiB units from large regions reserved with
 * MAP_NORESERVE, and a freed slab's memory goes back with MADV_DONTNEED.
 * One mapping per slab would split the address space into hundreds of
 * thousands of mappings for a large store and run into vm.max_map_count.
 *
 * Each slab has one owner word per slot, naming the index entry that
 * points at the slot (shard and entry id).  Reclaim walks them to find
 * the pages; a free slot's owner word links the free list instead.
 *
 * A handle is (slab id << 16 | slot).  Slab descriptors sit in a fixed
 * directory of chunks that are never freed, so a handle can be turned
 * into its slab without a lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fault.h"
#include "tmem_int.h"

#define TM_SLAB_CHUNK	256	/* descriptors per directory chunk */
#define TM_SLAB_DIR	16384	/* chunks: up to 4M slabs */
#define TM_UNIT_SHIFT	12	/* slabs are made of 4 KiB units */
#define TM_SLAB_MIN	(16u * 1024)
#define TM_REGION_MAX	(4ull << 30)
#define TM_REGION_MIN	(64ull << 20)
#define TM_CACHE_SHARE	32		/* cache at most budget / 32 ... */
#define TM_CACHE_MAX	(8u << 20)	/* ... and at most 8 MiB */

static uint32_t tm_cache_slot(uint32_t bytes)
{
	return (bytes >> TM_UNIT_SHIFT) - 1;
}

/* Cached slabs are linked through their first bytes. */
static uint8_t *tm_cache_next(const uint8_t *mem)
{
	uint8_t *next;

	memcpy(&next, mem, sizeof(next));
	return next;
}

static void tm_cache_link(uint8_t *mem, uint8_t *next)
{
	memcpy(mem, &next, sizeof(next));
}

uint64_t tm_handle(uint32_t slab_id, uint32_t slot)
{
	return (uint64_t)slab_id << 16 | slot;
}

static uint32_t tm_handle_slot(uint64_t h)
{
	return (uint32_t)(h & 0xffff);
}

static uint32_t tm_class_of(uint32_t size)
{
	if (size <= 4096)
		return (size + 31) / 32 - 1;
	return 128 + (size - 4096 + 511) / 512 - 1;
}

static uint32_t tm_class_size(uint32_t cls)
{
	if (cls < 128)
		return (cls + 1) * 32;
	return 4096 + (cls - 127) * 512;
}

/*
 * Pick the slab size for @c: the smallest, from 16 KiB in 4 KiB steps,
 * whose tail waste is within half a percent of the best up to the cap.
 * Every class in use keeps one partly filled slab, so small slabs are what
 * keep a store dense until it is large; they also reclaim with less I/O.
 */
static void tm_class_layout(struct tm_class *c, uint32_t size)
{
	uint32_t cap = size <= 4096 ? 65536 : TM_SLAB_MAX;
	uint32_t unit = 1u << TM_UNIT_SHIFT;
	double best = 1.0;

	c->size = size;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t b = TM_SLAB_MIN; b <= cap; b += unit) {
			uint32_t n = b / size;
			double waste;

			if (!n)
				continue;
			waste = (double)(b - n * size) / b;
			if (pass == 0 && waste < best) {
				best = waste;
			} else if (pass == 1 && waste <= best + 0.005) {
				c->nslots = n;
				c->slab_bytes = b;
				return;
			}
		}
	}
}

int tm_slabs_init(struct tm_slabs *sl)
{
	memset(sl, 0, sizeof(*sl));
	for (int k = 0; k < 2; k++) {
		for (uint32_t i = 0; i < TM_NCLASS; i++) {
			struct tm_class *c = &sl->cls[k][i];

			pthread_mutex_init(&c->lock, NULL);
			tm_class_layout(c, tm_class_size(i));
		}
		pthread_mutex_init(&sl->lru[k].lock, NULL);
	}
	pthread_mutex_init(&sl->id_lock, NULL);
	pthread_mutex_init(&sl->region_lock, NULL);
	sl->dir = calloc(TM_SLAB_DIR, sizeof(*sl->dir));
	if (!sl->dir)
		return -ENOMEM;
	sl->dir_len = TM_SLAB_DIR;
	sl->next_id = 0;
	return 0;
}

static struct tm_slab *tm_slab_desc(struct tm_slabs *sl, uint32_t id)
{
	return &sl->dir[id / TM_SLAB_CHUNK][id % TM_SLAB_CHUNK];
}

struct tm_slab *tm_slab_of(struct tmem_store *s, uint64_t handle)
{
	return tm_slab_desc(&s->slabs, (uint32_t)(handle >> 16));
}

uint32_t tm_slab_nslots(struct tmem_store *s, struct tm_slab *sb)
{
	return s->slabs.cls[sb->kind][sb->cls].nslots;
}

uint8_t *tm_slot_ptr(struct tmem_store *s, uint64_t handle)
{
	struct tm_slab *sb = tm_slab_of(s, handle);
	struct tm_class *c = &s->slabs.cls[sb->kind][sb->cls];

	return sb->mem + (size_t)tm_handle_slot(handle) * c->size;
}

/* A free descriptor id, growing the directory by a chunk if need be. */
static int tm_slab_id_get(struct tmem_store *s, uint32_t *id)
{
	struct tm_slabs *sl = &s->slabs;
	int rc = 0;

	pthread_mutex_lock(&sl->id_lock);
	if (sl->nfree_ids) {
		*id = sl->free_ids[--sl->nfree_ids];
		goto out;
	}
	if (sl->next_id % TM_SLAB_CHUNK == 0) {
		uint32_t chunk = sl->next_id / TM_SLAB_CHUNK;
		size_t bytes = TM_SLAB_CHUNK * sizeof(struct tm_slab);

		if (chunk >= sl->dir_len) {
			rc = -ENOSPC;
			goto out;
		}
		sl->dir[chunk] = calloc(TM_SLAB_CHUNK, sizeof(struct tm_slab));
		if (!sl->dir[chunk]) {
			rc = -ENOMEM;
			goto out;
		}
		/* Sized by the peak slab count and never freed: fixed. */
		atomic_fetch_add(&s->ram_fixed, bytes);
	}
	*id = sl->next_id++;
out:
	pthread_mutex_unlock(&sl->id_lock);
	return rc;
}

static void tm_slab_id_put(struct tm_slabs *sl, uint32_t id)
{
	pthread_mutex_lock(&sl->id_lock);
	if (sl->nfree_ids == sl->free_ids_cap) {
		uint32_t cap = sl->free_ids_cap ? 2 * sl->free_ids_cap : 256;
		uint32_t *n = realloc(sl->free_ids, cap * sizeof(*n));

		if (!n) {
			/* Leak the id, not the memory: the slab is gone. */
			pthread_mutex_unlock(&sl->id_lock);
			return;
		}
		sl->free_ids = n;
		sl->free_ids_cap = cap;
	}
	sl->free_ids[sl->nfree_ids++] = id;
	pthread_mutex_unlock(&sl->id_lock);
}

/* Reserve another region of address space, as large as the host lets us. */
static struct tm_region *tm_region_new(void)
{
	struct tm_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	for (uint64_t len = TM_REGION_MAX; len >= TM_REGION_MIN; len /= 4) {
		void *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);

		if (base == MAP_FAILED)
			continue;
		/*
		 * No transparent huge pages, even where the host makes them
		 * the default.  They would spare a fault per 4 KiB of new
		 * slab, but freeing a slab inside one only splits it: RSS
		 * drops, yet the huge page's memory stays allocated until
		 * the kernel's deferred split runs under memory pressure,
		 * and khugepaged may collapse a range with a single slab
		 * left back into 2 MiB.  Either way the host would hold far
		 * more than ram_data says (docs/host-lib.md).
		 */
		madvise(base, len, MADV_NOHUGEPAGE);
		r->nunits = (uint32_t)(len >> TM_UNIT_SHIFT);
		r->map = calloc(r->nunits / 64, sizeof(uint64_t));
		if (!r->map) {
			munmap(base, len);
			break;
		}
		r->base = base;
		return r;
	}
	free(r);
	return NULL;
}

/* Take a run of @n free units from @r, next-fit; NULL if there is none. */
static uint8_t *tm_region_take(struct tm_region *r, uint32_t n)
{
	uint32_t pos = r->cursor, scanned = 0;

	while (scanned < r->nunits + n) {
		uint32_t run = 0;

		if (pos + n > r->nunits) {
			scanned += r->nunits - pos;
			pos = 0;
			continue;
		}
		if (!(pos % 64) && r->map[pos / 64] == ~0ull) {
			pos += 64;
			scanned += 64;
			continue;
		}
		while (run < n &&
		       !(r->map[(pos + run) / 64] >> ((pos + run) % 64) & 1))
			run++;
		if (run == n) {
			for (uint32_t u = pos; u < pos + n; u++)
				r->map[u / 64] |= 1ull << (u % 64);
			r->cursor = pos + n;
			return r->base + ((uint64_t)pos << TM_UNIT_SHIFT);
		}
		pos += run + 1;
		scanned += run + 1;
	}
	return NULL;
}

/*
 * A slab's worth of address space.  The memory of a recently freed slab
 * of the same size is taken first: it is still resident, so refilling
 * it costs no page faults.  Cached memory stays charged to the budget
 * (*@charged tells the caller not to charge it again).
 */
static uint8_t *tm_slab_mem_get(struct tmem_store *s, uint32_t bytes,
				bool *charged)
{
	struct tm_slabs *sl = &s->slabs;
	uint32_t n = bytes >> TM_UNIT_SHIFT;
	uint8_t *mem = NULL;

	pthread_mutex_lock(&sl->region_lock);
	mem = sl->cache[tm_cache_slot(bytes)];
	if (mem) {
		sl->cache[tm_cache_slot(bytes)] = tm_cache_next(mem);
		sl->cache_bytes -= bytes;
		pthread_mutex_unlock(&sl->region_lock);
		*charged = true;
		return mem;
	}
	*charged = false;
	for (uint32_t i = 0; i < sl->nregions && !mem; i++)
		mem = tm_region_take(sl->region[i], n);
	if (!mem && sl->nregions < TM_NREGION) {
		struct tm_region *r = tm_region_new();

		if (r) {
			atomic_fetch_add(&s->ram_fixed, r->nunits / 8);
			sl->region[sl->nregions++] = r;
			mem = tm_region_take(r, n);
		}
	}
	pthread_mutex_unlock(&sl->region_lock);
	return mem;
}

/* Give a slab's memory back to the host, keeping the address range. */
static void tm_slab_mem_unmap(struct tm_slabs *sl, uint8_t *mem,
			      uint32_t bytes)
{
	madvise(mem, bytes, MADV_DONTNEED);
	pthread_mutex_lock(&sl->region_lock);
	for (uint32_t i = 0; i < sl->nregions; i++) {
		struct tm_region *r = sl->region[i];
		uint64_t off = (uint64_t)(mem - r->base);

		if (mem < r->base ||
		    off >= (uint64_t)r->nunits << TM_UNIT_SHIFT)
			continue;
		for (uint64_t u = off >> TM_UNIT_SHIFT;
		     u < (off + bytes) >> TM_UNIT_SHIFT; u++)
			r->map[u / 64] &= ~(1ull << (u % 64));
		break;
	}
	pthread_mutex_unlock(&sl->region_lock);
}

/*
 * Keep a freed slab's memory for reuse, up to TM_CACHE_SHARE of the
 * budget and TM_CACHE_MAX, still charged; otherwise give it back and
 * uncharge it.  Only with that much headroom under the budget: near it
 * the memory is wanted for pages, and a cache that make_room emptied
 * only to see refilled would spin.  The free list is threaded through
 * the cached memory.
 */
static void tm_slab_mem_put(struct tmem_store *s, uint8_t *mem, uint32_t bytes)
{
	struct tm_slabs *sl = &s->slabs;
	uint64_t budget = atomic_load(&s->budget);
	uint64_t cap = budget / TM_CACHE_SHARE;
	bool keep;

	if (cap > TM_CACHE_MAX)
		cap = TM_CACHE_MAX;
	pthread_mutex_lock(&sl->region_lock);
	keep = sl->cache_bytes + bytes <= cap &&
	       tm_ram_used(s) + cap <= budget;
	if (keep) {
		tm_cache_link(mem, sl->cache[tm_cache_slot(bytes)]);
		sl->cache[tm_cache_slot(bytes)] = mem;
		sl->cache_bytes += bytes;
	}
	pthread_mutex_unlock(&sl->region_lock);
	if (!keep) {
		tm_slab_mem_unmap(sl, mem, bytes);
		tm_uncharge(s, &s->ram_data, bytes);
	}
}

/*
 * tm_slab_cache_drop - give every cached slab back to the host.  Called
 * before any page is evicted for room, so the cache never costs a page.
 * Returns the bytes given back.
 */
uint64_t tm_slab_cache_drop(struct tmem_store *s)
{
	struct tm_slabs *sl = &s->slabs;
	uint64_t freed = 0;

	for (uint32_t i = 0; i < TM_CACHE_SLOTS; i++) {
		uint32_t bytes = (i + 1) << TM_UNIT_SHIFT;
		uint8_t *mem;

		for (;;) {
			pthread_mutex_lock(&sl->region_lock);
			mem = sl->cache[i];
			if (mem) {
				sl->cache[i] = tm_cache_next(mem);
				sl->cache_bytes -= bytes;
			}
			pthread_mutex_unlock(&sl->region_lock);
			if (!mem)
				break;
			tm_slab_mem_unmap(sl, mem, bytes);
			tm_uncharge(s, &s->ram_data, bytes);
			freed += bytes;
		}
	}
	return freed;
}

static void tm_part_add(struct tm_class *c, struct tm_slab *sb)
{
	sb->part_prev = NULL;
	sb->part_next = c->partial;
	if (c->partial)
		c->partial->part_prev = sb;
	c->partial = sb;
	sb->on_partial = 1;
}

static void tm_part_del(struct tm_class *c, struct tm_slab *sb)
{
	if (!sb->on_partial)
		return;
	if (sb->part_prev)
		sb->part_prev->part_next = sb->part_next;
	else
		c->partial = sb->part_next;
	if (sb->part_next)
		sb->part_next->part_prev = sb->part_prev;
	sb->on_partial = 0;
}

/* Caller holds the kind LRU lock. */
static void tm_lru_del(struct tm_kind_lru *l, struct tm_slab *sb)
{
	if (sb->lru_prev)
		sb->lru_prev->lru_next = sb->lru_next;
	else
		l->head = sb->lru_next;
	if (sb->lru_next)
		sb->lru_next->lru_prev = sb->lru_prev;
	else
		l->tail = sb->lru_prev;
	sb->lru_prev = sb->lru_next = NULL;
}

/* Caller holds the kind LRU lock. */
static void tm_lru_push(struct tm_kind_lru *l, struct tm_slab *sb)
{
	sb->lru_prev = NULL;
	sb->lru_next = l->head;
	if (l->head)
		l->head->lru_prev = sb;
	l->head = sb;
	if (!l->tail)
		l->tail = sb;
}

/* Caller holds the class lock. */
static int tm_slab_new(struct tmem_store *s, struct tm_class *c, int kind,
		       uint32_t cls, enum tm_charge mode, struct tm_slab **out)
{
	struct tm_kind_lru *l = &s->slabs.lru[kind];
	size_t obytes = c->nslots * sizeof(uint32_t);
	_Atomic uint32_t *owner;
	struct tm_slab *sb;
	uint8_t *mem;
	bool charged;
	uint32_t id;
	int rc;

	if (tm_fault_fire(TM_FAULT_ALLOC))
		return -ENOMEM;
	mem = tm_slab_mem_get(s, c->slab_bytes, &charged);
	if (!mem)
		return -ENOMEM;
	if (!charged && !tm_charge(s, &s->ram_data, c->slab_bytes, mode)) {
		/* Cached slabs of other sizes go before any page does. */
		if (!tm_slab_cache_drop(s) ||
		    !tm_charge(s, &s->ram_data, c->slab_bytes,
			       TM_CHARGE_STRICT)) {
			tm_slab_mem_unmap(&s->slabs, mem, c->slab_bytes);
			return TM_NEED_ROOM;
		}
	}
	rc = TM_NEED_ROOM;
	if (!tm_charge(s, &s->ram_index, obytes, mode))
		goto err_unmap;
	rc = -ENOMEM;
	owner = malloc(obytes);
	if (!owner)
		goto err_uncharge_owner;
	rc = tm_slab_id_get(s, &id);
	if (rc)
		goto err_owner;
	sb = tm_slab_desc(&s->slabs, id);
	memset(sb, 0, sizeof(*sb));
	sb->mem = mem;
	sb->owner = owner;
	sb->id = id;
	sb->cls = (uint16_t)cls;
	sb->kind = (uint8_t)kind;
	sb->free_head = TM_OWNER_NONE;
	sb->nfresh = c->nslots;

	pthread_mutex_lock(&l->lock);
	tm_lru_push(l, sb);
	l->nslabs++;
	pthread_mutex_unlock(&l->lock);
	tm_part_add(c, sb);
	atomic_store_explicit(&c->nslabs, c->nslabs + 1,
			      memory_order_relaxed);
	atomic_fetch_add(&s->slabs_live, 1);
	*out = sb;
	return 0;

err_owner:
	free(owner);
err_uncharge_owner:
	tm_uncharge(s, &s->ram_index, obytes);
err_unmap:
	tm_slab_mem_unmap(&s->slabs, mem, c->slab_bytes);
	tm_uncharge(s, &s->ram_data, c->slab_bytes);
	return rc;
}

/* Caller holds the class lock; @sb is off the LRU already. */
static void tm_slab_release(struct tmem_store *s, struct tm_class *c,
			    struct tm_slab *sb)
{
	tm_part_del(c, sb);
	atomic_store_explicit(&c->nslabs, c->nslabs - 1,
			      memory_order_relaxed);
	if (sb->compacted) {
		/* Compaction runs to give memory back, not to keep it. */
		tm_slab_mem_unmap(&s->slabs, sb->mem, c->slab_bytes);
		tm_uncharge(s, &s->ram_data, c->slab_bytes);
	} else {
		tm_slab_mem_put(s, sb->mem, c->slab_bytes);
	}
	free((void *)sb->owner);
	sb->mem = NULL;
	sb->owner = NULL;
	tm_uncharge(s, &s->ram_index, c->nslots * sizeof(uint32_t));
	/* An empty store has no churn to save faults for: give it all back. */
	if (atomic_fetch_sub(&s->slabs_live, 1) == 1)
		tm_slab_cache_drop(s);
	tm_slab_id_put(&s->slabs, sb->id);
}

/*
 * Free the slab if it is empty and no reclaimer holds it.  The reclaiming
 * flag is set under the LRU lock, so it is checked again under that lock
 * before the slab leaves the LRU.  Caller holds the class lock.
 */
static bool tm_slab_maybe_release(struct tmem_store *s, struct tm_class *c,
				  struct tm_slab *sb)
{
	struct tm_kind_lru *l = &s->slabs.lru[sb->kind];
	bool gone = false;

	if (sb->nlive || atomic_load(&sb->reclaiming))
		return false;
	pthread_mutex_lock(&l->lock);
	if (!atomic_load(&sb->reclaiming)) {
		tm_lru_del(l, sb);
		l->nslabs--;
		gone = true;
	}
	pthread_mutex_unlock(&l->lock);
	if (gone)
		tm_slab_release(s, c, sb);
	return gone;
}

/* Hand out a free slot of @sb, which has one.  Caller holds the class lock. */
static uint32_t tm_slab_take(struct tm_class *c, struct tm_slab *sb)
{
	uint32_t slot;

	if (sb->free_head != TM_OWNER_NONE) {
		slot = sb->free_head;
		sb->free_head = atomic_load(&sb->owner[slot]) & ~TM_OWNER_FREE;
	} else {
		slot = c->nslots - sb->nfresh--;
	}
	atomic_store(&sb->owner[slot], TM_OWNER_PENDING);
	sb->nlive++;
	atomic_store_explicit(&c->nlive, c->nlive + 1, memory_order_relaxed);
	if (sb->free_head == TM_OWNER_NONE && !sb->nfresh)
		tm_part_del(c, sb);
	return slot;
}

/*
 * tm_slot_alloc - a slot of at least @size bytes in a @kind slab.  The
 * slot's owner is PENDING until tm_slot_set_owner, so reclaim leaves it
 * alone.  Returns 0, TM_NEED_ROOM (a new slab would break the budget,
 * and @mode is strict) or -ENOMEM.
 */
int tm_slot_alloc(struct tmem_store *s, int kind, uint32_t size,
		  enum tm_charge mode, uint64_t *handle, uint8_t **ptr)
{
	uint32_t cls = tm_class_of(size);
	struct tm_class *c = &s->slabs.cls[kind][cls];
	struct tm_slab *sb;
	uint32_t slot;
	int rc;

	/*
	 * Over budget (after a cut, say) no put takes memory, not even a
	 * free slot in a slab we hold: those slabs are being drained.
	 */
	if (mode == TM_CHARGE_STRICT &&
	    tm_ram_used(s) > atomic_load(&s->budget))
		return TM_NEED_ROOM;
	pthread_mutex_lock(&c->lock);
	while ((sb = c->partial) && atomic_load(&sb->reclaiming))
		tm_part_del(c, sb);
	if (!sb) {
		rc = tm_slab_new(s, c, kind, cls, mode, &sb);
		if (rc) {
			pthread_mutex_unlock(&c->lock);
			return rc;
		}
	}
	slot = tm_slab_take(c, sb);
	pthread_mutex_unlock(&c->lock);

	*handle = tm_handle(sb->id, slot);
	*ptr = sb->mem + (size_t)slot * c->size;
	return 0;
}

void tm_slot_set_owner(struct tmem_store *s, uint64_t handle, uint32_t owner)
{
	struct tm_slab *sb = tm_slab_of(s, handle);

	atomic_store(&sb->owner[tm_handle_slot(handle)], owner);
}

void tm_slot_free(struct tmem_store *s, uint64_t handle)
{
	struct tm_slab *sb = tm_slab_of(s, handle);
	struct tm_class *c = &s->slabs.cls[sb->kind][sb->cls];
	uint32_t slot = tm_handle_slot(handle);

	pthread_mutex_lock(&c->lock);
	atomic_store(&sb->owner[slot], TM_OWNER_FREE | sb->free_head);
	sb->free_head = slot;
	sb->nlive--;
	atomic_store_explicit(&c->nlive, c->nlive - 1, memory_order_relaxed);
	if (!sb->nlive)
		tm_slab_maybe_release(s, c, sb);
	else if (!sb->on_partial && !atomic_load(&sb->reclaiming))
		tm_part_add(c, sb);
	pthread_mutex_unlock(&c->lock);
}

/*
 * tm_slab_pick - take the coldest @kind slab for reclaim: the LRU tail,
 * giving slabs read since they were last looked at a second chance.  The
 * slab is marked reclaiming, which keeps allocations out of it and keeps
 * it alive until tm_slab_unpick.  NULL if there is none to take.
 */
struct tm_slab *tm_slab_pick(struct tmem_store *s, int kind)
{
	struct tm_kind_lru *l = &s->slabs.lru[kind];
	struct tm_slab *sb, *found = NULL;
	uint64_t budget;

	pthread_mutex_lock(&l->lock);
	budget = 2 * l->nslabs + 1;
	for (sb = l->tail; sb && budget--; ) {
		struct tm_slab *prev = sb->lru_prev;

		if (atomic_load(&sb->reclaiming)) {
			sb = prev;
			continue;
		}
		if (atomic_exchange(&sb->referenced, 0)) {
			tm_lru_del(l, sb);
			tm_lru_push(l, sb);
			sb = l->tail;
			continue;
		}
		atomic_store(&sb->reclaiming, 1);
		found = sb;
		break;
	}
	pthread_mutex_unlock(&l->lock);
	return found;
}

/*
 * tm_slab_unpick - end reclaim of @sb: free it if empty, else reopen it.
 * Returns true if it was freed.
 */
bool tm_slab_unpick(struct tmem_store *s, struct tm_slab *sb)
{
	struct tm_class *c = &s->slabs.cls[sb->kind][sb->cls];
	bool gone = false;

	pthread_mutex_lock(&c->lock);
	atomic_store(&sb->reclaiming, 0);
	if (!sb->nlive)
		gone = tm_slab_maybe_release(s, c, sb);
	else if (!sb->on_partial &&
		 (sb->free_head != TM_OWNER_NONE || sb->nfresh))
		tm_part_add(c, sb);
	pthread_mutex_unlock(&c->lock);
	return gone;
}

/*
 * Compaction, as zsmalloc does it: when a class holds more slabs than its
 * pages need, the pages of its sparsest slab move into the free slots of
 * its fullest ones, and the emptied slab is freed.  Flushes free pages
 * one by one and leave every slab partly used; reclaim of whole slabs
 * cannot give that back, compaction can.  The mover is in reclaim.c; it
 * needs the index.
 */

#define TM_COMPACT_SCAN	64	/* partial slabs looked at for a choice */

/* tm_class_excess - slabs of the class that compaction could free. */
uint32_t tm_class_excess(struct tmem_store *s, int kind, uint32_t cls)
{
	struct tm_class *c = &s->slabs.cls[kind][cls];
	uint32_t nslabs = atomic_load_explicit(&c->nslabs,
					       memory_order_relaxed);
	uint32_t nlive = atomic_load_explicit(&c->nlive, memory_order_relaxed);
	uint32_t need = (nlive + c->nslots - 1) / c->nslots;

	return nslabs > need ? nslabs - need : 0;
}

/*
 * tm_compact_pick - the sparsest partial slab of a class whose other
 * slabs have room for its pages, marked reclaiming (no allocation goes
 * into it, and it stays until tm_slab_unpick).  NULL if there is none.
 */
struct tm_slab *tm_compact_pick(struct tmem_store *s, int kind, uint32_t cls)
{
	struct tm_class *c = &s->slabs.cls[kind][cls];
	struct tm_kind_lru *l = &s->slabs.lru[kind];
	struct tm_slab *sb, *best = NULL;
	uint32_t n = 0;
	uint64_t room;

	pthread_mutex_lock(&c->lock);
	for (sb = c->partial; sb && n < TM_COMPACT_SCAN;
	     sb = sb->part_next, n++)
		if (!atomic_load(&sb->reclaiming) &&
		    (!best || sb->nlive < best->nlive))
			best = sb;
	/* Free slots in the other slabs of the class. */
	room = (uint64_t)(c->nslabs - 1) * c->nslots -
	       (c->nlive - (best ? best->nlive : 0));
	if (best && room >= best->nlive) {
		pthread_mutex_lock(&l->lock);
		if (atomic_load(&best->reclaiming))
			best = NULL;
		else
			atomic_store(&best->reclaiming, 1);
		pthread_mutex_unlock(&l->lock);
		if (best)
			best->compacted = 1;
	} else {
		best = NULL;
	}
	if (best)
		tm_part_del(c, best);
	pthread_mutex_unlock(&c->lock);
	return best;
}

/* The fullest partial slab of @c other than @src, or NULL. */
static struct tm_slab *tm_compact_target(struct tm_class *c,
					 struct tm_slab *src)
{
	struct tm_slab *sb, *best = NULL;
	uint32_t n = 0;

	for (sb = c->partial; sb && n < TM_COMPACT_SCAN;
	     sb = sb->part_next, n++)
		if (sb != src && !atomic_load(&sb->reclaiming) &&
		    (!best || sb->nlive > best->nlive))
			best = sb;
	return best;
}

/*
 * tm_compact_alloc - up to @n slots for pages leaving @src, from the
 * fullest partial slabs of its class; never from a new slab, so nothing
 * is charged.  Owners are PENDING, as after tm_slot_alloc.  Returns how
 * many it got.
 */
uint32_t tm_compact_alloc(struct tmem_store *s, struct tm_slab *src,
			  uint64_t *handles, uint32_t n)
{
	struct tm_class *c = &s->slabs.cls[src->kind][src->cls];
	struct tm_slab *t = NULL;
	uint32_t got = 0;

	pthread_mutex_lock(&c->lock);
	while (got < n) {
		if (!t || !t->on_partial)
			t = tm_compact_target(c, src);
		if (!t)
			break;
		handles[got++] = tm_handle(t->id, tm_slab_take(c, t));
	}
	pthread_mutex_unlock(&c->lock);
	return got;
}

void tm_slabs_fini(struct tmem_store *s)
{
	struct tm_slabs *sl = &s->slabs;

	if (!sl->dir)
		return;
	for (uint32_t id = 0; id < sl->next_id; id++)
		free((void *)tm_slab_desc(sl, id)->owner);
	for (uint32_t i = 0; i < sl->nregions; i++) {
		struct tm_region *r = sl->region[i];

		munmap(r->base, (size_t)r->nunits << TM_UNIT_SHIFT);
		free(r->map);
		free(r);
	}
	for (uint32_t i = 0; i < sl->dir_len && sl->dir[i]; i++)
		free(sl->dir[i]);
	free(sl->dir);
	free(sl->free_ids);
	for (int k = 0; k < 2; k++) {
		for (uint32_t i = 0; i < TM_NCLASS; i++)
			pthread_mutex_destroy(&sl->cls[k][i].lock);
		pthread_mutex_destroy(&sl->lru[k].lock);
	}
	pthread_mutex_destroy(&sl->id_lock);
	pthread_mutex_destroy(&sl->region_lock);
}
