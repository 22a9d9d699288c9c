// SPDX-License-Identifier: GPL-2.0
/*
 * profile.c - where the guest's time goes in the driver's busiest paths,
 * for the benchmarks (docs/benchmarks.md).
 *
 * While debugfs virtio_tmem/profile is non-zero, each of these paths adds
 * the nanoseconds it took and one call to a pair of counters in
 * virtio_tmem/stats:
 *
 *   profile_ns_cleancache_put   the cleancache put hook, all of it
 *   profile_ns_cleancache_get   the cleancache get hook, waits included
 *   profile_ns_frontswap_store  the frontswap store hook, waits included
 *   profile_ns_frontswap_load   the frontswap load hook, waits included
 *   profile_ns_page_copy        each 4 KiB copy of page contents the driver
 *                               makes: into a staging page at a put or a
 *                               store, out of the prefetch cache or the
 *                               copies table at a get or a load
 *   profile_ns_send             adding a request to its ring and notifying
 *   profile_ns_interrupt        the used-buffer callback of a request queue
 *
 * (and profile_<path> counts the calls).  The hooks' times contain the
 * copies and sends they make.  Off, each path pays two calls here, each
 * a load and a branch; on, two clock reads too, which the figures include.
 * The clock is ktime_get_ns(), as latency.c's: a hook that sleeps may wake
 * on another CPU, where local_clock() may be behind the first CPU's.
 */
#include <linux/debugfs.h>
#include <linux/highmem.h>
#include <linux/timekeeping.h>

#include "virtio_tmem_drv.h"

u32 virtio_tmem_profile;

/**
 * virtio_tmem_profile_start() - the start of a timed path
 *
 * Return: the clock, or 0 when not profiling.
 */
u64 virtio_tmem_profile_start(void)
{
	if (!READ_ONCE(virtio_tmem_profile))
		return 0;
	return max_t(u64, ktime_get_ns(), 1);
}

/**
 * virtio_tmem_profile_end() - account a timed path
 * @ns: the counter of its nanoseconds; the next counter counts the calls
 * @start: what virtio_tmem_profile_start() returned
 */
void virtio_tmem_profile_end(enum virtio_tmem_stat ns, u64 start)
{
	if (!start)
		return;
	virtio_tmem_count(ns, ktime_get_ns() - start);
	virtio_tmem_count(ns + 1, 1);
}

/**
 * virtio_tmem_copy_page() - copy a page's contents the driver keeps or
 * gives back, timed when profiling
 * @to: the destination
 * @from: the source
 */
void virtio_tmem_copy_page(struct page *to, struct page *from)
{
	u64 start = virtio_tmem_profile_start();

	copy_highpage(to, from);
	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_PAGE_COPY, start);
}

void virtio_tmem_profile_debugfs(struct dentry *dir)
{
	debugfs_create_u32("profile", 0600, dir, &virtio_tmem_profile);
}
