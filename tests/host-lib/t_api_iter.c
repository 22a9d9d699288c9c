/* SPDX-License-Identifier: MIT */
/*
 * t_api_iter: tmem_iter_* walks exactly the pages of one pool, each once,
 * with the right bytes, whether they are in RAM, same-filled or spilled;
 * pages flushed after the walk began are skipped; bad arguments fail.
 */
#include "helpers.h"

#define N	300

struct set {
	uint32_t len;
	uint64_t tag[N];	/* 0: not stored */
};

static struct tmem_key key_of(uint32_t i)
{
	return t_key(i, i * 3 + 1);
}

static uint64_t tag_of(uint32_t i, uint64_t salt)
{
	static const enum t_kind kinds[] = { T_COMP, T_SAME, T_RAND, T_HALF };

	return t_tag(kinds[i % 4], i + salt + 1);	/* never tag 0 */
}

static void fill(struct tmem_store *s, int pool, struct set *set,
		 uint64_t salt)
{
	uint32_t i;

	for (i = 0; i < N; i++) {
		struct tmem_key k = key_of(i);

		set->tag[i] = tag_of(i, salt);
		t_rc(t_put_tag(s, pool, &k, set->tag[i], set->len), 0);
	}
}

/* Walk @pool and insist it yields exactly the pages in @set. */
static void walk_at(int line, struct tmem_store *s, int pool,
		    const struct set *set)
{
	unsigned char *buf = t_buf_alloc(set->len);
	bool seen[N] = { false };
	struct tmem_iter *it = NULL;
	struct tmem_key k;
	uint32_t want = 0, got = 0, i;
	int rc;

	for (i = 0; i < N; i++)
		want += set->tag[i] != 0;
	t_rc(tmem_iter_begin(s, pool, &it), 0);
	t_assert(it != NULL);
	while ((rc = tmem_iter_next(it, &k, buf, set->len)) == 1) {
		struct tmem_key ref;
		uint64_t tag;

		t_canary_verify(buf, set->len);
		i = (uint32_t)k.oid[0];
		ref = key_of(i);
		if (k.oid[0] >= N || memcmp(&ref.oid, &k.oid, sizeof(k.oid)) ||
		    ref.index != k.index)
			t_fail_at(__FILE__, line, "walk gave unknown key "
				  "(%llx,%llx,%llx,%u)",
				  (unsigned long long)k.oid[0],
				  (unsigned long long)k.oid[1],
				  (unsigned long long)k.oid[2], k.index);
		if (seen[i])
			t_fail_at(__FILE__, line, "walk gave page %u twice", i);
		seen[i] = true;
		tag = set->tag[i];
		if (!tag)
			t_fail_at(__FILE__, line, "walk gave flushed page %u",
				  i);
		if (t_page_check(buf, set->len, tag) >= 0)
			t_fail_at(__FILE__, line, "walk: page %u is wrong", i);
		got++;
		memset(buf, 0, set->len);
	}
	t_rc(rc, 0);
	/* The end stays the end. */
	t_rc(tmem_iter_next(it, &k, buf, set->len), 0);
	tmem_iter_end(it);
	if (got != want)
		t_fail_at(__FILE__, line, "walk gave %u pages, want %u", got,
			  want);
	free(buf);
}

#define walk(s, pool, set) walk_at(__LINE__, s, pool, set)

static void test_bad_args(struct tmem_store *s, int pool)
{
	unsigned char buf[T_PAGE_4K];
	struct tmem_iter *it = NULL;
	struct tmem_key k;

	t_rc(tmem_iter_begin(s, -1, &it), -EBADF);
	t_rc(tmem_iter_begin(s, 123456, &it), -EBADF);
	t_rc(tmem_iter_begin(s, pool, NULL), -EINVAL);
	t_rc(tmem_iter_begin(s, pool, &it), 0);
	t_rc(tmem_iter_next(NULL, &k, buf, sizeof(buf)), -EINVAL);
	t_rc(tmem_iter_next(it, NULL, buf, sizeof(buf)), -EINVAL);
	t_rc(tmem_iter_next(it, &k, NULL, sizeof(buf)), -EINVAL);
	t_rc(tmem_iter_next(it, &k, buf, sizeof(buf) - 1), -EINVAL);
	t_rc(tmem_iter_next(it, &k, buf, 0), -EINVAL);
	tmem_iter_end(it);
	tmem_iter_end(NULL);
}

/*
 * A call refused for its arguments must not use up a page: a migration
 * that retried it would otherwise lose one.
 */
static void test_bad_args_keep_place(struct tmem_store *s, int pool,
				     const struct set *set)
{
	unsigned char *buf = t_buf_alloc(set->len);
	struct tmem_iter *it;
	struct tmem_key k;
	uint32_t n = 0, want = 0, i;
	int rc;

	for (i = 0; i < N; i++)
		want += set->tag[i] != 0;
	t_rc(tmem_iter_begin(s, pool, &it), 0);
	for (;;) {
		/* Past the end, "over" is as good an answer as -EINVAL. */
		rc = tmem_iter_next(it, &k, buf, set->len - 8);
		t_assert(rc == -EINVAL || rc == 0);
		rc = tmem_iter_next(it, NULL, buf, set->len);
		t_assert(rc == -EINVAL || rc == 0);
		rc = tmem_iter_next(it, &k, NULL, set->len);
		t_assert(rc == -EINVAL || rc == 0);
		rc = tmem_iter_next(it, &k, buf, set->len);
		if (rc != 1)
			break;
		i = (uint32_t)k.oid[0];
		t_assert(i < N && set->tag[i]);
		t_page_verify(buf, set->len, set->tag[i]);
		n++;
	}
	t_rc(rc, 0);
	tmem_iter_end(it);
	t_eq(n, want);
	free(buf);
}

