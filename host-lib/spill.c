// SPDX-License-Identifier: MIT
/*
 * spill.c - the spill tier: compressed persistent pages out of RAM,
 * whatever medium holds them.
 *
 * Space is handed out in units of the medium (the file's O_DIRECT
 * alignment, 512 or 4096 bytes, or what the caller of
 * tmem_store_create_spill said) from a bitmap searched next-fit, so a
 * slab spilled in one go lands in one run and its writes merge.  Each
 * page keeps its own extent, so pages are freed one by one.
 *
 * Writes are gathered in the batch buffer under the write lock and
 * handed to the medium together; reads are single pages a get waits
 * for, or a batch get's spilled pages at once (tm_rbatch_*).  What
 * happens on the medium is its own business (struct tm_spill_medium):
 * this file keeps the space, the back-off after a failed write and the
 * discards, which every medium shares.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "tmem_int.h"

#define TM_SPILL_BACKOFF_NS	1000000000ll

uint64_t tm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * A slow disk, for tests of the callers' responsiveness: with
 * TMEM_TEST_SPILL_DELAY_MS set in the environment when the store is
 * made, every spill write batch, every single spill read and every
 * batch of reads first sleeps that long (at most 10 s).  Not part of
 * the API; never set in production.
 */
static void tm_spill_test_delay(const struct tm_spill *sp)
{
	tm_test_sleep_ms(sp->delay_ms);
}

/* Spilling off, until a medium is attached. */
void tm_spill_init(struct tm_spill *sp)
{
	memset(sp, 0, sizeof(*sp));
	pthread_mutex_init(&sp->write_lock, NULL);
	pthread_mutex_init(&sp->map_lock, NULL);
}

/*
 * tm_spill_attach - spill to medium @m (its state @priv) from now on,
 * in units of 1 << @unit_shift bytes, at most @max bytes of them.
 * Returns 0, -EINVAL (@max holds no unit) or -ENOMEM; on error nothing
 * is attached and the caller still owns @priv.
 */
int tm_spill_attach(struct tm_spill *sp, const struct tm_spill_medium *m,
		    void *priv, uint32_t unit_shift, uint64_t max)
{
	void *buf;

	sp->unit_shift = unit_shift;
	sp->nunits = max >> unit_shift;
	if (!sp->nunits)
		return -EINVAL;
	if (posix_memalign(&buf, 4096, TM_SPILL_BUF))
		return -ENOMEM;
	sp->buf = buf;
	sp->map = calloc((sp->nunits + 63) / 64, sizeof(uint64_t));
	if (!sp->map)
		goto err;
	if (m->discard) {
		sp->gone = calloc(2 * TM_SPILL_GONE, sizeof(*sp->gone));
		if (!sp->gone)
			goto err;
	}
	sp->buf_bytes = TM_SPILL_BUF;
	sp->fixed_bytes = TM_SPILL_BUF +
		(sp->nunits + 63) / 64 * sizeof(uint64_t) +
		(sp->gone ? 2 * TM_SPILL_GONE * sizeof(*sp->gone) : 0);
	sp->delay_ms = tm_test_delay_ms("TMEM_TEST_SPILL_DELAY_MS");
	sp->priv = priv;
	sp->medium = m;
	return 0;

err:
	free(sp->map);
	free(sp->buf);
	sp->map = NULL;
	sp->buf = NULL;
	return -ENOMEM;
}

void tm_spill_close(struct tm_spill *sp)
{
	if (sp->medium)
		sp->medium->close(sp);
	sp->medium = NULL;
	free(sp->gone);
	free(sp->map);
	free(sp->buf);
	pthread_mutex_destroy(&sp->write_lock);
	pthread_mutex_destroy(&sp->map_lock);
}

/* Spilling is on, its medium works, and it has not failed in a second. */
bool tm_spill_usable(struct tm_spill *sp)
{
	return sp->medium && !atomic_load(&sp->dead) &&
	       (int64_t)tm_now_ns() >= atomic_load(&sp->backoff_until);
}

uint32_t tm_spill_units(struct tm_spill *sp, uint32_t bytes)
{
	return (bytes + (1u << sp->unit_shift) - 1) >> sp->unit_shift;
}

static bool tm_bit(const uint64_t *map, uint64_t i)
{
	return map[i >> 6] >> (i & 63) & 1;
}

static void tm_bits_set(uint64_t *map, uint64_t i, uint64_t n, bool on)
{
	for (uint64_t b = i; b < i + n; b++) {
		if (on)
			map[b >> 6] |= 1ull << (b & 63);
		else
			map[b >> 6] &= ~(1ull << (b & 63));
	}
}

