#!/usr/bin/python3
"""Guest benchmarks (issue 5): exits per page against batch size, and
virtio-tmem against swap on a disk, zram and nothing.

    tests/guest-bench/run-bench.py [--reps N] [--quick] [--configs a,b]
                                   [--workloads x,y] [--no-docs] [--report-only]

Every (configuration, workload, repetition) boots a fresh 128 MiB guest
under QEMU TCG (tests/e2e/guestlib.py) with the plain guest kernel; the
configurations and workloads are in matrix.py.  Repetitions go round
robin, so a slow spell of the machine spreads over every configuration.
Every workload verifies every byte it reads back; a corrupted page, a
kernel splat or a guest that does not finish fails its run, which is
reported with its console's tail, and the runner exits 1 after the rest
have run.

Writes build/bench/guest.json (every run and the summaries); unless
--no-docs (implied by --quick, --configs or --workloads), draws
docs/bench/*.png and rewrites the generated section of docs/benchmarks.md.
QEMU is $QEMU if set, else what scripts/build-qemu.sh prints.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import guestlib as gl  # noqa: E402
import figures  # noqa: E402
import matrix  # noqa: E402
import plots  # noqa: E402
import report  # noqa: E402
from guestrun import Run  # noqa: E402

GUEST_SRC = os.path.join(HERE, "guest")
E2E_GUEST = os.path.join(HERE, "..", "e2e", "guest")
MiB = 1 << 20


def log(msg):
    print(msg, flush=True)


def compile_programs(outdir):
    """swap-verify from the e2e guests, and this directory's programs."""
    progs = gl.build_programs(outdir)
    hdr = os.path.join(E2E_GUEST, "e2e-common.h")
    for name in ("bench-files", "bench-run"):
        src, exe = os.path.join(GUEST_SRC, name + ".c"), os.path.join(outdir, name)
        if (not os.path.exists(exe) or
                os.path.getmtime(exe) < max(os.path.getmtime(src), os.path.getmtime(hdr))):
            gl.run(["gcc", "-static", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                    "-I", E2E_GUEST, "-o", exe, src], f"compiling {name}")
        progs[name] = exe
    progs["bench-lib.sh"] = os.path.join(GUEST_SRC, "bench-lib.sh")
    return progs


def make_data_image(out, bench_files, sets):
    """The read-only ext4 image with every file set, written on the host by
    the same program the guests verify with.  4 KiB blocks: ext4 asks
    cleancache only for pages that are one block each."""
    img = os.path.join(out, "data.img")
    tree = os.path.join(out, "data-files")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    total = 0
    for name, files, mb, rw in sets:
        gl.run([bench_files, "create", "--dir", tree, "--name", name, "--files", str(files),
                "--mb", str(mb), "--random-words", str(rw)], f"bench-files create {name}")
        total += files * mb
    if os.path.exists(img):
        os.unlink(img)
    with open(img, "wb") as fh:
        fh.truncate((total + total // 4 + 64) * MiB)
    gl.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "e2edata", "-d", tree, img],
           "mkfs.ext4 -d")
    shutil.rmtree(tree)
    return img


def negative_controls(progs, out):
    """The verifiers must fail on a corrupted byte, or no "ok" means much."""
    d = os.path.join(out, "selfcheck")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    bf, sv = progs["bench-files"], progs["swap-verify"]
    args = ["--dir", d, "--name", "c", "--files", "2", "--mb", "2"]
    gl.run([bf, "create"] + args, "bench-files create")
    results = {}

    def expect(what, cmd, want):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
        results[what] = p.returncode == want
        if p.returncode != want:
            raise RuntimeError(f"negative control: {what} exited {p.returncode}, not {want}")

    expect("bench-files on clean files", [bf, "read"] + args, 0)
    with open(os.path.join(d, "c-001.dat"), "r+b") as fh:
        fh.seek(3 * 4096 + 100)
        b = fh.read(1)
        fh.seek(3 * 4096 + 100)
        fh.write(bytes([b[0] ^ 0x01]))
    expect("bench-files with one flipped bit on disk", [bf, "read"] + args, 1)
    expect("swap-verify with one flipped byte",
           [sv, "--mb", "8", "--passes", "2", "--inject-corruption"], 1)
    expect("bench-run passes the status on", [progs["bench-run"], "false"], 1)
    shutil.rmtree(d)
    return results


def storage_speed(path):
    """The host storage under the disk images: sequential O_DIRECT read,
    MB/s, as dd reports it (what cache=none reads come from)."""
    p = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M", "count=256",
                        "iflag=direct"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    last = p.stderr.strip().splitlines()[-1:] if p.returncode == 0 else []
    return last[0].split(", ")[-1] if last else None


