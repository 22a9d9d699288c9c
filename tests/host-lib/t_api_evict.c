/* SPDX-License-Identifier: MIT */
/*
 * t_api_evict: tmem_set_evict_cb, the host side of virtio-tmem's
 * EVICTED events.  Every ephemeral page the store drops for room is
 * reported once, with its pool and key, whether a put or the reclaim
 * thread dropped it, and whether it had data or was same-filled; pages
 * the caller removed (flushes, overwrites, pool destruction) are not.
 * After tmem_set_evict_cb(NULL) returns, no report arrives any more.
 */
#include <pthread.h>

#include "helpers.h"

#define MIB	(1ull << 20)
#define LEN	4096
#define NKEYS	4096		/* index space of the tests' object */
#define OBJ	11

struct reports {
	pthread_mutex_t lock;	/* the callback's own lock, as in QEMU */
	uint64_t n;		/* calls */
	uint64_t bad;		/* calls naming another pool or object */
	int pool;		/* the pool every report must name */
	uint8_t seen[NKEYS];	/* reports per index */
};

static void on_evict(void *opaque, int pool, const struct tmem_key *key)
{
	struct reports *r = opaque;
	struct tmem_key want = t_key(OBJ, key->index);

	pthread_mutex_lock(&r->lock);
	r->n++;
	if (pool != r->pool || key->index >= NKEYS ||
	    memcmp(key->oid, want.oid, sizeof(want.oid)))
		r->bad++;
	else if (r->seen[key->index] < 255)
		r->seen[key->index]++;
	pthread_mutex_unlock(&r->lock);
}

static void reports_init(struct reports *r, int pool)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->pool = pool;
}

static uint64_t reports_n(struct reports *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->lock);
	n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/*
 * Every reported key misses, every key not reported is still there and
 * exact, nothing was reported twice, and the reports match the store's
 * eviction count since @ev0.  @tag_of gives the page put under index i.
 */
static void check_reports(struct tmem_store *s, int pool, struct reports *r,
			  uint32_t nput, uint64_t ev0,
			  uint64_t (*tag_of)(uint32_t))
{
	uint64_t missing = 0;

	t_eq(r->bad, 0);
	t_eq(r->n, t_stats_get(s, TMEM_STAT_EVICTIONS) - ev0);
	for (uint32_t i = 0; i < nput; i++) {
		struct tmem_key k = t_key(OBJ, i);
		int rc = t_get_check(s, pool, &k, tag_of(i), LEN);

		if (r->seen[i] > 1)
			t_fail("index %u reported %u times", i, r->seen[i]);
		if (r->seen[i])
			t_rc(rc, -ENOENT);
		else
			t_rc(rc, 0);
		missing += rc == -ENOENT;
	}
	t_eq(missing, r->n);
}

static uint64_t tag_half(uint32_t i)
{
	return t_tag(T_HALF, i + 1);
}

static uint64_t tag_same(uint32_t i)
{
	return t_tag(T_SAME, i + 1);
}

/* Puts that find no room drop older ephemeral pages, and say which. */
static void test_put_makes_room(void)
{
	struct tmem_store *s = t_store_new(1 * MIB, NULL, 0);
	int pe = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	int pp = t_pool_new(s, TMEM_PERSISTENT, LEN);
	uint64_t ev0 = t_stats_get(s, TMEM_STAT_EVICTIONS);
	struct reports r;
	uint32_t i, nput = 2048;	/* ~4 MiB of half-random pages */

	reports_init(&r, pe);
	t_rc(tmem_set_evict_cb(s, on_evict, &r), 0);
	for (i = 0; i < nput; i++) {
		struct tmem_key k = t_key(OBJ, i);

		t_rc(t_put_tag(s, pe, &k, tag_half(i), LEN), 0);
	}
	t_assert(r.n > 0);
	check_reports(s, pe, &r, nput, ev0, tag_half);

	/* Persistent puts push out ephemeral pages too, reported alike */
	ev0 = t_stats_get(s, TMEM_STAT_EVICTIONS);
	memset(r.seen, 0, sizeof(r.seen));
	r.n = 0;
	for (i = 0; i < 64; i++) {
		struct tmem_key k = t_key(OBJ + 1, i);
		int rc = t_put_tag(s, pp, &k, t_tag(T_HALF, 9000 + i), LEN);

		t_assert(rc == 0 || rc == -ENOSPC);
	}
	t_assert(r.n > 0);
	t_eq(r.bad, 0);
	t_eq(r.n, t_stats_get(s, TMEM_STAT_EVICTIONS) - ev0);
	t_store_free(s, NULL);
}

