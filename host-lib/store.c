// SPDX-License-Identifier: MIT
/*
 * store.c - the store's life cycle, its pools, its budget and its stats.
 *
 * Pool ids are (generation << 18 | slot).  Slots sit in a directory of
 * fixed chunks that are never freed, so a lookup takes no lock: it reads
 * the slot's state word, which carries the live generation.  A put that
 * races with pool destruction checks the state again under the shard
 * lock, and destruction flushes each shard under that same lock, so no
 * page can be left behind in a dead pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "tmem_int.h"

#define TM_POOL_SLOTS	(1u << TM_POOL_SLOT_BITS)
#define TM_POOL_DIR	(TM_POOL_SLOTS / TM_POOL_CHUNK)

bool tm_charge(struct tmem_store *s, _Atomic uint64_t *ctr, uint64_t bytes,
	       enum tm_charge mode)
{
	uint64_t used = atomic_load(&s->ram_used);

	if (mode == TM_CHARGE_FORCE) {
		atomic_fetch_add(&s->ram_used, bytes);
	} else {
		do {
			if (used + bytes > atomic_load(&s->budget))
				return false;
		} while (!atomic_compare_exchange_weak(&s->ram_used, &used,
						       used + bytes));
	}
	atomic_fetch_add(ctr, bytes);
	return true;
}

void tm_uncharge(struct tmem_store *s, _Atomic uint64_t *ctr, uint64_t bytes)
{
	atomic_fetch_sub(&s->ram_used, bytes);
	atomic_fetch_sub(ctr, bytes);
	atomic_fetch_add_explicit(&s->ram_frees, 1, memory_order_relaxed);
}

uint64_t tm_ram_used(struct tmem_store *s)
{
	return atomic_load(&s->ram_used);
}

static uint32_t tm_pool_live_state(int pool)
{
	return (uint32_t)pool >> TM_POOL_SLOT_BITS << 1 | 1;
}

struct tm_pool *tm_pool_get(struct tmem_store *s, int pool)
{
	uint32_t slot = (uint32_t)pool & (TM_POOL_SLOTS - 1);
	struct tm_pool *chunk;

	if (pool < 0)
		return NULL;
	chunk = atomic_load(&s->pool_dir[slot / TM_POOL_CHUNK]);
	if (!chunk || !tm_pool_alive(&chunk[slot % TM_POOL_CHUNK], pool))
		return NULL;
	return &chunk[slot % TM_POOL_CHUNK];
}

bool tm_pool_alive(struct tm_pool *p, int pool)
{
	return atomic_load(&p->state) == tm_pool_live_state(pool);
}

TM_EXPORT int tmem_pool_create(struct tmem_store *s, enum tmem_pool_kind kind,
			       uint32_t page_size)
{
	struct tm_pool *chunk, *p;
	uint32_t slot, gen;
	int rc;

	if (!s || (kind != TMEM_PERSISTENT && kind != TMEM_EPHEMERAL) ||
	    (page_size != TM_PAGE_MIN && page_size != TM_PAGE_MAX))
		return -EINVAL;
	pthread_mutex_lock(&s->pool_lock);
	if (s->npool_free) {
		slot = s->pool_free[--s->npool_free];
	} else if (s->pool_next < TM_POOL_SLOTS) {
		slot = s->pool_next;
	} else {
		rc = -ENOSPC;
		goto out;
	}
	chunk = atomic_load(&s->pool_dir[slot / TM_POOL_CHUNK]);
	if (!chunk) {
		chunk = calloc(TM_POOL_CHUNK, sizeof(*chunk));
		if (!chunk) {
			rc = -ENOMEM;
			goto out;
		}
		atomic_store(&s->pool_dir[slot / TM_POOL_CHUNK], chunk);
		atomic_fetch_add(&s->ram_fixed,
				 TM_POOL_CHUNK * sizeof(*chunk));
	}
	p = &chunk[slot % TM_POOL_CHUNK];
	/* A reused slot moves to its next generation, so stale ids fail. */
	if (slot == s->pool_next) {
		s->pool_next++;
		gen = 0;
	} else {
		gen = ((atomic_load(&p->state) >> 1) + 1) %
		      (TM_POOL_GEN_MAX + 1);
	}
	p->kind = (uint8_t)kind;
	p->page_size = page_size;
	atomic_store(&p->state, gen << 1 | 1);
	rc = (int)(gen << TM_POOL_SLOT_BITS | slot);
