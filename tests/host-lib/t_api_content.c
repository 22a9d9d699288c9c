/* SPDX-License-Identifier: MIT */
/*
 * t_api_content: what the store does with each kind of page.
 * Same-filled pages keep no data; incompressible pages are kept raw
 * (TMEM_RAW_STORE) or refused with -E2BIG (TMEM_RAW_REJECT), and a refused
 * overwrite leaves nothing behind; compressible pages are compressed.
 * Gauges and compression_ratio follow.
 */
#include "helpers.h"

static void put_buf(struct tmem_store *s, int pool, uint64_t obj,
		    uint32_t index, const void *buf, size_t len)
{
	struct tmem_key key = t_key(obj, index);

	t_rc(tmem_put(s, pool, &key, buf, len), 0);
}

static void get_buf(struct tmem_store *s, int pool, uint64_t obj,
		    uint32_t index, const void *want, size_t len)
{
	struct tmem_key key = t_key(obj, index);
	unsigned char *buf = t_buf_alloc(len);

	t_rc(tmem_get(s, pool, &key, buf, len), 0);
	t_canary_verify(buf, len);
	if (memcmp(buf, want, len))
		t_fail("page (%llu, %u) came back different",
		       (unsigned long long)obj, index);
	free(buf);
}

/*
 * Same-filled pages in every spelling: zero, 0xab bytes, one repeated
 * 64-bit word whose bytes differ.  Pages that are same-filled but for one
 * byte must not be mistaken for them.
 */
static void test_same_filled(uint32_t len)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	int e = t_pool_new(s, TMEM_EPHEMERAL, len);
	unsigned char *buf = t_buf_alloc(len);
	uint64_t w = 0x0102030405060708ull;
	uint32_t i, nsame = 0;

	memset(buf, 0, len);
	put_buf(s, p, 1, nsame++, buf, len);
	memset(buf, 0xab, len);
	put_buf(s, p, 1, nsame++, buf, len);
	put_buf(s, e, 1, 0, buf, len);
	for (i = 0; i < len / 8; i++)
		memcpy(buf + i * 8, &w, 8);
	put_buf(s, p, 1, nsame++, buf, len);
	for (i = 0; i < 20; i++) {
		struct tmem_key key = t_key(2, i);

		t_rc(t_put_tag(s, p, &key, t_tag(T_SAME, i), len), 0);
	}
	nsame += 20;
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SAME), nsame + 1);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), nsame);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL), 1);
	t_eq(t_stats_get(s, TMEM_STAT_BYTES_PERSISTENT), (uint64_t)nsame * len);
	t_eq(t_stats_get(s, TMEM_STAT_BYTES_EPHEMERAL), len);
	/* No data: no slab, nothing compressed, no ratio. */
	t_eq(t_stats_get(s, TMEM_STAT_RAM_DATA), 0);
	t_eq(t_stats_get(s, TMEM_STAT_BYTES_COMPRESSED), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_RAW), 0);
	{
		struct tmem_stats st;

		t_stats(s, &st);
		t_assert(st.compression_ratio == 0);
	}

	memset(buf, 0, len);
	get_buf(s, p, 1, 0, buf, len);
	memset(buf, 0xab, len);
	get_buf(s, p, 1, 1, buf, len);
	get_buf(s, e, 1, 0, buf, len);
	for (i = 0; i < len / 8; i++)
		memcpy(buf + i * 8, &w, 8);
	get_buf(s, p, 1, 2, buf, len);
	for (i = 0; i < 20; i++) {
		struct tmem_key key = t_key(2, i);

		t_rc(t_get_check(s, p, &key, t_tag(T_SAME, i), len), 0);
	}

	/* Almost same-filled: one odd byte at the start, middle or end. */
	for (i = 0; i < 3; i++) {
		size_t at = i == 0 ? 0 : i == 1 ? len / 2 + 3 : len - 1;

		memset(buf, 0, len);
		buf[at] = 1;
		put_buf(s, p, 3, i, buf, len);
		get_buf(s, p, 3, i, buf, len);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SAME), nsame + 1);

	/* Overwriting or flushing a same-filled page moves the gauge. */
	{
		struct tmem_key key = t_key(1, 0);

		t_rc(t_put_tag(s, p, &key, 7, len), 0);
		t_eq(t_stats_get(s, TMEM_STAT_PAGES_SAME), nsame);
		key = t_key(1, 1);
		t_rc(tmem_flush_page(s, p, &key), 0);
		t_eq(t_stats_get(s, TMEM_STAT_PAGES_SAME), nsame - 1);
	}
	t_rc(tmem_pool_destroy(s, e), 1);
	t_rc(tmem_pool_destroy(s, p), nsame + 2);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SAME), 0);
	free(buf);
	t_store_free(s, NULL);
}

