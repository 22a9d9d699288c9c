"""Boot end-to-end guests and talk to them: shared by run-e2e.py and demo.py.

Standard library only.  A guest is QEMU (TCG) with the project's device,
a busybox initramfs whose /init is tests/e2e/guest/init.sh, a plan
(/e2e/plan.sh) saying what to run, a virtio-blk swap disk and an ext4 data
disk.  The console is QEMU's stdio: the guest prints E2E-* lines
(tests/e2e/guest/e2e-common.h), and at each E2E-SYNC point the host
answers on the same console, after acting over QMP if it wants to.  A
guest that migrates has its console on a unix socket instead
(Guest(console="socket"), Guest.migrate()), which the harness reconnects
to each QEMU process in turn.
"""
import lzma
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

from qmp import QMP, QMPError

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
GUEST_SRC = os.path.join(TOP, "tests", "e2e", "guest")
PROGRAMS = ("swap-verify", "pagecache-verify")
GUEST_MB = 128

# Kernel console lines that mean the kernel found a bug in itself or in us.
SPLAT = re.compile(r"BUG:|WARNING:|KASAN|possible circular locking|"
                   r"possible recursive locking|inconsistent lock state|"
                   r"INFO: possible|lock held when returning|blocked for more than|"
                   r"Kernel panic|Oops|general protection fault|Call Trace:|"
                   r"Out of memory|not returned: status|could not be brought back|"
                   r"torture: thread")


def host_tsc_khz():
    """The host's TSC rate in kHz when the host kernel knows it exactly
    (flag tsc_known_freq; "cpu MHz" is then that rate), else None."""
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read()
    except OSError:
        return None
    mhz = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", info, re.M)
    if " tsc_known_freq" not in info or not mhz:
        return None
    return int(float(mhz.group(1)) * 1000)


def cpu_model():
    """The host CPU's model name, for the benchmarks' machine records."""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def kernel_args():
    """The guest kernel's command line.  The test kernel has no HPET or ACPI
    PM timer, so under TCG its TSC calibration against the PIT fails when
    the host is busy, and the clocksource watchdog then finds the TSC skewed
    against late timer ticks: either way the kernel falls back to jiffies,
    ktime_get() and local_clock() move in 4 ms steps, and the driver's poll
    window (poll_us) and latency histograms would measure ticks.  A TCG
    guest's TSC is the host's, so give the guest its rate and trust it.
    (On KVM a guest has kvm-clock.)"""
    args = "console=ttyS0 panic=-1 loglevel=5 tsc=reliable"
    khz = host_tsc_khz()
    return f"{args} tsc_early_khz={khz}" if khz else args


# An iothread for the device, polling its queues (QEMU's adaptive
# AioContext polling) for up to this long before it waits for a
# notification.  Under TCG a guest takes hundreds of microseconds between
# two swap-ins, so a window of KVM's usual tens of microseconds would
# always run out first (docs/benchmarks.md).
IOTHREAD_POLL_NS = 1000000
IOTHREAD_ARGS = ("-object", f"iothread,id=io0,poll-max-ns={IOTHREAD_POLL_NS}")
MARK = re.compile(r"E2E-([A-Z-]+)(?: (.*))?$")
KV = re.compile(r"([A-Za-z_][\w.-]*)=(\S*)")


def log(msg):
    print(msg, flush=True)


def run(cmd, what, show=False, **kw):
    """Run a command; return its stdout's last line, or raise with its
    stderr.  show=True lets its stderr (progress) through to ours."""
    p = subprocess.run(cmd, cwd=TOP, stdout=subprocess.PIPE,
                       stderr=None if show else subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {p.returncode}):\n{tail}")
    lines = p.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def ensure_packages():
    run(["scripts/ensure-packages.sh", "busybox-static", "e2fsprogs",
         "util-linux", "qemu-utils", "seabios", "qemu-system-data",
         "ipxe-qemu", "cpio", "gcc", "libc6-dev"], "ensure-packages.sh")


