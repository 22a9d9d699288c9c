/*
 * Virtio transcendent memory device
 *
 * Guest pages (frontswap and cleancache) kept compressed in host RAM
 * under a budget the host sets, spilled to a file when RAM runs short.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_VIRTIO_TMEM_H
#define QEMU_VIRTIO_TMEM_H

#include "hw/virtio/virtio.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "qemu/coroutine.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qom/object.h"
#include "system/iothread.h"
#include "system/tmem-live.h"
#include "system/tmem-store.h"

#define TYPE_VIRTIO_TMEM "virtio-tmem-device"
OBJECT_DECLARE_SIMPLE_TYPE(VirtIOTmem, VIRTIO_TMEM)

/* Upper bounds on what a guest can make the device hold at once. */
#define VIRTIO_TMEM_MAX_QUEUES      64
#define VIRTIO_TMEM_MAX_OPS         4096
#define VIRTIO_TMEM_QUEUE_SIZE      256

/*
 * Bounds on the properties.  A budget is 0 (store nothing) or at least
 * one page, and at most 2^56 bytes: all that a process can address
 * with 5-level paging, so no host can give one guest more (the store's
 * own bounds, TMEM_STORE_*_BUDGET).  Credits
 * beyond the credited puts one request queue can carry at once (a ring
 * of requests of the largest max-ops) buy a driver nothing but let it
 * overrun the budget further; a hit-ratio window of more GETs than that
 * judges too late to be of use.
 */
#define VIRTIO_TMEM_RING_OPS    (VIRTIO_TMEM_QUEUE_SIZE * VIRTIO_TMEM_MAX_OPS)
#define VIRTIO_TMEM_MAX_CREDITS     VIRTIO_TMEM_RING_OPS
#define VIRTIO_TMEM_MAX_HINT_WINDOW VIRTIO_TMEM_RING_OPS
#define VIRTIO_TMEM_NR_OPS          (VIRTIO_TMEM_OP_MISSES + 1)

/*
 * Driver pool ids are (generation << 16 | slot), so an id the driver
 * destroyed never reaches the pool that takes its slot next.
 */
#define VIRTIO_TMEM_POOL_SLOT(id)   ((id) & 0xffff)
#define VIRTIO_TMEM_POOL_GEN(id)    ((id) >> 16)

/* Keys in one EVICTED event: as many as a minimum-size buffer holds. */
#define VIRTIO_TMEM_EVICT_KEYS \
    ((VIRTIO_TMEM_EVENT_MIN - sizeof(struct virtio_tmem_event)) / \
     sizeof(struct virtio_tmem_key))
/* Eviction reports held between two sends; more are dropped, counted. */
#define VIRTIO_TMEM_EVICT_BUF       1024
/* Pools whose drops are tallied between two looks; drops of more go. */
#define VIRTIO_TMEM_EVICT_TALLY     32

struct tmem_store;
struct tmem_key;

/* One ephemeral page the store dropped, as the store named it. */
typedef struct VirtIOTmemEvictReport {
    int pool;                   /* store pool id, not the driver's */
    uint32_t index;
    uint64_t oid[3];
} VirtIOTmemEvictReport;

/* Ephemeral pages the store dropped from one pool since the last look. */
typedef struct VirtIOTmemEvictTally {
    int pool;                   /* store pool id */
    uint32_t pages;
} VirtIOTmemEvictTally;

/* Per driver pool slot: events owed and the hit-ratio window. */
typedef struct VirtIOTmemPoolState {
    bool reset_pending;         /* a RESET to send */
    bool hint_pending;          /* a HINT (of hint_off) to send */
    bool hint_off;              /* the pool's hint is CLEANCACHE_OFF */
    uint32_t win_gets;          /* GETs in the current window */
    uint32_t win_hits;          /* ...of which hits */
    int64_t off_since;          /* when hint_off was set, realtime ms */
} VirtIOTmemPoolState;

/*
 * Counters of one request queue; what QMP shows as exits per page.
 * Updated and read with qatomic_*: a stats read never waits for a
 * request.
 */
