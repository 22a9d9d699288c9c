/*
 * Virtio transcendent memory device
 *
 * The guest's frontswap and cleancache pages, in batches, into a store
 * of compressed pages in host RAM (host-lib, include/tmem.h) under a
 * budget the host changes with qom-set.  Requests are decoded in
 * virtio-tmem-req.c and events raised in virtio-tmem-events.c; this file
 * is the device's life cycle, its queues (in the main loop or in an
 * iothread), its properties and its statistics.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qemu/iov.h"
#include "qemu/main-loop.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "block/aio-wait.h"
#include "exec/memory.h"
#include "hw/qdev-properties.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-bus.h"
#include "hw/virtio/virtio-tmem.h"
#include "system/iothread.h"
#include "migration/vmstate.h"
#include "tmem.h"
#include "trace.h"

#define VIRTIO_TMEM_DEFAULT_BUDGET  (64 * MiB)

/* The driver posted event buffers: send whatever waited for one. */
static void virtio_tmem_handle_eventq(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_tmem_events_kick(VIRTIO_TMEM(vdev));
}

/* Interrupt the guest for chains pushed on @rq, and count it. */
static void virtio_tmem_notify(VirtIOTmemReqQueue *rq)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(rq->s);
    bool notified;

    /* from an iothread, through the guest notifier's eventfd */
    notified = qemu_in_iothread() ? virtio_notify_irqfd(vdev, rq->vq)
                                  : virtio_notify(vdev, rq->vq);
    if (notified) {
        qatomic_inc(&rq->qs->interrupts);
    }
    virtio_tmem_events_kick(rq->s);
}

/* Push a request's chain, or (unparseable) fail the device with why. */
static bool virtio_tmem_complete(VirtIOTmemReqQueue *rq,
                                 VirtQueueElement *elem, bool ok,
                                 size_t written)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(rq->s);

    if (!ok) {
        virtqueue_detach_element(rq->vq, elem, 0);
        g_free(elem);
        virtio_error(vdev, "%s", rq->error);
        g_free(rq->error);
        rq->error = NULL;
        return false;
    }
    qatomic_inc(&rq->qs->requests);
    virtqueue_push(rq->vq, elem, written);
    g_free(elem);
    return true;
}

/*
 * Whether @rq has been served for turn-us since its turn began.  Without
 * an iothread it is served in QEMU's main loop, which also completes the
 * guest's disk I/O and answers QMP: a queue of put batches, compressed
 * page by page, would otherwise hold it for as long as the guest keeps
 * the queue full.
 */
static bool virtio_tmem_turn_over(VirtIOTmemReqQueue *rq)
{
    return rq->turn_start && rq->s->turn_us &&
           qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - rq->turn_start >=
           (int64_t)rq->s->turn_us * SCALE_US;
}

/*
 * Between two ops or two requests: once the turn is over, let the loop
 * run what else is ready (aio_co_schedule() queues us behind it), then
 * go on.  A stop of the VM waits for us in virtio_tmem_wait_serving(),
 * as it does for a flush in the thread pool.
 */
