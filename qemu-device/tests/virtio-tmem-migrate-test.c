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
 * file; the test patches copies of it and loads each into a fresh
 * destination (-incoming defer, exit-on-error off), which must report
 * the migration failed, print why, and live on.  The unpatched stream
 * must load, so that the failures are the patches'.
 *
 * Slot 0 is an empty persistent pool and slot 1 holds one random page
 * (so a RAW one) under oid TMEM_MAGIC.  The live section's first pass,
 * as virtio-tmem-live.c writes it, is found by that oid:
 *
 *   SLOT 1 0 12 | SLOT 1 1 12 | PAGE 2 1 oid[3] index 3 page | END 0
 *
 * and the device's pool table (virtio-tmem-migration.c) after it by its
 * bytes: credits npools | 1 gen0 12 | 1 gen1 12.  Every field is checked
 * before any is changed.
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
    bool main_loop;     /* no spill, so no iothread: the main loop serves */
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

static TmemStreamCtx *tmem_stream_new(void)
{
    TmemStreamCtx *sc = g_new0(TmemStreamCtx, 1);

    sc->dir = g_dir_make_tmp("qtest-tmem-stream.XXXXXX", NULL);
    g_assert_nonnull(sc->dir);
    g_test_queue_destroy(tmem_stream_cleanup, sc);
    return sc;
}

/* the source ends up migrated: no later test may reuse it */
static void tmem_stream_name(TmemStreamCtx *sc, GString *cmd_line)
{
    g_string_append(cmd_line, " -name tmem-stream");
    sc->cmd_line = g_strdup(cmd_line->str);
}

/* Without a spill file, and so without an iothread of the device's own */
static void *tmem_stream_main_loop_setup(GString *cmd_line, void *arg)
{
    TmemStreamCtx *sc = tmem_stream_new();

    sc->main_loop = true;
    g_string_append(cmd_line, " -global virtio-tmem-pci.budget=64M");
    tmem_stream_name(sc, cmd_line);
    return sc;
}

