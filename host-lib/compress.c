// SPDX-License-Identifier: MIT
/*
 * compress.c - turn a page into what the store keeps, and back.
 *
 * Three outcomes, cheapest first: a same-filled page becomes one word; a
 * page LZ4 shrinks by at least 1/8 becomes its compressed bytes; any other
 * page is "raw" and kept (or refused) as it is.  The 1/8 bar also caps
 * LZ4's output buffer, so LZ4 gives up early on data it cannot shrink.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "tmem_int.h"

static pthread_key_t tm_scratch_key;
static pthread_once_t tm_scratch_once = PTHREAD_ONCE_INIT;
static bool tm_scratch_key_ok;
static _Thread_local uint8_t *tm_scratch_buf;

static void tm_scratch_key_init(void)
{
	/* A thread's scratch is freed when the thread exits. */
	tm_scratch_key_ok = !pthread_key_create(&tm_scratch_key, free);
}

/*
 * One buffer per thread, big enough for LZ4's worst case on the largest
 * page and aligned for O_DIRECT, so puts and gets allocate nothing once a
 * thread has made its first call.
 */
void *tm_scratch(size_t *size)
{
	size_t bytes = 2 * (size_t)LZ4_COMPRESSBOUND(TM_PAGE_MAX) + 8192;

	if (!tm_scratch_buf) {
		void *p;

		/* Without the key, every call that needs scratch is -ENOMEM. */
		pthread_once(&tm_scratch_once, tm_scratch_key_init);
		if (!tm_scratch_key_ok || posix_memalign(&p, 4096, bytes))
			return NULL;
		if (pthread_setspecific(tm_scratch_key, p)) {
			free(p);
			return NULL;
		}
		tm_scratch_buf = p;
	}
	if (size)
		*size = bytes;
	return tm_scratch_buf;
}

static bool tm_same_filled(const void *page, uint32_t len, uint64_t *word)
{
	const uint64_t *w = page;
	uint64_t first = w[0];

	/*
	 * Most pages differ at the ends; a same-filled page equals itself
	 * shifted by one word, which memcmp checks at vector speed.
	 */
	if (w[len / 8 - 1] != first || w[1] != first ||
	    memcmp(w, w + 1, len - 8))
		return false;
	*word = first;
	return true;
}

int tm_pack(const void *page, uint32_t len, struct tm_packed *pk)
{
	uint8_t *out = tm_scratch(NULL);
	int n;

	memset(pk, 0, sizeof(*pk));
	if (tm_same_filled(page, len, &pk->word)) {
		pk->flags = TM_E_SAME;
		return 0;
	}
	if (!out)
		return -ENOMEM;
	n = LZ4_compress_default(page, (char *)out, (int)len,
				 (int)(len - len / 8));
	if (n <= 0) {
		pk->flags = TM_E_RAW;
		pk->data = page;
		pk->size = len;
		return 0;
	}
	pk->data = out;
	pk->size = (uint32_t)n;
	return 0;
}

/* Rebuild the page described by @info/@word/@data into @page. */
int tm_unpack(const uint8_t *data, uint32_t info, uint64_t word,
	      void *page, uint32_t len)
{
	uint32_t size = info & TM_E_SIZE;

	if (info & TM_E_SAME) {
		uint64_t *w = page;

		/* Zero pages and other byte fills: memset's speed. */
		if (word == (word & 0xff) * 0x0101010101010101ull) {
			memset(page, (int)(word & 0xff), len);
			return 0;
		}
		for (uint32_t i = 0; i < len / 8; i++)
			w[i] = word;
		return 0;
	}
	if (info & TM_E_RAW) {
		if (size != len)
			return -EIO;
		memcpy(page, data, len);
		return 0;
	}
	if (LZ4_decompress_safe((const char *)data, page, (int)size,
				(int)len) != (int)len)
		return -EIO;
	return 0;
}