void coroutine_fn virtio_tmem_take_turns(VirtIOTmemReqQueue *rq)
{
    if (!virtio_tmem_turn_over(rq)) {
        return;
    }
    /* what is done is the guest's before we step aside */
    if (rq->unnotified) {
        virtio_tmem_notify(rq);
        rq->unnotified = 0;
    }
    qatomic_inc(&rq->qs->yields);
    trace_virtio_tmem_yield(rq->s, virtio_get_queue_index(rq->vq));
    aio_co_schedule(qemu_get_current_aio_context(), qemu_coroutine_self());
    qemu_coroutine_yield();
    rq->turn_start = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

/*
 * Drain a request queue: every chain, then one interrupt for the lot (and
 * one before each turn given to the loop, virtio_tmem_take_turns).
 * Notifications are turned off while we work only if they were on: an
 * iothread that polls the queue turned them off, and must find them off
 * when we return, or the guest would notify it for nothing (as
 * virtio-blk does).  Runs in the iothread if there is one, else in the
 * main loop; a device with a spill file always has one (see
 * virtio_tmem_own_iothread), so no request waits on a disk there.
 */
static void coroutine_fn virtio_tmem_serve_co(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;
    VirtIOTmem *s = rq->s;
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    VirtQueue *vq = rq->vq;
    bool suppress = virtio_queue_get_notification(vq);
    bool broken = false;

    rq->turn_start = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    do {
        VirtQueueElement *elem;

        if (suppress) {
            virtio_queue_set_notification(vq, 0);
        }
        while (!vdev->broken &&
               (elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
            size_t written;
            bool ok = virtio_tmem_handle_request(s, rq, elem, &written);

            if (!virtio_tmem_complete(rq, elem, ok, written)) {
                broken = true;
                break;
            }
            rq->unnotified++;
            virtio_tmem_take_turns(rq);
        }
        if (suppress) {
            virtio_queue_set_notification(vq, 1);
        }
    } while (!broken && !vdev->broken && !virtio_queue_empty(vq));

    if (rq->unnotified) {
        virtio_tmem_notify(rq);
        rq->unnotified = 0;
    }
    rq->turn_start = 0;
    rq->co = NULL;
    qatomic_dec(&s->serving);
    aio_wait_kick();
}

/* The scratch to run requests ahead of @rq's with: same queue and counters. */
static VirtIOTmemReqQueue *virtio_tmem_ahead_new(VirtIOTmemReqQueue *rq)
{
    VirtIOTmemReqQueue *ahead = g_new0(VirtIOTmemReqQueue, 1);

    ahead->s = rq->s;
    ahead->vq = rq->vq;
    ahead->qs = rq->qs;
    ahead->ops = g_new(struct virtio_tmem_op, VIRTIO_TMEM_AHEAD_OPS);
    ahead->status = g_new(struct virtio_tmem_status, VIRTIO_TMEM_AHEAD_OPS);
    ahead->page = qemu_memalign(4096, 65536);
    return ahead;
}

static void virtio_tmem_ahead_free(VirtIOTmemReqQueue *ahead)
{
    g_free(ahead->ops);
    g_free(ahead->status);
    qemu_vfree(ahead->page);
    g_free(ahead);
}

/*
 * Called between two ops of a request on @rq: run the chains made
 * available after it that may go ahead of it (virtio_tmem_may_run_ahead:
 * the driver says nothing older is needed first), so that a guest's load
 * does not wait behind the compression of a batch of puts.  The first
 * chain that may not is put back, and it and every later one keep their
 * order.  The interrupt for them goes at once: the guest is waiting.
 */
void coroutine_fn virtio_tmem_run_ahead(VirtIOTmemReqQueue *rq)
{
    VirtIOTmemReqQueue *ahead = rq->ahead;
    VirtIODevice *vdev = VIRTIO_DEVICE(rq->s);
    VirtQueueElement *elem;
    unsigned done = 0;

    if (!ahead || rq->ahead_blocked ||
        !virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_OVERTAKE) ||
        virtio_queue_empty(rq->vq)) {
        return;
    }
    /* quiet: the guest need not notify us of what we will find anyway */
    while (!vdev->broken &&
           (elem = virtqueue_pop_quiet(rq->vq, sizeof(VirtQueueElement)))) {
        size_t written;
        bool ok;

        if (!virtio_tmem_may_run_ahead(rq->s, ahead, elem)) {
            /* nothing behind it may pass it: no more looks this request */
            virtqueue_unpop(rq->vq, elem, 0);
            g_free(elem);
            rq->ahead_blocked = true;
            break;
        }
        ok = virtio_tmem_handle_request(rq->s, ahead, elem, &written);
        if (!virtio_tmem_complete(ahead, elem, ok, written)) {
            break;
        }
        qatomic_inc(&rq->qs->ahead);
        trace_virtio_tmem_request_ahead(rq->s, virtio_get_queue_index(rq->vq));
        done++;
    }
    if (done) {
        virtio_tmem_notify(rq);
    }
}

/*
 * Enter @fn in a coroutine that serves @rq, unless one already does (it
 * looks at the queue again before it ends) or the queue cannot be
 * served, as virtio_queue_notify_vq() would not.
 */
static void virtio_tmem_start_serving(VirtIOTmemReqQueue *rq,
                                      CoroutineEntry *fn)
{
    VirtIOTmem *s = rq->s;
    VirtIODevice *vdev = VIRTIO_DEVICE(s);

    if (rq->co ||
        !virtio_queue_get_desc_addr(vdev, virtio_get_queue_index(rq->vq)) ||
        vdev->broken) {
        return;
    }
    qatomic_inc(&s->serving);
    rq->co = qemu_coroutine_create(fn, rq);
    qemu_coroutine_enter(rq->co);
}

/*
 * A look at a request queue.  @kicks is the guest notifications that
 * brought us here, 0 when a poll or the device itself did: a kick is an
 * exit on KVM and an interrupt an injection, so both are counted for
 * the exits-per-page figures.  The queue is served in a coroutine so
 * that a request can wait for the thread pool (a big flush), or give
 * the loop a turn, without holding up the loop it runs in; meanwhile a
 * look finds the coroutine there and leaves the queue to it.
 */
static void virtio_tmem_run_queue(VirtIOTmemReqQueue *rq, uint64_t kicks)
{
    if (kicks) {
        qatomic_add(&rq->qs->kicks, kicks);
    }
    virtio_tmem_start_serving(rq, virtio_tmem_serve_co);
}

void virtio_tmem_wait_serving(VirtIOTmem *s)
{
    AIO_WAIT_WHILE_UNLOCKED(NULL, qatomic_read(&s->serving));
}

/* sync-inline: the main loop serves what a kick left to it. */
static void virtio_tmem_reqq_bh(void *opaque)
{
    virtio_tmem_run_queue(opaque, 0);
}

/*
 * sync-inline: serve the flagged requests of GETs at the head of the
 * queue (virtio_tmem_may_run_ahead) now, in the thread that wrote the
 * notify register, and leave the rest (batches of puts, flushes) to
 * the main loop.  A synchronous op's answer is then in the used ring
 * when the guest's notify returns, with no wake-up of another thread
 * in between, while compression stays off the vCPU.
 */
static void coroutine_fn virtio_tmem_serve_inline_co(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;
    VirtIOTmem *s = rq->s;
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    VirtQueue *vq = rq->vq;
    VirtQueueElement *elem;
    bool rest = false;
    unsigned done = 0;

    virtio_queue_set_notification(vq, 0);
    /* quiet: the avail event moves once, below */
    while (!vdev->broken &&
           (elem = virtqueue_pop_quiet(vq, sizeof(VirtQueueElement)))) {
        size_t written;
        bool ok;

        if (!virtio_tmem_may_run_ahead(s, rq->ahead, elem)) {
            virtqueue_unpop(vq, elem, 0);
            g_free(elem);
            rest = true;
            break;
        }
        ok = virtio_tmem_handle_request(s, rq->ahead, elem, &written);
        if (!virtio_tmem_complete(rq->ahead, elem, ok, written)) {
            break;
        }
        qatomic_inc(&rq->qs->inline_reqs);
        done++;
    }
    /* the guest notifies for its next request, as after any drain */
    virtio_queue_set_notification(vq, 1);
    if (done) {
        virtio_tmem_notify(rq);
    }
    if (!vdev->broken && (rest || !virtio_queue_empty(vq))) {
        qemu_bh_schedule(rq->bh);
    }
    rq->co = NULL;
    qatomic_dec(&s->serving);
    aio_wait_kick();
}

static void virtio_tmem_serve_inline(VirtIOTmemReqQueue *rq)
{
    qatomic_inc(&rq->qs->kicks);
    if (!virtio_vdev_has_feature(VIRTIO_DEVICE(rq->s),
                                 VIRTIO_TMEM_F_OVERTAKE)) {
        /* no request may pass another: the main loop serves them all */
        qemu_bh_schedule(rq->bh);
        return;
    }
    virtio_tmem_start_serving(rq, virtio_tmem_serve_inline_co);
}

/*
 * The queue's handle_output, which QEMU calls only for a notification
 * of the guest's: every one with sync-inline, else one that came
 * without ioeventfd, or one that was still in the notifier when it was
 * torn down.
 */
static void virtio_tmem_handle_reqq(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    VirtIOTmemReqQueue *rq = &s->rq[virtio_get_queue_index(vq) - 1];

    if (s->inline_started) {
        virtio_tmem_serve_inline(rq);
        return;
    }
    virtio_tmem_run_queue(rq, 1);
}

/*
 * The notifier's handlers, ours rather than virtio_queue_host_notifier_*
 * so that kicks are counted where they are read: the notifier's eventfd
 * holds how many came since the last read.
 */
static void virtio_tmem_reqq_read(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;
    EventNotifier *n = virtio_queue_get_host_notifier(rq->vq);
    uint64_t count = 0;
    ssize_t len;

    do {
        len = read(event_notifier_get_fd(n), &count, sizeof(count));
    } while (len < 0 && errno == EINTR);
    if (len <= 0) {
        return;     /* nothing there */
    }
    if (len != sizeof(count)) {
        count = 1;  /* a pipe, not an eventfd: at least one */
    }
    if (rq->own_kick) {
        rq->own_kick = false;
        count--;
    }
    virtio_tmem_run_queue(rq, count);
}

static bool virtio_tmem_reqq_poll(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;
    VirtIODevice *vdev = VIRTIO_DEVICE(rq->s);

    return virtio_queue_get_desc_addr(vdev, virtio_get_queue_index(rq->vq)) &&
           !virtio_queue_empty(rq->vq);
}

static void virtio_tmem_reqq_poll_ready(void *opaque)
{
    virtio_tmem_run_queue(opaque, 0);
}

static void virtio_tmem_reqq_poll_begin(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;

    virtio_queue_set_notification(rq->vq, 0);
}

static void virtio_tmem_reqq_poll_end(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;

    /* the AioContext polls once more after this, for racing requests */
    virtio_queue_set_notification(rq->vq, 1);
}

/*
 * Attach a request queue's notifier to @ctx, polled or not, as
 * virtio_queue_aio_attach_host_notifier() does, with our handlers.  They
 * get @rq as their opaque; aio_set_event_notifier_poll() hands its
 * begin and end callbacks the same opaque (it finds the handler by fd),
 * so ours go in cast to its type and are called as IOHandlers again.
 * No extra event_notifier_set(): the notifier was created set.
 */
static void virtio_tmem_reqq_attach(VirtIOTmemReqQueue *rq, AioContext *ctx,
                                    bool poll)
{
    EventNotifier *n = virtio_queue_get_host_notifier(rq->vq);

    if (!virtio_queue_get_notification(rq->vq)) {
        virtio_queue_set_notification(rq->vq, 1);
    }
    rq->own_kick = true;
    aio_set_fd_handler(ctx, event_notifier_get_fd(n), virtio_tmem_reqq_read,
                       NULL, poll ? virtio_tmem_reqq_poll : NULL,
                       poll ? virtio_tmem_reqq_poll_ready : NULL, rq);
    if (poll) {
        aio_set_event_notifier_poll(ctx, n,
            (EventNotifierHandler *)virtio_tmem_reqq_poll_begin,
            (EventNotifierHandler *)virtio_tmem_reqq_poll_end);
    }
}

/*
 * With an iothread, request queues are served there and the event queue
 * stays in the main loop, as virtio-scsi does with its queues.  Without
 * one, the main loop serves them all, as QEMU's own ioeventfd handling
 * would, but with our handlers on the request queues.
 */
static void (*virtio_tmem_parent_stop_ioeventfd)(VirtIODevice *vdev);

static int virtio_tmem_start_ioeventfd(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    unsigned nvqs = 1 + s->num_queues, i, n;
    /* sync-inline: request queues' kicks go to virtio_tmem_handle_reqq */
    bool inl = s->sync_inline && !s->iothread;
    unsigned nfds = inl ? 1 : nvqs;
    AioContext *ctx;
    int rc;

    if (s->iothread) {
        rc = k->set_guest_notifiers(qbus->parent, nvqs, true);
        if (rc) {
            error_report("virtio-tmem: cannot set guest notifiers (%d)", rc);
            return rc;
        }
    }
    memory_region_transaction_begin();
    for (n = 0; n < nfds; n++) {
        rc = virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), n, true);
        if (rc) {
            break;
        }
    }
    if (rc) {
        for (i = 0; i < n; i++) {
            virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), i, false);
        }
        memory_region_transaction_commit();
        for (i = 0; i < n; i++) {
            virtio_bus_cleanup_host_notifier(VIRTIO_BUS(qbus), i);
        }
        if (s->iothread) {
            k->set_guest_notifiers(qbus->parent, nvqs, false);
        }
        error_report("virtio-tmem: cannot set host notifiers (%d)", rc);
        return rc;
    }
    memory_region_transaction_commit();

    if (!s->iothread) {
        event_notifier_set_handler(virtio_queue_get_host_notifier(s->eventq),
                                   virtio_queue_host_notifier_read);
        if (inl) {
            s->inline_started = true;
            /* what was made available while nobody looked */
            for (i = 0; i < s->num_queues; i++) {
                qemu_bh_schedule(s->rq[i].bh);
            }
            return 0;
        }
        for (i = 0; i < s->num_queues; i++) {
            virtio_tmem_reqq_attach(&s->rq[i], iohandler_get_aio_context(),
                                    false);
        }
        return 0;
    }
    s->dataplane_started = true;
    virtio_queue_aio_attach_host_notifier_no_poll(s->eventq,
                                                  qemu_get_aio_context());
    ctx = iothread_get_aio_context(s->iothread);
    for (i = 0; i < s->num_queues; i++) {
        virtio_tmem_reqq_attach(&s->rq[i], ctx, true);
    }
    return 0;
}

