// SPDX-License-Identifier: GPL-2.0
/*
 * bench-files: the page-cache workloads of the guest benchmarks, with
 * every byte checked.
 *
 *   bench-files create --dir D --name N --files F --mb M [--seed S]
 *                      [--random-words W]
 *   bench-files read   --dir D --name N --files F --mb M [--seed S]
 *                      [--random-words W] [--passes P]
 *
 * "create" writes files D/N-000.dat ... of M MiB each.  The benchmark runs
 * it on the host, once, to fill the ext4 image the guests mount read-only,
 * so no guest spends TCG time writing its input and no guest starts with
 * the set in its page cache or in cleancache.
 *
 * "read" reads the set P times, file after file, front to back with
 * read(2), and compares every 4 KiB block with its pattern
 * (tests/e2e/guest/e2e-common.h: a pure function of seed, block and
 * generation, so a block from another file or offset never verifies).
 * With P = 1 and a set larger than guest RAM it is the use-once streaming
 * read; with a set slightly larger than guest RAM and P > 1 it is the
 * re-read working set.  The runner's negative control flips a byte of a
 * file on the host and expects "read" to fail.
 *
 * Prints "E2E-PASS prog=bench-files pass=K seconds=T" per pass and
 * "E2E-RESULT prog=bench-files bytes_verified=N corruptions=M seconds=T";
 * exits 1 if any block was wrong, 2 on usage or I/O errors.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e-common.h"

#define CHUNK	16		/* blocks per read() or write(): 64 KiB */

struct set {
	const char *dir, *name;
	uint64_t seed;
	unsigned int nfiles, nblocks, random_words;
	uint64_t bytes_verified;
	uint64_t corruptions;
};

static uint64_t buf[CHUNK * E2E_WORDS];

static void path_of(const struct set *s, unsigned int f, char *p, size_t n)
{
	snprintf(p, n, "%s/%s-%03u.dat", s->dir, s->name, f);
}

/* Block b of file f; the file number goes in the high bits, as in pagecache-verify. */
static void expect(const struct set *s, unsigned int f, unsigned int b, uint64_t *w)
{
	e2e_fill(w, s->seed, (uint64_t)f << 32 | b, 0, s->random_words);
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "bench-files: %s %s: %s\n", what, path, strerror(errno));
	e2e_say("E2E-RESULT prog=bench-files error=io");
	exit(2);
}

static void create_all(struct set *s)
{
	char path[512];
	unsigned int f, b, i, n;
	int fd;

	for (f = 0; f < s->nfiles; f++) {
		path_of(s, f, path, sizeof(path));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("creating", path);
		for (b = 0; b < s->nblocks; b += n) {
			n = s->nblocks - b < CHUNK ? s->nblocks - b : CHUNK;
			for (i = 0; i < n; i++)
				expect(s, f, b + i, buf + i * E2E_WORDS);
			if (write(fd, buf, (size_t)n * E2E_PAGE) != (ssize_t)n * E2E_PAGE)
				die("writing", path);
		}
		if (close(fd))
			die("closing", path);
	}
}

/* One pass: every file, front to back, every block compared. */
static void read_all(struct set *s)
{
	uint64_t want[E2E_WORDS];
	char path[512];
	unsigned int f, b, i, n;
	int fd;

	for (f = 0; f < s->nfiles; f++) {
		path_of(s, f, path, sizeof(path));
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("opening", path);
		for (b = 0; b < s->nblocks; b += n) {
			n = s->nblocks - b < CHUNK ? s->nblocks - b : CHUNK;
			if (read(fd, buf, (size_t)n * E2E_PAGE) != (ssize_t)n * E2E_PAGE)
				die("reading", path);
			for (i = 0; i < n; i++) {
				unsigned int blk = b + i;
				size_t bad;

				expect(s, f, blk, want);
				bad = e2e_check(buf + i * E2E_WORDS, want, E2E_PAGE);
				s->bytes_verified += E2E_PAGE;
				if (bad && ++s->corruptions <= 10)
					e2e_say("E2E-CORRUPT file=%s block=%u first_bad_byte=%zu",
						path, blk, bad - 1);
			}
		}
		close(fd);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-files create|read --dir D --name N --files F --mb M "
		"[--seed S] [--random-words W] [--passes P]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct set s = { .seed = 1, .random_words = E2E_WORDS / 4 };
	unsigned long long mb = 0, passes = 1, p;
	int create, i;
	double t0, t;

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "create"))
		create = 1;
	else if (!strcmp(argv[1], "read"))
		create = 0;
	else
		usage();
	for (i = 2; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "--dir"))
			s.dir = argv[++i];
		else if (!strcmp(argv[i], "--name"))
			s.name = argv[++i];
		else if (!strcmp(argv[i], "--files"))
			s.nfiles = e2e_num(argv[++i], "--files");
		else if (!strcmp(argv[i], "--mb"))
			mb = e2e_num(argv[++i], "--mb");
		else if (!strcmp(argv[i], "--seed"))
			s.seed = e2e_num(argv[++i], "--seed");
		else if (!strcmp(argv[i], "--random-words"))
			s.random_words = e2e_num(argv[++i], "--random-words");
		else if (!strcmp(argv[i], "--passes"))
			passes = e2e_num(argv[++i], "--passes");
		else
			usage();
	}
	if (!s.dir || !s.name || s.nfiles == 0 || s.nfiles > 999 || mb == 0 ||
	    mb > 4096 || passes == 0 || passes > 100 || s.random_words > E2E_WORDS)
		usage();
	s.nblocks = mb * (1 << 20) / E2E_PAGE;
	if (create) {
		create_all(&s);
		return 0;
	}

	t0 = e2e_now();
	for (p = 1; p <= passes; p++) {
		t = e2e_now();
		read_all(&s);
		e2e_say("E2E-PASS prog=bench-files pass=%llu seconds=%.2f corruptions=%llu",
			p, e2e_now() - t, (unsigned long long)s.corruptions);
	}
	e2e_say("E2E-RESULT prog=bench-files name=%s files=%u mb=%llu passes=%llu bytes_verified=%llu corruptions=%llu seconds=%.2f",
		s.name, s.nfiles, mb, passes, (unsigned long long)s.bytes_verified,
		(unsigned long long)s.corruptions, e2e_now() - t0);
	return s.corruptions ? 1 : 0;
}
