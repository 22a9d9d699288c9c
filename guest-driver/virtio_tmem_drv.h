/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio_tmem_drv.h - the guest driver's internal API.
 *
 * Layers, bottom up:
 *   request.c    batches of ops on the request queues, credits, sync ops
 *   events.c     the eventq: host messages
 *   frontswap.c  the frontswap backend and its guest-held copies
 *   cleancache.c the cleancache backend and its presence filter
 *   prefetch.c   pages fetched ahead with GET_RANGE (cleancache, frontswap)
 *   core.c       probe/remove, pools, module init, parameters
 *   pm.c         suspend and hibernation
 *   stats.c      counters and debugfs
 *   latency.c    histograms of synchronous op latency (debugfs)
 *   fault.c      fault injection for the tests (debugfs)
 *   torture.c    a stress test of both backends, run from debugfs
 *
 * Lock order, outermost first (docs/guest-driver.md has the argument):
 *   virtio_tmem_dev_mutex     binding, unbinding, sleep and wakeup
 *   swap disk mutex           frontswap.c: bringing pages back, swapoff
 *   virtio_tmem_pools_mutex   process context only
 *   queue->lock               irqsave; may be taken with interrupts off
 *   virtio_tmem_copies_lock   irqsave
 *   pool->held's xarray lock  irqsave; a leaf
 *   virtio_tmem_pf_lock       prefetch.c, irqsave; a leaf
 *   vt->event_lock            irqsave; a leaf
 * The device pointer is read under SRCU, which nests inside everything.
 */
#ifndef _VIRTIO_TMEM_DRV_H
#define _VIRTIO_TMEM_DRV_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/srcu.h>
#include <linux/swap.h>
#include <linux/timer.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "virtio_tmem.h"

#define VIRTIO_TMEM_MAX_QUEUES		16
#define VIRTIO_TMEM_BATCHES		16	/* per queue */
#define VIRTIO_TMEM_STAGING		4	/* batches' worth of staging pages */
#define VIRTIO_TMEM_MAX_BATCH		256	/* pages per batch */
#define VIRTIO_TMEM_EVENT_BUFS		8
#define VIRTIO_TMEM_FLUSH_MS		10	/* a batch waits at most this long */
#define VIRTIO_TMEM_RETRY_MS		100	/* longest wait to re-add a batch */
#define VIRTIO_TMEM_BACKOFF_MS		100	/* after a refused synchronous store */
#define VIRTIO_TMEM_DEFERRED		4096	/* flushes waiting for a batch */
#define VIRTIO_TMEM_CC_POOLS		32
#define VIRTIO_TMEM_FILTER_BITS		16	/* a pool's counters by key */
#define VIRTIO_TMEM_OBJ_FILTER_BITS	12	/* and by object */
#define VIRTIO_TMEM_PF_PAGES		128	/* prefetched pages held, at most */

/* What an op was for: kicks and interrupts are counted per class. */
enum virtio_tmem_class {
	VIRTIO_TMEM_FS_STORE,
	VIRTIO_TMEM_FS_LOAD,
	VIRTIO_TMEM_CC_PUT,
	VIRTIO_TMEM_CC_GET,
	VIRTIO_TMEM_FLUSH,
	VIRTIO_TMEM_CONTROL,
	VIRTIO_TMEM_BRING_BACK,		/* gets of reclaim and the drain */
	VIRTIO_TMEM_NR_CLASSES,
};

/*
 * The presence filter of an ephemeral pool (cleancache.c): how many puts
 * the host may still hold, counted by the slot each key hashes to, and by
 * the slot each object (file) hashes to.  A get asks the host only if both
 * counts are above 0.  The key counters saturate once the pool holds more
 * pages than there are counters; the object counters keep answering the
 * misses of files the host holds nothing of, however many pages it holds.
 * A count that is too high costs one exit, one that is too low costs one
 * hit; neither decides coherency, since flushes are always sent.  The key
 * counters are updated racily on purpose; the object counters, which a
 * lost update would zero for a whole file, atomically.
 */
struct virtio_tmem_filter {
	u8 keys[BIT(VIRTIO_TMEM_FILTER_BITS)];
	atomic_t objects[BIT(VIRTIO_TMEM_OBJ_FILTER_BITS)];
};

