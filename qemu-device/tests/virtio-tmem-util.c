/*
 * QTest helpers for the virtio-tmem tests: build requests, run them on a
 * request queue, read statistics over QMP and events off the event
 * queue.  The tests themselves are in virtio-tmem-*-test.c, by topic.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qnum.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "virtio-tmem-util.h"

static bool op_has_data(const TmemOp *op)
{
    return op->type == VIRTIO_TMEM_OP_PUT;
}

static bool op_has_buf(const TmemOp *op)
{
    return op->type == VIRTIO_TMEM_OP_GET ||
           op->type == VIRTIO_TMEM_OP_GET_EXCL ||
           op->type == VIRTIO_TMEM_OP_GET_RANGE;
}

TmemOp tmem_op_key(uint8_t type, uint32_t pool, uint64_t oid,
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
TmemOp tmem_op_put(uint32_t pool, uint64_t oid, uint32_t index,
                   const uint8_t *data, uint32_t len)
{
    TmemOp op = tmem_op_key(VIRTIO_TMEM_OP_PUT, pool, oid, index);

    op.data = data;
    op.len = len;
    op.arg = page_shift(len);
    return op;
}

TmemOp tmem_op_get(uint8_t type, uint32_t pool, uint64_t oid,
                   uint32_t index, uint8_t *buf, uint32_t len)
{
    TmemOp op = tmem_op_key(type, pool, oid, index);

    op.buf = buf;
    op.len = len;
    op.arg = page_shift(len);
    return op;
}

TmemOp tmem_op_get_range(uint32_t pool, uint64_t oid, uint32_t index,
                         uint32_t count, uint8_t *buf, uint32_t page)
{
    TmemOp op = tmem_op_key(VIRTIO_TMEM_OP_GET_RANGE, pool, oid, index);

    op.buf = buf;
    op.len = count * page;
    op.arg = VIRTIO_TMEM_RANGE_ARG(page_shift(page), count);
    return op;
}

TmemOp tmem_op_arg(uint8_t type, uint32_t arg)
{
    TmemOp op = { .type = type, .arg = arg };
    return op;
}

TmemOp tmem_op_pool(uint8_t type, uint32_t pool)
{
    TmemOp op = { .type = type, .pool = pool };
    return op;
}

/* Incompressible, reproducible page contents */
void tmem_fill_random(uint8_t *p, size_t len, uint64_t seed)
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

QDict *tmem_stats(TmemCtx *c)
{
    return qtest_qmp_assert_success_ref(c->qts,
        "{'execute': 'qom-get', 'arguments': "
        "{'path': %s, 'property': 'stats'}}", c->tmem->qom_path);
}

uint64_t tmem_stat_of(QDict *stats, const char *name)
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

uint64_t tmem_stat(TmemCtx *c, const char *name)
{
    QDict *stats = tmem_stats(c);
    uint64_t val = tmem_stat_of(stats, name);

    qobject_unref(stats);
    return val;
}

/* Wait until a stat satisfies @cond against @want, or fail. */
void tmem_wait_stat(TmemCtx *c, const char *name, bool le,
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

void tmem_qmp_expect_error(QTestState *qts, const char *json, const char *why)
{
    QDict *resp = qtest_qmp(qts, "%p", qobject_from_json(json, &error_abort));
    const char *desc;

    g_assert_true(qdict_haskey(resp, "error"));
    desc = qdict_get_str(qdict_get_qdict(resp, "error"), "desc");
    if (!strstr(desc, why)) {
        g_test_message("%s: %s", json, desc);
    }
    g_assert_nonnull(strstr(desc, why));
    qobject_unref(resp);
}

void tmem_set_budget(TmemCtx *c, uint64_t bytes)
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
        /* buffer i is descriptor i, so a used id names its buffer */
        g_assert_cmpuint(head, ==, i);
        qvirtqueue_kick(c->qts, c->vdev, vq, head);
    }
}

