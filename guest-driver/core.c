// SPDX-License-Identifier: GPL-2.0
/*
 * core.c - virtio-tmem: transcendent memory over virtio.
 *
 * Module init registers the frontswap and cleancache backends, once: in
 * Linux 5.10 neither can be unregistered, so the module pins itself.  On
 * a kernel built without cleancache (Debian's) it is frontswap alone.  The
 * backends' pools (one per swap type, one per filesystem) live as long as
 * the module; a bound device gets a pool of its own for each of them, and
 * loses them when it is removed, after its swap pages have been brought
 * back into the guest.  One device at a time.
 */
#include <linux/cleancache.h>
#include <linux/cpumask.h>
#include <linux/frontswap.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "virtio_tmem_drv.h"

bool virtio_tmem_frontswap_on = true;
module_param_named(frontswap, virtio_tmem_frontswap_on, bool, 0644);
MODULE_PARM_DESC(frontswap, "Store swap pages in the host (default: on)");

bool virtio_tmem_cleancache_on = true;
module_param_named(cleancache, virtio_tmem_cleancache_on, bool, 0644);
MODULE_PARM_DESC(cleancache, "Put clean page-cache pages in the host (default: on)");

bool virtio_tmem_sync;
module_param_named(sync, virtio_tmem_sync, bool, 0644);
MODULE_PARM_DESC(sync, "One request and one notification per page: classic tmem (default: off)");

unsigned int virtio_tmem_poll_us = 50;
module_param_named(poll_us, virtio_tmem_poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us, "Microseconds a synchronous op polls for its completion before it sleeps for the interrupt, to start with; 0: never poll, and keep event-index interrupt suppression, read at probe (default: 50)");

unsigned int virtio_tmem_poll_max_us = 400;
module_param_named(poll_max_us, virtio_tmem_poll_max_us, uint, 0644);
MODULE_PARM_DESC(poll_max_us, "Longest a synchronous op polls, in microseconds: a queue polls twice its average answer time, from poll_us up to this, and only poll_us when answers average more; at most poll_us: a fixed window (default: 400)");

unsigned int virtio_tmem_prefetch = 32;
module_param_named(prefetch, virtio_tmem_prefetch, uint, 0644);
MODULE_PARM_DESC(prefetch, "Pages a cleancache get or frontswap load that goes to the host asks for, itself and the next ones (a load: to the end of its 8-slot readahead window), up to 32; 0 or 1: no prefetch (default: 32)");

static unsigned int virtio_tmem_batch = 64;
module_param_named(batch, virtio_tmem_batch, uint, 0444);
MODULE_PARM_DESC(batch, "Pages per request, 1-256, read at probe (default: 64)");

/*
 * Serializes binding, unbinding, suspend and resume of the device: held
 * across probe, remove, freeze, restore and the PM notifier's work.
 */
DEFINE_MUTEX(virtio_tmem_dev_mutex);
/* Serializes pool creation and destruction, and the device pointer's writers. */
DEFINE_MUTEX(virtio_tmem_pools_mutex);
struct srcu_struct virtio_tmem_srcu;
struct virtio_tmem __rcu *virtio_tmem_dev;
struct virtio_tmem_pool virtio_tmem_fs_pools[MAX_SWAPFILES];
struct virtio_tmem_pool virtio_tmem_cc_pools[VIRTIO_TMEM_CC_POOLS];

/**
 * virtio_tmem_pool_attach - create @pool's counterpart on the device
 * @vt: the device
 * @pool: a pool the kernel uses
 *
 * Caller must hold virtio_tmem_pools_mutex.  On failure the pool stays
 * off the device: its stores are refused and its puts dropped.
 */
int virtio_tmem_pool_attach(struct virtio_tmem *vt,
			    struct virtio_tmem_pool *pool)
{
	struct virtio_tmem_op op = { .type = VIRTIO_TMEM_OP_POOL_NEW };
	u32 id;
	int st;

