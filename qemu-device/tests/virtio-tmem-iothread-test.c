/*
 * QTest testcase for the virtio-tmem device: request queues in an iothread
 *
 * -object iothread,id=io0 -device virtio-tmem-pci,iothread=io0: the same
 * put, get and batch traffic, a budget change and stats over QMP while
 * the queues are served in the iothread, events raised from there, and
 * a ring-level error and reset, after which the iothread serves again.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qobject/qdict.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "virtio-tmem-util.h"

static void *tmem_iothread_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -object iothread,id=io0"
                              " -global virtio-tmem-pci.iothread=io0");
    return arg;
}

static bool tmem_iothread_active(TmemCtx *c)
{
    QDict *stats = tmem_stats(c);
    bool on = qdict_get_bool(stats, "iothread_active");

    qobject_unref(stats);
    return on;
}

static void test_iothread(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned nbig = DEF_MAX_OPS;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *pages = g_malloc(nbig * PAGE_4K);
    g_autofree uint8_t *back = g_malloc0(nbig * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, nbig);
    uint64_t kicks0, irqs0, evictions0;
    uint32_t pp, pe;
    TmemEvent ev;
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES_ALL);
    g_assert_true(tmem_iothread_active(c));
    kicks0 = tmem_stat(c, "kicks");
    irqs0 = tmem_stat(c, "interrupts");

    /* Single operations, and the same with every part its own descriptor */
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_check_put_get(c, pp, PAGE_4K, 1);
    c->split = true;
    tmem_check_put_get(c, pp, PAGE_4K, 2);

    /* A batch of max-ops PUTs in one chain, then as many GETs */
    c->split = false;
    tmem_fill_random(pages, nbig * PAGE_4K, 3);
    for (i = 0; i < nbig; i++) {
        ops[i] = tmem_op_put(pp, 3, i, pages + i * PAGE_4K, PAGE_4K);
    }
    tmem_run(c, ops, nbig);
    for (i = 0; i < nbig; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    for (i = 0; i < nbig; i++) {
        ops[i] = tmem_op_get(VIRTIO_TMEM_OP_GET_EXCL, pp, 3, i,
                             back + i * PAGE_4K, PAGE_4K);
    }
    tmem_run(c, ops, nbig);
    for (i = 0; i < nbig; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    g_assert_cmpmem(back, nbig * PAGE_4K, pages, nbig * PAGE_4K);
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, 2);

    /* and batches of BATCH through the helpers */
    tmem_put_random(c, pp, 4, 400, 4 * BATCH);
    tmem_check_random(c, pp, 4, 400, 4 * BATCH);
    g_assert_cmpuint(tmem_stat(c, "kicks") - kicks0, >=, 8);
    g_assert_cmpuint(tmem_stat(c, "interrupts") - irqs0, >=, 8);

    /*
     * A budget cut over QMP while the iothread serves: ephemeral pages
     * go (the 1 MiB of persistent ones stays), the store reports them,
     * and the EVICTED events (sent from the main loop) name keys of the
     * pool.
     */
    evictions0 = tmem_stat(c, "evictions");
    tmem_set_budget(c, 4 * MiB);
    pe = tmem_pool_new(c, POOL_E4K);
    for (i = 0; i < 8 * MiB / PAGE_4K; i++) {
        ops[i % BATCH] = tmem_op_put(pe, 5, i, pages + (i % nbig) * PAGE_4K,
                                     PAGE_4K);
        if (i % BATCH == BATCH - 1) {
            tmem_run(c, ops, BATCH);
        }
    }
    g_assert_cmpuint(tmem_stat(c, "evictions"), >, evictions0);
    g_assert_true(tmem_event_wait(c, VIRTIO_TMEM_EVENT_EVICTED, &ev,
                                  TMEM_TIMEOUT_US));
    g_assert_cmpuint(ev.pool, ==, pe);
    g_assert_cmpuint(ev.count, >=, 1);
    g_assert_cmpuint(le64_to_cpu(ev.keys[0].oid[0]), ==, 5);
    tmem_set_budget(c, DEF_BUDGET);
    tmem_check_random(c, pp, 4, 400, 4 * BATCH);

    /* A ring-level error in the iothread; reset; served there again */
    c->live_pool = pp;
    {
        size_t rlen;
        TmemOp op = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, 0, 1, 0);
        uint8_t *rbuf = tmem_encode(&op, 0, 0, &rlen);

        tmem_submit_raw(c, rbuf, rlen, sizeof(struct virtio_tmem_resp) +
                        sizeof(struct virtio_tmem_status));
        g_free(rbuf);
        tmem_expect_broken(c, "nops = 0, in the iothread");
    }
    g_assert_true(tmem_iothread_active(c));
    pp = c->live_pool;
    tmem_put_random(c, pp, 6, 600, BATCH);
    tmem_check_random(c, pp, 6, 600, BATCH);
    tmem_pool_destroy(c, pp);
    tmem_stop(c);
    g_assert_false(tmem_iothread_active(c));
}

/* Without the property, the main loop serves, as before. */
static void test_no_iothread(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    g_assert_false(tmem_iothread_active(c));
    tmem_check_put_get(c, tmem_pool_new(c, POOL_P4K), PAGE_4K, 7);
    tmem_stop(c);
}

static void register_virtio_tmem_iothread_test(void)
{
    QOSGraphTestOptions opts = {
        .before = tmem_iothread_setup,
    };

    qos_add_test("iothread", "virtio-tmem", test_iothread, &opts);
    qos_add_test("no-iothread", "virtio-tmem", test_no_iothread, NULL);
}

libqos_init(register_virtio_tmem_iothread_test);
