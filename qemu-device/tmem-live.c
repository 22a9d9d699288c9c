/*
 * tmem-live: pre-copy migration of pools of a tmem store
 *
 * What the guest changes is tracked per slot and per key from the moment
 * save_setup turns tracking on (the front end marks it: tmem-live.h).  A
 * pass sends, first, a SLOT record for each slot marked (the destination
 * makes that slot an empty pool of the page size given, or no pool), and
 * starts a walk of the keys the pool holds then; then, as the rate limit
 * allows, the walks' keys and the keys marked, each as it is at the
 * moment of sending: a PAGE record if the store has it, a GONE one if
 * not.  A key is marked after its change and read after it is taken off
 * the dirty set, so any change after a read marks it again; keys of a
 * marked slot are left to the walk its SLOT record starts.  The last
 * pass runs with the VM stopped and the front end quiesced, and sends
 * everything still marked: that, not the store, is what downtime pays
 * for.  A slot that never had a pool on the destination gets no SLOT
 * record for having none.
 *
 * The records of a pass (numbers big-endian):
 *
 *   SLOT  u8 1, be32 slot, u8 page shift (12 or 16; 0: no pool)
 *   PAGE  u8 2, be32 slot, be64 oid[3], be32 index, u8 form, and
 *         SAME: the 8 fill bytes as they lie in memory;
 *         LZ4: be32 length (below the page size), the bytes;
 *         RAW: the page
 *   GONE  u8 3, be32 slot, be64 oid[3], be32 index
 *   END   u8 0
 *
 * The stream is not trusted on load: a slot past nslots, a page shift
 * other than 12 or 16, a PAGE or GONE for a slot with no pool, an
 * unknown form, a length of the page size or more, or LZ4 bytes that do
 * not decompress to exactly a page (tmem_put_stored checks) fail the
 * load with an error_report.  Pages are put as reserved: the source
 * accepted them, so the destination keeps them even over its budget and
 * spills them back under it.
 *
 * Memory: the dirty set holds a 32-byte key, and its slot in a hash
 * table, per key changed during the migration; a walk 32 bytes per key
 * of the pool walked.  Both go at the end of the migration.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/bitmap.h"
#include "qemu/error-report.h"
#include "qemu/memalign.h"
#include "qemu/thread.h"
#include "qemu/units.h"
#include "migration/qemu-file-types.h"
#include "migration/register.h"
#include "migration/vmstate.h"
#include "system/tmem-live.h"
#include "tmem.h"
#include "trace.h"

/* Bytes of a PAGE record before its data; of a SLOT record */
#define TMEM_LIVE_HDR           (1 + 4 + 3 * 8 + 4 + 1)
#define TMEM_LIVE_SLOT_BYTES    (1 + 4 + 1)
#define TMEM_LIVE_PAGE_MAX      65536
/* Data a batch of reads fetches at most: 64 4 KiB pages, 4 64 KiB ones */
#define TMEM_LIVE_BUF           (256 * KiB)
#define TMEM_LIVE_BATCH         64

/* A key changed since it was last sent */
typedef struct TmemLiveKey {
    uint32_t slot;
    uint32_t index;
    uint64_t oid[3];
} TmemLiveKey;

struct TmemLive {
    char *idstr;
    struct tmem_store *store;
    uint32_t nslots;
    const TmemLiveOps *ops;
    void *opaque;

    /*
     * lock protects what front ends mark: tracking's state, the dirty
     * keys and the dirty slots.  A leaf: nothing else is taken under it.
     */
    QemuMutex lock;
    bool tracking;              /* also read unlocked, as a hint */
    GHashTable *dirty;          /* TmemLiveKey, a set */
    unsigned long *slot_dirty;  /* nslots bits */

    /* The migration's own, between save_setup and save_cleanup */
    struct tmem_iter **walk;    /* per slot: the keys left to send */
    unsigned long *announced;   /* slots the destination has a pool in */
    uint8_t *buf;               /* TMEM_LIVE_BUF; a page's, on load */
    void *bufs[TMEM_LIVE_BATCH];
    struct tmem_key keys[TMEM_LIVE_BATCH];
    struct tmem_stored st[TMEM_LIVE_BATCH];
    int res[TMEM_LIVE_BATCH];

