/* SPDX-License-Identifier: MIT */
/*
 * churn.c - what a store holds once its guest has churned: fill it with
 * four times the corpus (each key a random corpus page), flush 75% of
 * the pages at random, give the store's background work time to settle,
 * measure, refill the flushed keys with other corpus pages, and again.
 * Four times, so that what is left after a flush is as many pages as the
 * fresh-fill figures were measured on.  No budget pressure: whatever the
 * store gives back here it gives back by itself (compaction, index
 * shrink).
 *
 * Figures, taken after the last flush has settled: RAM data per
 * compressed byte, index bytes per live page, and the growth of this
 * process's RSS next to ram_used + ram_fixed.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "tmem.h"

#define CHURN_ROUNDS	3
#define CHURN_KEYS	4	/* keys per corpus page */
#define CHURN_SETTLE_S	10.0	/* at most, per round */
#define CHURN_STILL_S	2.5	/* settled: no change for this long */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = (*s += 0x9e3779b97f4a7c15ull);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

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

static void churn_key(struct tmem_key *k, size_t i)
{
	memset(k, 0, sizeof(*k));
	k->oid[0] = 1;
	k->index = (uint32_t)i;
}

static int churn_put(struct tmem_store *s, int pool, const struct corpus *c,
		     size_t key, size_t page)
{
	struct tmem_key k;
	int r;

	churn_key(&k, key);
	r = tmem_put(s, pool, &k, corpus_page(c, page), BENCH_PAGE);
	if (r)
		warnx_("churn: put of key %zu: %s (%d)", key, strerror(-r), r);
	return r;
}

/* Wait until ram_used has not moved for CHURN_STILL_S, or the limit. */
static void churn_settle(struct tmem_store *s)
{
	double t0 = now_s(), still = t0;
	uint64_t last = ~0ull, v[TMEM_STAT__COUNT];

	while (now_s() - t0 < CHURN_SETTLE_S) {
		tmem_stat_values(s, v, TMEM_STAT__COUNT);
		if (v[TMEM_STAT_RAM_USED] != last) {
			last = v[TMEM_STAT_RAM_USED];
			still = now_s();
		} else if (now_s() - still >= CHURN_STILL_S) {
			break;
		}
		usleep(50000);
	}
}

int store_churn(const struct corpus *c, struct store_result *res)
{
	size_t n = c->npages * CHURN_KEYS, i;
	size_t *page = calloc(n, sizeof(*page));
	uint8_t *buf = xaligned(BENCH_PAGE);
	uint64_t rng = 0x7e3a5eed, v[TMEM_STAT__COUNT], rss0;
	struct tmem_config cfg;
	struct tmem_store *s = NULL;
	int pool, r, status = -1;
	unsigned int round;

	if (!page || !buf)
		goto out;
	memset(&cfg, 0, sizeof(cfg));
	cfg.budget = (uint64_t)n * BENCH_PAGE * 2 + (256ull << 20);
	/*
	 * Earlier phases freed memory that malloc keeps resident; the store's
	 * index would reuse it and its growth would not show (a run measured
	 * 1.4 MiB of RSS growth for 30 MiB of ram_used).  Give it back first.
	 */
	malloc_trim(0);
	rss0 = rss_bytes();
	r = tmem_store_create(&cfg, &s);
	if (r) {
		warnx_("churn: tmem_store_create: %s (%d)", strerror(-r), r);
		goto out;
	}
	pool = tmem_pool_create(s, TMEM_PERSISTENT, BENCH_PAGE);
	if (pool < 0) {
		warnx_("churn: tmem_pool_create: %d", pool);
		goto out;
	}
	for (i = 0; i < n; i++) {
		page[i] = rng_next(&rng) % c->npages + 1;
		if (churn_put(s, pool, c, i, page[i] - 1))
			goto out;
	}
	for (round = 0; round < CHURN_ROUNDS; round++) {
		struct tmem_key k;
		uint64_t live;

		progress("churn: round %u of %u: flush 75%%, settle, refill",
			 round + 1, CHURN_ROUNDS);
		for (i = 0; i < n; i++) {
			if (rng_next(&rng) % 4 == 0)
				continue;
			churn_key(&k, i);
			r = tmem_flush_page(s, pool, &k);
			if (r) {
				warnx_("churn: flush of key %zu: %d", i, r);
				goto out;
			}
			page[i] = 0;
		}
		churn_settle(s);
		tmem_stat_values(s, v, TMEM_STAT__COUNT);
		live = v[TMEM_STAT_PAGES_PERSISTENT];
		res->churn_ram_per_compressed = v[TMEM_STAT_BYTES_COMPRESSED] ?
			(double)v[TMEM_STAT_RAM_DATA] /
			(double)v[TMEM_STAT_BYTES_COMPRESSED] : 0;
		res->churn_index_per_page = live ?
			(double)v[TMEM_STAT_RAM_INDEX] / (double)live : 0;
		res->churn_pages_live = live;
		res->churn_ram_used = v[TMEM_STAT_RAM_USED];
		res->churn_ram_fixed = v[TMEM_STAT_RAM_FIXED];
		res->churn_rss_growth = rss_bytes() - rss0;
		progress("churn: %llu live pages, data/compressed %.3f, "
			 "index %.1f B/page, RSS growth %.1f MiB, ram_used + "
			 "ram_fixed %.1f MiB", (unsigned long long)live,
			 res->churn_ram_per_compressed,
			 res->churn_index_per_page,
			 (double)res->churn_rss_growth / (1 << 20),
			 (double)(res->churn_ram_used + res->churn_ram_fixed) /
			 (1 << 20));
		/* Check what is left, then refill with other pages. */
		for (i = 0; i < n; i++) {
			if (!page[i])
				continue;
			churn_key(&k, i);
			r = tmem_get(s, pool, &k, buf, BENCH_PAGE);
			if (r || memcmp(buf, corpus_page(c, page[i] - 1),
					BENCH_PAGE)) {
				warnx_("churn: key %zu read back wrong (%d)",
				       i, r);
				goto out;
			}
		}
		for (i = 0; i < n; i++) {
			if (page[i])
				continue;
			page[i] = rng_next(&rng) % c->npages + 1;
			if (churn_put(s, pool, c, i, page[i] - 1))
				goto out;
		}
	}
	status = 0;
out:
	tmem_store_destroy(s);
	free(page);
	free(buf);
	return status;
}
