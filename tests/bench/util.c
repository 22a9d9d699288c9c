/* SPDX-License-Identifier: MIT */
/*
 * util.c - clock, progress lines, buffers and the page check every
 * measurement ends with.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench.h"

double now_s(void)
{
	struct timespec ts;

	/* Monotonic: the wall clock may be stepped during a run. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("bench: clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Progress goes to stderr so that stdout holds only the table; the
 * time since the first line shows where a slow run spends it.
 */
void progress(const char *fmt, ...)
{
	static double t0;
	va_list ap;

	if (t0 == 0)
		t0 = now_s();
	fprintf(stderr, "bench: [%6.1fs] ", now_s() - t0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void warnx_(const char *fmt, ...)
{
	va_list ap;

	fputs("bench: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * Page-aligned, so that corpus pages can go straight to O_DIRECT writes
 * and every page starts on its own frame, as a guest page would.
 */
void *xaligned(size_t bytes)
{
	size_t n = (bytes + BENCH_PAGE - 1) / BENCH_PAGE * BENCH_PAGE;
	void *p;

	if (n == 0)
		n = BENCH_PAGE;
	p = aligned_alloc(BENCH_PAGE, n);
	if (!p)
		warnx_("out of memory (%zu bytes)", n);
	return p;
}

int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);
	char *p;

	if (len == 0 || len >= sizeof(buf)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * A benchmark of a store that loses or corrupts data measures nothing:
 * every page that came back is compared with the corpus.
 */
int verify_pages(const struct corpus *c, const uint8_t *out,
		 const char *what)
{
	size_t i, j;

	for (i = 0; i < c->npages; i++) {
		const uint8_t *want = corpus_page(c, i);
		const uint8_t *got = out + i * (size_t)BENCH_PAGE;

		if (memcmp(want, got, BENCH_PAGE) == 0)
			continue;
		for (j = 0; j < BENCH_PAGE && want[j] == got[j]; j++)
			;
		warnx_("%s: page %zu (%s%s) differs at byte %zu: "
		       "got 0x%02x, want 0x%02x",
		       what, i, kind_name(c->kind[i]),
		       c->same[i] ? ", same-filled" : "", j, got[j], want[j]);
		return -1;
	}
	return 0;
}

double rate_mb_s(const struct rate *r)
{
	/* MB = 10^6 bytes, as in the LZ4 figures of the design notes. */
	if (r->best_s <= 0)
		return 0;
	return (double)r->bytes / r->best_s / 1e6;
}

double rate_pages_s(const struct rate *r)
{
	if (r->best_s <= 0)
		return 0;
	return (double)r->pages / r->best_s;
}

void rate_add(struct rate *r, double seconds)
{
	/* A clock tick of 0 would make an infinite rate. */
	if (seconds < 1e-9)
		seconds = 1e-9;
	if (r->best_s <= 0 || seconds < r->best_s)
		r->best_s = seconds;
}