bool tmem_event_next(TmemCtx *c, TmemEvent *ev, gint64 timeout_us)
{
    QVirtQueue *vq = c->vq[0];
    gint64 start = g_get_monotonic_time();
    struct virtio_tmem_event raw;
    uint32_t desc, len;

    while (!qvirtqueue_get_buf(c->qts, vq, &desc, &len)) {
        if (g_get_monotonic_time() - start >= timeout_us) {
            return false;
        }
        g_usleep(1000);
    }
    g_assert_cmpuint(desc, <, TMEM_EVENT_BUFS);
    qtest_memread(c->qts, c->event_bufs + desc * VIRTIO_TMEM_EVENT_MIN,
                  &raw, sizeof(raw));
    ev->type = le16_to_cpu(raw.type);
    ev->count = le16_to_cpu(raw.count);
    ev->pool = le32_to_cpu(raw.pool);
    ev->value = le64_to_cpu(raw.value);
    g_assert_cmpuint(ev->count, <=, TMEM_EVENT_KEYS);
    g_assert_cmpuint(len, ==, sizeof(raw) +
                     ev->count * sizeof(struct virtio_tmem_key));
    if (ev->type != VIRTIO_TMEM_EVENT_EVICTED) {
        g_assert_cmpuint(ev->count, ==, 0);
    }
    qtest_memread(c->qts, c->event_bufs + desc * VIRTIO_TMEM_EVENT_MIN +
                  sizeof(raw), ev->keys,
                  ev->count * sizeof(struct virtio_tmem_key));
    /* the buffer goes back to the device */
    qvirtqueue_kick(c->qts, c->vdev, vq, desc);
    return true;
}

bool tmem_event_wait(TmemCtx *c, uint16_t type, TmemEvent *ev,
                     gint64 timeout_us)
{
    gint64 start = g_get_monotonic_time();

    for (;;) {
        gint64 left = timeout_us - (g_get_monotonic_time() - start);

        if (!tmem_event_next(c, ev, MAX(left, 0))) {
            return false;
        }
        if (ev->type == type) {
            return true;
        }
        g_test_message("skipping event type %u pool 0x%x value %" PRIu64,
                       ev->type, ev->pool, ev->value);
    }
}

uint64_t tmem_sub_stat(TmemCtx *c, const char *member, const char *name)
{
    QDict *stats = tmem_stats(c);
    QDict *sub = qdict_get_qdict(stats, member);
    uint64_t val;

    g_assert_nonnull(sub);
    val = tmem_stat_of(sub, name);
    qobject_unref(stats);
    return val;
}

uint64_t tmem_event_stat(TmemCtx *c, const char *type)
{
    return tmem_sub_stat(c, "events", type);
}

/* Status is ACKNOWLEDGE | DRIVER: negotiate, set up the queues, go. */
void tmem_start(TmemCtx *c, uint64_t want)
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