def machine(qemu, kernel_release, host_lib_json, image):
    cpu = gl.cpu_model()
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    qv = subprocess.run([qemu, "-version"], stdout=subprocess.PIPE, text=True).stdout
    hl = "not measured (build/bench/host-lib.json missing)"
    try:
        with open(host_lib_json) as fh:
            j = json.load(fh)
        hl = (f"{1e6 / j['put_pages_per_s']:.1f} µs per 4 KiB put and "
              f"{1e6 / j['get_pages_per_s']:.1f} µs per get, build/bench/host-lib.json")
    except (OSError, ValueError, KeyError, ZeroDivisionError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem_kb / (1 << 20),
            "kernel": platform.release(), "kvm": "yes" if os.path.exists("/dev/kvm") else "no",
            "qemu": qv.splitlines()[0].strip() if qv else qemu,
            "guest_kernel": kernel_release, "host_lib": hl,
            "storage_direct_read": storage_speed(image)}


class Context:
    def __init__(self, args):
        self.out = os.path.join(gl.BUILD, "bench", "guest")
        os.makedirs(self.out, exist_ok=True)
        self.timeout = args.timeout
        self.guest_profile = args.guest_profile


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="runs of each pair (default 3)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for trying it out")
    ap.add_argument("--configs", help="comma-separated configuration keys (matrix.py)")
    ap.add_argument("--workloads", help="comma-separated workloads: anon,stream,reread")
    ap.add_argument("--no-docs", action="store_true",
                    help="leave docs/ alone (plots go to build/bench/guest/plots)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per guest")
    ap.add_argument("--guest-profile", action="store_true",
                    help="boot the guests with the kernel's tick profiler "
                         "(read by profile.py --guest)")
    ap.add_argument("--report-only", action="store_true",
                    help="no guests: redo the summaries, plots and docs from "
                         "build/bench/guest.json")
    return ap.parse_args()


def pick(all_items, names, what):
    if not names:
        return all_items
    want = names.split(",")
    bad = set(want) - {getattr(x, "key", getattr(x, "name", None)) for x in all_items}
    if bad:
        sys.exit(f"unknown {what}: {', '.join(sorted(bad))}")
    return [x for x in all_items if getattr(x, "key", getattr(x, "name", None)) in want]


def collect(args, configs, wls, sets, t_start):
    """Prepare, run every guest, and return the run's data (JSON-ready)."""
    ctx = Context(args)
    # the commit the builds below come from: HEAD may move during the run
    commit = gl.run(["git", "rev-parse", "--short", "HEAD"], "git rev-parse")
    log("guest-bench: preparing (QEMU, kernel and module are cached builds)")
    gl.ensure_packages()
    gl.run(["scripts/ensure-packages.sh", "gnuplot-nox", "util-linux"], "ensure-packages.sh")
    ctx.qemu = gl.find_qemu(show=True)
    ctx.kernel = gl.find_kernel("plain", show=True)
    ctx.module, why = gl.find_module("plain", show=True)
    if ctx.module is None:
        log(f"guest-bench: NO MODULE ({why}): every tmem configuration will fail")
    ctx.programs = compile_programs(os.path.join(ctx.out, "bin"))
    controls = negative_controls(ctx.programs, ctx.out)
    log(f"guest-bench: negative controls passed ({len(controls)}): the verifiers catch corruption")
    t = time.monotonic()
    ctx.data_image = make_data_image(ctx.out, ctx.programs["bench-files"], sets)
    log(f"guest-bench: data image {os.path.relpath(ctx.data_image, gl.TOP)} "
        f"({time.monotonic() - t:.0f} s)")

    plan = [(cfg, wl, rep) for rep in range(1, args.reps + 1) for wl in wls for cfg in configs
            if cfg.runs(wl)]
    log(f"guest-bench: {len(plan)} guest runs: {len(configs)} configurations x "
        f"{len(wls)} workloads x {args.reps} repetitions (no-swap runs only where "
        "the workload fits, the tmem block node only for swap)")
    records, failures, kernel_release = [], {}, None
    for i, (cfg, wl, rep) in enumerate(plan, 1):
        el = time.monotonic() - t_start
        head = f"[{i:2}/{len(plan)} {int(el) // 60:2}:{int(el) % 60:02}] {cfg.key:12} {wl.name:6} rep {rep}"
        print(head + " ...", end="", flush=True)
        run = Run(ctx, cfg, wl, rep)
        try:
            run.execute()
        except (RuntimeError, OSError, gl.QMPError) as e:
            run.failures.append(f"{type(e).__name__}: {e}")
        rec = figures.run_figures(run)
        records.append(rec)
        if run.guest and run.guest.boot.get("kernel"):
            kernel_release = run.guest.boot["kernel"]
        if run.failures:
            failures[run.key] = "; ".join(run.failures)
            print(f" FAILED ({run.guest.seconds if run.guest else 0:.0f} s)", flush=True)
            for fl in run.failures:
                log(f"    {fl}")
            if run.guest:
                log(f"    guest console (last lines of {run.guest.console_path}):")
                for ln in run.guest.tail(30):
                    log(f"    | {ln}")
            continue
        n = rec["notify"]
        print(f" {rec['seconds']:6.2f} s, verified {rec['bytes_verified'] // MiB} MiB, "
              f"{rec['major_faults']} major faults, host RAM {rec['host']['host_ram'] / MiB:.0f} MiB, "
              f"{report.f(n['kicks_per_page'], 4)} kicks/page "
              f"({run.guest.seconds:.0f} s in all)", flush=True)

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": machine(ctx.qemu, kernel_release,
                           os.path.join(gl.BUILD, "bench", "host-lib.json"), ctx.data_image),
        "quick": args.quick, "reps": args.reps, "reference": matrix.REFERENCE,
        "configs": [{"key": c.key, "title": c.title, "alt": c.alt, "module_params": c.module,
                     "device": c.device if c.tmem else None, "batch_sweep": c.sweep,
                     "swap": c.swap, "cache": c.cache, "workloads": c.workloads}
                    for c in configs],
        "workloads": [{"name": w.name, "title": w.title, "command": w.cmd,
                       "bytes_verified_per_run": w.verify, "what": w.what} for w in wls],
        "negative_controls": controls, "failures": failures, "runs": records,
    }


