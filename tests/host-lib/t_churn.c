/* SPDX-License-Identifier: MIT */
/*
 * t_churn: fill, flush 75% at random, refill, again and again.  A store
 * whose guest churns must give back what the flushes free:
 *
 *  - without budget pressure, once the store's own background work has
 *    settled, the slabs hold at most CHURN_DATA_RATIO times the
 *    compressed bytes (compaction) and the index costs at most
 *    CHURN_INDEX_PER_PAGE bytes per live page (index shrink);
 *  - the process's RSS grows by no more than ram_used + ram_fixed plus
 *    a documented slack (docs/host-lib.md, "What the budget does not
 *    cover");
 *  - under a tight budget, a put that needs a new slab compacts sparse
 *    slabs before it spills a persistent page or drops an ephemeral one;
 *  - every live page reads back exactly, throughout.
 */
#include <fcntl.h>

#include "helpers.h"

#define MIB	(1ull << 20)
#define KIB	(1ull << 10)

/* The targets are 1.25 and 40; these are the checked bounds. */
#define CHURN_DATA_RATIO	1.25
#define CHURN_DATA_SLACK	(256 * KIB)	/* a few partial slabs */
#define CHURN_INDEX_PER_PAGE	40.0
#define CHURN_INDEX_SLACK	(64 * KIB)	/* objects, small tables */
/* RSS beyond ram_used + ram_fixed: scratch, malloc, one huge page. */
#define CHURN_RSS_SLACK		(4 * MIB)
#define CHURN_SETTLE_MS		10000

struct churn {
	struct tmem_store *s;
	int pool;
	uint32_t n;		/* keys */
	uint64_t *tag;		/* the page each key holds, or 0 if none */
	uint64_t live;
	struct t_rng rng;
	uint8_t *buf;
};

static struct tmem_key churn_key(uint32_t i)
{
	/* Eight "swap areas", their pages in runs. */
	return t_key(i % 8 + 1, i / 8);
}

/* A realistic mix: mostly compressible, some incompressible, some zero. */
static uint64_t churn_tag(struct t_rng *r)
{
	uint64_t seed = t_rand(r) | 1, k = t_rand_below(r, 20);

	if (k < 8)
		return t_tag(T_HALF, seed);
	if (k < 15)
		return t_tag(T_COMP, seed);
	if (k < 18)
		return t_tag(T_RAND, seed);
	return t_tag(T_SAME, seed);
}

static void churn_put(struct churn *c, uint32_t i, uint64_t tag)
{
	struct tmem_key k = churn_key(i);
	int rc;

	t_page_fill(c->buf, T_PAGE_4K, tag);
	rc = tmem_put(c->s, c->pool, &k, c->buf, T_PAGE_4K);
	if (rc)
		t_fail("put of key %u: %s", i, t_errname(rc));
	c->live += !c->tag[i];
	c->tag[i] = tag;
}

static void churn_fill(struct churn *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (!c->tag[i])
			churn_put(c, i, churn_tag(&c->rng));
}

/* Flush 3 of every 4 live pages, chosen at random. */
static void churn_flush(struct churn *c)
{
	for (uint32_t i = 0; i < c->n; i++) {
		struct tmem_key k = churn_key(i);

		if (!c->tag[i] || !t_chance(&c->rng, 3, 4))
			continue;
		t_rc(tmem_flush_page(c->s, c->pool, &k), 0);
		c->tag[i] = 0;
		c->live--;
	}
}

static void churn_verify(struct churn *c)
{
	for (uint32_t i = 0; i < c->n; i++) {
		struct tmem_key k = churn_key(i);

		if (c->tag[i])
			t_rc(t_get_check(c->s, c->pool, &k, c->tag[i],
					 T_PAGE_4K), 0);
		else if (!(i % 97))
			t_rc(t_get_check(c->s, c->pool, &k, 0, T_PAGE_4K),
			     -ENOENT);
	}
}

