/*
 * QTest testcase for the virtio-tmem device: protocol
 *
 * The request queue driven the way the guest driver does: one descriptor
 * chain per request, a batch of operations in each; statuses, data and
 * the device's QMP statistics checked.  Other topics have their own
 * files: virtio-tmem-{budget,malformed,migrate,events,iothread}-test.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"
#include "qemu/module.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"
#include "standard-headers/linux/pci_regs.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "libqos/virtio-pci.h"
#include "virtio-tmem-util.h"

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
    "events_sent", "events_lost", "evicted_keys", "evict_reports_dropped",
};

static const char *const required_events[] = {
    "credits", "reclaim", "hint", "evicted", "reset",
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
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_EVICT_REPORT), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_GET_RANGE), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_MISS_REPORT), !=, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_OVERTAKE), !=, 0);

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
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_E4K);
    ops[1] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P64K);
    ops[2] = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 8);
    tmem_fill_random(page, PAGE_4K, 7);
    ops[3] = tmem_op_put(pp, 1, 0, page, PAGE_4K);
    ops[3].flags = VIRTIO_TMEM_OP_F_CREDIT;
    tmem_run(c, ops, 4);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_UNSUPPORTED);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_UNSUPPORTED);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_UNSUPPORTED);
    tmem_assert_status(&ops[3], VIRTIO_TMEM_S_NOCREDIT);
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
        tmem_stat_of(stats, required_stats[i]);
    }
    for (i = 0; i < ARRAY_SIZE(required_events); i++) {
        tmem_stat_of(qdict_get_qdict(stats, "events"), required_events[i]);
    }
    g_assert_cmpuint(tmem_stat_of(stats, "budget"), ==, DEF_BUDGET);
    g_assert_cmpuint(tmem_stat_of(stats, "spill_max"), ==, 0);
    qobject_unref(stats);

    /* Three pools in one request */
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P4K);
    ops[1] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_E4K);
    ops[2] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P64K);
    tmem_run(c, ops, 3);
    for (i = 0; i < 3; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
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
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW,
                         VIRTIO_TMEM_POOL_ARG(0x77, 12));
    ops[1] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW,
                         VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_PERSISTENT, 13));
    ops[2] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW,
                         VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_EPHEMERAL, 0));
    tmem_run(c, ops, 3);
    for (i = 0; i < 3; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_INVALID);
    }

    /* Destroy all three; a second destroy, and any use after, is BADPOOL */
    ops[0] = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pp);
    ops[1] = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pe);
    ops[2] = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, p64);
    ops[3] = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pp);
    ops[4] = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pe);
    ops[5] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, p64, 3, 0);
    tmem_run(c, ops, 6);
    for (i = 0; i < 3; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    for (i = 3; i < 6; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_BADPOOL);
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
    tmem_fill_random(a, sizeof(a), 100);
    tmem_fill_random(b, sizeof(b), 101);
    memset(zero, 0, sizeof(zero));

    stats = tmem_stats(c);
    hits0 = tmem_stat_of(stats, "get_hits_ram");
    misses0 = tmem_stat_of(stats, "get_misses");
    puts0 = tmem_stat_of(stats, "puts");
    flushed0 = tmem_stat_of(stats, "flushed_pages");
    qobject_unref(stats);

    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);

    /* put, then get in a later request */
    ops[0] = tmem_op_put(pp, 1, 7, a, PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);

    memset(buf, 0, sizeof(buf));
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);

    /* misses: another index, another oid word, another pool */
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 8, buf[0], PAGE_4K);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[1], PAGE_4K);
    ops[1].oid[2] ^= 1;
    ops[2] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 1, 7, buf[2], PAGE_4K);
    ops[3] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[3], PAGE_4K);
    tmem_run(c, ops, 4);
    for (i = 0; i < 3; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_MISS);
    }
    tmem_assert_status(&ops[3], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[3], PAGE_4K, a, PAGE_4K);

    /* flush page */
    c->split = true;
    ops[0] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 1, 7);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 7, buf[0], PAGE_4K);
    ops[2] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 1, 7);
    tmem_run(c, ops, 3);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_MISS);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_MISS);

    /* in-order effect inside one request; overwrite; GET_EXCL removes */
    memset(buf, 0, sizeof(buf));
    ops[0] = tmem_op_put(pp, 2, 0, a, PAGE_4K);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 2, 0, buf[0], PAGE_4K);
    ops[2] = tmem_op_put(pp, 2, 0, b, PAGE_4K);
    ops[3] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 2, 0, buf[1], PAGE_4K);
    ops[4] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 2, 0, buf[2], PAGE_4K);
    ops[5] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 2, 0, buf[3], PAGE_4K);
    tmem_run(c, ops, 6);
    for (i = 0; i < 4; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    tmem_assert_status(&ops[4], VIRTIO_TMEM_S_MISS);
    tmem_assert_status(&ops[5], VIRTIO_TMEM_S_MISS);
    g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
    g_assert_cmpmem(buf[1], PAGE_4K, b, PAGE_4K);

    /* GET_EXCL alone, in its own requests */
    c->split = false;
    ops[0] = tmem_op_put(pp, 3, 1, b, PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    memset(buf[0], 0, PAGE_4K);
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 3, 1, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, b, PAGE_4K);
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 3, 1, buf[0], PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_MISS);

    /* a same-filled page */
    memset(buf[0], 0xaa, PAGE_4K);
    ops[0] = tmem_op_put(pp, 4, 0, zero, PAGE_4K);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 4, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 2);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, zero, PAGE_4K);

    /* flush object and flush pool count what they drop */
    c->split = true;
    ops[0] = tmem_op_put(pp, 5, 0, a, PAGE_4K);
    ops[1] = tmem_op_put(pp, 5, 1, b, PAGE_4K);
    ops[2] = tmem_op_put(pp, 5, 2, a, PAGE_4K);
    ops[3] = tmem_op_put(pp, 6, 0, b, PAGE_4K);
    ops[4] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp, 5, 0);
    ops[5] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 5, 1, buf[0], PAGE_4K);
    ops[6] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 6, 0, buf[1], PAGE_4K);
    tmem_run(c, ops, 7);
    for (i = 0; i < 5; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    g_assert_cmpuint(ops[4].value, ==, 3);
    tmem_assert_status(&ops[5], VIRTIO_TMEM_S_MISS);
    tmem_assert_status(&ops[6], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[1], PAGE_4K, b, PAGE_4K);

    /* pages 4/0 (same-filled) and 6/0 are left */
    ops[0] = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pp);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 6, 0, buf[0], PAGE_4K);
    ops[2] = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pp);
    tmem_run(c, ops, 3);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[0].value, ==, 2);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_MISS);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[2].value, ==, 0);

    /* an ephemeral pool keeps a page while there is room */
    memset(buf[0], 0, PAGE_4K);
    ops[0] = tmem_op_put(pe, 1, 7, b, PAGE_4K);
    ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 1, 7, buf[0], PAGE_4K);
    tmem_run(c, ops, 2);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(buf[0], PAGE_4K, b, PAGE_4K);

    /*
     * Credits.  None are held after reset: a credited put is refused
     * with NOCREDIT and, like any refused put, drops the key's old page.
     */
    memset(buf[0], 0, PAGE_4K);
    ops[0] = tmem_op_put(pp, 7, 0, a, PAGE_4K);
    ops[1] = tmem_op_put(pp, 7, 0, b, PAGE_4K);
    ops[1].flags = VIRTIO_TMEM_OP_F_CREDIT;
    ops[2] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 7, 0, buf[0], PAGE_4K);
    tmem_run(c, ops, 3);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_NOCREDIT);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_MISS);

    /* no more than asked for, nor than max_credits in all */
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 4);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[0].value, <=, 4);
    credits = ops[0].value + c->last_credits;
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 100000);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    credits += ops[0].value + c->last_credits;
    g_assert_cmpuint(credits, <=, DEF_MAX_CREDITS);
    if (credits > 0) {
        memset(buf[0], 0, PAGE_4K);
        ops[0] = tmem_op_put(pp, 7, 0, a, PAGE_4K);
        ops[0].flags = VIRTIO_TMEM_OP_F_CREDIT;
        ops[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 7, 0, buf[0], PAGE_4K);
        /* never on an ephemeral pool */
        ops[2] = tmem_op_put(pe, 7, 0, a, PAGE_4K);
        ops[2].flags = VIRTIO_TMEM_OP_F_CREDIT;
        tmem_run(c, ops, 3);
        tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
        tmem_assert_status(&ops[1], VIRTIO_TMEM_S_OK);
        g_assert_cmpmem(buf[0], PAGE_4K, a, PAGE_4K);
        tmem_assert_status(&ops[2], VIRTIO_TMEM_S_INVALID);
    } else {
        g_test_message("device granted no credits");
    }

    stats = tmem_stats(c);
    g_assert_cmpuint(tmem_stat_of(stats, "puts") - puts0, >=, 10);
    g_assert_cmpuint(tmem_stat_of(stats, "get_hits_ram") - hits0, >=, 5);
    g_assert_cmpuint(tmem_stat_of(stats, "get_misses") - misses0, >=, 7);
    g_assert_cmpuint(tmem_stat_of(stats, "flushed_pages") - flushed0, >=, 6);
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

    tmem_fill_random(pages, BATCH * PAGE_4K, 300);
    s0 = tmem_stats(c);

    for (i = 0; i < BATCH; i++) {
        ops[i] = tmem_op_put(pp, 30, i, pages + i * PAGE_4K, PAGE_4K);
    }
    tmem_run(c, ops, BATCH);
    for (i = 0; i < BATCH; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }

    for (i = 0; i < BATCH; i++) {
        ops[i] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 30, i, back + i * PAGE_4K,
                             PAGE_4K);
    }
    tmem_run(c, ops, BATCH);
    for (i = 0; i < BATCH; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
        g_assert_cmpmem(back + i * PAGE_4K, PAGE_4K,
                        pages + i * PAGE_4K, PAGE_4K);
    }

    s1 = tmem_stats(c);
    kicks = tmem_stat_of(s1, "kicks") - tmem_stat_of(s0, "kicks");
    irqs = tmem_stat_of(s1, "interrupts") - tmem_stat_of(s0, "interrupts");
    reqs = tmem_stat_of(s1, "requests") - tmem_stat_of(s0, "requests");
    nops = tmem_stat_of(s1, "ops") - tmem_stat_of(s0, "ops");
    npages = tmem_stat_of(s1, "pages") - tmem_stat_of(s0, "pages");
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
    g_assert_cmpuint(tmem_stat_of(s1, "get_hits_ram") -
                     tmem_stat_of(s0, "get_hits_ram"), ==, BATCH);
    qobject_unref(s0);
    qobject_unref(s1);

    tmem_pool_destroy(c, pp);
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
    tmem_fill_random(a, sizeof(a), 700);
    ops[0] = tmem_op_put(pp, 70, 0, a, PAGE_4K);
    g_assert_cmpuint(tmem_run_q(c, 2, ops, 1), ==, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    memset(back, 0, sizeof(back));
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 70, 0, back, PAGE_4K);
    g_assert_cmpuint(tmem_run_q(c, 2, ops, 1), ==, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpmem(back, PAGE_4K, a, PAGE_4K);

    /* Credits are the device's, whichever queue asks: 16 in all */
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 10);
    g_assert_cmpuint(tmem_run_q(c, 2, ops, 1), ==, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    credits = ops[0].value + c->last_credits;
    ops[0] = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 1000);
    g_assert_cmpuint(tmem_run_q(c, 1, ops, 1), ==, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    credits += ops[0].value + c->last_credits;
    g_assert_cmpuint(credits, <=, 16);
    c->live_pool = pp;

    /* 8 ops go, 9 do not */
    for (i = 0; i < 9; i++) {
        ops[i] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, 71, i);
    }
    tmem_run(c, ops, 8);
    for (i = 0; i < 8; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_MISS);
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
 * Feature properties: ephemeral=off and credits=off take the bits away
 * (eviction reports with ephemeral pools), and the device then refuses
 * ephemeral pools and has no credits to give.
 */