/*
 * A pool as the kernel's hooks know it: a swap type or a mounted
 * filesystem.  It outlives devices: when a device is bound, each pool in
 * use gets a pool on it (on_device, dev_id).  Written under
 * virtio_tmem_pools_mutex; the hot paths read in_use, on_device, dev_id
 * and the flags with READ_ONCE and cope with a stale value, because the
 * device answers a stale id with VIRTIO_TMEM_S_BADPOOL.
 */
struct virtio_tmem_pool {
	bool in_use;
	bool on_device;
	bool hint_off;		/* host: cleancache puts here do not pay off */
	bool poisoned;		/* a flush was lost: miss until repaired */
	u8 kind;		/* VIRTIO_TMEM_POOL_PERSISTENT or _EPHEMERAL */
	/*
	 * Ephemeral pools: pages a get that goes to the host asks for now
	 * (prefetch.c), 1 to VIRTIO_TMEM_RANGE_MAX.  Halved when the host
	 * returns few of them, doubled on a hit; updated racily on purpose.
	 */
	u8 pf_window;
	u32 dev_id;
	struct virtio_tmem_filter *filter;	/* ephemeral pools */
	/*
	 * Persistent pools: the offsets stored on the device and not yet
	 * invalidated, so that they can be fetched before it goes away, and
	 * where each page is (VIRTIO_TMEM_PENDING, _ON_HOST and _ON_DISK in
	 * frontswap.c).  Written under its own irqsave lock.
	 */
	struct xarray held;
	/*
	 * Persistent pools: where the swap area keeps its pages, so that
	 * they can be written back to it.  Under the swap disk mutex of
	 * frontswap.c.
	 */
	struct block_device *swap_bdev;	/* NULL: nowhere we can write */
	struct inode *swap_file;	/* a swap file on swap_bdev, or NULL */
};

/* A process waiting for the status of one op. */
struct virtio_tmem_waiter {
	bool done;
	u8 status;
	u32 value;
};

/* Guest-side state of one op in a batch. */
struct virtio_tmem_slot {
	u8 class;
	bool credited;
	u8 nmore;		/* GET_RANGE: pages after target */
	struct page *copy;	/* PUT data: a staging page, or the caller's */
	struct page *target;	/* GET: the caller's page */
	struct page **more;	/* GET_RANGE: the neighbours' pages */
	struct virtio_tmem_pool *pool;
	struct virtio_tmem_waiter *waiter;
};

/* Device-readable and device-writable headers of one request. */
struct virtio_tmem_out {
	struct virtio_tmem_req req;
	struct virtio_tmem_op ops[];
};

struct virtio_tmem_in {
	struct virtio_tmem_resp resp;
	struct virtio_tmem_status status[];
};

/* One request being filled, waiting to be added, in flight, or idle. */
struct virtio_tmem_batch {
	struct list_head node;
	unsigned int nops, ngets, nputs;
	unsigned int nstaged;		/* staging pages it carries */
	unsigned int credits_asked;
	unsigned long classes;
	/*
	 * A lone load the device may run before the requests sent ahead of
	 * it (VIRTIO_TMEM_REQ_F_OVERTAKE): outside the queue's order.
	 */
	bool ahead;
	bool busy;			/* not idle: its ops are in the sequence */
	struct virtio_tmem_out *out;
	struct virtio_tmem_in *in;
	struct virtio_tmem_slot *slots;
	struct scatterlist *sg_out, *sg_in;
};

struct virtio_tmem;

