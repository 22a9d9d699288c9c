/*
 * virtio-tmem fuzz target for the incoming migration stream
 *
 * An input is what a destination reads of the device: the records of
 * its live section (backends/tmem-live.c: SLOT, PAGE in the SAME, LZ4
 * or RAW form, GONE, up to an END), then its own section (vmstate
 * virtio-tmem-device, version 2: credits and the pool table, which must
 * match the pools the live records made).  Both are loaded into the
 * running device from one memory buffer, the way an incoming migration
 * loads them, followed by the post_load checks.  A bad stream must fail
 * the load and nothing more.  Most inputs are a program that writes a
 * well-formed stream (persistent pools of either page size, made,
 * re-made and dropped by SLOT records, with pages in every form and
 * GONE records; ephemeral and free slots; credits) and then corrupts or
 * cuts it at a few places; the others are raw streams.  A stream that
 * loads must save again (the live records and the section), and what it
 * saves must load and save to the same size; an uncorrupted,
 * well-formed stream must load.  Any mismatch aborts.
 *
 * With TMEM_MIG_FUZZ_DUMP=FILE in the environment, each stream that
 * loads is saved again into FILE as a raw-stream input: a seed.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include <lz4.h>
#include "qom/object.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-tmem.h"
#include "system/tmem-live.h"
#include "tmem.h"

#include "tests/qtest/libqtest.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "fuzz.h"
#include "qos_fuzz.h"
#include "tmem_fuzz_util.h"

#define TMEM_MIG_FUZZ_MAX_POOLS     16  /* max-pools on the command line */
#define TMEM_MIG_FUZZ_MAX_CREDITS   64  /* max-credits on the command line */
#define TMEM_MIG_FUZZ_MAX_RECORDS   24  /* live records a program writes */

typedef struct TmemMigFuzz {
    VirtIOTmem *s;
    GByteArray *stream;
    uint8_t *page;
    uint8_t *lz4;               /* LZ4_compressBound(65536) bytes */
    uint64_t inputs, loaded, refused, bytes;
    uint64_t wellformed;        /* well-formed, uncorrupted streams */
    uint64_t records[TMEM_LIVE_GONE + 1];  /* by type, END: streams */
    uint64_t forms[TMEM_FORM_RAW + 1];         /* PAGE records by form */
} TmemMigFuzz;

static TmemMigFuzz tmem_mig_fuzz;

typedef struct TmemMigInput {
    const uint8_t *p;
    size_t left;
} TmemMigInput;

static uint8_t in_byte(TmemMigInput *in)
{
    uint8_t b = 0;

    if (in->left) {
        b = *in->p++;
        in->left--;
    }
    return b;
}

/* A SLOT record: @slot becomes a pool of 1 << @shift bytes, or none. */
static void put_slot(TmemMigFuzz *f, uint32_t slot, uint8_t shift)
{
    tmem_fuzz_put_be(f->stream, TMEM_LIVE_SLOT, 1);
    tmem_fuzz_put_be(f->stream, slot, 4);
    tmem_fuzz_put_be(f->stream, shift, 1);
    f->records[TMEM_LIVE_SLOT]++;
}

/* The start of a PAGE or GONE record, its key from @k */
static void put_key(TmemMigFuzz *f, uint8_t type, uint32_t slot, uint8_t k)
{
    GByteArray *a = f->stream;

    tmem_fuzz_put_be(a, type, 1);
    tmem_fuzz_put_be(a, slot, 4);
    tmem_fuzz_put_be(a, (k >> 3) & 3, 8);
    tmem_fuzz_put_be(a, k & 0x80 ? 0xfffffffffffff000ull : 0, 8);
    tmem_fuzz_put_be(a, k & 0x40 ? 7 : 0, 8);
    tmem_fuzz_put_be(a, (k & 7) | (k & 0x20 ? 0xfffffff8u : 0), 4);
    f->records[type]++;
}