	lockdep_assert_held(&virtio_tmem_pools_mutex);
	if (pool->kind == VIRTIO_TMEM_POOL_EPHEMERAL && !vt->has_ephemeral)
		return -EOPNOTSUPP;
	op.arg = cpu_to_le32(VIRTIO_TMEM_POOL_ARG(pool->kind, PAGE_SHIFT));
	st = virtio_tmem_sync_op(vt, &vt->queues[0], &op, VIRTIO_TMEM_CONTROL,
				 NULL, NULL, &id);
	if (st != VIRTIO_TMEM_S_OK) {
		dev_warn(&vt->vdev->dev, "pool not created: status %d\n", st);
		return st == VIRTIO_TMEM_S_NOMEM ? -ENOMEM : -ENOSPC;
	}
	WRITE_ONCE(pool->dev_id, id);
	smp_wmb();	/* dev_id before on_device: pairs with READ_ONCE users */
	WRITE_ONCE(pool->on_device, true);
	return 0;
}

/* Caller must hold virtio_tmem_pools_mutex. */
void virtio_tmem_pool_detach(struct virtio_tmem *vt,
			     struct virtio_tmem_pool *pool)
{
	struct virtio_tmem_op op = { .type = VIRTIO_TMEM_OP_POOL_DESTROY };

	lockdep_assert_held(&virtio_tmem_pools_mutex);
	if (!pool->on_device)
		return;
	WRITE_ONCE(pool->on_device, false);
	/*
	 * Hooks that saw on_device set queue their ops under SRCU: wait for
	 * them, then for their ops.  POOL_DESTROY spans queues: it is ordered
	 * after what each one has sent.
	 */
	synchronize_srcu(&virtio_tmem_srcu);
	virtio_tmem_quiesce(vt);
	op.pool = cpu_to_le32(pool->dev_id);
	virtio_tmem_sync_op(vt, &vt->queues[0], &op, VIRTIO_TMEM_CONTROL,
			    NULL, NULL, NULL);
}

/* Caller must hold virtio_tmem_pools_mutex. */
struct virtio_tmem_pool *virtio_tmem_pool_by_dev_id(u32 dev_id)
{
	unsigned int i;

	lockdep_assert_held(&virtio_tmem_pools_mutex);
	for (i = 0; i < VIRTIO_TMEM_CC_POOLS; i++) {
		if (virtio_tmem_cc_pools[i].on_device &&
		    virtio_tmem_cc_pools[i].dev_id == dev_id)
			return &virtio_tmem_cc_pools[i];
	}
	for (i = 0; i < MAX_SWAPFILES; i++) {
		if (virtio_tmem_fs_pools[i].on_device &&
		    virtio_tmem_fs_pools[i].dev_id == dev_id)
			return &virtio_tmem_fs_pools[i];
	}
	return NULL;
}

/**
 * virtio_tmem_alloc_page - a page for the driver's own use
 * @gfp: allocation flags
 *
 * Every page the driver keeps (staging pages, kept copies, bounce pages)
 * comes from here, never from the emergency reserves: those are for the
 * kernel's own progress under memory pressure, and the driver runs exactly
 * then, often in reclaim (PF_MEMALLOC) or with interrupts off.  Warns if a
 * caller asks for them.
 */
struct page *virtio_tmem_alloc_page(gfp_t gfp)
{
	WARN_ON_ONCE((gfp & (__GFP_HIGH | __GFP_MEMALLOC)) ||
		     (in_task() && (current->flags & PF_MEMALLOC) &&
		      !(gfp & __GFP_NOMEMALLOC)));
	return alloc_page(gfp);
}

static void virtio_tmem_attach_all(struct virtio_tmem *vt)
{
	unsigned int i;

	for (i = 0; i < MAX_SWAPFILES; i++) {
		if (virtio_tmem_fs_pools[i].in_use)
			virtio_tmem_pool_attach(vt, &virtio_tmem_fs_pools[i]);
	}
	for (i = 0; i < VIRTIO_TMEM_CC_POOLS; i++) {
		if (virtio_tmem_cc_pools[i].in_use)
			virtio_tmem_pool_attach(vt, &virtio_tmem_cc_pools[i]);
	}
}

