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

/*
 * Test: "kicks" is the notifications the driver sent on request queues,
 * exactly.  Not the device's own look at its queues when their notifiers
 * start (DRIVER_OK, cont after stop, reset), nor requests a polling
 * iothread found by itself.  And while an iothread polls, the device
 * leaves notifications off, so that the driver (EVENT_IDX) skips them:
 * with a long poll-max-ns, some requests must go without one.
 */

static void *tmem_poll_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -object iothread,id=io0,"
                              "poll-max-ns=500000000,poll-grow=8"
                              " -global virtio-tmem-pci.iothread=io0");
    return arg;
}

/* The device's kicks, before a TmemCtx exists */
static uint64_t tmem_kicks_of(QVirtioTmem *t)
{
    QDict *stats = qtest_qmp_assert_success_ref(t->qts,
        "{'execute': 'qom-get', 'arguments': "
        "{'path': %s, 'property': 'stats'}}", t->qom_path);
    uint64_t kicks = tmem_stat_of(stats, "kicks");

    qobject_unref(stats);
    return kicks;
}

/*
 * Are notifications off on request queue 1, with nothing pending?  With
 * EVENT_IDX that is avail_event behind the avail index: the driver's
 * next chain will not notify.
 */
static bool tmem_notify_off(TmemCtx *c)
{
    QVirtQueue *vq = c->vq[1];
    uint16_t idx = qtest_readw(c->qts, vq->avail + 2);
    uint16_t avail_event = qtest_readw(c->qts, vq->used + 4 +
                                       sizeof(struct vring_used_elem) *
                                       vq->size);

    return avail_event != idx;
}

/* @n PUT and GET pairs; how many times notifications were left off */
static unsigned tmem_kicks_round(TmemCtx *c, uint64_t kicks0, unsigned n,
                                 uint64_t seed)
{
    uint32_t pp = tmem_pool_new(c, POOL_P4K);
    unsigned i, off = 0;

    for (i = 0; i < n; i++) {
        tmem_check_put_get(c, pp, PAGE_4K, seed + i);
        off += tmem_notify_off(c);
    }
    tmem_pool_destroy(c, pp);
    /*
     * A polling iothread may have served the chain before it reads the
     * notification that came with it: wait for that, then for no more.
     */
    tmem_wait_stat(c, "kicks", false, kicks0 + c->kicks);
    g_test_message("%" PRIu64 " chains, %" PRIu64 " notifications sent, "
                   "%" PRIu64 " kicks counted; notifications left off "
                   "after %u of %u GETs", c->chains, c->kicks,
                   tmem_stat(c, "kicks") - kicks0, off, n);
    g_assert_cmpuint(tmem_stat(c, "kicks") - kicks0, ==, c->kicks);
    return off;
}

static void test_kicks(void *obj, void *data, QGuestAllocator *alloc)
{
    bool polling = data != NULL;
    uint64_t kicks0 = tmem_kicks_of(obj);
    TmemCtx ctx, *c = &ctx;
    unsigned off;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    off = tmem_kicks_round(c, kicks0, 50, 1000);
    /* the queues' notifiers stop and start again */
    qtest_qmp_assert_success(c->qts, "{'execute': 'stop'}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'cont'}");
    off += tmem_kicks_round(c, kicks0, 50, 2000);
    tmem_reinit(c);
    off += tmem_kicks_round(c, kicks0, 100, 3000);
    if (polling) {
        /* a request served left the poller's setting alone */
        g_assert_cmpuint(off, >, 0);
        g_assert_cmpuint(c->kicks, <, c->chains);
    } else if (!tmem_iothread_active(c)) {
        /* the main loop does not poll: a request served turns them on */
        g_assert_cmpuint(off, ==, 0);
    }
    tmem_stop(c);
    g_assert_cmpuint(tmem_kicks_of(obj) - kicks0, ==, c->kicks);
}

static void register_virtio_tmem_iothread_test(void)
{
    QOSGraphTestOptions opts = {
        .before = tmem_iothread_setup,
    };
    QOSGraphTestOptions kicks_io = {
        .before = tmem_iothread_setup,
    };
    QOSGraphTestOptions kicks_poll = {
        .before = tmem_poll_setup,
        .arg = (void *)"polling",
    };

    qos_add_test("iothread", "virtio-tmem", test_iothread, &opts);
    qos_add_test("no-iothread", "virtio-tmem", test_no_iothread, NULL);
    qos_add_test("kicks", "virtio-tmem", test_kicks, NULL);
    qos_add_test("kicks-iothread", "virtio-tmem", test_kicks, &kicks_io);
    qos_add_test("kicks-poll", "virtio-tmem", test_kicks, &kicks_poll);
}

libqos_init(register_virtio_tmem_iothread_test);