struct virtio_tmem_queue {
	/*
	 * Protects everything below, the batches it owns, and vq.  The
	 * order in which ops reach the device is the order in which they
	 * joined this queue's sequence: batches sent, then stalled, then
	 * the open one, then the deferred flushes.  An op joins only at the
	 * tail; docs/guest-driver.md ("Ordering") has the argument.
	 */
	spinlock_t lock;
	struct virtqueue *vq;
	struct virtio_tmem *vt;
	struct virtio_tmem_batch *open;	/* being filled */
	struct list_head idle;
	unsigned int nbusy;		/* batches not idle */
	/*
	 * Sent, but not yet on the ring: the ring was full or had no memory
	 * for indirect descriptors.  Added back, oldest first, when a
	 * request completes or, with none in flight, from the timer.
	 */
	struct list_head stalled;
	unsigned int retry_ms;		/* the timer's next retry delay */
	unsigned int inflight;		/* on the ring */
	/* Synchronous ops polling the used ring; callbacks are off meanwhile. */
	unsigned int npolling;
	u32 answer_ns;			/* their recent answer time, averaged */
	/* requests in the queue's order (not ahead), ever */
	unsigned long submitted, completed;
	unsigned long kick_classes;	/* carried since the last kick */
	/* Sends a batch left half full; retries stalled batches. */
	struct timer_list timer;
	/*
	 * Flushes issued in atomic context while every batch was busy.  They
	 * are the tail of the sequence: while there are any, nothing joins
	 * the open batch, which then holds only older ops.
	 */
	unsigned int ndeferred;
	struct virtio_tmem_op *deferred;
	struct virtio_tmem_slot *deferred_slots;
	wait_queue_head_t wait;		/* a batch completed; pages came back */
	struct virtio_tmem_batch *batches;
	/*
	 * Staging pages for put data: pages[0..nfree) are free, npages are
	 * owned.  Far fewer than the batches could carry, so that flushes
	 * always find a batch.  A frontswap put the host refused takes its
	 * page away for good (frontswap.c); refill_work replaces it, in
	 * process context, never from the memory reserves.
	 */
	struct page **pages;
	unsigned int nfree, npages;
	struct work_struct refill_work;
};

struct virtio_tmem {
	struct virtio_device *vdev;
	unsigned int nqueues;
	struct virtio_tmem_queue *queues;
	unsigned int max_ops;		/* ops per request, from config */
	unsigned int batch;		/* pages per request */
	u32 max_credits;
	bool has_credits, has_ephemeral, has_get_range, has_overtake;
	/*
	 * Why new pages are refused, a VIRTIO_TMEM_DRAIN_* bit each, or 0.
	 * Set, then waited for with synchronize_srcu(), so that every store
	 * that missed it has queued its put before the device is drained.
	 */
	unsigned long draining;
	bool frozen;			/* asleep: queues torn down */
	u64 host_budget;		/* config space, for the statistics */

	atomic_t credits;		/* held, not spent */
	/*
	 * Until then (jiffies), stores without credit are refused in the
	 * guest: the host just refused one, so another would cost an exit
	 * for nothing.  Credits bring batching back sooner.
	 */
	unsigned long store_backoff;
	atomic_t credits_asked;		/* asked for in requests in flight */

	/* Protects eventq and events_stopped. */
	spinlock_t event_lock;
	bool events_stopped;		/* being removed: handle no more */
	struct virtqueue *eventq;
	void *event_bufs[VIRTIO_TMEM_EVENT_BUFS];
	struct work_struct event_work;
	struct work_struct reclaim_work;
	struct work_struct repair_work;
	struct work_struct config_work;	/* reads the budget after a change */
	atomic_long_t reclaim_target;
};

enum { VIRTIO_TMEM_DRAIN_REMOVE, VIRTIO_TMEM_DRAIN_SLEEP };

/* core.c */
extern struct mutex virtio_tmem_dev_mutex;
extern struct mutex virtio_tmem_pools_mutex;
extern struct srcu_struct virtio_tmem_srcu;
extern struct virtio_tmem __rcu *virtio_tmem_dev;
extern struct virtio_tmem_pool virtio_tmem_fs_pools[MAX_SWAPFILES];
extern struct virtio_tmem_pool virtio_tmem_cc_pools[VIRTIO_TMEM_CC_POOLS];
extern bool virtio_tmem_frontswap_on, virtio_tmem_cleancache_on;
extern bool virtio_tmem_sync;
extern unsigned int virtio_tmem_poll_us, virtio_tmem_poll_max_us;
int virtio_tmem_pool_attach(struct virtio_tmem *vt,
			    struct virtio_tmem_pool *pool);
void virtio_tmem_pool_detach(struct virtio_tmem *vt,
			     struct virtio_tmem_pool *pool);
