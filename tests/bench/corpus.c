/* SPDX-License-Identifier: MIT */
/*
 * corpus.c - the pages every measurement runs on, built at run time from
 * real data on this machine rather than from a synthetic generator,
 * because LZ4's speed and ratio depend on the data far more than on
 * anything the store does.
 *
 * The mix, by default, is a guess at what a guest swaps and caches:
 *   25% binaries  ELF executables and shared libraries (page cache)
 *   25% text      headers and documentation (page cache)
 *   40% heap      this process's malloc heap (anonymous memory, swap)
 *   10% zero      all-zero pages, which the store keeps without data
 * Pages are sampled evenly across all the files of a kind, so that no
 * single file dominates, then shuffled so that any slice of the corpus
 * (a thread's half, say) has the same mix.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

static const char *const binary_dirs[] = {
	"/usr/bin",
	"/usr/sbin",
	"/usr/lib/x86_64-linux-gnu",
};

static const char *const text_dirs[] = {
	"/usr/include",
	"/usr/share/doc",
};

const char *kind_name(enum page_kind k)
{
	switch (k) {
	case KIND_BINARY:
		return "binary";
	case KIND_TEXT:
		return "text";
	case KIND_HEAP:
		return "heap";
	case KIND_ZERO:
		return "zero";
	default:
		return "?";
	}
}

/*
 * Same-filled as zram and the store mean it: the page is one machine
 * word repeated.  Such pages are kept as that word alone, so they are
 * counted apart: they never reach the allocator or the spill file.
 */
int page_is_same_filled(const uint8_t *p)
{
	uint64_t first, w;
	size_t i;

	memcpy(&first, p, sizeof(first));
	for (i = sizeof(w); i < BENCH_PAGE; i += sizeof(w)) {
		memcpy(&w, p + i, sizeof(w));
		if (w != first)
			return 0;
	}
	return 1;
}

/* A text page: no NUL, and at most 2% control bytes besides layout. */
static int page_is_text(const uint8_t *p)
{
	unsigned int ctl = 0;
	size_t i;

	for (i = 0; i < BENCH_PAGE; i++) {
		uint8_t b = p[i];

		if (b == 0)
			return 0;
		if (b < 0x20 && b != '\n' && b != '\t' && b != '\r' &&
		    b != '\f')
			ctl++;
	}
	return ctl <= BENCH_PAGE / 50 && !page_is_same_filled(p);
}

/* Pages from a shared object or executable; skip only same-filled ones. */
static int page_is_binary(const uint8_t *p)
{
	return !page_is_same_filled(p);
}

struct file_ent {
	char *path;
	uint64_t pages;		/* whole pages; a partial tail is not used */
	dev_t dev;
	ino_t ino;
};

struct file_list {
	struct file_ent *f;
	size_t n, cap;
	uint64_t total_pages;
	int want_elf;
};

static int file_list_add(struct file_list *l, const char *path,
			 const struct stat *st)
{
	struct file_ent *e;

	if (!S_ISREG(st->st_mode) || st->st_size < (off_t)BENCH_PAGE)
		return 0;
	if (l->want_elf) {
		char magic[4];
		ssize_t n;
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		/* Unreadable files are simply not part of the corpus. */
		if (fd < 0)
			return 0;
		n = pread(fd, magic, sizeof(magic), 0);
		close(fd);
		if (n != (ssize_t)sizeof(magic) ||
		    memcmp(magic, "\177ELF", 4) != 0)
			return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct file_ent *f = realloc(l->f, cap * sizeof(*f));

		if (!f)
			return -ENOMEM;
		l->f = f;
		l->cap = cap;
	}
	e = &l->f[l->n];
	e->path = strdup(path);
	if (!e->path)
		return -ENOMEM;
	e->pages = (uint64_t)st->st_size / BENCH_PAGE;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	l->n++;
	return 0;
}

/* nftw() has no user pointer; the walk is single-threaded. */
static struct file_list *walk_list;
static int walk_err;

static int walk_cb(const char *path, const struct stat *st, int type,
		   struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F)
		return 0;
	walk_err = file_list_add(walk_list, path, st);
	return walk_err ? 1 : 0;
}

