// SPDX-License-Identifier: MIT
/*
 * index.c - where each page is: sharded hash tables of objects and pages.
 *
 * A key is spread over TM_NSHARD shards by (pool, object, index / 16), so
 * one big object (a swap area) does not serialise on one lock, while runs
 * of neighbouring pages stay together.  Each shard has its own lock and
 * two tables:
 *
 *  - objects: (pool, oid) -> struct tm_obj, with a list of the object's
 *    pages in this shard, so flushing an object costs one lookup per
 *    shard plus its pages;
 *  - pages: (object, index) -> struct tm_entry (32 bytes).
 *
 * Tables are arrays of fixed chunks addressed by 32-bit ids (0 is "none"),
 * so links are 4 bytes and nothing moves when a table grows.  A shard
 * that empties gives all of its memory back.
 *
 * Every function here expects the caller to hold the shard lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "tmem_int.h"

_Static_assert(sizeof(struct tm_entry) == 32, "page entry grew");

#define TM_EBKT_FIRST	64	/* hash heads of a new page table */
#define TM_OBKT_FIRST	8	/* ... of a new object table */
/*
 * Average chain length past which hash heads double.  A page entry is 32
 * bytes, so a 4-byte head per two entries is 6% of the index; per four it
 * is 3%, for one more entry looked at by an average hit (docs/host-lib.md).
 * Objects are few and looked up on every op: their chains stay short.
 */
#define TM_EBKT_LOAD	4
#define TM_OBKT_LOAD	2

static uint64_t tm_obj_hash(struct tm_shard *sh, uint32_t pool,
			    const uint64_t oid[3])
{
	const uint64_t w[4] = { oid[0], oid[1], oid[2], pool };

	return tm_hash(&sh->hkey, w, 4);
}

/*
 * Runs of 16 neighbouring indices get 16 neighbouring buckets, so swap
 * readahead and sequential reads stay in cache; where a run starts is
 * hashed, with the store's secret, over every bucket, so no choice of
 * indices (not even one per run) can pile them up in one chain.
 */
static uint64_t tm_ent_hash(struct tm_shard *sh, uint32_t obj, uint32_t index)
{
	const uint64_t w = (uint64_t)obj << 32 | index >> 4;

	return tm_hash(&sh->hkey, &w, 1) + (index & 15);
}

/* Runs of 16 indices of an object share a shard; which one is secret. */
uint32_t tm_shard_of(struct tmem_store *s, int pool,
		     const struct tmem_key *key)
{
	struct tm_shard *sh = &s->shard[0];
	const uint64_t w[2] = { tm_obj_hash(sh, (uint32_t)pool, key->oid),
				key->index >> 4 };

	return (uint32_t)(tm_hash(&sh->hkey, w, 2) >> 60) % TM_NSHARD;
}

static void *tm_table_ptr(struct tm_table *t, uint32_t id)
{
	return t->chunks[id >> t->shift] +
	       (size_t)(id & ((1u << t->shift) - 1)) * t->item;
}

/* Bytes charged for one chunk of @t: its items and its directory share. */
static size_t tm_chunk_bytes(const struct tm_table *t)
{
	/* The directory doubles; its share is charged per chunk. */
	return ((size_t)t->item << t->shift) + 2 * sizeof(uint8_t *);
}

struct tm_entry *tm_ent_ptr(struct tm_shard *sh, uint32_t id)
{
	return tm_table_ptr(&sh->ents, id);
}

struct tm_obj *tm_obj_ptr(struct tm_shard *sh, uint32_t id)
{
	return tm_table_ptr(&sh->objs, id);
}

static bool tm_shard_charge(struct tmem_store *s, struct tm_shard *sh,
			    size_t bytes, enum tm_charge mode)
{
	if (!tm_charge(s, &s->ram_index, bytes, mode))
		return false;
	sh->index_bytes += bytes;
	return true;
}

