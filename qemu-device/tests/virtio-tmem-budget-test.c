/*
 * QTest testcase for the virtio-tmem device: budget and spill
 *
 * The host's budget over QMP, ephemeral pages dropped under it, and
 * persistent pages spilled to a file and read back; a slow spill disk
 * that must not freeze QEMU, and a hostile guest that must not break
 * the budget.
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
#include "virtio-tmem-old-hash.h"

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
    tmem_wait_stat(c, "pages_persistent", true, 0);     /* freed off-line */
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

/*
 * A slow spill disk (the host library's test delay, 3 s per spill I/O)
 * must stall only the request that waits for it: while one spills, QMP
 * (a stats read and query-status) and an MMIO read of the device's
 * config space (which needs the BQL, as a vCPU exit would) all answer at
 * once.  With iothread= the queues run in that iothread; with spill= and
 * no iothread= the device serves them from an iothread of its own, since
 * in the main loop the request would stall it (docs/qemu-device.md).
 */
#define SLOW_SPILL_MS       "3000"
#define SLOW_SPILL_US       (3000 * 1000)
#define RESPONSIVE_US       (1500 * 1000)

static gint64 tmem_slowest;

static void *tmem_slow_setup(GString *cmd_line, void *arg)
{
    char *dir = g_dir_make_tmp("qtest-tmem-slow.XXXXXX", NULL);

    g_assert_nonnull(dir);
    g_string_append_printf(cmd_line,
                           " -global virtio-tmem-pci.budget=1M"
                           " -global virtio-tmem-pci.spill=%s"
                           " -global virtio-tmem-pci.spill-max=64M", dir);
    if (arg) {
        g_string_append(cmd_line, " -object iothread,id=io0"
                                  " -global virtio-tmem-pci.iothread=io0");
    }
    /* QEMU inherits it; the test unsets it once QEMU runs */
    g_setenv("TMEM_TEST_SPILL_DELAY_MS", SLOW_SPILL_MS, true);
    g_test_queue_destroy(tmem_spill_cleanup, dir);
    return arg;
}

/* While a request runs: how long do QMP and the BQL take to answer? */
static void tmem_probe_responsive(TmemCtx *c)
{
    int i;

    g_usleep(300 * 1000);   /* let the device start on it */
    for (i = 0; i < 4; i++) {
        gint64 t0 = g_get_monotonic_time();

        qobject_unref(tmem_stats(c));
        qtest_qmp_assert_success(c->qts, "{'execute': 'query-status'}");
        qvirtio_config_readq(c->vdev,
                             offsetof(struct virtio_tmem_config, budget));
        tmem_slowest = MAX(tmem_slowest, g_get_monotonic_time() - t0);
        g_usleep(200 * 1000);
    }
}

static void test_slow_spill(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned nfill = 200, nput = 64;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *pages = g_malloc(nput * PAGE_4K);
    TmemOp ops[64];
    uint64_t spills0;
    gint64 t0, took;
    uint32_t pp;
    unsigned i;

    g_unsetenv("TMEM_TEST_SPILL_DELAY_MS");
    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    /* 800 KiB of the 1 MiB budget: no spill yet */
    tmem_put_random(c, pp, 91, 910, nfill);
    spills0 = tmem_stat(c, "spills");

    /* 256 KiB more: this request must spill, at 3 s an I/O */
    for (i = 0; i < nput; i++) {
        tmem_fill_random(pages + i * PAGE_4K, PAGE_4K, 920 + i);
        ops[i] = tmem_op_put(pp, 92, i, pages + i * PAGE_4K, PAGE_4K);
    }
    tmem_slowest = 0;
    c->while_running = tmem_probe_responsive;
    t0 = g_get_monotonic_time();
    tmem_run(c, ops, nput);
    took = g_get_monotonic_time() - t0;
    c->while_running = NULL;
    for (i = 0; i < nput; i++) {
        tmem_assert_status(&ops[i], VIRTIO_TMEM_S_OK);
    }
    g_test_message("the request took %" PRId64 " ms; the slowest answer "
                   "while it ran, %" PRId64 " ms", took / 1000,
                   tmem_slowest / 1000);
    g_assert_cmpuint(tmem_stat(c, "spills"), >, spills0);
    /* the disk really was slow for this request... */
    g_assert_cmpint(took, >=, SLOW_SPILL_US);
    /* ...and nothing else waited for it */
    g_assert_cmpint(tmem_slowest, <, RESPONSIVE_US);
    tmem_stop(c);
}