/*
 * A PAGE record's form and data, for a page of @size bytes, from @d.
 * Returns whether the form is one the device knows.
 */
static bool put_page(TmemMigFuzz *f, uint32_t size, uint8_t d)
{
    GByteArray *a = f->stream;
    uint64_t word = 0x9e3779b97f4a7c15ull * (d + 1);
    int len;

    if (d >= 0xfc) {
        /* no such form */
        tmem_fuzz_put_be(a, d & 1 ? 0 : 4 + (d & 2) * 100, 1);
        return false;
    }
    switch ((d >> 2) % 3) {
    case 0:
        /* the 8-byte fill word: zero, one byte repeated, or any */
        if (!(d & 3)) {
            word = 0;
        } else if ((d & 3) == 1) {
            memset(&word, d, 8);
        }
        tmem_fuzz_put_be(a, TMEM_FORM_SAME, 1);
        g_byte_array_append(a, (const uint8_t *)&word, 8);
        f->forms[TMEM_FORM_SAME]++;
        return true;
    case 1:
        tmem_fuzz_page_fill(f->page, size, d);
        len = LZ4_compress_default((const char *)f->page, (char *)f->lz4,
                                   size, LZ4_compressBound(65536));
        if (len > 0 && len < (int)size) {
            tmem_fuzz_put_be(a, TMEM_FORM_LZ4, 1);
            tmem_fuzz_put_be(a, len, 4);
            g_byte_array_append(a, f->lz4, len);
            f->forms[TMEM_FORM_LZ4]++;
            return true;
        }
        break;          /* noise does not compress: raw, then */
    default:
        tmem_fuzz_page_fill(f->page, size, d);
        break;
    }
    tmem_fuzz_put_be(a, TMEM_FORM_RAW, 1);
    g_byte_array_append(a, f->page, size);
    f->forms[TMEM_FORM_RAW]++;
    return true;
}

/*
 * Write a stream from the input's program into f->stream: live records
 * and an END, then the device's section.  Returns whether it is one the
 * device must accept with @features.
 */
