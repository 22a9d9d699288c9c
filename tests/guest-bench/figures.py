"""From raw runs (guestrun.py) to figures: one run's, then summaries.

Per run, every figure is a difference between the samples at the
workload's begin and end (host side) or between the guest's snapshots
just outside them (the driver's counters), except peaks and gauges.

Exits per page come from the driver's counters (guest-driver/stats.c):
kicks_<class> and interrupts_<class> count each notification against
every class of op it carried.  The driver does not split gets by outcome,
so get-hit and get-miss costs are derived: a miss the presence filter
answers (cleancache_misses_no_exit) and a hit served from prefetched pages
(prefetch_hits) cost no exit; every other get, hit or miss, is one
synchronous op, so they share kicks_cleancache_get equally.
"""
import statistics

import guestlib as gl

MiB = 1 << 20
PAGE = 4096

# Driver stats that are gauges, not counters: no deltas (batch is kept as is).
GAUGES = ("frontswap_kept", "device", "credits", "queues", "batch", "prefetch_pages")
# Synchronous ops whose latency the bench reports (guest-driver/latency.c
# classes) with the op of op_costs whose notifications they pay.
SYNC_OPS = (("frontswap_load", "frontswap_load"), ("cleancache_get", "cleancache_get_hit"))
# The ops of the exits-per-page table, in the order it shows them.
OPS = ("frontswap_store", "frontswap_load", "cleancache_put", "cleancache_get_hit",
       "cleancache_get_miss", "flush")


def _delta(a, b, key):
    if not a or not b or key not in a or key not in b:
        return None
    return b[key] - a[key]


def ratio(num, den):
    return num / den if num is not None and den else None


def guest_deltas(run):
    """The driver's counters over the workload (every counter its stats
    file has, so new ones are kept too), or {} without the driver."""
    g, w = run.guest, run.wl.name
    a, b = g.stats.get(f"{w}.before"), g.stats.get(f"{w}.after")
    if not a or not b:
        return {}
    out = {k: b[k] - a[k] for k in b if k in a and k not in GAUGES}
    out["batch"] = b.get("batch")         # what the driver runs with
    out["prefetch_pages"] = b.get("prefetch_pages")   # held at the end
    return out


def op_costs(d):
    """{op: {"pages", "kicks", "interrupts"}} from summed driver deltas d;
    gets split into hits and misses as the module docstring says."""
    def get(k):
        return d.get(k) or 0
    out = {}
    for op, pages in (("frontswap_store", get("frontswap_stores")),
                      ("frontswap_load", get("frontswap_loads")),
                      ("cleancache_put", get("cleancache_puts")),
                      ("flush", get("cleancache_invalidates") + get("frontswap_invalidates"))):
        out[op] = {"pages": pages, "kicks": get(f"kicks_{op}"),
                   "interrupts": get(f"interrupts_{op}")}
    gets, hits, misses = get("cleancache_gets"), get("cleancache_hits"), get("cleancache_misses")
    exiting = gets - get("cleancache_misses_no_exit") - get("prefetch_hits")
    k, i = get("kicks_cleancache_get"), get("interrupts_cleancache_get")
    miss_exiting = misses - get("cleancache_misses_no_exit")
    for op, n, n_exit in (("cleancache_get_hit", hits, hits - get("prefetch_hits")),
                          ("cleancache_get_miss", misses, miss_exiting)):
        share = n_exit / exiting if exiting > 0 else 0
        out[op] = {"pages": n, "kicks": k * share, "interrupts": i * share,
                   "exiting": n_exit}
    for v in out.values():
        v["kicks_per_page"] = ratio(v["kicks"], v["pages"])
        v["interrupts_per_page"] = ratio(v["interrupts"], v["pages"])
    return out


