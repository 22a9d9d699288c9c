/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio_tmem.h - the virtio-tmem wire protocol.
 *
 * This one header is shared by the guest driver, the QEMU device and the
 * tests; docs/virtio-tmem-spec.md is its long form.  Every field is
 * little-endian.
 *
 * Model
 * -----
 * The device is transcendent memory: a store of guest pages kept by the
 * host, outside the guest's RAM, under a budget the host sets.  The
 * driver creates pools in it:
 *
 *  - a persistent pool (frontswap) must give back every page it accepted,
 *    byte for byte, until the driver flushes it;
 *  - an ephemeral pool (cleancache) may drop any page at any time, and a
 *    page it dropped stays dropped until it is put again.
 *
 * A page is addressed by (pool, 192-bit object id, 32-bit index).
 *
 * The driver sends requests on one or more request queues.  A request
 * carries a batch of operations, so that one notification (one VM exit)
 * moves many pages.  Within a request, and between requests on the same
 * queue, operations take effect in order; the driver keeps every
 * operation on one key on one queue.  Operations on different queues are
 * not ordered with respect to each other.
 *
 * Any put may be refused.  For a put to a persistent pool that the guest
 * kernel has already been told succeeded (a batched frontswap store),
 * refusal must not lose the page.  Two mechanisms guarantee that:
 *
 *  - credits: the device grants the driver credits in advance; a put
 *    flagged VIRTIO_TMEM_OP_F_CREDIT spends one, and the device accepts
 *    every such put, spilling to disk or exceeding its budget (by at most
 *    the credits it granted) if it must;
 *  - the driver keeps its copy of a batched page until the device has
 *    used the request, and keeps it for good should the put come back
 *    refused all the same.
 *
 * Virtqueues
 * ----------
 *   0                      eventq: device-to-driver messages
 *   1 .. num_queues        requestq
 *
 * A request is one descriptor chain:
 *
 *   device-readable:  struct virtio_tmem_req
 *                     struct virtio_tmem_op[nops]
 *                     the data of each PUT op, in op order, 1 << arg
 *                     bytes each
 *   device-writable:  struct virtio_tmem_resp
 *                     struct virtio_tmem_status[nops]
 *                     a buffer of 1 << arg bytes for each GET and
 *                     GET_EXCL op, and count buffers for each
 *                     GET_RANGE op, in op order
 *
 * The split of either part over descriptors is free.
 */
#ifndef _LINUX_VIRTIO_TMEM_H
#define _LINUX_VIRTIO_TMEM_H

#include <linux/types.h>

/*
 * Provisional: OASIS has not allocated virtio-tmem an ID.  63 is the
 * highest ID a modern virtio-pci device can carry (0x1040 + 63 = 0x107f)
 * and is far from every allocated one.
 */
#define VIRTIO_ID_TMEM			63

/* Feature bits */
#define VIRTIO_TMEM_F_EPHEMERAL		0 /* ephemeral pools (cleancache) */
#define VIRTIO_TMEM_F_PAGE_64K		1 /* pools of 64 KiB pages */
#define VIRTIO_TMEM_F_EVICT_REPORT	2 /* reports of dropped ephemeral pages */
#define VIRTIO_TMEM_F_CREDITS		3 /* credits for batched persistent puts */
#define VIRTIO_TMEM_F_GET_RANGE		4 /* GET_RANGE: a page and its neighbours */
#define VIRTIO_TMEM_F_MISS_REPORT	5 /* MISSES: gets answered by the driver */
#define VIRTIO_TMEM_F_OVERTAKE		6 /* requests that may run ahead */

struct virtio_tmem_config {
	__le16 num_queues;	/* request queues */
	__le16 max_ops;		/* operations per request, at most */
	__le32 max_credits;	/* credits the driver may hold at once */
	__le64 budget;		/* host RAM budget in bytes, for information */
};