static void tm_shard_uncharge(struct tmem_store *s, struct tm_shard *sh,
			      size_t bytes)
{
	tm_uncharge(s, &s->ram_index, bytes);
	sh->index_bytes -= bytes;
}

/*
 * Pop a free id of @t, or 0.  While the table shrinks, ids above the
 * cut are left off the list as they come up: the shrink truncates them.
 */
static uint32_t tm_table_pop(struct tm_table *t, size_t next_link)
{
	while (t->free_head) {
		uint32_t id = t->free_head;

		memcpy(&t->free_head, (uint8_t *)tm_table_ptr(t, id) +
		       next_link, sizeof(uint32_t));
		if (!t->limit || id <= t->limit)
			return id;
	}
	return 0;
}

/*
 * Thread every free item of ids 1 .. @t->used onto the free list, lowest
 * first; an item is free when its 32-bit word at @live_off is 0.
 */
static void tm_table_refree(struct tm_table *t, size_t next_link,
			    size_t live_off)
{
	uint32_t head = 0;

	for (uint32_t id = t->used; id; id--) {
		uint8_t *it = tm_table_ptr(t, id);
		uint32_t live;

		memcpy(&live, it + live_off, sizeof(live));
		if (live)
			continue;
		memcpy(it + next_link, &head, sizeof(head));
		head = id;
	}
	t->free_head = head;
}

/* Give up a shrink that ran out of room below its cut. */
static void tm_table_unshrink(struct tm_table *t, size_t next_link,
			      size_t live_off)
{
	t->limit = t->hi = 0;
	tm_table_refree(t, next_link, live_off);
}

/*
 * A new id in @t.  The item at @next_link is where a free item keeps the
 * next free id.  Returns 0 and sets *@id, TM_NEED_ROOM or -ENOMEM.
 */
static int tm_table_get(struct tmem_store *s, struct tm_shard *sh,
			struct tm_table *t, size_t next_link,
			enum tm_charge mode, uint32_t *id)
{
	uint32_t n = t->used + 1;
	size_t bytes;

	*id = tm_table_pop(t, next_link);
	if (*id)
		return 0;
	if (t->limit) {
		/* Only the page table shrinks; see tm_shard_tidy. */
		tm_table_unshrink(t, next_link, offsetof(struct tm_entry, obj));
		*id = tm_table_pop(t, next_link);
		if (*id)
			return 0;
	}
	if (n >= TM_EID_MASK)
		return -ENOMEM;
	if (n >> t->shift >= t->nchunks) {
		uint8_t **dir, *chunk;

		if (tm_fault_fire(TM_FAULT_ALLOC))
			return -ENOMEM;
		bytes = tm_chunk_bytes(t);
		if (!tm_shard_charge(s, sh, bytes, mode))
			return TM_NEED_ROOM;
		if (t->nchunks == t->cap) {
			uint32_t cap = t->cap ? 2 * t->cap : 8;

			dir = realloc(t->chunks, cap * sizeof(*dir));
			if (!dir)
				goto nomem;
			t->chunks = dir;
			t->cap = cap;
		}
		chunk = calloc((size_t)1 << t->shift, t->item);
		if (!chunk)
			goto nomem;
		t->chunks[t->nchunks++] = chunk;
	}
	t->used = n;
	*id = n;
	return 0;

nomem:
	tm_shard_uncharge(s, sh, bytes);
	return -ENOMEM;
}

static void tm_table_put(struct tm_table *t, uint32_t id, size_t next_link)
{
	memcpy((uint8_t *)tm_table_ptr(t, id) + next_link, &t->free_head,
	       sizeof(uint32_t));
	t->free_head = id;
}

static void tm_table_free(struct tm_table *t)
{
	for (uint32_t i = 0; i < t->nchunks; i++)
		free(t->chunks[i]);
	free(t->chunks);
	t->chunks = NULL;
	t->nchunks = t->cap = t->used = t->free_head = 0;
	t->limit = t->hi = 0;
}

