/* SPDX-License-Identifier: MIT */
/*
 * t_batch: tmem_get_batch.  A batch mixing pages in RAM, spilled pages,
 * same-filled pages and missing keys, in 4 KiB and 64 KiB pools, gives
 * every page the bytes and the result tmem_get gives it; exclusive
 * batches flush what they read, once per key; bad arguments fail as the
 * header says.  And while a batch is parked between looking its keys up
 * and reading them (the READ_STALL gate), its keys are flushed and
 * overwritten and their extents reused by other pages: the batch must
 * still return each page whole, as it was or as it became, or a miss,
 * never another page's bytes.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "fault.h"
#include "helpers.h"

#define MIB	(1ull << 20)

static void watchdog(int sig)
{
	static const char msg[] = "FAIL: batch get hung (watchdog)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static uint64_t mtag(uint32_t i)
{
	static const enum t_kind kinds[] = { T_COMP, T_RAND, T_HALF, T_SAME,
					     T_HALF, T_COMP, T_RAND };

	return t_tag(kinds[i % 7], i * 7919u + 1);
}

struct batch {
	uint32_t n;
	size_t len;
	struct tmem_key *keys;
	void **bufs;
	int *res;
};

static void batch_new(struct batch *b, uint32_t n, size_t len)
{
	b->n = n;
	b->len = len;
	b->keys = calloc(n, sizeof(*b->keys));
	b->bufs = calloc(n, sizeof(*b->bufs));
	b->res = calloc(n, sizeof(*b->res));
	t_assert(b->keys && b->bufs && b->res);
	for (uint32_t i = 0; i < n; i++)
		b->bufs[i] = t_buf_alloc(len);
}

static void batch_free(struct batch *b)
{
	for (uint32_t i = 0; i < b->n; i++)
		free(b->bufs[i]);
	free(b->keys);
	free(b->bufs);
	free(b->res);
}

/* Run the batch; check the canaries and that the count matches res[]. */
static int batch_run(struct tmem_store *s, int pool, struct batch *b,
		     unsigned int flags)
{
	int rc, hits = 0;

	for (uint32_t i = 0; i < b->n; i++) {
		memset(b->bufs[i], 0x5a, b->len);
		b->res[i] = 12345;
	}
	rc = tmem_get_batch(s, pool, b->keys, b->bufs, b->res, b->n, b->len,
			    flags);
	for (uint32_t i = 0; i < b->n; i++) {
		t_canary_verify(b->bufs[i], b->len);
		hits += b->res[i] == 0;
	}
	if (rc != hits)
		t_fail("tmem_get_batch returned %d, %d pages have res 0", rc,
		       hits);
	return rc;
}

/*
 * One pool of @len pages: @n keys, a third left in RAM and the rest
 * spilled, some flushed, some overwritten after the spill (back in
 * RAM), plus keys never put; then batches over all of it, shuffled, in
 * several sizes.  Every result must equal tmem_get's, byte for byte.
 */