    /* Statistics, atomic: the last migration's */
    uint64_t passes;            /* iterations, the last one included */
    uint64_t pages_sent;        /* PAGE records */
    uint64_t gone_sent;         /* GONE records */
    uint64_t slots_sent;        /* SLOT records */
    uint64_t bytes_sent;        /* bytes of all records */
    uint64_t keys_dirtied;      /* keys marked while tracking */
    uint64_t final_pages;       /* PAGE and GONE records of the last pass */
    uint64_t pages_loaded;      /* PAGE records taken in, on load */
};

static guint tmem_live_key_hash(gconstpointer p)
{
    const TmemLiveKey *k = p;
    uint64_t h = k->oid[0] * 0x9e3779b97f4a7c15ull;

    h ^= k->oid[1] + (h << 6) + (h >> 2);
    h ^= k->oid[2] + (h << 6) + (h >> 2);
    h ^= ((uint64_t)k->slot << 32 | k->index) + (h << 6) + (h >> 2);
    return (guint)(h ^ h >> 32);
}

static gboolean tmem_live_key_equal(gconstpointer a, gconstpointer b)
{
    return !memcmp(a, b, sizeof(TmemLiveKey));
}

bool tmem_live_tracking(TmemLive *l)
{
    return l && qatomic_read(&l->tracking);
}

void tmem_live_mark_key(TmemLive *l, uint32_t slot,
                        const struct tmem_key *key)
{
    TmemLiveKey *k;

    if (!tmem_live_tracking(l) || slot >= l->nslots) {
        return;
    }
    k = g_new(TmemLiveKey, 1);
    *k = (TmemLiveKey) {
        .slot = slot,
        .index = key->index,
        .oid = { key->oid[0], key->oid[1], key->oid[2] },
    };
    qemu_mutex_lock(&l->lock);
    if (!l->tracking) {
        g_free(k);      /* save_cleanup came first */
    } else if (g_hash_table_add(l->dirty, k)) {
        qatomic_inc(&l->keys_dirtied);
    }
    qemu_mutex_unlock(&l->lock);
}

void tmem_live_mark_slot(TmemLive *l, uint32_t slot)
{
    if (!tmem_live_tracking(l) || slot >= l->nslots) {
        return;
    }
    qemu_mutex_lock(&l->lock);
    if (l->tracking) {
        set_bit(slot, l->slot_dirty);
    }
    qemu_mutex_unlock(&l->lock);
}

void tmem_live_mark_all(TmemLive *l)
{
    if (!tmem_live_tracking(l)) {
        return;
    }
    qemu_mutex_lock(&l->lock);
    if (l->tracking) {
        bitmap_set(l->slot_dirty, 0, l->nslots);
    }
    qemu_mutex_unlock(&l->lock);
}

/* ---- save ---------------------------------------------------------- */

static void tmem_live_walk_end(TmemLive *l, uint32_t slot)
{
    tmem_iter_end(l->walk[slot]);
    l->walk[slot] = NULL;
}

static void tmem_live_put_key(QEMUFile *f, uint8_t type, uint32_t slot,
                              const struct tmem_key *key)
{
    qemu_put_byte(f, type);
    qemu_put_be32(f, slot);
    qemu_put_be64(f, key->oid[0]);
    qemu_put_be64(f, key->oid[1]);
    qemu_put_be64(f, key->oid[2]);
    qemu_put_be32(f, key->index);
}

/*
 * Send a SLOT record for every dirty slot and restart its walk.  Returns
 * 0 or a negative errno (a walk could not start).
 */
