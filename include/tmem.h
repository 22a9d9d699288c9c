/* SPDX-License-Identifier: MIT */
/*
 * tmem.h - host-side transcendent memory store.
 *
 * A store keeps guest pages LZ4-compressed in host RAM, within a byte
 * budget the host sets and may change at any time.  Pages live in pools.
 * A persistent pool (frontswap) must return every page it accepted,
 * byte-identical, until the page is flushed; when RAM runs short its
 * pages are spilled, compressed, to a scratch file (or to a medium of
 * the caller's: tmem_store_create_spill).  An ephemeral pool
 * (cleancache) may lose any page at any time, and loses them first.
 *
 * Pages are keyed by (pool, 192-bit object id, 32-bit index).
 *
 * Every call is thread-safe and may be made from any thread.  Calls on
 * different keys proceed in parallel; there is no store-wide lock on the
 * put/get path.  Calls that race on the same key are serialised: each
 * sees the state left by the one before it.
 *
 * Errors are returned as negative errno values.  No call aborts on bad
 * input; a NULL store, an unknown pool or a wrong length is -EINVAL or
 * -EBADF.
 */
#ifndef TMEM_H
#define TMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tmem_store;
struct tmem_iter;

/* What to do with a page whose LZ4 output saves less than 1/8 of it. */
enum tmem_raw_policy {
	TMEM_RAW_STORE = 0,	/* default: keep it uncompressed */
	TMEM_RAW_REJECT = 1,	/* refuse the put with -E2BIG */
};

/* tmem_config.flags */
#define TMEM_SPILL_KEEP	(1u << 0)	/* do not unlink the spill file */
/*
 * Accept a spill file whose pages may stay in host memory: on a file
 * system without O_DIRECT (in the page cache) or one that lives in RAM
 * (tmpfs, ramfs).  Such spilled bytes are counted in
 * TMEM_STAT_SPILL_BUFFERED.  Without this flag such a file system is
 * refused with -EOPNOTSUPP.
 */
#define TMEM_SPILL_BUFFERED	(1u << 1)

struct tmem_config {
	/*
	 * RAM budget in bytes: page data, allocator waste and the index,
	 * including the index entries of spilled and same-filled pages.
	 */
	uint64_t budget;
	/*
	 * Spill target.  NULL or "" disables spilling.  An existing
	 * directory gets a fresh file in it; any other path is created as
	 * the file itself, and must not exist yet: an existing file or a
	 * symlink there is -EEXIST, never truncated.  Either way the file
	 * has mode 0600 and is unlinked at once unless TMEM_SPILL_KEEP is
	 * set.  The file is scratch: its contents mean nothing once the
	 * store is destroyed.  A file system without O_DIRECT, or in RAM
	 * (tmpfs), is refused (-EOPNOTSUPP) unless TMEM_SPILL_BUFFERED.
	 */
	const char *spill_path;
	/* Largest size the spill file may reach, in bytes. 0: no spill. */
	uint64_t spill_max;
	enum tmem_raw_policy raw_policy;
	uint32_t flags;
};

/*
 * tmem_store_create - make a store from @cfg (copied; @cfg and the
 * string it points to may be freed on return).
 * Returns 0 and sets *@out, or -EINVAL (bad config), -ENOMEM, or the
 * errno of opening or setting up the spill file.
 */
int tmem_store_create(const struct tmem_config *cfg, struct tmem_store **out);

/*
 * tmem_store_destroy - free every page, pool and the spill file.
 * No other call on @s may be running or made afterwards. NULL is a no-op.
 * Once it returns, no op of a spill medium of the caller's (see
 * tmem_store_create_spill) runs or is called again.
 */
void tmem_store_destroy(struct tmem_store *s);

/*
 * A spill medium of the caller's (ABI 1.5): instead of the file of
 * struct tmem_config, a store made with tmem_store_create_spill spills
 * to whatever the caller's ops reach (QEMU: a BlockBackend).  The store
 * keeps allocating space and all accounting; the ops only move bytes.
 *
 * The medium is a range of bytes [0, spill_max) of the caller's.  The
 * store writes a page's compressed data to an extent it chose, and
 * reads it back from there for as long as the page is stored; the
 * medium's contents mean nothing to the store once it is destroyed.
 */
