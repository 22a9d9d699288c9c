/* SPDX-License-Identifier: MIT */
/*
 * t_api_budget: the RAM budget.  Ephemeral pages are evicted to make room
 * and go first; persistent pages spill when there is a spill file and are
 * refused (-ENOSPC) when there is not; tmem_set_budget(0) drains RAM in
 * the background without losing a persistent page; an empty store uses
 * no RAM.
 */
#include "helpers.h"

#define MIB	(1ull << 20)

static uint64_t ram_used(struct tmem_store *s)
{
	return t_stats_get(s, TMEM_STAT_RAM_USED);
}

/* Flush every pool and wait for the RAM (and spill) to be handed back. */
static void drain(struct tmem_store *s, const int *pools, int n)
{
	struct tmem_stats st;
	unsigned int i;
	int j;

	for (j = 0; j < n; j++)
		t_assert(tmem_flush_pool(s, pools[j]) >= 0);
	t_wait_stat_or_fail(s, TMEM_STAT_RAM_USED, T_EQ, 0, 10000);
	t_wait_stat_or_fail(s, TMEM_STAT_SPILL_USED, T_EQ, 0, 10000);
	t_stats(s, &st);
	for (i = TMEM_STAT_PAGES_PERSISTENT; i <= TMEM_STAT_RAM_INDEX; i++)
		if (st.v[i])
			t_fail("empty store: %s = %llu", tmem_stat_name(i),
			       (unsigned long long)st.v[i]);
	t_eq(st.v[TMEM_STAT_SLABS], 0);
}

/*
 * Four budgets' worth of incompressible ephemeral pages: every put
 * succeeds by evicting older pages, RAM never exceeds the budget, the
 * newest page is there, every hit is exact and a miss stays a miss.
 */
static void test_ephemeral_evict(uint32_t len)
{
	const uint64_t budget = 1 * MIB;
	struct tmem_store *s = t_store_new(budget, NULL, 0);
	int e = t_pool_new(s, TMEM_EPHEMERAL, len);
	uint32_t n = 4 * budget / len, i, hits = 0;
	struct tmem_key k;

	for (i = 0; i < n; i++) {
		k = t_key(1, i);
		t_rc(t_put_tag(s, e, &k, t_tag(T_RAND, i), len), 0);
		if (ram_used(s) > budget)
			t_fail("put %u: RAM %llu over budget", i,
			       (unsigned long long)ram_used(s));
	}
	t_assert(t_stats_get(s, TMEM_STAT_EVICTIONS) > 0);
	t_assert(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL) * len <= budget);
	k = t_key(1, n - 1);
	t_rc(t_get_check(s, e, &k, t_tag(T_RAND, n - 1), len), 0);
	for (i = 0; i < n; i++) {
		int rc;

		k = t_key(1, i);
		rc = t_get_check(s, e, &k, t_tag(T_RAND, i), len);
		t_assert(rc == 0 || rc == -ENOENT);
		if (rc == 0)
			hits++;
		else
			t_rc(t_get_check(s, e, &k, 0, len), -ENOENT);
	}
	t_assert(hits > 0 && hits < n);
	t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_NOSPACE), 0);
	drain(s, &e, 1);
	t_store_free(s, NULL);
}

/*
 * Without spill: persistent puts take the RAM ephemeral pages held, and
 * are refused only once no ephemeral page is left.  Then an ephemeral put
 * finds no room either.  Accepted persistent pages all survive.
 */
static void test_ephemeral_first(uint32_t len)
{
	const uint64_t budget = 1 * MIB;
	struct tmem_store *s = t_store_new(budget, NULL, 0);
	int pools[2];
	int e = pools[0] = t_pool_new(s, TMEM_EPHEMERAL, len);
	int p = pools[1] = t_pool_new(s, TMEM_PERSISTENT, len);
	uint32_t i, accepted = 0, max = 4 * budget / len;
	struct tmem_key k;
	int rc = 0;

	for (i = 0; t_stats_get(s, TMEM_STAT_EVICTIONS) == 0; i++) {
		t_assert(i < max);
		k = t_key(1, i);
		t_rc(t_put_tag(s, e, &k, t_tag(T_RAND, i), len), 0);
	}
	for (i = 0; i < max; i++) {
		k = t_key(2, i);
		rc = t_put_tag(s, p, &k, t_tag(T_RAND, i + 1000), len);
		if (rc)
			break;
		accepted++;
		t_assert(ram_used(s) <= budget);
	}
	t_rc(rc, -ENOSPC);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_EPHEMERAL), 0);
	t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_NOSPACE), 1);
	t_assert((uint64_t)accepted * len >= budget / 2);
	t_rc(t_get_check(s, p, &k, 0, len), -ENOENT);

	k = t_key(1, 0);
	t_rc(t_put_tag(s, e, &k, t_tag(T_RAND, 7), len), -ENOSPC);
	for (i = 0; i < accepted; i++) {
		k = t_key(2, i);
		t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i + 1000), len), 0);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), accepted);
	t_eq(t_stats_get(s, TMEM_STAT_SPILLS), 0);
	drain(s, pools, 2);
	t_store_free(s, NULL);
}

