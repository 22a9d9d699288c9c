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

/*
 * Test: a bad stream fails the load cleanly.  The source migrates to a
 * file; the test patches the device's section in copies of it and loads
 * each into a fresh destination (-incoming defer, exit-on-error off),
 * which must report the migration failed, print why, and live on.  The
 * unpatched stream must load, so that the failures are the patches'.
 *
 * The section's pools, as virtio-tmem-migration.c writes them, with slot
 * 0 an empty persistent pool and slot 1 one page under oid TMEM_MAGIC:
 *
 *   credits npools | 1 gen 12 0 | 1 gen 12 1 oid[3] index page 0
 *
 * The big-endian TMEM_MAGIC is found in the file, and every field
 * around it is checked before any is changed.
 */

#define TMEM_MAGIC          0x746d656d5354524dull   /* "tmemSTRM" */
#define TMEM_MAX_CREDITS    DEF_MAX_CREDITS

/* Guest features of the source: no ephemeral pools, no 64 KiB pages */
#define TMEM_FEATURES_P4K  ((1ull << VIRTIO_F_VERSION_1) |      \
                            (1ull << VIRTIO_RING_F_EVENT_IDX) | \
                            (1ull << VIRTIO_TMEM_F_CREDITS))

typedef struct TmemStreamCtx {
    char *dir;
    char *cmd_line;     /* the source's, for the destinations */
} TmemStreamCtx;

static void tmem_stream_cleanup(void *opaque)
{
    TmemStreamCtx *sc = opaque;
    GDir *d = g_dir_open(sc->dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *f = g_build_filename(sc->dir, name, NULL);

        unlink(f);
    }
    if (d) {
        g_dir_close(d);
    }
    g_rmdir(sc->dir);
    g_free(sc->dir);
    g_free(sc->cmd_line);
    g_free(sc);
}

static void *tmem_stream_setup(GString *cmd_line, void *arg)
{
    TmemStreamCtx *sc = g_new0(TmemStreamCtx, 1);

    sc->dir = g_dir_make_tmp("qtest-tmem-stream.XXXXXX", NULL);
    g_assert_nonnull(sc->dir);
    g_string_append_printf(cmd_line,
                           " -global virtio-tmem-pci.budget=1M"
                           " -global virtio-tmem-pci.spill=%s"
                           " -global virtio-tmem-pci.spill-max=64M",
                           sc->dir);
    /* the source ends up migrated: no later test may reuse it */
    g_string_append(cmd_line, " -name tmem-stream");
    sc->cmd_line = g_strdup(cmd_line->str);
    g_test_queue_destroy(tmem_stream_cleanup, sc);
    return sc;
}

/*
 * Load @bytes into a new destination.  Its stderr goes to a log, whose
 * text is returned in *@log.  Returns the destination's final status;
 * the destination must still answer QMP, and must not die of a signal
 * when it is shut down (qtest_quit checks).
 */
static char *tmem_load_stream(TmemStreamCtx *sc, const char *what,
                              const uint8_t *bytes, size_t len, char **log)
{
    g_autofree char *path = g_build_filename(sc->dir, "patched", NULL);
    g_autofree char *logf = g_build_filename(sc->dir, "dst.log", NULL);
    QTestState *dst;
    char *st;

    g_test_message("loading the stream %s", what);
    g_assert_true(g_file_set_contents(path, (const char *)bytes, len, NULL));
    dst = tmem_migrate_from_file(sc->cmd_line, path, logf, &st);
    qtest_quit(dst);
    g_assert_true(g_file_get_contents(logf, log, NULL, NULL));
    if (**log) {
        g_test_message("destination said: %s", *log);
    }
    unlink(path);
    return st;
}

/* A patched copy of the stream must fail to load, saying @why. */
static void tmem_expect_bad(TmemStreamCtx *sc, const char *what,
                            const uint8_t *bytes, size_t len,
                            const char *why)
{
    g_autofree char *log = NULL;
    g_autofree char *st = tmem_load_stream(sc, what, bytes, len, &log);

    g_assert_cmpstr(st, ==, "failed");
    if (why) {
        g_assert_nonnull(strstr(log, why));
    }
}

