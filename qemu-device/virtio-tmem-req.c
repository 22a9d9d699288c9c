/*
 * Virtio transcendent memory device: decoding and running requests
 *
 * Every byte here comes from the guest.  A request's layout is computed
 * from its operations alone and checked against the chain before any
 * operation runs; what makes a chain unparseable is a ring-level error
 * (virtio_error), what is wrong with one operation is that operation's
 * status, and the rest of the request still runs.  Nothing is allocated
 * per request: operations and statuses go to the queue's buffers, sized
 * at realize.
 *
 * A request runs in the iothread, or in the main loop without one,
 * and it holds s->lock only to look at or change the driver's state
 * (pools, credits, hit-ratio windows): page data moves unlocked, so a
 * slow spill disk holds up this request, and (in the main loop) QEMU,
 * but never QMP waiting on the lock from another thread.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/lockable.h"
#include "block/aio-wait.h"
#include "block/thread-pool.h"
#include "hw/virtio/virtio-tmem.h"
#include "tmem.h"
#include "trace.h"

static uint8_t virtio_tmem_status_of(int rc)
{
    switch (rc) {
    case 0:
        return VIRTIO_TMEM_S_OK;
    case -ENOENT:
        return VIRTIO_TMEM_S_MISS;
    case -ENOSPC:
        return VIRTIO_TMEM_S_NOSPACE;
    case -ENOMEM:
        return VIRTIO_TMEM_S_NOMEM;
    case -E2BIG:
        return VIRTIO_TMEM_S_INCOMPRESSIBLE;
    case -EBADF:
        return VIRTIO_TMEM_S_BADPOOL;
    case -EIO:
        return VIRTIO_TMEM_S_IO;
    default:
        return VIRTIO_TMEM_S_INVALID;
    }
}

/* Bytes of page data an operation carries (PUT) or wants (GETs), or 0. */
static bool virtio_tmem_op_data(const struct virtio_tmem_op *op,
                                size_t *out, size_t *in)
{
    uint32_t shift = le32_to_cpu(op->arg);

    *out = *in = 0;
    switch (op->type) {
    case VIRTIO_TMEM_OP_GET_RANGE:
        if ((VIRTIO_TMEM_RANGE_SHIFT(shift) != 12 &&
             VIRTIO_TMEM_RANGE_SHIFT(shift) != 16) ||
            VIRTIO_TMEM_RANGE_COUNT(shift) < 1 ||
            VIRTIO_TMEM_RANGE_COUNT(shift) > VIRTIO_TMEM_RANGE_MAX ||
            shift >> 16) {
            return false;
        }
        *in = (size_t)VIRTIO_TMEM_RANGE_COUNT(shift) <<
              VIRTIO_TMEM_RANGE_SHIFT(shift);
        return true;
    case VIRTIO_TMEM_OP_PUT:
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
        if (shift != 12 && shift != 16) {
            return false;
        }
        if (op->type == VIRTIO_TMEM_OP_PUT) {
            *out = (size_t)1 << shift;
        } else {
            *in = (size_t)1 << shift;
        }
        return true;
    default:
        return true;
    }
}

/* The request flags the driver may set: those of features it took. */
static uint16_t virtio_tmem_req_flags(VirtIOTmem *s)
{
    return virtio_vdev_has_feature(VIRTIO_DEVICE(s), VIRTIO_TMEM_F_OVERTAKE) ?
           VIRTIO_TMEM_REQ_F_OVERTAKE : 0;
}

/*
 * Read the header and operations of @elem and check that the chain holds
 * everything they imply.  Returns the number of operations, or 0 after
 * a reason in rq->error if the chain cannot be parsed.
 */
