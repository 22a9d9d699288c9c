/*
 * libqos driver framework: virtio-tmem
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_LIBQOS_VIRTIO_TMEM_H
#define TESTS_LIBQOS_VIRTIO_TMEM_H

#include "qgraph.h"
#include "virtio.h"
#include "virtio-pci.h"

/* The id given to the device on the command line, and its QOM path. */
#define VIRTIO_TMEM_QOS_ID          "tmem0"
#define VIRTIO_TMEM_QOS_QOM_PATH    "/machine/peripheral/" VIRTIO_TMEM_QOS_ID

typedef struct QVirtioTmem QVirtioTmem;
typedef struct QVirtioTmemPCI QVirtioTmemPCI;

struct QVirtioTmem {
    QVirtioDevice *vdev;
    QTestState *qts;
    const char *qom_path;
};

struct QVirtioTmemPCI {
    QVirtioPCIDevice pci_vdev;
    QVirtioTmem tmem;
};

#endif