static void *tmem_features_off_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line,
                    " -global virtio-tmem-pci.ephemeral=off"
                    " -global virtio-tmem-pci.credits=off"
                    " -global virtio-tmem-pci.get-range=off"
                    " -global virtio-tmem-pci.overtake=off");
    return arg;
}

static void test_features_off(void *obj, void *data, QGuestAllocator *alloc)
{
    static uint8_t range[2 * PAGE_4K];
    struct virtio_tmem_req overtake = {
        .nops = cpu_to_le16(1),
        .flags = cpu_to_le16(VIRTIO_TMEM_REQ_F_OVERTAKE),
    };
    TmemCtx ctx, *c = &ctx;
    uint32_t pp, used_len;
    uint64_t host;
    TmemOp op;

    tmem_init(c, obj, alloc, TMEM_FEATURES_ALL);
    host = qvirtio_get_features(c->vdev);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_EPHEMERAL), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_EVICT_REPORT), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_CREDITS), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_GET_RANGE), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_MISS_REPORT), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_OVERTAKE), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_PAGE_64K), !=, 0);
    g_assert_cmpuint(qvirtio_config_readl(c->vdev,
                     offsetof(struct virtio_tmem_config, max_credits)), ==, 0);

    op = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_E4K);
    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_UNSUPPORTED);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_check_put_get(c, pp, PAGE_4K, 80);
    /* a GET_RANGE still has its buffers, but is not run */
    op = tmem_op_get_range(pp, 1, 0, 2, range, PAGE_4K);
    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_UNSUPPORTED);
    g_assert_cmpuint(op.value, ==, 0);
    /* no ephemeral pools, no miss reports */
    op = tmem_op_arg(VIRTIO_TMEM_OP_MISSES, 1);
    op.pool = pp;
    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_UNSUPPORTED);
    /* without OVERTAKE its flag is a reserved bit: nothing runs */
    op = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 0, range, PAGE_4K);
    g_assert_cmpuint(tmem_run_hdr(c, 1, &op, 1, &overtake, &used_len), ==, 0);
    tmem_assert_status(&op, VIRTIO_TMEM_S_SKIPPED);
    tmem_stop(c);
}

