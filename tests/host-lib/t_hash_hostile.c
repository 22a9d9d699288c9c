/* SPDX-License-Identifier: MIT */
/*
 * t_hash_hostile: a guest that knows the index's hash cannot make long
 * hash chains.
 *
 * The keys are chosen offline, as a hostile guest would, so that under
 * the hash the store used before it was keyed (reproduced below) every
 * one of them lands in the same shard and the same bucket.  With a
 * per-store secret in the hash they must spread like any keys: the
 * longest chain stays short.  Objects get the same treatment: oids that
 * collide under the old object hash.
 */
#include "fault.h"
#include "helpers.h"

#define NKEYS	2048
#define NSHARD	16

/* The unkeyed hash of the past: public, and invertible. */
static uint64_t old_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t old_obj_hash(uint32_t pool, const uint64_t oid[3])
{
	return old_mix(oid[0] ^ old_mix(oid[1] ^ old_mix(oid[2] ^ pool)));
}

static uint32_t old_shard(uint32_t pool, const uint64_t oid[3],
			  uint32_t index)
{
	uint64_t h = old_obj_hash(pool, oid);

	return (uint32_t)(old_mix(h ^ (index >> 4)) >> 60) % NSHARD;
}

static uint64_t old_ent_hash(uint32_t obj, uint32_t index)
{
	return old_mix((uint64_t)obj << 32 | index >> 4) << 4 | (index & 15);
}

/* Indices of one object that all hit shard 0, bucket 0 (of 4096). */
static uint32_t pick_pages(uint32_t pool, const uint64_t oid[3],
			   uint32_t *out, uint32_t n)
{
	uint32_t got = 0;

	for (uint32_t v = 0; got < n && v < (1u << 28); v++) {
		uint32_t index = v << 4;

		/* The object is the first in its shard: id 1. */
		if (old_shard(pool, oid, index) == 0 &&
		    !(old_ent_hash(1, index) & 4095))
			out[got++] = index;
	}
	return got;
}

/* Objects (index 0) that all hit shard 0, object bucket 0 (of 4096). */
static uint32_t pick_objects(uint32_t pool, uint64_t *out, uint32_t n)
{
	uint32_t got = 0;

	for (uint64_t v = 1; got < n && v < (1ull << 32); v++) {
		uint64_t oid[3] = { v, 0, 0 };

		if (old_shard(pool, oid, 0) == 0 &&
		    !(old_obj_hash(pool, oid) & 4095))
			out[got++] = v;
	}
	return got;
}

static void test_chains(bool objects)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	static uint32_t idx[NKEYS];
	static uint64_t oids[NKEYS];
	uint64_t oid[3] = { 0x5eed, 0, 0 };
	uint32_t n, i, longest;

	n = objects ? pick_objects((uint32_t)p, oids, NKEYS) :
		      pick_pages((uint32_t)p, oid, idx, NKEYS);
	t_eq(n, NKEYS);
	for (i = 0; i < n; i++) {
		struct tmem_key k = objects ? t_key3(oids[i], 0, 0, 0) :
					      t_key3(oid[0], 0, 0, idx[i]);

		t_rc(t_put_tag(s, p, &k, t_tag(T_SAME, i), T_PAGE_4K), 0);
	}
	longest = tm_probe_chain_max(s);
	printf("%u keys colliding under the old %s hash: longest chain %u\n",
	       n, objects ? "object" : "page", longest);
	if (longest > 32)
		t_fail("a chain of %u: the hash is not keyed", longest);
	t_store_free(s, NULL);
}

int main(void)
{
	test_chains(false);
	test_chains(true);
	return T_EXIT_PASS;
}