/*
 * With spill: four budgets' worth of persistent pages all go in, RAM
 * stays within budget, the excess is on spill and reads back.
 */
static void test_persistent_spill(uint32_t len)
{
	const uint64_t budget = 1 * MIB;
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(budget, dir, 256 * MIB);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	uint32_t n = 4 * budget / len, i;
	struct tmem_stats st;
	struct tmem_key k;

	for (i = 0; i < n; i++) {
		k = t_key(3, i);
		t_rc(t_put_tag(s, p, &k, t_tag(i % 4 ? T_RAND : T_COMP, i),
			       len), 0);
		if (ram_used(s) > budget)
			t_fail("put %u: RAM %llu over budget", i,
			       (unsigned long long)ram_used(s));
	}
	t_stats(s, &st);
	t_assert(st.v[TMEM_STAT_SPILLS] > 0);
	t_assert(st.v[TMEM_STAT_PAGES_SPILLED] > 0);
	t_assert(st.v[TMEM_STAT_PAGES_SPILLED] < n);
	t_eq(st.v[TMEM_STAT_PAGES_PERSISTENT], n);
	t_assert(st.v[TMEM_STAT_SPILL_USED] > 0);
	t_assert(st.v[TMEM_STAT_SPILL_USED] <= st.v[TMEM_STAT_SPILL_MAX]);
	t_eq(st.v[TMEM_STAT_SPILL_WRITE_ERRORS], 0);
	for (i = 0; i < n; i++) {
		k = t_key(3, i);
		t_rc(t_get_check(s, p, &k, t_tag(i % 4 ? T_RAND : T_COMP, i),
				 len), 0);
	}
	t_stats(s, &st);
	t_assert(st.v[TMEM_STAT_GET_HITS_SPILL] > 0);
	t_assert(st.v[TMEM_STAT_SPILL_READS] > 0);
	t_eq(st.v[TMEM_STAT_GET_HITS_SPILL] + st.v[TMEM_STAT_GET_HITS_RAM], n);

	/* Overwrite everything, spilled or not; the new bytes win. */
	for (i = 0; i < n; i++) {
		k = t_key(3, i);
		t_rc(t_put_tag(s, p, &k, t_tag(T_HALF, i), len), 0);
	}
	for (i = 0; i < n; i++) {
		k = t_key(3, i);
		t_rc(t_get_check(s, p, &k, t_tag(T_HALF, i), len), 0);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), n);
	t_assert(ram_used(s) <= budget);
	drain(s, &p, 1);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), 0);
	t_store_free(s, dir);
}

/*
 * The index is RAM too: with spill on, pages that need no RAM for their
 * data (same-filled, or written straight to spill) must still fit their
 * index entries in the budget.  A guest putting one zeroed page under
 * ever new keys must be refused once the budget is spent, not grow the
 * host's RAM without limit; and so must pages that go to spill.
 */
static void test_index_bounded(uint32_t len)
{
	const uint64_t budget = 1 * MIB;
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(budget, dir, 256 * MIB);
	int p = t_pool_new(s, TMEM_PERSISTENT, len);
	/* Far more index entries than the budget can hold. */
	uint32_t n = 100000, i, ok = 0, nospc = 0;
	struct tmem_key k;
	int kind, rc;

	for (kind = 0; kind < 2; kind++) {
		uint64_t tag0 = kind ? t_tag(T_COMP, 0) : t_tag(T_SAME, 0);

		ok = nospc = 0;
		for (i = 0; i < n; i++) {
			k = t_key(10 + kind, i);
			rc = t_put_tag(s, p, &k, tag0 + i % 7, len);
			if (rc == 0)
				ok++;
			else if (rc == -ENOSPC)
				nospc++;
			else
				t_fail("put %u: %s", i, t_errname(rc));
			if (ram_used(s) > budget)
				t_fail("%s put %u: RAM %llu over budget %llu",
				       kind ? "spilled" : "same-filled", i,
				       (unsigned long long)ram_used(s),
				       (unsigned long long)budget);
		}
		printf("  %s: %u accepted, %u refused\n",
		       kind ? "spilled" : "same-filled", ok, nospc);
		t_assert(ok > 0);
		t_assert(nospc > 0);
		/* Whatever was accepted reads back. */
		for (i = 0; i < n; i++) {
			k = t_key(10 + kind, i);
			rc = t_get_check(s, p, &k, tag0 + i % 7, len);
			t_assert(rc == 0 || rc == -ENOENT);
		}
		t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), ok);
		t_assert(tmem_flush_pool(s, p) == ok);
	}
	drain(s, &p, 1);
	t_store_free(s, dir);
}

