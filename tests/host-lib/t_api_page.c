/* SPDX-License-Identifier: MIT */
/*
 * t_api_page: put, get, get_exclusive, flush_page, flush_object and
 * flush_pool with their exact return codes, on both pool kinds and both
 * page sizes; wrong lengths, NULL arguments, bad pools; overwrites; and
 * put-put-get coherency: a rejected put leaves nothing under its key.
 *
 * The store has a huge budget and nothing else runs, so ephemeral pages
 * are not dropped here and are held to the same results as persistent.
 */
#include "helpers.h"

struct pool {
	int id;
	uint32_t len;
	const char *name;
};

/* The basic life of one key. */
static void test_one_key(struct tmem_store *s, struct pool *p)
{
	struct tmem_key key = t_key(0x1234, 7);
	uint32_t len = p->len;

	t_rc(t_get_check(s, p->id, &key, 0, len), -ENOENT);
	t_rc(tmem_flush_page(s, p->id, &key), -ENOENT);
	t_rc(t_getx_check(s, p->id, &key, 0, len), -ENOENT);

	t_rc(t_put_tag(s, p->id, &key, 1, len), 0);
	t_rc(t_get_check(s, p->id, &key, 1, len), 0);
	/* A get leaves the page stored. */
	t_rc(t_get_check(s, p->id, &key, 1, len), 0);

	/* Overwrite with each kind of content; the latest wins. */
	t_rc(t_put_tag(s, p->id, &key, t_tag(T_RAND, 2), len), 0);
	t_rc(t_get_check(s, p->id, &key, t_tag(T_RAND, 2), len), 0);
	t_rc(t_put_tag(s, p->id, &key, t_tag(T_SAME, 3), len), 0);
	t_rc(t_get_check(s, p->id, &key, t_tag(T_SAME, 3), len), 0);
	t_rc(t_put_tag(s, p->id, &key, t_tag(T_HALF, 4), len), 0);
	t_rc(t_get_check(s, p->id, &key, t_tag(T_HALF, 4), len), 0);
	t_rc(t_put_tag(s, p->id, &key, t_tag(T_SAME, 4), len), 0);
	t_rc(t_get_check(s, p->id, &key, t_tag(T_SAME, 4), len), 0);
	t_rc(t_put_tag(s, p->id, &key, 5, len), 0);

	/* get_exclusive returns the page and removes it. */
	t_rc(t_getx_check(s, p->id, &key, 5, len), 0);
	t_rc(t_get_check(s, p->id, &key, 5, len), -ENOENT);
	t_rc(t_getx_check(s, p->id, &key, 5, len), -ENOENT);

	t_rc(t_put_tag(s, p->id, &key, 6, len), 0);
	t_rc(tmem_flush_page(s, p->id, &key), 0);
	t_rc(tmem_flush_page(s, p->id, &key), -ENOENT);
	t_rc(t_get_check(s, p->id, &key, 6, len), -ENOENT);
}

/* The bytes are copied at put time: scribbling on the source is harmless. */
static void test_put_copies(struct tmem_store *s, struct pool *p)
{
	struct tmem_key key = t_key(0x77, 0);
	unsigned char *buf = t_buf_alloc(p->len);

	t_page_fill(buf, p->len, 99);
	t_rc(tmem_put(s, p->id, &key, buf, p->len), 0);
	memset(buf, 0x5a, p->len);
	t_rc(t_get_check(s, p->id, &key, 99, p->len), 0);
	t_rc(tmem_flush_page(s, p->id, &key), 0);
	free(buf);
}

/* All 192 bits of the oid and all 32 of the index are part of the key. */
static void test_key_bits(struct tmem_store *s, struct pool *p)
{
	struct tmem_key keys[] = {
		t_key3(0, 0, 0, 0),
		t_key3(1, 0, 0, 0),
		t_key3(0, 1, 0, 0),
		t_key3(0, 0, 1, 0),
		t_key3(0, 0, 0, 1),
		t_key3(1ull << 63, 0, 0, 0),
		t_key3(0, 1ull << 63, 0, 0),
		t_key3(0, 0, 1ull << 63, 0),
		t_key3(0, 0, 0, 1u << 31),
		t_key3(UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT32_MAX),
		t_key3(UINT64_MAX, UINT64_MAX, UINT64_MAX, 0),
		/* Same words in another order. */
		t_key3(1, 2, 3, 4),
		t_key3(3, 2, 1, 4),
		t_key3(2, 1, 3, 4),
	};
	unsigned int n = sizeof(keys) / sizeof(keys[0]), i;
	uint64_t tag0 = 1000;

	for (i = 0; i < n; i++)
		t_rc(t_put_tag(s, p->id, &keys[i], tag0 + i, p->len), 0);
	for (i = 0; i < n; i++)
		t_rc(t_get_check(s, p->id, &keys[i], tag0 + i, p->len), 0);

	/* Flushing one object leaves objects that differ in one word. */
	t_rc(tmem_flush_object(s, p->id, keys[1].oid), 1);
	t_rc(t_get_check(s, p->id, &keys[1], 0, p->len), -ENOENT);
	for (i = 0; i < n; i++)
		if (i != 1)
			t_rc(t_get_check(s, p->id, &keys[i], tag0 + i, p->len),
			     0);
	/* keys[0] and keys[4] share the all-zero oid. */
	t_rc(tmem_flush_object(s, p->id, keys[0].oid), 3);
	t_rc(t_get_check(s, p->id, &keys[4], 0, p->len), -ENOENT);
	t_rc(t_get_check(s, p->id, &keys[8], 0, p->len), -ENOENT);
	t_rc(tmem_flush_pool(s, p->id), n - 4);
}

