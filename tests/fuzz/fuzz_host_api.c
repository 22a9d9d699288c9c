/* SPDX-License-Identifier: MIT */
/*
 * fuzz_host_api: libFuzzer harness for the host library's public API.
 *
 * The input is a program: byte 0 picks one of two stores (raw pages kept
 * or refused), then each op is an op byte and its argument bytes.  Both
 * stores are made once, with a small budget and a small spill file, so
 * budget pressure, spilling and a full spill happen within a few ops.
 * Each input makes its own pools and destroys them at the end, leaving
 * the store empty for the next.
 *
 * A small model (per pool, per key: the page last accepted) checks every
 * result, each page of a batch get (tmem_get_batch, exclusive or not,
 * keys maybe repeated) included; any mismatch or return code the header does not allow for that
 * call aborts.  Calls with bad arguments (NULLs, wrong lengths, bad or
 * stale pool ids) must fail as documented.  Fault injection (fault.h)
 * may be armed by an op; the model then also allows the errors that
 * fault may cause, and only while it has fired.
 *
 * Reproduce a crash: build/fuzz/fuzz_host_api ARTIFACT
 */
#include <stdio.h>
#include <stdlib.h>

#include "fault.h"
#include "tmem.h"
#include "../host-lib/helpers.h"

#define FZ_POOLS	4
#define FZ_OBJS		4
#define FZ_IDX		8
#define FZ_KEYS		(FZ_OBJS * FZ_IDX)
#define FZ_STALE	16
#define FZ_BUDGET	(256u << 10)
#define FZ_SPILL_MAX	(1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "fuzz_host_api: op %u: %s: ",	\
				fz.nop, #cond);				\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
			abort();					\
		}							\
	} while (0)

struct fz_pool {
	bool live;
	int id;
	enum tmem_pool_kind kind;
	uint32_t len;
	uint64_t tag[FZ_KEYS];	/* 0: the store must not have it */
};

static struct {
	struct tmem_store *stores[2];
	struct tmem_store *s;
	bool reject_raw;
	struct fz_pool pools[FZ_POOLS];
	int stale[FZ_STALE];
	unsigned int nstale;
	const uint8_t *in;
	size_t left;
	unsigned int nop;
	unsigned char *buf;	/* 2 x 64 KiB: room for wrong lengths too */
	unsigned char *bbuf[8];	/* a batch get's pages */
} fz;

static uint8_t u8(void)
{
	if (!fz.left)
		return 0;
	fz.left--;
	return *fz.in++;
}

static uint16_t u16(void)
{
	return (uint16_t)(u8() | u8() << 8);
}

static struct tmem_key fz_key(uint32_t k)
{
	uint32_t obj = k / FZ_IDX;

	return t_key3(obj, obj << 20, obj * 3, k % FZ_IDX);
}

static struct fz_pool *fz_pool(uint8_t b)
{
	return &fz.pools[b % FZ_POOLS];
}

static bool fz_persistent(const struct fz_pool *p)
{
	return p->kind == TMEM_PERSISTENT;
}

static uint32_t fz_count(const struct fz_pool *p)
{
	uint32_t n = 0, k;

	for (k = 0; k < FZ_KEYS; k++)
		n += p->tag[k] != 0;
	return n;
}

/*
 * An id that names no live pool: a stale one of this input, or made up.
 * (The store holds only this input's pools, so only those can clash.)
 */
static int fz_bad_id(uint8_t b)
{
	static const int bogus[] = { -1, INT32_MIN, INT32_MAX, 1 << 18,
				     (1 << 18) - 1, 12345 };
	int id, i;

	if (fz.nstale && (b & 1))
		id = fz.stale[(b >> 1) % (fz.nstale < FZ_STALE ? fz.nstale :
					  FZ_STALE)];
	else
		id = bogus[(b >> 1) % 6];
	for (i = 0; i < FZ_POOLS; i++)
		if (fz.pools[i].live && fz.pools[i].id == id)
			return -1;
	return id;
}

