/*
 * virtio-tmem fuzz targets for the request queues
 *
 * The input is a program for a driver, not a descriptor chain: most of
 * its bytes pick operations, live pool ids, keys and page contents, and
 * the target turns them into well-formed requests, so the decoder and
 * the store behind it see what a driver sends.  A minority of requests
 * carry raw operations, corrupted fields or raw chains, so the
 * malformed paths stay covered.  The target is its own driver: it maps
 * the BAR once, builds split rings in guest memory it owns, and resets
 * the device (status 0) at the start of each input and whenever a
 * malformed chain broke it, so any number of inputs runs on one
 * machine.
 *
 * Requests run in batches: chains on one queue, one kick, then the
 * target waits until the device used them all.  It checks what came
 * back against a model of the pools: a GET that hits returns the last
 * page put there, a persistent pool loses nothing it accepted, and a
 * well-formed chain never breaks the device.  Any mismatch aborts.
 *
 * Targets: virtio-tmem-fuzz (main loop, 4 MiB budget, no spill) and
 * virtio-tmem-spill-iothread-fuzz (an iothread, a 256 KiB budget and a
 * 4 MiB spill file, so puts spill and gets read the spill back).
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/units.h"
#include "qom/object.h"
#include "hw/virtio/virtio-tmem.h"

#include "tests/qtest/libqtest.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-pci.h"
#include "tests/qtest/libqos/virtio-tmem.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_pci.h"
#include "standard-headers/linux/virtio_ring.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "fuzz.h"
#include "qos_fuzz.h"
#include "tmem_fuzz_util.h"

#define TMEM_FUZZ_QSIZE     256         /* entries of each ring */
#define TMEM_FUZZ_REQQS     2           /* num-queues on the command line */
#define TMEM_FUZZ_MAX_OPS   64          /* max-ops on the command line */
#define TMEM_FUZZ_ARENA     (4 * MiB)   /* guest memory for one batch */
#define TMEM_FUZZ_REQ_DATA  (512 * KiB) /* page data in one request */
#define TMEM_FUZZ_POOLS     8           /* pools the model follows */
#define TMEM_FUZZ_EVENTS    16          /* event buffers per start */
#define TMEM_FUZZ_WAIT_US   (30 * G_USEC_PER_SEC)

typedef struct TmemFuzzQueue {
    uint16_t index;
    uint64_t desc, avail, used;         /* guest addresses of the ring */
    uint64_t notify;                    /* BAR offset of its notifier */
    struct vring_desc d[TMEM_FUZZ_QSIZE];   /* this batch's descriptors */
    uint16_t ndesc;
    uint16_t head;                      /* first descriptor of the chain */
    uint16_t avail_idx;                 /* chains made available */
    uint16_t used_idx;                  /* chains seen used */
} TmemFuzzQueue;

typedef struct TmemFuzzKey {
    uint64_t oid[3];
    uint32_t index;
    uint32_t pad;
    uint64_t sum;                       /* the page's checksum */
} TmemFuzzKey;

typedef struct TmemFuzzPool {
    uint32_t id;                        /* the driver's id */
    uint8_t kind;                       /* VIRTIO_TMEM_POOL_* */
    uint8_t shift;
    GHashTable *pages;                  /* TmemFuzzKey -> itself */
} TmemFuzzPool;

/* One operation of the batch, to check its status once it ran. */
typedef struct TmemFuzzOp {
    uint8_t type;
    int pool;                           /* index in pools[], or -1 */
    TmemFuzzKey key;
    uint32_t arg;
    uint64_t buf;                       /* GET: its buffer */
    uint32_t len;                       /* PUT, GET: bytes */
    uint8_t expect;                     /* the status it must get, or 0xff */
    bool dirty;                         /* a field it must not use is set */
    bool raw;                           /* its request's bytes were changed */
} TmemFuzzOp;

typedef struct TmemFuzzReq {
    uint64_t in;                        /* response and statuses */
    unsigned nops;
    unsigned op0;                       /* its first op in ops[] */
    bool clean;                         /* well-formed, nothing corrupted */
    bool raw;                           /* its ops may not be what ops[] says */
} TmemFuzzReq;

/* A cursor on the input; reads past the end give zeros. */
typedef struct TmemFuzzInput {
    const uint8_t *p;
    size_t left;
} TmemFuzzInput;

typedef struct TmemFuzz {
    QTestState *qts;
    QVirtioDevice *dev;
    QVirtioPCIDevice *pdev;
    bool iothread;
    TmemFuzzQueue q[1 + TMEM_FUZZ_REQQS];
    uint64_t arena;
    uint64_t arena_used;
    uint64_t events;                    /* event buffers, set up once */
    uint64_t features;
    unsigned bq;                        /* the batch's request queue */
    GArray *reqs;                       /* TmemFuzzReq */
    GArray *ops;                        /* TmemFuzzOp */
    bool dirty;                         /* the batch changes the pools */
    bool raw_chain;                     /* the batch has a raw chain */
    bool tainted;                       /* the model no longer holds */
    TmemFuzzPool pools[TMEM_FUZZ_POOLS];
    unsigned npools;
    uint32_t dead_id;                   /* a pool id destroyed */
    uint8_t *buf;                       /* one request's out part */
    uint8_t *data;                      /* its pages, while it is built */
    uint8_t ones[sizeof(struct virtio_tmem_resp) +
                 TMEM_FUZZ_MAX_OPS * sizeof(struct virtio_tmem_status)];
    uint8_t *page;
    uint64_t inputs, requests, ops_run, restarts;
} TmemFuzz;

static TmemFuzz tmem_fuzz;

static uint8_t in_byte(TmemFuzzInput *in)
{
    uint8_t b = 0;

    if (in->left) {
        b = *in->p++;
        in->left--;
    }
    return b;
}

static uint32_t in_le32(TmemFuzzInput *in)
{
    uint32_t v = in_byte(in);

    v |= in_byte(in) << 8;
    v |= in_byte(in) << 16;
    return v | (uint32_t)in_byte(in) << 24;
}

/* Common configuration registers of the modern virtio-pci BAR */
#define TMEM_FUZZ_CFG(field) offsetof(struct virtio_pci_common_cfg, field)

static void cfg_writew(TmemFuzz *f, size_t off, uint16_t v)
{
    qpci_io_writew(f->pdev->pdev, f->pdev->bar,
                   f->pdev->common_cfg_offset + off, v);
}

static void cfg_writel(TmemFuzz *f, size_t off, uint32_t v)
{
    qpci_io_writel(f->pdev->pdev, f->pdev->bar,
                   f->pdev->common_cfg_offset + off, v);
}

