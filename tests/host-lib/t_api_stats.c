/* SPDX-License-Identifier: MIT */
/*
 * t_api_stats: each call moves exactly the counters it should.
 *
 * Every op is bracketed by two snapshots.  The counters the op must move
 * are checked for their exact delta; every other counter must not move,
 * except the few the header leaves open for that op (whether a
 * get_exclusive or a rejected overwrite counts as a flush).
 */
#include "helpers.h"

#define LEN	4096	/* int, so that -LEN is negative */
#define ANY	INT64_MIN	/* delta not specified for this op */

struct delta {
	enum tmem_stat stat;
	int64_t delta;
};

static uint64_t before[TMEM_STAT__COUNT];

static void snap(struct tmem_store *s)
{
	t_stat_values(s, before);
}

/* The counters: everything up to the gauges, reclaim runs aside. */
static bool is_counter(unsigned int i)
{
	return i < TMEM_STAT_PAGES_PERSISTENT;
}

static void check_at(int line, struct tmem_store *s, const struct delta *d,
		     int n)
{
	uint64_t after[TMEM_STAT__COUNT];
	int64_t want[TMEM_STAT__COUNT] = { 0 };
	bool any[TMEM_STAT__COUNT] = { false };
	unsigned int i;
	int j;

	t_stat_values(s, after);
	for (j = 0; j < n; j++) {
		if (d[j].delta == ANY)
			any[d[j].stat] = true;
		else
			want[d[j].stat] = d[j].delta;
	}
	for (i = 0; i < TMEM_STAT__COUNT; i++) {
		int64_t got = (int64_t)(after[i] - before[i]);
		bool checked = is_counter(i) ||
			       i == TMEM_STAT_PAGES_PERSISTENT ||
			       i == TMEM_STAT_PAGES_EPHEMERAL ||
			       i == TMEM_STAT_BYTES_PERSISTENT ||
			       i == TMEM_STAT_BYTES_EPHEMERAL;

		if (!checked || any[i])
			continue;
		if (got != want[i])
			t_fail_at(__FILE__, line, "%s moved by %lld, want %lld",
				  tmem_stat_name(i), (long long)got,
				  (long long)want[i]);
	}
}

#define CHECK(s, ...)							\
	do {								\
		const struct delta d_[] = { __VA_ARGS__ };		\
		check_at(__LINE__, s, d_, sizeof(d_) / sizeof(d_[0]));	\
	} while (0)

#define NOTHING	{ TMEM_STAT_RECLAIM_RUNS, ANY }

