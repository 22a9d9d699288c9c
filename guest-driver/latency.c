// SPDX-License-Identifier: GPL-2.0
/*
 * latency.c - how long synchronous ops take, in debugfs as
 * virtio_tmem/latency.
 *
 * One histogram per class of op, timed from entering virtio_tmem_sync_op()
 * to its return: joining the queue, the device's work, and polling or
 * sleeping until the status comes back.  Buckets are a quarter of a power
 * of two wide, so a percentile read from them is at most 25% high.  Each
 * line of the file is one bucket that has counts, "class lo_ns count",
 * lo_ns being the bucket's lower bound; counters only grow, so the
 * latencies of an interval are the difference of two reads.
 */
#include <linux/bitops.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "virtio_tmem_drv.h"

#define VIRTIO_TMEM_LAT_BUCKETS	160	/* up to about half an hour */

static atomic64_t virtio_tmem_lat[VIRTIO_TMEM_NR_CLASSES][VIRTIO_TMEM_LAT_BUCKETS];

/* Buckets 0-3 are 0-3 ns; then four per power of two. */
static unsigned int virtio_tmem_lat_bucket(u64 ns)
{
	unsigned int msb;

	if (ns < 4)
		return ns;
	msb = fls64(ns) - 1;
	return min_t(unsigned int, 4 * (msb - 1) + ((ns >> (msb - 2)) & 3),
		     VIRTIO_TMEM_LAT_BUCKETS - 1);
}

static u64 virtio_tmem_lat_lower(unsigned int b)
{
	if (b < 4)
		return b;
	return (u64)(4 + b % 4) << (b / 4 - 1);
}

/**
 * virtio_tmem_latency_add - count one synchronous op
 * @class: what it was for (enum virtio_tmem_class)
 * @ns: how long it took
 */
void virtio_tmem_latency_add(unsigned int class, u64 ns)
{
	if (class < VIRTIO_TMEM_NR_CLASSES)
		atomic64_inc(&virtio_tmem_lat[class][virtio_tmem_lat_bucket(ns)]);
}

static int virtio_tmem_latency_show(struct seq_file *m, void *v)
{
	unsigned int c, b;

	for (c = 0; c < VIRTIO_TMEM_NR_CLASSES; c++)
		for (b = 0; b < VIRTIO_TMEM_LAT_BUCKETS; b++) {
			s64 n = atomic64_read(&virtio_tmem_lat[c][b]);

			if (n)
				seq_printf(m, "%s %llu %lld\n",
					   virtio_tmem_class_name(c),
					   virtio_tmem_lat_lower(b), n);
		}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(virtio_tmem_latency);

void virtio_tmem_latency_debugfs(struct dentry *dir)
{
	debugfs_create_file("latency", 0444, dir, NULL,
			    &virtio_tmem_latency_fops);
}
