/*
 * Virtio transcendent memory: QMP query-tmem and HMP info tmem
 *
 * Built whether or not the device is, since the command is in the
 * schema either way; with no device and no store it lists nothing.
 * Each entry's stats are the object's own "stats" property, so the two
 * never disagree.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-virtio.h"
#include "qobject/qdict.h"
#include "qobject/qnum.h"
#include "qom/object.h"
#include "qom/qom-qobject.h"
#include "system/tmem-store.h"

/* The device's QOM type, named here so this file needs none of it. */
#define VIRTIO_TMEM_TYPE "virtio-tmem-device"

typedef struct TmemQuery {
    TmemInfoList **tail;
    TmemInfoKind kind;          /* what this walk lists */
} TmemQuery;

static TmemInfo *tmem_info_new(Object *obj, TmemInfoKind kind)
{
    TmemInfo *info = g_new0(TmemInfo, 1);

    info->kind = kind;
    info->path = object_get_canonical_path(obj);
    info->stats = object_property_get_qobject(obj, "stats", &error_abort);
    return info;
}

static int tmem_query_one(Object *obj, void *opaque)
{
    TmemQuery *q = opaque;
    TmemInfo *info;

    if (q->kind == TMEM_INFO_KIND_DEVICE &&
        object_dynamic_cast(obj, VIRTIO_TMEM_TYPE)) {
        Object *store = object_property_get_link(obj, "store", NULL);

        info = tmem_info_new(obj, q->kind);
        /* store= if given, else the device's own store */
        if (!store) {
            store = object_resolve_path_component(obj, "tmem-store");
        }
        if (store) {
            info->store = object_get_canonical_path(store);
        }
    } else if (q->kind == TMEM_INFO_KIND_STORE &&
               object_dynamic_cast(obj, TYPE_TMEM_STORE)) {
        TmemStore *ts = TMEM_STORE(obj);
        strList **users;
        TmemStoreUser *u;

        info = tmem_info_new(obj, q->kind);
        info->has_users = true;
        users = &info->users;
        /* users change in the main loop only, where this runs */
        QLIST_FOREACH(u, &ts->users, next) {
            QAPI_LIST_APPEND(users, g_strdup(u->name));
        }
    } else {
        return 0;
    }
    QAPI_LIST_APPEND(q->tail, info);
    return 0;
}

TmemInfoList *qmp_query_tmem(Error **errp)
{
    TmemInfoList *list = NULL;
    TmemQuery q = { .tail = &list };

    /* devices first, so that the first entry is a device if any is */
    q.kind = TMEM_INFO_KIND_DEVICE;
    object_child_foreach_recursive(object_get_root(), tmem_query_one, &q);
    q.kind = TMEM_INFO_KIND_STORE;
    object_child_foreach_recursive(object_get_root(), tmem_query_one, &q);
    return list;
}

/* Unsigned, so that a value past INT64_MAX prints rather than reads 0 */
static uint64_t virtio_tmem_stat(QDict *st, const char *name)
{
    QNum *n = qobject_to(QNum, qdict_get(st, name));
    uint64_t v;

    return n && qnum_get_try_uint(n, &v) ? v : 0;
}

static double virtio_tmem_ratio(QDict *st, const char *name)
{
    QNum *n = qobject_to(QNum, qdict_get(st, name));

    return n ? qnum_get_double(n) : 0;
}

/* One store: its RAM, spill and pages; the device's lines too. */
static void hmp_info_tmem_store(Monitor *mon, QDict *st)
{
    monitor_printf(mon, "  RAM %" PRIu64 " of budget %" PRIu64
                   " bytes, spill %" PRIu64 " of %" PRIu64 " bytes\n",
                   virtio_tmem_stat(st, "ram_used"),
                   virtio_tmem_stat(st, "budget"),
                   virtio_tmem_stat(st, "spill_used"),
                   virtio_tmem_stat(st, "spill_max"));
    monitor_printf(mon, "  pages: %" PRIu64 " persistent (%" PRIu64
                   " spilled), %" PRIu64 " ephemeral, compression "
                   "%.2f\n",
                   virtio_tmem_stat(st, "pages_persistent"),
                   virtio_tmem_stat(st, "pages_spilled"),
                   virtio_tmem_stat(st, "pages_ephemeral"),
                   virtio_tmem_ratio(st, "compression_ratio"));
}

void hmp_info_tmem(Monitor *mon, const QDict *qdict)
{
    TmemInfoList *list = qmp_query_tmem(NULL), *l;
    strList *u;

    if (!list) {
        monitor_printf(mon, "no virtio-tmem devices or tmem stores\n");
    }
    for (l = list; l; l = l->next) {
        QDict *st = qobject_to(QDict, l->value->stats);
        uint64_t pages = virtio_tmem_stat(st, "pages");

        if (l->value->kind == TMEM_INFO_KIND_STORE) {
            monitor_printf(mon, "%s (store), used by:", l->value->path);
            for (u = l->value->users; u; u = u->next) {
                monitor_printf(mon, " %s", u->value);
            }
            monitor_printf(mon, "%s\n", l->value->users ? "" : " nothing");
            hmp_info_tmem_store(mon, st);
            continue;
        }
        monitor_printf(mon, "%s: store %s\n", l->value->path,
                       l->value->store ? l->value->store : "none");
        hmp_info_tmem_store(mon, st);
        monitor_printf(mon, "  moved %" PRIu64 " pages with %" PRIu64
                       " kicks and %" PRIu64 " interrupts",
                       pages, virtio_tmem_stat(st, "kicks"),
                       virtio_tmem_stat(st, "interrupts"));
        if (pages) {
            monitor_printf(mon, " (%.4f kicks per page)",
                           (double)virtio_tmem_stat(st, "kicks") / pages);
        }
        monitor_printf(mon, "\n");
        monitor_printf(mon, "  events: %" PRIu64 " sent, %" PRIu64
                       " evicted keys reported, %" PRIu64 " dropped\n",
                       virtio_tmem_stat(st, "events_sent"),
                       virtio_tmem_stat(st, "evicted_keys"),
                       virtio_tmem_stat(st, "evict_reports_dropped"));
    }
    qapi_free_TmemInfoList(list);
}
