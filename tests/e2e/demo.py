#!/usr/bin/python3
"""`make run`: build what is missing, boot a guest with -device
virtio-tmem under memory pressure, show live figures, summarize.

    tests/e2e/demo.py [--budget 64M] [--swap-mb 256] [--passes 6] [--hold]

The guest (128 MiB) reads a page-cache set larger than its RAM, then swaps
a region twice its RAM, verifying every byte (tests/e2e/guest/).  Its
swapped-out and evicted pages go to the host through the device, which
keeps them LZ4-compressed under --budget and spills the rest to a file.
While it runs, QMP `query-tmem` is polled every two seconds, and a second
QMP socket is left free for you.  --hold keeps the guest up at the end
until you press Enter, so you can play with the budget.
"""
import argparse
import os
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as gl  # noqa: E402

MiB = 1 << 20


def step(n, total, what):
    print(f"\n[{n}/{total}] {what}", flush=True)


def size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1].upper()] if s[-1].upper() in units else int(s)


def mib(b):
    return f"{(b or 0) / MiB:.1f}"


def get_pages(h):
    return (h.get("operations.get.pages", 0) + h.get("operations.get-exclusive.pages", 0) +
            h.get("operations.get-range.pages", 0))


class Live:
    """The live line, printed every poll: what moved since the last one."""

    def __init__(self, budget):
        self.t0 = time.monotonic()
        self.prev = {}
        self.peak_ram = 0
        self.budget = budget

    def __call__(self, g):
        h = g.host_stats()
        if not h:
            return
        self.peak_ram = max(self.peak_ram, h.get("ram_used", 0))
        dt = max(1e-3, time.monotonic() - self.prev.get("_t", self.t0))
        put = h.get("operations.put.pages", 0)
        got = get_pages(h)
        rate_put = (put - self.prev.get("put", 0)) / dt
        rate_get = (got - self.prev.get("get", 0)) / dt
        kpp = h.get("kicks", 0) / h["pages"] if h.get("pages") else 0
        print(f"  {time.monotonic() - self.t0:5.0f}s  stored {put:7d} ({rate_put:6.0f}/s)"
              f"  fetched {got:7d} ({rate_get:6.0f}/s)"
              f"  held {h.get('pages_persistent', 0):6d} swap + {h.get('pages_ephemeral', 0):5d} cache"
              f" ({h.get('pages_spilled', 0)} spilled)"
              f"  RAM {mib(h.get('ram_used'))}/{mib(h.get('budget'))} MiB"
              f"  x{h.get('compression_ratio', 0):.2f}  kicks/page {kpp:.3f}", flush=True)
        self.prev = {"_t": time.monotonic(), "put": put, "get": got}


