/*
 * QTest testcase for tmem-store objects and the tmem block driver
 *
 * One store shared by a virtio-tmem device and a tmem block node: one
 * budget, set on the object, covers both; query-tmem lists the store
 * and its users.  The block node reads back what was written, zeros
 * where nothing was, frees what is discarded, spills past the budget
 * and fails writes with ENOSPC only when the spill file is full too.
 *
 * Block data is checked whole: a backup job copies the node into a
 * file, which the test compares with what it wrote.
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
#include "qobject/qstring.h"
#include "standard-headers/linux/virtio_config.h"
#include "libqos/libqos.h"
#include "virtio-tmem-util.h"

#define TBLK_SIZE       (8 * MiB)
#define TBLK_PAGES      (TBLK_SIZE / PAGE_4K)

/* A scratch directory per test: spill files, data and dump files */
typedef struct TblkEnv {
    char *dir;
    char *cmd_line;             /* the whole command line, for a destination */
} TblkEnv;

static void tblk_env_free(void *opaque)
{
    TblkEnv *env = opaque;
    g_autoptr(GDir) d = g_dir_open(env->dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(env->dir, name, NULL);

        g_unlink(path);
    }
    g_rmdir(env->dir);
    g_free(env->dir);
    g_free(env->cmd_line);
    g_free(env);
}

static TblkEnv *tblk_env_new(void)
{
    TblkEnv *env = g_new0(TblkEnv, 1);

    env->dir = g_dir_make_tmp("qtest-tmem-store.XXXXXX", NULL);
    g_assert_nonnull(env->dir);
    g_test_queue_destroy(tblk_env_free, env);
    return env;
}

/*
 * Shared store: st0 (1 MiB, no spill) serves the device and node tb0.
 * Spill store: st1 (256 KiB, 64 MiB spill file) serves node tb1.
 * Full store: st2 (256 KiB, 1 MiB spill file) serves nodes tb2 and tb3.
 */
static void *tmem_store_setup(GString *cmd_line, void *arg)
{
    TblkEnv *env = tblk_env_new();

    /* discard=unmap: without it the block layer drops every discard */
    g_string_append_printf(cmd_line,
        " -object tmem-store,id=st0,budget=1M"
        " -global virtio-tmem-pci.store=st0"
        " -blockdev driver=tmem,node-name=tb0,store=st0,size=%u"
        " -object tmem-store,id=st1,budget=256K,spill=%s,spill-max=64M"
        " -blockdev driver=tmem,node-name=tb1,store=st1,size=%u,"
        "discard=unmap"
        " -object tmem-store,id=st2,budget=256K,spill=%s,spill-max=1M"
        " -blockdev driver=tmem,node-name=tb2,store=st2,size=%u"
        " -blockdev driver=tmem,node-name=tb3,store=st2,size=%u",
        (unsigned)TBLK_SIZE, env->dir, (unsigned)TBLK_SIZE, env->dir,
        (unsigned)TBLK_SIZE, (unsigned)TBLK_SIZE);
    return env;
}

/*
 * The same, and a qcow2 node "snap" for snapshot-save's vmstate; the
 * source ends up migrated, so no later test may reuse it (-name).
 */
static void *tmem_store_migrate_setup(GString *cmd_line, void *arg)
{
    TblkEnv *env = tmem_store_setup(cmd_line, arg);
    g_autofree char *img = g_build_filename(env->dir, "snap.qcow2", NULL);

    mkqcow2(img, 16);
    g_string_append_printf(cmd_line,
        " -blockdev driver=file,node-name=snapf,filename=%s"
        " -blockdev driver=qcow2,node-name=snap,file=snapf"
        " -name tmem-blk-migrate", img);
    env->cmd_line = g_strdup(cmd_line->str);
    return env;
}

static QDict *tblk_store_stats(QTestState *qts, const char *id)
{
    g_autofree char *path = g_strdup_printf("/objects/%s", id);

    return qtest_qmp_assert_success_ref(qts,
        "{'execute': 'qom-get', 'arguments': "
        "{'path': %s, 'property': 'stats'}}", path);
}

static uint64_t tblk_store_stat(QTestState *qts, const char *id,
                                const char *name)
{
    QDict *st = tblk_store_stats(qts, id);
    uint64_t v = tmem_stat_of(st, name);

    qobject_unref(st);
    return v;
}

