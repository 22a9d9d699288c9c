/*
 * tmem block driver: a disk kept in a tmem-store
 *
 *   -object tmem-store,id=st0,budget=256M,spill=/var/tmp,spill-max=4G
 *   -blockdev driver=tmem,node-name=swap0,store=st0,size=1G
 *   -device virtio-blk-pci,drive=swap0
 *
 * For guests whose kernels have no frontswap (Linux 6.6 and later): they
 * swap to a stock virtio-blk disk, and each 4 KiB block the guest writes
 * is a page in a persistent pool of the store, compressed in host RAM
 * within the store's budget and spilled beyond it.  A block that was
 * never written, or was discarded, reads as zeros; a write of zeros
 * frees its block.  A write fails (ENOSPC) only when the budget and the
 * spill file are both spent, and a guest's swap code keeps the page; a
 * write during a budget cut waits for the store to get under it.
 *
 * The store's calls may wait for spill I/O, so every request runs in
 * the thread pool, never in the main loop or an iothread itself.
 *
 * The blocks are guest state that lives nowhere else, so they travel in
 * the migration stream (and in a snapshot's vmstate), while the guest
 * runs, in a live section of the node's own: see tmem_blk_live_ops.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "block/block-io.h"
#include "block/block_int.h"
#include "block/tmem.h"
#include "block/thread-pool.h"
#include "migration/qemu-file-types.h"
#include "migration/vmstate.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/option.h"
#include "system/tmem-live.h"
#include "system/tmem-store.h"
#include "tmem.h"
#include "trace.h"

#define TMEM_BLK_PAGE           4096
/* Pages one request moves at most: the bounce buffer of a request */
#define TMEM_BLK_MAX_PAGES      256
#define TMEM_BLK_OPT_STORE      "store"

typedef struct BDRVTmemState {
    TmemStore *ts;
    struct tmem_store *store;   /* ts's */
    int pool;                   /* this disk's persistent pool */
    uint64_t size;              /* bytes, a multiple of TMEM_BLK_PAGE */
    TmemStoreUser user;         /* named after the node */
    VMStateDescription vmsd;    /* its section, "tmem-blk/NODE" */
    TmemLive *live;             /* its blocks' live section */
} BDRVTmemState;

/* One request, as the worker in the thread pool sees it. */
typedef struct TmemBlkReq {
    BDRVTmemState *s;
    uint64_t first;             /* block number */
    unsigned n;                 /* blocks */
    QEMUIOVector *qiov;         /* data; NULL for discard */
    uint8_t *bounce;            /* n blocks */
} TmemBlkReq;

static QemuOptsList tmem_blk_runtime_opts = {
    .name = "tmem",
    .head = QTAILQ_HEAD_INITIALIZER(tmem_blk_runtime_opts.head),
    .desc = {
        {
            .name = TMEM_BLK_OPT_STORE,
            .type = QEMU_OPT_STRING,
            .help = "id of the tmem-store object that keeps the blocks",
        },
        {
            .name = BLOCK_OPT_SIZE,
            .type = QEMU_OPT_SIZE,
            .help = "size of the disk, a multiple of 4 KiB",
        },
        { /* end of list */ }
    },
};

/* A block's key: the store's index is 32 bits wide, the oid takes the rest */
static struct tmem_key tmem_blk_key(uint64_t block)
{
    return (struct tmem_key) {
        .oid = { block >> 32 },
        .index = (uint32_t)block,
    };
}

/* What the guest should see of a store error on a write. */
static int tmem_blk_write_errno(int rc)
{
    return rc == -ENOSPC || rc == -ENOMEM ? rc : -EIO;
}