/* The device is gone or going: forget its pools and what they held. */
static void virtio_tmem_forget_all(void)
{
	struct virtio_tmem_pool *pool;
	unsigned int i;

	lockdep_assert_held(&virtio_tmem_pools_mutex);
	for (i = 0; i < MAX_SWAPFILES + VIRTIO_TMEM_CC_POOLS; i++) {
		pool = i < MAX_SWAPFILES ? &virtio_tmem_fs_pools[i] :
		       &virtio_tmem_cc_pools[i - MAX_SWAPFILES];
		WRITE_ONCE(pool->on_device, false);
		WRITE_ONCE(pool->hint_off, false);
		WRITE_ONCE(pool->poisoned, false);
		virtio_tmem_filter_clear(pool);
	}
	virtio_tmem_pf_forget_pool(NULL);
}

/* On the stack: a restore allocates nothing but the rings. */
static int virtio_tmem_find_vqs(struct virtio_tmem *vt)
{
	vq_callback_t *callbacks[VIRTIO_TMEM_MAX_QUEUES + 1];
	const char *names[VIRTIO_TMEM_MAX_QUEUES + 1];
	struct virtqueue *vqs[VIRTIO_TMEM_MAX_QUEUES + 1];
	unsigned int i, n = vt->nqueues + 1;
	int err;

	callbacks[0] = virtio_tmem_event_done;
	names[0] = "event";
	for (i = 1; i < n; i++) {
		callbacks[i] = virtio_tmem_request_done;
		names[i] = "request";
	}
	err = virtio_find_vqs(vt->vdev, n, vqs, callbacks, names, NULL);
	if (err)
		return err;
	vt->eventq = vqs[0];
	/*
	 * After the rings: without compaction, their higher-order allocations
	 * would fail, or call the OOM killer, once the staging pages took the
	 * last free blocks.
	 */
	if (!vt->queues) {
		err = virtio_tmem_queues_alloc(vt);
		if (err) {
			vt->vdev->config->del_vqs(vt->vdev);
			return err;
		}
	}
	virtio_tmem_queues_attach(vt, vqs + 1);
	return 0;
}

static void virtio_tmem_read_budget(struct virtio_tmem *vt)
{
	u64 budget;

	virtio_cread_le(vt->vdev, struct virtio_tmem_config, budget, &budget);
	WRITE_ONCE(vt->host_budget, budget);
}

static void virtio_tmem_config_work(struct work_struct *work)
{
	virtio_tmem_read_budget(container_of(work, struct virtio_tmem,
					     config_work));
}

/* The driver's own memory for the device: at remove, or if probe failed. */
static void virtio_tmem_free(struct virtio_tmem *vt)
{
	virtio_tmem_queues_free(vt);
	virtio_tmem_events_free(vt);
}

/**
 * virtio_tmem_setup - bring the device up and give it the kernel's pools
 * @vt: the device, reset, its features negotiated
 *
 * For probe and for restore after sleep.  Caller must hold
 * virtio_tmem_dev_mutex.  Publishes the device: the hooks use it from then
 * on.  The queues' memory is allocated once, at probe; on failure it is
 * kept for virtio_tmem_free() or the next restore.
 */