static void tblk_set_budget(QTestState *qts, const char *id, uint64_t bytes)
{
    g_autofree char *path = g_strdup_printf("/objects/%s", id);

    qtest_qmp_assert_success(qts, "{'execute': 'qom-set', 'arguments': "
                             "{'path': %s, 'property': 'budget', "
                             "'value': %" PRIu64 "}}", path, bytes);
}

/* Wait up to 30 s for store @id's RAM to come within @bytes. */
static void tblk_wait_ram(QTestState *qts, const char *id, uint64_t bytes)
{
    int i;

    for (i = 0; i < 300; i++) {
        if (tblk_store_stat(qts, id, "ram_used") <= bytes) {
            break;
        }
        g_usleep(100 * 1000);
    }
    g_assert_cmpuint(tblk_store_stat(qts, id, "ram_used"), <=, bytes);
}

/*
 * Run one qemu-io command on @node.  Its output goes to QEMU's stdout,
 * not to the monitor, so callers check what it did: the disk's contents
 * (tblk_verify) and the store's statistics.
 */
static void tblk_io(QTestState *qts, const char *node, const char *cmd)
{
    g_free(qtest_hmp(qts, "qemu-io %s \"%s\"", node, cmd));
}

/* Random pages @first .. @first + @n - 1 of @data, page i from seed i */
static void tblk_fill(uint8_t *data, unsigned first, unsigned n,
                      uint64_t seed)
{
    unsigned i;

    for (i = first; i < first + n; i++) {
        tmem_fill_random(data + (size_t)i * PAGE_4K, PAGE_4K, seed + i);
    }
}

/* Write bytes [@off, @off + @len) of @data to @node (qemu-io write -s). */
static void tblk_write(QTestState *qts, TblkEnv *env, const char *node,
                       const uint8_t *data, uint64_t off, uint64_t len)
{
    g_autofree char *src = g_build_filename(env->dir, "src", NULL);
    g_autofree char *cmd = NULL;

    g_assert_true(g_file_set_contents(src, (const char *)data + off, len,
                                      NULL));
    cmd = g_strdup_printf("write -s %s %" PRIu64 " %" PRIu64, src, off, len);
    tblk_io(qts, node, cmd);
}

/*
 * Copy all of node @from onto node @to with a backup job, as a guest's
 * reads and writes would go; NULL if it worked, else the job's error.
 * With @store, the job runs at 2 MiB/s, and once it has copied 1 MiB
 * (and is still running) @store's budget is cut to @budget.
 */
static char *tblk_copy_cut(QTestState *qts, const char *from, const char *to,
                           const char *store, uint64_t budget)
{
    gint64 start = g_get_monotonic_time();

    tmem_blk_copy_start(qts, from, to, store ? 2 * MiB : 0);
    while (store) {
        QDict *rsp = qtest_qmp(qts, "{'execute': 'query-block-jobs'}");
        QDict *job = qobject_to(QDict,
                                qlist_peek(qdict_get_qlist(rsp, "return")));
        int64_t off, len;

        g_assert_nonnull(job);
        off = qdict_get_int(job, "offset");
        len = qdict_get_int(job, "len");
        qobject_unref(rsp);
        if (off >= MiB) {
            g_assert_cmpint(off, <, len);       /* the cut is under load */
            tblk_set_budget(qts, store, budget);
            break;
        }
        g_assert_cmpint(g_get_monotonic_time() - start, <, TMEM_TIMEOUT_US);
        g_usleep(10 * 1000);
    }
    return tmem_blk_copy_wait(qts);
}

static char *tblk_copy(QTestState *qts, const char *from, const char *to)
{
    return tblk_copy_cut(qts, from, to, NULL, 0);
}

/* Write all of @data (@size bytes) to @node, as one block job. */
static char *tblk_load(QTestState *qts, TblkEnv *env, const char *node,
                       const uint8_t *data, uint64_t size)
{
    char *err;

    tmem_blk_file_node(qts, env->dir, "src", "src.img", data, size);
    err = tblk_copy(qts, "src", node);
    tmem_blk_del_node(qts, "src");
    if (err) {
        g_test_message("writing %s: %s", node, err);
    }
    return err;
}

