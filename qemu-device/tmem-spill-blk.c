/*
 * tmem-spill-blk: a tmem-store's spill medium on a block node
 *
 * With spill-node=NODE a store spills its persistent pages beyond the
 * budget to NODE, through a BlockBackend, instead of to a file of the
 * host library's own: any block node will do (a raw or qcow2 image,
 * NBD, RBD), with the block layer's reconnects, throttling and mirrors.
 *
 * The library calls the medium's ops from its own threads (a putting
 * thread, its reclaim thread, any getting thread) and waits for them.
 * The I/O runs in coroutines in an AioContext of the medium's own, an
 * internal IOThread that the node moves into, so that no caller ever
 * waits for an AioContext that it is running itself.
 *
 * A write asked for by the main loop is declined (-EAGAIN): spilling
 * there would stall the monitor and every device for as long as the
 * node takes, seconds for an NBD server that is reconnecting.  The page
 * stays in RAM and the store's reclaim thread spills it.  A read cannot
 * be declined, since a persistent page must come back, so a get of a
 * spilled page waits even in the main loop: give the device an iothread
 * when the node may stall.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-events-virtio.h"
#include "qapi/visitor.h"
#include "qemu/coroutine.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "block/aio.h"
#include "block/block-global-state.h"
#include "system/block-backend.h"
#include "system/iothread.h"
#include "system/tmem-spill-blk.h"
#include "tmem.h"
#include "trace.h"

/* Extents in flight at once per op; the rest wait their turn. */
#define TMEM_SPILL_BLK_DEPTH    32

struct TmemSpillBlk {
    char *node;                 /* the node's name, as given */
    uint64_t size;              /* bytes the store may use */
    IOThread *iothread;         /* where the I/O runs; NULL until attached */
    BlockBackend *blk;

    /* Counters (qatomic_*), read by the stats visitor in the main loop */
    uint64_t writes, write_bytes, write_errors, declined;
    uint64_t reads, read_bytes, read_errors, discards;
    int last_error;     /* -errno of the last failed extent, or 0 */
    uint64_t max_op_ms; /* the longest op a store thread waited */
    bool failing;       /* an I/O failed and none succeeded since */
    uint64_t slow_ops;  /* ops that took a second or more */
};

typedef enum TmemSpillBlkOp {
    TMEM_SPILL_BLK_READ,
    TMEM_SPILL_BLK_WRITE,
    TMEM_SPILL_BLK_DISCARD,
} TmemSpillBlkOp;

/* One op: its extents, and how many of them are still moving. */
typedef struct TmemSpillBlkReq {
    TmemSpillBlk *sb;
    struct tmem_spill_extent *ext;
    unsigned int n;
    unsigned int next;          /* the next extent to start */
    unsigned int running;       /* coroutines still working */
    TmemSpillBlkOp op;
    /*
     * Posted by the last worker.  Not a QemuEvent: qemu_event_wait() can
     * return before the event is set (a futex wake left over from the
     * previous op's event, which lived at the same stack address), and
     * the op's extents and this struct would then go while workers still
     * use them: pages read back wrong, or QEMU crashed.
     */
    QemuSemaphore done;
} TmemSpillBlkReq;

static int coroutine_fn tmem_spill_blk_co_io(TmemSpillBlk *sb,
                                             TmemSpillBlkOp op,
                                             struct tmem_spill_extent *e)
{
    int ret;

