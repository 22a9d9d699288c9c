/*
 * Virtio transcendent memory device
 *
 * The guest's frontswap and cleancache pages, in batches, into a store
 * of compressed pages in host RAM (host-lib, include/tmem.h) under a
 * budget the host changes with qom-set.  Requests are decoded in
 * virtio-tmem-req.c; this file is the device's life cycle, its queues,
 * its properties and its statistics.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/iov.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "hw/qdev-properties.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-tmem.h"
#include "migration/vmstate.h"
#include "tmem.h"
#include "trace.h"

#define VIRTIO_TMEM_DEFAULT_BUDGET  (64 * MiB)

/*
 * Send one event into the next buffer the driver posted.  With none
 * posted the event is lost, and counted: every event is advice the
 * protocol lets the driver miss.
 */
void virtio_tmem_send_event(VirtIOTmem *s, uint16_t type, uint32_t pool,
                            uint64_t value)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    struct virtio_tmem_event ev = {
        .type = cpu_to_le16(type),
        .pool = cpu_to_le32(pool),
        .value = cpu_to_le64(value),
    };
    VirtQueueElement *elem = virtqueue_pop(s->eventq,
                                           sizeof(VirtQueueElement));

    if (!elem) {
        s->events_lost++;
        return;
    }
    if (iov_size(elem->in_sg, elem->in_num) < VIRTIO_TMEM_EVENT_MIN) {
        virtio_error(vdev, "virtio-tmem: event buffer under %d bytes",
                     VIRTIO_TMEM_EVENT_MIN);
        virtqueue_detach_element(s->eventq, elem, 0);
        g_free(elem);
        return;
    }
    iov_from_buf(elem->in_sg, elem->in_num, 0, &ev, sizeof(ev));
    virtqueue_push(s->eventq, elem, sizeof(ev));
    g_free(elem);
    virtio_notify(vdev, s->eventq);
    s->events_sent++;
}

/* Events raised while the rings could not take them (during a load). */
static void virtio_tmem_flush_events(VirtIOTmem *s)
{
    uint32_t i;

    if (!s->resets_pending) {
        return;
    }
    s->resets_pending = false;
    for (i = 0; i < s->npools; i++) {
        enum tmem_pool_kind kind;

        if (s->pools[i] >= 0 &&
            !tmem_pool_info(s->store, s->pools[i], &kind, NULL) &&
            kind == TMEM_EPHEMERAL) {
            virtio_tmem_send_event(s, VIRTIO_TMEM_EVENT_RESET,
                                   (uint32_t)s->pool_gen[i] << 16 | i, 0);
        }
    }
}

static void virtio_tmem_handle_eventq(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_tmem_flush_events(VIRTIO_TMEM(vdev));
}

/*
 * Drain a request queue: every chain, with notifications off while we
 * work, then one interrupt for the lot.  A kick is an exit on KVM and an
 * interrupt an injection, so both are counted for the exits-per-page
 * figures.
 */
static void virtio_tmem_handle_reqq(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    VirtIOTmemQueueStats *qs = &s->qstats[virtio_get_queue_index(vq) - 1];
    unsigned done = 0;
    bool broken = false;

    qs->kicks++;
    virtio_tmem_flush_events(s);
    do {
        VirtQueueElement *elem;

        virtio_queue_set_notification(vq, 0);
        while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
            size_t written;

            if (!virtio_tmem_handle_request(s, elem, qs, &written)) {
                virtqueue_detach_element(vq, elem, 0);
                g_free(elem);
                broken = true;
                break;
            }
            virtqueue_push(vq, elem, written);
            g_free(elem);
            qs->requests++;
            done++;
        }
        virtio_queue_set_notification(vq, 1);
    } while (!broken && !virtio_queue_empty(vq));

    if (done && virtio_notify(vdev, vq)) {
        qs->interrupts++;
    }
}

static uint64_t virtio_tmem_get_features(VirtIODevice *vdev, uint64_t f,
                                         Error **errp)
{
    virtio_add_feature(&f, VIRTIO_TMEM_F_EPHEMERAL);
    virtio_add_feature(&f, VIRTIO_TMEM_F_PAGE_64K);
    virtio_add_feature(&f, VIRTIO_TMEM_F_CREDITS);
    return f;
}

static void virtio_tmem_get_config(VirtIODevice *vdev, uint8_t *config)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    struct virtio_tmem_config cfg = {
        .num_queues = cpu_to_le16(s->num_queues),
        .max_ops = cpu_to_le16(s->max_ops),
        .max_credits = cpu_to_le32(s->max_credits),
        .budget = cpu_to_le64(s->budget),
    };

    memcpy(config, &cfg, sizeof(cfg));
}

/* Destroy every pool of the driver's, and all their pages. */
void virtio_tmem_drop_pools(VirtIOTmem *s)
{
    uint32_t i;

    for (i = 0; i < s->npools; i++) {
        if (s->pools[i] >= 0) {
            tmem_pool_destroy(s->store, s->pools[i]);
            s->pools[i] = -1;
            s->pool_gen[i]++;
        }
    }
    s->npools = 0;
    s->resets_pending = false;
}