def find_qemu(show=False):
    """$QEMU if set, else what scripts/build-qemu.sh builds (cached)."""
    q = os.environ.get("QEMU")
    if not q:
        q = run(["scripts/build-qemu.sh"], "scripts/build-qemu.sh", show=show)
    if not os.access(q, os.X_OK):
        raise RuntimeError(f"no QEMU binary at {q}")
    return q


def stock_kernels(headers=None):
    """The names in scripts/stock-kernels: distribution kernels, booted as
    variant "stock:NAME".  headers=True: only those listed with headers
    packages (the module builds against them); False: only those without
    (Linux 6.x, which has no hook for it)."""
    with open(os.path.join(TOP, "scripts", "stock-kernels")) as f:
        lines = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    return [w[0] for w in lines if headers is None or (len(w) > 4) == headers]


def stock_root(name, show=False):
    """Where scripts/fetch-stock-kernel.sh unpacked kernel NAME."""
    return run(["scripts/fetch-stock-kernel.sh", name],
               f"scripts/fetch-stock-kernel.sh {name}", show=show)


def find_kernel(variant, show=False):
    if variant.startswith("stock:"):
        boot = os.path.join(stock_root(variant[6:], show), "boot")
        imgs = sorted(f for f in os.listdir(boot) if f.startswith("vmlinuz-"))
        if not imgs:
            raise RuntimeError(f"no vmlinuz in {boot}")
        return os.path.join(boot, imgs[0])
    d = run(["scripts/build-kernel.sh", variant], f"scripts/build-kernel.sh {variant}",
            show=show)
    img = os.path.join(d, "arch", "x86", "boot", "bzImage")
    if not os.path.exists(img):
        raise RuntimeError(f"no bzImage in {d}")
    return img


# A distribution kernel's virtio drivers may be modules; init.sh loads
# what the harness packs under /e2e/kmod, in name order: dependencies
# first.  What is built in (modules.builtin) needs nothing.
STOCK_KMODS = ("virtio_pci", "virtio_blk")


def _modname(path):
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def kernel_modules(variant, outdir, show=False):
    """{name under /e2e: path}: the kernel's own modules a guest needs:
    STOCK_KMODS and what they depend on, in load order.  The packages
    ship no modules.dep (depmod makes it on install), so each module's
    own modinfo names its dependencies.  Compressed modules (.ko.xz)
    are unpacked into outdir."""
    if not variant.startswith("stock:"):
        return {}
    root = stock_root(variant[6:], show)
    mods = next((os.path.join(root, d, "modules") for d in ("lib", "usr/lib")
                 if os.path.isdir(os.path.join(root, d, "modules"))), None)
    if mods is None:
        raise RuntimeError(f"{variant}: no lib/modules in {root}")
    kdir = os.path.join(mods, sorted(os.listdir(mods))[0])
    with open(os.path.join(kdir, "modules.builtin")) as f:
        builtin = {_modname(ln.strip()) for ln in f if ln.strip()}
    files = {}
    for d, _, names in os.walk(os.path.join(kdir, "kernel")):
        for n in names:
            if n.endswith((".ko", ".ko.xz")):
                files[_modname(n)] = os.path.join(d, n)
    os.makedirs(outdir, exist_ok=True)
    out = {}

    def add(name):
        if name in builtin or any(k.endswith(f"-{name}.ko") for k in out):
            return
        if name not in files:
            raise RuntimeError(f"{variant}: {name} is neither a module nor built in")
        path = files[name]
        opener = lzma.open if path.endswith(".xz") else open
        with opener(path, "rb") as f:
            data = f.read()
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
        for d in (m.group(1).decode().split(",") if m else []):
            if d:
                add(d.replace("-", "_"))
        ko = f"{len(out):02d}-{name}.ko"
        if path.endswith(".xz"):
            path = os.path.join(outdir, ko)
            with open(path, "wb") as f:
                f.write(data)
        out[f"kmod/{ko}"] = path

    for name in STOCK_KMODS:
        add(name)
    return out