static unsigned virtio_tmem_parse(VirtIOTmem *s, VirtIOTmemReqQueue *rq,
                                  VirtQueueElement *elem, size_t *in_len,
                                  bool *skip)
{
    size_t out_size = iov_size(elem->out_sg, elem->out_num);
    size_t in_size = iov_size(elem->in_sg, elem->in_num);
    size_t out_need, in_need;
    struct virtio_tmem_req req;
    unsigned nops, i;

    if (iov_to_buf(elem->out_sg, elem->out_num, 0, &req, sizeof(req)) !=
        sizeof(req)) {
        rq->error = g_strdup("virtio-tmem: request shorter than its header");
        return 0;
    }
    nops = le16_to_cpu(req.nops);
    if (nops == 0 || nops > s->max_ops) {
        rq->error = g_strdup_printf("virtio-tmem: request of %u operations "
                                    "(1 to %u allowed)", nops, s->max_ops);
        return 0;
    }
    out_need = sizeof(req) + nops * sizeof(struct virtio_tmem_op);
    if (iov_to_buf(elem->out_sg, elem->out_num, sizeof(req), rq->ops,
                   nops * sizeof(struct virtio_tmem_op)) !=
        nops * sizeof(struct virtio_tmem_op)) {
        rq->error = g_strdup_printf("virtio-tmem: request shorter than its "
                                    "%u operations", nops);
        return 0;
    }
    in_need = sizeof(struct virtio_tmem_resp) +
              nops * sizeof(struct virtio_tmem_status);
    for (i = 0; i < nops; i++) {
        size_t out, in;

        if (!virtio_tmem_op_data(&rq->ops[i], &out, &in)) {
            rq->error = g_strdup_printf("virtio-tmem: operation %u has no "
                                        "valid page size", i);
            return 0;
        }
        out_need += out;
        in_need += in;
    }
    if (out_size < out_need || in_size < in_need) {
        rq->error = g_strdup_printf("virtio-tmem: chain of %zu+%zu bytes, "
                                    "request needs %zu+%zu", out_size,
                                    in_size, out_need, in_need);
        return 0;
    }
    *in_len = in_need;
    *skip = (le16_to_cpu(req.flags) & ~virtio_tmem_req_flags(s)) ||
            req.reserved[0] || req.reserved[1];
    return nops;
}

bool virtio_tmem_may_run_ahead(VirtIOTmem *s, VirtIOTmemReqQueue *ahead,
                               VirtQueueElement *elem)
{
    struct virtio_tmem_req req;
    size_t in_len;
    unsigned nops, i;
    bool skip;

    if (iov_to_buf(elem->out_sg, elem->out_num, 0, &req, sizeof(req)) !=
            sizeof(req) ||
        le16_to_cpu(req.flags) != VIRTIO_TMEM_REQ_F_OVERTAKE ||
        le16_to_cpu(req.nops) > VIRTIO_TMEM_AHEAD_OPS) {
        return false;
    }
    nops = virtio_tmem_parse(s, ahead, elem, &in_len, &skip);
    if (!nops || skip) {
        /* broken or skipped: left for its turn, to be reported then */
        g_free(ahead->error);
        ahead->error = NULL;
        return false;
    }
    for (i = 0; i < nops; i++) {
        if (ahead->ops[i].type != VIRTIO_TMEM_OP_GET &&
            ahead->ops[i].type != VIRTIO_TMEM_OP_GET_RANGE) {
            return false;
        }
    }
    return true;
}

/*
 * The store pool behind driver pool @id, or -1.  A pool destroyed after
 * this returns is not an error here: the store's id of it is never
 * reused for long, so a put or get on it is refused as a bad pool.
 */
static int virtio_tmem_pool(VirtIOTmem *s, uint32_t id)
{
    uint32_t slot = VIRTIO_TMEM_POOL_SLOT(id);
    int pool = -1;

    qemu_mutex_lock(&s->lock);
    if (slot < s->npools && s->pool_gen[slot] == VIRTIO_TMEM_POOL_GEN(id)) {
        pool = s->pools[slot];
    }
    qemu_mutex_unlock(&s->lock);
    return pool;
}