/* ------------------------------------------------------------------ */

/* Allocation failures injected so far: the only excuse for -ENOMEM. */
static uint64_t fz_nomem_hits(void)
{
	return tm_fault_hits(TM_FAULT_ALLOC) + tm_fault_hits(TM_FAULT_BUCKETS);
}

static void op_pool_create(void)
{
	static const uint32_t sizes[] = { 4096, 65536, 4096, 0, 8192, 65535 };
	static const int kinds[] = { TMEM_PERSISTENT, TMEM_EPHEMERAL,
				     TMEM_PERSISTENT, 0, 3, -1 };
	uint8_t a = u8();
	uint32_t size = sizes[a % 6];
	int kind = kinds[(a >> 3) % 6];
	bool valid = (size == 4096 || size == 65536) &&
		     (kind == TMEM_PERSISTENT || kind == TMEM_EPHEMERAL);
	struct fz_pool *p = NULL;
	uint64_t nomem;
	int i, id;

	for (i = 0; i < FZ_POOLS && !p; i++)
		if (!fz.pools[i].live)
			p = &fz.pools[i];
	if (valid && !p)
		return;		/* keep the model small */
	nomem = fz_nomem_hits();
	id = tmem_pool_create(fz.s, (enum tmem_pool_kind)kind, size);
	if (!valid) {
		FZ_CHECK(id == -EINVAL, "got %d", id);
		return;
	}
	if (id == -ENOMEM) {
		FZ_CHECK(fz_nomem_hits() != nomem,
			 "pool_create -ENOMEM with no allocation failure");
		return;
	}
	FZ_CHECK(id >= 0, "pool_create: %d", id);
	for (i = 0; i < FZ_POOLS; i++)
		FZ_CHECK(!fz.pools[i].live || fz.pools[i].id != id,
			 "id %d handed out twice", id);
	for (i = 0; i < (int)fz.nstale && i < FZ_STALE; i++)
		FZ_CHECK(fz.stale[i] != id, "stale id %d handed out again", id);
	memset(p, 0, sizeof(*p));
	p->live = true;
	p->id = id;
	p->kind = (enum tmem_pool_kind)kind;
	p->len = size;
}

static void check_count(const struct fz_pool *p, int64_t got, uint32_t n)
{
	FZ_CHECK(got >= 0 && got <= n && (!fz_persistent(p) || got == n),
		 "pool %d dropped %lld pages, model has %u", p->id,
		 (long long)got, n);
}

static void pool_destroy(struct fz_pool *p)
{
	check_count(p, tmem_pool_destroy(fz.s, p->id), fz_count(p));
	fz.stale[fz.nstale++ % FZ_STALE] = p->id;
	p->live = false;
}

static void op_pool_destroy(void)
{
	uint8_t a = u8();
	struct fz_pool *p = fz_pool(a);
	int64_t rc;

	if (p->live) {
		pool_destroy(p);
		return;
	}
	rc = tmem_pool_destroy(fz.s, fz_bad_id(a >> 2));
	FZ_CHECK(rc == -EBADF, "got %lld", (long long)rc);
}

static void op_put(void)
{
	uint8_t a = u8(), b = u8();
	struct fz_pool *p = fz_pool(a);
	uint32_t k = (a >> 2) % FZ_KEYS;
	enum t_kind kind = (enum t_kind)(b & 3);
	uint64_t tag = t_tag(kind, (uint64_t)u16() + 1);
	struct tmem_key key = fz_key(k);
	uint64_t nomem = fz_nomem_hits();
	bool must_reject_raw;
	int rc;

	if (!p->live)
		return;
	t_page_fill(fz.buf, p->len, tag);
	rc = tmem_put(fz.s, p->id, &key, fz.buf, p->len);
	must_reject_raw = fz.reject_raw && kind == T_RAND;
	if (rc == -ENOMEM)
		FZ_CHECK(fz_nomem_hits() != nomem,
			 "-ENOMEM with no allocation failure");
	else if (must_reject_raw)
		FZ_CHECK(rc == -E2BIG || (!fz_persistent(p) && rc == -ENOSPC),
			 "random page under RAW_REJECT: %d", rc);
	else
		FZ_CHECK(rc == 0 || rc == -ENOSPC, "put: %d", rc);
	p->tag[k] = rc ? 0 : tag;
}

