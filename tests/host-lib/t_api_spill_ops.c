/* SPDX-License-Identifier: MIT */
/*
 * t_api_spill_ops: a store that spills to a medium of the caller's
 * (tmem_store_create_spill, ABI 1.5), here an array in memory.
 *
 * Pages spill and come back byte-identical through single gets, batch
 * gets (neighbours on the medium read as one extent) and stored forms,
 * in units of 512 and 4096 bytes, every extent aligned as promised;
 * flushed pages' extents are discarded, and only those; a failed write
 * keeps its pages in RAM and counts, and spilling resumes when the
 * medium does; a write declined in one thread is no error and the
 * reclaim thread spills; a failed read is -EIO and does not drop the
 * page; gets from several threads run while a putter spills and
 * discards; no op runs during tmem_store_create_spill or after
 * tmem_store_destroy; bad arguments are -EINVAL.
 *
 * The medium checks the contract on every call: alignment, bounds, that
 * a read or discard covers only bytes written since their last discard
 * (the store has no business reading a freed extent unless a racing
 * flush frees it, which the single-threaded tests never do), and that
 * the store is still alive.  Discarded bytes are poisoned, so a page
 * read back from them would fail its check.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "helpers.h"

#define MIB	(1ull << 20)
#define LEN	T_PAGE_4K
#define POISON	0xdd

struct mem {
	uint8_t *bytes;
	uint64_t size;
	uint32_t unit;
	_Atomic uint8_t *live;		/* per unit: written, not discarded */
	_Atomic int write_err;		/* !0: every write extent fails so */
	_Atomic int write_whole;	/* !0: write calls fail so, whole */
	_Atomic int read_err;		/* !0: every read extent fails so */
	_Atomic bool decline_main;	/* decline writes from main_thread */
	pthread_t main_thread;
	_Atomic uint64_t declined;
	_Atomic bool strict;		/* reads must cover live units only */
	_Atomic bool closed;		/* the store was destroyed */
	_Atomic bool in_create;		/* tmem_store_create_spill runs */
	_Atomic uint64_t writes, write_exts, reads, read_exts;
	_Atomic uint64_t discards, discard_bytes, bad_reads;
	_Atomic int bad;		/* a broken promise, counted */
	char why[160];			/* the first one */
};

static void mem_bad(struct mem *m, const char *what, uint64_t off,
		    uint64_t len)
{
	if (atomic_fetch_add(&m->bad, 1) == 0)
		snprintf(m->why, sizeof(m->why), "%s at %llu+%llu", what,
			 (unsigned long long)off, (unsigned long long)len);
}

/* Alignment, bounds, and a store alive: what every call must keep. */
static bool mem_check(struct mem *m, const char *op, uint64_t off,
		      uint64_t len, const void *buf)
{
	if (atomic_load(&m->closed) || atomic_load(&m->in_create)) {
		mem_bad(m, atomic_load(&m->closed) ? "op after destroy" :
			"op during create", off, len);
		return false;
	}
	if (off % m->unit || len % m->unit || !len ||
	    (buf && (uintptr_t)buf % m->unit)) {
		mem_bad(m, "misaligned extent", off, len);
		return false;
	}
	if (off > m->size || len > m->size - off || (buf && len > MIB)) {
		mem_bad(m, "extent out of bounds", off, len);
		return false;
	}
	(void)op;
	return true;
}

static bool mem_all_live(struct mem *m, uint64_t off, uint64_t len)
{
	for (uint64_t u = off / m->unit; u < (off + len) / m->unit; u++)
		if (!atomic_load(&m->live[u]))
			return false;
	return true;
}

static int mem_write(void *opaque, struct tmem_spill_extent *ext,
		     unsigned int n)
{
	struct mem *m = opaque;
	int err = atomic_load(&m->write_err);
	int whole = atomic_load(&m->write_whole);

	if (atomic_load(&m->decline_main) &&
	    pthread_equal(pthread_self(), m->main_thread)) {
		atomic_fetch_add(&m->declined, 1);
		return -EAGAIN;
	}
	atomic_fetch_add(&m->writes, 1);
	if (whole)
		return whole;
	for (unsigned int i = 0; i < n; i++) {
		struct tmem_spill_extent *e = &ext[i];

		atomic_fetch_add(&m->write_exts, 1);
		if (!mem_check(m, "write", e->offset, e->len, e->buf)) {
			e->res = -EINVAL;
			continue;
		}
		if (err) {
			e->res = err;
			continue;
		}
		memcpy(m->bytes + e->offset, e->buf, e->len);
		for (uint64_t u = e->offset / m->unit;
		     u < (e->offset + e->len) / m->unit; u++)
			atomic_store(&m->live[u], 1);
		e->res = 0;
	}
	return 0;
}

