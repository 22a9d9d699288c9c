/*
 * tmem block driver fuzz target: the request path
 *
 * The fuzzer's bytes are a program of requests on a tmem block node:
 * reads, writes, discards and write-zeroes at any offset and length
 * (unaligned, across blocks, past the end), with zeros, a repeated byte
 * or incompressible data.  They go through a BlockBackend on the node,
 * the way a guest's virtio-blk requests reach it, so the block layer's
 * alignment and read-modify-write run before the driver.  The store has
 * a 64 KiB budget and a 256 KiB spill file under a 1 MiB disk, so
 * blocks stay in RAM, spill, and are refused once both are full.
 *
 * A model of the disk checks every read: it returns what the last write
 * there put, zeros for blocks never written or freed, except for the
 * blocks a refused write (ENOSPC) touched, which are undefined.  A write
 * may be refused only with ENOSPC; a request in range must not fail
 * otherwise, one past the end must fail; and the store's RAM stays
 * within its budget.  Any mismatch aborts.  Each input starts from an
 * empty disk.
 *
 * An input whose first byte has its top two bits set is instead a
 * program for the node's live migration section (block/tmem.c,
 * backends/tmem-live.c): blocks raw or same-filled and blocks gone,
 * mostly well-formed, sometimes with a bad record type, page size, slot
 * or block past the end, or cut short.  A well-formed stream must load,
 * and the disk must then hold exactly what it says; a bad one must fail
 * the load and nothing more; what loaded must save and load again.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "block/block-global-state.h"
#include "block/block_int.h"
#include "block/tmem.h"
#include "system/block-backend.h"
#include "system/tmem-live.h"
#include "system/tmem-store.h"
#include "tmem.h"

#include "tests/qtest/libqtest.h"
#include "fuzz.h"
#include "tmem_fuzz_util.h"

#define TMEM_BLK_FUZZ_SIZE      (1 * MiB)
#define TMEM_BLK_FUZZ_MAX_LEN   (64 * KiB)
/* Each fuzzer process gets a spill file of its own in this directory. */
#define TMEM_BLK_FUZZ_SPILL_DIR "/tmp/tmem-blk-fuzz-spill"

enum {
    TMEM_BLK_FUZZ_READ,
    TMEM_BLK_FUZZ_WRITE,
    TMEM_BLK_FUZZ_DISCARD,
    TMEM_BLK_FUZZ_ZEROES,
};

typedef struct TmemBlkFuzz {
    BlockBackend *blk;
    void *node;                         /* the node's bs->opaque */
    struct tmem_store *store;
    uint8_t disk[TMEM_BLK_FUZZ_SIZE];   /* the model */
    bool known[TMEM_BLK_FUZZ_SIZE];     /* false: a refused write's bytes */
    uint8_t buf[TMEM_BLK_FUZZ_MAX_LEN];
    uint64_t inputs, requests, refused, out_of_range;
    uint64_t streams, streams_loaded;
} TmemBlkFuzz;

static TmemBlkFuzz tmem_blk_fuzz;

typedef struct TmemBlkInput {
    const uint8_t *p;
    size_t left;
} TmemBlkInput;

static uint8_t in_byte(TmemBlkInput *in)
{
    if (!in->left) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static uint32_t in_le32(TmemBlkInput *in)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        v |= (uint32_t)in_byte(in) << (8 * i);
    }
    return v;
}

static void fuzz_fail(const char *what, unsigned type, uint64_t off,
                      uint64_t len, int rc)
{
    fprintf(stderr, "tmem-blk-fuzz: %s (request %u at %" PRIu64 ", %"
            PRIu64 " bytes: %d)\n", what, type, off, len, rc);
    abort();
}

/* Data of kind @kind (tmem_fuzz_page_fill's low bits) from @seed */
static void fill(uint8_t *p, size_t len, uint8_t kind, uint32_t seed)
{
    tmem_fuzz_page_fill(p, len, (kind & 3) | (uint8_t)(seed << 2));
}