static int tmem_blk_read_work(void *opaque)
{
    TmemBlkReq *r = opaque;
    struct tmem_key keys[TMEM_BLK_MAX_PAGES];
    void *bufs[TMEM_BLK_MAX_PAGES];
    int res[TMEM_BLK_MAX_PAGES];
    unsigned i;
    int rc;

    for (i = 0; i < r->n; i++) {
        keys[i] = tmem_blk_key(r->first + i);
        bufs[i] = r->bounce + (size_t)i * TMEM_BLK_PAGE;
    }
    /* spilled blocks are read from the disk together, not one by one */
    rc = tmem_get_batch(r->s->store, r->s->pool, keys, bufs, res, r->n,
                        TMEM_BLK_PAGE, 0);
    if (rc < 0) {
        return -EIO;
    }
    for (i = 0; i < r->n; i++) {
        if (res[i] == -ENOENT) {
            memset(bufs[i], 0, TMEM_BLK_PAGE);  /* never written */
        } else if (res[i] < 0) {
            return -EIO;
        }
    }
    return 0;
}

static int tmem_blk_write_work(void *opaque)
{
    TmemBlkReq *r = opaque;
    unsigned i;
    int rc;

    for (i = 0; i < r->n; i++) {
        struct tmem_key key = tmem_blk_key(r->first + i);
        uint8_t *page = r->bounce + (size_t)i * TMEM_BLK_PAGE;

        if (buffer_is_zero(page, TMEM_BLK_PAGE)) {
            /* zeros are what an absent block reads as: keep nothing */
            tmem_flush_page(r->s->store, r->s->pool, &key);
            continue;
        }
        /*
         * This worker may block, and the guest would see a refusal as
         * an I/O error: wait out a budget cut rather than give up.
         */
        rc = tmem_put_flags(r->s->store, r->s->pool, &key, page,
                            TMEM_BLK_PAGE, TMEM_PUT_WAIT);
        if (rc < 0) {
            return tmem_blk_write_errno(rc);
        }
    }
    return 0;
}

static int tmem_blk_discard_work(void *opaque)
{
    TmemBlkReq *r = opaque;
    uint64_t b;

    for (b = r->first; b < r->first + r->n; b++) {
        struct tmem_key key = tmem_blk_key(b);

        tmem_flush_page(r->s->store, r->s->pool, &key);
    }
    return 0;
}

/*
 * Blocks [@first, @first + @n) changed (or, after an error, may have):
 * while a migration runs, they are sent again.  A request of more blocks
 * than this sends the whole disk again instead, rather than grow the
 * dirty set by as many keys: mkswap and swapon discard the whole disk.
 */
#define TMEM_BLK_LIVE_MARK_MAX  (64 * TMEM_BLK_MAX_PAGES)

static void tmem_blk_live_mark(BDRVTmemState *s, uint64_t first, unsigned n)
{
    unsigned i;

    if (!tmem_live_tracking(s->live)) {
        return;
    }
    for (i = 0; i < n; i++) {
        struct tmem_key key = tmem_blk_key(first + i);

        tmem_live_mark_key(s->live, 0, &key);
    }
}

/*
 * Run @fn on blocks [@offset, @offset + @bytes) in the thread pool, in
 * pieces of at most TMEM_BLK_MAX_PAGES.  The block layer aligns every
 * request to a block (request_alignment).
 */
