/*
 * Virtio transcendent memory device: events to the driver
 *
 * Every event is worked out and sent here, in the main loop, by one
 * bottom half; whatever raises an event (a request in the iothread, the
 * store's reclaim thread, QMP) only records it and schedules the bottom
 * half.  The event queue is therefore touched by one thread only.
 *
 *  - RESET: an ephemeral pool emptied by a migration load.
 *  - HINT: an ephemeral pool's GETs over the last hint-window hit less
 *    than 1 in 32: CLEANCACHE_OFF.  CLEANCACHE_ON again when a window
 *    hits 1 in 8 or better, hint-retry after the OFF, or when the budget
 *    grows.  Pages the store dropped count as GETs that missed: a put
 *    that went before any get is one that did not pay, and a pool that
 *    only streams asks for nothing the store holds (the driver's filter
 *    answers those misses itself), so only its drops show it.
 *  - CREDITS: a CREDITS op was cut short because the store was over its
 *    budget; once it is back under, the credits asked for are granted.
 *  - RECLAIM: the store is over budget or has spilled since the last
 *    look; value: the pages spilled plus the 4 KiB pages of overshoot.
 *    At most one a second.
 *  - EVICTED: the keys of ephemeral pages the store dropped, reported by
 *    its evict callback into a bounded buffer.
 *
 * With no event buffer posted, RESET, HINT, CREDITS and RECLAIM wait
 * (the latest of each); EVICTED reports are dropped and counted, which
 * costs the driver at most one GET that misses per key.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/main-loop.h"
#include "hw/virtio/virtio-tmem.h"
#include "tmem.h"
#include "trace.h"

/* Hit ratios that switch a pool's hint: below 1/32 off, 1/8 on again. */
#define VIRTIO_TMEM_HINT_OFF_DIV    32
#define VIRTIO_TMEM_HINT_ON_DIV     8
/* RECLAIM at most this often */
#define VIRTIO_TMEM_RECLAIM_MS      1000
/* While something is being watched, look this often */
#define VIRTIO_TMEM_POLL_MS         100

const char *const virtio_tmem_event_names[] = {
    [VIRTIO_TMEM_EVENT_CREDITS] = "credits",
    [VIRTIO_TMEM_EVENT_RECLAIM] = "reclaim",
    [VIRTIO_TMEM_EVENT_HINT] = "hint",
    [VIRTIO_TMEM_EVENT_EVICTED] = "evicted",
    [VIRTIO_TMEM_EVENT_RESET] = "reset",
};

/*
 * Write one event, and @nkeys keys after it, into the next buffer the
 * driver posted.  False if there is none (or it is too small, which is
 * the driver's error).  Main loop, lock.
 */
static bool virtio_tmem_send_event(VirtIOTmem *s, uint16_t type,
                                   uint32_t pool, uint64_t value,
                                   const struct virtio_tmem_key *keys,
                                   uint16_t nkeys)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    struct virtio_tmem_event ev = {
        .type = cpu_to_le16(type),
        .count = cpu_to_le16(nkeys),
        .pool = cpu_to_le32(pool),
        .value = cpu_to_le64(value),
    };
    size_t len = sizeof(ev) + nkeys * sizeof(*keys);
    VirtQueueElement *elem = virtqueue_pop(s->eventq,
                                           sizeof(VirtQueueElement));

    if (!elem) {
        return false;
    }
    if (iov_size(elem->in_sg, elem->in_num) < VIRTIO_TMEM_EVENT_MIN) {
        virtio_error(vdev, "virtio-tmem: event buffer under %d bytes",
                     VIRTIO_TMEM_EVENT_MIN);
        virtqueue_detach_element(s->eventq, elem, 0);
        g_free(elem);
        return false;
    }
    iov_from_buf(elem->in_sg, elem->in_num, 0, &ev, sizeof(ev));
    if (nkeys) {
        iov_from_buf(elem->in_sg, elem->in_num, sizeof(ev), keys,
                     nkeys * sizeof(*keys));
    }
    virtqueue_push(s->eventq, elem, len);
    g_free(elem);
    virtio_notify(vdev, s->eventq);
    s->events_sent++;
    s->events_type[type]++;
    trace_virtio_tmem_event(s, virtio_tmem_event_names[type], pool, value,
                            nkeys);
    return true;
}

static uint32_t virtio_tmem_pool_id(VirtIOTmem *s, uint32_t slot)
{
    return (uint32_t)s->pool_gen[slot] << 16 | slot;
}