/* In the iothread: stop taking kicks, then serve any that came. */
static void virtio_tmem_detach_bh(void *opaque)
{
    VirtIOTmemReqQueue *rq = opaque;

    virtio_queue_aio_detach_host_notifier(rq->vq,
                                          qemu_get_current_aio_context());
    virtio_tmem_reqq_read(rq);
}

static void virtio_tmem_stop_ioeventfd(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    unsigned nvqs = 1 + s->num_queues, i;
    AioContext *ctx;

    if (s->inline_started) {
        /* the event queue's notifier is the only one there is */
        event_notifier_set_handler(virtio_queue_get_host_notifier(s->eventq),
                                   NULL);
        memory_region_transaction_begin();
        virtio_bus_set_host_notifier(VIRTIO_BUS(qbus),
                                     virtio_get_queue_index(s->eventq), false);
        memory_region_transaction_commit();
        virtio_bus_cleanup_host_notifier(VIRTIO_BUS(qbus),
                                         virtio_get_queue_index(s->eventq));
        s->inline_started = false;
        /* no bottom half may serve a stopped VM's queue: serve it now */
        for (i = 0; i < s->num_queues; i++) {
            qemu_bh_cancel(s->rq[i].bh);
            virtio_tmem_run_queue(&s->rq[i], 0);
        }
        virtio_tmem_wait_serving(s);
        return;
    }
    if (!s->dataplane_started) {
        /*
         * Serve and count what came, so that only a guest's kick can be
         * left for the transport's last look; it detaches our handlers.
         */
        for (i = 0; i < s->num_queues; i++) {
            virtio_tmem_reqq_read(&s->rq[i]);
        }
        virtio_tmem_wait_serving(s);
        virtio_tmem_parent_stop_ioeventfd(vdev);
        return;
    }
    /* once these return, the iothread takes no more kicks of ours... */
    ctx = iothread_get_aio_context(s->iothread);
    for (i = 0; i < s->num_queues; i++) {
        aio_wait_bh_oneshot(ctx, virtio_tmem_detach_bh, &s->rq[i]);
    }
    /* ...and once this does, it holds no request */
    virtio_tmem_wait_serving(s);
    virtio_queue_aio_detach_host_notifier(s->eventq, qemu_get_aio_context());

    memory_region_transaction_begin();
    for (i = 0; i < nvqs; i++) {
        virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), i, false);
    }
    memory_region_transaction_commit();
    for (i = 0; i < nvqs; i++) {
        virtio_bus_cleanup_host_notifier(VIRTIO_BUS(qbus), i);
    }
    k->set_guest_notifiers(qbus->parent, nvqs, false);
    s->dataplane_started = false;
}

