/* SPDX-License-Identifier: MIT */
/*
 * report.c - the results, twice: a fixed-width table on stdout for
 * people, and a JSON object for scripts and CI history.  Both come from
 * the same derived figures, computed once here.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define GOAL_PUT	0.85	/* put rate / raw LZ4 compress */
#define GOAL_GET	0.85	/* get rate / raw LZ4 decompress */
#define GOAL_RAM	1.10	/* RAM data bytes / compressed bytes */
#define GOAL_META	48.0	/* index bytes per stored page */
#define GOAL_SPILL	0.80	/* spill file bytes/s / io_uring, same I/O */
#define GOAL_SPILL_READ	0.50	/* batch read-back / raw 4 KiB random reads */
#define GOAL_CHURN_RAM	1.25	/* the same, after churn */
#define GOAL_CHURN_META	40.0	/* index bytes per live page, churned */

struct target {
	const char *key;	/* JSON name */
	const char *what;	/* table label */
	double value;
	double goal;
	int at_most;		/* 1: value <= goal passes; 0: >= */
};

enum { T_PUT, T_GET, T_RAM, T_META, T_CHURN_RAM, T_CHURN_META, T_SPILL,
       T_SPILL_READ, T__COUNT };

struct figures {
	double put[2], get[2];		/* MB/s, 1 and 2 threads */
	double put_ps[2], get_ps[2];	/* pages/s */
	double fill[2], fill_ps[2];	/* puts into a new store */
	double lz4c, lz4d, lz4c_ps, lz4d_ps;
	double lz4c_new, lz4c_new_ps;	/* into fresh memory */
	double spill_w, spill_r, uring_w;	/* MB/s; spill: page data */
	double spill_wf;			/* spill file bytes, MB/s */
	double spill_rb, uring_r;		/* batch get; raw reads */
	double lz4_ratio_data;		/* raw LZ4, pages with data */
	struct target t[T__COUNT];
};

static double div0(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static int passes(const struct target *t)
{
	/* No value (a rate of 0: the run did not finish) never passes. */
	if (t->value <= 0 && !t->at_most)
		return 0;
	return t->at_most ? t->value <= t->goal : t->value >= t->goal;
}

static double kind_ratio(const struct corpus *c, int k)
{
	return div0((double)c->count[k] * BENCH_PAGE,
		    (double)c->lz4_bytes[k]);
}

static void figures(const struct bench_report *r, struct figures *f)
{
	const struct store_result *s = r->store;
	const struct corpus *c = r->corpus;
	uint64_t in = 0, lz = 0;
	int i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < 2; i++) {
		f->put[i] = rate_mb_s(&s->put[i]);
		f->get[i] = rate_mb_s(&s->get[i]);
		f->put_ps[i] = rate_pages_s(&s->put[i]);
		f->get_ps[i] = rate_pages_s(&s->get[i]);
		f->fill[i] = rate_mb_s(&s->fill[i]);
		f->fill_ps[i] = rate_pages_s(&s->fill[i]);
	}
	f->lz4c_new = rate_mb_s(&r->lz4->compress_new);
	f->lz4c_new_ps = rate_pages_s(&r->lz4->compress_new);
	f->lz4c = rate_mb_s(&r->lz4->compress);
	f->lz4d = rate_mb_s(&r->lz4->decompress);
	f->lz4c_ps = rate_pages_s(&r->lz4->compress);
	f->lz4d_ps = rate_pages_s(&r->lz4->decompress);
	f->spill_w = s->spill_complete ? rate_mb_s(&s->spill_write) : 0;
	f->spill_wf = s->spill_complete && s->spill_write.best_s > 0 ?
		(double)s->spill_used / s->spill_write.best_s / 1e6 : 0;
	f->spill_r = rate_mb_s(&s->spill_read);
	f->spill_rb = rate_mb_s(&s->spill_read_batch);
	f->uring_w = rate_mb_s(&r->uring->write);
	f->uring_r = rate_mb_s(&r->uring->read);
	/* Zero pages are the corpus's same-filled ones: leave them out,
	 * as the store's compression ratio does. */
	for (i = 0; i < KIND__COUNT; i++) {
		if (i == KIND_ZERO)
			continue;
		in += (uint64_t)c->count[i] * BENCH_PAGE;
		lz += c->lz4_bytes[i];
	}
	f->lz4_ratio_data = div0((double)in, (double)lz);

	f->t[T_PUT] = (struct target){ "put_vs_lz4", "put / lz4 compress",
		div0(f->put[0], f->lz4c), GOAL_PUT, 0 };
	f->t[T_GET] = (struct target){ "get_vs_lz4", "get / lz4 decompress",
		div0(f->get[0], f->lz4d), GOAL_GET, 0 };
	f->t[T_RAM] = (struct target){ "ram_per_compressed_byte",
		"RAM data / compressed bytes", s->ram_per_compressed,
		GOAL_RAM, 1 };
	f->t[T_META] = (struct target){ "meta_bytes_per_page",
		"index bytes / stored page", s->meta_per_page, GOAL_META, 1 };
	f->t[T_CHURN_RAM] = (struct target){ "churn_ram_per_compressed_byte",
		"churned: RAM data / compressed", s->churn_ram_per_compressed,
		GOAL_CHURN_RAM, 1 };
	f->t[T_CHURN_META] = (struct target){ "churn_index_bytes_per_page",
		"churned: index bytes / live page", s->churn_index_per_page,
		GOAL_CHURN_META, 1 };
	/* Bytes written against bytes written, the same extents. */
	f->t[T_SPILL] = (struct target){ "spill_vs_uring",
		"spill file bytes/s / io_uring", div0(f->spill_wf, f->uring_w),
		GOAL_SPILL, 0 };
	/* Pages back per second against 4 KiB reads per second. */
	f->t[T_SPILL_READ] = (struct target){ "spill_read_vs_uring",
		"batch read-back / io_uring reads",
		div0(f->spill_rb, f->uring_r),
		GOAL_SPILL_READ, 0 };
}

