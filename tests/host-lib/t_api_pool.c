/* SPDX-License-Identifier: MIT */
/*
 * t_api_pool: pool create/destroy/info, bad kinds and page sizes, the
 * count pool_destroy returns, and stale ids: a destroyed pool's id must be
 * -EBADF everywhere and must not come back for 8191 more pools in its slot.
 */
#include "helpers.h"

static void test_bad_args(struct tmem_store *s)
{
	static const uint32_t bad_sizes[] = {
		0, 1, 512, 1024, 2048, 4095, 4097, 8192, 16384, 32768,
		65535, 65537, 131072, 1u << 31, UINT32_MAX,
	};
	static const int bad_kinds[] = { 0, 3, 4, -1, 255, 0x10001 };
	unsigned int i;

	for (i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		t_rc(tmem_pool_create(s, TMEM_PERSISTENT, bad_sizes[i]),
		     -EINVAL);
		t_rc(tmem_pool_create(s, TMEM_EPHEMERAL, bad_sizes[i]),
		     -EINVAL);
	}
	for (i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++)
		t_rc(tmem_pool_create(s, (enum tmem_pool_kind)bad_kinds[i],
				      T_PAGE_4K), -EINVAL);
}

static void test_info(struct tmem_store *s)
{
	static const enum tmem_pool_kind kinds[] = {
		TMEM_PERSISTENT, TMEM_EPHEMERAL,
	};
	static const uint32_t sizes[] = { T_PAGE_4K, T_PAGE_64K };
	int pools[4], n = 0, i, j;

	for (i = 0; i < 2; i++) {
		for (j = 0; j < 2; j++) {
			enum tmem_pool_kind kind = 0;
			uint32_t psize = 0;
			int p = t_pool_new(s, kinds[i], sizes[j]);

			t_rc(tmem_pool_info(s, p, &kind, &psize), 0);
			t_assert(kind == kinds[i]);
			t_eq(psize, sizes[j]);
			/* Either output may be NULL. */
			t_rc(tmem_pool_info(s, p, NULL, &psize), 0);
			t_eq(psize, sizes[j]);
			kind = 0;
			t_rc(tmem_pool_info(s, p, &kind, NULL), 0);
			t_assert(kind == kinds[i]);
			t_rc(tmem_pool_info(s, p, NULL, NULL), 0);
			pools[n++] = p;
		}
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			t_assert(pools[i] != pools[j]);
	t_rc(tmem_pool_info(s, -1, NULL, NULL), -EBADF);
	t_rc(tmem_pool_info(s, INT32_MAX, NULL, NULL), -EBADF);
	t_rc(tmem_pool_info(s, INT32_MIN, NULL, NULL), -EBADF);
	for (i = 0; i < n; i++)
		t_rc(tmem_pool_destroy(s, pools[i]), 0);
}

/* Every call naming @pool must say -EBADF. */
static void expect_badf(struct tmem_store *s, int pool)
{
	struct tmem_key key = t_key(1, 1);
	unsigned char page[T_PAGE_4K] = { 1 };
	struct tmem_iter *it = NULL;
	uint64_t rej = t_stats_get(s, TMEM_STAT_PUT_REJ_INVALID);

	t_rc(tmem_pool_info(s, pool, NULL, NULL), -EBADF);
	t_rc(tmem_put(s, pool, &key, page, sizeof(page)), -EBADF);
	t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_INVALID), rej + 1);
	t_rc(tmem_get(s, pool, &key, page, sizeof(page)), -EBADF);
	t_rc(tmem_get_exclusive(s, pool, &key, page, sizeof(page)), -EBADF);
	t_rc(tmem_flush_page(s, pool, &key), -EBADF);
	t_rc(tmem_flush_object(s, pool, key.oid), -EBADF);
	t_rc(tmem_flush_pool(s, pool), -EBADF);
	t_rc(tmem_iter_begin(s, pool, &it), -EBADF);
	t_rc(tmem_pool_destroy(s, pool), -EBADF);
}

static void test_destroy(struct tmem_store *s)
{
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	int e = t_pool_new(s, TMEM_EPHEMERAL, T_PAGE_4K);
	struct tmem_key key;
	uint32_t i;

	/* Five pages: one same-filled, one overwritten twice. */
	for (i = 0; i < 5; i++) {
		key = t_key(i / 2, i);
		t_rc(t_put_tag(s, p, &key, t_tag(i == 3 ? T_SAME : T_COMP, i),
			       T_PAGE_4K), 0);
		t_rc(t_put_tag(s, e, &key, i + 50, T_PAGE_4K), 0);
	}
	key = t_key(0, 0);
	t_rc(t_put_tag(s, p, &key, 77, T_PAGE_4K), 0);
	t_rc(t_put_tag(s, p, &key, 78, T_PAGE_4K), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), 5);

	t_rc(tmem_pool_destroy(s, p), 5);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), 0);
	expect_badf(s, p);

	/* Ephemeral pages may already be gone, never more than were put. */
	{
		int64_t n = tmem_pool_destroy(s, e);

		t_assert(n >= 0 && n <= 5);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL), 0);
	expect_badf(s, e);

	/* Destroying an empty pool flushes nothing. */
	p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_64K);
	t_rc(tmem_pool_destroy(s, p), 0);
	expect_badf(s, p);
}