/* What the model says about a write or zeroing of [@off, @off + @len). */
static void model_write(TmemBlkFuzz *f, uint64_t off, uint64_t len,
                        const uint8_t *data, int rc)
{
    if (rc == 0) {
        if (data) {
            memcpy(f->disk + off, data, len);
        } else {
            memset(f->disk + off, 0, len);
        }
        memset(f->known + off, true, len);
    } else {
        /*
         * A refused request may have stored some of its blocks, and a
         * block whose put was refused is gone (the store drops a key it
         * refused, rather than keep a stale page): so are the bytes of
         * the partial blocks at its ends that it did not write.
         */
        uint64_t first = QEMU_ALIGN_DOWN(off, 4096);
        uint64_t end = MIN(QEMU_ALIGN_UP(off + len, 4096),
                           TMEM_BLK_FUZZ_SIZE);

        memset(f->known + first, false, end - first);
        f->refused++;
    }
}

static void run_request(TmemBlkFuzz *f, TmemBlkInput *in)
{
    uint8_t op = in_byte(in);
    unsigned type = op & 3;
    uint64_t off = in_le32(in) % (TMEM_BLK_FUZZ_SIZE + 16 * KiB);
    uint64_t len = in_le32(in) % (TMEM_BLK_FUZZ_MAX_LEN + 1);
    bool in_range = off + len <= TMEM_BLK_FUZZ_SIZE;
    uint64_t i, first, end;
    int rc;

    /* most requests are block-aligned, as a guest's swap I/O is */
    if (op & 0x80) {
        off = QEMU_ALIGN_DOWN(off, 4096);
        len = QEMU_ALIGN_UP(len, 4096);
        in_range = off + len <= TMEM_BLK_FUZZ_SIZE;
    }
    if (!len) {
        return;
    }
    f->requests++;
    switch (type) {
    case TMEM_BLK_FUZZ_READ:
        rc = blk_pread(f->blk, off, len, f->buf, 0);
        if (!in_range) {
            break;
        }
        if (rc) {
            fuzz_fail("a read in range failed", type, off, len, rc);
        }
        for (i = 0; i < len; i++) {
            if (f->known[off + i] && f->buf[i] != f->disk[off + i]) {
                fprintf(stderr, "tmem-blk-fuzz: byte %" PRIu64 " reads 0x%x,"
                        " the model has 0x%x\n", off + i, f->buf[i],
                        f->disk[off + i]);
                fuzz_fail("a read returned other data", type, off, len, 0);
            }
        }
        break;
    case TMEM_BLK_FUZZ_WRITE:
        fill(f->buf, len, op >> 2, in_le32(in));
        rc = blk_pwrite(f->blk, off, len, f->buf, 0);
        if (!in_range) {
            break;
        }
        if (rc && rc != -ENOSPC) {
            fuzz_fail("a write failed other than with ENOSPC", type, off,
                      len, rc);
        }
        model_write(f, off, len, f->buf, rc);
        break;
    case TMEM_BLK_FUZZ_DISCARD:
        rc = blk_pdiscard(f->blk, off, len, 0);
        if (!in_range) {
            break;
        }
        if (rc) {
            fuzz_fail("a discard in range failed", type, off, len, rc);
        }
        /* whole blocks are freed; the partial ones at its ends stay */
        first = QEMU_ALIGN_UP(off, 4096);
        end = QEMU_ALIGN_DOWN(off + len, 4096);
        if (end > first) {
            model_write(f, first, end - first, NULL, 0);
        }
        break;
    default:
        rc = blk_pwrite_zeroes(f->blk, off, len,
                               op & 4 ? BDRV_REQ_MAY_UNMAP : 0);
        if (!in_range) {
            break;
        }
        /* an unaligned end is a read-modify-write, which may be refused */
        if (rc && rc != -ENOSPC) {
            fuzz_fail("a write-zeroes failed other than with ENOSPC", type,
                      off, len, rc);
        }
        model_write(f, off, len, NULL, rc);
        break;
    }
    if (!in_range) {
        if (!rc) {
            fuzz_fail("a request past the end succeeded", type, off, len, 0);
        }
        f->out_of_range++;
    }
}

static int load_live(void *opaque, QEMUFile *f)
{
    return tmem_blk_live_load_all(opaque, f);
}

