/* SPDX-License-Identifier: MIT */
/*
 * store.c - the library itself: put and get rates with one and two
 * threads, how densely it holds the pages, and how fast it spills them
 * to disk when the budget drops to nothing and reads them back, one at
 * a time and in batches.
 *
 * Pages are keyed as frontswap keys them: one object (the swap device)
 * and the page's offset as the index, so two threads share an object
 * and the store's claim that distinct keys proceed in parallel is put
 * to the test.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "tmem.h"

#define SPILL_POLL_NS		200000L		/* 200 us */
#define SPILL_TIMEOUT_S		60.0

enum op { OP_PUT, OP_GET };

struct worker {
	struct tmem_store *s;
	int pool;
	const struct corpus *c;
	uint8_t *out;
	size_t lo, hi;
	enum op op;
	pthread_barrier_t *start;
	int err;		/* first failure, negative errno */
	size_t err_page;
	double t_start, t_end;	/* this thread's own slice */
};

static void page_key(struct tmem_key *k, size_t i)
{
	memset(k, 0, sizeof(*k));
	k->oid[0] = 1;		/* swap type */
	k->index = (uint32_t)i;
}

static void run_slice(struct worker *w)
{
	struct tmem_key key;
	size_t i;
	int r;

	for (i = w->lo; i < w->hi; i++) {
		page_key(&key, i);
		if (w->op == OP_PUT)
			r = tmem_put(w->s, w->pool, &key, corpus_page(w->c, i),
				     BENCH_PAGE);
		else
			r = tmem_get(w->s, w->pool, &key,
				     w->out + i * (size_t)BENCH_PAGE,
				     BENCH_PAGE);
		if (r != 0) {
			w->err = r;
			w->err_page = i;
			return;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int r = pthread_barrier_wait(w->start);

	if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD) {
		w->err = -r;
		w->err_page = w->lo;
		return NULL;
	}
	w->t_start = now_s();
	run_slice(w);
	w->t_end = now_s();
	return NULL;
}

/*
 * Run @op over every page with @nthreads threads, each on a contiguous
 * half; the corpus is shuffled, so the halves have the same mix.
 * Returns the elapsed seconds, or a negative number after reporting the
 * failure (which is always a hard error: the budget leaves no reason to
 * reject a put, and a persistent pool must return every page).
 */
static double run_op(struct tmem_store *s, int pool, const struct corpus *c,
		     uint8_t *out, enum op op, unsigned int nthreads)
{
	struct worker w[2];
	pthread_t tid[2];
	pthread_barrier_t bar;
	unsigned int t;
	double t0, t1;
	int r, failed = 0;

	memset(w, 0, sizeof(w));
	for (t = 0; t < nthreads; t++) {
		w[t].s = s;
		w[t].pool = pool;
		w[t].c = c;
		w[t].out = out;
		w[t].lo = c->npages * t / nthreads;
		w[t].hi = c->npages * (t + 1) / nthreads;
		w[t].op = op;
		w[t].start = &bar;
	}
	if (nthreads == 1) {
		t0 = now_s();
		run_slice(&w[0]);
		t1 = now_s();
	} else {
		/*
		 * The workers time themselves, from the first to start to
		 * the last to end: the main thread may not run again until
		 * long after they have begun, or even finished.
		 */
		r = pthread_barrier_init(&bar, NULL, nthreads);
		if (r != 0) {
			warnx_("pthread_barrier_init: %s", strerror(r));
			return -1;
		}
		for (t = 0; t < nthreads; t++) {
			r = pthread_create(&tid[t], NULL, worker_main, &w[t]);
			if (r != 0) {
				/* Those started wait at the barrier for ever:
				 * nothing to unwind, so give up outright. */
				warnx_("pthread_create: %s", strerror(r));
				exit(1);
			}
		}
		for (t = 0; t < nthreads; t++) {
			r = pthread_join(tid[t], NULL);
			if (r != 0) {
				warnx_("pthread_join: %s", strerror(r));
				failed = 1;
			}
		}
		t0 = w[0].t_start;
		t1 = w[0].t_end;
		for (t = 1; t < nthreads; t++) {
			if (w[t].t_start < t0)
				t0 = w[t].t_start;
			if (w[t].t_end > t1)
				t1 = w[t].t_end;
		}
		pthread_barrier_destroy(&bar);
		if (failed)
			return -1;
	}
	for (t = 0; t < nthreads; t++) {
		if (w[t].err == 0)
			continue;
		warnx_("tmem_%s of page %zu (%s) failed: %s (%d)",
		       op == OP_PUT ? "put" : "get", w[t].err_page,
		       kind_name(c->kind[w[t].err_page]),
		       strerror(-w[t].err), w[t].err);
		return -1;
	}
	return t1 - t0;
}

/* Minor faults of the whole process: new memory the store touched. */
static long minor_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ru.ru_minflt;
}