/* x-unchecked-features lets the device break spec 3, for drivers' tests. */
static void *tmem_features_unchecked_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line,
                    " -global virtio-tmem-pci.ephemeral=off"
                    " -global virtio-tmem-pci.x-unchecked-features=on");
    return arg;
}

static void test_features_unchecked(void *obj, void *data,
                                    QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    uint64_t host;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    host = qvirtio_get_features(c->vdev);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_EPHEMERAL), ==, 0);
    g_assert_cmphex(host & (1ull << VIRTIO_TMEM_F_EVICT_REPORT), !=, 0);
    tmem_stop(c);
}

/*
 * Test: query-tmem lists the device with the same stats as its "stats"
 * property, then the store the device made for itself, with the device
 * as its one user; HMP info tmem shows them, kicks per page included.
 */
static void test_query(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    QDict *resp, *entry, *st;
    QList *list, *users;
    char *hmp;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 95, 950, BATCH);

    resp = qtest_qmp(c->qts, "{'execute': 'query-tmem'}");
    g_assert(qdict_haskey(resp, "return"));
    list = qdict_get_qlist(resp, "return");
    g_assert_cmpuint(qlist_size(list), ==, 2);
    entry = qobject_to(QDict, qlist_pop(list));
    g_assert_cmpstr(qdict_get_str(entry, "kind"), ==, "device");
    g_assert_cmpstr(qdict_get_str(entry, "path"), ==,
                    "/machine/peripheral/tmem0/virtio-backend");
    g_assert_cmpstr(qdict_get_str(entry, "store"), ==,
                    "/machine/peripheral/tmem0/virtio-backend/tmem-store");
    st = qdict_get_qdict(entry, "stats");
    g_assert_cmpuint(qdict_get_int(st, "pages_persistent"), ==, BATCH);
    g_assert_cmpuint(qdict_get_int(st, "pages"), ==, tmem_stat(c, "pages"));
    g_assert_cmpuint(qdict_get_int(st, "kicks"), ==, tmem_stat(c, "kicks"));
    qobject_unref(entry);
    entry = qobject_to(QDict, qlist_pop(list));
    g_assert_cmpstr(qdict_get_str(entry, "kind"), ==, "store");
    g_assert_cmpstr(qdict_get_str(entry, "path"), ==,
                    "/machine/peripheral/tmem0/virtio-backend/tmem-store");
    users = qdict_get_qlist(entry, "users");
    g_assert_cmpuint(qlist_size(users), ==, 1);
    g_assert_cmpstr(qstring_get_str(qobject_to(QString, qlist_peek(users))),
                    ==, "/machine/peripheral/tmem0/virtio-backend");
    st = qdict_get_qdict(entry, "stats");
    g_assert_cmpuint(qdict_get_int(st, "pages_persistent"), ==, BATCH);
    g_assert_cmpuint(qdict_get_int(st, "users"), ==, 1);
    g_assert_false(qdict_haskey(st, "kicks"));
    qobject_unref(entry);
    qobject_unref(resp);

    hmp = qtest_hmp(c->qts, "info tmem");
    g_assert_nonnull(strstr(hmp, "/machine/peripheral/tmem0/virtio-backend:"));
    g_assert_nonnull(strstr(hmp, "64 persistent"));
    g_assert_nonnull(strstr(hmp, "kicks per page"));
    g_assert_nonnull(strstr(hmp, "events: "));
    g_assert_nonnull(strstr(hmp, "/machine/peripheral/tmem0/virtio-backend/"
                            "tmem-store (store), used by: "
                            "/machine/peripheral/tmem0/virtio-backend"));
    g_free(hmp);

    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