static void op_get(bool excl)
{
	uint8_t a = u8();
	struct fz_pool *p = fz_pool(a);
	uint32_t k = (a >> 2) % FZ_KEYS;
	struct tmem_key key = fz_key(k);
	uint64_t eio = tm_fault_hits(TM_FAULT_SPILL_READ);
	int rc;

	if (!p->live)
		return;
	memset(fz.buf + p->len, T_CANARY_BYTE, T_CANARY_LEN);
	rc = excl ? tmem_get_exclusive(fz.s, p->id, &key, fz.buf, p->len) :
		    tmem_get(fz.s, p->id, &key, fz.buf, p->len);
	FZ_CHECK(t_buf_canary_ok(fz.buf, p->len), "get overran the buffer");
	if (rc == 0) {
		FZ_CHECK(p->tag[k], "hit on key %u the model lacks", k);
		FZ_CHECK(t_page_check(fz.buf, p->len, p->tag[k]) < 0,
			 "key %u: wrong bytes", k);
		if (excl)
			p->tag[k] = 0;
	} else if (rc == -EIO) {
		FZ_CHECK(tm_fault_hits(TM_FAULT_SPILL_READ) != eio,
			 "-EIO with no read failure");
		FZ_CHECK(p->tag[k], "-EIO for a key that should be empty");
	} else {
		FZ_CHECK(rc == -ENOENT, "get: %d", rc);
		FZ_CHECK(!fz_persistent(p) || !p->tag[k],
			 "persistent key %u lost", k);
		p->tag[k] = 0;
	}
}

/*
 * A batch get of up to FZ_BATCH keys of one pool, maybe some given
 * twice, maybe exclusive: each result is checked as op_get checks one,
 * and an exclusive batch finds a key at most once.
 */
#define FZ_BATCH	8

static void op_get_batch(void)
{
	uint8_t a = u8(), b = u8();
	struct fz_pool *p = fz_pool(a);
	bool excl = b & 0x80;
	unsigned int n = 1 + b % FZ_BATCH, i, found = 0;
	uint64_t eio = tm_fault_hits(TM_FAULT_SPILL_READ);
	struct tmem_key keys[FZ_BATCH];
	void *bufs[FZ_BATCH];
	uint32_t k[FZ_BATCH], taken[FZ_KEYS] = { 0 };
	int res[FZ_BATCH], rc;

	if (!p->live)
		return;
	for (i = 0; i < n; i++) {
		k[i] = u8() % FZ_KEYS;
		keys[i] = fz_key(k[i]);
		bufs[i] = fz.bbuf[i];
		memset(fz.bbuf[i] + p->len, T_CANARY_BYTE, T_CANARY_LEN);
	}
	rc = tmem_get_batch(fz.s, p->id, keys, bufs, res, n, p->len,
			    excl ? TMEM_GET_EXCLUSIVE : 0);
	FZ_CHECK(rc >= 0 && (unsigned int)rc <= n, "get_batch: %d", rc);
	for (i = 0; i < n; i++) {
		FZ_CHECK(t_buf_canary_ok(fz.bbuf[i], p->len),
			 "get_batch overran buffer %u", i);
		if (res[i] == 0) {
			FZ_CHECK(p->tag[k[i]], "batch hit on key %u the model "
				 "lacks", k[i]);
			FZ_CHECK(t_page_check(fz.bbuf[i], p->len,
					      p->tag[k[i]]) < 0,
				 "batch: key %u: wrong bytes", k[i]);
			found++;
			taken[k[i]]++;
		} else if (res[i] == -EIO) {
			FZ_CHECK(tm_fault_hits(TM_FAULT_SPILL_READ) != eio,
				 "batch -EIO with no read failure");
			FZ_CHECK(p->tag[k[i]], "batch -EIO for an empty key");
		} else {
			FZ_CHECK(res[i] == -ENOENT, "batch res %d", res[i]);
		}
	}
	FZ_CHECK((unsigned int)rc == found, "get_batch: %d of %u found", rc,
		 found);
	/* Afterwards: gone if taken or missed; kept only after -EIO. */
	for (i = 0; i < n; i++) {
		uint32_t x = k[i];

		FZ_CHECK(!excl || taken[x] <= 1, "key %u taken %u times", x,
			 taken[x]);
		if (res[i] != -ENOENT && !(excl && taken[x]))
			continue;
		FZ_CHECK(!fz_persistent(p) || !p->tag[x] || (excl && taken[x]),
			 "persistent key %u lost in a batch", x);
		p->tag[x] = 0;
	}
}

