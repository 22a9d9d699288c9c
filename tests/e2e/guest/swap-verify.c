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
 *               [--stats FILE] [--sync] [--inject-corruption]
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
	size_t npages;
	unsigned int random_words;
	unsigned char *mem;	/* the region that must swap */
	unsigned char *gen;	/* per page: the generation it holds */
	uint32_t *perm;		/* visiting order of the current pass */
	uint64_t bytes_verified;
	uint64_t corruptions;	/* pages that did not verify */
};

/* A small PRNG for the orders and for choosing pages to rewrite. */
static uint64_t rng_state;
static uint64_t rng(void)
{
	rng_state = e2e_mix(rng_state);
	return rng_state;
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
			size_t j = rng() % (i + 1);
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
		e2e_say("E2E-CORRUPT page=%zu gen=%u first_bad_byte=%zu word0=%016llx",
			page, r->gen[page], off,
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
		if (rewrite && rng() % 4 == 0) {
			r->gen[p] = newgen;
			e2e_fill((uint64_t *)page, r->seed, p, newgen, r->random_words);
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: swap-verify [--mb N] [--seed S] [--passes P] "
		"[--random-words W] [--stats FILE] [--sync] [--inject-corruption]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long long mb = 224, passes = 5;
	const char *stats = NULL;
	int sync = 0, inject = 0, i;
	struct run r = { .seed = 1, .random_words = E2E_WORDS / 2 };
	double t0, t;
	char label[64];
	size_t p;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sync"))
			sync = 1;
		else if (!strcmp(argv[i], "--inject-corruption"))
			inject = 1;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "--mb"))
			mb = e2e_num(argv[++i], "--mb");
		else if (!strcmp(argv[i], "--seed"))
			r.seed = e2e_num(argv[++i], "--seed");
		else if (!strcmp(argv[i], "--passes"))
			passes = e2e_num(argv[++i], "--passes");
		else if (!strcmp(argv[i], "--random-words"))
			r.random_words = e2e_num(argv[++i], "--random-words");
		else if (!strcmp(argv[i], "--stats"))
			stats = argv[++i];
		else
			usage();
	}
	if (mb == 0 || passes < 2 || passes > 250 || r.random_words > E2E_WORDS)
		usage();
	rng_state = r.seed;
	r.npages = mb * (1 << 20) / E2E_PAGE;
	r.mem = mmap(NULL, r.npages * E2E_PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r.gen = calloc(r.npages, 1);
	r.perm = calloc(r.npages, sizeof(*r.perm));
	if (r.mem == MAP_FAILED || !r.gen || !r.perm) {
		perror("swap-verify: allocating");
		return 2;
	}
	e2e_say("E2E-INFO prog=swap-verify mb=%llu pages=%zu seed=%llu passes=%llu",
		mb, r.npages, (unsigned long long)r.seed, passes);

	/* Pass 0: the first fill, generation 0, in order. */
	t0 = e2e_now();
	for (p = 0; p < r.npages; p++)
		e2e_fill((uint64_t *)(r.mem + p * E2E_PAGE), r.seed, p, 0,
			 r.random_words);
	t = e2e_now();
	e2e_say("E2E-PASS prog=swap-verify pass=0 order=fill seconds=%.2f", t - t0);
	if (inject)
		r.mem[(rng() % r.npages) * E2E_PAGE + rng() % E2E_PAGE] ^= 0x20;
	e2e_stats(stats, "swap.pass0");
	if (sync)
		e2e_sync("pass0");

	/* Passes 1..P-1 in rotating orders; the last one only verifies. */
	for (i = 1; i < (int)passes; i++) {
		enum order o = (enum order)((i - 1) % NORDERS + 1) % NORDERS;
		int last = i == (int)passes - 1;
		double ts = e2e_now();

		pass(&r, o, !last, i);
		t = e2e_now();
		e2e_say("E2E-PASS prog=swap-verify pass=%d order=%s rewrite=%d seconds=%.2f corruptions=%llu",
			i, order_name[o], !last, t - ts,
			(unsigned long long)r.corruptions);
		snprintf(label, sizeof(label), "swap.pass%d", i);
		e2e_stats(stats, label);
		if (sync && !last) {
			snprintf(label, sizeof(label), "pass%d", i);
			e2e_sync(label);
		}
	}
	e2e_say("E2E-RESULT prog=swap-verify mb=%llu pages=%zu bytes_verified=%llu corruptions=%llu seconds=%.2f",
		mb, r.npages, (unsigned long long)r.bytes_verified,
		(unsigned long long)r.corruptions, e2e_now() - t0);
	return r.corruptions ? 1 : 0;
}