static void *tmem_stream_setup(GString *cmd_line, void *arg)
{
    TmemStreamCtx *sc = tmem_stream_new();

    g_string_append_printf(cmd_line,
                           " -global virtio-tmem-pci.budget=1M"
                           " -global virtio-tmem-pci.spill=%s"
                           " -global virtio-tmem-pci.spill-max=64M",
                           sc->dir);
    tmem_stream_name(sc, cmd_line);
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

/* Where @needle of @nlen bytes is in @buf after @from, or NULL */
static uint8_t *tmem_find(uint8_t *buf, size_t len, size_t from,
                          const uint8_t *needle, size_t nlen)
{
    return memmem(buf + from, len - from, needle, nlen);
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
    uint8_t *p, *x = NULL, *copy, table[18];
    uint32_t credits, pp0, pp1;
    size_t len, off, d;
    TmemOp op;

    tmem_init(c, obj, alloc, TMEM_FEATURES_P4K);
    pp0 = tmem_pool_new(c, POOL_P4K);
    pp1 = tmem_pool_new(c, POOL_P4K);
    g_assert_cmpuint(pp0 & 0xffff, ==, 0);
    g_assert_cmpuint(pp1 & 0xffff, ==, 1);
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

    /* the only big-endian TMEM_MAGIC is slot 1's page's oid[0] */
    for (p = buf; p + 8 <= buf + len; p++) {
        p = memchr(p, 0x74, buf + len - 8 - p);
        if (!p) {
            break;
        }
        if (ldq_be_p(p) == TMEM_MAGIC) {
            g_assert_null(x);
            x = p;
        }
    }
    g_assert_nonnull(x);
    off = x - buf;
    g_assert_cmpuint(off, >=, 17);
    g_assert_cmpuint(off + 4126, <=, len);
    g_assert_cmpuint(x[-17], ==, 1);                    /* SLOT */
    g_assert_cmpuint(get_be32(x - 16), ==, 0);
    g_assert_cmpuint(x[-12], ==, 12);
    g_assert_cmpuint(x[-11], ==, 1);                    /* SLOT */
    g_assert_cmpuint(get_be32(x - 10), ==, 1);
    g_assert_cmpuint(x[-6], ==, 12);
    g_assert_cmpuint(x[-5], ==, 2);                     /* PAGE */
    g_assert_cmpuint(get_be32(x - 4), ==, 1);
    g_assert_cmpuint(get_be32(x + 24), ==, 3);          /* its index */
    g_assert_cmpuint(x[28], ==, 3);                     /* RAW */
    g_assert_cmpmem(x + 29, PAGE_4K, page, PAGE_4K);
    g_assert_cmpuint(x[29 + PAGE_4K], ==, 0);           /* END */

    stl_be_p(table, credits);
    stl_be_p(table + 4, 2);
    table[8] = VIRTIO_TMEM_POOL_PERSISTENT;
    stw_be_p(table + 9, pp0 >> 16);
    table[11] = 12;
    table[12] = VIRTIO_TMEM_POOL_PERSISTENT;
    stw_be_p(table + 13, pp1 >> 16);
    table[15] = 12;
    p = tmem_find(buf, len, off + PAGE_4K, table, 16);
    g_assert_nonnull(p);
    d = p - buf;

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

    /* the live section */
    TMEM_PATCHED("with slot 5000", "the most is",
                 stl_be_p(copy + off - 16, 5000));
    TMEM_PATCHED("with page shift 13", "page shift", copy[off - 12] = 13);
    TMEM_PATCHED("with a page for slot 7", "has no pool",
                 stl_be_p(copy + off - 4, 7));
    TMEM_PATCHED("with slot 1 made free before its page",
                 "has no pool", copy[off - 6] = 0);
    TMEM_PATCHED("with record type 9", "record type", copy[off - 5] = 9);
    TMEM_PATCHED("with page form 9", "page form", copy[off + 28] = 9);
    TMEM_PATCHED("with LZ4 bytes that are no page", "not a page",
                 copy[off + 28] = 2; stl_be_p(copy + off + 29, 100));
    TMEM_PATCHED("with a page's worth of LZ4 bytes", "compressed bytes",
                 copy[off + 28] = 2; stl_be_p(copy + off + 29, PAGE_4K));
    TMEM_PATCHED("with 2^32 - 1 LZ4 bytes", "compressed bytes",
                 copy[off + 28] = 2; stl_be_p(copy + off + 29, UINT32_MAX));
    /* the device's pool table */
    TMEM_PATCHED("with credits above max-credits", "max-credits",
                 stl_be_p(copy + d, TMEM_MAX_CREDITS + 1));
    TMEM_PATCHED("with credits of 2^32 - 1", "max-credits",
                 stl_be_p(copy + d, UINT32_MAX));
    TMEM_PATCHED("with 2^32 - 1 pools", "pools arriving",
                 stl_be_p(copy + d + 4, UINT32_MAX));
    TMEM_PATCHED("with one pool in the table", "past the table",
                 stl_be_p(copy + d + 4, 1));
    TMEM_PATCHED("with pool kind 3", "kind", copy[d + 8] = 3);
    TMEM_PATCHED("with slot 0 of 64 KiB pages", "did not arrive",
                 copy[d + 11] = 16);
    TMEM_PATCHED("with slot 1 ephemeral", "pages arrived",
                 copy[d + 12] = VIRTIO_TMEM_POOL_EPHEMERAL);
    /* a free slot has no page shift: the stream is a byte shorter */
    memcpy(copy, buf, d + 12);
    copy[d + 12] = 0;
    memcpy(copy + d + 13, buf + d + 13, 2);
    memcpy(copy + d + 15, buf + d + 16, len - (d + 16));
    tmem_expect_bad(sc, "with slot 1 free", copy, len - 1, "which is free");
    /* cut short inside the page */
    tmem_expect_bad(sc, "cut short", buf, off + 100, NULL);
#undef TMEM_PATCHED
    g_free(copy);
    unlink(src);
}

/*
 * Test: pre-copy sends what the guest changes while it runs.  The
 * migration is throttled so that it lasts seconds; once the store's
 * pages have begun to go, the test overwrites, flushes and adds pages,
 * destroys a pool and makes another in its slot, then lets the migration
 * finish.  The stream is read back: the last record of every key must
 * be the page as it is now (random pages travel raw), or GONE for a page
 * flushed after it went.  The destination must load it and hold exactly
 * the pages the source holds.  Once with a spill file (and so with the
 * queues in an iothread), once without (in the main loop).
 */

#define TMEM_LIVE_OID       0x746d656d4c495645ull   /* "tmemLIVE" */
#define TMEM_LIVE_PAGES     512

/* The last PAGE or GONE record of (@oid, @index) in @buf, or NULL. */
static const uint8_t *tmem_last_record(const uint8_t *buf, size_t len,
                                       uint64_t oid, uint32_t index)
{
    const uint8_t *p, *last = NULL;

    for (p = buf + 5; p + 29 <= buf + len; p++) {
        p = memchr(p, oid >> 56, buf + len - 29 - p);
        if (!p) {
            break;
        }
        if (ldq_be_p(p) == oid && ldl_be_p(p + 24) == index &&
            (p[-5] == 2 || p[-5] == 3)) {
            last = p;
        }
    }
    return last;
}

static void tmem_check_last(const uint8_t *buf, size_t len, uint64_t oid,
                            uint32_t index, unsigned seed)
{
    const uint8_t *r = tmem_last_record(buf, len, oid, index);
    uint8_t want[PAGE_4K];

    g_assert_nonnull(r);
    if (!seed) {
        g_assert_cmpuint(r[-5], ==, 3);     /* GONE */
        return;
    }
    g_assert_cmpuint(r[-5], ==, 2);         /* PAGE */
    g_assert_cmpuint(r[28], ==, 3);         /* RAW */
    g_assert_true(r + 29 + PAGE_4K <= buf + len);
    tmem_fill_random(want, PAGE_4K, seed);
    g_assert_cmpmem(r + 29, PAGE_4K, want, PAGE_4K);
}

static void tmem_assert_iothread(TmemCtx *c, bool want)
{
    QDict *stats = tmem_stats(c);

    g_assert_cmpint(qdict_get_bool(stats, "iothread_active"), ==, want);
    qobject_unref(stats);
}

static uint64_t tmem_live_stat(TmemCtx *c, const char *name)
{
    return tmem_sub_stat(c, "migration", name);
}

/* Wait until the live section has sent a page */
static void tmem_wait_live_sent(TmemCtx *c)
{
    gint64 start = g_get_monotonic_time();

    while (!tmem_live_stat(c, "pages_sent")) {
        g_assert_cmpint(g_get_monotonic_time() - start, <, TMEM_TIMEOUT_US);
        g_usleep(10 * 1000);
    }
}

static void test_migrate_live(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemStreamCtx *sc = data;
    g_autofree char *path = g_build_filename(sc->dir, "stream", NULL);
    g_autofree char *logf = g_build_filename(sc->dir, "dst.log", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree uint8_t *buf = NULL;
    g_autofree char *st = NULL;
    TmemCtx ctx, *c = &ctx;
    const uint64_t o1 = TMEM_LIVE_OID, o2 = o1 + 1, o3 = o1 + 2, o4 = o1 + 3;
    uint32_t pp, pp2, pp3;
    QTestState *dst;
    uint64_t pages;
    QDict *rsp;
    size_t len;
    unsigned i;
    TmemOp op;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    pp = tmem_pool_new(c, POOL_P4K);
    pp2 = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, o1, 1000, TMEM_LIVE_PAGES);
    tmem_put_random(c, pp2, o2, 3000, BATCH);
    /* with a spill file, the device's queues run in an iothread */
    g_assert_cmpuint(tmem_stat(c, "pages_spilled") > 0, ==, !sc->main_loop);
    tmem_assert_iothread(c, !sc->main_loop);

    /* about 2.5 MiB of pages at 256 KiB/s: ten seconds to change them */
    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate-set-parameters',"
                             "'arguments': {'max-bandwidth': 262144}}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    tmem_wait_live_sent(c);

    /* overwrite the first BATCH pages, flush the next 16, add BATCH */
    tmem_put_random(c, pp, o1, 2000, BATCH);
    for (i = BATCH; i < BATCH + 16; i++) {
        op = tmem_op_key(VIRTIO_TMEM_OP_FLUSH_PAGE, pp, o1, i);
        tmem_run(c, &op, 1);
        tmem_assert_status(&op, VIRTIO_TMEM_S_OK);
    }
    tmem_put_random(c, pp, o3, 4000, BATCH);
    /* a pool goes, and another takes its slot */
    tmem_pool_destroy(c, pp2);
    pp3 = tmem_pool_new(c, POOL_P4K);
    g_assert_cmpuint(pp3 & 0xffff, ==, pp2 & 0xffff);
    tmem_put_random(c, pp3, o4, 5000, BATCH);
    g_assert_cmpuint(tmem_live_stat(c, "keys_dirtied"), >=, 3 * BATCH + 16);

    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate-set-parameters',"
                             "'arguments': {'max-bandwidth': 1073741824}}");
    st = tmem_migrate_wait(c->qts);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_cmpuint(tmem_live_stat(c, "passes"), >=, 2);
    pages = tmem_stat(c, "pages_persistent");
    g_assert_cmpuint(pages, ==, TMEM_LIVE_PAGES - 16 + 2 * BATCH);

    /* what the stream says each key is at the end */
    g_assert_true(g_file_get_contents(path, (char **)&buf, &len, NULL));
    for (i = 0; i < TMEM_LIVE_PAGES; i++) {
        tmem_check_last(buf, len, o1, i,
                        i < BATCH ? 2000 + i :
                        i < BATCH + 16 ? 0 : 1000 + i);
    }
    for (i = 0; i < BATCH; i++) {
        tmem_check_last(buf, len, o3, i, 4000 + i);
        tmem_check_last(buf, len, o4, i, 5000 + i);
    }

    /* and the destination holds what the source does, no more */
    g_free(st);
    dst = tmem_migrate_from_file(sc->cmd_line, path, logf, &st);
    g_assert_cmpstr(st, ==, "completed");
    rsp = qtest_qmp_assert_success_ref(dst, "{'execute': 'qom-get', "
                                       "'arguments': {'path': %s, "
                                       "'property': 'stats'}}",
                                       c->tmem->qom_path);
    g_assert_cmpuint(tmem_stat_of(rsp, "pages_persistent"), ==, pages);
    g_assert_cmpuint(tmem_stat_of(qdict_get_qdict(rsp, "migration"),
                                  "pages_loaded"), >=, pages);
    qobject_unref(rsp);
    qtest_quit(dst);
    unlink(path);
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
    QOSGraphTestOptions stream_main_loop = {
        .before = tmem_stream_main_loop_setup,
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
    qos_add_test("migrate-live", "virtio-tmem", test_migrate_live, &stream);
    qos_add_test("migrate-live-main-loop", "virtio-tmem", test_migrate_live,
                 &stream_main_loop);
    qos_add_test("migrate-save-unreadable", "virtio-tmem",
                 test_save_unreadable, &stream);
}

libqos_init(register_virtio_tmem_migrate_test);
