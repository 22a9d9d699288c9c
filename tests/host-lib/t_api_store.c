/* SPDX-License-Identifier: MIT */
/*
 * t_api_store: store create/destroy, bad configs, NULL stores, budgets,
 * tmem_stats and tmem_stat_name.
 */
#include <ctype.h>

#include "helpers.h"

static void test_bad_config(void)
{
	struct tmem_config cfg = { .budget = 1 << 20 };
	struct tmem_store *s = NULL;

	t_rc(tmem_store_create(NULL, &s), -EINVAL);
	t_assert(s == NULL);
	t_rc(tmem_store_create(&cfg, NULL), -EINVAL);

	/* Only the two raw policies exist. */
	cfg.raw_policy = (enum tmem_raw_policy)7;
	t_rc(tmem_store_create(&cfg, &s), -EINVAL);
	t_assert(s == NULL);

	/* A spill file that cannot be opened: its errno comes back. */
	cfg.raw_policy = TMEM_RAW_STORE;
	cfg.spill_path = "/nonexistent-tmem-test-dir/sub/spill";
	cfg.spill_max = 1 << 20;
	t_rc(tmem_store_create(&cfg, &s), -ENOENT);
	t_assert(s == NULL);

	tmem_store_destroy(NULL);
}

/* Budget 0 and no spill is a valid, if useless, store. */
static void test_minimal_configs(void)
{
	struct tmem_config cfg = { 0 };
	struct tmem_store *s = NULL;

	t_rc(tmem_store_create(&cfg, &s), 0);
	t_assert(s != NULL);
	t_eq(t_stats_get(s, TMEM_STAT_BUDGET), 0);
	tmem_store_destroy(s);

	cfg.raw_policy = TMEM_RAW_REJECT;
	cfg.budget = UINT64_MAX;
	s = NULL;
	t_rc(tmem_store_create(&cfg, &s), 0);
	t_assert(s != NULL);
	t_eq(t_stats_get(s, TMEM_STAT_BUDGET), UINT64_MAX);
	tmem_store_destroy(s);
}

/* A fresh store has counted nothing and holds nothing. */
static void test_fresh_stats(void)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(3 << 20, dir, 16 << 20);
	struct tmem_stats st;
	unsigned int i;

	t_stats(s, &st);
	for (i = TMEM_STAT_PUTS; i <= TMEM_STAT_SPILL_READ_ERRORS; i++)
		if (st.v[i])
			t_fail("fresh store: %s = %llu", tmem_stat_name(i),
			       (unsigned long long)st.v[i]);
	for (i = TMEM_STAT_PAGES_PERSISTENT; i <= TMEM_STAT_RAM_INDEX; i++)
		if (st.v[i])
			t_fail("fresh store: %s = %llu", tmem_stat_name(i),
			       (unsigned long long)st.v[i]);
	t_eq(st.v[TMEM_STAT_BUDGET], 3 << 20);
	t_eq(st.v[TMEM_STAT_SPILL_MAX], 16 << 20);
	t_eq(st.v[TMEM_STAT_SPILL_USED], 0);
	t_eq(st.v[TMEM_STAT_SLABS], 0);
	t_assert(st.compression_ratio == 0);

	t_rc(tmem_stats(NULL, &st), -EINVAL);
	t_rc(tmem_stats(s, NULL), -EINVAL);
	t_store_free(s, dir);
}