out:
	pthread_mutex_unlock(&s->pool_lock);
	return rc;
}

/*
 * A pool or object of millions of pages, for tests of the callers'
 * responsiveness: with TMEM_TEST_FLUSH_DELAY_MS set in the environment,
 * flushing an object or flushing or destroying a pool first sleeps that
 * long (at most 10 s), holding no lock.  Read per call.  Not part of the
 * API; never set in production.
 */
void tm_flush_test_delay(void)
{
	tm_test_sleep_ms(tm_test_delay_ms("TMEM_TEST_FLUSH_DELAY_MS"));
}

static int64_t tm_flush_pool_pages(struct tmem_store *s, int pool)
{
	int64_t n = 0;

	tm_flush_test_delay();
	for (int i = 0; i < TM_NSHARD; i++) {
		pthread_mutex_lock(&s->shard[i].lock);
		n += tm_shard_flush_pool(s, &s->shard[i], (uint32_t)pool);
		pthread_mutex_unlock(&s->shard[i].lock);
	}
	tm_stat_add(&s->shard[0], TMEM_STAT_FLUSH_POOLS, 1);
	tm_stat_add(&s->shard[0], TMEM_STAT_FLUSH_PAGES, n);
	return n;
}

TM_EXPORT int64_t tmem_pool_destroy(struct tmem_store *s, int pool)
{
	uint32_t live = tm_pool_live_state(pool);
	struct tm_pool *p;
	int64_t n;

	if (!s)
		return -EINVAL;
	p = tm_pool_get(s, pool);
	/* Only one caller can take the pool from live to dead. */
	if (!p || !atomic_compare_exchange_strong(&p->state, &live,
						  live & ~1u))
		return -EBADF;
	n = tm_flush_pool_pages(s, pool);

	pthread_mutex_lock(&s->pool_lock);
	if (s->npool_free == s->pool_free_cap) {
		uint32_t cap = s->pool_free_cap ? 2 * s->pool_free_cap : 64;
		uint32_t *f = realloc(s->pool_free, cap * sizeof(*f));

		if (f) {
			s->pool_free = f;
			s->pool_free_cap = cap;
		}
	}
	/* Without room to remember the slot it stays retired: harmless. */
	if (s->npool_free < s->pool_free_cap)
		s->pool_free[s->npool_free++] =
			(uint32_t)pool & (TM_POOL_SLOTS - 1);
	pthread_mutex_unlock(&s->pool_lock);
	return n;
}

TM_EXPORT int64_t tmem_flush_pool(struct tmem_store *s, int pool)
{
	if (!s)
		return -EINVAL;
	if (!tm_pool_get(s, pool))
		return -EBADF;
	return tm_flush_pool_pages(s, pool);
}

TM_EXPORT int tmem_pool_info(struct tmem_store *s, int pool,
			     enum tmem_pool_kind *kind, uint32_t *page_size)
{
	struct tm_pool *p;

	if (!s)
		return -EINVAL;
	p = tm_pool_get(s, pool);
	if (!p)
		return -EBADF;
	if (kind)
		*kind = p->kind;
	if (page_size)
		*page_size = p->page_size;
	return 0;
}

/* What a store spills to: the file of @cfg, or @ops if not NULL. */
struct tm_spill_src {
	const struct tmem_spill_ops *ops;
	void *opaque;
	uint32_t unit;
};

