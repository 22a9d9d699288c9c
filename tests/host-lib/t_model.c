/* SPDX-License-Identifier: MIT */
/*
 * t_model: randomized model-based test of the whole API.
 *
 * About two million random calls (TEST_SCALE=1, release) against a store
 * with a generous spill file, checked one by one against a reference
 * model that keeps, per key, the tag of the page last accepted there
 * (0: nothing).  Persistent pools must return exactly the model's page;
 * ephemeral pools may miss, after which the model forgets the page, so
 * the next get must miss as well (get-get coherency).  Return codes must
 * come from the set the header allows in that situation, and the stats
 * gauges must agree with the model.  The budget moves, down to 0 and
 * back, under all of it.  Half the run uses TMEM_RAW_STORE, half
 * TMEM_RAW_REJECT.
 *
 * Replay a failure with: t_model SEED (the seed is printed first).
 */
#include "helpers.h"

#define MAX_POOLS	6
#define NOBJ		16
#define NIDX_4K		64
#define NIDX_64K	16
#define NKEYS		(NOBJ * NIDX_4K)
#define NSTALE		64
#define HUGE_BUDGET	(1ull << 40)

struct mpool {
	int id;
	enum tmem_pool_kind kind;
	uint32_t len;
	uint32_t nidx;
	uint64_t tag[NKEYS];	/* 0: the store must not have the page */
};

struct model {
	struct tmem_store *s;
	char dir[T_PATH_MAX];
	enum tmem_raw_policy raw;
	uint64_t budget;
	struct mpool pools[MAX_POOLS];
	int npools;
	int stale[NSTALE];	/* ids of destroyed pools */
	int nstale;
	uint64_t next_seed;
	struct t_rng rng;
	unsigned char *buf;	/* 64 KiB + canary */
	uint64_t op;		/* number of the op running, for messages */

	/* What the counters must say. */
	uint64_t puts, rej_raw, rej_nospace, rej_invalid;
	uint64_t hits, misses, bad_gets;
	uint64_t walk_pages, walk_gone;	/* walks may count as gets */
	uint64_t drains, spill_peak;
};

#define mfail(m, ...)							\
	t_fail("op %llu: %s", (unsigned long long)(m)->op,		\
	       (snprintf(msgbuf, sizeof(msgbuf), __VA_ARGS__), msgbuf))

static char msgbuf[512];

static struct tmem_key mkey(uint32_t k, uint32_t nidx)
{
	uint32_t obj = k / nidx, idx = k % nidx;

	/* Objects differ in each oid word; indexes reach the top bit. */
	return t_key3(obj & 3, (uint64_t)((obj >> 2) & 1) << 40,
		      (uint64_t)(obj >> 3) * 0x9e3779b97f4a7c15ull,
		      idx == nidx - 1 ? UINT32_MAX : idx * 0x01000193u);
}

static uint32_t nkeys(const struct mpool *p)
{
	return NOBJ * p->nidx;
}

/* Puts may be refused for want of room, but not at a huge budget. */
static bool may_nospc(const struct model *m)
{
	return m->budget != HUGE_BUDGET;
}

static struct mpool *pick_pool(struct model *m)
{
	return &m->pools[t_rand_below(&m->rng, m->npools)];
}

static uint64_t new_tag(struct model *m)
{
	static const enum t_kind kinds[10] = {
		T_COMP, T_COMP, T_COMP, T_COMP, T_SAME, T_SAME,
		T_RAND, T_RAND, T_HALF, T_HALF,
	};

	return t_tag(kinds[t_rand_below(&m->rng, 10)], ++m->next_seed);
}

/* ------------------------------------------------------------------ */