#define NPAGES	400

static uint64_t ptag(uint32_t i)
{
	static const enum t_kind kinds[] = { T_COMP, T_SAME, T_RAND, T_HALF };

	return t_tag(kinds[i % 4], i);
}

/*
 * set_budget(0) with spill: returns at once; in the background RAM data
 * goes to zero, ephemeral pages go, every persistent page with data goes
 * to spill and all still read back.  New persistent puts go straight to
 * spill, new ephemeral puts are refused.
 */
static void test_budget_zero_spill(uint32_t len)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(1ull << 32, dir, 1ull << 30);
	int pools[2];
	int p = pools[0] = t_pool_new(s, TMEM_PERSISTENT, len);
	int e = pools[1] = t_pool_new(s, TMEM_EPHEMERAL, len);
	uint32_t i, n = len == T_PAGE_4K ? NPAGES : NPAGES / 4, same = 0;
	struct tmem_key k;
	uint64_t t0;
	int rc;

	for (i = 0; i < n; i++) {
		k = t_key(4, i);
		t_rc(t_put_tag(s, p, &k, ptag(i), len), 0);
		t_rc(t_put_tag(s, e, &k, ptag(i + 1), len), 0);
		same += t_tag_kind(ptag(i)) == T_SAME;
	}
	t0 = t_now_ms();
	t_rc(tmem_set_budget(s, 0), 0);
	t_assert(t_now_ms() - t0 < 1000);
	t_eq(t_stats_get(s, TMEM_STAT_BUDGET), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_RAM_DATA, T_EQ, 0, 10000);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_EPHEMERAL, T_EQ, 0, 10000);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, n - same, 10000);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), n);
	t_assert(t_stats_get(s, TMEM_STAT_RECLAIM_RUNS) > 0);
	for (i = 0; i < n; i++) {
		k = t_key(4, i);
		t_rc(t_get_check(s, p, &k, ptag(i), len), 0);
		/* Gone, and get-get coherent. */
		t_rc(t_get_check(s, e, &k, 0, len), -ENOENT);
		t_rc(t_get_check(s, e, &k, 0, len), -ENOENT);
	}

	/*
	 * At budget 0 an overwrite of a persistent page goes straight to
	 * spill (its index entry exists); a new key needs index RAM, so it
	 * may be refused (unless its shard has a free entry left).
	 */
	k = t_key(4, 0);
	t_rc(t_put_tag(s, p, &k, t_tag(T_RAND, 99), len), 0);
	t_assert(t_stats_get(s, TMEM_STAT_SPILL_DIRECT) > 0);
	t_eq(t_stats_get(s, TMEM_STAT_RAM_DATA), 0);
	t_rc(t_get_check(s, p, &k, t_tag(T_RAND, 99), len), 0);
	t_rc(t_put_tag(s, p, &k, ptag(0), len), 0);
	t_rc(t_put_tag(s, e, &k, t_tag(T_COMP, 99), len), -ENOSPC);
	t_rc(t_get_check(s, e, &k, 0, len), -ENOENT);
	k = t_key(5, 0);
	rc = t_put_tag(s, p, &k, t_tag(T_RAND, 98), len);
	if (rc && rc != -ENOSPC)
		t_fail("new key at budget 0: %s", t_errname(rc));
	t_rc(t_get_check(s, p, &k, rc ? 0 : t_tag(T_RAND, 98), len),
	     rc ? -ENOENT : 0);
	t_eq(t_stats_get(s, TMEM_STAT_RAM_DATA), 0);

	/* Budget back up: everything is still there, RAM fills again. */
	t_rc(tmem_set_budget(s, 1ull << 32), 0);
	for (i = 0; i < n; i++) {
		k = t_key(4, i);
		t_rc(t_get_check(s, p, &k, ptag(i), len), 0);
		t_rc(t_put_tag(s, e, &k, ptag(i + 2), len), 0);
	}
	for (i = 0; i < n; i += 3) {
		k = t_key(4, i);
		t_rc(t_put_tag(s, p, &k, ptag(i + 3), len), 0);
		t_rc(t_get_check(s, p, &k, ptag(i + 3), len), 0);
		t_rc(t_get_check(s, e, &k, ptag(i + 2), len), 0);
	}
	t_assert(t_stats_get(s, TMEM_STAT_RAM_DATA) > 0);
	drain(s, pools, 2);
	t_store_free(s, dir);
}

