/*
 * QTest helpers for the virtio-tmem tests
 *
 * A TmemCtx is one driver instance: the features it negotiated, its
 * queues and its event buffers.  A TmemOp is one operation with its data
 * and, once run, its status.  tmem_run() sends a batch of them as one
 * descriptor chain the way the guest driver does and checks the parts
 * of the answer every request must get right.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_VIRTIO_TMEM_UTIL_H
#define TESTS_VIRTIO_TMEM_UTIL_H

#include "qemu/units.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "libqos/qgraph.h"
#include "libqos/virtio.h"
#include "libqos/virtio-tmem.h"

#define TMEM_TIMEOUT_US         (30 * G_USEC_PER_SEC)
#define TMEM_SETTLE_US          (10 * G_USEC_PER_SEC)

#define PAGE_4K                 4096
#define PAGE_64K                65536
#define BATCH                   64

/* Device defaults (the properties' defaults) */
#define DEF_NUM_QUEUES          1
#define DEF_MAX_OPS             256
#define DEF_MAX_CREDITS         1024
#define DEF_BUDGET              (64 * MiB)

/* eventq + request queues, as many as the tests ask for */
#define TMEM_MAX_VQS            9
/* event buffers kept posted; buffer i is descriptor i */
#define TMEM_EVENT_BUFS         16
/* keys an EVICTED event can carry in a VIRTIO_TMEM_EVENT_MIN buffer */
#define TMEM_EVENT_KEYS         ((VIRTIO_TMEM_EVENT_MIN - \
                                  sizeof(struct virtio_tmem_event)) / \
                                 sizeof(struct virtio_tmem_key))

#define POOL_P4K   VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_PERSISTENT, 12)
#define POOL_E4K   VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_EPHEMERAL, 12)
#define POOL_P64K  VIRTIO_TMEM_POOL_ARG(VIRTIO_TMEM_POOL_PERSISTENT, 16)

#define BAD_POOL                0xdeadbeefu
#define BAD_OP                  0x7f

/* What most tests negotiate: everything but eviction reports */
#define TMEM_FEATURES  ((1ull << VIRTIO_F_VERSION_1) |          \
                        (1ull << VIRTIO_RING_F_EVENT_IDX) |     \
                        (1ull << VIRTIO_TMEM_F_EPHEMERAL) |     \
                        (1ull << VIRTIO_TMEM_F_PAGE_64K) |      \
                        (1ull << VIRTIO_TMEM_F_CREDITS) |      \
                        (1ull << VIRTIO_TMEM_F_GET_RANGE) |     \
                        (1ull << VIRTIO_TMEM_F_MISS_REPORT) |   \
                        (1ull << VIRTIO_TMEM_F_OVERTAKE))
#define TMEM_FEATURES_ALL  (TMEM_FEATURES |                     \
                            (1ull << VIRTIO_TMEM_F_EVICT_REPORT))

typedef struct TmemCtx {
    QVirtioTmem *tmem;
    QVirtioDevice *vdev;
    QTestState *qts;
    QGuestAllocator *alloc;
    uint64_t features;
    uint16_t num_queues;
    uint16_t max_ops;
    unsigned nvqs;
    QVirtQueue *vq[TMEM_MAX_VQS];
    uint64_t event_bufs;
    /* one descriptor per header, op array and page, not one per part */
    bool split;
    uint32_t last_credits;
    /* a pool left alive before a ring-level error, or -1 */
    int64_t live_pool;
    /* chains made available on request queues, and notifications sent */
    uint64_t chains;
    uint64_t kicks;
    /* if set, called once a request is kicked, before it is waited for */
    void (*while_running)(struct TmemCtx *c);
    /* the next chain takes descriptors after the last one's */
    bool keep_descs;
} TmemCtx;

/* A request written to guest memory and chained, not yet used */
typedef struct TmemPending {
    QVirtQueue *vq;
    uint32_t head;
    uint64_t raddr, waddr;
    size_t wlen;
} TmemPending;

