/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - small t_ helpers shared by the host-lib test programs.
 *
 * Every test is a standalone program: exit 0 pass, 1 fail, 77 skip.  All
 * helpers are static inline so each program takes only what it uses.
 *
 * Pages are described by a 64-bit "tag": the top two bits pick a kind of
 * content (compressible, same-filled, random, half random) and the rest is
 * a seed.  t_page_fill() writes the page a tag stands for and
 * t_page_check() recomputes it word by word, so a test keeps one integer
 * per stored page instead of a copy of it.  A plain small seed is a tag of
 * kind T_COMP, so t_page_fill(buf, len, seed) makes a compressible page.
 */
#ifndef TMEM_TEST_HELPERS_H
#define TMEM_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "tmem.h"

#define T_EXIT_PASS	0
#define T_EXIT_FAIL	1
#define T_EXIT_SKIP	77

#define T_PAGE_4K	4096u
#define T_PAGE_64K	65536u

/* Sanitizer builds run ~4x fewer iterations: they are ~10x slower. */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN 0
#endif

/* ------------------------------------------------------------------ */
/* Failing loudly                                                      */

static inline void t_fail_at(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

static inline void t_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s:%d: FAIL: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(T_EXIT_FAIL);
}

#define t_fail(...)	t_fail_at(__FILE__, __LINE__, __VA_ARGS__)

#define t_assert(cond)							\
	do {								\
		if (!(cond))						\
			t_fail("assertion failed: %s", #cond);		\
	} while (0)

/* Name of a -errno result, for messages. */
static inline const char *t_errname(int64_t rc)
{
	switch (rc) {
	case 0:		return "0";
	case -EINVAL:	return "-EINVAL";
	case -EBADF:	return "-EBADF";
	case -ENOENT:	return "-ENOENT";
	case -ENOSPC:	return "-ENOSPC";
	case -ENOMEM:	return "-ENOMEM";
	case -E2BIG:	return "-E2BIG";
	case -EIO:	return "-EIO";
	case -EEXIST:	return "-EEXIST";
	case -EACCES:	return "-EACCES";
	case -ENOTDIR:	return "-ENOTDIR";
	default:	return rc < 0 ? "-E?" : "+";
	}
}

/* Evaluate @expr once and insist it equals @want. */
#define t_rc(expr, want)						\
	do {								\
		int64_t t_r_ = (int64_t)(expr);				\
		int64_t t_w_ = (int64_t)(want);				\
		if (t_r_ != t_w_)					\
			t_fail("%s = %lld (%s), want %lld (%s)", #expr,	\
			       (long long)t_r_, t_errname(t_r_),	\
			       (long long)t_w_, t_errname(t_w_));	\
	} while (0)

/* Compare two unsigned values, printing both on failure. */
#define t_eq(got, want)							\
	do {								\
		uint64_t t_g_ = (uint64_t)(got);			\
		uint64_t t_x_ = (uint64_t)(want);			\
		if (t_g_ != t_x_)					\
			t_fail("%s = %llu, want %s = %llu", #got,	\
			       (unsigned long long)t_g_, #want,		\
			       (unsigned long long)t_x_);		\
	} while (0)

/* ------------------------------------------------------------------ */
/* Time, scale and seeds                                               */

static inline uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time the calling thread has used. */
static inline uint64_t t_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t t_now_ms(void)
{
	return t_now_ns() / 1000000u;
}

static inline void t_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* TEST_SCALE multiplies lengths; sanitizer builds divide them by 4. */
static inline uint64_t t_iters(uint64_t n)
{
	const char *e = getenv("TEST_SCALE");
	double scale = e && *e ? strtod(e, NULL) : 1.0;
	double v;

	if (!(scale > 0))
		scale = 1.0;
	v = (double)n * scale / (T_ASAN ? 4 : 1);
	return v < 1 ? 1 : (uint64_t)v;
}

/*
 * The seed of a randomized test: argv[1], else $TEST_SEED, else the clock.
 * Printed first, with the command that replays it.
 */
static inline uint64_t t_seed(int argc, char **argv)
{
	const char *src = argc > 1 ? argv[1] : getenv("TEST_SEED");
	uint64_t seed;

	if (src && *src)
		seed = strtoull(src, NULL, 0);
	else
		seed = t_now_ns() ^ ((uint64_t)getpid() << 32);
	printf("seed %llu (replay: %s %llu)\n", (unsigned long long)seed,
	       argv[0], (unsigned long long)seed);
	fflush(stdout);
	return seed;
}

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64, good enough and random-access            */

static inline uint64_t t_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct t_rng {
	uint64_t s;
};

static inline uint64_t t_rand(struct t_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return t_mix64(r->s);
}

/* Uniform in [0, n); n > 0.  The modulo bias is irrelevant here. */
static inline uint64_t t_rand_below(struct t_rng *r, uint64_t n)
{
	return t_rand(r) % n;
}

/* True with probability num/den. */
static inline bool t_chance(struct t_rng *r, unsigned int num, unsigned int den)
{
	return t_rand_below(r, den) < num;
}

/* ------------------------------------------------------------------ */
/* Page contents                                                       */

enum t_kind {
	T_COMP = 0,	/* repeating 64-byte pattern: compresses ~30x */
	T_SAME = 1,	/* every 64-bit word equal; 1 in 4 is all zero */
	T_RAND = 2,	/* random bytes: LZ4 cannot shrink it, stored raw */
	T_HALF = 3,	/* first half random, second compressible: ~2x */
};

#define T_TAG_SEED_MASK	((1ull << 62) - 1)

static inline uint64_t t_tag(enum t_kind kind, uint64_t seed)
{
	return ((uint64_t)kind << 62) | (seed & T_TAG_SEED_MASK);
}

static inline enum t_kind t_tag_kind(uint64_t tag)
{
	return (enum t_kind)(tag >> 62);
}

static inline const char *t_kind_name(enum t_kind kind)
{
	static const char *const names[] = { "comp", "same", "rand", "half" };

	return names[kind & 3];
}

/* The value every word of a T_SAME page holds. */
static inline uint64_t t_same_word(uint64_t seed)
{
	return (seed & 3) == 0 ? 0 : t_mix64(seed) | 1;
}

static inline uint64_t t_comp_word(uint64_t seed, size_t i)
{
	/* A position marker every 512 bytes catches misplaced chunks. */
	if (i % 64 == 0)
		return t_mix64(seed ^ 0x5eed5eed) + i;
	return t_mix64((seed << 3) + (i & 7));
}

#define T_GOLDEN2	0xd6e8feb86659fd93ull

/* Word @i of the @len-byte page that @tag stands for. */
static inline uint64_t t_page_word(uint64_t tag, size_t len, size_t i)
{
	uint64_t seed = tag & T_TAG_SEED_MASK;
	size_t nwords = len / 8;

	switch (t_tag_kind(tag)) {
	case T_COMP:
		return t_comp_word(seed, i);
	case T_SAME:
		return t_same_word(seed);
	case T_RAND:
		return t_mix64(t_mix64(seed) ^ (i * T_GOLDEN2));
	case T_HALF:
	default:
		if (i < nwords / 2)
			return t_mix64(t_mix64(~seed) ^ (i * T_GOLDEN2));
		return t_comp_word(seed, i);
	}
}

/* Fill @buf (@len a multiple of 8) with the page @tag stands for. */
static inline void t_page_fill(void *buf, size_t len, uint64_t tag)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t w = t_page_word(tag, len, i);

		memcpy(p + i * 8, &w, 8);
	}
}

