/* SPDX-License-Identifier: MIT */
/*
 * t_stress: threads hammering one store while the budget swings between
 * 0 and plenty (with spill) and a flusher drops objects under them.
 *
 * Phase 1: four workers own disjoint keys, so each knows exactly which
 * page must be under each of its keys: every persistent get must return
 * exactly that page, every ephemeral hit the latest put, and an
 * ephemeral miss stays a miss.  The flusher owns keys of its own in the
 * persistent pool (flush_object counts must be exact) and drops the
 * workers' ephemeral objects and pool at random.
 *
 * Phase 2: the workers share a few keys.  Nobody can know which version
 * is current, so pages carry a header (key, version, check word) and a
 * body derived from both: a hit must be a whole, uncorrupted page that
 * was put under that very key.
 *
 * Then, quiet: at budget 0 everything persistent must be on spill and
 * read back exactly, and at a big budget again too.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "helpers.h"

#define NWORKERS	4
#define NOBJ		16
#define NIDX		16
#define NKEYS		(NOBJ * NIDX)	/* per worker, per pool */
#define NSHARED		64
#define LEN		T_PAGE_4K
#define MAGIC		0x7473747265737321ull

struct worker {
	pthread_t thread;
	int id;
	struct t_rng rng;
	uint64_t ptag[NKEYS];	/* persistent pool: exact */
	uint64_t etag[NKEYS];	/* ephemeral pool: latest put, or 0 */
	uint64_t btag[NIDX];	/* 64 KiB persistent pool */
	uint64_t ops, hits, ehits, emisses;
};

static struct tmem_store *store;
static char spill_dir[T_PATH_MAX];
static int pool_p, pool_e, pool_big, pool_s;
static struct worker workers[NWORKERS];
static atomic_bool stop_helpers;
static atomic_int phase;
static uint64_t seed, nops1, nops2;
static _Atomic uint64_t versions[NSHARED];
static atomic_ulong flusher_rounds, budget_changes, shared_hits;
static atomic_ulong persistent_refused;

static struct tmem_key wkey(int w, uint32_t k)
{
	return t_key3((uint64_t)w + 1, k / NIDX, 0x5157, k % NIDX);
}

static uint64_t wtag(struct worker *w)
{
	static const enum t_kind kinds[] = { T_COMP, T_COMP, T_SAME, T_RAND,
					     T_HALF };

	return t_tag(kinds[t_rand_below(&w->rng, 5)],
		     (t_rand(&w->rng) & 0xffffffffffffull) | 1);
}

/* ------------------------------------------------------------------ */
/* Phase 1: disjoint keys, exact expectations                          */

static void w_put(struct worker *w, int pool, uint64_t *tags, uint32_t k,
		  size_t len, bool persistent)
{
	struct tmem_key key = wkey(w->id, k);
	uint64_t tag = wtag(w);
	int rc = t_put_tag(store, pool, &key, tag, len);

	/*
	 * Persistent puts may be refused too: a new key's index entry
	 * needs RAM, which a budget dip to (next to) nothing may not have.
	 * A refused put leaves the key empty.
	 */
	if (rc && rc != -ENOSPC)
		t_fail("worker %d: %s put: %s", w->id,
		       persistent ? "persistent" : "ephemeral", t_errname(rc));
	if (rc && persistent)
		atomic_fetch_add(&persistent_refused, 1);
	tags[k] = rc ? 0 : tag;
}

static void w_get(struct worker *w, int pool, uint64_t *tags, uint32_t k,
		  size_t len, bool persistent, bool excl)
{
	struct tmem_key key = wkey(w->id, k);
	int rc = excl ? t_getx_check(store, pool, &key, tags[k], len) :
			t_get_check(store, pool, &key, tags[k], len);

	if (rc == 0) {
		if (!tags[k])
			t_fail("worker %d: key %u hit, should be empty (%s)",
			       w->id, k, persistent ? "persistent" :
			       "ephemeral, missed before");
		w->hits += persistent;
		w->ehits += !persistent;
		if (excl)
			tags[k] = 0;
		return;
	}
	if (rc != -ENOENT)
		t_fail("worker %d: get: %s", w->id, t_errname(rc));
	if (persistent && tags[k])
		t_fail("worker %d: persistent key %u lost (tag %llx)", w->id, k,
		       (unsigned long long)tags[k]);
	w->emisses += !persistent;
	tags[k] = 0;
}