struct tmem_spill_extent {
	uint64_t offset;	/* bytes from the start of the medium */
	uint32_t len;		/* bytes to move */
	void *buf;		/* @len bytes: to write, or to read into */
	int res;		/* set by the op: 0, or -errno */
};

/*
 * struct tmem_spill_ops - what a store asks of a spill medium.
 *
 * Alignment: every offset and len is a multiple of the unit given to
 * tmem_store_create_spill (512 to 4096), and every buf is aligned to
 * it, so a medium opened with O_DIRECT can take them as they are.  An
 * extent to write or read is at most 1 MiB.  The bufs of one call never
 * overlap, nor do the extents of one write; a read may name the same
 * bytes of the medium twice (a batch get given a key twice).
 *
 * Threads: the ops run in the store's threads: a putting thread (a page
 * that goes straight to the medium, or the inline reclaim of a put), the
 * store's reclaim thread, and any thread that gets pages.  Writes and
 * discards of one store are serialised (the store holds its spill write
 * lock), but reads run at any time, in parallel with each other and with
 * a write or a discard, from several threads at once: the ops must allow
 * that.  A read may even cover bytes that a write or a discard running
 * at the same time changes; the store then throws away what it read, so
 * such a read need only return.  An op may block, since it is the I/O,
 * but the caller of the store call it runs in waits for it: while a
 * write or a discard runs no other spill write starts, and a get whose
 * read keeps racing flushes of its shard reads, the last time, with that
 * shard's lock held.  An op must not call any tmem_ function on this
 * store.
 *
 * Calls are synchronous: an op returns when every one of its @n extents
 * has a result in res, and no byte moves for them after that.  It
 * returns 0, or -errno if it did nothing at all (then every extent
 * counts as failed with that error, whatever its res says).  A res that
 * is neither 0 nor -errno counts as -EIO.
 *
 * @write: store the extents' bufs on the medium.  A failed extent
 *	loses nothing: its pages stay in RAM, over the budget if need be,
 *	and count in TMEM_STAT_SPILL_WRITE_ERRORS (-ENOSPC also in
 *	TMEM_STAT_SPILL_ENOSPC).  Spilling then stops for a second, so
 *	that a failing medium does not turn every put into a failed write;
 *	meanwhile puts that find no RAM are -ENOSPC (reserved ones are
 *	kept over the budget), and the reclaim thread tries again after
 *	that second.  A write may instead be declined as a whole, with
 *	-EAGAIN and no byte moved: for a medium that must not block the
 *	thread it was asked in (QEMU's main loop).  Its pages stay in RAM
 *	as after a failure, but that is no error: nothing is counted, the
 *	store does not back off, and its reclaim thread is woken to spill
 *	them.  Writes from the reclaim thread must not be declined.
 * @read: fill the extents' bufs from the medium.  A batch get's
 *	extents come sorted by offset, pages that are neighbours on the
 *	medium merged into one (one request for pages spilled together).
 *	A page whose extent failed is -EIO for its get
 *	(TMEM_STAT_SPILL_READ_ERRORS), but is not dropped: a later get
 *	reads it again.
 * @discard: the @len bytes at @offset hold nothing any more (pages
 *	flushed, overwritten or got exclusively), a hint the medium may use
 *	to give space back; NULL if it does not care.  The store does not
 *	reuse those bytes until the call returns.  It holds them back after
 *	the flush and discards them with its next spill write, or within
 *	about a second from its reclaim thread, merging neighbours; a
 *	flush of many pages at once may skip discards (at most 256 wait).
 *	Bytes waiting for their discard still count in TMEM_STAT_SPILL_USED.
 */
struct tmem_spill_ops {
	int (*write)(void *opaque, struct tmem_spill_extent *ext,
		     unsigned int n);
	int (*read)(void *opaque, struct tmem_spill_extent *ext,
		    unsigned int n);
	void (*discard)(void *opaque, uint64_t offset, uint64_t len);
};

