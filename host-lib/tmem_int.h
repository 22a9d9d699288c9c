/* SPDX-License-Identifier: MIT */
/*
 * tmem_int.h - internals shared by the host library's files.
 *
 * Lock order, outermost first (never take one to the left while holding
 * one to its right):
 *
 *   spill write lock -> shard lock -> class lock -> kind LRU lock
 *
 * plus three leaf locks taken with nothing nested inside them: the spill
 * bitmap lock, the slab id lock and the pool table lock.
 *
 * At most one shard lock is held at a time, except by tmem_set_evict_cb,
 * which takes all of them in index order.  The evict callback is called
 * with one shard lock held and no other of the store's locks.
 */
#ifndef TMEM_INT_H
#define TMEM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tmem.h"

#define TM_EXPORT __attribute__((visibility("default")))

#define TM_PAGE_MIN	4096u
#define TM_PAGE_MAX	65536u

/* Private counters kept beside the public ones in each shard. */
enum {
	/* uncompressed bytes of pages whose data is in a slab */
	TM_ISTAT_RAM_PAGE_BYTES = TMEM_STAT__COUNT,
	TM_NSTAT
};

/* Strict charges must fit the budget; forced ones may go over it. */
enum tm_charge { TM_CHARGE_STRICT, TM_CHARGE_FORCE };

/* Result of a step that ran out of budget: make room and try again. */
#define TM_NEED_ROOM	(-10000)

/* ---- compress.c ------------------------------------------------------ */

#define TM_E_RAM	(1u << 17)	/* data in a slab slot; loc = handle */
#define TM_E_SPILL	(1u << 18)	/* data on spill; loc = first unit */
#define TM_E_SAME	(1u << 19)	/* no data; loc = the repeated word */
#define TM_E_RAW	(1u << 20)	/* data is the page, uncompressed */
#define TM_E_EPHEMERAL	(1u << 21)
#define TM_E_BIG	(1u << 22)	/* 64 KiB page */
#define TM_E_SIZE	0x1ffffu	/* bytes of data kept */

struct tm_packed {
	const uint8_t *data;	/* compressed bytes, or the page if RAW */
	uint32_t size;		/* bytes at data; 0 when SAME */
	uint32_t flags;		/* TM_E_SAME or TM_E_RAW or 0 */
	uint64_t word;		/* fill word when SAME */
};

int tm_pack(const void *page, uint32_t len, struct tm_packed *pk);
int tm_unpack(const uint8_t *data, uint32_t info, uint64_t word,
	      void *page, uint32_t len);
void *tm_scratch(size_t *size);

/* ---- hash.c ---------------------------------------------------------- */

struct tm_hkey {
	uint64_t k[2];		/* the per-store secret */
};

uint64_t tm_hash(const struct tm_hkey *k, const uint64_t *w, unsigned int n);
void tm_hkey_init(struct tm_hkey *k);

/* ---- slab.c ---------------------------------------------------------- */

#define TM_SLAB_MAX	(256u * 1024)
#define TM_NCLASS	248

/* owner words at the head of each slab, one per slot */
#define TM_OWNER_FREE	0x80000000u	/* free; low bits: next free slot */
#define TM_OWNER_PENDING 0x7fffffffu	/* allocated, not yet indexed */
#define TM_OWNER_NONE	0x7fffffffu	/* end of a free chain */
#define TM_SHARD_SHIFT	27
#define TM_EID_MASK	((1u << TM_SHARD_SHIFT) - 1)

struct tm_slab {
	uint8_t *mem;
	_Atomic uint32_t *owner;	/* one word per slot */
	struct tm_slab *lru_prev, *lru_next;	/* kind LRU lock */
	struct tm_slab *part_prev, *part_next;	/* class lock */
	uint32_t id;
	uint16_t cls;
	uint8_t kind;		/* 0 persistent, 1 ephemeral */
	uint8_t on_partial;
	uint8_t compacted;	/* emptied by compaction: do not cache it */
	uint32_t nlive;		/* class lock */
	uint32_t free_head;	/* class lock */
	uint32_t nfresh;	/* slots never handed out yet */
	_Atomic uint8_t reclaiming;	/* set under the kind LRU lock */
	_Atomic uint8_t referenced;	/* second chance for the LRU */
};