static bool make_stream(TmemMigFuzz *f, TmemMigInput *in, uint64_t features)
{
    GByteArray *a = f->stream;
    bool valid = true;
    bool eph = features & (1ull << VIRTIO_TMEM_F_EPHEMERAL);
    bool big = features & (1ull << VIRTIO_TMEM_F_PAGE_64K);
    uint8_t c = in_byte(in), n = in_byte(in), r = in_byte(in);
    /* the page shift of each slot's pool as the live records leave it */
    uint8_t live[TMEM_MIG_FUZZ_MAX_POOLS + 8] = { 0 };
    uint32_t credits, npools, nslots, i;

    /* credits: mostly a few, sometimes more than max-credits */
    if (c < 0xf0) {
        credits = c % 17;
    } else {
        credits = TMEM_MIG_FUZZ_MAX_CREDITS + (c & 15) - 7;
    }
    if (credits > (features & (1ull << VIRTIO_TMEM_F_CREDITS) ?
                   TMEM_MIG_FUZZ_MAX_CREDITS : 0)) {
        valid = false;
    }
    npools = n < 0xf8 ? n % 6 : TMEM_MIG_FUZZ_MAX_POOLS + (n & 7) - 3;
    if (npools > TMEM_MIG_FUZZ_MAX_POOLS) {
        valid = false;
    }
    nslots = MAX(MIN(npools, TMEM_MIG_FUZZ_MAX_POOLS), 1);

    /* the live records */
    for (i = 0; i < r % (TMEM_MIG_FUZZ_MAX_RECORDS + 1) && in->left; i++) {
        uint8_t t = in_byte(in), u = in_byte(in), sh;
        uint32_t slot;

        if (!(t & 3)) {
            /* SLOT: most make a pool or drop one, in the table's slots */
            slot = u < 0xf8 ? u % nslots : npools + (u & 7);
            switch ((t >> 2) & 7) {
            case 0:
            case 1:
                sh = 0;
                break;
            case 5:
            case 6:
                sh = 16;
                break;
            case 7:
                sh = t & 0x20 ? 13 : 0xff;      /* no such page size */
                valid = false;
                break;
            default:
                sh = 12;
                break;
            }
            put_slot(f, slot, sh);
            if (slot >= TMEM_MIG_FUZZ_MAX_POOLS) {
                valid = false;
            } else if (sh == 0 || sh == 12 || sh == 16) {
                live[slot] = sh;
            }
            continue;
        }

        /* PAGE or GONE; a slot with no pool gets one first, mostly */
        slot = u < 0xf0 ? u % nslots : u & 15;
        if (!live[slot]) {
            if (u < 0xf0) {
                live[slot] = u & 0x40 ? 16 : 12;
                put_slot(f, slot, live[slot]);
            } else {
                valid = false;
            }
        }
        sh = live[slot] ? live[slot] : 12;
        if ((t & 3) == 3) {
            put_key(f, TMEM_LIVE_GONE, slot, in_byte(in));
        } else {
            put_key(f, TMEM_LIVE_PAGE, slot, in_byte(in));
            valid &= put_page(f, 1u << sh, in_byte(in));
        }
    }
    tmem_fuzz_put_be(a, TMEM_LIVE_END, 1);
    f->records[TMEM_LIVE_END]++;

    /*
     * The device's section: credits and the pool table, which an input
     * that ends early completes as the live records left the pools.
     */
    tmem_fuzz_put_be(a, credits, 4);
    tmem_fuzz_put_be(a, npools, 4);
    for (i = 0; i < npools; i++) {
        uint8_t k = in_byte(in), g = in_byte(in), kind, shift;

        if (i < ARRAY_SIZE(live) && live[i]) {
            /* the live records made a persistent pool here */
            kind = VIRTIO_TMEM_POOL_PERSISTENT;
            shift = live[i];
            if (k >= 0xfc) {
                kind = k & 1 ? VIRTIO_TMEM_POOL_EPHEMERAL : 0;
            } else if (k >= 0xf8) {
                shift = shift ^ (12 ^ 16);      /* not the size it has */
            }
        } else {
            kind = (k & 3) < 2 ? 0 : VIRTIO_TMEM_POOL_EPHEMERAL;
            shift = (k & 0x0c) == 0x0c ? 16 : 12;
            if (k >= 0xfc) {
                kind = k & 1 ? VIRTIO_TMEM_POOL_PERSISTENT :
                       3 + (k & 2) * 100;       /* no pool; no such kind */
            } else if (k >= 0xf0) {
                kind = VIRTIO_TMEM_POOL_EPHEMERAL;
                shift = k & 1 ? 0 : 13;         /* no such page size */
            }
        }
        tmem_fuzz_put_be(a, kind, 1);
        tmem_fuzz_put_be(a, g | (k & 0x30) << 6, 2);
        if (!kind) {
            if (i < ARRAY_SIZE(live) && live[i]) {
                valid = false;
            }
            continue;
        }
        tmem_fuzz_put_be(a, shift, 1);
        if (kind == VIRTIO_TMEM_POOL_PERSISTENT) {
            valid &= i < ARRAY_SIZE(live) && live[i] == shift;
        } else if (kind == VIRTIO_TMEM_POOL_EPHEMERAL) {
            valid &= !(i < ARRAY_SIZE(live) && live[i]) && eph &&
                     (shift == 12 || shift == 16);
        } else {
            valid = false;
        }
        if (shift == 16 && !big) {
            valid = false;
        }
    }
    /* a pool past the table, or in a 64 KiB page size not negotiated */
    for (i = 0; i < ARRAY_SIZE(live); i++) {
        if (live[i] && (i >= npools || (live[i] == 16 && !big))) {
            valid = false;
        }
    }
    /* what follows the section in a real stream is not a subsection */
    tmem_fuzz_put_be(a, 0, 1);
    return valid;
}

