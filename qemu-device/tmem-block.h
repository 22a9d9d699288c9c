/*
 * tmem block driver: what the rest of QEMU sees of it
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef BLOCK_TMEM_H
#define BLOCK_TMEM_H

/*
 * A tmem node's blocks in its live section, in one go (@opaque is the
 * node's bs->opaque), for the block fuzz target: tmem_live_load_all()
 * and tmem_live_save_all() (system/tmem-live.h).  The stream is
 * described in block/tmem.c and backends/tmem-live.c.
 */
int tmem_blk_live_load_all(void *opaque, QEMUFile *f);
int tmem_blk_live_save_all(void *opaque, QEMUFile *f);

#endif
