/*
 * QTest testcase for the virtio-tmem device
 *
 * The tests drive the request queue the way the guest driver does: one
 * descriptor chain per request, a batch of operations in each, and check
 * the statuses, the data and the device's QMP statistics.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qnum.h"
#include "standard-headers/linux/pci_regs.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "libqos/libqos.h"
#include "libqos/qgraph.h"
#include "libqos/virtio.h"
#include "libqos/virtio-tmem.h"

#define TMEM_TIMEOUT_US         (30 * G_USEC_PER_SEC)
#define TMEM_SETTLE_US          (10 * G_USEC_PER_SEC)

#define PAGE_4K                 4096
#define PAGE_64K                65536
#define BATCH                   64

/* Device defaults (the properties' defaults) */
#define DEF_NUM_QUEUES          1
#define DEF_MAX_OPS             256
#define DEF_MAX_CREDITS         1024
#define DEF_BUDGET              (64 * MiB)

/* eventq + request queues, as many as the tests ask for */
#define TMEM_MAX_VQS            9
#define TMEM_EVENT_BUFS         4

#define POOL_P4K   VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_PERSISTENT, 12)
#define POOL_E4K   VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_EPHEMERAL, 12)
#define POOL_P64K  VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_PERSISTENT, 16)

#define BAD_POOL                0xdeadbeefu
#define BAD_OP                  0x7f

#define TMEM_FEATURES  ((1ull << VIRTIO_F_VERSION_1) |          \
                        (1ull << VIRTIO_RING_F_EVENT_IDX) |     \
                        (1ull << VIRTIO_TMEM_F_EPHEMERAL) |     \
                        (1ull << VIRTIO_TMEM_F_PAGE_64K) |      \
                        (1ull << VIRTIO_TMEM_F_CREDITS))

typedef struct TmemCtx {
    QVirtioTmem *tmem;
    QVirtioDevice *vdev;
    QTestState *qts;
    QGuestAllocator *alloc;
    uint64_t features;
    uint16_t num_queues;
    uint16_t max_ops;
    unsigned nvqs;
    QVirtQueue *vq[TMEM_MAX_VQS];
    uint64_t event_bufs;
    /* one descriptor per header, op array and page, not one per part */
    bool split;
    uint32_t last_credits;
    /* a pool left alive before a ring-level error, or -1 */
    int64_t live_pool;
} TmemCtx;

/* One operation, its data and its result */
typedef struct TmemOp {
    uint8_t type;
    uint8_t flags;
    uint32_t pool;
    uint64_t oid[3];
    uint32_t index;
    uint32_t arg;
    uint32_t len;           /* PUT data or GET buffer bytes */
    const uint8_t *data;    /* PUT */
    uint8_t *buf;           /* GET, GET_EXCL: filled in on completion */
    uint8_t status;         /* out; 0xff: not written by the device */
    uint32_t value;         /* out */
} TmemOp;

static bool op_has_data(const TmemOp *op)
{
    return op->type == VIRTIO_TMEM_OP_PUT;
}

static bool op_has_buf(const TmemOp *op)
{
    return op->type == VIRTIO_TMEM_OP_GET ||
           op->type == VIRTIO_TMEM_OP_GET_EXCL;
}

static TmemOp op_key(uint8_t type, uint32_t pool, uint64_t oid,
                     uint32_t index)
{
    TmemOp op = {
        .type = type,
        .pool = pool,
        .oid = { oid, oid ^ 0x5a5a5a5a5a5a5a5aull, 0x1234 },
        .index = index,
    };
    return op;
}

static uint32_t page_shift(uint32_t len)
{
    g_assert(len == PAGE_4K || len == PAGE_64K);
    return len == PAGE_4K ? 12 : 16;
}

/* PUT, GET and GET_EXCL name their page size: arg is the page shift */
static TmemOp op_put(uint32_t pool, uint64_t oid, uint32_t index,
                     const uint8_t *data, uint32_t len)
{
    TmemOp op = op_key(VIRTIO_TMEM_OP_PUT, pool, oid, index);

    op.data = data;
    op.len = len;
    op.arg = page_shift(len);
    return op;
}

static TmemOp op_get(uint8_t type, uint32_t pool, uint64_t oid,
                     uint32_t index, uint8_t *buf, uint32_t len)
{
    TmemOp op = op_key(type, pool, oid, index);

    op.buf = buf;
    op.len = len;
    op.arg = page_shift(len);
    return op;
}

static TmemOp op_arg(uint8_t type, uint32_t arg)
{
    TmemOp op = { .type = type, .arg = arg };
    return op;
}

static TmemOp op_pool(uint8_t type, uint32_t pool)
{
    TmemOp op = { .type = type, .pool = pool };
    return op;
}

/* Incompressible, reproducible page contents */
static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    size_t i;

    for (i = 0; i < len; i += 8) {
        uint64_t v;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = cpu_to_le64(x);
        memcpy(p + i, &v, MIN(8, len - i));
    }
}

/*
 * Statistics over QMP
 */

static QDict *tmem_stats(TmemCtx *c)
{
    return qtest_qmp_assert_success_ref(c->qts,
        "{'execute': 'qom-get', 'arguments': "
        "{'path': %s, 'property': 'stats'}}", c->tmem->qom_path);
}

static uint64_t stat_get(QDict *stats, const char *name)
{
    QObject *obj = qdict_get(stats, name);
    QNum *num;
    uint64_t val = 0;

    if (!obj) {
        g_test_message("stats has no \"%s\"", name);
    }
    g_assert_nonnull(obj);
    num = qobject_to(QNum, obj);
    g_assert_nonnull(num);
    g_assert_true(qnum_get_try_uint(num, &val));
    return val;
}

static uint64_t tmem_stat(TmemCtx *c, const char *name)
{
    QDict *stats = tmem_stats(c);
    uint64_t val = stat_get(stats, name);

    qobject_unref(stats);
    return val;
}

/* Wait until a stat satisfies @cond against @want, or fail. */
static void tmem_wait_stat(TmemCtx *c, const char *name, bool le,
                           uint64_t want)
{
    gint64 start = g_get_monotonic_time();
    uint64_t val;

    for (;;) {
        val = tmem_stat(c, name);
        if (le ? val <= want : val >= want) {
            return;
        }
        if (g_get_monotonic_time() - start > TMEM_SETTLE_US) {
            break;
        }
        g_usleep(10 * 1000);
    }
    g_test_message("stat %s = %" PRIu64 ", wanted %s %" PRIu64
                   " within %d s", name, val, le ? "<=" : ">=", want,
                   (int)(TMEM_SETTLE_US / G_USEC_PER_SEC));
    g_assert_not_reached();
}

static void tmem_set_budget(TmemCtx *c, uint64_t bytes)
{
    qtest_qmp_assert_success(c->qts,
        "{'execute': 'qom-set', 'arguments': "
        "{'path': %s, 'property': 'budget', 'value': %" PRIu64 "}}",
        c->tmem->qom_path, bytes);
}

/*
 * Device bring-up
 */

static void tmem_fill_eventq(TmemCtx *c)
{
    QVirtQueue *vq = c->vq[0];
    unsigned i;

    c->event_bufs = guest_alloc(c->alloc,
                                TMEM_EVENT_BUFS * VIRTIO_TMEM_EVENT_MIN);
    for (i = 0; i < TMEM_EVENT_BUFS; i++) {
        uint32_t head;

        head = qvirtqueue_add(c->qts, vq,
                              c->event_bufs + i * VIRTIO_TMEM_EVENT_MIN,
                              VIRTIO_TMEM_EVENT_MIN, true, false);
        qvirtqueue_kick(c->qts, c->vdev, vq, head);
    }
}

/* Status is ACKNOWLEDGE | DRIVER: negotiate, set up the queues, go. */
static void tmem_start(TmemCtx *c, uint64_t want)
{
    uint64_t host = qvirtio_get_features(c->vdev);
    unsigned i;

    c->features = host & want;
    g_assert_cmphex(c->features & (1ull << VIRTIO_F_VERSION_1), !=, 0);
    qvirtio_set_features(c->vdev, c->features);

    c->num_queues = qvirtio_config_readw(c->vdev,
                        offsetof(struct virtio_tmem_config, num_queues));
    c->max_ops = qvirtio_config_readw(c->vdev,
                        offsetof(struct virtio_tmem_config, max_ops));
    g_assert_cmpuint(c->num_queues, >=, 1);
    g_assert_cmpuint(c->num_queues, <, TMEM_MAX_VQS);
    g_assert_cmpuint(c->max_ops, >=, 1);

    c->nvqs = 1 + c->num_queues;
    for (i = 0; i < c->nvqs; i++) {
        c->vq[i] = qvirtqueue_setup(c->vdev, c->alloc, i);
    }
    qvirtio_set_driver_ok(c->vdev);
    tmem_fill_eventq(c);
}