struct virtio_tmem_pool *virtio_tmem_pool_by_dev_id(u32 dev_id);
struct page *virtio_tmem_alloc_page(gfp_t gfp);
int virtio_tmem_setup(struct virtio_tmem *vt);
void virtio_tmem_teardown(struct virtio_tmem *vt);
void virtio_tmem_stop_stores(struct virtio_tmem *vt, unsigned int why);

/* request.c */
int virtio_tmem_queues_alloc(struct virtio_tmem *vt);
void virtio_tmem_queues_attach(struct virtio_tmem *vt, struct virtqueue **vqs);
void virtio_tmem_queues_detach(struct virtio_tmem *vt);
void virtio_tmem_queues_free(struct virtio_tmem *vt);
void virtio_tmem_request_done(struct virtqueue *vq);
struct virtio_tmem_queue *virtio_tmem_queue_of(struct virtio_tmem *vt,
					       u64 hash);
struct virtio_tmem_op *virtio_tmem_add_op(struct virtio_tmem_queue *q,
					  struct virtio_tmem_slot **slot,
					  bool need_page, bool can_wait,
					  unsigned long *flags);
void virtio_tmem_op_added(struct virtio_tmem_queue *q);
bool virtio_tmem_queue_flush(struct virtio_tmem_queue *q,
			     const struct virtio_tmem_op *flush,
			     struct virtio_tmem_pool *pool);
int virtio_tmem_sync_op(struct virtio_tmem *vt, struct virtio_tmem_queue *q,
			const struct virtio_tmem_op *op, u8 class,
			struct virtio_tmem_pool *pool, struct page *page,
			u32 *value);
int virtio_tmem_sync_range(struct virtio_tmem *vt,
			   struct virtio_tmem_queue *q,
			   const struct virtio_tmem_op *op, u8 class,
			   struct virtio_tmem_pool *pool, struct page *page,
			   struct page **more, unsigned int nmore, u32 *value);
void virtio_tmem_quiesce(struct virtio_tmem *vt);
unsigned int virtio_tmem_poll_window_max(struct virtio_tmem *vt);
bool virtio_tmem_take_credit(struct virtio_tmem *vt);

/* events.c */
int virtio_tmem_events_init(struct virtio_tmem *vt);
void virtio_tmem_events_stop(struct virtio_tmem *vt);
void virtio_tmem_events_free(struct virtio_tmem *vt);
void virtio_tmem_event_done(struct virtqueue *vq);

/* frontswap.c */
extern struct frontswap_ops virtio_tmem_frontswap_ops;
void virtio_tmem_frontswap_setup(void);
void virtio_tmem_fs_put_done(struct virtio_tmem_slot *s, u8 status,
			     struct virtio_tmem_queue *q);
void virtio_tmem_reclaim(struct work_struct *work);
unsigned long virtio_tmem_frontswap_drain(struct virtio_tmem *vt);
unsigned long virtio_tmem_frontswap_on_host(void);
void virtio_tmem_frontswap_forget(void);
void virtio_tmem_frontswap_pool_init(unsigned int type, bool find_disk);

/* pm.c */
int virtio_tmem_pm_init(void);
void virtio_tmem_pm_exit(void);
int virtio_tmem_freeze(struct virtio_device *vdev);
int virtio_tmem_restore(struct virtio_device *vdev);

/* cleancache.c */
extern const struct cleancache_ops virtio_tmem_cleancache_ops;
void virtio_tmem_filter_clear(struct virtio_tmem_pool *pool);
void virtio_tmem_filter_drop_object(struct virtio_tmem_pool *pool,
				    const struct virtio_tmem_op *op, u32 n);
void virtio_tmem_filter_add(struct virtio_tmem_pool *pool,
			    const struct virtio_tmem_op *op, int delta);
void virtio_tmem_pool_poison(struct virtio_tmem *vt,
			     struct virtio_tmem_pool *pool);
void virtio_tmem_repair(struct work_struct *work);

/* prefetch.c */
/* A GET_RANGE in flight, and which of its pages were put or flushed since. */
struct virtio_tmem_pf_flight {
	struct list_head node;
	struct virtio_tmem_pool *pool;
	__le64 oid[3];
	u32 first;		/* the index asked for */
	u32 count;		/* pages asked for, it included */
	u32 stale;		/* bit i: first + i changed since */
};

