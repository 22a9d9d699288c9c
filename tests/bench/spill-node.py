#!/usr/bin/env python3
"""Spill throughput and read-back latency of a tmem store's spill tiers.

In one run, on one disk (build/bench/spill-node/, or $BENCH_DIR), with the
cached QEMU and no guest (a machine stopped with -S), for each tier:

- file: a store with spill= (the host library's io_uring file, O_DIRECT);
- nbd:  a store with spill-node= on qemu-nbd serving a raw image of the
        same disk (--cache=none), over a unix socket;
- raw:  no store, a raw image of the same disk (cache.direct=on): what the
        disk does with the same data and the same block layer path;
- ram:  a store whose budget holds everything (no spill): what the tmem
        node itself costs (compression, the thread pool), the ceiling of
        the two spill tiers;

a tmem block node (size 256 MiB, budget 16 MiB) is filled from a source
image of half-compressible pages with blockdev-backup, and the write time
runs until the store is back within its budget (everything spilled); then
blockdev-backup reads it all into a null node; then 400 random 4 KiB
reads, one at a time, give the read-back latency.  Each is an HMP qemu-io
aio_read on the node's BlockBackend (a -drive, under a virtio-blk device
whose id the histogram is set by), followed by aio_flush, and is timed
inside QEMU by the block layer's accounting, in a latency histogram
(block-latency-histogram-set, bins 5% wide): submission to completion,
without the monitor's round trip.  The figures are MB/s of
page data (256 MiB in each direction) and p50/p99 in microseconds, with
the tiers' ratios to raw, and for the NBD tier the requests its node got
per page read back.  Written to build/bench/spill-node.json.

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
# Latency histogram boundaries, ns: 5% apart from 4 us to about 2 s
BOUNDS = [int(4000 * 1.05 ** i) for i in range(270)]


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
        # dst: a BlockBackend (-drive) for the accounting, on node dstn
        tmem = f"if=none,id=dst,node-name=dstn,driver=tmem,store=st,size={SIZE}"
        if self.name == "file":
            return ["-object", f"tmem-store,id=st,{store},spill={d}",
                    "-drive", tmem]
        if self.name == "ram":
            return ["-object", f"tmem-store,id=st,budget={2 * SIZE}", "-drive", tmem]
        img = os.path.join(d, "img.raw")
        with open(img, "wb") as f:     # raw: the source's size, for backup
            f.truncate(SIZE if self.name == "raw" else 2 * SIZE)
        if self.name == "raw":
            return ["-drive", f"if=none,id=dst,node-name=dstn,driver=file,"
                    f"filename={img},cache.direct=on"]
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
                "-drive", tmem]

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


def dst_stats(q):
    return [b for b in q.cmd("query-blockstats") if b.get("device") == "dst"][0]["stats"]


def quantile_us(hist, frac):
    """The @frac quantile of a latency histogram, in us: the geometric
    middle of the bin that holds it (bins are 5% wide)."""
    bounds, bins = hist["boundaries"], hist["bins"]
    want, seen = frac * sum(bins), 0
    for i, n in enumerate(bins):
        seen += n
        if n and seen >= want:
            if i == 0 or i == len(bounds):
                raise RuntimeError(f"latency outside the histogram: bin {i}")
            return (bounds[i - 1] * bounds[i]) ** 0.5 / 1000
    raise RuntimeError("empty latency histogram")


def read_latency(q):
    """READS random 4 KiB reads of dst one at a time, timed by QEMU's
    block accounting; the histogram's p50 and p99 and the mean, in us."""
    # the BlockBackend is the inner virtio-blk device's, not the PCI proxy's
    q.cmd("block-latency-histogram-set", {"id": "/machine/peripheral/vd/virtio-backend",
                                          "boundaries-read": BOUNDS})
    before = dst_stats(q)
    rnd = random.Random(7)
    for _ in range(READS):
        off = rnd.randrange(SIZE // 4096) * 4096
        # qemu-io prints on QEMU's stdout; the monitor gets only an error
        out = q.hmp(f"qemu-io dst \"aio_read -q {off} 4k\"") + \
            q.hmp("qemu-io dst aio_flush")
        if out.strip():
            raise RuntimeError(f"qemu-io read at {off}: {out.strip()}")
    st = dst_stats(q)
    ops = st["rd_operations"] - before["rd_operations"]
    failed = st["failed_rd_operations"] - before["failed_rd_operations"]
    if ops != READS or failed:
        raise RuntimeError(f"{ops} reads accounted, {failed} failed; want {READS}, 0")
    hist = st["rd_latency_histogram"]
    mean = (st["rd_total_time_ns"] - before["rd_total_time_ns"]) / ops / 1000
    return quantile_us(hist, 0.5), quantile_us(hist, 0.99), mean


def one(tier, source):
    sock = os.path.join(tier.wd, f"qmp-{tier.name}.sock")
    args = tier.args()
    # a machine that never runs (-S), for a device on dst: the latency
    # histogram is set by device id
    p = subprocess.Popen([tier.qemu, "-machine", "pc", "-S", "-nodefaults", "-display", "none",
                          "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
                          "-qmp", f"unix:{sock},server=on,wait=off",
                          "-blockdev", f"driver=file,filename={source},node-name=src,read-only=on",
                          "-blockdev", f"driver=null-co,node-name=null,size={SIZE}"] + args +
                         ["-device", "virtio-blk-pci,drive=dst,id=vd,share-rw=on"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        q = QMP(sock, timeout=120)
        t = time.monotonic()
        job(q, {"device": "src", "target": "dstn"})
        if tier.name in ("file", "nbd"):    # until everything over budget is spilled
            while store_stats(q).get("ram_used", 0) > BUDGET:
                time.sleep(0.01)
        else:
            q.hmp("qemu-io dst flush")
        write_s = time.monotonic() - t
        st = store_stats(q)
        read_s = job(q, {"device": "dstn", "target": "null"})
        back = store_stats(q)
        p50, p99, mean = read_latency(q)
        q.cmd("quit")
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        tier.close()
    r = {"write_mbs": SIZE / MiB / write_s, "read_mbs": SIZE / MiB / read_s,
         "lat_p50_us": p50, "lat_p99_us": p99, "lat_mean_us": mean,
         "pages_spilled": st.get("pages_spilled"), "spill_used": st.get("spill_used")}
    if "spill_node" in back:    # the node's read requests per page read back
        r["node_reads_per_page"] = (back["spill_node"]["reads"] -
                                    st["spill_node"]["reads"]) / \
            max(1, back["spill_reads"] - st["spill_reads"])
    return r


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
    runs = {t: [] for t in ("raw", "ram", "file", "nbd")}
    for rep in range(1, args.reps + 1):
        for name in runs:           # interleaved: the disk's mood hits all
            r = one(Tier(name, qemu, wd), source)
            runs[name].append(r)
            print(f"spill-node: rep {rep} {name:4}: write {r['write_mbs']:7.1f} MB/s, "
                  f"read {r['read_mbs']:7.1f} MB/s, 4k read p50 {r['lat_p50_us']:6.0f} us "
                  f"p99 {r['lat_p99_us']:6.0f} us mean {r['lat_mean_us']:6.0f} us", flush=True)
    med = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]
               if k in ("write_mbs", "read_mbs", "lat_p50_us", "lat_p99_us",
                        "lat_mean_us", "node_reads_per_page")}
           for t, rs in runs.items()}
    for t in ("ram", "file", "nbd"):
        for k, name in (("write_mbs", "write"), ("read_mbs", "read"), ("lat_p50_us", "p50")):
            for base in ("raw", "ram"):
                med[t][f"{name}_vs_{base}"] = med[t][k] / med[base][k]
    commit = gl.run(["git", "rev-parse", "--short", "HEAD"], "git rev-parse")
    with open(args.out, "w") as f:
        json.dump({"commit": commit, "size": SIZE, "budget": BUDGET, "reads": READS,
                   "dir": wd, "runs": runs, "median": med}, f, indent=1)
    print("spill-node: medians (MB/s of page data; us per 4k read, timed in QEMU)")
    for t, m in med.items():
        extra = "".join(f"  x {b}: write {m['write_vs_' + b]:.2f} read {m['read_vs_' + b]:.2f} "
                        f"p50 {m['p50_vs_' + b]:.2f}" for b in ("raw", "ram")
                        if t not in ("raw", b))
        if "node_reads_per_page" in m:
            extra += f"; node reads per page {m['node_reads_per_page']:.3f}"
        print(f"  {t:4} write {m['write_mbs']:7.1f} read {m['read_mbs']:7.1f} "
              f"p50 {m['lat_p50_us']:6.0f} p99 {m['lat_p99_us']:6.0f} "
              f"mean {m['lat_mean_us']:6.0f}{extra}")
    print(f"spill-node: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