static int tmem_live_send_slots(QEMUFile *f, TmemLive *l)
{
    unsigned long *dirty = bitmap_new(l->nslots);
    unsigned long slot;
    int rc = 0;

    qemu_mutex_lock(&l->lock);
    bitmap_copy(dirty, l->slot_dirty, l->nslots);
    bitmap_zero(l->slot_dirty, l->nslots);
    qemu_mutex_unlock(&l->lock);

    for (slot = find_first_bit(dirty, l->nslots); slot < l->nslots;
         slot = find_next_bit(dirty, l->nslots, slot + 1)) {
        uint32_t page_size = 0;
        int pool = l->ops->slot_pool(l->opaque, slot, &page_size);

        tmem_live_walk_end(l, slot);
        /* the destination has no pool there but one we made */
        if (pool < 0 && !test_and_clear_bit(slot, l->announced)) {
            continue;
        }
        qemu_put_byte(f, TMEM_LIVE_SLOT);
        qemu_put_be32(f, slot);
        qemu_put_byte(f, pool >= 0 ? ctz32(page_size) : 0);
        qatomic_add(&l->bytes_sent, TMEM_LIVE_SLOT_BYTES);
        qatomic_inc(&l->slots_sent);
        trace_tmem_live_slot(l->idstr, slot, pool >= 0 ? page_size : 0);
        if (pool < 0) {
            continue;
        }
        set_bit(slot, l->announced);
        rc = tmem_iter_begin(l->store, pool, &l->walk[slot]);
        if (rc == -EBADF) {
            /* destroyed meanwhile, and so marked again */
            rc = 0;
            continue;
        }
        if (rc < 0) {
            error_report("%s: cannot walk pool slot %lu: %s", l->idstr, slot,
                         strerror(-rc));
            break;
        }
    }
    g_free(dirty);
    return rc;
}

/* The slot's pool, unless it is to be sent again as a whole */
static int tmem_live_pool(TmemLive *l, uint32_t slot, uint32_t *page_size)
{
    bool dirty;

    qemu_mutex_lock(&l->lock);
    dirty = test_bit(slot, l->slot_dirty);
    qemu_mutex_unlock(&l->lock);
    return dirty ? -1 : l->ops->slot_pool(l->opaque, slot, page_size);
}

/* One page of the batch, as stored */
static void tmem_live_put_page(QEMUFile *f, TmemLive *l, uint32_t slot,
                               unsigned j, const struct tmem_key *key)
{
    const struct tmem_stored *st = &l->st[j];
    uint64_t bytes = TMEM_LIVE_HDR;

    tmem_live_put_key(f, TMEM_LIVE_PAGE, slot, key);
    qemu_put_byte(f, st->form);
    if (st->form == TMEM_FORM_SAME) {
        qemu_put_buffer(f, (const uint8_t *)&st->word, 8);
        bytes += 8;
    } else {
        if (st->form == TMEM_FORM_LZ4) {
            qemu_put_be32(f, st->len);
            bytes += 4;
        }
        qemu_put_buffer(f, l->bufs[j], st->len);
        bytes += st->len;
    }
    qatomic_add(&l->bytes_sent, bytes);
    qatomic_inc(&l->pages_sent);
}

/*
 * Send the pages of the @n keys in l->keys, of @slot, as they are now.
 * Returns 0 or a negative errno: a page the store cannot read back fails
 * the migration rather than vanish.
 */
static int tmem_live_send_keys(QEMUFile *f, TmemLive *l, uint32_t slot,
                               unsigned n, bool final)
{
    uint32_t page_size = 0;
    int pool = tmem_live_pool(l, slot, &page_size);
    unsigned i, per;
    int rc;

    if (pool < 0) {
        return 0;       /* the slot is sent again, or not at all */
    }
    per = MIN(TMEM_LIVE_BATCH, TMEM_LIVE_BUF / page_size);
    for (i = 0; i < n; i += per) {
        unsigned m = MIN(per, n - i), j;

        for (j = 0; j < m; j++) {
            l->bufs[j] = l->buf + (size_t)j * page_size;
        }
        rc = tmem_get_stored_batch(l->store, pool, &l->keys[i], l->bufs,
                                   l->st, l->res, m, page_size);
        if (rc == -EBADF) {
            return 0;   /* destroyed meanwhile, and so marked again */
        }
        if (rc < 0) {
            return rc;
        }
        for (j = 0; j < m; j++) {
            if (l->res[j] == 0) {
                tmem_live_put_page(f, l, slot, j, &l->keys[i + j]);
            } else if (l->res[j] == -ENOENT) {
                tmem_live_put_key(f, TMEM_LIVE_GONE, slot, &l->keys[i + j]);
                qatomic_add(&l->bytes_sent, TMEM_LIVE_HDR - 1);
                qatomic_inc(&l->gone_sent);
            } else if (l->res[j] == -EBADF) {
                return 0;
            } else {
                error_report("%s: pool slot %u: a page cannot be read back: "
                             "%s", l->idstr, slot, strerror(-l->res[j]));
                return l->res[j];
            }
        }
        if (final) {
            qatomic_add(&l->final_pages, m);
        }
    }
    return 0;
}

