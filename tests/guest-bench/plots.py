"""The PNG plots: data files from the run's JSON, drawn by the gnuplot
scripts next to this file (exits.gp, alternatives.gp)."""
import os
import subprocess

from figures import MiB, PRIMARY
from report import OP_TITLES, ref_config

HERE = os.path.dirname(os.path.abspath(__file__))


def _num(v, scale=1.0, log=False):
    """gnuplot skips NaN: no figure, or (log axis) nothing above 0."""
    if v is None or (log and v <= 0):
        return "NaN"
    return f"{v / scale:.6g}"


def _write(path, head, rows):
    with open(path, "w") as fh:
        fh.write(" ".join(f'"{h}"' for h in head) + "\n")
        for r in rows:
            fh.write(" ".join(r) + "\n")


def write_data(data, configs, workloads, d):
    os.makedirs(d, exist_ok=True)
    exits = data["exits_per_page"]
    cols = sorted((c for c in configs if c.key in exits), key=lambda c: exits[c.key]["batch"])

    def cost(c, op, wl, key):
        o = exits[c.key]["workloads"].get(wl, {}).get("ops", {}).get(op)
        return o[key] if o else None

    for key, name in (("kicks_per_page", "kicks"), ("interrupts_per_page", "interrupts")):
        _write(os.path.join(d, f"exits-{name}.dat"),
               ["batch"] + [f"{OP_TITLES[o]} ({w})" for o, w in PRIMARY],
               [[str(exits[c.key]["batch"])] +
                [_num(cost(c, o, w, key), log=True) for o, w in PRIMARY] for c in cols])
    alts = [c for c in configs if c.alt]
    head = ["workload"] + [f"({c.alt}) {c.title}" for c in alts]
    def extra(m):
        """What the host holds for the guest beyond its RAM."""
        if "host_ram" not in m:
            return None
        return (m.get("tmem_ram_peak") or 0) + (m.get("image_page_cache") or 0)

    for name, get, scale in (("time", lambda m: m.get("time_ratio"), 1),
                             ("ram", lambda m: m.get("host_ram"), MiB),
                             ("extra", extra, MiB)):
        rows = [[w.name] + [_num(get(data["summary"].get(c.key, {}).get(w.name, {})), scale)
                            for c in alts] for w in workloads]
        _write(os.path.join(d, f"alt-{name}.dat"), head, rows)
    return len(alts)


def render(data, configs, workloads, datadir, outdir):
    """Draw the PNGs into outdir; returns their paths.  The alternatives'
    plots are ratios to the reference, so they need it in the run."""
    nalt = write_data(data, configs, workloads, datadir)
    os.makedirs(outdir, exist_ok=True)
    rc = ref_config(data["reference"])
    ref = f"({rc.alt}) {rc.title}"
    jobs = [("exits.gp", f"nops={len(PRIMARY)}; ", ["exits-per-page.png"])]
    if data["summary"].get(rc.key):
        jobs.append(("alternatives.gp", f"nalt={nalt}; ref='{ref}'; ",
                     ["alternatives-time.png", "alternatives-ram.png"]))
    made = []
    for script, extra, pngs in jobs:
        p = subprocess.run(["gnuplot", "-e", f"datadir='{datadir}'; outdir='{outdir}'; {extra}",
                            os.path.join(HERE, script)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"gnuplot {script} failed:\n{p.stderr[-2000:]}")
        made += [os.path.join(outdir, png) for png in pngs]
    return made
