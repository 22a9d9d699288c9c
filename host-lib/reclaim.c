// SPDX-License-Identifier: MIT
/*
 * reclaim.c - giving RAM back: drop ephemeral slabs, spill persistent ones.
 *
 * Reclaim works a slab at a time, coldest first (see tm_slab_pick):
 *
 *  1. an ephemeral slab is dropped: each of its pages leaves the index,
 *     and the emptied slab is unmapped;
 *  2. only when no ephemeral slab is left, a persistent slab is spilled:
 *     its pages are copied into the spill batch, written with one
 *     submission, and only then switched over in the index and freed.
 *
 * A page is never out of RAM before its spilled copy is on disk, so a
 * failed write loses nothing: the page stays where it was.
 *
 * Reclaim runs in two places.  A put that finds no room does a bounded
 * amount inline (tm_make_room).  A budget cut wakes the store's reclaim
 * thread, which works until usage is under the budget or nothing more
 * can go, so the caller of tmem_set_budget never waits for the I/O.
 *
 * Each dropped ephemeral page is reported to the store's evict callback
 * (tmem_set_evict_cb), under its shard lock, just before it goes.
 */
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "tmem_int.h"

#define TM_COMPACT_SLACK	(256u << 10)	/* see tm_fragmented */
#define TM_TRIM_MIN		(256u << 10)	/* index freed worth a trim */

void tm_free_data(struct tmem_store *s, uint32_t info, uint64_t loc)
{
	if (info & TM_E_RAM)
		tm_slot_free(s, loc);
	else if (info & TM_E_SPILL)
		tm_spill_free(&s->spill, loc, info & TM_E_SIZE);
}

static bool tm_owner_live(uint32_t o)
{
	return !(o & TM_OWNER_FREE) && o != TM_OWNER_PENDING;
}

/*
 * Lock the shard named by owner word @o and return the entry if it
 * still holds the page in slot @h; NULL (and nothing locked) otherwise.
 * @o may have been read before the slot was freed or taken again: a
 * word that names no entry (free, or not yet indexed) names no shard
 * either.
 */