/*
 * tmem_store_create_spill - tmem_store_create, spilling to the caller's
 * medium through @ops (ABI 1.5).  @cfg is as for tmem_store_create,
 * except that spill_path must be NULL or "" and flags must not hold
 * TMEM_SPILL_KEEP or TMEM_SPILL_BUFFERED: spill_max is the size of the
 * medium the store may use, rounded down to a whole @unit.  @unit, a
 * power of two from 512 to 4096, is the alignment of every extent (see
 * struct tmem_spill_ops).  @ops is copied; @opaque is passed to every op
 * and must stay valid until tmem_store_destroy returns.  No op is
 * called after that, nor during this call.
 *
 * A batch get's reads (tmem_get_batch, tmem_get_stored_batch) are one
 * call of @read with up to 64 extents, into a 256 KiB buffer of the
 * calling thread's own, made on its first such batch and freed when the
 * thread exits.  A single get reads its one extent alone.
 *
 * Returns 0 and sets *@out, or -EINVAL (bad config, NULL @ops, @ops
 * without write or read, a bad @unit, a spill_max below @unit), or
 * -ENOMEM.  TMEM_STAT_SPILL_BUFFERED, TMEM_STAT_SPILL_RING_RESETS and
 * TMEM_STAT_SPILL_LOST stay 0 for such a store: they are the file's.
 */
int tmem_store_create_spill(const struct tmem_config *cfg,
			    const struct tmem_spill_ops *ops, void *opaque,
			    uint32_t unit, struct tmem_store **out);

enum tmem_pool_kind {
	TMEM_PERSISTENT = 1,	/* frontswap: puts must come back */
	TMEM_EPHEMERAL = 2,	/* cleancache: may be dropped any time */
};

/*
 * tmem_pool_create - make an empty pool whose pages are @page_size bytes
 * (4096 or 65536).
 * Returns the pool id (>= 0), or -EINVAL, or -ENOMEM.  Ids of destroyed
 * pools are not handed out again until 8191 other pools have used the
 * same slot, so a stale id is -EBADF rather than someone else's pool.
 */
int tmem_pool_create(struct tmem_store *s, enum tmem_pool_kind kind,
		     uint32_t page_size);

/*
 * tmem_pool_destroy - flush every page of @pool and retire its id.
 * Returns the number of pages flushed, or -EBADF.
 */
int64_t tmem_pool_destroy(struct tmem_store *s, int pool);

/*
 * tmem_pool_info - kind and page size of @pool, for migration.
 * Either output may be NULL.  Returns 0 or -EBADF.
 */
int tmem_pool_info(struct tmem_store *s, int pool,
		   enum tmem_pool_kind *kind, uint32_t *page_size);

struct tmem_key {
	uint64_t oid[3];	/* object: inode, swap type, ... */
	uint32_t index;		/* page within the object */
};

/*
 * tmem_put - store @len bytes at @page under @key, replacing any page
 * already there.  @len must equal the pool's page size.  The bytes are
 * copied; @page is not kept.
 *
 * Returns 0 if the page was accepted.  Otherwise the put was rejected,
 * nothing is stored under @key any more (an old copy is flushed, so a
 * later get cannot return stale data), and the result says why:
 *   -ENOSPC  no room: RAM budget spent and (persistent pools) no spill
 *            space left, the spill file failing, or no room in the
 *            budget even for the page's index entry
 *   -ENOMEM  the host could not allocate memory
 *   -E2BIG   the page does not compress and raw_policy is TMEM_RAW_REJECT
 *   -EBADF   no such pool
 *   -EINVAL  NULL argument or @len is not the pool's page size
 * A put to a persistent pool that needs RAM and finds none first drops
 * ephemeral pages, then spills the coldest persistent pages, and may
 * wait for that spill I/O.
 */
int tmem_put(struct tmem_store *s, int pool, const struct tmem_key *key,
	     const void *page, size_t len);

/* tmem_put_flags: the put was promised a place in advance. */
#define TMEM_PUT_RESERVED	(1u << 0)
/* tmem_put_flags: the caller may block while the store makes room. */
#define TMEM_PUT_WAIT		(1u << 1)

