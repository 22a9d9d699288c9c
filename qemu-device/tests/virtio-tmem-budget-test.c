/*
 * QTest testcase for the virtio-tmem device: budget and spill
 *
 * The host's budget over QMP, ephemeral pages dropped under it, and
 * persistent pages spilled to a file and read back.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
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
            tmem_fill_random(pages + i * PAGE_4K, PAGE_4K, r * BATCH + i);
            ops[i] = tmem_op_put(pe, 40, r * BATCH + i, pages + i * PAGE_4K,
                                 PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status2(&ops[i], VIRTIO_TMEM_S_OK,
                                VIRTIO_TMEM_S_NOSPACE);
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
            ops[i] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 40, r * BATCH + i,
                                 back + i * PAGE_4K, PAGE_4K);
        }
        tmem_run(c, ops, BATCH);
        for (i = 0; i < BATCH; i++) {
            tmem_assert_status2(&ops[i], VIRTIO_TMEM_S_OK, VIRTIO_TMEM_S_MISS);
            if (ops[i].status == VIRTIO_TMEM_S_OK) {
                tmem_fill_random(pages, PAGE_4K, r * BATCH + i);
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
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 40, npages - 1, back, PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_MISS);

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

static void register_virtio_tmem_budget_test(void)
{
    QOSGraphTestOptions spill = {
        .before = tmem_spill_setup,
    };

    qos_add_test("budget", "virtio-tmem", test_budget, NULL);
    qos_add_test("spill", "virtio-tmem", test_spill, &spill);
}

libqos_init(register_virtio_tmem_budget_test);