/*
 * Rehash @*bkt (@*nb heads, a power of two or 0) into @n heads.  Returns
 * 0, TM_NEED_ROOM (the charge did not fit) or -ENOMEM; on error the old
 * heads stay.
 */
static int tm_buckets_resize(struct tmem_store *s, struct tm_shard *sh,
			     uint32_t **bkt, uint32_t *nb, uint32_t n,
			     enum tm_charge mode,
			     uint64_t (*hash)(struct tm_shard *, uint32_t),
			     uint32_t *(*link)(struct tm_shard *, uint32_t))
{
	uint32_t *nbkt;

	if (!tm_shard_charge(s, sh, n * sizeof(*nbkt), mode))
		return TM_NEED_ROOM;
	nbkt = tm_fault_fire(TM_FAULT_BUCKETS) ? NULL :
	       calloc(n, sizeof(*nbkt));
	if (!nbkt) {
		tm_shard_uncharge(s, sh, n * sizeof(*nbkt));
		return -ENOMEM;
	}
	for (uint32_t b = 0; b < *nb; b++) {
		uint32_t id = (*bkt)[b];

		while (id) {
			uint32_t next = *link(sh, id);
			uint32_t h = (uint32_t)(hash(sh, id) & (n - 1));

			*link(sh, id) = nbkt[h];
			nbkt[h] = id;
			id = next;
		}
	}
	if (*nb)
		tm_shard_uncharge(s, sh, *nb * sizeof(*nbkt));
	free(*bkt);
	*bkt = nbkt;
	*nb = n;
	return 0;
}

/*
 * Double @*bkt when the chains average over @load; a new table gets @first
 * heads.  Growing is optional: under a strict charge that does not fit,
 * chains just get longer.  Returns 0, or why it could not grow:
 * TM_NEED_ROOM (the charge did not fit) or -ENOMEM; that matters only
 * when there is no table yet.
 */
static int tm_buckets_grow(struct tmem_store *s, struct tm_shard *sh,
			    uint32_t **bkt, uint32_t *nb, uint32_t count,
			    uint32_t load, uint32_t first, enum tm_charge mode,
			    uint64_t (*hash)(struct tm_shard *, uint32_t),
			    uint32_t *(*link)(struct tm_shard *, uint32_t))
{
	if (*nb && count <= load * *nb)
		return 0;
	return tm_buckets_resize(s, sh, bkt, nb, *nb ? *nb * 2 : first, mode,
				 hash, link);
}

static uint64_t tm_obj_hash_id(struct tm_shard *sh, uint32_t id)
{
	struct tm_obj *o = tm_obj_ptr(sh, id);

	return tm_obj_hash(sh, o->pool, o->oid);
}

static uint32_t *tm_obj_link(struct tm_shard *sh, uint32_t id)
{
	return &tm_obj_ptr(sh, id)->hnext;
}

static uint64_t tm_ent_hash_id(struct tm_shard *sh, uint32_t id)
{
	struct tm_entry *e = tm_ent_ptr(sh, id);

	return tm_ent_hash(sh, e->obj, e->index);
}

static uint32_t *tm_ent_link(struct tm_shard *sh, uint32_t id)
{
	return &tm_ent_ptr(sh, id)->hnext;
}

uint32_t tm_obj_find(struct tm_shard *sh, uint32_t pool, const uint64_t oid[3])
{
	uint32_t id;

	if (!sh->obkt_n)
		return 0;
	id = sh->obkt[tm_obj_hash(sh, pool, oid) & (sh->obkt_n - 1)];
	for (; id; id = tm_obj_ptr(sh, id)->hnext) {
		struct tm_obj *o = tm_obj_ptr(sh, id);

		if (o->pool == pool && !memcmp(o->oid, oid, sizeof(o->oid)))
			return id;
	}
	return 0;
}