static void op_flush_page(void)
{
	uint8_t a = u8();
	struct fz_pool *p = fz_pool(a);
	uint32_t k = (a >> 2) % FZ_KEYS;
	struct tmem_key key = fz_key(k);
	int rc;

	if (!p->live)
		return;
	rc = tmem_flush_page(fz.s, p->id, &key);
	if (p->tag[k] && fz_persistent(p))
		FZ_CHECK(rc == 0, "flush_page: %d", rc);
	else if (p->tag[k])
		FZ_CHECK(rc == 0 || rc == -ENOENT, "flush_page: %d", rc);
	else
		FZ_CHECK(rc == -ENOENT, "flush_page of nothing: %d", rc);
	p->tag[k] = 0;
}

static void op_flush_object(void)
{
	uint8_t a = u8();
	struct fz_pool *p = fz_pool(a);
	uint32_t obj = (a >> 2) % FZ_OBJS, k, n = 0;
	struct tmem_key key = fz_key(obj * FZ_IDX);

	if (!p->live)
		return;
	for (k = obj * FZ_IDX; k < (obj + 1) * FZ_IDX; k++) {
		n += p->tag[k] != 0;
		p->tag[k] = 0;
	}
	check_count(p, tmem_flush_object(fz.s, p->id, key.oid), n);
}

static void op_flush_pool(void)
{
	struct fz_pool *p = fz_pool(u8());
	uint32_t n;

	if (!p->live)
		return;
	n = fz_count(p);
	memset(p->tag, 0, sizeof(p->tag));
	check_count(p, tmem_flush_pool(fz.s, p->id), n);
}

static void op_budget(void)
{
	static const uint64_t budgets[] = {
		0, 16 << 10, 64 << 10, FZ_BUDGET, 1 << 20, UINT64_MAX,
	};
	uint64_t b = budgets[u8() % 6];
	int rc = tmem_set_budget(fz.s, b);

	FZ_CHECK(rc == 0, "set_budget: %d", rc);
}

