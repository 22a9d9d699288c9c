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
"""
import argparse
import collections
import os
import re
import subprocess
import sys

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
                        "--reps", "1", "--no-docs"], check=True, cwd=TOP)
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


if __name__ == "__main__":
    sys.exit(main())
