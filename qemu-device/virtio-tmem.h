/*
 * Virtio transcendent memory device
 *
 * Guest pages (frontswap and cleancache) kept compressed in host RAM
 * under a budget the host sets, spilled to a file when RAM runs short.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_VIRTIO_TMEM_H
#define QEMU_VIRTIO_TMEM_H

#include "hw/virtio/virtio.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "qom/object.h"

#define TYPE_VIRTIO_TMEM "virtio-tmem-device"
OBJECT_DECLARE_SIMPLE_TYPE(VirtIOTmem, VIRTIO_TMEM)

/* Upper bounds on what a guest can make the device hold at once. */
#define VIRTIO_TMEM_MAX_QUEUES      64
#define VIRTIO_TMEM_MAX_OPS         4096
#define VIRTIO_TMEM_QUEUE_SIZE      256

struct tmem_store;

/* Counters of one request queue; what QMP shows as exits per page. */
typedef struct VirtIOTmemQueueStats {
    uint64_t kicks;         /* notifications received: VM exits on KVM */
    uint64_t interrupts;    /* used-buffer notifications sent */
    uint64_t requests;      /* descriptor chains completed */
    uint64_t ops;           /* operations run */
    uint64_t pages;         /* pages moved by PUT, GET and GET_EXCL */
} VirtIOTmemQueueStats;

/* Operations run and pages moved, per operation type. */
typedef struct VirtIOTmemOpStats {
    uint64_t ops;
    uint64_t pages;
} VirtIOTmemOpStats;

struct VirtIOTmem {
    VirtIODevice parent_obj;

    /* Properties */
    uint64_t budget;        /* host RAM budget in bytes; qom-set at will */
    char *spill;            /* spill directory or file; NULL: none */
    uint64_t spill_max;     /* cap on the spill file, bytes */
    uint16_t num_queues;    /* request queues */
    uint16_t max_ops;       /* operations per request */
    uint32_t max_credits;   /* credits a driver may hold */
    uint32_t max_pools;     /* pools a driver may hold */

    /* Set up by realize */
    struct tmem_store *store;   /* the pages; private to this device */
    VirtQueue *eventq;
    VirtQueue **reqq;           /* num_queues request queues */

    /* Request scratch, sized by max_ops so no request allocates */
    struct virtio_tmem_op *ops;
    struct virtio_tmem_status *status;
    uint8_t *page;              /* bounce buffer for one page */

    /* Driver state; cleared by reset */
    int *pools;                 /* driver pool slot -> store pool, or -1 */
    uint16_t *pool_gen;         /* generation of each slot's driver id */
    uint32_t npools;            /* entries of pools[] in use */
    uint32_t credits;           /* credits granted and not yet spent */
    bool resets_pending;        /* ephemeral pools emptied by a load */

    /* Statistics */
    VirtIOTmemQueueStats *qstats;   /* one per request queue */
    VirtIOTmemOpStats opstats[VIRTIO_TMEM_OP_CREDITS + 1];
    uint64_t events_sent;       /* events written to the event queue */
    uint64_t events_lost;       /* events with no buffer to go to */
};

extern const VMStateDescription vmstate_virtio_tmem_device;

/*
 * Decode and run one request; false after virtio_error() if the chain
 * cannot be parsed.  On success *@written is the used length.
 */
bool virtio_tmem_handle_request(VirtIOTmem *s, VirtQueueElement *elem,
                                VirtIOTmemQueueStats *qs, size_t *written);

/* Destroy every pool of the driver's, and all their pages. */
void virtio_tmem_drop_pools(VirtIOTmem *s);

/* Write one event to the event queue, if the driver posted a buffer. */
void virtio_tmem_send_event(VirtIOTmem *s, uint16_t type, uint32_t pool,
                            uint64_t value);

#endif
