#!/usr/bin/env python3
"""Where the time goes: host profile of guest benchmark runs.

Runs tests/guest-bench/run-bench.py for the given configurations and
workload (one repetition each, results under $BUILD/bench) under
`perf record -e cpu-clock -a`, then splits each QEMU process's samples by
thread (the vCPU thread, the main loop, iothreads and workers) and by
what the time went to: guest code (TCG's generated code), the TCG
runtime, the host kernel, LZ4, the store, the device, virtio, the block
layer, libc, the loop.  Samples are counted, not timed: at the sampling
rate a sample stands for 1/F seconds of one CPU.

    tests/guest-bench/profile.py --configs tmem-default,disk-none --workload reread

The machines have no hardware counters (perf's cpu-clock is a timer),
and TCG's generated code has no symbols: "guest code" is all of it.
With --guest the guests also boot with the kernel's tick profiler
("profile=4", /proc/profile): every timer tick (250 Hz, guest time) in
kernel mode counts the function it interrupted, and /proc/stat gives the
user, system, interrupt and idle ticks around the workload.  The driver
is a module, outside the kernel text: its ticks land in the profile's
last bucket, shown as "(modules)".
"""
import argparse
import bisect
import collections
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import guestlib as gl  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TCG_RUNTIME = ("helper_", "tb_", "tcg_", "cpu_exec", "qht_", "probe_access",
               "mmu_", "victim_tlb", "get_page_addr", "curr_cflags",
               "liveness_", "page_collection", "tlb_", "do_ld", "do_st",
               "int_ld", "int_st")
MEMORY_API = ("address_space", "flatview", "memory_region", "qemu_ram",
              "subpage", "prepare_mmio", "memory_ldst")
LOOP = ("aio_", "qemu_poll", "main_loop", "os_host", "g_", "qemu_mutex",
        "qemu_cond", "qemu_event", "qemu_co", "coroutine", "thread_pool",
        "qemu_coroutine", "event_notifier")
BLOCK = ("blk_", "bdrv_", "raw_", "virtio_blk", "handle_aiocb", "qemu_iovec",
         "iov_", "luring", "laio")


def category(dso, sym):
    base = os.path.basename(dso)
    if dso.startswith("/tmp/perf-") or "[JIT]" in dso:
        return "guest code (TCG)"
    if dso == "[kernel.kallsyms]":
        return "host kernel"
    if "liblz4" in base:
        return "lz4"
    if "libc.so" in base:
        return "libc memcpy/memset" if "mem" in sym else "libc other"
    if "glib" in base:
        return "loop, locks, threads"
    if sym.startswith(("tm_", "tmem_")):
        return "tmem store"
    if sym.startswith("virtio_tmem"):
        return "virtio-tmem device"
    if sym.startswith(TCG_RUNTIME):
        return "TCG runtime"
    if sym.startswith(BLOCK):
        return "block layer"
    if "virtio" in sym or "vring" in sym or "virtqueue" in sym:
        return "virtio core"
    if sym.startswith(MEMORY_API):
        return "memory API"
    if sym.startswith(LOOP):
        return "loop, locks, threads"
    return "other QEMU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="tmem-default,disk-none")
    ap.add_argument("--workload", default="reread")
    ap.add_argument("--freq", type=int, default=397)
    ap.add_argument("--guest", action="store_true",
                    help="also profile the guest kernel (its tick profiler)")
    ap.add_argument("--report-only", action="store_true",
                    help="no guests: split the samples of the last profile again")
    args = ap.parse_args()
    build = os.path.join(TOP, os.environ.get("BUILD", "build"))
    out = os.path.join(build, "bench", "profile")
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "perf.data")
    if not args.report_only:
        subprocess.run(["perf", "record", "-q", "-F", str(args.freq), "-e", "cpu-clock",
                        "-a", "-o", data, "--",
                        sys.executable, os.path.join(TOP, "tests/guest-bench/run-bench.py"),
                        "--configs", args.configs, "--workloads", args.workload,
                        "--reps", "1", "--no-docs"] + (["--guest-profile"] if args.guest else []),
                       check=True, cwd=TOP)
    script = subprocess.run(["perf", "script", "-G", "-i", data, "-F", "comm,pid,tid,ip,sym,dso"],
                            capture_output=True, text=True, check=True).stdout
    procs = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    line = re.compile(r"\s*(\S+)\s+(\d+)/(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")
    for ln in script.splitlines():
        m = line.match(ln)
        if not m or not m.group(1).startswith("qemu-system"):
            continue
        _, pid, tid, sym, dso = m.groups()
        procs[int(pid)][int(tid)][category(dso, re.sub(r"\+0x[0-9a-f]+$", "", sym))] += 1
    # The guest runs, in the order they ran (the configurations' order);
    # QEMU started for less than a second (version probes) is left out.
    runs = [p for p in sorted(procs)
            if sum(sum(c.values()) for c in procs[p].values()) >= args.freq]
    names = args.configs.split(",")
    for i, pid in enumerate(runs):
        threads = procs[pid]
        name = names[i] if len(runs) == len(names) else f"pid {pid}"
        print(f"== {name} ({args.workload}): QEMU process {pid}")
        for tid, cats in sorted(threads.items(), key=lambda t: -sum(t[1].values())):
            n = sum(cats.values())
            if n < args.freq // 10:
                continue
            role = "main loop" if tid == pid else f"thread {tid}"
            top = ", ".join(f"{c} {100 * k / n:.0f}%" for c, k in cats.most_common(6))
            print(f"   {role}: {n / args.freq:.1f} s of CPU: {top}")
    print(f"(samples: {data}; run figures: {os.path.join(build, 'bench', 'guest.json')})")
    if args.guest:
        # the kernel build directory: .../arch/x86/boot/bzImage
        kdir = gl.find_kernel("plain").rsplit(os.sep, 4)[0]
        syms = kernel_text(os.path.join(kdir, "System.map"))
        for name in names:
            log = os.path.join(build, "bench", "guest", "runs", name, f"{args.workload}-1",
                               "console.log")
            print(f"== {name} ({args.workload}): guest kernel profile, {log}")
            guest_report(log, args.workload, syms)


