/*
 * Virtio transcendent memory device: migration of the device's state
 *
 * Persistent pages are guest state: a swapped-out page the guest kernel
 * dropped lives only here.  They travel before this section, while the
 * guest still runs, in the device's live section (virtio-tmem-live.c),
 * which also makes each persistent pool on the destination.  Ephemeral
 * pages may be dropped at any time, so their pools arrive empty and the
 * driver gets a RESET event for each, once it runs.
 *
 * This section, saved with the VM stopped, carries the credits and the
 * pool table, which the live section's pools must match:
 *
 *   be32 npools
 *   per pool slot: u8 kind (0: free), be16 generation,
 *                  and for a pool: u8 page shift
 *
 * Version 1 of the section, from before pre-copy, carried every page of
 * the persistent pools in it; it is refused (version 2 is the minimum),
 * so snapshots taken before pre-copy do not load.
 *
 * The stream is not trusted on load.  npools is checked against
 * max-pools before it drives the loop.  An unknown kind or page shift
 * fails the load, and so do a persistent pool whose pages did not arrive
 * as such, pages for a slot the table has free or ephemeral, credits
 * above max-credits and pools or credits of a feature the guest did not
 * negotiate, which post_load checks once the features are loaded.  Every
 * refusal is an error_report and an error returned: the migration fails,
 * QEMU lives.
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
    }
    qemu_mutex_unlock(&s->lock);
    return rc < 0 ? rc : qemu_file_get_error(f);
}

/*
 * Slot @i of the table is @kind with pages of 1 << @shift bytes: the
 * live section made its persistent pool; an ephemeral one is made here.
 */
static int virtio_tmem_load_slot(VirtIOTmem *s, uint32_t i, uint8_t kind,
                                 uint8_t shift)
{
    enum tmem_pool_kind have = 0;
    uint32_t page_size = 0;
    int pool;

    if (s->pools[i] >= 0) {
        tmem_pool_info(s->store, s->pools[i], &have, &page_size);
    }
    if (kind == VIRTIO_TMEM_POOL_PERSISTENT) {
        if (have != TMEM_PERSISTENT || page_size != 1u << shift) {
            error_report("virtio-tmem: pool %u is persistent, but its pages "
                         "did not arrive", i);
            return -EINVAL;
        }
        return 0;
    }
    if (s->pools[i] >= 0) {
        error_report("virtio-tmem: pool %u is ephemeral, but pages arrived "
                     "for it", i);
        return -EINVAL;
    }
    pool = tmem_pool_create(s->store, TMEM_EPHEMERAL, 1u << shift);
    if (pool < 0) {
        return pool;
    }
    s->pools[i] = pool;
    s->pstate[i].reset_pending = true;
    return 0;
}

static int virtio_tmem_load_locked(QEMUFile *f, VirtIOTmem *s)
{
    uint32_t npools = qemu_get_be32(f), i;

    virtio_tmem_events_reset(s);
    if (npools > s->max_pools) {
        error_report("virtio-tmem: %u pools arriving, max-pools is %u",
                     npools, s->max_pools);
        return -EINVAL;
    }
    for (i = npools; i < s->npools; i++) {
        if (s->pools[i] >= 0) {
            error_report("virtio-tmem: pages arrived for pool %u, which is "
                         "past the table", i);
            return -EINVAL;
        }
    }
    for (i = s->npools; i < npools; i++) {
        s->pools[i] = -1;
    }
    s->npools = npools;
    for (i = 0; i < npools; i++) {
        uint8_t kind = qemu_get_byte(f);
        uint8_t shift;
        int rc;

        s->pool_gen[i] = qemu_get_be16(f);
        if (!kind) {
            if (s->pools[i] >= 0) {
                error_report("virtio-tmem: pages arrived for pool %u, which "
                             "is free", i);
                return -EINVAL;
            }
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
        rc = virtio_tmem_load_slot(s, i, kind, shift);
        if (rc < 0) {
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

static const VMStateInfo vmstate_info_virtio_tmem_pools = {
    .name = "virtio-tmem-pools",
    .get = virtio_tmem_load,
    .put = virtio_tmem_save,
};

const VMStateDescription vmstate_virtio_tmem_device = {
    .name = "virtio-tmem-device",
    .version_id = 2,
    .minimum_version_id = 2,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(credits, VirtIOTmem),
        {
            .name = "pool-table",
            .info = &vmstate_info_virtio_tmem_pools,
            .flags = VMS_SINGLE,
        },
        VMSTATE_END_OF_LIST()
    },
};
