/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the end-to-end guest programs (swap-verify, pagecache-verify):
 * the page patterns they write and recheck, the E2E-* console protocol they
 * speak with the host harness (tests/e2e/run-e2e.py), and small helpers.
 *
 * Patterns.  A 4 KiB block is a pure function of (seed, block number,
 * generation).  Its first `random_words` 64-bit words come from a
 * xorshift64* generator seeded by a hash of the three; the rest repeat the
 * key word with a period of 8 words, so the host's LZ4 has something to
 * compress.  A block from another page, another file or an older
 * generation therefore never verifies: its key differs, and so does every
 * random word.
 *
 * Console protocol (one line each, on stdout, which is the serial console):
 *   E2E-RESULT key=value ...    figures the harness records
 *   E2E-STATS label k=v ...     the driver's debugfs stats at a point in time
 *   E2E-SYNC name               the program stops until the host answers
 * At a sync point the program reads lines from stdin (the console): "go"
 * resumes it; "sh CMD" runs CMD with /bin/sh and reports E2E-SH rc=N, so
 * the host can act inside the guest (unbind the driver, say) while this
 * program still holds its pages.
 */
#ifndef E2E_COMMON_H
#define E2E_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define E2E_PAGE	4096u
#define E2E_WORDS	(E2E_PAGE / 8)

/* splitmix64 finalizer: a good 64-bit mix of one word. */
static inline uint64_t e2e_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The key of one block: every input changes it. */
static inline uint64_t e2e_key(uint64_t seed, uint64_t block, uint64_t gen)
{
	return e2e_mix(seed ^ e2e_mix(block ^ e2e_mix(gen + 0x5eed)));
}

/* Fill one 4 KiB block with the pattern for (seed, block, gen). */
static inline void e2e_fill(uint64_t *w, uint64_t seed, uint64_t block,
			    uint64_t gen, unsigned int random_words)
{
	uint64_t key = e2e_key(seed, block, gen);
	uint64_t s = key | 1;	/* xorshift64* state: never 0 */
	unsigned int i;

	for (i = 0; i < random_words && i < E2E_WORDS; i++) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		w[i] = s * 0x2545f4914f6cdd1dull;
	}
	for (; i < E2E_WORDS; i++)
		w[i] = key ^ (i & 7);
}

/*
 * Compare a block with what it should hold.  Returns 0 if equal, else the
 * offset of the first differing byte plus one.
 */
static inline size_t e2e_check(const void *got, const void *want, size_t len)
{
	const unsigned char *g = got, *w = want;
	size_t i;

	if (memcmp(got, want, len) == 0)
		return 0;
	for (i = 0; i < len && g[i] == w[i]; i++)
		;
	return i + 1;
}

static inline double e2e_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* printf to the console and flush at once, so lines reach the host in order. */
static inline void e2e_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/*
 * Print the driver's debugfs stats as one E2E-STATS line.  The file has one
 * "name value" pair per line; those with whole-number values are copied
 * through without interpretation (the ratios are left out).  A missing file
 * (no module) is reported as such, not as an error.
 */
static inline void e2e_stats(const char *path, const char *label)
{
	char name[128], in[256], line[16384];
	unsigned long long v;
	size_t n = 0;
	char end;
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "r");
	if (!f) {
		e2e_say("E2E-STATS %s missing", label);
		return;
	}
	n = snprintf(line, sizeof(line), "E2E-STATS %s", label);
	while (fgets(in, sizeof(in), f) && n < sizeof(line) - 160) {
		if (sscanf(in, "%127s %llu%c", name, &v, &end) == 3 && end == '\n')
			n += snprintf(line + n, sizeof(line) - n, " %s=%llu", name, v);
	}
	fclose(f);
	e2e_say("%s", line);
}

/* Stop at a named sync point until the host says "go" (see above). */
static inline void e2e_sync(const char *name)
{
	char line[1024];

	e2e_say("E2E-SYNC %s", name);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = 0;
		if (strcmp(line, "go") == 0)
			return;
		if (strncmp(line, "sh ", 3) == 0) {
			int rc = system(line + 3);

			e2e_say("E2E-SH rc=%d", rc);
		}
	}
	/* The console closed: nobody will answer; carry on. */
	e2e_say("E2E-SYNC-EOF %s", name);
}

static inline unsigned long long e2e_num(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s) {
		fprintf(stderr, "bad number for %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

#endif /* E2E_COMMON_H */
