/* SPDX-License-Identifier: MIT */
/*
 * lz4ref.c - the same pages through bare LZ4, one thread: no index, no
 * allocator, no locks.  A store built on LZ4 cannot beat this, so its
 * put and get rates are reported as fractions of it.
 *
 * Like the store, it compresses each page on its own into memory that
 * is packed back to back, and decompresses each into its own page of
 * the output buffer, so that both see the same caches.
 *
 * Compression is timed twice.  Into an arena touched by an earlier run:
 * the limit, which a store in steady state (reusing freed slots) can
 * approach.  And into a fresh mapping each run, which pays one page
 * fault per 4 KiB written, as a brand-new store filling new slabs does;
 * on a VM a fault can cost more than compressing the page.
 */
#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

int lz4_limit(const struct corpus *c, uint8_t *out, unsigned int reps,
	      struct lz4_result *res)
{
	int bound = LZ4_compressBound((int)BENCH_PAGE);
	size_t n = c->npages, i;
	size_t arena_bytes = n * (size_t)bound;
	char *arena = NULL;
	size_t *off = calloc(n + 1, sizeof(*off));
	unsigned int rep;
	int err = 0;

	memset(res, 0, sizeof(*res));
	if (!off) {
		warnx_("lz4: out of memory");
		err = -ENOMEM;
		goto out;
	}
	res->compress.bytes = res->decompress.bytes =
		res->compress_new.bytes = (uint64_t)n * BENCH_PAGE;
	res->compress.pages = res->decompress.pages =
		res->compress_new.pages = n;

	/* Even runs: a fresh mapping; odd runs: the one just touched. */
	for (rep = 0; rep < 2 * reps; rep++) {
		int fresh = rep % 2 == 0;
		double t0, t1;

		if (fresh) {
			if (arena)
				munmap(arena, arena_bytes);
			arena = mmap(NULL, arena_bytes,
				     PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (arena == MAP_FAILED) {
				arena = NULL;
				warnx_("lz4: mmap of %zu bytes failed",
				       arena_bytes);
				err = -ENOMEM;
				goto out;
			}
		}
		t0 = now_s();
		for (i = 0; i < n; i++) {
			int len = LZ4_compress_default(
				(const char *)corpus_page(c, i), arena + off[i],
				(int)BENCH_PAGE, bound);

			if (len <= 0) {
				warnx_("lz4: compress failed on page %zu", i);
				err = -EIO;
				goto out;
			}
			off[i + 1] = off[i] + (size_t)len;
		}
		t1 = now_s();
		rate_add(fresh ? &res->compress_new : &res->compress, t1 - t0);
	}
	res->compressed_bytes = off[n];

	for (rep = 0; rep < reps; rep++) {
		double t0, t1;

		/* Untimed: fault the pages in and clear the last run. */
		memset(out, 0xa5, n * (size_t)BENCH_PAGE);
		t0 = now_s();
		for (i = 0; i < n; i++) {
			int len = LZ4_decompress_safe(
				arena + off[i], (char *)out + i * BENCH_PAGE,
				(int)(off[i + 1] - off[i]), (int)BENCH_PAGE);

			if (len != (int)BENCH_PAGE) {
				warnx_("lz4: decompress of page %zu gave %d",
				       i, len);
				err = -EIO;
				goto out;
			}
		}
		t1 = now_s();
		rate_add(&res->decompress, t1 - t0);
		if (verify_pages(c, out, "lz4 decompress")) {
			err = -EIO;
			goto out;
		}
	}
out:
	if (arena)
		munmap(arena, arena_bytes);
	free(off);
	return err;
}
