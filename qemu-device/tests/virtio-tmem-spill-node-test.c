/*
 * QTest testcase for the virtio-tmem device: a store spilling to a
 * block node (tmem-store spill-node=)
 *
 * Persistent pages over budget go to a raw file node through the block
 * layer and all come back, with the device in the main loop (where the
 * store declines to spill inline and its reclaim thread spills) and in
 * an iothread; the bytes land in the node's image; the tmem block
 * node's batch reads reach the node merged, and a drain of all nodes
 * while one of them waits for the spill node ends; bad configurations are
 * refused with a reason, at run time too; an NBD server that goes
 * away for less than reconnect-delay only stalls the gets, one that
 * stays away fails them without losing a page.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "qemu/module.h"
#include "qobject/qdict.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "virtio-tmem-util.h"

#define SPILL_MAX   (64 * MiB)

typedef struct SpillEnv {
    char *dir;
    char *img;
    bool iothread;          /* the device's queues run in an iothread */
    char *sock;             /* NBD: the server's socket */
    GPid nbd;               /* NBD: the server, or 0 */
} SpillEnv;

static void spill_env_free(void *opaque)
{
    SpillEnv *env = opaque;
    g_autofree char *small = g_build_filename(env->dir, "small.raw", NULL);

    if (env->nbd) {
        kill(env->nbd, SIGTERM);
        waitpid(env->nbd, NULL, 0);
    }
    if (env->sock) {
        unlink(env->sock);
        g_free(env->sock);
    }
    unlink(env->img);
    unlink(small);
    g_rmdir(env->dir);
    g_free(env->img);
    g_free(env->dir);
    g_free(env);
}

/* A sparse raw image of @bytes in a fresh directory. */
static SpillEnv *spill_env_new(uint64_t bytes)
{
    SpillEnv *env = g_new0(SpillEnv, 1);
    int fd;

    env->dir = g_dir_make_tmp("qtest-tmem-spill-node.XXXXXX", NULL);
    g_assert_nonnull(env->dir);
    env->img = g_build_filename(env->dir, "spill.raw", NULL);
    fd = open(env->img, O_CREAT | O_RDWR | O_TRUNC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, bytes), ==, 0);
    close(fd);
    g_test_queue_destroy(spill_env_free, env);
    return env;
}

/* Store sst: 1 MiB of RAM, spilling to node sp0, a raw file. */
static void *spill_node_setup(GString *cmd_line, void *arg)
{
    SpillEnv *env = spill_env_new(SPILL_MAX);

    g_string_append_printf(cmd_line,
        " -blockdev driver=file,filename=%s,node-name=sp0"
        " -object tmem-store,id=sst,budget=1M,spill-node=sp0,"
        "spill-max=%" PRIu64
        " -global virtio-tmem-pci.store=sst%s",
        env->img, (uint64_t)SPILL_MAX, (const char *)arg);
    env->iothread = *(const char *)arg;
    return env;
}

/* The same, with every spill read and write batch 1 s late. */
static void *spill_node_slow_setup(GString *cmd_line, void *arg)
{
    /* QEMU inherits it; the test unsets it once QEMU runs */
    g_setenv("TMEM_TEST_SPILL_DELAY_MS", "1000", true);
    return spill_node_setup(cmd_line, arg);
}

/* Whether the store's medium has its node: stats' spill_node.attached */
static bool spill_node_attached(QTestState *qts, const char *path)
{
    QDict *stats = qtest_qmp_assert_success_ref(qts, "{'execute': "
        "'qom-get', 'arguments': {'path': %s, 'property': 'stats'}}", path);
    QDict *sn = qdict_get_qdict(stats, "spill_node");
    bool attached;

    g_assert_nonnull(sn);
    attached = qdict_get_bool(sn, "attached");
    qobject_unref(stats);
    return attached;
}

/* The budget is the store's, not the device's. */
static void store_set_budget(TmemCtx *c, uint64_t bytes)
{
    qtest_qmp_assert_success(c->qts, "{'execute': 'qom-set', 'arguments': "
        "{'path': '/objects/sst', 'property': 'budget', 'value': %" PRIu64
        "}}", bytes);
}

