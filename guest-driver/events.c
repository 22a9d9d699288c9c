// SPDX-License-Identifier: GPL-2.0
/*
 * events.c - host-to-guest messages on the eventq (spec 6.11).
 *
 * The queue is kept full of VIRTIO_TMEM_EVENT_MIN-byte buffers.  Events
 * are handled in a work item, because eviction reports and resets touch
 * pool filters, whose lifetime virtio_tmem_pools_mutex guards.
 */
#include <linux/frontswap.h>
#include <linux/slab.h>

#include "virtio_tmem_drv.h"

/* Caller must hold vt->event_lock. */
static int virtio_tmem_event_give(struct virtio_tmem *vt, void *buf)
{
	struct scatterlist sg;

	lockdep_assert_held(&vt->event_lock);
	sg_init_one(&sg, buf, VIRTIO_TMEM_EVENT_MIN);
	return virtqueue_add_inbuf(vt->eventq, &sg, 1, buf, GFP_ATOMIC);
}

static void virtio_tmem_evicted(struct virtio_tmem_pool *pool,
				const struct virtio_tmem_key *keys,
				unsigned int n)
{
	struct virtio_tmem_op op = {};
	unsigned int i;

	for (i = 0; i < n; i++) {
		memcpy(op.oid, keys[i].oid, sizeof(op.oid));
		op.index = keys[i].index;
		virtio_tmem_filter_add(pool, &op, -1);
	}
	virtio_tmem_count(VIRTIO_TMEM_EVICTED_KEYS, n);
}

static void virtio_tmem_event_handle(struct virtio_tmem *vt, const void *buf,
				     unsigned int len)
{
	const struct virtio_tmem_event *ev = buf;
	struct virtio_tmem_pool *pool;
	u64 value;
	bool off;

	if (len < sizeof(*ev))
		return;
	value = le64_to_cpu(ev->value);
	virtio_tmem_count(VIRTIO_TMEM_EVENTS, 1);

	switch (le16_to_cpu(ev->type)) {
	case VIRTIO_TMEM_EVENT_CREDITS:
		value = min_t(u64, value, vt->max_credits);
		atomic_add(value, &vt->credits);
		WRITE_ONCE(vt->store_backoff, jiffies);
		virtio_tmem_count(VIRTIO_TMEM_CREDITS_GRANTED, value);
		return;
	case VIRTIO_TMEM_EVENT_RECLAIM:
		virtio_tmem_count(VIRTIO_TMEM_RECLAIM_REQUESTS, 1);
		atomic_long_add(min_t(u64, value, LONG_MAX / 2),
				&vt->reclaim_target);
		if (!READ_ONCE(vt->draining))
			schedule_work(&vt->reclaim_work);
		return;
	}

	mutex_lock(&virtio_tmem_pools_mutex);
	pool = virtio_tmem_pool_by_dev_id(le32_to_cpu(ev->pool));
	if (pool && pool->kind == VIRTIO_TMEM_POOL_EPHEMERAL) {
		switch (le16_to_cpu(ev->type)) {
		case VIRTIO_TMEM_EVENT_HINT:
			off = value == VIRTIO_TMEM_HINT_CLEANCACHE_OFF;
			virtio_tmem_count(off ? VIRTIO_TMEM_HINTS_OFF :
						VIRTIO_TMEM_HINTS_ON, 1);
			WRITE_ONCE(pool->hint_off, off);
			break;
		case VIRTIO_TMEM_EVENT_EVICTED:
			virtio_tmem_evicted(pool, buf + sizeof(*ev),
					    min_t(unsigned int,
						  le16_to_cpu(ev->count),
						  (len - sizeof(*ev)) /
						  sizeof(struct virtio_tmem_key)));
			break;
		case VIRTIO_TMEM_EVENT_RESET:
			virtio_tmem_filter_clear(pool);
			break;
		}
	}
	mutex_unlock(&virtio_tmem_pools_mutex);
}

static void virtio_tmem_event_work(struct work_struct *work)
{
	struct virtio_tmem *vt = container_of(work, struct virtio_tmem,
					      event_work);
	unsigned long flags;
	unsigned int len;
	void *buf;

	spin_lock_irqsave(&vt->event_lock, flags);
	while ((buf = virtqueue_get_buf(vt->eventq, &len))) {
		spin_unlock_irqrestore(&vt->event_lock, flags);
		virtio_tmem_event_handle(vt, buf, len);
		spin_lock_irqsave(&vt->event_lock, flags);
		if (virtio_tmem_event_give(vt, buf))
			dev_warn_ratelimited(&vt->vdev->dev,
					     "eventq buffer lost\n");
	}
	virtqueue_kick(vt->eventq);
	spin_unlock_irqrestore(&vt->event_lock, flags);
}

void virtio_tmem_event_done(struct virtqueue *vq)
{
	struct virtio_tmem *vt = vq->vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&vt->event_lock, flags);
	if (!vt->events_stopped)
		schedule_work(&vt->event_work);
	spin_unlock_irqrestore(&vt->event_lock, flags);
}

/* Before remove tears down: no event work runs or is queued after this. */
void virtio_tmem_events_stop(struct virtio_tmem *vt)
{
	unsigned long flags;

	spin_lock_irqsave(&vt->event_lock, flags);
	vt->events_stopped = true;
	spin_unlock_irqrestore(&vt->event_lock, flags);
	cancel_work_sync(&vt->event_work);
}

/*
 * Fill the eventq; the caller kicks it once the device is ready.  The
 * buffers are allocated once and kept across sleep, like the queues.
 */
int virtio_tmem_events_init(struct virtio_tmem *vt)
{
	unsigned long flags;
	unsigned int i;
	int err = 0;

	spin_lock_init(&vt->event_lock);
	INIT_WORK(&vt->event_work, virtio_tmem_event_work);
	vt->events_stopped = false;	/* again after a restore */
	for (i = 0; i < VIRTIO_TMEM_EVENT_BUFS; i++) {
		if (!vt->event_bufs[i]) {
			if (READ_ONCE(virtio_tmem_faults.nomem_setup))
				return -ENOMEM;
			vt->event_bufs[i] = kmalloc(VIRTIO_TMEM_EVENT_MIN,
						    GFP_KERNEL);
		}
		if (!vt->event_bufs[i])
			return -ENOMEM;
		spin_lock_irqsave(&vt->event_lock, flags);
		err = virtio_tmem_event_give(vt, vt->event_bufs[i]);
		spin_unlock_irqrestore(&vt->event_lock, flags);
		if (err)
			return err;
	}
	return 0;
}

/* At remove, or when probe failed. */
void virtio_tmem_events_free(struct virtio_tmem *vt)
{
	unsigned int i;

	for (i = 0; i < VIRTIO_TMEM_EVENT_BUFS; i++) {
		kfree(vt->event_bufs[i]);
		vt->event_bufs[i] = NULL;
	}
}
