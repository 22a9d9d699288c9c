/*
 * Helpers shared by the virtio-tmem and tmem block fuzz targets: page
 * contents, big-endian stream building, and loading or saving a
 * section (a vmstate description, or a live section's records) through
 * a memory buffer, as a migration would.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef TMEM_FUZZ_UTIL_H
#define TMEM_FUZZ_UTIL_H

#include "io/channel-buffer.h"
#include "migration/qemu-file.h"
#include "migration/vmstate.h"

/*
 * Page contents by @d: zeros, one byte repeated (same-filled), noise
 * (incompressible) or text-like (compressible), from a seed.
 */
static inline void tmem_fuzz_page_fill(uint8_t *p, size_t len, uint8_t d)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (d + 1);
    size_t i;

    switch (d & 3) {
    case 0:
        memset(p, 0, len);
        break;
    case 1:
        memset(p, d, len);
        break;
    case 2:
        for (i = 0; i < len; i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(p + i, &x, 8);
        }
        break;
    default:
        for (i = 0; i < len; i++) {
            p[i] = "tmem page, fuzzed "[(i + d) % 18] ^ ((i & 511) ? 0 : d);
        }
        break;
    }
}

/* Append the low @bytes bytes of @v to @a, big-endian. */
static inline void tmem_fuzz_put_be(GByteArray *a, uint64_t v,
                                    unsigned bytes)
{
    uint8_t b[8];
    unsigned i;

    for (i = 0; i < bytes; i++) {
        b[i] = v >> (8 * (bytes - 1 - i));
    }
    g_byte_array_append(a, b, bytes);
}

/* What reads or writes one section's stream, as a migration would */
typedef int TmemFuzzStreamFn(void *opaque, QEMUFile *f);

/* Run @fn on a file that reads the @len bytes at @data. */
static inline int tmem_fuzz_load(TmemFuzzStreamFn *fn, void *opaque,
                                 const uint8_t *data, size_t len)
{
    QIOChannelBuffer *bioc = qio_channel_buffer_new(len);
    QEMUFile *file;
    int rc;

    if (len) {
        memcpy(bioc->data, data, len);  /* an empty buffer has no data */
    }
    bioc->usage = len;
    file = qemu_file_new_input(QIO_CHANNEL(bioc));
    rc = fn(opaque, file);
    qemu_fclose(file);
    object_unref(OBJECT(bioc));
    return rc;
}

/*
 * What @fn writes, or NULL if it failed.  Closing the file closes the
 * channel, which frees its buffer: the stream is copied out before.
 */
static inline GByteArray *tmem_fuzz_save(TmemFuzzStreamFn *fn, void *opaque)
{
    QIOChannelBuffer *bioc = qio_channel_buffer_new(65536);
    QEMUFile *file = qemu_file_new_output(QIO_CHANNEL(bioc));
    GByteArray *out = NULL;
    int rc;

    rc = fn(opaque, file);
    if (!rc) {
        rc = qemu_fflush(file);
    }
    if (!rc) {
        out = g_byte_array_sized_new(bioc->usage);
        g_byte_array_append(out, bioc->data, bioc->usage);
    }
    qemu_fclose(file);
    object_unref(OBJECT(bioc));
    return out;
}

/* A vmstate description and its opaque, for the two above */
typedef struct TmemFuzzVmsd {
    const VMStateDescription *vmsd;
    void *opaque;
} TmemFuzzVmsd;

static inline int tmem_fuzz_vmsd_load(void *opaque, QEMUFile *f)
{
    TmemFuzzVmsd *v = opaque;

    return vmstate_load_state(f, v->vmsd, v->opaque, v->vmsd->version_id);
}

static inline int tmem_fuzz_vmsd_save(void *opaque, QEMUFile *f)
{
    TmemFuzzVmsd *v = opaque;

    return vmstate_save_state(f, v->vmsd, v->opaque, NULL);
}

/* Load @len bytes of @data into @opaque as @vmsd's section. */
static inline int tmem_fuzz_vmstate_load(const VMStateDescription *vmsd,
                                         void *opaque, const uint8_t *data,
                                         size_t len)
{
    TmemFuzzVmsd v = { vmsd, opaque };

    return tmem_fuzz_load(tmem_fuzz_vmsd_load, &v, data, len);
}

/* @opaque saved as @vmsd's section, or NULL if saving failed. */
static inline GByteArray *tmem_fuzz_vmstate_save(const VMStateDescription *vmsd,
                                                 void *opaque)
{
    TmemFuzzVmsd v = { vmsd, opaque };

    return tmem_fuzz_save(tmem_fuzz_vmsd_save, &v);
}

#endif