/* The driver slot of store pool @pool, or -1. */
static int64_t virtio_tmem_slot_of(VirtIOTmem *s, int pool)
{
    uint32_t i;

    for (i = 0; i < s->npools; i++) {
        if (s->pools[i] == pool) {
            return i;
        }
    }
    return -1;
}

/* One more page dropped from @pool, for its HINT.  evict_lock held. */
static void virtio_tmem_tally_evict(VirtIOTmem *s, int pool)
{
    uint32_t i;

    for (i = 0; i < s->nevict_tally; i++) {
        if (s->evict_tally[i].pool == pool) {
            s->evict_tally[i].pages++;
            return;
        }
    }
    if (i < VIRTIO_TMEM_EVICT_TALLY) {
        s->evict_tally[i] = (VirtIOTmemEvictTally) { pool, 1 };
        s->nevict_tally++;
    }
}

/*
 * Count the drops tallied since the last look toward each pool's HINT.
 * Pools the driver no longer holds are stale and go.  Lock.
 */
static void virtio_tmem_hint_evictions(VirtIOTmem *s)
{
    VirtIOTmemEvictTally tally[VIRTIO_TMEM_EVICT_TALLY];
    uint32_t i, n;
    int64_t slot;

    qemu_mutex_lock(&s->evict_lock);
    n = s->nevict_tally;
    memcpy(tally, s->evict_tally, n * sizeof(*tally));
    s->nevict_tally = 0;
    qemu_mutex_unlock(&s->evict_lock);
    for (i = 0; i < n; i++) {
        slot = virtio_tmem_slot_of(s, tally[i].pool);
        if (slot >= 0) {
            virtio_tmem_events_gets(s, slot, tally[i].pages, 0);
        }
    }
}

/*
 * Runs in whatever thread the store reclaims in, under a store lock.
 * A shared store reports other users' pools too: neither their tally
 * nor their reports map to a driver pool, and the bottom half drops
 * them.
 */
static void virtio_tmem_evict_cb(void *opaque, int pool,
                                 const struct tmem_key *key)
{
    VirtIOTmem *s = opaque;
    bool kick = false;

    qemu_mutex_lock(&s->evict_lock);
    virtio_tmem_tally_evict(s, pool);
    if (!s->evict_on) {
        /* the driver did not ask */
    } else if (s->nevict == VIRTIO_TMEM_EVICT_BUF) {
        s->evict_dropped++;
    } else {
        VirtIOTmemEvictReport *r = &s->evict[s->nevict++];

        r->pool = pool;
        r->index = key->index;
        memcpy(r->oid, key->oid, sizeof(r->oid));
        kick = s->nevict == 1;
    }
    qemu_mutex_unlock(&s->evict_lock);
    if (kick) {
        /* thread-safe; the bottom half takes whatever has piled up */
        qemu_bh_schedule(s->event_bh);
    }
}

/*
 * Send what the store reported, one EVICTED per run of up to
 * VIRTIO_TMEM_EVICT_KEYS keys of one pool.  Reports of pools the driver
 * no longer holds are stale and go.  Lock.
 */
static void virtio_tmem_send_evicted(VirtIOTmem *s)
{
    uint32_t n, i, done = 0;

    qemu_mutex_lock(&s->evict_lock);
    n = s->nevict;
    memcpy(s->evict_scratch, s->evict, n * sizeof(*s->evict));
    s->nevict = 0;
    qemu_mutex_unlock(&s->evict_lock);

    while (done < n) {
        int pool = s->evict_scratch[done].pool;
        int64_t slot = virtio_tmem_slot_of(s, pool);
        uint16_t nkeys = 0;
        uint32_t rest = done;

        /* this pool's reports, up to one event's worth; keep the rest */
        for (i = done; i < n; i++) {
            VirtIOTmemEvictReport *r = &s->evict_scratch[i];

            if (r->pool != pool || nkeys == VIRTIO_TMEM_EVICT_KEYS) {
                s->evict_scratch[rest++] = *r;
                continue;
            }
            s->evict_keys[nkeys] = (struct virtio_tmem_key) {
                .oid = { cpu_to_le64(r->oid[0]), cpu_to_le64(r->oid[1]),
                         cpu_to_le64(r->oid[2]) },
                .index = cpu_to_le32(r->index),
            };
            nkeys++;
        }
        /* the reports taken are now in evict_keys; the rest moved down */
        n = rest;
        if (slot < 0) {
            continue;
        }
        if (!virtio_tmem_send_event(s, VIRTIO_TMEM_EVENT_EVICTED,
                                    virtio_tmem_pool_id(s, slot), 0,
                                    s->evict_keys, nkeys)) {
            /* no buffer: these and the rest are dropped */
            s->events_lost++;
            s->evict_lost += nkeys + (n - done);
            return;
        }
        s->evicted_keys += nkeys;
    }
}

