/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared types and helpers of the host-lib benchmark.
 *
 * The benchmark is one program built from every .c file in tests/bench:
 *   bench.c    options, the order of the runs, exit status
 *   corpus.c   the page corpus, read from real files on this machine
 *   heap.c     malloc'd structures that give the corpus its heap pages
 *   lz4ref.c   raw LZ4 on the same pages: the store's limit
 *   store.c    the library's put/get, density and spill runs
 *   churn.c    density after fill, 75% random flush, refill, repeated
 *   uring.c    raw io_uring, doing the spill's writes and 4 KiB random
 *              reads: the disk's limits for the spill tier
 *   report.c   the table on stdout and the JSON file
 *   util.c     clock, progress, errors, allocation
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_PAGE		4096u
#define BENCH_DEF_PAGES		16384u	/* 64 MiB of corpus */
#define BENCH_DEF_REPS		3u

/*
 * The library's own batch sizes (host-lib/tmem_int.h), which the raw
 * io_uring baselines copy so that both sides do the same I/O.
 */
#define BENCH_SPILL_BATCH	256u		/* TM_SPILL_BATCH: pages */
#define BENCH_SPILL_BUF		(1u << 20)	/* TM_SPILL_BUF: bytes */
#define BENCH_READ_QD		64u		/* TM_READ_DEPTH: reads */

/* Where a corpus page came from. */
enum page_kind {
	KIND_BINARY,	/* executables and shared libraries */
	KIND_TEXT,	/* headers and documentation */
	KIND_HEAP,	/* this process's malloc heap */
	KIND_ZERO,	/* all-zero pages */
	KIND__COUNT
};

struct corpus {
	uint8_t *data;		/* npages * BENCH_PAGE, page aligned */
	uint8_t *kind;		/* enum page_kind of each page */
	uint8_t *same;		/* 1 if the page is one repeated word */
	size_t npages;
	size_t nsame;		/* same-filled: stored without data */
	size_t count[KIND__COUNT];
	uint64_t lz4_bytes[KIND__COUNT];	/* LZ4 output, per kind */
};

static inline uint8_t *corpus_page(const struct corpus *c, size_t i)
{
	return c->data + i * (size_t)BENCH_PAGE;
}

const char *kind_name(enum page_kind k);
int corpus_build(struct corpus *c, size_t npages);
void corpus_free(struct corpus *c);
int page_is_same_filled(const uint8_t *p);

/* heap.c: grow the brk heap with heap-like data, then copy pages of it. */
size_t heap_fill_pages(uint8_t *dst, size_t want);

/* One throughput: the best of several runs, as the machine is shared. */
struct rate {
	double best_s;		/* shortest elapsed time */
	uint64_t bytes;		/* uncompressed bytes per run */
	uint64_t pages;		/* pages per run */
};

double rate_mb_s(const struct rate *r);
double rate_pages_s(const struct rate *r);
void rate_add(struct rate *r, double seconds);

/* lz4ref.c */
struct lz4_result {
	struct rate compress;		/* into memory already touched */
	struct rate compress_new;	/* into a fresh mapping each run */
	struct rate decompress;
	uint64_t compressed_bytes;
};
int lz4_limit(const struct corpus *c, uint8_t *out, unsigned int reps,
	      struct lz4_result *res);

/* store.c */
struct store_result {
	struct rate put[2];		/* [0] 1 thread, [1] 2 threads */
	struct rate fill[2];		/* puts into a brand-new store */
	struct rate get[2];
	double fill_faults;		/* page faults per page put, 1 thread */
	double put_faults;		/* ...the same for the refill */
	double compression_ratio;
	double ram_per_compressed;
	double meta_per_page;
	uint64_t pages_stored;
	uint64_t pages_same;
	uint64_t pages_raw;
	uint64_t bytes_compressed;
	uint64_t ram_data;
	uint64_t ram_index;
	uint64_t ram_fixed;
	/* spill */
	struct rate spill_write;	/* bytes: page data spilled */
	struct rate spill_read;		/* tmem_get, one page at a time */
	struct rate spill_read_batch;	/* tmem_get_batch, BENCH_READ_QD */
	int spill_complete;		/* every run reached the target */
	uint64_t spill_target;		/* pages the file must get */
	uint64_t spill_reached;		/* worst run: pages it got to */
	uint64_t spill_used;		/* spill file bytes after a run */
	/* churn, after the last 75% flush settled */
	double churn_ram_per_compressed;
	double churn_index_per_page;
	uint64_t churn_pages_live;
	uint64_t churn_ram_used;
	uint64_t churn_ram_fixed;
	uint64_t churn_rss_growth;	/* this process, since the store */
};
int store_throughput(const struct corpus *c, uint8_t *out, unsigned int reps,
		     struct store_result *res);
int store_spill(const struct corpus *c, uint8_t *out, const char *dir,
		unsigned int reps, struct store_result *res);

/* churn.c */
int store_churn(const struct corpus *c, struct store_result *res);

/* uring.c */
struct uring_result {
	struct rate write;	/* bytes: what was written (the file) */
	struct rate read;	/* 4 KiB random reads, BENCH_READ_QD deep */
	uint32_t unit;		/* O_DIRECT unit the extents round up to */
	int direct;		/* 1: O_DIRECT, 0: buffered (no fsync) */
};
int uring_limit(const struct corpus *c, const char *dir, unsigned int reps,
		struct uring_result *res);

/* report.c */
struct bench_report {
	const struct corpus *corpus;
	const struct lz4_result *lz4;
	const struct store_result *store;
	const struct uring_result *uring;
	const char *spill_dir;
	unsigned int reps;
};
void report_table(const struct bench_report *r);
int report_json(const struct bench_report *r, const char *path);

/* util.c */
double now_s(void);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xaligned(size_t bytes);
int mkdir_p(const char *path);
int verify_pages(const struct corpus *c, const uint8_t *out,
		 const char *what);

#endif /* BENCH_H */