/* Operations */
#define VIRTIO_TMEM_OP_POOL_NEW		1
#define VIRTIO_TMEM_OP_POOL_DESTROY	2
#define VIRTIO_TMEM_OP_PUT		3
#define VIRTIO_TMEM_OP_GET		4
#define VIRTIO_TMEM_OP_GET_EXCL		5
#define VIRTIO_TMEM_OP_FLUSH_PAGE	6
#define VIRTIO_TMEM_OP_FLUSH_OBJECT	7
#define VIRTIO_TMEM_OP_FLUSH_POOL	8
#define VIRTIO_TMEM_OP_CREDITS		9
#define VIRTIO_TMEM_OP_GET_RANGE	10
#define VIRTIO_TMEM_OP_MISSES		11

/* virtio_tmem_op.flags */
#define VIRTIO_TMEM_OP_F_CREDIT		(1 << 0) /* a PUT that spends a credit */

/* POOL_NEW: virtio_tmem_op.arg */
#define VIRTIO_TMEM_POOL_PERSISTENT	1
#define VIRTIO_TMEM_POOL_EPHEMERAL	2
#define VIRTIO_TMEM_POOL_KIND(arg)	((arg) & 0xff)
#define VIRTIO_TMEM_POOL_SHIFT(arg)	(((arg) >> 8) & 0xff) /* 12 or 16 */
#define VIRTIO_TMEM_POOL_ARG(kind, shift) ((kind) | (shift) << 8)

/* GET_RANGE: virtio_tmem_op.arg */
#define VIRTIO_TMEM_RANGE_MAX		32 /* pages in one GET_RANGE */
#define VIRTIO_TMEM_RANGE_SHIFT(arg)	((arg) & 0xff) /* 12 or 16 */
#define VIRTIO_TMEM_RANGE_COUNT(arg)	(((arg) >> 8) & 0xff) /* 1 .. MAX */
#define VIRTIO_TMEM_RANGE_ARG(shift, count) ((shift) | (count) << 8)

/*
 * One operation.  Which fields count:
 *
 *   POOL_NEW      arg: VIRTIO_TMEM_POOL_ARG(kind, page shift)
 *                 status value: the new pool's id
 *   POOL_DESTROY  pool
 *   PUT           pool, oid, index, flags; arg: page shift (12 or 16);
 *                 1 << arg bytes of data follow
 *   GET           pool, oid, index; arg: page shift; a buffer of
 *                 1 << arg bytes in the response
 *   GET_EXCL      as GET, and the page is flushed if it was returned
 *   GET_RANGE     pool, oid, index; arg: VIRTIO_TMEM_RANGE_ARG(page
 *                 shift, count); count buffers in the response, for
 *                 index .. index + count - 1; status: the first page's,
 *                 as GET's; status value, with S_OK or S_MISS: bit i
 *                 set if buffer i holds the page at index + i (what the
 *                 others hold is undefined).  Nothing is flushed.
 *
 * PUT and GET name their page size so that the layout of a chain never
 * depends on pool state; a size that is not the pool's is S_INVALID.
 *   FLUSH_PAGE    pool, oid, index
 *   FLUSH_OBJECT  pool, oid;   status value: pages flushed
 *   FLUSH_POOL    pool;        status value: pages flushed
 *   CREDITS       arg: credits wanted; status value: credits granted
 *   MISSES        pool (ephemeral); arg: gets of the pool the driver
 *                 answered as misses without sending them, 1 or more.
 *                 The device counts them as gets that missed, for HINT.
 *
 * Fields an operation does not use must be zero.
 */
struct virtio_tmem_op {
	__u8 type;
	__u8 flags;
	__le16 reserved;
	__le32 pool;
	__le64 oid[3];
	__le32 index;
	__le32 arg;
};

struct virtio_tmem_req {
	__le16 nops;		/* 1 .. max_ops */
	__le16 flags;		/* VIRTIO_TMEM_REQ_F_*; 0 without a feature */
	__le16 reserved[2];
};