/* Read the first @size bytes of @node; they must be @want. */
static void tblk_verify(QTestState *qts, TblkEnv *env, const char *node,
                        const uint8_t *want, uint64_t size)
{
    g_autofree char *dump = g_build_filename(env->dir, "dump.img", NULL);
    g_autofree char *got = NULL;
    g_autofree char *err = NULL;
    gsize len;

    tmem_blk_file_node(qts, env->dir, "dump", "dump.img", NULL, TBLK_SIZE);
    err = tblk_copy(qts, node, "dump");
    g_assert_null(err);
    tmem_blk_del_node(qts, "dump");
    g_assert_true(g_file_get_contents(dump, &got, &len, NULL));
    g_assert_cmpuint(len, ==, TBLK_SIZE);
    g_assert_cmpmem(got, size, want, size);
}

/*
 * Test: the block node reads back what was written, page-aligned or
 * not (the block layer reads and rewrites the partial blocks); zeros
 * where nothing was written; discard and write-zeroes free their blocks
 * and read as zeros; a write of zeros keeps nothing.
 */
static void test_block_rw(void *obj, void *data, QGuestAllocator *alloc)
{
    TblkEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc0(TBLK_SIZE);

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     0);

    /* a never-written disk reads as zeros */
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);

    /* whole pages, then a run that starts and ends inside pages */
    tblk_fill(want, 0, 64, 1000);
    tblk_write(c->qts, env, "tb1", want, 0, 64 * PAGE_4K);
    tblk_fill(want, 100, 4, 2000);
    tblk_write(c->qts, env, "tb1", want, 100 * PAGE_4K, 4 * PAGE_4K);
    memset(want + 100 * PAGE_4K + 1000, 0x5a, 9000);
    tblk_io(c->qts, "tb1", "write -P 0x5a 410600 9000");
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     68);
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);

    /* discard: whole pages go; the partial pages at its ends stay */
    tblk_io(c->qts, "tb1", "discard 2048 40960");
    memset(want + PAGE_4K, 0, 9 * PAGE_4K);
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     68 - 9);

    /* write-zeroes and a write of zeros: blocks freed, zeros read */
    tblk_io(c->qts, "tb1", "write -z 40960 8192");
    memset(want + 10 * PAGE_4K, 0, 2 * PAGE_4K);
    tblk_io(c->qts, "tb1", "write -P 0 49152 4096");
    memset(want + 12 * PAGE_4K, 0, PAGE_4K);
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     68 - 12);
    tmem_stop(c);
}

/*
 * Test: past the budget the node's blocks spill and come back; a budget
 * cut over QMP while a job writes to the node spills them under load;
 * once the spill file is full too, writes fail with ENOSPC, and what
 * other nodes of the store hold stays intact.  RAM never goes over the
 * budget.
 */
static void test_block_spill(void *obj, void *data, QGuestAllocator *alloc)
{
    TblkEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc0(TBLK_SIZE);
    g_autofree uint8_t *more = g_malloc0(TBLK_SIZE);
    g_autofree char *err = NULL;
    uint64_t spilled;
    QDict *st;

    tmem_init(c, obj, alloc, TMEM_FEATURES);

    /* 4 MiB of random pages into a 256 KiB budget: most spill */
    tblk_fill(want, 0, 1024, 3000);
    g_assert_null(tblk_load(c->qts, env, "tb1", want, TBLK_SIZE));
    st = tblk_store_stats(c->qts, "st1");
    spilled = tmem_stat_of(st, "pages_spilled");
    g_assert_cmpuint(tmem_stat_of(st, "pages_persistent"), ==, 1024);
    g_assert_cmpuint(spilled, >, 512);
    g_assert_cmpuint(tmem_stat_of(st, "ram_used"), <=, 256 * KiB);
    qobject_unref(st);
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "get_hits_spill"), >=,
                     spilled);

    /* a bigger budget and more pages */
    tblk_set_budget(c->qts, "st1", 16 * MiB);
    tblk_fill(want, 1024, 512, 4000);
    tblk_write(c->qts, env, "tb1", want, 4 * MiB, 2 * MiB);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     1536);
    /*
     * The whole disk again, with 1 MiB more, by a slowed job; the budget
     * is cut while it writes: every write is taken, and RAM comes back
     * under the new budget.
     */
    tblk_fill(want, 1536, 256, 4500);
    tmem_blk_file_node(c->qts, env->dir, "src", "src.img", want, TBLK_SIZE);
    err = tblk_copy_cut(c->qts, "src", "tb1", "st1", 128 * KiB);
    tmem_blk_del_node(c->qts, "src");
    g_assert_null(err);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     1792);
    tblk_wait_ram(c->qts, "st1", 128 * KiB);
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);

    /*
     * st2: 256 KiB of RAM and 1 MiB of spill.  tb2's 128 pages fit;
     * then 8 MiB for tb3 do not: the write fails with ENOSPC, RAM stays
     * within the budget, and tb2 reads back whole.
     */
    memset(want, 0, TBLK_SIZE);
    tblk_fill(want, 0, 128, 5000);
    tblk_write(c->qts, env, "tb2", want, 0, 128 * PAGE_4K);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st2", "pages_persistent"), ==,
                     128);
    tblk_fill(more, 0, TBLK_PAGES, 6000);
    err = tblk_load(c->qts, env, "tb3", more, TBLK_SIZE);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "No space left on device"));
    st = tblk_store_stats(c->qts, "st2");
    g_assert_cmpuint(tmem_stat_of(st, "put_rejected_nospace"), >, 0);
    g_assert_cmpuint(tmem_stat_of(st, "ram_used"), <=, 256 * KiB);
    qobject_unref(st);
    tblk_verify(c->qts, env, "tb2", want, TBLK_SIZE);
    tmem_stop(c);
}