/*
 * tmem_put_flags - tmem_put with @flags.  With TMEM_PUT_RESERVED (only
 * for persistent pools) a page that neither RAM within the budget nor
 * the spill file can take is kept in RAM over the budget instead of
 * being refused, and the reclaim thread is woken to bring usage back
 * down; it fails only with -ENOMEM, -EBADF or -EINVAL.  The caller
 * promised the page a place (virtio-tmem's credits) and must bound how
 * many such puts it makes: that bound is how far the budget can be
 * overrun.  Counted in TMEM_STAT_PUT_OVER_BUDGET.
 *
 * With TMEM_PUT_WAIT (ABI 1.6; older libraries refuse it with -EINVAL)
 * a persistent page bound for the spill file, whose index entry does
 * not fit yet, waits for room for as long as the store keeps freeing
 * RAM (a budget cut the reclaim thread works through, other putters'
 * spills), and gives up only after 20 ms in which nothing was freed
 * and no spilled slab was waiting to be.
 * Without it the page waits at most 20 ms in all.  For callers whose
 * thread may block on disk I/O and that cannot take a refusal, such as
 * a block device; not for one that must answer promptly.
 */
int tmem_put_flags(struct tmem_store *s, int pool, const struct tmem_key *key,
		   const void *page, size_t len, unsigned int flags);

/*
 * tmem_get - copy the page under @key into @buf, which holds @len bytes
 * (the pool's page size).  The page stays stored.
 * Returns 0 (hit), -ENOENT (miss), -EIO (the spilled copy could not be
 * read back; the page stays stored and a retry may succeed), -EBADF or
 * -EINVAL.  On any error @buf may have been written but holds no page.
 */
int tmem_get(struct tmem_store *s, int pool, const struct tmem_key *key,
	     void *buf, size_t len);

/*
 * tmem_get_exclusive - as tmem_get, then flush the page.  On -EIO the
 * page is not flushed.
 */
int tmem_get_exclusive(struct tmem_store *s, int pool,
		       const struct tmem_key *key, void *buf, size_t len);

/* tmem_get_batch flags */
#define TMEM_GET_EXCLUSIVE	(1u << 0)	/* flush each page read */

/*
 * tmem_get_batch - tmem_get of @n pages of @pool at once (ABI 1.2): the
 * page under @keys[i] is copied into @bufs[i], which holds @len bytes
 * (the pool's page size), and res[i] gets what tmem_get would have
 * returned for it: 0, -ENOENT, -EIO, -EBADF (the pool went meanwhile),
 * or -EINVAL (@bufs[i] is NULL).  With TMEM_GET_EXCLUSIVE each page read
 * is then flushed, as by tmem_get_exclusive (not on -EIO).
 *
 * Pages in RAM are copied as by tmem_get.  The disk reads of the
 * spilled ones are submitted together, up to 64 at a time, so that the
 * disk works on up to 64 of them at once rather than one; each page is
 * decompressed as its read completes.
 * The reads go through an io_uring and a 256 KiB buffer of the calling
 * thread's own, made on its first batch that meets a spilled page and
 * freed when the thread exits; if they cannot be made, the pages are
 * read one by one.
 *
 * Returns the number of pages found (res[i] == 0), or -EINVAL (NULL
 * @s, @keys, @bufs or @res with @n > 0, @len not the pool's page size,
 * @n > INT_MAX, unknown @flags) or -EBADF (no such pool); then @res is
 * not written.  @keys, @bufs and @res are not kept after the call.
 *
 * Each page is got as by its own tmem_get, in no particular order: a
 * batch sees every page as some interleaving of the calls that race
 * with it would leave it, never a torn or stale copy.  A key given
 * twice is read twice; with TMEM_GET_EXCLUSIVE one of them gets the
 * page and the other -ENOENT.  Two @bufs[i] must not overlap.
 */
int tmem_get_batch(struct tmem_store *s, int pool, const struct tmem_key *keys,
		   void *const *bufs, int *res, unsigned int n, size_t len,
		   unsigned int flags);

/* tmem_flush_page - drop one page.  Returns 0, -ENOENT, -EBADF, -EINVAL. */
int tmem_flush_page(struct tmem_store *s, int pool, const struct tmem_key *key);

/*
 * tmem_flush_object - drop every page of object @oid.
 * Returns the number of pages dropped (0 if none), -EBADF or -EINVAL.
 */
int64_t tmem_flush_object(struct tmem_store *s, int pool,
			  const uint64_t oid[3]);