static void row(const char *what, double mb_s, double pages_s)
{
	printf("  %-36s %10.1f %12.0f\n", what, mb_s, pages_s);
}

void report_table(const struct bench_report *r)
{
	const struct corpus *c = r->corpus;
	const struct store_result *s = r->store;
	struct figures f;
	char label[64];
	int k;

	figures(r, &f);
	printf("\nvirtio-tmem host-lib benchmark: %zu pages of %u bytes "
	       "(%.1f MiB); each rate is the best of %u runs\n",
	       c->npages, BENCH_PAGE,
	       (double)c->npages * BENCH_PAGE / (1 << 20), r->reps);
	printf("MB = 10^6 bytes of uncompressed page data; tmem_put is a "
	       "refill after tmem_flush_pool,\n\"new store\" the first "
	       "fill of a new store, page faults and all\n\n");

	printf("  %-12s %8s %8s %10s\n", "corpus", "pages", "share",
	       "lz4 ratio");
	for (k = 0; k < KIND__COUNT; k++)
		printf("  %-12s %8zu %7.1f%% %10.2f\n", kind_name(k),
		       c->count[k], 100.0 * (double)c->count[k] /
		       (double)c->npages, kind_ratio(c, k));
	printf("  %-12s %8zu %7.1f%% %10.2f   (same-filled pages: %zu)\n",
	       "with data", c->npages - c->count[KIND_ZERO],
	       100.0 * (double)(c->npages - c->count[KIND_ZERO]) /
	       (double)c->npages, f.lz4_ratio_data, c->nsame);

	printf("\n  %-36s %10s %12s\n", "throughput", "MB/s", "pages/s");
	row("tmem_put, 1 thread", f.put[0], f.put_ps[0]);
	row("tmem_put, 2 threads", f.put[1], f.put_ps[1]);
	row("tmem_get, 1 thread", f.get[0], f.get_ps[0]);
	row("tmem_get, 2 threads", f.get[1], f.get_ps[1]);
	row("LZ4_compress_default, 1 thread", f.lz4c, f.lz4c_ps);
	row("LZ4_decompress_safe, 1 thread", f.lz4d, f.lz4d_ps);
	row("tmem_put new store, 1 thread", f.fill[0], f.fill_ps[0]);
	row("tmem_put new store, 2 threads", f.fill[1], f.fill_ps[1]);
	row("LZ4_compress_default, new memory", f.lz4c_new, f.lz4c_new_ps);
	row("spill write (set_budget 0), page data", f.spill_w,
	    rate_pages_s(&s->spill_write) * (s->spill_complete ? 1 : 0));
	row("spill write, spill file bytes", f.spill_wf,
	    rate_pages_s(&s->spill_write) * (s->spill_complete ? 1 : 0));
	snprintf(label, sizeof(label), "io_uring, the same writes, %s",
		 r->uring->direct ? "O_DIRECT" : "buffered");
	row(label, f.uring_w, rate_pages_s(&r->uring->write));
	row("spill read-back, tmem_get 1 by 1", f.spill_r,
	    rate_pages_s(&s->spill_read));
	snprintf(label, sizeof(label), "spill read-back, tmem_get_batch %u",
		 BENCH_READ_QD);
	row(label, f.spill_rb, rate_pages_s(&s->spill_read_batch));
	snprintf(label, sizeof(label), "io_uring 4K random reads, QD%u",
		 BENCH_READ_QD);
	row(label, f.uring_r, rate_pages_s(&r->uring->read));
	if (!s->spill_complete)
		printf("  spill INCOMPLETE: %llu of %llu pages reached the "
		       "file in time\n",
		       (unsigned long long)s->spill_reached,
		       (unsigned long long)s->spill_target);

	printf("\n  %-36s %10s %10s %6s\n", "target", "value", "goal",
	       "result");
	for (k = 0; k < T__COUNT; k++) {
		const struct target *t = &f.t[k];

		snprintf(label, sizeof(label), "%s %.2f",
			 t->at_most ? "<=" : ">=", t->goal);
		printf("  %-36s %10.3f %10s %6s\n", t->what, t->value, label,
		       passes(t) ? "PASS" : "MISS");
	}

	printf("\n  %-36s %10.2f   (raw LZ4, same pages: %.2f)\n",
	       "compression ratio (store)", s->compression_ratio,
	       f.lz4_ratio_data);
	printf("  %-36s %10llu   (%llu same-filled, %llu raw)\n",
	       "pages stored", (unsigned long long)s->pages_stored,
	       (unsigned long long)s->pages_same,
	       (unsigned long long)s->pages_raw);
	printf("  %-36s %10.1f   data %.1f, index %.1f, fixed %.1f\n",
	       "RAM MiB: compressed bytes", (double)s->bytes_compressed /
	       (1 << 20), (double)s->ram_data / (1 << 20),
	       (double)s->ram_index / (1 << 20),
	       (double)s->ram_fixed / (1 << 20));
	printf("  %-36s %10.1f   ram_used + ram_fixed %.1f, %llu live "
	       "pages\n", "churned: RSS growth MiB",
	       (double)s->churn_rss_growth / (1 << 20),
	       (double)(s->churn_ram_used + s->churn_ram_fixed) / (1 << 20),
	       (unsigned long long)s->churn_pages_live);
	printf("  %-36s %10.1f   in %s; io_uring wrote %.1f (unit %u)\n",
	       "spill file MiB in use", (double)s->spill_used / (1 << 20),
	       r->spill_dir, (double)r->uring->write.bytes / (1 << 20),
	       r->uring->unit);
	printf("  %-36s %10.2f   (new store: %.2f)\n",
	       "page faults per tmem_put (refill)", s->put_faults,
	       s->fill_faults);
	printf("  put 2t/1t %.2fx, get 2t/1t %.2fx\n\n",
	       div0(f.put[1], f.put[0]), div0(f.get[1], f.get[0]));
	fflush(stdout);
}