/* Returns 0 and the first unit of a free run of @n, or -ENOSPC. */
int tm_spill_alloc(struct tm_spill *sp, uint32_t n, uint64_t *unit)
{
	uint64_t pos, scanned = 0;
	int rc = -ENOSPC;

	pthread_mutex_lock(&sp->map_lock);
	pos = sp->cursor;
	while (n && scanned < sp->nunits + n) {
		uint64_t run = 0;

		if (pos + n > sp->nunits) {
			scanned += sp->nunits - pos;
			pos = 0;
			continue;
		}
		if (!(pos & 63) && sp->map[pos >> 6] == ~0ull) {
			pos += 64;
			scanned += 64;
			continue;
		}
		while (run < n && !tm_bit(sp->map, pos + run))
			run++;
		if (run == n) {
			tm_bits_set(sp->map, pos, n, true);
			sp->cursor = pos + n;
			sp->used += n;
			*unit = pos;
			rc = 0;
			break;
		}
		pos += run + 1;
		scanned += run + 1;
	}
	pthread_mutex_unlock(&sp->map_lock);
	return rc;
}

/*
 * Hold the @n units at @unit back for a discard.  False when too many
 * wait already: then they go back unannounced (a discard is a hint).
 * Caller holds the map lock.
 */
static bool tm_spill_gone_add(struct tm_spill *sp, uint64_t unit, uint32_t n)
{
	struct tm_spill_gone *last = sp->ngone ? &sp->gone[sp->ngone - 1] : NULL;

	if (last && last->unit + last->n == unit) {
		last->n += n;	/* a flushed run of neighbours: one discard */
		return true;
	}
	if (sp->ngone == TM_SPILL_GONE)
		return false;
	sp->gone[sp->ngone++] = (struct tm_spill_gone){ .unit = unit, .n = n };
	return true;
}

/* Hand @n units at @unit out again; @discard them first if it may. */
static void tm_spill_unmap(struct tm_spill *sp, uint64_t unit, uint32_t n,
			   bool discard)
{
	pthread_mutex_lock(&sp->map_lock);
	if (!discard || !sp->gone || !tm_spill_gone_add(sp, unit, n)) {
		tm_bits_set(sp->map, unit, n, false);
		sp->used -= n;
	}
	pthread_mutex_unlock(&sp->map_lock);
}

/*
 * Give back the extent of @bytes of data at @unit, which held a page.
 * Any thread, with any of the store's locks held: with a medium that
 * takes discards the extent waits for tm_spill_discard_gone, which may
 * not run here.
 */
void tm_spill_free(struct tm_spill *sp, uint64_t unit, uint32_t bytes)
{
	tm_spill_unmap(sp, unit, tm_spill_units(sp, bytes), true);
}

/*
 * tm_spill_discard_gone - discard the extents freed since last time,
 * then hand their units out again.  Caller holds the write lock and no
 * other of the store's: the medium's discard may block.
 */
void tm_spill_discard_gone(struct tm_spill *sp)
{
	struct tm_spill_gone *todo;
	uint32_t n;

	if (!sp->gone)
		return;
	todo = sp->gone + TM_SPILL_GONE;	/* the write lock's half */
	pthread_mutex_lock(&sp->map_lock);
	n = sp->ngone;
	memcpy(todo, sp->gone, n * sizeof(*todo));
	sp->ngone = 0;
	pthread_mutex_unlock(&sp->map_lock);
	if (!n)
		return;
	for (uint32_t i = 0; i < n; i++)
		sp->medium->discard(sp, todo[i].unit << sp->unit_shift,
				    todo[i].n << sp->unit_shift);
	pthread_mutex_lock(&sp->map_lock);
	for (uint32_t i = 0; i < n; i++) {
		tm_bits_set(sp->map, todo[i].unit, todo[i].n, false);
		sp->used -= todo[i].n;
	}
	pthread_mutex_unlock(&sp->map_lock);
}

uint64_t tm_spill_used(struct tm_spill *sp)
{
	uint64_t used;

	pthread_mutex_lock(&sp->map_lock);
	used = sp->used << sp->unit_shift;
	pthread_mutex_unlock(&sp->map_lock);
	return used;
}

/*
 * tm_spill_write - write @n pages already laid out in the batch buffer.
 * Sets each io's res (0 or -errno).  Returns 0 if every page was
 * written, else the first error; after an error spilling backs off for
 * a second so that a failing medium does not turn every put into a
 * failed write.  A medium of the caller's may decline a write instead
 * (-EAGAIN, every res too): that is no error and no reason to back
 * off, and the reclaim thread, which such a medium takes writes from,
 * is woken to spill the pages.
 *
 * Pages whose write failed but may still land (lost = true) stay in RAM
 * and their extents must not be freed: see tm_spill_release.  Caller
 * holds the write lock.
 */