/* Corrupt or cut the stream where the rest of the input says. */
static bool corrupt_stream(TmemMigFuzz *f, TmemMigInput *in)
{
    GByteArray *a = f->stream;
    bool changed = false;

    while (in->left >= 4 && a->len) {
        uint32_t off = in_byte(in);
        uint8_t x;

        off |= in_byte(in) << 8;
        off |= in_byte(in) << 16;
        off %= a->len;
        x = in_byte(in);
        if (x) {
            a->data[off] ^= x;
        } else {
            g_byte_array_set_size(a, off);
        }
        changed = true;
    }
    return changed;
}

/* The live records, then the device's section: a TmemFuzzStreamFn */
static int read_stream(void *opaque, QEMUFile *file)
{
    VirtIOTmem *s = opaque;
    int rc = virtio_tmem_live_load_all(s, file);

    return rc ? rc : vmstate_load_state(file, &vmstate_virtio_tmem_device, s,
                                        vmstate_virtio_tmem_device.version_id);
}

static int write_stream(void *opaque, QEMUFile *file)
{
    VirtIOTmem *s = opaque;
    int rc = virtio_tmem_live_save_all(s, file);

    return rc ? rc : vmstate_save_state(file, &vmstate_virtio_tmem_device, s,
                                        NULL);
}

/*
 * Load a stream into the device as an incoming migration would: the
 * live records, then the device's section, from one file on a buffer.
 */
static int load_stream(TmemMigFuzz *f, const uint8_t *data, size_t len)
{
    int rc = tmem_fuzz_load(read_stream, f->s, data, len);

    return rc ? rc : virtio_tmem_post_load(f->s, 2);
}

/* Save the live records and the device's section, or NULL if it failed */
static GByteArray *save_stream(TmemMigFuzz *f)
{
    return tmem_fuzz_save(write_stream, f->s);
}

/* TMEM_MIG_FUZZ_DUMP: @a as an input of raw mode with features @feat */
static void dump_stream(uint8_t feat, GByteArray *a)
{
    const char *path = getenv("TMEM_MIG_FUZZ_DUMP");
    g_autoptr(GByteArray) in = NULL;

    if (!path) {
        return;
    }
    in = g_byte_array_sized_new(a->len + 2);
    g_byte_array_append(in, &feat, 1);
    tmem_fuzz_put_be(in, 0, 1);
    g_byte_array_append(in, a->data, a->len);
    if (!g_file_set_contents(path, (const char *)in->data, in->len, NULL)) {
        fprintf(stderr, "virtio-tmem-migration-fuzz: cannot write %s\n",
                path);
    }
}

static void tmem_mig_fuzz_report(void)
{
    TmemMigFuzz *f = &tmem_mig_fuzz;

    fprintf(stderr, "virtio-tmem-migration-fuzz: %" PRIu64 " inputs, %"
            PRIu64 " streams loaded (%" PRIu64 " well-formed), %" PRIu64
            " refused, %" PRIu64 " bytes loaded; written: %" PRIu64
            " SLOT, %" PRIu64 " PAGE (%" PRIu64 " SAME, %" PRIu64 " LZ4, %"
            PRIu64 " RAW), %" PRIu64 " GONE\n", f->inputs, f->loaded,
            f->wellformed, f->refused, f->bytes,
            f->records[TMEM_LIVE_SLOT], f->records[TMEM_LIVE_PAGE],
            f->forms[TMEM_FORM_SAME], f->forms[TMEM_FORM_LZ4],
            f->forms[TMEM_FORM_RAW], f->records[TMEM_LIVE_GONE]);
}

/*
 * The input: one byte of features (0xf0 | mask: those features not
 * negotiated; any other value: all), one of mode (bits 0-1 zero: the
 * rest is a raw stream), then the stream's program and its corruption.
 */