static int mem_read(void *opaque, struct tmem_spill_extent *ext,
		    unsigned int n)
{
	struct mem *m = opaque;
	int err = atomic_load(&m->read_err);

	atomic_fetch_add(&m->reads, 1);
	for (unsigned int i = 0; i < n; i++) {
		struct tmem_spill_extent *e = &ext[i];

		atomic_fetch_add(&m->read_exts, 1);
		if (!mem_check(m, "read", e->offset, e->len, e->buf)) {
			e->res = -EINVAL;
			continue;
		}
		if (!mem_all_live(m, e->offset, e->len)) {
			atomic_fetch_add(&m->bad_reads, 1);
			if (atomic_load(&m->strict))
				mem_bad(m, "read of bytes never written or "
					"discarded", e->offset, e->len);
		}
		if (err) {
			e->res = err;
			continue;
		}
		memcpy(e->buf, m->bytes + e->offset, e->len);
		e->res = 0;
	}
	return 0;
}

static void mem_discard(void *opaque, uint64_t off, uint64_t len)
{
	struct mem *m = opaque;

	atomic_fetch_add(&m->discards, 1);
	if (!mem_check(m, "discard", off, len, NULL))
		return;
	if (!mem_all_live(m, off, len))
		mem_bad(m, "discard of bytes not written", off, len);
	for (uint64_t u = off / m->unit; u < (off + len) / m->unit; u++)
		atomic_store(&m->live[u], 0);
	memset(m->bytes + off, POISON, len);
	atomic_fetch_add(&m->discard_bytes, len);
}

static const struct tmem_spill_ops mem_ops = {
	.write = mem_write,
	.read = mem_read,
	.discard = mem_discard,
};

static const struct tmem_spill_ops mem_ops_nodiscard = {
	.write = mem_write,
	.read = mem_read,
};

static void mem_init(struct mem *m, uint64_t size, uint32_t unit)
{
	memset(m, 0, sizeof(*m));
	m->size = size;
	m->unit = unit;
	m->bytes = malloc(size);
	m->live = calloc(size / unit, 1);
	t_assert(m->bytes && m->live);
	memset(m->bytes, POISON, size);
	atomic_store(&m->strict, true);
}

static void mem_fini(struct mem *m)
{
	if (atomic_load(&m->bad))
		t_fail("the medium saw %d broken promises; first: %s",
		       atomic_load(&m->bad), m->why);
	free(m->bytes);
	free((void *)m->live);
}

/* Units written and not discarded. */
static uint64_t mem_live_units(struct mem *m)
{
	uint64_t n = 0;

	for (uint64_t u = 0; u < m->size / m->unit; u++)
		n += atomic_load(&m->live[u]);
	return n;
}

static struct tmem_store *mem_store(struct mem *m,
				    const struct tmem_spill_ops *ops,
				    uint64_t budget)
{
	struct tmem_config cfg = {
		.budget = budget,
		.spill_max = m->size,
		.raw_policy = TMEM_RAW_STORE,
	};
	struct tmem_store *s = NULL;

	atomic_store(&m->in_create, true);
	t_rc(tmem_store_create_spill(&cfg, ops, m, m->unit, &s), 0);
	atomic_store(&m->in_create, false);
	t_assert(s);
	t_eq(atomic_load(&m->writes) + atomic_load(&m->reads) +
	     atomic_load(&m->discards), 0);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_MAX), m->size);
	return s;
}

static void mem_store_free(struct mem *m, struct tmem_store *s)
{
	tmem_store_destroy(s);
	atomic_store(&m->closed, true);
}

/* Page i of a test: incompressible or half so, never same-filled. */
static uint64_t tag_of(uint32_t i)
{
	return t_tag(i % 3 ? T_HALF : T_RAND, 1000 + i);
}