static void tmem_init(TmemCtx *c, void *obj, QGuestAllocator *alloc,
                      uint64_t want)
{
    memset(c, 0, sizeof(*c));
    c->tmem = obj;
    c->vdev = c->tmem->vdev;
    c->qts = c->tmem->qts;
    c->alloc = alloc;
    c->live_pool = -1;
    tmem_start(c, want);
}

static void tmem_stop(TmemCtx *c)
{
    unsigned i;

    qvirtio_reset(c->vdev);
    for (i = 0; i < c->nvqs; i++) {
        qvirtqueue_cleanup(c->vdev->bus, c->vq[i], c->alloc);
        c->vq[i] = NULL;
    }
    c->nvqs = 0;
    guest_free(c->alloc, c->event_bufs);
    c->event_bufs = 0;
}

/* Reset the device and bring it up again with the same features. */
static void tmem_reinit(TmemCtx *c)
{
    tmem_stop(c);
    qvirtio_set_acknowledge(c->vdev);
    qvirtio_set_driver(c->vdev);
    tmem_start(c, c->features);
}

/*
 * Requests
 */

/* The readable part of a request: @hdr, the ops, the PUT data. */
static uint8_t *tmem_encode_hdr(const TmemOp *ops, unsigned nops,
                                const struct virtio_tmem_req *hdr,
                                size_t *rlen)
{
    size_t len = sizeof(*hdr) + nops * sizeof(struct virtio_tmem_op);
    uint8_t *buf, *p;
    unsigned i, j;

    for (i = 0; i < nops; i++) {
        if (op_has_data(&ops[i])) {
            len += ops[i].len;
        }
    }
    buf = g_malloc0(len);
    memcpy(buf, hdr, sizeof(*hdr));
    p = buf + sizeof(*hdr);
    for (i = 0; i < nops; i++) {
        struct virtio_tmem_op op = {
            .type = ops[i].type,
            .flags = ops[i].flags,
            .pool = cpu_to_le32(ops[i].pool),
            .index = cpu_to_le32(ops[i].index),
            .arg = cpu_to_le32(ops[i].arg),
        };

        for (j = 0; j < 3; j++) {
            op.oid[j] = cpu_to_le64(ops[i].oid[j]);
        }
        memcpy(p, &op, sizeof(op));
        p += sizeof(op);
    }
    for (i = 0; i < nops; i++) {
        if (op_has_data(&ops[i])) {
            if (ops[i].data) {
                memcpy(p, ops[i].data, ops[i].len);
            }
            p += ops[i].len;
        }
    }
    g_assert(p == buf + len);
    *rlen = len;
    return buf;
}

/*
 * The same with a header of @hdr_nops, which the malformed tests make
 * differ from @nops.
 */
static uint8_t *tmem_encode(const TmemOp *ops, unsigned nops,
                            uint16_t hdr_nops, size_t *rlen)
{
    struct virtio_tmem_req hdr = { .nops = cpu_to_le16(hdr_nops) };

    return tmem_encode_hdr(ops, nops, &hdr, rlen);
}

static size_t tmem_wlen(const TmemOp *ops, unsigned nops)
{
    size_t len = sizeof(struct virtio_tmem_resp) +
                 nops * sizeof(struct virtio_tmem_status);
    unsigned i;

    for (i = 0; i < nops; i++) {
        if (op_has_buf(&ops[i])) {
            len += ops[i].len;
        }
    }
    return len;
}

/*
 * Put one chain on @vq: the segments of @rseg, device-readable, laid
 * end to end from @raddr, then those of @wseg, device-writable, from
 * @waddr.  The queue is used synchronously, so its descriptors are
 * recycled from the start for each chain.
 */
static uint32_t tmem_add_chain(TmemCtx *c, QVirtQueue *vq,
                               uint64_t raddr, const uint32_t *rseg,
                               unsigned nr, uint64_t waddr,
                               const uint32_t *wseg, unsigned nw)
{
    unsigned total = nr + nw, i;
    uint32_t head = 0, d;
    uint64_t a;

    g_assert_cmpuint(total, >=, 1);
    g_assert_cmpuint(total, <=, vq->size);
    qvirtqueue_reset_pool(vq);

    for (i = 0, a = raddr; i < nr; a += rseg[i], i++) {
        g_assert_cmpuint(rseg[i], >, 0);
        d = qvirtqueue_add(c->qts, vq, a, rseg[i], false, i + 1 < total);
        if (i == 0) {
            head = d;
        }
    }
    for (i = 0, a = waddr; i < nw; a += wseg[i], i++) {
        g_assert_cmpuint(wseg[i], >, 0);
        d = qvirtqueue_add(c->qts, vq, a, wseg[i], true, nr + i + 1 < total);
        if (nr + i == 0) {
            head = d;
        }
    }
    return head;
}

static uint64_t used_elem_addr(QVirtQueue *vq, uint16_t slot)
{
    return vq->used + offsetof(struct vring_used, ring) +
           (slot % vq->size) * sizeof(struct vring_used_elem);
}

static uint16_t used_idx(TmemCtx *c, QVirtQueue *vq)
{
    uint16_t idx;

    qtest_memread(c->qts, vq->used + offsetof(struct vring_used, idx),
                  &idx, sizeof(idx));
    return le16_to_cpu(idx);
}

static void tmem_kick(TmemCtx *c, QVirtQueue *vq, uint32_t head)
{
    if (vq->event) {
        /* interrupt us for the next used buffer */
        qvirtqueue_set_used_event(c->qts, vq, vq->last_used_idx);
    }
    qvirtqueue_kick(c->qts, c->vdev, vq, head);
}

/* Kick and wait for the chain at @head; return the used length. */
static uint32_t tmem_kick_wait(TmemCtx *c, QVirtQueue *vq, uint32_t head)
{
    uint16_t slot = vq->last_used_idx;
    uint32_t len;

    tmem_kick(c, vq, head);
    qvirtio_wait_used_elem(c->qts, c->vdev, vq, head, NULL, TMEM_TIMEOUT_US);
    /* libqos reads only 16 bits of the length: read it here */
    qtest_memread(c->qts, used_elem_addr(vq, slot) +
                  offsetof(struct vring_used_elem, len), &len, sizeof(len));
    return le32_to_cpu(len);
}

/* Does the status value of @op have to be 0 (section 6.2)? */
static bool value_must_be_zero(const TmemOp *op)
{
    if (op->status != VIRTIO_TMEM_S_OK) {
        return true;
    }
    switch (op->type) {
    case VIRTIO_TMEM_OP_POOL_NEW:
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
    case VIRTIO_TMEM_OP_FLUSH_POOL:
    case VIRTIO_TMEM_OP_CREDITS:
        return false;
    default:
        return true;
    }
}

/*
 * Send @nops operations as one request with header @hdr on request
 * queue @q (1-based); fill in their status, value and GET buffers.
 * Return nops_done; *@used_len is the used length.
 */