/* Take up to TMEM_LIVE_BATCH dirty keys of one slot off the set */
static unsigned tmem_live_pop_dirty(TmemLive *l, uint32_t *slot)
{
    GHashTableIter it;
    gpointer p;
    unsigned n = 0;

    qemu_mutex_lock(&l->lock);
    g_hash_table_iter_init(&it, l->dirty);
    while (n < TMEM_LIVE_BATCH && g_hash_table_iter_next(&it, &p, NULL)) {
        TmemLiveKey *k = p;

        if (n && k->slot != *slot) {
            continue;
        }
        *slot = k->slot;
        l->keys[n].oid[0] = k->oid[0];
        l->keys[n].oid[1] = k->oid[1];
        l->keys[n].oid[2] = k->oid[2];
        l->keys[n].index = k->index;
        n++;
        g_hash_table_iter_remove(&it);
    }
    qemu_mutex_unlock(&l->lock);
    return n;
}

/*
 * One pass: the dirty slots, then walks' and dirty keys until the rate
 * limit says stop (not when @final) or none is left.  Returns 1 when
 * none is left, 0 if some are, or a negative errno.
 */
static int tmem_live_send(QEMUFile *f, TmemLive *l, bool final)
{
    uint32_t slot = 0;
    int rc;

    rc = tmem_live_send_slots(f, l);
    while (rc >= 0) {
        unsigned n = 0;

        if (!final && migration_rate_exceeded(f)) {
            return 0;
        }
        for (; slot < l->nslots; slot++) {
            if (l->walk[slot]) {
                rc = tmem_iter_next_keys(l->walk[slot], l->keys,
                                         TMEM_LIVE_BATCH);
                if (rc > 0) {
                    n = rc;
                    break;
                }
                tmem_live_walk_end(l, slot);
            }
        }
        if (n) {
            rc = tmem_live_send_keys(f, l, slot, n, final);
        } else {
            uint32_t dslot = 0;

            n = tmem_live_pop_dirty(l, &dslot);
            if (!n) {
                return 1;
            }
            rc = tmem_live_send_keys(f, l, dslot, n, final);
        }
        if (!rc) {
            rc = qemu_file_get_error(f);
        }
    }
    return rc;
}

/* Start tracking, with every slot to be sent and walked */
static void tmem_live_start(TmemLive *l)
{
    l->walk = g_new0(struct tmem_iter *, l->nslots);
    l->announced = bitmap_new(l->nslots);
    l->buf = qemu_memalign(4096, TMEM_LIVE_BUF);
    qatomic_set(&l->passes, 0);
    qatomic_set(&l->pages_sent, 0);
    qatomic_set(&l->gone_sent, 0);
    qatomic_set(&l->slots_sent, 0);
    qatomic_set(&l->bytes_sent, 0);
    qatomic_set(&l->keys_dirtied, 0);
    qatomic_set(&l->final_pages, 0);

    /* Track first, then look: a change after this is marked */
    qemu_mutex_lock(&l->lock);
    qatomic_set(&l->tracking, true);
    bitmap_set(l->slot_dirty, 0, l->nslots);
    qemu_mutex_unlock(&l->lock);
}

static int tmem_live_save_setup(QEMUFile *f, void *opaque, Error **errp)
{
    tmem_live_start(opaque);
    qemu_put_byte(f, TMEM_LIVE_END);
    return qemu_file_get_error(f);
}

static int tmem_live_save_iterate(QEMUFile *f, void *opaque)
{
    TmemLive *l = opaque;
    int rc;

    qatomic_inc(&l->passes);
    rc = tmem_live_send(f, l, false);
    qemu_put_byte(f, TMEM_LIVE_END);
    trace_tmem_live_pass(l->idstr, qatomic_read(&l->pages_sent),
                         qatomic_read(&l->bytes_sent), rc);
    return rc;
}

