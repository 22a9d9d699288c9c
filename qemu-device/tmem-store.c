/*
 * tmem-store: one host page store, shared by the front ends of a guest
 *
 * The object owns a store of the project's host library and its RAM
 * budget; front ends (the virtio-tmem device, the tmem block driver)
 * attach to it and make their pools in it.  The library takes one evict
 * callback per store, so the object takes it and tells every user.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qom/object_interfaces.h"
#include "hw/qdev-core.h"
#include "system/system.h"
#include "system/tmem-spill-blk.h"
#include "system/tmem-store.h"
#include "tmem.h"
#include "trace.h"

/* The default of a store made with no budget: nothing kept in RAM. */
#define TMEM_STORE_DEFAULT_BUDGET   0

struct tmem_store *tmem_store_get(TmemStore *ts)
{
    return ts->store;
}

/* Any thread, inside the store's locks: see TmemStoreUser.evict */
static void tmem_store_evict(void *opaque, int pool,
                             const struct tmem_key *key)
{
    TmemStore *ts = opaque;
    TmemStoreUser *u;

    qemu_mutex_lock(&ts->lock);
    QLIST_FOREACH(u, &ts->users, next) {
        if (u->evict) {
            u->evict(u->opaque, pool, key);
        }
    }
    qemu_mutex_unlock(&ts->lock);
}

void tmem_store_attach(TmemStore *ts, TmemStoreUser *user)
{
    object_ref(OBJECT(ts));
    qemu_mutex_lock(&ts->lock);
    QLIST_INSERT_HEAD(&ts->users, user, next);
    ts->nusers++;
    qemu_mutex_unlock(&ts->lock);
    trace_tmem_store_attach(ts, user->name, ts->nusers);
}

void tmem_store_detach(TmemStore *ts, TmemStoreUser *user)
{
    /* an evict call in progress holds the lock: this waits it out */
    qemu_mutex_lock(&ts->lock);
    QLIST_REMOVE(user, next);
    ts->nusers--;
    qemu_mutex_unlock(&ts->lock);
    trace_tmem_store_detach(ts, user->name, ts->nusers);
    object_unref(OBJECT(ts));
}

bool tmem_store_set_budget(TmemStore *ts, uint64_t bytes, Error **errp)
{
    TmemStoreUser *u;
    uint64_t old = ts->budget;

    if (bytes && (bytes < TMEM_STORE_MIN_BUDGET ||
                  bytes > TMEM_STORE_MAX_BUDGET)) {
        error_setg(errp, "budget must be 0 or %u to %" PRIu64 " bytes, "
                   "not %" PRIu64, TMEM_STORE_MIN_BUDGET,
                   (uint64_t)TMEM_STORE_MAX_BUDGET, bytes);
        return false;
    }
    ts->budget = bytes;
    if (!ts->store) {
        return true;    /* the initial budget, for complete */
    }
    tmem_set_budget(ts->store, bytes);
    trace_tmem_store_budget(ts, bytes);
    /*
     * Users join and leave in the main loop only, so the list holds
     * still without the lock, which must not be held here: a user's
     * callback may call into the store.
     */
    QLIST_FOREACH(u, &ts->users, next) {
        if (u->budget_changed) {
            u->budget_changed(u->opaque, old, bytes);
        }
    }
    return true;
}

static void tmem_store_get_budget(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    visit_type_size(v, name, &TMEM_STORE(obj)->budget, errp);
}

static void tmem_store_prop_set_budget(Object *obj, Visitor *v,
                                       const char *name, void *opaque,
                                       Error **errp)
{
    uint64_t value;

    if (visit_type_size(v, name, &value, errp)) {
        tmem_store_set_budget(TMEM_STORE(obj), value, errp);
    }
}

/* spill, spill-max and spill-buffered shape the store: fixed once made */
static bool tmem_store_check_unmade(TmemStore *ts, const char *name,
                                    Error **errp)
{
    if (ts->store) {
        error_setg(errp, "%s cannot change once the store is made", name);
        return false;
    }
    return true;
}

static char *tmem_store_get_spill(Object *obj, Error **errp)
{
    return g_strdup(TMEM_STORE(obj)->spill);
}

static void tmem_store_set_spill(Object *obj, const char *value,
                                 Error **errp)
{
    TmemStore *ts = TMEM_STORE(obj);

    if (tmem_store_check_unmade(ts, "spill", errp)) {
        g_free(ts->spill);
        ts->spill = value && *value ? g_strdup(value) : NULL;
    }
}

static void tmem_store_get_spill_max(Object *obj, Visitor *v,
                                     const char *name, void *opaque,
                                     Error **errp)
{
    visit_type_size(v, name, &TMEM_STORE(obj)->spill_max, errp);
}

static void tmem_store_set_spill_max(Object *obj, Visitor *v,
                                     const char *name, void *opaque,
                                     Error **errp)
{
    TmemStore *ts = TMEM_STORE(obj);
    uint64_t value;

    if (tmem_store_check_unmade(ts, name, errp) &&
        visit_type_size(v, name, &value, errp)) {
        ts->spill_max = value;
    }
}