static uint8_t virtio_tmem_pool_new(VirtIOTmem *s, uint32_t arg,
                                    uint32_t *value)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    uint32_t kind = VIRTIO_TMEM_POOL_KIND(arg);
    uint32_t shift = VIRTIO_TMEM_POOL_SHIFT(arg);
    uint32_t id;
    int pool;

    if ((kind != VIRTIO_TMEM_POOL_PERSISTENT &&
         kind != VIRTIO_TMEM_POOL_EPHEMERAL) ||
        (shift != 12 && shift != 16) || arg >> 16) {
        return VIRTIO_TMEM_S_INVALID;
    }
    if ((kind == VIRTIO_TMEM_POOL_EPHEMERAL &&
         !virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_EPHEMERAL)) ||
        (shift == 16 &&
         !virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_PAGE_64K))) {
        return VIRTIO_TMEM_S_UNSUPPORTED;
    }
    QEMU_LOCK_GUARD(&s->lock);
    for (id = 0; id < s->npools && s->pools[id] >= 0; id++) {
        /* the first free slot */
    }
    if (id == s->max_pools) {
        return VIRTIO_TMEM_S_NOSPACE;
    }
    /* cheap (no pages yet), so under the lock that claims the slot */
    pool = tmem_pool_create(s->store, kind == VIRTIO_TMEM_POOL_PERSISTENT ?
                            TMEM_PERSISTENT : TMEM_EPHEMERAL, 1u << shift);
    if (pool < 0) {
        return virtio_tmem_status_of(pool);
    }
    s->pools[id] = pool;
    s->pstate[id] = (VirtIOTmemPoolState) { 0 };
    if (id == s->npools) {
        s->npools++;
    }
    *value = (uint32_t)s->pool_gen[id] << 16 | id;
    return VIRTIO_TMEM_S_OK;
}

typedef struct VirtIOTmemDestroy {
    VirtIOTmem *s;
    int pool;
    int64_t pages;
} VirtIOTmemDestroy;

static int virtio_tmem_destroy_work(void *opaque)
{
    VirtIOTmemDestroy *d = opaque;

    d->pages = tmem_pool_destroy(d->s->store, d->pool);
    return 0;
}

static void virtio_tmem_destroy_done(void *opaque, int ret)
{
    VirtIOTmemDestroy *d = opaque;

    trace_virtio_tmem_pool_destroyed(d->s, d->pool, d->pages);
    qatomic_dec(&d->s->destroying);
    aio_wait_kick();
    g_free(d);
}

/*
 * Retire driver pool @id, then destroy its store pool @pool in the
 * thread pool: that flushes every page of it, about 150 ns each, and a
 * swap area of millions of pages must not hold up the main loop or the
 * queue for seconds.  The guest sees the pool gone at once; its pages
 * stay charged to the budget until the destroy has run.
 */
static uint8_t virtio_tmem_pool_destroy(VirtIOTmem *s, uint32_t id, int pool)
{
    uint32_t slot = VIRTIO_TMEM_POOL_SLOT(id);
    VirtIOTmemDestroy *d;

    qemu_mutex_lock(&s->lock);
    if (slot >= s->npools || s->pools[slot] != pool ||
        s->pool_gen[slot] != VIRTIO_TMEM_POOL_GEN(id)) {
        qemu_mutex_unlock(&s->lock);
        return VIRTIO_TMEM_S_BADPOOL;   /* another request got there */
    }
    s->pstate[slot] = (VirtIOTmemPoolState) { 0 };
    s->pools[slot] = -1;
    s->pool_gen[slot]++;
    qemu_mutex_unlock(&s->lock);
    d = g_new(VirtIOTmemDestroy, 1);
    *d = (VirtIOTmemDestroy) { .s = s, .pool = pool };
    qatomic_inc(&s->destroying);
    thread_pool_submit_aio(virtio_tmem_destroy_work, d,
                           virtio_tmem_destroy_done, d);
    return VIRTIO_TMEM_S_OK;
}

/*
 * A flush of more pages than this runs in the thread pool: inline it
 * costs about 150 ns a page, and a guest can put millions under one
 * object or pool.  Cleancache flushes an object for every evicted
 * inode, nearly always a few pages, and a small store's pool flush is
 * as cheap: a thread hand-off would cost more than they do.
 */
#define VIRTIO_TMEM_INLINE_FLUSH 4096