static void do_put(struct model *m, struct mpool *p, uint32_t k)
{
	struct tmem_key key = mkey(k, p->nidx);
	uint64_t tag = new_tag(m);
	bool raw = t_tag_kind(tag) == T_RAND;
	int rc;

	t_page_fill(m->buf, p->len, tag);
	rc = tmem_put(m->s, p->id, &key, m->buf, p->len);
	if (raw && m->raw == TMEM_RAW_REJECT) {
		if (p->kind == TMEM_PERSISTENT ? rc != -E2BIG :
		    rc != -E2BIG && !(rc == -ENOSPC && may_nospc(m)))
			mfail(m, "put of a random page under RAW_REJECT: %s",
			      t_errname(rc));
	} else if (p->kind == TMEM_PERSISTENT) {
		/*
		 * With spill room only a new key's index entry can be
		 * refused, and only under a budget that can run out.
		 */
		if (rc && !(rc == -ENOSPC && !p->tag[k] && may_nospc(m)))
			mfail(m, "persistent put (%s) with spill room, %s key,"
			      " budget %llu: %s", t_kind_name(t_tag_kind(tag)),
			      p->tag[k] ? "stored" : "new",
			      (unsigned long long)m->budget, t_errname(rc));
	} else if (rc && !(rc == -ENOSPC && may_nospc(m))) {
		mfail(m, "ephemeral put (%s), budget %llu: %s",
		      t_kind_name(t_tag_kind(tag)),
		      (unsigned long long)m->budget, t_errname(rc));
	}
	p->tag[k] = rc ? 0 : tag;
	m->puts += rc == 0;
	m->rej_raw += rc == -E2BIG;
	m->rej_nospace += rc == -ENOSPC;
}

static void do_get(struct model *m, struct mpool *p, uint32_t k, bool excl)
{
	struct tmem_key key = mkey(k, p->nidx);
	uint64_t tag = p->tag[k];
	long off;
	int rc;

	memset(m->buf + p->len, T_CANARY_BYTE, T_CANARY_LEN);
	rc = excl ? tmem_get_exclusive(m->s, p->id, &key, m->buf, p->len) :
		    tmem_get(m->s, p->id, &key, m->buf, p->len);
	if (!t_buf_canary_ok(m->buf, p->len))
		mfail(m, "get wrote past the page");
	if (rc == 0) {
		if (!tag)
			mfail(m, "%s get of key %u in pool %d hit a page the "
			      "model does not have", excl ? "exclusive" : "",
			      k, p->id);
		off = t_page_check(m->buf, p->len, tag);
		if (off >= 0)
			mfail(m, "get of key %u in pool %d (%s): page %s/%llx "
			      "differs at byte %ld", k, p->id,
			      p->kind == TMEM_PERSISTENT ? "persistent" :
			      "ephemeral", t_kind_name(t_tag_kind(tag)),
			      (unsigned long long)tag, off);
		m->hits++;
		if (excl)
			p->tag[k] = 0;
		return;
	}
	if (rc != -ENOENT)
		mfail(m, "get: %s", t_errname(rc));
	if (tag && p->kind == TMEM_PERSISTENT)
		mfail(m, "persistent page %u in pool %d (%s/%llx) is lost", k,
		      p->id, t_kind_name(t_tag_kind(tag)),
		      (unsigned long long)tag);
	p->tag[k] = 0;		/* ephemeral: a miss stays a miss */
	m->misses++;
}

static void do_flush_page(struct model *m, struct mpool *p, uint32_t k)
{
	struct tmem_key key = mkey(k, p->nidx);
	int rc = tmem_flush_page(m->s, p->id, &key);

	if (rc == 0 && !p->tag[k])
		mfail(m, "flush_page found a page the model does not have");
	if (rc != 0 && rc != -ENOENT)
		mfail(m, "flush_page: %s", t_errname(rc));
	if (rc == -ENOENT && p->tag[k] && p->kind == TMEM_PERSISTENT)
		mfail(m, "flush_page: persistent page %u lost", k);
	p->tag[k] = 0;
}

/* Check a count of dropped pages against the model's @n pages. */
static void check_count(struct model *m, struct mpool *p, int64_t got,
			uint32_t n, const char *what)
{
	if (got < 0 || got > n ||
	    (p->kind == TMEM_PERSISTENT && got != n))
		mfail(m, "%s on %s pool %d: %lld, model has %u", what,
		      p->kind == TMEM_PERSISTENT ? "persistent" : "ephemeral",
		      p->id, (long long)got, n);
}

