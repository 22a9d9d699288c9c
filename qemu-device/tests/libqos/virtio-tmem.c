/*
 * libqos driver framework: virtio-tmem
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "../libqtest.h"
#include "qemu/module.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "qgraph.h"
#include "virtio-tmem.h"

#define PCI_SLOT                0x04
#define PCI_FN                  0x00

static void *qvirtio_tmem_get_driver(QVirtioTmem *v_tmem,
                                     const char *interface)
{
    if (!g_strcmp0(interface, "virtio-tmem")) {
        return v_tmem;
    }
    if (!g_strcmp0(interface, "virtio")) {
        return v_tmem->vdev;
    }

    fprintf(stderr, "%s not present in virtio-tmem-pci\n", interface);
    g_assert_not_reached();
}

/* virtio-tmem-pci */
static void *qvirtio_tmem_pci_get_driver(void *object, const char *interface)
{
    QVirtioTmemPCI *v_tmem = object;

    if (!g_strcmp0(interface, "pci-device")) {
        return v_tmem->pci_vdev.pdev;
    }
    return qvirtio_tmem_get_driver(&v_tmem->tmem, interface);
}

static void *virtio_tmem_pci_create(void *pci_bus, QGuestAllocator *t_alloc,
                                    void *addr)
{
    QVirtioTmemPCI *virtio_tpci = g_new0(QVirtioTmemPCI, 1);
    QVirtioTmem *interface = &virtio_tpci->tmem;
    QOSGraphObject *obj = &virtio_tpci->pci_vdev.obj;
    QPCIBus *bus = pci_bus;

    virtio_pci_init(&virtio_tpci->pci_vdev, bus, addr);
    interface->vdev = &virtio_tpci->pci_vdev.vdev;
    interface->qts = bus->qts;
    interface->qom_path = VIRTIO_TMEM_QOS_QOM_PATH;

    g_assert_cmphex(interface->vdev->device_type, ==, VIRTIO_ID_TMEM);

    obj->get_driver = qvirtio_tmem_pci_get_driver;

    return obj;
}

static void virtio_tmem_register_nodes(void)
{
    QPCIAddress addr = {
        .devfn = QPCI_DEVFN(PCI_SLOT, PCI_FN),
    };

    QOSGraphEdgeOptions opts = {
        .extra_device_opts = "id=" VIRTIO_TMEM_QOS_ID ",addr=04.0",
    };

    add_qpci_address(&opts, &addr);
    qos_node_create_driver("virtio-tmem-pci", virtio_tmem_pci_create);
    qos_node_consumes("virtio-tmem-pci", "pci-bus", &opts);
    qos_node_produces("virtio-tmem-pci", "pci-device");
    qos_node_produces("virtio-tmem-pci", "virtio");
    qos_node_produces("virtio-tmem-pci", "virtio-tmem");
}

libqos_init(virtio_tmem_register_nodes);