typedef struct VirtIOTmemFlush {
    struct tmem_store *store;
    int pool;
    const uint64_t *oid;        /* NULL: the whole pool */
    int64_t pages;
} VirtIOTmemFlush;

static int virtio_tmem_flush_work(void *opaque)
{
    VirtIOTmemFlush *f = opaque;

    f->pages = f->oid ? tmem_flush_object(f->store, f->pool, f->oid) :
                        tmem_flush_pool(f->store, f->pool);
    return 0;
}

static bool virtio_tmem_flush_is_small(VirtIOTmem *s, int pool,
                                       const uint64_t *oid)
{
    uint64_t v[TMEM_STAT_PAGES_EPHEMERAL + 1];

    if (oid) {
        return tmem_object_pages(s->store, pool, oid) <=
               VIRTIO_TMEM_INLINE_FLUSH;
    }
    /* A pool flush visits each object of the store, a page at least. */
    return tmem_stat_values(s->store, v, ARRAY_SIZE(v)) >= 0 &&
           v[TMEM_STAT_PAGES_PERSISTENT] + v[TMEM_STAT_PAGES_EPHEMERAL] <=
           VIRTIO_TMEM_INLINE_FLUSH;
}

/*
 * FLUSH_OBJECT of a big object, or FLUSH_POOL in a big store: the
 * queue's coroutine waits for the thread pool, so later ops of the queue
 * still see the flush done (spec 6.5) while the main loop or iothread
 * serves QMP and the other queues.  The pages stay charged until then.
 */
static int64_t coroutine_fn virtio_tmem_flush(VirtIOTmem *s, int pool,
                                              const uint64_t *oid)
{
    VirtIOTmemFlush f = { .store = s->store, .pool = pool, .oid = oid };

    if (virtio_tmem_flush_is_small(s, pool, oid)) {
        virtio_tmem_flush_work(&f);
    } else {
        trace_virtio_tmem_flush_offload(s, pool, !oid);
        thread_pool_submit_co(virtio_tmem_flush_work, &f);
    }
    return f.pages;
}

/* A page of the chain at @off: in place if contiguous, else bounced. */
static void *virtio_tmem_page_in(VirtIOTmemReqQueue *rq,
                                 VirtQueueElement *elem, size_t off,
                                 size_t len)
{
    size_t skip = off;
    unsigned i;

    for (i = 0; i < elem->out_num; i++) {
        if (skip < elem->out_sg[i].iov_len) {
            break;
        }
        skip -= elem->out_sg[i].iov_len;
    }
    if (i < elem->out_num && elem->out_sg[i].iov_len - skip >= len) {
        return (uint8_t *)elem->out_sg[i].iov_base + skip;
    }
    iov_to_buf(elem->out_sg, elem->out_num, off, rq->page, len);
    return rq->page;
}

/*
 * A credited put is one the device promised to take: the store keeps it
 * over budget rather than refuse it, which max-credits bounds.  The
 * credit is taken before the put, so that two queues cannot spend the
 * same one, and given back if the put fails.
 */
static uint8_t virtio_tmem_put(VirtIOTmem *s, VirtIOTmemReqQueue *rq,
                               int pool, const struct tmem_key *key,
                               const struct virtio_tmem_op *op,
                               VirtQueueElement *elem, size_t off, size_t len)
{
    bool credited = op->flags & VIRTIO_TMEM_OP_F_CREDIT;
    enum tmem_pool_kind kind = 0;
    bool have_credit = false;
    uint8_t st;

    tmem_pool_info(s->store, pool, &kind, NULL);
    if (credited) {
        qemu_mutex_lock(&s->lock);
        if (s->credits) {
            s->credits--;
            have_credit = true;
        }
        qemu_mutex_unlock(&s->lock);
    }
    if (op->flags & ~VIRTIO_TMEM_OP_F_CREDIT ||
        (credited && kind != TMEM_PERSISTENT)) {
        st = VIRTIO_TMEM_S_INVALID;
    } else if (credited && !have_credit) {
        st = VIRTIO_TMEM_S_NOCREDIT;
    } else {
        st = virtio_tmem_status_of(
            tmem_put_flags(s->store, pool, key,
                           virtio_tmem_page_in(rq, elem, off, len), len,
                           credited ? TMEM_PUT_RESERVED : 0));
    }
    if (have_credit && st != VIRTIO_TMEM_S_OK) {
        qemu_mutex_lock(&s->lock);
        s->credits++;
        qemu_mutex_unlock(&s->lock);
    }
    if (st == VIRTIO_TMEM_S_OK || (st != VIRTIO_TMEM_S_INVALID &&
                                   st != VIRTIO_TMEM_S_NOCREDIT)) {
        return st;
    }
    /* Refused before the store saw it: no older copy may outlive it. */
    tmem_flush_page(s->store, pool, key);
    return st;
}

