"""What the guest benchmarks run: the configurations and the workloads.

A configuration is how the guest gets rid of pages it cannot keep: through
virtio-tmem (at some batch size), to a swap disk, to in-guest zram, or not
at all.  A workload is one verifying guest program.  Every pair runs in a
fresh 128 MiB guest (tests/e2e/guestlib.py), so no run inherits another's
page cache, swap or tmem pages.
"""
from guestlib import IOTHREAD_ARGS

MiB = 1 << 20

# The tmem device: a RAM budget large enough that nothing is evicted or
# spilled, and (hint-window=0) no HINT events, so the host never switches
# cleancache off: the figures show the transport, not the host's policy.
# With hints on, a cold start's first 1024 missing gets switch cleancache
# off at once in sync mode, which leaves nothing to measure there.  One
# configuration keeps the device's default hints, to show what they do.
TMEM_DEVICE = "budget=256M,hint-window=0"
TMEM_DEVICE_HINTS = "budget=256M"
# zram's disksize: more than any workload swaps; it only costs what it holds.
ZRAM_BYTES = 256 * MiB
# Swap on virtio-blk over a tmem block node (for guests without frontswap):
# the device's budget, in a store of its own, and the swap image's size.
TMEM_BLK_STORE = "budget=256M"
TMEM_BLK_SERIAL = "tmemswap"


class Config:
    """key: short name; alt: the issue's letter for the comparison, or None;
    module: insmod parameters (None: no driver, no device); device: the
    virtio-tmem-pci properties; sweep: a point of the batch-size sweep;
    swap: "disk", "tmem-blk" (the swap disk is a tmem block node, made and
    swapped on by the guest, freed pages discarded), "zram" or None;
    cache: the host cache mode of the virtio-blk disks on image files;
    qemu_args: more of QEMU's command line; workloads: the only workloads
    it runs, or None for all; knobs: the driver's debugfs files to set
    after it loads, as (path under virtio_tmem/, value) pairs."""

    def __init__(self, key, title, alt=None, module=None, device=TMEM_DEVICE,
                 sweep=False, swap="disk", cache="none", qemu_args=(),
                 workloads=None, knobs=()):
        self.key, self.title, self.alt = key, title, alt
        self.module, self.device, self.sweep = module, device, sweep
        self.swap, self.cache, self.qemu_args = swap, cache, list(qemu_args)
        self.workloads, self.knobs = workloads, list(knobs)

    def runs(self, wl):
        """Whether this configuration runs workload wl at all."""
        if wl.needs_swap and self.swap is None:
            return False
        return self.workloads is None or wl.name in self.workloads

    @property
    def tmem(self):
        return self.module is not None

    def setup(self):
        """The plan lines that set the guest up (bench-lib.sh helpers)."""
        lines = []
        if self.tmem:
            lines.append(f"module_load {self.module}".rstrip())
            lines += [f"knob {name} {value}" for name, value in self.knobs]
        if self.swap == "disk":
            lines.append("swap_disk")
        elif self.swap == "tmem-blk":
            lines.append(f"blk_swap_on {TMEM_BLK_SERIAL}")
        elif self.swap == "zram":
            lines.append(f"swap_zram {ZRAM_BYTES}")
        lines.append("data_ro")
        return "\n".join(lines)


