/* SPDX-License-Identifier: MIT */
/*
 * heap.c - anonymous-memory pages for the corpus, taken from this
 * process's own malloc heap after filling it with the kind of data a
 * program keeps there: hash tables of small structs full of pointers,
 * strings, counters, half-used buffers, and the free chunks and malloc
 * headers between them.  A synthetic page generator would guess at the
 * byte statistics; the real heap has them.
 *
 * Every allocation stays under glibc's mmap threshold, so it lands in
 * the brk heap that /proc/self/maps calls [heap].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Method tables: most objects of a type point at the same one. */
struct hops {
	const char *name;
	size_t size;
};

static const struct hops hops_tab[8] = {
	{ "file", 96 }, { "socket", 128 }, { "timer", 48 }, { "buffer", 64 },
	{ "session", 160 }, { "request", 112 }, { "cache", 80 }, { "dir", 72 },
};

struct hobj {
	const struct hops *ops;	/* like a vtable or type pointer */
	struct hobj *next;	/* hash chain */
	struct hobj *parent;	/* only ever copied, never followed */
	uint64_t id;
	uint32_t refcnt;
	uint16_t type;
	uint16_t flags;
	char *name;
	double weight;
	void *data;
	size_t len;
	int64_t mtime;
};

#define NBUCKETS	2048	/* 16 KiB of bucket pointers per table */
#define OBJS_PER_TABLE	1500

static const char *const words[] = {
	"session", "user", "config", "timeout", "buffer", "request", "http",
	"GET", "/api/v1/", "ok", "error", "localhost", "cache", "memory",
	"page", "swap", "guest", "virtio", "queue", "ring", "name", "value",
	"id", "status", "200", "true", "false", "null", "application/json",
	"Content-Length", "utf-8", "the", "of", "and", "to", "in", "file",
	"/var/lib/", "/usr/share/", ".conf", "enabled", "retry", "count",
};
#define NWORDS	(sizeof(words) / sizeof(*words))

struct reg {
	void **p;
	size_t n, cap;
};

struct heap_state {
	uint64_t rng;
	struct reg live;	/* may be freed at random while building */
	struct reg keep;	/* tables and indexes: freed only at the end */
	struct hobj **buckets;
	size_t in_table;
	struct hobj *last[64];	/* recent objects, for parent pointers */
	uint64_t next_id;
	size_t allocated;
	int oom;
};

static uint64_t rnd(struct heap_state *h)
{
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return h->rng * 0x2545f4914f6cdd1dULL;
}

static unsigned int rnd_below(struct heap_state *h, unsigned int n)
{
	return (unsigned int)(rnd(h) % n);
}

static void *track(struct heap_state *h, struct reg *r, void *p, size_t n)
{
	if (!p) {
		h->oom = 1;
		return NULL;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		void **np = realloc(r->p, cap * sizeof(*np));

		if (!np) {
			free(p);
			h->oom = 1;
			return NULL;
		}
		r->p = np;
		r->cap = cap;
	}
	r->p[r->n++] = p;
	h->allocated += n;
	return p;
}

static char *make_words(struct heap_state *h, unsigned int nwords)
{
	char buf[512];
	size_t len = 0;
	unsigned int i;

	for (i = 0; i < nwords; i++) {
		const char *w = words[rnd_below(h, NWORDS)];
		size_t wl = strlen(w);

		if (len + wl + 2 >= sizeof(buf))
			break;
		if (i)
			buf[len++] = rnd_below(h, 4) ? ' ' : '_';
		memcpy(buf + len, w, wl);
		len += wl;
	}
	buf[len] = '\0';
	return track(h, &h->live, strdup(buf), len + 1);
}