/*
 * tmem_object_pages - how many pages object @oid holds now (ABI 1.3):
 * what a tmem_flush_object of it would cost, for callers that must bound
 * the work they do in one go.  Costs a lookup per shard, not per page.
 * Returns the count (0 if none), -EBADF or -EINVAL.
 */
int64_t tmem_object_pages(struct tmem_store *s, int pool,
			  const uint64_t oid[3]);

/*
 * tmem_flush_pool - drop every page of @pool; the pool stays usable.
 * Returns the number of pages dropped, or -EBADF.
 */
int64_t tmem_flush_pool(struct tmem_store *s, int pool);

/*
 * tmem_set_budget - change the RAM budget.  Puts see the new budget at
 * once: while usage is over it, no put takes RAM, not even free space
 * the store already holds.  When it shrinks, the store's reclaim thread
 * drops ephemeral pages and then spills persistent ones until usage is
 * under it; the call itself does not wait for that.  Returns 0 or
 * -EINVAL.
 */
int tmem_set_budget(struct tmem_store *s, uint64_t bytes);

/*
 * tmem_evict_fn - told of one ephemeral page the store dropped on its
 * own: the coldest pages that reclaim (a put that needed room, or the
 * reclaim thread after a budget cut) threw out.  @key is only valid
 * during the call.  Pages the caller removed itself (flushes, pool
 * destruction, an overwrite, a refused put) are not reported, and
 * persistent pages are never dropped.
 *
 * The callback runs in whichever thread made the room, a putting thread
 * or the store's reclaim thread, with one of the store's internal locks
 * held.  So it must be short and must not block: it may copy the key and
 * take a lock of its own, provided no thread ever calls into this store
 * while holding that lock.  It must not call any tmem_ function.
 */
typedef void (*tmem_evict_fn)(void *opaque, int pool,
			      const struct tmem_key *key);

/*
 * tmem_set_evict_cb - call @fn(@opaque, ...) for every ephemeral page
 * dropped from now on; a NULL @fn stops the reports.  Once it returns,
 * the previous callback is not running and will not be called again, so
 * its @opaque may be freed.  Must not be called from inside a callback.
 * Returns 0 or -EINVAL (NULL store).
 */
int tmem_set_evict_cb(struct tmem_store *s, tmem_evict_fn fn, void *opaque);

/* Counters and gauges.  Read them with tmem_stat_values() (or, those of
 * ABI 1.0, tmem_stats()); name them with tmem_stat_name(). */