struct tm_class {
	pthread_mutex_t lock;
	struct tm_slab *partial;	/* slabs with free slots */
	uint32_t size;		/* slot bytes */
	uint32_t nslots;
	uint32_t slab_bytes;
	/* written under the lock, read without it by compaction's scan */
	_Atomic uint32_t nslabs;	/* slabs of this class */
	_Atomic uint32_t nlive;		/* slots in use in them */
};

struct tm_kind_lru {
	pthread_mutex_t lock;
	struct tm_slab *head, *tail;	/* head: newest or last read */
	uint64_t nslabs;
};

#define TM_NREGION	256
#define TM_CACHE_SLOTS	(TM_SLAB_MAX / 4096)

/* Address space that slabs are carved from, in 64 KiB units. */
struct tm_region {
	uint8_t *base;
	uint64_t *map;		/* one bit per unit in use */
	uint32_t nunits;
	uint32_t cursor;
};

struct tm_slabs {
	struct tm_class cls[2][TM_NCLASS];
	struct tm_kind_lru lru[2];
	pthread_mutex_t id_lock;
	struct tm_slab **dir;		/* chunks of TM_SLAB_CHUNK descs */
	uint32_t dir_len;
	uint32_t next_id;
	uint32_t *free_ids;
	uint32_t nfree_ids, free_ids_cap;
	pthread_mutex_t region_lock;	/* region[], their maps, cache */
	struct tm_region *region[TM_NREGION];
	uint32_t nregions;
	uint8_t *cache[TM_CACHE_SLOTS];	/* freed slabs by size, resident */
	uint64_t cache_bytes;
};

struct tmem_store;

int tm_slabs_init(struct tm_slabs *sl);
void tm_slabs_fini(struct tmem_store *s);
uint64_t tm_slab_cache_drop(struct tmem_store *s);
int tm_slot_alloc(struct tmem_store *s, int kind, uint32_t size,
		  enum tm_charge mode, uint64_t *handle, uint8_t **ptr);
void tm_slot_set_owner(struct tmem_store *s, uint64_t handle, uint32_t owner);
void tm_slot_free(struct tmem_store *s, uint64_t handle);
uint8_t *tm_slot_ptr(struct tmem_store *s, uint64_t handle);
struct tm_slab *tm_slab_of(struct tmem_store *s, uint64_t handle);
struct tm_slab *tm_slab_pick(struct tmem_store *s, int kind);
bool tm_slab_unpick(struct tmem_store *s, struct tm_slab *sb);
uint32_t tm_slab_nslots(struct tmem_store *s, struct tm_slab *sb);
uint64_t tm_handle(uint32_t slab_id, uint32_t slot);
uint32_t tm_class_excess(struct tmem_store *s, int kind, uint32_t cls);
struct tm_slab *tm_compact_pick(struct tmem_store *s, int kind, uint32_t cls);
uint32_t tm_compact_alloc(struct tmem_store *s, struct tm_slab *src,
			  uint64_t *handles, uint32_t n);

/* ---- index.c --------------------------------------------------------- */

#define TM_NSHARD	16
#define TM_ENT_SHIFT	6	/* 64 page entries per chunk */
#define TM_OBJ_SHIFT	4	/* 16 objects per chunk */

struct tm_entry {		/* 32 bytes: keep it that way */
	uint64_t loc;
	uint32_t obj;		/* owning object; 0 when the entry is free */
	uint32_t index;
	uint32_t hnext;		/* hash chain, or free list */
	uint32_t oprev, onext;	/* the object's pages */
	uint32_t info;		/* TM_E_* flags and data size */
};

struct tm_obj {
	uint64_t oid[3];
	uint32_t pool;
	uint32_t hnext;		/* hash chain, or free list */
	uint32_t head;		/* first page */
	uint32_t npages;	/* 0 when the object is free */
};

struct tm_table {
	uint8_t **chunks;
	uint32_t nchunks, cap;
	uint32_t used;		/* ids handed out: 1 .. used */
	uint32_t free_head;
	uint32_t item;		/* item size */
	uint32_t shift;		/* log2 of items per chunk */
	/*
	 * A shrink in progress (page table only, see tm_shard_tidy): no id
	 * above @limit is handed out, and live items above it are moved
	 * below, from @hi down.  0 when not shrinking.
	 */
	uint32_t limit, hi;
};

