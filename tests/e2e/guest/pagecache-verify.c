// SPDX-License-Identifier: GPL-2.0
/*
 * pagecache-verify: push clean page-cache pages out to cleancache, read
 * them back, and check every byte -- including that data made stale by a
 * truncate, an overwrite or an unlink never comes back.
 *
 * It keeps a model of what every 4 KiB block of every file must hold: a
 * pattern from (seed, file, block, generation), or zeros for a hole.  The
 * phases, each followed by an E2E-STATS line when --stats is given:
 *
 *   write   create the files (more in total than guest RAM), fsync
 *   read1   drop caches, then read and verify every byte; the drop hands
 *           the clean pages to cleancache, and reading the set evicts
 *           the earlier part of it again
 *   read2   read and verify again: pages come back from cleancache
 *   mutate  drop caches (so the old contents sit in cleancache), then per
 *           file, by its number mod 4: truncate to 0 and rewrite with a
 *           new generation; truncate to half and extend again (a hole:
 *           must read as zeros); overwrite the middle third with a new
 *           generation; unlink and recreate with a new generation
 *   read3   drop caches, read and verify against the new model
 *   read4   read and verify again
 *
 * Every file stays open (a read-only "pin") from its creation to the end,
 * so that the kernel never evicts its inode: an evicted inode takes its
 * cleancache pages with it (cleancache_invalidate_inode), and read2 and
 * read3 would then miss whole files by the luck of the inode shrinker.
 * On the 67 MiB debug guest that happened: 13 more FLUSH_OBJECTs than
 * usual, and no hit at all in read3.
 *
 *   pagecache-verify [--dir D] [--files N] [--mb-per-file M] [--seed S]
 *                    [--random-words W] [--stats FILE] [--sync]
 *                    [--no-drop] [--inject-corruption]
 *
 * --sync stops at E2E-SYNC <phase> after each phase.  --no-drop skips
 * drop_caches (for running the self-check on a host).  --inject-corruption
 * changes one byte on disk behind the model's back: a negative control.
 *
 * Prints "E2E-RESULT prog=pagecache-verify bytes_verified=N corruptions=M"
 * and exits 1 if any block was wrong, 2 on usage or I/O errors.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e-common.h"

#define HOLE	0xff		/* model: the block must read as zeros */
#define CHUNK	16		/* blocks per read() or write() */

struct model {
	const char *dir;
	uint64_t seed;
	unsigned int nfiles, nblocks;	/* nblocks: the full length of a file */
	unsigned int random_words;
	unsigned int *len;		/* per file: current length in blocks */
	unsigned char *gen;		/* per file and block: generation or HOLE */
	int *pin;			/* per file: an open fd that keeps its inode */
	uint64_t bytes_verified;
	uint64_t corruptions;		/* blocks that did not verify */
	int drop;
};

static void path_of(const struct model *m, unsigned int f, char *buf, size_t n)
{
	snprintf(buf, n, "%s/pc-%03u.dat", m->dir, f);
}

static unsigned char *gen_of(struct model *m, unsigned int f, unsigned int b)
{
	return &m->gen[(size_t)f * m->nblocks + b];
}

/* The expected content of block b of file f. */
static void expect(struct model *m, unsigned int f, unsigned int b, uint64_t *w)
{
	unsigned char g = *gen_of(m, f, b);

	if (g == HOLE)
		memset(w, 0, E2E_PAGE);
	else
		e2e_fill(w, m->seed, (uint64_t)f << 32 | b, g, m->random_words);
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "pagecache-verify: %s %s: %s\n", what, path, strerror(errno));
	e2e_say("E2E-RESULT prog=pagecache-verify error=io");
	exit(2);
}

/* Write blocks [from, to) of file f from the model, at their offsets. */
static void write_blocks(struct model *m, unsigned int f, int fd, unsigned int from,
			 unsigned int to, const char *path)
{
	static uint64_t buf[CHUNK * E2E_WORDS];
	unsigned int b = from;

	while (b < to) {
		unsigned int n = to - b < CHUNK ? to - b : CHUNK, i;

		for (i = 0; i < n; i++)
			expect(m, f, b + i, buf + i * E2E_WORDS);
		if (pwrite(fd, buf, (size_t)n * E2E_PAGE, (off_t)b * E2E_PAGE) !=
		    (ssize_t)n * E2E_PAGE)
			die("writing", path);
		b += n;
	}
}