static void test_flush_object(struct tmem_store *s, struct pool *p)
{
	uint64_t a[3] = { 10, 20, 30 }, b[3] = { 10, 20, 31 };
	uint64_t none[3] = { 99, 99, 99 };
	struct tmem_key k;
	uint32_t i;

	for (i = 0; i < 3; i++) {
		k = t_key3(a[0], a[1], a[2], i * 1000);
		t_rc(t_put_tag(s, p->id, &k, i, p->len), 0);
	}
	for (i = 0; i < 2; i++) {
		k = t_key3(b[0], b[1], b[2], i * 1000);
		t_rc(t_put_tag(s, p->id, &k, 10 + i, p->len), 0);
	}
	t_rc(tmem_object_pages(s, p->id, none), 0);
	t_rc(tmem_object_pages(s, p->id, a), 3);
	t_rc(tmem_object_pages(s, p->id, b), 2);
	t_rc(tmem_flush_object(s, p->id, none), 0);
	t_rc(tmem_flush_object(s, p->id, a), 3);
	t_rc(tmem_object_pages(s, p->id, a), 0);
	t_rc(tmem_object_pages(s, p->id, b), 2);
	t_rc(tmem_flush_object(s, p->id, a), 0);
	for (i = 0; i < 3; i++) {
		k = t_key3(a[0], a[1], a[2], i * 1000);
		t_rc(t_get_check(s, p->id, &k, i, p->len), -ENOENT);
	}
	for (i = 0; i < 2; i++) {
		k = t_key3(b[0], b[1], b[2], i * 1000);
		t_rc(t_get_check(s, p->id, &k, 10 + i, p->len), 0);
	}
	/* The object can be refilled after a flush. */
	k = t_key3(a[0], a[1], a[2], 5);
	t_rc(t_put_tag(s, p->id, &k, 55, p->len), 0);
	t_rc(t_get_check(s, p->id, &k, 55, p->len), 0);

	t_rc(tmem_flush_pool(s, p->id), 3);
	t_rc(tmem_flush_pool(s, p->id), 0);
	t_rc(t_get_check(s, p->id, &k, 55, p->len), -ENOENT);
	t_rc(tmem_flush_object(s, p->id, b), 0);
}

/* Wrong lengths and NULLs are -EINVAL and touch nothing else... */
static void test_invalid(struct tmem_store *s, struct pool *p)
{
	struct tmem_key key = t_key(0xbad, 1);
	uint32_t len = p->len;
	size_t bad_lens[] = {
		0, 1, 8, len - 1, len + 1, len - 8, len + 8, len / 2, len * 2,
		len == T_PAGE_4K ? T_PAGE_64K : T_PAGE_4K,
	};
	unsigned char *buf = t_buf_alloc(2 * T_PAGE_64K + 8);
	unsigned int i;

	t_page_fill(buf, 2 * T_PAGE_64K + 8, 3);
	t_rc(t_put_tag(s, p->id, &key, 3, len), 0);
	for (i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		t_rc(tmem_get(s, p->id, &key, buf, bad_lens[i]), -EINVAL);
		/* A get that failed did not flush. */
		t_rc(tmem_get_exclusive(s, p->id, &key, buf, bad_lens[i]),
		     -EINVAL);
		t_rc(t_get_check(s, p->id, &key, 3, len), 0);
	}
	t_rc(tmem_get(s, p->id, NULL, buf, len), -EINVAL);
	t_rc(tmem_get(s, p->id, &key, NULL, len), -EINVAL);
	t_rc(tmem_get_exclusive(s, p->id, NULL, buf, len), -EINVAL);
	t_rc(tmem_get_exclusive(s, p->id, &key, NULL, len), -EINVAL);
	t_rc(t_get_check(s, p->id, &key, 3, len), 0);
	t_rc(tmem_flush_page(s, p->id, NULL), -EINVAL);
	t_rc(tmem_flush_object(s, p->id, NULL), -EINVAL);
	t_rc(tmem_object_pages(s, p->id, NULL), -EINVAL);
	t_rc(tmem_object_pages(NULL, p->id, key.oid), -EINVAL);
	t_rc(tmem_put(s, p->id, NULL, buf, len), -EINVAL);
	t_rc(t_get_check(s, p->id, &key, 3, len), 0);

	/* ...except that a rejected put flushes the page under its key. */
	for (i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		t_rc(t_put_tag(s, p->id, &key, 3, len), 0);
		t_rc(tmem_put(s, p->id, &key, buf, bad_lens[i]), -EINVAL);
		t_rc(t_get_check(s, p->id, &key, 3, len), -ENOENT);
	}
	t_rc(t_put_tag(s, p->id, &key, 3, len), 0);
	t_rc(tmem_put(s, p->id, &key, NULL, len), -EINVAL);
	t_rc(t_get_check(s, p->id, &key, 3, len), -ENOENT);
	t_rc(tmem_flush_page(s, p->id, &key), -ENOENT);
	free(buf);
}