def find_module(variant, show=False):
    """(path, None) or (None, why not): the driver built for this kernel."""
    script = os.path.join(TOP, "scripts", "build-guest-module.sh")
    if not os.access(script, os.X_OK):
        return None, "scripts/build-guest-module.sh does not exist yet"
    if variant.startswith("stock:"):
        args = ["stock", variant[6:]]
    else:
        args = ["debug"] if variant == "debug" else []
    try:
        ko = run([script] + args,
                 f"scripts/build-guest-module.sh {' '.join(args)}", show=show)
    except RuntimeError as e:
        return None, str(e)
    if not os.path.isfile(ko):
        return None, f"scripts/build-guest-module.sh printed {ko!r}, not a file"
    return ko, None


def build_programs(outdir):
    """Compile the static guest programs; return {name: path}."""
    os.makedirs(outdir, exist_ok=True)
    hdr = os.path.join(GUEST_SRC, "e2e-common.h")
    out = {}
    for name in PROGRAMS:
        src = os.path.join(GUEST_SRC, name + ".c")
        exe = os.path.join(outdir, name)
        if (not os.path.exists(exe) or
                os.path.getmtime(exe) < max(os.path.getmtime(src), os.path.getmtime(hdr))):
            run(["gcc", "-static", "-pthread", "-O2", "-std=gnu11", "-Wall", "-Wextra",
                 "-Werror", "-o", exe, src], f"compiling {name}")
        out[name] = exe
    return out


def make_disks(workdir, fmt="raw", swap_mb=512, data_mb=512, data_block=4096):
    """A swap disk (label e2eswap) and an ext4 disk (label e2edata, of
    data_block-byte blocks), made fresh; with fmt="qcow2" both are qcow2
    and a third, empty qcow2 disk holds savevm's VM state.  Returns
    -drive/-device arguments."""
    os.makedirs(workdir, exist_ok=True)
    swap = os.path.join(workdir, "swap.img")
    data = os.path.join(workdir, "data.img")
    for f in (swap, data):
        if os.path.exists(f):
            os.unlink(f)
    with open(swap, "wb") as f:
        f.truncate(swap_mb << 20)
    os.chmod(swap, 0o600)
    run(["mkswap", "-L", "e2eswap", swap], "mkswap")
    with open(data, "wb") as f:
        f.truncate(data_mb << 20)
    run(["mkfs.ext4", "-q", "-F", "-b", str(data_block), "-L", "e2edata", data],
        "mkfs.ext4")
    disks = [("swap", swap), ("data", data)]
    if fmt == "qcow2":
        conv = []
        for name, path in disks:
            q = path[:-4] + ".qcow2"
            run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", path, q], "qemu-img convert")
            os.unlink(path)
            conv.append((name, q))
        state = os.path.join(workdir, "state.qcow2")
        run(["qemu-img", "create", "-q", "-f", "qcow2", state, "1G"], "qemu-img create")
        # the first snapshot-capable disk gets savevm's VM state
        disks = [("state", state)] + conv
    args = []
    for name, path in disks:
        args += ["-drive", f"if=none,id={name},file={path},format={fmt}",
                 "-device", f"virtio-blk-pci,drive={name}"]
    return args


def make_initrd(out, plan, programs, module=None):
    """Pack busybox, /init, the plan, the programs and the module."""
    plan_path = out + ".plan.sh"
    with open(plan_path, "w") as f:
        f.write(plan)
    pairs = [f"{p}=e2e/{n}" for n, p in programs.items()]
    pairs.append(f"{plan_path}=e2e/plan.sh")
    pairs.append(f"{os.path.join(GUEST_SRC, 'e2e-lib.sh')}=e2e/lib.sh")
    if module:
        pairs.append(f"{module}=e2e/virtio_tmem.ko")
    run(["scripts/make-initramfs.sh", out, os.path.join(GUEST_SRC, "init.sh")] + pairs,
        "scripts/make-initramfs.sh")