/* Flat for binary directories (/usr/lib has data subtrees), deep for text. */
static int list_dir(struct file_list *l, const char *dir, int deep)
{
	struct dirent *de;
	DIR *d;
	int err = 0;

	if (deep) {
		walk_list = l;
		walk_err = 0;
		/* A missing directory just contributes nothing. */
		if (nftw(dir, walk_cb, 32, FTW_PHYS) != 0 && walk_err)
			return walk_err;
		return 0;
	}
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		int n;

		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		/* lstat: a symlinked library is the file it points to. */
		if (lstat(path, &st) != 0)
			continue;
		err = file_list_add(l, path, &st);
		if (err)
			break;
	}
	closedir(d);
	return err;
}

static int ent_cmp_path(const void *a, const void *b)
{
	return strcmp(((const struct file_ent *)a)->path,
		      ((const struct file_ent *)b)->path);
}

static int ent_cmp_inode(const void *a, const void *b)
{
	const struct file_ent *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return strcmp(x->path, y->path);
}

/*
 * Hard links (several names of one binary) would put the same pages in
 * twice; keep one name per inode, then sort by path so that the sample
 * is the same from run to run on one machine.
 */
static void file_list_finish(struct file_list *l)
{
	size_t i, j = 0;

	if (l->n == 0)
		return;
	qsort(l->f, l->n, sizeof(*l->f), ent_cmp_inode);
	for (i = 0; i < l->n; i++) {
		if (j > 0 && l->f[j - 1].dev == l->f[i].dev &&
		    l->f[j - 1].ino == l->f[i].ino) {
			free(l->f[i].path);
			continue;
		}
		l->f[j++] = l->f[i];
	}
	l->n = j;
	qsort(l->f, l->n, sizeof(*l->f), ent_cmp_path);
	l->total_pages = 0;
	for (i = 0; i < l->n; i++)
		l->total_pages += l->f[i].pages;
}

static void file_list_free(struct file_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->f[i].path);
	free(l->f);
	memset(l, 0, sizeof(*l));
}

/*
 * Take @want pages that pass @ok, every stride-th page of all the files
 * laid end to end.  Passes with a shifted start fill in pages the check
 * turned down.  Returns the number of pages taken.
 */
static size_t sample_pages(const struct file_list *l, uint8_t *dst,
			   size_t want, int (*ok)(const uint8_t *))
{
	uint64_t stride, start, base, g;
	size_t got = 0, i;

	if (want == 0 || l->total_pages == 0)
		return 0;
	stride = l->total_pages / want;
	if (stride == 0)
		stride = 1;
	/*
	 * A later pass starts at a far offset rather than next to the
	 * pages already taken; 7919 is prime, so unless it divides the
	 * stride the offsets visit each residue once.
	 */
	for (start = 0; start < stride && got < want; start++) {
		uint64_t off = stride % 7919u ? (start * 7919u) % stride :
						start;

		base = 0;
		for (i = 0; i < l->n && got < want; i++) {
			const struct file_ent *e = &l->f[i];
			int fd = -1;

			g = base + (off + stride - base % stride) % stride;
			for (; g < base + e->pages && got < want;
			     g += stride) {
				uint8_t *p = dst + got * (size_t)BENCH_PAGE;
				off_t pos = (off_t)(g - base) * BENCH_PAGE;

				if (fd < 0)
					fd = open(e->path,
						  O_RDONLY | O_CLOEXEC);
				if (fd < 0)
					break;
				if (pread(fd, p, BENCH_PAGE, pos) !=
				    (ssize_t)BENCH_PAGE)
					break;
				if (ok(p))
					got++;
			}
			if (fd >= 0)
				close(fd);
			base += e->pages;
		}
	}
	return got;
}

static int collect(const char *const *dirs, size_t ndirs, int deep,
		   int elf, uint8_t *dst, size_t want,
		   int (*ok)(const uint8_t *), size_t *got, const char *what)
{
	struct file_list l;
	size_t i;
	int err;

	memset(&l, 0, sizeof(l));
	l.want_elf = elf;
	for (i = 0; i < ndirs; i++) {
		err = list_dir(&l, dirs[i], deep);
		if (err) {
			warnx_("listing %s: %s", dirs[i], strerror(-err));
			file_list_free(&l);
			return err;
		}
	}
	file_list_finish(&l);
	progress("corpus: %s: %zu files, %llu pages; sampling %zu", what,
		 l.n, (unsigned long long)l.total_pages, want);
	*got = sample_pages(&l, dst, want, ok);
	file_list_free(&l);
	return 0;
}