static bool virtio_tmem_driver_live(VirtIOTmem *s)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);

    return vdev->vm_running && (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
           !(vdev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/*
 * Look at the store: RECLAIM when it is over budget or spilling,
 * CLEANCACHE_ON once hint-retry passed; *@overp: over budget.  Returns
 * whether there is anything to keep watching.  Lock.
 */
static bool virtio_tmem_poll(VirtIOTmem *s, int64_t now, bool *overp)
{
    struct tmem_stats st;
    uint64_t used, budget, spills;
    bool over, spilling, watch = false;
    uint32_t i;

    tmem_stats(s->store, &st);
    used = st.v[TMEM_STAT_RAM_USED];
    budget = st.v[TMEM_STAT_BUDGET];
    spills = st.v[TMEM_STAT_SPILLS];
    over = used > budget;
    spilling = spills != s->spills_seen;
    s->spills_seen = spills;

    if ((over || spilling) && st.v[TMEM_STAT_PAGES_PERSISTENT]) {
        uint64_t want = st.v[TMEM_STAT_PAGES_SPILLED] +
                        (over ? DIV_ROUND_UP(used - budget, 4096) : 0);

        s->reclaim_value = MIN(want, st.v[TMEM_STAT_PAGES_PERSISTENT]);
        if (s->reclaim_value &&
            now - s->reclaim_last >= VIRTIO_TMEM_RECLAIM_MS) {
            s->reclaim_pending = true;
        }
    }
    if (over || spilling || s->reclaim_pending) {
        watch = true;
    }
    if (s->credits_wanted) {
        watch |= over;
    }
    for (i = 0; i < s->npools; i++) {
        VirtIOTmemPoolState *ps = &s->pstate[i];

        if (s->pools[i] < 0 || !ps->hint_off) {
            continue;
        }
        if (now - ps->off_since >= s->hint_retry_ms) {
            ps->hint_off = false;
            ps->hint_pending = true;
        } else {
            watch = true;
        }
    }
    *overp = over;
    return watch;
}

/* Main loop: work out what is owed and send it. */
static void virtio_tmem_event_bh(void *opaque)
{
    VirtIOTmem *s = opaque;
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    bool watch, over;
    uint32_t i;

    qemu_mutex_lock(&s->lock);
    if (!virtio_tmem_driver_live(s)) {
        qemu_mutex_unlock(&s->lock);
        return;
    }
    virtio_tmem_hint_evictions(s);
    watch = virtio_tmem_poll(s, now, &over);
    for (i = 0; i < s->npools; i++) {
        VirtIOTmemPoolState *ps = &s->pstate[i];
        uint32_t id = virtio_tmem_pool_id(s, i);

        if (s->pools[i] < 0) {
            continue;
        }
        if (ps->reset_pending) {
            if (!virtio_tmem_send_event(s, VIRTIO_TMEM_EVENT_RESET, id, 0,
                                        NULL, 0)) {
                goto out;
            }
            ps->reset_pending = false;
        }
        if (ps->hint_pending) {
            if (!virtio_tmem_send_event(s, VIRTIO_TMEM_EVENT_HINT, id,
                                        ps->hint_off ?
                                        VIRTIO_TMEM_HINT_CLEANCACHE_OFF :
                                        VIRTIO_TMEM_HINT_CLEANCACHE_ON,
                                        NULL, 0)) {
                goto out;
            }
            ps->hint_pending = false;
        }
    }
    if (s->credits_wanted && !over) {
        uint32_t grant = MIN(s->credits_wanted,
                             s->max_credits - s->credits);

        if (grant &&
            !virtio_tmem_send_event(s, VIRTIO_TMEM_EVENT_CREDITS, 0, grant,
                                    NULL, 0)) {
            goto out;
        }
        /* counted as granted once written (spec 6.8) */
        s->credits += grant;
        s->credits_wanted = 0;
    }
    if (s->reclaim_pending) {
        if (!virtio_tmem_send_event(s, VIRTIO_TMEM_EVENT_RECLAIM, 0,
                                    s->reclaim_value, NULL, 0)) {
            goto out;
        }
        s->reclaim_pending = false;
        s->reclaim_last = now;
    }
    virtio_tmem_send_evicted(s);
    if (watch) {
        timer_mod(s->event_timer, now + VIRTIO_TMEM_POLL_MS);
    }
out:
    /* with no buffer, the driver posting one brings us back */
    qemu_mutex_unlock(&s->lock);
}

static void virtio_tmem_event_tick(void *opaque)
{
    virtio_tmem_event_bh(opaque);
}

void virtio_tmem_events_kick(VirtIOTmem *s)
{
    qemu_bh_schedule(s->event_bh);
}

void virtio_tmem_events_evict_enable(VirtIOTmem *s, bool on)
{
    qemu_mutex_lock(&s->evict_lock);
    s->evict_on = on;
    if (!on) {
        s->nevict = 0;
    }
    qemu_mutex_unlock(&s->evict_lock);
}

void virtio_tmem_events_gets(VirtIOTmem *s, uint32_t slot, uint32_t gets,
                             uint32_t hits)
{
    VirtIOTmemPoolState *ps = &s->pstate[slot];
    bool off;

    if (!s->hint_window ||
        !virtio_vdev_has_feature(VIRTIO_DEVICE(s), VIRTIO_TMEM_F_EPHEMERAL)) {
        return;
    }
    /* a window is never longer: the sums cannot wrap */
    gets = MIN(gets, VIRTIO_TMEM_MAX_HINT_WINDOW);
    ps->win_gets += gets;
    ps->win_hits += MIN(hits, gets);
    if (ps->win_gets < s->hint_window) {
        return;
    }
    if (!ps->hint_off) {
        off = ps->win_hits * VIRTIO_TMEM_HINT_OFF_DIV < ps->win_gets;
    } else {
        off = ps->win_hits * VIRTIO_TMEM_HINT_ON_DIV < ps->win_gets;
    }
    trace_virtio_tmem_hint_window(s, slot, ps->win_gets, ps->win_hits, off);
    if (off != ps->hint_off) {
        ps->hint_off = off;
        ps->hint_pending = true;
        ps->off_since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        qemu_bh_schedule(s->event_bh);
    }
    ps->win_gets = ps->win_hits = 0;
}

void virtio_tmem_events_credits(VirtIOTmem *s, uint32_t wanted,
                                uint32_t granted, bool over_budget)
{
    if (over_budget && wanted > granted) {
        s->credits_wanted = MAX(s->credits_wanted, wanted - granted);
        qemu_bh_schedule(s->event_bh);
    }
}

void virtio_tmem_events_budget(VirtIOTmem *s, uint64_t old, uint64_t bytes)
{
    uint32_t i;

    if (bytes > old) {
        /* more room: every pool told to stop caching may try again */
        for (i = 0; s->pstate && i < s->npools; i++) {
            if (s->pools[i] >= 0 && s->pstate[i].hint_off) {
                s->pstate[i].hint_off = false;
                s->pstate[i].hint_pending = true;
            }
        }
    }
    if (s->event_bh) {
        qemu_bh_schedule(s->event_bh);
    }
}

void virtio_tmem_events_reset(VirtIOTmem *s)
{
    memset(s->pstate, 0, s->max_pools * sizeof(*s->pstate));
    s->credits_wanted = 0;
    s->reclaim_pending = false;
    s->reclaim_value = 0;
    s->reclaim_last = 0;
    timer_del(s->event_timer);
    virtio_tmem_events_evict_enable(s, false);
}

void virtio_tmem_events_init(VirtIOTmem *s)
{
    qemu_mutex_init(&s->evict_lock);
    s->pstate = g_new0(VirtIOTmemPoolState, s->max_pools);
    s->evict = g_new(VirtIOTmemEvictReport, VIRTIO_TMEM_EVICT_BUF);
    s->evict_scratch = g_new(VirtIOTmemEvictReport, VIRTIO_TMEM_EVICT_BUF);
    s->evict_keys = g_new(struct virtio_tmem_key, VIRTIO_TMEM_EVICT_KEYS);
    s->event_bh = qemu_bh_new_guarded(virtio_tmem_event_bh, s,
                                      &DEVICE(s)->mem_reentrancy_guard);
    s->event_timer = timer_new_ms(QEMU_CLOCK_REALTIME,
                                  virtio_tmem_event_tick, s);
    /* the store tells its users once the device attaches (realize) */
    s->store_user.evict = virtio_tmem_evict_cb;
}

void virtio_tmem_events_cleanup(VirtIOTmem *s)
{
    /* unrealize detached from the store: no evict callback runs now */
    timer_free(s->event_timer);
    qemu_bh_delete(s->event_bh);
    g_free(s->pstate);
    g_free(s->evict);
    g_free(s->evict_scratch);
    g_free(s->evict_keys);
    qemu_mutex_destroy(&s->evict_lock);
}
