/*
 * tmem-live: pre-copy migration of pools of a tmem store
 *
 * A front end's persistent pages are guest state, and a store may hold
 * gigabytes of them: sent with the VM stopped they would make downtime
 * grow with the store.  A TmemLive sends a front end's pools in a live
 * section of its own while the guest runs, rate-limited with the rest of
 * migration, in the form the store keeps them (tmem_get_stored_batch,
 * tmem_put_stored), and sends again what the guest changes meanwhile.
 * The virtio-tmem device and the tmem block driver use it; see
 * tmem-live.c for how changes are tracked and the stream.
 *
 * A front end names its pools by slot (0 .. nslots - 1), the same on
 * both sides, and marks what it changes while tmem_live_tracking() is
 * true: a key it put or flushed, after the change, with
 * tmem_live_mark_key(); a slot it emptied, flushed in part by object, or
 * whose pool it replaced, with tmem_live_mark_slot().
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_TMEM_LIVE_H
#define QEMU_TMEM_LIVE_H

struct tmem_store;
struct tmem_key;

typedef struct TmemLive TmemLive;

/* The live section's record types (the stream: tmem-live.c) */
enum {
    TMEM_LIVE_END = 0,
    TMEM_LIVE_SLOT = 1,
    TMEM_LIVE_PAGE = 2,
    TMEM_LIVE_GONE = 3,
};

typedef struct TmemLiveOps {
    /*
     * The store pool in @slot whose pages travel, and its page size; or
     * -1: none (the destination is told to have none either).  On both
     * sides, from any thread.
     */
    int (*slot_pool)(void *opaque, uint32_t slot, uint32_t *page_size);
    /*
     * Destination: make @slot an empty pool of pages of 1 << @shift
     * bytes, or (@shift 0) no pool.  Returns 0, or a negative errno
     * after an error_report.
     */
    int (*slot_reset)(void *opaque, uint32_t slot, uint8_t shift);
    /*
     * Destination, may be NULL: whether @key is one the front end could
     * have put in @slot.  A key it could not have fails the load.
     */
    bool (*key_ok)(void *opaque, uint32_t slot, const struct tmem_key *key);
    /* Source: let no request run, before the final pass (VM stopped) */
    void (*quiesce)(void *opaque);
    /* Destination: forget every pool, before the first record */
    void (*load_begin)(void *opaque);
} TmemLiveOps;

/*
 * Register a live section @idstr for @nslots slots of @store; @ops and
 * @opaque are kept.  Main loop.
 */
TmemLive *tmem_live_new(const char *idstr, struct tmem_store *store,
                        uint32_t nslots, const TmemLiveOps *ops,
                        void *opaque);
/* Unregister and free; NULL is a no-op.  Main loop. */
void tmem_live_free(TmemLive *l);

/* Whether changes must be marked: a hint, read without a lock */
bool tmem_live_tracking(TmemLive *l);
/* @key of @slot changed: send it again.  After the change; any thread */
void tmem_live_mark_key(TmemLive *l, uint32_t slot,
                        const struct tmem_key *key);
/* @slot changed as a whole: send it again.  Any thread */
void tmem_live_mark_slot(TmemLive *l, uint32_t slot);
/* Every slot changed (a reset).  Any thread */
void tmem_live_mark_all(TmemLive *l);

/* Add the "migration" member of a stats property */
bool tmem_live_visit_stats(TmemLive *l, Visitor *v, Error **errp);

/*
 * The live section in one go, for fuzz targets: load records up to an
 * END (after load_begin), or save every slot in one final pass (as with
 * the VM stopped) and an END.  Return 0 or a negative errno.
 */
int tmem_live_load_all(TmemLive *l, QEMUFile *f);
int tmem_live_save_all(TmemLive *l, QEMUFile *f);

#endif
