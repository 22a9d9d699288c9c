// SPDX-License-Identifier: MIT
/*
 * ops.c - put, get and flush.
 *
 * A put compresses with no lock held, takes a slab slot (class lock),
 * copies the data in, and only then takes the shard lock to point the
 * index at it, so the shard lock covers a few table updates and never
 * compression or allocation of a slab.  A get holds the shard lock while
 * it decompresses, which is what keeps a concurrent flush or reclaim from
 * freeing the data under it; but it drops the lock for the disk read of
 * a spilled page, and then checks that nothing let that extent go.  A
 * batch get does the same for many pages, their reads overlapped.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include <lz4.h>

#include "fault.h"
#include "tmem_int.h"

/* @pool of @s, whose pages must be @len bytes long. */
static int tm_pool_args(struct tmem_store *s, int pool, size_t len,
			struct tm_pool **pp)
{
	struct tm_pool *p = tm_pool_get(s, pool);

	if (!p)
		return -EBADF;
	if (len != p->page_size)
		return -EINVAL;
	*pp = p;
	return 0;
}

/* Check the arguments every keyed call shares. */
static int tm_args(struct tmem_store *s, int pool, const struct tmem_key *key,
		   const void *buf, size_t len, struct tm_pool **pp)
{
	if (!s || !key || !buf)
		return -EINVAL;
	return tm_pool_args(s, pool, len, pp);
}

static struct tm_shard *tm_shard(struct tmem_store *s, int pool,
				 const struct tmem_key *key)
{
	return &s->shard[tm_shard_of(s, pool, key)];
}

/* The entry for @key, or 0.  Caller holds the shard lock. */
static uint32_t tm_lookup(struct tm_shard *sh, int pool,
			  const struct tmem_key *key)
{
	uint32_t obj = tm_obj_find(sh, (uint32_t)pool, key->oid);

	return obj ? tm_ent_find(sh, obj, key->index) : 0;
}

/*
 * Point @key at data described by @info/@loc, replacing (and freeing)
 * what was there.  Returns 0, TM_NEED_ROOM, -ENOMEM or -EBADF (the pool
 * went away); on error the new data is still the caller's.
 */
