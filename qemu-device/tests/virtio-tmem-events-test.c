/*
 * QTest testcase for the virtio-tmem device: events
 *
 * EVICTED (the keys of ephemeral pages the host dropped), RECLAIM
 * (spilling: persistent pages wanted back), HINT (an ephemeral pool's
 * gets do or do not hit) and CREDITS (granted once back under budget),
 * each raised by the host's own state and read off the event queue.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qobject/qdict.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "virtio-tmem-util.h"

/* How long to wait for an event that must come, and one that must not */
#define EVENT_US        (10 * G_USEC_PER_SEC)
#define QUIET_US        (300 * 1000)

/* The oid word 0 of a key as tmem_op_key() builds it */
static uint64_t key_oid(const struct virtio_tmem_key *k)
{
    return le64_to_cpu(k->oid[0]);
}

/* Fill ephemeral pool @pe with @n random pages of object @oid. */
static void put_ephemeral(TmemCtx *c, uint32_t pe, uint64_t oid, unsigned n)
{
    g_autofree uint8_t *pages = g_malloc(BATCH * PAGE_4K);
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i;

    for (r = 0; r < n / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            tmem_fill_random(pages + i * PAGE_4K, PAGE_4K, r * BATCH + i);
            ops[i] = tmem_op_put(pe, oid, r * BATCH + i, pages + i * PAGE_4K,
                                 PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
        }
    }
}

/* @n GETs of (@oid, @first ..) in requests of BATCH; returns the hits. */
static unsigned get_ephemeral(TmemCtx *c, uint32_t pool, uint64_t oid,
                              uint32_t first, unsigned n, bool *hit)
{
    g_autofree TmemOp *ops = g_new0(TmemOp, BATCH);
    unsigned r, i, hits = 0;

    for (r = 0; r < n / BATCH; r++) {
        for (i = 0; i < BATCH; i++) {
            ops[i] = tmem_op_get(VIRTIO_TMEM_OP_GET, pool, oid,
                                 first + r * BATCH + i, NULL, PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status2(&ops[i], VIRTIO_TMEM_S_OK,
                                VIRTIO_TMEM_S_MISS);
            if (hit) {
                hit[r * BATCH + i] = ops[i].status == VIRTIO_TMEM_S_OK;
            }
            hits += ops[i].status == VIRTIO_TMEM_S_OK;
        }
    }
    return hits;
}

static void *tmem_small_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -global virtio-tmem-pci.budget=1M");
    return arg;
}

/*
 * EVICTED: only when negotiated; then every key the store dropped is
 * either sent, in events of at most 127 keys of the right pool, or
 * counted as dropped, and every key sent misses.
 */