/* One operation, its data and its result */
typedef struct TmemOp {
    uint8_t type;
    uint8_t flags;
    uint32_t pool;
    uint64_t oid[3];
    uint32_t index;
    uint32_t arg;
    uint32_t len;           /* PUT data or GET buffer bytes (all pages) */
    const uint8_t *data;    /* PUT */
    uint8_t *buf;           /* GETs: filled in on completion */
    uint8_t status;         /* out; 0xff: not written by the device */
    uint32_t value;         /* out */
} TmemOp;

/* One event read off the event queue, in host byte order but the keys */
typedef struct TmemEvent {
    uint16_t type;
    uint16_t count;
    uint32_t pool;
    uint64_t value;
    struct virtio_tmem_key keys[TMEM_EVENT_KEYS];
} TmemEvent;

/* Operations; oid words 1 and 2 are derived from @oid */
TmemOp tmem_op_key(uint8_t type, uint32_t pool, uint64_t oid,
                   uint32_t index);
TmemOp tmem_op_put(uint32_t pool, uint64_t oid, uint32_t index,
                   const uint8_t *data, uint32_t len);
TmemOp tmem_op_get(uint8_t type, uint32_t pool, uint64_t oid,
                   uint32_t index, uint8_t *buf, uint32_t len);
/* @count pages of @page bytes from @index, into @buf */
TmemOp tmem_op_get_range(uint32_t pool, uint64_t oid, uint32_t index,
                         uint32_t count, uint8_t *buf, uint32_t page);
TmemOp tmem_op_arg(uint8_t type, uint32_t arg);
TmemOp tmem_op_pool(uint8_t type, uint32_t pool);
/* Incompressible, reproducible page contents */
void tmem_fill_random(uint8_t *p, size_t len, uint64_t seed);

/* Statistics over QMP (qom-get stats) */
QDict *tmem_stats(TmemCtx *c);
uint64_t tmem_stat_of(QDict *stats, const char *name);
uint64_t tmem_stat(TmemCtx *c, const char *name);
/* Wait until stat @name is <= (@le) or >= @want, or fail. */
void tmem_wait_stat(TmemCtx *c, const char *name, bool le, uint64_t want);
void tmem_set_budget(TmemCtx *c, uint64_t bytes);
/* Run QMP command @json (plain JSON text); it must fail, saying @why. */
void tmem_qmp_expect_error(QTestState *qts, const char *json, const char *why);
/* Events sent, of one type: stats' "events" member */
uint64_t tmem_event_stat(TmemCtx *c, const char *type);
/* Stat @name of member @member of the stats ("events", "migration") */
uint64_t tmem_sub_stat(TmemCtx *c, const char *member, const char *name);

/* Bring-up: negotiate @want, set up the queues, post event buffers */
void tmem_init(TmemCtx *c, void *obj, QGuestAllocator *alloc,
               uint64_t want);
void tmem_start(TmemCtx *c, uint64_t want);
void tmem_stop(TmemCtx *c);
/* Reset the device and bring it up again with the same features. */
void tmem_reinit(TmemCtx *c);

/* Requests */
uint8_t *tmem_encode_hdr(const TmemOp *ops, unsigned nops,
                         const struct virtio_tmem_req *hdr, size_t *rlen);
uint8_t *tmem_encode(const TmemOp *ops, unsigned nops, uint16_t hdr_nops,
                     size_t *rlen);
size_t tmem_wlen(const TmemOp *ops, unsigned nops);
uint32_t tmem_add_chain(TmemCtx *c, QVirtQueue *vq,
                        uint64_t raddr, const uint32_t *rseg,
                        unsigned nr, uint64_t waddr,
                        const uint32_t *wseg, unsigned nw);