extern unsigned int virtio_tmem_prefetch;
void virtio_tmem_pf_init(void);
void virtio_tmem_pf_shrinker_init(void);
bool virtio_tmem_pf_get(struct virtio_tmem_pool *pool,
			const struct virtio_tmem_op *op, struct page *page);
void virtio_tmem_pf_forget(struct virtio_tmem_pool *pool,
			   const struct virtio_tmem_op *op);
void virtio_tmem_pf_forget_pool(struct virtio_tmem_pool *pool);
unsigned int virtio_tmem_pf_begin(struct virtio_tmem_pf_flight *f,
				  unsigned int want, struct page **pages);
void virtio_tmem_pf_trim(struct virtio_tmem_pf_flight *f, struct page **pages,
			 unsigned int count);
void virtio_tmem_pf_end(struct virtio_tmem_pf_flight *f, struct page **pages,
			u32 found);
int virtio_tmem_pf_send(struct virtio_tmem *vt, struct virtio_tmem_queue *q,
			struct virtio_tmem_pf_flight *f,
			struct virtio_tmem_op *get, u8 class, struct page *page,
			struct page **pages, u32 *found);
unsigned int virtio_tmem_pf_pages(void);

/* stats.c */
enum virtio_tmem_stat {
	VIRTIO_TMEM_FRONTSWAP_STORES,
	VIRTIO_TMEM_FRONTSWAP_STORE_REJECTS,
	VIRTIO_TMEM_FRONTSWAP_STORE_BACKOFFS,
	VIRTIO_TMEM_FRONTSWAP_STORES_BATCHED,
	VIRTIO_TMEM_FRONTSWAP_LOADS,
	VIRTIO_TMEM_FRONTSWAP_LOAD_MISSES,
	VIRTIO_TMEM_FRONTSWAP_LOADS_FROM_COPY,
	VIRTIO_TMEM_FRONTSWAP_INVALIDATES,
	VIRTIO_TMEM_FRONTSWAP_KEPT,
	VIRTIO_TMEM_CLEANCACHE_PUTS,
	VIRTIO_TMEM_CLEANCACHE_PUT_DROPS,
	VIRTIO_TMEM_CLEANCACHE_PUT_REFUSED,
	VIRTIO_TMEM_CLEANCACHE_PUT_HINTED_OFF,
	VIRTIO_TMEM_CLEANCACHE_GETS,
	VIRTIO_TMEM_CLEANCACHE_HITS,
	VIRTIO_TMEM_CLEANCACHE_MISSES,
	VIRTIO_TMEM_CLEANCACHE_MISSES_NO_EXIT,
	VIRTIO_TMEM_CLEANCACHE_INVALIDATES,
	VIRTIO_TMEM_FLUSHES_LOST,
	VIRTIO_TMEM_REQUESTS,
	VIRTIO_TMEM_KICKS,
	VIRTIO_TMEM_INTERRUPTS,
	VIRTIO_TMEM_CREDITS_GRANTED,
	VIRTIO_TMEM_EVENTS,
	VIRTIO_TMEM_EVICTED_KEYS,
	VIRTIO_TMEM_RECLAIM_REQUESTS,
	VIRTIO_TMEM_RECLAIMED,
	VIRTIO_TMEM_RECLAIMED_TO_DISK,
	VIRTIO_TMEM_BROUGHT_BACK,
	VIRTIO_TMEM_HINTS_OFF,
	VIRTIO_TMEM_HINTS_ON,
	VIRTIO_TMEM_ADD_FAILURES,
	VIRTIO_TMEM_LOAD_RETRIES,
	VIRTIO_TMEM_STAGING_REFILLS,
	VIRTIO_TMEM_CLEANCACHE_PUTS_FLUSHED,
	VIRTIO_TMEM_SUSPENDS,
	VIRTIO_TMEM_SYNC_POLLED,
	VIRTIO_TMEM_SYNC_SLEPT,
	VIRTIO_TMEM_PREFETCH_ASKED,
	VIRTIO_TMEM_PREFETCH_KEPT,
	VIRTIO_TMEM_PREFETCH_STALE,
	VIRTIO_TMEM_PREFETCH_HITS,
	VIRTIO_TMEM_PREFETCH_DROPPED,
	VIRTIO_TMEM_FRONTSWAP_LOADS_PREFETCHED,
	VIRTIO_TMEM_SLEEP_RESERVED,
	VIRTIO_TMEM_FREE_AT_FREEZE,
	VIRTIO_TMEM_CLEANCACHE_GETS_AHEAD,
	VIRTIO_TMEM_CLEANCACHE_GETS_IN_ORDER,
	/* profile.c: each nanoseconds counter is followed by its calls' */
	VIRTIO_TMEM_PROFILE_NS_CLEANCACHE_PUT,
	VIRTIO_TMEM_PROFILE_CLEANCACHE_PUT,
	VIRTIO_TMEM_PROFILE_NS_CLEANCACHE_GET,
	VIRTIO_TMEM_PROFILE_CLEANCACHE_GET,
	VIRTIO_TMEM_PROFILE_NS_FRONTSWAP_STORE,
	VIRTIO_TMEM_PROFILE_FRONTSWAP_STORE,
	VIRTIO_TMEM_PROFILE_NS_FRONTSWAP_LOAD,
	VIRTIO_TMEM_PROFILE_FRONTSWAP_LOAD,
	VIRTIO_TMEM_PROFILE_NS_PAGE_COPY,
	VIRTIO_TMEM_PROFILE_PAGE_COPY,
	VIRTIO_TMEM_PROFILE_NS_SEND,
	VIRTIO_TMEM_PROFILE_SEND,
	VIRTIO_TMEM_PROFILE_NS_INTERRUPT,
	VIRTIO_TMEM_PROFILE_INTERRUPT,
	VIRTIO_TMEM_NR_STATS,
};