def main():
    ap = argparse.ArgumentParser(description="virtio-tmem demo (make run)")
    ap.add_argument("--budget", default="64M", help="host RAM budget (default 64M)")
    ap.add_argument("--swap-mb", type=int, default=256, help="swap workload size")
    ap.add_argument("--passes", type=int, default=6, help="passes over it")
    ap.add_argument("--hold", action="store_true",
                    help="keep the guest up at the end until Enter")
    args = ap.parse_args()
    budget = size(args.budget)
    total = 5

    step(1, total, "Debian packages (make deps, scripts/ensure-packages.sh)")
    gl.run(["make", "-s", "deps"], "make deps", show=True)
    gl.ensure_packages()
    step(2, total, "QEMU 10.0 with the device (scripts/build-qemu.sh; ~5 min the first time)")
    qemu = gl.find_qemu(show=True)
    print(f"  {qemu}")
    step(3, total, "guest kernel, Linux 5.10 (scripts/build-kernel.sh; ~10 min the first time)")
    kernel = gl.find_kernel("plain", show=True)
    print(f"  {kernel}")
    step(4, total, "guest module (scripts/build-guest-module.sh)")
    ko, why = gl.find_module("plain", show=True)
    print(f"  {ko}" if ko else f"  NOT AVAILABLE: {why}\n  The guest will swap to its disk only.")
    step(5, total, "guest programs, disks and initramfs")
    wd = os.path.join(gl.BUILD, "run")
    os.makedirs(os.path.join(wd, "spill"), exist_ok=True)
    programs = gl.build_programs(os.path.join(wd, "bin"))
    drives = gl.make_disks(wd)
    # A quarter of each page is random, the rest repeats: compressible, as
    # real memory mostly is.
    plan = ("disks_up\nmodule_load\n"
            "run cache pagecache-verify --files 4 --mb-per-file 40 --random-words 128 "
            "--stats $STATS\n"
            f"run swap swap-verify --mb {args.swap_mb} --passes {args.passes} "
            "--random-words 128 --stats $STATS\n")
    initrd = os.path.join(wd, "initrd.cpio")
    gl.make_initrd(initrd, plan, programs, ko)
    user_sock = os.path.join(wd, "qmp.sock")
    if os.path.exists(user_sock):
        os.unlink(user_sock)
    rel = os.path.relpath(user_sock, gl.TOP)

    print(f"""
Booting a {gl.GUEST_MB} MiB guest (QEMU TCG) with
  -device virtio-tmem,id=tmem0,budget={args.budget},spill={wd}/spill,spill-max=1G
Workload: read {4 * 40} MiB of files twice, then swap {args.swap_mb} MiB in {args.passes} passes.
Console: {os.path.relpath(os.path.join(wd, 'console.log'), gl.TOP)}

While it runs, QMP is yours at {user_sock}:
  tests/e2e/qmp.py {rel} hmp info tmem
  tests/e2e/qmp.py {rel} qom-set '{{"path": "tmem0", "property": "budget", "value": 16777216}}'
  or: socat - UNIX-CONNECT:{rel}   then type {{"execute": "qmp_capabilities"}}
""", flush=True)
    live = Live(budget)
    g = gl.Guest("demo", wd, qemu, kernel, initrd, drives,
                 tmem=f"budget={budget},spill={wd}/spill,spill-max=1G", timeout=1800,
                 extra=["-qmp", f"unix:{user_sock},server=on,wait=off"])

    def on_line(guest, poll=True):
        if poll:
            live(guest)
        for ln in guest.lines[getattr(on_line, "seen", 0):]:
            if "E2E-PASS" in ln or "E2E-RESULT prog" in ln:
                print("  guest: " + ln[ln.index("E2E-") + 4:], flush=True)
        on_line.seen = len(guest.lines)

    def on_sync(guest, name, n):
        if name == "end" and args.hold:
            on_line(guest)
            print("Workload done; the guest is idle and QMP is still up. "
                  "Press Enter to stop.", flush=True)
            while not select.select([sys.stdin], [], [], 2.0)[0]:
                live(guest)
            sys.stdin.readline()
        return ["go"]

    if args.hold:
        print("--hold: at the end the guest waits for you to press Enter.")
    g.run(on_sync=on_sync, on_tick=on_line, tick=2.0)
    on_line(g, poll=False)      # QMP is closed by now

    h = g.host.get("end#1") or {}
    print("\n== Summary")
    if g.error:
        print(f"  the guest did not finish: {g.error}; last console lines:")
        for ln in g.tail(20):
            print(f"  | {ln}")
    verified = sum(int(r.get("bytes_verified", 0)) for r in g.results.values())
    corrupt = sum(int(r.get("corruptions", 0)) for r in g.results.values())
    put, got = h.get("operations.put.pages", 0), get_pages(h)
    print(f"  pages stored in the host:   {put}  ({h.get('puts', 0)} puts accepted, "
          f"{h.get('put_rejected_nospace', 0)} refused for space)")
    print(f"  pages fetched back:         {got}  ({h.get('get_hits_ram', 0)} from RAM, "
          f"{h.get('get_hits_spill', 0)} from the spill file, {h.get('get_misses', 0)} misses)")
    print(f"  compression ratio:          {h.get('compression_ratio', 0):.2f}")
    print(f"  host RAM used:              {mib(h.get('ram_used'))} MiB now, "
          f"{mib(live.peak_ram)} MiB at peak, budget {mib(h.get('budget'))} MiB; "
          f"spill file {mib(h.get('spill_used'))} MiB")
    pages = h.get("pages", 0)
    if pages:
        print(f"  notifications per page:     {h.get('kicks', 0) / pages:.4f} kicks, "
              f"{h.get('interrupts', 0) / pages:.4f} interrupts "
              f"({h.get('kicks', 0)} kicks, {h.get('interrupts', 0)} interrupts, {pages} pages)")
    gs = [s for _, s in g.snapshots if s]
    if len(gs) >= 2:
        first, last = gs[0], gs[-1]
        for op, pages_k, kicks_k in (("frontswap store", "frontswap_stores", "kicks_frontswap_store"),
                                     ("frontswap load", "frontswap_loads", "kicks_frontswap_load"),
                                     ("cleancache put", "cleancache_puts", "kicks_cleancache_put"),
                                     ("cleancache get", "cleancache_gets", "kicks_cleancache_get")):
            p = last.get(pages_k, 0) - first.get(pages_k, 0)
            k = last.get(kicks_k, 0) - first.get(kicks_k, 0)
            if p:
                print(f"    guest {op:16} {p:7d} pages, {k:6d} kicks, {k / p:.4f} per page")
    print(f"  bytes verified in the guest: {verified}, corruptions: {corrupt}")
    if not ko:
        print(f"  (no guest module: {why.splitlines()[0]})")
    print(f"""
Try it yourself: `make run HOLD=1` keeps the guest up at the end; then, from
another terminal,
  tests/e2e/qmp.py {rel} qom-set '{{"path": "tmem0", "property": "budget", "value": 0}}'
  tests/e2e/qmp.py {rel} hmp info tmem
The end-to-end tests are `make test-e2e` (docs/e2e.md).""")
    return 0 if not g.error and corrupt == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        print(f"make run: {e}", file=sys.stderr)
        sys.exit(1)