/* Every call on a NULL store fails cleanly instead of crashing. */
static void test_null_store(void)
{
	struct tmem_key key = t_key(1, 2);
	unsigned char page[T_PAGE_4K] = { 0 };
	struct tmem_iter *it = NULL;
	enum tmem_pool_kind kind;
	uint32_t psize;
	int64_t rc;

	t_rc(tmem_pool_create(NULL, TMEM_PERSISTENT, T_PAGE_4K), -EINVAL);
	rc = tmem_pool_destroy(NULL, 0);
	t_assert(rc == -EINVAL || rc == -EBADF);
	rc = tmem_pool_info(NULL, 0, &kind, &psize);
	t_assert(rc == -EINVAL || rc == -EBADF);
	t_rc(tmem_put(NULL, 0, &key, page, sizeof(page)), -EINVAL);
	t_rc(tmem_get(NULL, 0, &key, page, sizeof(page)), -EINVAL);
	t_rc(tmem_get_exclusive(NULL, 0, &key, page, sizeof(page)), -EINVAL);
	t_rc(tmem_flush_page(NULL, 0, &key), -EINVAL);
	t_rc(tmem_flush_object(NULL, 0, key.oid), -EINVAL);
	rc = tmem_flush_pool(NULL, 0);
	t_assert(rc == -EINVAL || rc == -EBADF);
	t_rc(tmem_set_budget(NULL, 1 << 20), -EINVAL);
	rc = tmem_iter_begin(NULL, 0, &it);
	t_assert(rc == -EINVAL || rc == -EBADF);
	t_rc(tmem_iter_next(NULL, &key, page, sizeof(page)), -EINVAL);
	tmem_iter_end(NULL);
}

/* set_budget takes effect in the gauge at once and returns at once. */
static void test_set_budget(void)
{
	struct tmem_store *s = t_store_new(1 << 20, NULL, 0);
	static const uint64_t budgets[] = {
		0, 1, 4096, 1 << 20, 1ull << 40, UINT64_MAX, 64 << 10,
	};
	unsigned int i;

	for (i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++) {
		uint64_t t0 = t_now_ms();

		t_rc(tmem_set_budget(s, budgets[i]), 0);
		t_assert(t_now_ms() - t0 < 1000);
		t_eq(t_stats_get(s, TMEM_STAT_BUDGET), budgets[i]);
	}
	t_store_free(s, NULL);
}

static void test_stat_names(void)
{
	const char *names[TMEM_STAT__COUNT];
	unsigned int i, j;

	for (i = 0; i < TMEM_STAT__COUNT; i++) {
		const char *n = tmem_stat_name(i);
		const char *c;

		if (!n || !*n)
			t_fail("stat %u has no name", i);
		for (c = n; *c; c++)
			if (!(islower((unsigned char)*c) ||
			      isdigit((unsigned char)*c) || *c == '_'))
				t_fail("stat name '%s' is not snake_case", n);
		for (j = 0; j < i; j++)
			if (!strcmp(names[j], n))
				t_fail("stats %u and %u: '%s'", j, i, n);
		names[i] = n;
	}
	t_assert(tmem_stat_name(TMEM_STAT__COUNT) == NULL);
	t_assert(tmem_stat_name(TMEM_STAT__COUNT + 1) == NULL);
	t_assert(tmem_stat_name(UINT32_MAX) == NULL);
	/* Stable: the same pointer contents on a second call. */
	for (i = 0; i < TMEM_STAT__COUNT; i++)
		t_assert(!strcmp(names[i], tmem_stat_name(i)));
}

/* Many stores side by side are independent. */
static void test_many_stores(void)
{
	struct tmem_store *s[8];
	struct tmem_key key = t_key(7, 7);
	int pool[8], i;

	for (i = 0; i < 8; i++) {
		s[i] = t_store_new(1 << 20, NULL, 0);
		pool[i] = t_pool_new(s[i], TMEM_PERSISTENT, T_PAGE_4K);
		t_rc(t_put_tag(s[i], pool[i], &key, 100 + i, T_PAGE_4K), 0);
	}
	for (i = 0; i < 8; i++) {
		t_rc(t_get_check(s[i], pool[i], &key, 100 + i, T_PAGE_4K), 0);
		t_eq(t_stats_get(s[i], TMEM_STAT_PUTS), 1);
	}
	for (i = 0; i < 8; i++)
		t_store_free(s[i], NULL);
}

int main(int argc, char **argv)
{
	test_bad_config();
	test_minimal_configs();
	test_fresh_stats();
	test_null_store();
	test_set_budget();
	test_stat_names();
	test_many_stores();
	return T_EXIT_PASS;
}