/*
 * The features the properties leave on.  Eviction reports are about
 * ephemeral pages, so the spec (section 3) forbids offering them alone;
 * x-unchecked-features lets a test offer them anyway, to see a driver
 * refuse them.  Miss reports are about ephemeral pools too.
 */
static uint64_t virtio_tmem_get_features(VirtIODevice *vdev, uint64_t f,
                                         Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    uint64_t mine = s->host_features;

    if (!virtio_has_feature(mine, VIRTIO_TMEM_F_EPHEMERAL) &&
        !s->unchecked_features) {
        virtio_clear_feature(&mine, VIRTIO_TMEM_F_EVICT_REPORT);
    }
    if (!virtio_has_feature(mine, VIRTIO_TMEM_F_EPHEMERAL)) {
        virtio_clear_feature(&mine, VIRTIO_TMEM_F_MISS_REPORT);
    }
    return f | mine;
}

/* Eviction reports only while a driver that asked for them runs. */
static void virtio_tmem_set_status(VirtIODevice *vdev, uint8_t status)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    bool live = (status & VIRTIO_CONFIG_S_DRIVER_OK) && vdev->vm_running;

    virtio_tmem_events_evict_enable(s, live &&
        virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_EVICT_REPORT));
    if (live) {
        /* e.g. RESETs owed since a migration load */
        virtio_tmem_events_kick(s);
    }
}