uint32_t tm_ent_find(struct tm_shard *sh, uint32_t obj, uint32_t index)
{
	uint32_t id;

	if (!sh->ebkt_n)
		return 0;
	id = sh->ebkt[tm_ent_hash(sh, obj, index) & (sh->ebkt_n - 1)];
	for (; id; id = tm_ent_ptr(sh, id)->hnext) {
		struct tm_entry *e = tm_ent_ptr(sh, id);

		if (e->obj == obj && e->index == index)
			return id;
	}
	return 0;
}

/* Unlink @id from the chain it hangs on in @bkt. */
static void tm_chain_del(uint32_t *head, uint32_t id,
			 uint32_t *(*link)(struct tm_shard *, uint32_t),
			 struct tm_shard *sh)
{
	uint32_t *p = head;

	while (*p && *p != id)
		p = link(sh, *p);
	if (*p)
		*p = *link(sh, id);
}

static void tm_shard_reset(struct tmem_store *s, struct tm_shard *sh)
{
	tm_table_free(&sh->ents);
	tm_table_free(&sh->objs);
	free(sh->ebkt);
	free(sh->obkt);
	sh->ebkt = sh->obkt = NULL;
	sh->ebkt_n = sh->obkt_n = 0;
	tm_shard_uncharge(s, sh, sh->index_bytes);
}

static int tm_obj_get(struct tmem_store *s, struct tm_shard *sh, uint32_t pool,
		      const uint64_t oid[3], enum tm_charge mode, uint32_t *out)
{
	struct tm_obj *o;
	uint32_t id = tm_obj_find(sh, pool, oid);
	uint32_t h;
	int rc;

	if (id) {
		*out = id;
		return 0;
	}
	rc = tm_table_get(s, sh, &sh->objs, offsetof(struct tm_obj, hnext),
			  mode, &id);
	if (rc)
		return rc;
	rc = tm_buckets_grow(s, sh, &sh->obkt, &sh->obkt_n, sh->nobjs + 1,
			     TM_OBKT_LOAD, TM_OBKT_FIRST, mode, tm_obj_hash_id,
			     tm_obj_link);
	if (!sh->obkt_n) {
		tm_table_put(&sh->objs, id, offsetof(struct tm_obj, hnext));
		return rc ? rc : -ENOMEM;
	}
	o = tm_obj_ptr(sh, id);
	memcpy(o->oid, oid, sizeof(o->oid));
	o->pool = pool;
	o->head = 0;
	o->npages = 0;
	h = (uint32_t)(tm_obj_hash(sh, pool, oid) & (sh->obkt_n - 1));
	o->hnext = sh->obkt[h];
	sh->obkt[h] = id;
	sh->nobjs++;
	*out = id;
	return 0;
}

static void tm_obj_put(struct tmem_store *s, struct tm_shard *sh, uint32_t id)
{
	struct tm_obj *o = tm_obj_ptr(sh, id);
	uint32_t h = (uint32_t)(tm_obj_hash(sh, o->pool, o->oid) &
				(sh->obkt_n - 1));

	tm_chain_del(&sh->obkt[h], id, tm_obj_link, sh);
	o->npages = 0;
	tm_table_put(&sh->objs, id, offsetof(struct tm_obj, hnext));
	sh->nobjs--;
	if (!sh->nobjs && !sh->nents)
		tm_shard_reset(s, sh);
}

/*
 * tm_ent_insert - a new, empty entry for @key (which must not be
 * indexed yet).  Set its data with tm_ent_set.  Returns 0, TM_NEED_ROOM
 * (strict charge did not fit) or -ENOMEM.
 */