static void jnum(FILE *fp, const char *key, double v)
{
	fprintf(fp, "  \"%s\": %.6g,\n", key, v);
}

static void jint(FILE *fp, const char *key, uint64_t v)
{
	fprintf(fp, "  \"%s\": %llu,\n", key, (unsigned long long)v);
}

int report_json(const struct bench_report *r, const char *path)
{
	const struct corpus *c = r->corpus;
	const struct store_result *s = r->store;
	struct figures f;
	char dir[4096];
	FILE *fp;
	int k, err = 0;

	figures(r, &f);
	if (strlen(path) >= sizeof(dir)) {
		warnx_("json: path too long");
		return -ENAMETOOLONG;
	}
	strcpy(dir, path);
	if (mkdir_p(dirname(dir)) != 0) {
		err = -errno;
		warnx_("json: mkdir for %s: %s", path, strerror(errno));
		return err;
	}
	fp = fopen(path, "w");
	if (!fp) {
		err = -errno;
		warnx_("json: %s: %s", path, strerror(errno));
		return err;
	}
	fprintf(fp, "{\n");
	jint(fp, "pages", c->npages);
	jint(fp, "page_size", BENCH_PAGE);
	jint(fp, "reps", r->reps);
	fprintf(fp, "  \"mix\": {\n");
	for (k = 0; k < KIND__COUNT; k++)
		fprintf(fp, "    \"%s\": { \"pages\": %zu, \"lz4_ratio\": "
			"%.4g },\n", kind_name(k), c->count[k],
			kind_ratio(c, k));
	fprintf(fp, "    \"same_filled_pages\": %zu,\n", c->nsame);
	fprintf(fp, "    \"lz4_ratio_data_pages\": %.4g\n  },\n",
		f.lz4_ratio_data);
	jnum(fp, "put_mb_s", f.put[0]);
	jnum(fp, "get_mb_s", f.get[0]);
	jnum(fp, "put_pages_per_s", f.put_ps[0]);
	jnum(fp, "get_pages_per_s", f.get_ps[0]);
	jnum(fp, "put_mb_s_2t", f.put[1]);
	jnum(fp, "get_mb_s_2t", f.get[1]);
	jnum(fp, "put_pages_per_s_2t", f.put_ps[1]);
	jnum(fp, "get_pages_per_s_2t", f.get_ps[1]);
	jnum(fp, "put_fill_mb_s", f.fill[0]);
	jnum(fp, "put_fill_mb_s_2t", f.fill[1]);
	jnum(fp, "put_fill_pages_per_s", f.fill_ps[0]);
	jnum(fp, "put_fill_pages_per_s_2t", f.fill_ps[1]);
	jnum(fp, "put_fill_vs_lz4_new_memory", div0(f.fill[0], f.lz4c_new));
	jnum(fp, "put_faults_per_page", s->put_faults);
	jnum(fp, "put_fill_faults_per_page", s->fill_faults);
	jnum(fp, "lz4_compress_new_memory_mb_s", f.lz4c_new);
	jnum(fp, "lz4_compress_mb_s", f.lz4c);
	jnum(fp, "lz4_decompress_mb_s", f.lz4d);
	jnum(fp, "lz4_compress_pages_per_s", f.lz4c_ps);
	jnum(fp, "lz4_decompress_pages_per_s", f.lz4d_ps);
	jnum(fp, "put_vs_lz4", f.t[T_PUT].value);
	jnum(fp, "get_vs_lz4", f.t[T_GET].value);
	jnum(fp, "compression_ratio", s->compression_ratio);
	jnum(fp, "lz4_compression_ratio", f.lz4_ratio_data);
	jnum(fp, "ram_per_compressed_byte", s->ram_per_compressed);
	jnum(fp, "meta_bytes_per_page", s->meta_per_page);
	jint(fp, "bytes_compressed", s->bytes_compressed);
	jint(fp, "ram_data", s->ram_data);
	jint(fp, "ram_index", s->ram_index);
	jint(fp, "ram_fixed", s->ram_fixed);
	jint(fp, "pages_same", s->pages_same);
	jnum(fp, "churn_ram_per_compressed_byte", s->churn_ram_per_compressed);
	jnum(fp, "churn_index_bytes_per_page", s->churn_index_per_page);
	jint(fp, "churn_pages_live", s->churn_pages_live);
	jint(fp, "churn_ram_used", s->churn_ram_used);
	jint(fp, "churn_ram_fixed", s->churn_ram_fixed);
	jint(fp, "churn_rss_growth", s->churn_rss_growth);
	jint(fp, "pages_raw", s->pages_raw);
	jnum(fp, "spill_write_mb_s", f.spill_w);
	jnum(fp, "spill_write_file_mb_s", f.spill_wf);
	jnum(fp, "spill_read_mb_s", f.spill_r);
	jnum(fp, "spill_read_batch_mb_s", f.spill_rb);
	jint(fp, "spill_read_batch_depth", BENCH_READ_QD);
	jint(fp, "spill_pages", s->spill_target);
	jint(fp, "spill_pages_reached", s->spill_reached);
	fprintf(fp, "  \"spill_complete\": %s,\n",
		s->spill_complete ? "true" : "false");
	jint(fp, "spill_file_bytes", s->spill_used);
	jnum(fp, "uring_write_mb_s", f.uring_w);
	jint(fp, "uring_write_bytes", r->uring->write.bytes);
	jint(fp, "uring_unit", r->uring->unit);
	jnum(fp, "uring_read_mb_s", f.uring_r);
	jint(fp, "uring_read_depth", BENCH_READ_QD);
	fprintf(fp, "  \"uring_direct\": %s,\n",
		r->uring->direct ? "true" : "false");
	jnum(fp, "spill_vs_uring", f.t[T_SPILL].value);
	jnum(fp, "spill_read_vs_uring", f.t[T_SPILL_READ].value);
	fprintf(fp, "  \"targets\": {\n");
	for (k = 0; k < T__COUNT; k++) {
		const struct target *t = &f.t[k];

		fprintf(fp, "    \"%s\": { \"value\": %.6g, \"goal\": %.6g, "
			"\"op\": \"%s\", \"pass\": %s }%s\n", t->key,
			t->value, t->goal, t->at_most ? "<=" : ">=",
			passes(t) ? "true" : "false",
			k + 1 < T__COUNT ? "," : "");
	}
	fprintf(fp, "  }\n}\n");
	if (ferror(fp))
		err = -EIO;
	if (fclose(fp) != 0 && !err)
		err = -errno;
	if (err)
		warnx_("json: writing %s: %s", path, strerror(-err));
	return err;
}