/*
 * Count @gets gets, @hits of them hits, toward the HINT of the ephemeral
 * pool in @slot, if the slot still holds @pool: it may have changed hands,
 * and then its window is not ours.
 */
static void virtio_tmem_hint_gets(VirtIOTmem *s, int pool, uint32_t slot,
                                  uint32_t gets, uint32_t hits)
{
    qemu_mutex_lock(&s->lock);
    if (slot < s->npools && s->pools[slot] == pool) {
        virtio_tmem_events_gets(s, slot, gets, hits);
    }
    qemu_mutex_unlock(&s->lock);
}

/* A GET; on an ephemeral pool it counts toward the pool's HINT. */
static uint8_t virtio_tmem_get(VirtIOTmem *s, VirtIOTmemReqQueue *rq,
                               int pool, uint32_t slot,
                               const struct tmem_key *key, bool exclusive,
                               VirtQueueElement *elem, size_t off, size_t len)
{
    int rc = exclusive ? tmem_get_exclusive(s->store, pool, key, rq->page,
                                            len)
                       : tmem_get(s->store, pool, key, rq->page, len);
    enum tmem_pool_kind kind;

    if (!rc) {
        iov_from_buf(elem->in_sg, elem->in_num, off, rq->page, len);
    }
    if ((!rc || rc == -ENOENT) &&
        !tmem_pool_info(s->store, pool, &kind, NULL) &&
        kind == TMEM_EPHEMERAL) {
        virtio_tmem_hint_gets(s, pool, slot, 1, !rc);
    }
    return virtio_tmem_status_of(rc);
}

/*
 * MISSES: @n gets of an ephemeral pool that the driver answered itself, as
 * its presence filter showed the store could not have the page.  They
 * count toward the pool's HINT like gets that missed here.
 */
static uint8_t virtio_tmem_misses(VirtIOTmem *s, int pool, uint32_t slot,
                                  uint32_t n)
{
    enum tmem_pool_kind kind;

    if (!n || tmem_pool_info(s->store, pool, &kind, NULL) ||
        kind != TMEM_EPHEMERAL) {
        return VIRTIO_TMEM_S_INVALID;
    }
    virtio_tmem_hint_gets(s, pool, slot, n, 0);
    return VIRTIO_TMEM_S_OK;
}

/*
 * A GET_RANGE: the page at @key and the neighbours the store holds, so
 * that a readahead window costs the guest one exit, not one a page.
 * Only the first page counts toward the pool's HINT window as a get;
 * each neighbour returned counts as a hit, since the guest asked for it
 * to read it.  A neighbour that cannot be read is simply not returned.
 */