static void op_iter(void)
{
	struct fz_pool *p = fz_pool(u8());
	uint64_t eio = tm_fault_hits(TM_FAULT_SPILL_READ);
	uint64_t nomem = fz_nomem_hits();
	bool seen[FZ_KEYS] = { false };
	uint32_t n = 0, errs = 0, k;
	struct tmem_iter *it = NULL;
	struct tmem_key key;
	int rc;

	if (!p->live)
		return;
	rc = tmem_iter_begin(fz.s, p->id, &it);
	if (rc == -ENOMEM) {
		FZ_CHECK(fz_nomem_hits() != nomem,
			 "iter_begin -ENOMEM with no allocation failure");
		return;
	}
	FZ_CHECK(rc == 0 && it, "iter_begin: %d", rc);
	while ((rc = tmem_iter_next(it, &key, fz.buf, p->len)) != 0) {
		if (rc == -EIO) {
			FZ_CHECK(tm_fault_hits(TM_FAULT_SPILL_READ) != eio,
				 "walk -EIO with no read failure");
			errs++;
			continue;
		}
		FZ_CHECK(rc == 1, "iter_next: %d", rc);
		for (k = 0; k < FZ_KEYS; k++) {
			struct tmem_key mk = fz_key(k);

			if (!memcmp(&mk, &key, sizeof(mk.oid)) &&
			    mk.index == key.index)
				break;
		}
		FZ_CHECK(k < FZ_KEYS && p->tag[k] && !seen[k],
			 "walk gave a page it should not (key %u)", k);
		FZ_CHECK(t_page_check(fz.buf, p->len, p->tag[k]) < 0,
			 "walk: key %u has wrong bytes", k);
		seen[k] = true;
		n++;
	}
	tmem_iter_end(it);
	FZ_CHECK(n + errs <= fz_count(p) &&
		 (!fz_persistent(p) || n + errs == fz_count(p)),
		 "walk gave %u pages and %u errors, model has %u", n, errs,
		 fz_count(p));
}

static void op_stats(void)
{
	uint64_t pp = 0, ep = 0;
	struct tmem_stats st;
	int i;

	for (i = 0; i < FZ_POOLS; i++) {
		if (!fz.pools[i].live)
			continue;
		if (fz_persistent(&fz.pools[i]))
			pp += fz_count(&fz.pools[i]);
		else
			ep += fz_count(&fz.pools[i]);
	}
	FZ_CHECK(tmem_stats(fz.s, &st) == 0, "stats");
	FZ_CHECK(st.v[TMEM_STAT_PAGES_PERSISTENT] == pp, "%llu vs %llu",
		 (unsigned long long)st.v[TMEM_STAT_PAGES_PERSISTENT],
		 (unsigned long long)pp);
	FZ_CHECK(st.v[TMEM_STAT_PAGES_EPHEMERAL] <= ep, "%llu vs %llu",
		 (unsigned long long)st.v[TMEM_STAT_PAGES_EPHEMERAL],
		 (unsigned long long)ep);
	FZ_CHECK(st.v[TMEM_STAT_PAGES_SPILLED] <= pp, "spilled");
	FZ_CHECK(st.v[TMEM_STAT_SPILL_USED] <= st.v[TMEM_STAT_SPILL_MAX],
		 "spill over its cap");
}