/* flush_pool leaves the pool usable; destroy does not. */
static void test_flush_pool_keeps_pool(struct tmem_store *s)
{
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	struct tmem_key key = t_key(9, 9);

	t_rc(t_put_tag(s, p, &key, 1, T_PAGE_4K), 0);
	t_rc(tmem_flush_pool(s, p), 1);
	t_rc(tmem_flush_pool(s, p), 0);
	t_rc(tmem_pool_info(s, p, NULL, NULL), 0);
	t_rc(t_put_tag(s, p, &key, 2, T_PAGE_4K), 0);
	t_rc(t_get_check(s, p, &key, 2, T_PAGE_4K), 0);
	t_rc(tmem_pool_destroy(s, p), 1);
}

/*
 * 8192 pools made and destroyed one after another, so they most likely
 * share a slot: no id may repeat and every old id stays -EBADF, while a
 * long-lived pool beside them keeps its page.
 */
static void test_stale_ids(struct tmem_store *s)
{
	enum { N = 8192 };
	int *ids = calloc(N, sizeof(*ids));
	int keep = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	struct tmem_key key = t_key(5, 5);
	int i;

	t_assert(ids);
	t_rc(t_put_tag(s, keep, &key, 42, T_PAGE_4K), 0);
	for (i = 0; i < N; i++) {
		ids[i] = t_pool_new(s, i & 1 ? TMEM_EPHEMERAL : TMEM_PERSISTENT,
				    T_PAGE_4K);
		t_assert(ids[i] != keep);
		if (i > 0)
			t_rc(tmem_pool_info(s, ids[i - 1], NULL, NULL), -EBADF);
		t_rc(tmem_pool_destroy(s, ids[i]), 0);
	}
	for (i = 0; i < N; i++)
		t_rc(tmem_pool_info(s, ids[i], NULL, NULL), -EBADF);
	{
		/* Duplicates: insert every id into an open-addressed set. */
		enum { H = 4 * N };
		int64_t *h = malloc(H * sizeof(*h));

		t_assert(h);
		for (i = 0; i < H; i++)
			h[i] = INT64_MIN;
		for (i = 0; i < N; i++) {
			uint64_t k = t_mix64((uint64_t)ids[i]) % H;

			while (h[k] != INT64_MIN) {
				if (h[k] == ids[i])
					t_fail("pool id %d handed out twice",
					       ids[i]);
				k = (k + 1) % H;
			}
			h[k] = ids[i];
		}
		free(h);
	}
	expect_badf(s, ids[N / 2]);
	t_rc(t_get_check(s, keep, &key, 42, T_PAGE_4K), 0);
	t_rc(tmem_pool_destroy(s, keep), 1);
	free(ids);
}

/* No arbitrary pool limit: thousands of live pools, each with a page. */
static void test_many_pools(struct tmem_store *s)
{
	enum { N = 4096 };
	int *ids = calloc(N, sizeof(*ids));
	struct tmem_key key = t_key(1, 0);
	int i;

	t_assert(ids);
	for (i = 0; i < N; i++) {
		ids[i] = t_pool_new(s, i % 3 ? TMEM_PERSISTENT : TMEM_EPHEMERAL,
				    T_PAGE_4K);
		t_rc(t_put_tag(s, ids[i], &key, t_tag(T_COMP, i), T_PAGE_4K),
		     0);
	}
	for (i = 0; i < N; i++) {
		int rc = t_get_check(s, ids[i], &key, t_tag(T_COMP, i),
				     T_PAGE_4K);

		/* Nothing pressures this store: ephemeral pages stay too. */
		t_rc(rc, 0);
	}
	for (i = 0; i < N; i++)
		t_rc(tmem_pool_destroy(s, ids[i]), 1);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL), 0);
	free(ids);
}

int main(int argc, char **argv)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);

	test_bad_args(s);
	test_info(s);
	test_destroy(s);
	test_flush_pool_keeps_pool(s);
	test_stale_ids(s);
	test_many_pools(s);
	t_store_free(s, NULL);
	return T_EXIT_PASS;
}