def run_figures(run):
    """The figures of one run (JSON-ready)."""
    g, s0, s1 = run.guest, run.samples.get("begin"), run.samples.get("end")
    rec = {"config": run.cfg.key, "workload": run.wl.name, "rep": run.rep,
           "status": "FAIL" if run.failures else "ok", "failures": run.failures,
           "qemu_seconds": round(g.seconds, 2) if g else None}
    if run.failures:
        rec["console_tail"] = g.tail(40) if g else []
        rec["console"] = g.console_path if g else None
    if not s0 or not s1:
        return rec
    prog = g.results.get(run.wl.cmd.split()[0], {})
    ru = g.results.get("rusage", {})
    rec["seconds"] = round(run.t_end - run.t_begin, 3)
    rec["guest_seconds"] = float(prog["seconds"]) if "seconds" in prog else None
    rec["bytes_verified"] = int(prog.get("bytes_verified", 0))
    rec["corruptions"] = int(prog.get("corruptions", -1))
    rec["major_faults"] = int(ru["majflt"]) if "majflt" in ru else None
    rec["minor_faults"] = int(ru["minflt"]) if "minflt" in ru else None

    p0, p1 = s0["process"], s1["process"]
    t0, t1 = s0["tmem"], s1["tmem"]
    cache = s1.get("host_cache", {})
    cache_bytes = sum(v or 0 for v in cache.values())
    rss_peak = max(run.probe.peak_rss_kb, p1["hwm_kb"]) * 1024
    rec["host"] = {
        "qemu_rss_peak": rss_peak,
        "qemu_rss_end": p1["rss_kb"] * 1024,
        "tmem_ram_end": t1.get("ram_used"),
        "tmem_ram_peak": run.probe.peak_tmem_ram if t1 else None,
        "image_page_cache": cache,
        # the store is allocated inside QEMU, so its bytes are already in
        # the RSS; the host page cache of the images is not
        "host_ram": rss_peak + cache_bytes,
        "qemu_cpu_seconds": round(p1["cpu_s"] - p0["cpu_s"], 2),
    }
    disk = {}
    for dev, b in s1["blockstats"].items():
        a = s0["blockstats"].get(dev, {})
        disk[dev] = {k: v - a.get(k, 0) for k, v in b.items()}
    rec["disk"] = disk
    rec["host_storage"] = {"read_bytes": p1["read_bytes"] - p0["read_bytes"],
                           "write_bytes": p1["write_bytes"] - p0["write_bytes"]}

    # notifications per page, over every virtio device
    kicks = s1["trace"]["kicks"] - s0["trace"]["kicks"]
    irqs = s1["trace"]["interrupts"] - s0["trace"]["interrupts"]
    tmem_pages = _delta(t0, t1, "pages") or 0
    tmem_kicks = _delta(t0, t1, "kicks") or 0
    tmem_irqs = _delta(t0, t1, "interrupts") or 0
    blk_pages = sum(d["rd_bytes"] + d["wr_bytes"] for d in disk.values()) // PAGE
    z0, z1 = g.stats.get(f"zram.{run.wl.name}.before"), g.stats.get(f"zram.{run.wl.name}.after")
    zram_pages = 0
    if z0 and z1:
        zram_pages = ((_delta(z0, z1, "sectors_read") or 0) +
                      (_delta(z0, z1, "sectors_written") or 0)) * 512 // PAGE
        rec["zram"] = {"orig_data_size": z1.get("orig_data_size"),
                       "compr_data_size": z1.get("compr_data_size"),
                       "mem_used_max": z1.get("mem_used_max"),
                       "pages_moved": zram_pages}
    rec["notify"] = notify(kicks, irqs, tmem_kicks, tmem_irqs, tmem_pages, blk_pages,
                           zram_pages)
    d = guest_deltas(run)
    if d:
        rec["driver"] = d
        rec["ops"] = op_costs(d)
        rec["tmem_host"] = {k: _delta(t0, t1, k) for k in (
            "puts", "get_hits_ram", "get_misses", "evictions", "spills",
            "put_rejected_nospace", "kicks", "interrupts", "pages")}
        # at the store's peak: at the end the workload has exited, and its
        # swap pages with it
        rec["tmem_host"]["compression_ratio_at_peak"] = run.probe.peak_ratio
    lat = g.latency(f"{run.wl.name}.before", f"{run.wl.name}.after")
    if lat is not None:
        rec["latency_hist"] = {c: {str(lo): n for lo, n in h.items()} for c, h in lat.items()}
    return rec