/*
 * virtio_tmem_req.flags, with VIRTIO_TMEM_F_OVERTAKE: no op of the request
 * depends on a request made available before it, so the device may run
 * it first (spec 6.9).  The device does so only for requests of GETs and
 * GET_RANGEs.
 */
#define VIRTIO_TMEM_REQ_F_OVERTAKE	(1 << 0)

/* Status codes, and the operations that may return them */
#define VIRTIO_TMEM_S_OK		0 /* all */
#define VIRTIO_TMEM_S_MISS		1 /* GET, GET_EXCL, GET_RANGE, FLUSH_PAGE */
#define VIRTIO_TMEM_S_NOSPACE		2 /* PUT, POOL_NEW */
#define VIRTIO_TMEM_S_NOMEM		3 /* PUT, POOL_NEW */
#define VIRTIO_TMEM_S_INCOMPRESSIBLE	4 /* PUT */
#define VIRTIO_TMEM_S_BADPOOL		5 /* all but POOL_NEW, CREDITS */
#define VIRTIO_TMEM_S_INVALID		6 /* all: a malformed operation */
#define VIRTIO_TMEM_S_IO		7 /* GETs: retry may work */
#define VIRTIO_TMEM_S_NOCREDIT		8 /* PUT with F_CREDIT, none held */
#define VIRTIO_TMEM_S_UNSUPPORTED	9 /* an op or pool kind not offered */
#define VIRTIO_TMEM_S_SKIPPED		10 /* not run: reserved header bits set */

struct virtio_tmem_status {
	__u8 status;
	__u8 reserved[3];
	__le32 value;
};

struct virtio_tmem_resp {
	__le16 nops_done;	/* operations run, in order, from the first */
	__le16 reserved;
	__le32 credits;		/* credits granted with this response */
};

/*
 * Events.  The driver keeps the eventq filled with writable buffers of
 * at least VIRTIO_TMEM_EVENT_MIN bytes; the device writes one event into
 * each.
 */
#define VIRTIO_TMEM_EVENT_CREDITS	1 /* value: credits granted */
#define VIRTIO_TMEM_EVENT_RECLAIM	2 /* value: persistent pages wanted back */
#define VIRTIO_TMEM_EVENT_HINT		3 /* pool; value: VIRTIO_TMEM_HINT_* */
#define VIRTIO_TMEM_EVENT_EVICTED	4 /* pool; count keys follow */
#define VIRTIO_TMEM_EVENT_RESET		5 /* pool: every page dropped */

#define VIRTIO_TMEM_HINT_CLEANCACHE_OFF	0 /* puts to pool are not paying off */
#define VIRTIO_TMEM_HINT_CLEANCACHE_ON	1

struct virtio_tmem_event {
	__le16 type;
	__le16 count;		/* EVICTED: keys that follow */
	__le32 pool;
	__le64 value;
};

struct virtio_tmem_key {
	__le64 oid[3];
	__le32 index;
	__le32 reserved;
};

#define VIRTIO_TMEM_EVENT_MIN		4096

/*
 * Layout checks: C11 _Static_assert, which GCC also takes in the
 * kernel's gnu89 mode.
 */
_Static_assert(sizeof(struct virtio_tmem_config) == 16, "config layout");
_Static_assert(sizeof(struct virtio_tmem_op) == 40, "op layout");
_Static_assert(sizeof(struct virtio_tmem_req) == 8, "req layout");
_Static_assert(sizeof(struct virtio_tmem_status) == 8, "status layout");
_Static_assert(sizeof(struct virtio_tmem_resp) == 8, "resp layout");
_Static_assert(sizeof(struct virtio_tmem_event) == 16, "event layout");
_Static_assert(sizeof(struct virtio_tmem_key) == 32, "key layout");

#endif /* _LINUX_VIRTIO_TMEM_H */