/* Reset, unplug and driver reload leave no pool and no page behind. */
static void virtio_tmem_reset(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    virtio_tmem_drop_pools(s);
    s->credits = 0;
    trace_virtio_tmem_reset(s);
}

static void virtio_tmem_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    struct tmem_config cfg = {
        .budget = s->budget,
        .spill_path = s->spill,
        .spill_max = s->spill_max,
    };
    uint32_t i;
    int rc;

    if (s->num_queues < 1 || s->num_queues > VIRTIO_TMEM_MAX_QUEUES) {
        error_setg(errp, "num-queues must be 1 to %d",
                   VIRTIO_TMEM_MAX_QUEUES);
        return;
    }
    if (s->max_ops < 1 || s->max_ops > VIRTIO_TMEM_MAX_OPS) {
        error_setg(errp, "max-ops must be 1 to %d", VIRTIO_TMEM_MAX_OPS);
        return;
    }
    if (s->max_pools < 1 || s->max_pools > 65536) {
        /* a driver pool id has 16 bits of slot */
        error_setg(errp, "max-pools must be 1 to 65536");
        return;
    }
    if (s->spill && !s->spill_max) {
        error_setg(errp, "spill needs spill-max");
        return;
    }
    rc = tmem_store_create(&cfg, &s->store);
    if (rc < 0) {
        error_setg_errno(errp, -rc, "cannot create the page store%s%s",
                         s->spill ? " with spill file in " : "",
                         s->spill ? s->spill : "");
        return;
    }

    virtio_init(vdev, VIRTIO_ID_TMEM, sizeof(struct virtio_tmem_config));
    s->eventq = virtio_add_queue(vdev, VIRTIO_TMEM_QUEUE_SIZE,
                                 virtio_tmem_handle_eventq);
    s->reqq = g_new0(VirtQueue *, s->num_queues);
    for (i = 0; i < s->num_queues; i++) {
        s->reqq[i] = virtio_add_queue(vdev, VIRTIO_TMEM_QUEUE_SIZE,
                                      virtio_tmem_handle_reqq);
    }
    s->ops = g_new(struct virtio_tmem_op, s->max_ops);
    s->status = g_new(struct virtio_tmem_status, s->max_ops);
    s->page = qemu_memalign(4096, 65536);
    s->pools = g_new(int, s->max_pools);
    s->pool_gen = g_new0(uint16_t, s->max_pools);
    s->qstats = g_new0(VirtIOTmemQueueStats, s->num_queues);
}

static void virtio_tmem_unrealize(DeviceState *dev)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    uint32_t i;

    for (i = 0; i < s->num_queues; i++) {
        virtio_delete_queue(s->reqq[i]);
    }
    virtio_delete_queue(s->eventq);
    virtio_cleanup(vdev);
    tmem_store_destroy(s->store);
    s->store = NULL;
    g_free(s->reqq);
    g_free(s->ops);
    g_free(s->status);
    qemu_vfree(s->page);
    g_free(s->pools);
    g_free(s->pool_gen);
    g_free(s->qstats);
}

static void virtio_tmem_get_budget(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);

    visit_type_size(v, name, &s->budget, errp);
}

/* Before realize this sets the initial budget; after, it acts at once. */
static void virtio_tmem_set_budget(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    uint64_t value;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    s->budget = value;
    if (s->store) {
        tmem_set_budget(s->store, value);
        virtio_notify_config(VIRTIO_DEVICE(s));
    }
    trace_virtio_tmem_budget(s, value);
}

static bool virtio_tmem_visit_counters(Visitor *v,
                                       const VirtIOTmemQueueStats *q,
                                       Error **errp)
{
    uint64_t kicks = q->kicks, interrupts = q->interrupts;
    uint64_t requests = q->requests, ops = q->ops, pages = q->pages;

    return visit_type_uint64(v, "kicks", &kicks, errp) &&
           visit_type_uint64(v, "interrupts", &interrupts, errp) &&
           visit_type_uint64(v, "requests", &requests, errp) &&
           visit_type_uint64(v, "ops", &ops, errp) &&
           visit_type_uint64(v, "pages", &pages, errp);
}

static const char *const virtio_tmem_op_names[] = {
    [VIRTIO_TMEM_OP_POOL_NEW] = "pool-new",
    [VIRTIO_TMEM_OP_POOL_DESTROY] = "pool-destroy",
    [VIRTIO_TMEM_OP_PUT] = "put",
    [VIRTIO_TMEM_OP_GET] = "get",
    [VIRTIO_TMEM_OP_GET_EXCL] = "get-exclusive",
    [VIRTIO_TMEM_OP_FLUSH_PAGE] = "flush-page",
    [VIRTIO_TMEM_OP_FLUSH_OBJECT] = "flush-object",
    [VIRTIO_TMEM_OP_FLUSH_POOL] = "flush-pool",
    [VIRTIO_TMEM_OP_CREDITS] = "credits",
};