/* Random pages are kept raw under TMEM_RAW_STORE. */
static void test_raw_store(uint32_t len)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	int e = t_pool_new(s, TMEM_EPHEMERAL, len);
	struct tmem_stats st;
	struct tmem_key key;
	uint32_t i, n = 16;

	for (i = 0; i < n; i++) {
		key = t_key(4, i);
		t_rc(t_put_tag(s, p, &key, t_tag(T_RAND, i), len), 0);
	}
	key = t_key(4, 0);
	t_rc(t_put_tag(s, e, &key, t_tag(T_RAND, 100), len), 0);
	t_stats(s, &st);
	t_eq(st.v[TMEM_STAT_PAGES_RAW], n + 1);
	t_eq(st.v[TMEM_STAT_PAGES_SAME], 0);
	t_eq(st.v[TMEM_STAT_PUT_REJ_RAW], 0);
	/* A raw page holds its whole length in RAM. */
	t_assert(st.v[TMEM_STAT_BYTES_COMPRESSED] >= (uint64_t)(n + 1) * len);
	t_assert(st.v[TMEM_STAT_RAM_DATA] >= st.v[TMEM_STAT_BYTES_COMPRESSED]);
	t_assert(st.compression_ratio > 0.9 && st.compression_ratio <= 1.0);
	t_assert(st.fragmentation >= 0 && st.fragmentation < 1);

	for (i = 0; i < n; i++) {
		key = t_key(4, i);
		t_rc(t_get_check(s, p, &key, t_tag(T_RAND, i), len), 0);
	}
	key = t_key(4, 0);
	t_rc(t_get_check(s, e, &key, t_tag(T_RAND, 100), len), 0);

	/* Half-random pages still compress: not raw. */
	for (i = 0; i < n; i++) {
		key = t_key(5, i);
		t_rc(t_put_tag(s, p, &key, t_tag(T_HALF, i), len), 0);
		t_rc(t_get_check(s, p, &key, t_tag(T_HALF, i), len), 0);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_RAW), n + 1);

	/* A raw page overwritten by a compressible one stops being raw. */
	key = t_key(4, 0);
	t_rc(t_put_tag(s, p, &key, t_tag(T_COMP, 1), len), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_RAW), n);
	t_rc(tmem_flush_page(s, e, &key), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_RAW), n - 1);
	t_rc(tmem_flush_pool(s, p), 2 * n);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_RAW), 0);
	t_store_free(s, NULL);
}

/*
 * TMEM_RAW_REJECT: random pages are -E2BIG, anything that compresses or
 * is same-filled goes in, and a refused overwrite flushes the old copy.
 */
