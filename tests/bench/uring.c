/* SPDX-License-Identifier: MIT */
/*
 * uring.c - the disk's limit for the spill tier: raw io_uring 4 KiB
 * writes, queue depth 32, of as many pages as the store spills, into a
 * fresh file in the spill directory.  O_DIRECT where the filesystem
 * takes it (the spill file should not double-cache in the page cache
 * either); else buffered writes and an fdatasync at the end, which is
 * inside the timing so that both modes pay for reaching the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define QD	32u

/* Reap one completion; -EINVAL from an O_DIRECT write is passed up. */
static int reap(struct io_uring *ring, struct io_uring_cqe *cqe,
		unsigned int *inflight)
{
	int res = cqe->res;
	unsigned long long page = (unsigned long long)cqe->user_data;

	io_uring_cqe_seen(ring, cqe);
	(*inflight)--;
	if (res == (int)BENCH_PAGE)
		return 0;
	if (res < 0) {
		if (res != -EINVAL)
			warnx_("uring: write of page %llu: %s", page,
			       strerror(-res));
		return res;
	}
	/* A short write to a regular file means the disk is full. */
	warnx_("uring: short write of page %llu: %d bytes", page, res);
	return -ENOSPC;
}

static int write_run(const struct corpus *c, const size_t *idx, size_t n,
		     const char *path, int direct, double *seconds)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	unsigned int inflight = 0;
	size_t next = 0;
	double t0;
	int fd, r, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
			(direct ? O_DIRECT : 0), 0600);
	if (fd < 0)
		return -errno;
	/* Scratch, like the spill file: gone once closed. */
	if (unlink(path) != 0) {
		err = -errno;
		warnx_("uring: unlink %s: %s", path, strerror(errno));
		close(fd);
		return err;
	}
	r = io_uring_queue_init(QD, &ring, 0);
	if (r < 0) {
		warnx_("uring: io_uring_queue_init: %s", strerror(-r));
		close(fd);
		return r;
	}

	t0 = now_s();
	while (next < n || inflight > 0) {
		unsigned int queued = 0;

		/* Top the queue up to QD and submit it as one batch. */
		while (inflight + queued < QD && next < n) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (!sqe)
				break;
			io_uring_prep_write(sqe, fd, corpus_page(c, idx[next]),
					    BENCH_PAGE,
					    (uint64_t)next * BENCH_PAGE);
			io_uring_sqe_set_data64(sqe, next);
			next++;
			queued++;
		}
		if (queued) {
			r = io_uring_submit(&ring);
			if (r < 0) {
				warnx_("uring: io_uring_submit: %s",
				       strerror(-r));
				err = r;
				goto drain;
			}
			inflight += queued;
		}
		r = io_uring_wait_cqe(&ring, &cqe);
		if (r < 0) {
			warnx_("uring: io_uring_wait_cqe: %s", strerror(-r));
			err = r;
			goto drain;
		}
		r = reap(&ring, cqe, &inflight);
		while (r == 0 && io_uring_peek_cqe(&ring, &cqe) == 0)
			r = reap(&ring, cqe, &inflight);
		if (r) {
			err = r;
			goto drain;
		}
	}
	if (fdatasync(fd) != 0) {
		err = -errno;
		warnx_("uring: fdatasync: %s", strerror(errno));
		goto out;
	}
	*seconds = now_s() - t0;
	goto out;
drain:
	/* The ring may not go while writes point into the corpus. */
	while (inflight > 0 && io_uring_wait_cqe(&ring, &cqe) == 0) {
		io_uring_cqe_seen(&ring, cqe);
		inflight--;
	}
out:
	io_uring_queue_exit(&ring);
	close(fd);
	return err;
}

int uring_limit(const struct corpus *c, const char *dir, unsigned int reps,
		struct uring_result *res)
{
	char path[4096];
	size_t *idx, n = 0, i;
	unsigned int rep;
	int r, err = 0;

	memset(res, 0, sizeof(*res));
	r = snprintf(path, sizeof(path), "%s/uring-bench.%ld", dir,
		     (long)getpid());
	if (r < 0 || (size_t)r >= sizeof(path)) {
		warnx_("uring: directory name too long");
		return -ENAMETOOLONG;
	}
	/* The same pages the store has to spill: those with data. */
	idx = malloc(c->npages * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (i = 0; i < c->npages; i++)
		if (!c->same[i])
			idx[n++] = i;
	res->write.bytes = (uint64_t)n * BENCH_PAGE;
	res->write.pages = n;
	res->direct = 1;

	for (rep = 0; rep < reps; rep++) {
		double dt = 0;

		progress("uring: run %u of %u (%s)", rep + 1, reps,
			 res->direct ? "O_DIRECT" : "buffered");
		r = write_run(c, idx, n, path, res->direct, &dt);
		if (r == -EINVAL && res->direct) {
			/* Open or first write refused O_DIRECT: tmpfs, ... */
			progress("uring: no O_DIRECT here; buffered + "
				 "fdatasync");
			res->direct = 0;
			rep--;
			continue;
		}
		if (r) {
			warnx_("uring: %s: %s", path, strerror(-r));
			err = r;
			break;
		}
		rate_add(&res->write, dt);
	}
	free(idx);
	return err;
}