int tm_spill_write(struct tmem_store *s, struct tm_spill_io *io, int n)
{
	struct tm_spill *sp = &s->spill;
	int err;

	for (int k = 0; k < n; k++) {
		io[k].res = -EIO;
		io[k].lost = false;
	}
	if (atomic_load(&sp->dead))
		return -EIO;
	tm_spill_test_delay(sp);
	err = sp->medium->write(sp, io, n);
	if (err == -EAGAIN)
		tm_reclaim_kick(s);
	else if (err)
		atomic_store(&sp->backoff_until,
			     (int64_t)tm_now_ns() + TM_SPILL_BACKOFF_NS);
	return err;
}

/*
 * tm_spill_release - give back the extent of a page whose write failed
 * (or was not wanted any more), unless that write may still land there
 * (lost): then the extent stays allocated, and counted in spill_used,
 * for the store's lifetime.  A failed write's extent holds nothing, so
 * it is not discarded.
 */
void tm_spill_release(struct tm_spill *sp, const struct tm_spill_io *io)
{
	if (io->lost)
		atomic_fetch_add(&sp->lost_bytes, (uint64_t)tm_spill_units(sp,
				 io->bytes) << sp->unit_shift);
	else
		tm_spill_unmap(sp, io->unit, tm_spill_units(sp, io->bytes),
			       !io->res);
}

/*
 * tm_spill_read - read the @bytes of data at @unit into @dst, which must
 * be aligned to 4096 and hold the extent rounded up to whole units.
 * Returns 0 or -EIO.
 */
int tm_spill_read(struct tm_spill *sp, uint64_t unit, uint32_t bytes,
		  uint8_t *dst)
{
	uint32_t len = tm_spill_units(sp, bytes) << sp->unit_shift;

	tm_spill_test_delay(sp);
	return sp->medium->read(sp, unit << sp->unit_shift, len, dst);
}

/*
 * Batched reads, for tmem_get_batch: the spilled pages of a batch are
 * queued, up to TM_READ_DEPTH extents and TM_READ_BUF bytes, into a
 * read buffer of the calling thread's, submitted together, and reaped
 * one by one, so that the caller decompresses each while the medium
 * works on the rest (if it can: see spill-file.c).  A read the medium
 * did not do is handed back as TM_RD_ALONE, to be read alone.
 */

/* Start an empty batch; its buffer is looked for when a read is added. */
void tm_rbatch_init(struct tm_rbatch *b)
{
	b->buf = NULL;
	b->rd = NULL;
	b->tried = false;
	b->n = b->submitted = b->inflight = b->next = 0;
	b->off = 0;
}

/*
 * Queue the read of the extent holding @bytes of data at @unit.  Returns
 * its index in the batch, or -1 if the batch is full (or has no buffer).
 */
int tm_rbatch_add(struct tm_spill *sp, struct tm_rbatch *b, uint64_t unit,
		  uint32_t bytes)
{
	uint32_t len = tm_spill_units(sp, bytes) << sp->unit_shift;
	int k = b->n;

	if (!b->tried) {
		/* The first spilled page: only now is a buffer worth making. */
		b->tried = true;
		if (!sp->medium->rb_start(sp, b))
			b->buf = NULL;
	}
	if (!b->buf || k == TM_READ_DEPTH || b->off + len > TM_READ_BUF)
		return -1;
	b->io[k] = (struct tm_spill_rd){ .unit = unit, .len = len,
					 .buf_off = b->off };
	if (!sp->medium->rb_add(sp, b, k))
		return -1;
	b->off += len;
	b->n++;
	return k;
}

/* Submit every read added. */
void tm_rbatch_submit(struct tm_spill *sp, struct tm_rbatch *b)
{
	if (!b->n)
		return;
	tm_spill_test_delay(sp);
	sp->medium->rb_submit(sp, b);
}

/*
 * tm_rbatch_reap - the next read of @b to finish: returns its index,
 * with io[index].res set to 0 (its extent is at *@data), -EIO, or
 * TM_RD_ALONE (the medium did not do it: read it alone); -1 when every
 * read has been handed back.
 */
int tm_rbatch_reap(struct tm_spill *sp, struct tm_rbatch *b,
		   const uint8_t **data)
{
	int k = b->inflight > 0 ? sp->medium->rb_reap(sp, b) : -1;

	if (k >= 0) {
		*data = b->buf + b->io[k].buf_off;
		return k;
	}
	while (b->next < b->n) {
		struct tm_spill_rd *r = &b->io[b->next++];

		if (!r->seen) {
			r->seen = true;
			r->res = TM_RD_ALONE;
			*data = NULL;
			return b->next - 1;
		}
	}
	return -1;
}