    switch (op) {
    case TMEM_SPILL_BLK_WRITE:
        ret = blk_co_pwrite(sb->blk, e->offset, e->len, e->buf, 0);
        if (ret >= 0) {
            qatomic_inc(&sb->writes);
            qatomic_add(&sb->write_bytes, e->len);
        } else {
            qatomic_inc(&sb->write_errors);
        }
        break;
    case TMEM_SPILL_BLK_READ:
        ret = blk_co_pread(sb->blk, e->offset, e->len, e->buf, 0);
        if (ret >= 0) {
            qatomic_inc(&sb->reads);
            qatomic_add(&sb->read_bytes, e->len);
        } else {
            qatomic_inc(&sb->read_errors);
        }
        break;
    default:
        /* a hint: a node that cannot discard has lost nothing */
        ret = blk_co_pdiscard(sb->blk, e->offset, e->len, 0);
        qatomic_inc(&sb->discards);
        trace_tmem_spill_blk_io(sb->node, op, e->offset, e->len, ret);
        return 0;
    }
    if (ret < 0) {
        qatomic_set(&sb->last_error, ret);
        /* one event per stretch of failures, not one per page */
        if (!qatomic_xchg(&sb->failing, true)) {
            qapi_event_send_tmem_spill_node_error(sb->node,
                op == TMEM_SPILL_BLK_READ ? TMEM_SPILL_OPERATION_READ
                                          : TMEM_SPILL_OPERATION_WRITE,
                strerror(-ret));
        }
    } else {
        qatomic_set(&sb->failing, false);
    }
    trace_tmem_spill_blk_io(sb->node, op, e->offset, e->len, ret);
    return ret < 0 ? ret : 0;
}

/* One worker: takes the op's next extent until none is left. */
static void coroutine_fn tmem_spill_blk_worker(void *opaque)
{
    TmemSpillBlkReq *req = opaque;

    /* every worker runs in the medium's AioContext: no lock needed */
    while (req->next < req->n) {
        struct tmem_spill_extent *e = &req->ext[req->next++];

        e->res = tmem_spill_blk_co_io(req->sb, req->op, e);
    }
    if (--req->running == 0) {
        qemu_sem_post(&req->done);
    }
}

/*
 * How long a store thread waited for an op: a node that stalls (an NBD
 * server reconnecting) shows here before anything fails.
 */
static void tmem_spill_blk_timed(TmemSpillBlk *sb, int64_t ms)
{
    uint64_t old = qatomic_read(&sb->max_op_ms);

    while ((uint64_t)ms > old) {
        uint64_t seen = qatomic_cmpxchg(&sb->max_op_ms, old, ms);

        if (seen == old) {
            break;
        }
        old = seen;
    }
    if (ms >= 1000) {
        qatomic_inc(&sb->slow_ops);
    }
}

static int tmem_spill_blk_run(TmemSpillBlk *sb, struct tmem_spill_extent *ext,
                              unsigned int n, TmemSpillBlkOp op)
{
    AioContext *ctx;
    TmemSpillBlkReq req = {
        .sb = sb, .ext = ext, .n = n, .op = op,
    };
    unsigned int i, workers = MIN(n, TMEM_SPILL_BLK_DEPTH);
    int64_t t0;

    if (!sb->blk) {
        return -ENOMEDIUM;      /* not attached yet: nothing was spilled */
    }
    if (op != TMEM_SPILL_BLK_READ && qemu_in_main_thread()) {
        qatomic_inc(&sb->declined);
        return -EAGAIN;
    }
    if (!workers) {
        return 0;
    }
    ctx = iothread_get_aio_context(sb->iothread);
    t0 = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    /* the store's threads only; the medium's own would wait for itself */
    assert(qemu_get_current_aio_context() != ctx);
    qemu_sem_init(&req.done, 0);
    req.running = workers;
    for (i = 0; i < workers; i++) {
        aio_co_schedule(ctx, qemu_coroutine_create(tmem_spill_blk_worker,
                                                   &req));
    }
    qemu_sem_wait(&req.done);
    qemu_sem_destroy(&req.done);
    tmem_spill_blk_timed(sb, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - t0);
    return 0;
}

static int tmem_spill_blk_write(void *opaque, struct tmem_spill_extent *ext,
                                unsigned int n)
{
    return tmem_spill_blk_run(opaque, ext, n, TMEM_SPILL_BLK_WRITE);
}

static int tmem_spill_blk_read(void *opaque, struct tmem_spill_extent *ext,
                               unsigned int n)
{
    return tmem_spill_blk_run(opaque, ext, n, TMEM_SPILL_BLK_READ);
}

static void tmem_spill_blk_discard(void *opaque, uint64_t offset,
                                   uint64_t len)
{
    while (len) {
        struct tmem_spill_extent e = {
            .offset = offset, .len = MIN(len, 1u << 30),
        };

        tmem_spill_blk_run(opaque, &e, 1, TMEM_SPILL_BLK_DISCARD);
        offset += e.len;
        len -= e.len;
    }
}