/* Resident bytes of this process. */
static uint64_t rss_bytes(void)
{
	unsigned long size, res;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* AnonHugePages of this process, in bytes, or 0. */
static uint64_t rss_huge(void)
{
	char line[256];
	unsigned long kb = 0;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * KIB;
}

struct figures {
	uint64_t data, comp, index, pages, used, fixed;
};

static void figures(struct tmem_store *s, struct figures *f)
{
	uint64_t v[TMEM_STAT__COUNT];

	t_stat_values(s, v);
	f->data = v[TMEM_STAT_RAM_DATA];
	f->comp = v[TMEM_STAT_BYTES_COMPRESSED];
	f->index = v[TMEM_STAT_RAM_INDEX];
	f->pages = v[TMEM_STAT_PAGES_PERSISTENT] + v[TMEM_STAT_PAGES_EPHEMERAL];
	f->used = v[TMEM_STAT_RAM_USED];
	f->fixed = v[TMEM_STAT_RAM_FIXED];
}

static bool figures_ok(const struct figures *f)
{
	return (double)f->data <= CHURN_DATA_RATIO * (double)f->comp +
				  CHURN_DATA_SLACK &&
	       (double)f->index <= CHURN_INDEX_PER_PAGE * (double)f->pages +
				   CHURN_INDEX_SLACK;
}

/*
 * No budget pressure: after each 75% flush the store, left alone for
 * up to CHURN_SETTLE_MS, must come down to the bounds, and the process
 * must not hold much more than the store counts.
 */
static void test_churn_free(uint64_t seed)
{
	const unsigned int rounds = 3;
	struct churn c = { 0 };
	uint64_t rss0, worst_rss = 0;

	c.n = (uint32_t)t_iters(60000);
	c.tag = calloc(c.n, sizeof(*c.tag));
	c.buf = t_buf_alloc(T_PAGE_4K);
	t_assert(c.tag);
	c.rng.s = seed;
	rss0 = rss_bytes();
	c.s = t_store_new(1ull << 30, NULL, 0);
	c.pool = t_pool_new(c.s, TMEM_PERSISTENT, T_PAGE_4K);

	churn_fill(&c);
	for (unsigned int r = 0; r < rounds; r++) {
		struct figures f;
		uint64_t end, rss, cover;

		churn_flush(&c);
		end = t_now_ms() + CHURN_SETTLE_MS;
		do {
			t_sleep_ms(20);
			figures(c.s, &f);
		} while (!figures_ok(&f) && t_now_ms() < end);
		rss = rss_bytes() - rss0;
		cover = f.used + f.fixed;
		printf("round %u: %llu live pages, data/compressed %.3f "
		       "(%llu/%llu), index/page %.1f, rss growth %.1f MiB "
		       "vs ram_used+ram_fixed %.1f MiB (huge %.1f MiB)\n",
		       r, (unsigned long long)f.pages,
		       f.comp ? (double)f.data / (double)f.comp : 0.0,
		       (unsigned long long)f.data,
		       (unsigned long long)f.comp,
		       f.pages ? (double)f.index / (double)f.pages : 0.0,
		       (double)rss / MIB, (double)cover / MIB,
		       (double)rss_huge() / MIB);
		fflush(stdout);
		t_eq(f.pages, c.live);
		if (!figures_ok(&f))
			t_fail("after %u ms: ram_data %llu > %.2f x %llu "
			       "compressed + %llu, or ram_index %llu > %.0f x "
			       "%llu pages + %llu", CHURN_SETTLE_MS,
			       (unsigned long long)f.data, CHURN_DATA_RATIO,
			       (unsigned long long)f.comp,
			       (unsigned long long)CHURN_DATA_SLACK,
			       (unsigned long long)f.index,
			       CHURN_INDEX_PER_PAGE,
			       (unsigned long long)f.pages,
			       (unsigned long long)CHURN_INDEX_SLACK);
		if (rss > worst_rss)
			worst_rss = rss;
		if (!T_ASAN && rss > cover + CHURN_RSS_SLACK)
			t_fail("RSS grew by %llu, ram_used + ram_fixed is "
			       "%llu: more than %llu uncounted",
			       (unsigned long long)rss,
			       (unsigned long long)cover,
			       (unsigned long long)CHURN_RSS_SLACK);
		churn_verify(&c);
		churn_fill(&c);
		churn_verify(&c);
	}
	printf("worst RSS growth %.1f MiB\n", (double)worst_rss / MIB);
	t_store_free(c.s, NULL);
	free(c.tag);
	free(c.buf);
}

/*
 * A tight budget.  Fill it with small pages, flush 75% of them: their
 * slabs are left a quarter full.  Then put larger pages (another size
 * class, so no free slot fits them) that fit the budget only if those
 * slabs are compacted.  Compaction must come first: no persistent page
 * is spilled and no ephemeral page dropped for them.
 */
static void test_churn_pressure(uint64_t seed, enum tmem_pool_kind kind)
{
	char dir[T_PATH_MAX];
	bool pers = kind == TMEM_PERSISTENT;
	struct churn c = { 0 };
	struct figures full, f;
	uint64_t budget = 16 * MIB, room, compact, before;
	uint32_t i, n2;

	c.n = 200000;
	c.tag = calloc(c.n + 20000, sizeof(*c.tag));
	c.buf = t_buf_alloc(T_PAGE_4K);
	t_assert(c.tag);
	c.rng.s = seed;
	c.s = t_store_new(budget, pers ? dir : NULL, 256 * MIB);
	c.pool = t_pool_new(c.s, kind, T_PAGE_4K);

	/* Small pages until 70% of the budget is used. */
	for (i = 0; i < c.n; i++) {
		figures(c.s, &full);
		if (full.used >= budget / 10 * 7)
			break;
		churn_put(&c, i, t_tag(i % 10 ? T_COMP : T_SAME,
				       t_rand(&c.rng) | 1));
	}
	c.n = i;
	figures(c.s, &full);
	churn_flush(&c);
	figures(c.s, &f);
	/*
	 * Room left now, and what compacted slabs would leave: the small
	 * pages' data at ~1.25x, and their index as it was (shrinking it
	 * is a bonus, not counted on).
	 */
	room = budget - f.used;
	compact = (uint64_t)(1.25 * (double)f.comp) + f.index + 2 * MIB;
	t_assert(compact < budget);
	/* T_HALF pages: ~2.1 KiB compressed each, plus ~40 B of index. */
	n2 = (uint32_t)((budget - compact) / 2300);
	printf("%s: %u small pages took %.1f MiB (%.1f data); after the "
	       "flush %llu live, %.1f MiB compressed, %.1f MiB used; "
	       "putting %u half pages (~%.1f MiB) with %.1f MiB room\n",
	       pers ? "persistent" : "ephemeral", c.n,
	       (double)full.used / MIB, (double)full.data / MIB,
	       (unsigned long long)f.pages, (double)f.comp / MIB,
	       (double)f.used / MIB, n2, n2 * 2200.0 / MIB,
	       (double)room / MIB);
	/* The test means something only if they need the compaction. */
	t_assert((uint64_t)n2 * 2100 > room);
	before = t_stats_get(c.s, pers ? TMEM_STAT_SPILLS :
			     TMEM_STAT_EVICTIONS);
	t_eq(before, 0);
	for (i = 0; i < n2; i++)
		churn_put(&c, c.n + i, t_tag(T_HALF, t_rand(&c.rng) | 1));
	c.n += n2;
	figures(c.s, &f);
	printf("after: %.1f MiB used (data %.1f, index %.1f), %llu spills, "
	       "%llu spilled directly, %llu evictions\n",
	       (double)f.used / MIB, (double)f.data / MIB,
	       (double)f.index / MIB,
	       (unsigned long long)t_stats_get(c.s, TMEM_STAT_SPILLS),
	       (unsigned long long)t_stats_get(c.s, TMEM_STAT_SPILL_DIRECT),
	       (unsigned long long)t_stats_get(c.s, TMEM_STAT_EVICTIONS));
	t_eq(t_stats_get(c.s, TMEM_STAT_SPILLS), 0);
	t_eq(t_stats_get(c.s, TMEM_STAT_EVICTIONS), 0);
	t_eq(t_stats_get(c.s, TMEM_STAT_PUT_REJ_NOSPACE), 0);
	t_assert(f.used <= budget);
	churn_verify(&c);
	t_store_free(c.s, pers ? dir : NULL);
	free(c.tag);
	free(c.buf);
}

int main(int argc, char **argv)
{
	uint64_t seed = t_seed(argc, argv);

	test_churn_pressure(seed, TMEM_PERSISTENT);
	test_churn_pressure(seed + 1, TMEM_EPHEMERAL);
	test_churn_free(seed + 2);
	printf("t_churn: ok\n");
	return T_EXIT_PASS;
}