static struct tm_entry *tm_owner_lock(struct tmem_store *s, uint32_t o,
				      uint64_t h, struct tm_shard **shp)
{
	struct tm_shard *sh;
	uint32_t eid = o & TM_EID_MASK;
	struct tm_entry *e;

	if (!tm_owner_live(o))
		return NULL;
	sh = &s->shard[o >> TM_SHARD_SHIFT];
	pthread_mutex_lock(&sh->lock);
	if (eid && eid <= sh->ents.used) {
		e = tm_ent_ptr(sh, eid);
		if (e->obj && (e->info & TM_E_RAM) && e->loc == h) {
			*shp = sh;
			return e;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/*
 * Tell the evict callback, if any, which key is about to go.  Caller
 * holds @sh's lock, which keeps the callback from being swapped under
 * it (tmem_set_evict_cb takes every shard lock).
 */
static void tm_report_evict(struct tmem_store *s, struct tm_shard *sh,
			    const struct tm_entry *e)
{
	const struct tm_obj *o;
	struct tmem_key key;

	if (!s->evict_fn)
		return;
	o = tm_obj_ptr(sh, e->obj);
	memcpy(key.oid, o->oid, sizeof(key.oid));
	key.index = e->index;
	s->evict_fn(s->evict_opaque, (int)o->pool, &key);
}

/* Drop the coldest ephemeral slab.  Returns the pages dropped. */
static uint64_t tm_reclaim_drop(struct tmem_store *s)
{
	struct tm_slab *sb = tm_slab_pick(s, 1);
	uint64_t n = 0;
	uint32_t nslots;

	if (!sb)
		return 0;
	nslots = tm_slab_nslots(s, sb);
	for (uint32_t i = 0; i < nslots; i++) {
		uint32_t o = atomic_load(&sb->owner[i]);
		uint64_t h = tm_handle(sb->id, i);
		struct tm_shard *sh;
		struct tm_entry *e;

		if (!tm_owner_live(o))
			continue;
		e = tm_owner_lock(s, o, h, &sh);
		if (!e)
			continue;
		tm_report_evict(s, sh, e);
		tm_ent_remove(s, sh, o & TM_EID_MASK);
		tm_stat_add(sh, TMEM_STAT_EVICTIONS, 1);
		pthread_mutex_unlock(&sh->lock);
		n++;
	}
	/* An emptied slab is progress even if its pages were flushed. */
	return n + tm_slab_unpick(s, sb);
}

/*
 * Same-filled ephemeral pages have no slab, only an index entry; drop
 * those of one shard.  Returns the pages dropped.
 */
static uint64_t tm_reclaim_drop_same(struct tmem_store *s)
{
	for (int i = 0; i < TM_NSHARD; i++) {
		struct tm_shard *sh = &s->shard[i];
		uint64_t n = 0;

		pthread_mutex_lock(&sh->lock);
		for (uint32_t id = 1; sh->n_eph_same && id <= sh->ents.used;
		     id++) {
			struct tm_entry *e = tm_ent_ptr(sh, id);

			if (e->obj && (e->info & TM_E_SAME) &&
			    (e->info & TM_E_EPHEMERAL)) {
				tm_report_evict(s, sh, e);
				tm_ent_remove(s, sh, id);
				tm_stat_add(sh, TMEM_STAT_EVICTIONS, 1);
				n++;
			}
		}
		pthread_mutex_unlock(&sh->lock);
		if (n)
			return n;
	}
	return 0;
}

#define TM_COMPACT_BATCH	64	/* slots taken per class lock */

/*
 * Move the page in slot @h (owner word @o) to slot @to, which is
 * PENDING.  Under the page's shard lock, and only if its entry still
 * points at @h: then the bytes are copied, the entry and the owner word
 * switched, and @h freed.  Otherwise (flushed or overwritten meanwhile)
 * @to is freed instead.
 */
static void tm_compact_move(struct tmem_store *s, uint32_t o, uint64_t h,
			    uint64_t to)
{
	struct tm_shard *sh;
	struct tm_entry *e = tm_owner_lock(s, o, h, &sh);

	if (!e) {
		tm_slot_free(s, to);
		return;
	}
	memcpy(tm_slot_ptr(s, to), tm_slot_ptr(s, h), e->info & TM_E_SIZE);
	e->loc = to;
	tm_slot_set_owner(s, to, o);
	tm_slot_free(s, h);
	pthread_mutex_unlock(&sh->lock);
}

/*
 * Empty @src, picked by tm_compact_pick, into the other slabs of its
 * class.  Returns true if it was emptied and freed.
 */
static bool tm_compact_slab(struct tmem_store *s, struct tm_slab *src)
{
	uint32_t nslots = tm_slab_nslots(s, src), i = 0;

	while (i < nslots) {
		uint64_t to[TM_COMPACT_BATCH];
		uint32_t slot[TM_COMPACT_BATCH], n = 0, got;

		for (; i < nslots && n < TM_COMPACT_BATCH; i++)
			if (tm_owner_live(atomic_load(&src->owner[i])))
				slot[n++] = i;
		if (!n)
			break;
		got = tm_compact_alloc(s, src, to, n);
		/* Flushes run here: the words read above may be stale. */
		tm_fault_park(TM_FAULT_COMPACT_STALL);
		for (uint32_t j = 0; j < got; j++)
			tm_compact_move(s, atomic_load(&src->owner[slot[j]]),
					tm_handle(src->id, slot[j]), to[j]);
		if (got < n)
			break;		/* the class filled up meanwhile */
	}
	return tm_slab_unpick(s, src);
}

/*
 * tm_compact - free one slab by compaction, from the class with the most
 * slabs to spare.  Returns the bytes freed, 0 if none could be.
 */
uint64_t tm_compact(struct tmem_store *s)
{
	uint64_t best = 0;
	uint32_t bcls = 0;
	int bkind = 0;
	struct tm_slab *src;

	for (int k = 0; k < 2; k++) {
		for (uint32_t c = 0; c < TM_NCLASS; c++) {
			uint32_t x = tm_class_excess(s, k, c);
			uint64_t bytes = (uint64_t)x *
					 s->slabs.cls[k][c].slab_bytes;

			if (x && bytes > best) {
				best = bytes;
				bkind = k;
				bcls = c;
			}
		}
	}
	if (!best)
		return 0;
	src = tm_compact_pick(s, bkind, bcls);
	if (!src || !tm_compact_slab(s, src))
		return 0;
	return s->slabs.cls[bkind][bcls].slab_bytes;
}

struct tm_spill_rec {
	uint32_t owner;
	uint64_t handle;
};

struct tm_spill_batch {
	struct tm_spill_io io[TM_SPILL_BATCH];
	struct tm_spill_rec rec[TM_SPILL_BATCH];
	int n;
	uint32_t off;		/* bytes of the batch buffer used */
	bool full;		/* buffer or batch full: write it */
	bool nospace;		/* the spill file is full */
};

/*
 * Gather the pages of @sb from slot *@slot on into @b, until the slab
 * is done or the batch is full.  Caller holds the write lock.
 */
static void tm_spill_gather(struct tmem_store *s, struct tm_slab *sb,
			    uint32_t *slot, struct tm_spill_batch *b)
{
	struct tm_spill *sp = &s->spill;
	uint32_t nslots = tm_slab_nslots(s, sb);

	for (; *slot < nslots; (*slot)++) {
		uint32_t o = atomic_load(&sb->owner[*slot]);
		uint64_t h = tm_handle(sb->id, *slot);
		struct tm_shard *sh;
		struct tm_entry *e;
		uint32_t size, len;
		uint64_t unit;

		if (b->n == TM_SPILL_BATCH) {
			b->full = true;
			return;
		}
		if (!tm_owner_live(o))
			continue;
		e = tm_owner_lock(s, o, h, &sh);
		if (!e)
			continue;
		size = e->info & TM_E_SIZE;
		len = tm_spill_units(sp, size) << sp->unit_shift;
		if (b->off + len > sp->buf_bytes) {
			pthread_mutex_unlock(&sh->lock);
			b->full = true;
			return;
		}
		if (tm_spill_alloc(sp, tm_spill_units(sp, size), &unit)) {
			pthread_mutex_unlock(&sh->lock);
			b->nospace = true;
			return;
		}
		memcpy(sp->buf + b->off, tm_slot_ptr(s, h), size);
		pthread_mutex_unlock(&sh->lock);
		b->io[b->n] = (struct tm_spill_io){ .unit = unit, .bytes = size,
						    .buf_off = b->off };
		b->rec[b->n] = (struct tm_spill_rec){ .owner = o, .handle = h };
		b->off += len;
		b->n++;
	}
}

/*
 * Switch the written pages over to their spilled copies.  A page that
 * was flushed or overwritten meanwhile just gives its extent back, and
 * so does a page whose write failed: that one stays in RAM.
 */
static uint64_t tm_spill_commit(struct tmem_store *s, struct tm_spill_io *io,
				struct tm_spill_rec *rec, int n)
{
	uint64_t done = 0;

	for (int i = 0; i < n; i++) {
		struct tm_shard *sh;
		struct tm_entry *e = tm_owner_lock(s, rec[i].owner,
						   rec[i].handle, &sh);

		if (e && !io[i].res) {
			uint32_t info = (e->info & ~TM_E_RAM) | TM_E_SPILL;

			tm_ent_set(sh, e, info, io[i].unit);
			tm_slot_free(s, rec[i].handle);
			tm_stat_add(sh, TMEM_STAT_SPILLS, 1);
			done++;
		} else {
			tm_spill_release(&s->spill, &io[i]);
			if (!e)
				continue;
			if (io[i].res != -EAGAIN)	/* declined: no error */
				tm_stat_add(sh, TMEM_STAT_SPILL_WRITE_ERRORS, 1);
			if (io[i].res == -ENOSPC)
				tm_stat_add(sh, TMEM_STAT_SPILL_ENOSPC, 1);
		}
		pthread_mutex_unlock(&sh->lock);
	}
	return done;
}

#define TM_SPILL_SLABS	64	/* slabs one batch may draw from */

/*
 * Spill one batch: pages from the coldest persistent slabs, as many
 * slabs as fill TM_SPILL_BATCH pages or the batch buffer, written with
 * one submission.  Small slabs would otherwise make small writes.
 * Returns the pages spilled.
 */
static uint64_t tm_reclaim_spill(struct tmem_store *s)
{
	struct tm_slab *picked[TM_SPILL_SLABS];
	struct tm_spill_batch b;
	struct tm_spill *sp = &s->spill;
	int npicked = 0;
	uint32_t slot = 0;
	uint64_t done = 0;

	if (!tm_spill_usable(sp))
		return 0;
	b.n = 0;
	b.off = 0;
	b.full = b.nospace = false;
	pthread_mutex_lock(&sp->write_lock);
	/* Space flushed pages left, back in the map before we look. */
	tm_spill_discard_gone(sp);
	while (!b.full && !b.nospace && npicked < TM_SPILL_SLABS) {
		struct tm_slab *sb = tm_slab_pick(s, 0);

		if (!sb)
			break;
		picked[npicked++] = sb;
		slot = 0;
		tm_spill_gather(s, sb, &slot, &b);
	}
	if (b.n) {
		tm_spill_write(s, b.io, b.n);
		done = tm_spill_commit(s, b.io, b.rec, b.n);
	}
	/*
	 * Until the unpicks below, the slabs this batch emptied are still
	 * charged, and only this thread can free them: a put waiting for
	 * room sees the batch in sp->batches (tm_put_spill_wait).
	 */
	if (npicked)
		atomic_fetch_add(&sp->batches, 1);
	pthread_mutex_unlock(&sp->write_lock);
	if (b.n)
		tm_fault_park(TM_FAULT_SPILL_STALL);
	if (!npicked)
		return done;
	while (npicked)
		tm_slab_unpick(s, picked[--npicked]);
	atomic_fetch_sub(&sp->batches, 1);
	return done;
}

/*
 * tm_make_room - free something for a put that ran out of budget.
 * Ephemeral pages go first; a persistent put may then spill, at most
 * *@spills_left batches per put so that no put waits on much I/O.
 * Returns false when nothing more can be freed for it.
 */
bool tm_make_room(struct tmem_store *s, int kind, int *spills_left)
{
	atomic_fetch_add(&s->reclaim_runs, 1);
	if (tm_slab_cache_drop(s) || tm_compact(s) || tm_reclaim_drop(s) ||
	    tm_reclaim_drop_same(s))
		return true;
	if (kind != 0 || *spills_left <= 0)
		return false;
	(*spills_left)--;
	return tm_reclaim_spill(s) > 0;
}

/*
 * tm_make_entry_room - free RAM for the index entry of a persistent page
 * that goes straight to the spill file, by any step reclaim can take,
 * spilling included.  Returns false when nothing more can be freed.
 */
bool tm_make_entry_room(struct tmem_store *s)
{
	atomic_fetch_add(&s->reclaim_runs, 1);
	return tm_slab_cache_drop(s) || tm_compact(s) || tm_reclaim_drop(s) ||
	       tm_reclaim_drop_same(s) || tm_reclaim_spill(s);
}

static bool tm_over_budget(struct tmem_store *s)
{
	return tm_ram_used(s) > atomic_load(&s->budget);
}

/* One step toward the budget; false when nothing more can be done. */
static bool tm_reclaim_step(struct tmem_store *s)
{
	atomic_fetch_add(&s->reclaim_runs, 1);
	return tm_slab_cache_drop(s) || tm_compact(s) || tm_reclaim_drop(s) ||
	       tm_reclaim_drop_same(s) || tm_reclaim_spill(s);
}

/* Compressed bytes of the pages held in slabs. */
static uint64_t tm_bytes_compressed(struct tmem_store *s)
{
	uint64_t n = 0;

	for (int i = 0; i < TM_NSHARD; i++)
		n += atomic_load_explicit(
			&s->shard[i].stat[TMEM_STAT_BYTES_COMPRESSED],
			memory_order_relaxed);
	return n;
}

/*
 * Whether the slabs hold too much beyond the data in them: more than
 * 1.25 times the compressed bytes, plus a few slabs that a small store
 * cannot avoid (every class in use keeps one partly filled).
 */
static bool tm_fragmented(struct tmem_store *s)
{
	uint64_t data = atomic_load(&s->ram_data);

	return data * 4 > tm_bytes_compressed(s) * 5 + TM_COMPACT_SLACK;
}

/*
 * Housekeeping while under the budget: compact fragmented slabs and
 * shrink mostly free page tables, a bounded step at a time, leaving off
 * as soon as the budget needs the thread or the store is stopping.
 */
static void tm_tidy(struct tmem_store *s)
{
	/*
	 * Once started, compaction goes on while any class has a slab to
	 * spare: stopping at the threshold would leave the store just under
	 * it, to be compacted again by the next few flushes.
	 */
	if (tm_fragmented(s)) {
		/* Memory kept for reuse is no use to a store this sparse. */
		tm_slab_cache_drop(s);
		while (!s->rc_stop && !tm_over_budget(s) && tm_compact(s))
			;
	}
	uint64_t index = atomic_load(&s->ram_index);

	for (int i = 0; i < TM_NSHARD && !s->rc_stop; i++) {
		struct tm_shard *sh = &s->shard[i];
		bool more = true;

		while (more && !s->rc_stop && !tm_over_budget(s)) {
			pthread_mutex_lock(&sh->lock);
			more = tm_shard_tidy(s, sh);
			pthread_mutex_unlock(&sh->lock);
		}
	}
#ifdef __GLIBC__
	/*
	 * malloc keeps what the shrink freed (chunks amid the heap) resident
	 * for reuse, out of ram_index; hand whole pages of it back.
	 */
	if (index > atomic_load(&s->ram_index) + TM_TRIM_MIN)
		malloc_trim(0);
#endif
}

static void *tm_reclaimer(void *arg)
{
	struct tmem_store *s = arg;

	pthread_mutex_lock(&s->rc_lock);
	while (!s->rc_stop) {
		struct timespec ts;

		s->rc_kick = false;
		pthread_mutex_unlock(&s->rc_lock);
		while (!s->rc_stop && tm_over_budget(s) && tm_reclaim_step(s))
			;
		tm_tidy(s);
		if (s->spill.gone) {
			/* Discards of flushed pages wait for no spill. */
			pthread_mutex_lock(&s->spill.write_lock);
			tm_spill_discard_gone(&s->spill);
			pthread_mutex_unlock(&s->spill.write_lock);
		}
		pthread_mutex_lock(&s->rc_lock);
		if (s->rc_stop || s->rc_kick)
			continue;
		/*
		 * Wake up now and then even unkicked: a spill that backed
		 * off after an error is retried this way.
		 */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s->rc_cond, &s->rc_lock, &ts);
	}
	pthread_mutex_unlock(&s->rc_lock);
	return NULL;
}

int tm_reclaim_start(struct tmem_store *s)
{
	int rc;

	pthread_mutex_init(&s->rc_lock, NULL);
	pthread_cond_init(&s->rc_cond, NULL);
	rc = pthread_create(&s->reclaimer, NULL, tm_reclaimer, s);
	if (rc)
		return -rc;
	s->rc_started = true;
	return 0;
}

void tm_reclaim_kick(struct tmem_store *s)
{
	pthread_mutex_lock(&s->rc_lock);
	s->rc_kick = true;
	pthread_cond_signal(&s->rc_cond);
	pthread_mutex_unlock(&s->rc_lock);
}

void tm_reclaim_stop(struct tmem_store *s)
{
	if (!s->rc_started)
		return;
	pthread_mutex_lock(&s->rc_lock);
	s->rc_stop = true;
	pthread_cond_signal(&s->rc_cond);
	pthread_mutex_unlock(&s->rc_lock);
	pthread_join(s->reclaimer, NULL);
	pthread_cond_destroy(&s->rc_cond);
	pthread_mutex_destroy(&s->rc_lock);
	s->rc_started = false;
}
