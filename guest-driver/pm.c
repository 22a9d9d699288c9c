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
 *
 * While devices sleep, no allocation may do I/O, so reclaim cannot swap:
 * every driver's restore, ours and the swap disk's, gets only the memory
 * that was free when tasks froze.  A guest that swaps has none left (a CI
 * run froze at 4 MB free, below the minimum watermark; the rings of both
 * virtio disks failed to come back and the guest hung on its swap disk).
 * So, while reclaim can still write to disk, the driver sets memory aside
 * (the sleep reserve) and hands it back to the page allocator in freeze,
 * once tasks are frozen: the restores find it free.
 */
#include <linux/suspend.h>
#include <linux/vmstat.h>

#include "virtio_tmem_drv.h"

/*
 * The sleep reserve: the zones' minimum watermarks and 1 MiB more, so that
 * restores find memory above the minimum even when the guest froze with
 * none free; at most 1/16 of RAM.  In blocks of 32 KiB where it can, the
 * largest a ring of ours needs, so the blocks it hands back are contiguous.
 */
#define VIRTIO_TMEM_SLEEP_RESERVE_EXTRA	(SZ_1M >> PAGE_SHIFT)
#define VIRTIO_TMEM_SLEEP_RESERVE_ORDER	3

/* Blocks set aside; page_private() is the order.  Under dev_mutex. */
static LIST_HEAD(virtio_tmem_sleep_reserve);

static unsigned long virtio_tmem_reserve_size(void)
{
	unsigned long pages = VIRTIO_TMEM_SLEEP_RESERVE_EXTRA;
	struct zone *zone;
	int nid;

	/* With their boosts: kswapd sleeps, so a boost stays until resume. */
	for_each_online_node(nid)
		for (zone = NODE_DATA(nid)->node_zones;
		     zone < NODE_DATA(nid)->node_zones + MAX_NR_ZONES; zone++)
			pages += min_wmark_pages(zone);
	return min(pages, totalram_pages() / 16);
}

/*
 * Set the reserve aside: reclaim makes room for it, writing to disk what
 * it must.  Blocks of 32 KiB while they come easily; then pages, with
 * reclaim retried while it makes progress (a CI run got 537 of 590 pages
 * with one try each).  What reclaim cannot find, the guest sleeps
 * without: never the OOM killer for it.
 */
static void virtio_tmem_reserve_take(void)
{
	gfp_t gfp = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN |
		    __GFP_NOMEMALLOC;
	unsigned int order = VIRTIO_TMEM_SLEEP_RESERVE_ORDER;
	unsigned long got = 0, want = virtio_tmem_reserve_size();
	struct page *page;

	while (got < want) {
		page = alloc_pages(gfp, order);
		if (!page && order) {
			order = 0;
			gfp = GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN |
			      __GFP_NOMEMALLOC;
			continue;
		}
		if (!page)
			break;
		set_page_private(page, order);
		list_add(&page->lru, &virtio_tmem_sleep_reserve);
		got += 1UL << order;
	}
	virtio_tmem_count(VIRTIO_TMEM_SLEEP_RESERVED, got);
}

/* Hand the reserve back to the page allocator. */
static void virtio_tmem_reserve_release(void)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, &virtio_tmem_sleep_reserve, lru) {
		list_del(&page->lru);
		__free_pages(page, page_private(page));
	}
}

/* Stores resume: the system is awake, or did not go to sleep after all. */
static void virtio_tmem_pm_done(void)
{
	struct virtio_tmem *vt;

	mutex_lock(&virtio_tmem_dev_mutex);
	/* Still held if the system did not get as far as freeze. */
	virtio_tmem_reserve_release();
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
	} else {
		virtio_tmem_reserve_take();
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
	mutex_lock(&virtio_tmem_dev_mutex);
	virtio_tmem_reserve_release();
	mutex_unlock(&virtio_tmem_dev_mutex);
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
	if (vt->frozen)	/* The last restore failed: nothing set up or held. */
		goto out;
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
out:
	/* Tasks are frozen: what the reserve frees stays free for restores. */
	virtio_tmem_reserve_release();
	atomic64_set(&virtio_tmem_stats[VIRTIO_TMEM_FREE_AT_FREEZE],
		     global_zone_page_state(NR_FREE_PAGES));
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