/* Offset of the first byte of @buf that differs from page @tag, or -1. */
static inline long t_page_check(const void *buf, size_t len, uint64_t tag)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t w = t_page_word(tag, len, i), g;

		memcpy(&g, p + i * 8, 8);
		if (g != w) {
			size_t b = 0;

			while (((const unsigned char *)&g)[b] ==
			       ((const unsigned char *)&w)[b])
				b++;
			return (long)(i * 8 + b);
		}
	}
	return -1;
}

#define t_page_verify(buf, len, tag)					\
	do {								\
		long t_off_ = t_page_check(buf, len, tag);		\
		if (t_off_ >= 0)					\
			t_fail("page %s/%llx (%zu bytes) differs at byte %ld", \
			       t_kind_name(t_tag_kind(tag)),		\
			       (unsigned long long)(tag), (size_t)(len), \
			       t_off_);					\
	} while (0)

/*
 * Buffers for gets carry 64 canary bytes past @len, so a library that
 * writes beyond the length it was given is caught even without ASan.
 */
#define T_CANARY_LEN	64
#define T_CANARY_BYTE	0xa5

static inline void *t_buf_alloc(size_t len)
{
	/* aligned_alloc wants a multiple of the alignment. */
	unsigned char *p = aligned_alloc(64, (len + T_CANARY_LEN + 63) & ~63ul);

	if (!p)
		t_fail("out of memory allocating %zu bytes", len);
	memset(p, 0, len);
	memset(p + len, T_CANARY_BYTE, T_CANARY_LEN);
	return p;
}

static inline bool t_buf_canary_ok(const void *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf + len;
	int i;

	for (i = 0; i < T_CANARY_LEN; i++)
		if (p[i] != T_CANARY_BYTE)
			return false;
	return true;
}

#define t_canary_verify(buf, len)					\
	do {								\
		if (!t_buf_canary_ok(buf, len))				\
			t_fail("library wrote past the %zu-byte buffer", \
			       (size_t)(len));				\
	} while (0)

/* ------------------------------------------------------------------ */
/* Keys                                                                */