/* Bytes of the image that are allocated: the spill reached the file. */
static uint64_t image_allocated(void *env)
{
    struct stat st;

    g_assert_cmpint(stat(((SpillEnv *)env)->img, &st), ==, 0);
    return (uint64_t)st.st_blocks * 512;
}

/*
 * Put pages [0, @n) of @oid one request each, without credits, into a
 * store with no RAM to spare.  Returns how many the device took: all of
 * them when it spills inline (iothread), those the reclaim thread made
 * room for in time when the store declines to spill in the main loop.
 */
static unsigned put_tight(TmemCtx *c, uint32_t pool, uint64_t oid,
                          unsigned seed, unsigned n, bool *took)
{
    g_autofree uint8_t *page = g_malloc(4096);
    unsigned i, ok = 0;

    for (i = 0; i < n; i++) {
        TmemOp op;

        tmem_fill_random(page, 4096, seed + i);
        op = tmem_op_put(pool, oid, i, page, 4096);
        tmem_run(c, &op, 1);
        tmem_assert_status2(&op, VIRTIO_TMEM_S_OK, VIRTIO_TMEM_S_NOSPACE);
        took[i] = op.status == VIRTIO_TMEM_S_OK;
        ok += took[i];
    }
    return ok;
}

/* GET page @i of tmem_put_random(@oid, @seed): its status. */
static uint8_t get_one(TmemCtx *c, uint32_t pool, uint64_t oid,
                       unsigned seed, unsigned i)
{
    g_autofree uint8_t *want = g_malloc(4096);
    g_autofree uint8_t *back = g_malloc(4096);
    TmemOp op = tmem_op_get(VIRTIO_TMEM_OP_GET, pool, oid, i, back, 4096);

    tmem_run(c, &op, 1);
    if (op.status == VIRTIO_TMEM_S_OK) {
        tmem_fill_random(want, 4096, seed + i);
        g_assert_cmpmem(back, 4096, want, 4096);
    }
    return op.status;
}

/* Every page put_tight() says was taken comes back; the rest miss. */
static void check_tight(TmemCtx *c, uint32_t pool, uint64_t oid,
                        unsigned seed, unsigned n, const bool *took)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        g_assert_cmpuint(get_one(c, pool, oid, seed, i), ==,
                         took[i] ? VIRTIO_TMEM_S_OK : VIRTIO_TMEM_S_MISS);
    }
}

/*
 * Test: 4 MiB of persistent pages in a store cut to 1 MiB spill to the
 * node and come back byte for byte, and the node's counters say so.
 * Then puts with no RAM to spare: with an iothread the device spills
 * them inline; in the main loop the store declines to (no write error,
 * no back-off), the put is refused as with a full spill, and nothing
 * it took is lost.
 */
static void test_spill_node(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 4 * MiB / 4096, ntight = 256;
    SpillEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree bool *took = g_new0(bool, ntight);
    unsigned taken;
    uint32_t pp;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    c->split = true;
    g_assert_cmpuint(tmem_stat(c, "spill_max"), ==, SPILL_MAX);
    g_assert_true(spill_node_attached(c->qts, "/objects/sst"));
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "writes"), ==, 0);

    pp = tmem_pool_new(c, POOL_P4K);
    store_set_budget(c, 64 * MiB);
    tmem_put_random(c, pp, 80, 800, npages);
    store_set_budget(c, 1 * MiB);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);
    g_assert_cmpuint(tmem_stat(c, "spills"), >, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "writes"), >, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "write_bytes"), >=,
                     tmem_stat(c, "spill_used") / 2);
    g_assert_cmpuint(image_allocated(env), >, 0);

    tmem_check_random(c, pp, 80, 800, npages);
    g_assert_cmpuint(tmem_stat(c, "get_hits_spill"), >, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "reads"), >, 0);

    taken = put_tight(c, pp, 81, 5000, ntight, took);
    if (env->iothread) {
        g_assert_cmpuint(taken, ==, ntight);
        g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "declined"), ==, 0);
    } else {
        g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "declined"), >, 0);
    }
    g_test_message("%u of %u puts with no RAM to spare taken", taken,
                   ntight);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);
    check_tight(c, pp, 81, 5000, ntight, took);
    tmem_check_random(c, pp, 80, 800, npages);
    g_assert_cmpuint(tmem_stat(c, "spill_write_errors"), ==, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "write_errors"), ==, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "read_errors"), ==, 0);

    tmem_pool_destroy(c, pp);
    tmem_wait_stat(c, "pages_persistent", true, 0);
    tmem_wait_stat(c, "spill_used", true, 0);
    tmem_stop(c);
}