/* Put pages [0, @n) of object 1, then cut the budget so all spill. */
static void put_and_spill(struct tmem_store *s, int p, uint32_t n)
{
	struct tmem_key k;

	t_rc(tmem_set_budget(s, 64 * MIB), 0);
	for (uint32_t i = 0; i < n; i++) {
		k = t_key(1, i);
		t_rc(t_put_tag(s, p, &k, tag_of(i), LEN), 0);
	}
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, n, 10000);
}

/* Every page of [@from, @to) of object 1 reads back, one by one. */
static void check_single(struct tmem_store *s, int p, uint32_t from,
			 uint32_t to)
{
	for (uint32_t i = from; i < to; i++) {
		struct tmem_key k = t_key(1, i);

		t_rc(t_get_check(s, p, &k, tag_of(i), LEN), 0);
	}
}

#define BATCH	100

/* Pages [0, @n) in batches of BATCH; @want is each res wanted. */
static void check_batch(struct tmem_store *s, int p, uint32_t n, int want)
{
	struct tmem_key keys[BATCH];
	void *bufs[BATCH];
	int res[BATCH];

	for (int j = 0; j < BATCH; j++)
		bufs[j] = t_buf_alloc(LEN);
	for (uint32_t i = 0; i < n; i += BATCH) {
		uint32_t cnt = n - i < BATCH ? n - i : BATCH;
		int hits;

		for (uint32_t j = 0; j < cnt; j++) {
			keys[j] = t_key(1, i + j);
			memset(bufs[j], 0, LEN);
		}
		hits = tmem_get_batch(s, p, keys, bufs, res, cnt, LEN, 0);
		t_rc(hits, want ? 0 : (int)cnt);
		for (uint32_t j = 0; j < cnt; j++) {
			t_rc(res[j], want);
			if (!want)
				t_page_verify(bufs[j], LEN, tag_of(i + j));
			t_canary_verify(bufs[j], LEN);
		}
	}
	for (int j = 0; j < BATCH; j++)
		free(bufs[j]);
}

/*
 * Stored forms of pages [0, @n), moved into a store without spill,
 * must read back there as the pages.
 */
static void check_stored(struct tmem_store *s, int p, uint32_t n)
{
	struct tmem_store *d = t_store_new(64 * MIB, NULL, 0);
	int dp = t_pool_new(d, TMEM_PERSISTENT, LEN);
	struct tmem_stored st[BATCH];
	struct tmem_key keys[BATCH];
	void *bufs[BATCH];
	int res[BATCH];

	for (int j = 0; j < BATCH; j++)
		bufs[j] = t_buf_alloc(LEN);
	for (uint32_t i = 0; i < n; i += BATCH) {
		uint32_t cnt = n - i < BATCH ? n - i : BATCH;

		for (uint32_t j = 0; j < cnt; j++)
			keys[j] = t_key(1, i + j);
		t_rc(tmem_get_stored_batch(s, p, keys, bufs, st, res, cnt, LEN),
		     (int)cnt);
		for (uint32_t j = 0; j < cnt; j++) {
			t_rc(res[j], 0);
			t_assert(st[j].form == TMEM_FORM_LZ4 ||
				 st[j].form == TMEM_FORM_RAW);
			t_rc(tmem_put_stored(d, dp, &keys[j], &st[j], bufs[j],
					     0), 0);
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		struct tmem_key k = t_key(1, i);

		t_rc(t_get_check(d, dp, &k, tag_of(i), LEN), 0);
	}
	for (int j = 0; j < BATCH; j++)
		free(bufs[j]);
	tmem_store_destroy(d);
}

/* Spill, read back every way, at both ends of the units allowed. */
static void test_roundtrip(uint32_t unit)
{
	const uint32_t n = 600;
	struct mem m;
	struct tmem_store *s;
	uint64_t reads, exts;
	int p;

	mem_init(&m, 64 * MIB, unit);
	s = mem_store(&m, &mem_ops, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	put_and_spill(s, p, n);
	t_assert(atomic_load(&m.writes) > 0);
	/* A slab's pages are neighbours: merged into fewer extents. */
	t_assert(atomic_load(&m.write_exts) < n);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_USED), mem_live_units(&m) * unit);

	check_single(s, p, 0, n);
	t_eq(atomic_load(&m.reads), n);
	reads = atomic_load(&m.reads);
	exts = atomic_load(&m.read_exts);
	check_batch(s, p, n, 0);
	/*
	 * A batch's reads are one call, and its pages that lie side by
	 * side on the medium (a slab's, spilled together) are read as one
	 * extent, in whatever order the keys came: a few requests for an
	 * NBD server or a disk, not one per page.
	 */
	t_assert(atomic_load(&m.reads) - reads < n);
	t_assert(atomic_load(&m.read_exts) - exts < n / 8);
	check_stored(s, p, n);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), n);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_READ_ERRORS), 0);
	t_assert(t_stats_get(s, TMEM_STAT_SPILL_READS) >= 3 * n);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_RING_RESETS), 0);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_BUFFERED), 0);
	/* The batch buffer and the extent arrays are the store's own. */
	t_assert(t_stats_get(s, TMEM_STAT_RAM_FIXED) > MIB + 8192);
	mem_store_free(&m, s);
	mem_fini(&m);
}