static int get_stats(struct tmem_store *s, struct tmem_stats *st)
{
	int r = tmem_stats(s, st);

	if (r != 0)
		warnx_("tmem_stats: %s (%d)", strerror(-r), r);
	return r;
}

static int open_store(uint64_t budget, const char *spill, uint64_t spill_max,
		      struct tmem_store **s, int *pool)
{
	struct tmem_config cfg;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.budget = budget;
	cfg.spill_path = spill;
	cfg.spill_max = spill_max;
	cfg.raw_policy = TMEM_RAW_STORE;
	r = tmem_store_create(&cfg, s);
	if (r != 0) {
		warnx_("tmem_store_create%s%s: %s (%d)",
		       spill ? " with spill in " : "", spill ? spill : "",
		       strerror(-r), r);
		return r;
	}
	r = tmem_pool_create(*s, TMEM_PERSISTENT, BENCH_PAGE);
	if (r < 0) {
		warnx_("tmem_pool_create: %s (%d)", strerror(-r), r);
		tmem_store_destroy(*s);
		*s = NULL;
		return r;
	}
	*pool = r;
	return 0;
}

/* Enough for every page raw, twice over, plus index: nothing evicted. */
static uint64_t big_budget(const struct corpus *c)
{
	return (uint64_t)c->npages * BENCH_PAGE * 2 + (256ull << 20);
}

/* Density, from the store right after the puts. */
static int record_density(struct tmem_store *s, const struct corpus *c,
			  struct store_result *res)
{
	struct tmem_stats st;
	const uint64_t *v = st.v;

	if (get_stats(s, &st))
		return -1;
	res->pages_stored = v[TMEM_STAT_PAGES_PERSISTENT];
	res->pages_same = v[TMEM_STAT_PAGES_SAME];
	res->pages_raw = v[TMEM_STAT_PAGES_RAW];
	res->bytes_compressed = v[TMEM_STAT_BYTES_COMPRESSED];
	res->ram_data = v[TMEM_STAT_RAM_DATA];
	res->ram_index = v[TMEM_STAT_RAM_INDEX];
	res->ram_fixed = v[TMEM_STAT_RAM_FIXED];
	res->compression_ratio = st.compression_ratio;
	/* The stats' own ratio is the reference; derive it if absent. */
	if (res->compression_ratio <= 0 && res->bytes_compressed)
		res->compression_ratio =
			(double)(res->pages_stored - res->pages_same) *
			BENCH_PAGE / (double)res->bytes_compressed;
	res->ram_per_compressed = res->bytes_compressed ?
		(double)res->ram_data / (double)res->bytes_compressed : 0;
	res->meta_per_page = res->pages_stored ?
		(double)res->ram_index / (double)res->pages_stored : 0;

	if (v[TMEM_STAT_PUTS] != c->npages ||
	    res->pages_stored != c->npages)
		warnx_("stats: %llu puts, %llu persistent pages after %zu "
		       "accepted puts",
		       (unsigned long long)v[TMEM_STAT_PUTS],
		       (unsigned long long)res->pages_stored, c->npages);
	if (res->pages_same != c->nsame)
		progress("note: store counts %llu same-filled pages, corpus "
			 "has %zu",
			 (unsigned long long)res->pages_same, c->nsame);
	if (v[TMEM_STAT_EVICTIONS] || v[TMEM_STAT_SPILLS])
		warnx_("stats: %llu evictions, %llu spills under a budget "
		       "that needs none",
		       (unsigned long long)v[TMEM_STAT_EVICTIONS],
		       (unsigned long long)v[TMEM_STAT_SPILLS]);
	return 0;
}

