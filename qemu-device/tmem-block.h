/*
 * tmem block driver: what the rest of QEMU sees of it
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef BLOCK_TMEM_H
#define BLOCK_TMEM_H

#include "migration/vmstate.h"

/*
 * The one field of a tmem node's migration section ("tmem-blk/NODE");
 * its opaque is the node's bs->opaque.  The stream is described in
 * block/tmem.c.  The block fuzz target loads and saves it directly.
 */
extern const VMStateInfo vmstate_info_tmem_blk;

#endif