static char *tmem_store_get_spill_node(Object *obj, Error **errp)
{
    return g_strdup(TMEM_STORE(obj)->spill_node);
}

static void tmem_store_set_spill_node(Object *obj, const char *value,
                                      Error **errp)
{
    TmemStore *ts = TMEM_STORE(obj);

    if (tmem_store_check_unmade(ts, "spill-node", errp)) {
        g_free(ts->spill_node);
        ts->spill_node = value && *value ? g_strdup(value) : NULL;
    }
}

static bool tmem_store_get_spill_buffered(Object *obj, Error **errp)
{
    return TMEM_STORE(obj)->spill_buffered;
}

static void tmem_store_set_spill_buffered(Object *obj, bool value,
                                          Error **errp)
{
    TmemStore *ts = TMEM_STORE(obj);

    if (tmem_store_check_unmade(ts, "spill-buffered", errp)) {
        ts->spill_buffered = value;
    }
}

/*
 * The "stats" property: every statistic of the store by its host-lib
 * name, its compression ratio and fragmentation, and how many front
 * ends use it.
 */
static void tmem_store_get_stats(Object *obj, Visitor *v, const char *name,
                                 void *opaque, Error **errp)
{
    TmemStore *ts = TMEM_STORE(obj);
    uint64_t users = qatomic_read(&ts->nusers);

    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    if (tmem_store_visit_stats(ts, v, errp) &&
        visit_type_uint64(v, "users", &users, errp)) {
        visit_check_struct(v, errp);
    }
    visit_end_struct(v, NULL);
}

bool tmem_store_visit_stats(TmemStore *ts, Visitor *v, Error **errp)
{
    uint64_t vals[TMEM_STAT__COUNT] = { 0 };
    struct tmem_stats st = { 0 };
    unsigned i;

    if (ts && ts->store) {
        tmem_stats(ts->store, &st);
        tmem_stat_values(ts->store, vals, TMEM_STAT__COUNT);
    }
    for (i = 0; i < TMEM_STAT__COUNT; i++) {
        if (!visit_type_uint64(v, tmem_stat_name(i), &vals[i], errp)) {
            return false;
        }
    }
    return visit_type_number(v, "compression_ratio", &st.compression_ratio,
                             errp) &&
           visit_type_number(v, "fragmentation", &st.fragmentation, errp) &&
           (!ts || !ts->spill_blk ||
            tmem_spill_blk_visit_stats(ts->spill_blk, v, errp));
}

/*
 * -object comes before -blockdev on the command line, so a spill node
 * is looked for once the machine is made; a store made later, with
 * object-add, looks for it at once.
 */
static void tmem_store_machine_done(Notifier *n, void *data)
{
    TmemStore *ts = container_of(n, TmemStore, machine_done);
    Error *err = NULL;

    if (!tmem_spill_blk_attach(ts->spill_blk, &err)) {
        error_prepend(&err, "tmem-store spill-node: ");
        error_report_err(err);
        exit(1);
    }
}

static bool tmem_store_make_spill_node(TmemStore *ts, struct tmem_config *cfg,
                                       Error **errp)
{
    int rc;

    if (ts->spill) {
        error_setg(errp, "spill and spill-node exclude each other");
        return false;
    }
    if (!ts->spill_max) {
        error_setg(errp, "spill-node needs spill-max");
        return false;
    }
    ts->spill_blk = tmem_spill_blk_new(ts->spill_node, ts->spill_max);
    /* 512-byte units: the block layer aligns for the node */
    rc = tmem_store_create_spill(cfg, &tmem_spill_blk_ops, ts->spill_blk,
                                 512, &ts->store);
    if (rc < 0) {
        error_setg_errno(errp, -rc, "cannot create the page store");
        goto fail;
    }
    if (phase_check(PHASE_MACHINE_READY)) {
        if (!tmem_spill_blk_attach(ts->spill_blk, errp)) {
            goto fail;
        }
    } else {
        ts->machine_done.notify = tmem_store_machine_done;
        qemu_add_machine_init_done_notifier(&ts->machine_done);
    }
    return true;

fail:
    tmem_store_destroy(ts->store);
    ts->store = NULL;
    tmem_spill_blk_free(ts->spill_blk);
    ts->spill_blk = NULL;
    return false;
}

