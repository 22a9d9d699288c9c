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
#include "qobject/qnum.h"
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

/*
 * Properties: nonsense budgets and unbounded limits are refused with a
 * message, at run time (qom-set) and on device_add; large values read
 * back exactly over QMP and HMP, past the 2^53 where a double would
 * round them.
 */

#define TMEM_MAX_BUDGET         ((uint64_t)1 << 56)
#define TMEM_MAX_LIMIT          (256u * 4096u)  /* max-credits, hint-window */

static void *tmem_props_setup(GString *cmd_line, void *arg)
{
    /* device_add leaves a device behind: no later test may reuse this */
    g_string_append(cmd_line, " -name tmem-props");
    return arg;
}

/* qom-set @prop to @value; NULL if it took, else the error's text. */
static char *tmem_try_set(TmemCtx *c, const char *prop, uint64_t value)
{
    QDict *rsp = qtest_qmp(c->qts, "{'execute': 'qom-set', 'arguments': "
                           "{'path': %s, 'property': %s, 'value': %" PRIu64
                           "}}", c->tmem->qom_path, prop, value);
    char *err = NULL;

    if (qdict_haskey(rsp, "error")) {
        err = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
        g_test_message("qom-set %s %" PRIu64 ": %s", prop, value, err);
    }
    qobject_unref(rsp);
    return err;
}

static void tmem_set_refused(TmemCtx *c, const char *prop, uint64_t value,
                             const char *why)
{
    g_autofree char *err = tmem_try_set(c, prop, value);

    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err ? err : "", why));
}

/* device_add with @prop = @value must fail, saying @why. */
static void tmem_add_refused(TmemCtx *c, const char *prop, uint64_t value,
                             const char *why)
{
    QDict *rsp = qtest_qmp(c->qts, "{'execute': 'device_add', 'arguments': "
                           "{'driver': 'virtio-tmem-pci', 'id': 'bad', "
                           "'addr': '05.0', %s: %" PRIu64 "}}", prop, value);
    const char *err = "";

    g_assert_true(qdict_haskey(rsp, "error"));
    if (qdict_haskey(rsp, "error")) {
        err = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
    }
    g_test_message("device_add %s=%" PRIu64 ": %s", prop, value, err);
    g_assert_nonnull(strstr(err, why));
    qobject_unref(rsp);
}

static uint64_t tmem_get_budget(TmemCtx *c)
{
    /* qtest_qmp_assert_success_ref() only hands back an object */
    QDict *rsp = qtest_qmp(c->qts, "{'execute': 'qom-get', 'arguments': "
                           "{'path': %s, 'property': 'budget'}}",
                           c->tmem->qom_path);
    QNum *n = qobject_to(QNum, qdict_get(rsp, "return"));
    uint64_t v = 0;

    g_assert_nonnull(n);
    g_assert_true(qnum_get_try_uint(n, &v));
    qobject_unref(rsp);
    return v;
}

/* The budget, exact, everywhere it is shown */
static void tmem_check_budget(TmemCtx *c, uint64_t want)
{
    g_autofree char *dec = g_strdup_printf("%" PRIu64, want);
    g_autofree char *line = g_strdup_printf("of budget %" PRIu64 " bytes",
                                            want);
    g_autofree char *cmd = g_strdup_printf("qom-get %s budget",
                                           c->tmem->qom_path);
    char *hmp;

    g_assert_cmpuint(tmem_get_budget(c), ==, want);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, want);
    g_assert_cmpuint(qvirtio_config_readq(c->vdev,
                     offsetof(struct virtio_tmem_config, budget)), ==, want);
    hmp = qtest_hmp(c->qts, "%s", cmd);
    g_strstrip(hmp);
    g_assert_cmpstr(hmp, ==, dec);
    g_free(hmp);
    hmp = qtest_hmp(c->qts, "info tmem");
    g_assert_nonnull(strstr(hmp, line));
    g_free(hmp);
}