static void test_mixed(size_t len, uint32_t n, uint64_t seed)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(256 * MIB, dir, 256 * MIB);
	int p = t_pool_new(s, TMEM_PERSISTENT, (uint32_t)len);
	unsigned char *ref = t_buf_alloc(len);
	uint32_t total = n + n / 4, sizes[] = { 1, 7, 64, 65, total };
	uint64_t *tag = calloc(total, sizeof(*tag));
	uint64_t v0[TMEM_STAT__COUNT], v1[TMEM_STAT__COUNT];
	struct t_rng rng = { seed };
	struct tmem_key k;
	struct batch b;
	uint32_t i, spilled, order_n = total;
	uint32_t *order = calloc(total, sizeof(*order));

	t_assert(tag && order);
	for (i = 0; i < 2 * n / 3; i++) {
		k = t_key(5, i);
		tag[i] = mtag(i);
		t_rc(t_put_tag(s, p, &k, tag[i], len), 0);
	}
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_RAM_DATA, T_EQ, 0, 20000);
	spilled = (uint32_t)t_stats_get(s, TMEM_STAT_PAGES_SPILLED);
	t_assert(spilled > n / 3);
	t_rc(tmem_set_budget(s, 256 * MIB), 0);
	for (; i < n; i++) {
		k = t_key(5, i);
		tag[i] = mtag(i);
		t_rc(t_put_tag(s, p, &k, tag[i], len), 0);
	}
	for (i = 0; i < n; i += 11) {		/* flushed */
		k = t_key(5, i);
		t_rc(tmem_flush_page(s, p, &k), 0);
		tag[i] = 0;
	}
	for (i = 3; i < 2 * n / 3; i += 13) {	/* spilled, then overwritten */
		k = t_key(5, i);
		tag[i] = t_tag(T_COMP, 1000000 + i);
		t_rc(t_put_tag(s, p, &k, tag[i], len), 0);
	}
	/* keys n .. total were never put */
	t_assert(t_stats_get(s, TMEM_STAT_PAGES_SPILLED) > n / 4);

	for (i = 0; i < total; i++)
		order[i] = i;
	for (uint32_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		uint32_t m = sizes[z] < total ? sizes[z] : total;
		int hits;

		for (i = order_n; i > 1; i--) {
			uint32_t j = (uint32_t)t_rand_below(&rng, i), x;

			x = order[i - 1];
			order[i - 1] = order[j];
			order[j] = x;
		}
		batch_new(&b, m, len);
		for (i = 0; i < m; i++)
			b.keys[i] = t_key(5, order[i]);
		t_stat_values(s, v0);
		hits = batch_run(s, p, &b, 0);
		t_stat_values(s, v1);
		for (i = 0; i < m; i++) {
			uint32_t x = order[i];
			int want;

			want = tmem_get(s, p, &b.keys[i], ref, len);
			t_rc(b.res[i], want);
			t_rc(want, tag[x] ? 0 : -ENOENT);
			if (!want) {
				if (memcmp(ref, b.bufs[i], len))
					t_fail("key %u: batch and tmem_get "
					       "differ", x);
				t_page_verify(b.bufs[i], len, tag[x]);
			}
		}
		t_eq(v1[TMEM_STAT_GET_HITS_RAM] + v1[TMEM_STAT_GET_HITS_SPILL] -
		     v0[TMEM_STAT_GET_HITS_RAM] - v0[TMEM_STAT_GET_HITS_SPILL],
		     hits);
		t_eq(v1[TMEM_STAT_GET_MISSES] - v0[TMEM_STAT_GET_MISSES],
		     m - hits);
		t_eq(v1[TMEM_STAT_SPILL_READS] - v0[TMEM_STAT_SPILL_READS],
		     v1[TMEM_STAT_GET_HITS_SPILL] -
		     v0[TMEM_STAT_GET_HITS_SPILL]);
		if (m == total)
			t_assert(v1[TMEM_STAT_GET_HITS_SPILL] >
				 v0[TMEM_STAT_GET_HITS_SPILL] + n / 8);
		batch_free(&b);
	}
	/* Nothing was flushed or moved by those reads. */
	t_eq(t_stats_get(s, TMEM_STAT_GET_ERRORS), 0);
	for (i = 0; i < total; i++) {
		k = t_key(5, i);
		t_rc(t_get_check(s, p, &k, tag[i], len), tag[i] ? 0 : -ENOENT);
	}
	printf("mixed %zu: %u keys, %u spilled\n", len, total, spilled);
	free(order);
	free(tag);
	free(ref);
	t_store_free(s, dir);
}

/*
 * TMEM_GET_EXCLUSIVE: each page read is flushed, a key given twice is
 * found once, and a page whose read failed stays.
 */
static void test_exclusive(void)
{
	enum { N = 150 };
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(256 * MIB, dir, 256 * MIB);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	struct tmem_key k;
	struct batch b;
	uint32_t i, m = N + N / 3, kept = 0;
	int hit[N] = { 0 }, eio[N] = { 0 }, rc;

	for (i = 0; i < N; i++) {
		k = t_key(6, i);
		t_rc(t_put_tag(s, p, &k, mtag(i), T_PAGE_4K), 0);
	}
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_RAM_DATA, T_EQ, 0, 20000);
	t_rc(tmem_set_budget(s, 256 * MIB), 0);
	for (i = 0; i < N; i += 5) {		/* back in RAM */
		k = t_key(6, i);
		t_rc(t_put_tag(s, p, &k, mtag(i), T_PAGE_4K), 0);
	}
	batch_new(&b, m, T_PAGE_4K);
	for (i = 0; i < m; i++)			/* a third of them twice */
		b.keys[i] = t_key(6, i < N ? i : (i - N) * 3);
	/* One read fails: that page is not flushed. */
	tm_fault_arm(TM_FAULT_SPILL_READ, 10, 1);
	rc = batch_run(s, p, &b, TMEM_GET_EXCLUSIVE);
	t_eq(tm_fault_hits(TM_FAULT_SPILL_READ), 1);
	tm_fault_reset();
	for (i = 0; i < m; i++) {
		uint32_t x = (uint32_t)b.keys[i].index;

		if (b.res[i] == 0) {
			t_page_verify(b.bufs[i], T_PAGE_4K, mtag(x));
			hit[x]++;
		} else if (b.res[i] == -EIO) {
			eio[x]++;
		} else {
			t_rc(b.res[i], -ENOENT);
		}
	}
	/* Found once and gone; or its read failed, and it stays. */
	for (i = 0; i < N; i++) {
		k = t_key(6, i);
		if (hit[i] > 1)
			t_fail("key %u found %d times by an exclusive batch",
			       i, hit[i]);
		if (!hit[i] && !eio[i])
			t_fail("key %u neither found nor failed", i);
		t_rc(t_getx_check(s, p, &k, mtag(i), T_PAGE_4K),
		     hit[i] ? -ENOENT : 0);
		kept += !hit[i];
	}
	/* The failed key stays, unless it was given twice and read once. */
	t_assert(kept <= 1);
	t_eq(rc, N - kept);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), 0);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_USED), 0);
	batch_free(&b);
	t_store_free(s, dir);
}