int tm_ent_insert(struct tmem_store *s, struct tm_shard *sh, uint32_t pool,
		  const struct tmem_key *key, enum tm_charge mode,
		  uint32_t *eid)
{
	struct tm_entry *e;
	struct tm_obj *o;
	uint32_t obj, id, h;
	int rc;

	rc = tm_obj_get(s, sh, pool, key->oid, mode, &obj);
	if (rc)
		return rc;
	rc = tm_table_get(s, sh, &sh->ents, offsetof(struct tm_entry, hnext),
			  mode, &id);
	if (!rc) {
		rc = tm_buckets_grow(s, sh, &sh->ebkt, &sh->ebkt_n,
				     sh->nents + 1, TM_EBKT_LOAD,
				     TM_EBKT_FIRST, mode,
				     tm_ent_hash_id, tm_ent_link);
		if (!sh->ebkt_n)
			tm_table_put(&sh->ents, id,
				     offsetof(struct tm_entry, hnext));
		rc = sh->ebkt_n ? 0 : rc ? rc : -ENOMEM;
	}
	o = tm_obj_ptr(sh, obj);
	if (rc) {
		if (!o->npages)
			tm_obj_put(s, sh, obj);
		return rc;
	}
	e = tm_ent_ptr(sh, id);
	memset(e, 0, sizeof(*e));
	e->obj = obj;
	e->index = key->index;
	h = (uint32_t)(tm_ent_hash(sh, obj, key->index) &
		       (sh->ebkt_n - 1));
	e->hnext = sh->ebkt[h];
	sh->ebkt[h] = id;
	e->onext = o->head;
	if (o->head)
		tm_ent_ptr(sh, o->head)->oprev = id;
	o->head = id;
	o->npages++;
	sh->nents++;
	*eid = id;
	return 0;
}

/* Bytes tm_table_get would have to charge for one more id in @t. */
static size_t tm_table_need(const struct tm_table *t)
{
	if (t->free_head || (t->used + 1) >> t->shift < t->nchunks)
		return 0;
	return tm_chunk_bytes(t);
}

/*
 * tm_ent_fits - whether @key could be indexed now within the budget:
 * it already is, or the tables have room, or the charge for new chunks
 * fits.  A hint for callers about to do work (spill I/O) that would be
 * wasted on a refused insert; tm_ent_insert has the last word.
 */
bool tm_ent_fits(struct tmem_store *s, struct tm_shard *sh, uint32_t pool,
		 const struct tmem_key *key)
{
	uint32_t obj = tm_obj_find(sh, pool, key->oid);
	size_t need;

	if (obj && tm_ent_find(sh, obj, key->index))
		return true;
	need = tm_table_need(&sh->ents) + (obj ? 0 : tm_table_need(&sh->objs));
	return !need || tm_ram_used(s) + need <= atomic_load(&s->budget);
}

/* The gauges an entry shows in, and what it shows there. */
enum { TM_G_PAGES, TM_G_BYTES, TM_G_SAME, TM_G_RAW, TM_G_SPILLED,
       TM_G_COMPRESSED, TM_G_RAM_PAGE_BYTES, TM_NG };

static void tm_ent_gauges(uint32_t info, int64_t g[TM_NG])
{
	int64_t page = info & TM_E_BIG ? TM_PAGE_MAX : TM_PAGE_MIN;
	bool ram = info & TM_E_RAM;

	memset(g, 0, TM_NG * sizeof(*g));
	if (!(info & (TM_E_RAM | TM_E_SPILL | TM_E_SAME)))
		return;
	g[TM_G_PAGES] = 1;
	g[TM_G_BYTES] = page;
	g[TM_G_SAME] = !!(info & TM_E_SAME);
	g[TM_G_RAW] = !!(info & TM_E_RAW);
	g[TM_G_SPILLED] = !!(info & TM_E_SPILL);
	g[TM_G_COMPRESSED] = ram ? (int64_t)(info & TM_E_SIZE) : 0;
	g[TM_G_RAM_PAGE_BYTES] = ram ? page : 0;
}

/*
 * Move the gauges from what @old shows to what @new shows.  Only the
 * differences are applied, so a page that changes place (RAM to spill)
 * never shows as gone to a concurrent tmem_stats.
 */