int virtio_tmem_setup(struct virtio_tmem *vt)
{
	struct virtio_tmem_op credits = { .type = VIRTIO_TMEM_OP_CREDITS };
	struct virtio_device *vdev = vt->vdev;
	int err;

	lockdep_assert_held(&virtio_tmem_dev_mutex);
	atomic_set(&vt->credits, 0);
	atomic_set(&vt->credits_asked, 0);
	atomic_long_set(&vt->reclaim_target, 0);
	vt->store_backoff = jiffies;	/* none: jiffies start near wrapping */
	/* As when the transport finds no memory for the rings. */
	if (vt->frozen && virtio_tmem_fault_restore_fails())
		return -ENOMEM;
	err = virtio_tmem_find_vqs(vt);
	if (err)
		return err;
	err = virtio_tmem_events_init(vt);
	if (err)
		goto out_del_vqs;
	virtio_tmem_read_budget(vt);
	virtio_device_ready(vdev);
	virtqueue_kick(vt->eventq);

	if (vt->has_credits) {
		credits.arg = cpu_to_le32(vt->max_credits);
		atomic_add(vt->max_credits, &vt->credits_asked);
		virtio_tmem_sync_op(vt, &vt->queues[0], &credits,
				    VIRTIO_TMEM_CONTROL, NULL, NULL, NULL);
		atomic_sub(vt->max_credits, &vt->credits_asked);
	}
	mutex_lock(&virtio_tmem_pools_mutex);
	virtio_tmem_attach_all(vt);
	rcu_assign_pointer(virtio_tmem_dev, vt);
	mutex_unlock(&virtio_tmem_pools_mutex);
	return 0;

out_del_vqs:
	vdev->config->reset(vdev);
	virtio_tmem_queues_detach(vt);
	vdev->config->del_vqs(vdev);
	return err;
}

/**
 * virtio_tmem_stop_stores - refuse new pages, and wait for those accepted
 * @vt: the device
 * @why: VIRTIO_TMEM_DRAIN_REMOVE or VIRTIO_TMEM_DRAIN_SLEEP
 *
 * A store that saw the device usable before the bit was set may still be
 * queueing its put; the SRCU grace period waits for it, and the quiesce
 * for the put.  Afterwards no put is pending, and every swap page the host
 * has is ON_HOST in its pool's held xarray.
 */
void virtio_tmem_stop_stores(struct virtio_tmem *vt, unsigned int why)
{
	set_bit(why, &vt->draining);
	synchronize_srcu(&virtio_tmem_srcu);
	virtio_tmem_quiesce(vt);
}

/**
 * virtio_tmem_teardown - unpublish the device and take its queues down
 * @vt: the device
 *
 * For remove and for freeze, after virtio_tmem_stop_stores().  Caller must
 * hold virtio_tmem_dev_mutex.  What the device held is forgotten: its
 * pools go with the reset.  The driver's memory for it stays.
 */
void virtio_tmem_teardown(struct virtio_tmem *vt)
{
	struct virtio_device *vdev = vt->vdev;

	lockdep_assert_held(&virtio_tmem_dev_mutex);
	virtio_tmem_events_stop(vt);	/* which alone queue reclaim work */
	cancel_work_sync(&vt->reclaim_work);
	/* Config changes stopped before remove and freeze were called. */
	cancel_work_sync(&vt->config_work);

	mutex_lock(&virtio_tmem_pools_mutex);
	RCU_INIT_POINTER(virtio_tmem_dev, NULL);
	mutex_unlock(&virtio_tmem_pools_mutex);
	synchronize_srcu(&virtio_tmem_srcu);

	/* No hook reaches the device now; finish what it was sent. */
	virtio_tmem_quiesce(vt);
	cancel_work_sync(&vt->repair_work);
	mutex_lock(&virtio_tmem_pools_mutex);
	virtio_tmem_forget_all();
	mutex_unlock(&virtio_tmem_pools_mutex);
	virtio_tmem_frontswap_forget();

	vdev->config->reset(vdev);
	virtio_tmem_queues_detach(vt);
	vdev->config->del_vqs(vdev);
}