static void virtio_tmem_migration_fuzz(QTestState *qts,
                                       const unsigned char *data, size_t size)
{
    TmemMigFuzz *f = &tmem_mig_fuzz;
    TmemMigInput in = { data, size };
    uint8_t feat = in_byte(&in), mode = in_byte(&in);
    VirtIODevice *vdev;
    GByteArray *a, *b;
    bool valid = false;
    int rc;

    if (!f->s) {
        f->s = VIRTIO_TMEM(object_resolve_path_type("", TYPE_VIRTIO_TMEM,
                                                    NULL));
        f->stream = g_byte_array_new();
        f->page = g_malloc(65536);
        f->lz4 = g_malloc(LZ4_compressBound(65536));
        atexit(tmem_mig_fuzz_report);
    }
    vdev = VIRTIO_DEVICE(f->s);
    f->inputs++;

    /* a fresh device, with the features the source negotiated */
    virtio_reset(vdev);
    vdev->guest_features = vdev->host_features;
    if ((feat & 0xf0) == 0xf0) {
        vdev->guest_features &= ~(uint64_t)(feat & 0xf);
    }

    g_byte_array_set_size(f->stream, 0);
    if (mode & 3) {
        valid = make_stream(f, &in, vdev->guest_features);
        valid &= !corrupt_stream(f, &in);
        f->wellformed += valid;
    } else {
        g_byte_array_append(f->stream, in.p, in.left);
    }
    rc = load_stream(f, f->stream->data, f->stream->len);
    if (rc) {
        if (valid) {
            fprintf(stderr, "virtio-tmem-migration-fuzz: a well-formed "
                    "stream of %u bytes was refused: %d\n", f->stream->len,
                    rc);
            abort();
        }
        f->refused++;
        virtio_reset(vdev);
        return;
    }
    f->loaded++;
    f->bytes += f->stream->len;

    /* what loaded saves, and that loads and saves to the same size */
    a = save_stream(f);
    if (!a) {
        fprintf(stderr, "virtio-tmem-migration-fuzz: a loaded stream does "
                "not save\n");
        abort();
    }
    dump_stream(feat, a);
    rc = load_stream(f, a->data, a->len);
    b = rc ? NULL : save_stream(f);
    if (!b || b->len != a->len) {
        fprintf(stderr, "virtio-tmem-migration-fuzz: a saved stream of %u "
                "bytes %s\n", a->len, rc ? "does not load" :
                !b ? "loads but does not save" : "saves to another size");
        abort();
    }
    g_byte_array_unref(a);
    g_byte_array_unref(b);
    virtio_reset(vdev);
}

static void virtio_tmem_migration_pre_fuzz(QTestState *s)
{
    qos_init_path(s);
}

static void *virtio_tmem_migration_fuzz_setup(GString *cmd_line, void *arg)
{
    g_string_append_printf(cmd_line, " -global virtio-tmem-pci.budget=4M"
                           " -global virtio-tmem-pci.max-pools=%d"
                           " -global virtio-tmem-pci.max-credits=%d",
                           TMEM_MIG_FUZZ_MAX_POOLS,
                           TMEM_MIG_FUZZ_MAX_CREDITS);
    return arg;
}

static void register_virtio_tmem_migration_fuzz_target(void)
{
    fuzz_add_qos_target(&(FuzzTarget){
                .name = "virtio-tmem-migration-fuzz",
                .description = "Fuzz the virtio-tmem section of an "
                "incoming migration stream",
                .pre_fuzz = &virtio_tmem_migration_pre_fuzz,
                .fuzz = virtio_tmem_migration_fuzz,},
                "virtio-tmem",
                &(QOSGraphTestOptions){
                    .before = virtio_tmem_migration_fuzz_setup,
                });
}

fuzz_target_init(register_virtio_tmem_migration_fuzz_target);