static void tm_ent_account(struct tm_shard *sh, uint32_t old, uint32_t new)
{
	static const int pers[TM_NG] = {
		TMEM_STAT_PAGES_PERSISTENT, TMEM_STAT_BYTES_PERSISTENT,
		TMEM_STAT_PAGES_SAME, TMEM_STAT_PAGES_RAW,
		TMEM_STAT_PAGES_SPILLED, TMEM_STAT_BYTES_COMPRESSED,
		TM_ISTAT_RAM_PAGE_BYTES,
	};
	int64_t go[TM_NG], gn[TM_NG];

	tm_ent_gauges(old, go);
	tm_ent_gauges(new, gn);
	for (int i = 0; i < TM_NG; i++) {
		bool eo = old & TM_E_EPHEMERAL, en = new & TM_E_EPHEMERAL;
		int so = pers[i], sn = pers[i];

		if (i == TM_G_PAGES) {
			so = eo ? TMEM_STAT_PAGES_EPHEMERAL : so;
			sn = en ? TMEM_STAT_PAGES_EPHEMERAL : sn;
		} else if (i == TM_G_BYTES) {
			so = eo ? TMEM_STAT_BYTES_EPHEMERAL : so;
			sn = en ? TMEM_STAT_BYTES_EPHEMERAL : sn;
		}
		if (so == sn) {
			if (gn[i] != go[i])
				tm_stat_add(sh, sn, gn[i] - go[i]);
			continue;
		}
		if (go[i])
			tm_stat_add(sh, so, -go[i]);
		if (gn[i])
			tm_stat_add(sh, sn, gn[i]);
	}
	/* An unlocked spill read of the old extent must not trust it. */
	sh->spill_seq += !!(old & TM_E_SPILL);
	sh->n_eph_same -= (old & TM_E_EPHEMERAL) && go[TM_G_SAME];
	sh->n_eph_same += (new & TM_E_EPHEMERAL) && gn[TM_G_SAME];
}

/* tm_ent_set - point @e at new data; the old data is the caller's. */
void tm_ent_set(struct tm_shard *sh, struct tm_entry *e, uint32_t info,
		uint64_t loc)
{
	tm_ent_account(sh, e->info, info);
	e->info = info;
	e->loc = loc;
}

/* tm_ent_remove - drop the entry and free its data. */
void tm_ent_remove(struct tmem_store *s, struct tm_shard *sh, uint32_t eid)
{
	struct tm_entry *e = tm_ent_ptr(sh, eid);
	struct tm_obj *o = tm_obj_ptr(sh, e->obj);
	uint32_t h = (uint32_t)(tm_ent_hash(sh, e->obj, e->index) &
				(sh->ebkt_n - 1));
	uint32_t obj = e->obj;

	tm_ent_account(sh, e->info, 0);
	tm_free_data(s, e->info, e->loc);
	tm_chain_del(&sh->ebkt[h], eid, tm_ent_link, sh);
	if (e->oprev)
		tm_ent_ptr(sh, e->oprev)->onext = e->onext;
	else
		o->head = e->onext;
	if (e->onext)
		tm_ent_ptr(sh, e->onext)->oprev = e->oprev;
	e->obj = 0;
	e->info = 0;
	tm_table_put(&sh->ents, eid, offsetof(struct tm_entry, hnext));
	sh->nents--;
	if (!--o->npages)
		tm_obj_put(s, sh, obj);
}

/* tm_obj_remove - drop every page of object @obj; returns how many. */
int64_t tm_obj_remove(struct tmem_store *s, struct tm_shard *sh, uint32_t obj)
{
	uint32_t n = tm_obj_ptr(sh, obj)->npages;

	/* The last removal frees the object: count, don't re-read it. */
	for (uint32_t i = 0; i < n; i++)
		tm_ent_remove(s, sh, tm_obj_ptr(sh, obj)->head);
	return n;
}