/*
 * Wait until the spill holds less than @below bytes and every byte that
 * left it since @used0 were in use has been discarded, and nothing
 * else: what the store counts in use is what the medium holds written.
 */
static void wait_discarded(struct tmem_store *s, struct mem *m,
			   uint64_t used0, uint64_t below)
{
	uint64_t end = t_now_ms() + 5000, used = 0, gone = 0, live = 0;

	while (t_now_ms() < end) {
		used = t_stats_get(s, TMEM_STAT_SPILL_USED);
		gone = atomic_load(&m->discard_bytes);
		live = mem_live_units(m) * m->unit;
		if (used < below && gone == used0 - used && live == used)
			return;
		t_sleep_ms(2);
	}
	t_fail("spill_used %llu of %llu, %llu bytes discarded, %llu live",
	       (unsigned long long)used, (unsigned long long)used0,
	       (unsigned long long)gone, (unsigned long long)live);
}

/*
 * Flushed, overwritten and exclusively got pages have their extents
 * discarded (and poisoned: the pages left must not have been touched),
 * flushed pages only; a store without discard reuses its space all
 * the same.
 */
static void test_discard(void)
{
	const uint32_t n = 400;
	struct tmem_store *s;
	uint64_t used0, used1;
	struct mem m;
	struct tmem_key k;
	int p;

	mem_init(&m, 64 * MIB, 512);
	s = mem_store(&m, &mem_ops, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	put_and_spill(s, p, n);
	t_eq(atomic_load(&m.discards), 0);

	/*
	 * Every other page.  The medium checks that each discard covers
	 * written bytes and poisons them: the pages left must not notice.
	 */
	used0 = t_stats_get(s, TMEM_STAT_SPILL_USED);
	for (uint32_t i = 0; i < n; i += 2) {
		k = t_key(1, i);
		t_rc(tmem_flush_page(s, p, &k), 0);
	}
	/* The reclaim thread sends them within about a second. */
	wait_discarded(s, &m, used0, used0);
	t_assert(atomic_load(&m.discards) > 0);
	for (uint32_t i = 0; i < n; i++) {
		k = t_key(1, i);
		t_rc(t_get_check(s, p, &k, tag_of(i), LEN),
		     i % 2 ? 0 : -ENOENT);
	}
	/* An exclusive get and an overwrite let their extents go too. */
	used1 = t_stats_get(s, TMEM_STAT_SPILL_USED);
	k = t_key(1, 1);
	t_rc(t_getx_check(s, p, &k, tag_of(1), LEN), 0);
	k = t_key(1, 3);
	t_rc(tmem_set_budget(s, 64 * MIB), 0);
	t_rc(t_put_tag(s, p, &k, tag_of(3), LEN), 0);
	wait_discarded(s, &m, used0, used1);
	for (uint32_t i = 3; i < n; i += 2) {
		k = t_key(1, i);
		t_rc(t_get_check(s, p, &k, tag_of(i), LEN), 0);
	}
	/* The rest, at once: its extents are discarded in merged runs. */
	t_rc(tmem_flush_object(s, p, t_key(1, 0).oid), n / 2 - 1);
	wait_discarded(s, &m, used0, 1);
	t_eq(mem_live_units(&m), 0);
	mem_store_free(&m, s);
	mem_fini(&m);

	/* Without discard: flushed space is handed out again at once. */
	mem_init(&m, 4 * MIB, 4096);
	s = mem_store(&m, &mem_ops_nodiscard, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	for (int round = 0; round < 3; round++) {
		/* 700 pages of ~4 KiB fill most of the 4 MiB each time. */
		put_and_spill(s, p, 700);
		check_single(s, p, 0, 700);
		t_rc(tmem_flush_object(s, p, t_key(1, 0).oid), 700);
		t_eq(t_stats_get(s, TMEM_STAT_SPILL_USED), 0);
	}
	mem_store_free(&m, s);
	mem_fini(&m);
}

/*
 * A write that fails loses nothing: the pages stay in RAM, over the
 * budget, and are counted; once the medium works again (after the
 * back-off) the reclaim thread spills them.  Both ways to fail: an
 * extent's res, and the whole call's result.
 */
static void test_write_error(void)
{
	const uint32_t n = 300;
	struct tmem_store *s;
	struct mem m;
	struct tmem_key k;
	int p;

	for (int whole = 0; whole < 2; whole++) {
		mem_init(&m, 64 * MIB, 512);
		s = mem_store(&m, &mem_ops, 64 * MIB);
		p = t_pool_new(s, TMEM_PERSISTENT, LEN);
		for (uint32_t i = 0; i < n; i++) {
			k = t_key(1, i);
			t_rc(t_put_tag(s, p, &k, tag_of(i), LEN), 0);
		}
		if (whole)
			atomic_store(&m.write_whole, -EIO);
		else
			atomic_store(&m.write_err, -ENOSPC);
		t_rc(tmem_set_budget(s, 0), 0);
		t_wait_stat_or_fail(s, TMEM_STAT_SPILL_WRITE_ERRORS, T_GE, 1,
				    5000);
		if (!whole)
			t_assert(t_stats_get(s, TMEM_STAT_SPILL_ENOSPC) >= 1);
		t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), 0);
		t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), n);
		t_assert(t_stats_get(s, TMEM_STAT_RAM_USED) > 0);
		check_single(s, p, 0, n);
		t_eq(t_stats_get(s, TMEM_STAT_SPILL_USED), 0);
		t_eq(t_stats_get(s, TMEM_STAT_SPILL_LOST), 0);
		/* The medium is back: spilling resumes by itself. */
		atomic_store(&m.write_err, 0);
		atomic_store(&m.write_whole, 0);
		t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, n,
				    10000);
		check_single(s, p, 0, n);
		check_batch(s, p, n, 0);
		mem_store_free(&m, s);
		mem_fini(&m);
	}
}