static void do_flush_object(struct model *m, struct mpool *p, uint32_t obj)
{
	struct tmem_key key = mkey(obj * p->nidx, p->nidx);
	uint32_t i, n = 0;

	for (i = obj * p->nidx; i < (obj + 1) * p->nidx; i++) {
		n += p->tag[i] != 0;
		p->tag[i] = 0;
	}
	check_count(m, p, tmem_flush_object(m->s, p->id, key.oid), n,
		    "flush_object");
}

static uint32_t pool_count(struct mpool *p)
{
	uint32_t i, n = 0;

	for (i = 0; i < nkeys(p); i++)
		n += p->tag[i] != 0;
	return n;
}

static void do_flush_pool(struct model *m, struct mpool *p)
{
	uint32_t n = pool_count(p);

	memset(p->tag, 0, sizeof(p->tag));
	check_count(m, p, tmem_flush_pool(m->s, p->id), n, "flush_pool");
}

static void pool_create(struct model *m)
{
	struct mpool *p = &m->pools[m->npools];

	p->kind = t_chance(&m->rng, 2, 3) ? TMEM_PERSISTENT : TMEM_EPHEMERAL;
	p->len = t_chance(&m->rng, 1, 10) ? T_PAGE_64K : T_PAGE_4K;
	p->nidx = p->len == T_PAGE_4K ? NIDX_4K : NIDX_64K;
	p->id = tmem_pool_create(m->s, p->kind, p->len);
	if (p->id < 0)
		mfail(m, "pool_create: %s", t_errname(p->id));
	memset(p->tag, 0, sizeof(p->tag));
	m->npools++;
}

static void pool_destroy(struct model *m, int i)
{
	struct mpool *p = &m->pools[i];

	check_count(m, p, tmem_pool_destroy(m->s, p->id), pool_count(p),
		    "pool_destroy");
	m->stale[m->nstale++ % NSTALE] = p->id;
	memmove(p, p + 1, (size_t)(m->npools - i - 1) * sizeof(*p));
	m->npools--;
}

/* Calls that must fail, and what they must (not) change. */
static void do_invalid(struct model *m, struct mpool *p, uint32_t k)
{
	struct tmem_key key = mkey(k, p->nidx);
	size_t bad_len = p->len == T_PAGE_4K ? T_PAGE_64K : T_PAGE_4K;
	int rc, stale;

	switch (t_rand_below(&m->rng, 6)) {
	case 0:	/* a rejected put, even a malformed one, flushes */
		t_page_fill(m->buf, bad_len, 1);
		rc = tmem_put(m->s, p->id, &key, m->buf, bad_len);
		p->tag[k] = 0;
		m->rej_invalid++;
		break;
	case 1:
		rc = tmem_put(m->s, p->id, &key, NULL, p->len);
		p->tag[k] = 0;
		m->rej_invalid++;
		break;
	case 2:
		rc = tmem_get(m->s, p->id, &key, m->buf, bad_len);
		m->bad_gets++;
		break;
	case 3:
		rc = tmem_get_exclusive(m->s, p->id, &key, m->buf, p->len - 8);
		m->bad_gets++;
		break;
	case 4:
		rc = tmem_put(m->s, p->id, NULL, m->buf, p->len);
		m->rej_invalid++;
		break;
	default:
		if (!m->nstale)
			return;
		stale = m->stale[t_rand_below(&m->rng,
					      m->nstale < NSTALE ? m->nstale :
					      NSTALE)];
		t_page_fill(m->buf, T_PAGE_4K, 1);
		if (tmem_put(m->s, stale, &key, m->buf, T_PAGE_4K) != -EBADF ||
		    tmem_get(m->s, stale, &key, m->buf, T_PAGE_4K) != -EBADF ||
		    tmem_flush_page(m->s, stale, &key) != -EBADF ||
		    tmem_flush_pool(m->s, stale) != -EBADF ||
		    tmem_pool_info(m->s, stale, NULL, NULL) != -EBADF)
			mfail(m, "stale pool id %d still works", stale);
		m->rej_invalid++;
		m->bad_gets++;
		return;
	}
	if (rc != -EINVAL)
		mfail(m, "invalid call returned %s", t_errname(rc));
}