static uint16_t tmem_run_hdr(TmemCtx *c, unsigned q, TmemOp *ops,
                             unsigned nops,
                             const struct virtio_tmem_req *hdr,
                             uint32_t *used_len)
{
    QVirtQueue *vq;
    struct virtio_tmem_resp resp;
    g_autofree uint8_t *rbuf = NULL;
    g_autofree uint8_t *wbuf = NULL;
    g_autofree uint32_t *rseg = g_new0(uint32_t, nops + 2);
    g_autofree uint32_t *wseg = g_new0(uint32_t, nops + 2);
    unsigned nr = 0, nw = 0, i;
    size_t rlen, wlen, off;
    uint64_t raddr, waddr;
    uint32_t head;
    uint16_t done;

    g_assert_cmpuint(q, >=, 1);
    g_assert_cmpuint(q, <, c->nvqs);
    vq = c->vq[q];

    rbuf = tmem_encode_hdr(ops, nops, hdr, &rlen);
    wlen = tmem_wlen(ops, nops);

    if (c->split && nops + 2 + nops + 2 <= vq->size) {
        rseg[nr++] = sizeof(struct virtio_tmem_req);
        rseg[nr++] = nops * sizeof(struct virtio_tmem_op);
        wseg[nw++] = sizeof(struct virtio_tmem_resp);
        wseg[nw++] = nops * sizeof(struct virtio_tmem_status);
        for (i = 0; i < nops; i++) {
            if (op_has_data(&ops[i])) {
                rseg[nr++] = ops[i].len;
            }
            if (op_has_buf(&ops[i])) {
                wseg[nw++] = ops[i].len;
            }
        }
    } else {
        rseg[nr++] = rlen;
        wseg[nw++] = wlen;
    }

    raddr = guest_alloc(c->alloc, rlen);
    waddr = guest_alloc(c->alloc, wlen);
    qtest_bufwrite(c->qts, raddr, rbuf, rlen);
    qtest_memset(c->qts, waddr, 0xff, wlen);

    head = tmem_add_chain(c, vq, raddr, rseg, nr, waddr, wseg, nw);
    *used_len = tmem_kick_wait(c, vq, head);

    wbuf = g_malloc(wlen);
    qtest_bufread(c->qts, waddr, wbuf, wlen);
    guest_free(c->alloc, raddr);
    guest_free(c->alloc, waddr);

    memcpy(&resp, wbuf, sizeof(resp));
    done = le16_to_cpu(resp.nops_done);
    c->last_credits = le32_to_cpu(resp.credits);
    g_assert_cmpuint(done, <=, nops);
    g_assert_cmpuint(le16_to_cpu(resp.reserved), ==, 0);
    if (!(c->features & (1ull << VIRTIO_TMEM_F_CREDITS))) {
        g_assert_cmpuint(c->last_credits, ==, 0);
    }

    off = sizeof(resp) + nops * sizeof(struct virtio_tmem_status);
    for (i = 0; i < nops; i++) {
        struct virtio_tmem_status st;

        memcpy(&st, wbuf + sizeof(resp) + i * sizeof(st), sizeof(st));
        ops[i].status = st.status;
        ops[i].value = le32_to_cpu(st.value);
        g_assert_cmpuint(st.reserved[0] | st.reserved[1] | st.reserved[2],
                         ==, 0);
        if (value_must_be_zero(&ops[i]) && ops[i].value) {
            g_test_message("op %u (type %u): status %u with value %u",
                           i, ops[i].type, ops[i].status, ops[i].value);
            g_assert_cmpuint(ops[i].value, ==, 0);
        }
        if (op_has_buf(&ops[i])) {
            if (ops[i].buf) {
                memcpy(ops[i].buf, wbuf + off, ops[i].len);
            }
            off += ops[i].len;
        }
    }
    return done;
}

/* One well-formed request on queue @q; used length must be W. */
static uint16_t tmem_run_q(TmemCtx *c, unsigned q, TmemOp *ops,
                           unsigned nops)
{
    struct virtio_tmem_req hdr = { .nops = cpu_to_le16(nops) };
    uint32_t used_len;
    uint16_t done;

    done = tmem_run_hdr(c, q, ops, nops, &hdr, &used_len);
    g_assert_cmpuint(used_len, ==, tmem_wlen(ops, nops));
    return done;
}

/* One request on queue 1 in which every op must run. */
static void tmem_run(TmemCtx *c, TmemOp *ops, unsigned nops)
{
    g_assert_cmpuint(tmem_run_q(c, 1, ops, nops), ==, nops);
}

static void assert_status(const TmemOp *op, uint8_t want)
{
    if (op->status != want) {
        g_test_message("op type %u pool %u index %u: status %u, "
                       "expected %u", op->type, op->pool, op->index,
                       op->status, want);
    }
    g_assert_cmpuint(op->status, ==, want);
}

static void assert_status2(const TmemOp *op, uint8_t want1, uint8_t want2)
{
    if (op->status != want1 && op->status != want2) {
        g_test_message("op type %u pool %u: status %u, expected %u or %u",
                       op->type, op->pool, op->status, want1, want2);
        g_assert_not_reached();
    }
}

static uint32_t tmem_pool_new(TmemCtx *c, uint32_t arg)
{
    TmemOp op = op_arg(VIRTIO_TMEM_OP_POOL_NEW, arg);

    tmem_run(c, &op, 1);
    assert_status(&op, VIRTIO_TMEM_S_OK);
    return op.value;
}

static void tmem_pool_destroy(TmemCtx *c, uint32_t pool)
{
    TmemOp op = op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pool);

    tmem_run(c, &op, 1);
    assert_status(&op, VIRTIO_TMEM_S_OK);
}

/* Put a page, get it back, compare. */
static void tmem_check_put_get(TmemCtx *c, uint32_t pool, uint32_t len,
                               uint64_t seed)
{
    g_autofree uint8_t *page = g_malloc(len);
    g_autofree uint8_t *back = g_malloc0(len);
    TmemOp ops[2];

    fill_random(page, len, seed);
    ops[0] = op_put(pool, seed, 0, page, len);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pool, seed, 0, back, len);
    tmem_run(c, ops, 2);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(back, len, page, len);
}

/*
 * Test 1: features, config space, stats, pool life cycle
 */

static const char *const required_stats[] = {
    /* the host library's, by their tmem_stat_name() */
    "puts", "put_rejected_nospace", "put_rejected_nomem",
    "put_rejected_incompressible", "put_rejected_invalid", "put_overwrites",
    "get_hits_ram", "get_hits_spill", "get_misses", "get_errors",
    "flushed_pages", "flushed_objects", "flushed_pools",
    "evictions", "spills", "spills_direct", "reclaim_runs",
    "spill_reads", "spill_write_errors", "spill_enospc", "spill_read_errors",
    "pages_persistent", "pages_ephemeral", "pages_spilled",
    "pages_same_filled", "pages_raw", "bytes_persistent", "bytes_ephemeral",
    "bytes_compressed", "ram_used", "ram_data", "ram_index", "ram_fixed",
    "budget", "slabs", "spill_used", "spill_max",
    /* the device's */
    "kicks", "interrupts", "requests", "ops", "pages",
};

