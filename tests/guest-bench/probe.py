"""Host-side measurements of one running guest: what QEMU costs the host.

A Probe samples, at the guest's sync points and on a timer:
  - the QEMU process: RSS now and at peak (VmRSS, VmHWM), CPU time, and the
    bytes it made the host's storage read and write (/proc/PID/io);
  - query-blockstats: the I/O the guest issued to each virtio-blk drive;
  - query-tmem: the device's counters (tmem's accounted bytes, kicks, ...),
    or with no device the first store's (a guest swapping on a tmem disk);
  - QEMU's trace of virtio notifications: every guest->host kick
    (virtio_queue_notify) and host->guest interrupt (virtio_notify,
    virtio_notify_irqfd) of every virtio device, so virtio-blk's are
    counted as exactly as tmem's.  virtio-tmem's kicks are its own
    counter's (query-tmem), so the trace's kicks leave its vdev out: the
    device names itself in virtio_tmem_reset, which every boot traces;
  - fincore: how much of the guest's disk images sits in the host's page
    cache (cache=writeback keeps it there; cache=none does not).
"""
import os
import subprocess

TRACE_EVENTS = ("virtio_queue_notify", "virtio_notify", "virtio_notify_irqfd",
                "virtio_tmem_reset")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def trace_args(path):
    """QEMU arguments that log the notification events to path."""
    args = []
    for ev in TRACE_EVENTS:
        args += ["-trace", f"enable={ev}"]
    return args + ["-D", path]


def drop_host_cache(path):
    """Evict a file from the host's page cache, so no run starts with its
    disk image already cached by a previous one."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_bytes(path):
    """Bytes of path resident in the host's page cache (util-linux fincore)."""
    p = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        return int(p.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def _proc_fields(pid, name):
    out = {}
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k.strip()] = v.split()[0] if v.split() else ""
    return out


class TraceCounter:
    """Counts trace lines per (event, vdev) as the log grows, and notes
    which vdevs are virtio-tmem's."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, b""
        self.counts = {}
        self.tmem_vdevs = set()

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.counts
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for ln in lines:
            parts = ln.split()
            # "virtio_queue_notify vdev 0x... n 0 vq 0x..." (log backend; an
            # optional "PID@TIME:" prefix comes first in some builds)
            if parts and b"@" in parts[0] and parts[0].endswith(b":"):
                parts = parts[1:]
            if len(parts) >= 3 and parts[1] == b"vdev":
                key = (parts[0].decode(), parts[2].decode())
                self.counts[key] = self.counts.get(key, 0) + 1
            elif len(parts) >= 3 and parts[0] == b"virtio_tmem_reset":
                # "virtio_tmem_reset dev 0x...": the VirtIOTmem is its vdev
                self.tmem_vdevs.add(parts[2].decode())
        return self.counts

    def totals(self):
        """{"kicks": n, "interrupts": n} over every device so far, the
        kicks without virtio-tmem's: with sync-inline its request queues
        have no ioeventfd and their kicks reach QEMU's notify path, traced
        here as well as counted by the device."""
        c = self.poll()
        kicks = sum(n for (ev, vdev), n in c.items()
                    if ev == "virtio_queue_notify" and vdev not in self.tmem_vdevs)
        irqs = sum(n for (ev, _), n in c.items() if ev != "virtio_queue_notify")
        return {"kicks": kicks, "interrupts": irqs}


class Probe:
    """Samples one Guest (tests/e2e/guestlib.py) while it runs."""

    def __init__(self, guest, trace_path, images, nodes=()):
        self.g = guest
        self.trace = TraceCounter(trace_path)
        self.images = images            # {drive id: path}
        self.disks = set(images) | set(nodes)   # ids or node names of disks
        self.peak_tmem_ram = 0
        self.peak_ratio = None          # the store's LZ4 ratio at that peak
        self.peak_rss_kb = 0

    def process(self):
        pid = self.g.proc.pid
        st = _proc_fields(pid, "status")
        io = _proc_fields(pid, "io")
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[11], [12]: utime, stime (stat fields 14, 15)
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        return {"rss_kb": int(st.get("VmRSS", 0)), "hwm_kb": int(st.get("VmHWM", 0)),
                "cpu_s": cpu, "read_bytes": int(io.get("read_bytes", 0)),
                "write_bytes": int(io.get("write_bytes", 0))}

    def blockstats(self):
        out = {}
        for dev in self.g.qmp.cmd("query-blockstats"):
            s = dev.get("stats", {})
            # a -drive by its id, a -blockdev by its node's name
            name = dev.get("device") or dev.get("node-name") or dev.get("qdev", "?")
            if name not in self.disks:      # the machine's empty cd-rom and floppy
                continue
            out[name] = {k: s.get(k, 0) for k in ("rd_bytes", "wr_bytes", "rd_operations",
                                                   "wr_operations", "flush_operations",
                                                   "rd_total_time_ns", "wr_total_time_ns")}
        return out

    def tick(self, _guest=None):
        """On the guest's timer: track peaks that a begin/end pair would miss."""
        try:
            self._tmem_peak(self.g.host_stats() if self.g.qmp else {})
            self.peak_rss_kb = max(self.peak_rss_kb, self.process()["rss_kb"])
        except (OSError, ValueError):
            pass

    def _tmem_peak(self, h):
        if h.get("ram_used", 0) > self.peak_tmem_ram:
            self.peak_tmem_ram = h["ram_used"]
            self.peak_ratio = h.get("compression_ratio")

    def sample(self, with_cache=False):
        s = {"process": self.process(), "blockstats": self.blockstats(),
             "tmem": self.g.host_stats() if self.g.qmp else {},
             "trace": self.trace.totals()}
        self._tmem_peak(s["tmem"])
        self.peak_rss_kb = max(self.peak_rss_kb, s["process"]["rss_kb"])
        if with_cache:
            s["host_cache"] = {d: cached_bytes(p) for d, p in self.images.items()}
        return s