static void tmem_store_complete(UserCreatable *uc, Error **errp)
{
    TmemStore *ts = TMEM_STORE(uc);
    struct tmem_config cfg = {
        .budget = ts->budget,
        .spill_path = ts->spill,
        .spill_max = ts->spill_max,
        .flags = ts->spill_buffered ? TMEM_SPILL_BUFFERED : 0,
    };
    int rc;

    if (ts->spill_node) {
        if (tmem_store_make_spill_node(ts, &cfg, errp)) {
            tmem_set_evict_cb(ts->store, tmem_store_evict, ts);
        }
        return;
    }
    if (ts->spill && !ts->spill_max) {
        error_setg(errp, "spill needs spill-max");
        return;
    }
    rc = tmem_store_create(&cfg, &ts->store);
    if (rc < 0) {
        error_setg_errno(errp, -rc, "cannot create the page store%s%s",
                         ts->spill ? " with spill file in " : "",
                         ts->spill ? ts->spill : "");
        if (rc == -EEXIST) {
            error_append_hint(errp, "spill names an existing file; give a "
                              "directory or a path that does not exist\n");
        } else if (rc == -EOPNOTSUPP) {
            error_append_hint(errp, "the spill file system keeps its data "
                              "in RAM (tmpfs) or lacks O_DIRECT; use a disk, "
                              "or spill-buffered=on to accept it\n");
        }
        ts->store = NULL;
        return;
    }
    tmem_set_evict_cb(ts->store, tmem_store_evict, ts);
}

/* object-del: not while a device or block node uses the store */
static bool tmem_store_can_be_deleted(UserCreatable *uc)
{
    return !TMEM_STORE(uc)->nusers;
}

TmemStore *tmem_store_find(const char *id, Error **errp)
{
    Object *obj = object_resolve_path_component(object_get_objects_root(),
                                                id);

    if (!obj || !object_dynamic_cast(obj, TYPE_TMEM_STORE)) {
        error_setg(errp, "no tmem-store object with id '%s'", id);
        return NULL;
    }
    return TMEM_STORE(obj);
}

TmemStore *tmem_store_new_child(Object *parent, uint64_t budget,
                                const char *spill, uint64_t spill_max,
                                bool spill_buffered, Error **errp)
{
    Object *obj = object_new(TYPE_TMEM_STORE);
    TmemStore *ts = TMEM_STORE(obj);

    if (!tmem_store_set_budget(ts, budget, errp)) {
        object_unref(obj);
        return NULL;
    }
    ts->spill = spill && *spill ? g_strdup(spill) : NULL;
    ts->spill_max = spill_max;
    ts->spill_buffered = spill_buffered;
    if (!user_creatable_complete(USER_CREATABLE(obj), errp)) {
        object_unref(obj);
        return NULL;
    }
    object_property_add_child(parent, "tmem-store", obj);
    object_unref(obj);      /* the parent holds it now */
    return ts;
}

static void tmem_store_instance_init(Object *obj)
{
    TmemStore *ts = TMEM_STORE(obj);

    ts->budget = TMEM_STORE_DEFAULT_BUDGET;
    qemu_mutex_init(&ts->lock);
    QLIST_INIT(&ts->users);
}

static void tmem_store_instance_finalize(Object *obj)
{
    TmemStore *ts = TMEM_STORE(obj);

    /* every user holds a reference: none is left */
    assert(!ts->nusers);
    if (ts->machine_done.notify) {
        qemu_remove_machine_init_done_notifier(&ts->machine_done);
    }
    tmem_store_destroy(ts->store);
    tmem_spill_blk_free(ts->spill_blk);     /* after: no op runs now */
    g_free(ts->spill);
    g_free(ts->spill_node);
    qemu_mutex_destroy(&ts->lock);
}

static void tmem_store_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->complete = tmem_store_complete;
    ucc->can_be_deleted = tmem_store_can_be_deleted;

    object_class_property_add(oc, "budget", "size", tmem_store_get_budget,
                              tmem_store_prop_set_budget, NULL, NULL);
    object_class_property_set_description(oc, "budget",
        "Host RAM for the pages of every front end, index included");
    object_class_property_add_str(oc, "spill", tmem_store_get_spill,
                                  tmem_store_set_spill);
    object_class_property_set_description(oc, "spill",
        "Directory (or new file) for persistent pages beyond the budget");
    object_class_property_add_str(oc, "spill-node",
                                  tmem_store_get_spill_node,
                                  tmem_store_set_spill_node);
    object_class_property_set_description(oc, "spill-node",
        "Block node for persistent pages beyond the budget, instead of spill");
    object_class_property_add(oc, "spill-max", "size",
                              tmem_store_get_spill_max,
                              tmem_store_set_spill_max, NULL, NULL);
    object_class_property_set_description(oc, "spill-max",
        "Largest size of the spill file");
    object_class_property_add_bool(oc, "spill-buffered",
                                   tmem_store_get_spill_buffered,
                                   tmem_store_set_spill_buffered);
    object_class_property_set_description(oc, "spill-buffered",
        "Accept a spill file system that keeps data in RAM (tmpfs)");
    object_class_property_add(oc, "stats", "TmemStoreStats",
                              tmem_store_get_stats, NULL, NULL, NULL);
}

static const TypeInfo tmem_store_info = {
    .name = TYPE_TMEM_STORE,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(TmemStore),
    .instance_init = tmem_store_instance_init,
    .instance_finalize = tmem_store_instance_finalize,
    .class_init = tmem_store_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void tmem_store_register_types(void)
{
    type_register_static(&tmem_store_info);
}

type_init(tmem_store_register_types)