typedef struct VirtIOTmemQueueStats {
    uint64_t kicks;         /* guest notifications: VM exits on KVM */
    uint64_t interrupts;    /* used-buffer notifications sent */
    uint64_t requests;      /* descriptor chains completed */
    uint64_t ops;           /* operations run */
    uint64_t pages;         /* pages moved by PUT, GET and GET_EXCL */
    uint64_t ahead;         /* requests run ahead of older ones */
    uint64_t inline_reqs;   /* requests served in the notifying thread */
    uint64_t yields;        /* turns given to the loop it is served in */
} VirtIOTmemQueueStats;

/*
 * One request queue, as its host notifier's handlers see it: they are
 * registered with this as their opaque, so that a kick (the notifier
 * read) and a poll can be told apart.
 */
typedef struct VirtIOTmemReqQueue {
    VirtIOTmem *s;
    VirtQueue *vq;
    VirtIOTmemQueueStats *qs;
    /*
     * virtio_bus_set_host_notifier() sets the notifier once itself, so
     * that requests queued while no handler was attached are looked at;
     * that one is not the guest's, and the first read discounts it.
     */
    bool own_kick;

    /*
     * The coroutine serving the queue, set while it runs.  It waits only
     * for a flush that runs in the thread pool (virtio_tmem_flush_co) or
     * for its next turn (virtio_tmem_take_turns); kicks that come
     * meanwhile find it set and leave the queue to it.
     */
    Coroutine *co;

    /* Request scratch, sized by max_ops so no request allocates */
    struct virtio_tmem_op *ops;
    struct virtio_tmem_status *status;
    uint8_t *page;              /* bounce buffer for one page */
    char *error;                /* why the chain is broken, for virtio_error */

    /*
     * With VIRTIO_TMEM_F_OVERTAKE: the same queue, with scratch of its
     * own for VIRTIO_TMEM_AHEAD_OPS ops, to run a flagged request between
     * two ops of this one (virtio_tmem_run_ahead).  NULL in itself.
     */
    struct VirtIOTmemReqQueue *ahead;
    /* The next chain may not run ahead: look no more until the next request */
    bool ahead_blocked;

    /* sync-inline: serves in the main loop what a kick left there */
    QEMUBH *bh;

    /*
     * When virtio_tmem_serve_co's turn in its loop began (ns, realtime
     * clock); 0 where requests are served without taking turns (inline,
     * or run ahead between two ops).
     */
    int64_t turn_start;
    /* Chains it pushed since its last interrupt */
    unsigned unnotified;
} VirtIOTmemReqQueue;

/* The longest turn (turn-us): a second */
#define VIRTIO_TMEM_MAX_TURN_US     1000000

/* Ops in a request that may run ahead of older ones, at most */
#define VIRTIO_TMEM_AHEAD_OPS       4

/* Operations run and pages moved, per operation type. */
typedef struct VirtIOTmemOpStats {
    uint64_t ops;
    uint64_t pages;
} VirtIOTmemOpStats;

struct VirtIOTmem {
    VirtIODevice parent_obj;

    /* Properties */
    TmemStore *store_link;  /* store=: a tmem-store object to share */
    /* Without store=, these make a store of the device's own: */
    uint64_t budget;        /* host RAM budget in bytes; qom-set at will */
    bool budget_given;      /* budget was set before realize */
    char *spill;            /* spill directory or file; NULL: none */
    uint64_t spill_max;     /* cap on the spill file, bytes */
    bool spill_buffered;    /* allow a spill file that may stay in RAM */
    uint16_t num_queues;    /* request queues */
    uint16_t max_ops;       /* operations per request */
    uint32_t max_credits;   /* credits a driver may hold */
    uint32_t max_pools;     /* pools a driver may hold */
    uint32_t hint_window;   /* GETs per hit-ratio window; 0: no hints */
    uint32_t hint_retry_ms; /* CLEANCACHE_ON again this long after OFF */
    IOThread *iothread;     /* request queues run here; NULL: main loop */
    IOThread *own_iothread; /* made by realize for spill= without one */
    uint64_t host_features; /* VIRTIO_TMEM_F_* the device may offer */
    bool sync_inline;       /* serve flagged GETs in the kick's thread */
    uint32_t turn_us;       /* serve a queue this long, then yield; 0: never */
    bool unchecked_features;    /* testing: offer even what breaks 6.3 */

