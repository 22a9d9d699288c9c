// SPDX-License-Identifier: GPL-2.0
/*
 * swap-verify: make the guest swap, and check every byte that comes back.
 *
 * It maps an anonymous region well beyond guest RAM, fills every page with
 * a pattern derived from (seed, page number, generation), and then makes
 * passes over it in mixed orders: reverse, a random permutation, strided,
 * sequential.  Each pass verifies every page against the generation it
 * should hold, and all but the last rewrite about a quarter of the pages
 * with the next generation, so stale copies (a swap slot or a tmem page
 * that outlived its overwrite) are caught as well as lost or mixed-up
 * pages.
 *
 *   swap-verify [--mb N] [--seed S] [--passes P] [--random-words W]
 *               [--threads T] [--stats FILE] [--sync] [--inject-corruption]
 *
 * --threads splits the region between T threads (seeds S, S+1, ...), which
 * fault on their parts at once and meet after every pass.
 *
 * --sync stops at E2E-SYNC pass<k> after every pass, so the host harness
 * can act (change the budget, savevm, unbind the driver) while the pages
 * are out.  --stats prints the driver's stats file after every pass.
 * --inject-corruption flips one byte after the fill: a negative control
 * that shows the checks can fail (the harness runs it on the host).
 *
 * Prints "E2E-RESULT prog=swap-verify bytes_verified=N corruptions=M ..."
 * and exits 1 if any page was wrong, 2 on usage or setup errors.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "e2e-common.h"

enum order { SEQUENTIAL, REVERSE, RANDOM, STRIDED, NORDERS };
static const char *const order_name[] = { "sequential", "reverse", "random", "strided" };

struct run {
	uint64_t seed;
	uint64_t rng;		/* a small PRNG for orders and rewrites */
	size_t npages;
	unsigned int random_words;
	unsigned char *mem;	/* the region that must swap */
	unsigned char *gen;	/* per page: the generation it holds */
	uint32_t *perm;		/* visiting order of the current pass */
	uint64_t bytes_verified;
	uint64_t corruptions;	/* pages that did not verify */
};

static uint64_t rng(struct run *r)
{
	r->rng = e2e_mix(r->rng);
	return r->rng;
}