enum tmem_stat {
	TMEM_STAT_PUTS,			/* puts accepted */
	TMEM_STAT_PUT_REJ_NOSPACE,	/* puts rejected: -ENOSPC */
	TMEM_STAT_PUT_REJ_NOMEM,	/* puts rejected: -ENOMEM */
	TMEM_STAT_PUT_REJ_RAW,		/* puts rejected: -E2BIG */
	TMEM_STAT_PUT_REJ_INVALID,	/* puts rejected: -EBADF, -EINVAL */
	TMEM_STAT_PUT_OVERWRITES,	/* puts that replaced a page */
	TMEM_STAT_GET_HITS_RAM,
	TMEM_STAT_GET_HITS_SPILL,
	TMEM_STAT_GET_MISSES,
	TMEM_STAT_GET_ERRORS,		/* gets that returned -EIO */
	TMEM_STAT_FLUSH_PAGES,		/* pages dropped by any flush */
	TMEM_STAT_FLUSH_OBJECTS,	/* tmem_flush_object calls */
	TMEM_STAT_FLUSH_POOLS,		/* tmem_flush_pool/destroy calls */
	TMEM_STAT_EVICTIONS,		/* ephemeral pages dropped for room */
	TMEM_STAT_SPILLS,		/* persistent pages written to spill */
	TMEM_STAT_SPILL_DIRECT,		/* ...of which straight from a put */
	TMEM_STAT_SPILL_READS,		/* spilled pages read back */
	TMEM_STAT_SPILL_WRITE_ERRORS,	/* spill writes that failed (page kept) */
	TMEM_STAT_SPILL_ENOSPC,		/* ...of which the disk was full */
	TMEM_STAT_SPILL_READ_ERRORS,
	TMEM_STAT_PAGES_PERSISTENT,	/* gauge: stored persistent pages */
	TMEM_STAT_PAGES_EPHEMERAL,	/* gauge: stored ephemeral pages */
	TMEM_STAT_PAGES_SPILLED,	/* gauge: persistent pages on spill */
	TMEM_STAT_PAGES_SAME,		/* gauge: same-filled, no data kept */
	TMEM_STAT_PAGES_RAW,		/* gauge: kept uncompressed */
	TMEM_STAT_BYTES_PERSISTENT,	/* gauge: page bytes before compression */
	TMEM_STAT_BYTES_EPHEMERAL,	/* gauge: page bytes before compression */
	TMEM_STAT_BYTES_COMPRESSED,	/* gauge: compressed bytes held in RAM */
	TMEM_STAT_RAM_USED,		/* gauge: DATA + INDEX bytes */
	TMEM_STAT_RAM_DATA,		/* gauge: allocator slabs, waste included */
	TMEM_STAT_RAM_INDEX,		/* gauge: page, object and hash tables */
	TMEM_STAT_RAM_FIXED,		/* gauge: per-store buffers, not budgeted */
	TMEM_STAT_BUDGET,		/* gauge: the current budget */
	TMEM_STAT_SPILL_USED,		/* gauge: spill file bytes in use */
	TMEM_STAT_SPILL_MAX,		/* gauge: the spill cap */
	TMEM_STAT_SLABS,		/* gauge: allocator slabs in use */
	TMEM_STAT_RECLAIM_RUNS,		/* reclaim passes (thread or inline) */
	TMEM_STAT_PUT_OVER_BUDGET,	/* reserved puts kept over budget */
	/* ABI 1.1: read these with tmem_stat_values() */
	TMEM_STAT_SPILL_BUFFERED,	/* gauge: spill bytes maybe in memory */
	TMEM_STAT_SPILL_RING_RESETS,	/* io_uring rings replaced after failing */
	TMEM_STAT_SPILL_LOST,		/* gauge: spill bytes a failed write may
					 * still land in, never reused */
	/* appended since ABI 1.3, read with tmem_stat_values() as well */
	TMEM_STAT_PUT_WAITS,		/* persistent puts that waited for room
					 * for their index entry */
	TMEM_STAT_PUT_WAIT_NS,		/* ...the time they waited, in total */
	TMEM_STAT_PUT_WAIT_TIMEOUTS,	/* ...of which gave up at the limit */
	TMEM_STAT__COUNT
};

/* The stats of ABI 1.0, which struct tmem_stats holds. */
#define TMEM_STATS_V1	38

/*
 * A snapshot of the ABI 1.0 stats.  Its size never changes, so a program
 * built against any tmem.h may pass one; stats added since (from
 * TMEM_STAT_SPILL_BUFFERED on) are read with tmem_stat_values().
 */
struct tmem_stats {
	uint64_t v[TMEM_STATS_V1];
	/* uncompressed bytes / compressed bytes, over pages held in RAM
	 * with data (same-filled pages excluded); 0 when there are none. */
	double compression_ratio;
	/* 1 - BYTES_COMPRESSED / RAM_DATA: the allocator's waste. */
	double fragmentation;
};

/*
 * tmem_stats - fill @out with a snapshot.  Counters are read without
 * stopping other threads, so a snapshot taken during traffic may mix
 * instants; each value on its own is exact.  Returns 0 or -EINVAL.
 */
int tmem_stats(struct tmem_store *s, struct tmem_stats *out);

/*
 * tmem_stat_values - every stat, indexed by enum tmem_stat: writes the
 * first min(@n, count) of them to @v, where count is the number of stats
 * this library has, and returns count (or -EINVAL).  A caller built
 * against an older header passes its own TMEM_STAT__COUNT and gets what
 * it knows; @v may be NULL when @n is 0.  Read as tmem_stats() does.
 */
int tmem_stat_values(struct tmem_store *s, uint64_t *v, unsigned int n);

/* tmem_stat_name - a stable snake_case name, or NULL if out of range. */
const char *tmem_stat_name(unsigned int stat);

/*
 * Stored forms (ABI 1.4): a page as the store keeps it, to move it to
 * another store without decompressing and compressing it again, as
 * migration does.
 */