static int save_live(void *opaque, QEMUFile *f)
{
    return tmem_blk_live_save_all(opaque, f);
}

/* A PAGE or GONE record of @block (backends/tmem-live.c) */
static void put_key(GByteArray *a, uint8_t type, uint32_t slot,
                    uint64_t block)
{
    g_byte_array_append(a, &type, 1);
    tmem_fuzz_put_be(a, slot, 4);
    tmem_fuzz_put_be(a, block >> 32, 8);
    tmem_fuzz_put_be(a, 0, 8);
    tmem_fuzz_put_be(a, 0, 8);
    tmem_fuzz_put_be(a, (uint32_t)block, 4);
}

/*
 * Build the node's live section from @in: a SLOT record for slot 0, then
 * per entry a byte (bits 0-2: a block raw or same-filled, its absence, a
 * bad record type, a block past the end, one of slot 1, or the end; bits
 * 3-4: its data) and a block number.  The model gets what the
 * well-formed records leave.
 */
static void run_stream(TmemBlkFuzz *f, TmemBlkInput *in, uint8_t how)
{
    const uint64_t nblocks = TMEM_BLK_FUZZ_SIZE / 4096;
    g_autoptr(GByteArray) a = g_byte_array_new();
    g_autoptr(GByteArray) saved = NULL;
    bool valid = true;
    uint64_t i;
    int rc;

    f->streams++;
    memset(f->disk, 0, sizeof(f->disk));
    memset(f->known, true, sizeof(f->known));
    g_byte_array_append(a, (uint8_t[]) { TMEM_LIVE_SLOT, 0, 0, 0, 0 }, 5);
    if (how & 1) {
        g_byte_array_append(a, (uint8_t[]) { 16 }, 1);  /* 64 KiB pages */
        valid = false;
    } else {
        g_byte_array_append(a, (uint8_t[]) { 12 }, 1);
    }
    while (in->left) {
        uint8_t e = in_byte(in);
        uint64_t block = in_le32(in) % nblocks;

        switch (e & 7) {
        case 0:
        case 1:
            fill(f->buf, 4096, e >> 3, in_le32(in));
            put_key(a, TMEM_LIVE_PAGE, 0, block);
            if ((e & 7) == 1 && !memcmp(f->buf, f->buf + 8, 4096 - 8)) {
                g_byte_array_append(a, (uint8_t[]) { TMEM_FORM_SAME }, 1);
                g_byte_array_append(a, f->buf, 8);
            } else {
                g_byte_array_append(a, (uint8_t[]) { TMEM_FORM_RAW }, 1);
                g_byte_array_append(a, f->buf, 4096);
            }
            memcpy(f->disk + block * 4096, f->buf, 4096);
            continue;
        case 2:
            put_key(a, TMEM_LIVE_GONE, 0, block);
            memset(f->disk + block * 4096, 0, 4096);
            continue;
        case 3:
            g_byte_array_append(a, (uint8_t[]) { 0x7f }, 1);
            break;
        case 4:
            put_key(a, TMEM_LIVE_GONE, 0, block + nblocks); /* past the end */
            break;
        case 5:
            put_key(a, TMEM_LIVE_GONE, 1, block);       /* no such slot */
            break;
        default:
            goto end;
        }
        valid = false;
    }
end:
    g_byte_array_append(a, (uint8_t[]) { TMEM_LIVE_END }, 1);
    if (how & 2) {
        g_byte_array_set_size(a, a->len / 2);       /* cut short */
        valid = false;
    }

    rc = tmem_fuzz_load(load_live, f->node, a->data, a->len);
    if (rc) {
        if (valid) {
            fuzz_fail("a well-formed section was refused", 0, 0, a->len, rc);
        }
        return;
    }
    f->streams_loaded++;
    if (!valid) {
        return;     /* an END may end a corrupt stream early: no model */
    }
    for (i = 0; i < TMEM_BLK_FUZZ_SIZE; i += TMEM_BLK_FUZZ_MAX_LEN) {
        rc = blk_pread(f->blk, i, TMEM_BLK_FUZZ_MAX_LEN, f->buf, 0);
        if (rc || memcmp(f->buf, f->disk + i, TMEM_BLK_FUZZ_MAX_LEN)) {
            fuzz_fail("the disk does not hold the loaded section", 0, i,
                      TMEM_BLK_FUZZ_MAX_LEN, rc);
        }
    }
    saved = tmem_fuzz_save(save_live, f->node);
    if (!saved || tmem_fuzz_load(load_live, f->node, saved->data,
                                 saved->len)) {
        fuzz_fail("a loaded section does not save and load again", 0, 0,
                  saved ? saved->len : 0, -EINVAL);
    }
}

