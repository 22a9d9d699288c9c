// SPDX-License-Identifier: GPL-2.0
/*
 * fault.c - fault injection for the tests, in debugfs virtio_tmem/fault/.
 *
 * Each knob widens a window the driver must survive, so that the
 * end-to-end tests reach it on every run instead of once in a while:
 *
 *   batches            request structures each queue may use, 1-16 (0:
 *                      all 16): fewer makes ops wait for a batch
 *   fail_add_interval  of every this many attempts to add a request to
 *   fail_add_burst     the ring, the first this many fail with -ENOSPC,
 *                      as when the ring is full and GFP_NOWAIT finds no
 *                      memory for indirect descriptors
 *   store_delay_us     one frontswap store in store_delay_every (0: each)
 *   store_delay_every  sleeps this long after it found the device usable,
 *                      before it queues its put
 *   get_delay_us       one cleancache get in get_delay_every (0: each)
 *   get_delay_every    sleeps this long after it found its pool on the
 *                      device, before it reads the pool's filter
 *   busy_alloc_pages   bringing a page back allocates (and frees) this many
 *                      pages while its slot is busy, as an allocation there
 *                      that found memory short would reclaim
 *   nomem_setup        while set, the driver's own allocations for the
 *                      device's queues and event buffers fail, as when a
 *                      restore finds memory short
 *   fail_restores      the next this many restores after sleep fail with
 *                      -ENOMEM where the transport allocates the rings
 *   filter_full        while set, every cleancache pool's per-key presence
 *                      filter says the host may hold any key, as one whose
 *                      pool holds far more pages than it has counters
 *
 * All are 0 (off) at load.  They cost a load and a branch when off.
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/delay.h>

#include "virtio_tmem_drv.h"

struct virtio_tmem_faults virtio_tmem_faults;
static atomic_t virtio_tmem_adds = ATOMIC_INIT(0);

/* Whether this attempt to add a request to a ring should fail. */
bool virtio_tmem_fault_add_fails(void)
{
	u32 interval = READ_ONCE(virtio_tmem_faults.fail_add_interval);
	u32 burst = READ_ONCE(virtio_tmem_faults.fail_add_burst);

	if (!interval)
		return false;
	return (u32)atomic_inc_return(&virtio_tmem_adds) % interval <
	       max(burst, 1U);
}

#define VIRTIO_TMEM_KNOB(name) { #name, &virtio_tmem_faults.name }

static const struct {
	const char *name;
	u32 *value;
} virtio_tmem_knobs[] = {
	VIRTIO_TMEM_KNOB(batches),
	VIRTIO_TMEM_KNOB(fail_add_interval),
	VIRTIO_TMEM_KNOB(fail_add_burst),
	VIRTIO_TMEM_KNOB(store_delay_us),
	VIRTIO_TMEM_KNOB(store_delay_every),
	VIRTIO_TMEM_KNOB(get_delay_us),
	VIRTIO_TMEM_KNOB(get_delay_every),
	VIRTIO_TMEM_KNOB(busy_alloc_pages),
	VIRTIO_TMEM_KNOB(nomem_setup),
	VIRTIO_TMEM_KNOB(fail_restores),
	VIRTIO_TMEM_KNOB(filter_full),
	VIRTIO_TMEM_KNOB(overtake_unchecked),
};

void virtio_tmem_fault_debugfs(struct dentry *dir)
{
	struct dentry *d = debugfs_create_dir("fault", dir);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(virtio_tmem_knobs); i++)
		debugfs_create_u32(virtio_tmem_knobs[i].name, 0600, d,
				   virtio_tmem_knobs[i].value);
}

/* Sleep us microseconds once in every calls (0 or 1: each time). */
static void virtio_tmem_fault_delay(atomic_t *calls, u32 us, u32 every)
{
	if (us && (every <= 1 || !((u32)atomic_inc_return(calls) % every)))
		fsleep(us);
}

/* Stall this store, if the knobs say so. */
void virtio_tmem_fault_store_delay(void)
{
	static atomic_t stores = ATOMIC_INIT(0);

	virtio_tmem_fault_delay(&stores,
				READ_ONCE(virtio_tmem_faults.store_delay_us),
				READ_ONCE(virtio_tmem_faults.store_delay_every));
}

/* Stall this cleancache get, if the knobs say so. */
void virtio_tmem_fault_get_delay(void)
{
	static atomic_t gets = ATOMIC_INIT(0);

	virtio_tmem_fault_delay(&gets,
				READ_ONCE(virtio_tmem_faults.get_delay_us),
				READ_ONCE(virtio_tmem_faults.get_delay_every));
}

/*
 * Allocate and free busy_alloc_pages pages, with the flags any allocation
 * of the caller's would get: reclaim, unless the caller forbade I/O.
 */
void virtio_tmem_fault_busy_alloc(void)
{
	u32 n = READ_ONCE(virtio_tmem_faults.busy_alloc_pages);
	LIST_HEAD(pages);
	struct page *page, *next;

	while (n--) {
		page = alloc_page(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
		if (!page)
			break;
		list_add(&page->lru, &pages);
	}
	list_for_each_entry_safe(page, next, &pages, lru)
		__free_page(page);
}

/* Whether a restore should fail now; counts the failures down. */
bool virtio_tmem_fault_restore_fails(void)
{
	u32 n = READ_ONCE(virtio_tmem_faults.fail_restores);

	if (!n)
		return false;
	WRITE_ONCE(virtio_tmem_faults.fail_restores, n - 1);
	return true;
}