/*
 * "-device virtio-tmem" is virtio-tmem-pci on a PCI machine, as
 * "-device virtio-rng" is virtio-rng-pci (QEMU's qdev alias table).
 */
static void *tmem_alias_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -device virtio-tmem,id=alias0,budget=2M");
    return arg;
}

static void test_alias(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    QDict *resp, *entry;
    const QListEntry *e;
    QList *list;
    bool found = false;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    resp = qtest_qmp(c->qts, "{'execute': 'qom-get', 'arguments': "
                     "{'path': '/machine/peripheral/alias0', "
                     "'property': 'type'}}");
    g_assert_cmpstr(qdict_get_str(resp, "return"), ==, "virtio-tmem-pci");
    qobject_unref(resp);

    resp = qtest_qmp(c->qts, "{'execute': 'query-tmem'}");
    list = qdict_get_qlist(resp, "return");
    /* two devices, each with a store of its own */
    g_assert_cmpuint(qlist_size(list), ==, 4);
    QLIST_FOREACH_ENTRY(list, e) {
        entry = qobject_to(QDict, qlist_entry_obj(e));
        if (!strcmp(qdict_get_str(entry, "path"),
                    "/machine/peripheral/alias0/virtio-backend")) {
            g_assert_cmpuint(qdict_get_int(qdict_get_qdict(entry, "stats"),
                                           "budget"), ==, 2 * MiB);
            found = true;
        }
    }
    g_assert_true(found);
    qobject_unref(resp);
    tmem_stop(c);
}