/*
 * A medium that declines writes in one thread (QEMU's main loop) and
 * takes them in the store's reclaim thread: a put there that would go
 * to the medium is refused (-ENOSPC) or, reserved, kept in RAM; no
 * write error is counted, nothing backs off, and the reclaim thread
 * spills what the budget has no room for.
 */
static void test_declined(void)
{
	const uint32_t n = 300;
	struct tmem_store *s;
	struct tmem_key k;
	struct mem m;
	uint8_t *buf = t_buf_alloc(LEN);
	int p;

	mem_init(&m, 64 * MIB, 512);
	m.main_thread = pthread_self();
	atomic_store(&m.decline_main, true);
	s = mem_store(&m, &mem_ops, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	put_and_spill(s, p, n);		/* by the reclaim thread */
	t_eq(atomic_load(&m.declined), 0);
	/* No RAM left: the page would go to the medium, from here. */
	k = t_key(1, n);
	t_rc(t_put_tag(s, p, &k, tag_of(n), LEN), -ENOSPC);
	t_assert(atomic_load(&m.declined) >= 1);
	t_page_fill(buf, LEN, tag_of(n));
	t_rc(tmem_put_flags(s, p, &k, buf, LEN, TMEM_PUT_RESERVED), 0);
	/* ...and it is spilled a moment later, with no back-off. */
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, n + 1, 10000);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_WRITE_ERRORS), 0);
	check_single(s, p, 0, n + 1);
	check_batch(s, p, n + 1, 0);
	t_eq(atomic_load(&m.bad), 0);
	mem_store_free(&m, s);
	mem_fini(&m);
	free(buf);
}

/*
 * A read that fails is -EIO, single or batched, exclusive or not, and
 * the page stays: once the medium reads again, so does the page.
 */
