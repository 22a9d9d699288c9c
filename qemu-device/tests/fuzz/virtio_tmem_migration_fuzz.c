/*
 * virtio-tmem fuzz target for the incoming migration stream
 *
 * The fuzzer's bytes become the device's section (vmstate
 * virtio-tmem-device: credits, then the pools and their pages) and are
 * loaded into the running device from a memory buffer, the way an
 * incoming migration loads it, followed by the post_load checks.  A bad
 * stream must fail the load and nothing more.  Most inputs are a
 * program that writes a well-formed stream (pools of either kind and
 * page size, pages, credits) and then corrupts or cuts it at a few
 * places; the others are raw streams.  A stream that loads must save
 * again, and what it saves must load and save to the same size; an
 * uncorrupted, well-formed stream must load.  Any mismatch aborts.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qom/object.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-tmem.h"

#include "tests/qtest/libqtest.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "fuzz.h"
#include "qos_fuzz.h"
#include "tmem_fuzz_util.h"

#define TMEM_MIG_FUZZ_MAX_POOLS     16  /* max-pools on the command line */
#define TMEM_MIG_FUZZ_MAX_CREDITS   64  /* max-credits on the command line */

typedef struct TmemMigFuzz {
    VirtIOTmem *s;
    GByteArray *stream;
    uint8_t *page;
    uint64_t inputs, loaded, refused, bytes;
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

/*
 * Write a stream from the input's program into f->stream.  Returns
 * whether it is one the device must accept with @features.
 */
static bool make_stream(TmemMigFuzz *f, TmemMigInput *in, uint64_t features)
{
    GByteArray *a = f->stream;
    bool valid = true;
    uint8_t c = in_byte(in), n = in_byte(in);
    uint32_t credits, npools, i, j;

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
    tmem_fuzz_put_be(a, credits, 4);

    npools = n < 0xf8 ? n % 6 : TMEM_MIG_FUZZ_MAX_POOLS + (n & 7) - 3;
    if (npools > TMEM_MIG_FUZZ_MAX_POOLS) {
        valid = false;
    }
    tmem_fuzz_put_be(a, npools, 4);
    for (i = 0; i < npools && in->left; i++) {
        uint8_t k = in_byte(in), g = in_byte(in), np, kind, shift;

        kind = k & 3;           /* 0: a free slot, 3: ephemeral */
        kind = kind == 3 ? VIRTIO_TMEM_POOL_EPHEMERAL :
               kind ? VIRTIO_TMEM_POOL_PERSISTENT : 0;
        shift = (k & 0x0c) == 0x0c ? 16 : 12;
        if (k >= 0xf8) {
            kind = 3 + (k & 1) * 200;   /* no such kind */
        } else if (k >= 0xf0) {
            shift = k & 1 ? 0 : 13;     /* no such page size */
        }
        tmem_fuzz_put_be(a, kind, 1);
        tmem_fuzz_put_be(a, g | (k & 0x30) << 6, 2);
        if (!kind) {
            continue;
        }
        tmem_fuzz_put_be(a, shift, 1);
        if ((kind != VIRTIO_TMEM_POOL_PERSISTENT &&
             kind != VIRTIO_TMEM_POOL_EPHEMERAL) ||
            (shift != 12 && shift != 16) ||
            (kind == VIRTIO_TMEM_POOL_EPHEMERAL &&
             !(features & (1ull << VIRTIO_TMEM_F_EPHEMERAL))) ||
            (shift == 16 && !(features & (1ull << VIRTIO_TMEM_F_PAGE_64K)))) {
            valid = false;
        }
        if (kind != VIRTIO_TMEM_POOL_PERSISTENT ||
            (shift != 12 && shift != 16)) {
            continue;
        }
        np = in_byte(in) % 6;
        for (j = 0; j < np; j++) {
            uint8_t key = in_byte(in), d = in_byte(in);

            tmem_fuzz_put_be(a, 1, 1);
            tmem_fuzz_put_be(a, (key >> 4) & 3, 8);
            tmem_fuzz_put_be(a, key & 0x80 ? 0xfffffffffffff000ull : 0, 8);
            tmem_fuzz_put_be(a, key & 0x40 ? 7 : 0, 8);
            tmem_fuzz_put_be(a, key & 15, 4);
            tmem_fuzz_page_fill(f->page, 1u << shift, d);
            g_byte_array_append(a, f->page, 1u << shift);
        }
        tmem_fuzz_put_be(a, 0, 1);
    }
    if (i < npools) {
        valid = false;          /* the input ended first */
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

    while (in->left >= 3 && a->len) {
        uint32_t off = (in_byte(in) | in_byte(in) << 8) % a->len;
        uint8_t x = in_byte(in);

        if (x) {
            a->data[off] ^= x;
        } else {
            g_byte_array_set_size(a, off);
        }
        changed = true;
    }
    return changed;
}

/* Load a stream into the device as an incoming migration would. */
static int load_stream(TmemMigFuzz *f, const uint8_t *data, size_t len)
{
    int rc = tmem_fuzz_vmstate_load(&vmstate_virtio_tmem_device, f->s, data,
                                    len);

    return rc ? rc : virtio_tmem_post_load(f->s, 1);
}

/* Save the device's section; returns the stream, or NULL if it failed. */
static GByteArray *save_stream(TmemMigFuzz *f)
{
    return tmem_fuzz_vmstate_save(&vmstate_virtio_tmem_device, f->s);
}

static void tmem_mig_fuzz_report(void)
{
    fprintf(stderr, "virtio-tmem-migration-fuzz: %" PRIu64 " inputs, %"
            PRIu64 " streams loaded, %" PRIu64 " refused, %" PRIu64
            " bytes loaded\n", tmem_mig_fuzz.inputs, tmem_mig_fuzz.loaded,
            tmem_mig_fuzz.refused, tmem_mig_fuzz.bytes);
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