static uint8_t virtio_tmem_get_range(VirtIOTmem *s, VirtIOTmemReqQueue *rq,
                                     int pool, uint32_t slot,
                                     const struct tmem_key *key,
                                     uint32_t arg, VirtQueueElement *elem,
                                     size_t off, uint32_t *found)
{
    uint32_t count = VIRTIO_TMEM_RANGE_COUNT(arg);
    size_t len = (size_t)1 << VIRTIO_TMEM_RANGE_SHIFT(arg);
    struct tmem_key k = *key;
    enum tmem_pool_kind kind;
    int first = -ENOENT;
    uint32_t i;

    *found = 0;
    if ((uint64_t)key->index + count - 1 > UINT32_MAX) {
        return VIRTIO_TMEM_S_INVALID;
    }
    for (i = 0; i < count; i++) {
        int rc;

        k.index = key->index + i;
        rc = tmem_get(s->store, pool, &k, rq->page, len);
        if (i == 0) {
            first = rc;
        }
        if (rc == -EINVAL || rc == -EBADF) {
            break;      /* wrong page size, or the pool went: all will */
        }
        if (!rc) {
            iov_from_buf(elem->in_sg, elem->in_num, off + i * len, rq->page,
                         len);
            *found |= 1u << i;
        }
    }
    if (!tmem_pool_info(s->store, pool, &kind, NULL) &&
        kind == TMEM_EPHEMERAL && (first == 0 || first == -ENOENT)) {
        /* the first page as a GET; the others only if they hit */
        uint32_t more = ctpop32(*found & ~1u);

        virtio_tmem_hint_gets(s, pool, slot, 1 + more, !first + more);
    }
    if (first && first != -ENOENT) {
        *found = 0;     /* a failed op reports no pages (spec 6.3) */
    }
    return virtio_tmem_status_of(first);
}

/*
 * No credits while over budget: the driver falls back to sync puts, and
 * is sent the credits in a CREDITS event once the store is back under.
 */
static uint32_t virtio_tmem_grant(VirtIOTmem *s, uint32_t wanted)
{
    struct tmem_stats st;
    uint32_t grant;
    bool over;

    tmem_stats(s->store, &st);
    over = st.v[TMEM_STAT_RAM_USED] > st.v[TMEM_STAT_BUDGET];
    QEMU_LOCK_GUARD(&s->lock);
    grant = over ? 0 : MIN(wanted, s->max_credits - s->credits);
    virtio_tmem_events_credits(s, MIN(wanted, s->max_credits - s->credits),
                               grant, over);
    s->credits += grant;
    return grant;
}

/* Which fields each operation uses; the others must be zero. */
#define VIRTIO_TMEM_F_POOL  (1 << 0)
#define VIRTIO_TMEM_F_OID   (1 << 1)
#define VIRTIO_TMEM_F_INDEX (1 << 2)
#define VIRTIO_TMEM_F_ARG   (1 << 3)
#define VIRTIO_TMEM_F_FLAGS (1 << 4)

static const uint8_t virtio_tmem_op_fields[] = {
    [VIRTIO_TMEM_OP_POOL_NEW] = VIRTIO_TMEM_F_ARG,
    [VIRTIO_TMEM_OP_POOL_DESTROY] = VIRTIO_TMEM_F_POOL,
    [VIRTIO_TMEM_OP_PUT] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_OID |
                           VIRTIO_TMEM_F_INDEX | VIRTIO_TMEM_F_ARG |
                           VIRTIO_TMEM_F_FLAGS,
    [VIRTIO_TMEM_OP_GET] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_OID |
                           VIRTIO_TMEM_F_INDEX | VIRTIO_TMEM_F_ARG,
    [VIRTIO_TMEM_OP_GET_EXCL] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_OID |
                                VIRTIO_TMEM_F_INDEX | VIRTIO_TMEM_F_ARG,
    [VIRTIO_TMEM_OP_FLUSH_PAGE] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_OID |
                                  VIRTIO_TMEM_F_INDEX,
    [VIRTIO_TMEM_OP_FLUSH_OBJECT] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_OID,
    [VIRTIO_TMEM_OP_FLUSH_POOL] = VIRTIO_TMEM_F_POOL,
    [VIRTIO_TMEM_OP_CREDITS] = VIRTIO_TMEM_F_ARG,
    [VIRTIO_TMEM_OP_GET_RANGE] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_OID |
                                 VIRTIO_TMEM_F_INDEX | VIRTIO_TMEM_F_ARG,
    [VIRTIO_TMEM_OP_MISSES] = VIRTIO_TMEM_F_POOL | VIRTIO_TMEM_F_ARG,
};