/*
 * Test: GET_RANGE returns the page and those of its neighbours the store
 * holds, in the buffers of their offsets, with a bitmap of them, and
 * leaves the other buffers alone; it flushes nothing; it sees the ops
 * before it in the request; and a range past index 2^32 - 1 or with no
 * valid size is refused.
 */
static void test_get_range(void *obj, void *data, QGuestAllocator *alloc)
{
    static uint8_t page[VIRTIO_TMEM_RANGE_MAX][PAGE_4K];
    static uint8_t buf[VIRTIO_TMEM_RANGE_MAX * PAGE_4K];
    uint8_t big[PAGE_64K], big_buf[2 * PAGE_64K], untouched[PAGE_4K];
    TmemCtx ctx, *c = &ctx;
    uint32_t pp, pe, p64, want = 0;
    uint64_t pages0;
    TmemOp ops[4];
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);
    p64 = tmem_pool_new(c, POOL_P64K);
    memset(untouched, 0xff, sizeof(untouched));

    /* every third page of 100..131, the first one included */
    for (i = 0; i < VIRTIO_TMEM_RANGE_MAX; i++) {
        tmem_fill_random(page[i], PAGE_4K, 300 + i);
        if (i % 3 == 0) {
            ops[0] = tmem_op_put(pe, 5, 100 + i, page[i], PAGE_4K);
            tmem_run(c, ops, 1);
            tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
            want |= 1u << i;
        }
    }
    pages0 = tmem_stat(c, "pages");
    ops[0] = tmem_op_get_range(pe, 5, 100, VIRTIO_TMEM_RANGE_MAX, buf,
                               PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    g_assert_cmphex(ops[0].value, ==, want);
    for (i = 0; i < VIRTIO_TMEM_RANGE_MAX; i++) {
        g_assert_cmpmem(buf + i * PAGE_4K, PAGE_4K,
                        i % 3 ? untouched : page[i], PAGE_4K);
    }
    g_assert_cmpuint(tmem_stat(c, "pages") - pages0, ==, ctpop32(want));

    /* nothing was flushed: the same again, from 101, first page absent */
    ops[0] = tmem_op_get_range(pe, 5, 101, 4, buf, PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_MISS);
    g_assert_cmphex(ops[0].value, ==, 1u << 2);
    g_assert_cmpmem(buf + 2 * PAGE_4K, PAGE_4K, page[3], PAGE_4K);

    /* in order with the ops before it: a flush and a put of neighbours */
    ops[0] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pe, 5, 103);
    ops[1] = tmem_op_put(pe, 5, 101, page[1], PAGE_4K);
    ops[2] = tmem_op_get_range(pe, 5, 100, 4, buf, PAGE_4K);
    c->split = true;
    tmem_run(c, ops, 3);
    c->split = false;
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_OK);
    g_assert_cmphex(ops[2].value, ==, 0x3);
    g_assert_cmpmem(buf, PAGE_4K, page[0], PAGE_4K);
    g_assert_cmpmem(buf + PAGE_4K, PAGE_4K, page[1], PAGE_4K);

    /* persistent pools and 64 KiB pages too; a range up to 2^32 - 1 */
    tmem_fill_random(big, sizeof(big), 77);
    ops[0] = tmem_op_put(p64, 9, UINT32_MAX, big, PAGE_64K);
    ops[1] = tmem_op_get_range(p64, 9, UINT32_MAX - 1, 2, big_buf, PAGE_64K);
    tmem_run(c, ops, 2);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_MISS);
    g_assert_cmphex(ops[1].value, ==, 0x2);
    g_assert_cmpmem(big_buf + PAGE_64K, PAGE_64K, big, PAGE_64K);
    ops[0] = tmem_op_put(pp, 1, 0, page[0], PAGE_4K);
    ops[1] = tmem_op_get_range(pp, 1, 0, 1, buf, PAGE_4K);
    tmem_run(c, ops, 2);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_OK);
    g_assert_cmphex(ops[1].value, ==, 0x1);
    g_assert_cmpmem(buf, PAGE_4K, page[0], PAGE_4K);

    /* refused: past 2^32 - 1, a page size not the pool's, a bad pool */
    ops[0] = tmem_op_get_range(p64, 9, UINT32_MAX, 2, big_buf, PAGE_64K);
    ops[1] = tmem_op_get_range(pe, 5, 100, 2, big_buf, PAGE_64K);
    ops[2] = tmem_op_get_range(BAD_POOL, 5, 100, 2, buf, PAGE_4K);
    tmem_run(c, ops, 3);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[1], VIRTIO_TMEM_S_INVALID);
    tmem_assert_status(&ops[2], VIRTIO_TMEM_S_BADPOOL);
    for (i = 0; i < 3; i++) {
        g_assert_cmphex(ops[i].value, ==, 0);
    }
    tmem_stop(c);
}