extern atomic64_t virtio_tmem_stats[VIRTIO_TMEM_NR_STATS];
extern atomic64_t virtio_tmem_class_kicks[VIRTIO_TMEM_NR_CLASSES];
extern atomic64_t virtio_tmem_class_irqs[VIRTIO_TMEM_NR_CLASSES];

static inline void virtio_tmem_count(enum virtio_tmem_stat s, long n)
{
	atomic64_add(n, &virtio_tmem_stats[s]);
}

void virtio_tmem_count_classes(atomic64_t *counters, unsigned long classes);
const char *virtio_tmem_class_name(unsigned int class);
struct dentry *virtio_tmem_debugfs_init(void);

/* latency.c */
void virtio_tmem_latency_add(unsigned int class, u64 ns);
void virtio_tmem_latency_debugfs(struct dentry *dir);

/* fault.c: knobs for the tests, in debugfs virtio_tmem/fault/ */
struct virtio_tmem_faults {
	u32 batches;		/* request structures a queue uses; 0: all */
	u32 fail_add_interval;	/* of every this many virtqueue adds, */
	u32 fail_add_burst;	/* the first this many fail (-ENOSPC) */
	u32 store_delay_us;	/* stall stores past the device check, */
	u32 store_delay_every;	/* one in this many (0: all) */
	u32 get_delay_us;	/* stall cleancache gets past the pool */
	u32 get_delay_every;	/* check, one in this many (0: all) */
	u32 busy_alloc_pages;	/* pages to allocate with a slot busy */
	u32 nomem_setup;	/* queue and event allocations fail */
	u32 fail_restores;	/* restores to fail (-ENOMEM) */
	u32 filter_full;	/* per-key filters say "maybe" to all */
	u32 overtake_unchecked;	/* cleancache gets overtake blindly */
};

extern struct virtio_tmem_faults virtio_tmem_faults;
bool virtio_tmem_fault_add_fails(void);
void virtio_tmem_fault_store_delay(void);
void virtio_tmem_fault_get_delay(void);
void virtio_tmem_fault_busy_alloc(void);
bool virtio_tmem_fault_restore_fails(void);
void virtio_tmem_fault_debugfs(struct dentry *dir);

/* profile.c */
extern u32 virtio_tmem_profile;
u64 virtio_tmem_profile_start(void);
void virtio_tmem_profile_end(enum virtio_tmem_stat ns, u64 start);
void virtio_tmem_copy_page(struct page *to, struct page *from);
void virtio_tmem_profile_debugfs(struct dentry *dir);

/* torture.c */
void virtio_tmem_torture_debugfs(struct dentry *dir);

#endif /* _VIRTIO_TMEM_DRV_H */
