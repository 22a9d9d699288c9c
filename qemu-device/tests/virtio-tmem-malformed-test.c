/*
 * QTest testcase for the virtio-tmem device: malformed requests
 *
 * Per-operation errors get a status and the rest of the request runs;
 * ring-level errors set NEEDS_RESET without using the chain, and QEMU
 * carries on.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "standard-headers/linux/pci_regs.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "libqos/virtio-pci.h"
#include "virtio-tmem-util.h"

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
    tmem_fill_random(a, sizeof(a), 600);
    tmem_fill_random(b, sizeof(b), 601);
    tmem_fill_random(big, PAGE_64K, 602);
    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);

    /*
     * Per-op errors: each fails alone, the rest of the request runs,
     * and a refused PUT leaves nothing under its key.
     */
    memset(buf, 0, sizeof(buf));
    i = 0;
    ops[i++] = tmem_op_put(pp, 60, 0, a, PAGE_4K);                   /* 0 */
    ops[i++] = tmem_op_key(BAD_OP, 0, 0, 0);                         /* 1 */
    ops[i++] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 60, 0, buf[0], PAGE_4K);
    ops[i++] = tmem_op_put(BAD_POOL, 60, 1, b, PAGE_4K);             /* 3 */
    ops[i++] = tmem_op_get(VIRTIO_TMEM_OP_GET, BAD_POOL, 60, 0, buf[1],
                           PAGE_4K);
    ops[i++] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, BAD_POOL, 60, 0);
    ops[i++] = tmem_op_key(0, 0, 0, 0);                              /* 6 */
    ops[i++] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp + 1000, 60, 0);
    ops[i++] = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, BAD_POOL);
    ops[i++] = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, BAD_POOL);  /* 9 */
    ops[i++] = tmem_op_put(pp, 60, 1, b, PAGE_4K);                   /* 10 */
    ops[i++] = tmem_op_put(pp, 60, 1, big, PAGE_64K);                /* 11 */
    ops[i++] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 60, 1, buf[2], PAGE_4K);
    ops[i++] = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pp);          /* 13 */
    ops[i - 1].index = 1;
    ops[i++] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 60, 0);    /* 14 */
    ops[i - 1].flags = VIRTIO_TMEM_OP_F_CREDIT;
    ops[i++] = tmem_op_put(pp, 60, 0, b, PAGE_4K);                   /* 15 */
    ops[i - 1].flags = 0x80;
    ops[i++] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 60, 0, buf[3], PAGE_4K);
    ops[i++] = tmem_op_key(0xff, pp, 60, 0);                         /* 17 */
    ops[i++] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P4K | 1 << 16);
    tmem_run(c, ops, i);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_UNSUPPORTED);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
    for (i = 3; i <= 5; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_BADPOOL);
    }
    tmem_assert_status(&ops[6], VIRTIO_TMEM_S_UNSUPPORTED);
    for (i = 7; i <= 9; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_BADPOOL);
    }
    tmem_assert_status(&ops[10], VIRTIO_TMEM_S_OK);
    /* a 64K page to a 4K pool: INVALID, and the 4K page is dropped */
    tmem_assert_status(&ops[11], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[12], VIRTIO_TMEM_S_MISS);
    /* a field the op does not use, a flag on a FLUSH, an unknown flag */
    tmem_assert_status(&ops[13], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[14], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[15], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[16], VIRTIO_TMEM_S_MISS);
    tmem_assert_status(&ops[17], VIRTIO_TMEM_S_UNSUPPORTED);
    tmem_assert_status(&ops[18], VIRTIO_TMEM_S_INVALID);

    /* A GET of the wrong page size, and a nonzero reserved field */
    ops[0] = tmem_op_put(pe, 61, 0, a, PAGE_4K);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 61, 0, big, PAGE_64K);
    ops[2] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 61, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 3);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
    {
        /* op.reserved is not in TmemOp: patch the encoded request */
        struct virtio_tmem_req h = { .nops = cpu_to_le16(1) };
        uint16_t one = cpu_to_le16(1);
        TmemOp op = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pe, 61, 0);
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
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 61, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);

    /*
     * A failed request (reserved header bits): nothing runs, every
     * status is SKIPPED, nops_done and credits 0, used length 8 + 8 n.
     * A skipped PUT does not flush its key.
     */
    memset(&rh, 0, sizeof(rh));
    rh.nops = cpu_to_le16(3);
    rh.reserved[1] = cpu_to_le16(0x100);
    ops[0] = tmem_op_put(pp, 60, 2, b, PAGE_4K);
    ops[1] = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 8);
    ops[2] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 60, 2, buf[0], PAGE_4K);
    ops[3] = tmem_op_put(pp, 60, 2, a, PAGE_4K);
    tmem_run(c, &ops[3], 1);
    g_assert_cmpuint(tmem_run_hdr(c, 1, ops, 3, &rh, &used_len), ==, 0);
    g_assert_cmpuint(used_len, ==, resp + 3 * stsz);
    g_assert_cmpuint(c->last_credits, ==, 0);
    for (i = 0; i < 3; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_SKIPPED);
        g_assert_cmpuint(ops[i].value, ==, 0);
    }
    memset(buf[0], 0, PAGE_4K);
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 60, 2, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);

    /* nops == max_ops is fine */
    n = c->max_ops;
    many = g_new0(TmemOp, n + 1);
    for (i = 0; i < n + 1; i++) {
        many[i] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 62, i);
    }
    tmem_run(c, many, n);
    for (i = 0; i < n; i++) {
        tmem_assert_status(&many[i], VIRTIO_TMEM_S_MISS);
    }
    c->live_pool = pp;

    /* Ring-level violations, each followed by a reset */

    ops[0] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 0);
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

    ops[0] = tmem_op_put(0, 63, 0, a, PAGE_4K);
    ops[0].arg = 13;
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    g_free(rbuf);
    tmem_expect_broken(c, "PUT with page shift 13");

    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, 0, 63, 0, NULL, PAGE_4K);
    ops[0].arg = 0;
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + PAGE_4K);
    g_free(rbuf);
    tmem_expect_broken(c, "GET_EXCL with page shift 0");

    /* GET_RANGE: its count sizes the chain, so a bad one is unparseable */
    ops[0] = tmem_op_get_range(0, 63, 0, 1, NULL, PAGE_4K);
    ops[0].arg = VIRTIO_TMEM_RANGE_ARG(12, 0);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + PAGE_4K);
    g_free(rbuf);
    tmem_expect_broken(c, "GET_RANGE of 0 pages");

    ops[0].arg = VIRTIO_TMEM_RANGE_ARG(12, VIRTIO_TMEM_RANGE_MAX + 1);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen,
                    resp + stsz + (VIRTIO_TMEM_RANGE_MAX + 1) * PAGE_4K);
    g_free(rbuf);
    tmem_expect_broken(c, "GET_RANGE of RANGE_MAX + 1 pages");

    ops[0].arg = VIRTIO_TMEM_RANGE_ARG(12, 2) | 1u << 16;
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + 2 * PAGE_4K);
    g_free(rbuf);
    tmem_expect_broken(c, "GET_RANGE with high arg bits set");

    ops[0] = tmem_op_get_range(0, 63, 0, 4, NULL, PAGE_4K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + 3 * PAGE_4K);
    g_free(rbuf);
    tmem_expect_broken(c, "GET_RANGE of 4 pages, 3 buffers");

    ops[0] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 0);
    ops[1] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 1);
    rbuf = tmem_encode(ops, 2, 2, &rlen);
    tmem_submit_raw(c, rbuf, hdr, resp + 2 * stsz);
    tmem_expect_broken(c, "readable part: header only, 2 ops missing");
    tmem_submit_raw(c, rbuf, hdr + opsz + opsz / 2, resp + 2 * stsz);
    tmem_expect_broken(c, "readable part: second op cut in half");
    tmem_submit_raw(c, rbuf, hdr / 2, resp + 2 * stsz);
    tmem_expect_broken(c, "readable part: half a header");
    g_free(rbuf);

    ops[0] = tmem_op_put(0, 63, 0, a, PAGE_4K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, hdr + opsz, resp + stsz);
    tmem_expect_broken(c, "PUT data missing");
    g_free(rbuf);

    ops[0] = tmem_op_put(0, 63, 0, a, PAGE_4K);
    ops[1] = tmem_op_put(0, 63, 1, b, PAGE_4K);
    rbuf = tmem_encode(ops, 2, 2, &rlen);
    tmem_submit_raw(c, rbuf, rlen - PAGE_4K / 2, resp + 2 * stsz);
    tmem_expect_broken(c, "second PUT's data half there");
    g_free(rbuf);

    ops[0] = tmem_op_put(0, 63, 0, big, PAGE_64K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, hdr + opsz + PAGE_4K, resp + stsz);
    tmem_expect_broken(c, "64K PUT with 4K of data");
    g_free(rbuf);

    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, 0, 63, 0, NULL, PAGE_4K);
    rbuf = tmem_encode(ops, 1, 1, &rlen);
    tmem_submit_raw(c, rbuf, rlen, resp + stsz);
    tmem_expect_broken(c, "writable part: GET buffer missing");
    tmem_submit_raw(c, rbuf, rlen, resp + stsz + PAGE_4K / 2);
    tmem_expect_broken(c, "writable part: GET buffer half there");
    g_free(rbuf);

    ops[0] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 0);
    ops[1] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 63, 1);
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

static void register_virtio_tmem_malformed_test(void)
{
    qos_add_test("malformed", "virtio-tmem", test_malformed, NULL);
}

libqos_init(register_virtio_tmem_malformed_test);
