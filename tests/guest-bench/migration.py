#!/usr/bin/python3
"""Migration benchmark (issue 15): live migration of a guest whose swapped
pages are in the device's store, at two store sizes.

    tests/guest-bench/migration.py [--reps N] [--sizes 64,512] [--out PATH]
                                   [--timeout S]

For each size and repetition a fresh 128 MiB guest (the plain test kernel
and the driver, tests/e2e/guestlib.py, under QEMU TCG) runs swap-verify
with a region of the size plus what stays resident (region_slack_mb), so
that about `size` MiB of anonymous memory is swapped out through
frontswap into the store (budget 1G, no spill file: every page is in host
RAM, compressed).  At the program's sync point after its fill the guest
waits, idle, and the host:

1. waits until the store stops changing, and reads its size
   (bytes_persistent: uncompressed page bytes; bytes_compressed and
   ram_used: what the host holds);
2. live-migrates the guest to a second QEMU process started with
   -incoming unix:PATH, with max-bandwidth 10 GiB/s (the unix socket, not
   the cap, is the limit) and QEMU's default downtime-limit (300 ms), and
   takes from the source's query-migrate: downtime, total-time and
   ram.transferred.  ram.transferred is every byte of the stream, device
   sections included (QEMU 10 counts the bytes written to the migration
   file: migration_transferred_bytes()); ram.precopy-bytes +
   ram.downtime-bytes are the guest RAM pages alone, so the rest is the
   device state, almost all of it the store's pages;
3. migrates once more, to a file (file:PATH), which a third process loads
   (-incoming defer, migrate-incoming): the file's size is the exact size
   of a stream, to check ram.transferred against;
4. lets the guest go on: it reads every page of its region back and checks
   every byte (corruptions = pages that differ: 0 expected), having gone
   through both migrations.

Only step 2's figures are the measurement; a repetition whose migration or
verification fails is reported and left out of the medians, and the script
exits 1.  Writes build/bench/migration.json (or --out).  QEMU is $QEMU if
set, else what scripts/build-qemu.sh prints.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import guestlib as gl  # noqa: E402

MiB = 1 << 20
# Of a swap-verify region, what a 128 MiB guest keeps resident once it has
# filled it and waits: about 76 MiB in the runs here.  region = size +
# slack(size): that, and 1/32 of the size as a margin, so that the store
# holds at least the size (68.4 MiB for 64 and 521.9 for 512 with 80 alone).
def region_slack_mb(size_mb):
    return 80 + size_mb // 32
BUDGET = "1G"               # the whole store in host RAM
PARAMS = {"max-bandwidth": 10 << 30}     # bytes/s; downtime-limit: QEMU's 300 ms
STATS = "/sys/kernel/debug/virtio_tmem/stats"


def log(msg):
    print(msg, flush=True)


def machine(qemu):
    cpu = gl.cpu_model()
    qv = subprocess.run([qemu, "-version"], stdout=subprocess.PIPE, text=True).stdout
    h = hashlib.sha256()
    with open(qemu, "rb") as fh:
        for blk in iter(lambda: fh.read(1 << 20), b""):
            h.update(blk)
    return {"cpu": cpu, "cores": os.cpu_count(), "host_kernel": platform.release(),
            "dev_kvm": os.path.exists("/dev/kvm"),
            "accelerator": "TCG (QEMU's default; -accel is not given; each run's "
                           "query-kvm is in its record)",
            "qemu": qemu, "qemu_version": qv.splitlines()[0].strip() if qv else None,
            "qemu_sha256": h.hexdigest()}


def wait_quiet(g, timeout=30):
    """Host stats once pages_persistent and the put count held still for
    a second (the guest's last batches and kswapd are done)."""
    prev, t_end = None, time.monotonic() + timeout
    while True:
        s = g.host_stats()
        key = (s.get("pages_persistent"), s.get("operations.put.pages"))
        if key == prev or time.monotonic() > t_end:
            return s
        prev = key
        time.sleep(1.0)


def one_run(ctx, size_mb, rep):
    """One guest: fill, migrate over a unix socket (measured), migrate
    through a file (stream size), verify.  Returns the run's record."""
    region = size_mb + region_slack_mb(size_mb)
    wd = os.path.join(ctx.out, f"{size_mb}M-{rep}")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    drives = gl.make_disks(wd, swap_mb=region + 128, data_mb=64)
    seed = zlib.crc32(f"migration-{size_mb}-{rep}".encode())
    plan = ("disks_up\nmodule_load\n"
            f"run mig swap-verify --mb {region} --passes 2 --seed {seed} "
            f"--stats {STATS} --sync\n")
    initrd = os.path.join(wd, "initrd.cpio")
    gl.make_initrd(initrd, plan, ctx.programs, ctx.module)
    g = gl.Guest(f"migration-{size_mb}M-{rep}", wd, ctx.qemu, ctx.kernel, initrd, drives,
                 tmem=f"budget={BUDGET}", timeout=ctx.timeout, console="socket")
    rec = {"size_mb": size_mb, "rep": rep, "region_mb": region, "failures": []}
    stream = os.path.join(wd, "stream.mig")

    def on_sync(g, name, n):
        if name != "pass0":
            return ["go"]
        st = wait_quiet(g)
        rec["stored"] = st
        rec["kvm"] = g.qmp.cmd("query-kvm")     # {"enabled": false}: TCG
        m = g.migrate(params=PARAMS)
        rec["live"] = m
        if m["status"] != "completed" or m["error"]:
            rec["failures"].append(f"live migration: {m['status']}: {m['error']}")
            return ["go"]
        # the file hop: the exact size of a stream, and one more load
        f = g.migrate(params=PARAMS, via_file=stream)
        rec["file"] = f
        if f["status"] != "completed" or f["error"]:
            rec["failures"].append(f"migration through a file: {f['status']}: {f['error']}")
        if os.path.exists(stream):
            os.unlink(stream)
        return ["go"]

    try:
        g.run(on_sync)
    finally:
        if os.path.exists(stream):
            os.unlink(stream)
    rec["guest_seconds"] = round(g.seconds, 1)
    check(g, rec, region)
    with open(os.path.join(wd, "run.json"), "w") as fh:
        json.dump(rec, fh, indent=1, default=str)
    return g, rec


def check(g, rec, region):
    """Everything that makes the run's figures worthless, as failures;
    and the record's figures."""
    f = rec["failures"]
    if g.error or not g.done:
        f.append(g.error or "the guest did not finish")
    if (rec.get("kvm") or {}).get("enabled", False):
        f.append("the guest ran under KVM, not TCG")
    if g.init_result("module")[0] != "loaded":
        f.append(f"module={g.init_result('module')[0]}")
    if g.ends.get("mig") != 0:
        f.append(f"swap-verify exited {g.ends.get('mig')}")
    r = g.results.get("swap-verify", {})
    bv, bad = r.get("bytes_verified"), r.get("corruptions")
    rec["bytes_verified"] = int(bv) if bv and bv.isdigit() else None
    rec["corruptions"] = int(bad) if bad and bad.isdigit() else None
    if rec["corruptions"] != 0 or g.corrupt:
        f.append(f"CORRUPTION: corruptions={bad}; " + "; ".join(g.corrupt[:3]))
    if rec["bytes_verified"] != region * MiB:
        f.append(f"bytes_verified={bv}, expected {region * MiB}")
    last = len(g.migrations) and g.migrations[-1]["k"]
    if not any("E2E-RESULT prog=swap-verify" in ln for ln in g.lines_of(last)):
        f.append(f"the result did not come from the last process ({last})")
    splats = g.splats()
    if splats:
        f.append("kernel report: " + "; ".join(splats[:3]))
    st = rec.get("stored") or {}
    m = rec.get("live") or {}
    info = m.get("info") or {}
    ram = info.get("ram") or {}
    sa, da = m.get("src_after") or {}, m.get("dst_arrival") or {}
    if st.get("pages_spilled", 0) or st.get("put_rejected_nospace", 0):
        f.append(f"pages not in host RAM: pages_spilled={st.get('pages_spilled')}, "
                 f"put_rejected_nospace={st.get('put_rejected_nospace')}")
    if m and da.get("pages_persistent") != sa.get("pages_persistent"):
        f.append(f"pages_persistent {sa.get('pages_persistent')} at the source, "
                 f"{da.get('pages_persistent')} arrived")
    for what, mm in (("live", m), ("file", rec.get("file") or {})):
        if mm and mm.get("src_exit") != 0:
            f.append(f"{what} migration: the source exited {mm.get('src_exit')} after quit")
    ram_bytes = sum(ram.get(k, 0) for k in ("precopy-bytes", "downtime-bytes",
                                            "postcopy-bytes"))
    fm = rec.get("file") or {}
    rec.update({
        "stored_bytes": sa.get("bytes_persistent", st.get("bytes_persistent")),
        "stored_pages": sa.get("pages_persistent", st.get("pages_persistent")),
        "compressed_bytes": sa.get("bytes_compressed", st.get("bytes_compressed")),
        "host_ram_used": sa.get("ram_used", st.get("ram_used")),
        "arrived_bytes": da.get("bytes_persistent"),
        "downtime_ms": info.get("downtime"),
        "total_ms": info.get("total-time"),
        "setup_ms": info.get("setup-time"),
        "bytes_sent": ram.get("transferred"),
        "ram_bytes": ram_bytes,
        "other_bytes": ram.get("transferred") - ram_bytes
        if ram.get("transferred") is not None else None,
        "downtime_ram_bytes": ram.get("downtime-bytes"),
        "mbps": ram.get("mbps"),
        "source_exit": m.get("src_exit"),
        "file_stream_bytes": fm.get("file_bytes"),
        "file_transferred_bytes": ((fm.get("info") or {}).get("ram") or {}).get("transferred"),
        "file_downtime_ms": (fm.get("info") or {}).get("downtime"),
    })
    rec["stored_at_least_size"] = (rec["stored_bytes"] or 0) >= rec["size_mb"] * MiB


def median(recs, key):
    vals = [r[key] for r in recs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(recs):
    ok = [r for r in recs if not r["failures"]]
    keys = ("stored_bytes", "stored_pages", "compressed_bytes", "host_ram_used",
            "downtime_ms", "total_ms", "setup_ms", "bytes_sent", "ram_bytes", "other_bytes",
            "downtime_ram_bytes", "file_stream_bytes")
    out = {"reps_ok": len(ok), "reps_failed": len(recs) - len(ok),
           "median": {k: median(ok, k) for k in keys},
           "min": {k: min((r[k] for r in ok if r.get(k) is not None), default=None)
                   for k in ("downtime_ms", "total_ms")},
           "max": {k: max((r[k] for r in ok if r.get(k) is not None), default=None)
                   for k in ("downtime_ms", "total_ms")},
           "corruptions": sum(r["corruptions"] or 0 for r in recs),
           "bytes_verified": sum(r["bytes_verified"] or 0 for r in recs)}
    return out


def table(data):
    """The results as a markdown table (docs/benchmarks.md, "Migration")."""
    rows = ["| store (uncompressed) | compressed | downtime ms (median; min–max) | "
            "total ms (median; min–max) | bytes sent | of them RAM | other (device) | "
            "stream file | corruptions |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for size, s in data["sizes"].items():
        m, lo, hi = s["median"], s["min"], s["max"]

        def mib(v):
            return "–" if v is None else f"{v / MiB:.1f} MiB"
        rows.append(f"| {mib(m['stored_bytes'])} | {mib(m['compressed_bytes'])} | "
                    f"{m['downtime_ms']}; {lo['downtime_ms']}–{hi['downtime_ms']} | "
                    f"{m['total_ms']}; {lo['total_ms']}–{hi['total_ms']} | "
                    f"{mib(m['bytes_sent'])} | {mib(m['ram_bytes'])} | "
                    f"{mib(m['other_bytes'])} | {mib(m['file_stream_bytes'])} | "
                    f"{s['corruptions']} in {s['reps_ok'] + s['reps_failed']} runs |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="guests per size (default 3)")
    ap.add_argument("--sizes", default="64,512",
                    help="MiB of swapped pages to store, comma-separated (default 64,512)")
    ap.add_argument("--out", default=os.path.join(gl.BUILD, "bench", "migration.json"))
    ap.add_argument("--timeout", type=int, default=600, help="seconds per guest")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    t_start = time.monotonic()

    class Ctx:
        pass
    ctx = Ctx()
    ctx.out = os.path.join(gl.BUILD, "bench", "migration")
    ctx.timeout = args.timeout
    os.makedirs(ctx.out, exist_ok=True)
    commit = gl.run(["git", "rev-parse", "--short", "HEAD"], "git rev-parse")
    log("migration-bench: preparing (QEMU, kernel and module are cached builds)")
    gl.ensure_packages()
    ctx.qemu = gl.find_qemu(show=True)
    ctx.kernel = gl.find_kernel("plain", show=True)
    ctx.module, why = gl.find_module("plain", show=True)
    if ctx.module is None:
        log(f"migration-bench: NO MODULE ({why}): nothing would reach the store")
        return 1
    ctx.programs = gl.build_programs(os.path.join(ctx.out, "bin"))
    p = subprocess.run([ctx.programs["swap-verify"], "--mb", "8", "--passes", "2",
                        "--inject-corruption"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    if p.returncode != 1:
        log(f"migration-bench: negative control: swap-verify --inject-corruption "
            f"exited {p.returncode}, not 1")
        return 1

    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit, "machine": machine(ctx.qemu),
        "guest_kernel": ctx.kernel, "module": ctx.module,
        "module_sha256": hashlib.sha256(open(ctx.module, "rb").read()).hexdigest(),
        "guest_ram_bytes": gl.GUEST_MB * MiB, "guest_vcpus": 1,
        "device": f"virtio-tmem,budget={BUDGET} (no spill file)",
        "migrate_parameters": {**PARAMS, "downtime-limit": "QEMU default (300 ms)"},
        "transport": "unix socket (-incoming unix:PATH); then one hop through file:PATH",
        "workload": "swap-verify --passes 2 --sync, region = size + 80 MiB + size/32; "
                    "migrated at its sync point after the fill (the guest idle), then "
                    "pass 1 reads back and checks every page",
        "fields": {
            "stored_bytes": "the source's bytes_persistent once migrated: uncompressed "
                            "page bytes in the store",
            "compressed_bytes": "bytes_compressed (LZ4 output of the pages in RAM)",
            "host_ram_used": "ram_used: the store's RAM, index included",
            "downtime_ms": "query-migrate downtime (the source's)",
            "total_ms": "query-migrate total-time",
            "bytes_sent": "query-migrate ram.transferred: every byte of the stream",
            "ram_bytes": "ram.precopy-bytes + downtime-bytes + postcopy-bytes: guest "
                         "RAM pages alone",
            "other_bytes": "bytes_sent - ram_bytes: device state, the store's pages first",
            "file_stream_bytes": "size of the same guest's stream written to a file "
                                 "(second hop; compare with that hop's "
                                 "file_transferred_bytes)",
            "corruptions": "pages swap-verify found wrong after both hops (0 expected)",
        },
        "sizes": {}, "runs": [],
    }
    failures = 0
    plan = [(s, r) for r in range(1, args.reps + 1) for s in sizes]
    for i, (size, rep) in enumerate(plan, 1):
        el = time.monotonic() - t_start
        head = (f"[{i}/{len(plan)} {int(el) // 60:2}:{int(el) % 60:02}] "
                f"{size} MiB rep {rep}")
        print(head + " ...", end="", flush=True)
        g = None
        try:
            g, rec = one_run(ctx, size, rep)
        except (RuntimeError, OSError, gl.QMPError) as e:
            rec = {"size_mb": size, "rep": rep, "failures": [f"{type(e).__name__}: {e}"],
                   "corruptions": None, "bytes_verified": None}
        for k in ("stored", "live", "file"):      # raw records: kept in the per-run dir
            rec.pop(k, None)
        data["runs"].append(rec)
        if rec["failures"]:
            failures += 1
            print(" FAILED", flush=True)
            for fl in rec["failures"]:
                log(f"    {fl}")
            if g is not None:
                log(f"    guest console (last lines of {g.console_path}):")
                for ln in g.tail(30):
                    log(f"    | {ln}")
            continue

        def mib(v):
            return f"{v / MiB:.1f}" if v is not None else "?"
        print(f" stored {mib(rec['stored_bytes'])} MiB ({mib(rec['compressed_bytes'])} "
              f"compressed), downtime {rec['downtime_ms']} ms, total {rec['total_ms']} ms, "
              f"sent {mib(rec['bytes_sent'])} MiB (RAM {mib(rec['ram_bytes'])}, other "
              f"{mib(rec['other_bytes'])}), stream file {mib(rec['file_stream_bytes'])} MiB "
              f"(transferred {mib(rec['file_transferred_bytes'])}), "
              f"{rec['corruptions']} corruptions ({rec['guest_seconds']:.0f} s)", flush=True)
        if not rec["stored_at_least_size"]:
            log(f"    note: the store held less than {size} MiB (region_slack_mb)")
    for size in sizes:
        data["sizes"][f"{size}M"] = summarize([r for r in data["runs"]
                                               if r["size_mb"] == size])
    data["seconds"] = round(time.monotonic() - t_start, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(data, fh, indent=1)
    log(table(data))
    log(f"migration-bench: wrote {os.path.relpath(args.out, gl.TOP)}; {len(plan)} runs, "
        f"{failures} failed, {data['seconds'] / 60:.1f} minutes")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