static int tmem_live_save_complete(QEMUFile *f, void *opaque)
{
    TmemLive *l = opaque;
    int rc;

    /* The VM is stopped; no request may still be running */
    if (l->ops->quiesce) {
        l->ops->quiesce(l->opaque);
    }
    qatomic_inc(&l->passes);
    rc = tmem_live_send(f, l, true);
    qemu_put_byte(f, TMEM_LIVE_END);
    trace_tmem_live_complete(l->idstr, qatomic_read(&l->final_pages),
                             qatomic_read(&l->bytes_sent), rc);
    return rc < 0 ? rc : qemu_file_get_error(f);
}

static void tmem_live_save_cleanup(void *opaque)
{
    TmemLive *l = opaque;
    uint32_t i;

    qemu_mutex_lock(&l->lock);
    qatomic_set(&l->tracking, false);
    g_hash_table_remove_all(l->dirty);
    bitmap_zero(l->slot_dirty, l->nslots);
    qemu_mutex_unlock(&l->lock);
    for (i = 0; l->walk && i < l->nslots; i++) {
        tmem_iter_end(l->walk[i]);
    }
    g_free(l->walk);
    l->walk = NULL;
    g_free(l->announced);
    l->announced = NULL;
    qemu_vfree(l->buf);
    l->buf = NULL;
}

/*
 * Pending bytes: the keys left in walks and dirty, at what a page has
 * cost so far (or, before any was sent, what the store holds per page),
 * and while slots wait for their walk, every persistent page of the
 * store: more than there may be, never less.
 */
static void tmem_live_pending(void *opaque, uint64_t *must_precopy,
                              uint64_t *can_postcopy)
{
    TmemLive *l = opaque;
    uint64_t v[TMEM_STAT__COUNT] = { 0 };
    uint64_t keys, per_page, sent = qatomic_read(&l->pages_sent);
    bool slots_dirty;
    uint32_t i;

    qemu_mutex_lock(&l->lock);
    keys = g_hash_table_size(l->dirty);
    slots_dirty = !bitmap_empty(l->slot_dirty, l->nslots);
    qemu_mutex_unlock(&l->lock);
    /* the walks are the migration thread's, and so is this call */
    for (i = 0; l->walk && i < l->nslots; i++) {
        if (l->walk[i]) {
            keys += tmem_iter_left(l->walk[i]);
        }
    }
    tmem_stat_values(l->store, v, TMEM_STAT__COUNT);
    if (slots_dirty) {
        keys += v[TMEM_STAT_PAGES_PERSISTENT];
    }
    if (sent) {
        per_page = qatomic_read(&l->bytes_sent) / sent;
    } else {
        uint64_t pages = v[TMEM_STAT_PAGES_PERSISTENT] +
                         v[TMEM_STAT_PAGES_EPHEMERAL];

        per_page = TMEM_LIVE_HDR +
                   (v[TMEM_STAT_BYTES_COMPRESSED] + v[TMEM_STAT_SPILL_USED]) /
                   MAX(pages, 1);
    }
    *must_precopy += keys * per_page;
}

/* ---- load ---------------------------------------------------------- */

static int tmem_live_load_setup(QEMUFile *f, void *opaque, Error **errp)
{
    TmemLive *l = opaque;

    /* What the stream brings replaces what was here (loadvm) */
    if (l->ops->load_begin) {
        l->ops->load_begin(l->opaque);
    }
    qatomic_set(&l->pages_loaded, 0);
    return 0;
}

static int tmem_live_load_slot(QEMUFile *f, TmemLive *l)
{
    uint32_t slot = qemu_get_be32(f);
    uint8_t shift = qemu_get_byte(f);

    if (slot >= l->nslots) {
        error_report("%s: pool slot %u in the stream, the most is %u",
                     l->idstr, slot, l->nslots);
        return -EINVAL;
    }
    if (shift && shift != 12 && shift != 16) {
        error_report("%s: pool slot %u: page shift %u in the stream",
                     l->idstr, slot, shift);
        return -EINVAL;
    }
    return l->ops->slot_reset(l->opaque, slot, shift);
}