static void tmem_blk_fuzz_report(void)
{
    fprintf(stderr, "tmem-blk-fuzz: %" PRIu64 " inputs, %" PRIu64
            " requests, %" PRIu64 " refused (ENOSPC), %" PRIu64
            " past the end; %" PRIu64 " sections, %" PRIu64 " loaded\n",
            tmem_blk_fuzz.inputs, tmem_blk_fuzz.requests,
            tmem_blk_fuzz.refused, tmem_blk_fuzz.out_of_range,
            tmem_blk_fuzz.streams, tmem_blk_fuzz.streams_loaded);
}

static void tmem_blk_fuzz_setup(TmemBlkFuzz *f)
{
    BlockDriverState *bs = bdrv_find_node("t0");
    TmemStore *ts = tmem_store_find("st0", &error_abort);

    g_assert(bs);
    f->node = bs->opaque;
    f->blk = blk_new(qemu_get_aio_context(), BLK_PERM_ALL, BLK_PERM_ALL);
    blk_insert_bs(f->blk, bs, &error_abort);
    f->store = tmem_store_get(ts);
    atexit(tmem_blk_fuzz_report);
}

static void tmem_blk_fuzz_run(QTestState *s, const unsigned char *data,
                              size_t size)
{
    TmemBlkFuzz *f = &tmem_blk_fuzz;
    TmemBlkInput in = { data, size };
    struct tmem_stats st;
    int rc;

    if (!f->blk) {
        tmem_blk_fuzz_setup(f);
    }
    f->inputs++;
    rc = blk_pdiscard(f->blk, 0, TMEM_BLK_FUZZ_SIZE, 0);
    if (rc) {
        fuzz_fail("emptying the disk failed", TMEM_BLK_FUZZ_DISCARD, 0,
                  TMEM_BLK_FUZZ_SIZE, rc);
    }
    memset(f->disk, 0, sizeof(f->disk));
    memset(f->known, true, sizeof(f->known));
    if (size && (data[0] & 0xc0) == 0xc0) {
        in_byte(&in);
        run_stream(f, &in, data[0]);
        return;
    }
    while (in.left) {
        run_request(f, &in);
        g_assert(tmem_stats(f->store, &st) == 0);
        if (st.v[TMEM_STAT_RAM_USED] > st.v[TMEM_STAT_BUDGET]) {
            fprintf(stderr, "tmem-blk-fuzz: %" PRIu64 " bytes of RAM used, "
                    "the budget is %" PRIu64 "\n", st.v[TMEM_STAT_RAM_USED],
                    st.v[TMEM_STAT_BUDGET]);
            abort();
        }
    }
}

static GString *tmem_blk_fuzz_argv(FuzzTarget *t)
{
    g_mkdir_with_parents(TMEM_BLK_FUZZ_SPILL_DIR, 0700);
    return g_string_new(TARGET_NAME " -machine q35,accel=qtest -m 0"
                        " -display none -nodefaults"
                        " -object tmem-store,id=st0,budget=64K,spill="
                        TMEM_BLK_FUZZ_SPILL_DIR ",spill-max=256K"
                        " -blockdev driver=tmem,node-name=t0,store=st0,"
                        "size=1M,discard=unmap");
}

static void register_tmem_blk_fuzz_target(void)
{
    fuzz_add_target(&(FuzzTarget){
                .name = "tmem-blk-fuzz",
                .description = "Fuzz the tmem block driver's requests "
                "against a model of the disk",
                .get_init_cmdline = tmem_blk_fuzz_argv,
                .fuzz = tmem_blk_fuzz_run,});
}

fuzz_target_init(register_tmem_blk_fuzz_target);
