// SPDX-License-Identifier: GPL-2.0
/*
 * stats.c - counters, in debugfs as virtio_tmem/stats: one "name value"
 * line each.
 *
 * Counters are atomic, so each is exact, but the file is not a snapshot:
 * counters read a moment apart may disagree by the ops in between.  A
 * notification (kick) or interrupt is counted against every class of op
 * that the requests it covered carried, so kicks_<class> divided by that
 * class's pages is the notifications per page it paid for.
 */
#include <linux/debugfs.h>
#include <linux/math64.h>
#include <linux/seq_file.h>

#include "virtio_tmem_drv.h"

atomic64_t virtio_tmem_stats[VIRTIO_TMEM_NR_STATS];
atomic64_t virtio_tmem_class_kicks[VIRTIO_TMEM_NR_CLASSES];
atomic64_t virtio_tmem_class_irqs[VIRTIO_TMEM_NR_CLASSES];

static const char * const virtio_tmem_stat_names[] = {
	[VIRTIO_TMEM_FRONTSWAP_STORES] = "frontswap_stores",
	[VIRTIO_TMEM_FRONTSWAP_STORE_REJECTS] = "frontswap_store_rejects",
	[VIRTIO_TMEM_FRONTSWAP_STORE_BACKOFFS] = "frontswap_store_backoffs",
	[VIRTIO_TMEM_FRONTSWAP_STORES_BATCHED] = "frontswap_stores_batched",
	[VIRTIO_TMEM_FRONTSWAP_LOADS] = "frontswap_loads",
	[VIRTIO_TMEM_FRONTSWAP_LOAD_MISSES] = "frontswap_load_misses",
	[VIRTIO_TMEM_FRONTSWAP_LOADS_FROM_COPY] = "frontswap_loads_from_copy",
	[VIRTIO_TMEM_FRONTSWAP_INVALIDATES] = "frontswap_invalidates",
	[VIRTIO_TMEM_FRONTSWAP_KEPT] = "frontswap_kept",
	[VIRTIO_TMEM_CLEANCACHE_PUTS] = "cleancache_puts",
	[VIRTIO_TMEM_CLEANCACHE_PUT_DROPS] = "cleancache_put_drops",
	[VIRTIO_TMEM_CLEANCACHE_PUT_REFUSED] = "cleancache_put_refused",
	[VIRTIO_TMEM_CLEANCACHE_PUT_HINTED_OFF] = "cleancache_puts_hinted_off",
	[VIRTIO_TMEM_CLEANCACHE_GETS] = "cleancache_gets",
	[VIRTIO_TMEM_CLEANCACHE_HITS] = "cleancache_hits",
	[VIRTIO_TMEM_CLEANCACHE_MISSES] = "cleancache_misses",
	[VIRTIO_TMEM_CLEANCACHE_MISSES_NO_EXIT] = "cleancache_misses_no_exit",
	[VIRTIO_TMEM_CLEANCACHE_INVALIDATES] = "cleancache_invalidates",
	[VIRTIO_TMEM_FLUSHES_LOST] = "flushes_lost",
	[VIRTIO_TMEM_REQUESTS] = "requests",
	[VIRTIO_TMEM_KICKS] = "kicks",
	[VIRTIO_TMEM_INTERRUPTS] = "interrupts",
	[VIRTIO_TMEM_CREDITS_GRANTED] = "credits_granted",
	[VIRTIO_TMEM_EVENTS] = "events",
	[VIRTIO_TMEM_EVICTED_KEYS] = "evicted_keys",
	[VIRTIO_TMEM_RECLAIM_REQUESTS] = "reclaim_requests",
	[VIRTIO_TMEM_RECLAIMED] = "reclaimed_pages",
	[VIRTIO_TMEM_RECLAIMED_TO_DISK] = "reclaimed_to_disk",
	[VIRTIO_TMEM_BROUGHT_BACK] = "brought_back_pages",
	[VIRTIO_TMEM_HINTS_OFF] = "hints_off",
	[VIRTIO_TMEM_HINTS_ON] = "hints_on",
	[VIRTIO_TMEM_ADD_FAILURES] = "add_failures",
	[VIRTIO_TMEM_LOAD_RETRIES] = "load_retries",
	[VIRTIO_TMEM_STAGING_REFILLS] = "staging_refills",
	[VIRTIO_TMEM_CLEANCACHE_PUTS_FLUSHED] = "cleancache_puts_flushed",
	[VIRTIO_TMEM_SUSPENDS] = "suspends",
	[VIRTIO_TMEM_SYNC_POLLED] = "sync_polled",
	[VIRTIO_TMEM_SYNC_SLEPT] = "sync_slept",
	[VIRTIO_TMEM_PREFETCH_ASKED] = "prefetch_asked",
	[VIRTIO_TMEM_PREFETCH_KEPT] = "prefetch_kept",
	[VIRTIO_TMEM_PREFETCH_STALE] = "prefetch_stale",
	[VIRTIO_TMEM_PREFETCH_HITS] = "prefetch_hits",
	[VIRTIO_TMEM_PREFETCH_DROPPED] = "prefetch_dropped",
	[VIRTIO_TMEM_FRONTSWAP_LOADS_PREFETCHED] = "frontswap_loads_prefetched",
	[VIRTIO_TMEM_SLEEP_RESERVED] = "sleep_reserved_pages",
	[VIRTIO_TMEM_FREE_AT_FREEZE] = "free_pages_at_freeze",
	[VIRTIO_TMEM_CLEANCACHE_GETS_AHEAD] = "cleancache_gets_ahead",
	[VIRTIO_TMEM_CLEANCACHE_GETS_IN_ORDER] = "cleancache_gets_in_order",
	[VIRTIO_TMEM_PROFILE_NS_CLEANCACHE_PUT] = "profile_ns_cleancache_put",
	[VIRTIO_TMEM_PROFILE_CLEANCACHE_PUT] = "profile_cleancache_put",
	[VIRTIO_TMEM_PROFILE_NS_CLEANCACHE_GET] = "profile_ns_cleancache_get",
	[VIRTIO_TMEM_PROFILE_CLEANCACHE_GET] = "profile_cleancache_get",
	[VIRTIO_TMEM_PROFILE_NS_FRONTSWAP_STORE] = "profile_ns_frontswap_store",
	[VIRTIO_TMEM_PROFILE_FRONTSWAP_STORE] = "profile_frontswap_store",
	[VIRTIO_TMEM_PROFILE_NS_FRONTSWAP_LOAD] = "profile_ns_frontswap_load",
	[VIRTIO_TMEM_PROFILE_FRONTSWAP_LOAD] = "profile_frontswap_load",
	[VIRTIO_TMEM_PROFILE_NS_PAGE_COPY] = "profile_ns_page_copy",
	[VIRTIO_TMEM_PROFILE_PAGE_COPY] = "profile_page_copy",
	[VIRTIO_TMEM_PROFILE_NS_SEND] = "profile_ns_send",
	[VIRTIO_TMEM_PROFILE_SEND] = "profile_send",
	[VIRTIO_TMEM_PROFILE_NS_INTERRUPT] = "profile_ns_interrupt",
	[VIRTIO_TMEM_PROFILE_INTERRUPT] = "profile_interrupt",
};