static void test_counters(void)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	int e = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	struct tmem_key k = t_key(1, 1), k2 = t_key(1, 2), k3 = t_key(1, 3);
	unsigned char buf[LEN] = { 0 };

	snap(s);
	t_rc(t_put_tag(s, p, &k, 1, LEN), 0);
	CHECK(s, { TMEM_STAT_PUTS, 1 }, { TMEM_STAT_PAGES_PERSISTENT, 1 },
	      { TMEM_STAT_BYTES_PERSISTENT, LEN });

	snap(s);
	t_rc(t_put_tag(s, p, &k, 2, LEN), 0);
	CHECK(s, { TMEM_STAT_PUTS, 1 }, { TMEM_STAT_PUT_OVERWRITES, 1 });

	snap(s);
	t_rc(t_put_tag(s, e, &k, 3, LEN), 0);
	CHECK(s, { TMEM_STAT_PUTS, 1 }, { TMEM_STAT_PAGES_EPHEMERAL, 1 },
	      { TMEM_STAT_BYTES_EPHEMERAL, LEN });

	snap(s);
	t_rc(t_get_check(s, p, &k, 2, LEN), 0);
	CHECK(s, { TMEM_STAT_GET_HITS_RAM, 1 });

	snap(s);
	t_rc(t_get_check(s, e, &k, 3, LEN), 0);
	CHECK(s, { TMEM_STAT_GET_HITS_RAM, 1 });

	snap(s);
	t_rc(t_get_check(s, p, &k2, 0, LEN), -ENOENT);
	CHECK(s, { TMEM_STAT_GET_MISSES, 1 });

	snap(s);
	t_rc(t_getx_check(s, p, &k2, 0, LEN), -ENOENT);
	CHECK(s, { TMEM_STAT_GET_MISSES, 1 });

	snap(s);
	t_rc(t_getx_check(s, p, &k, 2, LEN), 0);
	CHECK(s, { TMEM_STAT_GET_HITS_RAM, 1 }, { TMEM_STAT_FLUSH_PAGES, ANY },
	      { TMEM_STAT_PAGES_PERSISTENT, -1 },
	      { TMEM_STAT_BYTES_PERSISTENT, -LEN });

	snap(s);
	t_rc(tmem_flush_page(s, e, &k), 0);
	CHECK(s, { TMEM_STAT_FLUSH_PAGES, 1 },
	      { TMEM_STAT_PAGES_EPHEMERAL, -1 },
	      { TMEM_STAT_BYTES_EPHEMERAL, -LEN });

	snap(s);
	t_rc(tmem_flush_page(s, e, &k), -ENOENT);
	CHECK(s, NOTHING);

	/* flush_object: counts the call and each page. */
	t_rc(t_put_tag(s, p, &k, 1, LEN), 0);
	t_rc(t_put_tag(s, p, &k2, 1, LEN), 0);
	t_rc(t_put_tag(s, p, &k3, t_tag(T_SAME, 1), LEN), 0);
	snap(s);
	t_rc(tmem_flush_object(s, p, k.oid), 3);
	CHECK(s, { TMEM_STAT_FLUSH_OBJECTS, 1 }, { TMEM_STAT_FLUSH_PAGES, 3 },
	      { TMEM_STAT_PAGES_PERSISTENT, -3 },
	      { TMEM_STAT_BYTES_PERSISTENT, -3 * LEN });
	snap(s);
	t_rc(tmem_flush_object(s, p, k.oid), 0);
	CHECK(s, { TMEM_STAT_FLUSH_OBJECTS, 1 });

	/* flush_pool and pool_destroy: counted as pool flushes. */
	t_rc(t_put_tag(s, p, &k, 1, LEN), 0);
	t_rc(t_put_tag(s, p, &k2, 1, LEN), 0);
	t_rc(t_put_tag(s, e, &k2, 1, LEN), 0);
	snap(s);
	t_rc(tmem_flush_pool(s, p), 2);
	CHECK(s, { TMEM_STAT_FLUSH_POOLS, 1 }, { TMEM_STAT_FLUSH_PAGES, 2 },
	      { TMEM_STAT_PAGES_PERSISTENT, -2 },
	      { TMEM_STAT_BYTES_PERSISTENT, -2 * LEN });
	snap(s);
	t_rc(tmem_pool_destroy(s, e), 1);
	CHECK(s, { TMEM_STAT_FLUSH_POOLS, 1 }, { TMEM_STAT_FLUSH_PAGES, 1 },
	      { TMEM_STAT_PAGES_EPHEMERAL, -1 },
	      { TMEM_STAT_BYTES_EPHEMERAL, -LEN });

	/* Invalid puts: -EINVAL and -EBADF count together. */
	snap(s);
	t_rc(tmem_put(s, p, &k, buf, LEN - 1), -EINVAL);
	t_rc(tmem_put(s, p, NULL, buf, LEN), -EINVAL);
	t_rc(tmem_put(s, p, &k, NULL, LEN), -EINVAL);
	t_rc(tmem_put(s, e, &k, buf, LEN), -EBADF);
	t_rc(tmem_put(s, -1, &k, buf, LEN), -EBADF);
	CHECK(s, { TMEM_STAT_PUT_REJ_INVALID, 5 });

	/* ...and a rejected overwrite takes a page away with it. */
	t_rc(t_put_tag(s, p, &k, 1, LEN), 0);
	snap(s);
	t_rc(tmem_put(s, p, &k, buf, 2 * LEN), -EINVAL);
	CHECK(s, { TMEM_STAT_PUT_REJ_INVALID, 1 },
	      { TMEM_STAT_FLUSH_PAGES, ANY },
	      { TMEM_STAT_PAGES_PERSISTENT, -1 },
	      { TMEM_STAT_BYTES_PERSISTENT, -LEN });

	t_rc(tmem_pool_destroy(s, p), 0);
	t_store_free(s, NULL);
}

static void test_reject_counters(void)
{
	struct tmem_config cfg = {
		.budget = 1ull << 30,
		.raw_policy = TMEM_RAW_REJECT,
	};
	struct tmem_store *s = t_store_new_cfg(&cfg, NULL);
	int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	int e = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	struct tmem_key k = t_key(2, 1);

	snap(s);
	t_rc(t_put_tag(s, p, &k, t_tag(T_RAND, 1), LEN), -E2BIG);
	t_rc(t_put_tag(s, e, &k, t_tag(T_RAND, 1), LEN), -E2BIG);
	CHECK(s, { TMEM_STAT_PUT_REJ_RAW, 2 });

	/* No room: budget 0 and no spill refuses anything with data. */
	t_rc(tmem_set_budget(s, 0), 0);
	snap(s);
	t_rc(t_put_tag(s, p, &k, t_tag(T_COMP, 1), LEN), -ENOSPC);
	t_rc(t_put_tag(s, e, &k, t_tag(T_COMP, 1), LEN), -ENOSPC);
	CHECK(s, { TMEM_STAT_PUT_REJ_NOSPACE, 2 });
	t_rc(t_get_check(s, p, &k, 0, LEN), -ENOENT);
	t_store_free(s, NULL);
}

int main(int argc, char **argv)
{
	test_counters();
	test_reject_counters();
	return T_EXIT_PASS;
}
