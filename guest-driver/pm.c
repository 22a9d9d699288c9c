// SPDX-License-Identifier: GPL-2.0
/*
 * pm.c - suspend and hibernation.
 *
 * The device's pages do not survive sleep: virtio resets the device on
 * restore, and a reset destroys every pool (spec 6.12).  Cleancache pages
 * may go; swap pages must not.  So before the system sleeps, while
 * processes still run and every disk works (PM_SUSPEND_PREPARE,
 * PM_HIBERNATION_PREPARE), the driver stops storing and brings every swap
 * page the host holds back, to its swap slot or into guest memory, as
 * when the device is removed.  Freeze then finds nothing on the host,
 * unpublishes the device and takes its queues down; restore sets it up
 * again with new, empty pools; stores resume after the system woke
 * (PM_POST_*).  If a page cannot be brought back, the system does not
 * sleep: the notifier (or, failing that, freeze) says why, and nothing is
 * lost.
 *
 * Restore allocates nothing of the driver's own: freeze keeps the queues,
 * their staging pages and the event buffers.  If restore fails anyway
 * (the transport found no memory for the rings), the guest runs on
 * without the device; the next freeze has nothing to do and the next
 * restore tries again.
 */
#include <linux/suspend.h>

#include "virtio_tmem_drv.h"

/* Stores resume: the system is awake, or did not go to sleep after all. */
static void virtio_tmem_pm_done(void)
{
	struct virtio_tmem *vt;

	mutex_lock(&virtio_tmem_dev_mutex);
	vt = rcu_dereference_protected(virtio_tmem_dev,
				       lockdep_is_held(&virtio_tmem_dev_mutex));
	if (vt)
		clear_bit(VIRTIO_TMEM_DRAIN_SLEEP, &vt->draining);
	mutex_unlock(&virtio_tmem_dev_mutex);
}

static int virtio_tmem_pm_prepare(void)
{
	struct virtio_tmem *vt;
	unsigned long left;
	int err = 0;

	mutex_lock(&virtio_tmem_dev_mutex);
	vt = rcu_dereference_protected(virtio_tmem_dev,
				       lockdep_is_held(&virtio_tmem_dev_mutex));
	if (!vt)
		goto out;
	virtio_tmem_count(VIRTIO_TMEM_SUSPENDS, 1);
	virtio_tmem_stop_stores(vt, VIRTIO_TMEM_DRAIN_SLEEP);
	left = virtio_tmem_frontswap_drain(vt);
	if (left) {
		/* The notifier chain calls no PM_POST_* for us: undo it here. */
		clear_bit(VIRTIO_TMEM_DRAIN_SLEEP, &vt->draining);
		dev_err(&vt->vdev->dev, "not sleeping: %lu swap pages could not be brought back from the host\n",
			left);
		err = -EBUSY;
	}
out:
	mutex_unlock(&virtio_tmem_dev_mutex);
	return err;
}

static int virtio_tmem_pm_notify(struct notifier_block *nb,
				 unsigned long action, void *unused)
{
	switch (action) {
	case PM_HIBERNATION_PREPARE:
	case PM_SUSPEND_PREPARE:
		return notifier_from_errno(virtio_tmem_pm_prepare());
	case PM_POST_HIBERNATION:
	case PM_POST_SUSPEND:
		virtio_tmem_pm_done();
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block virtio_tmem_pm_nb = {
	.notifier_call = virtio_tmem_pm_notify,
};

int virtio_tmem_pm_init(void)
{
	return register_pm_notifier(&virtio_tmem_pm_nb);
}

void virtio_tmem_pm_exit(void)
{
	unregister_pm_notifier(&virtio_tmem_pm_nb);
}

#ifdef CONFIG_PM_SLEEP
/*
 * Also for hibernation's freeze and quiesce, and for a sleep that did not
 * go through the notifier (the snapshot device): then pages may still be
 * on the host, and the system must not sleep.
 */
int virtio_tmem_freeze(struct virtio_device *vdev)
{
	struct virtio_tmem *vt = vdev->priv;
	unsigned long left;
	int err = 0;

	mutex_lock(&virtio_tmem_dev_mutex);
	if (vt->frozen) {
		/* The last restore failed: nothing is set up, nothing held. */
		mutex_unlock(&virtio_tmem_dev_mutex);
		return 0;
	}
	virtio_tmem_stop_stores(vt, VIRTIO_TMEM_DRAIN_SLEEP);
	left = virtio_tmem_frontswap_on_host();
	if (left) {
		dev_err(&vdev->dev, "cannot freeze: the host holds %lu swap pages\n",
			left);
		clear_bit(VIRTIO_TMEM_DRAIN_SLEEP, &vt->draining);
		err = -EBUSY;
	} else {
		virtio_tmem_teardown(vt);
		vt->frozen = true;
	}
	mutex_unlock(&virtio_tmem_dev_mutex);
	return err;
}

int virtio_tmem_restore(struct virtio_device *vdev)
{
	struct virtio_tmem *vt = vdev->priv;
	int err = 0;

	mutex_lock(&virtio_tmem_dev_mutex);
	if (vt->frozen) {
		err = virtio_tmem_setup(vt);
		if (!err)
			vt->frozen = false;
	}
	mutex_unlock(&virtio_tmem_dev_mutex);
	return err;
}
#endif
