/* SPDX-License-Identifier: MIT */
/*
 * t_hash_hostile: a guest that knows the index's hash cannot make long
 * hash chains.
 *
 * The keys are chosen offline, as a hostile guest would, so that under
 * the hash the store used before it was keyed (old_hash.h) every
 * one of them lands in the same shard and the same bucket.  With a
 * per-store secret in the hash they must spread like any keys: the
 * longest chain stays short.  Objects get the same treatment: oids that
 * collide under the old object hash.
 */
#include "fault.h"
#include "helpers.h"
#include "old_hash.h"

#define NKEYS	2048

static void test_chains(bool objects)
{
	struct tmem_store *s = t_store_new(1ull << 30, NULL, 0);
	int p = t_pool_new(s, TMEM_PERSISTENT, T_PAGE_4K);
	static uint32_t idx[NKEYS];
	static uint64_t oids[NKEYS];
	uint64_t oid[3] = { 0x5eed, 0, 0 };
	uint32_t n, i, longest;

	n = objects ? old_hash_pick_objects((uint32_t)p, oids, NKEYS) :
		      old_hash_pick_pages((uint32_t)p, oid, idx, NKEYS);
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