uint64_t tmem_used_elem_addr(QVirtQueue *vq, uint16_t slot);
uint16_t tmem_used_idx(TmemCtx *c, QVirtQueue *vq);
/* Make @head available and notify, unless the device said not to. */
void tmem_kick(TmemCtx *c, QVirtQueue *vq, uint32_t head);
uint32_t tmem_kick_wait(TmemCtx *c, QVirtQueue *vq, uint32_t head);
uint16_t tmem_run_hdr(TmemCtx *c, unsigned q, TmemOp *ops, unsigned nops,
                      const struct virtio_tmem_req *hdr, uint32_t *used_len);
/*
 * tmem_run_hdr() in steps: chain it; make it available (tmem_kick()) and
 * wait for it as you like; then read its results into @ops.
 */
void tmem_post(TmemCtx *c, unsigned q, const TmemOp *ops, unsigned nops,
               const struct virtio_tmem_req *hdr, TmemPending *p);
uint16_t tmem_finish(TmemCtx *c, TmemPending *p, TmemOp *ops,
                     unsigned nops);
/* Make @head available without notifying the device; the old avail idx. */
uint16_t tmem_avail(TmemCtx *c, QVirtQueue *vq, uint32_t head);
uint16_t tmem_run_q(TmemCtx *c, unsigned q, TmemOp *ops, unsigned nops);
/* One request on queue 1 in which every op must run. */
void tmem_run(TmemCtx *c, TmemOp *ops, unsigned nops);
void tmem_assert_status(const TmemOp *op, uint8_t want);
void tmem_assert_status2(const TmemOp *op, uint8_t want1, uint8_t want2);
uint32_t tmem_pool_new(TmemCtx *c, uint32_t arg);
void tmem_pool_destroy(TmemCtx *c, uint32_t pool);
void tmem_check_put_get(TmemCtx *c, uint32_t pool, uint32_t len,
                        uint64_t seed);
/* PUT (all accepted) or GET and compare @n random 4K pages of @oid */
void tmem_put_random(TmemCtx *c, uint32_t pool, uint64_t oid,
                     unsigned seed, unsigned n);
void tmem_check_random(TmemCtx *c, uint32_t pool, uint64_t oid,
                       unsigned seed, unsigned n);

/* Malformed chains: queue one raw, then expect NEEDS_RESET and reset */
void tmem_submit_raw(TmemCtx *c, const uint8_t *rbuf, size_t rlen,
                     size_t wlen);
void tmem_expect_broken(TmemCtx *c, const char *what);

/*
 * Events: the next one within @timeout_us (its buffer is posted again),
 * or the next of @type, skipping others.  False on timeout.
 */
bool tmem_event_next(TmemCtx *c, TmemEvent *ev, gint64 timeout_us);
bool tmem_event_wait(TmemCtx *c, uint16_t type, TmemEvent *ev,
                     gint64 timeout_us);

/*
 * Block nodes, for the store and spill-node tests.  A file node @node on
 * file @name in @dir of @size bytes, holding @data or zeros; deleting a
 * node; a backup job that copies all of node @from onto node @to (at
 * @speed bytes/s, or 0 for full speed), as a guest's reads and writes
 * would go, and waiting for it: NULL if it worked, else its error.
 */
void tmem_blk_file_node(QTestState *qts, const char *dir, const char *node,
                        const char *name, const uint8_t *data, uint64_t size);
void tmem_blk_del_node(QTestState *qts, const char *node);
void tmem_blk_copy_start(QTestState *qts, const char *from, const char *to,
                         uint64_t speed);
char *tmem_blk_copy_wait(QTestState *qts);

/*
 * Migration through a file.  tmem_migrate_wait() polls query-migrate
 * until completed or failed and returns which; tmem_migrate_to_file()
 * migrates @qts to @path.  tmem_migrate_from_file() starts a destination
 * with @cmd_line and -incoming defer, its stderr in @logf, loads @path
 * with exit-on-error off, stores the final status in *@status and
 * returns the destination, which must still answer QMP.
 */
char *tmem_migrate_wait(QTestState *qts);
char *tmem_migrate_to_file(QTestState *qts, const char *path);
QTestState *tmem_migrate_from_file(const char *cmd_line, const char *path,
                                   const char *logf, char **status);

#endif