static uint32_t get_be32(const uint8_t *p)
{
    return ldl_be_p(p);
}

static void test_bad_stream(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemStreamCtx *sc = data;
    g_autofree char *src = g_build_filename(sc->dir, "stream", NULL);
    g_autofree uint8_t *page = g_malloc(PAGE_4K);
    g_autofree uint8_t *buf = NULL;
    g_autofree char *st = NULL;
    g_autofree char *log = NULL;
    TmemCtx ctx, *c = &ctx;
    uint8_t *p, *x = NULL, *copy;
    uint32_t credits, pp0, pp1;
    size_t len, off;
    TmemOp op;

    tmem_init(c, obj, alloc, TMEM_FEATURES_P4K);
    pp0 = tmem_pool_new(c, POOL_P4K);
    pp1 = tmem_pool_new(c, POOL_P4K);
    g_assert_cmpuint(pp0, !=, pp1);
    op = tmem_op_arg(VIRTIO_TMEM_OP_CREDITS, 5);
    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_OK);
    credits = op.value + c->last_credits;
    g_assert_cmpuint(credits, >, 0);
    tmem_fill_random(page, PAGE_4K, 77);
    op = tmem_op_put(pp1, TMEM_MAGIC, 3, page, PAGE_4K);
    tmem_run(c, &op, 1);
    tmem_assert_status(&op, VIRTIO_TMEM_S_OK);

    st = tmem_migrate_to_file(c->qts, src);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_true(g_file_get_contents(src, (char **)&buf, &len, NULL));

    /* the last big-endian TMEM_MAGIC is slot 1's page's oid[0] */
    for (p = buf; p + 8 <= buf + len; p++) {
        p = memchr(p, 0x74, buf + len - 8 - p);
        if (!p) {
            break;
        }
        if (ldq_be_p(p) == TMEM_MAGIC) {
            x = p;
        }
    }
    g_assert_nonnull(x);
    off = x - buf;
    g_assert_cmpuint(off, >=, 18);
    g_assert_cmpuint(off + 4125, <=, len);
    g_assert_cmpuint(get_be32(x - 18), ==, credits);    /* credits */
    g_assert_cmpuint(get_be32(x - 14), ==, 2);          /* npools */
    g_assert_cmpuint(x[-10], ==, VIRTIO_TMEM_POOL_PERSISTENT); /* slot 0 */
    g_assert_cmpuint(x[-7], ==, 12);
    g_assert_cmpuint(x[-6], ==, 0);                     /* its end */
    g_assert_cmpuint(x[-5], ==, VIRTIO_TMEM_POOL_PERSISTENT); /* slot 1 */
    g_assert_cmpuint(x[-2], ==, 12);
    g_assert_cmpuint(x[-1], ==, 1);                     /* a page */
    g_assert_cmpuint(get_be32(x + 24), ==, 3);          /* its index */
    g_assert_cmpmem(x + 28, PAGE_4K, page, PAGE_4K);
    g_assert_cmpuint(x[28 + PAGE_4K], ==, 0);           /* its end */

    /* The stream as written loads */
    g_free(st);
    st = tmem_load_stream(sc, "as written", buf, len, &log);
    g_assert_cmpstr(st, ==, "completed");

    copy = g_malloc(len);