int64_t tm_shard_flush_pool(struct tmem_store *s, struct tm_shard *sh,
			    uint32_t pool)
{
	int64_t n = 0;

	/* Re-read used: the table is freed when the shard empties. */
	for (uint32_t id = 1; id <= sh->objs.used; id++) {
		struct tm_obj *o = tm_obj_ptr(sh, id);

		if (o->npages && o->pool == pool)
			n += tm_obj_remove(s, sh, id);
	}
	return n;
}

void tm_shard_fini(struct tmem_store *s, struct tm_shard *sh)
{
	tm_shard_reset(s, sh);
	pthread_mutex_destroy(&sh->lock);
}

/*
 * Shrinking.  A page table only grows while its shard fills, so after
 * the guest flushes most of its pages the chunks and hash heads would
 * stay, at several times the cost per live page.  When fewer than half
 * of a table's ids are live (and that frees at least TM_TIDY_CHUNKS), the reclaim thread shrinks it, a
 * bounded step at a time with the shard lock dropped between steps:
 * live entries above a cut are moved to free ids below it (no id above
 * the cut is handed out meanwhile), then the chunks above the cut are
 * freed and the hash heads shrunk to fit.
 *
 * Moving an entry renumbers it, and an entry's id is known outside the
 * tables: the slab owner word of its data (rewritten here), and the
 * unlocked spill read of tm_read_spilled (which trusts its id only while
 * spill_seq stands still, so a spilled entry's move bumps it).  Reclaim
 * that read an owner word before the move finds the old id free, or
 * pointing elsewhere, and skips the slot, as for a flushed page.  The
 * object table is left alone: moving an object rehashes its pages.
 */
#define TM_TIDY_STEP	512	/* ids looked at per step, lock held */
#define TM_TIDY_CHUNKS	2	/* tables this small are left alone */

/* Move entry @from to free id @to; every link to it follows. */
static void tm_ent_move(struct tmem_store *s, struct tm_shard *sh,
			uint32_t from, uint32_t to)
{
	struct tm_entry *e = tm_ent_ptr(sh, from), *n = tm_ent_ptr(sh, to);
	uint32_t h = (uint32_t)(tm_ent_hash(sh, e->obj, e->index) &
				(sh->ebkt_n - 1));
	uint32_t *p = &sh->ebkt[h];

	while (*p != from)
		p = &tm_ent_ptr(sh, *p)->hnext;
	*n = *e;
	*p = to;
	if (n->oprev)
		tm_ent_ptr(sh, n->oprev)->onext = to;
	else
		tm_obj_ptr(sh, n->obj)->head = to;
	if (n->onext)
		tm_ent_ptr(sh, n->onext)->oprev = to;
	if (n->info & TM_E_RAM)
		tm_slot_set_owner(s, n->loc, (uint32_t)(sh - s->shard) <<
				  TM_SHARD_SHIFT | to);
	sh->spill_seq += !!(n->info & TM_E_SPILL);
	e->obj = 0;
	e->info = 0;
}

/* The cut moves have emptied everything above: free it. */
static void tm_ents_truncate(struct tmem_store *s, struct tm_shard *sh)
{
	struct tm_table *t = &sh->ents;
	uint32_t keep = (t->limit + 1) >> t->shift, cap = t->cap;
	uint32_t nb = TM_EBKT_FIRST;

	while (t->nchunks > keep) {
		free(t->chunks[--t->nchunks]);
		tm_shard_uncharge(s, sh, tm_chunk_bytes(t));
	}
	while (cap > 8 && cap / 2 >= keep)
		cap /= 2;
	if (cap != t->cap) {
		uint8_t **dir = realloc(t->chunks, cap * sizeof(*dir));

		if (dir) {
			t->chunks = dir;
			t->cap = cap;
		}
	}
	t->used = t->limit;
	t->limit = t->hi = 0;
	tm_table_refree(t, offsetof(struct tm_entry, hnext),
			offsetof(struct tm_entry, obj));
	/* As many heads as growth would have left. */
	while (TM_EBKT_LOAD * nb < sh->nents)
		nb *= 2;
	if (nb < sh->ebkt_n)
		tm_buckets_resize(s, sh, &sh->ebkt, &sh->ebkt_n, nb,
				  TM_CHARGE_FORCE, tm_ent_hash_id,
				  tm_ent_link);
}