static int coroutine_fn tmem_blk_run(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, QEMUIOVector *qiov,
                                     ThreadPoolFunc *fn, bool is_read)
{
    BDRVTmemState *s = bs->opaque;
    TmemBlkReq r = { .s = s, .qiov = qiov };
    bool whole = !is_read && bytes / TMEM_BLK_PAGE > TMEM_BLK_LIVE_MARK_MAX;
    int64_t done = 0;
    int ret = 0;

    assert(QEMU_IS_ALIGNED(offset | bytes, TMEM_BLK_PAGE));
    if (qiov) {
        r.bounce = qemu_try_blockalign(bs, MIN(bytes, TMEM_BLK_MAX_PAGES *
                                                      TMEM_BLK_PAGE));
        if (!r.bounce) {
            return -ENOMEM;
        }
    }
    while (done < bytes && !ret) {
        size_t len = MIN(bytes - done, TMEM_BLK_MAX_PAGES * TMEM_BLK_PAGE);

        r.first = (offset + done) / TMEM_BLK_PAGE;
        r.n = len / TMEM_BLK_PAGE;
        if (qiov && !is_read) {
            qemu_iovec_to_buf(qiov, done, r.bounce, len);
        }
        ret = thread_pool_submit_co(fn, &r);
        if (!ret && qiov && is_read) {
            qemu_iovec_from_buf(qiov, done, r.bounce, len);
        }
        if (!is_read && !whole) {
            tmem_blk_live_mark(s, r.first, r.n);
        }
        done += len;
    }
    if (whole) {
        tmem_live_mark_slot(s->live, 0);
    }
    qemu_vfree(r.bounce);
    trace_tmem_blk_request(s, is_read ? "read" : qiov ? "write" : "discard",
                           offset, bytes, ret);
    return ret;
}

static int coroutine_fn GRAPH_RDLOCK
tmem_blk_co_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                   QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    return tmem_blk_run(bs, offset, bytes, qiov, tmem_blk_read_work, true);
}

static int coroutine_fn GRAPH_RDLOCK
tmem_blk_co_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                    QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    return tmem_blk_run(bs, offset, bytes, qiov, tmem_blk_write_work, false);
}

/* Freeing a block is writing its zeros; only whole blocks come here. */
static int coroutine_fn GRAPH_RDLOCK
tmem_blk_co_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    int64_t end = QEMU_ALIGN_DOWN(offset + bytes, TMEM_BLK_PAGE);

    offset = QEMU_ALIGN_UP(offset, TMEM_BLK_PAGE);
    if (end <= offset) {
        return 0;       /* a discard may do nothing */
    }
    return tmem_blk_run(bs, offset, end - offset, NULL,
                        tmem_blk_discard_work, false);
}

static int coroutine_fn GRAPH_RDLOCK
tmem_blk_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                          int64_t bytes, BdrvRequestFlags flags)
{
    if (!QEMU_IS_ALIGNED(offset | bytes, TMEM_BLK_PAGE)) {
        return -ENOTSUP;    /* the block layer writes the zeros itself */
    }
    return tmem_blk_run(bs, offset, bytes, NULL, tmem_blk_discard_work,
                        false);
}

static int coroutine_fn tmem_blk_co_flush(BlockDriverState *bs)
{
    return 0;   /* nothing is volatile beyond what the store promises */
}

static int64_t coroutine_fn GRAPH_RDLOCK
tmem_blk_co_getlength(BlockDriverState *bs)
{
    BDRVTmemState *s = bs->opaque;

    return s->size;
}

static void GRAPH_RDLOCK tmem_blk_refresh_limits(BlockDriverState *bs,
                                                 Error **errp)
{
    bs->bl.request_alignment = TMEM_BLK_PAGE;
    bs->bl.pwrite_zeroes_alignment = TMEM_BLK_PAGE;
    bs->bl.pdiscard_alignment = TMEM_BLK_PAGE;
}

/*
 * Migration.  The blocks travel in a live section, "tmem-blk-live/NODE"
 * (system/tmem-live.h), the disk as slot 0 of 4 KiB pages: sent while
 * the guest runs, what it writes or discards meanwhile sent again, the
 * rest once the VM is stopped and the node drained.  Then a section
 * "tmem-blk/NODE" carries the disk's size: the destination needs a node
 * of the same name and size.
 *
 * The stream is not trusted on load: the live section checks its records
 * (tmem-live.c) and a block past the end of the destination's disk fails
 * the load, with an error_report, as another size does.  Blocks the
 * source held are kept even over the budget (TMEM_PUT_RESERVED), as
 * virtio-tmem's pages are; a block sent twice replaces itself, so what a
 * stream can make the store keep is bounded by the disk's size.
 */