static void test_config(void *obj, void *data, QGuestAllocator *alloc)
{
    QVirtioTmem *tmem = obj;
    QVirtioDevice *vdev = tmem->vdev;
    uint64_t host = qvirtio_get_features(vdev);
    TmemCtx ctx, *c = &ctx;
    uint8_t page[PAGE_4K];
    QPCIDevice *pdev;
    QDict *stats;
    uint32_t pp, pe, p64;
    TmemOp ops[6];
    unsigned i;

    g_assert_cmphex(host & (1ull << VIRTIO_F_VERSION_1), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_RING_F_EVENT_IDX), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_EPHEMERAL), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_PAGE_64K), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_CREDITS), !=, 0);

    /* Modern only: PCI device ID 0x1040 + 63 */
    pdev = container_of(vdev, QVirtioPCIDevice, vdev)->pdev;
    g_assert_cmphex(qpci_config_readw(pdev, PCI_VENDOR_ID), ==, 0x1af4);
    g_assert_cmphex(qpci_config_readw(pdev, PCI_DEVICE_ID), ==,
                    0x1040 + VIRTIO_ID_TMEM);

    /*
     * Without the optional features: no ephemeral or 64K pools, no
     * credits, and a credited put finds none.
     */
    tmem_init(c, obj, alloc, (1ull << VIRTIO_F_VERSION_1) |
                             (1ull << VIRTIO_RING_F_EVENT_IDX));
    pp = tmem_pool_new(c, POOL_P4K);
    ops[0] = op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_E4K);
    ops[1] = op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P64K);
    ops[2] = op_arg(VIRTIO_TMEM_OP_CREDITS, 8);
    fill_random(page, PAGE_4K, 7);
    ops[3] = op_put(pp, 1, 0, page, PAGE_4K);
    ops[3].flags = VIRTIO_TMEM_OP_F_CREDIT;
    tmem_run(c, ops, 4);
    assert_status(&ops[0], VIRTIO_TMEM_S_UNSUPPORTED);
    assert_status(&ops[1], VIRTIO_TMEM_S_UNSUPPORTED);
    assert_status(&ops[2], VIRTIO_TMEM_S_UNSUPPORTED);
    assert_status(&ops[3], VIRTIO_TMEM_S_NOCREDIT);
    g_assert_cmpuint(c->last_credits, ==, 0);
    tmem_check_put_get(c, pp, PAGE_4K, 6);
    tmem_stop(c);
    qvirtio_set_acknowledge(vdev);
    qvirtio_set_driver(vdev);

    tmem_start(c, TMEM_FEATURES);
    g_assert_cmphex(c->features, ==, TMEM_FEATURES);
    g_assert_cmphex(vdev->bus->get_guest_features(vdev), ==, TMEM_FEATURES);

    g_assert_cmpuint(qvirtio_config_readw(vdev,
                     offsetof(struct virtio_tmem_config, num_queues)), ==,
                     DEF_NUM_QUEUES);
    g_assert_cmpuint(qvirtio_config_readw(vdev,
                     offsetof(struct virtio_tmem_config, max_ops)), ==,
                     DEF_MAX_OPS);
    g_assert_cmpuint(qvirtio_config_readl(vdev,
                     offsetof(struct virtio_tmem_config, max_credits)), ==,
                     DEF_MAX_CREDITS);
    g_assert_cmpuint(qvirtio_config_readq(vdev,
                     offsetof(struct virtio_tmem_config, budget)), ==,
                     DEF_BUDGET);

    stats = tmem_stats(c);
    for (i = 0; i < ARRAY_SIZE(required_stats); i++) {
        stat_get(stats, required_stats[i]);
    }
    g_assert_cmpuint(stat_get(stats, "budget"), ==, DEF_BUDGET);
    g_assert_cmpuint(stat_get(stats, "spill_max"), ==, 0);
    qobject_unref(stats);

    /* Three pools in one request */
    ops[0] = op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P4K);
    ops[1] = op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_E4K);
    ops[2] = op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P64K);
    tmem_run(c, ops, 3);
    for (i = 0; i < 3; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    pp = ops[0].value;
    pe = ops[1].value;
    p64 = ops[2].value;
    g_assert_cmpuint(pp, !=, pe);
    g_assert_cmpuint(pp, !=, p64);
    g_assert_cmpuint(pe, !=, p64);

    /* Each takes its own page size */
    tmem_check_put_get(c, pp, PAGE_4K, 1);
    tmem_check_put_get(c, pe, PAGE_4K, 2);
    tmem_check_put_get(c, p64, PAGE_64K, 3);
    c->split = true;
    tmem_check_put_get(c, p64, PAGE_64K, 4);

    /* Pool kinds and page shifts that do not exist */
    ops[0] = op_arg(VIRTIO_TMEM_OP_POOL_NEW,
                    VIRTIO_TMEM_POOL_ARG(0x77, 12));
    ops[1] = op_arg(VIRTIO_TMEM_OP_POOL_NEW,
                    VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_PERSISTENT, 13));
    ops[2] = op_arg(VIRTIO_TMEM_OP_POOL_NEW,
                    VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_EPHEMERAL, 0));
    tmem_run(c, ops, 3);
    for (i = 0; i < 3; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_INVALID);
    }

    /* Destroy all three; a second destroy, and any use after, is BADPOOL */
    ops[0] = op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pp);
    ops[1] = op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pe);
    ops[2] = op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, p64);
    ops[3] = op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pp);
    ops[4] = op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pe);
    ops[5] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, p64, 3, 0);
    tmem_run(c, ops, 6);
    for (i = 0; i < 3; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    for (i = 3; i < 6; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_BADPOOL);
    }

    /* A new pool works after all that */
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_check_put_get(c, pp, PAGE_4K, 5);
    tmem_pool_destroy(c, pp);

    tmem_stop(c);
}

/*
 * Test 2: single operations with their data
 */

static void test_put_get(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    uint8_t a[PAGE_4K], b[PAGE_4K], zero[PAGE_4K], buf[4][PAGE_4K];
    uint64_t hits0, misses0, puts0, flushed0;
    uint32_t pp, pe, credits;
    TmemOp ops[8];
    QDict *stats;
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    fill_random(a, sizeof(a), 100);
    fill_random(b, sizeof(b), 101);
    memset(zero, 0, sizeof(zero));

    stats = tmem_stats(c);
    hits0 = stat_get(stats, "get_hits_ram");
    misses0 = stat_get(stats, "get_misses");
    puts0 = stat_get(stats, "puts");
    flushed0 = stat_get(stats, "flushed_pages");
    qobject_unref(stats);

    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);

    /* put, then get in a later request */
    ops[0] = op_put(pp, 1, 7, a, PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);

    memset(buf, 0, sizeof(buf));
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);

    /* misses: another index, another oid word, another pool */
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pp, 1, 8, buf[0], PAGE_4K);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[1], PAGE_4K);
    ops[1].oid[2] ^= 1;
    ops[2] = op_get(VIRTIO_TMEM_OP_GET, pe, 1, 7, buf[2], PAGE_4K);
    ops[3] = op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[3], PAGE_4K);
    tmem_run(c, ops, 4);
    for (i = 0; i < 3; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_MISS);
    }
    assert_status(&ops[3], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[3], PAGE_4K, a, PAGE_4K);

    /* flush page */
    c->split = true;
    ops[0] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 1, 7);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[0], PAGE_4K);
    ops[2] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 1, 7);
    tmem_run(c, ops, 3);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_MISS);
    assert_status(&ops[2], VIRTIO_TMEM_S_MISS);

    /* in-order effect inside one request; overwrite; GET_EXCL removes */
    memset(buf, 0, sizeof(buf));
    ops[0] = op_put(pp, 2, 0, a, PAGE_4K);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pp, 2, 0, buf[0], PAGE_4K);
    ops[2] = op_put(pp, 2, 0, b, PAGE_4K);
    ops[3] = op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 2, 0, buf[1], PAGE_4K);
    ops[4] = op_get(VIRTIO_TMEM_OP_GET, pp, 2, 0, buf[2], PAGE_4K);
    ops[5] = op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 2, 0, buf[3], PAGE_4K);
    tmem_run(c, ops, 6);
    for (i = 0; i < 4; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    assert_status(&ops[4], VIRTIO_TMEM_S_MISS);
    assert_status(&ops[5], VIRTIO_TMEM_S_MISS);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
    g_assert_cmpmem(buf[1], PAGE_4K, b, PAGE_4K);

    /* GET_EXCL alone, in its own requests */
    c->split = false;
    ops[0] = op_put(pp, 3, 1, b, PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    memset(buf[0], 0, PAGE_4K);
    ops[0] = op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 3, 1, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, b, PAGE_4K);
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pp, 3, 1, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_MISS);

    /* a same-filled page */
    memset(buf[0], 0xaa, PAGE_4K);
    ops[0] = op_put(pp, 4, 0, zero, PAGE_4K);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pp, 4, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 2);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, zero, PAGE_4K);

    /* flush object and flush pool count what they drop */
    c->split = true;
    ops[0] = op_put(pp, 5, 0, a, PAGE_4K);
    ops[1] = op_put(pp, 5, 1, b, PAGE_4K);
    ops[2] = op_put(pp, 5, 2, a, PAGE_4K);
    ops[3] = op_put(pp, 6, 0, b, PAGE_4K);
    ops[4] = op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp, 5, 0);
    ops[5] = op_get(VIRTIO_TMEM_OP_GET, pp, 5, 1, buf[0], PAGE_4K);
    ops[6] = op_get(VIRTIO_TMEM_OP_GET, pp, 6, 0, buf[1], PAGE_4K);
    tmem_run(c, ops, 7);
    for (i = 0; i < 5; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    g_assert_cmpuint(ops[4].value, ==, 3);
    assert_status(&ops[5], VIRTIO_TMEM_S_MISS);
    assert_status(&ops[6], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[1], PAGE_4K, b, PAGE_4K);

    /* pages 4/0 (same-filled) and 6/0 are left */
    ops[0] = op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pp);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pp, 6, 0, buf[0], PAGE_4K);
    ops[2] = op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pp);
    tmem_run(c, ops, 3);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[0].value, ==, 2);
    assert_status(&ops[1], VIRTIO_TMEM_S_MISS);
    assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[2].value, ==, 0);

    /* an ephemeral pool keeps a page while there is room */
    memset(buf[0], 0, PAGE_4K);
    ops[0] = op_put(pe, 1, 7, b, PAGE_4K);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pe, 1, 7, buf[0], PAGE_4K);
    tmem_run(c, ops, 2);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, b, PAGE_4K);

    /*
     * Credits.  None are held after reset: a credited put is refused
     * with NOCREDIT and, like any refused put, drops the key's old page.
     */
    memset(buf[0], 0, PAGE_4K);
    ops[0] = op_put(pp, 7, 0, a, PAGE_4K);
    ops[1] = op_put(pp, 7, 0, b, PAGE_4K);
    ops[1].flags = VIRTIO_TMEM_OP_F_CREDIT;
    ops[2] = op_get(VIRTIO_TMEM_OP_GET, pp, 7, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 3);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_NOCREDIT);
    assert_status(&ops[2], VIRTIO_TMEM_S_MISS);

    /* no more than asked for, nor than max_credits in all */
    ops[0] = op_arg(VIRTIO_TMEM_OP_CREDITS, 4);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[0].value, <=, 4);
    credits = ops[0].value + c->last_credits;
    ops[0] = op_arg(VIRTIO_TMEM_OP_CREDITS, 100000);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    credits += ops[0].value + c->last_credits;
    g_assert_cmpuint(credits, <=, DEF_MAX_CREDITS);
    if (credits > 0) {
        memset(buf[0], 0, PAGE_4K);
        ops[0] = op_put(pp, 7, 0, a, PAGE_4K);
        ops[0].flags = VIRTIO_TMEM_OP_F_CREDIT;
        ops[1] = op_get(VIRTIO_TMEM_OP_GET, pp, 7, 0, buf[0], PAGE_4K);
        /* never on an ephemeral pool */
        ops[2] = op_put(pe, 7, 0, a, PAGE_4K);
        ops[2].flags = VIRTIO_TMEM_OP_F_CREDIT;
        tmem_run(c, ops, 3);
        assert_status(&ops[0], VIRTIO_TMEM_S_OK);
        assert_status(&ops[1], VIRTIO_TMEM_S_OK);
        g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
        assert_status(&ops[2], VIRTIO_TMEM_S_INVALID);
    } else {
        g_test_message("device granted no credits");
    }

    stats = tmem_stats(c);
    g_assert_cmpuint(stat_get(stats, "puts") - puts0, >=, 10);
    g_assert_cmpuint(stat_get(stats, "get_hits_ram") - hits0, >=, 5);
    g_assert_cmpuint(stat_get(stats, "get_misses") - misses0, >=, 7);
    g_assert_cmpuint(stat_get(stats, "flushed_pages") - flushed0, >=, 6);
    qobject_unref(stats);

    tmem_pool_destroy(c, pp);
    tmem_pool_destroy(c, pe);
    tmem_stop(c);
}

