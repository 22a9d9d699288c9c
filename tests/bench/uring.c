/* SPDX-License-Identifier: MIT */
/*
 * uring.c - the disk's limits for the spill tier, measured with raw
 * io_uring on a fresh file in the spill directory, doing what the store
 * does and nothing else.
 *
 * Writes: the store's spill writer, copied.  Each page with data becomes
 * an extent of its LZ4 size (4096 if LZ4 cannot save 1/8, as the store
 * keeps such pages raw) rounded up to the O_DIRECT unit the store would
 * probe; extents are laid out back to back and written in batches of at
 * most BENCH_SPILL_BATCH pages or BENCH_SPILL_BUF bytes, one batch in
 * flight at a time, each batch one write as the store's merged one is.
 * O_DIRECT and no fsync, as the store: the bytes are the same as the
 * spill file's, so the two rates compare bytes written with bytes
 * written.
 *
 * Reads: random 4 KiB O_DIRECT reads of that file, as many as the
 * store has spilled pages, BENCH_READ_QD in flight at all times (the
 * depth of the store's batched reads, topped up as each completes).
 *
 * A file system without O_DIRECT falls back to buffered I/O, with no
 * fsync either; the store refuses such a spill file anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* The extents the store would write: one per page with data. */
struct layout {
	uint32_t *ext;		/* extent bytes, per page */
	size_t n;
	uint64_t bytes;		/* their sum: the file */
	uint32_t unit;
};

/* The smallest O_DIRECT unit of @fd, as the store probes it (512, 4096). */
static uint32_t probe_unit(int fd, uint8_t *buf)
{
	for (uint32_t u = 512; u <= 4096; u *= 8)
		if (pwrite(fd, buf, u, u) == (ssize_t)u)
			return u;
	return 0;
}

static int layout_build(const struct corpus *c, uint32_t unit,
			struct layout *l)
{
	char *tmp = malloc(LZ4_COMPRESSBOUND(BENCH_PAGE));

	l->ext = malloc(c->npages * sizeof(*l->ext));
	if (!tmp || !l->ext) {
		free(tmp);
		free(l->ext);
		return -ENOMEM;
	}
	l->n = 0;
	l->bytes = 0;
	l->unit = unit;
	for (size_t i = 0; i < c->npages; i++) {
		int z;

		if (c->same[i])
			continue;
		z = LZ4_compress_default((const char *)corpus_page(c, i), tmp,
					 BENCH_PAGE,
					 BENCH_PAGE - BENCH_PAGE / 8);
		if (z <= 0)
			z = BENCH_PAGE;
		l->ext[l->n] = ((uint32_t)z + unit - 1) / unit * unit;
		l->bytes += l->ext[l->n];
		l->n++;
	}
	free(tmp);
	return 0;
}

/* Wait for one completion; its result must be @want bytes. */
static int reap_one(struct io_uring *ring, unsigned int want, const char *op)
{
	struct io_uring_cqe *cqe;
	int r = io_uring_wait_cqe(ring, &cqe), res;

	if (r < 0) {
		warnx_("uring: io_uring_wait_cqe: %s", strerror(-r));
		return r;
	}
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	if (res == (int)want)
		return 0;
	if (res < 0) {
		if (res != -EINVAL)
			warnx_("uring: %s: %s", op, strerror(-res));
		return res;
	}
	warnx_("uring: short %s: %d of %u bytes", op, res, want);
	return -EIO;
}

/* The store's spill writes: batch by batch, each waited for. */
static int write_run(int fd, const struct layout *l, const uint8_t *src,
		     struct io_uring *ring, double *seconds)
{
	uint64_t pos = 0;
	size_t i = 0;
	double t0 = now_s();

	while (i < l->n) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		uint32_t len = 0, pages = 0;
		int r;

		while (i < l->n && pages < BENCH_SPILL_BATCH &&
		       len + l->ext[i] <= BENCH_SPILL_BUF) {
			len += l->ext[i++];
			pages++;
		}
		if (!sqe)
			return -EBUSY;
		io_uring_prep_write(sqe, fd, src, len, pos);
		r = io_uring_submit(ring);
		if (r != 1) {
			warnx_("uring: io_uring_submit: %s",
			       strerror(r < 0 ? -r : EAGAIN));
			return r < 0 ? r : -EAGAIN;
		}
		r = reap_one(ring, len, "write");
		if (r)
			return r;
		pos += len;
	}
	*seconds = now_s() - t0;
	return 0;
}

