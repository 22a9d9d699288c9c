/* SPDX-License-Identifier: MIT */
/*
 * t_api_stored: pages moved between stores in their stored form (ABI
 * 1.4), as migration moves them.  A walk by keys (tmem_iter_next_keys)
 * plus tmem_get_stored_batch hands out each page of a pool once, in RAM,
 * same-filled or spilled, as stored: same-filled pages as their word,
 * incompressible ones raw, the rest as LZ4 smaller than the page.
 * tmem_put_stored of those into another store gives back every byte and
 * costs that store the compressed size, not the page size.  And
 * tmem_put_stored refuses anything that is not a page of the pool in the
 * form it claims, flushing the key as any refused put does.
 */
#include <lz4.h>

#include "helpers.h"

#define MIB	(1ull << 20)
#define N	400
#define BATCH	16

static uint64_t tag_of(uint32_t i)
{
	static const enum t_kind kinds[] = { T_COMP, T_SAME, T_RAND, T_HALF };

	return t_tag(kinds[i % 4], i * 31u + 7);
}

static uint32_t want_form(uint32_t i)
{
	static const uint32_t forms[] = { TMEM_FORM_LZ4, TMEM_FORM_SAME,
					  TMEM_FORM_RAW, TMEM_FORM_LZ4 };

	return forms[i % 4];
}

/*
 * Copy every page of pool @sp of @src into pool @dp of @dst, by stored
 * form, checking each form; returns the LZ4 and RAW bytes moved.
 */
static uint64_t copy_pool(struct tmem_store *src, int sp,
			  struct tmem_store *dst, int dp, uint32_t len,
			  bool *seen)
{
	struct tmem_key keys[BATCH];
	struct tmem_stored st[BATCH];
	void *bufs[BATCH];
	int res[BATCH], n, i;
	struct tmem_iter *it;
	uint64_t bytes = 0;

	for (i = 0; i < BATCH; i++)
		bufs[i] = t_buf_alloc(len);
	t_rc(tmem_iter_begin(src, sp, &it), 0);
	t_eq(tmem_iter_left(it), N);
	while ((n = tmem_iter_next_keys(it, keys, BATCH)) > 0) {
		t_rc(tmem_get_stored_batch(src, sp, keys, bufs, st, res,
					   (unsigned int)n, len), n);
		for (i = 0; i < n; i++) {
			uint32_t k = (uint32_t)keys[i].index;

			t_rc(res[i], 0);
			t_canary_verify(bufs[i], len);
			t_assert(k < N && !seen[k]);
			seen[k] = true;
			if (st[i].form != want_form(k))
				t_fail("page %u: form %u, want %u", k,
				       st[i].form, want_form(k));
			if (st[i].form == TMEM_FORM_SAME)
				t_eq(st[i].len, 0);
			else if (st[i].form == TMEM_FORM_RAW)
				t_eq(st[i].len, len);
			else
				t_assert(st[i].len > 0 && st[i].len < len);
			bytes += st[i].len;
			t_rc(tmem_put_stored(dst, dp, &keys[i], &st[i],
					     bufs[i], 0), 0);
		}
	}
	t_rc(n, 0);
	t_eq(tmem_iter_left(it), 0);
	t_rc(tmem_iter_next_keys(it, keys, BATCH), 0);
	tmem_iter_end(it);
	for (i = 0; i < BATCH; i++)
		free(bufs[i]);
	return bytes;
}

