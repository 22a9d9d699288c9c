// SPDX-License-Identifier: MIT
/*
 * spill-file.c - the spill tier's own medium: a scratch file, through
 * io_uring (struct tmem_config's spill_path).
 *
 * Writes go through one io_uring, batched: the tier gathers a slab's
 * pages into the batch buffer under the write lock and this file
 * submits them together, merging neighbours into single writes.  A
 * single get's read is one page it waits for, so it uses pread(), which
 * lets gets run in parallel with each other and with a spill batch in
 * flight.  A batch get submits the reads of all its spilled pages
 * together on a ring of its thread's own (see below).
 *
 * O_DIRECT keeps spilled pages out of the host page cache, which would
 * otherwise hold a second copy of exactly the memory we are giving back.
 * File systems that refuse it are refused in turn, and so are those that
 * keep their data in RAM (tmpfs, ramfs), unless the caller passed
 * TMEM_SPILL_BUFFERED: there a "spilled" page would still be in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "fault.h"
#include "tmem_int.h"

/* The file's own state, the tier's priv. */
struct tm_spill_file {
	int fd;
	bool direct;		/* O_DIRECT worked */
	struct io_uring ring;	/* writes; the tier's write lock */
};

static struct tm_spill_file *tm_file(struct tm_spill *sp)
{
	return sp->priv;
}

/*
 * A new file in directory @dir: unnamed, or with @keep named and its
 * name returned in *@made (the caller frees it).
 */
static int tm_spill_create_in(const char *dir, bool keep, char **made)
{
	char *tmpl;
	int fd;

	if (!keep) {
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
			return fd >= 0 ? fd : -errno;
	}
	tmpl = malloc(strlen(dir) + sizeof("/tmem-spill-XXXXXX"));
	if (!tmpl)
		return -ENOMEM;
	strcpy(tmpl, dir);
	strcat(tmpl, "/tmem-spill-XXXXXX");
	fd = mkostemp(tmpl, O_CLOEXEC);	/* mode 0600, O_EXCL */
	if (fd < 0) {
		fd = -errno;
	} else if (keep) {
		*made = tmpl;
		return fd;
	}
	unlink(tmpl);
	free(tmpl);
	return fd;
}

/*
 * Open the spill file @path names (see struct tmem_config).  Only ever a
 * file this call creates: an existing file, or a symlink, at @path is
 * -EEXIST, so a mistyped path cannot truncate, chmod or overwrite
 * anyone's data.  With @keep the file stays and *@made gets its name.
 */
static int tm_spill_create(const char *path, bool keep, char **made)
{
	struct stat st;
	int fd;

	*made = NULL;
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return tm_spill_create_in(path, keep, made);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	if (keep) {
		*made = strdup(path);
		if (*made)
			return fd;
		unlink(path);
		close(fd);
		return -ENOMEM;
	}
	if (unlink(path)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * Find the smallest unit O_DIRECT accepts here.  Returns its shift, or 0
 * if O_DIRECT does not work at all (then the file stays buffered).
 */
static uint32_t tm_spill_probe_direct(int fd, uint8_t *buf)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT))
		return 0;
	memset(buf, 0, 4096);
	for (uint32_t shift = 9; shift <= 12; shift += 3) {
		size_t n = (size_t)1 << shift;

		if (pwrite(fd, buf, n, (off_t)n) == (ssize_t)n &&
		    pread(fd, buf, n, (off_t)n) == (ssize_t)n) {
			if (ftruncate(fd, 0))
				break;
			return shift;
		}
	}
	fcntl(fd, F_SETFL, fl);
	if (ftruncate(fd, 0))
		return 0;
	return 0;
}

/*
 * Whether @fd's file system keeps its data in RAM: tmpfs (which takes
 * O_DIRECT since Linux 6.6, so the probe cannot tell) or ramfs.
 */
static bool tm_spill_in_ram(int fd)
{
	struct statfs fs;

	if (fstatfs(fd, &fs))
		return false;
	return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
}

static const struct tm_spill_medium tm_file_medium;

/*
 * tm_spill_file_open - spill to a new file at @path (see struct
 * tmem_config), at most @max bytes of it.  Spilling stays off, and this
 * returns 0, for a NULL or empty @path or a @max of 0.  Returns 0 or
 * -errno: that of making the file, -EOPNOTSUPP (a file system that would
 * keep spilled pages in memory, without TMEM_SPILL_BUFFERED), -EINVAL
 * (@max holds no unit), -ENOMEM, or io_uring's.
 */