/*
 * Test: a spill node is refused with a reason when it does not exist,
 * is smaller than spill-max, or comes with spill= or without spill-max;
 * one added at run time works at once.
 */
static void test_spill_node_errors(void *obj, void *data,
                                   QGuestAllocator *alloc)
{
    SpillEnv *env = data;
    g_autofree char *small = g_build_filename(env->dir, "small.raw", NULL);
    TmemCtx ctx, *c = &ctx;
    static const struct {
        const char *args;
        const char *why;
    } bad[] = {
        { "'spill-node': 'nope', 'spill-max': 1048576",
          "nope" },
        { "'spill-node': 'small', 'spill-max': 67108864",
          "spill-max asks for 67108864" },
        { "'spill-node': 'sp0'", "spill-node needs spill-max" },
        { "'spill-node': 'sp0', 'spill': '/tmp', 'spill-max': 1048576",
          "spill and spill-node exclude each other" },
        /* sp0 is the store sst's, which nobody else may take */
        { "'spill-node': 'sp0', 'spill-max': 1048576",
          "Cannot change iothread of active block backend" },
    };
    unsigned i;
    int fd;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    fd = open(small, O_CREAT | O_RDWR | O_TRUNC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 1 * MiB), ==, 0);
    close(fd);
    qtest_qmp_assert_success(c->qts, "{'execute': 'blockdev-add', "
        "'arguments': {'driver': 'file', 'node-name': 'small', "
        "'filename': %s}}", small);
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autofree char *cmd = g_strdup_printf(
            "{'execute': 'object-add', 'arguments': {'qom-type': "
            "'tmem-store', 'id': 'x', 'budget': 1048576, %s}}", bad[i].args);

        tmem_qmp_expect_error(c->qts, cmd, bad[i].why);
    }
    /* added at run time, the store takes its node at once */
    qtest_qmp_assert_success(c->qts, "{'execute': 'object-add', "
        "'arguments': {'qom-type': 'tmem-store', 'id': 'x', "
        "'budget': 1048576, 'spill-node': 'small', 'spill-max': 1048576}}");
    g_assert_true(spill_node_attached(c->qts, "/objects/x"));
    /* the store holds the node: it cannot go before the store */
    qobject_unref(qtest_qmp_assert_failure_ref(c->qts,
        "{'execute': 'blockdev-del', 'arguments': {'node-name': 'small'}}"));
    qtest_qmp_assert_success(c->qts, "{'execute': 'object-del', "
        "'arguments': {'id': 'x'}}");
    qtest_qmp_assert_success(c->qts, "{'execute': 'blockdev-del', "
        "'arguments': {'node-name': 'small'}}");
    tmem_stop(c);
}

/*
 * NBD: qemu-nbd serves the image on a unix socket; the test stops it and
 * starts it again under the running QEMU.
 */
#define NBD_RECONNECT_S     5

/* Start qemu-nbd on env->sock, after @delay_s seconds; wait for it if 0. */
static void nbd_start(SpillEnv *env, unsigned delay_s)
{
    g_autofree char *cmd = g_strdup_printf(
        "sleep %u; exec qemu-nbd --socket=%s --format=raw --persistent "
        "--cache=writeback %s", delay_s, env->sock, env->img);
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", cmd, NULL };
    g_autoptr(GError) err = NULL;
    int i;

    if (!delay_s) {
        unlink(env->sock);
    }
    g_assert_true(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &env->nbd, &err));
    for (i = 0; !delay_s && i < 500 && !g_file_test(env->sock,
                                                      G_FILE_TEST_EXISTS);
         i++) {
        g_usleep(10 * 1000);
    }
    g_assert_true(delay_s || g_file_test(env->sock, G_FILE_TEST_EXISTS));
}