/*
 * set_budget(0) without spill: ephemeral pages go, persistent pages stay
 * (over budget) and are never lost.  New pages may still fill slots of
 * slabs already allocated, but RAM_DATA must not grow, so puts are soon
 * refused; a refused overwrite takes the old copy with it.
 */
static void test_budget_zero_nospill(uint32_t len)
{
	struct tmem_store *s = t_store_new(1ull << 32, NULL, 0);
	int pools[2];
	int p = pools[0] = t_pool_new(s, TMEM_PERSISTENT, len);
	int e = pools[1] = t_pool_new(s, TMEM_EPHEMERAL, len);
	uint32_t i, n = len == T_PAGE_4K ? NPAGES : NPAGES / 4;
	static bool gone[NPAGES];
	uint32_t accepted = 0, lost = 0;
	uint64_t data0;
	struct tmem_key k;
	int rc = 0;

	for (i = 0; i < n; i++) {
		k = t_key(6, i);
		t_rc(t_put_tag(s, p, &k, ptag(i), len), 0);
		t_rc(t_put_tag(s, e, &k, ptag(i), len), 0);
		gone[i] = false;
	}
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_EPHEMERAL, T_EQ, 0, 10000);
	t_wait_stat_or_fail(s, TMEM_STAT_RECLAIM_RUNS, T_GE, 1, 10000);
	t_sleep_ms(100);	/* give a wrong reclaim a chance to drop more */
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), n);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), 0);
	for (i = 0; i < n; i++) {
		k = t_key(6, i);
		t_rc(t_get_check(s, p, &k, ptag(i), len), 0);
	}

	/* New persistent pages: some may fit in old slabs, then -ENOSPC. */
	data0 = t_stats_get(s, TMEM_STAT_RAM_DATA);
	for (i = 0; i < 4 * n && rc == 0; i++) {
		k = t_key(7, i);
		rc = t_put_tag(s, p, &k, t_tag(T_RAND, i), len);
		t_assert(rc == 0 || rc == -ENOSPC);
		accepted += rc == 0;
		t_assert(t_stats_get(s, TMEM_STAT_RAM_DATA) <= data0);
	}
	t_rc(rc, -ENOSPC);
	t_rc(t_get_check(s, p, &k, 0, len), -ENOENT);
	for (i = 0; i < accepted; i++) {
		k = t_key(7, i);
		t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i), len), 0);
	}
	k = t_key(7, 0);
	t_rc(t_put_tag(s, e, &k, t_tag(T_RAND, 1), len), -ENOSPC);

	/* Overwrites that need room are refused and lose the old copy. */
	for (i = 0; i < n; i++) {
		k = t_key(6, i);
		rc = t_put_tag(s, p, &k, t_tag(T_RAND, i + 7), len);
		t_assert(rc == 0 || rc == -ENOSPC);
		if (rc == 0)
			t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i + 7), len),
			     0);
		else
			t_rc(t_get_check(s, p, &k, 0, len), -ENOENT);
		gone[i] = rc != 0;
		lost += gone[i];
	}
	t_assert(lost > 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), n + accepted - lost);

	t_rc(tmem_set_budget(s, 1ull << 32), 0);
	for (i = 0; i < n; i++) {
		k = t_key(6, i);
		if (gone[i]) {
			t_rc(t_put_tag(s, p, &k, ptag(i), len), 0);
			t_rc(t_get_check(s, p, &k, ptag(i), len), 0);
		} else {
			t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i + 7), len),
			     0);
		}
	}
	drain(s, pools, 2);
	t_store_free(s, NULL);
}

int main(int argc, char **argv)
{
	static const uint32_t lens[] = { T_PAGE_4K, T_PAGE_64K };
	int i;

	for (i = 0; i < 2; i++) {
		printf("page size %u\n", lens[i]);
		test_ephemeral_evict(lens[i]);
		test_ephemeral_first(lens[i]);
		test_persistent_spill(lens[i]);
		test_index_bounded(lens[i]);
		test_budget_zero_spill(lens[i]);
		test_budget_zero_nospill(lens[i]);
	}
	return T_EXIT_PASS;
}