/*
 * Test: one budget for the device and a block node on one store.  The
 * budget is the store's (qom-set on the device says so), a change of it
 * reaches the device's config space, the pages of both count against
 * it, and once the node fills it the device's puts are refused.
 * query-tmem lists the store with both users; it cannot be deleted
 * while they use it.
 */
static void test_store_shared(void *obj, void *data, QGuestAllocator *alloc)
{
    TblkEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc0(TBLK_SIZE);
    g_autofree char *err = NULL;
    QDict *resp, *entry, *st;
    const QListEntry *e;
    QList *list;
    bool saw_store = false, saw_dev = false;
    g_autofree uint8_t *pages = g_malloc(BATCH * PAGE_4K);
    TmemOp ops[BATCH];
    uint64_t npages, room;
    unsigned i, accepted = 0;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, 1 * MiB);

    /* the device's budget is the store's: refused on the device */
    resp = qtest_qmp(c->qts, "{'execute': 'qom-set', 'arguments': "
                     "{'path': %s, 'property': 'budget', 'value': 4096}}",
                     c->tmem->qom_path);
    g_assert_true(qdict_haskey(resp, "error"));
    g_assert_nonnull(strstr(qdict_get_str(qdict_get_qdict(resp, "error"),
                                          "desc"), "st0"));
    qobject_unref(resp);

    /* set on the store, it reaches the device and its driver */
    tblk_set_budget(c->qts, "st0", 2 * MiB);
    g_assert_cmpuint(tmem_stat(c, "budget"), ==, 2 * MiB);
    g_assert_cmpuint(qvirtio_config_readq(c->vdev,
                     offsetof(struct virtio_tmem_config, budget)), ==,
                     2 * MiB);

    /* pages of both front ends are in the store */
    pp = tmem_pool_new(c, POOL_P4K);
    tmem_put_random(c, pp, 7, 64, BATCH);
    tblk_fill(want, 0, 64, 7000);
    tblk_write(c->qts, env, "tb0", want, 0, 64 * PAGE_4K);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st0", "pages_persistent"), ==,
                     128);
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, 128);

    /* the node fills the budget; then the device's puts are refused */
    tblk_fill(want, 64, TBLK_PAGES - 64, 8000);
    err = tblk_load(c->qts, env, "tb0", want, TBLK_SIZE);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "No space left on device"));
    g_assert_cmpuint(tblk_store_stat(c->qts, "st0", "ram_used"), <=,
                     2 * MiB);
    /*
     * The failed write left less than 16 pages of room, and the device
     * gets about that: the rest of a batch of puts is refused.  (Not
     * exactly that: a put may first free a little, by compaction or the
     * slab cache, and a CI run saw one put taken with no room left.)
     */
    room = 2 * MiB - tblk_store_stat(c->qts, "st0", "ram_used");
    g_assert_cmpuint(room, <, 16 * PAGE_4K);
    for (i = 0; i < BATCH; i++) {
        tmem_fill_random(pages + i * PAGE_4K, PAGE_4K, 99 + i);
        ops[i] = tmem_op_put(pp, 8, i, pages + i * PAGE_4K, PAGE_4K);
    }
    tmem_run(c, ops, BATCH);
    for (i = 0; i < BATCH; i++) {
        tmem_assert_status2(&ops[i], VIRTIO_TMEM_S_OK, VIRTIO_TMEM_S_NOSPACE);
        accepted += ops[i].status == VIRTIO_TMEM_S_OK;
    }
    g_assert_cmpuint(accepted, <, 16);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st0", "ram_used"), <=,
                     2 * MiB);
    tmem_check_random(c, pp, 7, 64, BATCH);

    /* query-tmem: the device names the store, the store both users */
    resp = qtest_qmp(c->qts, "{'execute': 'query-tmem'}");
    list = qdict_get_qlist(resp, "return");
    QLIST_FOREACH_ENTRY(list, e) {
        entry = qobject_to(QDict, qlist_entry_obj(e));
        st = qdict_get_qdict(entry, "stats");
        if (!strcmp(qdict_get_str(entry, "path"), "/objects/st0")) {
            QList *users = qdict_get_qlist(entry, "users");
            const QListEntry *u;
            bool dev = false, node = false;

            g_assert_cmpstr(qdict_get_str(entry, "kind"), ==, "store");
            QLIST_FOREACH_ENTRY(users, u) {
                const char *name =
                    qstring_get_str(qobject_to(QString, qlist_entry_obj(u)));

                dev |= !strcmp(name, "/machine/peripheral/tmem0/"
                                     "virtio-backend");
                node |= !strcmp(name, "tb0");
            }
            g_assert_true(dev && node);
            g_assert_cmpuint(tmem_stat_of(st, "users"), ==, 2);
            saw_store = true;
        } else if (!strcmp(qdict_get_str(entry, "kind"), "device")) {
            g_assert_cmpstr(qdict_get_str(entry, "store"), ==,
                            "/objects/st0");
            saw_dev = true;
        }
    }
    g_assert_true(saw_store && saw_dev);
    qobject_unref(resp);

    /* in use: object-del refuses */
    resp = qtest_qmp(c->qts, "{'execute': 'object-del', 'arguments': "
                     "{'id': 'st0'}}");
    g_assert_true(qdict_haskey(resp, "error"));
    qobject_unref(resp);

    /* the device's pool goes; the node's pages stay */
    npages = tblk_store_stat(c->qts, "st0", "pages_persistent");
    tmem_pool_destroy(c, pp);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st0", "pages_persistent"), ==,
                     npages - 64 - accepted);
    tmem_stop(c);
}