/* What the caller removes itself is never reported. */
static void test_caller_removals(void)
{
	struct tmem_store *s = t_store_new(64 * MIB, NULL, 0);
	int pe = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	struct reports r;
	uint32_t i;

	reports_init(&r, pe);
	t_rc(tmem_set_evict_cb(s, on_evict, &r), 0);
	for (i = 0; i < 64; i++) {
		struct tmem_key k = t_key(OBJ, i);

		t_rc(t_put_tag(s, pe, &k, tag_half(i), LEN), 0);
	}
	{
		struct tmem_key k = t_key(OBJ, 0);
		struct tmem_key other = t_key(OBJ + 1, 0);

		t_rc(tmem_flush_page(s, pe, &k), 0);
		k.index = 1;
		t_rc(t_put_tag(s, pe, &k, tag_half(100), LEN), 0);
		k.index = 2;
		t_rc(t_getx_check(s, pe, &k, tag_half(2), LEN), 0);
		t_rc(t_put_tag(s, pe, &other, tag_half(5), LEN), 0);
		t_eq(tmem_flush_object(s, pe, other.oid), 1);
	}
	t_eq(tmem_flush_pool(s, pe), 62);
	for (i = 0; i < 8; i++) {
		struct tmem_key k = t_key(OBJ, i);

		t_rc(t_put_tag(s, pe, &k, tag_half(i), LEN), 0);
	}
	t_eq(tmem_pool_destroy(s, pe), 8);
	t_eq(r.n, 0);
	t_eq(t_stats_get(s, TMEM_STAT_EVICTIONS), 0);
	t_store_free(s, NULL);
}

/*
 * A budget cut: the reclaim thread drops the pages and reports them
 * from its own thread.  Same-filled pages (no slab) are reported too.
 */
static void test_budget_cut(uint64_t (*tag_of)(uint32_t), uint32_t nput)
{
	struct tmem_store *s = t_store_new(64 * MIB, NULL, 0);
	int pe = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	struct reports r;
	uint32_t i;

	reports_init(&r, pe);
	t_rc(tmem_set_evict_cb(s, on_evict, &r), 0);
	for (i = 0; i < nput; i++) {
		struct tmem_key k = t_key(OBJ, i);

		t_rc(t_put_tag(s, pe, &k, tag_of(i), LEN), 0);
	}
	t_eq(r.n, 0);
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_EPHEMERAL, T_EQ, 0, 10000);
	t_eq(reports_n(&r), nput);
	check_reports(s, pe, &r, nput, 0, tag_of);
	for (i = 0; i < nput; i++)
		t_eq(r.seen[i], 1);
	t_store_free(s, NULL);
}

struct churn {
	struct tmem_store *s;
	int pool;
	_Atomic bool stop;
};

static void *churn_thread(void *arg)
{
	struct churn *ch = arg;
	uint32_t i = 0;

	while (!ch->stop) {
		struct tmem_key k = t_key(OBJ, i++ % NKEYS);

		if (t_put_tag(ch->s, ch->pool, &k, tag_half(i), LEN))
			t_fail("churn put failed");
	}
	return NULL;
}

/*
 * Reports arrive while another thread puts; once tmem_set_evict_cb
 * replaces the callback, the old one is never called again, though
 * evictions go on.
 */
static void test_unregister(void)
{
	struct tmem_store *s = t_store_new(1 * MIB, NULL, 0);
	int pe = t_pool_new(s, TMEM_EPHEMERAL, LEN);
	struct churn ch = { .s = s, .pool = pe };
	struct reports r;
	pthread_t th;
	uint64_t n, ev;

	reports_init(&r, pe);
	t_rc(tmem_set_evict_cb(s, on_evict, &r), 0);
	t_assert(!pthread_create(&th, NULL, churn_thread, &ch));
	while (reports_n(&r) < 1000)
		t_sleep_ms(1);
	t_rc(tmem_set_evict_cb(s, NULL, NULL), 0);
	n = reports_n(&r);
	ev = t_stats_get(s, TMEM_STAT_EVICTIONS);
	t_wait_stat_or_fail(s, TMEM_STAT_EVICTIONS, T_GE, ev + 1000, 10000);
	ch.stop = true;
	pthread_join(th, NULL);
	t_eq(reports_n(&r), n);
	t_eq(r.bad, 0);
	t_rc(tmem_set_evict_cb(NULL, on_evict, &r), -EINVAL);
	t_store_free(s, NULL);
}

int main(void)
{
	test_put_makes_room();
	test_caller_removals();
	test_budget_cut(tag_half, 1024);
	test_budget_cut(tag_same, 1024);
	test_unregister();
	return 0;
}