static void virtio_tmem_get_config(VirtIODevice *vdev, uint8_t *config)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    struct virtio_tmem_config cfg = {
        .num_queues = cpu_to_le16(s->num_queues),
        .max_ops = cpu_to_le16(s->max_ops),
        /* spec 4: 0 without credits */
        .max_credits = cpu_to_le32(virtio_has_feature(s->host_features,
                                                      VIRTIO_TMEM_F_CREDITS) ?
                                   s->max_credits : 0),
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
}

/*
 * Reset, unplug and driver reload leave no pool and no page behind.
 * The transport stopped the queues' handlers (and the iothread's) first.
 */
static void virtio_tmem_reset(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    /* without ioeventfd the transport had no handlers to stop */
    virtio_tmem_wait_serving(s);
    qemu_mutex_lock(&s->lock);
    virtio_tmem_drop_pools(s);
    s->credits = 0;
    virtio_tmem_events_reset(s);
    qemu_mutex_unlock(&s->lock);
    tmem_live_mark_all(s->live);
    trace_virtio_tmem_reset(s);
}

/*
 * Spill I/O runs inside the request that needs it, so in the main loop a
 * slow disk would hold up QMP and every vCPU exit that takes the BQL.
 * With spill= and no iothread=, the request queues get an iothread of
 * the device's own.
 */
static bool virtio_tmem_own_iothread(VirtIOTmem *s, Error **errp)
{
    static uint32_t count;
    g_autofree char *id = g_strdup_printf("virtio-tmem-spill%u",
                                          qatomic_fetch_inc(&count));

    s->own_iothread = iothread_create(id, errp);
    s->iothread = s->own_iothread;
    return s->own_iothread != NULL;
}

static void virtio_tmem_drop_own_iothread(VirtIOTmem *s)
{
    if (s->own_iothread) {
        /* the iothread link never held it: nothing for it to drop */
        s->iothread = NULL;
        iothread_destroy(s->own_iothread);
        s->own_iothread = NULL;
    }
}

/* The store's budget went from @old to @bytes: tell the driver.  Main loop */
static void virtio_tmem_budget_changed(void *opaque, uint64_t old,
                                       uint64_t bytes)
{
    VirtIOTmem *s = opaque;

    qemu_mutex_lock(&s->lock);
    s->budget = bytes;
    virtio_tmem_events_budget(s, old, bytes);
    qemu_mutex_unlock(&s->lock);
    virtio_notify_config(VIRTIO_DEVICE(s));
    trace_virtio_tmem_budget(s, bytes);
}