static const char * const virtio_tmem_class_names[] = {
	[VIRTIO_TMEM_FS_STORE] = "frontswap_store",
	[VIRTIO_TMEM_FS_LOAD] = "frontswap_load",
	[VIRTIO_TMEM_CC_PUT] = "cleancache_put",
	[VIRTIO_TMEM_CC_GET] = "cleancache_get",
	[VIRTIO_TMEM_FLUSH] = "flush",
	[VIRTIO_TMEM_CONTROL] = "control",
	[VIRTIO_TMEM_BRING_BACK] = "bring_back",
};

/* Pages (or ops) of each class, the denominator of its kicks per page. */
static const enum virtio_tmem_stat virtio_tmem_class_pages[] = {
	[VIRTIO_TMEM_FS_STORE] = VIRTIO_TMEM_FRONTSWAP_STORES,
	[VIRTIO_TMEM_FS_LOAD] = VIRTIO_TMEM_FRONTSWAP_LOADS,
	[VIRTIO_TMEM_CC_PUT] = VIRTIO_TMEM_CLEANCACHE_PUTS,
	[VIRTIO_TMEM_CC_GET] = VIRTIO_TMEM_CLEANCACHE_GETS,
	[VIRTIO_TMEM_FLUSH] = VIRTIO_TMEM_CLEANCACHE_INVALIDATES,
	[VIRTIO_TMEM_CONTROL] = VIRTIO_TMEM_REQUESTS,
	[VIRTIO_TMEM_BRING_BACK] = VIRTIO_TMEM_BROUGHT_BACK,
};