static inline struct tmem_key t_key3(uint64_t a, uint64_t b, uint64_t c,
				     uint32_t index)
{
	struct tmem_key k = { { a, b, c }, index };

	return k;
}

/* A key whose three oid words all depend on @obj. */
static inline struct tmem_key t_key(uint64_t obj, uint32_t index)
{
	return t_key3(obj, obj * 0x100000001b3ull, ~obj, index);
}

/* ------------------------------------------------------------------ */
/* Stores and their spill directories                                  */

#define T_PATH_MAX	256
#define T_MAX_DIRS	16

/* Spill directories made by this program, removed at exit. */
static char t_dirs[T_MAX_DIRS][T_PATH_MAX];

/* Remove the files in @dir, then @dir itself. */
static inline void t_rmdir_all(const char *dir)
{
	char path[T_PATH_MAX * 2];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static inline void t_cleanup_dirs(void)
{
	int i;

	for (i = 0; i < T_MAX_DIRS; i++)
		if (t_dirs[i][0])
			t_rmdir_all(t_dirs[i]);
}

/* Make a fresh directory under @base into @out (T_PATH_MAX bytes). */
static inline void t_mkdtemp_in(const char *base, char *out)
{
	static bool registered;
	int i;

	snprintf(out, T_PATH_MAX, "%s/tmem-test-XXXXXX", base);
	if (!mkdtemp(out))
		t_fail("mkdtemp(%s): %s", out, strerror(errno));
	if (!registered) {
		atexit(t_cleanup_dirs);
		registered = true;
	}
	for (i = 0; i < T_MAX_DIRS; i++) {
		if (!t_dirs[i][0]) {
			snprintf(t_dirs[i], T_PATH_MAX, "%s", out);
			return;
		}
	}
}

/* Make a fresh directory under $TMPDIR or /tmp into @out (T_PATH_MAX). */
static inline void t_mkdtemp(char *out)
{
	const char *tmp = getenv("TMPDIR");

	t_mkdtemp_in(tmp && *tmp ? tmp : "/tmp", out);
}

/*
 * A directory in RAM (/dev/shm) if it has @need bytes free, else as
 * t_mkdtemp.  Spill I/O there is buffered (tmpfs has no O_DIRECT) and
 * fast: for tests that spill a lot and care about semantics, not disks.
 * (A container's /dev/shm may be tiny: then a full disk would look like
 * a library failure, hence the check.)
 */
static inline void t_mkdtemp_fast(char *out, uint64_t need)
{
	struct statvfs vfs;

	if (!statvfs("/dev/shm", &vfs) && !access("/dev/shm", W_OK | X_OK) &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize >= need)
		t_mkdtemp_in("/dev/shm", out);
	else
		t_mkdtemp(out);
}

/* Remove a directory made by t_mkdtemp() now rather than at exit. */
static inline void t_dir_remove(const char *dir)
{
	int i;

	t_rmdir_all(dir);
	for (i = 0; i < T_MAX_DIRS; i++)
		if (!strcmp(t_dirs[i], dir))
			t_dirs[i][0] = 0;
}

/* Entries in @dir other than "." and "..", or -1. */
static inline int t_dir_count(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/*
 * Make a store from @cfg.  With @spill_dir non-NULL, first make a fresh
 * directory there (T_PATH_MAX bytes) and spill into it.
 */
static inline struct tmem_store *t_store_new_cfg(struct tmem_config *cfg,
						 char *spill_dir)
{
	struct tmem_store *s = NULL;
	int rc;

	if (spill_dir) {
		t_mkdtemp(spill_dir);
		cfg->spill_path = spill_dir;
	}
	rc = tmem_store_create(cfg, &s);
	if (rc)
		t_fail("tmem_store_create: %s (%d)", t_errname(rc), rc);
	if (!s)
		t_fail("tmem_store_create returned 0 but no store");
	return s;
}

static inline struct tmem_store *t_store_new(uint64_t budget, char *spill_dir,
					     uint64_t spill_max)
{
	struct tmem_config cfg = {
		.budget = budget,
		.spill_max = spill_dir ? spill_max : 0,
		.raw_policy = TMEM_RAW_STORE,
	};

	return t_store_new_cfg(&cfg, spill_dir);
}

/* Destroy @s and remove @spill_dir (may be NULL). */
static inline void t_store_free(struct tmem_store *s, const char *spill_dir)
{
	tmem_store_destroy(s);
	if (spill_dir)
		t_dir_remove(spill_dir);
}

static inline int t_pool_new(struct tmem_store *s, enum tmem_pool_kind kind,
			     uint32_t page_size)
{
	int pool = tmem_pool_create(s, kind, page_size);

	if (pool < 0)
		t_fail("tmem_pool_create(%d, %u): %s", kind, page_size,
		       t_errname(pool));
	return pool;
}

/* ------------------------------------------------------------------ */
/* Stats                                                               */

static inline void t_stats(struct tmem_store *s, struct tmem_stats *st)
{
	int rc = tmem_stats(s, st);

	if (rc)
		t_fail("tmem_stats: %s", t_errname(rc));
}

/* All stats, ABI 1.0's and later ones, indexed by enum tmem_stat. */
static inline void t_stat_values(struct tmem_store *s,
				 uint64_t v[TMEM_STAT__COUNT])
{
	int rc = tmem_stat_values(s, v, TMEM_STAT__COUNT);

	if (rc != TMEM_STAT__COUNT)
		t_fail("tmem_stat_values: %d", rc);
}

static inline uint64_t t_stats_get(struct tmem_store *s, enum tmem_stat stat)
{
	uint64_t v[TMEM_STAT__COUNT];

	t_stat_values(s, v);
	return v[stat];
}

enum t_cmp { T_EQ, T_LE, T_GE };

/*
 * Poll @stat every millisecond until it compares @cmp to @v, for up to
 * @ms milliseconds.  Returns true if it got there.  Used where the
 * library works in the background (reclaim after tmem_set_budget).
 */
static inline bool t_wait_stat(struct tmem_store *s, enum tmem_stat stat,
			       enum t_cmp cmp, uint64_t v, unsigned int ms)
{
	uint64_t end = t_now_ms() + ms;

	for (;;) {
		uint64_t x = t_stats_get(s, stat);

		if ((cmp == T_EQ && x == v) || (cmp == T_LE && x <= v) ||
		    (cmp == T_GE && x >= v))
			return true;
		if (t_now_ms() >= end)
			return false;
		t_sleep_ms(1);
	}
}

static inline const char *t_cmp_name(enum t_cmp cmp)
{
	return cmp == T_EQ ? "==" : cmp == T_LE ? "<=" : ">=";
}

#define t_wait_stat_or_fail(s, stat, cmp, v, ms)			\
	do {								\
		if (!t_wait_stat(s, stat, cmp, v, ms))			\
			t_fail("%s stayed at %llu after %u ms (want %s %llu)", \
			       tmem_stat_name(stat),			\
			       (unsigned long long)t_stats_get(s, stat), \
			       (unsigned int)(ms), t_cmp_name(cmp),	\
			       (unsigned long long)(v));		\
	} while (0)

/* ------------------------------------------------------------------ */
/* Put and get with the page given by a tag                            */

/* Put page @tag under @key; returns what tmem_put returned. */
static inline int t_put_tag_flags(struct tmem_store *s, int pool,
				  const struct tmem_key *key, uint64_t tag,
				  size_t len, unsigned int flags)
{
	unsigned char *buf = t_buf_alloc(len);
	int rc;

	t_page_fill(buf, len, tag);
	rc = tmem_put_flags(s, pool, key, buf, len, flags);
	free(buf);
	return rc;
}

static inline int t_put_tag(struct tmem_store *s, int pool,
			    const struct tmem_key *key, uint64_t tag,
			    size_t len)
{
	return t_put_tag_flags(s, pool, key, tag, len, 0);
}

/*
 * Get @key into a canary buffer and, on a hit, insist it is page @tag;
 * failures name the caller's line.  Returns what tmem_get (or, with
 * @excl, tmem_get_exclusive) returned.
 */
static inline int t_get_check_at(const char *file, int line,
				 struct tmem_store *s, int pool,
				 const struct tmem_key *key, uint64_t tag,
				 size_t len, bool excl)
{
	unsigned char *buf = t_buf_alloc(len);
	long off;
	int rc;

	rc = excl ? tmem_get_exclusive(s, pool, key, buf, len) :
		    tmem_get(s, pool, key, buf, len);
	if (!t_buf_canary_ok(buf, len))
		t_fail_at(file, line, "get wrote past its %zu bytes", len);
	off = rc == 0 ? t_page_check(buf, len, tag) : -1;
	free(buf);
	if (off >= 0)
		t_fail_at(file, line,
			  "get of key (%llx,%llx,%llx,%u) pool %d: "
			  "page %s/%llx (%zu bytes) differs at byte %ld",
			  (unsigned long long)key->oid[0],
			  (unsigned long long)key->oid[1],
			  (unsigned long long)key->oid[2], key->index, pool,
			  t_kind_name(t_tag_kind(tag)),
			  (unsigned long long)tag, len, off);
	return rc;
}

#define t_get_check(s, pool, key, tag, len)				\
	t_get_check_at(__FILE__, __LINE__, s, pool, key, tag, len, false)
#define t_getx_check(s, pool, key, tag, len)				\
	t_get_check_at(__FILE__, __LINE__, s, pool, key, tag, len, true)

#endif /* TMEM_TEST_HELPERS_H */