/*
 * Make @first (a batch) and then @second available, notify once, and
 * wait until both are used; returns the head the device used first.
 */
static uint32_t run_pair(TmemCtx *c, TmemPending *first, TmemPending *second)
{
    QVirtQueue *vq = first->vq;
    uint16_t slot = vq->last_used_idx;
    gint64 start = g_get_monotonic_time();
    uint32_t id;

    tmem_avail(c, vq, first->head);
    tmem_avail(c, vq, second->head);
    /* both at once: a notification the device may not have asked for */
    c->vdev->bus->virtqueue_kick(c->vdev, vq);
    c->kicks++;
    while (tmem_used_idx(c, vq) != (uint16_t)(slot + 2)) {
        g_assert_cmpint(g_get_monotonic_time() - start, <=, TMEM_TIMEOUT_US);
        g_usleep(1000);
    }
    qtest_memread(c->qts, tmem_used_elem_addr(vq, slot) +
                  offsetof(struct vring_used_elem, id), &id, sizeof(id));
    vq->last_used_idx = slot + 2;
    return le32_to_cpu(id);
}

/*
 * VIRTIO_TMEM_F_OVERTAKE: a flagged request of GETs made available after
 * a batch of puts runs between the batch's ops and is used first, and
 * returns what it would have in order; a flagged request with a PUT, or
 * an unflagged GET, keeps its place; unknown flag bits skip the request.
 */