static void virtio_tmem_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    bool spills;
    uint32_t i;

    if (s->num_queues < 1 || s->num_queues > VIRTIO_TMEM_MAX_QUEUES) {
        error_setg(errp, "num-queues must be 1 to %d",
                   VIRTIO_TMEM_MAX_QUEUES);
        return;
    }
    if (s->turn_us > VIRTIO_TMEM_MAX_TURN_US) {
        error_setg(errp, "turn-us must be 0 to %d", VIRTIO_TMEM_MAX_TURN_US);
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
    if (virtio_has_feature(s->host_features, VIRTIO_TMEM_F_CREDITS) &&
        (s->max_credits < 1 || s->max_credits > VIRTIO_TMEM_MAX_CREDITS)) {
        /* spec 4: at least 1 while credits are offered */
        error_setg(errp, "max-credits must be 1 to %u (or credits=off)",
                   VIRTIO_TMEM_MAX_CREDITS);
        return;
    }
    if (s->max_credits > VIRTIO_TMEM_MAX_CREDITS) {
        error_setg(errp, "max-credits must be at most %u",
                   VIRTIO_TMEM_MAX_CREDITS);
        return;
    }
    if (s->hint_window > VIRTIO_TMEM_MAX_HINT_WINDOW) {
        error_setg(errp, "hint-window must be 0 to %u",
                   VIRTIO_TMEM_MAX_HINT_WINDOW);
        return;
    }
    if (s->store_link && (s->budget_given || s->spill || s->spill_max)) {
        error_setg(errp, "budget, spill and spill-max belong to the "
                   "tmem-store object when store= is given");
        return;
    }
    if (!s->store_link && s->spill && !s->spill_max) {
        error_setg(errp, "spill needs spill-max");
        return;
    }
    spills = s->store_link ? s->store_link->spill != NULL : s->spill != NULL;
    if (s->iothread || spills) {
        BusState *qbus = qdev_get_parent_bus(dev);
        VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
        bool can = k->set_guest_notifiers && k->ioeventfd_assign;

        if (s->iothread && !can) {
            error_setg(errp, "this transport cannot serve virtio-tmem "
                       "from an iothread");
            return;
        }
        if (!s->iothread && can && !virtio_tmem_own_iothread(s, errp)) {
            return;
        }
    }
    if (s->store_link) {
        s->ts = s->store_link;
    } else {
        s->ts = tmem_store_new_child(OBJECT(s), s->budget, s->spill,
                                     s->spill_max, s->spill_buffered, errp);
        if (!s->ts) {
            virtio_tmem_drop_own_iothread(s);
            return;
        }
        s->own_store = true;
    }
    s->store = tmem_store_get(s->ts);
    s->budget = s->ts->budget;

    virtio_init(vdev, VIRTIO_ID_TMEM, sizeof(struct virtio_tmem_config));
    s->eventq = virtio_add_queue(vdev, VIRTIO_TMEM_QUEUE_SIZE,
                                 virtio_tmem_handle_eventq);
    s->reqq = g_new0(VirtQueue *, s->num_queues);
    s->rq = g_new0(VirtIOTmemReqQueue, s->num_queues);
    s->qstats = g_new0(VirtIOTmemQueueStats, s->num_queues);
    for (i = 0; i < s->num_queues; i++) {
        s->reqq[i] = virtio_add_queue(vdev, VIRTIO_TMEM_QUEUE_SIZE,
                                      virtio_tmem_handle_reqq);
        s->rq[i].s = s;
        s->rq[i].vq = s->reqq[i];
        s->rq[i].qs = &s->qstats[i];
        s->rq[i].ops = g_new(struct virtio_tmem_op, s->max_ops);
        s->rq[i].status = g_new(struct virtio_tmem_status, s->max_ops);
        s->rq[i].page = qemu_memalign(4096, 65536);
        s->rq[i].ahead = virtio_tmem_ahead_new(&s->rq[i]);
        /* not qemu_get_aio_context(): no nested aio_poll() may serve it */
        s->rq[i].bh = aio_bh_new_guarded(iohandler_get_aio_context(),
                                         virtio_tmem_reqq_bh, &s->rq[i],
                                         &dev->mem_reentrancy_guard);
    }
    s->pools = g_new(int, s->max_pools);
    s->pool_gen = g_new0(uint16_t, s->max_pools);
    virtio_tmem_events_init(s);
    s->store_user.name = object_get_canonical_path(OBJECT(s));
    s->store_user.budget_changed = virtio_tmem_budget_changed;
    s->store_user.opaque = s;
    tmem_store_attach(s->ts, &s->store_user);
    virtio_tmem_live_init(s);
    if (s->iothread) {
        object_ref(OBJECT(s->iothread));
    }
}

static void virtio_tmem_unrealize(DeviceState *dev)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    uint32_t i;

    virtio_tmem_wait_serving(s);
    virtio_tmem_live_cleanup(s);
    for (i = 0; i < s->num_queues; i++) {
        virtio_delete_queue(s->reqq[i]);
        qemu_bh_delete(s->rq[i].bh);
        virtio_tmem_ahead_free(s->rq[i].ahead);
        g_free(s->rq[i].ops);
        g_free(s->rq[i].status);
        qemu_vfree(s->rq[i].page);
    }
    virtio_delete_queue(s->eventq);
    virtio_cleanup(vdev);
    /* pools retired by POOL_DESTROY may still be flushing */
    AIO_WAIT_WHILE_UNLOCKED(NULL, qatomic_read(&s->destroying));
    /* a shared store outlives the device: take its pages out */
    qemu_mutex_lock(&s->lock);
    virtio_tmem_drop_pools(s);
    qemu_mutex_unlock(&s->lock);
    tmem_store_detach(s->ts, &s->store_user);
    g_free((char *)s->store_user.name);
    virtio_tmem_events_cleanup(s);
    if (s->iothread) {
        object_unref(OBJECT(s->iothread));
    }
    virtio_tmem_drop_own_iothread(s);
    if (s->own_store) {
        object_unparent(OBJECT(s->ts));
        s->own_store = false;
    }
    s->ts = NULL;
    s->store = NULL;
    g_free(s->reqq);
    g_free(s->rq);
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

/*
 * Before realize this sets the budget of the device's own store; after,
 * it changes that store's budget at once.  0 keeps nothing (every
 * ephemeral page goes, persistent ones spill); otherwise at least one
 * page, at most TMEM_STORE_MAX_BUDGET.  With store= the budget is the
 * tmem-store object's.
 */
