// SPDX-License-Identifier: MIT
/*
 * spill-ops.c - a spill medium of the caller's (tmem_store_create_spill):
 * the tier's requests become calls of struct tmem_spill_ops.
 *
 * The calls are synchronous, so nothing is ever in flight once one has
 * returned: no write is "lost" (see tm_spill_release), and a batch of
 * reads is one call whose results are then handed out one by one.  The
 * extents a call gets live in arrays made with the medium (writes: one
 * at a time, under the write lock) or of the calling thread's (reads),
 * so no call allocates.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tmem_int.h"

struct tm_spill_ext {
	struct tmem_spill_ops ops;	/* copied at create */
	void *opaque;
	/* A write's extents, and which pages each one holds. */
	struct tmem_spill_extent wext[TM_SPILL_BATCH];
	int wfirst[TM_SPILL_BATCH], wcnt[TM_SPILL_BATCH];
};

static struct tm_spill_ext *tm_ext(struct tm_spill *sp)
{
	return sp->priv;
}

/* What the caller left in @res: 0 or -errno, anything else is -EIO. */
static int tm_ext_res(int res)
{
	return res <= 0 && res >= -4095 ? res : -EIO;
}

/*
 * Write @n pages laid out in the batch buffer, neighbours in both the
 * medium and the buffer merged into one extent, with one call.  Caller
 * holds the write lock.
 */
static int tm_ext_write(struct tm_spill *sp, struct tm_spill_io *io, int n)
{
	struct tm_spill_ext *x = tm_ext(sp);
	uint32_t shift = sp->unit_shift;
	unsigned int m = 0;
	int rc, err = 0;

	for (int i = 0, j; i < n; i = j) {
		uint32_t len = tm_spill_units(sp, io[i].bytes) << shift;

		for (j = i + 1; j < n; j++) {
			uint32_t prev = tm_spill_units(sp, io[j - 1].bytes) <<
					shift;

			if (io[j].unit != io[j - 1].unit + (prev >> shift) ||
			    io[j].buf_off != io[j - 1].buf_off + prev)
				break;
			len += tm_spill_units(sp, io[j].bytes) << shift;
		}
		x->wext[m] = (struct tmem_spill_extent){
			.offset = io[i].unit << shift, .len = len,
			.buf = sp->buf + io[i].buf_off, .res = -EIO };
		x->wfirst[m] = i;
		x->wcnt[m] = j - i;
		m++;
	}
	rc = x->ops.write(x->opaque, x->wext, m);
	if (rc == -EAGAIN) {
		/* declined, not failed: see tm_spill_write */
		for (int k = 0; k < n; k++)
			io[k].res = -EAGAIN;
		return -EAGAIN;
	}
	for (unsigned int e = 0; e < m; e++) {
		int res = rc < 0 ? tm_ext_res(rc) : tm_ext_res(x->wext[e].res);

		for (int k = x->wfirst[e]; k < x->wfirst[e] + x->wcnt[e]; k++)
			io[k].res = res;
		if (res && !err)
			err = res;
	}
	return err;
}

static int tm_ext_read(struct tm_spill *sp, uint64_t off, uint32_t len,
		       uint8_t *dst)
{
	struct tm_spill_ext *x = tm_ext(sp);
	struct tmem_spill_extent e = {
		.offset = off, .len = len, .buf = dst, .res = -EIO };

	if (x->ops.read(x->opaque, &e, 1) < 0 || e.res)
		return -EIO;
	return 0;
}

/*
 * A batch's reads go to a TM_READ_BUF buffer of the calling thread's,
 * made on its first batch that meets a spilled page and freed when the
 * thread exits, as the file's are.
 */
static pthread_key_t tm_ext_buf_key;
static pthread_once_t tm_ext_buf_once = PTHREAD_ONCE_INIT;
static bool tm_ext_buf_key_ok;
static _Thread_local uint8_t *tm_ext_buf;

static void tm_ext_buf_key_init(void)
{
	tm_ext_buf_key_ok = !pthread_key_create(&tm_ext_buf_key, free);
}

static bool tm_ext_rb_start(struct tm_spill *sp, struct tm_rbatch *b)
{
	void *buf;

	if (!tm_ext_buf) {
		pthread_once(&tm_ext_buf_once, tm_ext_buf_key_init);
		if (!tm_ext_buf_key_ok ||
		    posix_memalign(&buf, 4096, TM_READ_BUF))
			return false;
		if (pthread_setspecific(tm_ext_buf_key, buf)) {
			free(buf);
			return false;
		}
		tm_ext_buf = buf;
	}
	b->buf = tm_ext_buf;
	return true;
}

