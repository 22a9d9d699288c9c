/*
 * tmem-spill-blk: a tmem-store's spill medium on a block node
 *
 * The store object (tmem-store.c) makes one for spill-node=NODE, gives
 * the host library tmem_spill_blk_ops with it, and attaches it to the
 * node once the machine is made (-object comes before -blockdev).
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_TMEM_SPILL_BLK_H
#define QEMU_TMEM_SPILL_BLK_H

typedef struct TmemSpillBlk TmemSpillBlk;
struct tmem_spill_ops;

/* The ops to give tmem_store_create_spill with a TmemSpillBlk. */
extern const struct tmem_spill_ops tmem_spill_blk_ops;

/* A medium for @size bytes of the node named @node, not attached yet. */
TmemSpillBlk *tmem_spill_blk_new(const char *node, uint64_t size);

/*
 * Open the node for the store: main loop.  Fails if there is no such
 * node, if it is smaller than the medium's size, or if someone else
 * writes it.  Until then every write is declined and no read is asked
 * for (nothing was spilled).
 */
bool tmem_spill_blk_attach(TmemSpillBlk *sb, Error **errp);

/* Main loop, once the store that used it is destroyed.  NULL: no-op. */
void tmem_spill_blk_free(TmemSpillBlk *sb);

/* The medium's state and counters, as the member "spill_node". */
bool tmem_spill_blk_visit_stats(TmemSpillBlk *sb, Visitor *v, Error **errp);

#endif