static void test_args(void)
{
	struct tmem_store *s = t_store_new(16 * MIB, NULL, 0);
	int p = t_pool_new(s, TMEM_EPHEMERAL, T_PAGE_4K);
	struct tmem_key k = t_key(7, 1);
	struct batch b;
	int res[2] = { 99, 99 };

	t_rc(t_put_tag(s, p, &k, mtag(1), T_PAGE_4K), 0);
	batch_new(&b, 2, T_PAGE_4K);
	b.keys[0] = k;
	b.keys[1] = t_key(7, 2);
	t_rc(tmem_get_batch(NULL, p, b.keys, b.bufs, res, 2, 4096, 0),
	     -EINVAL);
	t_rc(tmem_get_batch(s, p, NULL, b.bufs, res, 2, 4096, 0), -EINVAL);
	t_rc(tmem_get_batch(s, p, b.keys, NULL, res, 2, 4096, 0), -EINVAL);
	t_rc(tmem_get_batch(s, p, b.keys, b.bufs, NULL, 2, 4096, 0), -EINVAL);
	t_rc(tmem_get_batch(s, p, b.keys, b.bufs, res, 2, 8192, 0), -EINVAL);
	t_rc(tmem_get_batch(s, p, b.keys, b.bufs, res, 2, 4096, 2), -EINVAL);
	t_rc(tmem_get_batch(s, p, b.keys, b.bufs, res, 1u << 31, 4096, 0),
	     -EINVAL);
	t_rc(tmem_get_batch(s, p + 1, b.keys, b.bufs, res, 2, 4096, 0),
	     -EBADF);
	t_rc(tmem_get_batch(s, -1, b.keys, b.bufs, res, 2, 4096, 0), -EBADF);
	t_eq(res[0], 99);
	t_eq(res[1], 99);
	t_rc(tmem_get_batch(s, p, NULL, NULL, NULL, 0, 4096, 0), 0);

	/* A NULL buffer fails its page only. */
	free(b.bufs[1]);
	b.bufs[1] = NULL;
	t_rc(tmem_get_batch(s, p, b.keys, b.bufs, b.res, 2, 4096, 0), 1);
	t_rc(b.res[0], 0);
	t_rc(b.res[1], -EINVAL);
	t_page_verify(b.bufs[0], T_PAGE_4K, mtag(1));
	b.n = 1;
	batch_free(&b);

	/* A pool destroyed: -EBADF for the call. */
	t_rc(tmem_pool_destroy(s, p), 1);
	batch_new(&b, 1, T_PAGE_4K);
	b.keys[0] = k;
	t_rc(tmem_get_batch(s, p, b.keys, b.bufs, b.res, 1, 4096, 0), -EBADF);
	batch_free(&b);
	t_store_free(s, NULL);
}

/*
 * Races.  A spill file just big enough for the pages, so that extents a
 * flush or an overwrite frees are handed out again at once.  A batch
 * over every key parks after its lookups, before its reads go out; then
 * keys are flushed, others overwritten (at budget 0 the new pages go
 * straight to spill, into the freed extents).  Reads of those extents
 * now find other pages' bytes, which the batch must never return.
 */
#define NRACE	64

struct racer {
	struct tmem_store *s;
	int pool;
	unsigned int flags;
	struct batch b;
	int rc;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	r->rc = tmem_get_batch(r->s, r->pool, r->b.keys, r->b.bufs, r->b.res,
			       r->b.n, r->b.len, r->flags);
	return NULL;
}