/*
 * Test: bad configurations are refused with an error that says why, and
 * leave nothing behind: a node with no store, a store that is not one,
 * a size that is not whole blocks; a store with spill and no spill-max
 * or an out-of-range budget; a device given store= and budget=.
 */
static void test_store_errors(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx ctx, *c = &ctx;
    static const struct {
        const char *cmd;
        const char *why;
    } bad[] = {
        { "{'execute': 'blockdev-add', 'arguments': {'driver': 'tmem', "
          "'node-name': 'x', 'store': 'nope', 'size': 4096}}",
          "no tmem-store object with id 'nope'" },
        { "{'execute': 'blockdev-add', 'arguments': {'driver': 'tmem', "
          "'node-name': 'x', 'store': 'st0', 'size': 5000}}",
          "multiple of 4096" },
        { "{'execute': 'blockdev-add', 'arguments': {'driver': 'tmem', "
          "'node-name': 'x', 'store': 'st0', 'size': 0}}",
          "multiple of 4096" },
        { "{'execute': 'object-add', 'arguments': {'qom-type': "
          "'tmem-store', 'id': 'x', 'spill': '/tmp'}}",
          "spill needs spill-max" },
        { "{'execute': 'object-add', 'arguments': {'qom-type': "
          "'tmem-store', 'id': 'x', 'budget': 100}}",
          "budget must be 0 or 4096" },
        { "{'execute': 'qom-set', 'arguments': {'path': '/objects/st0', "
          "'property': 'budget', 'value': 1}}",
          "budget must be 0 or 4096" },
        { "{'execute': 'qom-set', 'arguments': {'path': '/objects/st0', "
          "'property': 'spill-max', 'value': 4096}}",
          "cannot change once the store is made" },
        { "{'execute': 'device_add', 'arguments': {'driver': "
          "'virtio-tmem-pci', 'id': 'x', 'store': 'st0', 'budget': 4096}}",
          "belong to the tmem-store object" },
        { "{'execute': 'device_add', 'arguments': {'driver': "
          "'virtio-tmem-pci', 'id': 'x', 'store': 'nope'}}",
          "nope" },
    };
    unsigned i;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        tmem_qmp_expect_error(c->qts, bad[i].cmd, bad[i].why);
    }
    /* a store nobody uses goes, and its id is free again */
    qtest_qmp_assert_success(c->qts, "{'execute': 'object-add', 'arguments': "
                             "{'qom-type': 'tmem-store', 'id': 'spare', "
                             "'budget': 65536}}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'object-del', 'arguments': "
                             "{'id': 'spare'}}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'object-add', 'arguments': "
                             "{'qom-type': 'tmem-store', 'id': 'spare'}}");
    /* a node added and deleted at run time takes its pages along */
    qtest_qmp_assert_success(c->qts, "{'execute': 'blockdev-add', "
                             "'arguments': {'driver': 'tmem', "
                             "'node-name': 'late', 'store': 'spare', "
                             "'size': 1048576}}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'qom-set', 'arguments': "
                             "{'path': '/objects/spare', 'property': "
                             "'budget', 'value': 1048576}}");
    tblk_io(c->qts, "late", "write -P 0x11 0 64k");
    g_assert_cmpuint(tblk_store_stat(c->qts, "spare", "pages_persistent"),
                     ==, 16);
    qtest_qmp_assert_success(c->qts, "{'execute': 'blockdev-del', "
                             "'arguments': {'node-name': 'late'}}");
    g_assert_cmpuint(tblk_store_stat(c->qts, "spare", "pages_persistent"),
                     ==, 0);
    g_assert_cmpuint(tblk_store_stat(c->qts, "spare", "users"), ==, 0);
    qtest_qmp_assert_success(c->qts, "{'execute': 'object-del', 'arguments': "
                             "{'id': 'spare'}}");
    tmem_stop(c);
}