static int tmem_blk_live_slot_pool(void *opaque, uint32_t slot,
                                   uint32_t *page_size)
{
    BDRVTmemState *s = opaque;

    *page_size = TMEM_BLK_PAGE;
    return slot ? -1 : s->pool;
}

static int tmem_blk_live_slot_reset(void *opaque, uint32_t slot,
                                    uint8_t shift)
{
    BDRVTmemState *s = opaque;

    if (slot || shift != 12) {
        error_report("tmem block node '%s': pool slot %u of %u-bit pages in "
                     "the stream", s->user.name, slot, shift);
        return -EINVAL;
    }
    tmem_flush_pool(s->store, s->pool);
    return 0;
}

static bool tmem_blk_live_key_ok(void *opaque, uint32_t slot,
                                 const struct tmem_key *key)
{
    BDRVTmemState *s = opaque;

    return !key->oid[1] && !key->oid[2] && key->oid[0] <= UINT32_MAX &&
           (key->oid[0] << 32 | key->index) < s->size / TMEM_BLK_PAGE;
}

/* loadvm into a disk in use: what it held before goes */
static void tmem_blk_live_load_begin(void *opaque)
{
    BDRVTmemState *s = opaque;

    tmem_flush_pool(s->store, s->pool);
}

static const TmemLiveOps tmem_blk_live_ops = {
    .slot_pool = tmem_blk_live_slot_pool,
    .slot_reset = tmem_blk_live_slot_reset,
    .key_ok = tmem_blk_live_key_ok,
    .load_begin = tmem_blk_live_load_begin,
};

int tmem_blk_live_load_all(void *opaque, QEMUFile *f)
{
    return tmem_live_load_all(((BDRVTmemState *)opaque)->live, f);
}

int tmem_blk_live_save_all(void *opaque, QEMUFile *f)
{
    return tmem_live_save_all(((BDRVTmemState *)opaque)->live, f);
}

static int tmem_blk_save(QEMUFile *f, void *pv, size_t size,
                         const VMStateField *field, JSONWriter *vmdesc)
{
    BDRVTmemState *s = pv;

    qemu_put_be64(f, s->size);
    return qemu_file_get_error(f);
}

static int tmem_blk_load(QEMUFile *f, void *pv, size_t size,
                         const VMStateField *field)
{
    BDRVTmemState *s = pv;
    uint64_t disk = qemu_get_be64(f);

    if (disk != s->size) {
        error_report("tmem block node '%s': a disk of %" PRIu64 " bytes "
                     "arriving, the node has %" PRIu64, s->user.name, disk,
                     s->size);
        return -EINVAL;
    }
    return qemu_file_get_error(f);
}

static const VMStateInfo vmstate_info_tmem_blk = {
    .name = "tmem-blk-size",
    .get = tmem_blk_load,
    .put = tmem_blk_save,
};

static const VMStateField vmstate_tmem_blk_fields[] = {
    {
        .name = "size",
        .info = &vmstate_info_tmem_blk,
        .flags = VMS_SINGLE,
    },
    VMSTATE_END_OF_LIST()
};

static void tmem_blk_parse_filename(const char *filename, QDict *options,
                                    Error **errp)
{
    error_setg(errp, "the tmem driver takes no filename; use -blockdev "
               "driver=tmem,store=ID,size=SIZE");
}