static void test_race(unsigned int flags, uint64_t seed)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(64 * MIB, dir, NRACE * T_PAGE_4K);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	uint64_t old[NRACE], cur[NRACE], end;
	struct t_rng rng = { seed };
	struct racer r = { .s = s, .pool = p, .flags = flags };
	struct tmem_key k;
	pthread_t th;
	uint32_t i, flushed = 0, changed = 0, reused;

	/* Raw pages: one 4 KiB extent each, the file full. */
	for (i = 0; i < NRACE; i++) {
		k = t_key(8, i);
		old[i] = cur[i] = t_tag(T_RAND, seed * 1000 + i);
		t_rc(t_put_tag(s, p, &k, old[i], T_PAGE_4K), 0);
	}
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, NRACE, 20000);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_USED), NRACE * T_PAGE_4K);

	batch_new(&r.b, NRACE, T_PAGE_4K);
	for (i = 0; i < NRACE; i++)
		r.b.keys[i] = t_key(8, i);
	tm_fault_arm(TM_FAULT_READ_STALL, 0, 1);
	t_rc(pthread_create(&th, NULL, racer_main, &r), 0);
	end = t_now_ms() + 10000;
	while (tm_fault_hits(TM_FAULT_READ_STALL) == 0) {
		if (t_now_ms() > end)
			t_fail("the batch never reached its reads");
		t_sleep_ms(1);
	}
	/*
	 * Parked.  A random quarter flushed (key 0 always, so that there is
	 * a hole), then another quarter overwritten.
	 */
	for (i = 0; i < NRACE; i++) {
		uint64_t x = t_rand_below(&rng, 4);

		k = t_key(8, i);
		if (i == 0 || x == 0) {
			t_rc(tmem_flush_page(s, p, &k), 0);
			cur[i] = 0;
			flushed++;
		} else if (x == 1) {
			cur[i] = t_tag(T_RAND, seed * 1000 + 500 + i);
		}
	}
	for (i = 0; i < NRACE; i++) {
		k = t_key(8, i);
		if (!cur[i] || cur[i] == old[i])
			continue;
		t_rc(t_put_tag(s, p, &k, cur[i], T_PAGE_4K), 0);
		changed++;
	}
	/* The file is full again: the overwrites took freed extents. */
	reused = (uint32_t)(t_stats_get(s, TMEM_STAT_SPILL_USED) / T_PAGE_4K);
	t_eq(reused, NRACE - flushed);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_DIRECT), changed);
	tm_fault_gate_open();
	t_rc(pthread_join(th, NULL), 0);
	tm_fault_reset();

	t_assert(r.rc >= 0);
	for (i = 0; i < NRACE; i++) {
		int res = r.b.res[i];
		void *buf = r.b.bufs[i];

		if (res == 0) {
			if (t_page_check(buf, T_PAGE_4K, cur[i]) >= 0 &&
			    t_page_check(buf, T_PAGE_4K, old[i]) >= 0)
				t_fail("key %u: the batch returned neither "
				       "its old page nor its new one", i);
			continue;
		}
		t_rc(res, -ENOENT);
		if (cur[i])
			t_fail("key %u: stored all along, yet a miss", i);
	}
	/* After: the store holds exactly the current pages. */
	for (i = 0; i < NRACE; i++) {
		k = t_key(8, i);
		if (flags & TMEM_GET_EXCLUSIVE && r.b.res[i] == 0 &&
		    t_page_check(r.b.bufs[i], T_PAGE_4K, cur[i]) < 0)
			cur[i] = 0;	/* taken by the batch */
		t_rc(t_get_check(s, p, &k, cur[i], T_PAGE_4K),
		     cur[i] ? 0 : -ENOENT);
	}
	printf("race%s: %u flushed, %u overwritten, %d found\n",
	       flags ? " (exclusive)" : "", flushed, changed, r.rc);
	batch_free(&r.b);
	t_store_free(s, dir);
}

/*
 * Threads batch-getting the same spilled keys while another thread
 * flushes and re-puts them and the reclaim thread spills them again:
 * every hit is the page last put under its key, or the one before it.
 */
#define NCONC	256

struct conc {
	struct tmem_store *s;
	int pool;
	_Atomic uint64_t gen[NCONC];	/* tags are (gen << 16 | key) */
	_Atomic bool stop;
	uint64_t hits;
};

static uint64_t ctag(uint64_t gen, uint32_t i)
{
	return t_tag(i % 3 ? T_HALF : T_RAND, gen << 16 | i);
}