/* Pages in RAM, same-filled and spilled, 4 KiB and 64 KiB. */
static void test_copy(uint32_t len)
{
	char dir[T_PATH_MAX];
	struct tmem_store *src = t_store_new(64 * MIB, dir, 256 * MIB);
	struct tmem_store *dst = t_store_new(64 * MIB, NULL, 0);
	int sp = t_pool_new(src, TMEM_PERSISTENT, len);
	int dp = t_pool_new(dst, TMEM_PERSISTENT, len);
	bool seen[N] = { false };
	uint64_t moved, reads;
	uint32_t i;

	for (i = 0; i < N; i++) {
		struct tmem_key k = t_key(i / 50, i);

		t_rc(t_put_tag(src, sp, &k, tag_of(i), len), 0);
	}
	/* Spill about half of what is in RAM. */
	t_rc(tmem_set_budget(src, t_stats_get(src, TMEM_STAT_RAM_USED) / 2),
	     0);
	t_wait_stat_or_fail(src, TMEM_STAT_PAGES_SPILLED, T_GE, 1, 10000);
	reads = t_stats_get(src, TMEM_STAT_SPILL_READS);

	moved = copy_pool(src, sp, dst, dp, len, seen);
	for (i = 0; i < N; i++) {
		struct tmem_key k = t_key(i / 50, i);

		t_assert(seen[i]);
		t_rc(t_get_check(dst, dp, &k, tag_of(i), len), 0);
	}
	t_assert(t_stats_get(src, TMEM_STAT_SPILL_READS) > reads);
	t_eq(t_stats_get(dst, TMEM_STAT_PAGES_PERSISTENT), N);
	t_eq(t_stats_get(dst, TMEM_STAT_PAGES_SAME), N / 4);
	t_eq(t_stats_get(dst, TMEM_STAT_PAGES_RAW), N / 4);
	/* Kept as given: the data RAM holds what travelled, no more. */
	t_eq(t_stats_get(dst, TMEM_STAT_BYTES_COMPRESSED), moved);
	t_assert(moved < (uint64_t)N * len * 3 / 4);
	t_store_free(dst, NULL);
	t_store_free(src, dir);
}