static void gen_object(struct heap_state *h)
{
	struct hobj *o;
	char name[96];
	unsigned int b;
	int n;

	if (!h->buckets || h->in_table >= OBJS_PER_TABLE) {
		h->buckets = track(h, &h->keep,
				   calloc(NBUCKETS, sizeof(*h->buckets)),
				   NBUCKETS * sizeof(*h->buckets));
		h->in_table = 0;
		if (!h->buckets)
			return;
	}
	o = track(h, &h->live, malloc(sizeof(*o)), sizeof(*o));
	if (!o)
		return;
	o->id = h->next_id++;
	o->refcnt = 1 + rnd_below(h, 3);
	o->type = (uint16_t)rnd_below(h, 8);
	o->ops = &hops_tab[o->type];
	o->flags = (uint16_t)(rnd(h) & 0x0013);
	o->parent = h->last[rnd_below(h, 64)];
	switch (rnd_below(h, 3)) {
	case 0:
		n = snprintf(name, sizeof(name),
			     "/usr/lib/x86_64-linux-gnu/lib%s.so.%u",
			     words[rnd_below(h, NWORDS)], rnd_below(h, 9));
		break;
	case 1:
		n = snprintf(name, sizeof(name), "session_%08" PRIx64,
			     rnd(h) & 0xffffffffu);
		break;
	default:
		n = snprintf(name, sizeof(name), "%s.%s",
			     words[rnd_below(h, NWORDS)],
			     words[rnd_below(h, NWORDS)]);
		break;
	}
	if (n < 0)
		n = 0;
	o->name = track(h, &h->live, strdup(name), (size_t)n + 1);
	/* Weights and ratios: often round numbers, sometimes not. */
	o->weight = rnd_below(h, 2) ? (double)rnd_below(h, 64) / 4.0 :
				      (double)rnd_below(h, 10000) / 100.0;
	o->len = rnd_below(h, 4) ? 0 : 4 * (1 + rnd_below(h, 16));
	o->data = o->len ? track(h, &h->live, calloc(1, o->len), o->len) :
			   NULL;
	if (o->data)
		memset(o->data, (int)o->type, o->len / 2);
	o->mtime = 1700000000 + (int64_t)(o->id * 37 + rnd_below(h, 60));
	b = (unsigned int)(o->id * 2654435761u) % NBUCKETS;
	o->next = h->buckets[b];
	h->buckets[b] = o;
	h->last[o->id % 64] = o;
	h->in_table++;
}

/* Counters and samples: small integers in wide slots, spare capacity. */
static void gen_vector(struct heap_state *h)
{
	unsigned int n = 16 + rnd_below(h, 497), cap = 16, i;

	while (cap < n)
		cap *= 2;
	if (rnd_below(h, 3)) {
		int32_t *v = track(h, &h->live, calloc(cap, sizeof(*v)),
				   cap * sizeof(*v));
		int32_t x = (int32_t)rnd_below(h, 1000);

		if (!v)
			return;
		for (i = 0; i < n; i++) {
			x += (int32_t)rnd_below(h, 8);
			v[i] = x;
		}
	} else {
		double *v = track(h, &h->live, calloc(cap, sizeof(*v)),
				  cap * sizeof(*v));
		int exact = rnd_below(h, 2);

		if (!v)
			return;
		/* Samples: some measured, some counts held as double. */
		for (i = 0; i < n; i++)
			v[i] = exact ? (double)rnd_below(h, 256) :
				       (double)rnd_below(h, 100000) / 1000.0;
	}
}

/*
 * A table of fixed-size records, calloc'd and partly in use: the kind of
 * array behind a connection table or a file-descriptor table, with its
 * unused slots and unused fields zero.
 */
struct hrec {
	uint32_t id;
	uint16_t state;
	uint16_t prio;
	uint64_t bytes;
	const void *owner;
	int64_t stamp;
	uint32_t flags;
	uint32_t errors;
};

static void gen_records(struct heap_state *h)
{
	unsigned int n = 32u << rnd_below(h, 4), i;
	struct hrec *t = track(h, &h->live, calloc(n, sizeof(*t)),
			       n * sizeof(*t));

	if (!t)
		return;
	for (i = 0; i < n; i++) {
		if (rnd_below(h, 10) < 4)
			continue;
		t[i].id = (uint32_t)i + 1;
		t[i].state = (uint16_t)rnd_below(h, 4);
		t[i].prio = (uint16_t)(rnd_below(h, 4) ? 0 : 1 +
							 rnd_below(h, 7));
		t[i].bytes = rnd_below(h, 3) ? 0 : rnd_below(h, 1u << 20);
		t[i].owner = h->last[rnd_below(h, 4)];
		t[i].stamp = 1700000000 + (int64_t)(i * 3);
		t[i].flags = rnd_below(h, 2) ? 0x1 : 0x11;
	}
}