/*
 * Destroying a pool costs time in proportion to its pages (about 150 ns
 * each here: seconds for a big swap area), so the device does it in the
 * thread pool.  The host library's test delay (3 s per pool flush)
 * stands in for a pool of millions of pages: the POOL_DESTROY request
 * must complete while QMP and the BQL keep answering, the pool must be
 * gone for the guest at once, and its RAM must come back once the
 * destroy has run.
 */
#define SLOW_FLUSH_MS       "3000"

static void *tmem_slow_destroy_setup(GString *cmd_line, void *arg)
{
    if (arg) {
        g_string_append(cmd_line, " -object iothread,id=io0"
                                  " -global virtio-tmem-pci.iothread=io0");
    }
    /* QEMU inherits it; the test unsets it once QEMU runs */
    g_setenv("TMEM_TEST_FLUSH_DELAY_MS", SLOW_FLUSH_MS, true);
    return arg;
}

static void test_slow_destroy(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    TmemOp op, use;
    uint32_t pp;

    g_unsetenv("TMEM_TEST_FLUSH_DELAY_MS");
    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 93, 930, 64);
    g_assert_cmpuint(tmem_stat(c, "ram_used"), >, 0);

    op = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pp);
    tmem_slowest = 0;
    c->while_running = tmem_probe_responsive;
    tmem_run(c, &op, 1);
    c->while_running = NULL;
    tmem_assert_status(&op, VIRTIO_TMEM_S_OK);
    g_test_message("slowest answer while the pool was destroyed: %" PRId64
                   " ms", tmem_slowest / 1000);
    g_assert_cmpint(tmem_slowest, <, RESPONSIVE_US);

    /* gone for the guest at once */
    use = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp, 93, 0);
    tmem_run(c, &use, 1);
    tmem_assert_status(&use, VIRTIO_TMEM_S_BADPOOL);

    /* and its pages leave the host's RAM when the destroy has run */
    tmem_wait_stat(c, "ram_used", true, 0);
    tmem_stop(c);
}

/*
 * A hostile guest, with spill on (data) and off: it cannot make the host
 * keep more than its budget, nor make QEMU stop answering.
 *  - one zeroed page under 32768 fresh keys (no data RAM, only index);
 *  - keys that collided under the store's old hash;
 *  - storms of pool creation and destruction;
 *  - maximal requests: max-ops incompressible 64 KiB pages at once.
 * The store's ram_used must stay within the budget (these puts are not
 * credited, so nothing may go over), and the QEMU process's RSS may
 * grow by at most the budget, the store's fixed buffers and a slack for
 * QEMU's own allocations (HOSTILE_SLACK).
 */
#define HOSTILE_BUDGET      (1 * MiB)
#define HOSTILE_SLACK       (16 * MiB)
#define HOSTILE_COLLIDING   2048

static void *tmem_hostile_setup(GString *cmd_line, void *arg)
{
    g_string_append_printf(cmd_line, " -global virtio-tmem-pci.budget=%llu",
                           (unsigned long long)HOSTILE_BUDGET);
    if (arg) {
        char *dir = g_dir_make_tmp("qtest-tmem-hostile.XXXXXX", NULL);

        g_assert_nonnull(dir);
        g_string_append_printf(cmd_line,
                               " -global virtio-tmem-pci.spill=%s"
                               " -global virtio-tmem-pci.spill-max=256M",
                               dir);
        g_test_queue_destroy(tmem_spill_cleanup, dir);
    }
    return arg;
}