static void test_bad_pool(struct tmem_store *s, uint32_t len)
{
	static const int bad[] = { -1, -4096, INT32_MIN, 8191, 8192, 1 << 20,
				   INT32_MAX };
	struct tmem_key key = t_key(1, 1);
	unsigned char *buf = t_buf_alloc(len);
	unsigned int i;

	t_page_fill(buf, len, 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tmem_pool_info(s, bad[i], NULL, NULL) == 0)
			continue;	/* happens to be a live pool */
		t_rc(tmem_put(s, bad[i], &key, buf, len), -EBADF);
		t_rc(tmem_get(s, bad[i], &key, buf, len), -EBADF);
		t_rc(tmem_get_exclusive(s, bad[i], &key, buf, len), -EBADF);
		t_rc(tmem_flush_page(s, bad[i], &key), -EBADF);
		t_rc(tmem_flush_object(s, bad[i], key.oid), -EBADF);
		t_rc(tmem_object_pages(s, bad[i], key.oid), -EBADF);
		t_rc(tmem_flush_pool(s, bad[i]), -EBADF);
	}
	free(buf);
}

/* Pools are separate namespaces: the same key in two pools. */
static void test_pools_disjoint(struct tmem_store *s, struct pool *pools,
				int n)
{
	struct tmem_key key = t_key(0xd15, 3);
	int i;

	for (i = 0; i < n; i++)
		t_rc(t_put_tag(s, pools[i].id, &key, 500 + i, pools[i].len),
		     0);
	t_rc(tmem_flush_page(s, pools[0].id, &key), 0);
	t_rc(t_get_check(s, pools[0].id, &key, 500, pools[0].len), -ENOENT);
	for (i = 1; i < n; i++)
		t_rc(t_get_check(s, pools[i].id, &key, 500 + i, pools[i].len),
		     0);
	for (i = 1; i < n; i++)
		t_rc(tmem_flush_object(s, pools[i].id, key.oid), 1);
}

/* Many pages in one object and many objects: hash tables must grow. */
#define BIG_OBJ 0xffff0001u

static void test_many_keys(struct tmem_store *s, struct pool *p)
{
	uint32_t n = p->len == T_PAGE_4K ? 20000 : 2000, i;
	struct tmem_key k;

	/* Every 7th page goes to one big object, the rest one each. */
	for (i = 0; i < n; i++) {
		k = t_key(i % 7 == 0 ? BIG_OBJ : i, i);
		t_rc(t_put_tag(s, p->id, &k, t_tag(i % 3 ? T_COMP : T_SAME, i),
			       p->len), 0);
	}
	for (i = 0; i < n; i++) {
		k = t_key(i % 7 == 0 ? BIG_OBJ : i, i);
		t_rc(t_get_check(s, p->id, &k,
				 t_tag(i % 3 ? T_COMP : T_SAME, i), p->len), 0);
	}
	k = t_key(BIG_OBJ, 0);
	/* spread over every shard, counted once */
	t_rc(tmem_object_pages(s, p->id, k.oid), (n + 6) / 7);
	t_rc(tmem_flush_object(s, p->id, k.oid), (n + 6) / 7);
	t_rc(tmem_flush_pool(s, p->id), n - (n + 6) / 7);
}

int main(int argc, char **argv)
{
	struct tmem_store *s = t_store_new(1ull << 32, NULL, 0);
	struct pool pools[] = {
		{ 0, T_PAGE_4K, "persistent-4k" },
		{ 0, T_PAGE_4K, "ephemeral-4k" },
		{ 0, T_PAGE_64K, "persistent-64k" },
		{ 0, T_PAGE_64K, "ephemeral-64k" },
	};
	int i, n = 4;

	for (i = 0; i < n; i++)
		pools[i].id = t_pool_new(s, i & 1 ? TMEM_EPHEMERAL :
					 TMEM_PERSISTENT, pools[i].len);
	for (i = 0; i < n; i++) {
		printf("%s\n", pools[i].name);
		test_one_key(s, &pools[i]);
		test_put_copies(s, &pools[i]);
		test_key_bits(s, &pools[i]);
		test_flush_object(s, &pools[i]);
		test_invalid(s, &pools[i]);
		test_many_keys(s, &pools[i]);
		t_rc(tmem_flush_pool(s, pools[i].id), 0);
	}
	test_bad_pool(s, T_PAGE_4K);
	test_bad_pool(s, T_PAGE_64K);
	test_pools_disjoint(s, pools, n);
	for (i = 0; i < n; i++)
		t_rc(tmem_pool_destroy(s, pools[i].id), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL), 0);
	t_store_free(s, NULL);
	return T_EXIT_PASS;
}