/*
 * Drop the clean page cache: "1", not "3".  Dropping slab objects too would
 * evict the inodes, and evicting an inode invalidates all its cleancache
 * pages, so nothing would come back from cleancache at all.
 */
static void drop_caches(struct model *m)
{
	int fd;

	sync();
	if (!m->drop)
		return;
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		die("writing", "/proc/sys/vm/drop_caches");
	close(fd);
}

/* Read every file whole and compare each block with the model. */
static void verify_all(struct model *m)
{
	static uint64_t buf[CHUNK * E2E_WORDS];
	uint64_t want[E2E_WORDS];
	char path[512];
	unsigned int f;

	for (f = 0; f < m->nfiles; f++) {
		unsigned int b = 0;
		struct stat st;
		int fd;

		path_of(m, f, path, sizeof(path));
		fd = open(path, O_RDONLY);
		if (fd < 0 || fstat(fd, &st))
			die("opening", path);
		if (st.st_size != (off_t)m->len[f] * E2E_PAGE) {
			e2e_say("E2E-CORRUPT file=%u size=%lld expected=%lld", f,
				(long long)st.st_size,
				(long long)m->len[f] * E2E_PAGE);
			m->corruptions++;
		}
		while (b < m->len[f]) {
			unsigned int n = m->len[f] - b < CHUNK ? m->len[f] - b : CHUNK, i;
			ssize_t got = read(fd, buf, (size_t)n * E2E_PAGE);

			if (got != (ssize_t)n * E2E_PAGE)
				die("reading", path);
			for (i = 0; i < n; i++) {
				size_t bad;

				expect(m, f, b + i, want);
				bad = e2e_check(buf + i * E2E_WORDS, want, E2E_PAGE);
				m->bytes_verified += E2E_PAGE;
				if (bad && ++m->corruptions <= 10)
					e2e_say("E2E-CORRUPT file=%u block=%u gen=%d first_bad_byte=%zu",
						f, b + i, *gen_of(m, f, b + i) == HOLE ? -1 :
						*gen_of(m, f, b + i), bad - 1);
			}
			b += n;
		}
		close(fd);
	}
}

