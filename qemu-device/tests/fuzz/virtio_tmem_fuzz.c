/*
 * virtio-tmem fuzz target: the fuzzer chooses descriptor chains and
 * everything in them, so the request decoder sees what a hostile guest
 * could send.  Generic MMIO fuzzing rarely gets a virtqueue running;
 * this target sets one up and spends every input on requests.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"

#include "tests/qtest/libqtest.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-tmem.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "fuzz.h"
#include "qos_fuzz.h"

/* Queue 0 is the event queue; 1 and 2 take requests. */
#define TMEM_FUZZ_QUEUES    3
/* Buffers one input may place, so their guest memory can be freed. */
#define TMEM_FUZZ_BUFS      512

typedef struct {
    QVirtQueue *vq[TMEM_FUZZ_QUEUES];
    uint64_t buf[TMEM_FUZZ_BUFS];
    unsigned nbufs;
} TmemFuzzQueues;

/*
 * Every input starts from a machine reset (fuzz_reset), which turns the
 * PCI device off: enable it and bring the device up again each time.
 */
static TmemFuzzQueues *virtio_tmem_fuzz_init(QVirtioDevice *dev)
{
    QVirtioPCIDevice *pdev = container_of(dev, QVirtioPCIDevice, vdev);
    TmemFuzzQueues *qs = g_new0(TmemFuzzQueues, 1);
    int i;

    qvirtio_pci_start_hw(&pdev->obj);
    qvirtio_set_features(dev, qvirtio_get_features(dev));
    for (i = 0; i < TMEM_FUZZ_QUEUES; i++) {
        qs->vq[i] = qvirtqueue_setup(dev, fuzz_qos_alloc, i);
    }
    qvirtio_set_driver_ok(dev);
    return qs;
}

/*
 * The input is a list of actions, each followed by its data:
 * [action][data ...][action][data ...] ...  A descriptor's length is
 * the action's, capped to what is left; "next" chains it to the one
 * after, "kick" ends the chain and notifies.
 */
static void virtio_tmem_fuzz(QTestState *s, const unsigned char *data,
                             size_t size)
{
    struct {
        uint8_t queue;
        uint16_t length;
        uint8_t write;
        uint8_t next;
        uint8_t kick;
    } QEMU_PACKED act;
    QVirtioTmem *tmem = fuzz_qos_obj;
    QVirtioDevice *dev = tmem->vdev;
    TmemFuzzQueues *qs = virtio_tmem_fuzz_init(dev);
    bool touched[TMEM_FUZZ_QUEUES] = { 0 };
    uint32_t head[TMEM_FUZZ_QUEUES];
    int i;

    while (size >= sizeof(act) && qs->nbufs < TMEM_FUZZ_BUFS) {
        QVirtQueue *q;
        uint64_t addr;
        uint32_t h;

        memcpy(&act, data, sizeof(act));
        data += sizeof(act);
        size -= sizeof(act);
        act.queue %= TMEM_FUZZ_QUEUES;
        act.length = MIN(act.length, size);
        q = qs->vq[act.queue];

        addr = guest_alloc(fuzz_qos_alloc, MAX(act.length, 1));
        qs->buf[qs->nbufs++] = addr;
        qtest_memwrite(s, addr, data, act.length);
        h = qvirtqueue_add(s, q, addr, act.length, act.write & 1,
                           act.next & 1);
        if (!touched[act.queue]) {
            touched[act.queue] = true;
            head[act.queue] = h;
        }
        if (act.kick & 1) {
            qvirtqueue_kick(s, dev, q, head[act.queue]);
            touched[act.queue] = false;
        }
        data += act.length;
        size -= act.length;
    }
    for (i = 0; i < TMEM_FUZZ_QUEUES; i++) {
        if (touched[i]) {
            qvirtqueue_kick(s, dev, qs->vq[i], head[i]);
        }
    }
    flush_events(s);
    fuzz_reset(s);
    for (i = 0; i < TMEM_FUZZ_QUEUES; i++) {
        qvirtqueue_cleanup(dev->bus, qs->vq[i], fuzz_qos_alloc);
    }
    while (qs->nbufs) {
        guest_free(fuzz_qos_alloc, qs->buf[--qs->nbufs]);
    }
    g_free(qs);
}

static void virtio_tmem_pre_fuzz(QTestState *s)
{
    qos_init_path(s);
}

static void *virtio_tmem_fuzz_setup(GString *cmd_line, void *arg)
{
    g_string_append(cmd_line, " -global virtio-tmem-pci.num-queues=2"
                    " -global virtio-tmem-pci.budget=4M");
    return arg;
}

static void register_virtio_tmem_fuzz_targets(void)
{
    fuzz_add_qos_target(&(FuzzTarget){
                .name = "virtio-tmem-fuzz",
                .description = "Fuzz virtio-tmem requests: descriptor "
                "chains and their contents",
                .pre_fuzz = &virtio_tmem_pre_fuzz,
                .fuzz = virtio_tmem_fuzz,},
                "virtio-tmem",
                &(QOSGraphTestOptions){.before = virtio_tmem_fuzz_setup}
                );
}

fuzz_target_init(register_virtio_tmem_fuzz_targets);