def sync_figures(good):
    """Per synchronous op, over the passing runs good: latency percentiles
    of their merged histograms, and median notifications per op."""
    out = {}
    for cls, op in SYNC_OPS:
        hist = {}
        for r in good:
            for lo, n in r.get("latency_hist", {}).get(cls, {}).items():
                hist[int(lo)] = hist.get(int(lo), 0) + n
        ops = [r["ops"][op] for r in good if "ops" in r and r["ops"][op]["pages"]]
        if not hist and not ops:
            continue
        out[cls] = {"timed_ops": sum(hist.values()),
                    "p50_ns": gl.percentile(hist, 0.5), "p99_ns": gl.percentile(hist, 0.99),
                    "kicks_per_op": median([o["kicks_per_page"] for o in ops]),
                    "interrupts_per_op": median([o["interrupts_per_page"] for o in ops])}
    return out


def prefetch_figures(good):
    """Prefetch (guest-driver/prefetch.c), medians over the passing runs:
    the share of cleancache hits and of frontswap loads served from
    prefetched pages, the share of the neighbour pages asked for that were
    used (both kinds), and the pages the cache held at the end."""
    ds = [r["driver"] for r in good if r.get("driver")]
    if not ds or not any(d.get("prefetch_asked") for d in ds):
        return None
    return {"hit_share": median([ratio(d.get("prefetch_hits"), d.get("cleancache_hits"))
                                 for d in ds]),
            "load_share": median([ratio(d.get("frontswap_loads_prefetched"),
                                        d.get("frontswap_loads")) for d in ds]),
            "used_share": median([ratio((d.get("prefetch_hits") or 0) +
                                        (d.get("frontswap_loads_prefetched") or 0),
                                        d.get("prefetch_asked")) for d in ds]),
            "pages_end": median([d.get("prefetch_pages") for d in ds])}


# The driver's timed paths (guest-driver/profile.c), in the order shown.
PROFILE_PATHS = ("cleancache_put", "cleancache_get", "frontswap_store", "frontswap_load",
                 "page_copy", "send", "interrupt")


def profile_figures(good):
    """The driver's own profile (debugfs profile on), medians over the
    passing runs of each path's calls, nanoseconds per call and seconds
    in all; None if the runs did not profile."""
    ds = [r["driver"] for r in good if r.get("driver")]
    if not any(d.get(f"profile_{p}") for d in ds for p in PROFILE_PATHS):
        return None
    out = {}
    for p in PROFILE_PATHS:
        calls = [d.get(f"profile_{p}") for d in ds]
        ns = [d.get(f"profile_ns_{p}") for d in ds]
        out[p] = {"calls": median(calls),
                  "ns_per_call": median([ratio(n, c) for n, c in zip(ns, calls)]),
                  "seconds": median([n / 1e9 if n is not None else None for n in ns])}
    return out


def notify(trace_kicks, trace_irqs, tmem_kicks, tmem_irqs, tmem_pages, blk_pages,
           zram_pages):
    """Notifications over every virtio device, and per page moved.  The
    trace has every device's interrupts, and the kicks of every notifier
    that QEMU's own handlers serve but virtio-tmem's (probe.py leaves its
    vdev out); virtio-tmem counts every kick where it reads one, from an
    ioeventfd or in the notifying vCPU's thread (qemu-device/virtio-tmem.c),
    so its kicks are its own counter's."""
    kicks = trace_kicks + tmem_kicks
    pages = tmem_pages + blk_pages + zram_pages
    return {
        "kicks": kicks, "interrupts": trace_irqs, "kicks_trace": trace_kicks,
        "kicks_tmem": tmem_kicks, "interrupts_tmem": tmem_irqs,
        "kicks_blk": trace_kicks, "interrupts_blk": trace_irqs - tmem_irqs,
        "pages_tmem": tmem_pages, "pages_blk": blk_pages, "pages_zram": zram_pages,
        "pages": pages,
        "kicks_per_page": ratio(kicks, pages), "interrupts_per_page": ratio(trace_irqs, pages),
    }