/* Run snapshot job @cmd (snapshot-save or -load of @tag) to its end. */
static void tblk_snapshot(QTestState *qts, const char *cmd, const char *tag)
{
    QDict *rsp;
    QList *jobs;

    qtest_qmp_assert_success(qts, "{'execute': %s, 'arguments': "
                             "{'job-id': 'snapjob', 'tag': %s, "
                             "'vmstate': 'snap', 'devices': ['snap']}}",
                             cmd, tag);
    for (;;) {
        QDict *ev = qtest_qmp_eventwait_ref(qts, "JOB_STATUS_CHANGE");
        bool done = !strcmp(qdict_get_str(qdict_get_qdict(ev, "data"),
                                          "status"), "concluded");

        qobject_unref(ev);
        if (done) {
            break;
        }
    }
    rsp = qtest_qmp(qts, "{'execute': 'query-jobs'}");
    jobs = qdict_get_qlist(rsp, "return");
    g_assert_nonnull(jobs);
    g_assert_false(qdict_haskey(qobject_to(QDict, qlist_peek(jobs)),
                                "error"));
    qobject_unref(rsp);
    qtest_qmp_assert_success(qts, "{'execute': 'job-dismiss', "
                             "'arguments': {'id': 'snapjob'}}");
}

/* Load @stream into a destination that must refuse it, saying @why. */
static void tblk_expect_bad(TblkEnv *env, const char *cmd_line,
                            const char *what, const uint8_t *stream,
                            size_t len, const char *why)
{
    g_autofree char *path = g_build_filename(env->dir, "bad", NULL);
    g_autofree char *logf = g_build_filename(env->dir, "dst.log", NULL);
    g_autofree char *log = NULL;
    g_autofree char *st = NULL;

    g_test_message("loading the stream %s", what);
    g_assert_true(g_file_set_contents(path, (const char *)stream, len,
                                      NULL));
    qtest_quit(tmem_migrate_from_file(cmd_line, path, logf, &st));
    g_assert_true(g_file_get_contents(logf, &log, NULL, NULL));
    g_test_message("destination said: %s", log);
    g_assert_cmpstr(st, ==, "failed");
    g_assert_nonnull(strstr(log, why));
}

/*
 * Test: a block node's blocks are guest state.  snapshot-save keeps
 * them in the vmstate and snapshot-load brings them back over later
 * writes and discards; a migration carries them, spilled ones
 * included, to a destination that reads back every byte.  A destination
 * whose node is smaller than the blocks sent, or a stream with a block
 * past the end or an unknown record, fails the load cleanly.
 */