/*
 * Test 3: a batch of 64 PUTs in one chain, then 64 GETs in one chain
 */

static void test_batch(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *pages = g_malloc(BATCH * PAGE_4K);
    g_autofree uint8_t *back = g_malloc0(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    uint64_t kicks, irqs, reqs, nops, npages;
    uint32_t pp;
    QDict *s0, *s1;
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    c->split = true;
    if (c->vq[1]->size < 2 * BATCH + 4) {
        g_test_message("queue of %u: one descriptor per part",
                       c->vq[1]->size);
    }

    fill_random(pages, BATCH * PAGE_4K, 300);
    s0 = tmem_stats(c);

    for (i = 0; i < BATCH; i++) {
        ops[i] = op_put(pp, 30, i, pages + i * PAGE_4K, PAGE_4K);
    }
    tmem_run(c, ops, BATCH);
    for (i = 0; i < BATCH; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }

    for (i = 0; i < BATCH; i++) {
        ops[i] = op_get(VIRTIO_TMEM_OP_GET, pp, 30, i, back + i * PAGE_4K,
                        PAGE_4K);
    }
    tmem_run(c, ops, BATCH);
    for (i = 0; i < BATCH; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_OK);
        g_assert_cmpmem(back + i * PAGE_4K, PAGE_4K,
                        pages + i * PAGE_4K, PAGE_4K);
    }

    s1 = tmem_stats(c);
    kicks = stat_get(s1, "kicks") - stat_get(s0, "kicks");
    irqs = stat_get(s1, "interrupts") - stat_get(s0, "interrupts");
    reqs = stat_get(s1, "requests") - stat_get(s0, "requests");
    nops = stat_get(s1, "ops") - stat_get(s0, "ops");
    npages = stat_get(s1, "pages") - stat_get(s0, "pages");
    g_test_message("2 requests: kicks +%" PRIu64 ", interrupts +%" PRIu64
                   ", requests +%" PRIu64 ", ops +%" PRIu64
                   ", pages +%" PRIu64, kicks, irqs, reqs, nops, npages);
    g_assert_cmpuint(kicks, >=, 1);
    g_assert_cmpuint(kicks, <=, 3);
    g_assert_cmpuint(irqs, >=, 1);
    g_assert_cmpuint(irqs, <=, 3);
    g_assert_cmpuint(reqs, ==, 2);
    g_assert_cmpuint(nops, ==, 2 * BATCH);
    g_assert_cmpuint(npages, ==, 2 * BATCH);
    g_assert_cmpuint(stat_get(s1, "get_hits_ram") -
                     stat_get(s0, "get_hits_ram"), ==, BATCH);
    qobject_unref(s0);
    qobject_unref(s1);

    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

/*
 * Test 4: over budget
 */

static void test_budget(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 4 * MiB / PAGE_4K;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *pages = g_malloc(BATCH * PAGE_4K);
    g_autofree uint8_t *back = g_malloc(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i, accepted = 0, nospace = 0, hits = 0;
    uint64_t evictions0;
    uint32_t pe;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    c->split = true;
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, DEF_BUDGET);
    evictions0 = tmem_stat(c, "evictions");

    tmem_set_budget(c, 1 * MiB);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, 1 * MiB);
    g_assert_cmpuint(qvirtio_config_readq(c->vdev,
                     offsetof(struct virtio_tmem_config, budget)), ==,
                     1 * MiB);

    pe = tmem_pool_new(c, POOL_E4K);
    for (r = 0; r < npages / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            fill_random(pages + i * PAGE_4K, PAGE_4K, r * BATCH + i);
            ops[i] = op_put(pe, 40, r * BATCH + i, pages + i * PAGE_4K,
                            PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            assert_status2(&ops[i], VIRTIO_TMEM_S_OK, VIRTIO_TMEM_S_NOSPACE);
            accepted += ops[i].status == VIRTIO_TMEM_S_OK;
            nospace += ops[i].status == VIRTIO_TMEM_S_NOSPACE;
        }
    }
    g_test_message("%u puts at 1 MiB: %u accepted, %u NOSPACE, "
                   "%" PRIu64 " evictions", npages, accepted, nospace,
                   tmem_stat(c, "evictions") - evictions0);
    g_assert_cmpuint(tmem_stat(c, "evictions"), >, evictions0);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);

    /* What is still there is what was put */
    for (r = 0; r < npages / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            ops[i] = op_get(VIRTIO_TMEM_OP_GET, pe, 40, r * BATCH + i,
                            back + i * PAGE_4K, PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            assert_status2(&ops[i], VIRTIO_TMEM_S_OK, VIRTIO_TMEM_S_MISS);
            if (ops[i].status == VIRTIO_TMEM_S_OK) {
                fill_random(pages, PAGE_4K, r * BATCH + i);
                g_assert_cmpmem(back + i * PAGE_4K, PAGE_4K, pages, PAGE_4K);
                hits++;
            }
        }
    }
    g_test_message("%u of %u pages still held", hits, npages);
    g_assert_cmpuint(hits, >, 0);
    g_assert_cmpuint(hits, <, npages);

    /* Budget 0 drops every ephemeral page; then back up */
    tmem_set_budget(c, 0);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, 0);
    tmem_wait_stat(c, "pages_ephemeral", true, 0);
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pe, 40, npages - 1, back, PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_MISS);

    tmem_set_budget(c, DEF_BUDGET);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, DEF_BUDGET);
    g_assert_cmpuint(qvirtio_config_readq(c->vdev,
                     offsetof(struct virtio_tmem_config, budget)), ==,
                     DEF_BUDGET);
    tmem_check_put_get(c, pe, PAGE_4K, 400);

    tmem_pool_destroy(c, pe);
    tmem_stop(c);
}

/*
 * PUT @n random pages to @pool under (@oid, 0 .. @n - 1), @seed making
 * page i, in requests of BATCH; every one must be accepted.
 */