def renotify(rec):
    """A record made before notify() added the device's own kicks: its
    "kicks" are the trace's alone.  Recompute from what it kept."""
    n = rec.get("notify")
    if n and "kicks_trace" not in n:
        rec["notify"] = notify(n["kicks"], n["interrupts"], n["kicks_tmem"],
                               n["interrupts_tmem"], n["pages_tmem"], n["pages_blk"],
                               n["pages_zram"])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(records, reference):
    """Per (config, workload): medians over the reps that passed, and the
    time ratio to the reference configuration's median."""
    groups = {}
    for r in records:
        groups.setdefault((r["config"], r["workload"]), []).append(r)
    out = {}
    for (cfg, wl), rs in groups.items():
        good = [r for r in rs if r["status"] == "ok"]
        m = {"runs": len(rs), "ok": len(good)}
        if good:
            t = [r["seconds"] for r in good]
            m.update({
                "seconds": median(t), "seconds_min": min(t), "seconds_max": max(t),
                "guest_seconds": median([r["guest_seconds"] for r in good]),
                "major_faults": median([r["major_faults"] for r in good]),
                "host_ram": median([r["host"]["host_ram"] for r in good]),
                "qemu_rss_peak": median([r["host"]["qemu_rss_peak"] for r in good]),
                "tmem_ram_peak": median([r["host"]["tmem_ram_peak"] for r in good]),
                "compression_ratio": median([r.get("tmem_host", {}).get(
                    "compression_ratio_at_peak") for r in good]),
                "image_page_cache": median([sum(v or 0 for v in
                                                r["host"]["image_page_cache"].values())
                                            for r in good]),
                "qemu_cpu_seconds": median([r["host"]["qemu_cpu_seconds"] for r in good]),
                "disk_read": median([sum(d["rd_bytes"] for d in r["disk"].values())
                                     for r in good]),
                "disk_write": median([sum(d["wr_bytes"] for d in r["disk"].values())
                                      for r in good]),
                "host_storage_read": median([r["host_storage"]["read_bytes"] for r in good]),
                "host_storage_write": median([r["host_storage"]["write_bytes"] for r in good]),
                "kicks_per_page": median([r["notify"]["kicks_per_page"] for r in good]),
                "interrupts_per_page": median([r["notify"]["interrupts_per_page"]
                                               for r in good]),
                "pages_moved": median([r["notify"]["pages"] for r in good]),
                "kicks": median([r["notify"]["kicks"] for r in good]),
                "kicks_tmem": median([r["notify"]["kicks_tmem"] for r in good]),
                "pages_tmem": median([r["notify"]["pages_tmem"] for r in good]),
                "sync": sync_figures(good),
                "prefetch": prefetch_figures(good),
                "profile": profile_figures(good),
            })
        out.setdefault(cfg, {})[wl] = m
    for cfg, wls in out.items():
        for wl, m in wls.items():
            ref = out.get(reference, {}).get(wl, {}).get("seconds")
            m["time_ratio"] = ratio(m.get("seconds"), ref)
    return out


def exits_per_page(records, configs, workloads):
    """Per configuration of the batch sweep and per workload: op costs
    from the driver counters summed over the passing reps.  Per workload,
    because the op mix changes the cost: a cleancache get is synchronous
    and sends the open batch with it, so in a workload that reads, puts
    ride on the gets' notifications (which count for both classes)."""
    out = {}
    for cfg in configs:
        if not cfg.sweep:
            continue
        per_wl, batch = {}, None
        for w in workloads:
            total = {}
            for r in records:
                if (r["config"], r["workload"]) != (cfg.key, w.name) or \
                        r["status"] != "ok" or "driver" not in r:
                    continue
                for k, v in r["driver"].items():
                    if k == "prefetch_pages":
                        continue
                    if k == "batch":
                        batch = v
                    elif v is not None:
                        total[k] = total.get(k, 0) + v
            if total:
                per_wl[w.name] = {"ops": op_costs(total), "counters": total}
        if per_wl:
            # sync mode is one op per request whatever batch the driver holds
            size = 1 if cfg.module == "sync=1" else batch
            out[cfg.key] = {"batch": size, "driver_batch": batch, "workloads": per_wl}
    return out


# The op each workload is there to measure, for the plot: (op, workload).
PRIMARY = (("frontswap_store", "anon"), ("frontswap_load", "anon"), ("flush", "anon"),
           ("cleancache_put", "stream"), ("cleancache_get_miss", "stream"),
           ("cleancache_put", "reread"), ("cleancache_get_hit", "reread"),
           ("cleancache_get_miss", "reread"))