static void w_flush(struct worker *w, int pool, uint64_t *tags, uint32_t k,
		    bool persistent)
{
	struct tmem_key key = wkey(w->id, k);
	int rc = tmem_flush_page(store, pool, &key);

	if (rc == 0 && !tags[k])
		t_fail("worker %d: flushed a page that is not there", w->id);
	if (rc && (rc != -ENOENT || (persistent && tags[k])))
		t_fail("worker %d: flush_page: %s", w->id, t_errname(rc));
	tags[k] = 0;
}

static void phase1_op(struct worker *w)
{
	uint32_t k = (uint32_t)t_rand_below(&w->rng, NKEYS);
	uint64_t r = t_rand_below(&w->rng, 100);

	if (r < 30)
		w_put(w, pool_p, w->ptag, k, LEN, true);
	else if (r < 55)
		w_get(w, pool_p, w->ptag, k, LEN, true, false);
	else if (r < 60)
		w_get(w, pool_p, w->ptag, k, LEN, true, true);
	else if (r < 64)
		w_flush(w, pool_p, w->ptag, k, true);
	else if (r < 77)
		w_put(w, pool_e, w->etag, k, LEN, false);
	else if (r < 90)
		w_get(w, pool_e, w->etag, k, LEN, false, false);
	else if (r < 92)
		w_get(w, pool_e, w->etag, k, LEN, false, true);
	else if (r < 94)
		w_flush(w, pool_e, w->etag, k, false);
	else if (r < 97)
		w_put(w, pool_big, w->btag, k % NIDX, T_PAGE_64K, true);
	else
		w_get(w, pool_big, w->btag, k % NIDX, T_PAGE_64K, true, false);
}

/* ------------------------------------------------------------------ */
/* Phase 2: shared keys, self-checking pages                           */

static struct tmem_key skey(uint32_t k)
{
	return t_key3(0x5aed, k % 4, k / 4, k * 7);
}

static uint64_t stag(uint32_t k, uint64_t version)
{
	static const enum t_kind kinds[] = { T_COMP, T_RAND, T_HALF };

	return t_tag(kinds[version % 3], ((uint64_t)k << 40) ^ version);
}

static void shared_put(struct worker *w, uint32_t k, unsigned char *buf)
{
	uint64_t v = atomic_fetch_add(&versions[k], 1) + 1;
	uint64_t hdr[4] = { MAGIC, k, v, t_mix64(MAGIC ^ k ^ (v << 8)) };
	struct tmem_key key = skey(k);
	int rc;

	t_page_fill(buf, LEN, stag(k, v));
	memcpy(buf, hdr, sizeof(hdr));
	rc = tmem_put(store, pool_s, &key, buf, LEN);
	if (rc && rc != -ENOSPC)
		t_fail("worker %d: shared put: %s", w->id, t_errname(rc));
}

/* A hit must be a page put under key @k, whole and unmixed. */
static void shared_check(uint32_t k, const unsigned char *buf)
{
	uint64_t hdr[4], tag;
	size_t i;

	memcpy(hdr, buf, sizeof(hdr));
	if (hdr[0] != MAGIC || hdr[1] != k ||
	    hdr[3] != t_mix64(MAGIC ^ k ^ (hdr[2] << 8)))
		t_fail("shared key %u: bad header %llx %llx %llx %llx", k,
		       (unsigned long long)hdr[0], (unsigned long long)hdr[1],
		       (unsigned long long)hdr[2], (unsigned long long)hdr[3]);
	if (hdr[2] == 0 || hdr[2] > atomic_load(&versions[k]))
		t_fail("shared key %u: version %llu was never put", k,
		       (unsigned long long)hdr[2]);
	tag = stag(k, hdr[2]);
	for (i = 4; i < LEN / 8; i++) {
		uint64_t want = t_page_word(tag, LEN, i), got;

		memcpy(&got, buf + i * 8, 8);
		if (got != want)
			t_fail("shared key %u version %llu: body differs "
			       "at byte %zu", k, (unsigned long long)hdr[2],
			       i * 8);
	}
}