static void test_evicted(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 4 * MiB / PAGE_4K;
    TmemCtx ctx, *c = &ctx;
    g_autofree bool *reported = g_new0(bool, npages);
    g_autofree bool *hit = g_new0(bool, npages);
    uint64_t ev0, keys = 0, dropped, missed = 0, evictions;
    uint32_t pe;
    TmemEvent ev;
    unsigned i, nevents = 0;

    /* Not negotiated: the store evicts, the driver hears nothing */
    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pe = tmem_pool_new(c, POOL_E4K);
    ev0 = tmem_stat(c, "evictions");
    put_ephemeral(c, pe, 1, npages);
    g_assert_cmpuint(tmem_stat(c, "evictions"), >, ev0);
    g_assert_false(tmem_event_next(c, &ev, QUIET_US) &&
                   ev.type == VIRTIO_TMEM_EVENT_EVICTED);
    g_assert_cmpuint(tmem_event_stat(c, "evicted"), ==, 0);
    g_assert_cmpuint(tmem_stat(c, "evicted_keys"), ==, 0);

    /* Negotiated: a fresh pool, the same pressure */
    tmem_stop(c);
    qvirtio_set_acknowledge(c->vdev);
    qvirtio_set_driver(c->vdev);
    tmem_start(c, TMEM_FEATURES_ALL);
    g_assert_cmphex(c->features, ==, TMEM_FEATURES_ALL);
    pe = tmem_pool_new(c, POOL_E4K);
    ev0 = tmem_stat(c, "evictions");
    dropped = tmem_stat(c, "evict_reports_dropped");
    put_ephemeral(c, pe, 2, npages);
    evictions = tmem_stat(c, "evictions") - ev0;
    g_assert_cmpuint(evictions, >, 0);

    /* Read events until every eviction is accounted for */
    while (keys + tmem_stat(c, "evict_reports_dropped") - dropped <
           evictions) {
        g_assert_true(tmem_event_wait(c, VIRTIO_TMEM_EVENT_EVICTED, &ev,
                                      EVENT_US));
        nevents++;
        g_assert_cmpuint(ev.pool, ==, pe);
        g_assert_cmpuint(ev.value, ==, 0);
        g_assert_cmpuint(ev.count, >=, 1);
        g_assert_cmpuint(ev.count, <=, 127);
        for (i = 0; i < ev.count; i++) {
            uint32_t index = le32_to_cpu(ev.keys[i].index);

            g_assert_cmpuint(key_oid(&ev.keys[i]), ==, 2);
            g_assert_cmpuint(ev.keys[i].reserved, ==, 0);
            g_assert_cmpuint(index, <, npages);
            g_assert_false(reported[index]);
            reported[index] = true;
        }
        keys += ev.count;
    }
    dropped = tmem_stat(c, "evict_reports_dropped") - dropped;
    g_test_message("%" PRIu64 " evictions: %" PRIu64 " keys in %u events, "
                   "%" PRIu64 " dropped", evictions, keys, nevents, dropped);
    g_assert_cmpuint(keys + dropped, ==, evictions);
    g_assert_cmpuint(keys, >, 0);
    g_assert_cmpuint(tmem_stat(c, "evicted_keys"), ==, keys);

    /* A key reported gone is gone; with nothing dropped, so is no other */
    get_ephemeral(c, pe, 2, 0, npages, hit);
    for (i = 0; i < npages; i++) {
        if (reported[i]) {
            g_assert_false(hit[i]);
        }
        missed += !hit[i];
    }
    g_assert_cmpuint(missed, ==, evictions);
    if (!dropped) {
        for (i = 0; i < npages; i++) {
            g_assert_cmpint(reported[i], ==, !hit[i]);
        }
    }

    /*
     * Flushing is the driver's own doing: no report.  The drops did turn
     * the pool's HINT off (events-hint), and that event may still be
     * waiting here.
     */
    ev0 = tmem_stat(c, "evicted_keys");
    tmem_pool_destroy(c, pe);
    while (tmem_event_next(c, &ev, QUIET_US)) {
        g_assert_cmpuint(ev.type, ==, VIRTIO_TMEM_EVENT_HINT);
    }
    g_assert_cmpuint(tmem_stat(c, "evicted_keys"), ==, ev0);
    tmem_stop(c);
}

static void tmem_spill_cleanup(void *path)
{
    g_rmdir(path);
    g_free(path);
}

static void *tmem_spill_setup(GString *cmd_line, void *arg)
{
    char *dir = g_dir_make_tmp("qtest-tmem-events.XXXXXX", NULL);

    g_assert_nonnull(dir);
    g_string_append_printf(cmd_line,
                           " -global virtio-tmem-pci.budget=1M"
                           " -global virtio-tmem-pci.spill=%s"
                           " -global virtio-tmem-pci.spill-max=64M", dir);
    g_test_queue_destroy(tmem_spill_cleanup, dir);
    return arg;
}

/*
 * RECLAIM: persistent pages spilling past the budget make the device ask
 * for some back, at most once a second.
 */