static bool tm_ext_rb_add(struct tm_spill *sp, struct tm_rbatch *b, int k)
{
	return true;	/* b->io[k] is all the call needs */
}

/*
 * Every read of @b with one call; their results wait to be reaped.
 * The reads go in the medium's order, and the buffer is laid out again
 * in that order before anything is read into it, so that neighbours on
 * the medium are neighbours in the buffer: they go as one extent.  The
 * pages of a batch that were spilled together (a slab's, or a guest's
 * readahead window) then come back in a few requests, not one per page
 * (over NBD, a round trip each).
 */
static void tm_ext_rb_submit(struct tm_spill *sp, struct tm_rbatch *b)
{
	static _Thread_local struct tmem_spill_extent ext[TM_READ_DEPTH];
	static _Thread_local int ord[TM_READ_DEPTH];	/* by unit */
	static _Thread_local int of[TM_READ_DEPTH];	/* read k's extent */
	struct tm_spill_ext *x = tm_ext(sp);
	uint32_t buf_off = 0;
	unsigned int m = 0;
	int rc;

	for (int k = 0; k < b->n; k++) {	/* insertion sort: n <= 64 */
		int j = k;

		for (; j > 0 && b->io[ord[j - 1]].unit > b->io[k].unit; j--)
			ord[j] = ord[j - 1];
		ord[j] = k;
	}
	for (int i = 0; i < b->n; i++) {
		struct tm_spill_rd *r = &b->io[ord[i]];
		uint64_t off = r->unit << sp->unit_shift;
		struct tmem_spill_extent *e = m ? &ext[m - 1] : NULL;

		r->buf_off = buf_off;
		buf_off += r->len;
		if (e && e->offset + e->len == off) {
			e->len += r->len;	/* its buffer follows too */
		} else {
			ext[m++] = (struct tmem_spill_extent){
				.offset = off, .len = r->len,
				.buf = b->buf + r->buf_off, .res = -EIO };
		}
		of[ord[i]] = (int)m - 1;
	}
	rc = x->ops.read(x->opaque, ext, m);
	for (int k = 0; k < b->n; k++)
		b->io[k].res = rc < 0 || ext[of[k]].res ? -EIO : 0;
	b->submitted = b->inflight = b->n;
}

static int tm_ext_rb_reap(struct tm_spill *sp, struct tm_rbatch *b)
{
	int k = b->submitted - b->inflight--;

	b->io[k].seen = true;
	return k;
}

static void tm_ext_discard(struct tm_spill *sp, uint64_t off, uint64_t len)
{
	struct tm_spill_ext *x = tm_ext(sp);

	x->ops.discard(x->opaque, off, len);
}

static void tm_ext_close(struct tm_spill *sp)
{
	free(sp->priv);
	sp->priv = NULL;
}

static const struct tm_spill_medium tm_ext_medium = {
	.write = tm_ext_write,
	.read = tm_ext_read,
	.rb_start = tm_ext_rb_start,
	.rb_add = tm_ext_rb_add,
	.rb_submit = tm_ext_rb_submit,
	.rb_reap = tm_ext_rb_reap,
	.discard = tm_ext_discard,
	.close = tm_ext_close,
};

static const struct tm_spill_medium tm_ext_medium_nodiscard = {
	.write = tm_ext_write,
	.read = tm_ext_read,
	.rb_start = tm_ext_rb_start,
	.rb_add = tm_ext_rb_add,
	.rb_submit = tm_ext_rb_submit,
	.rb_reap = tm_ext_rb_reap,
	.close = tm_ext_close,
};

/*
 * tm_spill_ops_open - spill through @ops (checked by the caller) in
 * units of @unit bytes, at most @max bytes.  Returns 0, -EINVAL (@max
 * holds no unit) or -ENOMEM.
 */
int tm_spill_ops_open(struct tm_spill *sp, const struct tmem_spill_ops *ops,
		      void *opaque, uint32_t unit, uint64_t max)
{
	struct tm_spill_ext *x = calloc(1, sizeof(*x));
	int rc;

	if (!x)
		return -ENOMEM;
	x->ops = *ops;
	x->opaque = opaque;
	rc = tm_spill_attach(sp, ops->discard ? &tm_ext_medium :
			     &tm_ext_medium_nodiscard, x,
			     (uint32_t)__builtin_ctz(unit), max);
	if (rc)
		free(x);
	else
		sp->fixed_bytes += sizeof(*x);
	return rc;
}