void tmem_init(TmemCtx *c, void *obj, QGuestAllocator *alloc,
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

void tmem_stop(TmemCtx *c)
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
void tmem_reinit(TmemCtx *c)
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
uint8_t *tmem_encode_hdr(const TmemOp *ops, unsigned nops,
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
uint8_t *tmem_encode(const TmemOp *ops, unsigned nops,
                     uint16_t hdr_nops, size_t *rlen)
{
    struct virtio_tmem_req hdr = { .nops = cpu_to_le16(hdr_nops) };

    return tmem_encode_hdr(ops, nops, &hdr, rlen);
}

size_t tmem_wlen(const TmemOp *ops, unsigned nops)
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
uint32_t tmem_add_chain(TmemCtx *c, QVirtQueue *vq,
                        uint64_t raddr, const uint32_t *rseg,
                        unsigned nr, uint64_t waddr,
                        const uint32_t *wseg, unsigned nw)
{
    unsigned total = nr + nw, i;
    uint32_t head = 0, d;
    uint64_t a;

    g_assert_cmpuint(total, >=, 1);
    g_assert_cmpuint(total, <=, vq->size);
    if (!c->keep_descs) {
        qvirtqueue_reset_pool(vq);
    }

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

uint64_t tmem_used_elem_addr(QVirtQueue *vq, uint16_t slot)
{
    return vq->used + offsetof(struct vring_used, ring) +
           (slot % vq->size) * sizeof(struct vring_used_elem);
}

uint16_t tmem_used_idx(TmemCtx *c, QVirtQueue *vq)
{
    uint16_t idx;

    qtest_memread(c->qts, vq->used + offsetof(struct vring_used, idx),
                  &idx, sizeof(idx));
    return le16_to_cpu(idx);
}

/*
 * qvirtqueue_kick(), counting what it does: with EVENT_IDX a notification
 * goes only if the device's avail_event asks for this chain, otherwise
 * only without VRING_USED_F_NO_NOTIFY.
 */
uint16_t tmem_avail(TmemCtx *c, QVirtQueue *vq, uint32_t head)
{
    uint16_t idx = qtest_readw(c->qts, vq->avail + 2);

    qtest_writew(c->qts, vq->avail + 4 + 2 * (idx % vq->size), head);
    qtest_writew(c->qts, vq->avail + 2, idx + 1);
    c->chains++;
    return idx;
}

void tmem_kick(TmemCtx *c, QVirtQueue *vq, uint32_t head)
{
    uint16_t idx, flags, avail_event;

    if (vq->event) {
        /* interrupt us for the next used buffer */
        qvirtqueue_set_used_event(c->qts, vq, vq->last_used_idx);
    }
    idx = tmem_avail(c, vq, head);
    /* read after idx is written */
    flags = qtest_readw(c->qts, vq->used);
    avail_event = qtest_readw(c->qts, vq->used + 4 +
                              sizeof(struct vring_used_elem) * vq->size);
    if (!(flags & VRING_USED_F_NO_NOTIFY) &&
        (!vq->event || avail_event == idx)) {
        c->vdev->bus->virtqueue_kick(c->vdev, vq);
        c->kicks++;
    }
}

/* Kick and wait for the chain at @head; return the used length. */
uint32_t tmem_kick_wait(TmemCtx *c, QVirtQueue *vq, uint32_t head)
{
    uint16_t slot = vq->last_used_idx;
    uint32_t len;

    tmem_kick(c, vq, head);
    if (c->while_running) {
        c->while_running(c);
    }
    qvirtio_wait_used_elem(c->qts, c->vdev, vq, head, NULL, TMEM_TIMEOUT_US);
    /* libqos reads only 16 bits of the length: read it here */
    qtest_memread(c->qts, tmem_used_elem_addr(vq, slot) +
                  offsetof(struct vring_used_elem, len), &len, sizeof(len));
    return le32_to_cpu(len);
}

/* Does the status value of @op have to be 0 (section 6.2)? */
static bool value_must_be_zero(const TmemOp *op)
{
    if (op->status != VIRTIO_TMEM_S_OK &&
        !(op->type == VIRTIO_TMEM_OP_GET_RANGE &&
          op->status == VIRTIO_TMEM_S_MISS)) {
        return true;
    }
    switch (op->type) {
    case VIRTIO_TMEM_OP_POOL_NEW:
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
    case VIRTIO_TMEM_OP_FLUSH_POOL:
    case VIRTIO_TMEM_OP_CREDITS:
        return false;
    case VIRTIO_TMEM_OP_GET_RANGE:
        return false;   /* the neighbours' bitmap, even on a miss */
    default:
        return true;
    }
}

/*
 * Send @nops operations as one request with header @hdr on request
 * queue @q (1-based); fill in their status, value and GET buffers.
 * Return nops_done; *@used_len is the used length.
 */
void tmem_post(TmemCtx *c, unsigned q, const TmemOp *ops, unsigned nops,
               const struct virtio_tmem_req *hdr, TmemPending *p)
{
    g_autofree uint8_t *rbuf = NULL;
    g_autofree uint32_t *rseg = g_new0(uint32_t, nops + 2);
    g_autofree uint32_t *wseg = g_new0(uint32_t, nops + 2);
    unsigned nr = 0, nw = 0, i;
    size_t rlen;

    g_assert_cmpuint(q, >=, 1);
    g_assert_cmpuint(q, <, c->nvqs);
    p->vq = c->vq[q];

    rbuf = tmem_encode_hdr(ops, nops, hdr, &rlen);
    p->wlen = tmem_wlen(ops, nops);

    if (c->split && nops + 2 + nops + 2 <= p->vq->size) {
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
        wseg[nw++] = p->wlen;
    }

    p->raddr = guest_alloc(c->alloc, rlen);
    p->waddr = guest_alloc(c->alloc, p->wlen);
    qtest_bufwrite(c->qts, p->raddr, rbuf, rlen);
    qtest_memset(c->qts, p->waddr, 0xff, p->wlen);
    p->head = tmem_add_chain(c, p->vq, p->raddr, rseg, nr, p->waddr, wseg,
                             nw);
}

uint16_t tmem_finish(TmemCtx *c, TmemPending *p, TmemOp *ops, unsigned nops)
{
    g_autofree uint8_t *wbuf = g_malloc(p->wlen);
    struct virtio_tmem_resp resp;
    size_t off;
    uint16_t done;
    unsigned i;

    qtest_bufread(c->qts, p->waddr, wbuf, p->wlen);
    guest_free(c->alloc, p->raddr);
    guest_free(c->alloc, p->waddr);

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

uint16_t tmem_run_hdr(TmemCtx *c, unsigned q, TmemOp *ops,
                      unsigned nops,
                      const struct virtio_tmem_req *hdr,
                      uint32_t *used_len)
{
    TmemPending p;

    tmem_post(c, q, ops, nops, hdr, &p);
    *used_len = tmem_kick_wait(c, p.vq, p.head);
    return tmem_finish(c, &p, ops, nops);
}

/* One well-formed request on queue @q; used length must be W. */
uint16_t tmem_run_q(TmemCtx *c, unsigned q, TmemOp *ops,
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
void tmem_run(TmemCtx *c, TmemOp *ops, unsigned nops)
{
    g_assert_cmpuint(tmem_run_q(c, 1, ops, nops), ==, nops);
}

void tmem_assert_status(const TmemOp *op, uint8_t want)
{
    if (op->status != want) {
        g_test_message("op type %u pool %u index %u: status %u, "
                       "expected %u", op->type, op->pool, op->index,
                       op->status, want);
    }
    g_assert_cmpuint(op->status, ==, want);
}

void tmem_assert_status2(const TmemOp *op, uint8_t want1, uint8_t want2)
{
    if (op->status != want1 && op->status != want2) {
        g_test_message("op type %u pool %u: status %u, expected %u or %u",
                       op->type, op->pool, op->status, want1, want2);
        g_assert_not_reached();
    }
}

uint32_t tmem_pool_new(TmemCtx *c, uint32_t arg)
{
    TmemOp op = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, arg);

    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_OK);
    return op.value;
}

void tmem_pool_destroy(TmemCtx *c, uint32_t pool)
{
    TmemOp op = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pool);

    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_OK);
}

/* Put a page, get it back, compare. */
void tmem_check_put_get(TmemCtx *c, uint32_t pool, uint32_t len,
                        uint64_t seed)
{
    g_autofree uint8_t *page = g_malloc(len);
    g_autofree uint8_t *back = g_malloc0(len);
    TmemOp ops[2];

    tmem_fill_random(page, len, seed);
    ops[0] = tmem_op_put(pool, seed, 0, page, len);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pool, seed, 0, back, len);
    tmem_run(c, ops, 2);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(back, len, page, len);
}