/* The form and data of a PAGE record, into @st and l->buf */
static int tmem_live_load_form(QEMUFile *f, TmemLive *l, uint32_t slot,
                               uint32_t page_size, struct tmem_stored *st)
{
    st->form = qemu_get_byte(f);
    switch (st->form) {
    case TMEM_FORM_SAME:
        return qemu_get_buffer(f, (uint8_t *)&st->word, 8) == 8 ? 0 : -EIO;
    case TMEM_FORM_LZ4:
        st->len = qemu_get_be32(f);
        if (st->len >= page_size) {
            error_report("%s: pool slot %u: %u compressed bytes for a page "
                         "of %u", l->idstr, slot, st->len, page_size);
            return -EINVAL;
        }
        break;
    case TMEM_FORM_RAW:
        st->len = page_size;
        break;
    default:
        error_report("%s: pool slot %u: page form %u in the stream",
                     l->idstr, slot, st->form);
        return -EINVAL;
    }
    return qemu_get_buffer(f, l->buf, st->len) == st->len ? 0 : -EIO;
}

static int tmem_live_load_key(QEMUFile *f, TmemLive *l, uint8_t type)
{
    struct tmem_stored st = { 0 };
    struct tmem_key key;
    uint32_t slot = qemu_get_be32(f), page_size = 0;
    int pool = -1, rc;

    key.oid[0] = qemu_get_be64(f);
    key.oid[1] = qemu_get_be64(f);
    key.oid[2] = qemu_get_be64(f);
    key.index = qemu_get_be32(f);
    if (slot < l->nslots) {
        pool = l->ops->slot_pool(l->opaque, slot, &page_size);
    }
    if (pool < 0) {
        error_report("%s: a page for pool slot %u, which has no pool in the "
                     "stream", l->idstr, slot);
        return -EINVAL;
    }
    if (l->ops->key_ok && !l->ops->key_ok(l->opaque, slot, &key)) {
        error_report("%s: pool slot %u: a key it cannot hold in the stream",
                     l->idstr, slot);
        return -EINVAL;
    }
    if (type == TMEM_LIVE_GONE) {
        tmem_flush_page(l->store, pool, &key);
        return 0;
    }
    rc = tmem_live_load_form(f, l, slot, page_size, &st);
    if (!rc) {
        rc = qemu_file_get_error(f);
    }
    if (rc < 0) {
        return rc;
    }
    /* Accepted by the source, so kept here even over budget */
    rc = tmem_put_stored(l->store, pool, &key, &st, l->buf,
                         TMEM_PUT_RESERVED);
    if (rc == -EBADMSG) {
        error_report("%s: pool slot %u: a page in the stream is not a page "
                     "of %u bytes", l->idstr, slot, page_size);
    } else if (rc < 0) {
        error_report("%s: pool slot %u: cannot keep a page: %s", l->idstr,
                     slot, strerror(-rc));
    }
    qatomic_inc(&l->pages_loaded);
    return rc;
}

static int tmem_live_load(QEMUFile *f, void *opaque, int version_id)
{
    TmemLive *l = opaque;
    int rc = 0;

    if (!l->buf) {
        l->buf = qemu_memalign(4096, TMEM_LIVE_BUF);
    }
    while (!rc) {
        uint8_t type = qemu_get_byte(f);

        rc = qemu_file_get_error(f);
        if (rc < 0 || type == TMEM_LIVE_END) {
            break;
        }
        switch (type) {
        case TMEM_LIVE_SLOT:
            rc = tmem_live_load_slot(f, l);
            break;
        case TMEM_LIVE_PAGE:
        case TMEM_LIVE_GONE:
            rc = tmem_live_load_key(f, l, type);
            break;
        default:
            error_report("%s: record type 0x%x in the stream", l->idstr,
                         type);
            rc = -EINVAL;
            break;
        }
    }
    return rc;
}

static int tmem_live_load_cleanup(void *opaque)
{
    TmemLive *l = opaque;

    if (!l->walk) {     /* not saving too (a snapshot of oneself) */
        qemu_vfree(l->buf);
        l->buf = NULL;
    }
    return 0;
}