# The guest's ticks by what they are: the categories the read path's
# analysis needs (docs/benchmarks.md, "The read path: where the time goes").
# A tick that comes while interrupts are off is taken when they come back
# on, so the time of every section run with interrupts off (the driver
# copies pages under spin_lock_irqsave, page cache deletion runs under
# the i_pages lock) shows as the unlock that ended it.
GUEST_CATEGORIES = (
    ("idle", ("default_idle", "native_safe_halt", "arch_cpu_idle", "do_idle",
              "cpu_idle", "acpi_idle", "amd_e400_idle")),
    ("interrupts off (ticks taken at the unlock)",
     ("_raw_spin_unlock_irq", "_raw_read_unlock_irq", "_raw_write_unlock_irq")),
    ("virtqueue notify (an exit)", ("iowrite16", "iowrite32", "vp_notify")),
    ("interrupt exit (softirq entry)", ("__softirqentry_text_start", "__do_softirq")),
    ("copies to and from user space", ("copy_user", "copyout", "copyin")),
    ("page copies", ("copy_page", "copy_highpage", "memcpy", "__memcpy", "copy_mc")),
    ("page clearing", ("clear_page", "memset", "__memset")),
)


def kernel_text(system_map):
    """The text symbols of System.map: (sorted addresses, names, _stext)."""
    addrs, names = [], []
    with open(system_map) as f:
        for ln in f:
            a, t, n = ln.split()[:3]
            if t in "tTwW":
                addrs.append(int(a, 16))
                names.append(n)
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    addrs = [addrs[i] for i in order]
    names = [names[i] for i in order]
    return addrs, names, addrs[names.index("_stext")]


def guest_report(console, label, syms):
    """Print one run's guest profile: the /proc/stat split, the categories
    and the functions that took the most ticks."""
    addrs, names, stext = syms
    step, nbuckets, buckets, stat = None, None, {}, {}
    with open(console, errors="replace") as f:
        for ln in f:
            w = ln.split()
            if len(w) >= 4 and w[0] == "E2E-PROF" and w[1] == label:
                if w[2] == "step":
                    step = int(w[3])
                elif w[2] == "buckets":
                    nbuckets = int(w[3])
                else:
                    buckets[int(w[2])] = int(w[3])
            elif len(w) >= 4 and w[0] == "E2E-PROFSTAT" and w[2] == "cpu":
                stat[w[1].rsplit(".", 1)[1]] = [int(x) for x in w[3:]]
    if step is None or nbuckets is None or set(stat) != {"begin", "end"}:
        print("   no guest profile in the console (was the kernel built with CONFIG_PROFILING?)")
        return
    # /proc/stat's cpu line: user nice system idle iowait irq softirq steal
    d = [e - b for b, e in zip(stat["begin"], stat["end"])]
    total = sum(d[:8]) or 1
    split = zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq"), d)
    print("   ticks (/proc/stat): " + ", ".join(f"{k} {v} ({100 * v / total:.0f}%)"
                                                for k, v in split if v))
    funcs = collections.Counter()
    for b, n in buckets.items():
        i = bisect.bisect_right(addrs, stext + b * step) - 1
        # the last bucket takes every tick past the text: the modules'
        funcs["(modules)" if b == nbuckets - 1 else names[i] if i >= 0 else "?"] += n
    n = sum(funcs.values()) or 1
    cats = collections.Counter()
    for fn, k in funcs.items():
        cat = next((c for c, pre in GUEST_CATEGORIES if fn.startswith(pre)), "other kernel")
        cats["(modules)" if fn == "(modules)" else cat] += k
    print(f"   kernel ticks {n}: " + ", ".join(f"{c} {k} ({100 * k / n:.0f}%)"
                                              for c, k in cats.most_common()))
    for fn, k in funcs.most_common(25):
        print(f"   {k:6} {100 * k / n:5.1f}%  {fn}")


if __name__ == "__main__":
    sys.exit(main())
