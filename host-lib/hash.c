// SPDX-License-Identifier: MIT
/*
 * hash.c - the index's keyed hash: SipHash-1-3 over whole 64-bit words.
 *
 * Guests choose the keys the index hashes.  With a public hash a guest
 * can pick thousands of keys that share one chain and turn every lookup
 * into a walk (the index before this hashed with an invertible mixer).
 * So the hash takes a secret drawn per store: without it no one can
 * predict where a key lands.  SipHash with one compression round and
 * three finalisation rounds is the keyed PRF the Linux kernel uses for
 * the same job (hsiphash aside); it costs a few nanoseconds here, next
 * to microseconds of LZ4 per page.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "tmem_int.h"

static inline uint64_t tm_rotl(uint64_t x, int b)
{
	return x << b | x >> (64 - b);
}

static inline void tm_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = tm_rotl(v[1], 13) ^ v[0];
	v[0] = tm_rotl(v[0], 32);
	v[2] += v[3];
	v[3] = tm_rotl(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = tm_rotl(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = tm_rotl(v[1], 17) ^ v[2];
	v[2] = tm_rotl(v[2], 32);
}

uint64_t tm_hash(const struct tm_hkey *k, const uint64_t *w, unsigned int n)
{
	uint64_t v[4] = {
		k->k[0] ^ 0x736f6d6570736575ull, k->k[1] ^ 0x646f72616e646f6dull,
		k->k[0] ^ 0x6c7967656e657261ull, k->k[1] ^ 0x7465646279746573ull,
	};
	uint64_t last = (uint64_t)(n * 8) << 56;

	for (unsigned int i = 0; i < n; i++) {
		v[3] ^= w[i];
		tm_sipround(v);
		v[0] ^= w[i];
	}
	v[3] ^= last;
	tm_sipround(v);
	v[0] ^= last;
	v[2] ^= 0xff;
	tm_sipround(v);
	tm_sipround(v);
	tm_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/*
 * A fresh secret.  getrandom() does not fail for 16 bytes once the pool
 * is initialised; should it, the clock and an address are still unknown
 * to a guest, if weaker.
 */
void tm_hkey_init(struct tm_hkey *k)
{
	struct timespec ts;

	if (getrandom(k->k, sizeof(k->k), GRND_NONBLOCK) == sizeof(k->k))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	k->k[0] = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)k;
	k->k[1] = (uint64_t)ts.tv_sec * 0x9e3779b97f4a7c15ull ^ k->k[0] << 7;
}