static void test_block_migrate(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 512 + 3;
    uint8_t rec[33] = { 2 };    /* PAGE, slot 0, oid 0, index 2000 */
    TblkEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc0(TBLK_SIZE);
    g_autofree uint8_t *other = g_malloc0(TBLK_SIZE);
    g_autofree char *stream = g_build_filename(env->dir, "stream", NULL);
    g_autofree char *logf = g_build_filename(env->dir, "dst.log", NULL);
    g_autofree char *small = NULL;
    g_autofree char *st = NULL;
    g_autofree char *dst_st = NULL;
    g_autofree uint8_t *buf = NULL;
    uint8_t *p, *copy;
    QTestState *dst;
    size_t len, off;
    char *out;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    /* 2 MiB into tb1's 256 KiB budget, and three blocks near its end */
    tblk_fill(want, 0, 512, 7000);
    tblk_fill(want, 2000, 3, 8000);
    tblk_write(c->qts, env, "tb1", want, 0, 512 * PAGE_4K);
    tblk_write(c->qts, env, "tb1", want, 2000 * PAGE_4K, 3 * PAGE_4K);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     npages);
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_spilled"), >, 0);

    /* savevm snapshots every disk, and a tmem node has no snapshots */
    out = qtest_hmp(c->qts, "savevm blk");
    g_assert_nonnull(strstr(out, "is writable but does not support "
                                 "snapshots"));
    g_free(out);

    /* a snapshot, then other data and a discard, then the snapshot back */
    tblk_snapshot(c->qts, "snapshot-save", "blk");
    tblk_fill(other, 0, 64, 9000);
    tblk_write(c->qts, env, "tb1", other, 0, 64 * PAGE_4K);
    tblk_io(c->qts, "tb1", "discard 8192000 12288");
    tblk_snapshot(c->qts, "snapshot-load", "blk");
    g_assert_cmpuint(tblk_store_stat(c->qts, "st1", "pages_persistent"), ==,
                     npages);
    tblk_verify(c->qts, env, "tb1", want, TBLK_SIZE);

    st = tmem_migrate_to_file(c->qts, stream);
    g_assert_cmpstr(st, ==, "completed");
    dst = tmem_migrate_from_file(env->cmd_line, stream, logf, &dst_st);
    g_assert_cmpstr(dst_st, ==, "completed");
    g_assert_cmpuint(tblk_store_stat(dst, "st1", "pages_persistent"), ==,
                     npages);
    tblk_verify(dst, env, "tb1", want, TBLK_SIZE);
    /* loaded over the budget if need be, then spilled back under it */
    tblk_wait_ram(dst, "st1", 256 * KiB);
    qtest_quit(dst);

    /* a destination whose tb1 is half the size */
    small = g_strdup(env->cmd_line);
    p = (uint8_t *)strstr(small, "node-name=tb1,store=st1,size=8388608");
    g_assert_nonnull(p);
    memcpy(strstr((char *)p, "8388608"), "4194304", 7);
    g_assert_true(g_file_get_contents(stream, (char **)&buf, &len, NULL));
    tblk_expect_bad(env, small, "into a smaller node", buf, len,
                    "cannot hold");

    /* block 2000's record in tb1's live section (backends/tmem-live.c) */
    stl_be_p(rec + 29, 2000);
    p = memmem(buf, len, rec, sizeof(rec));
    g_assert_nonnull(p);
    off = p - buf;
    g_assert_null(memmem(p + 1, buf + len - p - 1, rec, sizeof(rec)));
    copy = g_memdup2(buf, len);
    stl_be_p(copy + off + 29, TBLK_PAGES);
    tblk_expect_bad(env, env->cmd_line, "with a block past the end", copy,
                    len, "cannot hold");
    memcpy(copy, buf, len);
    stl_be_p(copy + off + 1, 1);
    tblk_expect_bad(env, env->cmd_line, "with a block of slot 1", copy,
                    len, "has no pool");
    memcpy(copy, buf, len);
    copy[off] = 7;
    tblk_expect_bad(env, env->cmd_line, "with record type 7", copy, len,
                    "record type");
    g_free(copy);
}