int tm_spill_file_open(struct tm_spill *sp, const char *path, uint64_t max,
		       uint32_t flags)
{
	struct tm_spill_file *f;
	char *made = NULL;
	uint32_t shift;
	void *probe;
	int rc;

	if (!path || !*path || !max)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	rc = -ENOMEM;
	if (posix_memalign(&probe, 4096, 4096))
		goto err_f;
	rc = tm_spill_create(path, flags & TMEM_SPILL_KEEP, &made);
	if (rc < 0)
		goto err_probe;
	f->fd = rc;

	shift = tm_spill_probe_direct(f->fd, probe);
	f->direct = shift != 0;
	shift = shift ? shift : 9;
	/* A "spill" that may stay in memory: only when asked for. */
	sp->buffered = !f->direct || tm_spill_in_ram(f->fd);
	rc = -EOPNOTSUPP;
	if (sp->buffered && !(flags & TMEM_SPILL_BUFFERED))
		goto err_fd;
	rc = -EINVAL;
	if (!(max >> shift))
		goto err_fd;
	rc = io_uring_queue_init(TM_SPILL_BATCH, &f->ring, 0);
	if (rc < 0)
		goto err_fd;
	rc = tm_spill_attach(sp, &tm_file_medium, f, shift, max);
	if (rc < 0)
		goto err_ring;
	sp->fixed_bytes += sizeof(*f);
	free(probe);
	free(made);
	return 0;

err_ring:
	io_uring_queue_exit(&f->ring);
err_fd:
	sp->buffered = false;
	close(f->fd);
	if (made)
		unlink(made);	/* ours: made by this call */
	free(made);
err_probe:
	free(probe);
err_f:
	free(f);
	return rc;
}

static void tm_file_close(struct tm_spill *sp)
{
	struct tm_spill_file *f = tm_file(sp);

	if (!atomic_load(&sp->dead))
		io_uring_queue_exit(&f->ring);
	close(f->fd);
	free(f);
	sp->priv = NULL;
}

static int tm_spill_fault(int res)
{
	if (tm_fault_fire(TM_FAULT_SPILL_ENOSPC))
		return -ENOSPC;
	if (tm_fault_fire(TM_FAULT_SPILL_WRITE))
		return -EIO;
	if (res > 1 && tm_fault_fire(TM_FAULT_SHORT_WRITE))
		return res / 2;
	return res;
}

/* io_uring_submit, with its fault points.  Returns SQEs taken or -errno. */
static int tm_ring_submit(struct io_uring *ring)
{
	struct io_uring_sq *sq = &ring->sq;

	if (tm_fault_fire(TM_FAULT_SUBMIT))
		return -EBUSY;
	if (sq->sqe_tail - sq->sqe_head > 1 &&
	    tm_fault_fire(TM_FAULT_SUBMIT_SHORT)) {
		/* As io_uring_enter may: take the first half, leave the rest. */
		unsigned int tail = sq->sqe_tail;
		int r;

		sq->sqe_tail = sq->sqe_head + (tail - sq->sqe_head) / 2;
		r = io_uring_submit(ring);
		sq->sqe_tail = tail;
		return r;
	}
	return io_uring_submit(ring);
}

static int tm_ring_wait(struct io_uring *ring, struct io_uring_cqe **cqe)
{
	if (tm_fault_fire(TM_FAULT_WAIT))
		return -EIO;
	return io_uring_wait_cqe(ring, cqe);
}

/*
 * The ring cannot be trusted any more: SQEs it would not take are still
 * queued in it, or writes it took may still be in flight.  Throw it away
 * (that drops the queued SQEs; what is in flight finishes on its own, into
 * extents the caller never frees) and start a fresh one.  If that fails,
 * spilling is off for good.  Caller holds the write lock.
 */
static void tm_ring_reset(struct tm_spill *sp)
{
	struct tm_spill_file *f = tm_file(sp);

	io_uring_queue_exit(&f->ring);
	if (io_uring_queue_init(TM_SPILL_BATCH, &f->ring, 0) < 0)
		atomic_store(&sp->dead, true);
	atomic_fetch_add(&sp->ring_resets, 1);
}