def flat(host):
    """The numbers of a device's stats object, nested names joined by '.'."""
    out = {}

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}{k}.", x)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix[:-1]] = v
    walk("", host)
    return out


def percentile(hist, q):
    """The q-quantile (0 < q <= 1) of a latency histogram {lower_ns: count}
    of guest-driver/latency.c, as the upper bound of its bucket (buckets are
    a quarter of a power of two wide), or None if it is empty."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for lo in sorted(hist):
        seen += hist[lo]
        if seen >= q * total:
            return lo + 1 if lo < 4 else lo + (1 << (lo.bit_length() - 3))
    return None


class Guest:
    """One QEMU process: its console, its QMP socket, what it reported."""

    def __init__(self, name, workdir, qemu, kernel, initrd, drives,
                 tmem="budget=256M", smp=1, append="", timeout=300,
                 echo=False, extra=(), console="stdio", mem_mb=GUEST_MB):
        """console="stdio": the serial console is QEMU's stdio (with its
        messages); "socket": it is a unix socket chardev the harness
        connects to, which can follow the guest to another QEMU process
        (migrate()); QEMU's own output then comes as "qemu[K]: " lines."""
        self.name, self.workdir, self.timeout = name, workdir, timeout
        self.echo = echo
        self.console = console
        self.qmp_path = os.path.join(workdir, "harness-qmp.sock")
        self.console_path = os.path.join(workdir, "console.log")
        self.console_sock = os.path.join(workdir, "console.sock")
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        if console == "socket":
            # wait=on: QEMU waits for the harness before it starts the
            # guest, so no console line is lost
            display = ["-display", "none", "-monitor", "none", "-parallel", "none",
                       "-chardev", f"socket,id=con0,path={self.console_sock},"
                                   "server=on,wait=on",
                       "-serial", "chardev:con0"]
        elif console == "stdio":
            display = ["-nographic"]
        else:
            raise ValueError(f"console={console!r}")
        self.cmd = [qemu, "-M", "pc", "-m", str(mem_mb), "-smp", str(smp),
                    *display, "-no-reboot",
                    "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
                    "-kernel", kernel, "-initrd", initrd,
                    "-append", f"{kernel_args()} {append}".strip(),
                    *drives]
        if tmem is not None:
            self.cmd += ["-device", f"virtio-tmem,id=tmem0,{tmem}".rstrip(",")]
        self.cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off", *extra]
        self.lines = []          # the whole console
        self.results = {}        # E2E-RESULT prog=P ...: {P: {k: v}}
        self.init_results = []   # E2E-RESULT lines without prog=: [(line no, {k: v})]
        self.stats = {}          # E2E-STATS label: {name: int} or None
        self.snapshots = []      # (label, stats), in the order they came
        self.ends = {}           # E2E-END name rc=N
        self.host = {}           # label: flat host stats, taken at sync points
        self.syncs = {}          # sync name: times seen
        self.sync_times = {}     # "name#n": seconds since QEMU started
        self.corrupt = []        # E2E-CORRUPT lines
        self.boot = {}           # E2E-BOOT: kernel, mem_kb
        self.done = False
        self.error = None
        self.seconds = 0.0
        self.qmp = None
        self.proc = None
        self.boots = 0           # QEMU processes started
        self.reboots_expected = 0
        self.after_sh = []       # lines to send at the next E2E-SH line
        # console="socket" (migrate()):
        self.console_from = []   # (index in lines, process k): lines from
                                 # there on came from QEMU process k's console
        self.exits = {}          # process k: its exit status, once it exited
        self.migrations = []     # what migrate() saw, one dict per migration
        self._q = None
        self._con = None         # the connected console socket
        self._con_gen = 0        # the process whose console is current
        self._con_reader = None
        self._partial = b""      # a line the previous console left unfinished

    # -- the host side of the console protocol --

    def send(self, line):
        if self.console == "socket":
            self._con.sendall((line + "\n").encode())
            return
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def host_stats(self, label=None):
        """query-tmem now: the first device's stats or, in a guest with a
        tmem disk and no device, the first store's; recorded under label
        if given."""
        r = self.qmp.cmd("query-tmem")
        r = [e for e in r if e["kind"] == "device"] or r
        s = flat(r[0]["stats"]) if r else {}
        if label:
            self.host[label] = s
        return s

    def expect_reboot(self, then=("go",)):
        """The guest is about to take its machine down and must come back
        on the same disks (hibernation): when QEMU exits, start it again
        with the same command line, and send `then` once the guest reports
        its shell command's end (E2E-SH)."""
        self.reboots_expected += 1
        self.after_sh = list(then)

    def _start(self, q):
        if self.console == "socket":
            self._start_socket(q)
            return
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._reader, args=(q, self.proc, self.boots > 0),
                         daemon=True).start()
        self.boots += 1
        self.qmp = QMP(self.qmp_path, timeout=30)

    def _reader(self, q, proc, append):
        with open(self.console_path, "ab" if append else "wb") as log_f:
            for raw in iter(proc.stdout.readline, b""):
                log_f.write(raw)
                log_f.flush()
                q.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        q.put(None)

    # -- console="socket": the console follows the guest between processes --

    def _spawn(self, cmd, k, q, con_path):
        """Start QEMU process k with cmd (its console on the socket
        con_path); return (proc, connected console socket).  Its
        stdout and stderr go to the queue as "qemu[k]: " lines."""
        if os.path.exists(con_path):
            os.unlink(con_path)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        threading.Thread(target=self._qemu_output, args=(q, proc, k), daemon=True).start()
        deadline = time.monotonic() + 30
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(con_path)
                return proc, sock
            except OSError:
                sock.close()
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise RuntimeError(f"QEMU process {k} (exit {proc.returncode}) "
                                       f"did not open its console socket {con_path}")
                time.sleep(0.05)

    def _qemu_output(self, q, proc, k):
        for raw in iter(proc.stdout.readline, b""):
            q.put(f"qemu[{k}]: " + raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.exits[k] = proc.wait()

    def _start_socket(self, q):
        self._q = q
        k = self.boots
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        self.proc, self._con = self._spawn(self.cmd, k, q, self.console_sock)
        self._con_gen = k
        self._con_reader = threading.Thread(
            target=self._console_reader, args=(q, self._con, k, None, self.boots > 0),
            daemon=True)
        self._con_reader.start()
        self.boots += 1
        self.qmp = QMP(self.qmp_path, timeout=30)

    def _console_reader(self, q, sock, k, prev, append):
        """Lines of process k's console, once the previous process's
        console (thread prev) has given all of its own; at the end of the
        current console, None."""
        if prev is not None:
            prev.join()
        q.put(("console", k))
        buf = self._partial
        self._partial = b""
        with open(self.console_path, "ab" if append else "wb") as log_f:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                log_f.write(data)
                log_f.flush()
                buf += data
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    q.put(raw.decode("utf-8", "replace").rstrip("\r"))
        if self._con_gen == k:     # the guest's end, not a migration
            if buf:
                q.put(buf.decode("utf-8", "replace").rstrip("\r"))
            q.put(None)
        else:
            self._partial = buf

    def lines_of(self, k):
        """The console lines QEMU process k showed (console="socket")."""
        out, starts = [], self.console_from + [(len(self.lines), None)]
        for (i, kk), (j, _) in zip(starts, starts[1:]):
            if kk == k:
                out += self.lines[i:j]
        return out

    def migrate(self, replace=(), params=None, incoming_paused=False, timeout=600,
                poll=0.1, on_poll=None, via_file=None):
        """Live-migrate the guest (console="socket") to a new QEMU process
        k: the current command line, with QMP and console sockets of its
        own, each (old, new) of replace substituted in every argument, and
        -incoming unix:migrate-k.sock; then quit the source, and go on
        with process k.  params: migrate-set-parameters for the source.
        incoming_paused: start the destination with -S, so that it stays
        paused on arrival until the caller's "cont" (its state can be read
        as it arrived).  on_poll(g, info), if given, runs at every poll of
        the source's query-migrate.  via_file: a path; the source then
        migrates to file:via_file, and the destination (-incoming defer)
        loads that file once the source completed (the stream's exact
        size is the file's: m["file_bytes"]).

        Returns (and appends to self.migrations) a dict: k, status, info
        (the source's last query-migrate), src_before/src_after/dst_arrival
        (flat query-tmem stats: the source just before migrate, the
        source once it completed, the destination on arrival), src_status
        (query-status once completed), src_exit, wall_ms, error.  On
        failure the destination is killed and the guest goes on where it
        was (a source that had completed is resumed: source_resumed); the
        caller checks m["status"] and m["error"]."""
        assert self.console == "socket"
        k = self.boots
        wd = self.workdir
        qmp_k = os.path.join(wd, f"harness-qmp-{k}.sock")
        con_k = os.path.join(wd, f"console-{k}.sock")
        mig = os.path.join(wd, f"migrate-{k}.sock")
        for p in (qmp_k, mig):
            if os.path.exists(p):
                os.unlink(p)
        # the current process's command line and sockets
        cur_cmd, cur_qmp, cur_con = getattr(self, "_cur", (self.cmd, self.qmp_path,
                                                            self.console_sock))
        base = [a.replace(cur_qmp, qmp_k).replace(cur_con, con_k) for a in cur_cmd]
        for old, new in replace:
            base = [a.replace(old, new) for a in base]
        uri = f"file:{via_file}" if via_file else f"unix:{mig}"
        cmd = base + ["-incoming", "defer" if via_file else uri] + \
            (["-S"] if incoming_paused else [])
        if via_file and os.path.exists(via_file):
            os.unlink(via_file)
        m = {"k": k, "status": None, "error": None, "info": None, "src_exit": None}
        self.migrations.append(m)
        t0 = time.monotonic()
        self.boots += 1
        proc = con = dqmp = None
        try:
            proc, con = self._spawn(cmd, k, self._q, con_k)
            dqmp = QMP(qmp_k, timeout=30)
            if params:
                self.qmp.cmd("migrate-set-parameters", params)
            m["src_before"] = self.host_stats()
            m["t_start"] = time.monotonic()
            self.qmp.cmd("migrate", {"uri": uri})
            deadline = time.monotonic() + timeout
            while True:
                info = self.qmp.cmd("query-migrate")
                m["info"] = info
                if on_poll:
                    on_poll(self, info)
                if info.get("status") in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    self.qmp.cmd("migrate_cancel")
                    raise TimeoutError(f"migration {k} not done after {timeout} s")
                time.sleep(poll)
            m["t_done"] = time.monotonic()
            m["status"] = info["status"]
            if info["status"] != "completed":
                raise RuntimeError(f"migration {k}: {info.get('error-desc', info['status'])}")
            m["src_status"] = self.qmp.cmd("query-status").get("status")
            m["src_after"] = self.host_stats()
            if via_file:
                m["file_bytes"] = os.path.getsize(via_file)
                dqmp.cmd("migrate-incoming", {"uri": uri})
            # the destination, once it has loaded the whole stream: running,
            # or paused with -S
            while True:
                st = dqmp.cmd("query-status").get("status")
                if st != "inmigrate":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"migration {k}: destination still loading")
                time.sleep(0.02)
            m["t_arrived"] = time.monotonic()
            m["dst_status"] = st
            if st != ("paused" if incoming_paused else "running"):
                raise RuntimeError(f"migration {k}: destination is {st} on arrival")
            r = dqmp.cmd("query-tmem")
            r = [e for e in r if e["kind"] == "device"] or r
            m["dst_arrival"] = flat(r[0]["stats"]) if r else {}
        except (QMPError, OSError, RuntimeError, TimeoutError) as e:
            m["error"] = f"{type(e).__name__}: {e}"
            if dqmp:
                dqmp.close()
            if con:
                con.close()
            if proc:
                proc.kill()
                proc.wait()
            # a source that completed stays stopped: let the guest go on
            # there, so that the caller's checks see what happened
            try:
                if self.qmp.cmd("query-status").get("status") == "postmigrate":
                    self.qmp.cmd("cont")
                    m["source_resumed"] = True
            except (QMPError, OSError):
                pass
            return m
        finally:
            m["wall_ms"] = round((time.monotonic() - t0) * 1000, 1)
        # The switch: the old console's reader gives its last lines and
        # stops at its end (the source quits); the new one goes on.
        old_proc, old_qmp, old_reader = self.proc, self.qmp, self._con_reader
        self._con_gen = k
        self._con = con
        self._con_reader = threading.Thread(
            target=self._console_reader, args=(self._q, con, k, old_reader, True), daemon=True)
        self._con_reader.start()
        self.proc, self.qmp = proc, dqmp
        self._cur = (base, qmp_k, con_k)
        try:
            old_qmp.cmd("quit")
        except (QMPError, OSError):
            pass
        old_qmp.close()
        try:
            m["src_exit"] = old_proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            old_proc.kill()
            m["src_exit"] = f"killed: still running 60 s after quit ({old_proc.wait()})"
        return m

    def _parse(self, line):
        m = MARK.search(line)
        if not m:
            return None
        kind, rest = m.group(1), m.group(2) or ""
        kv = dict(KV.findall(rest))
        if kind == "RESULT":
            if "prog" in kv:
                self.results[kv["prog"]] = kv
            else:
                self.init_results.append((len(self.lines), kv))
        elif kind == "STATS":
            label, _, body = rest.partition(" ")
            self.stats[label] = None if body.strip() == "missing" else {
                k: int(v) for k, v in KV.findall(body) if v.isdigit()}
            if not label.startswith("lat."):     # histograms: see latency()
                self.snapshots.append((label, self.stats[label]))
        elif kind == "END":
            name = rest.split()[0] if rest else "?"
            self.ends[name] = int(kv.get("rc", "-1"))
        elif kind == "CORRUPT":
            self.corrupt.append(line)
        elif kind == "BOOT":
            self.boot = kv
        elif kind == "DONE":
            self.done = True
        elif kind == "SYNC":
            return rest.strip()
        elif kind == "SH" and self.after_sh:
            for a in self.after_sh:
                self.send(a)
            self.after_sh = []
        return None

    def run(self, on_sync=None, on_tick=None, tick=2.0):
        """Boot, serve sync points until the guest powers off, and return.
        on_sync(guest, name, count) returns the lines to answer with; the
        default is ["go"].  Host stats are recorded at every sync point.
        on_tick(guest), if given, runs about every `tick` seconds."""
        t0 = time.monotonic()
        q = queue.Queue()
        deadline = t0 + self.timeout
        next_tick = t0 + tick
        try:
            self._start(q)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError(f"no power-off after {self.timeout} s")
                if on_tick and now >= next_tick:
                    on_tick(self)
                    next_tick = now + tick
                try:
                    line = q.get(timeout=max(0.01, min(deadline, next_tick) - now))
                except queue.Empty:
                    continue
                if line is None and self.reboots_expected:
                    self.reboots_expected -= 1
                    self.proc.wait(timeout=60)
                    self.qmp.close()
                    self._start(q)
                    continue
                if line is None:
                    break
                if isinstance(line, tuple):     # ("console", k): migrate()
                    self.console_from.append((len(self.lines), line[1]))
                    continue
                self.lines.append(line)
                if self.echo:
                    print(f"  | {line}", flush=True)
                name = self._parse(line)
                if name is None:
                    continue
                n = self.syncs[name] = self.syncs.get(name, 0) + 1
                self.sync_times[f"{name}#{n}"] = round(time.monotonic() - t0, 1)
                self.host_stats(f"{name}#{n}")
                answer = on_sync(self, name, n) if on_sync else None
                for a in answer or ["go"]:
                    self.send(a)
        except (TimeoutError, QMPError, OSError, RuntimeError) as e:
            self.error = f"{type(e).__name__}: {e}"
            if isinstance(e, TimeoutError):
                self._stats_at_timeout()
        finally:
            # proc is None if QEMU could not be started at all
            if self.proc and self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=20 if self.done and not self.error else 0.1)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.qmp:
                self.qmp.close()
            self.seconds = time.monotonic() - t0
        if not self.done and not self.error:
            self.error = f"QEMU exited (status {self.proc.returncode}) before the guest finished"
        return self

    def _stats_at_timeout(self):
        """A stalled guest: print what the host holds and did, for the
        log (the QMP monitor usually still answers)."""
        try:
            st = self.host_stats("timeout")
        except (QMPError, OSError) as e:
            print(f"  {self.name}: no host stats at the timeout: {e}", flush=True)
            return
        print(f"  {self.name}: host stats at the timeout: " +
              ", ".join(f"{k}={v}" for k, v in sorted(st.items()) if v), flush=True)

    # -- reading what the guest said --

    def splats(self):
        return [ln for ln in self.lines if SPLAT.search(ln)]

    def tail(self, n=40):
        """The console's last lines, leaving out init's closing dmesg dump
        (a copy of what the console showed already)."""
        lines = self.lines
        try:
            b = max(i for i, ln in enumerate(lines) if "E2E-DMESG-BEGIN" in ln)
            e = max(i for i, ln in enumerate(lines) if "E2E-DMESG-END" in ln)
            if b < e:
                lines = lines[:b] + lines[e + 1:]
        except ValueError:
            pass
        return lines[-n:]

    def init_result(self, key):
        """The last value an E2E-RESULT line without prog= gave key, and its
        console line number."""
        for i, kv in reversed(self.init_results):
            if key in kv:
                return kv[key], i
        return None, None

    def delta(self, a, b, key):
        """Guest stat key from label a to label b; None if not available."""
        sa, sb = self.stats.get(a), self.stats.get(b)
        if not sa or not sb or key not in sa or key not in sb:
            return None
        return sb[key] - sa[key]

    def latency(self, a, b):
        """The driver's synchronous op latencies from label a to label b
        (guest-driver/latency.c): {class: {bucket_lower_ns: count}}, or
        None if either histogram is missing."""
        ha, hb = self.stats.get(f"lat.{a}"), self.stats.get(f"lat.{b}")
        if ha is None or hb is None:
            return None
        out = {}
        for k, v in hb.items():
            cls, _, lo = k.rpartition(".")
            n = v - ha.get(k, 0)
            if n:
                out.setdefault(cls, {})[int(lo)] = n
        return out

    def growth(self, key):
        """How much a guest counter grew over the whole run, counting a fall
        (the driver was rebound and its counters restarted, or loadvm took
        them back) as a restart from zero.  None if never reported."""
        seen, total, prev = False, 0, None
        for _, s in self.snapshots:
            if not s or key not in s:
                continue
            seen = True
            v = s[key]
            if prev is not None:
                total += v - prev if v >= prev else v
            prev = v
        return total if seen else None
