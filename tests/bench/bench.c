/* SPDX-License-Identifier: MIT */
/*
 * bench.c - host-lib benchmark: put/get rates against raw LZ4, density,
 * and spill rate against raw io_uring, all on one page corpus built from
 * this machine's files and heap, in one run.
 *
 *   host-lib-bench [--pages N] [--reps N] [--json PATH]
 *
 * The spill file and the io_uring test file go to $BENCH_DIR, default
 * build/bench/tmp: a directory on the real disk, since /tmp may be
 * tmpfs and would measure memory instead.
 *
 * Exit status: 0 whatever the targets say (a benchmark reports, it does
 * not gate); 1 if the library returned wrong data or failed a call it
 * had no reason to fail, or the run could not be made; 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "bench.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC	0x01021994
#endif

#define MIN_PAGES	64ul
#define MAX_PAGES	(1ul << 24)	/* 64 GiB; keys are 32-bit */

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: host-lib-bench [--pages N] [--reps N] [--json PATH]\n"
		"  --pages N   corpus size in 4 KiB pages (default %u)\n"
		"  --reps N    runs per throughput, best kept (default %u)\n"
		"  --json PATH also write the results as JSON\n"
		"  BENCH_DIR   spill directory (default build/bench/tmp)\n",
		BENCH_DEF_PAGES, BENCH_DEF_REPS);
}

static int parse_ulong(const char *s, unsigned long lo, unsigned long hi,
		       unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void check_dir_fs(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) != 0) {
		progress("statfs %s: %s", dir, strerror(errno));
		return;
	}
	if ((unsigned long)sf.f_type == TMPFS_MAGIC)
		progress("warning: %s is tmpfs: spill and io_uring rates "
			 "measure RAM, not a disk; set BENCH_DIR", dir);
}

int main(int argc, char **argv)
{
	unsigned long pages = BENCH_DEF_PAGES, reps = BENCH_DEF_REPS;
	const char *json = NULL, *dir;
	struct corpus corpus;
	struct lz4_result lz4;
	struct store_result store;
	struct uring_result uring;
	struct bench_report rep;
	uint8_t *out = NULL;
	int i, status = 1;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			usage(stderr);
			return 2;
		}
		if (!strcmp(a, "--pages")) {
			if (parse_ulong(argv[++i], MIN_PAGES, MAX_PAGES,
					&pages)) {
				fprintf(stderr, "bench: --pages: %lu to %lu\n",
					MIN_PAGES, MAX_PAGES);
				return 2;
			}
		} else if (!strcmp(a, "--reps")) {
			if (parse_ulong(argv[++i], 1, 100, &reps)) {
				fprintf(stderr, "bench: --reps: 1 to 100\n");
				return 2;
			}
		} else if (!strcmp(a, "--json")) {
			json = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	dir = getenv("BENCH_DIR");
	if (!dir || !*dir)
		dir = "build/bench/tmp";
	if (mkdir_p(dir) != 0) {
		fprintf(stderr, "bench: mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	check_dir_fs(dir);

	memset(&lz4, 0, sizeof(lz4));
	memset(&store, 0, sizeof(store));
	memset(&uring, 0, sizeof(uring));
	progress("building a corpus of %lu pages", pages);
	if (corpus_build(&corpus, pages) != 0) {
		fprintf(stderr, "bench: could not build the corpus\n");
		return 1;
	}
	/* Every get lands in its own page here, then is checked. */
	out = xaligned(corpus.npages * (size_t)BENCH_PAGE);
	if (!out)
		goto done;
	progress("each throughput is run %lu times and the best kept: the "
		 "machine is shared", reps);

	progress("raw LZ4, 1 thread");
	if (lz4_limit(&corpus, out, (unsigned int)reps, &lz4))
		goto done;
	if (store_throughput(&corpus, out, (unsigned int)reps, &store))
		goto done;
	if (store_churn(&corpus, &store))
		goto done;
	if (store_spill(&corpus, out, dir, (unsigned int)reps, &store))
		goto done;
	if (uring_limit(&corpus, dir, (unsigned int)reps, &uring))
		goto done;

	rep.corpus = &corpus;
	rep.lz4 = &lz4;
	rep.store = &store;
	rep.uring = &uring;
	rep.spill_dir = dir;
	rep.reps = (unsigned int)reps;
	report_table(&rep);
	if (json && report_json(&rep, json))
		goto done;
	if (json)
		progress("wrote %s", json);
	status = 0;
done:
	free(out);
	corpus_free(&corpus);
	return status;
}