/* A run of neighbouring pages written with one SQE. */
struct tm_spill_run {
	int start, cnt;
	uint32_t len;
	bool seen;		/* its completion was reaped */
};

/*
 * Submit the @queued SQEs prepared on @ring, retrying the kernel's
 * transient refusals a few times.  Returns how many went out.
 */
static int tm_ring_submit_all(struct io_uring *ring, int queued)
{
	int submitted = 0, tries = 0;

	while (submitted < queued) {
		int r = tm_ring_submit(ring);

		if (r > 0) {
			submitted += r;
			continue;
		}
		if ((r == 0 || r == -EINTR || r == -EAGAIN || r == -EBUSY) &&
		    ++tries < 4)
			continue;
		break;
	}
	return submitted;
}

/*
 * Write @n pages already laid out in the batch buffer, merging
 * neighbours in the file and the buffer into one write (the tier's
 * tm_spill_write has set each io's res to -EIO).  Returns 0 if every
 * page was written, else the first error.
 *
 * If the ring fails under us (submit refused, wait failed), pages whose
 * write may still be in flight get res -EIO and lost = true: the caller
 * keeps them in RAM and must not free their extents, which a late write
 * could still land in.  Caller holds the write lock.
 */
static int tm_file_write(struct tm_spill *sp, struct tm_spill_io *io, int n)
{
	static _Thread_local struct tm_spill_run runs[TM_SPILL_BATCH];
	struct tm_spill_file *f = tm_file(sp);
	uint32_t shift = sp->unit_shift;
	int first = 0, err = 0;

	while (first < n) {
		int queued = 0, submitted, done = 0, i = first;
		bool broken = false;

		while (i < n && queued < TM_SPILL_BATCH) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
			uint64_t len = (uint64_t)tm_spill_units(sp,
							io[i].bytes) << shift;
			int j = i + 1;

			if (!sqe)
				break;
			while (j < n &&
			       io[j].unit == io[j - 1].unit +
					tm_spill_units(sp, io[j - 1].bytes) &&
			       io[j].buf_off == io[j - 1].buf_off +
					((uint64_t)tm_spill_units(sp,
					io[j - 1].bytes) << shift)) {
				len += (uint64_t)tm_spill_units(sp,
							io[j].bytes) << shift;
				j++;
			}
			io_uring_prep_write(sqe, f->fd, sp->buf + io[i].buf_off,
					    (unsigned int)len,
					    io[i].unit << shift);
			io_uring_sqe_set_data64(sqe, (uint64_t)queued);
			runs[queued] = (struct tm_spill_run){
				.start = i, .cnt = j - i, .len = (uint32_t)len };
			queued++;
			i = j;
		}
		submitted = tm_ring_submit_all(&f->ring, queued);
		broken = submitted < queued;
		while (done < submitted) {
			struct io_uring_cqe *cqe;
			struct tm_spill_run *r;
			uint64_t d;
			int rc = tm_ring_wait(&f->ring, &cqe), res;

			if (rc == -EINTR)
				continue;
			if (rc < 0) {
				broken = true;
				break;
			}
			d = io_uring_cqe_get_data64(cqe);
			io_uring_cqe_seen(&f->ring, cqe);
			if (d >= (uint64_t)queued || runs[d].seen)
				continue;	/* cannot happen: not ours */
			r = &runs[d];
			r->seen = true;
			res = tm_spill_fault(cqe->res);
			if (res >= 0 && (uint32_t)res != r->len)
				res = -EIO;	/* short write */
			for (int k = r->start; k < r->start + r->cnt; k++)
				io[k].res = res < 0 ? res : 0;
			if (res < 0 && !err)
				err = res;
			done++;
		}
		if (broken) {
			/* Unreaped runs: failed, and in flight if submitted. */
			for (int q = 0; q < queued; q++) {
				if (runs[q].seen)
					continue;
				for (int k = runs[q].start;
				     k < runs[q].start + runs[q].cnt; k++)
					io[k].lost = q < submitted;
			}
			tm_ring_reset(sp);
			if (!err)
				err = -EIO;
			break;
		}
		first = i;
	}
	return err;
}