const struct tmem_spill_ops tmem_spill_blk_ops = {
    .write = tmem_spill_blk_write,
    .read = tmem_spill_blk_read,
    .discard = tmem_spill_blk_discard,
};

TmemSpillBlk *tmem_spill_blk_new(const char *node, uint64_t size)
{
    TmemSpillBlk *sb = g_new0(TmemSpillBlk, 1);

    sb->node = g_strdup(node);
    sb->size = size;
    return sb;
}

bool tmem_spill_blk_attach(TmemSpillBlk *sb, Error **errp)
{
    static unsigned int count;
    BlockDriverState *bs;
    g_autofree char *id = NULL;
    int64_t len;

    GLOBAL_STATE_CODE();
    bs = bdrv_lookup_bs(NULL, sb->node, errp);
    if (!bs) {
        return false;
    }
    id = g_strdup_printf("tmem-spill-%u", count++);
    sb->iothread = iothread_create(id, errp);
    if (!sb->iothread) {
        return false;
    }
    /*
     * Read and write, and no other writer or resize: the store owns
     * these bytes.  Inserting the node moves it into the IOThread.
     */
    sb->blk = blk_new(iothread_get_aio_context(sb->iothread),
                      BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE,
                      BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED);
    if (blk_insert_bs(sb->blk, bs, errp) < 0) {
        goto fail;
    }
    /*
     * A drain of all nodes (vm stop, migration, snapshots) waits for a
     * tmem node's reads, and they wait for this node: its requests must
     * go through while it is drained, as a block job's do, or the drain
     * never ends.
     */
    blk_set_disable_request_queuing(sb->blk, true);
    len = blk_getlength(sb->blk);
    if (len < 0) {
        error_setg_errno(errp, -len, "cannot get the size of node '%s'",
                         sb->node);
        goto fail;
    }
    if ((uint64_t)len < sb->size) {
        error_setg(errp, "node '%s' has %" PRId64 " bytes, spill-max asks "
                   "for %" PRIu64, sb->node, len, sb->size);
        goto fail;
    }
    trace_tmem_spill_blk_attach(sb->node, len, sb->size);
    return true;

fail:
    blk_unref(sb->blk);
    sb->blk = NULL;
    iothread_destroy(sb->iothread);
    sb->iothread = NULL;
    return false;
}

void tmem_spill_blk_free(TmemSpillBlk *sb)
{
    if (!sb) {
        return;
    }
    /* the store is gone: no op runs any more */
    if (sb->blk) {
        blk_unref(sb->blk);
    }
    if (sb->iothread) {
        iothread_destroy(sb->iothread);
    }
    g_free(sb->node);
    g_free(sb);
}

bool tmem_spill_blk_visit_stats(TmemSpillBlk *sb, Visitor *v, Error **errp)
{
    uint64_t vals[] = {
        qatomic_read(&sb->writes), qatomic_read(&sb->write_bytes),
        qatomic_read(&sb->write_errors), qatomic_read(&sb->declined),
        qatomic_read(&sb->reads), qatomic_read(&sb->read_bytes),
        qatomic_read(&sb->read_errors), qatomic_read(&sb->discards),
        qatomic_read(&sb->max_op_ms), qatomic_read(&sb->slow_ops),
    };
    static const char *const names[] = {
        "writes", "write_bytes", "write_errors", "declined",
        "reads", "read_bytes", "read_errors", "discards",
        "max_op_ms", "slow_ops",
    };
    int64_t last = qatomic_read(&sb->last_error);
    bool attached = sb->blk;
    char *node = sb->node;
    bool ok;
    unsigned int i;

    if (!visit_start_struct(v, "spill_node", NULL, 0, errp)) {
        return false;
    }
    ok = visit_type_str(v, "node", &node, errp) &&
         visit_type_bool(v, "attached", &attached, errp);
    for (i = 0; ok && i < ARRAY_SIZE(vals); i++) {
        ok = visit_type_uint64(v, names[i], &vals[i], errp);
    }
    ok = ok && visit_type_int64(v, "last_error", &last, errp) &&
         visit_check_struct(v, errp);
    visit_end_struct(v, NULL);
    return ok;
}