    /* Set up by realize */
    TmemStore *ts;              /* store_link, or the device's own */
    bool own_store;             /* ts is the device's child "store" */
    TmemStoreUser store_user;   /* this device, as a user of ts */
    struct tmem_store *store;   /* ts's pages; other users' too */
    VirtQueue *eventq;          /* always served in the main loop */
    VirtQueue **reqq;           /* num_queues request queues */
    VirtIOTmemReqQueue *rq;     /* and their notifier handlers' view */
    bool dataplane_started;     /* reqq handlers attached to iothread */
    bool inline_started;        /* reqqs kicked without ioeventfd */
    QEMUBH *event_bh;           /* main loop: work out and send events */
    QEMUTimer *event_timer;     /* main loop: watch budget, spill, hints */

    /*
     * lock protects the driver and event state below.  The request path
     * takes it around each look-up or change of that state, never
     * around a call that moves page data (put, get, flush, the store's
     * spill I/O): those run unlocked, so QMP, the event bottom half and
     * qom-set budget never wait for a disk.  Reset, migration and the
     * bottom half take it from the main loop.  Lock order: lock, then
     * the store's own locks, then evict_lock.
     */
    QemuMutex lock;

    /* Store pools being destroyed in the thread pool; atomic. */
    unsigned destroying;
    /* Request queues whose coroutine runs (VirtIOTmemReqQueue.co); atomic */
    unsigned serving;

    TmemLive *live;             /* pre-copy of the pools (virtio-tmem-live.c) */

    /* Driver state; cleared by reset */
    int *pools;                 /* driver pool slot -> store pool, or -1 */
    uint16_t *pool_gen;         /* generation of each slot's driver id */
    uint32_t npools;            /* entries of pools[] in use */
    uint32_t credits;           /* credits granted and not yet spent */
    uint32_t credits_wanted;    /* refused for the budget: a CREDITS owed */
    VirtIOTmemPoolState *pstate;    /* max_pools of them */

    /* Event state; cleared by reset */
    bool reclaim_pending;       /* a RECLAIM of reclaim_value to send */
    uint64_t reclaim_value;
    int64_t reclaim_last;       /* when the last RECLAIM went, realtime ms */
    uint64_t spills_seen;       /* the store's spill count at last look */

    /*
     * Eviction reports, filled by the store's evict callback in
     * whatever thread reclaims, under evict_lock (a leaf: nothing is
     * called with it held), and drained by the event bottom half.
     */
    QemuMutex evict_lock;
    bool evict_on;              /* EVICT_REPORT negotiated, driver live */
    uint32_t nevict;
    VirtIOTmemEvictReport *evict;       /* VIRTIO_TMEM_EVICT_BUF */
    uint64_t evict_dropped;     /* reports dropped: buffer full */
    /* Drops per pool, for HINT, whether or not reports are on */
    VirtIOTmemEvictTally evict_tally[VIRTIO_TMEM_EVICT_TALLY];
    uint32_t nevict_tally;
    VirtIOTmemEvictReport *evict_scratch;   /* the bottom half's copy */
    struct virtio_tmem_key *evict_keys;     /* one event's keys */

    /* Statistics; the queue and operation counters are atomic */
    VirtIOTmemQueueStats *qstats;   /* one per request queue */
    VirtIOTmemOpStats opstats[VIRTIO_TMEM_NR_OPS];
    uint64_t events_sent;       /* events written to the event queue */
    uint64_t events_lost;       /* EVICTED events with no buffer to go to */
    uint64_t events_type[VIRTIO_TMEM_EVENT_RESET + 1];  /* sent, by type */
    uint64_t evicted_keys;      /* keys sent in EVICTED events */
    uint64_t evict_lost;        /* reports dropped with a lost event */
};

