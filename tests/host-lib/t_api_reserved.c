/* SPDX-License-Identifier: MIT */
/*
 * t_api_reserved: tmem_put_flags(TMEM_PUT_RESERVED), the host side of
 * virtio-tmem's credits.  A reserved persistent put that neither the
 * budget nor the spill file can take is kept over budget, not refused,
 * and counted; the same put unreserved is refused.  Reserved puts to an
 * ephemeral pool, and unknown flags, are -EINVAL and leave nothing.
 */
#include "helpers.h"

#define MIB	(1ull << 20)
#define LEN	4096

static int put_flags(struct tmem_store *s, int pool, uint32_t i,
		     uint64_t tag, unsigned int flags)
{
	unsigned char *buf = t_buf_alloc(LEN);
	struct tmem_key k = t_key(7, i);
	int rc;

	t_page_fill(buf, LEN, tag);
	rc = tmem_put_flags(s, pool, &k, buf, LEN, flags);
	free(buf);
	return rc;
}

static void test_over_budget(enum tmem_raw_policy policy)
{
	struct tmem_config cfg = {
		.budget = 1 * MIB,
		.raw_policy = policy,
	};
	struct tmem_store *s = t_store_new_cfg(&cfg, NULL);
	int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	uint32_t i, full, extra = 64;
	uint64_t over;
	int rc;

	/* Fill until the budget refuses an ordinary put. */
	for (i = 0;; i++) {
		t_assert(i < 4096);
		rc = put_flags(s, p, i, t_tag(T_HALF, i), 0);
		if (rc == -ENOSPC)
			break;
		t_rc(rc, 0);
	}
	full = i;
	t_assert(t_stats_get(s, TMEM_STAT_RAM_USED) <= cfg.budget);

	/* Reserved puts still go in, over budget, and are counted. */
	for (i = full; i < full + extra; i++)
		t_rc(put_flags(s, p, i, t_tag(i % 2 ? T_RAND : T_HALF, i),
			       TMEM_PUT_RESERVED), 0);
	/*
	 * Most go over: a few may still fit, in a slab or an index chunk
	 * with room that the refused put (another size, another shard)
	 * could not use.
	 */
	over = t_stats_get(s, TMEM_STAT_PUT_OVER_BUDGET);
	if (over < extra / 2 || over > extra)
		t_fail("%llu of %u reserved puts over budget",
		       (unsigned long long)over, extra);
	t_assert(t_stats_get(s, TMEM_STAT_RAM_USED) > cfg.budget);
	t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_RAW), 0);

	/* Every accepted page is there and exact. */
	for (i = 0; i < full + extra; i++) {
		struct tmem_key k = t_key(7, i);
		uint64_t tag = i < full ? t_tag(T_HALF, i) :
			       t_tag(i % 2 ? T_RAND : T_HALF, i);

		t_rc(t_get_check(s, p, &k, tag, LEN), 0);
	}

	/* ...and an ordinary put is still refused. */
	t_rc(put_flags(s, p, full + extra, t_tag(T_HALF, 1), 0), -ENOSPC);
	t_store_free(s, NULL);
}

static void test_bad_flags(void)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	int e = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	struct tmem_key k = t_key(7, 1);

	t_rc(put_flags(s, p, 1, t_tag(T_COMP, 1), 0), 0);
	t_rc(put_flags(s, p, 1, t_tag(T_COMP, 2), 1u << 7), -EINVAL);
	t_rc(t_get_check(s, p, &k, 0, LEN), -ENOENT);
	t_rc(put_flags(s, e, 1, t_tag(T_COMP, 1), 0), 0);
	t_rc(put_flags(s, e, 1, t_tag(T_COMP, 3), TMEM_PUT_RESERVED),
	     -EINVAL);
	t_rc(t_get_check(s, e, &k, 0, LEN), -ENOENT);
	t_store_free(s, NULL);
}

int main(void)
{
	test_over_budget(TMEM_RAW_STORE);
	test_over_budget(TMEM_RAW_REJECT);
	test_bad_flags();
	return 0;
}