static int virtio_tmem_probe(struct virtio_device *vdev)
{
	struct virtio_tmem *vt;
	u16 nqueues, max_ops;
	int err;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "config access disabled\n");
		return -EINVAL;
	}
	virtio_cread_le(vdev, struct virtio_tmem_config, num_queues, &nqueues);
	virtio_cread_le(vdev, struct virtio_tmem_config, max_ops, &max_ops);
	if (!nqueues || max_ops < 3) {
		dev_err(&vdev->dev, "unusable config: %u queues, %u ops\n",
			nqueues, max_ops);
		return -EINVAL;
	}

	vt = kzalloc(sizeof(*vt), GFP_KERNEL);
	if (!vt)
		return -ENOMEM;
	vdev->priv = vt;
	vt->vdev = vdev;
	vt->nqueues = min3((unsigned int)nqueues, num_online_cpus(),
			   (unsigned int)VIRTIO_TMEM_MAX_QUEUES);
	vt->max_ops = max_ops;
	vt->batch = clamp_t(unsigned int, virtio_tmem_batch, 1,
			    min(VIRTIO_TMEM_MAX_BATCH, max_ops - 2));
	virtio_cread_le(vdev, struct virtio_tmem_config, max_credits,
			&vt->max_credits);
	vt->has_credits = virtio_has_feature(vdev, VIRTIO_TMEM_F_CREDITS);
	vt->has_ephemeral = virtio_has_feature(vdev, VIRTIO_TMEM_F_EPHEMERAL);
	vt->has_get_range = virtio_has_feature(vdev, VIRTIO_TMEM_F_GET_RANGE);
	vt->has_overtake = virtio_has_feature(vdev, VIRTIO_TMEM_F_OVERTAKE);
	INIT_WORK(&vt->reclaim_work, virtio_tmem_reclaim);
	INIT_WORK(&vt->repair_work, virtio_tmem_repair);
	INIT_WORK(&vt->config_work, virtio_tmem_config_work);

	mutex_lock(&virtio_tmem_dev_mutex);
	if (rcu_access_pointer(virtio_tmem_dev)) {
		dev_err(&vdev->dev, "only one virtio-tmem device is supported\n");
		err = -EBUSY;
	} else {
		err = virtio_tmem_setup(vt);
	}
	mutex_unlock(&virtio_tmem_dev_mutex);
	if (err) {
		virtio_tmem_free(vt);
		kfree(vt);
		return err;
	}
	dev_info(&vdev->dev, "%u request queues, %u pages per batch, %d credits%s\n",
		 vt->nqueues, vt->batch, atomic_read(&vt->credits),
		 vt->has_ephemeral ? ", cleancache" : "");
	return 0;
}

static void virtio_tmem_remove(struct virtio_device *vdev)
{
	struct virtio_tmem *vt = vdev->priv;
	unsigned long lost;

	mutex_lock(&virtio_tmem_dev_mutex);
	if (vt->frozen) {
		/* restore failed: nothing is set up, nothing is held */
		mutex_unlock(&virtio_tmem_dev_mutex);
		virtio_tmem_free(vt);
		kfree(vt);
		return;
	}
	/* Refuse new pages, then fetch the swap pages the host holds. */
	virtio_tmem_stop_stores(vt, VIRTIO_TMEM_DRAIN_REMOVE);
	lost = virtio_tmem_frontswap_drain(vt);
	if (lost)
		dev_err(&vdev->dev, "%lu swap pages could not be brought back\n",
			lost);
	virtio_tmem_teardown(vt);
	mutex_unlock(&virtio_tmem_dev_mutex);
	virtio_tmem_free(vt);
	kfree(vt);
}

/*
 * Spec 3: eviction reports are about ephemeral pages, and a driver must not
 * accept them without ephemeral pools.
 */
static int virtio_tmem_validate(struct virtio_device *vdev)
{
	/*
	 * A kernel without cleancache (Debian's 5.10 kernels) makes no
	 * ephemeral pools, so it takes neither them nor eviction reports.
	 * They stay in the feature table: virtio_has_feature() insists.
	 */
	if (!IS_ENABLED(CONFIG_CLEANCACHE)) {
		__virtio_clear_bit(vdev, VIRTIO_TMEM_F_EPHEMERAL);
		__virtio_clear_bit(vdev, VIRTIO_TMEM_F_EVICT_REPORT);
	}
	if (virtio_has_feature(vdev, VIRTIO_TMEM_F_EVICT_REPORT) &&
	    !virtio_has_feature(vdev, VIRTIO_TMEM_F_EPHEMERAL)) {
		dev_warn(&vdev->dev, "device offers eviction reports without ephemeral pools: not accepted\n");
		__virtio_clear_bit(vdev, VIRTIO_TMEM_F_EVICT_REPORT);
	}
	/*
	 * A polled op turns callbacks off so that the device sends no
	 * interrupt for it.  With event indices, Linux 5.10's
	 * virtqueue_disable_cb() only marks them off in the guest, and
	 * used_event still asks for an interrupt at the next used buffer;
	 * without them it sets VRING_AVAIL_F_NO_INTERRUPT, which the
	 * device honours.
	 */
	if (READ_ONCE(virtio_tmem_poll_us))
		__virtio_clear_bit(vdev, VIRTIO_RING_F_EVENT_IDX);
	return 0;
}