static void test_reclaim(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 4 * MiB / PAGE_4K;
    TmemCtx ctx, *c = &ctx;
    gint64 start;
    uint64_t n0, n;
    uint32_t pp, pe;
    TmemEvent ev;
    double secs;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    n0 = tmem_event_stat(c, "reclaim");

    /* Ephemeral pages over the budget are dropped, not a reason */
    pe = tmem_pool_new(c, POOL_E4K);
    put_ephemeral(c, pe, 3, npages);
    g_assert_false(tmem_event_next(c, &ev, QUIET_US));
    g_assert_cmpuint(tmem_event_stat(c, "reclaim"), ==, n0);

    start = g_get_monotonic_time();
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 4, 400, npages);
    g_assert_cmpuint(tmem_stat(c, "pages_spilled"), >, 0);
    g_assert_true(tmem_event_wait(c, VIRTIO_TMEM_EVENT_RECLAIM, &ev,
                                  EVENT_US));
    g_assert_cmpuint(ev.pool, ==, 0);
    g_assert_cmpuint(ev.value, >, 0);
    g_assert_cmpuint(ev.value, <=, npages);

    /* Rate-limited: count what came while we kept spilling */
    tmem_put_random(c, pp, 5, 500, npages);
    while (tmem_event_next(c, &ev, QUIET_US)) {
        /* drain */
    }
    secs = (g_get_monotonic_time() - start) / (double)G_USEC_PER_SEC;
    n = tmem_event_stat(c, "reclaim") - n0;
    g_test_message("%" PRIu64 " RECLAIMs in %.1f s", n, secs);
    g_assert_cmpuint(n, >=, 1);
    g_assert_cmpuint(n, <=, (uint64_t)secs + 1);

    tmem_pool_destroy(c, pp);
    tmem_pool_destroy(c, pe);
    tmem_stop(c);
}

static void *tmem_hint_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -global virtio-tmem-pci.hint-window=64"
                              " -global virtio-tmem-pci.hint-retry=1000");
    return arg;
}

static void expect_hint(TmemCtx *c, uint32_t pool, uint64_t value)
{
    TmemEvent ev;

    g_test_message("waiting for HINT %s",
                   value == VIRTIO_TMEM_HINT_CLEANCACHE_ON ? "on" : "off");
    g_assert_true(tmem_event_wait(c, VIRTIO_TMEM_EVENT_HINT, &ev, EVENT_US));
    g_assert_cmpuint(ev.pool, ==, pool);
    g_assert_cmpuint(ev.value, ==, value);
}

/*
 * HINT: a window of 64 GETs that all miss turns an ephemeral pool's
 * cleancache off; a window that hits, a bigger budget, or hint-retry
 * (here 1 s) turn it on again.  Persistent pools get no hints.  Gets the
 * driver answered itself and reported with MISSES count as misses.
 */