static void nbd_stop(SpillEnv *env)
{
    g_assert_cmpint(kill(env->nbd, SIGTERM), ==, 0);
    g_assert_cmpint(waitpid(env->nbd, NULL, 0), ==, env->nbd);
    env->nbd = 0;
}

/* Store sst spills to node sp0, NBD; the device runs in an iothread. */
static void *spill_nbd_setup(GString *cmd_line, void *arg)
{
    SpillEnv *env = spill_env_new(SPILL_MAX);

    env->iothread = true;
    env->sock = g_build_filename(env->dir, "nbd.sock", NULL);
    nbd_start(env, 0);
    g_string_append_printf(cmd_line,
        " -blockdev driver=nbd,server.type=unix,server.path=%s,"
        "reconnect-delay=%u,node-name=sp0"
        " -object tmem-store,id=sst,budget=1M,spill-node=sp0,"
        "spill-max=%" PRIu64
        " -object iothread,id=io0 -global virtio-tmem-pci.iothread=io0"
        " -global virtio-tmem-pci.store=sst",
        env->sock, NBD_RECONNECT_S, (uint64_t)SPILL_MAX);
    return env;
}

/*
 * Test: spilled pages on an NBD server that goes away.  For less than
 * reconnect-delay: the gets wait for it, every byte comes back, and the
 * stall shows in max_op_ms.  For longer: a get of a spilled page fails
 * with S_IO (the guest may retry), QMP answers meanwhile, the failure
 * counts and raises TMEM_SPILL_NODE_ERROR, and once the server is back
 * the same page reads back intact.
 */
static void test_spill_nbd(void *obj, void *data, QGuestAllocator *alloc)
{
    const unsigned npages = 4 * MiB / 4096;
    SpillEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    QDict *ev, *evd;
    uint8_t st;
    uint32_t pp;
    gint64 t;
    int tries;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    c->split = true;
    g_assert_true(spill_node_attached(c->qts, "/objects/sst"));
    pp = tmem_pool_new(c, POOL_P4K);
    store_set_budget(c, 64 * MiB);
    tmem_put_random(c, pp, 80, 800, npages);
    store_set_budget(c, 1 * MiB);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "writes"), >, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "max_op_ms"), <, 1000);

    /* away for 2 s, less than reconnect-delay: the gets wait */
    nbd_stop(env);
    nbd_start(env, 2);
    t = g_get_monotonic_time();
    tmem_check_random(c, pp, 80, 800, npages);
    g_test_message("gets over a 2 s outage: %" PRId64 " ms",
                   (g_get_monotonic_time() - t) / 1000);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "read_errors"), ==, 0);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "max_op_ms"), >=, 1000);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "slow_ops"), >, 0);

    /* away for good: a spilled page's get fails, and says so */
    nbd_stop(env);
    st = get_one(c, pp, 80, 800, 0);
    g_assert_cmpuint(st, ==, VIRTIO_TMEM_S_IO);
    ev = qtest_qmp_eventwait_ref(c->qts, "TMEM_SPILL_NODE_ERROR");
    evd = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(evd, "node"), ==, "sp0");
    g_assert_cmpstr(qdict_get_str(evd, "operation"), ==, "read");
    qobject_unref(ev);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "read_errors"), >, 0);
    g_assert_cmpuint(tmem_stat(c, "spill_read_errors"), >, 0);
    g_assert_cmpuint(tmem_stat(c, "pages_persistent"), ==, npages);

    /* back: the page was not dropped */
    nbd_start(env, 0);
    for (tries = 0; tries < 60; tries++) {
        st = get_one(c, pp, 80, 800, 0);
        if (st == VIRTIO_TMEM_S_OK) {
            break;
        }
        g_assert_cmpuint(st, ==, VIRTIO_TMEM_S_IO);
        g_usleep(500 * 1000);
    }
    g_assert_cmpuint(st, ==, VIRTIO_TMEM_S_OK);
    tmem_check_random(c, pp, 80, 800, npages);

    tmem_pool_destroy(c, pp);
    tmem_wait_stat(c, "pages_persistent", true, 0);
    tmem_stop(c);
}