static bool virtio_tmem_op_clean(const struct virtio_tmem_op *op)
{
    uint8_t used = virtio_tmem_op_fields[op->type];

    return !op->reserved &&
           (used & VIRTIO_TMEM_F_POOL || !op->pool) &&
           (used & VIRTIO_TMEM_F_OID ||
            !(op->oid[0] | op->oid[1] | op->oid[2])) &&
           (used & VIRTIO_TMEM_F_INDEX || !op->index) &&
           (used & VIRTIO_TMEM_F_ARG || !op->arg) &&
           (used & VIRTIO_TMEM_F_FLAGS || !op->flags);
}

/* Run one operation; @out_off and @in_off walk the chain's page data. */
static uint8_t coroutine_fn virtio_tmem_run_op(VirtIOTmem *s,
                                               VirtIOTmemReqQueue *rq,
                                               const struct virtio_tmem_op *op,
                                               VirtQueueElement *elem,
                                               size_t *out_off, size_t *in_off,
                                               uint32_t *value)
{
    uint32_t id = le32_to_cpu(op->pool);
    int pool = virtio_tmem_pool(s, id);
    size_t out_len, in_len;
    struct tmem_key key;
    int64_t n;

    virtio_tmem_op_data(op, &out_len, &in_len);
    *out_off += out_len;
    *in_off += in_len;
    *value = 0;
    if (op->type == 0 || op->type >= ARRAY_SIZE(virtio_tmem_op_fields)) {
        return VIRTIO_TMEM_S_UNSUPPORTED;
    }
    key.oid[0] = le64_to_cpu(op->oid[0]);
    key.oid[1] = le64_to_cpu(op->oid[1]);
    key.oid[2] = le64_to_cpu(op->oid[2]);
    key.index = le32_to_cpu(op->index);
    if (!virtio_tmem_op_clean(op)) {
        if (op->type == VIRTIO_TMEM_OP_PUT && pool >= 0) {
            tmem_flush_page(s->store, pool, &key);
        }
        return VIRTIO_TMEM_S_INVALID;
    }

    switch (op->type) {
    case VIRTIO_TMEM_OP_POOL_NEW:
        return virtio_tmem_pool_new(s, le32_to_cpu(op->arg), value);
    case VIRTIO_TMEM_OP_CREDITS:
        if (!virtio_vdev_has_feature(VIRTIO_DEVICE(s),
                                     VIRTIO_TMEM_F_CREDITS)) {
            return VIRTIO_TMEM_S_UNSUPPORTED;
        }
        *value = virtio_tmem_grant(s, le32_to_cpu(op->arg));
        return VIRTIO_TMEM_S_OK;
    case VIRTIO_TMEM_OP_POOL_DESTROY:
    case VIRTIO_TMEM_OP_PUT:
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
    case VIRTIO_TMEM_OP_FLUSH_POOL:
        break;
    case VIRTIO_TMEM_OP_GET_RANGE:
        if (!virtio_vdev_has_feature(VIRTIO_DEVICE(s),
                                     VIRTIO_TMEM_F_GET_RANGE)) {
            return VIRTIO_TMEM_S_UNSUPPORTED;
        }
        break;
    case VIRTIO_TMEM_OP_MISSES:
        if (!virtio_vdev_has_feature(VIRTIO_DEVICE(s),
                                     VIRTIO_TMEM_F_MISS_REPORT)) {
            return VIRTIO_TMEM_S_UNSUPPORTED;
        }
        break;
    default:
        break;
    }
    if (pool < 0) {
        return VIRTIO_TMEM_S_BADPOOL;
    }

    switch (op->type) {
    case VIRTIO_TMEM_OP_POOL_DESTROY:
        return virtio_tmem_pool_destroy(s, id, pool);
    case VIRTIO_TMEM_OP_PUT:
        return virtio_tmem_put(s, rq, pool, &key, op, elem,
                               *out_off - out_len, out_len);
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
        return virtio_tmem_get(s, rq, pool, VIRTIO_TMEM_POOL_SLOT(id), &key,
                               op->type == VIRTIO_TMEM_OP_GET_EXCL, elem,
                               *in_off - in_len, in_len);
    case VIRTIO_TMEM_OP_GET_RANGE:
        return virtio_tmem_get_range(s, rq, pool, VIRTIO_TMEM_POOL_SLOT(id),
                                     &key, le32_to_cpu(op->arg), elem,
                                     *in_off - in_len, value);
    case VIRTIO_TMEM_OP_MISSES:
        return virtio_tmem_misses(s, pool, VIRTIO_TMEM_POOL_SLOT(id),
                                  le32_to_cpu(op->arg));
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
        return virtio_tmem_status_of(tmem_flush_page(s->store, pool, &key));
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
        n = virtio_tmem_flush(s, pool, key.oid);
        break;
    default:
        n = virtio_tmem_flush(s, pool, NULL);
        break;
    }
    if (n < 0) {
        return virtio_tmem_status_of(n);
    }
    *value = n > UINT32_MAX ? UINT32_MAX : n;
    return VIRTIO_TMEM_S_OK;
}