/* Calls with bad arguments: each must fail as the header says. */
static void op_invalid(void)
{
	uint8_t a = u8();
	struct fz_pool *p = fz_pool(a);
	uint32_t k = (a >> 2) % FZ_KEYS;
	struct tmem_key key = fz_key(k);
	int bad = fz_bad_id(u8());
	struct tmem_iter *it = NULL;
	int64_t rc = 0;
	size_t badlen;

	switch (u8() % 12) {
	case 0:
		rc = tmem_put(NULL, p->id, &key, fz.buf, 4096);
		FZ_CHECK(rc == -EINVAL, "put NULL store: %lld", (long long)rc);
		break;
	case 1:
		rc = tmem_get(fz.s, bad, &key, fz.buf, 4096);
		FZ_CHECK(rc == -EBADF, "get bad pool %d: %lld", bad,
			 (long long)rc);
		break;
	case 2:
		t_page_fill(fz.buf, 4096, 1);
		rc = tmem_put(fz.s, bad, &key, fz.buf, 4096);
		FZ_CHECK(rc == -EBADF, "put bad pool %d: %lld", bad,
			 (long long)rc);
		break;
	case 3:
		rc = tmem_flush_object(fz.s, bad, key.oid);
		FZ_CHECK(rc == -EBADF, "flush_object bad pool: %lld",
			 (long long)rc);
		rc = tmem_flush_pool(fz.s, bad);
		FZ_CHECK(rc == -EBADF, "flush_pool bad pool: %lld",
			 (long long)rc);
		rc = tmem_pool_info(fz.s, bad, NULL, NULL);
		FZ_CHECK(rc == -EBADF, "pool_info bad pool: %lld",
			 (long long)rc);
		rc = tmem_iter_begin(fz.s, bad, &it);
		FZ_CHECK(rc == -EBADF, "iter_begin bad pool: %lld",
			 (long long)rc);
		break;
	}
	if (!p->live)
		return;
	badlen = (size_t)u16() % (2 * T_PAGE_64K + 1);
	if (badlen == p->len)
		badlen++;
	switch (a % 9) {
	case 0:	/* a refused put leaves nothing under its key */
		rc = tmem_put(fz.s, p->id, &key, fz.buf, badlen);
		FZ_CHECK(rc == -EINVAL, "put len %zu: %lld", badlen,
			 (long long)rc);
		p->tag[k] = 0;
		break;
	case 1:
		rc = tmem_put(fz.s, p->id, &key, NULL, p->len);
		FZ_CHECK(rc == -EINVAL, "put NULL page: %lld", (long long)rc);
		p->tag[k] = 0;
		break;
	case 2:
		rc = tmem_get(fz.s, p->id, &key, fz.buf, badlen);
		FZ_CHECK(rc == -EINVAL, "get len %zu: %lld", badlen,
			 (long long)rc);
		break;
	case 3:
		rc = tmem_get_exclusive(fz.s, p->id, NULL, fz.buf, p->len);
		FZ_CHECK(rc == -EINVAL, "get NULL key: %lld", (long long)rc);
		rc = tmem_get_exclusive(fz.s, p->id, &key, NULL, p->len);
		FZ_CHECK(rc == -EINVAL, "get NULL buf: %lld", (long long)rc);
		break;
	case 4:
		rc = tmem_flush_page(fz.s, p->id, NULL);
		FZ_CHECK(rc == -EINVAL, "flush NULL key: %lld", (long long)rc);
		rc = tmem_flush_object(fz.s, p->id, NULL);
		FZ_CHECK(rc == -EINVAL, "flush NULL oid: %lld", (long long)rc);
		break;
	case 5:
		rc = tmem_iter_begin(fz.s, p->id, NULL);
		FZ_CHECK(rc == -EINVAL, "iter_begin NULL: %lld", (long long)rc);
		rc = tmem_iter_next(NULL, &key, fz.buf, p->len);
		FZ_CHECK(rc == -EINVAL, "iter_next NULL: %lld", (long long)rc);
		break;
	case 6:
		rc = tmem_get_exclusive(fz.s, p->id, &key, fz.buf, badlen);
		FZ_CHECK(rc == -EINVAL, "getx len %zu: %lld", badlen,
			 (long long)rc);
		break;
	case 7: {
		void *bufs[1] = { fz.buf };
		int res[1] = { 77 };

		rc = tmem_get_batch(fz.s, p->id, &key, bufs, res, 1, badlen, 0);
		FZ_CHECK(rc == -EINVAL, "get_batch len %zu: %lld", badlen,
			 (long long)rc);
		rc = tmem_get_batch(fz.s, p->id, &key, bufs, res, 1, p->len,
				    1u << (u8() % 31 + 1));
		FZ_CHECK(rc == -EINVAL, "get_batch flags: %lld", (long long)rc);
		rc = tmem_get_batch(fz.s, bad, &key, bufs, res, 1, p->len, 0);
		FZ_CHECK(rc == -EBADF, "get_batch bad pool: %lld",
			 (long long)rc);
		rc = tmem_get_batch(fz.s, p->id, NULL, bufs, res, 1, p->len, 0);
		FZ_CHECK(rc == -EINVAL, "get_batch NULL keys: %lld",
			 (long long)rc);
		FZ_CHECK(res[0] == 77, "get_batch wrote res on an error");
		bufs[0] = NULL;
		rc = tmem_get_batch(fz.s, p->id, &key, bufs, res, 1, p->len, 0);
		FZ_CHECK(rc == 0 && res[0] == -EINVAL,
			 "get_batch NULL buf: %lld, res %d", (long long)rc,
			 res[0]);
		break;
	}
	default:
		rc = tmem_put(fz.s, p->id, NULL, fz.buf, p->len);
		FZ_CHECK(rc == -EINVAL, "put NULL key: %lld", (long long)rc);
		break;
	}
}