def publish(data, configs, wls, docs, t_start):
    """Summaries into the JSON, the stdout summary, plots and docs.
    Returns the number of failures."""
    data["exits_per_page"] = figures.exits_per_page(data["runs"], configs, wls)
    data["summary"] = figures.summarize(data["runs"], matrix.REFERENCE)
    data["seconds"] = data.get("seconds") or round(time.monotonic() - t_start, 1)
    path = os.path.join(gl.BUILD, "bench", "guest.json")
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
    log(report.stdout_summary(data, configs, wls))
    failures = dict(data["failures"])
    out = os.path.join(gl.BUILD, "bench", "guest")
    plotdir = os.path.join(gl.TOP, "docs", "bench") if docs else os.path.join(out, "plots")
    try:
        for png in plots.render(data, configs, wls, os.path.join(out, "plots"), plotdir):
            log(f"guest-bench: drew {os.path.relpath(png, gl.TOP)}")
        if docs:
            report.write_docs(os.path.join(gl.TOP, "docs", "benchmarks.md"),
                              report.generated(data, configs, wls))
            log("guest-bench: rewrote the generated section of docs/benchmarks.md")
    except (RuntimeError, OSError, KeyError, StopIteration) as e:
        failures["report"] = f"{type(e).__name__}: {e}"
        log(f"guest-bench: REPORT FAILED: {e}")
    log(f"guest-bench: wrote {os.path.relpath(path, gl.TOP)}; {len(data['runs'])} runs, "
        f"{len(failures)} failed, {data['seconds'] / 60:.1f} minutes")
    return len(failures)


def main():
    args = parse_args()
    t_start = time.monotonic()
    if args.report_only:
        with open(os.path.join(gl.BUILD, "bench", "guest.json")) as fh:
            data = json.load(fh)
        for rec in data["runs"]:
            figures.renotify(rec)
        keys = [c["key"] for c in data["configs"]]
        configs = [c for c in matrix.CONFIGS if c.key in keys]
        names = [w["name"] for w in data["workloads"]]
        wls = [w for w in matrix.workloads(data["quick"])[0] if w.name in names]
        docs = not args.no_docs and len(configs) == len(matrix.CONFIGS) and not data["quick"]
        return 1 if publish(data, configs, wls, docs, t_start) else 0
    configs = pick(matrix.CONFIGS, args.configs, "configurations")
    wls, sets = matrix.workloads(args.quick)
    wls = pick(wls, args.workloads, "workloads")
    docs = not (args.no_docs or args.quick or args.configs or args.workloads)
    if docs and matrix.REFERENCE not in [c.key for c in configs]:
        sys.exit(f"the reference configuration {matrix.REFERENCE} must run")
    data = collect(args, configs, wls, sets, t_start)
    data["seconds"] = round(time.monotonic() - t_start, 1)
    return 1 if publish(data, configs, wls, docs, t_start) else 0


if __name__ == "__main__":
    sys.exit(main())