bool coroutine_fn virtio_tmem_handle_request(VirtIOTmem *s,
                                             VirtIOTmemReqQueue *rq,
                                             VirtQueueElement *elem,
                                             size_t *written)
{
    struct virtio_tmem_resp resp = { 0 };
    VirtIOTmemQueueStats *qs = rq->qs;
    size_t in_len, out_off, in_off;
    unsigned nops, nops_done, i;
    bool skip;

    nops = virtio_tmem_parse(s, rq, elem, &in_len, &skip);
    if (!nops) {
        return false;
    }
    rq->ahead_blocked = false;
    trace_virtio_tmem_request(s, nops);
    if (skip) {
        /* A header we do not understand: run nothing, say so. */
        for (i = 0; i < nops; i++) {
            rq->status[i] = (struct virtio_tmem_status) {
                .status = VIRTIO_TMEM_S_SKIPPED,
            };
        }
        nops_done = 0;
        in_len = sizeof(resp) + nops * sizeof(struct virtio_tmem_status);
        goto out;
    }
    out_off = sizeof(struct virtio_tmem_req) +
              nops * sizeof(struct virtio_tmem_op);
    in_off = sizeof(resp) + nops * sizeof(struct virtio_tmem_status);
    for (i = 0; i < nops; i++) {
        const struct virtio_tmem_op *op = &rq->ops[i];
        VirtIOTmemOpStats *os = NULL;
        uint32_t value;
        size_t moved = out_off + in_off;
        uint8_t st;

        st = virtio_tmem_run_op(s, rq, op, elem, &out_off, &in_off, &value);
        virtio_tmem_live_note(s, op, st, value);
        rq->status[i] = (struct virtio_tmem_status) {
            .status = st, .value = cpu_to_le32(value),
        };
        if (op->type < VIRTIO_TMEM_NR_OPS) {
            os = &s->opstats[op->type];
            qatomic_inc(&os->ops);
        }
        if (op->type == VIRTIO_TMEM_OP_MISSES) {
            /* the gets it reported */
            if (st == VIRTIO_TMEM_S_OK) {
                qatomic_add(&os->pages, le32_to_cpu(op->arg));
            }
        } else if (op->type == VIRTIO_TMEM_OP_GET_RANGE) {
            /* the pages it returned, whatever the first one's status */
            qatomic_add(&qs->pages, ctpop32(value));
            qatomic_add(&os->pages, ctpop32(value));
        } else if (out_off + in_off != moved && st == VIRTIO_TMEM_S_OK) {
            qatomic_inc(&qs->pages);
            if (os) {
                qatomic_inc(&os->pages);
            }
        }
        trace_virtio_tmem_op(op->type, le32_to_cpu(op->pool),
                             le32_to_cpu(op->index), st);
        if (i + 1 < nops) {
            virtio_tmem_run_ahead(rq);
            virtio_tmem_take_turns(rq);
        }
    }
    qatomic_add(&qs->ops, nops);
    nops_done = nops;
out:
    resp.nops_done = cpu_to_le16(nops_done);
    iov_from_buf(elem->in_sg, elem->in_num, 0, &resp, sizeof(resp));
    iov_from_buf(elem->in_sg, elem->in_num, sizeof(resp), rq->status,
                 nops * sizeof(struct virtio_tmem_status));
    *written = in_len;
    return true;
}
