/* SPDX-License-Identifier: MIT */
/*
 * old_hash.h: the index hash the store used before it was keyed (public
 * and invertible), and key pickers built on it, as a hostile guest who
 * read our source would use them.  Shared by t_hash_hostile and the
 * device's hostile qtest (copied there by qemu-device/sync-into-qemu.sh).
 */
#ifndef TMEM_OLD_HASH_H
#define TMEM_OLD_HASH_H

#include <stdint.h>

#define OLD_HASH_NSHARD		16
#define OLD_HASH_NBUCKET	4096

static inline uint64_t old_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline uint64_t old_obj_hash(uint32_t pool, const uint64_t oid[3])
{
	return old_mix(oid[0] ^ old_mix(oid[1] ^ old_mix(oid[2] ^ pool)));
}

static inline uint32_t old_shard(uint32_t pool, const uint64_t oid[3],
				 uint32_t index)
{
	uint64_t h = old_obj_hash(pool, oid);

	return (uint32_t)(old_mix(h ^ (index >> 4)) >> 60) % OLD_HASH_NSHARD;
}

static inline uint64_t old_ent_hash(uint32_t obj, uint32_t index)
{
	return old_mix((uint64_t)obj << 32 | index >> 4) << 4 | (index & 15);
}

/*
 * Indices of one object that all hit shard 0, bucket 0, taking the
 * object to be the first in its shard (id 1).  Returns how many it found.
 */
static inline uint32_t old_hash_pick_pages(uint32_t pool,
					   const uint64_t oid[3],
					   uint32_t *out, uint32_t n)
{
	uint32_t got = 0;

	for (uint32_t v = 0; got < n && v < (1u << 28); v++) {
		uint32_t index = v << 4;

		if (old_shard(pool, oid, index) == 0 &&
		    !(old_ent_hash(1, index) & (OLD_HASH_NBUCKET - 1)))
			out[got++] = index;
	}
	return got;
}

/* Objects (index 0) that all hit shard 0, object bucket 0. */
static inline uint32_t old_hash_pick_objects(uint32_t pool, uint64_t *out,
					     uint32_t n)
{
	uint32_t got = 0;

	for (uint64_t v = 1; got < n && v < (1ull << 32); v++) {
		uint64_t oid[3] = { v, 0, 0 };

		if (old_shard(pool, oid, 0) == 0 &&
		    !(old_obj_hash(pool, oid) & (OLD_HASH_NBUCKET - 1)))
			out[got++] = v;
	}
	return got;
}

#endif