/*
 * Read bytes [@got, @want) of the extent at byte @off of the file into
 * @dst + @got, continuing short reads.  Returns 0 or -EIO.
 */
static int tm_spill_pread(struct tm_spill *sp, off_t off, uint8_t *dst,
			  size_t got, size_t want)
{
	while (got < want) {
		size_t ask = want - got;
		ssize_t r;

		tm_fault_park(TM_FAULT_READ_STALL);
		if (tm_fault_fire(TM_FAULT_SPILL_READ))
			return -EIO;
		if (ask > (1u << sp->unit_shift) &&
		    tm_fault_fire(TM_FAULT_SHORT_READ))
			ask = (ask / 2) & ~(((size_t)1 << sp->unit_shift) - 1);
		r = pread(tm_file(sp)->fd, dst + got, ask, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* A single read: pread(), so that it waits for no ring. */
static int tm_file_read(struct tm_spill *sp, uint64_t off, uint32_t len,
			uint8_t *dst)
{
	return tm_spill_pread(sp, (off_t)off, dst, 0, len);
}

/*
 * Batched reads, for tmem_get_batch: the spilled pages of a batch are
 * read together, up to TM_READ_DEPTH extents submitted at once, and
 * reaped one by one as they complete, so that the caller decompresses
 * each while the disk works on the rest.
 *
 * They go through a ring of the calling thread's own, not the spill
 * writer's: getters then never wait for the write lock behind a spill
 * batch, nor for each other.  The ring and its TM_READ_BUF buffer are
 * made on the thread's first batch read and freed when it exits.
 *
 * A ring that fails under a batch (a submit it will not take, a wait
 * that fails) hands the reads it did not complete back to the caller,
 * which reads those pages one by one (tm_spill_read, into another
 * buffer).  Reads it took may still land in the buffer, and SQEs it
 * refused are still queued in it: they are owed.  The next batch on the
 * thread first submits and waits for what is owed (tm_reader_settle),
 * and uses the ring only once nothing is; until then it reads alone.
 */
struct tm_reader {
	struct io_uring ring;
	uint8_t *buf;		/* TM_READ_BUF bytes, aligned for O_DIRECT */
	uint32_t owed;		/* completions due to no batch */
	uint32_t unsent;	/* ...of which SQEs still to be submitted */
};

static pthread_key_t tm_reader_key;
static pthread_once_t tm_reader_once = PTHREAD_ONCE_INIT;
static bool tm_reader_key_ok;
static _Thread_local struct tm_reader *tm_reader_cur;

/* Thread exit.  A buffer that reads may still land in is never freed. */
static void tm_reader_free(void *arg)
{
	struct tm_reader *rd = arg;
	struct io_uring_cqe *cqe;
	bool clean = !rd->unsent;

	while (clean && rd->owed) {
		if (io_uring_wait_cqe(&rd->ring, &cqe)) {
			clean = false;
			break;
		}
		io_uring_cqe_seen(&rd->ring, cqe);
		rd->owed--;
	}
	io_uring_queue_exit(&rd->ring);
	if (clean)
		free(rd->buf);
	free(rd);
}

static void tm_reader_key_init(void)
{
	tm_reader_key_ok = !pthread_key_create(&tm_reader_key, tm_reader_free);
}

/* The calling thread's reader, made on first use; NULL if it cannot be. */
static struct tm_reader *tm_reader_get(void)
{
	struct tm_reader *rd = tm_reader_cur;
	void *buf;

	if (rd)
		return rd;
	pthread_once(&tm_reader_once, tm_reader_key_init);
	if (!tm_reader_key_ok)
		return NULL;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return NULL;
	if (posix_memalign(&buf, 4096, TM_READ_BUF))
		goto err_rd;
	rd->buf = buf;
	if (io_uring_queue_init(TM_READ_DEPTH, &rd->ring, 0) < 0)
		goto err_buf;
	if (pthread_setspecific(tm_reader_key, rd))
		goto err_ring;
	tm_reader_cur = rd;
	return rd;

err_ring:
	io_uring_queue_exit(&rd->ring);
err_buf:
	free(rd->buf);
err_rd:
	free(rd);
	return NULL;
}

/* Submit and reap what earlier batches left owed.  True once none is. */
static bool tm_reader_settle(struct tm_reader *rd)
{
	while (rd->unsent) {
		int r = tm_ring_submit(&rd->ring);

		if (r <= 0 && r != -EINTR)
			return false;
		rd->unsent -= r > 0 ? ((uint32_t)r < rd->unsent ?
				       (uint32_t)r : rd->unsent) : 0;
	}
	while (rd->owed) {
		struct io_uring_cqe *cqe;
		int r = tm_ring_wait(&rd->ring, &cqe);

		if (r == -EINTR)
			continue;
		if (r < 0)
			return false;
		io_uring_cqe_seen(&rd->ring, cqe);
		rd->owed--;
	}
	return true;
}

/* The thread's ring and buffer, settled; false if it has none usable. */
static bool tm_file_rb_start(struct tm_spill *sp, struct tm_rbatch *b)
{
	b->rd = tm_reader_get();
	if (b->rd && !tm_reader_settle(b->rd))
		b->rd = NULL;
	b->buf = b->rd ? b->rd->buf : NULL;
	return b->rd;
}

/* Queue the read of b->io[@k] on the thread's ring. */
static bool tm_file_rb_add(struct tm_spill *sp, struct tm_rbatch *b, int k)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->rd->ring);

	if (!sqe)
		return false;
	io_uring_prep_read(sqe, tm_file(sp)->fd, b->buf + b->io[k].buf_off,
			   b->io[k].len, b->io[k].unit << sp->unit_shift);
	io_uring_sqe_set_data64(sqe, (uint64_t)k);
	return true;
}

/* Submit every read added.  Those the ring will not take are owed. */
static void tm_file_rb_submit(struct tm_spill *sp, struct tm_rbatch *b)
{
	tm_fault_park(TM_FAULT_READ_STALL);
	b->submitted = tm_ring_submit_all(&b->rd->ring, b->n);
	b->inflight = b->submitted;
	if (b->submitted < b->n) {
		b->rd->unsent += (uint32_t)(b->n - b->submitted);
		b->rd->owed += (uint32_t)(b->n - b->submitted);
	}
}

/* A completion of @r with result @res: 0, or -EIO.  Short reads go on. */
static int tm_rbatch_finish(struct tm_spill *sp, struct tm_rbatch *b,
			    struct tm_spill_rd *r, int res)
{
	if (tm_fault_fire(TM_FAULT_SPILL_READ) || res <= 0)
		return -EIO;
	if ((uint32_t)res == r->len && r->len > (1u << sp->unit_shift) &&
	    tm_fault_fire(TM_FAULT_SHORT_READ))
		res = (res / 2) & ~((1 << sp->unit_shift) - 1);
	if ((uint32_t)res > r->len)
		return -EIO;
	return tm_spill_pread(sp, (off_t)(r->unit << sp->unit_shift),
			      b->buf + r->buf_off, (size_t)res, r->len);
}

/*
 * The next read of @b to complete, its res set to 0 or -EIO; -1 when
 * none is in flight any more (a ring that failed: the rest are owed,
 * and the tier hands them back to be read alone).
 */
static int tm_file_rb_reap(struct tm_spill *sp, struct tm_rbatch *b)
{
	while (b->inflight > 0) {
		struct io_uring_cqe *cqe;
		struct tm_spill_rd *r;
		uint64_t d;
		int rc = tm_ring_wait(&b->rd->ring, &cqe), res;

		if (rc == -EINTR)
			continue;
		if (rc < 0) {
			/* In flight still, into the buffer: owed. */
			b->rd->owed += (uint32_t)b->inflight;
			b->inflight = 0;
			break;
		}
		d = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&b->rd->ring, cqe);
		if (d >= (uint64_t)b->submitted || b->io[d].seen)
			continue;	/* cannot happen: not ours */
		b->inflight--;
		r = &b->io[d];
		r->seen = true;
		r->res = tm_rbatch_finish(sp, b, r, res);
		return (int)d;
	}
	return -1;
}

static const struct tm_spill_medium tm_file_medium = {
	.write = tm_file_write,
	.read = tm_file_read,
	.rb_start = tm_file_rb_start,
	.rb_add = tm_file_rb_add,
	.rb_submit = tm_file_rb_submit,
	.rb_reap = tm_file_rb_reap,
	.discard = NULL,	/* a scratch file: space is reused as is */
	.close = tm_file_close,
};