/* An I/O or line buffer, filled part way: the tail is a zero run. */
static void gen_buffer(struct heap_state *h)
{
	size_t cap = 1024u << rnd_below(h, 5), used, len = 0;
	char *b = track(h, &h->live, calloc(1, cap), cap);

	if (!b)
		return;
	used = cap * (10 + rnd_below(h, 50)) / 100;
	while (len + 64 < used) {
		int n = snprintf(b + len, cap - len, "%s=%u %s\n",
				 words[rnd_below(h, NWORDS)],
				 rnd_below(h, 65536),
				 words[rnd_below(h, NWORDS)]);

		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* A sorted index over recent objects: a page of nothing but pointers. */
static void gen_index(struct heap_state *h)
{
	unsigned int n = 64 + rnd_below(h, 961), i;
	struct hobj **v = track(h, &h->keep, malloc(n * sizeof(*v)),
				n * sizeof(*v));

	if (!v)
		return;
	for (i = 0; i < n; i++)
		v[i] = h->last[rnd_below(h, 64)];
}

/* Free a random live chunk: real heaps are full of holes. */
static void gen_free(struct heap_state *h)
{
	size_t i;

	if (h->live.n == 0)
		return;
	i = rnd(h) % h->live.n;
	free(h->live.p[i]);
	h->live.p[i] = h->live.p[--h->live.n];
}

/*
 * Mostly small objects and strings, as in most heaps; the larger arrays
 * and buffers are fewer but, being larger, still hold about half the
 * bytes.
 */
static void heap_step(struct heap_state *h)
{
	unsigned int r = rnd_below(h, 200);

	if (r < 110)
		gen_object(h);
	else if (r < 160)
		make_words(h, 2 + rnd_below(h, 30));
	else if (r < 170)
		gen_vector(h);
	else if (r < 173)
		gen_buffer(h);
	else if (r < 176)
		gen_records(h);
	else if (r < 178)
		gen_index(h);
	else
		gen_free(h);
}

static int heap_range(uintptr_t *start, uintptr_t *end)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int found = 0;

	if (!f) {
		perror("bench: /proc/self/maps");
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (!strstr(line, "[heap]"))
			continue;
		if (sscanf(line, "%lx-%lx", &a, &b) == 2) {
			*start = a;
			*end = b;
			found = 1;
		}
		break;
	}
	fclose(f);
	return found ? 0 : -1;
}

/* Pages of [start, end) that are not same-filled; copy some if @dst. */
static size_t heap_scan(uintptr_t start, uintptr_t end, uint8_t *dst,
			size_t want, size_t have)
{
	uintptr_t a;
	size_t n = 0, taken = 0;

	for (a = start; a + BENCH_PAGE <= end; a += BENCH_PAGE) {
		const uint8_t *p = (const uint8_t *)a;

		if (page_is_same_filled(p))
			continue;
		/* Evenly spread: candidate n is taken if it starts a slot. */
		if (dst && taken < want && n * want / have == taken) {
			memcpy(dst + taken * (size_t)BENCH_PAGE, p, BENCH_PAGE);
			taken++;
		}
		n++;
	}
	return dst ? taken : n;
}

size_t heap_fill_pages(uint8_t *dst, size_t want)
{
	struct heap_state h;
	uintptr_t start = 0, end = 0;
	size_t have = 0, got = 0, i, step;

	if (want == 0)
		return 0;
	memset(&h, 0, sizeof(h));
	h.rng = 0x243f6a8885a308d3ULL;
	for (;;) {
		/*
		 * A margin of 1/8, so that the sample skips some pages;
		 * grow by half of what is missing, then look again.
		 */
		size_t target = want + want / 8;
		size_t goal = h.allocated + (target - have) * BENCH_PAGE / 2 +
			      (256u << 10);

		while (h.allocated < goal && !h.oom)
			heap_step(&h);
		if (h.oom) {
			warnx_("heap: out of memory after %zu bytes",
			       h.allocated);
			goto out;
		}
		if (heap_range(&start, &end) != 0) {
			warnx_("heap: no [heap] mapping in /proc/self/maps");
			goto out;
		}
		have = heap_scan(start, end, NULL, 0, 0);
		if (have >= target)
			break;
	}
	got = heap_scan(start, end, dst, want, have);
	progress("corpus: heap: %zu of %zu heap pages sampled (%zu MiB "
		 "allocated)", got, have, h.allocated >> 20);
out:
	for (step = 0; step < 2; step++) {
		struct reg *r = step ? &h.keep : &h.live;

		for (i = 0; i < r->n; i++)
			free(r->p[i]);
		free(r->p);
	}
	return got;
}