#define TMEM_PATCHED(what, why, patch)                                  \
    do {                                                                \
        memcpy(copy, buf, len);                                         \
        patch;                                                          \
        tmem_expect_bad(sc, what, copy, len, why);                      \
    } while (0)

    /* more credits than max-credits lets a driver hold */
    TMEM_PATCHED("with credits above max-credits", "max-credits",
                 stl_be_p(copy + off - 18, TMEM_MAX_CREDITS + 1));
    TMEM_PATCHED("with credits of 2^32 - 1", "max-credits",
                 stl_be_p(copy + off - 18, UINT32_MAX));
    /* a count of pools no device can hold */
    TMEM_PATCHED("with 2^32 - 1 pools", "pools arriving",
                 stl_be_p(copy + off - 14, UINT32_MAX));
    /* a marker that is neither "a page" nor "the end" */
    TMEM_PATCHED("with marker 2 ending a pool", "marker",
                 copy[off + 28 + PAGE_4K] = 2);
    TMEM_PATCHED("with marker 0xff before a page", "marker",
                 copy[off - 1] = 0xff);
    TMEM_PATCHED("with marker 2 ending an empty pool", "marker",
                 copy[off - 6] = 2);
    /* pools of a kind the guest did not negotiate */
    TMEM_PATCHED("with a 64 KiB pool", "not negotiated",
                 copy[off - 7] = 16);
    TMEM_PATCHED("with pool kind 3", "kind",
                 copy[off - 10] = 3);
    /* an ephemeral pool has no page list: its end marker goes too */
    memcpy(copy, buf, off - 10);
    copy[off - 10] = VIRTIO_TMEM_POOL_EPHEMERAL;
    memcpy(copy + off - 9, buf + off - 9, 3);
    memcpy(copy + off - 6, buf + off - 5, len - (off - 5));
    tmem_expect_bad(sc, "with an ephemeral pool", copy, len - 1,
                    "not negotiated");
    /* cut short inside a page */
    tmem_expect_bad(sc, "cut short", buf, off + 100, NULL);
#undef TMEM_PATCHED
    g_free(copy);
    unlink(src);
}

/*
 * Test: a persistent page that cannot be read back fails the migration
 * on the source, rather than travel as a pool without it.  The spill
 * file is truncated behind the store's back (it is unlinked, so through
 * /proc/PID/fd), so every spilled page reads back as an I/O error.
 */
static bool tmem_truncate_spill(QTestState *qts, const char *dir)
{
    g_autofree char *fds = g_strdup_printf("/proc/%d/fd", qtest_pid(qts));
    GDir *d = g_dir_open(fds, 0, NULL);
    const char *name;
    bool done = false;

    g_assert_nonnull(d);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *fd = g_build_filename(fds, name, NULL);
        g_autofree char *target = g_file_read_link(fd, NULL);
        int f;

        if (!target || !g_str_has_prefix(target, dir) ||
            target[strlen(dir)] != '/') {
            continue;
        }
        f = open(fd, O_WRONLY);
        g_assert_cmpint(f, >=, 0);
        g_assert_cmpint(ftruncate(f, 0), ==, 0);
        close(f);
        g_test_message("truncated %s", target);
        done = true;
    }
    g_dir_close(d);
    return done;
}

static void test_save_unreadable(void *obj, void *data,
                                 QGuestAllocator *alloc)
{
    TmemStreamCtx *sc = data;
    const unsigned npages = 2 * MiB / PAGE_4K;
    g_autofree char *path = g_build_filename(sc->dir, "stream", NULL);
    g_autofree char *st = NULL;
    TmemCtx ctx, *c = &ctx;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 92, 920, npages);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);
    g_assert_cmpuint(tmem_stat(c, "pages_spilled"), >, 0);
    g_assert_true(tmem_truncate_spill(c->qts, sc->dir));

    st = tmem_migrate_to_file(c->qts, path);
    g_assert_cmpstr(st, ==, "failed");
    g_assert_cmpuint(tmem_stat(c, "get_errors"), >, 0);
    /* the source lives on, and its pages in RAM with it */
    qtest_qmp_assert_success(c->qts, "{'execute': 'query-status'}");
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, npages);
    unlink(path);
}

static void register_virtio_tmem_migrate_test(void)
{
    QOSGraphTestOptions stream = {
        .before = tmem_stream_setup,
    };
    QOSGraphTestOptions migrate = {
        .before = tmem_migrate_setup,
    };
    QOSGraphTestOptions migrate_io = {
        .before = tmem_migrate_iothread_setup,
    };

    qos_add_test("migrate", "virtio-tmem", test_migrate, &migrate);
    qos_add_test("migrate-iothread", "virtio-tmem", test_migrate,
                 &migrate_io);
    qos_add_test("migrate-bad-stream", "virtio-tmem", test_bad_stream,
                 &stream);
    qos_add_test("migrate-save-unreadable", "virtio-tmem",
                 test_save_unreadable, &stream);
}

libqos_init(register_virtio_tmem_migrate_test);