static int tmem_blk_open(BlockDriverState *bs, QDict *options, int flags,
                         Error **errp)
{
    BDRVTmemState *s = bs->opaque;
    g_autofree char *live = NULL;
    QemuOpts *opts;
    const char *id;
    int ret = -EINVAL;

    opts = qemu_opts_create(&tmem_blk_runtime_opts, NULL, 0, &error_abort);
    if (!qemu_opts_absorb_qdict(opts, options, errp)) {
        goto out;
    }
    id = qemu_opt_get(opts, TMEM_BLK_OPT_STORE);
    s->size = qemu_opt_get_size(opts, BLOCK_OPT_SIZE, 0);
    if (!id) {
        error_setg(errp, "the tmem driver needs store=ID of a tmem-store");
        goto out;
    }
    if (!s->size || !QEMU_IS_ALIGNED(s->size, TMEM_BLK_PAGE) ||
        s->size > INT64_MAX) {
        error_setg(errp, "size must be a positive multiple of %d bytes",
                   TMEM_BLK_PAGE);
        goto out;
    }
    s->ts = tmem_store_find(id, errp);
    if (!s->ts) {
        goto out;
    }
    s->store = tmem_store_get(s->ts);
    if (!s->store) {
        error_setg(errp, "tmem-store '%s' is not ready", id);
        goto out;
    }
    s->pool = tmem_pool_create(s->store, TMEM_PERSISTENT, TMEM_BLK_PAGE);
    if (s->pool < 0) {
        error_setg_errno(errp, -s->pool, "cannot make a pool in tmem-store "
                         "'%s'", id);
        ret = s->pool;
        goto out;
    }
    s->user.name = g_strdup(bdrv_get_node_name(bs));
    s->vmsd = (VMStateDescription) {
        .name = g_strdup_printf("tmem-blk/%s", s->user.name),
        /* 2: the blocks are in the live section */
        .version_id = 2,
        .minimum_version_id = 2,
        .fields = vmstate_tmem_blk_fields,
    };
    ret = vmstate_register_with_alias_id(NULL, 0, &s->vmsd, s, -1, 0, errp);
    if (ret < 0) {
        g_free((char *)s->vmsd.name);
        g_free((char *)s->user.name);
        tmem_pool_destroy(s->store, s->pool);
        goto out;
    }
    live = g_strdup_printf("tmem-blk-live/%s", s->user.name);
    s->live = tmem_live_new(live, s->store, 1, &tmem_blk_live_ops, s);
    tmem_store_attach(s->ts, &s->user);
    bs->supported_write_flags = BDRV_REQ_FUA;
    bs->supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_FUA;
    ret = 0;
out:
    qemu_opts_del(opts);
    return ret;
}

static void tmem_blk_close(BlockDriverState *bs)
{
    BDRVTmemState *s = bs->opaque;

    tmem_live_free(s->live);
    vmstate_unregister(NULL, &s->vmsd, s);
    tmem_pool_destroy(s->store, s->pool);
    tmem_store_detach(s->ts, &s->user);
    g_free((char *)s->vmsd.name);
    g_free((char *)s->user.name);
}

static const char *const tmem_blk_strong_runtime_opts[] = {
    TMEM_BLK_OPT_STORE,
    BLOCK_OPT_SIZE,
    NULL
};

static BlockDriver bdrv_tmem = {
    .format_name            = "tmem",
    .protocol_name          = "tmem",
    .instance_size          = sizeof(BDRVTmemState),

    .bdrv_open              = tmem_blk_open,
    .bdrv_close             = tmem_blk_close,
    .bdrv_parse_filename    = tmem_blk_parse_filename,
    .bdrv_co_getlength      = tmem_blk_co_getlength,
    .bdrv_refresh_limits    = tmem_blk_refresh_limits,

    .bdrv_co_preadv         = tmem_blk_co_preadv,
    .bdrv_co_pwritev        = tmem_blk_co_pwritev,
    .bdrv_co_pwrite_zeroes  = tmem_blk_co_pwrite_zeroes,
    .bdrv_co_pdiscard       = tmem_blk_co_pdiscard,
    .bdrv_co_flush_to_disk  = tmem_blk_co_flush,

    .strong_runtime_opts    = tmem_blk_strong_runtime_opts,
};

static void bdrv_tmem_init(void)
{
    bdrv_register(&bdrv_tmem);
}

block_init(bdrv_tmem_init);