static size_t gcd(size_t a, size_t b)
{
	while (b) {
		size_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Fill r->perm with the visiting order of one pass. */
static void make_order(struct run *r, enum order o)
{
	size_t n = r->npages, i, stride;

	switch (o) {
	case SEQUENTIAL:
		for (i = 0; i < n; i++)
			r->perm[i] = i;
		break;
	case REVERSE:
		for (i = 0; i < n; i++)
			r->perm[i] = n - 1 - i;
		break;
	case RANDOM:	/* Fisher-Yates */
		for (i = 0; i < n; i++)
			r->perm[i] = i;
		for (i = n - 1; i > 0; i--) {
			size_t j = rng(r) % (i + 1);
			uint32_t t = r->perm[i];

			r->perm[i] = r->perm[j];
			r->perm[j] = t;
		}
		break;
	case STRIDED:	/* a stride coprime with n visits every page once */
		stride = 97;
		while (gcd(stride, n) != 1)
			stride++;
		for (i = 0; i < n; i++)
			r->perm[i] = (i * stride) % n;
		break;
	default:
		abort();
	}
}

static void report_bad(struct run *r, size_t page, size_t off)
{
	const uint64_t *w = (const uint64_t *)(r->mem + page * E2E_PAGE);

	if (r->corruptions <= 10)
		e2e_say("E2E-CORRUPT seed=%llu page=%zu gen=%u first_bad_byte=%zu word0=%016llx",
			(unsigned long long)r->seed, page, r->gen[page], off,
			(unsigned long long)w[0]);
}

/*
 * One pass: visit every page in the given order, verify it, and (if
 * rewrite) give about a quarter of the pages the generation `newgen`.
 */
static void pass(struct run *r, enum order o, int rewrite, unsigned int newgen)
{
	uint64_t want[E2E_WORDS];
	size_t i;

	make_order(r, o);
	for (i = 0; i < r->npages; i++) {
		size_t p = r->perm[i];
		unsigned char *page = r->mem + p * E2E_PAGE;
		size_t bad;

		e2e_fill(want, r->seed, p, r->gen[p], r->random_words);
		bad = e2e_check(page, want, E2E_PAGE);
		r->bytes_verified += E2E_PAGE;
		if (bad) {
			r->corruptions++;
			report_bad(r, p, bad - 1);
		}
		if (rewrite && rng(r) % 4 == 0) {
			r->gen[p] = newgen;
			e2e_fill((uint64_t *)page, r->seed, p, newgen, r->random_words);
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: swap-verify [--mb N] [--seed S] [--passes P] "
		"[--random-words W] [--threads T] [--stats FILE] [--sync] "
		"[--inject-corruption]\n");
	exit(2);
}

/* What every thread shares: the passes, and where they meet. */
static struct {
	unsigned long long passes;
	const char *stats;
	int sync;
	pthread_barrier_t done, go;	/* a pass ended; the next may start */
} shared;

/* A thread's part: the fill, then the passes, meeting the others after each. */
static void *worker(void *arg)
{
	struct run *r = arg;
	unsigned long long i;
	size_t p;

	for (p = 0; p < r->npages; p++)
		e2e_fill((uint64_t *)(r->mem + p * E2E_PAGE), r->seed, p, 0,
			 r->random_words);
	pthread_barrier_wait(&shared.done);
	pthread_barrier_wait(&shared.go);
	for (i = 1; i < shared.passes; i++) {
		enum order o = (enum order)((i - 1) % NORDERS + 1) % NORDERS;

		pass(r, o, i != shared.passes - 1, i);
		pthread_barrier_wait(&shared.done);
		pthread_barrier_wait(&shared.go);
	}
	return NULL;
}

static uint64_t total(const struct run *runs, unsigned int n, int bytes)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < n; i++)
		sum += bytes ? runs[i].bytes_verified : runs[i].corruptions;
	return sum;
}

int main(int argc, char **argv)
{
	unsigned long long mb = 224, threads = 1, seed = 1, words = E2E_WORDS / 2;
	int inject = 0, i;
	struct run *runs;
	pthread_t *tids;
	double t0, t;
	char label[64];
	unsigned int k;
	size_t npages;

	shared.passes = 5;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sync"))
			shared.sync = 1;
		else if (!strcmp(argv[i], "--inject-corruption"))
			inject = 1;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "--mb"))
			mb = e2e_num(argv[++i], "--mb");
		else if (!strcmp(argv[i], "--seed"))
			seed = e2e_num(argv[++i], "--seed");
		else if (!strcmp(argv[i], "--passes"))
			shared.passes = e2e_num(argv[++i], "--passes");
		else if (!strcmp(argv[i], "--random-words"))
			words = e2e_num(argv[++i], "--random-words");
		else if (!strcmp(argv[i], "--threads"))
			threads = e2e_num(argv[++i], "--threads");
		else if (!strcmp(argv[i], "--stats"))
			shared.stats = argv[++i];
		else
			usage();
	}
	npages = mb * (1 << 20) / E2E_PAGE;
	if (mb == 0 || shared.passes < 2 || shared.passes > 250 ||
	    words > E2E_WORDS || threads == 0 || threads > 256 ||
	    npages / threads == 0)
		usage();
	runs = calloc(threads, sizeof(*runs));
	tids = calloc(threads, sizeof(*tids));
	if (!runs || !tids)
		return 2;
	for (k = 0; k < threads; k++) {
		struct run *r = &runs[k];

		r->seed = seed + k;
		r->rng = seed + k;
		r->random_words = words;
		r->npages = npages / threads;
		r->mem = mmap(NULL, r->npages * E2E_PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r->gen = calloc(r->npages, 1);
		r->perm = calloc(r->npages, sizeof(*r->perm));
		if (r->mem == MAP_FAILED || !r->gen || !r->perm) {
			perror("swap-verify: allocating");
			return 2;
		}
	}
	npages = runs[0].npages * threads;
	e2e_say("E2E-INFO prog=swap-verify mb=%llu pages=%zu seed=%llu passes=%llu threads=%llu",
		mb, npages, seed, shared.passes, threads);
	if (pthread_barrier_init(&shared.done, NULL, threads + 1) ||
	    pthread_barrier_init(&shared.go, NULL, threads + 1))
		return 2;
	t0 = e2e_now();
	for (k = 0; k < threads; k++) {
		if (pthread_create(&tids[k], NULL, worker, &runs[k])) {
			perror("swap-verify: pthread_create");
			return 2;
		}
	}

	/* Pass 0: the first fill, generation 0, in order. */
	pthread_barrier_wait(&shared.done);
	t = e2e_now();
	e2e_say("E2E-PASS prog=swap-verify pass=0 order=fill seconds=%.2f", t - t0);
	if (inject) {
		struct run *r = &runs[0];

		r->mem[(rng(r) % r->npages) * E2E_PAGE + rng(r) % E2E_PAGE] ^= 0x20;
	}
	e2e_stats(shared.stats, "swap.pass0");
	if (shared.sync)
		e2e_sync("pass0");
	pthread_barrier_wait(&shared.go);

	/* Passes 1..P-1 in rotating orders; the last one only verifies. */
	for (i = 1; i < (int)shared.passes; i++) {
		enum order o = (enum order)((i - 1) % NORDERS + 1) % NORDERS;
		int last = i == (int)shared.passes - 1;
		double ts = e2e_now();

		pthread_barrier_wait(&shared.done);
		t = e2e_now();
		e2e_say("E2E-PASS prog=swap-verify pass=%d order=%s rewrite=%d seconds=%.2f corruptions=%llu",
			i, order_name[o], !last, t - ts,
			(unsigned long long)total(runs, threads, 0));
		snprintf(label, sizeof(label), "swap.pass%d", i);
		e2e_stats(shared.stats, label);
		if (shared.sync && !last) {
			snprintf(label, sizeof(label), "pass%d", i);
			e2e_sync(label);
		}
		pthread_barrier_wait(&shared.go);
	}
	for (k = 0; k < threads; k++)
		pthread_join(tids[k], NULL);
	e2e_say("E2E-RESULT prog=swap-verify mb=%llu pages=%zu threads=%llu bytes_verified=%llu corruptions=%llu seconds=%.2f",
		mb, npages, threads, (unsigned long long)total(runs, threads, 1),
		(unsigned long long)total(runs, threads, 0), e2e_now() - t0);
	return total(runs, threads, 0) ? 1 : 0;
}