/* Create (or truncate) file f and write its whole model. */
static void create_file(struct model *m, unsigned int f)
{
	char path[512];
	int fd;

	path_of(m, f, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("creating", path);
	write_blocks(m, f, fd, 0, m->len[f], path);
	if (fsync(fd))
		die("fsync", path);
	close(fd);
	if (m->pin[f] < 0) {
		m->pin[f] = open(path, O_RDONLY);
		if (m->pin[f] < 0)
			die("opening", path);
	}
}

/* Change every file as the header says, keeping the model in step. */
static void mutate(struct model *m, unsigned int newgen)
{
	unsigned int f, b, half = m->nblocks / 2, third = m->nblocks / 3;
	char path[512];
	int fd;

	for (f = 0; f < m->nfiles; f++) {
		path_of(m, f, path, sizeof(path));
		switch (f % 4) {
		case 0:		/* truncate to 0, rewrite with new content */
			memset(gen_of(m, f, 0), newgen, m->nblocks);
			create_file(m, f);
			break;
		case 1:		/* truncate to half, extend again: a hole */
			if (truncate(path, (off_t)half * E2E_PAGE) ||
			    truncate(path, (off_t)m->nblocks * E2E_PAGE))
				die("truncating", path);
			for (b = half; b < m->nblocks; b++)
				*gen_of(m, f, b) = HOLE;
			break;
		case 2:		/* overwrite the middle third in place */
			fd = open(path, O_WRONLY);
			if (fd < 0)
				die("opening", path);
			memset(gen_of(m, f, third), newgen, third);
			write_blocks(m, f, fd, third, 2 * third, path);
			if (fsync(fd))
				die("fsync", path);
			close(fd);
			break;
		case 3:		/* unlink, recreate with new content */
			if (unlink(path))
				die("unlinking", path);
			close(m->pin[f]);	/* the old inode may go now */
			m->pin[f] = -1;
			memset(gen_of(m, f, 0), newgen, m->nblocks);
			create_file(m, f);
			break;
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: pagecache-verify [--dir D] [--files N] [--mb-per-file M] "
		"[--seed S] [--random-words W] [--stats FILE] [--sync] [--no-drop] "
		"[--inject-corruption]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct model m = { .dir = "/mnt/data", .seed = 1, .nfiles = 6,
			   .random_words = E2E_WORDS / 2, .drop = 1 };
	unsigned long long mb = 32;
	const char *stats = NULL;
	int sync_points = 0, inject = 0, i;
	double t0, t;
	unsigned int f;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sync"))
			sync_points = 1;
		else if (!strcmp(argv[i], "--no-drop"))
			m.drop = 0;
		else if (!strcmp(argv[i], "--inject-corruption"))
			inject = 1;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "--dir"))
			m.dir = argv[++i];
		else if (!strcmp(argv[i], "--files"))
			m.nfiles = e2e_num(argv[++i], "--files");
		else if (!strcmp(argv[i], "--mb-per-file"))
			mb = e2e_num(argv[++i], "--mb-per-file");
		else if (!strcmp(argv[i], "--seed"))
			m.seed = e2e_num(argv[++i], "--seed");
		else if (!strcmp(argv[i], "--random-words"))
			m.random_words = e2e_num(argv[++i], "--random-words");
		else if (!strcmp(argv[i], "--stats"))
			stats = argv[++i];
		else
			usage();
	}
	if (m.nfiles == 0 || m.nfiles > 999 || mb == 0 || mb > 4096 ||
	    m.random_words > E2E_WORDS)
		usage();
	m.nblocks = mb * (1 << 20) / E2E_PAGE;
	m.len = calloc(m.nfiles, sizeof(*m.len));
	m.gen = calloc((size_t)m.nfiles * m.nblocks, 1);
	m.pin = malloc(m.nfiles * sizeof(*m.pin));
	if (!m.len || !m.gen || !m.pin) {
		perror("pagecache-verify: allocating");
		return 2;
	}
	for (f = 0; f < m.nfiles; f++)
		m.pin[f] = -1;
	e2e_say("E2E-INFO prog=pagecache-verify dir=%s files=%u mb_per_file=%llu seed=%llu",
		m.dir, m.nfiles, mb, (unsigned long long)m.seed);

	t0 = t = e2e_now();
#define PHASE(name) do {						\
		e2e_say("E2E-PASS prog=pagecache-verify phase=%s seconds=%.2f corruptions=%llu", \
			name, e2e_now() - t, (unsigned long long)m.corruptions); \
		e2e_stats(stats, "pc." name);				\
		if (sync_points)					\
			e2e_sync(name);					\
		t = e2e_now();						\
	} while (0)

	for (f = 0; f < m.nfiles; f++) {
		m.len[f] = m.nblocks;
		create_file(&m, f);
	}
	if (inject) {	/* one byte on disk that the model does not know of */
		char path[512];
		int fd;

		path_of(&m, m.nfiles / 2, path, sizeof(path));
		fd = open(path, O_WRONLY);
		if (fd < 0 || pwrite(fd, "!", 1, (off_t)m.nblocks / 2 * E2E_PAGE + 7) != 1)
			die("corrupting", path);
		close(fd);
	}
	PHASE("write");
	drop_caches(&m);
	verify_all(&m);
	PHASE("read1");
	verify_all(&m);
	PHASE("read2");
	drop_caches(&m);
	mutate(&m, 1);
	PHASE("mutate");
	drop_caches(&m);
	verify_all(&m);
	PHASE("read3");
	verify_all(&m);
	PHASE("read4");

	e2e_say("E2E-RESULT prog=pagecache-verify files=%u mb_per_file=%llu bytes_verified=%llu corruptions=%llu seconds=%.2f",
		m.nfiles, mb, (unsigned long long)m.bytes_verified,
		(unsigned long long)m.corruptions, e2e_now() - t0);
	return m.corruptions ? 1 : 0;
}