static_assert(ARRAY_SIZE(virtio_tmem_stat_names) == VIRTIO_TMEM_NR_STATS);
static_assert(ARRAY_SIZE(virtio_tmem_class_names) == VIRTIO_TMEM_NR_CLASSES);

const char *virtio_tmem_class_name(unsigned int class)
{
	return virtio_tmem_class_names[class];
}

void virtio_tmem_count_classes(atomic64_t *counters, unsigned long classes)
{
	unsigned int c;

	for_each_set_bit(c, &classes, VIRTIO_TMEM_NR_CLASSES)
		atomic64_inc(&counters[c]);
}

/* Print @num / @den with three decimals; the kernel has no floating point. */
static void virtio_tmem_show_ratio(struct seq_file *m, const char *name,
				   s64 num, s64 den)
{
	u64 milli = den > 0 && num >= 0 ? div64_u64((u64)num * 1000, den) : 0;

	seq_printf(m, "%s %llu.%03llu\n", name, milli / 1000, milli % 1000);
}

static int virtio_tmem_stats_show(struct seq_file *m, void *v)
{
	struct virtio_tmem *vt;
	unsigned int i;
	char name[48];
	int idx;

	for (i = 0; i < VIRTIO_TMEM_NR_STATS; i++)
		seq_printf(m, "%s %lld\n", virtio_tmem_stat_names[i],
			   atomic64_read(&virtio_tmem_stats[i]));
	for (i = 0; i < VIRTIO_TMEM_NR_CLASSES; i++) {
		s64 kicks = atomic64_read(&virtio_tmem_class_kicks[i]);
		s64 pages = atomic64_read(&virtio_tmem_stats[virtio_tmem_class_pages[i]]);
		atomic64_t *fs_flushes =
			&virtio_tmem_stats[VIRTIO_TMEM_FRONTSWAP_INVALIDATES];

		if (i == VIRTIO_TMEM_FLUSH)
			pages += atomic64_read(fs_flushes);

		seq_printf(m, "kicks_%s %lld\n", virtio_tmem_class_names[i], kicks);
		seq_printf(m, "interrupts_%s %lld\n", virtio_tmem_class_names[i],
			   atomic64_read(&virtio_tmem_class_irqs[i]));
		snprintf(name, sizeof(name), "kicks_per_page_%s",
			 virtio_tmem_class_names[i]);
		virtio_tmem_show_ratio(m, name, kicks, pages);
	}

	idx = srcu_read_lock(&virtio_tmem_srcu);
	vt = srcu_dereference(virtio_tmem_dev, &virtio_tmem_srcu);
	seq_printf(m, "device %d\n", !!vt);
	seq_printf(m, "credits %d\n", vt ? atomic_read(&vt->credits) : 0);
	seq_printf(m, "queues %u\n", vt ? vt->nqueues : 0);
	seq_printf(m, "batch %u\n", vt ? vt->batch : 0);
	seq_printf(m, "host_budget %llu\n", vt ? READ_ONCE(vt->host_budget) : 0);
	seq_printf(m, "poll_window_us %u\n",
		   vt ? virtio_tmem_poll_window_max(vt) : 0);
	srcu_read_unlock(&virtio_tmem_srcu, idx);
	seq_printf(m, "prefetch_pages %u\n", virtio_tmem_pf_pages());
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(virtio_tmem_stats);

static struct dentry *virtio_tmem_debugfs;

struct dentry *virtio_tmem_debugfs_init(void)
{
	virtio_tmem_debugfs = debugfs_create_dir(KBUILD_MODNAME, NULL);
	debugfs_create_file("stats", 0444, virtio_tmem_debugfs, NULL,
			    &virtio_tmem_stats_fops);
	return virtio_tmem_debugfs;
}