static void test_read_error(void)
{
	const uint32_t n = 200;
	struct tmem_store *s;
	struct mem m;
	struct tmem_key k;
	int p;

	mem_init(&m, 64 * MIB, 4096);
	s = mem_store(&m, &mem_ops, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	put_and_spill(s, p, n);
	atomic_store(&m.read_err, -EIO);
	for (uint32_t i = 0; i < n; i++) {
		k = t_key(1, i);
		t_rc(t_get_check(s, p, &k, tag_of(i), LEN), -EIO);
	}
	k = t_key(1, 7);
	t_rc(t_getx_check(s, p, &k, tag_of(7), LEN), -EIO);
	check_batch(s, p, n, -EIO);
	t_assert(t_stats_get(s, TMEM_STAT_SPILL_READ_ERRORS) >= 2 * n + 1);
	t_assert(t_stats_get(s, TMEM_STAT_GET_ERRORS) >= 2 * n + 1);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), n);

	atomic_store(&m.read_err, 0);
	check_single(s, p, 0, n);
	check_batch(s, p, n, 0);
	k = t_key(1, 7);
	t_rc(t_getx_check(s, p, &k, tag_of(7), LEN), 0);
	t_rc(t_get_check(s, p, &k, tag_of(7), LEN), -ENOENT);
	mem_store_free(&m, s);
	mem_fini(&m);
}

/*
 * Threads get spilled pages, one by one and in batches, while another
 * overwrites and flushes its own pages at a tight budget, so that
 * spills and discards run under the reads.
 */
#define READERS	3
#define CHURN	512

struct reader_arg {
	struct tmem_store *s;
	int p;
	uint32_t n;
	uint64_t seed;
	_Atomic bool *stop;
	uint64_t got;
};

static void *reader(void *arg)
{
	struct reader_arg *a = arg;
	struct t_rng rng = { .s = a->seed };
	struct tmem_key keys[16];
	void *bufs[16];
	int res[16];

	for (int j = 0; j < 16; j++)
		bufs[j] = t_buf_alloc(LEN);
	while (!atomic_load(a->stop)) {
		uint32_t i = (uint32_t)t_rand_below(&rng, a->n);
		struct tmem_key k = t_key(1, i);

		t_rc(t_get_check(a->s, a->p, &k, tag_of(i), LEN), 0);
		for (int j = 0; j < 16; j++)
			keys[j] = t_key(1, (uint32_t)t_rand_below(&rng, a->n));
		t_rc(tmem_get_batch(a->s, a->p, keys, bufs, res, 16, LEN, 0),
		     16);
		for (int j = 0; j < 16; j++)
			t_page_verify(bufs[j], LEN, tag_of(keys[j].index));
		a->got += 17;
	}
	for (int j = 0; j < 16; j++)
		free(bufs[j]);
	return NULL;
}