static int tm_store_create(const struct tmem_config *cfg,
			   const struct tm_spill_src *src,
			   struct tmem_store **out)
{
	struct tmem_store *s;
	int rc;

	if (!cfg || !out ||
	    cfg->flags & ~(TMEM_SPILL_KEEP | TMEM_SPILL_BUFFERED) ||
	    (cfg->raw_policy != TMEM_RAW_STORE &&
	     cfg->raw_policy != TMEM_RAW_REJECT))
		return -EINVAL;
	s = aligned_alloc(64, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	tm_hkey_init(&s->shard[0].hkey);
	for (int i = 0; i < TM_NSHARD; i++) {
		pthread_mutex_init(&s->shard[i].lock, NULL);
		s->shard[i].hkey = s->shard[0].hkey;
		s->shard[i].ents.item = sizeof(struct tm_entry);
		s->shard[i].ents.shift = TM_ENT_SHIFT;
		s->shard[i].objs.item = sizeof(struct tm_obj);
		s->shard[i].objs.shift = TM_OBJ_SHIFT;
	}
	pthread_mutex_init(&s->pool_lock, NULL);
	tm_spill_init(&s->spill);
	atomic_store(&s->budget, cfg->budget);
	s->raw_policy = cfg->raw_policy;

	rc = -ENOMEM;
	s->pool_dir = calloc(TM_POOL_DIR, sizeof(*s->pool_dir));
	if (!s->pool_dir)
		goto err;
	rc = tm_slabs_init(&s->slabs);
	if (rc)
		goto err;
	if (src->ops)
		rc = tm_spill_ops_open(&s->spill, src->ops, src->opaque,
				       src->unit, cfg->spill_max);
	else
		rc = tm_spill_file_open(&s->spill, cfg->spill_path,
					cfg->spill_max, cfg->flags);
	if (rc)
		goto err;
	if (s->spill.medium)
		s->spill_max = s->spill.nunits << s->spill.unit_shift;
	atomic_store(&s->ram_fixed, sizeof(*s) +
		     TM_POOL_DIR * sizeof(*s->pool_dir) +
		     s->slabs.dir_len * sizeof(*s->slabs.dir) +
		     s->spill.fixed_bytes);
	rc = tm_reclaim_start(s);
	if (rc)
		goto err;
	*out = s;
	return 0;
err:
	tmem_store_destroy(s);
	return rc;
}

TM_EXPORT int tmem_store_create(const struct tmem_config *cfg,
				struct tmem_store **out)
{
	const struct tm_spill_src file = { 0 };

	return tm_store_create(cfg, &file, out);
}

TM_EXPORT int tmem_store_create_spill(const struct tmem_config *cfg,
				      const struct tmem_spill_ops *ops,
				      void *opaque, uint32_t unit,
				      struct tmem_store **out)
{
	const struct tm_spill_src src = {
		.ops = ops, .opaque = opaque, .unit = unit };