/*
 * A tmem block node "tb" of @size bytes on store sst, holding random
 * pages (@want gets them), written with a backup job: front to back,
 * one request at a time, as a guest writes a file (the pages spill in
 * that order), if @in_order, else by the job's parallel workers (which
 * interleave them).  Returns once the store is within its 1 MiB budget.
 */
static void block_node_fill(TmemCtx *c, SpillEnv *env, uint8_t *want,
                            uint64_t size, unsigned seed, bool in_order)
{
    g_autofree char *src = g_build_filename(env->dir, "src.img", NULL);
    unsigned i;

    for (i = 0; i < size / PAGE_4K; i++) {
        tmem_fill_random(want + (size_t)i * PAGE_4K, PAGE_4K, seed + i);
    }
    qtest_qmp_assert_success(c->qts, "{'execute': 'blockdev-add', "
        "'arguments': {'driver': 'tmem', 'node-name': 'tb', "
        "'store': 'sst', 'size': %" PRIu64 "}}", size);
    tmem_blk_file_node(c->qts, env->dir, "src", "src.img", want, size);
    qtest_qmp_assert_success(c->qts, "{'execute': 'blockdev-backup', "
        "'arguments': {'job-id': 'copy', 'device': 'src', 'target': 'tb', "
        "'sync': 'full', 'x-perf': {'max-workers': %d}}}",
        in_order ? 1 : 64);
    g_assert_null(tmem_blk_copy_wait(c->qts));
    tmem_blk_del_node(c->qts, "src");
    unlink(src);
    tmem_wait_stat(c, "ram_used", true, 1 * MiB);
    g_assert_cmpuint(tmem_stat(c, "pages_spilled"), >, 0);
}

/* Start reading all of tb back into a file, with a backup job. */
static void block_node_read_start(TmemCtx *c, SpillEnv *env, uint64_t size)
{
    tmem_blk_file_node(c->qts, env->dir, "dump", "dump.img", NULL, size);
    tmem_blk_copy_start(c->qts, "tb", "dump", 0);
}

/* ...and once it is done, tb's @size bytes must be @want; tb goes. */
static void block_node_read_check(TmemCtx *c, SpillEnv *env,
                                  const uint8_t *want, uint64_t size)
{
    g_autofree char *dump = g_build_filename(env->dir, "dump.img", NULL);
    g_autofree char *got = NULL;
    gsize len;

    g_assert_null(tmem_blk_copy_wait(c->qts));
    tmem_blk_del_node(c->qts, "dump");
    g_assert_true(g_file_get_contents(dump, &got, &len, NULL));
    g_assert_cmpmem(got, len, want, size);
    unlink(dump);
    g_assert_cmpuint(tmem_sub_stat(c, "spill_node", "read_errors"), ==, 0);
    tmem_blk_del_node(c->qts, "tb");
}

/*
 * Test: the tmem block node (for guests without frontswap) on a store
 * that spills to a node: 4 MiB of random pages written in order through
 * a 1 MiB budget read back whole with a backup job, whose batch reads
 * reach the node as a few large requests (neighbours on the node merged
 * into one extent by the host library), not one per page.
 */