/*
 * PUT @n random pages to @pool under (@oid, 0 .. @n - 1), @seed making
 * page i, in requests of BATCH; every one must be accepted.
 */
void tmem_put_random(TmemCtx *c, uint32_t pool, uint64_t oid,
                     unsigned seed, unsigned n)
{
    g_autofree uint8_t *pages = g_malloc(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i;

    for (r = 0; r < n / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            tmem_fill_random(pages + i * PAGE_4K, PAGE_4K,
                             seed + r * BATCH + i);
            ops[i] = tmem_op_put(pool, oid, r * BATCH + i, pages + i * PAGE_4K,
                                 PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
        }
    }
}

/* GET back what tmem_put_random() put, and compare every byte. */
void tmem_check_random(TmemCtx *c, uint32_t pool, uint64_t oid,
                       unsigned seed, unsigned n)
{
    g_autofree uint8_t *want = g_malloc(PAGE_4K);
    g_autofree uint8_t *back = g_malloc(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i;

    for (r = 0; r < n / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            ops[i] = tmem_op_get(VIRTIO_TMEM_OP_GET, pool, oid, r * BATCH + i,
                                 back + i * PAGE_4K, PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
            tmem_fill_random(want, PAGE_4K, seed + r * BATCH + i);
            g_assert_cmpmem(back + i * PAGE_4K, PAGE_4K, want, PAGE_4K);
        }
    }
}

/*
 * Test 5: malformed requests
 */

/*
 * Queue a chain of @rlen readable bytes of @rbuf (none if 0) followed by
 * @wlen writable bytes (none if 0), one descriptor each, and kick.
 */
void tmem_submit_raw(TmemCtx *c, const uint8_t *rbuf, size_t rlen,
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
void tmem_expect_broken(TmemCtx *c, const char *what)
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
        if (tmem_used_idx(c, vq) != vq->last_used_idx) {
            uint32_t len;

            qtest_memread(c->qts, tmem_used_elem_addr(vq, vq->last_used_idx) +
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
    g_assert_cmpuint(tmem_used_idx(c, vq), ==, vq->last_used_idx);

    resp = qtest_qmp(c->qts, "{'execute': 'query-status'}");
    g_assert_nonnull(resp);
    g_assert_true(qdict_haskey(resp, "return"));
    qobject_unref(resp);

    tmem_reinit(c);
    if (c->live_pool >= 0) {
        op = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, c->live_pool);
        tmem_run(c, &op, 1);
        tmem_assert_status(&op, VIRTIO_TMEM_S_BADPOOL);
    }
    c->live_pool = tmem_pool_new(c, POOL_P4K);
    tmem_check_put_get(c, c->live_pool, PAGE_4K, 500);
}

void tmem_blk_file_node(QTestState *qts, const char *dir, const char *node,
                        const char *name, const uint8_t *data, uint64_t size)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, size), ==, 0);
    if (data) {
        g_assert_cmpint(pwrite(fd, data, size, 0), ==, size);
    }
    close(fd);
    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-add', 'arguments': "
                             "{'driver': 'file', 'node-name': %s, "
                             "'filename': %s}}", node, path);
}