/*
 * The "stats" property: every store statistic by its host-lib name, the
 * device's totals (kicks, interrupts, requests, ops, pages), and the same
 * per request queue ("queues") and per operation ("operations").
 */
static void virtio_tmem_get_stats(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    VirtIOTmemQueueStats total = { 0 };
    struct tmem_stats st = { 0 };
    unsigned i;
    bool ok = false;

    if (s->store) {
        tmem_stats(s->store, &st);
    }
    for (i = 0; s->qstats && i < s->num_queues; i++) {
        total.kicks += s->qstats[i].kicks;
        total.interrupts += s->qstats[i].interrupts;
        total.requests += s->qstats[i].requests;
        total.ops += s->qstats[i].ops;
        total.pages += s->qstats[i].pages;
    }
    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    for (i = 0; i < TMEM_STAT__COUNT; i++) {
        if (!visit_type_uint64(v, tmem_stat_name(i), &st.v[i], errp)) {
            goto out;
        }
    }
    if (!visit_type_number(v, "compression_ratio", &st.compression_ratio,
                           errp) ||
        !visit_type_number(v, "fragmentation", &st.fragmentation, errp) ||
        !virtio_tmem_visit_counters(v, &total, errp) ||
        !visit_type_uint64(v, "events_sent", &s->events_sent, errp) ||
        !visit_type_uint64(v, "events_lost", &s->events_lost, errp)) {
        goto out;
    }
    if (!visit_start_list(v, "queues", NULL, 0, errp)) {
        goto out;
    }
    for (i = 0; s->qstats && i < s->num_queues; i++) {
        if (!visit_start_struct(v, NULL, NULL, 0, errp)) {
            break;
        }
        ok = virtio_tmem_visit_counters(v, &s->qstats[i], errp) &&
             visit_check_struct(v, errp);
        visit_end_struct(v, NULL);
        if (!ok) {
            break;
        }
    }
    visit_end_list(v, NULL);
    if (!visit_start_struct(v, "operations", NULL, 0, errp)) {
        goto out;
    }
    for (i = 1; i < ARRAY_SIZE(virtio_tmem_op_names); i++) {
        uint64_t ops = s->opstats[i].ops, pages = s->opstats[i].pages;

        ok = visit_start_struct(v, virtio_tmem_op_names[i], NULL, 0, errp) &&
             visit_type_uint64(v, "ops", &ops, errp) &&
             visit_type_uint64(v, "pages", &pages, errp) &&
             visit_check_struct(v, errp);
        visit_end_struct(v, NULL);
        if (!ok) {
            break;
        }
    }
    if (ok) {
        ok = visit_check_struct(v, errp);
    }
    visit_end_struct(v, NULL);
    if (ok) {
        visit_check_struct(v, errp);
    }
out:
    visit_end_struct(v, NULL);
}

static const VMStateDescription vmstate_virtio_tmem = {
    .name = "virtio-tmem",
    .minimum_version_id = 1,
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_VIRTIO_DEVICE,
        VMSTATE_END_OF_LIST()
    },
};

static const Property virtio_tmem_properties[] = {
    DEFINE_PROP_STRING("spill", VirtIOTmem, spill),
    DEFINE_PROP_SIZE("spill-max", VirtIOTmem, spill_max, 0),
    DEFINE_PROP_UINT16("num-queues", VirtIOTmem, num_queues, 1),
    DEFINE_PROP_UINT16("max-ops", VirtIOTmem, max_ops, 256),
    DEFINE_PROP_UINT32("max-credits", VirtIOTmem, max_credits, 1024),
    DEFINE_PROP_UINT32("max-pools", VirtIOTmem, max_pools, 1024),
};

static void virtio_tmem_instance_init(Object *obj)
{
    VIRTIO_TMEM(obj)->budget = VIRTIO_TMEM_DEFAULT_BUDGET;
}

static void virtio_tmem_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);

    device_class_set_props(dc, virtio_tmem_properties);
    dc->vmsd = &vmstate_virtio_tmem;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    vdc->realize = virtio_tmem_realize;
    vdc->unrealize = virtio_tmem_unrealize;
    vdc->get_features = virtio_tmem_get_features;
    vdc->get_config = virtio_tmem_get_config;
    vdc->reset = virtio_tmem_reset;
    vdc->vmsd = &vmstate_virtio_tmem_device;

    object_class_property_add(klass, "budget", "size",
                              virtio_tmem_get_budget,
                              virtio_tmem_set_budget, NULL, NULL);
    object_class_property_set_description(klass, "budget",
        "Host RAM for this guest's pages, index included");
    object_class_property_add(klass, "stats", "VirtioTmemStats",
                              virtio_tmem_get_stats, NULL, NULL, NULL);
}

static const TypeInfo virtio_tmem_info = {
    .name = TYPE_VIRTIO_TMEM,
    .parent = TYPE_VIRTIO_DEVICE,
    .instance_size = sizeof(VirtIOTmem),
    .instance_init = virtio_tmem_instance_init,
    .class_init = virtio_tmem_class_init,
};

static void virtio_register_types(void)
{
    type_register_static(&virtio_tmem_info);
}

type_init(virtio_register_types)
