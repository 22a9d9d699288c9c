// SPDX-License-Identifier: MIT
/*
 * iter.c - walk a pool's pages, or its keys, for migration.
 *
 * The walk snapshots the pool's keys when it begins and then fetches each
 * page with an ordinary get, so it holds no lock between steps and sees
 * a page flushed since as simply gone.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tmem_int.h"

struct tmem_iter {
	struct tmem_store *s;
	int pool;
	uint32_t page_size;
	struct tmem_key *keys;
	size_t n, pos, cap;
};

static int tm_iter_add(struct tmem_iter *it, const struct tm_obj *o,
		       uint32_t index)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? 2 * it->cap : 256;
		struct tmem_key *k = realloc(it->keys, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		it->keys = k;
		it->cap = cap;
	}
	it->keys[it->n].oid[0] = o->oid[0];
	it->keys[it->n].oid[1] = o->oid[1];
	it->keys[it->n].oid[2] = o->oid[2];
	it->keys[it->n].index = index;
	it->n++;
	return 0;
}

static int tm_iter_shard(struct tmem_iter *it, struct tm_shard *sh)
{
	for (uint32_t id = 1; id <= sh->objs.used; id++) {
		struct tm_obj *o = tm_obj_ptr(sh, id);

		if (!o->npages || o->pool != (uint32_t)it->pool)
			continue;
		for (uint32_t e = o->head; e; e = tm_ent_ptr(sh, e)->onext) {
			int rc = tm_iter_add(it, o, tm_ent_ptr(sh, e)->index);

			if (rc)
				return rc;
		}
	}
	return 0;
}

TM_EXPORT int tmem_iter_begin(struct tmem_store *s, int pool,
			      struct tmem_iter **out)
{
	struct tmem_iter *it;
	struct tm_pool *p;

	if (!s || !out)
		return -EINVAL;
	p = tm_pool_get(s, pool);
	if (!p)
		return -EBADF;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->s = s;
	it->pool = pool;
	it->page_size = p->page_size;
	for (int i = 0; i < TM_NSHARD; i++) {
		int rc;

		pthread_mutex_lock(&s->shard[i].lock);
		rc = tm_iter_shard(it, &s->shard[i]);
		pthread_mutex_unlock(&s->shard[i].lock);
		if (rc) {
			tmem_iter_end(it);
			return rc;
		}
	}
	*out = it;
	return 0;
}

TM_EXPORT int tmem_iter_next(struct tmem_iter *it, struct tmem_key *key,
			     void *buf, size_t len)
{
	/* Refuse before moving on: a retried call must not skip a page. */
	if (!it || !key || !buf || len != it->page_size)
		return -EINVAL;
	while (it->pos < it->n) {
		struct tmem_key *k = &it->keys[it->pos++];
		int rc = tmem_get(it->s, it->pool, k, buf, len);

		if (rc == -ENOENT)
			continue;
		if (rc == 0 || rc == -EIO)
			*key = *k;
		return rc ? rc : 1;
	}
	return 0;
}

TM_EXPORT int tmem_iter_next_keys(struct tmem_iter *it, struct tmem_key *keys,
				  unsigned int n)
{
	size_t left;

	if (!it || (n && !keys))
		return -EINVAL;
	left = it->n - it->pos;
	if (n > left)
		n = (unsigned int)left;
	if (n > INT_MAX)
		n = INT_MAX;
	memcpy(keys, &it->keys[it->pos], n * sizeof(*keys));
	it->pos += n;
	return (int)n;
}

TM_EXPORT int64_t tmem_iter_left(const struct tmem_iter *it)
{
	return it ? (int64_t)(it->n - it->pos) : -EINVAL;
}

TM_EXPORT void tmem_iter_end(struct tmem_iter *it)
{
	if (!it)
		return;
	free(it->keys);
	free(it);
}