static void test_raw_reject(uint32_t len)
{
	struct tmem_config cfg = {
		.budget = 1ull << 30,
		.raw_policy = TMEM_RAW_REJECT,
	};
	struct tmem_store *s = t_store_new_cfg(&cfg, NULL);
	int pools[2] = {
		t_pool_new(s, TMEM_PERSISTENT, len),
		t_pool_new(s, TMEM_EPHEMERAL, len),
	};
	uint64_t rej = 0;
	int i;

	for (i = 0; i < 2; i++) {
		int p = pools[i];
		struct tmem_key key = t_key(6, 0);

		t_rc(t_put_tag(s, p, &key, t_tag(T_RAND, 1), len), -E2BIG);
		t_rc(t_get_check(s, p, &key, 0, len), -ENOENT);
		rej++;
		t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_RAW), rej);

		t_rc(t_put_tag(s, p, &key, t_tag(T_COMP, 2), len), 0);
		t_rc(t_get_check(s, p, &key, t_tag(T_COMP, 2), len), 0);
		t_rc(t_put_tag(s, p, &key, t_tag(T_RAND, 3), len), -E2BIG);
		rej++;
		t_rc(t_get_check(s, p, &key, 0, len), -ENOENT);
		t_rc(tmem_flush_page(s, p, &key), -ENOENT);

		/* Same again over a same-filled page (no data). */
		t_rc(t_put_tag(s, p, &key, t_tag(T_SAME, 5), len), 0);
		t_rc(t_put_tag(s, p, &key, t_tag(T_RAND, 6), len), -E2BIG);
		rej++;
		t_rc(t_get_check(s, p, &key, 0, len), -ENOENT);

		key = t_key(6, 1);
		t_rc(t_put_tag(s, p, &key, t_tag(T_HALF, 4), len), 0);
		t_rc(t_get_check(s, p, &key, t_tag(T_HALF, 4), len), 0);
		key = t_key(6, 2);
		t_rc(t_put_tag(s, p, &key, t_tag(T_SAME, 4), len), 0);
		t_rc(t_get_check(s, p, &key, t_tag(T_SAME, 4), len), 0);
		t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_RAW), rej);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), 2);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL), 2);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_RAW), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_NOSPACE), 0);
	t_store_free(s, NULL);
}

/* Compressible pages: ratio well above 1, held bytes below page bytes. */
static void test_compressed(uint32_t len)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	struct tmem_stats st;
	uint32_t i, n = 64;

	for (i = 0; i < n; i++) {
		struct tmem_key key = t_key(8, i);

		t_rc(t_put_tag(s, p, &key, t_tag(T_COMP, i), len), 0);
	}
	t_stats(s, &st);
	t_eq(st.v[TMEM_STAT_PAGES_RAW], 0);
	t_eq(st.v[TMEM_STAT_BYTES_PERSISTENT], (uint64_t)n * len);
	t_assert(st.v[TMEM_STAT_BYTES_COMPRESSED] > 0);
	t_assert(st.v[TMEM_STAT_BYTES_COMPRESSED] < (uint64_t)n * len / 4);
	t_assert(st.v[TMEM_STAT_RAM_DATA] >= st.v[TMEM_STAT_BYTES_COMPRESSED]);
	t_eq(st.v[TMEM_STAT_RAM_USED],
	     st.v[TMEM_STAT_RAM_DATA] + st.v[TMEM_STAT_RAM_INDEX]);
	t_assert(st.v[TMEM_STAT_SLABS] > 0);
	t_assert(st.compression_ratio > 4);
	/* The ratio is the gauges' ratio. */
	t_assert(st.compression_ratio * st.v[TMEM_STAT_BYTES_COMPRESSED] >
		 0.99 * n * len);
	t_assert(st.compression_ratio * st.v[TMEM_STAT_BYTES_COMPRESSED] <
		 1.01 * n * len);
	t_assert(st.fragmentation >= 0 && st.fragmentation < 1);
	for (i = 0; i < n; i++) {
		struct tmem_key key = t_key(8, i);

		t_rc(t_get_check(s, p, &key, t_tag(T_COMP, i), len), 0);
	}
	t_rc(tmem_flush_pool(s, p), n);
	t_stats(s, &st);
	t_eq(st.v[TMEM_STAT_BYTES_COMPRESSED], 0);
	t_eq(st.v[TMEM_STAT_BYTES_PERSISTENT], 0);
	t_assert(st.compression_ratio == 0);
	t_store_free(s, NULL);
}

int main(int argc, char **argv)
{
	static const uint32_t lens[] = { T_PAGE_4K, T_PAGE_64K };
	int i;

	for (i = 0; i < 2; i++) {
		printf("page size %u\n", lens[i]);
		test_same_filled(lens[i]);
		test_raw_store(lens[i]);
		test_raw_reject(lens[i]);
		test_compressed(lens[i]);
	}
	return T_EXIT_PASS;
}
