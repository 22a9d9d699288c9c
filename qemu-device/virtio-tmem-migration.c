/*
 * Virtio transcendent memory device: migration
 *
 * Persistent pages are guest state: a swapped-out page the guest kernel
 * dropped lives only here, so every one of them, spilled ones included,
 * travels in the device's section, with the pools and the credits.
 * Ephemeral pages may be dropped at any time, so their pools arrive
 * empty and the driver gets a RESET event for each, once it runs.
 *
 * The section is saved with the VM stopped, and with it the request
 * queues' handlers (in the main loop or an iothread), so it is one
 * consistent snapshot of the store.  Its stream:
 *
 *   be32 npools
 *   per pool slot: u8 kind (0: free), be16 generation,
 *                  and for a pool: u8 page shift, then for persistent
 *                  pools each page as u8 1, be64 oid[3], be32 index,
 *                  the page; and u8 0 after the last
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/host-utils.h"
#include "hw/virtio/virtio-tmem.h"
#include "migration/qemu-file-types.h"
#include "migration/vmstate.h"
#include "tmem.h"

static int virtio_tmem_save_pool(QEMUFile *f, VirtIOTmem *s, int pool,
                                 uint32_t page_size)
{
    struct tmem_iter *it;
    struct tmem_key key;
    int rc;

    rc = tmem_iter_begin(s->store, pool, &it);
    if (rc < 0) {
        return rc;
    }
    while ((rc = tmem_iter_next(it, &key, s->page, page_size)) == 1) {
        qemu_put_byte(f, 1);
        qemu_put_be64(f, key.oid[0]);
        qemu_put_be64(f, key.oid[1]);
        qemu_put_be64(f, key.oid[2]);
        qemu_put_be32(f, key.index);
        qemu_put_buffer(f, s->page, page_size);
    }
    tmem_iter_end(it);
    /* A page that cannot be read back must fail the migration, not vanish */
    if (rc < 0) {
        return rc;
    }
    qemu_put_byte(f, 0);
    return 0;
}

static int virtio_tmem_save(QEMUFile *f, void *pv, size_t size,
                            const VMStateField *field, JSONWriter *vmdesc)
{
    VirtIOTmem *s = pv;
    uint32_t i;
    int rc = 0;

    /* the VM is stopped, and with it the queues' handlers */
    qemu_mutex_lock(&s->lock);
    qemu_put_be32(f, s->npools);
    for (i = 0; i < s->npools; i++) {
        enum tmem_pool_kind kind;
        uint32_t page_size;

        if (s->pools[i] < 0 ||
            tmem_pool_info(s->store, s->pools[i], &kind, &page_size)) {
            qemu_put_byte(f, 0);
            qemu_put_be16(f, s->pool_gen[i]);
            continue;
        }
        qemu_put_byte(f, kind == TMEM_PERSISTENT ?
                      VIRTIO_TMEM_POOL_PERSISTENT : VIRTIO_TMEM_POOL_EPHEMERAL);
        qemu_put_be16(f, s->pool_gen[i]);
        qemu_put_byte(f, ctz32(page_size));
        if (kind == TMEM_PERSISTENT) {
            rc = virtio_tmem_save_pool(f, s, s->pools[i], page_size);
            if (rc < 0) {
                error_report("virtio-tmem: cannot save pool %u: %s", i,
                             strerror(-rc));
                break;
            }
        }
    }
    qemu_mutex_unlock(&s->lock);
    return rc < 0 ? rc : qemu_file_get_error(f);
}

static int virtio_tmem_load_pages(QEMUFile *f, VirtIOTmem *s, int pool,
                                  uint32_t page_size)
{
    struct tmem_key key;
    int rc;

    while (qemu_get_byte(f) == 1) {
        key.oid[0] = qemu_get_be64(f);
        key.oid[1] = qemu_get_be64(f);
        key.oid[2] = qemu_get_be64(f);
        key.index = qemu_get_be32(f);
        if (qemu_get_buffer(f, s->page, page_size) != page_size) {
            return -EIO;
        }
        /* Accepted by the source, so kept here even over budget */
        rc = tmem_put_flags(s->store, pool, &key, s->page, page_size,
                            TMEM_PUT_RESERVED);
        if (rc < 0) {
            return rc;
        }
    }
    return qemu_file_get_error(f);
}

/*
 * Ephemeral pools arrive empty: the driver is told with a RESET for
 * each, sent by the event bottom half once the guest runs again.
 */
static int virtio_tmem_load_locked(QEMUFile *f, VirtIOTmem *s)
{
    uint32_t npools = qemu_get_be32(f), i;

    virtio_tmem_drop_pools(s);
    virtio_tmem_events_reset(s);
    if (npools > s->max_pools) {
        error_report("virtio-tmem: %u pools arriving, max-pools is %u",
                     npools, s->max_pools);
        return -EINVAL;
    }
    for (i = 0; i < npools; i++) {
        uint8_t kind = qemu_get_byte(f);
        uint8_t shift;
        int pool, rc;

        s->pool_gen[i] = qemu_get_be16(f);
        s->pools[i] = -1;
        s->npools = i + 1;
        if (!kind) {
            continue;
        }
        shift = qemu_get_byte(f);
        if ((kind != VIRTIO_TMEM_POOL_PERSISTENT &&
             kind != VIRTIO_TMEM_POOL_EPHEMERAL) ||
            (shift != 12 && shift != 16)) {
            return -EINVAL;
        }
        pool = tmem_pool_create(s->store,
                                kind == VIRTIO_TMEM_POOL_PERSISTENT ?
                                TMEM_PERSISTENT : TMEM_EPHEMERAL, 1u << shift);
        if (pool < 0) {
            return pool;
        }
        s->pools[i] = pool;
        if (kind == VIRTIO_TMEM_POOL_EPHEMERAL) {
            s->pstate[i].reset_pending = true;
            continue;
        }
        rc = virtio_tmem_load_pages(f, s, pool, 1u << shift);
        if (rc < 0) {
            error_report("virtio-tmem: cannot load pool %u: %s", i,
                         strerror(-rc));
            return rc;
        }
    }
    return qemu_file_get_error(f);
}

static int virtio_tmem_load(QEMUFile *f, void *pv, size_t size,
                            const VMStateField *field)
{
    VirtIOTmem *s = pv;
    int rc;

    qemu_mutex_lock(&s->lock);
    rc = virtio_tmem_load_locked(f, s);
    qemu_mutex_unlock(&s->lock);
    return rc;
}

static const VMStateInfo vmstate_info_virtio_tmem_pages = {
    .name = "virtio-tmem-pages",
    .get = virtio_tmem_load,
    .put = virtio_tmem_save,
};

const VMStateDescription vmstate_virtio_tmem_device = {
    .name = "virtio-tmem-device",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(credits, VirtIOTmem),
        {
            .name = "pools",
            .info = &vmstate_info_virtio_tmem_pages,
            .flags = VMS_SINGLE,
        },
        VMSTATE_END_OF_LIST()
    },
};