static void virtio_tmem_set_budget(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    uint64_t value;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (s->ts && !s->own_store) {
        error_setg(errp, "the budget is the store's: qom-set %s budget",
                   object_get_canonical_path_component(OBJECT(s->ts)));
        return;
    }
    if (s->ts) {
        tmem_store_set_budget(s->ts, value, errp);
        return;
    }
    if (value && (value < TMEM_STORE_MIN_BUDGET ||
                  value > TMEM_STORE_MAX_BUDGET)) {
        error_setg(errp, "budget must be 0 or %u to %" PRIu64 " bytes, "
                   "not %" PRIu64, TMEM_STORE_MIN_BUDGET,
                   (uint64_t)TMEM_STORE_MAX_BUDGET, value);
        return;
    }
    s->budget = value;
    s->budget_given = true;
}

static bool virtio_tmem_visit_counters(Visitor *v,
                                       const VirtIOTmemQueueStats *q,
                                       Error **errp)
{
    uint64_t kicks = q->kicks, interrupts = q->interrupts;
    uint64_t requests = q->requests, ops = q->ops, pages = q->pages;
    uint64_t ahead = q->ahead, inline_reqs = q->inline_reqs;
    uint64_t yields = q->yields;

    return visit_type_uint64(v, "kicks", &kicks, errp) &&
           visit_type_uint64(v, "interrupts", &interrupts, errp) &&
           visit_type_uint64(v, "requests", &requests, errp) &&
           visit_type_uint64(v, "ops", &ops, errp) &&
           visit_type_uint64(v, "pages", &pages, errp) &&
           visit_type_uint64(v, "requests_ahead", &ahead, errp) &&
           visit_type_uint64(v, "requests_inline", &inline_reqs, errp) &&
           visit_type_uint64(v, "yields", &yields, errp);
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
    [VIRTIO_TMEM_OP_GET_RANGE] = "get-range",
    [VIRTIO_TMEM_OP_MISSES] = "misses",
};

/* The device's counters, copied under its locks for one stats answer. */
typedef struct VirtIOTmemStatsSnap {
    VirtIOTmemQueueStats total;
    VirtIOTmemQueueStats *queues;
    VirtIOTmemOpStats ops[VIRTIO_TMEM_NR_OPS];
    uint64_t events[VIRTIO_TMEM_EVENT_RESET + 1];
    uint64_t events_sent, events_lost, evicted_keys, evict_dropped;
    bool iothread_active;
} VirtIOTmemStatsSnap;

static void virtio_tmem_snap(VirtIOTmem *s, VirtIOTmemStatsSnap *sn)
{
    unsigned i;

    if (!s->qstats) {
        return;     /* not realized: all zero */
    }
    /* the request path's counters: atomic, read without waiting */
    sn->queues = g_new(VirtIOTmemQueueStats, s->num_queues);
    for (i = 0; i < s->num_queues; i++) {
        VirtIOTmemQueueStats *q = &s->qstats[i];

        sn->queues[i] = (VirtIOTmemQueueStats) {
            .kicks = qatomic_read(&q->kicks),
            .interrupts = qatomic_read(&q->interrupts),
            .requests = qatomic_read(&q->requests),
            .ops = qatomic_read(&q->ops),
            .pages = qatomic_read(&q->pages),
            .ahead = qatomic_read(&q->ahead),
            .inline_reqs = qatomic_read(&q->inline_reqs),
            .yields = qatomic_read(&q->yields),
        };
    }
    for (i = 0; i < ARRAY_SIZE(sn->ops); i++) {
        sn->ops[i].ops = qatomic_read(&s->opstats[i].ops);
        sn->ops[i].pages = qatomic_read(&s->opstats[i].pages);
    }
    /* the event counters: the bottom half holds the lock only briefly */
    qemu_mutex_lock(&s->lock);
    memcpy(sn->events, s->events_type, sizeof(sn->events));
    sn->events_sent = s->events_sent;
    sn->events_lost = s->events_lost;
    sn->evicted_keys = s->evicted_keys;
    sn->evict_dropped = s->evict_lost;
    sn->iothread_active = s->dataplane_started;
    qemu_mutex_lock(&s->evict_lock);
    sn->evict_dropped += s->evict_dropped;
    qemu_mutex_unlock(&s->evict_lock);
    qemu_mutex_unlock(&s->lock);
    for (i = 0; i < s->num_queues; i++) {
        sn->total.kicks += sn->queues[i].kicks;
        sn->total.interrupts += sn->queues[i].interrupts;
        sn->total.requests += sn->queues[i].requests;
        sn->total.ops += sn->queues[i].ops;
        sn->total.pages += sn->queues[i].pages;
        sn->total.ahead += sn->queues[i].ahead;
        sn->total.inline_reqs += sn->queues[i].inline_reqs;
        sn->total.yields += sn->queues[i].yields;
    }
}

/*
 * The "stats" property: every statistic of the store the device uses
 * (with store=, all its users' pages) by its host-lib name, the
 * device's totals (kicks, interrupts, requests, ops, pages), the same
 * per request queue ("queues") and per operation ("operations"), and
 * the events sent, by type ("events").
 */