static void test_threads(void)
{
	const uint32_t n = 500;
	struct reader_arg args[READERS];
	pthread_t th[READERS];
	_Atomic bool stop = false;
	uint64_t tags[CHURN] = { 0 };
	uint64_t end, round = 0;
	struct tmem_store *s;
	struct mem m;
	int p;

	mem_init(&m, 64 * MIB, 512);
	s = mem_store(&m, &mem_ops, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	put_and_spill(s, p, n);
	t_rc(tmem_set_budget(s, 1 * MIB), 0);
	for (int i = 0; i < READERS; i++) {
		args[i] = (struct reader_arg){ .s = s, .p = p, .n = n,
			.seed = 77 + (uint64_t)i, .stop = &stop };
		t_rc(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	end = t_now_ms() + (T_ASAN ? 3000 : 1500);
	while (t_now_ms() < end) {
		for (uint32_t i = 0; i < CHURN; i++) {
			struct tmem_key k = t_key(2, i);

			if (round % 3 == 2 && i % 2) {
				t_rc(tmem_flush_page(s, p, &k),
				     tags[i] ? 0 : -ENOENT);
				tags[i] = 0;
				continue;
			}
			tags[i] = t_tag(T_RAND, round * CHURN + i);
			t_rc(t_put_tag(s, p, &k, tags[i], LEN), 0);
		}
		round++;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < READERS; i++) {
		t_rc(pthread_join(th[i], NULL), 0);
		t_assert(args[i].got > 0);
	}
	for (uint32_t i = 0; i < CHURN; i++) {
		struct tmem_key k = t_key(2, i);

		t_rc(t_get_check(s, p, &k, tags[i], LEN),
		     tags[i] ? 0 : -ENOENT);
	}
	check_single(s, p, 0, n);
	t_assert(t_stats_get(s, TMEM_STAT_SPILLS) > n);
	t_assert(atomic_load(&m.discards) > 0);
	printf("threads: %llu rounds, %llu spills, %llu discards, %llu reads "
	       "of freed bytes\n", (unsigned long long)round,
	       (unsigned long long)t_stats_get(s, TMEM_STAT_SPILLS),
	       (unsigned long long)atomic_load(&m.discards),
	       (unsigned long long)atomic_load(&m.bad_reads));
	mem_store_free(&m, s);
	mem_fini(&m);
}

/*
 * Nothing runs after tmem_store_destroy: not the discards of pages
 * flushed just before it, nor a spill retried after a failed write.
 */
static void test_destroy(void)
{
	struct tmem_store *s;
	struct mem m;
	struct tmem_key k;
	uint64_t calls;
	int p;

	mem_init(&m, 64 * MIB, 512);
	s = mem_store(&m, &mem_ops, 64 * MIB);
	p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	put_and_spill(s, p, 100);
	for (uint32_t i = 0; i < 50; i++) {
		k = t_key(1, 2 * i);
		t_rc(tmem_flush_page(s, p, &k), 0);
	}
	for (uint32_t i = 0; i < 100; i++) {
		k = t_key(3, i);
		t_rc(tmem_set_budget(s, 64 * MIB), 0);
		t_rc(t_put_tag(s, p, &k, tag_of(i), LEN), 0);
	}
	atomic_store(&m.write_err, -EIO);
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_SPILL_WRITE_ERRORS, T_GE, 1, 5000);
	atomic_store(&m.write_err, 0);
	mem_store_free(&m, s);
	calls = atomic_load(&m.writes) + atomic_load(&m.reads) +
		atomic_load(&m.discards);
	/* The reclaim thread would have retried within a second. */
	t_sleep_ms(1500);
	t_eq(atomic_load(&m.writes) + atomic_load(&m.reads) +
	     atomic_load(&m.discards), calls);
	mem_fini(&m);	/* fails on any op after destroy */
}

static void test_args(void)
{
	struct tmem_config cfg = { .budget = MIB, .spill_max = 4 * MIB };
	struct tmem_spill_ops no_write = { .read = mem_read };
	struct tmem_spill_ops no_read = { .write = mem_write };
	struct tmem_store *s = (struct tmem_store *)&cfg;
	struct mem m;

	mem_init(&m, 4 * MIB, 512);
	t_rc(tmem_store_create_spill(NULL, &mem_ops, &m, 512, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, NULL, &m, 512, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 512, NULL), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &no_write, &m, 512, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &no_read, &m, 512, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 0, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 256, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 1000, &s), -EINVAL);
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 8192, &s), -EINVAL);
	cfg.spill_path = "/tmp";
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 512, &s), -EINVAL);
	cfg.spill_path = "";
	cfg.flags = TMEM_SPILL_KEEP;
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 512, &s), -EINVAL);
	cfg.flags = TMEM_SPILL_BUFFERED;
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 512, &s), -EINVAL);
	cfg.flags = 0;
	cfg.spill_max = 0;
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 512, &s), -EINVAL);
	cfg.spill_max = 4095;
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 4096, &s), -EINVAL);
	cfg.raw_policy = 7;
	cfg.spill_max = 4 * MIB;
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 512, &s), -EINVAL);
	t_assert(s == (struct tmem_store *)&cfg);	/* untouched */
	t_eq(atomic_load(&m.writes) + atomic_load(&m.reads) +
	     atomic_load(&m.discards), 0);
	/* spill_max is rounded down to whole units. */
	cfg.raw_policy = TMEM_RAW_STORE;
	cfg.spill_max = 4 * MIB + 1000;
	t_rc(tmem_store_create_spill(&cfg, &mem_ops, &m, 4096, &s), 0);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_MAX), 4 * MIB);
	mem_store_free(&m, s);
	mem_fini(&m);
}

int main(void)
{
	test_args();
	test_roundtrip(512);
	test_roundtrip(4096);
	test_discard();
	test_write_error();
	test_declined();
	test_read_error();
	test_threads();
	test_destroy();
	return T_EXIT_PASS;
}
