"""One benchmark run: one configuration, one workload, one fresh guest.

The guest's plan sets the configuration up, then runs the workload between
the sync points <workload>.begin and <workload>.end.  The host samples
(probe.py) at both, and the workload's wall time is the host's time from
its answer at .begin to the arrival of .end: the guest's own clock runs on
TCG's virtual time, and the snapshots the guest prints are outside that
window.
"""
import os
import shutil
import time

import guestlib as gl
from matrix import TMEM_BLK_SERIAL, TMEM_BLK_STORE
from probe import Probe, drop_host_cache, trace_args

SWAP_MB = 512
# The guest's tick profile (profile.py --guest) counts in buckets of
# 2^PROFILE_SHIFT bytes of kernel text: 16 bytes, finer than a function.
PROFILE_SHIFT = 4


def make_swap(path):
    """A fresh, sparse swap image labelled e2eswap."""
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(SWAP_MB << 20)
    os.chmod(path, 0o600)
    gl.run(["mkswap", "-L", "e2eswap", path], "mkswap")


def drives(cfg, swap, data):
    """Both disks in every configuration, so every guest has the same
    devices; the data disk is read-only and shared by all runs.  The swap
    disk is the image swap, or (swap="tmem-blk") a tmem block node of the
    same size named swap in a store of its own."""
    args = []
    if cfg.swap == "tmem-blk":
        args += ["-object", f"tmem-store,id=swapstore,{TMEM_BLK_STORE}",
                 "-blockdev", f"driver=tmem,node-name=swap,store=swapstore,"
                              f"size={SWAP_MB}M,discard=unmap",
                 "-device", f"virtio-blk-pci,drive=swap,serial={TMEM_BLK_SERIAL}"]
    else:
        args += ["-drive", f"if=none,id=swap,file={swap},format=raw,cache={cfg.cache}",
                 "-device", "virtio-blk-pci,drive=swap"]
    args += ["-drive", f"if=none,id=data,file={data},format=raw,cache={cfg.cache},readonly=on",
             "-device", "virtio-blk-pci,drive=data"]
    return args + cfg.qemu_args


class Run:
    """The raw record of one run: samples, guest output, errors."""

    def __init__(self, ctx, cfg, wl, rep):
        self.ctx, self.cfg, self.wl, self.rep = ctx, cfg, wl, rep
        self.key = f"{cfg.key}/{wl.name}/{rep}"
        self.wd = os.path.join(ctx.out, "runs", cfg.key, f"{wl.name}-{rep}")
        self.samples = {}           # "begin", "end": probe samples
        self.t_begin = self.t_end = None
        self.guest = None
        self.probe = None
        self.failures = []

    def plan(self):
        return (". /e2e/bench-lib.sh\n"
                f"{self.cfg.setup()}\n"
                f"bench {self.wl.name} {self.wl.cmd}\n")

    def on_sync(self, g, name, n):
        if name == f"{self.wl.name}.begin":
            self.samples["begin"] = self.probe.sample()
            self.t_begin = time.monotonic()     # the guest starts when it reads "go"
        elif name == f"{self.wl.name}.end":
            self.t_end = time.monotonic()
            self.samples["end"] = self.probe.sample(with_cache=True)
        return ["go"]

    def execute(self):
        ctx = self.ctx
        shutil.rmtree(self.wd, ignore_errors=True)
        os.makedirs(self.wd)
        swap = os.path.join(self.wd, "swap.img")
        make_swap(swap)
        drop_host_cache(swap)
        drop_host_cache(ctx.data_image)
        initrd = os.path.join(self.wd, "initrd.cpio")
        gl.make_initrd(initrd, self.plan(), ctx.programs,
                       ctx.module if self.cfg.tmem else None)
        # on tmpfs if there is one, so writing it is no storage I/O of QEMU's
        tdir = "/dev/shm" if os.path.isdir("/dev/shm") else self.wd
        trace = os.path.join(tdir, f"guest-bench-{os.getpid()}-{self.key.replace('/', '-')}.log")
        g = gl.Guest(self.key, self.wd, ctx.qemu, ctx.kernel, initrd,
                     drives(self.cfg, swap, ctx.data_image),
                     tmem=self.cfg.device if self.cfg.tmem else None,
                     timeout=ctx.timeout, extra=trace_args(trace),
                     append=f"profile={PROFILE_SHIFT}" if ctx.guest_profile else "")
        self.guest = g
        images = {"data": ctx.data_image}
        if self.cfg.swap != "tmem-blk":
            images["swap"] = swap
        self.probe = Probe(g, trace, images, nodes=("swap",))
        try:
            g.run(self.on_sync, on_tick=self.probe.tick, tick=1.0)
            self.check()
        finally:
            # the swap image and the trace are big: kept only for a post-mortem
            if os.path.exists(trace):
                if self.failures:
                    shutil.move(trace, os.path.join(self.wd, "trace.log"))
                else:
                    os.unlink(trace)
        if not self.failures:
            os.unlink(swap)
        return self

    def check(self):
        """Everything that makes this run's figures worthless, as failures."""
        g, wl, f = self.guest, self.wl, self.failures
        if g.error or not g.done:
            f.append(g.error or "the guest did not finish")
        for key in ("swapon", "mount", "module"):
            v, _ = g.init_result(key)
            if v in ("failed", "no-zram", "missing", "insmod-failed"):
                f.append(f"setup: {key}={v}")
        if self.cfg.tmem and g.init_result("module")[0] != "loaded":
            f.append("the driver did not load")
        for name, value in self.cfg.knobs:
            v, _ = g.init_result(f"knob_{name}")
            if v != str(value):
                f.append(f"setup: knob_{name}={v}")
        rc = g.ends.get(wl.name)
        if rc != 0:
            f.append(f"workload exited {rc}")
        prog = wl.cmd.split()[0]
        r = g.results.get(prog, {})
        bv, bad = r.get("bytes_verified"), r.get("corruptions")
        if bad != "0" or g.corrupt:
            f.append(f"CORRUPTION: corruptions={bad}; " + "; ".join(g.corrupt[:3]))
        if bv != str(wl.verify):
            f.append(f"bytes_verified={bv}, expected {wl.verify}")
        splats = g.splats()
        if splats:
            f.append("kernel report: " + "; ".join(splats[:3]))
        if "begin" not in self.samples or "end" not in self.samples:
            f.append("no begin/end samples")