static bool tmem_live_is_active(void *opaque)
{
    return true;
}

static const SaveVMHandlers tmem_live_handlers = {
    .is_active = tmem_live_is_active,
    .save_setup = tmem_live_save_setup,
    .save_live_iterate = tmem_live_save_iterate,
    .save_live_complete_precopy = tmem_live_save_complete,
    .save_cleanup = tmem_live_save_cleanup,
    .state_pending_estimate = tmem_live_pending,
    .state_pending_exact = tmem_live_pending,
    .load_setup = tmem_live_load_setup,
    .load_state = tmem_live_load,
    .load_cleanup = tmem_live_load_cleanup,
};

int tmem_live_load_all(TmemLive *l, QEMUFile *f)
{
    int rc;

    tmem_live_load_setup(f, l, NULL);
    rc = tmem_live_load(f, l, 1);
    tmem_live_load_cleanup(l);
    return rc;
}

int tmem_live_save_all(TmemLive *l, QEMUFile *f)
{
    int rc;

    tmem_live_start(l);
    rc = tmem_live_save_complete(f, l);
    tmem_live_save_cleanup(l);
    return rc;
}

TmemLive *tmem_live_new(const char *idstr, struct tmem_store *store,
                        uint32_t nslots, const TmemLiveOps *ops,
                        void *opaque)
{
    TmemLive *l = g_new0(TmemLive, 1);

    l->idstr = g_strdup(idstr);
    l->store = store;
    l->nslots = nslots;
    l->ops = ops;
    l->opaque = opaque;
    qemu_mutex_init(&l->lock);
    l->dirty = g_hash_table_new_full(tmem_live_key_hash, tmem_live_key_equal,
                                     g_free, NULL);
    l->slot_dirty = bitmap_new(nslots);
    register_savevm_live(l->idstr, VMSTATE_INSTANCE_ID_ANY, 1,
                         &tmem_live_handlers, l);
    return l;
}

void tmem_live_free(TmemLive *l)
{
    if (!l) {
        return;
    }
    unregister_savevm(NULL, l->idstr, l);
    tmem_live_save_cleanup(l);
    g_hash_table_destroy(l->dirty);
    g_free(l->slot_dirty);
    qemu_mutex_destroy(&l->lock);
    g_free(l->idstr);
    g_free(l);
}

bool tmem_live_visit_stats(TmemLive *l, Visitor *v, Error **errp)
{
    uint64_t passes = 0, pages = 0, gone = 0, slots = 0, bytes = 0;
    uint64_t dirtied = 0, dirty = 0, final = 0, loaded = 0;
    bool ok;

    if (l) {
        passes = qatomic_read(&l->passes);
        pages = qatomic_read(&l->pages_sent);
        gone = qatomic_read(&l->gone_sent);
        slots = qatomic_read(&l->slots_sent);
        bytes = qatomic_read(&l->bytes_sent);
        dirtied = qatomic_read(&l->keys_dirtied);
        final = qatomic_read(&l->final_pages);
        loaded = qatomic_read(&l->pages_loaded);
        qemu_mutex_lock(&l->lock);
        dirty = g_hash_table_size(l->dirty);
        qemu_mutex_unlock(&l->lock);
    }
    if (!visit_start_struct(v, "migration", NULL, 0, errp)) {
        return false;
    }
    ok = visit_type_uint64(v, "passes", &passes, errp) &&
         visit_type_uint64(v, "pages_sent", &pages, errp) &&
         visit_type_uint64(v, "gone_sent", &gone, errp) &&
         visit_type_uint64(v, "slots_sent", &slots, errp) &&
         visit_type_uint64(v, "bytes_sent", &bytes, errp) &&
         visit_type_uint64(v, "keys_dirtied", &dirtied, errp) &&
         visit_type_uint64(v, "keys_dirty", &dirty, errp) &&
         visit_type_uint64(v, "final_pass_pages", &final, errp) &&
         visit_type_uint64(v, "pages_loaded", &loaded, errp) &&
         visit_check_struct(v, errp);
    visit_end_struct(v, NULL);
    return ok;
}