extern const VMStateDescription vmstate_virtio_tmem_device;
/* After the whole section: is the state one the guest could have built? */
int virtio_tmem_post_load(void *opaque, int version_id);

/*
 * Decode and run one request with @rq's scratch; false if the chain
 * cannot be parsed, with the reason in rq->error for the caller to pass
 * to virtio_error() once the chain is given back.
 * On success *@written is the used length.  Takes s->lock as it needs.
 */
bool coroutine_fn virtio_tmem_handle_request(VirtIOTmem *s,
                                             VirtIOTmemReqQueue *rq,
                                             VirtQueueElement *elem,
                                             size_t *written);
/*
 * Whether @elem may run ahead of the requests made available before it:
 * flagged VIRTIO_TMEM_REQ_F_OVERTAKE, well formed, and of at most
 * VIRTIO_TMEM_AHEAD_OPS GETs and GET_RANGEs, which change nothing an
 * older request could see.  Decodes it into @ahead's scratch.
 */
bool virtio_tmem_may_run_ahead(VirtIOTmem *s, VirtIOTmemReqQueue *ahead,
                               VirtQueueElement *elem);
void coroutine_fn virtio_tmem_run_ahead(VirtIOTmemReqQueue *rq);
void coroutine_fn virtio_tmem_take_turns(VirtIOTmemReqQueue *rq);

/*
 * Wait until no request queue is being served, so none waits for a
 * flush in the thread pool.  Main loop (or BQL), before the queues or
 * their handlers go away or the store is saved.
 */
void virtio_tmem_wait_serving(VirtIOTmem *s);

/* Destroy every pool of the driver's, and all their pages.  Holds lock. */
void virtio_tmem_drop_pools(VirtIOTmem *s);

/* virtio-tmem-live.c: pre-copy migration of the persistent pools */

/* Register and unregister the device's live section (realize, unrealize) */
void virtio_tmem_live_init(VirtIOTmem *s);
void virtio_tmem_live_cleanup(VirtIOTmem *s);
/*
 * @op ran with @status and @value: while a migration runs, mark what it
 * changed to be sent again.  After the op, from the request path.
 */
void virtio_tmem_live_note(VirtIOTmem *s, const struct virtio_tmem_op *op,
                           uint8_t status, uint32_t value);
/* The live section in one go, for the fuzz target: tmem_live_*_all() */
int virtio_tmem_live_load_all(VirtIOTmem *s, QEMUFile *f);
int virtio_tmem_live_save_all(VirtIOTmem *s, QEMUFile *f);

/* virtio-tmem-events.c; "lock" means the caller holds s->lock */

/* Stats and trace names of the event types, by VIRTIO_TMEM_EVENT_* */
extern const char *const virtio_tmem_event_names[];

/* Set up and tear down the event machinery (realize, unrealize). */
void virtio_tmem_events_init(VirtIOTmem *s);
void virtio_tmem_events_cleanup(VirtIOTmem *s);
/* Forget every pending event and window (reset).  Lock. */
void virtio_tmem_events_reset(VirtIOTmem *s);
/* Eviction reports on or off, as the driver status says.  Any thread. */
void virtio_tmem_events_evict_enable(VirtIOTmem *s, bool on);
/* Let the bottom half look for events to send.  Any thread. */
void virtio_tmem_events_kick(VirtIOTmem *s);
/* A GET on an ephemeral pool's @slot: the hit-ratio window.  Lock. */
void virtio_tmem_events_gets(VirtIOTmem *s, uint32_t slot, uint32_t gets,
                             uint32_t hits);
/* A CREDITS op granted @granted of @wanted, @over_budget.  Lock. */
void virtio_tmem_events_credits(VirtIOTmem *s, uint32_t wanted,
                                uint32_t granted, bool over_budget);
/* The budget went from @old to @bytes.  Lock. */
void virtio_tmem_events_budget(VirtIOTmem *s, uint64_t old, uint64_t bytes);

#endif