static void phase2_op(struct worker *w, unsigned char *buf)
{
	uint32_t k = (uint32_t)t_rand_below(&w->rng, NSHARED);
	uint64_t r = t_rand_below(&w->rng, 100);
	struct tmem_key key = skey(k);
	int rc;

	if (r < 40) {
		shared_put(w, k, buf);
		return;
	}
	if (r < 45) {
		rc = tmem_flush_page(store, pool_s, &key);
		if (rc && rc != -ENOENT)
			t_fail("shared flush: %s", t_errname(rc));
		return;
	}
	memset(buf + LEN, T_CANARY_BYTE, T_CANARY_LEN);
	rc = r < 50 ? tmem_get_exclusive(store, pool_s, &key, buf, LEN) :
		      tmem_get(store, pool_s, &key, buf, LEN);
	t_canary_verify(buf, LEN);
	if (rc == 0) {
		shared_check(k, buf);
		atomic_fetch_add_explicit(&shared_hits, 1,
					  memory_order_relaxed);
	} else if (rc != -ENOENT) {
		t_fail("shared get: %s", t_errname(rc));
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *buf = t_buf_alloc(LEN);
	uint64_t i;

	for (i = 0; i < nops1; i++, w->ops++)
		phase1_op(w);
	/* Wait for everyone, so phase 2 really is shared. */
	atomic_fetch_add(&phase, 1);
	while (atomic_load(&phase) < NWORKERS)
		t_sleep_ms(1);
	for (i = 0; i < nops2; i++, w->ops++)
		phase2_op(w, buf);
	free(buf);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Helpers that run beside the workers                                 */

/*
 * The budget swings: short dips to nothing or next to nothing (where
 * every persistent put waits for spill I/O), longer stretches with room.
 */
static void *budget_main(void *arg)
{
	static const uint64_t budgets[] = {
		0, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20,
		1ull << 40, 1ull << 40,
	};
	struct t_rng rng = { seed ^ 0xb0d6e7 };

	while (!atomic_load(&stop_helpers)) {
		uint64_t b = budgets[t_rand_below(&rng, 8)];
		unsigned int hold = b < (1 << 20) ? 4 : 20;
		int rc = tmem_set_budget(store, b);

		if (rc)
			t_fail("set_budget: %s", t_errname(rc));
		atomic_fetch_add(&budget_changes, 1);
		t_sleep_ms(1 + (unsigned int)t_rand_below(&rng, hold));
	}
	return NULL;
}

/*
 * The flusher: exact flush_object counts on its own persistent object,
 * and random drops of the workers' ephemeral pages.
 */
static void *flusher_main(void *arg)
{
	struct t_rng rng = { seed ^ 0xf1a54e };
	uint64_t round = 0;

	while (!atomic_load(&stop_helpers)) {
		uint32_t n = 1 + (uint32_t)t_rand_below(&rng, 8), i, ok = 0;
		struct tmem_key key;
		uint64_t oid[3];
		int rc = 0;

		for (i = 0; i < n; i++) {
			key = t_key3(100, round, 0, i);
			rc = t_put_tag(store, pool_p, &key,
				       t_tag(T_HALF, i + 1), LEN);
			if (rc && rc != -ENOSPC)
				t_fail("flusher put: %s", t_errname(rc));
			ok += !rc;
		}
		/* The last page is there, or (refused) it is not. */
		t_rc(t_get_check(store, pool_p, &key,
				 rc ? 0 : t_tag(T_HALF, n), LEN),
		     rc ? -ENOENT : 0);
		t_rc(tmem_flush_object(store, pool_p, key.oid), ok);
		t_rc(t_get_check(store, pool_p, &key, 0, LEN), -ENOENT);

		/* A worker's ephemeral object, or the shared keys. */
		key = wkey((int)t_rand_below(&rng, NWORKERS),
			   (uint32_t)t_rand_below(&rng, NKEYS));
		memcpy(oid, key.oid, sizeof(oid));
		t_assert(tmem_flush_object(store, pool_e, oid) >= 0);
		if (atomic_load(&phase) >= NWORKERS) {
			key = skey((uint32_t)t_rand_below(&rng, NSHARED));
			t_assert(tmem_flush_object(store, pool_s,
						   key.oid) >= 0);
		}
		if (round % 64 == 63)
			t_assert(tmem_flush_pool(store, pool_e) >= 0);
		round++;
		atomic_fetch_add(&flusher_rounds, 1);
		t_sleep_ms(1);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */

static void verify_quiet(void)
{
	uint32_t k;
	int w;

	for (w = 0; w < NWORKERS; w++) {
		struct worker *wk = &workers[w];

		for (k = 0; k < NKEYS; k++) {
			struct tmem_key key = wkey(w, k);

			t_rc(t_get_check(store, pool_p, &key, wk->ptag[k], LEN),
			     wk->ptag[k] ? 0 : -ENOENT);
		}
		for (k = 0; k < NIDX; k++) {
			struct tmem_key key = wkey(w, k);
			uint64_t tag = wk->btag[k];

			t_rc(t_get_check(store, pool_big, &key, tag,
					 T_PAGE_64K), tag ? 0 : -ENOENT);
		}
	}
	for (k = 0; k < NSHARED; k++) {
		struct tmem_key key = skey(k);
		unsigned char *buf = t_buf_alloc(LEN);
		int rc = tmem_get(store, pool_s, &key, buf, LEN);

		if (rc == 0)
			shared_check(k, buf);
		else
			t_rc(rc, -ENOENT);
		free(buf);
	}
}

/*
 * With no call in flight, the reclaim thread moving pages to spill must
 * not make the page gauges flicker: "each value on its own is exact".
 * Bring the workers' pages back to RAM (same bytes), cut the budget to 0
 * and watch the gauges while they drain.
 */
static void watch_reclaim(void)
{
	uint64_t pages, bytes, samples = 0, end;
	struct tmem_stats st;
	uint32_t k;
	int w;

	t_rc(tmem_set_budget(store, 1ull << 40), 0);
	for (w = 0; w < NWORKERS; w++)
		for (k = 0; k < NKEYS; k++) {
			struct tmem_key key = wkey(w, k);

			if (workers[w].ptag[k])
				t_rc(t_put_tag(store, pool_p, &key,
					       workers[w].ptag[k], LEN), 0);
		}
	t_stats(store, &st);
	pages = st.v[TMEM_STAT_PAGES_PERSISTENT];
	bytes = st.v[TMEM_STAT_BYTES_PERSISTENT];
	t_rc(tmem_set_budget(store, 0), 0);
	end = t_now_ms() + 10000;
	do {
		t_stats(store, &st);
		samples++;
		if (st.v[TMEM_STAT_PAGES_PERSISTENT] != pages ||
		    st.v[TMEM_STAT_BYTES_PERSISTENT] != bytes)
			t_fail("gauges moved with no call in flight, during "
			       "reclaim (sample %llu): pages %llu -> %llu, "
			       "bytes %llu -> %llu",
			       (unsigned long long)samples,
			       (unsigned long long)pages,
			       (unsigned long long)
			       st.v[TMEM_STAT_PAGES_PERSISTENT],
			       (unsigned long long)bytes,
			       (unsigned long long)
			       st.v[TMEM_STAT_BYTES_PERSISTENT]);
	} while (st.v[TMEM_STAT_RAM_DATA] && t_now_ms() < end);
	printf("reclaim watched over %llu samples\n",
	       (unsigned long long)samples);
}

/* Persistent pages the workers hold in @pool, and how many same-filled. */
static uint64_t count_persistent(int pool, uint64_t *same)
{
	uint32_t k, nk = pool == pool_p ? NKEYS : NIDX;
	uint64_t n = 0;
	int w;

	for (w = 0; w < NWORKERS; w++) {
		for (k = 0; k < nk; k++) {
			uint64_t tag = pool == pool_p ? workers[w].ptag[k] :
							workers[w].btag[k];

			n += tag != 0;
			*same += tag && t_tag_kind(tag) == T_SAME;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	pthread_t budget_thread, flusher_thread;
	uint64_t np, nbig, same, shared_pages;
	int w;

	seed = t_seed(argc, argv);
	nops1 = t_iters(150000);
	nops2 = t_iters(100000);
	store = t_store_new(4 << 20, spill_dir, 1ull << 30);
	pool_p = t_pool_new(store, TMEM_PERSISTENT, LEN);
	pool_e = t_pool_new(store, TMEM_EPHEMERAL, LEN);
	pool_big = t_pool_new(store, TMEM_PERSISTENT, T_PAGE_64K);
	pool_s = t_pool_new(store, TMEM_PERSISTENT, LEN);

	for (w = 0; w < NWORKERS; w++) {
		workers[w].id = w;
		workers[w].rng.s = seed ^ t_mix64((uint64_t)w + 1);
		t_rc(pthread_create(&workers[w].thread, NULL, worker_main,
				    &workers[w]), 0);
	}
	t_rc(pthread_create(&budget_thread, NULL, budget_main, NULL), 0);
	t_rc(pthread_create(&flusher_thread, NULL, flusher_main, NULL), 0);
	for (w = 0; w < NWORKERS; w++)
		t_rc(pthread_join(workers[w].thread, NULL), 0);
	atomic_store(&stop_helpers, true);
	t_rc(pthread_join(budget_thread, NULL), 0);
	t_rc(pthread_join(flusher_thread, NULL), 0);

	for (w = 0; w < NWORKERS; w++)
		printf("worker %d: %llu ops, %llu persistent hits, %llu "
		       "ephemeral hits, %llu ephemeral misses\n", w,
		       (unsigned long long)workers[w].ops,
		       (unsigned long long)workers[w].hits,
		       (unsigned long long)workers[w].ehits,
		       (unsigned long long)workers[w].emisses);
	printf("%lu budget changes, %lu flusher rounds, %lu shared hits, "
	       "%lu persistent puts refused, %llu spills\n",
	       atomic_load(&budget_changes), atomic_load(&flusher_rounds),
	       atomic_load(&shared_hits), atomic_load(&persistent_refused),
	       (unsigned long long)t_stats_get(store, TMEM_STAT_SPILLS));
	/* The run must have been a real one. */
	t_assert(atomic_load(&budget_changes) > 10);
	t_assert(atomic_load(&flusher_rounds) > 10);
	t_assert(atomic_load(&shared_hits) > 0);
	t_assert(t_stats_get(store, TMEM_STAT_SPILLS) > 0);
	t_eq(t_stats_get(store, TMEM_STAT_SPILL_WRITE_ERRORS), 0);
	t_eq(t_stats_get(store, TMEM_STAT_GET_ERRORS), 0);

	watch_reclaim();

	/* Quiet now: check every page at budget 0, all on spill... */
	t_rc(tmem_set_budget(store, 0), 0);
	same = 0;
	np = count_persistent(pool_p, &same);
	nbig = count_persistent(pool_big, &same);
	t_wait_stat_or_fail(store, TMEM_STAT_RAM_DATA, T_EQ, 0, 10000);
	t_wait_stat_or_fail(store, TMEM_STAT_PAGES_EPHEMERAL, T_EQ, 0, 10000);
	shared_pages = t_stats_get(store, TMEM_STAT_PAGES_PERSISTENT) - np -
		       nbig;
	t_assert(shared_pages <= NSHARED);
	/* Shared pages are never same-filled: they carry a header. */
	t_eq(t_stats_get(store, TMEM_STAT_PAGES_SPILLED),
	     np + nbig - same + shared_pages);
	verify_quiet();
	/* ...and again with room. */
	t_rc(tmem_set_budget(store, 1ull << 40), 0);
	verify_quiet();

	t_rc(tmem_pool_destroy(store, pool_p), np);
	t_rc(tmem_pool_destroy(store, pool_big), nbig);
	t_rc(tmem_pool_destroy(store, pool_s), shared_pages);
	t_assert(tmem_pool_destroy(store, pool_e) >= 0);
	t_wait_stat_or_fail(store, TMEM_STAT_RAM_USED, T_EQ, 0, 10000);
	t_wait_stat_or_fail(store, TMEM_STAT_SPILL_USED, T_EQ, 0, 10000);
	t_store_free(store, spill_dir);
	return T_EXIT_PASS;
}