static void test_ram(uint32_t len)
{
	struct tmem_store *s = t_store_new(1ull << 32, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	int q = t_pool_new(s, TMEM_PERSISTENT, len);
	int e = t_pool_new(s, TMEM_EPHEMERAL, len);
	static struct set set, other, eset, later;
	uint32_t i;

	memset(&set, 0, sizeof(set));
	memset(&other, 0, sizeof(other));
	memset(&eset, 0, sizeof(eset));
	memset(&later, 0, sizeof(later));
	set.len = other.len = eset.len = later.len = len;
	walk(s, p, &set);		/* empty */
	fill(s, p, &set, 0);
	fill(s, q, &other, 1000);	/* same keys, another pool */
	fill(s, e, &eset, 2000);
	walk(s, p, &set);
	walk(s, q, &other);
	/* Nothing pressures this store: the ephemeral pages are there. */
	walk(s, e, &eset);

	/* Overwrites and flushes before the walk show in it. */
	for (i = 0; i < N; i += 5) {
		struct tmem_key k = key_of(i);

		set.tag[i] = tag_of(i + 1, 5000);
		t_rc(t_put_tag(s, p, &k, set.tag[i], len), 0);
	}
	for (i = 1; i < N; i += 7) {
		struct tmem_key k = key_of(i);

		t_rc(tmem_flush_page(s, p, &k), 0);
		set.tag[i] = 0;
	}
	walk(s, p, &set);

	/* Pages flushed after the walk began are skipped. */
	{
		unsigned char *buf = t_buf_alloc(len);
		struct tmem_iter *it;
		struct tmem_key k;
		uint32_t got = 0, want = 0;
		int rc;

		t_rc(tmem_iter_begin(s, p, &it), 0);
		for (i = 0; i < N; i += 2) {
			k = key_of(i);
			if (set.tag[i])
				t_rc(tmem_flush_page(s, p, &k), 0);
			set.tag[i] = 0;
		}
		/* A page put now may or may not be seen. */
		for (i = 1; i < N; i += 2) {
			if (set.tag[i])
				continue;
			later.tag[i] = tag_of(i, 7000);
			k = key_of(i);
			t_rc(t_put_tag(s, p, &k, later.tag[i], len), 0);
		}
		for (i = 0; i < N; i++)
			want += set.tag[i] != 0;
		while ((rc = tmem_iter_next(it, &k, buf, len)) == 1) {
			i = (uint32_t)k.oid[0];
			t_assert(i < N && i % 2 == 1);
			if (set.tag[i]) {
				t_page_verify(buf, len, set.tag[i]);
				got++;
			} else {
				t_assert(later.tag[i]);
				t_page_verify(buf, len, later.tag[i]);
			}
		}
		t_rc(rc, 0);
		tmem_iter_end(it);
		t_eq(got, want);
		free(buf);
		for (i = 0; i < N; i++)
			if (later.tag[i])
				set.tag[i] = later.tag[i];
	}
	walk(s, p, &set);

	/* A walk left unfinished is simply ended. */
	{
		struct tmem_iter *it;
		unsigned char *buf = t_buf_alloc(len);
		struct tmem_key k;

		t_rc(tmem_iter_begin(s, p, &it), 0);
		t_rc(tmem_iter_next(it, &k, buf, len), 1);
		tmem_iter_end(it);
		free(buf);
	}
	if (len == T_PAGE_4K)
		test_bad_args(s, p);
	test_bad_args_keep_place(s, p, &set);
	walk(s, q, &other);
	t_store_free(s, NULL);
}

/* Spilled pages come back through the walk too. */
static void test_spilled(uint32_t len)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(1ull << 32, dir, 1ull << 30);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	static struct set set;
	uint64_t same = 0, reads;
	uint32_t i;

	set.len = len;
	fill(s, p, &set, 0);
	for (i = 0; i < N; i++)
		same += t_tag_kind(set.tag[i]) == T_SAME;
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_RAM_DATA, T_EQ, 0, 10000);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, N - same, 10000);
	reads = t_stats_get(s, TMEM_STAT_SPILL_READS);
	walk(s, p, &set);
	t_assert(t_stats_get(s, TMEM_STAT_SPILL_READS) > reads);
	/* The walk read them back without taking them out of the spill. */
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), N - same);
	walk(s, p, &set);
	for (i = 0; i < N; i++) {
		struct tmem_key k = key_of(i);

		t_rc(t_get_check(s, p, &k, set.tag[i], len), 0);
	}
	t_store_free(s, dir);
}

int main(int argc, char **argv)
{
	test_ram(T_PAGE_4K);
	test_ram(T_PAGE_64K);
	test_spilled(T_PAGE_4K);
	test_spilled(T_PAGE_64K);
	return T_EXIT_PASS;
}