	/* The medium is @ops: no file, nor the file's flags. */
	if (!cfg || !ops || !ops->write || !ops->read ||
	    (cfg->spill_path && *cfg->spill_path) || !cfg->spill_max ||
	    cfg->flags & (TMEM_SPILL_KEEP | TMEM_SPILL_BUFFERED) ||
	    unit < 512 || unit > 4096 || (unit & (unit - 1)))
		return -EINVAL;
	return tm_store_create(cfg, &src, out);
}

TM_EXPORT void tmem_store_destroy(struct tmem_store *s)
{
	if (!s)
		return;
	tm_reclaim_stop(s);
	/* Slabs go wholesale below: the index need not free them one by one. */
	for (int i = 0; i < TM_NSHARD; i++)
		tm_shard_fini(s, &s->shard[i]);
	tm_slabs_fini(s);
	tm_spill_close(&s->spill);
	if (s->pool_dir) {
		for (uint32_t i = 0; i < TM_POOL_DIR; i++)
			free(atomic_load(&s->pool_dir[i]));
		free(s->pool_dir);
	}
	free(s->pool_free);
	pthread_mutex_destroy(&s->pool_lock);
	free(s);
}

TM_EXPORT int tmem_set_budget(struct tmem_store *s, uint64_t bytes)
{
	if (!s)
		return -EINVAL;
	atomic_store(&s->budget, bytes);
	tm_reclaim_kick(s);
	return 0;
}

TM_EXPORT int tmem_set_evict_cb(struct tmem_store *s, tmem_evict_fn fn,
				void *opaque)
{
	if (!s)
		return -EINVAL;
	/* Every caller of the callback holds a shard lock: wait them out. */
	for (int i = 0; i < TM_NSHARD; i++)
		pthread_mutex_lock(&s->shard[i].lock);
	s->evict_fn = fn;
	s->evict_opaque = opaque;
	for (int i = TM_NSHARD - 1; i >= 0; i--)
		pthread_mutex_unlock(&s->shard[i].lock);
	return 0;
}

static const char *const tm_stat_names[TMEM_STAT__COUNT] = {
	[TMEM_STAT_PUTS] = "puts",
	[TMEM_STAT_PUT_REJ_NOSPACE] = "put_rejected_nospace",
	[TMEM_STAT_PUT_REJ_NOMEM] = "put_rejected_nomem",
	[TMEM_STAT_PUT_REJ_RAW] = "put_rejected_incompressible",
	[TMEM_STAT_PUT_REJ_INVALID] = "put_rejected_invalid",
	[TMEM_STAT_PUT_OVERWRITES] = "put_overwrites",
	[TMEM_STAT_GET_HITS_RAM] = "get_hits_ram",
	[TMEM_STAT_GET_HITS_SPILL] = "get_hits_spill",
	[TMEM_STAT_GET_MISSES] = "get_misses",
	[TMEM_STAT_GET_ERRORS] = "get_errors",
	[TMEM_STAT_FLUSH_PAGES] = "flushed_pages",
	[TMEM_STAT_FLUSH_OBJECTS] = "flushed_objects",
	[TMEM_STAT_FLUSH_POOLS] = "flushed_pools",
	[TMEM_STAT_EVICTIONS] = "evictions",
	[TMEM_STAT_SPILLS] = "spills",
	[TMEM_STAT_SPILL_DIRECT] = "spills_direct",
	[TMEM_STAT_SPILL_READS] = "spill_reads",
	[TMEM_STAT_SPILL_WRITE_ERRORS] = "spill_write_errors",
	[TMEM_STAT_SPILL_ENOSPC] = "spill_enospc",
	[TMEM_STAT_SPILL_READ_ERRORS] = "spill_read_errors",
	[TMEM_STAT_PAGES_PERSISTENT] = "pages_persistent",
	[TMEM_STAT_PAGES_EPHEMERAL] = "pages_ephemeral",
	[TMEM_STAT_PAGES_SPILLED] = "pages_spilled",
	[TMEM_STAT_PAGES_SAME] = "pages_same_filled",
	[TMEM_STAT_PAGES_RAW] = "pages_raw",
	[TMEM_STAT_BYTES_PERSISTENT] = "bytes_persistent",
	[TMEM_STAT_BYTES_EPHEMERAL] = "bytes_ephemeral",
	[TMEM_STAT_BYTES_COMPRESSED] = "bytes_compressed",
	[TMEM_STAT_RAM_USED] = "ram_used",
	[TMEM_STAT_RAM_DATA] = "ram_data",
	[TMEM_STAT_RAM_INDEX] = "ram_index",
	[TMEM_STAT_RAM_FIXED] = "ram_fixed",
	[TMEM_STAT_BUDGET] = "budget",
	[TMEM_STAT_SPILL_USED] = "spill_used",
	[TMEM_STAT_SPILL_MAX] = "spill_max",
	[TMEM_STAT_SLABS] = "slabs",
	[TMEM_STAT_RECLAIM_RUNS] = "reclaim_runs",
	[TMEM_STAT_PUT_OVER_BUDGET] = "puts_over_budget",
	[TMEM_STAT_SPILL_BUFFERED] = "spill_buffered",
	[TMEM_STAT_SPILL_RING_RESETS] = "spill_ring_resets",
	[TMEM_STAT_SPILL_LOST] = "spill_lost",
	[TMEM_STAT_PUT_WAITS] = "put_waits",
	[TMEM_STAT_PUT_WAIT_NS] = "put_wait_ns",
	[TMEM_STAT_PUT_WAIT_TIMEOUTS] = "put_wait_timeouts",
};

TM_EXPORT const char *tmem_stat_name(unsigned int stat)
{
	return stat < TMEM_STAT__COUNT ? tm_stat_names[stat] : NULL;
}

/* Every stat, public and private, as one snapshot. */
static void tm_stats_read(struct tmem_store *s, uint64_t v[TM_NSTAT])
{
	memset(v, 0, TM_NSTAT * sizeof(*v));
	for (int i = 0; i < TM_NSHARD; i++)
		for (int k = 0; k < TM_NSTAT; k++)
			v[k] += atomic_load_explicit(&s->shard[i].stat[k],
						     memory_order_relaxed);
	v[TMEM_STAT_RAM_DATA] = atomic_load(&s->ram_data);
	v[TMEM_STAT_RAM_INDEX] = atomic_load(&s->ram_index);
	v[TMEM_STAT_RAM_USED] = v[TMEM_STAT_RAM_DATA] + v[TMEM_STAT_RAM_INDEX];
	v[TMEM_STAT_RAM_FIXED] = atomic_load(&s->ram_fixed);
	v[TMEM_STAT_BUDGET] = atomic_load(&s->budget);
	v[TMEM_STAT_SPILL_USED] = s->spill.medium ?
				  tm_spill_used(&s->spill) : 0;
	v[TMEM_STAT_SPILL_MAX] = s->spill_max;
	v[TMEM_STAT_SLABS] = atomic_load(&s->slabs_live);
	v[TMEM_STAT_RECLAIM_RUNS] = atomic_load(&s->reclaim_runs);
	v[TMEM_STAT_SPILL_BUFFERED] = s->spill.buffered ?
				      v[TMEM_STAT_SPILL_USED] : 0;
	v[TMEM_STAT_SPILL_RING_RESETS] = atomic_load(&s->spill.ring_resets);
	v[TMEM_STAT_SPILL_LOST] = atomic_load(&s->spill.lost_bytes);
}

_Static_assert(sizeof(struct tmem_stats) == 38 * 8 + 16,
	       "struct tmem_stats is ABI: its size must not change");

TM_EXPORT int tmem_stats(struct tmem_store *s, struct tmem_stats *out)
{
	uint64_t v[TM_NSTAT];

	if (!s || !out)
		return -EINVAL;
	tm_stats_read(s, v);
	memcpy(out->v, v, sizeof(out->v));
	out->compression_ratio = v[TMEM_STAT_BYTES_COMPRESSED] ?
		(double)v[TM_ISTAT_RAM_PAGE_BYTES] /
		(double)v[TMEM_STAT_BYTES_COMPRESSED] : 0.0;
	out->fragmentation = v[TMEM_STAT_RAM_DATA] ?
		1.0 - (double)v[TMEM_STAT_BYTES_COMPRESSED] /
		(double)v[TMEM_STAT_RAM_DATA] : 0.0;
	return 0;
}

TM_EXPORT int tmem_stat_values(struct tmem_store *s, uint64_t *v,
			       unsigned int n)
{
	uint64_t all[TM_NSTAT];

	if (!s || (n && !v))
		return -EINVAL;
	if (n) {
		tm_stats_read(s, all);
		memcpy(v, all, (n < TMEM_STAT__COUNT ? n : TMEM_STAT__COUNT) *
		       sizeof(*v));
	}
	return TMEM_STAT__COUNT;
}