# In the order they run.  The reference for time ratios is disk-none.
CONFIGS = [
    Config("tmem-sync", "tmem, sync (batch 1)", alt="b", module="sync=1", sweep=True),
    Config("tmem-b8", "tmem, batch 8", module="batch=8", sweep=True),
    Config("tmem-b32", "tmem, batch 32", module="batch=32", sweep=True),
    Config("tmem-default", "tmem, default batch", alt="a", module="", sweep=True),
    Config("tmem-b128", "tmem, batch 128", module="batch=128", sweep=True),
    # The poll window of synchronous ops (default twice the answer time,
    # 50-400 us): off, and from 200 us.
    Config("tmem-poll0", "tmem, default batch, no polling", module="poll_us=0"),
    Config("tmem-poll200", "tmem, default batch, poll window from 200 µs",
           module="poll_us=200"),
    # What growing the window buys: the default start, kept fixed.
    Config("tmem-poll50fixed", "tmem, default batch, fixed 50 µs poll window",
           module="poll_max_us=50"),
    # What prefetched gets and loads (GET_RANGE) buy: the default without them.
    Config("tmem-noprefetch", "tmem, default batch, no prefetch", module="prefetch=1"),
    # What running loads ahead of older requests buys: the default without it.
    Config("tmem-inorder", "tmem, default batch, no overtaking", module="",
           device=TMEM_DEVICE + ",overtake=off"),
    # What serving a lone load in the vCPU's thread buys: the main loop's.
    Config("tmem-noinline", "tmem, default batch, loads served by the main loop",
           module="", device=TMEM_DEVICE + ",sync-inline=off"),
    # What giving the main loop a turn between a batch's puts buys.
    Config("tmem-noturns", "tmem, default batch, queues served to the end",
           module="", device=TMEM_DEVICE + ",turn-us=0"),
    # Where the guest's time goes in the driver: the default, with the
    # driver timing its own paths (guest-driver/profile.c).
    Config("tmem-profile", "tmem, default batch, driver paths timed", module="",
           knobs=[("profile", 1)]),
    Config("tmem-hints", "tmem, default batch, host hints on", alt="a'", module="",
           device=TMEM_DEVICE_HINTS),
    Config("tmem-iothread", "tmem, default batch, iothread polling", module="",
           device=TMEM_DEVICE + ",iothread=io0", qemu_args=IOTHREAD_ARGS),
    Config("disk-none", "swap on virtio-blk, cache=none", alt="c"),
    Config("disk-wb", "swap on virtio-blk, cache=writeback", alt="c'", cache="writeback"),
    Config("zram", "in-guest zram swap (lz4)", alt="d", swap="zram"),
    # swap only: a block node has no page cache to offer
    Config("tmem-blk", "swap on virtio-blk over a tmem block node", alt="f",
           swap="tmem-blk", workloads=("anon",)),
    Config("none", "no swap, no tmem", alt="e", swap=None),
]
REFERENCE = "disk-none"


class Workload:
    """name: also the sync-point prefix; cmd: the guest command line;
    verify: bytes the program must report verified; needs_swap: it cannot
    run without swap in a 128 MiB guest."""

    def __init__(self, name, title, cmd, verify, needs_swap, what):
        self.name, self.title, self.cmd = name, title, cmd
        self.verify, self.needs_swap, self.what = verify, needs_swap, what


def workloads(quick=False):
    """The three workloads, at full size or (quick) a smoke-test size, and
    the file sets the host writes into the read-only data image for them:
    (name, files, MiB each, random words per page)."""
    anon_mb, anon_passes = (160, 2) if quick else (192, 3)
    stream_files, stream_mb = (2, 80) if quick else (8, 64)
    reread_files, reread_mb, reread_passes = (9, 16, 2) if quick else (9, 16, 4)
    rw = 128    # a quarter of each page random, the rest repeats: as in make run
    return [
        Workload("anon", "anonymous memory, pattern-verified",
                 f"swap-verify --mb {anon_mb} --passes {anon_passes} --seed 5 "
                 f"--random-words {rw}",
                 anon_mb * MiB * (anon_passes - 1), True,
                 f"swap-verify: {anon_mb} MiB of anonymous memory in the 128 MiB guest, "
                 f"filled, then {anon_passes - 1} passes in mixed orders that verify "
                 "every page (all but the last also rewrite a quarter of them)"),
        Workload("stream", "use-once streaming read",
                 f"bench-files read --dir /mnt/data --name stream --files {stream_files} "
                 f"--mb {stream_mb} --random-words {rw}",
                 stream_files * stream_mb * MiB, False,
                 f"bench-files: {stream_files} x {stream_mb} MiB of files read once, front "
                 "to back, every block verified: every page is evicted and never read "
                 "again (cleancache's worst case)"),
        Workload("reread", "re-read set slightly larger than RAM",
                 f"bench-files read --dir /mnt/data --name reread --files {reread_files} "
                 f"--mb {reread_mb} --passes {reread_passes} --random-words {rw}",
                 reread_files * reread_mb * MiB * reread_passes, False,
                 f"bench-files: {reread_files} x {reread_mb} MiB of files "
                 f"({reread_files * reread_mb} MiB, guest RAM 128 MiB) read "
                 f"{reread_passes} times, every block verified"),
    ], [("stream", stream_files, stream_mb, rw), ("reread", reread_files, reread_mb, rw)]