/* Missing keys, flushed pages and bad arguments in a stored batch. */
static void test_batch_args(void)
{
	struct tmem_store *s = t_store_new(16 * MIB, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	struct tmem_key keys[2] = { t_key(1, 1), t_key(1, 2) };
	struct tmem_stored st[2];
	void *bufs[2] = { t_buf_alloc(T_PAGE_4K), NULL };
	int res[2];

	t_rc(t_put_tag(s, p, &keys[0], tag_of(0), T_PAGE_4K), 0);
	t_rc(tmem_get_stored_batch(s, p, keys, bufs, st, res, 1, T_PAGE_4K),
	     1);
	bufs[1] = t_buf_alloc(T_PAGE_4K);
	t_rc(tmem_get_stored_batch(s, p, keys, bufs, st, res, 2, T_PAGE_4K),
	     1);
	t_rc(res[0], 0);
	t_rc(res[1], -ENOENT);
	t_rc(tmem_get_stored_batch(s, p, keys, bufs, NULL, res, 2, T_PAGE_4K),
	     -EINVAL);
	t_rc(tmem_get_stored_batch(s, p, keys, bufs, st, res, 2, T_PAGE_64K),
	     -EINVAL);
	t_rc(tmem_get_stored_batch(s, p + 1, keys, bufs, st, res, 2,
				   T_PAGE_4K), -EBADF);
	t_rc(tmem_get_stored_batch(NULL, p, keys, bufs, st, res, 2, T_PAGE_4K),
	     -EINVAL);
	t_rc(tmem_get_stored_batch(s, p, NULL, NULL, NULL, NULL, 0, T_PAGE_4K),
	     0);
	t_rc(tmem_iter_next_keys(NULL, keys, 1), -EINVAL);
	t_rc(tmem_iter_left(NULL), -EINVAL);
	free(bufs[0]);
	free(bufs[1]);
	t_store_free(s, NULL);
}

/* Put @st/@data over a stored page of key (1, 9): must fail with @want. */
static void put_bad_at(int line, struct tmem_store *s, int pool,
		       const struct tmem_stored *st, const void *data,
		       unsigned int flags, int want)
{
	unsigned char *buf = t_buf_alloc(T_PAGE_4K);
	struct tmem_key k = t_key(1, 9);
	int rc;

	t_rc(t_put_tag(s, pool, &k, tag_of(0), T_PAGE_4K), 0);
	rc = tmem_put_stored(s, pool, &k, st, data, flags);
	if (rc != want)
		t_fail_at(__FILE__, line, "tmem_put_stored: %s, want %s",
			  t_errname(rc), t_errname(want));
	/* No older copy outlives a refused put. */
	if (tmem_get(s, pool, &k, buf, T_PAGE_4K) != -ENOENT)
		t_fail_at(__FILE__, line, "the old page outlived the refusal");
	free(buf);
}

#define put_bad(...)	put_bad_at(__LINE__, __VA_ARGS__)

/* Forms that are not a page of the pool are refused. */
static void test_bad_forms(void)
{
	struct tmem_store *s = t_store_new(16 * MIB, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	int e = t_pool_new(s, TMEM_EPHEMERAL, T_PAGE_4K);
	unsigned char *page = t_buf_alloc(T_PAGE_4K);
	char lz[LZ4_COMPRESSBOUND(T_PAGE_4K)];
	struct tmem_key k = t_key(1, 9);
	struct tmem_stored st;
	int n;

	t_page_fill(page, T_PAGE_4K, tag_of(0));
	n = LZ4_compress_default((const char *)page, lz, T_PAGE_4K,
				 (int)sizeof(lz));
	t_assert(n > 8 && n < (int)T_PAGE_4K / 2);

	st = (struct tmem_stored){ .form = 7 };
	put_bad(s, p, &st, lz, 0, -EBADMSG);
	st = (struct tmem_stored){ .form = TMEM_FORM_SAME, .len = 8 };
	put_bad(s, p, &st, lz, 0, -EBADMSG);
	st = (struct tmem_stored){ .form = TMEM_FORM_RAW, .len = 100 };
	put_bad(s, p, &st, page, 0, -EBADMSG);
	st = (struct tmem_stored){ .form = TMEM_FORM_RAW, .len = T_PAGE_4K };
	put_bad(s, p, &st, NULL, 0, -EBADMSG);
	st = (struct tmem_stored){ .form = TMEM_FORM_LZ4, .len = T_PAGE_4K };
	put_bad(s, p, &st, page, 0, -EBADMSG);
	st = (struct tmem_stored){ .form = TMEM_FORM_LZ4, .len = 0 };
	put_bad(s, p, &st, lz, 0, -EBADMSG);
	/* Cut short, so it cannot yield a whole page. */
	st = (struct tmem_stored){ .form = TMEM_FORM_LZ4, .len = (uint32_t)n / 2 };
	put_bad(s, p, &st, lz, 0, -EBADMSG);
	/* A valid block of half a page is not a page. */
	n = LZ4_compress_default((const char *)page, lz, T_PAGE_4K / 2,
				 (int)sizeof(lz));
	st = (struct tmem_stored){ .form = TMEM_FORM_LZ4, .len = (uint32_t)n };
	put_bad(s, p, &st, lz, 0, -EBADMSG);
	/* Arguments, as for tmem_put_flags. */
	put_bad(s, p, NULL, lz, 0, -EINVAL);
	st = (struct tmem_stored){ .form = TMEM_FORM_SAME, .word = 5 };
	put_bad(s, p, &st, NULL, 1u << 7, -EINVAL);
	t_rc(tmem_put_stored(s, e, &k, &st, NULL, TMEM_PUT_RESERVED), -EINVAL);
	t_rc(tmem_put_stored(s, p + 2, &k, &st, NULL, 0), -EBADF);
	t_rc(tmem_put_stored(NULL, p, &k, &st, NULL, 0), -EINVAL);
	t_rc(tmem_put_stored(s, p, NULL, &st, NULL, 0), -EINVAL);

	/* And a good one of each form still goes in. */
	t_rc(tmem_put_stored(s, p, &k, &st, NULL, 0), 0);
	t_rc(tmem_get(s, p, &k, page, T_PAGE_4K), 0);
	for (uint32_t i = 0; i < T_PAGE_4K / 8; i++)
		t_eq(((uint64_t *)page)[i], 5);
	free(page);
	t_store_free(s, NULL);
}

/* Reserved stored puts are kept over the budget; plain ones are not. */
static void test_budget(void)
{
	struct tmem_store *s = t_store_new(16 * MIB, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	unsigned char *page = t_buf_alloc(T_PAGE_4K);
	struct tmem_stored st = { .form = TMEM_FORM_RAW, .len = T_PAGE_4K };
	uint32_t i;

	t_rc(tmem_set_budget(s, 0), 0);
	t_page_fill(page, T_PAGE_4K, t_tag(T_RAND, 3));
	for (i = 0; i < 8; i++) {
		struct tmem_key k = t_key(2, i);

		t_rc(tmem_put_stored(s, p, &k, &st, page, 0), -ENOSPC);
		t_rc(tmem_put_stored(s, p, &k, &st, page, TMEM_PUT_RESERVED),
		     0);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PUT_OVER_BUDGET), 8);
	t_eq(t_stats_get(s, TMEM_STAT_PUTS), 8);
	free(page);
	t_store_free(s, NULL);
}

int main(void)
{
	test_copy(T_PAGE_4K);
	test_copy(T_PAGE_64K);
	test_batch_args();
	test_bad_forms();
	test_budget();
	return T_EXIT_PASS;
}