struct tm_shard {
	pthread_mutex_t lock;	/* everything below but hkey */
	struct tm_hkey hkey;	/* the store's, copied: set once at create */
	struct tm_table ents, objs;
	uint32_t *ebkt, *obkt;	/* hash heads */
	uint32_t ebkt_n, obkt_n;	/* powers of two, or 0 */
	uint32_t nents, nobjs;
	uint32_t n_eph_same;	/* ephemeral entries with no slab */
	uint64_t spill_seq;	/* bumped when a spilled page's extent goes */
	uint64_t index_bytes;	/* what this shard charged */
	_Atomic uint64_t stat[TM_NSTAT];	/* relaxed; sums are gauges */
} __attribute__((aligned(64)));

uint32_t tm_shard_of(struct tmem_store *s, int pool,
		     const struct tmem_key *key);
uint32_t tm_obj_find(struct tm_shard *sh, uint32_t pool, const uint64_t oid[3]);
struct tm_obj *tm_obj_ptr(struct tm_shard *sh, uint32_t id);
uint32_t tm_ent_find(struct tm_shard *sh, uint32_t obj, uint32_t index);
struct tm_entry *tm_ent_ptr(struct tm_shard *sh, uint32_t id);
int tm_ent_insert(struct tmem_store *s, struct tm_shard *sh, uint32_t pool,
		  const struct tmem_key *key, enum tm_charge charge,
		  uint32_t *eid);
bool tm_ent_fits(struct tmem_store *s, struct tm_shard *sh, uint32_t pool,
		 const struct tmem_key *key);
void tm_ent_set(struct tm_shard *sh, struct tm_entry *e, uint32_t info,
		uint64_t loc);
void tm_ent_remove(struct tmem_store *s, struct tm_shard *sh, uint32_t eid);
int64_t tm_obj_remove(struct tmem_store *s, struct tm_shard *sh, uint32_t obj);
int64_t tm_shard_flush_pool(struct tmem_store *s, struct tm_shard *sh,
			    uint32_t pool);
void tm_shard_fini(struct tmem_store *s, struct tm_shard *sh);
bool tm_shard_tidy(struct tmem_store *s, struct tm_shard *sh);

static inline void tm_stat_add(struct tm_shard *sh, int stat, int64_t n)
{
	atomic_fetch_add_explicit(&sh->stat[stat], (uint64_t)n,
				  memory_order_relaxed);
}

/* ---- spill.c: the spill tier, whatever its medium --------------------- */

/*
 * The tier keeps what every medium shares: the unit bitmap that hands
 * out space, the batch buffer that writes are gathered in, the back-off
 * after a failed write, discards held back until no lock is held, and
 * the counters.  A medium (struct tm_spill_medium) only moves bytes:
 * spill-file.c is the io_uring scratch file, spill-ops.c the caller's
 * own (tmem_store_create_spill).
 */

struct tm_spill_io {
	uint64_t unit;		/* first unit of the extent */
	uint32_t bytes;		/* data bytes (extent rounds up) */
	uint32_t buf_off;	/* where in the batch buffer */
	int res;		/* 0 or -errno, after the write */
	bool lost;		/* failed, but may still land: keep the extent */
};

/* An extent freed while its discard waits for the write lock. */
struct tm_spill_gone {
	uint64_t unit;
	uint64_t n;		/* units */
};

#define TM_SPILL_GONE	256	/* discards held back at most */

struct tm_spill;
struct tm_rbatch;

/*
 * What the tier asks of a medium.  Offsets and lengths are in bytes,
 * whole units; every buffer is aligned to the unit.  None of these is
 * called once the medium is closed.
 */