/*
 * The host changed the budget (spec 4): only the statistics show it.  In
 * interrupt context, and reading the config space may sleep.
 */
static void virtio_tmem_config_changed(struct virtio_device *vdev)
{
	struct virtio_tmem *vt = vdev->priv;

	schedule_work(&vt->config_work);
}

static unsigned int virtio_tmem_features[] = {
	VIRTIO_TMEM_F_EPHEMERAL,
	VIRTIO_TMEM_F_EVICT_REPORT,
	VIRTIO_TMEM_F_CREDITS,
	VIRTIO_TMEM_F_GET_RANGE,
	VIRTIO_TMEM_F_OVERTAKE,
};

static const struct virtio_device_id virtio_tmem_id_table[] = {
	{ VIRTIO_ID_TMEM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static struct virtio_driver virtio_tmem_driver = {
	.feature_table = virtio_tmem_features,
	.feature_table_size = ARRAY_SIZE(virtio_tmem_features),
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = virtio_tmem_id_table,
	.validate = virtio_tmem_validate,
	.probe = virtio_tmem_probe,
	.remove = virtio_tmem_remove,
	.config_changed = virtio_tmem_config_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = virtio_tmem_freeze,
	.restore = virtio_tmem_restore,
#endif
};

/*
 * No module_exit: the backends cannot be unregistered in 5.10, so the
 * module must never be unloaded once they are, and without an exit
 * function the kernel refuses to unload it.
 */
static int __init virtio_tmem_init(void)
{
	struct dentry *dir;
	int err;

	virtio_tmem_frontswap_setup();
	virtio_tmem_pf_init();
	err = init_srcu_struct(&virtio_tmem_srcu);
	if (err)
		return err;
	err = virtio_tmem_pm_init();
	if (err)
		goto out_srcu;
	err = register_virtio_driver(&virtio_tmem_driver);
	if (err)
		goto out_pm;
	if (IS_ENABLED(CONFIG_CLEANCACHE)) {
		err = cleancache_register_ops(&virtio_tmem_cleancache_ops);
		if (err) {
			pr_err("virtio_tmem: another cleancache backend is registered\n");
			goto out_driver;
		}
	}
	frontswap_register_ops(&virtio_tmem_frontswap_ops);
	__module_get(THIS_MODULE);
	virtio_tmem_pf_shrinker_init();
	dir = virtio_tmem_debugfs_init();
	virtio_tmem_latency_debugfs(dir);
	virtio_tmem_fault_debugfs(dir);
	virtio_tmem_profile_debugfs(dir);
	virtio_tmem_torture_debugfs(dir);
	pr_info("virtio_tmem: %s; Linux 5.10 cannot unregister them, so this module stays loaded\n",
		IS_ENABLED(CONFIG_CLEANCACHE) ?
		"frontswap and cleancache backend" :
		"frontswap backend (this kernel has no cleancache)");
	return 0;

out_driver:
	unregister_virtio_driver(&virtio_tmem_driver);
out_pm:
	virtio_tmem_pm_exit();
out_srcu:
	cleanup_srcu_struct(&virtio_tmem_srcu);
	return err;
}
module_init(virtio_tmem_init);

MODULE_DEVICE_TABLE(virtio, virtio_tmem_id_table);
MODULE_DESCRIPTION("virtio-tmem: frontswap and cleancache in host memory");
MODULE_LICENSE("GPL");