static void tmem_put_random(TmemCtx *c, uint32_t pool, uint64_t oid,
                            unsigned seed, unsigned n)
{
    g_autofree uint8_t *pages = g_malloc(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i;

    for (r = 0; r < n / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            fill_random(pages + i * PAGE_4K, PAGE_4K, seed + r * BATCH + i);
            ops[i] = op_put(pool, oid, r * BATCH + i, pages + i * PAGE_4K,
                            PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            assert_status(&ops[i], VIRTIO_TMEM_S_OK);
        }
    }
}

/* GET back what tmem_put_random() put, and compare every byte. */
static void tmem_check_random(TmemCtx *c, uint32_t pool, uint64_t oid,
                              unsigned seed, unsigned n)
{
    g_autofree uint8_t *want = g_malloc(PAGE_4K);
    g_autofree uint8_t *back = g_malloc(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i;

    for (r = 0; r < n / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            ops[i] = op_get(VIRTIO_TMEM_OP_GET, pool, oid, r * BATCH + i,
                            back + i * PAGE_4K, PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            assert_status(&ops[i], VIRTIO_TMEM_S_OK);
            fill_random(want, PAGE_4K, seed + r * BATCH + i);
            g_assert_cmpmem(back + i * PAGE_4K, PAGE_4K, want, PAGE_4K);
        }
    }
}

/*
 * Persistent pages over budget go to the spill file and all come back
 */

static void tmem_spill_cleanup(void *path)
{
    g_rmdir(path);
    g_free(path);
}

static void *tmem_spill_setup(GString *cmd_line, void *arg)
{
    char *dir = g_dir_make_tmp("qtest-tmem-spill.XXXXXX", NULL);

    g_assert_nonnull(dir);
    g_string_append_printf(cmd_line,
                           " -global virtio-tmem-pci.budget=1M"
                           " -global virtio-tmem-pci.spill=%s"
                           " -global virtio-tmem-pci.spill-max=64M", dir);
    /* the file in it is unlinked at once: the directory empties */
    g_test_queue_destroy(tmem_spill_cleanup, dir);
    return arg;
}

static void test_spill(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 4 * MiB / PAGE_4K;
    TmemCtx ctx, *c = &ctx;
    uint64_t spills0, hits0;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    c->split = true;
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, 1 * MiB);
    g_assert_cmpuint(tmem_stat(c, "spill_max"), ==, 64 * MiB);
    spills0 = tmem_stat(c, "spills");
    hits0 = tmem_stat(c, "get_hits_spill");

    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 80, 800, npages);
    g_assert_cmpuint(tmem_stat(c, "spills"), >, spills0);
    g_assert_cmpuint(tmem_stat(c, "spill_used"), >, 0);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);

    tmem_check_random(c, pp, 80, 800, npages);
    g_assert_cmpuint(tmem_stat(c, "get_hits_spill"), >, hits0);

    tmem_pool_destroy(c, pp);
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, 0);
    tmem_stop(c);
}

/*
 * Test 5: malformed requests
 */

/*
 * Queue a chain of @rlen readable bytes of @rbuf (none if 0) followed by
 * @wlen writable bytes (none if 0), one descriptor each, and kick.
 */
static void tmem_submit_raw(TmemCtx *c, const uint8_t *rbuf, size_t rlen,
                            size_t wlen)
{
    QVirtQueue *vq = c->vq[1];
    uint32_t rseg = rlen, wseg = wlen, head;
    uint64_t raddr = 0, waddr = 0;

    if (rlen) {
        raddr = guest_alloc(c->alloc, rlen);
        qtest_bufwrite(c->qts, raddr, rbuf, rlen);
    }
    if (wlen) {
        waddr = guest_alloc(c->alloc, wlen);
        qtest_memset(c->qts, waddr, 0xff, wlen);
    }
    head = tmem_add_chain(c, vq, raddr, &rseg, rlen ? 1 : 0,
                          waddr, &wseg, wlen ? 1 : 0);
    tmem_kick(c, vq, head);
    /* the guest memory goes with the next reset: leave it allocated */
}

/*
 * The device must flag NEEDS_RESET (virtio_error()) and not use the
 * chain; QEMU must keep answering QMP.  Then reset the device: the pool
 * left alive before is gone, and a new one works.
 */
static void tmem_expect_broken(TmemCtx *c, const char *what)
{
    QVirtQueue *vq = c->vq[1];
    gint64 start = g_get_monotonic_time();
    uint8_t status;
    QDict *resp;
    TmemOp op;

    g_test_message("malformed: %s", what);
    for (;;) {
        status = c->vdev->bus->get_status(c->vdev);
        if (status & VIRTIO_CONFIG_S_NEEDS_RESET) {
            break;
        }
        if (used_idx(c, vq) != vq->last_used_idx) {
            uint32_t len;

            qtest_memread(c->qts, used_elem_addr(vq, vq->last_used_idx) +
                          offsetof(struct vring_used_elem, len),
                          &len, sizeof(len));
            g_test_message("%s: device used the chain (len %u), "
                           "status 0x%x", what, le32_to_cpu(len), status);
            g_assert_not_reached();
        }
        if (g_get_monotonic_time() - start > TMEM_TIMEOUT_US) {
            g_test_message("%s: no NEEDS_RESET in %d s (status 0x%x)",
                           what, (int)(TMEM_TIMEOUT_US / G_USEC_PER_SEC),
                           status);
            g_assert_not_reached();
        }
        g_usleep(1000);
    }
    /* a late used element would be a bug too */
    g_usleep(20 * 1000);
    g_assert_cmpuint(used_idx(c, vq), ==, vq->last_used_idx);

    resp = qtest_qmp(c->qts, "{'execute': 'query-status'}");
    g_assert_nonnull(resp);
    g_assert_true(qdict_haskey(resp, "return"));
    qobject_unref(resp);

    tmem_reinit(c);
    if (c->live_pool >= 0) {
        op = op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, c->live_pool);
        tmem_run(c, &op, 1);
        assert_status(&op, VIRTIO_TMEM_S_BADPOOL);
    }
    c->live_pool = tmem_pool_new(c, POOL_P4K);
    tmem_check_put_get(c, c->live_pool, PAGE_4K, 500);
}