/*
 * tm_shard_tidy - one bounded step of shrinking @sh's page table, if it
 * is mostly free.  Caller holds the shard lock.  Returns true if there is
 * more to do (call again, after letting others have the lock).
 */
bool tm_shard_tidy(struct tmem_store *s, struct tm_shard *sh)
{
	struct tm_table *t = &sh->ents;
	const size_t link = offsetof(struct tm_entry, hnext);
	uint32_t per = 1u << t->shift;

	if (!t->limit) {
		uint32_t keep = (sh->nents + per) / per;

		if (t->nchunks <= TM_TIDY_CHUNKS ||
		    (uint64_t)sh->nents * 2 >= (uint64_t)t->nchunks * per ||
		    keep + TM_TIDY_CHUNKS > t->nchunks)
			return false;
		/* Keep the fewest chunks that hold every live entry. */
		t->limit = keep * per - 1;
		t->hi = t->used;
	}
	for (uint32_t n = 0; t->hi > t->limit && n < TM_TIDY_STEP; n++) {
		uint32_t to;

		if (!tm_ent_ptr(sh, t->hi)->obj) {
			t->hi--;
			continue;
		}
		to = tm_table_pop(t, link);
		if (!to) {
			/* Puts took the room below the cut: not now. */
			tm_table_unshrink(t, link,
					  offsetof(struct tm_entry, obj));
			return false;
		}
		tm_ent_move(s, sh, t->hi--, to);
	}
	if (t->hi > t->limit)
		return true;
	tm_ents_truncate(s, sh);
	return false;
}

/* Longest chain in @bkt; caller holds the shard lock. */
static uint32_t tm_chain_max(struct tm_shard *sh, const uint32_t *bkt,
			     uint32_t nb,
			     uint32_t *(*link)(struct tm_shard *, uint32_t))
{
	uint32_t best = 0;

	for (uint32_t b = 0; b < nb; b++) {
		uint32_t len = 0;

		for (uint32_t id = bkt[b]; id; id = *link(sh, id))
			len++;
		if (len > best)
			best = len;
	}
	return best;
}

uint32_t tm_probe_chain_max(struct tmem_store *s)
{
	uint32_t best = 0;

	for (int i = 0; i < TM_NSHARD; i++) {
		struct tm_shard *sh = &s->shard[i];
		uint32_t e, o;

		pthread_mutex_lock(&sh->lock);
		e = tm_chain_max(sh, sh->ebkt, sh->ebkt_n, tm_ent_link);
		o = tm_chain_max(sh, sh->obkt, sh->obkt_n, tm_obj_link);
		pthread_mutex_unlock(&sh->lock);
		best = e > best ? e : best;
		best = o > best ? o : best;
	}
	return best;
}

bool tm_probe_ent_needs_ram(struct tmem_store *s, int pool,
			    const struct tmem_key *key)
{
	struct tm_shard *sh = &s->shard[tm_shard_of(s, pool, key)];
	uint32_t obj;
	size_t need;

	pthread_mutex_lock(&sh->lock);
	obj = tm_obj_find(sh, (uint32_t)pool, key->oid);
	need = obj && tm_ent_find(sh, obj, key->index) ? 0 :
	       tm_table_need(&sh->ents) +
	       (obj ? 0 : tm_table_need(&sh->objs));
	pthread_mutex_unlock(&sh->lock);
	return need;
}
