"""vmmap and the heap commands against the number of mappings (issue 10).

    .venv/bin/python benchmarks/many_maps.py [--sizes 20k,200k] [--json]

The demo `many_maps N` (demo_c) maps N pages with alternating protections, so the kernel keeps
N mappings, and has a 5-chunk heap.  Each command runs inside one gdb at each size, with gdb's
CPU time measured around it (process_time, which a loaded machine stretches less than wall
time) and gdb's peak memory (VmHWM after it, less VmRSS before it; a peak reached by an earlier
command in the same gdb shows again in the later ones); the facts cache is cleared before each, so each pays for its own
mappings.  The figure that matters is the ratio between sizes: 10x the mappings should cost
about 10x, not 100x.  N above vm.max_map_count (65530 by default) needs it raised: done here
as root for the run and put back after, else the size is skipped.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

from common import LOADER, ROOT, precompile_gdbext

DEMO = os.path.join(ROOT, "demo_c", "build", "many_maps")
COMMANDS = ("vmmap --summary", "vmmap", "heapchunks", "arenas", "bins")
MAX_RATIO = 15.0  # per 10x mappings; linear is 10

MEASURE = r'''
import gdb, re, time, json
def _measure(cmd, out):
    import gdbext.inferior.process as P, gdbext.inferior.memory as M
    P._facts_cache.clear(); M._invalidate()
    status = lambda k: int(re.search(k + r":\s*(\d+)", open("/proc/self/status").read()).group(1))
    rss, c0, t0 = status("VmRSS"), time.process_time(), time.perf_counter()
    gdb.execute(cmd, to_string=True)
    open(out, "a").write(json.dumps({"command": cmd, "cpu": time.process_time() - c0,
                                     "wall": time.perf_counter() - t0,
                                     "peak_growth_mib": (status("VmHWM") - rss) / 1024}) + "\n")
'''


def parse_count(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def run(n: int, tmp: str):
    script, out = os.path.join(tmp, "measure.py"), os.path.join(tmp, f"out{n}.jsonl")
    with open(script, "w") as f:
        f.write(MEASURE)
    argv = ["gdb", "-nx", "-batch", "-ex", "set pagination off", "-ex", f"source {LOADER}",
            "-ex", f"source {script}", "-ex", "break gdbext_stop", "-ex", f"run {n} > /dev/null"]
    for c in COMMANDS:
        argv += ["-ex", f"python _measure({c!r}, {out!r})"]
    subprocess.run(argv + [DEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, check=False)
    with open(out) as f:
        return {r["command"]: r for r in map(json.loads, f)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20k,200k", help="mapping counts (default 20k,200k)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    sizes = [parse_count(s) for s in args.sizes.split(",")]
    precompile_gdbext()
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "demo_c")], check=True,
                   stdout=subprocess.DEVNULL)
    knob = "/proc/sys/vm/max_map_count"
    with open(knob) as f:
        old = int(f.read())
    need = max(sizes) + 10_000
    raised = False
    if old < need:
        try:
            with open(knob, "w") as f:
                f.write(str(need))
            raised = True
        except OSError:
            sizes = [n for n in sizes if n + 10_000 <= old]
            print(f"note: vm.max_map_count is {old} and cannot be raised (not root); "
                  f"sizes above it skipped", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="gdbext-many-maps-") as tmp:
            results = {n: run(n, tmp) for n in sizes}
    finally:
        if raised:
            with open(knob, "w") as f:
                f.write(str(old))
    rows, verdicts = [], []
    for n in sizes:
        for c in COMMANDS:
            r = results[n].get(c)
            if r:
                rows.append({"mappings": n, **r})
    for a, b in zip(sizes, sizes[1:]):
        for c in COMMANDS:
            ra, rb = results[a].get(c), results[b].get(c)
            if ra and rb:
                ratio = rb["cpu"] / max(ra["cpu"], 1e-3)
                per10 = ratio ** (1 / max(1e-9, math.log10(b / a)))
                verdicts.append({"command": c, "from": a, "to": b, "cpu_ratio": round(ratio, 2),
                                 "per_10x": round(per10, 2), "met": per10 <= MAX_RATIO})
    if args.json:
        print(json.dumps({"results": rows, "ratios": verdicts}, indent=1))
        return
    print(f"{'mappings':>9}  {'command':<16} {'cpu s':>7} {'wall s':>7} {'peak+ MiB':>10}")
    for r in rows:
        print(f"{r['mappings']:>9}  {r['command']:<16} {r['cpu']:7.2f} {r['wall']:7.2f} "
              f"{r['peak_growth_mib']:10.0f}")
    print()
    for v in verdicts:
        print(f"{'met   ' if v['met'] else 'MISSED'} {v['command']}: {v['from']} -> {v['to']} "
              f"mappings costs x{v['cpu_ratio']} (x{v['per_10x']} per 10x; at most "
              f"x{MAX_RATIO:g})")


if __name__ == "__main__":
    main()
