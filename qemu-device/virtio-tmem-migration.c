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
 * The stream is not trusted on load.  npools is checked against
 * max-pools before it drives the loop; a pool's pages are a list ended
 * by a marker, not a count, and each costs the stream its bytes, so the
 * list ends with the stream at the latest.  Any other marker, kind or
 * page shift fails the load, and so do credits above max-credits and
 * pools or credits of a feature the guest did not negotiate, which
 * post_load checks once the features are loaded.  Every refusal is an
 * error_report and an error returned: the migration fails, QEMU lives.
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

/* Before each page of a persistent pool, and after its last */
#define VIRTIO_TMEM_MIG_PAGE        1
#define VIRTIO_TMEM_MIG_END         0

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
        qemu_put_byte(f, VIRTIO_TMEM_MIG_PAGE);
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
    qemu_put_byte(f, VIRTIO_TMEM_MIG_END);
    return 0;
}

static int virtio_tmem_save(QEMUFile *f, void *pv, size_t size,
                            const VMStateField *field, JSONWriter *vmdesc)
{
    VirtIOTmem *s = pv;
    uint32_t i;
    int rc = 0;

    /*
     * The VM is stopped, and with it the queues' handlers; without
     * ioeventfd a request may still wait for a flush, and would be lost.
     */
    virtio_tmem_wait_serving(s);
    qemu_mutex_lock(&s->lock);
    qemu_put_be32(f, s->npools);
    for (i = 0; i < s->npools; i++) {
        enum tmem_pool_kind kind;
        uint32_t page_size;

        if (s->pools[i] < 0) {
            qemu_put_byte(f, 0);
            qemu_put_be16(f, s->pool_gen[i]);
            continue;
        }
        /* a pool the driver holds goes whole, or the migration fails */
        rc = tmem_pool_info(s->store, s->pools[i], &kind, &page_size);
        if (rc < 0) {
            error_report("virtio-tmem: cannot save pool %u: %s", i,
                         strerror(-rc));
            break;
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

static int virtio_tmem_load_pages(QEMUFile *f, VirtIOTmem *s, uint32_t slot,
                                  int pool, uint32_t page_size)
{
    struct tmem_key key;
    int rc;

    for (;;) {
        uint8_t marker = qemu_get_byte(f);

        rc = qemu_file_get_error(f);
        if (rc < 0) {
            return rc;
        }
        if (marker == VIRTIO_TMEM_MIG_END) {
            return 0;
        }
        if (marker != VIRTIO_TMEM_MIG_PAGE) {
            error_report("virtio-tmem: pool %u: unknown marker 0x%x in the "
                         "stream", slot, marker);
            return -EINVAL;
        }
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
        if (kind != VIRTIO_TMEM_POOL_PERSISTENT &&
            kind != VIRTIO_TMEM_POOL_EPHEMERAL) {
            error_report("virtio-tmem: pool %u: unknown kind %u in the "
                         "stream", i, kind);
            return -EINVAL;
        }
        if (shift != 12 && shift != 16) {
            error_report("virtio-tmem: pool %u: page shift %u in the stream",
                         i, shift);
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
        rc = virtio_tmem_load_pages(f, s, i, pool, 1u << shift);
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

/*
 * What the loaded state may hold depends on what the guest negotiated,
 * which is only final once the virtio section is loaded (the features
 * above bit 31 come in a subsection after this device's fields), so it
 * is checked here, after the whole virtio-tmem section.
 */
int virtio_tmem_post_load(void *opaque, int version_id)
{
    VirtIOTmem *s = VIRTIO_TMEM(opaque);
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    bool credits = virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_CREDITS);
    int rc = 0;
    uint32_t i;

    qemu_mutex_lock(&s->lock);
    if (s->credits > (credits ? s->max_credits : 0)) {
        error_report("virtio-tmem: %u credits arriving, max-credits is %u%s",
                     s->credits, s->max_credits,
                     credits ? "" : " and credits were not negotiated");
        rc = -EINVAL;
    }
    for (i = 0; !rc && i < s->npools; i++) {
        enum tmem_pool_kind kind;
        uint32_t page_size;

        if (s->pools[i] < 0 ||
            tmem_pool_info(s->store, s->pools[i], &kind, &page_size)) {
            continue;
        }
        if (kind == TMEM_EPHEMERAL &&
            !virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_EPHEMERAL)) {
            error_report("virtio-tmem: pool %u is ephemeral, which the guest "
                         "has not negotiated", i);
            rc = -EINVAL;
        } else if (page_size != 4096 &&
                   !virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_PAGE_64K)) {
            error_report("virtio-tmem: pool %u has 64 KiB pages, which the "
                         "guest has not negotiated", i);
            rc = -EINVAL;
        }
    }
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