static void test_spill_node_block(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    SpillEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc(4 * MiB);
    uint64_t reads, hits;

    tmem_init(c, obj, alloc, TMEM_FEATURES);
    block_node_fill(c, env, want, 4 * MiB, 900, true);
    reads = tmem_sub_stat(c, "spill_node", "reads");
    hits = tmem_stat(c, "get_hits_spill");
    block_node_read_start(c, env, 4 * MiB);
    block_node_read_check(c, env, want, 4 * MiB);
    hits = tmem_stat(c, "get_hits_spill") - hits;
    reads = tmem_sub_stat(c, "spill_node", "reads") - reads;
    g_test_message("%" PRIu64 " spilled pages read back in %" PRIu64
                   " requests to the node", hits, reads);
    g_assert_cmpuint(hits, >, 4 * MiB / PAGE_4K / 2);
    g_assert_cmpuint(reads, <, hits / 4);
    tmem_wait_stat(c, "spill_used", true, 0);
    tmem_stop(c);
}

static void spill_drain_hung(int sig)
{
    static const char msg[] = "spill-node-drain: 'stop' did not return in "
                              "30 s: the drain deadlocked\n";

    /* the main thread waits for QEMU forever: end the test here */
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        _exit(2);
    }
    abort();
}

/*
 * Test: a drain of every node (vm stop here; also migration's end,
 * snapshots) while a tmem block node's reads wait for their store to
 * read spilled pages from the spill node.  The drain waits for the tmem
 * node's requests, which wait for the spill node: the spill node must
 * take those reads during the drain, not hold them until the drain ends,
 * which would then never come.  The store reads 1 s late
 * (TMEM_TEST_SPILL_DELAY_MS), so the drain begins while they wait.
 */
static void test_spill_node_drain(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    SpillEnv *env = data;
    TmemCtx ctx, *c = &ctx;
    g_autofree uint8_t *want = g_malloc(2 * MiB);
    struct sigaction hung = { .sa_handler = spill_drain_hung };
    gint64 t0;

    g_unsetenv("TMEM_TEST_SPILL_DELAY_MS");
    tmem_init(c, obj, alloc, TMEM_FEATURES);
    block_node_fill(c, env, want, 2 * MiB, 700, false);

    /* a job reads the node back; its reads of spilled pages wait 1 s */
    block_node_read_start(c, env, 2 * MiB);
    g_usleep(300 * 1000);
    sigaction(SIGALRM, &hung, NULL);
    alarm(30);
    t0 = g_get_monotonic_time();
    qtest_qmp_assert_success(c->qts, "{'execute': 'stop'}");
    alarm(0);
    g_test_message("stop took %" PRId64 " ms",
                   (g_get_monotonic_time() - t0) / 1000);
    qtest_qmp_assert_success(c->qts, "{'execute': 'cont'}");

    /* the job ends, and every byte came back */
    block_node_read_check(c, env, want, 2 * MiB);
    g_assert_cmpuint(tmem_stat(c, "get_hits_spill"), >, 0);
    tmem_stop(c);
}

static void register_virtio_tmem_spill_node_test(void)
{
    QOSGraphTestOptions main_loop = {
        .before = spill_node_setup,
        .arg = (void *)"",
    };
    QOSGraphTestOptions slow = {
        .before = spill_node_slow_setup,
        .arg = (void *)"",
    };
    QOSGraphTestOptions nbd = { .before = spill_nbd_setup };
    QOSGraphTestOptions iothread = {
        .before = spill_node_setup,
        .arg = (void *)" -object iothread,id=io0"
                       " -global virtio-tmem-pci.iothread=io0",
    };

    qos_add_test("spill-node", "virtio-tmem", test_spill_node, &main_loop);
    qos_add_test("spill-node-iothread", "virtio-tmem", test_spill_node,
                 &iothread);
    qos_add_test("spill-node-errors", "virtio-tmem", test_spill_node_errors,
                 &main_loop);
    qos_add_test("spill-node-block", "virtio-tmem", test_spill_node_block,
                 &main_loop);
    qos_add_test("spill-node-drain", "virtio-tmem", test_spill_node_drain,
                 &slow);
    /* qemu-nbd comes with qemu-utils, which scripts/build-qemu.sh installs */
    qos_add_test("spill-node-nbd", "virtio-tmem", test_spill_nbd, &nbd);
}

libqos_init(register_virtio_tmem_spill_node_test);