static void test_overtake(void *obj, void *data, QGuestAllocator *alloc)
{
    static uint8_t pages[BATCH][PAGE_4K];
    uint8_t got[PAGE_4K], want[PAGE_4K];
    struct virtio_tmem_req hb = { .nops = cpu_to_le16(BATCH) };
    struct virtio_tmem_req hg = {
        .nops = cpu_to_le16(1),
        .flags = cpu_to_le16(VIRTIO_TMEM_REQ_F_OVERTAKE),
    };
    TmemCtx ctx, *c = &ctx;
    TmemOp batch[BATCH], one[1];
    TmemPending pb, pg;
    uint64_t ahead0;
    uint32_t pp, used_len;
    unsigned i, round;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 1, 100, BATCH);
    ahead0 = tmem_stat(c, "requests_ahead");

    for (round = 0; round < 3; round++) {
        for (i = 0; i < BATCH; i++) {
            tmem_fill_random(pages[i], PAGE_4K, 1000 * round + i);
            batch[i] = tmem_op_put(pp, 2, i, pages[i], PAGE_4K);
        }
        memset(got, 0, sizeof(got));
        if (round == 2) {
            /* a PUT may not overtake: it waits its turn */
            one[0] = tmem_op_put(pp, 3, 0, pages[0], PAGE_4K);
        } else {
            one[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 5, got, PAGE_4K);
        }
        /* round 1: the same GET without the flag keeps its place */
        hg.flags = cpu_to_le16(round == 1 ? 0 : VIRTIO_TMEM_REQ_F_OVERTAKE);
        tmem_post(c, 1, batch, BATCH, &hb, &pb);
        c->keep_descs = true;
        tmem_post(c, 1, one, 1, &hg, &pg);
        c->keep_descs = false;
        g_assert_cmpuint(run_pair(c, &pb, &pg), ==,
                         round == 0 ? pg.head : pb.head);
        g_assert_cmpuint(tmem_finish(c, &pg, one, 1), ==, 1);
        g_assert_cmpuint(tmem_finish(c, &pb, batch, BATCH), ==, BATCH);
        tmem_assert_status(&one[0], VIRTIO_TMEM_S_OK);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status(&batch[i], VIRTIO_TMEM_S_OK);
        }
        if (round < 2) {
            tmem_fill_random(want, PAGE_4K, 100 + 5);
            g_assert_cmpmem(got, PAGE_4K, want, PAGE_4K);
        }
        g_assert_cmpuint(tmem_stat(c, "requests_ahead"), ==,
                         ahead0 + 1);
    }
    tmem_check_random(c, pp, 2, 2000, BATCH);

    /* flag bits the device does not know: every op skipped */
    hg.flags = cpu_to_le16(VIRTIO_TMEM_REQ_F_OVERTAKE << 1);
    one[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 5, got, PAGE_4K);
    g_assert_cmpuint(tmem_run_hdr(c, 1, one, 1, &hg, &used_len), ==, 0);
    tmem_assert_status(&one[0], VIRTIO_TMEM_S_SKIPPED);

    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

/*
 * sync-inline, on by default without an iothread: a flagged request of
 * GETs is served in the thread that wrote the notify register, so its
 * answer is in the used ring when the write returns, before the main
 * loop runs again; batches and unflagged requests are left to the main
 * loop.  With sync-inline=off (@data) the main loop serves them all.
 */
static void *tmem_inline_off_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -global virtio-tmem-pci.sync-inline=off");
    return arg;
}