enum tmem_form {
	TMEM_FORM_SAME = 1,	/* no data: every 8 bytes of the page are @word */
	TMEM_FORM_LZ4 = 2,	/* an LZ4 block that decompresses to the page */
	TMEM_FORM_RAW = 3,	/* the page itself, uncompressed */
};

struct tmem_stored {
	uint32_t form;		/* enum tmem_form */
	uint32_t len;		/* data bytes: 0 (SAME), below the page
				 * size (LZ4), the page size (RAW) */
	uint64_t word;		/* SAME: the page's first 8 bytes, as they
				 * lie in memory (not a number) */
};

/*
 * tmem_get_stored_batch - the stored forms of @n pages of @pool (ABI
 * 1.4): the form of the page under @keys[i] goes to @st[i] and its data,
 * @st[i].len bytes, to @bufs[i], which holds @len bytes (the pool's page
 * size, which any form fits).  res[i] is as for tmem_get_batch: 0,
 * -ENOENT, -EIO, -EBADF or -EINVAL.  Nothing is decompressed; spilled
 * pages are read as tmem_get_batch reads them, together.  Counts in the
 * get statistics as tmem_get_batch does.
 *
 * Returns the number of pages found, or -EINVAL (NULL @s, or NULL
 * arrays with @n > 0, @len not the pool's page size, @n > INT_MAX) or
 * -EBADF (no such pool); then @res is not written.
 */
int tmem_get_stored_batch(struct tmem_store *s, int pool,
			  const struct tmem_key *keys, void *const *bufs,
			  struct tmem_stored *st, int *res, unsigned int n,
			  size_t len);

/*
 * tmem_put_stored - tmem_put_flags of a page given in its stored form
 * (ABI 1.4), @st and @st->len bytes at @data, as tmem_get_stored_batch
 * gave them, perhaps by another store.  The form is checked before
 * anything is stored: LZ4 data must decompress to exactly the pool's
 * page size, RAW data must be that size, a SAME page has no data.  A
 * page that passes is kept as given, not compressed again.
 *
 * Returns what tmem_put_flags returns, or -EBADMSG: @st or @data is not
 * a page of this pool (unknown form, wrong length, LZ4 data that does
 * not decompress to a page).  On any error nothing is stored under @key
 * any more, as for tmem_put.
 */
int tmem_put_stored(struct tmem_store *s, int pool, const struct tmem_key *key,
		    const struct tmem_stored *st, const void *data,
		    unsigned int flags);

/*
 * tmem_iter_begin - start walking @pool's pages, for migration.  The
 * walk covers the pages stored when it began; pages flushed since are
 * skipped and pages put since may be missed, so the caller should stop
 * the pool's traffic first.  Returns 0 and sets *@out, or -EBADF,
 * -EINVAL, -ENOMEM.
 */
int tmem_iter_begin(struct tmem_store *s, int pool, struct tmem_iter **out);

/*
 * tmem_iter_next - copy the next page into @buf (@len = page size) and
 * its key into *@key.  Returns 1 (a page), 0 (the walk is over), -EIO
 * (that page could not be read back; the walk can go on), or -EINVAL
 * (nothing consumed).  Each page is fetched as by tmem_get, and counts
 * in the get statistics.
 */
int tmem_iter_next(struct tmem_iter *it, struct tmem_key *key,
		   void *buf, size_t len);

/*
 * tmem_iter_next_keys - the walk's next keys, up to @n of them, without
 * their pages (ABI 1.4), for a caller that fetches pages in batches
 * (tmem_get_stored_batch).  A key may name a page flushed since the walk
 * began.  Returns how many keys went to @keys, 0 once the walk is over,
 * or -EINVAL.
 */
int tmem_iter_next_keys(struct tmem_iter *it, struct tmem_key *keys,
			unsigned int n);

/*
 * tmem_iter_left - how many keys the walk has still to hand out (ABI
 * 1.4), some of them perhaps flushed since it began; -EINVAL for NULL.
 */
int64_t tmem_iter_left(const struct tmem_iter *it);

/* tmem_iter_end - free the walk.  NULL is a no-op. */
void tmem_iter_end(struct tmem_iter *it);

#ifdef __cplusplus
}
#endif

#endif /* TMEM_H */