static void test_hint(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    TmemOp op, ops[4];
    uint32_t pe, pp;
    TmemEvent ev;
    gint64 off_at;
    uint64_t n0;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    n0 = tmem_event_stat(c, "hint");
    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);

    get_ephemeral(c, pp, 6, 0, 2 * BATCH, NULL);
    g_assert_false(tmem_event_next(c, &ev, QUIET_US));

    /* a window of misses */
    get_ephemeral(c, pe, 6, 0, BATCH, NULL);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_OFF);

    /* hits while off: on again */
    put_ephemeral(c, pe, 7, BATCH);
    g_assert_cmpuint(get_ephemeral(c, pe, 7, 0, BATCH, NULL), ==, BATCH);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_ON);

    /* off, then a bigger budget: on */
    get_ephemeral(c, pe, 6, 0, BATCH, NULL);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_OFF);
    tmem_set_budget(c, 2 * DEF_BUDGET);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_ON);

    /* off, then nothing: on again after hint-retry */
    get_ephemeral(c, pe, 6, 0, BATCH, NULL);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_OFF);
    off_at = g_get_monotonic_time();
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_ON);
    g_assert_cmpint(g_get_monotonic_time() - off_at, >=,
                    800 * 1000 /* 1 s, less the time to read the OFF */);

    /*
     * A window the driver answered itself: MISSES reports count as gets
     * that missed, and turn it off; a persistent pool or a count of 0 is
     * malformed.
     */
    op = tmem_op_arg(VIRTIO_TMEM_OP_MISSES, BATCH / 2);
    op.pool = pe;
    ops[0] = op;
    ops[1] = op;
    ops[2] = op;
    ops[2].pool = pp;
    ops[3] = op;
    ops[3].arg = 0;
    tmem_run(c, ops, 4);
    g_assert_cmpuint(ops[0].status, ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[1].status, ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(ops[2].status, ==, VIRTIO_TMEM_S_INVALID);
    g_assert_cmpuint(ops[3].status, ==, VIRTIO_TMEM_S_INVALID);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_OFF);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_ON);  /* hint-retry */

    /*
     * No gets at all, but the store drops the puts before any get came
     * (a stream whose misses the driver's filter answers): the drops
     * count as misses and turn it off; a bigger budget, on again.
     */
    tmem_set_budget(c, 256 * KiB);
    put_ephemeral(c, pe, 8, 4 * BATCH);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_OFF);
    tmem_set_budget(c, 2 * DEF_BUDGET);
    expect_hint(c, pe, VIRTIO_TMEM_HINT_CLEANCACHE_ON);

    g_assert_cmpuint(tmem_event_stat(c, "hint"), ==, n0 + 10);
    tmem_pool_destroy(c, pe);
    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

/*
 * CREDITS: asked for while over budget, refused; sent in an event once
 * back under, and then spendable, exactly as many as were granted.
 */
static void test_credits(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned want = 32;
    TmemCtx ctx, *c = &ctx;
    uint8_t page[PAGE_4K];
    TmemOp op;
    TmemEvent ev;
    uint32_t pp;
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 8, 800, 4 * BATCH);

    /* No spill: persistent pages cannot go, so this stays over */
    tmem_set_budget(c, 256 * KiB);
    op = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, want);
    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(op.value + c->last_credits, ==, 0);
    g_assert_false(tmem_event_next(c, &ev, QUIET_US) &&
                   ev.type == VIRTIO_TMEM_EVENT_CREDITS);

    tmem_set_budget(c, DEF_BUDGET);
    g_assert_true(tmem_event_wait(c, VIRTIO_TMEM_EVENT_CREDITS, &ev,
                                  EVENT_US));
    g_assert_cmpuint(ev.pool, ==, 0);
    g_assert_cmpuint(ev.value, ==, want);
    g_assert_cmpuint(tmem_event_stat(c, "credits"), ==, 1);

    tmem_fill_random(page, PAGE_4K, 9);
    for (i = 0; i <= want; i++) {
        op = tmem_op_put(pp, 9, i, page, PAGE_4K);
        op.flags = VIRTIO_TMEM_OP_F_CREDIT;
        tmem_run(c, &op, 1);
        tmem_assert_status(&op, i < want ? VIRTIO_TMEM_S_OK
                                         : VIRTIO_TMEM_S_NOCREDIT);
    }

    tmem_pool_destroy(c, pp);
    tmem_stop(c);
}

static void register_virtio_tmem_events_test(void)
{
    QOSGraphTestOptions small = {
        .before = tmem_small_setup,
    };
    QOSGraphTestOptions spill = {
        .before = tmem_spill_setup,
    };
    QOSGraphTestOptions hint = {
        .before = tmem_hint_setup,
    };

    qos_add_test("events-evicted", "virtio-tmem", test_evicted, &small);
    qos_add_test("events-reclaim", "virtio-tmem", test_reclaim, &spill);
    qos_add_test("events-hint", "virtio-tmem", test_hint, &hint);
    qos_add_test("events-credits", "virtio-tmem", test_credits, NULL);
}

libqos_init(register_virtio_tmem_events_test);