/*
 * The QEMU process's resident set, in bytes, but for guest RAM: the
 * test writes its requests there, which the guest's own memory would
 * hold anyway.  Guest RAM is the mapping of exactly its size.
 */
static uint64_t tmem_qemu_rss(TmemCtx *c)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps",
                                            (int)qtest_pid(c->qts));
    g_autofree char *text = NULL;
    QDict *rsp = qtest_qmp(c->qts, "{'execute': "
                           "'query-memory-size-summary'}");
    uint64_t ram_kb = qdict_get_int(qdict_get_qdict(rsp, "return"),
                                    "base-memory") / 1024;
    uint64_t rss = 0, size = 0, kb;
    char **lines, **l;

    qobject_unref(rsp);
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (l = lines; *l; l++) {
        if (sscanf(*l, "Size: %" SCNu64 " kB", &kb) == 1) {
            size = kb;
        } else if (sscanf(*l, "Rss: %" SCNu64 " kB", &kb) == 1 &&
                   size != ram_kb) {
            rss += kb * 1024;
        }
    }
    g_strfreev(lines);
    return rss;
}

static void tmem_check_bounded(TmemCtx *c, uint64_t rss0, const char *when)
{
    uint64_t used = tmem_stat(c, "ram_used");
    uint64_t fixed = tmem_stat(c, "ram_fixed");
    uint64_t rss = tmem_qemu_rss(c);

    g_test_message("%s: ram_used %" PRIu64 ", RSS +%" PRId64 " KiB", when,
                   used, ((int64_t)rss - (int64_t)rss0) / 1024);
    g_assert_cmpuint(used, <=, HOSTILE_BUDGET);
    g_assert_cmpint((int64_t)rss - (int64_t)rss0, <=,
                    (int64_t)(HOSTILE_BUDGET + fixed + HOSTILE_SLACK));
}

/*
 * @nops PUTs of one zeroed @len page each, under fresh keys of @oid
 * from @index on (or at @indices, if given), in one request whose data
 * is set by qtest_memset rather than sent.  Returns the PUTs accepted.
 */
static unsigned tmem_put_zeros(TmemCtx *c, uint32_t pool, uint64_t oid,
                               uint32_t index, const uint32_t *indices,
                               unsigned nops, uint32_t len)
{
    QVirtQueue *vq = c->vq[1];
    size_t hlen = sizeof(struct virtio_tmem_req) +
                  nops * sizeof(struct virtio_tmem_op);
    size_t rlen = hlen + (size_t)nops * len;
    size_t wlen = sizeof(struct virtio_tmem_resp) +
                  nops * sizeof(struct virtio_tmem_status);
    g_autofree uint8_t *hdr = g_malloc0(hlen);
    g_autofree uint8_t *wbuf = g_malloc(wlen);
    struct virtio_tmem_req *req = (void *)hdr;
    uint64_t raddr = guest_alloc(c->alloc, rlen);
    uint64_t waddr = guest_alloc(c->alloc, wlen);
    uint32_t rseg = rlen, wseg = wlen, head;
    unsigned i, ok = 0;

    req->nops = cpu_to_le16(nops);
    for (i = 0; i < nops; i++) {
        struct virtio_tmem_op *op = (void *)(hdr + sizeof(*req) +
                                             i * sizeof(*op));

        op->type = VIRTIO_TMEM_OP_PUT;
        op->pool = cpu_to_le32(pool);
        /* as tmem_op_key() makes them */
        op->oid[0] = cpu_to_le64(oid);
        op->oid[1] = cpu_to_le64(oid ^ 0x5a5a5a5a5a5a5a5aull);
        op->oid[2] = cpu_to_le64(0x1234);
        op->index = cpu_to_le32(indices ? indices[i] : index + i);
        op->arg = cpu_to_le32(len == PAGE_64K ? 16 : 12);
    }
    qtest_bufwrite(c->qts, raddr, hdr, hlen);
    qtest_memset(c->qts, raddr + hlen, 0, rlen - hlen);
    head = tmem_add_chain(c, vq, raddr, &rseg, 1, waddr, &wseg, 1);
    g_assert_cmpuint(tmem_kick_wait(c, vq, head), ==, wlen);
    qtest_bufread(c->qts, waddr, wbuf, wlen);
    for (i = 0; i < nops; i++) {
        uint8_t st = wbuf[sizeof(struct virtio_tmem_resp) +
                          i * sizeof(struct virtio_tmem_status)];

        g_assert_true(st == VIRTIO_TMEM_S_OK || st == VIRTIO_TMEM_S_NOSPACE);
        ok += st == VIRTIO_TMEM_S_OK;
    }
    guest_free(c->alloc, raddr);
    guest_free(c->alloc, waddr);
    return ok;
}