static uint16_t cfg_readw(TmemFuzz *f, size_t off)
{
    return qpci_io_readw(f->pdev->pdev, f->pdev->bar,
                         f->pdev->common_cfg_offset + off);
}

static guint key_hash(gconstpointer p)
{
    const TmemFuzzKey *k = p;

    return g_int64_hash(&k->oid[0]) ^ g_int64_hash(&k->oid[1]) ^
           g_int64_hash(&k->oid[2]) ^ k->index * 0x9e3779b1u;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
    const TmemFuzzKey *x = a, *y = b;

    return !memcmp(x->oid, y->oid, sizeof(x->oid)) && x->index == y->index;
}

static uint64_t page_sum(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull, w;
    size_t i;

    for (i = 0; i < len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/* Drop pool @i from the model; pools_compact() reclaims its entry. */
static void pool_forget(TmemFuzz *f, unsigned i)
{
    g_clear_pointer(&f->pools[i].pages, g_hash_table_destroy);
}

/* Between batches: no entry of pools[] left for a pool that is gone */
static void pools_compact(TmemFuzz *f)
{
    unsigned i, n = 0;

    for (i = 0; i < f->npools; i++) {
        if (f->pools[i].pages) {
            f->pools[n++] = f->pools[i];
        }
    }
    f->npools = n;
}

/* Set one queue up at its fixed guest memory, from a reset device. */
static void queue_start(TmemFuzz *f, TmemFuzzQueue *q)
{
    static const uint8_t zero[2 * 4096 + 6 + 8 * TMEM_FUZZ_QSIZE];

    g_assert(q->used + 6 + 8 * TMEM_FUZZ_QSIZE - q->desc <= sizeof(zero));
    qtest_memwrite(f->qts, q->desc, zero,
                   q->used + 6 + 8 * TMEM_FUZZ_QSIZE - q->desc);
    q->ndesc = q->head = q->avail_idx = q->used_idx = 0;
    cfg_writew(f, TMEM_FUZZ_CFG(queue_select), q->index);
    /* the device offers up to 1024 entries; take fewer, as drivers may */
    cfg_writew(f, TMEM_FUZZ_CFG(queue_size), TMEM_FUZZ_QSIZE);
    g_assert_cmpint(cfg_readw(f, TMEM_FUZZ_CFG(queue_size)), ==,
                    TMEM_FUZZ_QSIZE);
    cfg_writel(f, TMEM_FUZZ_CFG(queue_desc_lo), q->desc);
    cfg_writel(f, TMEM_FUZZ_CFG(queue_desc_hi), q->desc >> 32);
    cfg_writel(f, TMEM_FUZZ_CFG(queue_avail_lo), q->avail);
    cfg_writel(f, TMEM_FUZZ_CFG(queue_avail_hi), q->avail >> 32);
    cfg_writel(f, TMEM_FUZZ_CFG(queue_used_lo), q->used);
    cfg_writel(f, TMEM_FUZZ_CFG(queue_used_hi), q->used >> 32);
    q->notify = f->pdev->notify_cfg_offset +
                cfg_readw(f, TMEM_FUZZ_CFG(queue_notify_off)) *
                f->pdev->notify_off_multiplier;
    cfg_writew(f, TMEM_FUZZ_CFG(queue_enable), 1);
}

/* Add one descriptor to the chain being built on @q. */
static void chain_add(TmemFuzzQueue *q, uint64_t addr, uint32_t len,
                      bool write)
{
    struct vring_desc *d = &q->d[q->ndesc];

    g_assert(q->ndesc < TMEM_FUZZ_QSIZE);
    if (q->ndesc > q->head) {
        d[-1].flags |= cpu_to_le16(VRING_DESC_F_NEXT);
        d[-1].next = cpu_to_le16(q->ndesc);
    }
    d->addr = cpu_to_le64(addr);
    d->len = cpu_to_le32(len);
    d->flags = cpu_to_le16(write ? VRING_DESC_F_WRITE : 0);
    d->next = 0;
    q->ndesc++;
}

static void chain_end(TmemFuzz *f, TmemFuzzQueue *q)
{
    uint16_t head = cpu_to_le16(q->head);

    qtest_memwrite(f->qts, q->avail + 4 + 2 * (q->avail_idx % TMEM_FUZZ_QSIZE),
                   &head, sizeof(head));
    q->avail_idx++;
    q->head = q->ndesc;
}

static uint16_t used_idx(TmemFuzz *f, TmemFuzzQueue *q)
{
    return qtest_readw(f->qts, q->used + 2);
}

/*
 * Kick @q with what was added and wait until the device used it all.
 * Returns false if the device asked for a reset instead.
 */
static bool queue_run(TmemFuzz *f, TmemFuzzQueue *q)
{
    int64_t deadline = g_get_monotonic_time() + TMEM_FUZZ_WAIT_US;
    uint16_t idx = cpu_to_le16(q->avail_idx);

    qtest_memwrite(f->qts, q->desc, q->d, q->ndesc * sizeof(q->d[0]));
    qtest_memwrite(f->qts, q->avail + 2, &idx, sizeof(idx));
    qpci_io_writew(f->pdev->pdev, f->pdev->bar, q->notify, q->index);
    for (;;) {
        uint16_t used = used_idx(f, q);

        if (used == q->avail_idx) {
            break;
        }
        if (f->dev->bus->get_status(f->dev) & VIRTIO_CONFIG_S_NEEDS_RESET) {
            return false;
        }
        if (g_get_monotonic_time() > deadline) {
            fprintf(stderr, "virtio-tmem-fuzz: queue %u used %u of %u "
                    "chains in %d s\n", q->index, (uint16_t)(used -
                    q->used_idx), (uint16_t)(q->avail_idx - q->used_idx),
                    TMEM_FUZZ_WAIT_US / G_USEC_PER_SEC);
            abort();
        }
        main_loop_wait(true);
    }
    f->requests += (uint16_t)(q->avail_idx - q->used_idx);
    q->used_idx = q->avail_idx;
    q->ndesc = q->head = 0;
    return true;
}

static void model_fail(TmemFuzz *f, const TmemFuzzOp *op, const char *what,
                       uint8_t st)
{
    fprintf(stderr, "virtio-tmem-fuzz: %s: op %u on pool 0x%x key "
            "%" PRIx64 ":%" PRIx64 ":%" PRIx64 "/%u, status %u\n", what,
            op->type, op->pool >= 0 ? f->pools[op->pool].id : 0,
            op->key.oid[0], op->key.oid[1], op->key.oid[2], op->key.index,
            st);
    abort();
}

static void model_put(TmemFuzzPool *p, const TmemFuzzKey *key)
{
    TmemFuzzKey *k = g_memdup2(key, sizeof(*key));

    g_hash_table_replace(p->pages, k, k);
}

static gboolean key_in_object(gpointer k, gpointer v, gpointer oid)
{
    return !memcmp(((TmemFuzzKey *)k)->oid, oid, 3 * sizeof(uint64_t));
}

/*
 * A GET_RANGE: each page its bitmap names is the one put last under its
 * key, the first page's status agrees with the bitmap, and a persistent
 * page the model holds is never left out.
 */
static void model_range(TmemFuzz *f, TmemFuzzOp *op, TmemFuzzPool *p,
                        bool check, uint8_t st, uint32_t found)
{
    uint32_t count = VIRTIO_TMEM_RANGE_COUNT(op->arg);
    uint32_t len = 1u << VIRTIO_TMEM_RANGE_SHIFT(op->arg);
    bool persistent = p->kind == VIRTIO_TMEM_POOL_PERSISTENT;
    TmemFuzzKey key = op->key;
    uint32_t i;

    if ((st == VIRTIO_TMEM_S_OK) != (found & 1)) {
        model_fail(f, op, "get-range's status and bitmap disagree", st);
    }
    if (count < 32 && found >> count) {
        model_fail(f, op, "get-range returned pages it was not asked for",
                   st);
    }
    for (i = 0; i < count && check; i++) {
        TmemFuzzKey *k;

        key.index = op->key.index + i;
        k = g_hash_table_lookup(p->pages, &key);
        if (found & (1u << i)) {
            qtest_memread(f->qts, op->buf + (uint64_t)i * len, f->page, len);
            if (!k || k->sum != page_sum(f->page, len)) {
                model_fail(f, op, k ? "get-range returned another page" :
                           "get-range returned a page never put", st);
            }
        } else if (persistent && k) {
            model_fail(f, op, "get-range left out a persistent page", st);
        }
    }
}

/* What one operation's status says about the pools, checked. */
static void model_op(TmemFuzz *f, TmemFuzzOp *op, uint8_t st, uint32_t value)
{
    TmemFuzzPool *p = op->pool >= 0 && f->pools[op->pool].pages ?
                      &f->pools[op->pool] : NULL;
    bool check = !f->tainted && p;
    TmemFuzzKey *k = p ? g_hash_table_lookup(p->pages, &op->key) : NULL;
    bool persistent = p && p->kind == VIRTIO_TMEM_POOL_PERSISTENT;
    guint n;

    switch (op->type) {
    case VIRTIO_TMEM_OP_POOL_NEW:
        if (st == VIRTIO_TMEM_S_OK && f->npools < TMEM_FUZZ_POOLS) {
            f->pools[f->npools++] = (TmemFuzzPool) {
                .id = value,
                .kind = VIRTIO_TMEM_POOL_KIND(op->arg),
                .shift = VIRTIO_TMEM_POOL_SHIFT(op->arg),
                .pages = g_hash_table_new_full(key_hash, key_equal, g_free,
                                               NULL),
            };
        }
        break;
    case VIRTIO_TMEM_OP_POOL_DESTROY:
        if (p && st == VIRTIO_TMEM_S_OK) {
            f->dead_id = p->id;
            pool_forget(f, op->pool);
        }
        break;
    case VIRTIO_TMEM_OP_PUT:
        if (!p) {
            break;
        }
        if (st == VIRTIO_TMEM_S_OK) {
            model_put(p, &op->key);
        } else {
            /* a refused put leaves nothing under its key */
            g_hash_table_remove(p->pages, &op->key);
        }
        break;
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
        if (!p) {
            break;
        }
        if (st == VIRTIO_TMEM_S_OK) {
            qtest_memread(f->qts, op->buf, f->page, op->len);
            if (check && (!k || k->sum != page_sum(f->page, op->len))) {
                model_fail(f, op, k ? "a get returned another page" :
                           "a get returned a page never put", st);
            }
            if (op->type == VIRTIO_TMEM_OP_GET_EXCL) {
                g_hash_table_remove(p->pages, &op->key);
            }
        } else if (st == VIRTIO_TMEM_S_MISS && check && persistent && k) {
            model_fail(f, op, "a persistent page was lost", st);
        }
        break;
    case VIRTIO_TMEM_OP_GET_RANGE:
        if (op->raw) {
            /* it may have run as another op: a flipped 10 is a MISSES */
            break;
        }
        if (p && (st == VIRTIO_TMEM_S_OK || st == VIRTIO_TMEM_S_MISS)) {
            model_range(f, op, p, check, st, value);
        } else if (value) {
            model_fail(f, op, "a failed get-range returned pages", st);
        }
        break;
    case VIRTIO_TMEM_OP_MISSES:
        /* the store is untouched; an ephemeral pool takes a count */
        if (check && !op->dirty &&
            (st == VIRTIO_TMEM_S_OK) !=
            (!persistent && op->arg &&
             (f->features & (1ull << VIRTIO_TMEM_F_MISS_REPORT)))) {
            model_fail(f, op, "misses: the wrong pools or counts taken", st);
        }
        break;
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
        if (p && (st == VIRTIO_TMEM_S_OK || st == VIRTIO_TMEM_S_MISS)) {
            if (check && persistent && !k != (st == VIRTIO_TMEM_S_MISS)) {
                model_fail(f, op, "flush-page disagrees", st);
            }
            g_hash_table_remove(p->pages, &op->key);
        }
        break;
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
        if (p && st == VIRTIO_TMEM_S_OK) {
            n = g_hash_table_foreach_remove(p->pages, key_in_object,
                                            op->key.oid);
            if (check && persistent && n != value) {
                model_fail(f, op, "flush-object flushed another count", st);
            }
        }
        break;
    case VIRTIO_TMEM_OP_FLUSH_POOL:
        if (p && st == VIRTIO_TMEM_S_OK) {
            n = g_hash_table_size(p->pages);
            g_hash_table_remove_all(p->pages);
            if (check && persistent && n != value) {
                model_fail(f, op, "flush-pool flushed another count", st);
            }
        }
        break;
    }
}

/* Read back what the batch's requests returned, in the order they ran. */
static void batch_check(TmemFuzz *f)
{
    struct virtio_tmem_status st[TMEM_FUZZ_MAX_OPS];
    struct virtio_tmem_resp resp;
    TmemFuzzReq *r;
    unsigned i, j;

    for (i = 0; i < f->reqs->len; i++) {
        r = &g_array_index(f->reqs, TmemFuzzReq, i);
        qtest_memread(f->qts, r->in, &resp, sizeof(resp));
        qtest_memread(f->qts, r->in + sizeof(resp), st,
                      r->nops * sizeof(st[0]));
        if (r->clean && le16_to_cpu(resp.nops_done) != r->nops) {
            fprintf(stderr, "virtio-tmem-fuzz: a request of %u operations "
                    "ran %u\n", r->nops, le16_to_cpu(resp.nops_done));
            abort();
        }
        if (!le16_to_cpu(resp.nops_done)) {
            continue;       /* skipped */
        }
        f->ops_run += r->nops;
        f->tainted |= r->raw;
        for (j = 0; j < r->nops; j++) {
            TmemFuzzOp *op = &g_array_index(f->ops, TmemFuzzOp, r->op0 + j);

            op->raw = r->raw;
            if (!r->raw && op->expect != 0xff &&
                st[j].status != op->expect) {
                model_fail(f, op, "a malformed operation got another status",
                           st[j].status);
            }
            model_op(f, op, st[j].status, le32_to_cpu(st[j].value));
        }
    }
    pools_compact(f);
}

static void device_start(TmemFuzz *f);

/*
 * Run the batch.  A device that asked for a reset gets one, as a driver
 * would do, unless every chain was well-formed: then it is a bug.
 */
static void batch_run(TmemFuzz *f)
{
    TmemFuzzQueue *q = &f->q[f->bq];
    bool clean = !f->raw_chain;
    unsigned i;

    if (f->bq && q->avail_idx != q->used_idx) {
        for (i = 0; i < f->reqs->len; i++) {
            clean &= g_array_index(f->reqs, TmemFuzzReq, i).clean;
        }
        if (!queue_run(f, q)) {
            if (clean) {
                fprintf(stderr, "virtio-tmem-fuzz: the device refused a "
                        "batch of well-formed requests\n");
                abort();
            }
            device_start(f);
            return;
        }
        batch_check(f);
    }
    g_array_set_size(f->reqs, 0);
    g_array_set_size(f->ops, 0);
    f->arena_used = 0;
    f->dirty = f->raw_chain = false;
}

/*
 * Split [addr, addr + len) into descriptors as @layout says: whole, at
 * the page boundaries in @cuts, those pages halved as well, or at one
 * point @split.
 */
static void chain_part(TmemFuzzQueue *q, uint64_t addr, uint32_t len,
                       bool write, unsigned layout, const uint32_t *cuts,
                       unsigned ncuts, uint32_t split)
{
    uint32_t off = 0, end;
    unsigned i;

    if (layout == 0 || (layout == 2 && (split % len) == 0)) {
        chain_add(q, addr, len, write);
        return;
    }
    if (layout == 2) {
        chain_add(q, addr, split % len, write);
        chain_add(q, addr + split % len, len - split % len, write);
        return;
    }
    for (i = 0; i <= ncuts; i++) {
        end = i < ncuts ? cuts[i] : len;
        if (end == off) {
            continue;
        }
        if (layout == 3 && i && end - off >= 2) {
            chain_add(q, addr + off, (end - off) / 2, write);
            off += (end - off) / 2;
        }
        chain_add(q, addr + off, end - off, write);
        off = end;
    }
}

/* A pool id for an operation: mostly a live pool's, sometimes not. */
static uint32_t pick_pool(TmemFuzz *f, TmemFuzzInput *in, int *idx)
{
    uint8_t b = in_byte(in);

    *idx = -1;
    if (b < 0xf0 && f->npools) {
        *idx = b % f->npools;
        return f->pools[*idx].id;
    }
    if (b < 0xf8) {
        return f->dead_id;
    }
    if (b < 0xfc) {
        return 0x7fff - (b & 3);        /* a slot never handed out */
    }
    return in_le32(in);
}

/* What the op byte's low 6 bits pick, so that puts and gets dominate */
static const uint8_t tmem_fuzz_op_mix[64] = {
    [0 ... 23] = VIRTIO_TMEM_OP_PUT,
    [24 ... 33] = VIRTIO_TMEM_OP_GET,
    [34 ... 35] = VIRTIO_TMEM_OP_GET_RANGE,
    [36 ... 41] = VIRTIO_TMEM_OP_GET_EXCL,
    [42 ... 48] = VIRTIO_TMEM_OP_FLUSH_PAGE,
    [49 ... 52] = VIRTIO_TMEM_OP_FLUSH_OBJECT,
    [53 ... 54] = VIRTIO_TMEM_OP_FLUSH_POOL,
    [55] = VIRTIO_TMEM_OP_POOL_NEW,
    [56] = VIRTIO_TMEM_OP_POOL_DESTROY,
    [57 ... 60] = VIRTIO_TMEM_OP_CREDITS,
    [61] = VIRTIO_TMEM_OP_MISSES,
    [62 ... 63] = 0,                    /* an unknown or dirty operation */
};

/* The fields each operation leaves zero, as bits: pool, oid, index, arg */
static const uint8_t tmem_fuzz_unused[] = {
    [VIRTIO_TMEM_OP_POOL_NEW] = 0x7,
    [VIRTIO_TMEM_OP_POOL_DESTROY] = 0xe,
    [VIRTIO_TMEM_OP_PUT] = 0,
    [VIRTIO_TMEM_OP_GET] = 0,
    [VIRTIO_TMEM_OP_GET_EXCL] = 0,
    [VIRTIO_TMEM_OP_FLUSH_PAGE] = 0x8,
    [VIRTIO_TMEM_OP_FLUSH_OBJECT] = 0xc,
    [VIRTIO_TMEM_OP_FLUSH_POOL] = 0xe,
    [VIRTIO_TMEM_OP_CREDITS] = 0x7,
    [VIRTIO_TMEM_OP_GET_RANGE] = 0,
    [VIRTIO_TMEM_OP_MISSES] = 0x6,
};

/*
 * Set a field @op must leave zero, as @a picks: reserved, flags (but
 * for a put's credit bit), or one of those the table above names.
 * Returns false if the status is not S_INVALID whatever the pool: a
 * put's flags are checked once its pool is found.
 */
static bool dirty_op(struct virtio_tmem_op *op, uint8_t a)
{
    uint8_t unused = tmem_fuzz_unused[op->type];
    unsigned n = 2 + ctpop8(unused), pick = a % n, bit;

    if (pick == 0) {
        op->reserved = cpu_to_le16(1 + a);
        return true;
    }
    if (pick == 1) {
        op->flags |= 2 << (a % 7);
        return op->type != VIRTIO_TMEM_OP_PUT;
    }
    for (bit = 0; pick > 2; pick--) {
        unused &= unused - 1;
    }
    bit = ctz32(unused);
    switch (bit) {
    case 0:
        op->pool |= cpu_to_le32(1 + a);
        break;
    case 1:
        op->oid[a % 3] |= cpu_to_le64(1ull << (a % 64));
        break;
    case 2:
        op->index |= cpu_to_le32(1 + a);
        break;
    default:
        op->arg |= cpu_to_le32(1 + a);
        break;
    }
    return true;
}

/*
 * One operation from the input into @op (wire) and @rec (the model's
 * view), its page (PUT) into f->page.  Its first byte: bits 0-5 the
 * operation by tmem_fuzz_op_mix, bits 6-7 a modifier (PUT: 1 or 3, a
 * credited put; PUT, GET: 2 with bits 0-2 clear, not the pool's page
 * size).
 */
static void make_op(TmemFuzz *f, TmemFuzzInput *in, struct virtio_tmem_op *op,
                    TmemFuzzOp *rec)
{
    uint8_t t = in_byte(in), k, a;
    uint8_t type = tmem_fuzz_op_mix[t & 63];
    uint8_t mod = t >> 6;
    bool dirty = false;
    uint8_t shift = 12;

    memset(op, 0, sizeof(*op));
    memset(rec, 0, sizeof(*rec));
    rec->pool = -1;
    rec->expect = 0xff;
    if (!type) {
        /* a known type with a field it must not use, or an unknown one */
        a = in_byte(in);
        if (mod) {
            type = 1 + a % VIRTIO_TMEM_OP_GET_RANGE;
            dirty = true;
        } else {
            type = a < 128 ? 0 : a;
            rec->expect = VIRTIO_TMEM_S_UNSUPPORTED;
        }
    }
    op->type = rec->type = type;
    switch (type) {
    case VIRTIO_TMEM_OP_PUT:
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
    case VIRTIO_TMEM_OP_GET_RANGE:
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
    case VIRTIO_TMEM_OP_FLUSH_POOL:
    case VIRTIO_TMEM_OP_POOL_DESTROY:
    case VIRTIO_TMEM_OP_MISSES:
        op->pool = cpu_to_le32(pick_pool(f, in, &rec->pool));
        if (rec->pool >= 0) {
            shift = f->pools[rec->pool].shift;
        }
        break;
    }
    switch (type) {
    case VIRTIO_TMEM_OP_PUT:
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
    case VIRTIO_TMEM_OP_GET_RANGE:
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
        /* 64 keys an object id, so that gets hit */
        k = in_byte(in);
        rec->key.oid[0] = (k >> 4) & 3;
        rec->key.oid[1] = k & 0x80 ? 0xfffffffffffff000ull : 0;
        rec->key.oid[2] = k & 0x40 ? 7 : 0;
        rec->key.index = type == VIRTIO_TMEM_OP_FLUSH_OBJECT ? 0 : k & 15;
        op->oid[0] = cpu_to_le64(rec->key.oid[0]);
        op->oid[1] = cpu_to_le64(rec->key.oid[1]);
        op->oid[2] = cpu_to_le64(rec->key.oid[2]);
        op->index = cpu_to_le32(rec->key.index);
        break;
    }
    switch (type) {
    case VIRTIO_TMEM_OP_PUT:
        a = in_byte(in);
        if (mod & 1 && f->features & (1ull << VIRTIO_TMEM_F_CREDITS)) {
            op->flags = VIRTIO_TMEM_OP_F_CREDIT;
        }
        /* fall through */
    case VIRTIO_TMEM_OP_GET:
    case VIRTIO_TMEM_OP_GET_EXCL:
        if (mod == 2 && !(t & 7)) {
            shift ^= 12 ^ 16;           /* not the pool's page size */
        }
        rec->len = 1u << shift;
        op->arg = cpu_to_le32(shift);
        if (type == VIRTIO_TMEM_OP_PUT) {
            tmem_fuzz_page_fill(f->page, rec->len, a);
            rec->key.sum = page_sum(f->page, rec->len);
        }
        break;
    case VIRTIO_TMEM_OP_GET_RANGE:
        /* 1 to 16 pages, up to 2^32 - 1 and past it now and then */
        a = in_byte(in);
        if (mod == 2 && !(t & 7)) {
            shift ^= 12 ^ 16;           /* not the pool's page size */
        }
        rec->arg = VIRTIO_TMEM_RANGE_ARG(shift, 1 + (a & 15));
        rec->len = (1 + (a & 15)) << shift;
        if (a >= 0xf0) {
            rec->key.index = UINT32_MAX - (a & 3);
            op->index = cpu_to_le32(rec->key.index);
        }
        op->arg = cpu_to_le32(rec->arg);
        break;
    case VIRTIO_TMEM_OP_POOL_NEW:
        a = in_byte(in);
        rec->arg = VIRTIO_TMEM_POOL_ARG(a & 1 ? VIRTIO_TMEM_POOL_EPHEMERAL :
                                        VIRTIO_TMEM_POOL_PERSISTENT,
                                        (a & 6) == 6 ? 16 : 12);
        if (a >= 0xf8) {
            rec->arg = in_le32(in);     /* most likely no valid pool */
        }
        op->arg = cpu_to_le32(rec->arg);
        break;
    case VIRTIO_TMEM_OP_CREDITS:
        a = in_byte(in);
        op->arg = cpu_to_le32(a == 0xff ? UINT32_MAX : a);
        break;
    case VIRTIO_TMEM_OP_MISSES:
        /* 0 is malformed; UINT32_MAX must not wrap the hint window */
        a = in_byte(in);
        rec->arg = a == 0xff ? UINT32_MAX : a;
        op->arg = cpu_to_le32(rec->arg);
        break;
    }
    if (dirty) {
        rec->expect = dirty_op(op, in_byte(in)) ? VIRTIO_TMEM_S_INVALID
                                                 : 0xff;
        rec->dirty = true;
    }
}

/* The parts of a request being built: out, in, and where they split */
typedef struct TmemFuzzParts {
    uint32_t out_len, in_len;
    uint32_t out_cuts[1 + TMEM_FUZZ_MAX_OPS];
    uint32_t in_cuts[1 + TMEM_FUZZ_MAX_OPS];
    unsigned nout, nin;
} TmemFuzzParts;

/*
 * Operations from the input: structured, or (@raw) 40 raw bytes each,
 * with page data sized to what the device will make of them.  Builds
 * the out part in f->buf and returns how many operations fit.
 */
static unsigned make_ops(TmemFuzz *f, TmemFuzzInput *in, unsigned nops,
                         bool raw, TmemFuzzOp *recs, TmemFuzzParts *pp)
{
    struct virtio_tmem_op *ops = (struct virtio_tmem_op *)
                                 (f->buf + sizeof(struct virtio_tmem_req));
    uint32_t data = 0, gdata = 0, put[TMEM_FUZZ_MAX_OPS];
    unsigned i, nput = 0;

    pp->nout = pp->nin = 0;
    for (i = 0; i < nops; i++) {
        TmemFuzzOp *rec = &recs[i];
        uint32_t shift;
        size_t n;

        if (raw) {
            memset(rec, 0, sizeof(*rec));
            rec->pool = -1;
            rec->expect = 0xff;
            n = MIN(sizeof(ops[i]), in->left);
            memset(&ops[i], 0, sizeof(ops[i]));
            memcpy(&ops[i], in->p, n);
            in->p += n;
            in->left -= n;
            rec->type = ops[i].type;
            shift = le32_to_cpu(ops[i].arg);
            if (rec->type >= VIRTIO_TMEM_OP_PUT &&
                rec->type <= VIRTIO_TMEM_OP_GET_EXCL) {
                rec->len = shift == 12 || shift == 16 ? 1u << shift : 0;
            }
            if (rec->type == VIRTIO_TMEM_OP_GET_RANGE) {
                /* sized as it says, if that is valid, else none */
                rec->arg = shift;
                rec->len = (VIRTIO_TMEM_RANGE_SHIFT(shift) == 12 ||
                            VIRTIO_TMEM_RANGE_SHIFT(shift) == 16) &&
                           !(shift >> 16) &&
                           VIRTIO_TMEM_RANGE_COUNT(shift) >= 1 &&
                           VIRTIO_TMEM_RANGE_COUNT(shift) <=
                           VIRTIO_TMEM_RANGE_MAX ?
                           VIRTIO_TMEM_RANGE_COUNT(shift) <<
                           VIRTIO_TMEM_RANGE_SHIFT(shift) : 0;
            }
            if (rec->type == VIRTIO_TMEM_OP_PUT) {
                tmem_fuzz_page_fill(f->page, rec->len, i);
            }
        } else {
            make_op(f, in, &ops[i], rec);
        }
        if (data + gdata + rec->len > TMEM_FUZZ_REQ_DATA) {
            break;
        }
        if (rec->type == VIRTIO_TMEM_OP_PUT) {
            memcpy(f->data + data, f->page, rec->len);
            data += rec->len;
            put[nput++] = rec->len;
        } else if (rec->type == VIRTIO_TMEM_OP_GET ||
                   rec->type == VIRTIO_TMEM_OP_GET_EXCL ||
                   rec->type == VIRTIO_TMEM_OP_GET_RANGE) {
            rec->buf = gdata;           /* from the first GET buffer */
            gdata += rec->len;
            pp->in_cuts[++pp->nin] = rec->len;
        }
    }
    nops = i;

    /* header, operations, pages; response, statuses, GET buffers */
    pp->out_len = sizeof(struct virtio_tmem_req) + nops * sizeof(*ops);
    memcpy(f->buf + pp->out_len, f->data, data);
    pp->out_cuts[pp->nout++] = pp->out_len;
    for (i = 0; i < nput; i++) {
        pp->out_len += put[i];
        pp->out_cuts[pp->nout++] = pp->out_len;
    }
    pp->in_len = sizeof(struct virtio_tmem_resp) +
                 nops * sizeof(struct virtio_tmem_status);
    pp->in_cuts[0] = pp->in_len;
    for (i = 1; i <= pp->nin; i++) {
        pp->in_len += pp->in_cuts[i];
        pp->in_cuts[i] = pp->in_len;
    }
    pp->nin++;
    for (i = 0; i < nops; i++) {
        recs[i].buf += pp->in_cuts[0];
    }
    return nops;
}

/*
 * Whether a clean request of @nops operations may carry
 * VIRTIO_TMEM_REQ_F_OVERTAKE as a driver would set it: only gets, and
 * nothing older in the queue whose result they could depend on.  The
 * model checks ops in ring order, so it leads its batch.  The device
 * serves such a request ahead of the rest, with sync-inline in the
 * thread that notified.
 */
static bool may_overtake(TmemFuzz *f, const TmemFuzzOp *recs, unsigned nops)
{
    unsigned i;

    if (!(f->features & (1ull << VIRTIO_TMEM_F_OVERTAKE)) || f->reqs->len) {
        return false;
    }
    for (i = 0; i < nops; i++) {
        if (recs[i].type != VIRTIO_TMEM_OP_GET &&
            recs[i].type != VIRTIO_TMEM_OP_GET_RANGE) {
            return false;
        }
    }
    return true;
}

/*
 * One request.  Its first byte R chooses: R & 7 the kind (0: raw
 * operations in a chain sized for them, 1: a corrupted request, else
 * a clean one), R >> 3 & 3 how its parts split over descriptors, and
 * R >> 5 == 7 a switch to the other request queue.  Then the number
 * of operations, and for a corrupted request what to corrupt.
 */
static void make_request(TmemFuzz *f, TmemFuzzInput *in)
{
    uint8_t r = in_byte(in), n = in_byte(in), mutate = 0, mbyte = 0;
    unsigned kind = r & 7, layout = (r >> 3) & 3;
    unsigned nops = n >= 0xf0 ? 1 + (n & 15) * 4 : 1 + n % 8;
    struct virtio_tmem_req *hdr = (struct virtio_tmem_req *)f->buf;
    TmemFuzzOp recs[TMEM_FUZZ_MAX_OPS];
    TmemFuzzReq req = { .clean = kind > 1 };
    uint64_t restarts = f->restarts, out;
    uint32_t split = 0;
    TmemFuzzParts pp;
    TmemFuzzQueue *q;
    unsigned i;

    if (!f->bq || r >> 5 == 7) {
        batch_run(f);
        f->bq = f->bq == 1 && TMEM_FUZZ_REQQS > 1 ? 2 : 1;
    }
    nops = MIN(nops, TMEM_FUZZ_MAX_OPS);
    if (kind == 1) {
        mutate = in_byte(in);
        mbyte = in_byte(in);
    }
    if (layout == 2) {
        split = in_byte(in);
    }
    if (kind == 1 && (mutate & 7) == 7) {
        /* a raw chain: lengths and bytes from the input */
        size_t len;

        pp.out_len = 1 + mbyte * 2;
        pp.in_len = 1 + in_byte(in) * 8;
        len = MIN(pp.out_len, in->left);
        memset(f->buf, 0, pp.out_len);
        memcpy(f->buf, in->p, len);
        in->p += len;
        in->left -= len;
        pp.nout = pp.nin = 1;
        pp.out_cuts[0] = pp.out_len;
        pp.in_cuts[0] = pp.in_len;
        nops = 0;
        goto place;
    }

    nops = make_ops(f, in, nops, kind == 0, recs, &pp);
    if (!nops) {
        return;
    }
    memset(hdr, 0, sizeof(*hdr));
    hdr->nops = cpu_to_le16(nops);
    req.nops = nops;
    req.raw = kind == 0;
    if (kind == 1) {
        req.clean = false;
        switch (mutate & 7) {
        case 0:     /* reserved or unknown header bits: all skipped */
            if (mbyte & 1) {
                hdr->reserved[(mbyte >> 1) % 2] = cpu_to_le16(1 + mbyte);
            } else {
                hdr->flags = cpu_to_le16(2u << ((mbyte >> 1) % 15));
            }
            break;
        case 1:
            hdr->nops = cpu_to_le16(mbyte & 1 ? 0 : TMEM_FUZZ_MAX_OPS + mbyte);
            break;
        case 2:
            pp.out_len -= 1 + mbyte % MIN(pp.out_len - 1, 64);
            break;
        case 3:
            pp.in_len -= 1 + mbyte % MIN(pp.in_len - 1, 64);
            break;
        default:
            f->buf[sizeof(*hdr) + mbyte % (nops * 40)] ^= (mutate >> 3) | 1;
            req.raw = true;
            break;
        }
    }
    for (i = 0; i < nops; i++) {
        if (recs[i].type == VIRTIO_TMEM_OP_POOL_NEW ||
            recs[i].type == VIRTIO_TMEM_OP_POOL_DESTROY) {
            f->dirty = true;
        }
    }
    if (kind > 1 && kind & 1 && may_overtake(f, recs, nops)) {
        hdr->flags = cpu_to_le16(VIRTIO_TMEM_REQ_F_OVERTAKE);
    }

place:
    q = &f->q[f->bq];
    if (q->ndesc + 4 + 2 * (pp.nout + pp.nin) > TMEM_FUZZ_QSIZE ||
        (uint16_t)(q->avail_idx - q->used_idx) >= TMEM_FUZZ_QSIZE ||
        f->arena_used + pp.out_len + pp.in_len > TMEM_FUZZ_ARENA) {
        /* the batch is full: run it, this request leads the next */
        bool dirty = f->dirty;

        batch_run(f);
        if (f->restarts != restarts) {
            return;     /* the device was reset: its pool ids are gone */
        }
        f->dirty = dirty;
        q = &f->q[f->bq];
    }
    if (!nops) {
        f->tainted = f->raw_chain = true;
    }
    out = f->arena + f->arena_used;
    req.in = out + pp.out_len;
    f->arena_used += ROUND_UP(pp.out_len + pp.in_len, 64);
    qtest_memwrite(f->qts, out, f->buf, pp.out_len);
    /* statuses the device did not write read back as 0xff */
    qtest_memwrite(f->qts, req.in, f->ones,
                   MIN(MIN(pp.in_len, pp.in_cuts[0]), sizeof(f->ones)));
    req.op0 = f->ops->len;
    for (i = 0; i < nops; i++) {
        recs[i].buf += req.in;
        g_array_append_val(f->ops, recs[i]);
    }
    chain_part(q, out, pp.out_len, false, layout, pp.out_cuts, pp.nout,
               (uint64_t)pp.out_len * split / 256);
    chain_part(q, req.in, pp.in_len, true, layout, pp.in_cuts, pp.nin,
               (uint64_t)pp.in_len * split / 256);
    chain_end(f, q);
    if (nops) {
        g_array_append_val(f->reqs, req);
    }
    if (f->dirty || !nops) {
        /* new or dead pool ids are known once it ran; raw chains alone */
        batch_run(f);
    }
}

/*
 * Reset the device and bring it up again, as a driver does: the
 * features (input's choice), all queues, event buffers, then the pools
 * and credits a driver starts with.  The BAR stays where it was mapped.
 */
static void device_start(TmemFuzz *f)
{
    static const uint8_t preamble[] = {
        /* POOL_NEW persistent, POOL_NEW ephemeral, CREDITS 8 */
        0x02, 0x02, 55, 0x00, 55, 0x01, 57, 8,
    };
    TmemFuzzInput pre = { preamble, sizeof(preamble) };
    QVirtioDevice *dev = f->dev;
    uint64_t want = f->features;
    unsigned i;

    f->restarts++;
    qvirtio_reset(dev);
    qvirtio_set_acknowledge(dev);
    qvirtio_set_driver(dev);
    f->features = qvirtio_get_features(dev) & want;
    qvirtio_set_features(dev, f->features);
    for (i = 0; i < ARRAY_SIZE(f->q); i++) {
        queue_start(f, &f->q[i]);
    }
    qvirtio_set_driver_ok(dev);

    for (i = 0; i < TMEM_FUZZ_EVENTS; i++) {
        f->q[0].head = f->q[0].ndesc;
        chain_add(&f->q[0], f->events + i * VIRTIO_TMEM_EVENT_MIN,
                  VIRTIO_TMEM_EVENT_MIN, true);
        chain_end(f, &f->q[0]);
    }
    f->q[0].head = 0;
    {
        uint16_t idx = cpu_to_le16(f->q[0].avail_idx);

        qtest_memwrite(f->qts, f->q[0].desc, f->q[0].d,
                       f->q[0].ndesc * sizeof(f->q[0].d[0]));
        qtest_memwrite(f->qts, f->q[0].avail + 2, &idx, sizeof(idx));
        qpci_io_writew(f->pdev->pdev, f->pdev->bar, f->q[0].notify, 0);
    }

    for (i = 0; i < f->npools; i++) {
        pool_forget(f, i);
    }
    f->npools = 0;
    g_array_set_size(f->reqs, 0);
    g_array_set_size(f->ops, 0);
    f->arena_used = 0;
    f->tainted = false;
    f->bq = 0;
    make_request(f, &pre);
    batch_run(f);
}

/*
 * Reset the device at the end of an input too: its pools and pages go
 * with the input that made them, and so does the model's view of them.
 */
static void device_stop(TmemFuzz *f)
{
    unsigned i;

    qvirtio_reset(f->dev);
    for (i = 0; i < f->npools; i++) {
        pool_forget(f, i);
    }
    f->npools = 0;
}

/* Once, at the first input: map the BAR, give every ring its memory. */
static void tmem_fuzz_setup(TmemFuzz *f, QTestState *s)
{
    QVirtioTmem *tmem = fuzz_qos_obj;
    unsigned i;

    f->qts = s;
    f->dev = tmem->vdev;
    f->pdev = container_of(f->dev, QVirtioPCIDevice, vdev);
    qvirtio_pci_device_enable(f->pdev);
    for (i = 0; i < ARRAY_SIZE(f->q); i++) {
        TmemFuzzQueue *q = &f->q[i];

        q->index = i;
        q->desc = guest_alloc(fuzz_qos_alloc,
                              qvring_size(TMEM_FUZZ_QSIZE, 4096));
        q->avail = q->desc + TMEM_FUZZ_QSIZE * sizeof(struct vring_desc);
        q->used = ROUND_UP(q->avail + 6 + 2 * TMEM_FUZZ_QSIZE, 4096);
    }
    f->events = guest_alloc(fuzz_qos_alloc,
                            TMEM_FUZZ_EVENTS * VIRTIO_TMEM_EVENT_MIN);
    f->arena = guest_alloc(fuzz_qos_alloc, TMEM_FUZZ_ARENA);
    f->reqs = g_array_new(false, false, sizeof(TmemFuzzReq));
    f->ops = g_array_new(false, false, sizeof(TmemFuzzOp));
    f->buf = g_malloc(sizeof(struct virtio_tmem_req) +
                      TMEM_FUZZ_MAX_OPS * sizeof(struct virtio_tmem_op) +
                      TMEM_FUZZ_REQ_DATA);
    f->data = g_malloc(TMEM_FUZZ_REQ_DATA);
    memset(f->ones, 0xff, sizeof(f->ones));
    f->page = g_malloc(65536);
}

/* What ran, from the device's own counters, when the fuzzer exits. */
static void tmem_fuzz_report(void)
{
    VirtIOTmem *s = VIRTIO_TMEM(object_resolve_path_type("", TYPE_VIRTIO_TMEM,
                                                         NULL));
    uint64_t requests = 0, ops = 0, pages = 0, ahead = 0, inl = 0;
    uint64_t yields = 0;
    unsigned i;

    for (i = 0; s && i < s->num_queues; i++) {
        requests += s->qstats[i].requests;
        ops += s->qstats[i].ops;
        pages += s->qstats[i].pages;
        ahead += s->qstats[i].ahead;
        inl += s->qstats[i].inline_reqs;
        yields += s->qstats[i].yields;
    }
    fprintf(stderr, "virtio-tmem-fuzz: %" PRIu64 " inputs, %" PRIu64
            " requests used (%" PRIu64 " device resets); device counted %"
            PRIu64 " requests, %" PRIu64 " operations, %" PRIu64 " pages; %"
            PRIu64 " requests ahead, %" PRIu64 " inline, %" PRIu64
            " yields\n",
            tmem_fuzz.inputs, tmem_fuzz.requests, tmem_fuzz.restarts,
            requests, ops, pages, ahead, inl, yields);
}

/*
 * The input: one byte of features (0xf0 | mask: those device features
 * off, any other value: all on), then requests until it ends.
 */
static void virtio_tmem_fuzz(QTestState *s, const unsigned char *data,
                             size_t size)
{
    TmemFuzz *f = &tmem_fuzz;
    TmemFuzzInput in = { data, size };
    uint8_t feat = in_byte(&in);

    if (!f->qts) {
        tmem_fuzz_setup(f, s);
        atexit(tmem_fuzz_report);
    }
    f->inputs++;
    f->features = ~(QVIRTIO_F_BAD_FEATURE |
                    (1ull << VIRTIO_RING_F_EVENT_IDX) |
                    (1ull << VIRTIO_RING_F_INDIRECT_DESC));
    if ((feat & 0xf0) == 0xf0) {
        f->features &= ~(uint64_t)(feat & 0xf);
    }
    device_start(f);
    while (in.left) {
        make_request(f, &in);
    }
    batch_run(f);
    flush_events(s);
    device_stop(f);
}

static void virtio_tmem_pre_fuzz(QTestState *s)
{
    qos_init_path(s);
}

static void *virtio_tmem_fuzz_setup(GString *cmd_line, void *arg)
{
    /* turn-us=1: the main loop gets a turn between almost any two ops */
    g_string_append_printf(cmd_line, " -global virtio-tmem-pci.num-queues=%d"
                           " -global virtio-tmem-pci.max-ops=%d"
                           " -global virtio-tmem-pci.budget=4M"
                           " -global virtio-tmem-pci.turn-us=1",
                           TMEM_FUZZ_REQQS, TMEM_FUZZ_MAX_OPS);
    return arg;
}

/* Each fuzzer process gets a spill file of its own in this directory. */
#define TMEM_FUZZ_SPILL_DIR "/tmp/virtio-tmem-fuzz-spill"

static void *virtio_tmem_fuzz_spill_setup(GString *cmd_line, void *arg)
{
    g_mkdir_with_parents(TMEM_FUZZ_SPILL_DIR, 0700);
    g_string_append_printf(cmd_line, " -object iothread,id=fuzzio"
                           " -global virtio-tmem-pci.iothread=fuzzio"
                           " -global virtio-tmem-pci.num-queues=%d"
                           " -global virtio-tmem-pci.max-ops=%d"
                           " -global virtio-tmem-pci.budget=256K"
                           " -global virtio-tmem-pci.spill="
                           TMEM_FUZZ_SPILL_DIR
                           " -global virtio-tmem-pci.spill-max=4M",
                           TMEM_FUZZ_REQQS, TMEM_FUZZ_MAX_OPS);
    return arg;
}

static void register_virtio_tmem_fuzz_targets(void)
{
    fuzz_add_qos_target(&(FuzzTarget){
                .name = "virtio-tmem-fuzz",
                .description = "Fuzz virtio-tmem requests: mostly "
                "well-formed batches of operations, checked against a "
                "model of the pools",
                .pre_fuzz = &virtio_tmem_pre_fuzz,
                .fuzz = virtio_tmem_fuzz,},
                "virtio-tmem",
                &(QOSGraphTestOptions){.before = virtio_tmem_fuzz_setup}
                );
    fuzz_add_qos_target(&(FuzzTarget){
                .name = "virtio-tmem-spill-iothread-fuzz",
                .description = "Fuzz virtio-tmem requests served in an "
                "iothread, with a small budget and a spill file",
                .pre_fuzz = &virtio_tmem_pre_fuzz,
                .fuzz = virtio_tmem_fuzz,},
                "virtio-tmem",
                &(QOSGraphTestOptions){.before = virtio_tmem_fuzz_spill_setup}
                );
}

fuzz_target_init(register_virtio_tmem_fuzz_targets);