/* ------------------------------------------------------------------ */

static void check_gauges(struct model *m)
{
	uint64_t pp = 0, pbytes = 0, psame = 0, ep = 0, ebytes = 0, esame = 0;
	struct tmem_stats st;
	uint32_t i;
	int j;

	for (j = 0; j < m->npools; j++) {
		struct mpool *p = &m->pools[j];

		for (i = 0; i < nkeys(p); i++) {
			bool same = t_tag_kind(p->tag[i]) == T_SAME;

			if (!p->tag[i])
				continue;
			if (p->kind == TMEM_PERSISTENT) {
				pp++;
				pbytes += p->len;
				psame += same;
			} else {
				ep++;
				ebytes += p->len;
				esame += same;
			}
		}
	}
	t_stats(m->s, &st);
#define GAUGE(cond)							\
	do {								\
		if (!(cond))						\
			mfail(m, "stats disagree with the model: %s "	\
			      "(pp %llu ep %llu psame %llu)", #cond,	\
			      (unsigned long long)pp,			\
			      (unsigned long long)ep,			\
			      (unsigned long long)psame);		\
	} while (0)
	GAUGE(st.v[TMEM_STAT_PAGES_PERSISTENT] == pp);
	GAUGE(st.v[TMEM_STAT_BYTES_PERSISTENT] == pbytes);
	GAUGE(st.v[TMEM_STAT_PAGES_EPHEMERAL] <= ep);
	GAUGE(st.v[TMEM_STAT_BYTES_EPHEMERAL] <= ebytes);
	GAUGE(st.v[TMEM_STAT_PAGES_SPILLED] <= pp - psame);
	GAUGE(st.v[TMEM_STAT_PAGES_SAME] >= psame);
	GAUGE(st.v[TMEM_STAT_PAGES_SAME] <= psame + esame);
	GAUGE(st.v[TMEM_STAT_PAGES_RAW] <= pp + ep - psame);
	GAUGE(st.v[TMEM_STAT_SPILL_USED] <= st.v[TMEM_STAT_SPILL_MAX]);
	if (st.v[TMEM_STAT_SPILL_USED] > m->spill_peak)
		m->spill_peak = st.v[TMEM_STAT_SPILL_USED];
	GAUGE(st.v[TMEM_STAT_BUDGET] == m->budget);
	GAUGE(st.v[TMEM_STAT_PUTS] == m->puts);
	GAUGE(st.v[TMEM_STAT_PUT_REJ_RAW] == m->rej_raw);
	GAUGE(st.v[TMEM_STAT_PUT_REJ_NOSPACE] == m->rej_nospace);
	GAUGE(st.v[TMEM_STAT_PUT_REJ_NOMEM] == 0);
	GAUGE(st.v[TMEM_STAT_PUT_REJ_INVALID] == m->rej_invalid);
	GAUGE(st.v[TMEM_STAT_GET_HITS_RAM] + st.v[TMEM_STAT_GET_HITS_SPILL] >=
	      m->hits);
	GAUGE(st.v[TMEM_STAT_GET_HITS_RAM] + st.v[TMEM_STAT_GET_HITS_SPILL] <=
	      m->hits + m->walk_pages);
	GAUGE(st.v[TMEM_STAT_GET_MISSES] >= m->misses);
	GAUGE(st.v[TMEM_STAT_GET_MISSES] <=
	      m->misses + m->bad_gets + m->walk_gone);
	GAUGE(st.v[TMEM_STAT_GET_ERRORS] == 0);
	GAUGE(st.v[TMEM_STAT_SPILL_WRITE_ERRORS] == 0);
	GAUGE(st.v[TMEM_STAT_SPILL_READ_ERRORS] == 0);
#undef GAUGE
}