/*
 * Each run: fill a new store (its slabs are new memory, each page of
 * it a page fault), read every page back, flush the pool, and fill it
 * again.  The refill is the headline put rate: a host store lives long
 * and reuses what it freed, so the first fill says more about the
 * machine's page faults than about the store.
 */
int store_throughput(const struct corpus *c, uint8_t *out, unsigned int reps,
		     struct store_result *res)
{
	unsigned int nt, rep;

	for (nt = 1; nt <= 2; nt++) {
		struct rate *put = &res->put[nt - 1];
		struct rate *fill = &res->fill[nt - 1];
		struct rate *get = &res->get[nt - 1];

		put->bytes = fill->bytes = get->bytes =
			(uint64_t)c->npages * BENCH_PAGE;
		put->pages = fill->pages = get->pages = c->npages;
		for (rep = 0; rep < reps; rep++) {
			struct tmem_store *s;
			int64_t flushed;
			double dt;
			int pool;

			long flt;

			progress("store: %u thread%s, run %u of %u", nt,
				 nt > 1 ? "s" : "", rep + 1, reps);
			if (open_store(big_budget(c), NULL, 0, &s, &pool))
				return -1;
			flt = minor_faults();
			dt = run_op(s, pool, c, out, OP_PUT, nt);
			if (dt < 0)
				goto fail;
			rate_add(fill, dt);
			if (nt == 1)
				res->fill_faults = (double)(minor_faults() -
						flt) / (double)c->npages;
			if (nt == 1 && rep == 0 &&
			    record_density(s, c, res) != 0)
				goto fail;
			memset(out, 0xa5, c->npages * (size_t)BENCH_PAGE);
			dt = run_op(s, pool, c, out, OP_GET, nt);
			if (dt < 0)
				goto fail;
			rate_add(get, dt);
			if (verify_pages(c, out, "tmem_get"))
				goto fail;

			flushed = tmem_flush_pool(s, pool);
			if (flushed != (int64_t)c->npages) {
				warnx_("tmem_flush_pool: %lld, want %zu",
				       (long long)flushed, c->npages);
				goto fail;
			}
			flt = minor_faults();
			dt = run_op(s, pool, c, out, OP_PUT, nt);
			if (dt < 0)
				goto fail;
			rate_add(put, dt);
			if (nt == 1)
				res->put_faults = (double)(minor_faults() -
						flt) / (double)c->npages;
			/* Untimed, but checked like every other get. */
			memset(out, 0xa5, c->npages * (size_t)BENCH_PAGE);
			if (run_op(s, pool, c, out, OP_GET, nt) < 0 ||
			    verify_pages(c, out, "tmem_get after refill"))
				goto fail;
			tmem_store_destroy(s);
			continue;
fail:
			tmem_store_destroy(s);
			return -1;
		}
	}
	return 0;
}

static void sleep_ns(long ns)
{
	struct timespec ts = { 0, ns };

	/* EINTR only shortens one poll interval; harmless. */
	nanosleep(&ts, NULL);
}

/*
 * The order in which the read-back gets the spilled pages: every page
 * with data once, shuffled (the same order every run), so that neither
 * side of the read comparison gets the file's order for free.
 */
static size_t *spill_order(const struct corpus *c, size_t *n)
{
	size_t *idx = malloc(c->npages * sizeof(*idx)), i, m = 0;
	uint64_t x = 0x5b111ull;

	if (!idx)
		return NULL;
	for (i = 0; i < c->npages; i++)
		if (!c->same[i])
			idx[m++] = i;
	for (i = m; i > 1; i--) {
		size_t j, t;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		j = (size_t)((x >> 33) % i);
		t = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = t;
	}
	*n = m;
	return idx;
}

