#!/usr/bin/env python3
"""Spill throughput and read-back latency of a tmem store's spill tiers.

In one run, on one disk (build/bench/spill-node/, or $BENCH_DIR), with the
cached QEMU and no guest (-machine none), for each tier:

- file: a store with spill= (the host library's io_uring file, O_DIRECT);
- nbd:  a store with spill-node= on qemu-nbd serving a raw image of the
        same disk (--cache=none), over a unix socket;
- raw:  no store, a raw image of the same disk (cache.direct=on): what the
        disk does with the same data and the same block layer path;

a tmem block node (size 256 MiB, budget 16 MiB) is filled from a source
image of half-compressible pages with blockdev-backup, and the write time
runs until the store is back within its budget (everything spilled); then
blockdev-backup reads it all into a null node; then 400 random 4 KiB
reads, each an HMP qemu-io command timed from here (the same monitor
overhead in every tier), give the read-back latency.  The figures are MB/s
of page data (256 MiB in each direction) and p50/p99 in microseconds, with
the tiers' ratios to raw.  Written to build/bench/spill-node.json.

    tests/bench/spill-node.py [--reps N]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import guestlib as gl  # noqa: E402
from qmp import QMP  # noqa: E402

MiB = 1 << 20
SIZE = 256 * MiB
BUDGET = 16 * MiB
READS = 400


def make_source(path):
    """Pages whose first half is random and second half zero: about 2x
    for LZ4, as swapped pages often are; the same bytes every run."""
    if os.path.exists(path) and os.path.getsize(path) == SIZE:
        return
    rnd = random.Random(12345)
    with open(path, "wb") as f:
        for _ in range(SIZE // (1 << 20)):
            f.write(b"".join(rnd.randbytes(2048) + bytes(2048) for _ in range(256)))


class Tier:
    def __init__(self, name, qemu, wd):
        self.name, self.qemu, self.wd = name, qemu, wd
        self.nbd = None

    def args(self):
        d = os.path.join(self.wd, self.name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        store = f"budget={BUDGET},spill-max={2 * SIZE}"
        if self.name == "file":
            return ["-object", f"tmem-store,id=st,{store},spill={d}",
                    "-blockdev", f"driver=tmem,node-name=dst,store=st,size={SIZE}"]
        img = os.path.join(d, "img.raw")
        with open(img, "wb") as f:     # raw: the source's size, for backup
            f.truncate(SIZE if self.name == "raw" else 2 * SIZE)
        if self.name == "raw":
            return ["-blockdev", f"driver=file,filename={img},cache.direct=on,node-name=dst"]
        sock = os.path.join(d, "nbd.sock")
        self.nbd = subprocess.Popen(["qemu-nbd", f"--socket={sock}", "--format=raw",
                                     "--cache=none", "--persistent", img],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        return ["-blockdev", f"driver=nbd,server.type=unix,server.path={sock},"
                "reconnect-delay=10,node-name=sp0",
                "-object", f"tmem-store,id=st,{store},spill-node=sp0",
                "-blockdev", f"driver=tmem,node-name=dst,store=st,size={SIZE}"]

    def close(self):
        if self.nbd:
            self.nbd.terminate()
            self.nbd.wait(timeout=10)


def job(q, args):
    """Run one blockdev-backup to its end; its seconds."""
    t = time.monotonic()
    q.cmd("blockdev-backup", {"job-id": "j", "sync": "full", **args})
    while any(j["device"] == "j" for j in q.cmd("query-block-jobs")):
        time.sleep(0.01)
    bad = [e for e in q.events if e["event"] == "BLOCK_JOB_COMPLETED" and "error" in e["data"]]
    if bad:
        raise RuntimeError(f"backup failed: {bad[0]['data']['error']}")
    return time.monotonic() - t


def store_stats(q):
    r = [e for e in q.cmd("query-tmem") if e["kind"] == "store"]
    return r[0]["stats"] if r else {}


def one(tier, source):
    sock = os.path.join(tier.wd, f"qmp-{tier.name}.sock")
    args = tier.args()
    p = subprocess.Popen([tier.qemu, "-machine", "none", "-nodefaults", "-display", "none",
                          "-qmp", f"unix:{sock},server=on,wait=off",
                          "-blockdev", f"driver=file,filename={source},node-name=src,read-only=on",
                          "-blockdev", f"driver=null-co,node-name=null,size={SIZE}"] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        q = QMP(sock, timeout=120)
        t = time.monotonic()
        job(q, {"device": "src", "target": "dst"})
        if tier.name != "raw":      # until every page over the budget is spilled
            while store_stats(q).get("ram_used", 0) > BUDGET:
                time.sleep(0.01)
        else:
            q.hmp("qemu-io dst flush")
        write_s = time.monotonic() - t
        st = store_stats(q)
        read_s = job(q, {"device": "dst", "target": "null"})
        rnd = random.Random(7)
        lat = []
        for _ in range(READS):
            off = rnd.randrange(SIZE // 4096) * 4096
            t = time.monotonic()
            out = q.hmp(f"qemu-io dst \"read {off} 4k\"")
            lat.append((time.monotonic() - t) * 1e6)
            # qemu-io prints its report on QEMU's stdout; the monitor gets
            # only an error
            if out.strip():
                raise RuntimeError(f"qemu-io read at {off}: {out.strip()}")
        q.cmd("quit")
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        tier.close()
    lat.sort()
    return {"write_mbs": SIZE / MiB / write_s, "read_mbs": SIZE / MiB / read_s,
            "lat_p50_us": lat[len(lat) // 2], "lat_p99_us": lat[int(len(lat) * 0.99)],
            "pages_spilled": st.get("pages_spilled"), "spill_used": st.get("spill_used")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(gl.BUILD, "bench", "spill-node.json"))
    args = ap.parse_args()
    wd = os.environ.get("BENCH_DIR", os.path.join(gl.BUILD, "bench", "spill-node"))
    os.makedirs(wd, exist_ok=True)
    qemu = gl.find_qemu(show=True)
    source = os.path.join(wd, "source.img")
    make_source(source)
    runs = {t: [] for t in ("raw", "file", "nbd")}
    for rep in range(1, args.reps + 1):
        for name in runs:           # interleaved: the disk's mood hits all
            r = one(Tier(name, qemu, wd), source)
            runs[name].append(r)
            print(f"spill-node: rep {rep} {name:4}: write {r['write_mbs']:7.1f} MB/s, "
                  f"read {r['read_mbs']:7.1f} MB/s, 4k read p50 {r['lat_p50_us']:7.0f} us "
                  f"p99 {r['lat_p99_us']:7.0f} us", flush=True)
    med = {t: {k: statistics.median(r[k] for r in rs)
               for k in ("write_mbs", "read_mbs", "lat_p50_us", "lat_p99_us")}
           for t, rs in runs.items()}
    for t in ("file", "nbd"):
        med[t]["write_vs_raw"] = med[t]["write_mbs"] / med["raw"]["write_mbs"]
        med[t]["read_vs_raw"] = med[t]["read_mbs"] / med["raw"]["read_mbs"]
        med[t]["p50_vs_raw"] = med[t]["lat_p50_us"] / med["raw"]["lat_p50_us"]
    commit = gl.run(["git", "rev-parse", "--short", "HEAD"], "git rev-parse")
    with open(args.out, "w") as f:
        json.dump({"commit": commit, "size": SIZE, "budget": BUDGET, "reads": READS,
                   "dir": wd, "runs": runs, "median": med}, f, indent=1)
    print("spill-node: medians (MB/s of page data; us per 4k read, monitor included)")
    for t, m in med.items():
        extra = (f"  x raw: write {m['write_vs_raw']:.2f} read {m['read_vs_raw']:.2f} "
                 f"p50 {m['p50_vs_raw']:.2f}") if t != "raw" else ""
        print(f"  {t:4} write {m['write_mbs']:7.1f} read {m['read_mbs']:7.1f} "
              f"p50 {m['lat_p50_us']:6.0f} p99 {m['lat_p99_us']:6.0f}{extra}")
    print(f"spill-node: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