struct tm_spill_medium {
	/*
	 * Write @n pages laid out in the batch buffer (sp->buf), setting
	 * each io's res, and lost for a write that failed but may still
	 * land.  Returns 0 or the first error.  Caller holds the write lock.
	 */
	int (*write)(struct tm_spill *sp, struct tm_spill_io *io, int n);
	/* Read @len bytes at @off into @dst.  0 or -EIO.  Any thread. */
	int (*read)(struct tm_spill *sp, uint64_t off, uint32_t len,
		    uint8_t *dst);
	/*
	 * Batch reads (tm_rbatch_*): rb_start finds the calling thread's
	 * read buffer (b->buf, TM_READ_BUF bytes) or says there is none;
	 * rb_add queues b->io[k] (false: it cannot); rb_submit starts
	 * them; rb_reap returns the index of the next one done, its res
	 * set to 0 or -EIO, or -1 when none is left in flight (the tier
	 * hands the rest back to be read alone).
	 */
	bool (*rb_start)(struct tm_spill *sp, struct tm_rbatch *b);
	bool (*rb_add)(struct tm_spill *sp, struct tm_rbatch *b, int k);
	void (*rb_submit)(struct tm_spill *sp, struct tm_rbatch *b);
	int (*rb_reap)(struct tm_spill *sp, struct tm_rbatch *b);
	/*
	 * The @len bytes at @off hold nothing any more; NULL if the medium
	 * does not care.  Caller holds the write lock and no other.
	 */
	void (*discard)(struct tm_spill *sp, uint64_t off, uint64_t len);
	/* Let go of the medium.  No other call runs or follows. */
	void (*close)(struct tm_spill *sp);
};

struct tm_spill {
	const struct tm_spill_medium *medium;	/* NULL: spilling is off */
	void *priv;		/* the medium's own */
	bool buffered;		/* pages may stay in memory (no O_DIRECT, tmpfs) */
	uint32_t unit_shift;	/* log2 of the allocation unit */
	uint64_t nunits;
	pthread_mutex_t write_lock;	/* buf, writes, discards */
	uint8_t *buf;		/* aligned batch buffer */
	uint32_t buf_bytes;
	uint64_t fixed_bytes;	/* held by the tier and medium: ram_fixed */
	pthread_mutex_t map_lock;	/* map, cursor, used, gone, ngone */
	uint64_t *map;		/* one bit per unit */
	uint64_t cursor;
	uint64_t used;
	/*
	 * With a medium that takes discards, freed extents wait here, their
	 * units still taken, until a holder of the write lock has discarded
	 * them: a discard then never races a later write of the same units.
	 * TM_SPILL_GONE of them, and as many for the one draining them.
	 */
	struct tm_spill_gone *gone;
	uint32_t ngone;
	_Atomic int64_t backoff_until;	/* ns; no spilling before then */
	_Atomic bool dead;		/* medium broken: no spilling, ever */
	_Atomic uint64_t ring_resets;	/* rings thrown away after a failure */
	_Atomic uint64_t lost_bytes;	/* extents kept for late writes */
	uint32_t delay_ms;		/* TMEM_TEST_SPILL_DELAY_MS */
	/* Reclaim batches that hold picked slabs, to be freed when done. */
	_Atomic uint32_t batches;
};

#define TM_SPILL_BATCH	256	/* pages per spill submission at most */
#define TM_SPILL_BUF	(1u << 20)	/* the batch buffer */

void tm_spill_init(struct tm_spill *sp);
int tm_spill_attach(struct tm_spill *sp, const struct tm_spill_medium *m,
		    void *priv, uint32_t unit_shift, uint64_t max);
void tm_spill_close(struct tm_spill *sp);
bool tm_spill_usable(struct tm_spill *sp);
uint32_t tm_spill_units(struct tm_spill *sp, uint32_t bytes);
int tm_spill_alloc(struct tm_spill *sp, uint32_t nunits, uint64_t *unit);
void tm_spill_free(struct tm_spill *sp, uint64_t unit, uint32_t bytes);
void tm_spill_discard_gone(struct tm_spill *sp);
int tm_spill_write(struct tmem_store *s, struct tm_spill_io *io, int n);
void tm_spill_release(struct tm_spill *sp, const struct tm_spill_io *io);
int tm_spill_read(struct tm_spill *sp, uint64_t unit, uint32_t bytes,
		  uint8_t *dst);

/* spill-file.c: the scratch file (struct tmem_config's spill_path) */
int tm_spill_file_open(struct tm_spill *sp, const char *path, uint64_t max,
		       uint32_t flags);

/* spill-ops.c: the caller's medium (tmem_store_create_spill) */
int tm_spill_ops_open(struct tm_spill *sp, const struct tmem_spill_ops *ops,
		      void *opaque, uint32_t unit, uint64_t max);

/* Batched reads (tmem_get_batch), into a buffer of the calling thread's. */
#define TM_READ_DEPTH	64		/* reads submitted together at most */
#define TM_READ_BUF	(256u << 10)	/* a thread's read buffer */
#define TM_RD_ALONE	1		/* not read: tm_spill_read it */