static void test_sync_inline(void *obj, void *data, QGuestAllocator *alloc)
{
    bool on = !data;
    struct virtio_tmem_req hg = {
        .nops = cpu_to_le16(1),
        .flags = cpu_to_le16(VIRTIO_TMEM_REQ_F_OVERTAKE),
    };
    uint8_t got[PAGE_4K], want[PAGE_4K];
    TmemCtx ctx, *c = &ctx;
    TmemPending p;
    TmemOp one[1];
    uint64_t inl0;
    uint32_t pp;
    uint16_t slot;
    unsigned round;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    inl0 = tmem_stat(c, "requests_inline");
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 1, 100, BATCH);
    /* the pool's creation and the batch went to the main loop */
    g_assert_cmpuint(tmem_stat(c, "requests_inline"), ==, inl0);

    for (round = 0; round < 4; round++) {
        memset(got, 0, sizeof(got));
        one[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, round, got, PAGE_4K);
        tmem_post(c, 1, one, 1, &hg, &p);
        slot = p.vq->last_used_idx;
        tmem_kick(c, p.vq, p.head);
        if (on) {
            /* no main loop iteration between the kick and this read */
            g_assert_cmpuint(tmem_used_idx(c, p.vq), ==,
                             (uint16_t)(slot + 1));
        }
        qvirtio_wait_used_elem(c->qts, c->vdev, p.vq, p.head, NULL,
                               TMEM_TIMEOUT_US);
        g_assert_cmpuint(tmem_finish(c, &p, one, 1), ==, 1);
        tmem_assert_status(&one[0], VIRTIO_TMEM_S_OK);
        tmem_fill_random(want, PAGE_4K, 100 + round);
        g_assert_cmpmem(got, PAGE_4K, want, PAGE_4K);
        g_assert_cmpuint(tmem_stat(c, "requests_inline"), ==,
                         inl0 + (on ? round + 1 : 0));
    }

    /* unflagged, the same GET is the main loop's */
    one[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 1, 9, got, PAGE_4K);
    tmem_run(c, one, 1);
    tmem_assert_status(&one[0], VIRTIO_TMEM_S_OK);
    tmem_fill_random(want, PAGE_4K, 100 + 9);
    g_assert_cmpmem(got, PAGE_4K, want, PAGE_4K);
    g_assert_cmpuint(tmem_stat(c, "requests_inline"), ==,
                     inl0 + (on ? 4 : 0));
    tmem_check_random(c, pp, 1, 100, BATCH);
    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

/*
 * turn-us: serving a queue gives the loop it runs in a turn between two
 * ops or two requests once its turn is over; 1 µs here, so nearly every
 * op ends one.  A request stepped out of in the middle goes on where it
 * left off: two batches of puts, each yielded between nearly all of its
 * ops, read back byte for byte, and `yields` counts the turns.  The
 * overtake test also runs with turn-us=1 ("overtake-turns"): a flagged
 * GET still runs ahead of a batch that yields.
 */
static void *tmem_turn_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -global virtio-tmem-pci.turn-us=1");
    return arg;
}

static void test_turns(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    uint64_t y0, y1;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    y0 = tmem_stat(c, "yields");
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 1, 100, BATCH);
    tmem_put_random(c, pp, 2, 200, BATCH);
    y1 = tmem_stat(c, "yields");
    g_test_message("2 batches of %d puts: %" PRIu64 " yields", BATCH,
                   y1 - y0);
    g_assert_cmpuint(y1 - y0, >=, BATCH);
    tmem_check_random(c, pp, 1, 100, BATCH);
    tmem_check_random(c, pp, 2, 200, BATCH);
    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

static void register_virtio_tmem_test(void)
{
    QOSGraphTestOptions alias = {
        .before = tmem_alias_setup,
    };
    QOSGraphTestOptions custom = {
        .before = tmem_custom_setup,
    };
    QOSGraphTestOptions features_off = {
        .before = tmem_features_off_setup,
    };
    QOSGraphTestOptions features_unchecked = {
        .before = tmem_features_unchecked_setup,
    };
    QOSGraphTestOptions inline_off = {
        .before = tmem_inline_off_setup,
        .arg = (void *)1,
    };
    QOSGraphTestOptions turns = {
        .before = tmem_turn_setup,
    };

    qos_add_test("config", "virtio-tmem", test_config, NULL);
    qos_add_test("put-get", "virtio-tmem", test_put_get, NULL);
    qos_add_test("batch", "virtio-tmem", test_batch, NULL);
    qos_add_test("get-range", "virtio-tmem", test_get_range, NULL);
    qos_add_test("overtake", "virtio-tmem", test_overtake, NULL);
    qos_add_test("overtake-turns", "virtio-tmem", test_overtake, &turns);
    qos_add_test("turns", "virtio-tmem", test_turns, &turns);
    qos_add_test("sync-inline", "virtio-tmem", test_sync_inline, NULL);
    qos_add_test("sync-inline-off", "virtio-tmem", test_sync_inline,
                 &inline_off);
    qos_add_test("custom", "virtio-tmem", test_custom, &custom);
    qos_add_test("query", "virtio-tmem", test_query, NULL);
    qos_add_test("alias", "virtio-tmem", test_alias, &alias);
    qos_add_test("features-off", "virtio-tmem", test_features_off,
                 &features_off);
    qos_add_test("features-unchecked", "virtio-tmem", test_features_unchecked,
                 &features_unchecked);
}

libqos_init(register_virtio_tmem_test);