static void test_properties(void *obj, void *data, QGuestAllocator *alloc)
{
    /* 2^56 - 1 is no double: the nearest is 2^56 */
    const uint64_t odd_big = TMEM_MAX_BUDGET - 1;
    const uint64_t tib1 = (uint64_t)1 << 40 | 1;
    TmemCtx ctx, *c = &ctx;
    char *err;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    g_assert_cmpuint((double)odd_big, !=, odd_big);

    /* budget: 0, or one page to 2^56 bytes */
    tmem_set_refused(c, "budget", 1, "budget must be");
    tmem_set_refused(c, "budget", 4095, "budget must be");
    tmem_set_refused(c, "budget", TMEM_MAX_BUDGET + 1, "budget must be");
    tmem_set_refused(c, "budget", UINT64_MAX, "budget must be");
    tmem_check_budget(c, DEF_BUDGET);
    tmem_set_budget(c, 0);
    tmem_check_budget(c, 0);
    tmem_set_budget(c, 4096);
    tmem_check_budget(c, 4096);
    tmem_set_budget(c, tib1);
    tmem_check_budget(c, tib1);
    tmem_set_budget(c, odd_big);
    tmem_check_budget(c, odd_big);
    tmem_set_budget(c, TMEM_MAX_BUDGET);
    tmem_check_budget(c, TMEM_MAX_BUDGET);
    tmem_set_budget(c, DEF_BUDGET);
    tmem_check_budget(c, DEF_BUDGET);
    tmem_check_put_get(c, tmem_pool_new(c, POOL_P4K), PAGE_4K, 410);

    /* the limits are fixed once the device runs */
    err = tmem_try_set(c, "max-credits", 16);
    g_assert_nonnull(err);
    g_free(err);
    err = tmem_try_set(c, "hint-window", 16);
    g_assert_nonnull(err);
    g_free(err);

    /* and a new device with them out of bounds is refused */
    tmem_add_refused(c, "max-credits", TMEM_MAX_LIMIT + 1,
                     "max-credits must be");
    tmem_add_refused(c, "max-credits", UINT32_MAX, "max-credits must be");
    tmem_add_refused(c, "max-credits", 0, "max-credits must be");
    tmem_add_refused(c, "hint-window", TMEM_MAX_LIMIT + 1,
                     "hint-window must be");
    tmem_add_refused(c, "hint-window", UINT32_MAX, "hint-window must be");
    tmem_add_refused(c, "budget", 100, "budget must be");
    tmem_add_refused(c, "budget", TMEM_MAX_BUDGET + 1, "budget must be");
    /* the bounds themselves are allowed */
    qtest_qmp_assert_success(c->qts, "{'execute': 'device_add', 'arguments': "
                             "{'driver': 'virtio-tmem-pci', 'id': 'big', "
                             "'addr': '06.0', 'max-credits': %u, "
                             "'hint-window': %u, 'budget': %" PRIu64 "}}",
                             TMEM_MAX_LIMIT, TMEM_MAX_LIMIT,
                             TMEM_MAX_BUDGET);
    qtest_qmp_assert_success(c->qts, "{'execute': 'device_add', 'arguments': "
                             "{'driver': 'virtio-tmem-pci', 'id': 'nocred', "
                             "'addr': '07.0', 'credits': false, "
                             "'max-credits': 0, 'hint-window': 0}}");
    tmem_stop(c);
}

static void register_virtio_tmem_budget_test(void)
{
    QOSGraphTestOptions spill = {
        .before = tmem_spill_setup,
    };
    QOSGraphTestOptions props = {
        .before = tmem_props_setup,
    };

    qos_add_test("budget", "virtio-tmem", test_budget, NULL);
    qos_add_test("spill", "virtio-tmem", test_spill, &spill);
    qos_add_test("properties", "virtio-tmem", test_properties, &props);
}

libqos_init(register_virtio_tmem_budget_test);