/* Random 4 KiB reads of the file, @qd of them in flight throughout. */
static int read_run(int fd, uint64_t file_bytes, size_t n, uint8_t *bufs,
		    struct io_uring *ring, uint64_t seed, double *seconds)
{
	uint64_t nblocks = file_bytes / BENCH_PAGE, x = seed;
	unsigned int inflight = 0;
	size_t next = 0;
	double t0 = now_s();
	int r;

	if (!nblocks)
		return -EINVAL;
	while (next < n || inflight) {
		unsigned int queued = 0;

		while (inflight + queued < BENCH_READ_QD && next < n) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			uint64_t z;

			if (!sqe)
				break;
			/* splitmix64: a random block of the file */
			x += 0x9e3779b97f4a7c15ull;
			z = x;
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
			z ^= z >> 31;
			io_uring_prep_read(sqe, fd, bufs + (next %
					   BENCH_READ_QD) * BENCH_PAGE,
					   BENCH_PAGE,
					   z % nblocks * BENCH_PAGE);
			next++;
			queued++;
		}
		if (queued) {
			r = io_uring_submit(ring);
			if (r < 0) {
				warnx_("uring: io_uring_submit: %s",
				       strerror(-r));
				goto drain;
			}
			inflight += queued;
		}
		r = reap_one(ring, BENCH_PAGE, "read");
		inflight--;
		if (r)
			goto drain;
	}
	*seconds = now_s() - t0;
	return 0;
drain:
	/* The ring may not go while reads point into the buffers. */
	while (inflight > 0) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(ring, &cqe) != 0)
			break;
		io_uring_cqe_seen(ring, cqe);
		inflight--;
	}
	return r;
}

/* One run on a fresh file: the writes, then the reads of what they wrote. */
static int run_once(const struct corpus *c, const char *path, int direct,
		    struct uring_result *res, unsigned int rep,
		    double *wr_s, double *rd_s)
{
	struct io_uring ring;
	struct layout l = { 0 };
	uint8_t *bufs = xaligned((size_t)BENCH_READ_QD * BENCH_PAGE);
	int fd, r;

	if (!bufs)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
		  (direct ? O_DIRECT : 0), 0600);
	if (fd < 0) {
		r = -errno;
		free(bufs);
		return r;
	}
	/* Scratch, like the spill file: gone once closed. */
	if (unlink(path) != 0) {
		r = -errno;
		warnx_("uring: unlink %s: %s", path, strerror(errno));
		goto out_fd;
	}
	memset(bufs, 0, BENCH_PAGE);
	r = direct ? (int)probe_unit(fd, bufs) : 512;
	if (!r) {
		r = -EINVAL;	/* no O_DIRECT after all */
		goto out_fd;
	}
	r = layout_build(c, (uint32_t)r, &l);
	if (r)
		goto out_fd;
	res->unit = l.unit;
	res->write.bytes = l.bytes;
	res->write.pages = l.n;
	res->read.bytes = (uint64_t)l.n * BENCH_PAGE;
	res->read.pages = l.n;
	r = io_uring_queue_init(BENCH_READ_QD, &ring, 0);
	if (r < 0) {
		warnx_("uring: io_uring_queue_init: %s", strerror(-r));
		goto out_layout;
	}
	r = write_run(fd, &l, c->data, &ring, wr_s);
	if (!r)
		r = read_run(fd, l.bytes, l.n, bufs, &ring,
			     0x5eed0000u + rep, rd_s);
	io_uring_queue_exit(&ring);
out_layout:
	free(l.ext);
out_fd:
	close(fd);
	free(bufs);
	return r;
}

int uring_limit(const struct corpus *c, const char *dir, unsigned int reps,
		struct uring_result *res)
{
	char path[4096];
	unsigned int rep;
	int r;

	memset(res, 0, sizeof(*res));
	r = snprintf(path, sizeof(path), "%s/uring-bench.%ld", dir,
		     (long)getpid());
	if (r < 0 || (size_t)r >= sizeof(path)) {
		warnx_("uring: directory name too long");
		return -ENAMETOOLONG;
	}
	res->direct = 1;
	for (rep = 0; rep < reps; rep++) {
		double wr = 0, rd = 0;

		progress("uring: run %u of %u (%s)", rep + 1, reps,
			 res->direct ? "O_DIRECT" : "buffered");
		r = run_once(c, path, res->direct, res, rep, &wr, &rd);
		if (r == -EINVAL && res->direct) {
			/* Open or first write refused O_DIRECT: tmpfs, ... */
			progress("uring: no O_DIRECT here; buffered");
			res->direct = 0;
			rep--;
			continue;
		}
		if (r) {
			warnx_("uring: %s: %s", path, strerror(-r));
			return r;
		}
		rate_add(&res->write, wr);
		rate_add(&res->read, rd);
	}
	return 0;
}