/* tmem_get of the pages @idx[0..@n), one at a time.  Seconds, or -1. */
static double read_single(struct tmem_store *s, int pool, uint8_t *out,
			  const size_t *idx, size_t n)
{
	struct tmem_key key;
	double t0 = now_s();

	for (size_t i = 0; i < n; i++) {
		int r;

		page_key(&key, idx[i]);
		r = tmem_get(s, pool, &key, out + idx[i] * BENCH_PAGE,
			     BENCH_PAGE);
		if (r) {
			warnx_("tmem_get of spilled page %zu: %s (%d)", idx[i],
			       strerror(-r), r);
			return -1;
		}
	}
	return now_s() - t0;
}

/* The same through tmem_get_batch, BENCH_READ_QD keys a call. */
static double read_batch(struct tmem_store *s, int pool, uint8_t *out,
			 const size_t *idx, size_t n)
{
	struct tmem_key keys[BENCH_READ_QD];
	void *bufs[BENCH_READ_QD];
	int res[BENCH_READ_QD];
	double t0 = now_s();

	for (size_t i = 0; i < n; i += BENCH_READ_QD) {
		unsigned int m = n - i < BENCH_READ_QD ? (unsigned int)(n - i) :
			BENCH_READ_QD;
		int r;

		for (unsigned int j = 0; j < m; j++) {
			page_key(&keys[j], idx[i + j]);
			bufs[j] = out + idx[i + j] * BENCH_PAGE;
		}
		r = tmem_get_batch(s, pool, keys, bufs, res, m, BENCH_PAGE, 0);
		if (r == (int)m)
			continue;
		for (unsigned int j = 0; j < m && r >= 0; j++)
			if (res[j])
				r = res[j];
		warnx_("tmem_get_batch of spilled pages from %zu: %s (%d)",
		       idx[i], strerror(-r), r);
		return -1;
	}
	return now_s() - t0;
}

/*
 * Read every spilled page back with @batch or not, then (untimed) the
 * same-filled ones, and check all of them.  Returns the seconds of the
 * timed part, or -1.
 */
static double read_back(struct tmem_store *s, int pool,
			const struct corpus *c, uint8_t *out,
			const size_t *idx, size_t n, int batch)
{
	double dt;

	memset(out, 0xa5, c->npages * (size_t)BENCH_PAGE);
	dt = batch ? read_batch(s, pool, out, idx, n) :
		     read_single(s, pool, out, idx, n);
	if (dt < 0)
		return -1;
	for (size_t i = 0; i < c->npages; i++) {
		struct tmem_key key;

		if (!c->same[i])
			continue;
		page_key(&key, i);
		if (tmem_get(s, pool, &key, out + i * BENCH_PAGE, BENCH_PAGE))
			return -1;
	}
	if (verify_pages(c, out, batch ? "tmem_get_batch after spill" :
					 "tmem_get after spill"))
		return -1;
	return dt;
}

/*
 * One spill run.  Returns 0, or -1 on a hard error; an incomplete spill
 * is not one (the pages must still read back), it is reported.  The
 * read-back goes both ways, one page at a time and in batches, in an
 * order that alternates from run to run.
 */