/* Walk a pool and compare with the model. */
static void check_walk(struct model *m, struct mpool *p)
{
	static bool seen[NKEYS];
	struct tmem_iter *it;
	struct tmem_key key;
	uint32_t n = 0, want = pool_count(p);
	int rc;

	memset(seen, 0, sizeof(seen));
	rc = tmem_iter_begin(m->s, p->id, &it);
	if (rc)
		mfail(m, "iter_begin: %s", t_errname(rc));
	while ((rc = tmem_iter_next(it, &key, m->buf, p->len)) == 1) {
		uint32_t k;

		/* Find the key: the key space is small. */
		for (k = 0; k < nkeys(p); k++) {
			struct tmem_key mk = mkey(k, p->nidx);

			if (!memcmp(&mk.oid, &key.oid, sizeof(mk.oid)) &&
			    mk.index == key.index)
				break;
		}
		if (k == nkeys(p) || !p->tag[k] || seen[k])
			mfail(m, "walk of pool %d gave a page it should not "
			      "(key %u)", p->id, k);
		if (t_page_check(m->buf, p->len, p->tag[k]) >= 0)
			mfail(m, "walk of pool %d: page %u is wrong", p->id,
			      k);
		seen[k] = true;
		n++;
	}
	tmem_iter_end(it);
	if (rc != 0)
		mfail(m, "iter_next: %s", t_errname(rc));
	if (n > want || (p->kind == TMEM_PERSISTENT && n != want))
		mfail(m, "walk of pool %d gave %u pages, model has %u", p->id,
		      n, want);
	m->walk_pages += n;
	m->walk_gone += want - n;
}

/* Every persistent page must read back, exactly. */
static void check_all(struct model *m)
{
	uint32_t k;
	int j;

	for (j = 0; j < m->npools; j++) {
		struct mpool *p = &m->pools[j];

		if (p->kind != TMEM_PERSISTENT)
			continue;
		for (k = 0; k < nkeys(p); k++)
			if (p->tag[k])
				do_get(m, p, k, false);
	}
}

/*
 * At budget 0 the reclaim thread must, soon, leave no page data in RAM:
 * ephemeral pages gone, every persistent page with data on spill.
 */
static void check_drained(struct model *m)
{
	uint64_t psame = 0, pp = 0;
	uint32_t k;
	int j;

	for (j = 0; j < m->npools; j++)
		for (k = 0; k < nkeys(&m->pools[j]); k++) {
			uint64_t tag = m->pools[j].tag[k];

			if (!tag || m->pools[j].kind != TMEM_PERSISTENT)
				continue;
			pp++;
			psame += t_tag_kind(tag) == T_SAME;
		}
	t_wait_stat_or_fail(m->s, TMEM_STAT_RAM_DATA, T_EQ, 0, 10000);
	t_wait_stat_or_fail(m->s, TMEM_STAT_PAGES_EPHEMERAL, T_EQ, 0, 10000);
	t_wait_stat_or_fail(m->s, TMEM_STAT_PAGES_SPILLED, T_EQ, pp - psame,
			    10000);
	check_all(m);
	m->drains++;
}

/*
 * Budget phases: long ones with room, short ones under pressure (each
 * put there costs spill I/O).  Returns the length of the next phase.
 */
static uint64_t do_budget(struct model *m)
{
	static const struct {
		uint64_t budget;
		uint32_t ops;
	} phases[] = {
		{ HUGE_BUDGET, 20000 }, { HUGE_BUDGET, 20000 },
		{ HUGE_BUDGET, 20000 }, { 64 << 20, 20000 },
		{ 64 << 20, 20000 }, { 16 << 20, 10000 }, { 4 << 20, 5000 },
		{ 1 << 20, 2000 }, { 256 << 10, 1000 }, { 0, 1000 },
	};
	unsigned int i = (unsigned int)t_rand_below(&m->rng, 10);
	uint64_t b = phases[i].budget;
	int rc = tmem_set_budget(m->s, b);

	if (rc)
		mfail(m, "set_budget: %s", t_errname(rc));
	m->budget = b;
	if (b == 0 && t_chance(&m->rng, 1, 4))
		check_drained(m);
	return 1 + t_rand_below(&m->rng, phases[i].ops);
}