static void test_malformed(void *obj, void *data, QGuestAllocator *alloc)
{
    const size_t hdr = sizeof(struct virtio_tmem_req);
    const size_t opsz = sizeof(struct virtio_tmem_op);
    const size_t resp = sizeof(struct virtio_tmem_resp);
    const size_t stsz = sizeof(struct virtio_tmem_status);
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *big = g_malloc0(PAGE_64K);
    uint8_t a[PAGE_4K], b[PAGE_4K], buf[4][PAGE_4K];
    g_autofree TmemOp *many = NULL;
    struct virtio_tmem_req rh;
    uint32_t pp, pe, n, used_len;
    uint8_t *rbuf;
    size_t rlen;
    TmemOp ops[20];
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    fill_random(a, sizeof(a), 600);
    fill_random(b, sizeof(b), 601);
    fill_random(big, PAGE_64K, 602);
    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);

    /*
     * Per-op errors: each fails alone, the rest of the request runs,
     * and a refused PUT leaves nothing under its key.
     */
    memset(buf, 0, sizeof(buf));
    i = 0;
    ops[i++] = op_put(pp, 60, 0, a, PAGE_4K);                   /* 0 */
    ops[i++] = op_key(BAD_OP, 0, 0, 0);                         /* 1 */
    ops[i++] = op_get(VIRTIO_TMEM_OP_GET, pp, 60, 0, buf[0], PAGE_4K);
    ops[i++] = op_put(BAD_POOL, 60, 1, b, PAGE_4K);             /* 3 */
    ops[i++] = op_get(VIRTIO_TMEM_OP_GET, BAD_POOL, 60, 0, buf[1], PAGE_4K);
    ops[i++] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, BAD_POOL, 60, 0);
    ops[i++] = op_key(0, 0, 0, 0);                              /* 6 */
    ops[i++] = op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp + 1000, 60, 0);
    ops[i++] = op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, BAD_POOL);
    ops[i++] = op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, BAD_POOL);  /* 9 */
    ops[i++] = op_put(pp, 60, 1, b, PAGE_4K);                   /* 10 */
    ops[i++] = op_put(pp, 60, 1, big, PAGE_64K);                /* 11 */
    ops[i++] = op_get(VIRTIO_TMEM_OP_GET, pp, 60, 1, buf[2], PAGE_4K);
    ops[i++] = op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pp);          /* 13 */
    ops[i - 1].index = 1;
    ops[i++] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 60, 0);    /* 14 */
    ops[i - 1].flags = VIRTIO_TMEM_OP_F_CREDIT;
    ops[i++] = op_put(pp, 60, 0, b, PAGE_4K);                   /* 15 */
    ops[i - 1].flags = 0x80;
    ops[i++] = op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 60, 0, buf[3], PAGE_4K);
    ops[i++] = op_key(0xff, pp, 60, 0);                         /* 17 */
    ops[i++] = op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P4K | 1 << 16);
    tmem_run(c, ops, i);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_UNSUPPORTED);
    assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
    for (i = 3; i <= 5; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_BADPOOL);
    }
    assert_status(&ops[6], VIRTIO_TMEM_S_UNSUPPORTED);
    for (i = 7; i <= 9; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_BADPOOL);
    }
    assert_status(&ops[10], VIRTIO_TMEM_S_OK);
    /* a 64K page to a 4K pool: INVALID, and the 4K page is dropped */
    assert_status(&ops[11], VIRTIO_TMEM_S_INVALID);
    assert_status(&ops[12], VIRTIO_TMEM_S_MISS);
    /* a field the op does not use, a flag on a FLUSH, an unknown flag */
    assert_status(&ops[13], VIRTIO_TMEM_S_INVALID);
    assert_status(&ops[14], VIRTIO_TMEM_S_INVALID);
    assert_status(&ops[15], VIRTIO_TMEM_S_INVALID);
    assert_status(&ops[16], VIRTIO_TMEM_S_MISS);
    assert_status(&ops[17], VIRTIO_TMEM_S_UNSUPPORTED);
    assert_status(&ops[18], VIRTIO_TMEM_S_INVALID);

    /* A GET of the wrong page size, and a nonzero reserved field */
    ops[0] = op_put(pe, 61, 0, a, PAGE_4K);
    ops[1] = op_get(VIRTIO_TMEM_OP_GET, pe, 61, 0, big, PAGE_64K);
    ops[2] = op_get(VIRTIO_TMEM_OP_GET, pe, 61, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 3);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    assert_status(&ops[1], VIRTIO_TMEM_S_INVALID);
    assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
    {
        /* op.reserved is not in TmemOp: patch the encoded request */
        struct virtio_tmem_req h = { .nops = cpu_to_le16(1) };
        uint16_t one = cpu_to_le16(1);
        TmemOp op = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pe, 61, 0);
        QVirtQueue *vq = c->vq[1];
        uint64_t raddr, waddr;
        uint32_t head, rseg, wseg = resp + stsz;
        struct virtio_tmem_status st;

        rbuf = tmem_encode_hdr(&op, 1, &h, &rlen);
        memcpy(rbuf + hdr + offsetof(struct virtio_tmem_op, reserved),
               &one, sizeof(one));
        rseg = rlen;
        raddr = guest_alloc(c->alloc, rlen);
        waddr = guest_alloc(c->alloc, wseg);
        qtest_bufwrite(c->qts, raddr, rbuf, rlen);
        head = tmem_add_chain(c, vq, raddr, &rseg, 1, waddr, &wseg, 1);
        used_len = tmem_kick_wait(c, vq, head);
        g_assert_cmpuint(used_len, ==, resp + stsz);
        qtest_memread(c->qts, waddr + resp, &st, sizeof(st));
        g_assert_cmpuint(st.status, ==, VIRTIO_TMEM_S_INVALID);
        g_free(rbuf);
    }
    /* ... so the page is still there */
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pe, 61, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);

    /*
     * A failed request (reserved header bits): nothing runs, every
     * status is SKIPPED, nops_done and credits 0, used length 8 + 8 n.
     * A skipped PUT does not flush its key.
     */
    memset(&rh, 0, sizeof(rh));
    rh.nops = cpu_to_le16(3);
    rh.reserved[1] = cpu_to_le16(0x100);
    ops[0] = op_put(pp, 60, 2, b, PAGE_4K);
    ops[1] = op_arg(VIRTIO_TMEM_OP_CREDITS, 8);
    ops[2] = op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 60, 2, buf[0], PAGE_4K);
    ops[3] = op_put(pp, 60, 2, a, PAGE_4K);
    tmem_run(c, &ops[3], 1);
    g_assert_cmpuint(tmem_run_hdr(c, 1, ops, 3, &rh, &used_len), ==, 0);
    g_assert_cmpuint(used_len, ==, resp + 3 * stsz);
    g_assert_cmpuint(c->last_credits, ==, 0);
    for (i = 0; i < 3; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_SKIPPED);
        g_assert_cmpuint(ops[i].value, ==, 0);
    }
    memset(buf[0], 0, PAGE_4K);
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pp, 60, 2, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);

    /* nops == max_ops is fine */
    n = c->max_ops;
    many = g_new0(TmemOp, n + 1);
    for (i = 0; i < n + 1; i++) {
        many[i] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 62, i);
    }
    tmem_run(c, many, n);
    for (i = 0; i < n; i++) {
        assert_status(&many[i], VIRTIO_TMEM_S_MISS);
    }
    c->live_pool = pp;

    /* Ring-level violations, each followed by a reset */

    ops[0] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 0);
    rbuf = tmem_encode(ops, 0, 0, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    g_free(rbuf);
    tmem_expect_broken(c, "nops = 0");

    rbuf = tmem_encode(many, n + 1, n + 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + (n + 1) * stsz);
    g_free(rbuf);
    tmem_expect_broken(c, "nops = max_ops + 1");

    rbuf = tmem_encode(ops, 0, 0xffff, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    g_free(rbuf);
    tmem_expect_broken(c, "nops = 65535, header only");

    ops[0] = op_put(0, 63, 0, a, PAGE_4K);
    ops[0].arg = 13;
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    g_free(rbuf);
    tmem_expect_broken(c, "PUT with page shift 13");

    ops[0] = op_get(VIRTIO_TMEM_OP_GET_EXCL, 0, 63, 0, NULL, PAGE_4K);
    ops[0].arg = 0;
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + PAGE_4K);
    g_free(rbuf);
    tmem_expect_broken(c, "GET_EXCL with page shift 0");

    ops[0] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 0);
    ops[1] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 1);
    rbuf = tmem_encode(ops, 2, 2, &rlen);
    tmem_submit_raw(c, rbuf, hdr, resp + 2 * stsz);
    tmem_expect_broken(c, "readable part: header only, 2 ops missing");
    tmem_submit_raw(c, rbuf, hdr + opsz + opsz / 2, resp + 2 * stsz);
    tmem_expect_broken(c, "readable part: second op cut in half");
    tmem_submit_raw(c, rbuf, hdr / 2, resp + 2 * stsz);
    tmem_expect_broken(c, "readable part: half a header");
    g_free(rbuf);

    ops[0] = op_put(0, 63, 0, a, PAGE_4K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, hdr + opsz, resp + stsz);
    tmem_expect_broken(c, "PUT data missing");
    g_free(rbuf);

    ops[0] = op_put(0, 63, 0, a, PAGE_4K);
    ops[1] = op_put(0, 63, 1, b, PAGE_4K);
    rbuf = tmem_encode(ops, 2, 2, &rlen);
    tmem_submit_raw(c, rbuf, rlen - PAGE_4K / 2, resp + 2 * stsz);
    tmem_expect_broken(c, "second PUT's data half there");
    g_free(rbuf);

    ops[0] = op_put(0, 63, 0, big, PAGE_64K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, hdr + opsz + PAGE_4K, resp + stsz);
    tmem_expect_broken(c, "64K PUT with 4K of data");
    g_free(rbuf);

    ops[0] = op_get(VIRTIO_TMEM_OP_GET, 0, 63, 0, NULL, PAGE_4K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    tmem_expect_broken(c, "writable part: GET buffer missing");
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + PAGE_4K / 2);
    tmem_expect_broken(c, "writable part: GET buffer half there");
    g_free(rbuf);

    ops[0] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 0);
    ops[1] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 1);
    rbuf = tmem_encode(ops, 2, 2, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    tmem_expect_broken(c, "writable part: second status missing");
    tmem_submit_raw(c, rbuf, rlen, resp / 2);
    tmem_expect_broken(c, "writable part: shorter than the response");
    tmem_submit_raw(c, rbuf, rlen, 0);
    tmem_expect_broken(c, "no writable part");
    tmem_submit_raw(c, NULL, 0, resp + 2 * stsz);
    tmem_expect_broken(c, "no readable part");

    /*
     * A descriptor loop: the header's descriptor chains to the ops',
     * which chains back to the header's.  QEMU's virtqueue_pop() sees
     * it; the device must cope with getting no element.
     */
    {
        QVirtQueue *vq = c->vq[1];
        uint64_t raddr = guest_alloc(c->alloc, rlen);
        uint32_t head, second;
        uint16_t next;

        qtest_bufwrite(c->qts, raddr, rbuf, rlen);
        qvirtqueue_reset_pool(vq);
        head = qvirtqueue_add(c->qts, vq, raddr, hdr, false, true);
        second = qvirtqueue_add(c->qts, vq, raddr + hdr, 2 * opsz,
                                false, true);
        next = cpu_to_le16(head);
        qtest_memwrite(c->qts, vq->desc + second * sizeof(struct vring_desc) +
                       offsetof(struct vring_desc, next), &next,
                       sizeof(next));
        tmem_kick(c, vq, head);
        tmem_expect_broken(c, "descriptor loop");
    }
    g_free(rbuf);

    tmem_stop(c);
}