static void *conc_getter(void *arg)
{
	struct conc *c = arg;
	struct batch b;
	struct t_rng rng = { (uint64_t)(uintptr_t)&b };

	uint64_t g0[96];

	batch_new(&b, 96, T_PAGE_4K);
	while (!atomic_load(&c->stop)) {
		for (uint32_t i = 0; i < b.n; i++) {
			uint32_t x = (uint32_t)t_rand_below(&rng, NCONC);

			b.keys[i] = t_key(9, x);
			g0[i] = atomic_load(&c->gen[x]);
		}
		batch_run(c->s, c->pool, &b, 0);
		for (uint32_t i = 0; i < b.n; i++) {
			uint32_t x = b.keys[i].index;
			uint64_t g1 = atomic_load(&c->gen[x]), g;
			bool ok = false;

			if (b.res[i] == -ENOENT)
				continue;
			t_rc(b.res[i], 0);
			/*
			 * Stored when the batch began: gen g0 or, its put
			 * not done yet, g0 - 1; and any put since.
			 */
			for (g = g0[i] - 1; g <= g1 && !ok; g++)
				ok = t_page_check(b.bufs[i], T_PAGE_4K,
						  ctag(g, x)) < 0;
			if (!ok)
				t_fail("key %u: a batch returned a page never "
				       "put under it (gens %llu..%llu)", x,
				       (unsigned long long)g0[i] - 1,
				       (unsigned long long)g1);
			c->hits++;
		}
	}
	batch_free(&b);
	return NULL;
}

static void test_concurrent(void)
{
	char dir[T_PATH_MAX];
	struct conc *c = calloc(1, sizeof(*c));
	uint64_t end, rounds = 0;
	pthread_t th[2];
	struct t_rng rng = { 42 };
	struct tmem_key k;
	uint32_t i;

	t_assert(c);
	c->s = t_store_new(1 * MIB, dir, 64 * MIB);
	c->pool = t_pool_new(c->s, TMEM_PERSISTENT, T_PAGE_4K);
	for (i = 0; i < NCONC; i++) {
		k = t_key(9, i);
		t_rc(t_put_tag(c->s, c->pool, &k, ctag(1, i), T_PAGE_4K), 0);
		atomic_store(&c->gen[i], 1);
	}
	t_rc(tmem_set_budget(c->s, 64 << 10), 0);
	for (i = 0; i < 2; i++)
		t_rc(pthread_create(&th[i], NULL, conc_getter, c), 0);
	end = t_now_ms() + (T_ASAN ? 1500 : 3000);
	while (t_now_ms() < end) {
		uint32_t x = (uint32_t)t_rand_below(&rng, NCONC);
		uint64_t g = atomic_load(&c->gen[x]) + 1;
		int rc;

		k = t_key(9, x);
		/* Publish the new generation first: a getter that sees
		 * the page may have read gen before the put. */
		atomic_store(&c->gen[x], g);
		rc = t_put_tag(c->s, c->pool, &k, ctag(g, x), T_PAGE_4K);
		if (rc == -ENOSPC) {
			atomic_store(&c->gen[x], g + 1);	/* flushed */
			continue;
		}
		t_rc(rc, 0);
		if (++rounds % 64 == 0)
			t_rc(tmem_set_budget(c->s, (rounds / 64) % 2 ?
					     0 : 64 << 10), 0);
	}
	atomic_store(&c->stop, true);
	for (i = 0; i < 2; i++)
		t_rc(pthread_join(th[i], NULL), 0);
	printf("concurrent: %llu puts, %llu batch hits, %llu spilled reads\n",
	       (unsigned long long)rounds, (unsigned long long)c->hits,
	       (unsigned long long)t_stats_get(c->s,
					       TMEM_STAT_GET_HITS_SPILL));
	t_assert(c->hits > 0);
	t_store_free(c->s, dir);
	free(c);
}

int main(int argc, char **argv)
{
	uint64_t seed = t_seed(argc, argv);

	signal(SIGALRM, watchdog);
	alarm(240);
	tm_fault_reset();
	test_args();
	test_mixed(T_PAGE_4K, 600, seed);
	test_mixed(T_PAGE_64K, 90, seed + 1);
	test_exclusive();
	for (uint64_t i = 0; i < 4; i++) {
		test_race(0, seed + i);
		test_race(TMEM_GET_EXCLUSIVE, seed + 10 + i);
	}
	test_concurrent();
	return T_EXIT_PASS;
}