static void tmem_probe_qmp(TmemCtx *c)
{
    gint64 t0 = g_get_monotonic_time();

    qobject_unref(tmem_stats(c));
    tmem_slowest = MAX(tmem_slowest, g_get_monotonic_time() - t0);
}

static void test_hostile(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned nreq = 128, nops = DEF_MAX_OPS;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *big = g_malloc(nops * PAGE_64K);
    g_autofree TmemOp *ops = g_new0(TmemOp, nops);
    uint32_t pp, pbig, pools[DEF_MAX_OPS];
    unsigned r, i, ok = 0, round;
    uint64_t rss0;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    /* qtest's own buffers for a maximal write: not the device's */
    {
        uint64_t a = guest_alloc(alloc, (size_t)nops * PAGE_64K);

        tmem_fill_random(big, (size_t)nops * PAGE_64K, 1);
        qtest_bufwrite(c->qts, a, big, (size_t)nops * PAGE_64K);
        guest_free(alloc, a);
    }
    rss0 = tmem_qemu_rss(c);

    /* zeroed pages under fresh keys: index only */
    for (r = 0; r < nreq; r++) {
        ok += tmem_put_zeros(c, pp, 0x2e40, r * nops, NULL, nops, PAGE_4K);
    }
    g_test_message("%u of %u zeroed pages under fresh keys accepted",
                   ok, nreq * nops);
    g_assert_cmpuint(ok, <, nreq * nops);      /* the budget said no */
    tmem_check_bounded(c, rss0, "zeroed pages");
    /* ...and once they go, the index gives their RAM back */
    {
        TmemOp fl = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp, 0x2e40, 0);

        tmem_run(c, &fl, 1);
        tmem_assert_status(&fl, VIRTIO_TMEM_S_OK);
        g_assert_cmpuint(fl.value, ==, ok);
        g_assert_cmpuint(tmem_stat(c, "ram_used"), ==, 0);
    }

    /*
     * Keys that all fell in one hash chain under the store's old, unkeyed
     * hash (the guest guesses the store's pool id: 0, the first made).
     * t_hash_hostile measures the chains; here the device, end to end,
     * must take them within budget while QMP answers.
     */
    {
        uint64_t oid[3] = { 0x2e42, 0x2e42 ^ 0x5a5a5a5a5a5a5a5aull, 0x1234 };
        g_autofree uint32_t *idx = g_new(uint32_t, HOSTILE_COLLIDING);
        TmemOp fl = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp, 0x2e42, 0);

        g_assert_cmpuint(old_hash_pick_pages(0, oid, idx, HOSTILE_COLLIDING),
                         ==, HOSTILE_COLLIDING);
        ok = 0;
        tmem_slowest = 0;
        c->while_running = tmem_probe_qmp;
        for (i = 0; i < HOSTILE_COLLIDING; i += nops) {
            ok += tmem_put_zeros(c, pp, 0x2e42, 0, idx + i, nops, PAGE_4K);
        }
        c->while_running = NULL;
        g_test_message("%u of %u colliding keys accepted; slowest stats "
                       "read meanwhile %" PRId64 " ms", ok, HOSTILE_COLLIDING,
                       tmem_slowest / 1000);
        g_assert_cmpuint(ok, >, 0);
        g_assert_cmpint(tmem_slowest, <, RESPONSIVE_US);
        tmem_check_bounded(c, rss0, "colliding keys");
        tmem_run(c, &fl, 1);
        tmem_assert_status(&fl, VIRTIO_TMEM_S_OK);
        g_assert_cmpuint(fl.value, ==, ok);
        g_assert_cmpuint(tmem_stat(c, "ram_used"), ==, 0);
    }

    /* pool storms: as many pools as one request can make, then gone */
    for (round = 0; round < 16; round++) {
        for (i = 0; i < nops / 2; i++) {
            ops[i] = tmem_op_arg(VIRTIO_TMEM_OP_POOL_NEW, POOL_P4K);
        }
        g_assert_cmpuint(tmem_run_q(c, 1, ops, nops / 2), ==, nops / 2);
        for (i = 0; i < nops / 2; i++) {
            tmem_assert_status2(&ops[i], VIRTIO_TMEM_S_OK,
                                VIRTIO_TMEM_S_NOSPACE);
            pools[i] = ops[i].status == VIRTIO_TMEM_S_OK ? ops[i].value :
                       BAD_POOL;
        }
        for (i = 0; i < nops / 2; i++) {
            ops[i] = tmem_op_pool(VIRTIO_TMEM_OP_POOL_DESTROY, pools[i]);
        }
        g_assert_cmpuint(tmem_run_q(c, 1, ops, nops / 2), ==, nops / 2);
    }
    tmem_check_bounded(c, rss0, "pool storms");

    /* maximal requests of incompressible 64 KiB pages, QMP asked meanwhile */
    pbig = tmem_pool_new(c, POOL_P64K);
    tmem_slowest = 0;
    for (round = 0; round < 4; round++) {
        for (i = 0; i < nops; i++) {
            tmem_fill_random(big + (size_t)i * PAGE_64K, PAGE_64K,
                             round * nops + i);
            ops[i] = tmem_op_put(pbig, 0x2e41, round * nops + i,
                                 big + (size_t)i * PAGE_64K, PAGE_64K);
        }
        c->while_running = tmem_probe_qmp;
        g_assert_cmpuint(tmem_run_q(c, 1, ops, nops), ==, nops);
        c->while_running = NULL;
        for (i = 0; i < nops; i++) {
            tmem_assert_status2(&ops[i], VIRTIO_TMEM_S_OK,
                                VIRTIO_TMEM_S_NOSPACE);
        }
    }
    g_test_message("slowest stats read during a maximal request: %" PRId64
                   " ms", tmem_slowest / 1000);
    g_assert_cmpint(tmem_slowest, <, RESPONSIVE_US);
    tmem_check_bounded(c, rss0, "maximal requests");
    if (data) {
        g_assert_cmpuint(tmem_stat(c, "spills"), >, 0);
    }
    tmem_stop(c);
}

