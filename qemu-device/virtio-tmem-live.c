/*
 * Virtio transcendent memory device: pre-copy migration of its pools
 *
 * The device's persistent pools travel in a live section of their own,
 * "virtio-tmem-store/PATH", while the guest runs (system/tmem-live.h):
 * driver pool slots are the section's slots, and only persistent pools
 * travel.  The device's section (virtio-tmem-migration.c) then carries
 * the pool table, which the destination checks against the pools this
 * one made.
 *
 * What a request changed is marked once it has run: the key of a PUT,
 * GET_EXCL or FLUSH_PAGE of a persistent pool; the whole slot for
 * POOL_NEW, POOL_DESTROY, FLUSH_OBJECT and FLUSH_POOL (an object flush
 * sends the pool again: frontswap never flushes objects) and, for every
 * slot, a reset.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "hw/qdev-core.h"
#include "hw/virtio/virtio-tmem.h"
#include "system/tmem-live.h"
#include "tmem.h"

/* The persistent store pool in @slot, or -1 */
static int virtio_tmem_live_pool(VirtIOTmem *s, uint32_t slot,
                                 uint32_t *page_size)
{
    enum tmem_pool_kind kind;
    int pool = -1;

    qemu_mutex_lock(&s->lock);
    if (slot < s->npools) {
        pool = s->pools[slot];
    }
    qemu_mutex_unlock(&s->lock);
    if (pool < 0 || tmem_pool_info(s->store, pool, &kind, page_size) ||
        kind != TMEM_PERSISTENT) {
        return -1;
    }
    return pool;
}

static int virtio_tmem_live_slot_pool(void *opaque, uint32_t slot,
                                      uint32_t *page_size)
{
    return virtio_tmem_live_pool(opaque, slot, page_size);
}

/* Destination: the slot's pool, new and empty, or none */
static int virtio_tmem_live_slot_reset(void *opaque, uint32_t slot,
                                       uint8_t shift)
{
    VirtIOTmem *s = opaque;
    int pool, rc = 0;

    qemu_mutex_lock(&s->lock);
    for (; s->npools <= slot; s->npools++) {
        s->pools[s->npools] = -1;
    }
    if (s->pools[slot] >= 0) {
        tmem_pool_destroy(s->store, s->pools[slot]);
        s->pools[slot] = -1;
    }
    if (shift) {
        pool = tmem_pool_create(s->store, TMEM_PERSISTENT, 1u << shift);
        if (pool < 0) {
            error_report("virtio-tmem: pool slot %u: cannot make its pool: "
                         "%s", slot, strerror(-pool));
            rc = pool;
        } else {
            s->pools[slot] = pool;
        }
    }
    qemu_mutex_unlock(&s->lock);
    return rc;
}

static void virtio_tmem_live_quiesce(void *opaque)
{
    virtio_tmem_wait_serving(opaque);
}

static void virtio_tmem_live_load_begin(void *opaque)
{
    VirtIOTmem *s = opaque;

    qemu_mutex_lock(&s->lock);
    virtio_tmem_drop_pools(s);
    qemu_mutex_unlock(&s->lock);
}

static const TmemLiveOps virtio_tmem_live_ops = {
    .slot_pool = virtio_tmem_live_slot_pool,
    .slot_reset = virtio_tmem_live_slot_reset,
    .quiesce = virtio_tmem_live_quiesce,
    .load_begin = virtio_tmem_live_load_begin,
};

void virtio_tmem_live_note(VirtIOTmem *s, const struct virtio_tmem_op *op,
                           uint8_t status, uint32_t value)
{
    uint32_t slot = VIRTIO_TMEM_POOL_SLOT(le32_to_cpu(op->pool));
    struct tmem_key key;
    uint32_t page_size;

    if (!tmem_live_tracking(s->live)) {
        return;
    }
    switch (op->type) {
    case VIRTIO_TMEM_OP_POOL_NEW:
        if (status == VIRTIO_TMEM_S_OK) {
            tmem_live_mark_slot(s->live, VIRTIO_TMEM_POOL_SLOT(value));
        }
        return;
    case VIRTIO_TMEM_OP_POOL_DESTROY:
        tmem_live_mark_slot(s->live, slot);
        return;
    case VIRTIO_TMEM_OP_PUT:
    case VIRTIO_TMEM_OP_GET_EXCL:
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
        if (virtio_tmem_live_pool(s, slot, &page_size) >= 0) {
            key.oid[0] = le64_to_cpu(op->oid[0]);
            key.oid[1] = le64_to_cpu(op->oid[1]);
            key.oid[2] = le64_to_cpu(op->oid[2]);
            key.index = le32_to_cpu(op->index);
            tmem_live_mark_key(s->live, slot, &key);
        }
        return;
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
    case VIRTIO_TMEM_OP_FLUSH_POOL:
        if (virtio_tmem_live_pool(s, slot, &page_size) >= 0) {
            tmem_live_mark_slot(s->live, slot);
        }
        return;
    default:
        return;
    }
}

int virtio_tmem_live_load_all(VirtIOTmem *s, QEMUFile *f)
{
    return tmem_live_load_all(s->live, f);
}

int virtio_tmem_live_save_all(VirtIOTmem *s, QEMUFile *f)
{
    return tmem_live_save_all(s->live, f);
}

void virtio_tmem_live_init(VirtIOTmem *s)
{
    g_autofree char *path = qdev_get_dev_path(DEVICE(s));
    g_autofree char *idstr = g_strdup_printf("virtio-tmem-store/%s",
                                             path ? path : "");

    s->live = tmem_live_new(idstr, s->store, s->max_pools,
                            &virtio_tmem_live_ops, s);
}

void virtio_tmem_live_cleanup(VirtIOTmem *s)
{
    tmem_live_free(s->live);
    s->live = NULL;
}