static void virtio_tmem_get_stats(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    VirtIOTmemStatsSnap sn = { 0 };
    unsigned i;
    bool ok = false;

    virtio_tmem_snap(s, &sn);
    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    if (!tmem_store_visit_stats(s->ts, v, errp) ||
        !virtio_tmem_visit_counters(v, &sn.total, errp) ||
        !visit_type_uint64(v, "events_sent", &sn.events_sent, errp) ||
        !visit_type_uint64(v, "events_lost", &sn.events_lost, errp) ||
        !visit_type_uint64(v, "evicted_keys", &sn.evicted_keys, errp) ||
        !visit_type_uint64(v, "evict_reports_dropped", &sn.evict_dropped,
                           errp) ||
        !visit_type_bool(v, "iothread_active", &sn.iothread_active, errp) ||
        !tmem_live_visit_stats(s->live, v, errp)) {
        goto out;
    }
    if (!visit_start_list(v, "queues", NULL, 0, errp)) {
        goto out;
    }
    for (i = 0; sn.queues && i < s->num_queues; i++) {
        if (!visit_start_struct(v, NULL, NULL, 0, errp)) {
            break;
        }
        ok = virtio_tmem_visit_counters(v, &sn.queues[i], errp) &&
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
        ok = visit_start_struct(v, virtio_tmem_op_names[i], NULL, 0, errp) &&
             visit_type_uint64(v, "ops", &sn.ops[i].ops, errp) &&
             visit_type_uint64(v, "pages", &sn.ops[i].pages, errp) &&
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
    if (!ok || !visit_start_struct(v, "events", NULL, 0, errp)) {
        goto out;
    }
    for (i = 1; i <= VIRTIO_TMEM_EVENT_RESET; i++) {
        ok = visit_type_uint64(v, virtio_tmem_event_names[i], &sn.events[i],
                               errp);
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
    g_free(sn.queues);
}

static const VMStateDescription vmstate_virtio_tmem = {
    .name = "virtio-tmem",
    /* 2: persistent pages in the live section (virtio-tmem-live.c) */
    .minimum_version_id = 2,
    .version_id = 2,
    .post_load = virtio_tmem_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_VIRTIO_DEVICE,
        VMSTATE_END_OF_LIST()
    },
};

static const Property virtio_tmem_properties[] = {
    DEFINE_PROP_LINK("store", VirtIOTmem, store_link, TYPE_TMEM_STORE,
                     TmemStore *),
    DEFINE_PROP_STRING("spill", VirtIOTmem, spill),
    DEFINE_PROP_SIZE("spill-max", VirtIOTmem, spill_max, 0),
    DEFINE_PROP_BOOL("spill-buffered", VirtIOTmem, spill_buffered, false),
    DEFINE_PROP_UINT16("num-queues", VirtIOTmem, num_queues, 1),
    DEFINE_PROP_UINT16("max-ops", VirtIOTmem, max_ops, 256),
    DEFINE_PROP_UINT32("max-credits", VirtIOTmem, max_credits, 1024),
    DEFINE_PROP_UINT32("max-pools", VirtIOTmem, max_pools, 1024),
    DEFINE_PROP_UINT32("hint-window", VirtIOTmem, hint_window, 1024),
    DEFINE_PROP_UINT32("hint-retry", VirtIOTmem, hint_retry_ms, 30000),
    DEFINE_PROP_LINK("iothread", VirtIOTmem, iothread, TYPE_IOTHREAD,
                     IOThread *),
    DEFINE_PROP_BIT64("ephemeral", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_EPHEMERAL, true),
    DEFINE_PROP_BIT64("page-64k", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_PAGE_64K, true),
    DEFINE_PROP_BIT64("evict-report", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_EVICT_REPORT, true),
    DEFINE_PROP_BIT64("credits", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_CREDITS, true),
    DEFINE_PROP_BIT64("get-range", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_GET_RANGE, true),
    DEFINE_PROP_BIT64("miss-report", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_MISS_REPORT, true),
    DEFINE_PROP_BIT64("overtake", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_OVERTAKE, true),
    DEFINE_PROP_BOOL("sync-inline", VirtIOTmem, sync_inline, true),
    DEFINE_PROP_UINT32("turn-us", VirtIOTmem, turn_us, 250),
    DEFINE_PROP_BOOL("x-unchecked-features", VirtIOTmem, unchecked_features,
                     false),
};

static void virtio_tmem_instance_init(Object *obj)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);

    s->budget = VIRTIO_TMEM_DEFAULT_BUDGET;
    qemu_mutex_init(&s->lock);
}

static void virtio_tmem_instance_finalize(Object *obj)
{
    qemu_mutex_destroy(&VIRTIO_TMEM(obj)->lock);
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
    vdc->set_status = virtio_tmem_set_status;
    vdc->reset = virtio_tmem_reset;
    virtio_tmem_parent_stop_ioeventfd = vdc->stop_ioeventfd;
    vdc->start_ioeventfd = virtio_tmem_start_ioeventfd;
    vdc->stop_ioeventfd = virtio_tmem_stop_ioeventfd;
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
    .instance_finalize = virtio_tmem_instance_finalize,
    .class_init = virtio_tmem_class_init,
};

static void virtio_register_types(void)
{
    type_register_static(&virtio_tmem_info);
}

type_init(virtio_register_types)