/* ------------------------------------------------------------------ */

/*
 * The mix: mostly puts and gets.  Flushes are frequent enough to matter
 * but rare enough that pools fill up (a pool lives ~200000 ops), so most
 * gets find the key in use.
 */
static void one_op(struct model *m)
{
	struct mpool *p = pick_pool(m);
	uint32_t k = (uint32_t)t_rand_below(&m->rng, nkeys(p));
	uint64_t r = t_rand_below(&m->rng, 100000);

	if (r < 40000)
		do_put(m, p, k);
	else if (r < 80000)
		do_get(m, p, k, false);
	else if (r < 83000)
		do_get(m, p, k, true);
	else if (r < 87000)
		do_flush_page(m, p, k);
	else if (r < 89000)
		do_invalid(m, p, k);
	else if (r < 89100)
		do_flush_object(m, p, k / p->nidx);
	else if (r < 89105)
		do_flush_pool(m, p);
	else if (r < 89108) {
		pool_destroy(m, (int)(p - m->pools));
		pool_create(m);
	} else if (r < 89118) {
		check_walk(m, p);
	} else {
		do_get(m, p, k, false);
	}
}

static void run(struct model *m, enum tmem_raw_policy raw, uint64_t nops)
{
	struct tmem_config cfg = {
		.budget = HUGE_BUDGET,
		.spill_max = 1ull << 30,
		.raw_policy = raw,
	};
	uint64_t i, phase = 1000;
	int j;

	/* The model spills a lot and re-reads it: keep it off the disk. */
	t_mkdtemp_fast(m->dir, cfg.spill_max);
	cfg.flags |= TMEM_SPILL_BUFFERED;	/* /dev/shm, if it has room */
	cfg.spill_path = m->dir;
	m->s = t_store_new_cfg(&cfg, NULL);
	m->raw = raw;
	m->nstale = 0;		/* old ids belong to the old store */
	m->budget = HUGE_BUDGET;
	for (j = 0; j < MAX_POOLS; j++)
		pool_create(m);
	for (i = 0; i < nops; i++) {
		m->op++;
		if (--phase == 0)
			phase = do_budget(m);
		one_op(m);
		if (i % 4096 == 0)
			check_gauges(m);
	}
	check_gauges(m);
	printf("raw policy %d: %llu ops, %llu hits, %llu misses, %llu drains, "
	       "spill peak %llu KiB\n", raw, (unsigned long long)nops,
	       (unsigned long long)m->hits, (unsigned long long)m->misses,
	       (unsigned long long)m->drains,
	       (unsigned long long)m->spill_peak >> 10);

	/* Budget back up: every persistent page, then an empty store. */
	t_rc(tmem_set_budget(m->s, HUGE_BUDGET), 0);
	m->budget = HUGE_BUDGET;
	check_all(m);
	for (j = 0; j < MAX_POOLS; j++)
		check_walk(m, &m->pools[j]);
	while (m->npools)
		pool_destroy(m, 0);
	t_wait_stat_or_fail(m->s, TMEM_STAT_RAM_USED, T_EQ, 0, 10000);
	t_wait_stat_or_fail(m->s, TMEM_STAT_SPILL_USED, T_EQ, 0, 10000);
	t_store_free(m->s, m->dir);
	m->s = NULL;
}

int main(int argc, char **argv)
{
	static struct model m;
	uint64_t nops = t_iters(2000000);

	m.rng.s = t_seed(argc, argv);
	m.buf = t_buf_alloc(T_PAGE_64K);
	run(&m, TMEM_RAW_STORE, nops / 2);
	memset(&m.puts, 0, sizeof(m) - offsetof(struct model, puts));
	run(&m, TMEM_RAW_REJECT, nops - nops / 2);
	free(m.buf);
	return T_EXIT_PASS;
}