/* xorshift64*: a fixed seed, so one machine gives one corpus order. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void shuffle(struct corpus *c)
{
	uint8_t tmp[BENCH_PAGE];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t i, j;

	for (i = c->npages; i > 1; i--) {
		uint8_t k;

		j = (size_t)(rng_next(&seed) % i);
		if (j == i - 1)
			continue;
		memcpy(tmp, corpus_page(c, i - 1), BENCH_PAGE);
		memcpy(corpus_page(c, i - 1), corpus_page(c, j), BENCH_PAGE);
		memcpy(corpus_page(c, j), tmp, BENCH_PAGE);
		k = c->kind[i - 1];
		c->kind[i - 1] = c->kind[j];
		c->kind[j] = k;
	}
}

/* Per-kind LZ4 ratio, one page at a time as the store compresses. */
static int measure_kinds(struct corpus *c)
{
	int bound = LZ4_compressBound((int)BENCH_PAGE);
	char *dst = malloc((size_t)bound);
	size_t i;

	if (!dst)
		return -ENOMEM;
	for (i = 0; i < c->npages; i++) {
		int n = LZ4_compress_default((const char *)corpus_page(c, i),
					     dst, (int)BENCH_PAGE, bound);

		if (n <= 0) {
			warnx_("LZ4_compress_default failed on page %zu", i);
			free(dst);
			return -EIO;
		}
		c->lz4_bytes[c->kind[i]] += (uint64_t)n;
		c->same[i] = (uint8_t)page_is_same_filled(corpus_page(c, i));
		c->nsame += c->same[i];
	}
	free(dst);
	return 0;
}

int corpus_build(struct corpus *c, size_t npages)
{
	size_t want[KIND__COUNT], got, pos = 0, k;
	int err;

	memset(c, 0, sizeof(*c));
	c->npages = npages;
	c->data = xaligned(npages * (size_t)BENCH_PAGE);
	c->kind = calloc(npages, 1);
	c->same = calloc(npages, 1);
	if (!c->data || !c->kind || !c->same) {
		corpus_free(c);
		return -ENOMEM;
	}
	want[KIND_BINARY] = npages / 4;
	want[KIND_TEXT] = npages / 4;
	want[KIND_ZERO] = npages / 10;
	want[KIND_HEAP] = npages - want[KIND_BINARY] - want[KIND_TEXT] -
			  want[KIND_ZERO];

	err = collect(binary_dirs, sizeof(binary_dirs) / sizeof(*binary_dirs),
		      0, 1, c->data, want[KIND_BINARY], page_is_binary, &got,
		      "binaries");
	if (err)
		goto fail;
	c->count[KIND_BINARY] = got;
	pos += got;

	err = collect(text_dirs, sizeof(text_dirs) / sizeof(*text_dirs), 1, 0,
		      corpus_page(c, pos), want[KIND_TEXT], page_is_text, &got,
		      "text");
	if (err)
		goto fail;
	c->count[KIND_TEXT] = got;
	pos += got;

	/* A machine short of files gives the heap its share: say so. */
	if (c->count[KIND_BINARY] + c->count[KIND_TEXT] <
	    want[KIND_BINARY] + want[KIND_TEXT])
		progress("corpus: only %zu binary and %zu text pages found; "
			 "heap pages make up the rest",
			 c->count[KIND_BINARY], c->count[KIND_TEXT]);
	want[KIND_HEAP] = npages - pos - want[KIND_ZERO];
	progress("corpus: heap: building malloc'd structures for %zu pages",
		 want[KIND_HEAP]);
	got = heap_fill_pages(corpus_page(c, pos), want[KIND_HEAP]);
	if (got != want[KIND_HEAP]) {
		warnx_("corpus: heap gave %zu of %zu pages", got,
		       want[KIND_HEAP]);
		err = -ENOMEM;
		goto fail;
	}
	c->count[KIND_HEAP] = got;
	pos += got;

	memset(corpus_page(c, pos), 0, want[KIND_ZERO] * (size_t)BENCH_PAGE);
	c->count[KIND_ZERO] = want[KIND_ZERO];

	for (k = 0, pos = 0; k < KIND__COUNT; k++) {
		memset(c->kind + pos, (int)k, c->count[k]);
		pos += c->count[k];
	}
	shuffle(c);
	err = measure_kinds(c);
	if (err)
		goto fail;
	return 0;
fail:
	corpus_free(c);
	return err;
}

void corpus_free(struct corpus *c)
{
	free(c->data);
	free(c->kind);
	free(c->same);
	memset(c, 0, sizeof(*c));
}