struct tm_spill_rd {
	uint64_t unit;		/* first unit of the extent */
	uint32_t len;		/* extent bytes, whole units */
	uint32_t buf_off;	/* where in the read buffer; a medium may
				 * lay the batch out again at submit */
	int res;		/* once reaped: 0, -EIO or TM_RD_ALONE */
	bool seen;		/* reaped */
};

struct tm_reader;

struct tm_rbatch {
	uint8_t *buf;		/* NULL: no read buffer, nothing is added */
	struct tm_reader *rd;	/* the file's ring for this thread, or NULL */
	bool tried;		/* buf was looked for (at the first add) */
	int n;			/* reads added */
	int submitted;		/* ...that the medium took */
	int inflight;		/* ...not reaped yet */
	int next;		/* where the hand-back of the rest is */
	uint32_t off;		/* read buffer bytes used */
	struct tm_spill_rd io[TM_READ_DEPTH];
};

void tm_rbatch_init(struct tm_rbatch *b);
int tm_rbatch_add(struct tm_spill *sp, struct tm_rbatch *b, uint64_t unit,
		  uint32_t bytes);
void tm_rbatch_submit(struct tm_spill *sp, struct tm_rbatch *b);
int tm_rbatch_reap(struct tm_spill *sp, struct tm_rbatch *b,
		   const uint8_t **data);
uint64_t tm_spill_used(struct tm_spill *sp);
uint64_t tm_now_ns(void);

/* ---- store.c --------------------------------------------------------- */

#define TM_POOL_SLOT_BITS	18
#define TM_POOL_CHUNK		1024
#define TM_POOL_GEN_MAX		8191

struct tm_pool {
	_Atomic uint32_t state;	/* gen << 1 | alive */
	uint8_t kind;		/* TMEM_PERSISTENT or TMEM_EPHEMERAL */
	uint32_t page_size;
};

struct tmem_store {
	struct tm_shard shard[TM_NSHARD];
	struct tm_slabs slabs;
	struct tm_spill spill;

	_Atomic uint64_t budget;
	_Atomic uint64_t ram_used;	/* ram_data + ram_index, for budget */
	_Atomic uint64_t ram_data;	/* slab bytes */
	_Atomic uint64_t ram_index;	/* index bytes */
	_Atomic uint64_t ram_frees;	/* times any of it was given back */
	_Atomic uint64_t ram_fixed;
	_Atomic uint64_t slabs_live;
	_Atomic uint64_t reclaim_runs;
	enum tmem_raw_policy raw_policy;
	uint64_t spill_max;

	pthread_mutex_t pool_lock;	/* pool_dir growth, free slots */
	struct tm_pool *_Atomic *pool_dir;
	uint32_t pool_dir_len;
	uint32_t pool_next;
	uint32_t *pool_free;
	uint32_t npool_free, pool_free_cap;

	/* Evict reports: written with every shard lock held, read with one. */
	tmem_evict_fn evict_fn;
	void *evict_opaque;

	pthread_t reclaimer;
	pthread_mutex_t rc_lock;
	pthread_cond_t rc_cond;
	_Atomic bool rc_stop;
	bool rc_kick, rc_started;
};

struct tm_pool *tm_pool_get(struct tmem_store *s, int pool);
/* TMEM_TEST_FLUSH_DELAY_MS, before a pool or object flush (store.c) */
void tm_flush_test_delay(void);
bool tm_pool_alive(struct tm_pool *p, int pool);

bool tm_charge(struct tmem_store *s, _Atomic uint64_t *ctr, uint64_t bytes,
	       enum tm_charge mode);
void tm_uncharge(struct tmem_store *s, _Atomic uint64_t *ctr, uint64_t bytes);
uint64_t tm_ram_used(struct tmem_store *s);

/* ---- reclaim.c ------------------------------------------------------- */

int tm_reclaim_start(struct tmem_store *s);
void tm_reclaim_stop(struct tmem_store *s);
void tm_reclaim_kick(struct tmem_store *s);
bool tm_make_room(struct tmem_store *s, int kind, int *spills_left);
bool tm_make_entry_room(struct tmem_store *s);
uint64_t tm_compact(struct tmem_store *s);
void tm_free_data(struct tmem_store *s, uint32_t info, uint64_t loc);

#endif /* TMEM_INT_H */