/*
 * Non-default properties: config space follows them; several queues
 */

static void *tmem_custom_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line,
                    " -global virtio-tmem-pci.num-queues=2"
                    " -global virtio-tmem-pci.max-ops=8"
                    " -global virtio-tmem-pci.max-credits=16"
                    " -global virtio-tmem-pci.budget=8M");
    return arg;
}

static void test_custom(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    uint8_t a[PAGE_4K], back[PAGE_4K];
    TmemOp ops[9];
    uint32_t pp, credits;
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    g_assert_cmpuint(c->num_queues, ==, 2);
    g_assert_cmpuint(c->max_ops, ==, 8);
    g_assert_cmpuint(qvirtio_config_readl(c->vdev,
                     offsetof(struct virtio_tmem_config, max_credits)), ==,
                     16);
    g_assert_cmpuint(qvirtio_config_readq(c->vdev,
                     offsetof(struct virtio_tmem_config, budget)), ==,
                     8 * MiB);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, 8 * MiB);

    /* Both request queues work */
    pp = tmem_pool_new(c, POOL_P4K);
    fill_random(a, sizeof(a), 700);
    ops[0] = op_put(pp, 70, 0, a, PAGE_4K);
    g_assert_cmpuint(tmem_run_q(c, 2, ops, 1), ==, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    memset(back, 0, sizeof(back));
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pp, 70, 0, back, PAGE_4K);
    g_assert_cmpuint(tmem_run_q(c, 2, ops, 1), ==, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(back, PAGE_4K, a, PAGE_4K);

    /* Credits are the device's, whichever queue asks: 16 in all */
    ops[0] = op_arg(VIRTIO_TMEM_OP_CREDITS, 10);
    g_assert_cmpuint(tmem_run_q(c, 2, ops, 1), ==, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    credits = ops[0].value + c->last_credits;
    ops[0] = op_arg(VIRTIO_TMEM_OP_CREDITS, 1000);
    g_assert_cmpuint(tmem_run_q(c, 1, ops, 1), ==, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    credits += ops[0].value + c->last_credits;
    g_assert_cmpuint(credits, <=, 16);
    c->live_pool = pp;

    /* 8 ops go, 9 do not */
    for (i = 0; i < 9; i++) {
        ops[i] = op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 71, i);
    }
    tmem_run(c, ops, 8);
    for (i = 0; i < 8; i++) {
        assert_status(&ops[i], VIRTIO_TMEM_S_MISS);
    }
    {
        size_t rlen;
        uint8_t *rbuf = tmem_encode(ops, 9, 9, &rlen);

        tmem_submit_raw(c, rbuf, rlen, tmem_wlen(ops, 9));
        g_free(rbuf);
        tmem_expect_broken(c, "nops = 9 > max-ops = 8");
    }

    tmem_stop(c);
}

/*
 * Test: persistent pages are device state.  savevm, then a system reset
 * (which destroys every pool), then loadvm: every persistent page,
 * spilled ones included, must come back byte for byte, and the
 * ephemeral pool must come back empty with a RESET event for it.  No
 * request runs between savevm and loadvm, so the rings we drive are as
 * the snapshot has them.
 */

static void tmem_migrate_cleanup(void *path)
{
    g_autofree char *img = g_strdup_printf("%s/snap.qcow2", (char *)path);

    unlink(img);
    g_rmdir(path);
    g_free(path);
}

static void *tmem_migrate_setup(GString *cmd_line, void *arg)
{
    char *dir = g_dir_make_tmp("qtest-tmem-migrate.XXXXXX", NULL);
    g_autofree char *img = NULL;

    g_assert_nonnull(dir);
    img = g_strdup_printf("%s/snap.qcow2", dir);
    mkqcow2(img, 16);
    g_string_append_printf(cmd_line,
                           " -global virtio-tmem-pci.budget=1M"
                           " -global virtio-tmem-pci.spill=%s"
                           " -global virtio-tmem-pci.spill-max=64M"
                           " -drive if=none,id=snap,format=qcow2,file=%s",
                           dir, img);
    g_test_queue_destroy(tmem_migrate_cleanup, dir);
    return arg;
}

static void test_migrate(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 2 * MiB / PAGE_4K;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *page = g_malloc(PAGE_4K);
    TmemOp ops[1];
    uint64_t events0;
    uint32_t pp, pe;
    char *out;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);
    tmem_put_random(c, pp, 90, 900, npages);
    memset(page, 0x5a, PAGE_4K);
    ops[0] = op_put(pe, 91, 0, page, PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    /* over a 1 MiB budget, some of the pages are on the spill file */
    g_assert_cmpuint(tmem_stat(c, "pages_spilled"), >, 0);
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, npages);

    events0 = tmem_stat(c, "events_sent");
    out = qtest_hmp(c->qts, "savevm tmem-snap");
    g_assert_cmpstr(out, ==, "");
    g_free(out);
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    tmem_wait_stat(c, "pages_persistent", true, 0);
    out = qtest_hmp(c->qts, "loadvm tmem-snap");
    g_assert_cmpstr(out, ==, "");
    g_free(out);

    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, npages);
    g_assert_cmpuint(tmem_stat(c, "pages_ephemeral"), ==, 0);
    tmem_check_random(c, pp, 90, 900, npages);
    /* the driver was told about pe, once, once the rings were up */
    g_assert_cmpuint(tmem_stat(c, "events_sent"), ==, events0 + 1);
    g_assert_cmpuint(tmem_stat(c, "events_lost"), ==, 0);
    ops[0] = op_get(VIRTIO_TMEM_OP_GET, pe, 91, 0, page, PAGE_4K);
    tmem_run(c, ops, 1);
    assert_status(&ops[0], VIRTIO_TMEM_S_MISS);

    tmem_pool_destroy(c, pp);
    tmem_pool_destroy(c, pe);
    tmem_stop(c);
}

/*
 * Test: query-tmem lists the device with the same stats as its "stats"
 * property, and HMP info tmem shows them, kicks per page included.
 */
static void test_query(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    QDict *resp, *entry, *st;
    QList *list;
    char *hmp;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 95, 950, BATCH);

    resp = qtest_qmp(c->qts, "{'execute': 'query-tmem'}");
    g_assert(qdict_haskey(resp, "return"));
    list = qdict_get_qlist(resp, "return");
    g_assert_cmpuint(qlist_size(list), ==, 1);
    entry = qobject_to(QDict, qlist_peek(list));
    g_assert_cmpstr(qdict_get_str(entry, "path"), ==,
                    "/machine/peripheral/tmem0/virtio-backend");
    st = qdict_get_qdict(entry, "stats");
    g_assert_cmpuint(qdict_get_int(st, "pages_persistent"), ==, BATCH);
    g_assert_cmpuint(qdict_get_int(st, "pages"), ==, tmem_stat(c, "pages"));
    g_assert_cmpuint(qdict_get_int(st, "kicks"), ==, tmem_stat(c, "kicks"));
    qobject_unref(resp);

    hmp = qtest_hmp(c->qts, "info tmem");
    g_assert_nonnull(strstr(hmp, "/machine/peripheral/tmem0/virtio-backend:"));
    g_assert_nonnull(strstr(hmp, "64 persistent"));
    g_assert_nonnull(strstr(hmp, "kicks per page"));
    g_free(hmp);

    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

static void register_virtio_tmem_test(void)
{
    QOSGraphTestOptions custom = {
        .before = tmem_custom_setup,
    };
    QOSGraphTestOptions spill = {
        .before = tmem_spill_setup,
    };
    QOSGraphTestOptions migrate = {
        .before = tmem_migrate_setup,
    };

    qos_add_test("config", "virtio-tmem", test_config, NULL);
    qos_add_test("put-get", "virtio-tmem", test_put_get, NULL);
    qos_add_test("batch", "virtio-tmem", test_batch, NULL);
    qos_add_test("budget", "virtio-tmem", test_budget, NULL);
    qos_add_test("malformed", "virtio-tmem", test_malformed, NULL);
    qos_add_test("custom", "virtio-tmem", test_custom, &custom);
    qos_add_test("spill", "virtio-tmem", test_spill, &spill);
    qos_add_test("migrate", "virtio-tmem", test_migrate, &migrate);
    qos_add_test("query", "virtio-tmem", test_query, NULL);
}

libqos_init(register_virtio_tmem_test);
