/*
 * tmem-store: one host page store, shared by the front ends of a guest
 *
 * -object tmem-store,id=ID,budget=SIZE,spill=PATH,spill-max=SIZE makes
 * a store of compressed pages (the project's host library) with its own
 * RAM budget; spill-node=NODE instead of spill=PATH spills to a block
 * node (tmem-spill-blk.c).  Front ends use it by id: the virtio-tmem device
 * (store=ID) and the tmem block driver (-blockdev driver=tmem,store=ID).
 * The budget covers them all, so a guest that swaps both through the
 * device and to a tmem disk is held to one figure.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_TMEM_STORE_H
#define QEMU_TMEM_STORE_H

#include "qemu/notify.h"
#include "qemu/queue.h"
#include "qemu/thread.h"
#include "qom/object.h"

#define TYPE_TMEM_STORE "tmem-store"
OBJECT_DECLARE_SIMPLE_TYPE(TmemStore, TMEM_STORE)

struct tmem_store;
struct tmem_key;

/*
 * A front end of a store.  Its callbacks may be NULL.
 *
 * @evict runs in whatever thread made room in the store, with the
 * store's own locks held: it must not call into the store or block.
 * Every user hears of every ephemeral page the store drops, its own or
 * not, and must pick out its own pools.
 *
 * @budget_changed runs in the main loop once the new budget is in force.
 */
typedef struct TmemStoreUser {
    const char *name;   /* what query-tmem calls it: a QOM path or node */
    void (*evict)(void *opaque, int pool, const struct tmem_key *key);
    void (*budget_changed)(void *opaque, uint64_t old, uint64_t bytes);
    void *opaque;
    QLIST_ENTRY(TmemStoreUser) next;
} TmemStoreUser;

struct TmemStore {
    Object parent_obj;

    /* Properties; all but budget fixed once the object is complete */
    uint64_t budget;        /* host RAM for all users' pages, index too */
    char *spill;            /* spill directory or file; NULL: none */
    uint64_t spill_max;     /* cap on the spill file, bytes */
    bool spill_buffered;    /* allow a spill file that may stay in RAM */
    char *spill_node;       /* spill to this block node instead; or NULL */

    struct TmemSpillBlk *spill_blk;   /* the node's medium, with spill_node */
    Notifier machine_done;  /* attaches spill_blk once the nodes exist */

    struct tmem_store *store;   /* set up by complete; never changes */

    /*
     * lock protects users.  The store's evict callback takes it inside
     * the store's own locks, so nothing may call into the store with
     * it held.
     */
    QemuMutex lock;
    QLIST_HEAD(, TmemStoreUser) users;
    unsigned nusers;
};

/* Bounds on the budget: 0 (keep nothing), or one page to 2^56 bytes. */
#define TMEM_STORE_MIN_BUDGET   4096
#define TMEM_STORE_MAX_BUDGET   (1ULL << 56)

/*
 * The store of a complete object.  Valid until the last user detaches
 * and the object goes; a store with users cannot be deleted.
 */
struct tmem_store *tmem_store_get(TmemStore *ts);

/*
 * Join and leave the store's users.  Main loop.  A user holds a
 * reference to the object from attach to detach.
 */
void tmem_store_attach(TmemStore *ts, TmemStoreUser *user);
/* Once this returns, @user's callbacks are not running and never will. */
void tmem_store_detach(TmemStore *ts, TmemStoreUser *user);

/*
 * Change the budget at once (qom-set budget does the same).  Main loop.
 * Returns false with @errp set if @bytes is out of bounds.
 */
bool tmem_store_set_budget(TmemStore *ts, uint64_t bytes, Error **errp);

/*
 * Visit every statistic of the store (by its host-lib name), its
 * compression ratio and fragmentation, as members of the struct @v is
 * in: the "stats" of the object and of the devices that use it.
 */
bool tmem_store_visit_stats(TmemStore *ts, Visitor *v, Error **errp);

/* The object named @id under /objects, or NULL with @errp set. */
TmemStore *tmem_store_find(const char *id, Error **errp);

/*
 * A store of a front end's own, for one that was given budget and spill
 * rather than a store: a child of @parent named "tmem-store".  NULL with
 * @errp set if it cannot be made.
 */
TmemStore *tmem_store_new_child(Object *parent, uint64_t budget,
                                const char *spill, uint64_t spill_max,
                                bool spill_buffered, Error **errp);

#endif