static int tm_put_index(struct tmem_store *s, struct tm_pool *p, int pool,
			const struct tmem_key *key, uint32_t info,
			uint64_t loc, enum tm_charge mode)
{
	uint32_t si = tm_shard_of(s, pool, key);
	struct tm_shard *sh = &s->shard[si];
	uint32_t eid;
	int rc = 0;

	pthread_mutex_lock(&sh->lock);
	if (!tm_pool_alive(p, pool)) {
		rc = -EBADF;
		goto out;
	}
	eid = tm_lookup(sh, pool, key);
	if (eid) {
		struct tm_entry *e = tm_ent_ptr(sh, eid);
		uint32_t old_info = e->info;
		uint64_t old_loc = e->loc;

		tm_ent_set(sh, e, info, loc);
		tm_free_data(s, old_info, old_loc);
		tm_stat_add(sh, TMEM_STAT_PUT_OVERWRITES, 1);
	} else {
		rc = tm_ent_insert(s, sh, (uint32_t)pool, key, mode, &eid);
		if (rc)
			goto out;
		tm_ent_set(sh, tm_ent_ptr(sh, eid), info, loc);
	}
	if (info & TM_E_RAM)
		tm_slot_set_owner(s, loc, si << TM_SHARD_SHIFT | eid);
out:
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* Keep the packed page in RAM, within the budget. */
static int tm_put_ram(struct tmem_store *s, struct tm_pool *p, int pool,
		      const struct tmem_key *key, const struct tm_packed *pk,
		      uint32_t info, int kind, enum tm_charge mode)
{
	uint64_t loc = pk->word;
	uint8_t *dst;
	int rc;

	if (!(info & TM_E_SAME)) {
		rc = tm_slot_alloc(s, kind, pk->size, mode, &loc, &dst);
		if (rc)
			return rc;
		memcpy(dst, pk->data, pk->size);
		info |= TM_E_RAM;
	}
	rc = tm_put_index(s, p, pool, key, info, loc, mode);
	if (rc && (info & TM_E_RAM))
		tm_slot_free(s, loc);
	return rc;
}

/*
 * A persistent page with no room in RAM for its data goes straight to
 * the spill file.  Its index entry still needs RAM, and is charged to
 * the budget like any other: otherwise pages that cost no data RAM
 * (same-filled ones, or this) would let a guest grow the index, and the
 * host's RAM, without limit.  Returns 0, TM_NEED_ROOM (no room in the
 * budget for the entry), -ENOSPC (spill full or failing), -ENOMEM or
 * -EBADF.
 */
static int tm_put_spill(struct tmem_store *s, struct tm_pool *p, int pool,
			const struct tmem_key *key, const struct tm_packed *pk,
			uint32_t info)
{
	struct tm_shard *sh = tm_shard(s, pool, key);
	struct tm_spill *sp = &s->spill;
	struct tm_spill_io io = { .bytes = pk->size };
	int rc;

	if (info & TM_E_SAME)
		return tm_put_index(s, p, pool, key, info, pk->word,
				    TM_CHARGE_STRICT);

	/* Write nothing for a page whose entry would be refused anyway. */
	pthread_mutex_lock(&sh->lock);
	rc = tm_ent_fits(s, sh, (uint32_t)pool, key) ? 0 : TM_NEED_ROOM;
	pthread_mutex_unlock(&sh->lock);
	if (rc)
		return rc;

	pthread_mutex_lock(&sp->write_lock);
	tm_spill_discard_gone(sp);
	rc = tm_spill_alloc(sp, tm_spill_units(sp, pk->size), &io.unit);
	if (!rc) {
		memcpy(sp->buf, pk->data, pk->size);
		rc = tm_spill_write(s, &io, 1);
	}
	pthread_mutex_unlock(&sp->write_lock);
	if (rc) {
		if (rc != -ENOSPC || io.res) {
			if (io.res != -EAGAIN)	/* declined: no error */
				tm_stat_add(sh, TMEM_STAT_SPILL_WRITE_ERRORS,
					    1);
			if (io.res == -ENOSPC)
				tm_stat_add(sh, TMEM_STAT_SPILL_ENOSPC, 1);
			tm_spill_release(sp, &io);
		}
		return -ENOSPC;
	}
	rc = tm_put_index(s, p, pool, key, info | TM_E_SPILL, io.unit,
			  TM_CHARGE_STRICT);
	if (rc) {
		tm_spill_free(sp, io.unit, io.bytes);
		return rc;
	}
	tm_stat_add(sh, TMEM_STAT_SPILLS, 1);
	tm_stat_add(sh, TMEM_STAT_SPILL_DIRECT, 1);
	return 0;
}

/* A put was refused: make sure no older copy outlives it. */
static void tm_put_reject(struct tmem_store *s, int pool,
			  const struct tmem_key *key, int rc)
{
	struct tm_shard *sh = tm_shard(s, pool, key);
	uint32_t eid;
	int stat;

	switch (rc) {
	case -ENOSPC:
		stat = TMEM_STAT_PUT_REJ_NOSPACE;
		break;
	case -ENOMEM:
		stat = TMEM_STAT_PUT_REJ_NOMEM;
		break;
	case -E2BIG:
		stat = TMEM_STAT_PUT_REJ_RAW;
		break;
	default:
		stat = TMEM_STAT_PUT_REJ_INVALID;
		break;
	}
	pthread_mutex_lock(&sh->lock);
	tm_stat_add(sh, stat, 1);
	eid = tm_lookup(sh, pool, key);
	if (eid)
		tm_ent_remove(s, sh, eid);
	pthread_mutex_unlock(&sh->lock);
}

/* Inline reclaim rounds a put may spend before it settles for spill. */
#define TM_PUT_TRIES	64
/* Spill batches a put may write for room before writing itself out. */
#define TM_PUT_SPILLS	2
/*
 * How long a persistent page bound for the spill file waits for room: in
 * all, or with TMEM_PUT_WAIT, since the store was last seen making room.
 */
#define TM_PUT_WAIT_NS	(20 * 1000 * 1000)

/*
 * Whether the store gave RAM back since *@seen was taken, or has a spill
 * batch out that will (its slabs written, not yet freed); updates *@seen.
 */
static bool tm_room_coming(struct tmem_store *s, uint64_t *seen)
{
	uint64_t frees = atomic_load(&s->ram_frees);
	bool coming = frees != *seen || atomic_load(&s->spill.batches);

	*seen = frees;
	return coming;
}

/* How long a put waiting for room sleeps when no spill write is on. */
#define TM_PUT_NAP_NS	(200 * 1000)

/*
 * Wait out a spill write in progress, which is what frees RAM; with none,
 * sleep a little rather than spin.  The RAM may be another thread's to
 * free once it runs again, and on a loaded host a waiter that kept its
 * CPU would keep it from that thread.
 */
static void tm_put_nap(struct tmem_store *s)
{
	struct timespec nap = { .tv_nsec = TM_PUT_NAP_NS };

	if (pthread_mutex_trylock(&s->spill.write_lock)) {
		pthread_mutex_lock(&s->spill.write_lock);
		pthread_mutex_unlock(&s->spill.write_lock);
		return;
	}
	pthread_mutex_unlock(&s->spill.write_lock);
	nanosleep(&nap, NULL);
}

/*
 * A persistent page that found no RAM goes to the spill file, and needs
 * RAM only for its index entry.  Other putters may take what reclaim
 * frees before this one gets to it, or hold the data RAM there is in
 * slabs they are still spilling, and after a budget cut the entry fits
 * only once the store is under the new budget.  While some data RAM
 * exists to be freed, keep freeing and trying, for up to TM_PUT_WAIT_NS;
 * with @wait, that limit counts from the last time the store was seen
 * making room (RAM given back, or a spill batch out that will give it),
 * so a put waits out a cut however slow the disk and however long the
 * spiller is off the CPU, as a block device must: only a full spill
 * file (or one that fails), a budget all index, or a store that stopped
 * freeing refuses it.  Counted in TMEM_STAT_PUT_WAITS and friends.
 */
static int tm_put_spill_wait(struct tmem_store *s, struct tm_pool *p,
			     int pool, const struct tmem_key *key,
			     const struct tm_packed *pk, uint32_t info,
			     bool wait)
{
	struct tm_shard *sh = tm_shard(s, pool, key);
	uint64_t start = 0, since = 0, now;
	uint64_t seen = atomic_load(&s->ram_frees);
	int rc;

	for (;;) {
		rc = tm_put_spill(s, p, pool, key, pk, info);
		if (rc != TM_NEED_ROOM)
			break;
		now = tm_now_ns();
		if (!start) {
			start = since = now;
			tm_stat_add(sh, TMEM_STAT_PUT_WAITS, 1);
		} else if (now - since > TM_PUT_WAIT_NS) {
			tm_stat_add(sh, TMEM_STAT_PUT_WAIT_TIMEOUTS, 1);
			break;
		}
		if (tm_make_entry_room(s)) {
			if (wait)
				since = tm_now_ns();
			continue;
		}
		tm_fault_park(TM_FAULT_PUT_WAIT_STALL);
		/*
		 * Nothing this thread can free.  RAM freed since the put
		 * above looked, or a batch about to free it, is worth
		 * another try; otherwise a store with no data RAM has a
		 * budget all index.
		 */
		if (tm_room_coming(s, &seen)) {
			if (wait)
				since = tm_now_ns();
		} else if (!atomic_load(&s->ram_data)) {
			break;
		}
		tm_put_nap(s);
	}
	if (start)
		tm_stat_add(sh, TMEM_STAT_PUT_WAIT_NS,
			    (int64_t)(tm_now_ns() - start));
	return rc;
}

/*
 * Store packed page @pk (@len bytes unpacked) under @key, making room as
 * needed.  @flags are tmem_put_flags'; tm_args and the flags were checked.
 */
static int tm_put_packed(struct tmem_store *s, struct tm_pool *p, int pool,
			 const struct tmem_key *key, const struct tm_packed *pk,
			 size_t len, unsigned int flags)
{
	int kind = p->kind == TMEM_EPHEMERAL;
	int spills = TM_PUT_SPILLS;
	uint32_t info;
	int rc = 0;

	if ((pk->flags & TM_E_RAW) && s->raw_policy == TMEM_RAW_REJECT &&
	    !(flags & TMEM_PUT_RESERVED))
		return -E2BIG;

	info = pk->flags | pk->size | (kind ? TM_E_EPHEMERAL : 0) |
	       (len == TM_PAGE_MAX ? TM_E_BIG : 0);
	for (int i = 0; i < TM_PUT_TRIES; i++) {
		rc = tm_put_ram(s, p, pool, key, pk, info, kind,
				TM_CHARGE_STRICT);
		if (rc != TM_NEED_ROOM || !tm_make_room(s, kind, &spills))
			break;
	}
	/*
	 * A persistent page that found no RAM goes to the spill file, and
	 * needs RAM only for its index entry.  Other putters may take what
	 * reclaim frees before this one gets to it, or hold all the data RAM
	 * there is in slots they are still filling or spilling: it waits
	 * for room (tm_put_spill_wait).
	 */
	if (rc == TM_NEED_ROOM && !kind && tm_spill_usable(&s->spill))
		rc = tm_put_spill_wait(s, p, pool, key, pk, info,
				       flags & TMEM_PUT_WAIT);
	if (rc == TM_NEED_ROOM)
		rc = -ENOSPC;
	/* A promise kept: over budget rather than refused. */
	if (rc == -ENOSPC && flags & TMEM_PUT_RESERVED) {
		rc = tm_put_ram(s, p, pool, key, pk, info, kind,
				TM_CHARGE_FORCE);
		if (!rc)
			tm_stat_add(tm_shard(s, pool, key),
				    TMEM_STAT_PUT_OVER_BUDGET, 1);
		tm_reclaim_kick(s);
	}
	if (rc == TM_NEED_ROOM)		/* never seen outside the library */
		rc = flags & TMEM_PUT_RESERVED ? -ENOMEM : -ENOSPC;
	return rc;
}

/*
 * The checks every put makes before it looks at the page.  On error a
 * put with a key to name still flushes it.
 */
static int tm_put_args(struct tmem_store *s, int pool,
		       const struct tmem_key *key, const void *page,
		       size_t len, unsigned int flags, struct tm_pool **pp)
{
	int rc = tm_args(s, pool, key, page, len, pp);

	if (!rc && (flags & ~(TMEM_PUT_RESERVED | TMEM_PUT_WAIT) ||
		    ((*pp)->kind == TMEM_EPHEMERAL &&
		     flags & TMEM_PUT_RESERVED)))
		rc = -EINVAL;
	if (rc) {
		if (s && key && tm_pool_get(s, pool))
			tm_put_reject(s, pool, key, rc);
		else if (s)
			tm_stat_add(&s->shard[0], TMEM_STAT_PUT_REJ_INVALID, 1);
	}
	return rc;
}

/* The put is over: count it, or make sure no older copy outlives it. */
static int tm_put_done(struct tmem_store *s, int pool,
		       const struct tmem_key *key, int rc)
{
	if (rc)
		tm_put_reject(s, pool, key, rc);
	else
		tm_stat_add(tm_shard(s, pool, key), TMEM_STAT_PUTS, 1);
	return rc;
}

TM_EXPORT int tmem_put_flags(struct tmem_store *s, int pool,
			     const struct tmem_key *key, const void *page,
			     size_t len, unsigned int flags)
{
	struct tm_packed pk;
	struct tm_pool *p;
	int rc;

	rc = tm_put_args(s, pool, key, page, len, flags, &p);
	if (rc)
		return rc;
	rc = tm_pack(page, (uint32_t)len, &pk);
	if (!rc)
		rc = tm_put_packed(s, p, pool, key, &pk, len, flags);
	return tm_put_done(s, pool, key, rc);
}

/*
 * Check that @st and @data are a page of @len bytes in that form, and
 * describe it in @pk.  LZ4 data is decompressed into scratch to prove it
 * yields exactly one page; nothing else is read past @st->len.
 */
static int tm_stored_check(const struct tmem_stored *st, const void *data,
			   uint32_t len, struct tm_packed *pk)
{
	size_t scratch_len;
	void *scratch;

	memset(pk, 0, sizeof(*pk));
	switch (st->form) {
	case TMEM_FORM_SAME:
		if (st->len)
			return -EBADMSG;
		pk->flags = TM_E_SAME;
		pk->word = st->word;
		return 0;
	case TMEM_FORM_RAW:
		if (st->len != len || !data)
			return -EBADMSG;
		pk->flags = TM_E_RAW;
		break;
	case TMEM_FORM_LZ4:
		if (!st->len || st->len >= len || !data)
			return -EBADMSG;
		scratch = tm_scratch(&scratch_len);
		if (!scratch || scratch_len < len)
			return -ENOMEM;
		if (LZ4_decompress_safe(data, scratch, (int)st->len,
					(int)len) != (int)len)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	pk->data = data;
	pk->size = st->len;
	return 0;
}

TM_EXPORT int tmem_put_stored(struct tmem_store *s, int pool,
			      const struct tmem_key *key,
			      const struct tmem_stored *st, const void *data,
			      unsigned int flags)
{
	struct tm_pool *p = s && st ? tm_pool_get(s, pool) : NULL;
	struct tm_packed pk;
	size_t len = p ? p->page_size : 0;
	int rc;

	/* The page size is the pool's: only the form can be wrong. */
	rc = tm_put_args(s, pool, key, st ? (const void *)st : NULL,
			 len, flags, &p);
	if (rc)
		return rc;
	rc = tm_stored_check(st, data, (uint32_t)len, &pk);
	if (!rc)
		rc = tm_put_packed(s, p, pool, key, &pk, len, flags);
	return tm_put_done(s, pool, key, rc);
}

TM_EXPORT int tmem_put(struct tmem_store *s, int pool,
		       const struct tmem_key *key, const void *page, size_t len)
{
	return tmem_put_flags(s, pool, key, page, len, 0);
}

/*
 * Hand out the page described by @info, @word and the data at @data:
 * rebuilt into @buf, or with @st, as it is stored (its data copied to
 * @buf, which holds @len bytes).
 */
static int tm_emit(const uint8_t *data, uint32_t info, uint64_t word,
		   void *buf, uint32_t len, struct tmem_stored *st)
{
	if (!st)
		return tm_unpack(data, info, word, buf, len);
	*st = (struct tmem_stored){ .len = info & TM_E_SIZE };
	if (info & TM_E_SAME) {
		st->form = TMEM_FORM_SAME;
		st->len = 0;
		st->word = word;
		return 0;
	}
	st->form = info & TM_E_RAW ? TMEM_FORM_RAW : TMEM_FORM_LZ4;
	if (st->len > len)
		return -EIO;
	memcpy(buf, data, st->len);
	return 0;
}

/* Hand out in-RAM entry @e, as tm_emit.  Caller holds the lock. */
static int tm_read_ram(struct tmem_store *s, struct tm_entry *e, void *buf,
		       uint32_t len, struct tmem_stored *st)
{
	struct tm_slab *sb;

	if (e->info & TM_E_SAME)
		return tm_emit(NULL, e->info, e->loc, buf, len, st);
	sb = tm_slab_of(s, e->loc);
	/* Read first: a store on every hit bounces the line. */
	if (!atomic_load_explicit(&sb->referenced, memory_order_relaxed))
		atomic_store_explicit(&sb->referenced, 1, memory_order_relaxed);
	return tm_emit(tm_slot_ptr(s, e->loc), e->info, 0, buf, len, st);
}

/* Unlocked spill reads that a racing change may void, before giving up. */
#define TM_SPILL_READ_TRIES	4

/*
 * Read spilled entry *@eidp of @key into @buf (as tm_emit).  Called and returns with
 * the shard lock held, but drops it for the disk read, so that a slow
 * disk stalls only this get, not every key of the shard.  The read is
 * trusted only if no spilled extent of the shard was let go meanwhile
 * (spill_seq), since only that could free or reuse ours.  Returns 0,
 * -ENOENT (the page went while we read), -EBADF (so did the pool), -EIO,
 * or 1: the page is no longer spilled, read it from RAM (*@eidp is
 * current in either of those two cases).
 */
static int tm_read_spilled(struct tmem_store *s, struct tm_shard *sh,
			   struct tm_pool *p, int pool,
			   const struct tmem_key *key, uint32_t *eidp,
			   void *buf, uint32_t len, struct tmem_stored *st)
{
	uint8_t *data = tm_scratch(NULL);
	int rc = -EIO;

	if (!data)
		return -EIO;
	for (int tries = 0; tries < TM_SPILL_READ_TRIES; tries++) {
		struct tm_entry *e = tm_ent_ptr(sh, *eidp);
		uint32_t info = e->info;
		uint64_t loc = e->loc, seq = sh->spill_seq;

		if (!(info & TM_E_SPILL))
			return 1;
		pthread_mutex_unlock(&sh->lock);
		rc = tm_spill_read(&s->spill, loc, info & TM_E_SIZE, data);
		pthread_mutex_lock(&sh->lock);
		if (sh->spill_seq == seq) {
			if (!rc)
				rc = tm_emit(data, info, 0, buf, len, st);
			tm_stat_add(sh, rc ? TMEM_STAT_SPILL_READ_ERRORS :
				    TMEM_STAT_SPILL_READS, 1);
			return rc;
		}
		/* Something spilled went meanwhile: look again. */
		if (!tm_pool_alive(p, pool))
			return -EBADF;
		*eidp = tm_lookup(sh, pool, key);
		if (!*eidp)
			return -ENOENT;
	}
	/* Still racing: read under the lock, as a last resort. */
	{
		struct tm_entry *e = tm_ent_ptr(sh, *eidp);

		if (!(e->info & TM_E_SPILL))
			return 1;
		rc = tm_spill_read(&s->spill, e->loc, e->info & TM_E_SIZE,
				   data);
		if (!rc)
			rc = tm_emit(data, e->info, 0, buf, len, st);
		tm_stat_add(sh, rc ? TMEM_STAT_SPILL_READ_ERRORS :
			    TMEM_STAT_SPILL_READS, 1);
	}
	return rc;
}

/* A get; with @st, of the page as stored (tm_emit). */
static int tm_get(struct tmem_store *s, int pool, const struct tmem_key *key,
		  void *buf, size_t len, bool exclusive,
		  struct tmem_stored *st)
{
	struct tm_shard *sh;
	struct tm_pool *p;
	struct tm_entry *e;
	bool spilled = false;
	uint32_t eid;
	int rc;

	rc = tm_args(s, pool, key, buf, len, &p);
	if (rc)
		return rc;
	sh = tm_shard(s, pool, key);
	pthread_mutex_lock(&sh->lock);
	if (!tm_pool_alive(p, pool)) {
		rc = -EBADF;
		goto out;
	}
	eid = tm_lookup(sh, pool, key);
	if (!eid) {
		tm_stat_add(sh, TMEM_STAT_GET_MISSES, 1);
		rc = -ENOENT;
		goto out;
	}
	if (tm_ent_ptr(sh, eid)->info & TM_E_SPILL) {
		rc = tm_read_spilled(s, sh, p, pool, key, &eid, buf,
				     (uint32_t)len, st);
		spilled = rc != 1;
		if (rc == -ENOENT || rc == -EBADF) {
			if (rc == -ENOENT)
				tm_stat_add(sh, TMEM_STAT_GET_MISSES, 1);
			goto out;
		}
	}
	e = tm_ent_ptr(sh, eid);
	if (!spilled)
		rc = tm_read_ram(s, e, buf, (uint32_t)len, st);
	if (rc) {
		tm_stat_add(sh, TMEM_STAT_GET_ERRORS, 1);
		rc = -EIO;
		goto out;
	}
	tm_stat_add(sh, spilled ? TMEM_STAT_GET_HITS_SPILL :
		    TMEM_STAT_GET_HITS_RAM, 1);
	if (exclusive)
		tm_ent_remove(s, sh, eid);
out:
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

TM_EXPORT int tmem_get(struct tmem_store *s, int pool,
		       const struct tmem_key *key, void *buf, size_t len)
{
	return tm_get(s, pool, key, buf, len, false, NULL);
}

TM_EXPORT int tmem_get_exclusive(struct tmem_store *s, int pool,
				 const struct tmem_key *key, void *buf,
				 size_t len)
{
	return tm_get(s, pool, key, buf, len, true, NULL);
}

/*
 * Batch gets.  A batch is looked up key by key; the reads of its spilled
 * pages are queued on the thread's read ring (tm_rbatch_*) and submitted
 * together, the pages in RAM are then copied out while the disk works,
 * and each spilled page is decompressed as its read completes.  A read
 * is trusted, as in tm_read_spilled, only if the shard's spill_seq has
 * not moved since the lookup: then no spilled extent of the shard, ours
 * included, was let go while it was read.  Any page the fast path cannot
 * vouch for is fetched again by the plain get.
 */

/* What @res holds for a page while the batch works on it. */
#define TM_BG_LATER	1	/* not spilled (or not read): plain get */
#define TM_BG_READING	2	/* its read is in the batch */

/* A spilled page of the batch whose read is queued. */
struct tm_bget {
	uint32_t i;		/* its place in the caller's arrays */
	uint32_t shard;
	uint32_t eid;
	uint32_t info;
	uint64_t seq;		/* the shard's spill_seq at the lookup */
};

/*
 * The read of @bg[@k] finished with @rd (0 and the extent at @data, -EIO,
 * or TM_RD_ALONE).  Returns what the get of that page returns.
 */
static int tm_get_batch_done(struct tmem_store *s, struct tm_pool *p,
			     int pool, const struct tmem_key *key,
			     struct tm_bget *bg, int k,
			     const struct tm_rbatch *b, const uint8_t *data,
			     void *buf, uint32_t len, bool excl,
			     struct tmem_stored *st)
{
	struct tm_shard *sh = &s->shard[bg[k].shard];
	uint64_t seq = bg[k].seq;
	int rd = b->io[k].res, rc;

	if (rd == TM_RD_ALONE)
		return tm_get(s, pool, key, buf, len, excl, st);
	pthread_mutex_lock(&sh->lock);
	if (sh->spill_seq != seq || !tm_pool_alive(p, pool)) {
		/* Something spilled went meanwhile: get it again, alone. */
		pthread_mutex_unlock(&sh->lock);
		return tm_get(s, pool, key, buf, len, excl, st);
	}
	rc = rd ? -EIO : tm_emit(data, bg[k].info, 0, buf, len, st);
	tm_stat_add(sh, rc ? TMEM_STAT_SPILL_READ_ERRORS :
		    TMEM_STAT_SPILL_READS, 1);
	if (rc) {
		tm_stat_add(sh, TMEM_STAT_GET_ERRORS, 1);
		rc = -EIO;
	} else {
		tm_stat_add(sh, TMEM_STAT_GET_HITS_SPILL, 1);
		if (excl) {
			tm_ent_remove(s, sh, bg[k].eid);
			/*
			 * That let our own extent go, and only it, and
			 * bumped spill_seq: the batch's other reads of the
			 * shard that were still valid stay so (but not a
			 * second read of this very entry).
			 */
			for (int j = 0; j < b->n; j++)
				if (!b->io[j].seen &&
				    bg[j].shard == bg[k].shard &&
				    bg[j].eid != bg[k].eid && bg[j].seq == seq)
					bg[j].seq = sh->spill_seq;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* tmem_get_batch; with @sts, of the pages as stored (tm_emit). */
static int tm_get_batch(struct tmem_store *s, int pool,
			const struct tmem_key *keys, void *const *bufs,
			struct tmem_stored *sts, int *res, unsigned int n,
			size_t len, unsigned int flags)
{
	bool excl = flags & TMEM_GET_EXCLUSIVE;
	struct tm_bget bg[TM_READ_DEPTH];
	struct tm_rbatch b;
	struct tm_pool *p;
	unsigned int i = 0;
	int hits = 0, rc;

	if (!s || (n && (!keys || !bufs || !res)) || n > INT_MAX ||
	    flags & ~TMEM_GET_EXCLUSIVE)
		return -EINVAL;
	rc = tm_pool_args(s, pool, len, &p);
	if (rc)
		return rc;
	while (i < n) {
		unsigned int first = i;
		const uint8_t *data;
		int k = 0;

		tm_rbatch_init(&b);
		/* Look the keys up; queue the reads of spilled pages. */
		for (; i < n; i++) {
			uint32_t si = tm_shard_of(s, pool, &keys[i]), eid;
			struct tm_shard *sh = &s->shard[si];
			struct tm_entry *e;

			res[i] = bufs[i] ? TM_BG_LATER : -EINVAL;
			if (!bufs[i])
				continue;
			k = 0;
			pthread_mutex_lock(&sh->lock);
			eid = tm_pool_alive(p, pool) ?
			      tm_lookup(sh, pool, &keys[i]) : 0;
			e = eid ? tm_ent_ptr(sh, eid) : NULL;
			if (e && (e->info & TM_E_SPILL)) {
				k = tm_rbatch_add(&s->spill, &b, e->loc,
						  e->info & TM_E_SIZE);
				if (k >= 0) {
					bg[k] = (struct tm_bget){
						.i = i, .shard = si, .eid = eid,
						.info = e->info,
						.seq = sh->spill_seq };
					res[i] = TM_BG_READING;
				}
			}
			pthread_mutex_unlock(&sh->lock);
			/* Full: this key starts the next round. */
			if (k < 0 && b.n)
				break;
		}
		tm_rbatch_submit(&s->spill, &b);
		/* The rest (RAM, same-filled, missing) while the disk works. */
		for (unsigned int j = first; j < i; j++)
			if (res[j] == TM_BG_LATER)
				res[j] = tm_get(s, pool, &keys[j], bufs[j],
						len, excl,
						sts ? &sts[j] : NULL);
		/* Spilled pages, as their reads complete. */
		while ((k = tm_rbatch_reap(&s->spill, &b, &data)) >= 0) {
			unsigned int j = bg[k].i;

			res[j] = tm_get_batch_done(s, p, pool, &keys[j], bg, k,
						   &b, data, bufs[j],
						   (uint32_t)len, excl,
						   sts ? &sts[j] : NULL);
		}
	}
	for (i = 0; i < n; i++)
		hits += res[i] == 0;
	return hits;
}

TM_EXPORT int tmem_get_batch(struct tmem_store *s, int pool,
			     const struct tmem_key *keys, void *const *bufs,
			     int *res, unsigned int n, size_t len,
			     unsigned int flags)
{
	return tm_get_batch(s, pool, keys, bufs, NULL, res, n, len, flags);
}

TM_EXPORT int tmem_get_stored_batch(struct tmem_store *s, int pool,
				    const struct tmem_key *keys,
				    void *const *bufs, struct tmem_stored *st,
				    int *res, unsigned int n, size_t len)
{
	if (n && !st)
		return -EINVAL;
	return tm_get_batch(s, pool, keys, bufs, st, res, n, len, 0);
}

TM_EXPORT int tmem_flush_page(struct tmem_store *s, int pool,
			      const struct tmem_key *key)
{
	struct tm_shard *sh;
	struct tm_pool *p;
	uint32_t eid;
	int rc = -ENOENT;

	if (!s || !key)
		return -EINVAL;
	p = tm_pool_get(s, pool);
	if (!p)
		return -EBADF;
	sh = tm_shard(s, pool, key);
	pthread_mutex_lock(&sh->lock);
	eid = tm_pool_alive(p, pool) ? tm_lookup(sh, pool, key) : 0;
	if (eid) {
		tm_ent_remove(s, sh, eid);
		tm_stat_add(sh, TMEM_STAT_FLUSH_PAGES, 1);
		rc = 0;
	}
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/*
 * An object's pages may sit in any shard: visit its part in each shard
 * once, under that shard's lock, and add up its pages, flushing them if
 * @flush.
 */
static int64_t tm_object_walk(struct tmem_store *s, int pool,
			      const uint64_t oid[3], bool flush)
{
	int64_t n = 0;

	for (int i = 0; i < TM_NSHARD; i++) {
		struct tm_shard *sh = &s->shard[i];
		uint32_t obj;

		pthread_mutex_lock(&sh->lock);
		obj = tm_obj_find(sh, (uint32_t)pool, oid);
		if (obj)
			n += flush ? tm_obj_remove(s, sh, obj) :
				     tm_obj_ptr(sh, obj)->npages;
		pthread_mutex_unlock(&sh->lock);
	}
	return n;
}

TM_EXPORT int64_t tmem_flush_object(struct tmem_store *s, int pool,
				    const uint64_t oid[3])
{
	int64_t n;

	if (!s || !oid)
		return -EINVAL;
	if (!tm_pool_get(s, pool))
		return -EBADF;
	tm_flush_test_delay();
	n = tm_object_walk(s, pool, oid, true);
	tm_stat_add(&s->shard[0], TMEM_STAT_FLUSH_OBJECTS, 1);
	tm_stat_add(&s->shard[0], TMEM_STAT_FLUSH_PAGES, n);
	return n;
}

TM_EXPORT int64_t tmem_object_pages(struct tmem_store *s, int pool,
				    const uint64_t oid[3])
{
	if (!s || !oid)
		return -EINVAL;
	if (!tm_pool_get(s, pool))
		return -EBADF;
	return tm_object_walk(s, pool, oid, false);
}
