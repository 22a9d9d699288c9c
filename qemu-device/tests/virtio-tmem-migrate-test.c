/*
 * QTest testcase for the virtio-tmem device: migration
 *
 * savevm, system reset, loadvm: persistent pages are device state.
 * Once with the queues in the main loop, once in an iothread.
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
#include "libqos/libqos.h"
#include "libqos/virtio-pci.h"
#include "virtio-tmem-util.h"

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

/* The same with the request queues in an iothread, stopped for saving */
static void *tmem_migrate_iothread_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -object iothread,id=io0"
                              " -global virtio-tmem-pci.iothread=io0");
    return tmem_migrate_setup(cmd_line, arg);
}

static void test_migrate(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 2 * MiB / PAGE_4K;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *page = g_malloc(PAGE_4K);
    TmemOp ops[1];
    TmemEvent ev;
    uint64_t events0;
    uint32_t pp, pe;
    char *out;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    pe = tmem_pool_new(c, POOL_E4K);
    tmem_put_random(c, pp, 90, 900, npages);
    memset(page, 0x5a, PAGE_4K);
    ops[0] = tmem_op_put(pe, 91, 0, page, PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_OK);
    /* over a 1 MiB budget, some of the pages are on the spill file */
    g_assert_cmpuint(tmem_stat(c, "pages_spilled"), >, 0);
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, npages);

    /* RECLAIMs may come and go (the store is spilling): count RESETs */
    events0 = tmem_event_stat(c, "reset");
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
    /* the driver is told about pe, once, once the guest runs */
    g_assert_true(tmem_event_wait(c, VIRTIO_TMEM_EVENT_RESET, &ev,
                                  TMEM_TIMEOUT_US));
    g_assert_cmpuint(ev.pool, ==, pe);
    g_assert_cmpuint(ev.value, ==, 0);
    g_assert_cmpuint(tmem_event_stat(c, "reset"), ==, events0 + 1);
    while (tmem_event_next(c, &ev, 200 * 1000)) {
        g_assert_cmpuint(ev.type, !=, VIRTIO_TMEM_EVENT_RESET);
    }
    g_assert_cmpuint(tmem_event_stat(c, "reset"), ==, events0 + 1);
    ops[0] = tmem_op_get(VIRTIO_TMEM_OP_GET, pe, 91, 0, page, PAGE_4K);
    tmem_run(c, ops, 1);
    tmem_assert_status(&ops[0], VIRTIO_TMEM_S_MISS);

    tmem_pool_destroy(c, pp);
    tmem_pool_destroy(c, pe);
    tmem_stop(c);
}

static void register_virtio_tmem_migrate_test(void)
{
    QOSGraphTestOptions migrate = {
        .before = tmem_migrate_setup,
    };
    QOSGraphTestOptions migrate_io = {
        .before = tmem_migrate_iothread_setup,
    };

    qos_add_test("migrate", "virtio-tmem", test_migrate, &migrate);
    qos_add_test("migrate-iothread", "virtio-tmem", test_migrate,
                 &migrate_io);
}

libqos_init(register_virtio_tmem_migrate_test);