/* Wait until @rec is in the stream being written to @path */
static void tblk_wait_sent(QTestState *qts, const char *path,
                           const uint8_t *rec, size_t len)
{
    gint64 start = g_get_monotonic_time();

    for (;;) {
        g_autofree char *buf = NULL;
        QDict *rsp;
        size_t n;
        bool sent;

        sent = g_file_get_contents(path, &buf, &n, NULL) &&
               memmem(buf, n, rec, len);
        if (sent) {
            return;
        }
        /* not over yet: the test's changes must land while it runs */
        rsp = qtest_qmp_assert_success_ref(qts,
                                           "{'execute': 'query-migrate'}");
        g_assert_cmpstr(qdict_get_try_str(rsp, "status"), !=, "completed");
        qobject_unref(rsp);
        g_assert_cmpint(g_get_monotonic_time() - start, <, TMEM_TIMEOUT_US);
        g_usleep(20 * 1000);
    }
}

/*
 * Test: pre-copy of a block node.  The migration is throttled; once block
 * 48 is in the stream, the test rewrites blocks 0-63 and discards
 * 100-115 while it runs, then lets it finish.  Block 48 must have
 * travelled at least twice, as it was and, last, as it is; the
 * destination must read back every byte as the source has it.
 */
static void test_block_migrate_live(void *obj, void *data,
                                    QGuestAllocator *alloc)
{
    TblkEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc0(TBLK_SIZE);
    g_autofree uint8_t *old = g_malloc(PAGE_4K);
    g_autofree char *stream = g_build_filename(env->dir, "stream", NULL);
    g_autofree char *logf = g_build_filename(env->dir, "dst.log", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    g_autofree char *st = NULL;
    g_autofree uint8_t *buf = NULL;
    /* PAGE, slot 0, oid 0, index 48, RAW: block 48 as it travels */
    uint8_t rec[34] = { 2, [32] = 48, [33] = 3 };
    uint8_t *p, *last = NULL;
    unsigned seen = 0;
    QTestState *dst;
    size_t len;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    tblk_fill(want, 0, 512, 7000);
    memcpy(old, want + 48 * PAGE_4K, PAGE_4K);
    tblk_write(c->qts, env, "tb1", want, 0, 512 * PAGE_4K);

    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate-set-parameters',"
                             "'arguments': {'max-bandwidth': 262144}}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    tblk_wait_sent(c->qts, stream, rec, sizeof(rec));
    tblk_fill(want, 0, 64, 9000);
    tblk_write(c->qts, env, "tb1", want, 0, 64 * PAGE_4K);
    tblk_io(c->qts, "tb1", "discard 409600 65536");
    memset(want + 100 * PAGE_4K, 0, 16 * PAGE_4K);
    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate-set-parameters',"
                             "'arguments': {'max-bandwidth': 1073741824}}");
    st = tmem_migrate_wait(c->qts);
    g_assert_cmpstr(st, ==, "completed");

    g_assert_true(g_file_get_contents(stream, (char **)&buf, &len, NULL));
    for (p = buf; (p = memmem(p, buf + len - p, rec, sizeof(rec))); p++) {
        g_assert_true(p + 34 + PAGE_4K <= buf + len);
        if (!seen++) {
            g_assert_cmpmem(p + 34, PAGE_4K, old, PAGE_4K);
        }
        last = p;
    }
    g_assert_cmpuint(seen, >=, 2);
    g_assert_cmpmem(last + 34, PAGE_4K, want + 48 * PAGE_4K, PAGE_4K);

    g_free(st);
    dst = tmem_migrate_from_file(env->cmd_line, stream, logf, &st);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_cmpuint(tblk_store_stat(dst, "st1", "pages_persistent"), ==,
                     512 - 16);
    tblk_verify(dst, env, "tb1", want, TBLK_SIZE);
    qtest_quit(dst);
    unlink(stream);
}

static void register_virtio_tmem_store_test(void)
{
    QOSGraphTestOptions opts = {
        .before = tmem_store_setup,
    };
    QOSGraphTestOptions migrate = {
        .before = tmem_store_migrate_setup,
    };

    qos_add_test("store-shared", "virtio-tmem", test_store_shared, &opts);
    qos_add_test("store-errors", "virtio-tmem", test_store_errors, &opts);
    qos_add_test("block-rw", "virtio-tmem", test_block_rw, &opts);
    qos_add_test("block-spill", "virtio-tmem", test_block_spill, &opts);
    qos_add_test("block-migrate", "virtio-tmem", test_block_migrate,
                 &migrate);
    qos_add_test("block-migrate-live", "virtio-tmem", test_block_migrate_live,
                 &migrate);
}

libqos_init(register_virtio_tmem_store_test);