void tmem_blk_del_node(QTestState *qts, const char *node)
{
    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-del', 'arguments': "
                             "{'node-name': %s}}", node);
}

void tmem_blk_copy_start(QTestState *qts, const char *from, const char *to,
                         uint64_t speed)
{
    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-backup', "
                             "'arguments': {'job-id': 'copy', 'device': %s, "
                             "'target': %s, 'sync': 'full', 'speed': %"
                             PRIu64 "}}", from, to, speed);
}

char *tmem_blk_copy_wait(QTestState *qts)
{
    QDict *ev = qtest_qmp_eventwait_ref(qts, "BLOCK_JOB_COMPLETED");
    QDict *data = qdict_get_qdict(ev, "data");
    char *err = NULL;

    if (qdict_haskey(data, "error")) {
        err = g_strdup(qdict_get_str(data, "error"));
    }
    qobject_unref(ev);
    return err;
}

/* Poll query-migrate until it says completed or failed; return which. */
char *tmem_migrate_wait(QTestState *qts)
{
    gint64 start = g_get_monotonic_time();

    for (;;) {
        QDict *rsp = qtest_qmp_assert_success_ref(qts,
                                                  "{'execute': 'query-migrate'}");
        const char *st = qdict_get_try_str(rsp, "status");
        char *ret = NULL;

        if (st && (!strcmp(st, "completed") || !strcmp(st, "failed"))) {
            ret = g_strdup(st);
            if (qdict_haskey(rsp, "error-desc")) {
                g_test_message("migration %s: %s", st,
                               qdict_get_str(rsp, "error-desc"));
            }
        }
        qobject_unref(rsp);
        if (ret) {
            return ret;
        }
        g_assert_cmpint(g_get_monotonic_time() - start, <, TMEM_TIMEOUT_US);
        g_usleep(20 * 1000);
    }
}

char *tmem_migrate_to_file(QTestState *qts, const char *path)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);

    qtest_qmp_assert_success(qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    return tmem_migrate_wait(qts);
}

QTestState *tmem_migrate_from_file(const char *cmd_line, const char *path,
                                   const char *logf, char **status)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *args = g_strdup_printf("%s -incoming defer", cmd_line);
    QTestState *dst;
    int saved, fd;

    fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    g_assert_cmpint(fd, >=, 0);
    saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    dst = qtest_init(args);
    dup2(saved, STDERR_FILENO);
    close(saved);

    qtest_qmp_assert_success(dst, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    *status = tmem_migrate_wait(dst);
    /* alive, and answering */
    qtest_qmp_assert_success(dst, "{'execute': 'query-status'}");
    return dst;
}