static int spill_once(const struct corpus *c, uint8_t *out, const char *dir,
		      unsigned int rep, struct store_result *res,
		      double *wr_s, double *rd_s, double *rdb_s)
{
	uint64_t target = c->npages - c->nsame;
	struct tmem_store *s;
	struct tmem_stats st;
	uint64_t hits0;
	double t0, t1, dt;
	size_t *idx, n;
	int pool, r;

	idx = spill_order(c, &n);
	if (!idx)
		return -1;
	r = open_store(big_budget(c), dir,
		       (uint64_t)c->npages * BENCH_PAGE * 2, &s, &pool);
	if (r) {
		free(idx);
		return -1;
	}
	if (run_op(s, pool, c, out, OP_PUT, 1) < 0)
		goto fail;

	t0 = now_s();
	r = tmem_set_budget(s, 0);
	if (r != 0) {
		warnx_("tmem_set_budget(0): %s (%d)", strerror(-r), r);
		goto fail;
	}
	for (;;) {
		if (get_stats(s, &st))
			goto fail;
		t1 = now_s();
		if (st.v[TMEM_STAT_PAGES_SPILLED] >= target)
			break;
		if (t1 - t0 > SPILL_TIMEOUT_S) {
			warnx_("spill: %llu of %llu pages spilled after %.0f s"
			       " (spills %llu, write errors %llu, enospc "
			       "%llu, spill used %llu B, ram used %llu B, "
			       "reclaim runs %llu)",
			       (unsigned long long)
				       st.v[TMEM_STAT_PAGES_SPILLED],
			       (unsigned long long)target, SPILL_TIMEOUT_S,
			       (unsigned long long)st.v[TMEM_STAT_SPILLS],
			       (unsigned long long)
				       st.v[TMEM_STAT_SPILL_WRITE_ERRORS],
			       (unsigned long long)
				       st.v[TMEM_STAT_SPILL_ENOSPC],
			       (unsigned long long)
				       st.v[TMEM_STAT_SPILL_USED],
			       (unsigned long long)st.v[TMEM_STAT_RAM_USED],
			       (unsigned long long)
				       st.v[TMEM_STAT_RECLAIM_RUNS]);
			res->spill_complete = 0;
			break;
		}
		sleep_ns(SPILL_POLL_NS);
	}
	dt = t1 - t0;
	if (st.v[TMEM_STAT_PAGES_SPILLED] < res->spill_reached)
		res->spill_reached = st.v[TMEM_STAT_PAGES_SPILLED];
	res->spill_used = st.v[TMEM_STAT_SPILL_USED];
	if (st.v[TMEM_STAT_SPILL_WRITE_ERRORS])
		warnx_("spill: %llu write errors",
		       (unsigned long long)st.v[TMEM_STAT_SPILL_WRITE_ERRORS]);
	*wr_s = res->spill_complete ? dt : -1;

	hits0 = st.v[TMEM_STAT_GET_HITS_SPILL];
	for (int k = 0; k < 2; k++) {
		int batch = (int)((rep + (unsigned int)k) % 2);
		double t = read_back(s, pool, c, out, idx, n, batch);

		if (t < 0)
			goto fail;
		*(batch ? rdb_s : rd_s) = t;
	}
	if (get_stats(s, &st))
		goto fail;
	if (st.v[TMEM_STAT_GET_HITS_SPILL] - hits0 != 2 * target)
		progress("note: %llu of %llu pages read back came from the "
			 "spill file",
			 (unsigned long long)
				 (st.v[TMEM_STAT_GET_HITS_SPILL] - hits0),
			 (unsigned long long)(2 * target));
	tmem_store_destroy(s);
	free(idx);
	return 0;
fail:
	tmem_store_destroy(s);
	free(idx);
	return -1;
}

int store_spill(const struct corpus *c, uint8_t *out, const char *dir,
		unsigned int reps, struct store_result *res)
{
	uint64_t target = c->npages - c->nsame;
	unsigned int rep;

	res->spill_target = target;
	res->spill_reached = target;
	res->spill_complete = 1;
	res->spill_write.bytes = res->spill_read.bytes =
		res->spill_read_batch.bytes = target * BENCH_PAGE;
	res->spill_write.pages = res->spill_read.pages =
		res->spill_read_batch.pages = target;
	for (rep = 0; rep < reps; rep++) {
		double wr, rd, rdb;

		progress("spill: run %u of %u", rep + 1, reps);
		if (spill_once(c, out, dir, rep, res, &wr, &rd, &rdb))
			return -1;
		rate_add(&res->spill_read, rd);
		rate_add(&res->spill_read_batch, rdb);
		/* A spill that never finishes has no rate; stop trying. */
		if (!res->spill_complete)
			break;
		rate_add(&res->spill_write, wr);
	}
	return 0;
}