/*
 * FLUSH_OBJECT of an object of more than 4096 pages, and FLUSH_POOL in a
 * store of more than 4096, cost time in proportion to their pages too;
 * the library's test delay (3 s a flush) stands in for millions of
 * them.  Each must complete while QMP and the BQL keep answering, with
 * its count, and be done for the GET after it in the same request; the
 * pool stays usable.
 */
static void tmem_flush_slowly(TmemCtx *c, TmemOp *op, uint32_t want)
{
    gint64 t0 = g_get_monotonic_time(), took;

    tmem_slowest = 0;
    c->while_running = tmem_probe_responsive;
    tmem_run(c, op, 2);
    c->while_running = NULL;
    took = g_get_monotonic_time() - t0;
    tmem_assert_status(&op[0], VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(op[0].value, ==, want);
    tmem_assert_status(&op[1], VIRTIO_TMEM_S_MISS);
    g_test_message("op %u took %" PRId64 " ms; the slowest answer while it "
                   "ran, %" PRId64 " ms", op->type, took / 1000,
                   tmem_slowest / 1000);
    /* the flush really was slow... */
    g_assert_cmpint(took, >=, atoi(SLOW_FLUSH_MS) * 1000);
    /* ...and nothing else waited for it */
    g_assert_cmpint(tmem_slowest, <, RESPONSIVE_US);
}

static void test_slow_flush(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned nbig = 4100;
    g_autofree uint8_t *zero = g_malloc0(PAGE_4K);
    g_autofree uint8_t *buf = g_malloc(PAGE_4K);
    TmemCtx ctx, *c = &ctx;
    TmemOp ops[64], op[2];
    unsigned i, j, n;
    uint32_t pp, pq;
    uint64_t used;

    g_unsetenv("TMEM_TEST_FLUSH_DELAY_MS");
    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    pq = tmem_pool_new(c, POOL_P4K);
    /* same-filled pages under one object: one too many to flush inline */
    for (i = 0; i < nbig; i += n) {
        n = MIN(MIN(nbig - i, c->max_ops), ARRAY_SIZE(ops));
        for (j = 0; j < n; j++) {
            ops[j] = tmem_op_put(pp, 94, i + j, zero, PAGE_4K);
        }
        tmem_run(c, ops, n);
        for (j = 0; j < n; j++) {
            tmem_assert_status(&ops[j], VIRTIO_TMEM_S_OK);
        }
    }
    tmem_put_random(c, pq, 95, 950, BATCH);
    used = tmem_stat(c, "ram_used");

    /* a small pool, but the store is big */
    op[0] = tmem_op_pool(VIRTIO_TMEM_OP_FLUSH_POOL, pq);
    op[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pq, 95, 0, buf, PAGE_4K);
    tmem_flush_slowly(c, op, BATCH);
    op[0] = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_OBJECT, pp, 94, 0);
    op[1] = tmem_op_get(VIRTIO_TMEM_OP_GET, pp, 94, nbig - 1, buf, PAGE_4K);
    tmem_flush_slowly(c, op, nbig);
    g_assert_cmpuint(tmem_stat(c, "ram_used"), <, used);

    tmem_put_random(c, pq, 96, 960, BATCH);
    tmem_check_random(c, pq, 96, 960, BATCH);
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
    QOSGraphTestOptions slow_destroy = {
        .before = tmem_slow_destroy_setup,
    };
    QOSGraphTestOptions slow_flush_io = {
        .before = tmem_slow_destroy_setup,
        .arg = (void *)"iothread",
    };
    QOSGraphTestOptions slow_io = {
        .before = tmem_slow_setup,
        .arg = (void *)"iothread",
    };
    QOSGraphTestOptions slow_io_own = {
        .before = tmem_slow_setup,
    };
    QOSGraphTestOptions hostile = {
        .before = tmem_hostile_setup,
    };
    QOSGraphTestOptions hostile_spill = {
        .before = tmem_hostile_setup,
        .arg = (void *)"spill",
    };

    qos_add_test("budget", "virtio-tmem", test_budget, NULL);
    qos_add_test("spill", "virtio-tmem", test_spill, &spill);
    qos_add_test("properties", "virtio-tmem", test_properties, &props);
    qos_add_test("slow-spill-iothread", "virtio-tmem", test_slow_spill,
                 &slow_io);
    qos_add_test("slow-spill", "virtio-tmem", test_slow_spill,
                 &slow_io_own);
    qos_add_test("slow-destroy", "virtio-tmem", test_slow_destroy,
                 &slow_destroy);
    qos_add_test("slow-flush", "virtio-tmem", test_slow_flush,
                 &slow_destroy);
    qos_add_test("slow-flush-iothread", "virtio-tmem", test_slow_flush,
                 &slow_flush_io);
    qos_add_test("hostile", "virtio-tmem", test_hostile, &hostile);
    qos_add_test("hostile-spill", "virtio-tmem", test_hostile,
                 &hostile_spill);
}

libqos_init(register_virtio_tmem_budget_test);