/* Every fault point but the read gate, which would park a get for good. */
static const enum tm_fault fz_faults[] = {
	TM_FAULT_ALLOC, TM_FAULT_SPILL_WRITE, TM_FAULT_SPILL_ENOSPC,
	TM_FAULT_SPILL_READ, TM_FAULT_SHORT_READ, TM_FAULT_BUCKETS,
	TM_FAULT_SUBMIT, TM_FAULT_SUBMIT_SHORT, TM_FAULT_WAIT,
	TM_FAULT_SHORT_WRITE,
};

static void op_fault(void)
{
	uint8_t a = u8(), b = u8();

	tm_fault_arm(fz_faults[a % (sizeof(fz_faults) / sizeof(fz_faults[0]))],
		     b % 8, 1 + (b >> 3) % 4);
}


/* ------------------------------------------------------------------ */

static struct tmem_store *fz_store(enum tmem_raw_policy raw)
{
	struct tmem_config cfg = {
		.budget = FZ_BUDGET,
		.spill_max = FZ_SPILL_MAX,
		.raw_policy = raw,
	};
	struct tmem_store *s = NULL;
	char dir[T_PATH_MAX];
	int rc;

	/* The spill file is unlinked at once: the directory can go. */
	t_mkdtemp(dir);
	cfg.spill_path = dir;
	rc = tmem_store_create(&cfg, &s);
	if (rc || !s) {
		fprintf(stderr, "fuzz_host_api: tmem_store_create: %d\n", rc);
		abort();
	}
	t_dir_remove(dir);
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz.stores[0] = fz_store(TMEM_RAW_STORE);
	fz.stores[1] = fz_store(TMEM_RAW_REJECT);
	fz.buf = t_buf_alloc(2 * T_PAGE_64K);
	for (int i = 0; i < 8; i++)
		fz.bbuf[i] = t_buf_alloc(T_PAGE_64K);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t first;
	int i;

	if (!fz.buf)
		LLVMFuzzerInitialize(NULL, NULL);
	fz.in = data;
	fz.left = size;
	fz.nop = 0;
	fz.nstale = 0;
	memset(fz.pools, 0, sizeof(fz.pools));
	first = u8();
	fz.reject_raw = first & 1;
	fz.s = fz.stores[fz.reject_raw];
	tm_fault_reset();
	tmem_set_budget(fz.s, FZ_BUDGET);

	while (fz.left) {
		fz.nop++;
		switch (u8() % 16) {
		case 0:	op_pool_create(); break;
		case 1:	op_pool_destroy(); break;
		case 2:
		case 3:
		case 4:	op_put(); break;
		case 5:
		case 6:	op_get_batch(); break;
		case 7:	op_get(true); break;
		case 8:	op_flush_page(); break;
		case 9:	op_flush_object(); break;
		case 10: op_flush_pool(); break;
		case 11: op_budget(); break;
		case 12: op_iter(); break;
		case 13: op_stats(); break;
		case 14: op_invalid(); break;
		default: op_fault(); break;
		}
	}

	/* Leave the store as we found it: empty, unbroken, budget back. */
	tm_fault_reset();
	for (i = 0; i < FZ_POOLS; i++)
		if (fz.pools[i].live)
			pool_destroy(&fz.pools[i]);
	op_stats();
	tmem_set_budget(fz.s, FZ_BUDGET);
	return 0;
}
